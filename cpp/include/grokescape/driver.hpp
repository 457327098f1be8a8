// The one member driver: steps groups of member states (member_state.hpp) through the SGD
// kernels, in parallel over groups, members outer and steps inner.
//
// A thread takes a group of consecutive members (one per vector lane for the lane kernels),
// copies their states into thread-local buffers and advances them together in segments:
// runs of steps in which no member changes stage, and the policy wants nothing, so that a
// step only samples a batch, steps, adds Langevin noise and checks finiteness. Where a
// segment ends the policy acts on each member (records, escape criteria) and may let it
// continue, restart it in place, or take it out of the group. Training (train.hpp) and
// escape runs (escape.hpp) are such policies; because both go through this one loop, a
// trajectory of an escape run replays training bit for bit.
//
// Every random draw is addressed by (seed, stream of the member, absolute step of the
// member, purpose) and the kernel depends only on the network and the batch, so neither
// the thread count, the grouping of members nor the split of a run into calls (spans of
// steps and of members) changes a result.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "grokescape/kernels/lane_batch_step.hpp"
#include "grokescape/kernels/lanes_step.hpp"
#include "grokescape/kernels/moment_step.hpp"
#include "grokescape/kernels/sgd_step.hpp"
#include "grokescape/layout.hpp"
#include "grokescape/member_state.hpp"
#include "grokescape/minibatch.hpp"
#include "grokescape/network.hpp"
#include "grokescape/normal.hpp"
#include "grokescape/observables.hpp"
#include "grokescape/parallel.hpp"
#include "grokescape/philox.hpp"

