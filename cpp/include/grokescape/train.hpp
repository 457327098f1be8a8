// The ensemble driver: trains M independent networks with minibatch SGD + L2 (+ Langevin
// noise), members outer and steps inner, in parallel over members.
//
// A run is a piecewise-constant schedule of stages (lr, beta, temperature per member);
// Python advances it in chunks (run_offset, n_steps) so that Ctrl-C and progress bars work
// between chunks. Every random draw is addressed by (seed, stream of the member, absolute
// step of the member, purpose), so chunking and thread count never change a result.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include "grokescape/kernels/lane_batch_step.hpp"
#include "grokescape/kernels/lanes_step.hpp"
#include "grokescape/kernels/moment_step.hpp"
#include "grokescape/kernels/sgd_step.hpp"
#include "grokescape/layout.hpp"
#include "grokescape/minibatch.hpp"
#include "grokescape/network.hpp"
#include "grokescape/observables.hpp"
#include "grokescape/parallel.hpp"
#include "grokescape/normal.hpp"
#include "grokescape/philox.hpp"

namespace grokescape {

// The ensemble's state, owned by Python; the core updates it in place.
template <class Scalar>
struct EnsembleRef {
  Scalar* params = nullptr;              // (M, P)
  Index n_members = 0;
  std::int64_t* steps = nullptr;         // absolute SGD steps taken by each member
  std::uint8_t* diverged = nullptr;      // 1 once a member's parameters became non-finite
  std::uint64_t* streams = nullptr;      // RNG stream (trajectory id) of each member
};

// Piecewise-constant hyperparameters: stage k covers run steps [stage_end[k-1], stage_end[k]).
// lr, beta and temperature are (n_stages, M) arrays.
struct Schedule {
  Index n_stages = 1;
  const std::int64_t* stage_end = nullptr;
  const double* lr = nullptr;
  const double* beta = nullptr;
  const double* temperature = nullptr;
};

// Observables recorded after run step at[k] (0 = before the first step) into row k of
// (n_records, M[, ...]) arrays. Rows of members that diverged earlier are left untouched.
struct RecordPlan {
  Index n_records = 0;
  const std::int64_t* at = nullptr;
  ModeSpec modes;
  double* train_mse = nullptr;
  double* test_mse = nullptr;
  double* loss = nullptr;
  double* lam = nullptr;
  double* sv = nullptr;
  double* energy = nullptr;
  std::int64_t* diverged_at = nullptr;  // (M): run step after which the member diverged
};

struct TrainOptions {
  BatchPlan batches;
  bool decay_bias = true;
  std::int64_t run_offset = 0;  // run steps already done by earlier chunks
  std::int64_t n_steps = 0;     // steps in this chunk
  int n_threads = 1;
  bool generic_kernel = false;  // run-time sizes even where a compiled shape matches (tests)
  bool moment_gradient = true;  // batch moments where they pay (false: per-sample kernels)
};

// Batches of at least this many samples use the sample-rows kernel, smaller ones the
// one-sample-at-a-time kernel (see kernels/sgd_step.hpp).
inline constexpr Index kRowBatchMin = 8;

// Consecutive members a thread takes at a time: neighbouring members' states share cache
// lines, so handing them to different threads at once costs coherence traffic.
// (With member groups, kMemberGrain / group groups at a time.)
inline constexpr Index kMemberGrain = 8;

namespace detail {
inline ObservableSlot record_slot(const RecordPlan& rec, const Layout& layout, Index row,
                                  Index member, Index n_members) {
  const Index cell = row * n_members + member;
  const Index r = rec.modes.n_modes;
  const Index k = std::min(layout.d_in(), layout.d_out());
  ObservableSlot slot;
  if (rec.train_mse) slot.train_mse = rec.train_mse + cell;
  if (rec.test_mse) slot.test_mse = rec.test_mse + cell;
  if (rec.loss) slot.loss = rec.loss + cell;
  if (rec.lam) slot.lam = rec.lam + cell * r;
  if (rec.sv) slot.sv = rec.sv + cell * k;
  if (rec.energy) slot.energy = rec.energy + cell * r;
  return slot;
}
}  // namespace detail

// The step kernel of a run, chosen by network and batch only (never by ensemble size or
// thread count, so a member's result does not depend on them):
//  - kLanes (linear, B = 1): LaneStep::kWidth members in the vector lanes;
//  - kMoments (bias-free linear, B >= 2 or full batch, where MomentStep::pays): the gradient
//    from the batch's second moments, MomentStep::kWidth members in the vector lanes;
//  - kLaneBatches (linear, B >= 2, minibatches, small networks): LaneBatchStep::kWidth
//    members in the vector lanes;
//  - kSamples (B < kRowBatchMin otherwise): one sample at a time; tanh B = 1 steps interleave
//    up to SampleStep::kMaxGroup members (step_members);
//  - kRows (otherwise): one member at a time, vectorised over the samples of the batch.
enum class StepKernel : int { kRows, kSamples, kLanes, kLaneBatches, kMoments };

template <class S, Activation Act, class Shape>
inline StepKernel choose_step_kernel(const Layout& layout, const BatchPlan& plan, Index batch,
                                     bool moment_gradient) {
  if (Act == Activation::kLinear && batch == 1) return StepKernel::kLanes;
  if (Act == Activation::kLinear && moment_gradient && kernels::MomentStep<S, Shape>::pays(layout, batch))
    return StepKernel::kMoments;
  if (Act == Activation::kLinear && !plan.full() && batch >= 2 &&
      kernels::LaneBatchStep<S, Shape>::fits(layout))
    return StepKernel::kLaneBatches;
  return batch >= kRowBatchMin ? StepKernel::kRows : StepKernel::kSamples;
}

inline const char* step_kernel_name(StepKernel kernel) {
  switch (kernel) {
    case StepKernel::kRows: return "rows";
    case StepKernel::kSamples: return "samples";
    case StepKernel::kLanes: return "lanes";
    case StepKernel::kLaneBatches: return "lane_batches";
    case StepKernel::kMoments: return "moments";
  }
  return "?";
}

// Members a thread steps together with that kernel.
template <class S, Activation Act, class Shape>
inline int member_group_size(StepKernel kernel, Index batch) {
  switch (kernel) {
    case StepKernel::kLanes: return kernels::LaneStep<S, Shape>::kWidth;
    case StepKernel::kLaneBatches: return kernels::LaneBatchStep<S, Shape>::kWidth;
    case StepKernel::kMoments: return kernels::MomentStep<S, Shape>::kWidth;
    case StepKernel::kSamples: return batch == 1 ? kernels::SampleStep<S, Act, Shape>::kMaxGroup : 1;
    case StepKernel::kRows: return 1;
  }
  return 1;
}
template <class S, Activation Act, class Shape>
inline constexpr int kMaxMembers = std::max({kernels::LaneStep<S, Shape>::kWidth,
                                             kernels::LaneBatchStep<S, Shape>::kWidth,
                                             kernels::MomentStep<S, Shape>::kWidth,
                                             kernels::SampleStep<S, Act, Shape>::kMaxGroup});

// Row layout of a whole data set (d x ld, zero-padded), for full-batch steps.
template <class S>
kernels::AlignedVector<S> to_rows(const S* a, Index n, Index d, Index ld) {
  kernels::AlignedVector<S> rows(static_cast<std::size_t>(d * ld), S(0));
  for (Index s = 0; s < n; ++s)
    for (Index k = 0; k < d; ++k) rows[k * ld + s] = a[s * d + k];
  return rows;
}

// Per-thread scratch of the training loop: the kernel's buffers, a batch sampler per member
// of a group, and the running members' parameters.
template <class S, Activation Act, class Shape>
struct TrainScratch {
  StepKernel kernel;
  int group;
  Index batch;
  std::optional<kernels::RowStep<S, Act, Shape>> rows;
  std::optional<kernels::SampleStep<S, Act, Shape>> samples;
  std::optional<kernels::LaneStep<S, Shape>> lanes;
  std::optional<kernels::LaneBatchStep<S, Shape>> lane_batches;
  std::optional<kernels::MomentStep<S, Shape>> moments;
  std::vector<BatchSampler> samplers;  // one per member of a group
  kernels::AlignedVector<double> noise;  // Langevin normals: P, or P x kNormalLanes (lanes)
  // The running members' parameters: member q at local[q * local_stride + i] (i = 0..P-1),
  // or at local[i * group + q] in the lane layouts (lanes()).
  Index local_stride;
  kernels::AlignedVector<S> local;
  kernels::AlignedVector<S> lane_x, lane_y, lane_lr, lane_decay, lane_bias_decay, member;
  Workspace<S> eval;

