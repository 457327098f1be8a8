// Escape detection inside the training loop (physics.md sections 5 and 6).
//
// Every ensemble member is a slot that runs trajectories. A trajectory starts from the
// slot's state, takes SGD steps, and every `check_every` steps of its age the criterion is
// evaluated. It has escaped at the first check age t_e at which the criterion holds and
// keeps holding at every check up to t_e + hold; the slot stops there (or, with refill,
// restarts from its initial state as a new trajectory with a new random stream). A slot
// runs at most `budget` steps in a run; the trajectory in progress when the budget ends is
// censored. A trajectory whose parameters become non-finite is flagged as diverged.
// The run is the driver (driver.hpp) with EscapePolicy, so its steps are training's steps.
//
// Trajectory ids are the random streams: trajectory k >= 1 of slot m gets id
// refill_base + (k - 1) M + m, so results do not depend on thread count or chunking.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "grokescape/criteria.hpp"
#include "grokescape/driver.hpp"

namespace grokescape {

// Per-slot state that persists across calls of a run (owned by Python), and how a slot
// goes on after a trajectory ends.
template <class S>
struct Slots {
  std::uint8_t* active = nullptr;         // slot still running a trajectory
  std::int64_t* start_step = nullptr;     // RNG step at which the current trajectory began
  std::int64_t* hold_since = nullptr;     // age at which the criterion began to hold, or -1
  std::int64_t* trajectories = nullptr;   // trajectories started in this slot (>= 1)
  const S* init_params = nullptr;         // (M, P): where a refilled trajectory starts
  bool refill = false;
  std::uint64_t refill_base = 0;          // id of the first refilled trajectory of slot 0
};

// One finished trajectory (escaped or diverged).
struct EscapeEvent {
  Index slot;
  std::uint64_t trajectory;
  std::int64_t escape_age;  // first step of the holding run (escape) or divergence step
  std::int64_t detect_age;  // step at which the slot stopped this trajectory
  bool diverged;
  std::int64_t order;  // index of the event within its slot in this call
};

// Checks the criterion every check_every steps of a trajectory's age and ends trajectories
// that escaped or diverged (driver.hpp describes the policy interface).
template <class S, Activation Act>
struct EscapePolicy {
  const Layout& layout;
  const EnsembleRef<S>& ens;
  const RunData<S>& data;
  const Criterion& crit;
  const Slots<S>& slots;
  std::mutex& events_mutex;
  std::vector<std::unique_ptr<std::vector<EscapeEvent>>>& events;  // one vector per thread

  struct Extra {
    std::int64_t start, hold_since, started, order;
    double threshold;
    bool active;  // false once the trajectory ended without refill
  };
  struct Thread {
    std::vector<EscapeEvent>* events;
    CheckScratch checks;
    std::vector<double> amplitude;  // mode amplitudes of a lane group's members (at_stop)
  };

  Thread make_thread(int group) {
    auto own = std::make_unique<std::vector<EscapeEvent>>();
    std::lock_guard<std::mutex> lock(events_mutex);
    events.push_back(std::move(own));
    return Thread{events.back().get(), CheckScratch(layout, group),
                  std::vector<double>(static_cast<std::size_t>(group), 0.0)};
  }

  bool admit(Index m) const { return slots.active[m] != 0; }

  template <class M, class Scratch>
  void enter(M& mb, Thread&, Scratch&) {
    mb.x.start = slots.start_step[mb.m];
    mb.x.hold_since = slots.hold_since[mb.m];
    mb.x.started = slots.trajectories[mb.m];
    mb.x.order = 0;
    mb.x.threshold = threshold_score(crit.kind, crit.values[mb.m]);
    mb.x.active = true;
  }

  template <class M>
  std::int64_t next_stop(const M& mb, std::int64_t r) const {
    const std::int64_t age = mb.step - mb.x.start;
    return r + (age / crit.check_every + 1) * crit.check_every - age;
  }

  template <class M>
  bool due(const M& mb) const {
    return (mb.step - mb.x.start) % crit.check_every == 0;
  }

