// Which training samples a member's SGD step uses (physics.md section 2).
//
//  - full batch: every sample, in their stored order (no randomness at all);
//  - epoch sampling: epoch e = step / batches_per_epoch draws a fresh permutation of the
//    n samples from the stream (seed, member, e, kPermutation) and cuts it into
//    floor(n / B) batches; the remainder is dropped (a branched member finishes its
//    parent's epoch: SampleOrder in member_state.hpp);
//  - with replacement: B indices drawn uniformly from (seed, member, step, kReplacement).
// Addressing by absolute step makes any chunking of a run give the same batches.
#pragma once

#include <cstdint>
#include <numeric>
#include <vector>

#include "grokescape/layout.hpp"
#include "grokescape/member_state.hpp"
#include "grokescape/philox.hpp"

namespace grokescape {

enum class Sampling : int { kEpoch = 0, kReplacement = 1 };

struct BatchPlan {
  Index batch_size = 0;  // 0: full batch
  Sampling sampling = Sampling::kEpoch;
  std::uint64_t seed = 0;

  bool full() const { return batch_size == 0; }
  Index batches_per_epoch(Index n) const { return full() ? 1 : n / batch_size; }
};

// Fisher-Yates shuffle of 0..n-1 with draws from one counter-addressed stream: position
// i = n-1, ..., 1 swaps with a uniform j in [0, i] (DrawStream::below).
inline void epoch_permutation(std::uint64_t seed, std::uint64_t stream, std::uint64_t epoch,
                              std::vector<Index>& perm) {
  std::iota(perm.begin(), perm.end(), Index{0});
  DrawStream draws(seed, stream, epoch, Purpose::kPermutation);
  const Index n = static_cast<Index>(perm.size());
  if (n < 2) return;
  if (n > (Index{1} << 32)) {  // 64-bit draws
    for (Index i = n - 1; i > 0; --i) {
      const Index j = static_cast<Index>(draws.below(static_cast<std::uint64_t>(i + 1)));
      std::swap(perm[i], perm[j]);
    }
    return;
  }
  // The same draws as draws.below(i + 1) for i = n-1 .. 1 (32-bit Lemire with rejection),
  // read from a buffer filled in bulk. Fast path, two passes: all swap targets from the
  // buffer at once (vectorises), then the swaps. It is exact when no draw can be rejected,
  // i.e. no low word falls below its range (probability about n^2 / 2^33: 3e-5 for n = 512);
  // otherwise the sequential loop below, where a rejection takes the next draw of the stream.
  thread_local std::vector<std::uint32_t> buffer, target;
  const std::size_t count = static_cast<std::size_t>(n - 1);
  buffer.resize(count);
  target.resize(count);
  draws.fill_u32(buffer.data(), count);
  {
    std::uint32_t maybe_rejected = 0;
    const std::uint32_t* __restrict u = buffer.data();
    std::uint32_t* __restrict j_of = target.data();
    for (std::size_t t = 0; t < count; ++t) {
      const std::uint32_t range = static_cast<std::uint32_t>(n) - static_cast<std::uint32_t>(t);
      const std::uint64_t m = static_cast<std::uint64_t>(u[t]) * range;
      j_of[t] = static_cast<std::uint32_t>(m >> 32);
      maybe_rejected |= static_cast<std::uint32_t>(static_cast<std::uint32_t>(m) < range);
    }
    if (!maybe_rejected) {
      Index* p = perm.data();
      for (std::size_t t = 0; t < count; ++t) {
        const Index i = n - 1 - static_cast<Index>(t), j = j_of[t];
        const Index v = p[i];
        p[i] = p[j];
        p[j] = v;
      }
      return;
    }
  }
  std::size_t next = 0;
  auto draw = [&]() { return next < buffer.size() ? buffer[next++] : draws.next_u32(); };
  for (Index i = n - 1; i > 0; --i) {
    const std::uint32_t range = static_cast<std::uint32_t>(i + 1);
    std::uint64_t m = static_cast<std::uint64_t>(draw()) * range;
    std::uint32_t low = static_cast<std::uint32_t>(m);
    if (low < range) {
      const std::uint32_t threshold = (0u - range) % range;
      while (low < threshold) {
        m = static_cast<std::uint64_t>(draw()) * range;
        low = static_cast<std::uint32_t>(m);
      }
    }
    const Index j = static_cast<Index>(m >> 32);
    const Index t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

// Produces the sample indices of minibatches; keeps the current epoch's permutation.
class BatchSampler {
 public:
  BatchSampler(const BatchPlan& plan, Index n_train)
      : plan_(plan), n_(n_train), per_epoch_(plan.batches_per_epoch(n_train)),
        perm_(static_cast<std::size_t>(n_train)),
        drawn_(static_cast<std::size_t>(plan.full() ? 0 : plan.batch_size)) {}

  // Indices of the batch of the member with random stream `stream` and sample order `order`
  // at its absolute step `step` (batch_size of them). Not for full batches.
  const Index* indices(std::uint64_t stream, const SampleOrder& order, std::int64_t step) {
    // Steps [first_step_, first_step_ + per_epoch_) of stream_ use the permutation held:
    // that test is all a B = 1 step pays, inlined; the rest is out of line. A stream names
    // one trajectory, so its order cannot change while the permutation is held (a member
    // whose state is replaced calls forget()).
    const Index within = step - first_step_;
    if (plan_.sampling == Sampling::kEpoch && held_ && stream == stream_ && within >= 0 &&
        within < per_epoch_)
      return perm_.data() + within * plan_.batch_size;
    return draw(stream, order, step);
  }

  // The next call draws its permutation afresh.
  void forget() { held_ = false; }

 private:
  // Batches with replacement, and the first step of an epoch (or of another stream).
  __attribute__((noinline)) const Index* draw(std::uint64_t stream, const SampleOrder& order,
                                              std::int64_t step) {
    const Index b = plan_.batch_size;
    if (plan_.sampling == Sampling::kReplacement) {
      DrawStream draws(plan_.seed, stream, static_cast<std::uint64_t>(step), Purpose::kReplacement);
      for (Index c = 0; c < b; ++c) drawn_[c] = static_cast<Index>(draws.below(static_cast<std::uint64_t>(n_)));
      return drawn_.data();
    }
    const Index epoch = step / per_epoch_;
    epoch_permutation(plan_.seed, order.stream_for(epoch, stream), static_cast<std::uint64_t>(epoch),
                      perm_);
    first_step_ = epoch * per_epoch_;
    stream_ = stream;
    held_ = true;
    return perm_.data() + (step - first_step_) * b;
  }

  BatchPlan plan_;
  Index n_;
  Index per_epoch_;  // batches per epoch
  std::vector<Index> perm_, drawn_;
  bool held_ = false;    // perm_ holds the permutation of (stream_, epoch of first_step_)
  Index first_step_ = 0;  // first step of that epoch
  std::uint64_t stream_ = 0;
};

}  // namespace grokescape
