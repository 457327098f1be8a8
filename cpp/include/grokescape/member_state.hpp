// A member's complete dynamical state, and the ensemble's states as the core updates them.
//
// SGD with epoch sampling is a Markov chain on (parameters, step, the epoch's sample order);
// with Langevin noise and with-replacement batches every further draw comes from the
// member's random stream, addressed by (seed, stream, step, purpose). So a member's state is
//
//   parameters, step (absolute SGD steps taken), stream (its random stream), sample order
//   (whose permutation the current epoch uses), diverged flag,
//
// and the epoch's permutation and the position in it need not be stored: the permutation
// is a pure function of (seed, order stream, epoch) and the position is step mod the
// batches per epoch. The sample order is the member's own stream except after a branch:
// a member cloned from another mid-epoch and continued with a fresh stream must finish the
// epoch its parent started (the samples left in that epoch are part of the Markov state),
// so it keeps the parent's order stream for that one epoch. Copying these values restores a
// member exactly; a run continued from a copy is bit-identical to the run it was taken from.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "grokescape/layout.hpp"

namespace grokescape {

// Which stream the permutation of an epoch comes from: `stream` for epoch `epoch`, the
// member's own stream for every other epoch (epoch -1: always its own).
struct SampleOrder {
  std::uint64_t stream = 0;
  std::int64_t epoch = -1;

  std::uint64_t stream_for(std::int64_t e, std::uint64_t own) const {
    return e == epoch ? stream : own;
  }
};

// One member's state as a value: what snapshot, restore and clone copy.
template <class S>
struct MemberState {
  std::vector<S> params;
  std::int64_t step = 0;
  std::uint64_t stream = 0;
  SampleOrder order;
  bool diverged = false;
};

// The ensemble's states, owned by Python as one array per field; the core reads and
// updates them in place. Member m's parameters are row m of the (M, P) params array.
template <class S>
struct EnsembleRef {
  S* params = nullptr;                  // (M, P)
  Index n_members = 0;
  Index n_params = 0;
  std::int64_t* steps = nullptr;        // absolute SGD steps taken by each member
  std::uint64_t* streams = nullptr;     // random stream (trajectory id) of each member
  std::uint64_t* order_streams = nullptr;  // SampleOrder::stream of each member
  std::int64_t* order_epochs = nullptr;    // SampleOrder::epoch of each member
  std::uint8_t* diverged = nullptr;     // 1 once a member's parameters became non-finite

  SampleOrder order(Index m) const { return {order_streams[m], order_epochs[m]}; }
  void set_order(Index m, const SampleOrder& o) const {
    order_streams[m] = o.stream;
    order_epochs[m] = o.epoch;
  }

  MemberState<S> get(Index m) const {
    MemberState<S> s;
    s.params.assign(params + m * n_params, params + (m + 1) * n_params);
    s.step = steps[m];
    s.stream = streams[m];
    s.order = order(m);
    s.diverged = diverged[m] != 0;
    return s;
  }

  void set(Index m, const MemberState<S>& s) const {
    std::copy(s.params.begin(), s.params.end(), params + m * n_params);
    steps[m] = s.step;
    streams[m] = s.stream;
    set_order(m, s.order);
    diverged[m] = s.diverged ? 1 : 0;
  }
};

// The state `s` continued with a fresh random stream: the noise and every later epoch come
// from `stream`, and the epoch in progress (steps per epoch: batches_per_epoch) finishes in
// the order it began. With batches_per_epoch 0 (full batch, or with-replacement batches)
// there is no epoch order to keep.
template <class S>
MemberState<S> branched(MemberState<S> s, std::uint64_t stream, Index batches_per_epoch) {
  if (batches_per_epoch > 0) {
    const std::int64_t epoch = s.step / batches_per_epoch;
    s.order = {s.order.stream_for(epoch, s.stream), epoch};
  } else {
    s.order = {};
  }
  s.stream = stream;
  return s;
}

// Member to[i] of `target` takes the state of member from[i] of `source` (i < n), continued
// with stream new_streams[i] when new_streams is given (branched). The states pass through
// values, so a member may be copied onto a member that is itself copied from.
template <class S>
void copy_members(const EnsembleRef<S>& source, const std::int64_t* from, const EnsembleRef<S>& target,
                  const std::int64_t* to, Index n, const std::uint64_t* new_streams,
                  Index batches_per_epoch) {
  for (Index i = 0; i < n; ++i) {
    if (from[i] < 0 || from[i] >= source.n_members)
      throw std::invalid_argument("source member " + std::to_string(from[i]) + " out of range");
    if (to[i] < 0 || to[i] >= target.n_members)
      throw std::invalid_argument("target member " + std::to_string(to[i]) + " out of range");
  }
  std::vector<MemberState<S>> states;
  states.reserve(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    states.push_back(source.get(from[i]));
    if (new_streams) states.back() = branched(std::move(states.back()), new_streams[i], batches_per_epoch);
  }
  for (Index i = 0; i < n; ++i) target.set(to[i], states[static_cast<std::size_t>(i)]);
}

}  // namespace grokescape