  // Mode amplitudes of all lanes at once where any member is due: one pass over the group's
  // parameters instead of a strided copy and a dependent scalar chain per member.
  template <class Scratch>
  bool lane_amplitudes(const Scratch& st) const {
    return st.lanes_layout() && crit.kind == CriterionKind::kModeAmplitude;
  }

  template <class M, class Scratch>
  void at_stop(M* members, int n, std::int64_t, Thread& th, Scratch& st) {
    if (!lane_amplitudes(st)) return;
    bool any = false;
    for (int q = 0; q < n; ++q) any = any || due(members[q]);
    if (any)
      mode_amplitudes_lanes(layout, st.local.data(), st.group,
                            data.modes.in_vec + crit.index * layout.d_in(),
                            data.modes.out_vec + crit.index * layout.d_out(), th.checks,
                            th.amplitude.data());
  }

  // Ends the member's trajectory: with refill a new one starts from the slot's initial
  // state, else the slot stops.
  template <class M>
  Next finish(M& mb, Thread& th, std::int64_t escape_age, std::int64_t age, bool diverged) {
    th.events->push_back({mb.m, mb.stream, escape_age, age, diverged, mb.x.order++});
    if (!slots.refill) {
      if (diverged) ens.diverged[mb.m] = 1;
      mb.x.active = false;
      return Next::kLeave;
    }
    mb.stream = slots.refill_base + static_cast<std::uint64_t>((mb.x.started - 1) * ens.n_members + mb.m);
    ++mb.x.started;
    const S* init = slots.init_params + mb.m * layout.n_params;
    for (Index i = 0; i < layout.n_params; ++i) mb.params[i * mb.stride] = init[i];
    mb.order = SampleOrder{};
    mb.step = 0;
    mb.x.start = 0;
    mb.x.hold_since = -1;
    return Next::kRestart;
  }

  template <class M, class Scratch>
  Next act(M& mb, int q, bool finite, std::int64_t, Thread& th, Scratch& st) {
    const std::int64_t age = mb.step - mb.x.start;
    if (!finite) return finish(mb, th, age, age, true);
    if (!due(mb)) return Next::kContinue;
    const bool holds =
        lane_amplitudes(st)
            ? th.amplitude[q] > mb.x.threshold
            : criterion_score<S, Act>(crit.kind, crit.index, layout, st.contiguous(mb, layout.n_params),
                                      data.test, data.modes, st.eval, th.checks) > mb.x.threshold;
    if (!holds) {
      mb.x.hold_since = -1;
      return Next::kContinue;
    }
    if (mb.x.hold_since < 0) mb.x.hold_since = age;
    if (age - mb.x.hold_since >= crit.hold) return finish(mb, th, mb.x.hold_since, age, false);
    return Next::kContinue;
  }

  template <class M>
  void save(const M& mb) const {
    slots.start_step[mb.m] = mb.x.start;
    slots.hold_since[mb.m] = mb.x.hold_since;
    slots.trajectories[mb.m] = mb.x.started;
    slots.active[mb.m] = mb.x.active ? 1 : 0;
  }
};

// Advances every active slot among members [span.member_begin, span.member_end) by
// span.n_steps steps; returns the trajectories that ended, by slot and in order.
template <class S>
std::vector<EscapeEvent> run_until_escape(const Layout& layout, const EnsembleRef<S>& ens,
                                          const RunData<S>& data, const Schedule& sched,
                                          const Criterion& crit, const Slots<S>& slots,
                                          const RunOptions& opt, const Span& span) {
  std::mutex events_mutex;
  std::vector<std::unique_ptr<std::vector<EscapeEvent>>> events;
  with_kernel_shape(layout, opt.kernels, [&](auto act, auto shape) {
    constexpr Activation Act = decltype(act)::value;
    EscapePolicy<S, Act> policy{layout, ens, data, crit, slots, events_mutex, events};
    drive<S, Act, decltype(shape)>(layout, ens, data, sched, opt, span, policy);
  });
  std::vector<EscapeEvent> merged;
  for (const auto& ev : events) merged.insert(merged.end(), ev->begin(), ev->end());
  std::sort(merged.begin(), merged.end(), [](const EscapeEvent& a, const EscapeEvent& b) {
    return a.slot != b.slot ? a.slot < b.slot : a.order < b.order;
  });
  return merged;
}

}  // namespace grokescape