  TrainScratch(const Layout& layout, const BatchPlan& plan, Index n_train, StepKernel step_kernel,
               Index batch_size, Index eval_capacity)
      : kernel(step_kernel), group(member_group_size<S, Act, Shape>(step_kernel, batch_size)),
        batch(batch_size), samplers(static_cast<std::size_t>(group), BatchSampler(plan, n_train)),
        noise(static_cast<std::size_t>(layout.n_params * kNormalLanes)),
        local_stride(kernels::padded(layout.n_params)),
        local(static_cast<std::size_t>(group * local_stride), S(0)), eval(layout, eval_capacity) {
    switch (kernel) {
      case StepKernel::kLanes:
        lanes.emplace(layout);
        lane_x.assign(static_cast<std::size_t>(layout.d_in() * group), S(0));
        lane_y.assign(static_cast<std::size_t>(layout.d_out() * group), S(0));
        break;
      case StepKernel::kLaneBatches: lane_batches.emplace(layout, batch); break;
      case StepKernel::kMoments: moments.emplace(layout, batch); break;
      case StepKernel::kRows: rows.emplace(layout, kernels::padded(batch)); break;
      case StepKernel::kSamples: samples.emplace(layout); break;
    }
    if (lanes_layout()) {
      lane_lr.assign(static_cast<std::size_t>(group), S(0));
      lane_decay.assign(static_cast<std::size_t>(group), S(1));
      lane_bias_decay.assign(static_cast<std::size_t>(group), S(1));
      member.assign(static_cast<std::size_t>(layout.n_params), S(0));
    }
  }

