// The ensemble driver: trains M independent networks with minibatch SGD + L2 (+ Langevin
// noise), members outer and steps inner, in parallel over members.
//
// A run is a piecewise-constant schedule of stages (lr, beta, temperature per member);
// Python advances it in chunks (run_offset, n_steps) so that Ctrl-C and progress bars work
// between chunks. Every random draw is addressed by (seed, stream of the member, absolute
// step of the member, purpose), so chunking and thread count never change a result.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

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
};

// Batches of at least this many samples use the sample-rows kernel, smaller ones the
// one-sample-at-a-time kernel (see kernels/sgd_step.hpp).
inline constexpr Index kRowBatchMin = 8;

// Consecutive members a thread takes at a time: neighbouring members' states share cache
// lines, so handing them to different threads at once costs coherence traffic.
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

// Per-thread scratch of the training loop.
template <class S, Activation Act, class Shape>
struct TrainScratch {
  std::optional<kernels::RowStep<S, Act, Shape>> rows;
  std::optional<kernels::SampleStep<S, Act, Shape>> samples;
  BatchSampler sampler;
  NormalSource normals;
  std::vector<double> noise;
  kernels::AlignedVector<S> local;  // the running member's parameters
  Workspace<S> eval;

  TrainScratch(const Layout& layout, const BatchPlan& plan, Index n_train, bool use_rows, Index ld,
               Index eval_capacity)
      : sampler(plan, n_train), noise(static_cast<std::size_t>(layout.n_params)),
        local(static_cast<std::size_t>(layout.n_params)), eval(layout, eval_capacity) {
    if (use_rows)
      rows.emplace(layout, ld);
    else
      samples.emplace(layout);
  }
};

// Row layout of a whole data set (d x ld, zero-padded), for full-batch steps.
template <class S>
kernels::AlignedVector<S> to_rows(const S* a, Index n, Index d, Index ld) {
  kernels::AlignedVector<S> rows(static_cast<std::size_t>(d * ld), S(0));
  for (Index s = 0; s < n; ++s)
    for (Index k = 0; k < d; ++k) rows[k * ld + s] = a[s * d + k];
  return rows;
}

template <class S, Activation Act, class Shape>
void train_members(const Layout& layout, const EnsembleRef<S>& ens, const DataRef<S>& train,
                   const DataRef<S>& test, const Schedule& sched, const RecordPlan& rec,
                   const TrainOptions& opt) {
  const Index n_members = ens.n_members;
  const Index P = layout.n_params;
  const BatchPlan& plan = opt.batches;
  const Index batch = plan.full() ? train.n : plan.batch_size;
  const bool use_rows = batch >= kRowBatchMin;
  const Index ld = kernels::padded(batch);
  const Index eval_capacity = std::max<Index>(1, std::min<Index>(256, std::max(train.n, test.n)));
  kernels::AlignedVector<S> x_full, y_full;
  if (use_rows && plan.full()) {
    x_full = to_rows(train.x, train.n, layout.d_in(), ld);
    y_full = to_rows(train.y, train.n, layout.d_out(), ld);
  }
  const std::int64_t first = opt.run_offset, last = opt.run_offset + opt.n_steps;

  parallel_members(
      n_members, opt.n_threads, kMemberGrain,
      [&] { return TrainScratch<S, Act, Shape>(layout, plan, train.n, use_rows, ld, eval_capacity); },
      [&](TrainScratch<S, Act, Shape>& st, Index m) {
        if (ens.diverged[m]) return;
        // Work on a thread-local copy of the member's parameters (see kMemberGrain).
        std::copy(ens.params + m * P, ens.params + (m + 1) * P, st.local.begin());
        S* params = st.local.data();
        const std::uint64_t stream = ens.streams[m];
        Index stage = 0;
        while (stage + 1 < sched.n_stages && sched.stage_end[stage] <= first) ++stage;
        auto hyper = [&](const double* values) { return values[stage * n_members + m]; };
        auto record = [&](Index row) {
          evaluate_member<S, Act>(layout, params, train, test, rec.modes, hyper(sched.beta),
                                  opt.decay_bias, st.eval,
                                  detail::record_slot(rec, layout, row, m, n_members));
        };
        Index row = 0;
        while (row < rec.n_records && rec.at[row] < first) ++row;
        if (first > 0)
          while (row < rec.n_records && rec.at[row] == first) ++row;  // written by the last chunk
        while (row < rec.n_records && rec.at[row] == first) record(row++);

        std::int64_t step = ens.steps[m];
        for (std::int64_t r = first; r < last; ++r) {
          while (stage + 1 < sched.n_stages && sched.stage_end[stage] <= r) ++stage;
          const double lr = hyper(sched.lr), beta = hyper(sched.beta);
          const double temperature = hyper(sched.temperature);
          const S decay = static_cast<S>(1.0 - lr * beta);
          const kernels::StepParams<S> sp{static_cast<S>(lr), decay,
                                          opt.decay_bias ? decay : S(1)};
          if (use_rows) {
            if (plan.full()) {
              st.rows->step(params, x_full.data(), y_full.data(), batch, sp);
            } else {
              st.rows->gather(train.x, train.y, st.sampler.indices(stream, step), batch);
              st.rows->step(params, st.rows->x_rows(), st.rows->y_rows(), batch, sp);
            }
          } else {
            const Index* idx = plan.full() ? nullptr : st.sampler.indices(stream, step);
            st.samples->step(params, train.x, train.y, idx, batch, sp);
          }
          if (temperature > 0.0) {
            const double sigma = std::sqrt(2.0 * lr * temperature);
            st.normals.fill(plan.seed, stream, static_cast<std::uint64_t>(step), Purpose::kLangevin,
                            st.noise.data(), P);
            for (Index i = 0; i < P; ++i) params[i] += static_cast<S>(sigma * st.noise[i]);
          }
          ++step;
          if (!kernels::all_finite(params, P)) {
            ens.diverged[m] = 1;
            if (rec.diverged_at) rec.diverged_at[m] = r + 1;
            break;
          }
          while (row < rec.n_records && rec.at[row] == r + 1) record(row++);
        }
        std::copy(params, params + P, ens.params + m * P);
        ens.steps[m] = step;
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
