// Escape detection inside the training loop (physics.md sections 5 and 6).
//
// Every ensemble member is a slot that runs trajectories. A trajectory starts from the
// slot's state, takes SGD steps, and every `check_every` steps of its age the criterion is
// evaluated. It has escaped at the first check age t_e at which the criterion holds and
// keeps holding at every check up to t_e + hold; the slot stops there (or, with refill,
// restarts from its initial state as a new trajectory with a new random stream). A slot
// runs at most `budget` steps in a run; the trajectory in progress when the budget ends is
// censored. A trajectory whose parameters become non-finite is flagged as diverged.
//
// Trajectory ids are the random streams: trajectory k >= 1 of slot m gets id
// refill_base + (k - 1) M + m, so results do not depend on thread count or chunking.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "grokescape/singular_values.hpp"
#include "grokescape/train.hpp"

namespace grokescape {

enum class CriterionKind : int {
  kModeAmplitude = 0,  // lambda_index = u^T W v > value
  kSingularValue = 1,  // singular value `index` (0 = largest) of W_L...W_1 > value
  kTestMse = 2,        // test MSE < value
};

struct Criterion {
  CriterionKind kind = CriterionKind::kModeAmplitude;
  Index index = 0;
  const double* values = nullptr;  // threshold of each member
  std::int64_t hold = 0;         // steps the criterion must keep holding
  std::int64_t check_every = 1;  // steps between checks
};

// Preallocated buffers for criterion checks (a check allocates nothing).
struct CheckScratch {
  Eigen::VectorXd t, u;
  Eigen::MatrixXd map;
  SingularValues svd;
  Eigen::VectorXd lanes_t, lanes_u;  // (width x lanes) blocks of mode_amplitudes_lanes
  explicit CheckScratch(const Layout& layout, int lanes = 1)
      : t(layout.max_width), u(layout.max_width), map(layout.d_out(), layout.d_in()),
        lanes_t(layout.max_width * lanes), lanes_u(layout.max_width * lanes) {}
};

// W_L ... W_1 v for one input vector, by matrix-vector products, into scratch.t.
template <class S>
const double* chain_apply(const Layout& layout, const S* params, const double* v,
                          CheckScratch& cs) {
  double* cur = cs.t.data();
  double* next = cs.u.data();
  for (Index k = 0; k < layout.d_in(); ++k) cur[k] = v[k];
  for (Index l = 0; l < layout.depth(); ++l) {
    const S* w = params + layout.w_offset[l];
    for (Index i = 0; i < layout.out(l); ++i) {
      double acc = 0.0;
      for (Index k = 0; k < layout.in(l); ++k) acc += static_cast<double>(w[i * layout.in(l) + k]) * cur[k];
      next[i] = acc;
    }
    std::swap(cur, next);
  }
  return cur;
}

// lam[q] = u^T W_L ... W_1 v for the G members of a lane layout (parameter i of lane q at
// p[i * G + q]): chain_apply's arithmetic in every lane (the same products and additions in
// the same order), one pass over the group's parameters instead of a strided copy and a
// dependent scalar chain per member.
template <class S>
void mode_amplitudes_lanes(const Layout& layout, const S* p, int G, const double* v,
                           const double* u, CheckScratch& cs, double* lam) {
  double* cur = cs.lanes_t.data();
  double* next = cs.lanes_u.data();
  for (Index k = 0; k < layout.d_in(); ++k)
    for (int q = 0; q < G; ++q) cur[k * G + q] = v[k];
  for (Index l = 0; l < layout.depth(); ++l) {
    const S* w = p + layout.w_offset[l] * G;
    const Index ni = layout.in(l);
    for (Index i = 0; i < layout.out(l); ++i) {
      double* acc = next + i * G;
      for (int q = 0; q < G; ++q) acc[q] = 0.0;
      for (Index k = 0; k < ni; ++k)
        for (int q = 0; q < G; ++q) acc[q] += static_cast<double>(w[(i * ni + k) * G + q]) * cur[k * G + q];
    }
    std::swap(cur, next);
  }
  for (int q = 0; q < G; ++q) lam[q] = 0.0;
  for (Index i = 0; i < layout.d_out(); ++i)
    for (int q = 0; q < G; ++q) lam[q] += u[i] * cur[i * G + q];
}

// Whether the criterion holds for one member's parameters.
template <class S, Activation Act>
bool criterion_holds(const Criterion& c, double value, const Layout& layout, const S* params,
                     const DataRef<S>& test, const ModeSpec& modes, Workspace<S>& ws,
                     CheckScratch& cs) {
  switch (c.kind) {
    case CriterionKind::kModeAmplitude: {
      const double* out = chain_apply(layout, params, modes.in_vec + c.index * layout.d_in(), cs);
      const double* u = modes.out_vec + c.index * layout.d_out();
      double lam = 0.0;
      for (Index i = 0; i < layout.d_out(); ++i) lam += u[i] * out[i];
      return lam > value;
    }
    case CriterionKind::kSingularValue: {
      double unit[64];
      std::vector<double> big;
      double* e = unit;
      if (layout.d_in() > 64) {
        big.assign(static_cast<std::size_t>(layout.d_in()), 0.0);
        e = big.data();
      }
      for (Index j = 0; j < layout.d_in(); ++j) e[j] = 0.0;
      for (Index j = 0; j < layout.d_in(); ++j) {
        e[j] = 1.0;
        const double* col = chain_apply(layout, params, e, cs);
        for (Index i = 0; i < layout.d_out(); ++i) cs.map(i, j) = col[i];
        e[j] = 0.0;
      }
      if (!cs.map.allFinite()) return false;
      return cs.svd.compute(cs.map)[c.index] > value;
    }
    case CriterionKind::kTestMse: {
      const double mse = dataset_squared_error<S, Act>(layout, params, test, ws) /
                         (static_cast<double>(test.n) * static_cast<double>(layout.d_out()));
      return mse < value;
    }
  }
  return false;
}

// Per-slot state that persists across chunks of a run (owned by Python).
struct SlotState {
  std::uint8_t* active = nullptr;         // slot still running a trajectory
  std::int64_t* start_step = nullptr;     // RNG step at which the current trajectory began
  std::int64_t* hold_since = nullptr;     // age at which the criterion began to hold, or -1
  std::int64_t* trajectories = nullptr;   // trajectories started in this slot (>= 1)
};

struct EscapeOptions {
  BatchPlan batches;
  bool decay_bias = true;
  bool refill = false;
  std::uint64_t refill_base = 0;  // id of the first refilled trajectory of slot 0
  std::int64_t n_steps = 0;       // slot steps in this chunk
  int n_threads = 1;
  bool generic_kernel = false;
  bool moment_gradient = true;  // as TrainOptions::moment_gradient
};

// One finished trajectory (escaped or diverged).
struct EscapeEvent {
  Index slot;
  std::uint64_t trajectory;
  std::int64_t escape_age;  // first step of the holding run (escape) or divergence step
  std::int64_t detect_age;  // step at which the slot stopped this trajectory
  bool diverged;
  std::int64_t order;  // index of the event within its slot in this chunk
};

template <class S, Activation Act, class Shape>
std::vector<EscapeEvent> run_slots(const Layout& layout, const EnsembleRef<S>& ens,
                                   const S* init_params, const DataRef<S>& train,
                                   const DataRef<S>& test, const ModeSpec& modes,
                                   const double* lr_m, const double* beta_m,
                                   const double* temperature_m, const Criterion& crit,
                                   SlotState& slots, const EscapeOptions& opt) {
  const Index n_members = ens.n_members;
  const Index P = layout.n_params;
  const BatchPlan& plan = opt.batches;
  const Index batch = plan.full() ? train.n : plan.batch_size;
  // the same kernel and member groups as train(): a trajectory replays exactly
  const StepKernel kernel = choose_step_kernel<S, Act, Shape>(layout, plan, batch, opt.moment_gradient);
  const int group = member_group_size<S, Act, Shape>(kernel, batch);
  const Index n_groups = (n_members + group - 1) / group;
  const Index eval_capacity = std::max<Index>(1, std::min<Index>(256, std::max(train.n, test.n)));
  kernels::AlignedVector<S> x_full, y_full;
  if (kernel == StepKernel::kRows && plan.full()) {
    x_full = to_rows(train.x, train.n, layout.d_in(), kernels::padded(batch));
    y_full = to_rows(train.y, train.n, layout.d_out(), kernels::padded(batch));
  }
  using Scratch = TrainScratch<S, Act, Shape>;
  constexpr int kMax = kMaxMembers<S, Act, Shape>;
  std::vector<std::vector<EscapeEvent>*> all_events;
  std::mutex events_mutex;
  std::vector<std::unique_ptr<std::vector<EscapeEvent>>> owned;

  // A running slot's state lives here and in the thread's copy of its parameters while the
  // group runs (neighbouring slots run on other threads, and writing their shared cache lines
  // every step would serialise the threads); written back when the slot stops or the chunk
  // ends.
  struct Slot {
    Index m;
    S* params;     // parameter i at params[i * stride]
    Index stride;
    std::uint64_t stream;
    std::int64_t step, start, hold_since, started, order;
    bool active;
    double sigma, threshold;  // sigma 0: no Langevin noise
  };

  parallel_members(
      n_groups, opt.n_threads, std::max<Index>(1, kMemberGrain / group),
      [&] {
        auto events = std::make_unique<std::vector<EscapeEvent>>();
        std::lock_guard<std::mutex> lock(events_mutex);
        all_events.push_back(events.get());
        owned.push_back(std::move(events));
        return std::make_tuple(Scratch(layout, plan, train.n, kernel, batch, eval_capacity),
                               all_events.back(), CheckScratch(layout, group));
      },
      [&](auto& state, Index g) {
        Scratch& st = std::get<0>(state);
        std::vector<EscapeEvent>& events = *std::get<1>(state);
        CheckScratch& cs = std::get<2>(state);
        Slot group_slots[kMax];
        kernels::StepParams<S> sp[kMax];
        int n_active = 0;
        if (st.lanes_layout()) std::fill(st.local.begin(), st.local.end(), S(0));  // idle lanes
        for (Index m = g * group; m < std::min(n_members, (g + 1) * group); ++m) {
          if (!slots.active[m]) continue;
          Slot& sl = group_slots[n_active];
          sl.m = m;
          sl.params = st.member_params(n_active);
          sl.stride = st.member_stride();
          for (Index i = 0; i < P; ++i) sl.params[i * sl.stride] = ens.params[m * P + i];
          sl.stream = ens.streams[m];
          sl.step = ens.steps[m];
          sl.start = slots.start_step[m];
          sl.hold_since = slots.hold_since[m];
          sl.started = slots.trajectories[m];
          sl.order = 0;
          sl.active = true;
          const double lr = lr_m[m], beta = beta_m[m];
          const S decay = static_cast<S>(1.0 - lr * beta);
          sp[n_active] = kernels::StepParams<S>{static_cast<S>(lr), decay, opt.decay_bias ? decay : S(1)};
          sl.sigma = temperature_m[m] > 0.0 ? std::sqrt(2.0 * lr * temperature_m[m]) : 0.0;
          sl.threshold = crit.values[m];
          ++n_active;
        }
        auto save = [&](const Slot& sl) {
          for (Index i = 0; i < P; ++i) ens.params[sl.m * P + i] = sl.params[i * sl.stride];
          ens.streams[sl.m] = sl.stream;
          ens.steps[sl.m] = sl.step;
          slots.start_step[sl.m] = sl.start;
          slots.hold_since[sl.m] = sl.hold_since;
          slots.trajectories[sl.m] = sl.started;
          slots.active[sl.m] = sl.active ? 1 : 0;
        };
        // Ends the slot's trajectory: with refill a new one starts from the slot's initial
        // state, else the slot stops.
        auto finish = [&](Slot& sl, std::int64_t escape_age, std::int64_t age, bool diverged) {
          events.push_back({sl.m, sl.stream, escape_age, age, diverged, sl.order++});
          if (!opt.refill) {
            sl.active = false;
            if (diverged) ens.diverged[sl.m] = 1;
            return;
          }
          sl.stream = opt.refill_base + static_cast<std::uint64_t>((sl.started - 1) * n_members + sl.m);
          ++sl.started;
          for (Index i = 0; i < P; ++i) sl.params[i * sl.stride] = init_params[sl.m * P + i];
          sl.step = 0;
          sl.start = 0;
          sl.hold_since = -1;
        };
        auto params_of = [&](const Slot& sl) -> const S* {
          if (sl.stride == 1) return sl.params;
          for (Index i = 0; i < P; ++i) st.member[i] = sl.params[i * sl.stride];
          return st.member.data();
        };
        bool finite[kMax];
        double amplitude[kMax];  // mode amplitudes of the group's lanes (lane_amplitudes)
        const bool lane_amplitudes = st.lanes_layout() && crit.kind == CriterionKind::kModeAmplitude;
        std::uint64_t streams[kMax];
        std::int64_t steps[kMax];
        for (std::int64_t r = 0; r < opt.n_steps && n_active > 0; ++r) {
          for (int q = 0; q < n_active; ++q) {
            streams[q] = group_slots[q].stream;
            steps[q] = group_slots[q].step;
          }
          st.step(layout, plan, train, x_full.data(), y_full.data(), streams, steps, sp, n_active, finite);
          double sigma[kMax];
          for (int q = 0; q < n_active; ++q) sigma[q] = group_slots[q].sigma;
          const bool noise_added = st.add_noise(plan, streams, steps, sigma, n_active, P);
          if (noise_added || !st.lanes_layout()) st.check_finite(P, n_active, finite);
          if (lane_amplitudes) {  // every slot's amplitude at once (computed whether due or not)
            bool due = false;
            for (int q = 0; q < n_active; ++q)
              due = due || (group_slots[q].step + 1 - group_slots[q].start) % crit.check_every == 0;
            if (due)
              mode_amplitudes_lanes(layout, st.local.data(), group, modes.in_vec + crit.index * layout.d_in(),
                                    modes.out_vec + crit.index * layout.d_out(), cs, amplitude);
          }
          for (int q = 0; q < n_active;) {
            Slot& sl = group_slots[q];
            ++sl.step;
            const std::int64_t age = sl.step - sl.start;
            if (!finite[q]) {
              finish(sl, age, age, true);
            } else if (age % crit.check_every == 0) {
              if (lane_amplitudes ? amplitude[q] > sl.threshold
                                  : criterion_holds<S, Act>(crit, sl.threshold, layout, params_of(sl),
                                                            test, modes, st.eval, cs)) {
                if (sl.hold_since < 0) sl.hold_since = age;
                if (age - sl.hold_since >= crit.hold) finish(sl, sl.hold_since, age, false);
              } else {
                sl.hold_since = -1;
              }
            }
            if (sl.active) {
              ++q;
              continue;
            }
            // The slot stopped and leaves the group (its step parameters move with it).
            save(sl);
            sp[q] = sp[n_active - 1];
            amplitude[q] = amplitude[n_active - 1];
            st.leave_group(group_slots, q, n_active, finite, P);
            --n_active;
          }
        }
        for (int q = 0; q < n_active; ++q) save(group_slots[q]);
      });
  std::vector<EscapeEvent> merged;
  for (auto* ev : all_events) merged.insert(merged.end(), ev->begin(), ev->end());
  std::sort(merged.begin(), merged.end(), [](const EscapeEvent& a, const EscapeEvent& b) {
    return a.slot != b.slot ? a.slot < b.slot : a.order < b.order;
  });
  return merged;
}

// Advances every active slot by opt.n_steps steps; returns the trajectories that ended.
template <class S>
std::vector<EscapeEvent> run_until_escape(const Layout& layout, const EnsembleRef<S>& ens,
                                          const S* init_params, const DataRef<S>& train,
                                          const DataRef<S>& test, const ModeSpec& modes,
                                          const double* lr, const double* beta,
                                          const double* temperature, const Criterion& crit,
                                          SlotState& slots, const EscapeOptions& opt) {
  return with_activation(layout, [&](auto act) {
    constexpr Activation Act = decltype(act)::value;
    return kernels::with_compiled_shape<Act>(layout, opt.generic_kernel, [&](auto shape) {
      return run_slots<S, Act, decltype(shape)>(layout, ens, init_params, train, test, modes, lr,
                                                beta, temperature, crit, slots, opt);
    });
  });
}

}  // namespace grokescape