namespace grokescape {

// The data of a run: training set (batches are drawn from it), test set, and the modes
// that observables and criteria project on.
template <class S>
struct RunData {
  DataRef<S> train;
  DataRef<S> test;
  ModeSpec modes;
};

// Piecewise-constant hyperparameters: stage k covers run steps [stage_end[k-1], stage_end[k])
// (the last stage runs on). lr, beta and temperature are (n_stages, M) arrays.
struct Schedule {
  Index n_stages = 1;
  const std::int64_t* stage_end = nullptr;
  const double* lr = nullptr;
  const double* beta = nullptr;
  const double* temperature = nullptr;
};

// Which kernels may run: for tests and benchmarks, both leave the arithmetic's result the
// same to rounding.
struct KernelOptions {
  bool generic = false;          // run-time sizes even where a compiled shape matches
  bool moment_gradient = true;   // batch moments where they pay (false: per-sample kernels)
};

struct RunOptions {
  BatchPlan batches;
  bool decay_bias = true;
  int n_threads = 1;
  KernelOptions kernels;
};

// The part of a run one call does: members [member_begin, member_end) advance from run step
// `first` (steps done by earlier calls) by n_steps. With a member list, the members are
// members[member_begin .. member_end) instead, grouped in that order (splitting gathers its
// running replicas so that lane groups stay full).
struct Span {
  std::int64_t first = 0;
  std::int64_t n_steps = 0;
  Index member_begin = 0;
  Index member_end = 0;
  const Index* members = nullptr;
};

// Batches of at least this many samples use the sample-rows kernel, smaller ones the
// one-sample-at-a-time kernel (see kernels/sgd_step.hpp).
inline constexpr Index kRowBatchMin = 8;

// Consecutive members a thread takes at a time: neighbouring members' states share cache
// lines, so handing them to different threads at once costs coherence traffic.
// (With member groups, kMemberGrain / group groups at a time.)
inline constexpr Index kMemberGrain = 8;

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
// "Small" (lane_copies_fit_l1) depends on the vector width, so the choice differs between
// instruction sets; build_info()["vector_bytes"] tells which width the core has.
enum class StepKernel : int { kRows, kSamples, kLanes, kLaneBatches, kMoments };

template <class S, Activation Act, class Shape>
inline StepKernel choose_step_kernel(const Layout& layout, const BatchPlan& plan, Index batch,
                                     bool moment_gradient) {
  if (Act == Activation::kLinear && batch == 1) return StepKernel::kLanes;
  if (Act == Activation::kLinear && moment_gradient &&
      kernels::MomentStep<S, Shape>::pays(layout, batch))
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

// A member while it runs in a group: its state (member_state.hpp) with the parameters in the
// thread's buffer, and what the policy keeps per member (Extra).
template <class S, class Extra>
struct Running {
  Index m;          // index in the ensemble
  S* params;        // parameter i at params[i * stride]
  Index stride;     // 1, or the group size in the lane layouts
  std::uint64_t stream;
  SampleOrder order;
  std::int64_t step;
  Index stage;      // current stage of the schedule
  // The step parameters and noise scale of stage sp_stage, worked out once per stage (a
  // policy that acts every step would otherwise pay for them every step).
  kernels::StepParams<S> sp;
  double sigma;
  Index sp_stage;
  Extra x;
};

// What the policy decides for a member where a segment ends.
enum class Next { kContinue, kRestart, kLeave };

// Per-thread scratch of the driver: the kernel's buffers, a batch sampler per member of a
// group, and the running members' parameters.
template <class S, Activation Act, class Shape>
struct GroupScratch {
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

  GroupScratch(const Layout& layout, const BatchPlan& plan, Index n_train, StepKernel step_kernel,
               Index batch_size, Index eval_capacity)
      : kernel(step_kernel), group(member_group_size<S, Act, Shape>(step_kernel, batch_size)),
        batch(batch_size), samplers(static_cast<std::size_t>(group), BatchSampler(plan, n_train)),
        noise(static_cast<std::size_t>(layout.n_params * kNormalLanes)),
        local_stride(kernels::padded(layout.n_params)),
        local(static_cast<std::size_t>(group * local_stride), S(0)),
        member(static_cast<std::size_t>(layout.n_params), S(0)), eval(layout, eval_capacity) {
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
    }
  }

  bool lanes_layout() const {
    return kernel == StepKernel::kLanes || kernel == StepKernel::kLaneBatches || kernel == StepKernel::kMoments;
  }
  // Parameter i of group member q is at member_params(q)[i * member_stride()].
  S* member_params(int q) { return local.data() + (lanes_layout() ? q : q * local_stride); }
  Index member_stride() const { return lanes_layout() ? group : 1; }

  // A running member's parameters as one contiguous vector (copied out of the lanes).
  template <class M>
  const S* contiguous(const M& mb, Index n_params) {
    if (mb.stride == 1) return mb.params;
    for (Index i = 0; i < n_params; ++i) member[i] = mb.params[i * mb.stride];
    return member.data();
  }

  // One SGD step of group members 0..count-1 (member q: its parameters at member_params(q),
  // RNG stream streams[q], sample order orders[q], absolute step steps[q], hyperparameters
  // sp[q]). x_full / y_full: the data set as rows (to_rows) for full-batch steps of the row
  // kernel. In the lane layouts finite[q] tells whether member q's parameters are all finite;
  // the other kernels leave it to the caller.
  void step(const Layout& layout, const BatchPlan& plan, const DataRef<S>& train,
            const S* x_full, const S* y_full, const std::uint64_t* streams,
            const SampleOrder* orders, const std::int64_t* steps, const kernels::StepParams<S>* sp,
            int count, bool* finite) {
    auto batch_of = [&](int q) { return samplers[q].indices(streams[q], orders[q], steps[q]); };
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

  // The step parameters and noise scale of one member: decay = 1 - lr beta, sigma =
  // sqrt(2 lr T). Not inlined, like run_segment, so that every policy's driver computes them
  // with the same instructions (a compiler may fuse a * b + c differently in each inlined
  // copy, which changes the last bit).
  __attribute__((noinline)) static void step_params(double lr, double beta, double temperature,
                                                    bool decay_bias, kernels::StepParams<S>& sp,
                                                    double& sigma) {
    const S decay = static_cast<S>(1.0 - lr * beta);
    sp = kernels::StepParams<S>{static_cast<S>(lr), decay, decay_bias ? decay : S(1)};
    sigma = temperature > 0.0 ? std::sqrt(2.0 * lr * temperature) : 0.0;
  }

  // Up to n steps of group members 0..count-1: sample, step, add Langevin noise (noisy: some
  // sigma[q] > 0), check finiteness; steps[q] advance with each step. Stops early after a
  // step that left a member's parameters non-finite (finite[q] false). Returns the steps
  // taken. The one copy of the step loop: training, escape runs and every later policy run
  // these instructions, so a trajectory is the same bits whichever policy drives it.
  __attribute__((noinline)) std::int64_t run_segment(
      const Layout& layout, const BatchPlan& plan, const DataRef<S>& train, const S* x_full,
      const S* y_full, const std::uint64_t* streams, const SampleOrder* orders, std::int64_t* steps,
      const kernels::StepParams<S>* sp, const double* sigma, bool noisy, int count, bool* finite,
      std::int64_t n) {
    const Index P = layout.n_params;
    std::int64_t done = 0;
    while (done < n) {
      step(layout, plan, train, x_full, y_full, streams, orders, steps, sp, count, finite);
      const bool noise_added = noisy && add_noise(plan, streams, steps, sigma, count, P);
      if (noise_added || !lanes_layout()) check_finite(P, count, finite);
      ++done;
      bool all_finite = true;
      for (int q = 0; q < count; ++q) {
        ++steps[q];
        all_finite = all_finite && finite[q];
      }
      if (!all_finite) break;
    }
    return done;
  }

  // Group member q (of n_active) leaves the group: the last member moves into its place
  // (parameters, sampler, the driver's record M of it) and the freed parameters are cleared
  // (an idle lane stays zero).
  template <class M>
  void leave_group(M* members, int q, int n_active, Index n_params) {
    M& mb = members[q];
    M& back = members[n_active - 1];
    if (q != n_active - 1) {
      for (Index i = 0; i < n_params; ++i) mb.params[i * mb.stride] = back.params[i * back.stride];
      S* own = mb.params;
      mb = back;
      mb.params = own;
      std::swap(samplers[q], samplers[n_active - 1]);
    }
    for (Index i = 0; i < n_params; ++i) back.params[i * back.stride] = S(0);
  }
};

// The driver. Policy (see train.hpp and escape.hpp for the two there are):
//   using Extra;                        per-member data kept while a member runs
//   using Thread;                       per-thread state; Thread make_thread(int group) const
//   bool admit(Index m) const           whether member m takes part in this call
//   void enter(Member&, Thread&, Scratch&)            set up Extra (may record)
//   int64 next_stop(const Member&, int64 r) const     first run step > r where the policy
//                                                     acts on the member (or INT64_MAX)
//   void at_stop(Member*, int n, int64 r, Thread&, Scratch&)   group-level work before act
//   Next act(Member&, int q, bool finite, int64 r, Thread&, Scratch&)
//                                   the member's parameters at run step r are finite or not;
//                                   kRestart: the policy replaced the member's state
//   void save(const Member&)        write Extra back (the driver writes the state)
template <class S, Activation Act, class Shape, class Policy>
void drive(const Layout& layout, const EnsembleRef<S>& ens, const RunData<S>& data,
           const Schedule& sched, const RunOptions& opt, const Span& span, Policy& policy) {
  using Member = Running<S, typename Policy::Extra>;
  using Scratch = GroupScratch<S, Act, Shape>;
  const Index P = layout.n_params;
  const BatchPlan& plan = opt.batches;
  const Index batch = plan.full() ? data.train.n : plan.batch_size;
  const StepKernel kernel =
      choose_step_kernel<S, Act, Shape>(layout, plan, batch, opt.kernels.moment_gradient);
  const Index eval_capacity = std::max<Index>(1, std::min<Index>(256, std::max(data.train.n, data.test.n)));
  kernels::AlignedVector<S> x_full, y_full;
  if (kernel == StepKernel::kRows && plan.full()) {
    x_full = to_rows(data.train.x, data.train.n, layout.d_in(), kernels::padded(batch));
    y_full = to_rows(data.train.y, data.train.n, layout.d_out(), kernels::padded(batch));
  }
  const std::int64_t first = span.first, last = span.first + span.n_steps;
  const Index begin = span.member_begin, end = span.member_end;
  const Index n_members = ens.n_members;

  const int group = member_group_size<S, Act, Shape>(kernel, batch);
  const Index n_groups = (end - begin + group - 1) / group;
  constexpr int kMax = kMaxMembers<S, Act, Shape>;

  auto hyper = [&](const Member& mb, const double* values) {
    return values[mb.stage * n_members + mb.m];
  };
  auto save = [&](const Member& mb) {
    for (Index i = 0; i < P; ++i) ens.params[mb.m * P + i] = mb.params[i * mb.stride];
    ens.steps[mb.m] = mb.step;
    ens.streams[mb.m] = mb.stream;
    ens.set_order(mb.m, mb.order);
    policy.save(mb);
  };

  parallel_members(
      n_groups, opt.n_threads, std::max<Index>(1, kMemberGrain / group),
      [&] {
        return std::make_pair(Scratch(layout, plan, data.train.n, kernel, batch, eval_capacity),
                              policy.make_thread(group));
      },
      [&](auto& state, Index g) {
        Scratch& st = state.first;
        auto& thread = state.second;
        // Work on thread-local copies of the members' states (see kMemberGrain).
        Member members[kMax];
        int n_active = 0;
        if (st.lanes_layout()) std::fill(st.local.begin(), st.local.end(), S(0));  // idle lanes
        for (Index i = begin + g * group; i < std::min(end, begin + (g + 1) * group); ++i) {
          const Index m = span.members ? span.members[i] : i;
          if (!policy.admit(m)) continue;
          Member& mb = members[n_active];
          mb.m = m;
          mb.params = st.member_params(n_active);
          mb.stride = st.member_stride();
          for (Index i = 0; i < P; ++i) mb.params[i * mb.stride] = ens.params[m * P + i];
          mb.stream = ens.streams[m];
          mb.order = ens.order(m);
          mb.step = ens.steps[m];
          mb.stage = 0;
          while (mb.stage + 1 < sched.n_stages && sched.stage_end[mb.stage] <= first) ++mb.stage;
          mb.sp_stage = -1;
          st.samplers[n_active].forget();
          ++n_active;
        }
        for (int q = 0; q < n_active; ++q) policy.enter(members[q], thread, st);

        kernels::StepParams<S> sp[kMax];
        bool finite[kMax];
        std::fill_n(finite, kMax, true);
        Next next[kMax];
        double sigma[kMax];
        std::uint64_t streams[kMax];
        SampleOrder orders[kMax];
        std::int64_t steps[kMax];
        for (std::int64_t r = first; r < last && n_active > 0;) {
          // A segment: run steps [r, until) in which no member changes stage and the policy
          // wants nothing, so the step parameters and noise scales are worked out once here.
          std::int64_t until = last;
          bool noisy = false;
          for (int q = 0; q < n_active; ++q) {
            Member& mb = members[q];
            while (mb.stage + 1 < sched.n_stages && sched.stage_end[mb.stage] <= r) ++mb.stage;
            if (mb.stage + 1 < sched.n_stages) until = std::min(until, sched.stage_end[mb.stage]);
            until = std::min(until, policy.next_stop(mb, r));
            if (mb.sp_stage != mb.stage) {
              Scratch::step_params(hyper(mb, sched.lr), hyper(mb, sched.beta),
                                   hyper(mb, sched.temperature), opt.decay_bias, mb.sp, mb.sigma);
              mb.sp_stage = mb.stage;
            }
            sp[q] = mb.sp;
            sigma[q] = mb.sigma;
            noisy = noisy || sigma[q] > 0.0;
            streams[q] = mb.stream;
            orders[q] = mb.order;
            steps[q] = mb.step;
          }
          r += st.run_segment(layout, plan, data.train, x_full.data(), y_full.data(), streams, orders,
                              steps, sp, sigma, noisy, n_active, finite, until - r);
          for (int q = 0; q < n_active; ++q) members[q].step = steps[q];
          // The segment ended at run step r: the policy acts on every member, then the
          // members it takes out leave the group.
          policy.at_stop(members, n_active, r, thread, st);
          for (int q = 0; q < n_active; ++q) {
            next[q] = policy.act(members[q], q, finite[q], r, thread, st);
            if (next[q] == Next::kRestart) st.samplers[q].forget();
          }
          for (int q = n_active - 1; q >= 0; --q) {
            if (next[q] != Next::kLeave) continue;
            save(members[q]);
            st.leave_group(members, q, n_active, P);
            next[q] = next[n_active - 1];
            --n_active;
          }
        }
        for (int q = 0; q < n_active; ++q) save(members[q]);
      });
}

// Calls f(activation, shape) with the layout's activation and the first compile-time shape
// that matches the layout (or run-time sizes), as integral constants / shape tags.
template <class F>
decltype(auto) with_kernel_shape(const Layout& layout, const KernelOptions& kernels, F&& f) {
  return with_activation(layout, [&](auto act) -> decltype(auto) {
    constexpr Activation Act = decltype(act)::value;
    return kernels::with_compiled_shape<Act>(layout, kernels.generic, [&](auto shape) -> decltype(auto) {
      return f(act, shape);
    });
  });
}

// The name of the step kernel the driver runs for this network and batch (batch_size 0:
// full batch of n_train samples).
template <class S>
const char* step_kernel_of(const Layout& layout, Index batch_size, Index n_train,
                           const KernelOptions& kernels) {
  const BatchPlan plan{batch_size, Sampling::kEpoch, 0};
  const Index batch = plan.full() ? n_train : batch_size;
  return with_kernel_shape(layout, kernels, [&](auto act, auto shape) {
    constexpr Activation Act = decltype(act)::value;
    return step_kernel_name(
        choose_step_kernel<S, Act, decltype(shape)>(layout, plan, batch, kernels.moment_gradient));
  });
}

}  // namespace grokescape
