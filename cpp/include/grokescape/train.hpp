// Training: the driver (driver.hpp) with a policy that records observables at given run
// steps and takes diverged members out.
//
// A run is a piecewise-constant schedule of stages (lr, beta, temperature per member);
// Python advances it in spans of steps and members so that Ctrl-C and progress bars work
// between calls.
#pragma once

#include <cstdint>
#include <limits>

#include "grokescape/driver.hpp"
#include "grokescape/records.hpp"

namespace grokescape {

// Records observables at the run steps of a RecordPlan; a member whose parameters become
// non-finite is flagged as diverged (skipped by later runs) and leaves its group.
template <class S, Activation Act>
struct TrainPolicy {
  const Layout& layout;
  const EnsembleRef<S>& ens;
  const RunData<S>& data;
  const Schedule& sched;
  const RecordPlan& rec;
  bool decay_bias;
  std::int64_t first;  // run step at which this call starts

  struct Extra {
    Index row;  // next record row
  };
  struct Thread {};
  Thread make_thread(int) const { return {}; }

  bool admit(Index m) const { return !ens.diverged[m]; }

  template <class M, class Scratch>
  void record(M& mb, Scratch& st) {
    const double beta = sched.beta[mb.stage * ens.n_members + mb.m];
    evaluate_member<S, Act>(layout, st.contiguous(mb, layout.n_params), data.train, data.test,
                            rec.modes, beta, decay_bias, st.eval,
                            rec.slot(layout, mb.x.row, mb.m, ens.n_members));
    ++mb.x.row;
  }

  template <class M, class Scratch>
  void enter(M& mb, Thread&, Scratch& st) {
    Index row = 0;
    while (row < rec.n_records && rec.at[row] < first) ++row;
    if (first > 0)  // written by the last call
      while (row < rec.n_records && rec.at[row] == first) ++row;
    mb.x.row = row;
    while (mb.x.row < rec.n_records && rec.at[mb.x.row] == first) record(mb, st);
  }

  template <class M>
  std::int64_t next_stop(const M& mb, std::int64_t) const {
    return mb.x.row < rec.n_records ? rec.at[mb.x.row] : std::numeric_limits<std::int64_t>::max();
  }

  template <class M, class Scratch>
  void at_stop(M*, int, std::int64_t, Thread&, Scratch&) {}

  template <class M, class Scratch>
  Next act(M& mb, int, bool finite, std::int64_t r, Thread&, Scratch& st) {
    if (!finite) {
      ens.diverged[mb.m] = 1;
      if (rec.diverged_at) rec.diverged_at[mb.m] = r;
      return Next::kLeave;
    }
    while (mb.x.row < rec.n_records && rec.at[mb.x.row] == r) record(mb, st);
    return Next::kContinue;
  }

  template <class M>
  void save(const M&) const {}
};

// Advances members [span.member_begin, span.member_end) from run step span.first by
// span.n_steps steps of the schedule, recording where the plan says.
template <class S>
void train(const Layout& layout, const EnsembleRef<S>& ens, const RunData<S>& data,
           const Schedule& sched, const RecordPlan& rec, const RunOptions& opt, const Span& span) {
  with_kernel_shape(layout, opt.kernels, [&](auto act, auto shape) {
    constexpr Activation Act = decltype(act)::value;
    TrainPolicy<S, Act> policy{layout, ens, data, sched, rec, opt.decay_bias, span.first};
    drive<S, Act, decltype(shape)>(layout, ens, data, sched, opt, span, policy);
  });
}

}  // namespace grokescape