  bool lanes_layout() const {
    return kernel == StepKernel::kLanes || kernel == StepKernel::kLaneBatches || kernel == StepKernel::kMoments;
  }
  // Parameter i of group member q is at member_params(q)[i * member_stride()].
  S* member_params(int q) { return local.data() + (lanes_layout() ? q : q * local_stride); }
  Index member_stride() const { return lanes_layout() ? group : 1; }

  // One SGD step of group members 0..count-1 (member q: its parameters at member_params(q),
  // RNG stream streams[q], absolute step steps[q], hyperparameters sp[q]). x_full / y_full:
  // the data set as rows (to_rows) for full-batch steps of the row kernel. In the lane
  // layouts finite[q] tells whether member q's parameters are all finite; the other kernels
  // leave it to the caller.
  void step(const Layout& layout, const BatchPlan& plan, const DataRef<S>& train,
            const S* x_full, const S* y_full, const std::uint64_t* streams,
            const std::int64_t* steps, const kernels::StepParams<S>* sp, int count, bool* finite) {
    auto batch_of = [&](int q) { return samplers[q].indices(streams[q], steps[q]); };
    const Index d_in = layout.d_in(), d_out = layout.d_out();
    if (lanes_layout()) {
      for (int q = 0; q < count; ++q) {
        lane_lr[q] = sp[q].lr;
        lane_decay[q] = sp[q].decay;
        lane_bias_decay[q] = sp[q].bias_decay;
      }
    }
    switch (kernel) {
      case StepKernel::kLanes: {
        // idle lanes repeat lane 0's sample (their parameters are zero and stay zero)
        constexpr int L = kernels::LaneStep<S, Shape>::kWidth;
        Index sample[L];
        for (int q = 0; q < L; ++q) sample[q] = plan.full() ? 0 : q < count ? batch_of(q)[0] : sample[0];
        kernels::transpose_into_lanes<S, L>(train.x, sample, d_in, lane_x.data());
        kernels::transpose_into_lanes<S, L>(train.y, sample, d_out, lane_y.data());
        lanes->step(local.data(), lane_x.data(), lane_y.data(), lane_lr.data(), lane_decay.data(),
                    lane_bias_decay.data(), finite);
        return;
      }
      case StepKernel::kLaneBatches: {
        // feature k of sample b of lane q at [(k * ld + b) * L + q]; idle lanes repeat lane 0's
        // samples (their parameters are zero and stay zero)
        constexpr int L = kernels::LaneBatchStep<S, Shape>::kWidth;
        const Index ld = lane_batches->x_stride();
        const Index* idx[L];
        for (int q = 0; q < L; ++q) idx[q] = q < count ? batch_of(q) : idx[0];
        S* __restrict x = lane_batches->x();
        S* __restrict y = lane_batches->y();
        for (Index b = 0; b < batch; ++b) {
          Index sample[L];
          for (int q = 0; q < L; ++q) sample[q] = idx[q][b];
          for (Index k = 0; k < d_in; ++k)
            for (int q = 0; q < L; ++q) x[(k * ld + b) * L + q] = train.x[sample[q] * d_in + k];
          for (Index k = 0; k < d_out; ++k)
            for (int q = 0; q < L; ++q) y[(k * ld + b) * L + q] = train.y[sample[q] * d_out + k];
        }
        lane_batches->step(local.data(), lane_lr.data(), lane_decay.data(), lane_bias_decay.data(),
                           finite);
        return;
      }
      case StepKernel::kMoments: {
        if (!moments->has_samples()) moments->set_samples(train.x, train.y, train.n);
        if (plan.full()) {
          if (!moments->moments_fixed()) moments->fix_moments();
        } else {  // idle lanes repeat lane 0's batch (their parameters are zero and stay zero)
          constexpr int L = kernels::MomentStep<S, Shape>::kWidth;
          const Index* idx[L];
          for (int q = 0; q < L; ++q) idx[q] = q < count ? batch_of(q) : idx[0];
          moments->gather_moments(idx);
        }
        moments->step(local.data(), lane_lr.data(), lane_decay.data(), lane_bias_decay.data(), finite);
        return;
      }
      case StepKernel::kRows: {  // group == 1
        if (plan.full()) {
          rows->step(member_params(0), x_full, y_full, batch, sp[0]);
        } else {
          rows->gather(train.x, train.y, batch_of(0), batch);
          rows->step(member_params(0), rows->x_rows(), rows->y_rows(), batch, sp[0]);
        }
        return;
      }
      case StepKernel::kSamples: {
        if (batch == 1) {
          S* params[kMaxMembers<S, Act, Shape>];
          const S* xs[kMaxMembers<S, Act, Shape>];
          const S* ys[kMaxMembers<S, Act, Shape>];
          for (int q = 0; q < count; ++q) {
            const Index s = plan.full() ? 0 : batch_of(q)[0];
            params[q] = member_params(q);
            xs[q] = train.x + s * d_in;
            ys[q] = train.y + s * d_out;
          }
          samples->step_members(params, xs, ys, sp, count);
        } else {  // group == 1
          samples->step(member_params(0), train.x, train.y, plan.full() ? nullptr : batch_of(0),
                        batch, sp[0]);
        }
        return;
      }
    }
  }

