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
#include <vector>

#include "grokescape/layout.hpp"
#include "grokescape/minibatch.hpp"
#include "grokescape/network.hpp"
#include "grokescape/observables.hpp"
#include "grokescape/parallel.hpp"
#include "grokescape/philox.hpp"

namespace grokescape {

// The ensemble's state, owned by Python; the core updates it in place.
template <class Scalar>
struct EnsembleRef {
  Scalar* params = nullptr;              // (M, P)
  Index n_members = 0;
  std::int64_t* steps = nullptr;         // absolute SGD steps taken by each member
  std::uint8_t* diverged = nullptr;      // 1 once a member's parameters became non-finite
  const std::uint64_t* streams = nullptr;  // RNG stream of each member
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
};

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

template <class Scalar, Activation Act>
void train_members(const Layout& layout, const EnsembleRef<Scalar>& ens,
                   const DataRef<Scalar>& train, const DataRef<Scalar>& test,
                   const Schedule& sched, const RecordPlan& rec, const TrainOptions& opt) {
  const Index n_members = ens.n_members;
  const Index P = layout.n_params;
  const BatchPlan& plan = opt.batches;
  const Index batch = plan.full() ? train.n : plan.batch_size;
  const Index capacity = std::max<Index>(batch, std::min<Index>(256, std::max(train.n, test.n)));
  const std::int64_t first = opt.run_offset, last = opt.run_offset + opt.n_steps;

  parallel_members(
      n_members, opt.n_threads, 1, [&] { return Workspace<Scalar>(layout, capacity, train.n); },
      [&](Workspace<Scalar>& ws, Index m) {
        if (ens.diverged[m]) return;
        Scalar* params = ens.params + m * P;
        const std::uint64_t stream = ens.streams[m];
        Index stage = 0;
        while (stage + 1 < sched.n_stages && sched.stage_end[stage] <= first) ++stage;
        auto hyper = [&](const double* values) { return values[stage * n_members + m]; };
        auto record = [&](Index row) {
          evaluate_member<Scalar, Act>(layout, params, train, test, rec.modes, hyper(sched.beta),
                                       opt.decay_bias, ws,
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
          const Scalar decay = static_cast<Scalar>(1.0 - lr * beta);
          const Scalar bias_decay = opt.decay_bias ? decay : Scalar(1);
          if (plan.full()) {
            SampleMap<Scalar> x(train.x, layout.d_in(), train.n);
            SampleMap<Scalar> y(train.y, layout.d_out(), train.n);
            forward<Scalar, Act>(layout, params, x, ws);
            sgd_update<Scalar, Act>(layout, params, x, y, static_cast<Scalar>(lr), decay,
                                    bias_decay, ws);
          } else {
            gather_batch(layout, plan, train, stream, step, ws);
            const auto x = ws.x_batch.leftCols(batch);
            const auto y = ws.y_batch.leftCols(batch);
            forward<Scalar, Act>(layout, params, x, ws);
            sgd_update<Scalar, Act>(layout, params, x, y, static_cast<Scalar>(lr), decay,
                                    bias_decay, ws);
          }
          if (temperature > 0.0) {
            const double sigma = std::sqrt(2.0 * lr * temperature);
            DrawStream noise(plan.seed, stream, static_cast<std::uint64_t>(step), Purpose::kLangevin);
            for (Index i = 0; i < P; ++i) params[i] += static_cast<Scalar>(sigma * noise.normal());
          }
          ++step;
          if (!Eigen::Map<const Vec<Scalar>>(params, P).allFinite()) {
            ens.diverged[m] = 1;
            if (rec.diverged_at) rec.diverged_at[m] = r + 1;
            break;
          }
          while (row < rec.n_records && rec.at[row] == r + 1) record(row++);
        }
        ens.steps[m] = step;
      });
}

// Dispatch on the activation at run time.
template <class Scalar>
void train(const Layout& layout, const EnsembleRef<Scalar>& ens, const DataRef<Scalar>& train,
           const DataRef<Scalar>& test, const Schedule& sched, const RecordPlan& rec,
           const TrainOptions& opt) {
  if (layout.activation == Activation::kTanh)
    train_members<Scalar, Activation::kTanh>(layout, ens, train, test, sched, rec, opt);
  else
    train_members<Scalar, Activation::kLinear>(layout, ens, train, test, sched, rec, opt);
}

}  // namespace grokescape