  // finite[q] for members 0..count-1 after noise was added (or for the kernels whose step
  // does not report it).
  void check_finite(Index n_params, int count, bool* finite) {
    if (kernel == StepKernel::kLanes) {
      kernels::lanes_all_finite<S, kernels::LaneStep<S, Shape>::kWidth>(local.data(), n_params, finite);
    } else if (kernel == StepKernel::kLaneBatches) {
      kernels::lanes_all_finite<S, kernels::LaneBatchStep<S, Shape>::kWidth>(local.data(), n_params,
                                                                          finite);
    } else if (kernel == StepKernel::kMoments) {
      kernels::lanes_all_finite<S, kernels::MomentStep<S, Shape>::kWidth>(local.data(), n_params, finite);
    } else {
      for (int q = 0; q < count; ++q) finite[q] = kernels::all_finite(member_params(q), n_params);
    }
  }

  // Adds Langevin noise sigma[q] z_q to the parameters of group members q = 0..count-1
  // with sigma[q] > 0; z_q: the standard normals of stream streams[q] at step steps[q]. In
  // the lane layouts kNormalLanes members draw at once, one per Philox lane, and the normals
  // come out in the parameters' lane order. Returns whether any noise was added.
  bool add_noise(const BatchPlan& plan, const std::uint64_t* streams, const std::int64_t* steps,
                 const double* sigma, int count, Index n_params) {
    bool added = false;
    if (!lanes_layout()) {
      for (int q = 0; q < count; ++q) {
        if (!(sigma[q] > 0.0)) continue;
        added = true;
        standard_normals(plan.seed, streams[q], static_cast<std::uint64_t>(steps[q]),
                         Purpose::kLangevin, noise.data(), n_params);
        S* params = member_params(q);
        for (Index i = 0; i < n_params; ++i) params[i] += static_cast<S>(sigma[q] * noise[i]);
      }
      return added;
    }
    constexpr int L = kNormalLanes;
    for (int q0 = 0; q0 < count; q0 += L) {
      const int nt = std::min(L, count - q0);
      bool any = false;
      alignas(64) std::uint64_t lane_streams[L], lane_steps[L];
      double lane_sigma[L];
      for (int t = 0; t < L; ++t) {
        const int q = q0 + std::min(t, nt - 1);  // spare lanes repeat the last member's draw
        lane_streams[t] = streams[q];
        lane_steps[t] = static_cast<std::uint64_t>(steps[q]);
        lane_sigma[t] = t < nt && sigma[q] > 0.0 ? sigma[q] : 0.0;
        any = any || lane_sigma[t] > 0.0;
      }
      if (!any) continue;
      added = true;
      standard_normals_lanes(plan.seed, lane_streams, lane_steps, Purpose::kLangevin, noise.data(),
                             n_params);
      S* params = local.data() + q0;
      if constexpr (std::is_same_v<S, double> && kernels::kLanes<double> == L) {
        if (group == L) {  // one parameter vector per normal vector; lanes without noise kept
          using V = kernels::Vector<double>;
          V sig;
          for (int t = 0; t < L; ++t) sig[t] = lane_sigma[t];
          const auto on = sig > 0.0;
          for (Index i = 0; i < n_params; ++i) {
            const V p = kernels::load<double>(params + i * L);
            kernels::store<double>(params + i * L, on ? p + sig * kernels::load<double>(noise.data() + i * L) : p);
          }
          continue;
        }
      }
      for (Index i = 0; i < n_params; ++i)
        for (int t = 0; t < nt; ++t)
          if (lane_sigma[t] > 0.0) params[i * group + t] += static_cast<S>(lane_sigma[t] * noise[i * L + t]);
    }
    return added;
  }

  // Group member q (of n_active) leaves the group: the last member moves into its place
  // (parameters, sampler, the caller's record M of it, finiteness flag) and the freed
  // parameters are cleared (an idle lane stays zero).
  template <class M>
  void leave_group(M* members, int q, int n_active, bool* finite, Index n_params) {
    M& mb = members[q];
    M& back = members[n_active - 1];
    if (q != n_active - 1) {
      for (Index i = 0; i < n_params; ++i) mb.params[i * mb.stride] = back.params[i * back.stride];
      S* own = mb.params;
      mb = back;
      mb.params = own;
      std::swap(samplers[q], samplers[n_active - 1]);
      finite[q] = finite[n_active - 1];
    }
    for (Index i = 0; i < n_params; ++i) back.params[i * back.stride] = S(0);
  }
};

template <class S, Activation Act, class Shape>
void train_members(const Layout& layout, const EnsembleRef<S>& ens, const DataRef<S>& train,
                   const DataRef<S>& test, const Schedule& sched, const RecordPlan& rec,
                   const TrainOptions& opt) {
  const Index n_members = ens.n_members;
  const Index P = layout.n_params;
  const BatchPlan& plan = opt.batches;
  const Index batch = plan.full() ? train.n : plan.batch_size;
  const StepKernel kernel = choose_step_kernel<S, Act, Shape>(layout, plan, batch, opt.moment_gradient);
  const Index eval_capacity = std::max<Index>(1, std::min<Index>(256, std::max(train.n, test.n)));
  kernels::AlignedVector<S> x_full, y_full;
  if (kernel == StepKernel::kRows && plan.full()) {
    x_full = to_rows(train.x, train.n, layout.d_in(), kernels::padded(batch));
    y_full = to_rows(train.y, train.n, layout.d_out(), kernels::padded(batch));
  }
  const std::int64_t first = opt.run_offset, last = opt.run_offset + opt.n_steps;

  // Threads take groups of `group` consecutive members (see member_group_size).
  const int group = member_group_size<S, Act, Shape>(kernel, batch);
  const Index n_groups = (n_members + group - 1) / group;
  constexpr int kMax = kMaxMembers<S, Act, Shape>;
  struct Member {
    Index m;
    S* params;     // parameter i at params[i * stride]
    Index stride;  // 1, or the lane count in the lane layouts
    std::uint64_t stream;
    Index stage, row;
    std::int64_t step;
  };
  auto copy_in = [P](Member& mb, const S* src) {
    for (Index i = 0; i < P; ++i) mb.params[i * mb.stride] = src[i];
  };
  auto copy_out = [P](const Member& mb, S* dst) {
    for (Index i = 0; i < P; ++i) dst[i] = mb.params[i * mb.stride];
  };

  parallel_members(
      n_groups, opt.n_threads, std::max<Index>(1, kMemberGrain / group),
      [&] {
        return TrainScratch<S, Act, Shape>(layout, plan, train.n, kernel, batch, eval_capacity);
      },
      [&](TrainScratch<S, Act, Shape>& st, Index g) {
        // Work on thread-local copies of the members' parameters (see kMemberGrain).
        Member members[kMax];
        int n_active = 0;
        if (st.lanes_layout()) std::fill(st.local.begin(), st.local.end(), S(0));  // idle lanes
        for (Index m = g * group; m < std::min(n_members, (g + 1) * group); ++m) {
          if (ens.diverged[m]) continue;
          Member& mb = members[n_active];
          mb.m = m;
          mb.params = st.member_params(n_active);
          mb.stride = st.member_stride();
          copy_in(mb, ens.params + m * P);
          mb.stream = ens.streams[m];
          mb.stage = 0;
          while (mb.stage + 1 < sched.n_stages && sched.stage_end[mb.stage] <= first) ++mb.stage;
          mb.row = 0;
          while (mb.row < rec.n_records && rec.at[mb.row] < first) ++mb.row;
          if (first > 0)  // written by the last chunk
            while (mb.row < rec.n_records && rec.at[mb.row] == first) ++mb.row;
          mb.step = ens.steps[m];
          ++n_active;
        }
        auto hyper = [&](const Member& mb, const double* values) {
          return values[mb.stage * n_members + mb.m];
        };
        auto record = [&](Member& mb) {
          const S* params = mb.params;
          if (mb.stride != 1) {
            copy_out(mb, st.member.data());
            params = st.member.data();
          }
          evaluate_member<S, Act>(layout, params, train, test, rec.modes, hyper(mb, sched.beta),
                                  opt.decay_bias, st.eval,
                                  detail::record_slot(rec, layout, mb.row, mb.m, n_members));
          ++mb.row;
        };
        auto save = [&](const Member& mb) {
          copy_out(mb, ens.params + mb.m * P);
          ens.steps[mb.m] = mb.step;
        };
        for (int q = 0; q < n_active; ++q)
          while (members[q].row < rec.n_records && rec.at[members[q].row] == first) record(members[q]);

        kernels::StepParams<S> sp[kMax];
        bool finite[kMax];
        double sigma[kMax];
        std::uint64_t streams[kMax];
        std::int64_t steps[kMax];
        for (std::int64_t r = first; r < last && n_active > 0;) {
          // A segment: run steps [r, until) in which no member changes stage, records or
          // leaves, so the step parameters and noise scales are worked out once per segment
          // and a step only samples, steps and checks finiteness. Tiny float32 network (B = 1),
          // one thread, train_members over LaneStep::step alone in the same process: 0.69-0.86
          // with the bookkeeping every step, 0.78-0.98 in segments (6 interleaved runs each).
          std::int64_t until = last;
          bool noisy = false;
          for (int q = 0; q < n_active; ++q) {
            Member& mb = members[q];
            while (mb.stage + 1 < sched.n_stages && sched.stage_end[mb.stage] <= r) ++mb.stage;
            if (mb.stage + 1 < sched.n_stages) until = std::min(until, sched.stage_end[mb.stage]);
            if (mb.row < rec.n_records && rec.at[mb.row] > r) until = std::min(until, rec.at[mb.row]);
            const double lr = hyper(mb, sched.lr), beta = hyper(mb, sched.beta);
            const S decay = static_cast<S>(1.0 - lr * beta);
            sp[q] = kernels::StepParams<S>{static_cast<S>(lr), decay, opt.decay_bias ? decay : S(1)};
            const double temperature = hyper(mb, sched.temperature);
            sigma[q] = temperature > 0.0 ? std::sqrt(2.0 * lr * temperature) : 0.0;
            noisy = noisy || sigma[q] > 0.0;
            streams[q] = mb.stream;
            steps[q] = mb.step;
          }
          while (r < until) {
            st.step(layout, plan, train, x_full.data(), y_full.data(), streams, steps, sp, n_active, finite);
            const bool noise_added = noisy && st.add_noise(plan, streams, steps, sigma, n_active, P);
            if (noise_added || !st.lanes_layout()) st.check_finite(P, n_active, finite);
            ++r;
            bool all_finite = true;
            for (int q = 0; q < n_active; ++q) {
              ++steps[q];
              all_finite = all_finite && finite[q];
            }
            if (!all_finite) break;
          }
          for (int q = 0; q < n_active; ++q) members[q].step = steps[q];
          for (int q = 0; q < n_active;) {  // members whose last step diverged leave the group
            Member& mb = members[q];
            if (finite[q]) {
              ++q;
              continue;
            }
            ens.diverged[mb.m] = 1;
            if (rec.diverged_at) rec.diverged_at[mb.m] = r;
            save(mb);
            st.leave_group(members, q, n_active, finite, P);
            --n_active;
          }
          for (int q = 0; q < n_active; ++q)
            while (members[q].row < rec.n_records && rec.at[members[q].row] == r) record(members[q]);
        }
        for (int q = 0; q < n_active; ++q) save(members[q]);
      });
}

// The name of the step kernel train() runs for this network and batch (batch_size 0: full
// batch of n_train samples).
template <class S>
const char* step_kernel_of(const Layout& layout, Index batch_size, Index n_train, bool generic_kernel,
                           bool moment_gradient) {
  const BatchPlan plan{batch_size, Sampling::kEpoch, 0};
  const Index batch = plan.full() ? n_train : batch_size;
  return with_activation(layout, [&](auto act) {
    constexpr Activation Act = decltype(act)::value;
    return kernels::with_compiled_shape<Act>(layout, generic_kernel, [&](auto shape) {
      return step_kernel_name(choose_step_kernel<S, Act, decltype(shape)>(layout, plan, batch, moment_gradient));
    });
  });
}

// Trains with the first compile-time shape that matches the layout, or run-time sizes.
template <class S>
void train(const Layout& layout, const EnsembleRef<S>& ens, const DataRef<S>& train,
           const DataRef<S>& test, const Schedule& sched, const RecordPlan& rec,
           const TrainOptions& opt) {
  with_activation(layout, [&](auto act) {
    constexpr Activation Act = decltype(act)::value;
    kernels::with_compiled_shape<Act>(layout, opt.generic_kernel, [&](auto shape) {
      train_members<S, Act, decltype(shape)>(layout, ens, train, test, sched, rec, opt);
    });
  });
}

}  // namespace grokescape
