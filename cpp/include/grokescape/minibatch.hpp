// Which training samples a member's SGD step uses (physics.md section 2).
//
//  - full batch: every sample, in their stored order (no randomness at all);
//  - epoch sampling: epoch e = step / batches_per_epoch draws a fresh permutation of the
//    n samples from the stream (seed, member, e, kPermutation) and cuts it into
//    floor(n / B) batches; the remainder is dropped;
//  - with replacement: B indices drawn uniformly from (seed, member, step, kReplacement).
// Addressing by absolute step makes any chunking of a run give the same batches.
#pragma once

#include <cstdint>
#include <numeric>

#include "grokescape/network.hpp"
#include "grokescape/observables.hpp"
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

// Fisher-Yates shuffle of 0..n-1 with draws from one counter-addressed stream.
inline void epoch_permutation(std::uint64_t seed, std::uint64_t stream, std::uint64_t epoch,
                              std::vector<Index>& perm) {
  std::iota(perm.begin(), perm.end(), Index{0});
  DrawStream draws(seed, stream, epoch, Purpose::kPermutation);
  for (Index i = static_cast<Index>(perm.size()) - 1; i > 0; --i) {
    const Index j = static_cast<Index>(draws.below(static_cast<std::uint64_t>(i + 1)));
    std::swap(perm[i], perm[j]);
  }
}

// Copies the samples of a member's minibatch at absolute step `step` into ws.x_batch and
// ws.y_batch (first batch_size columns). Not used for full batches.
template <class Scalar>
void gather_batch(const Layout& layout, const BatchPlan& plan, const DataRef<Scalar>& data,
                  std::uint64_t stream, std::int64_t step, Workspace<Scalar>& ws) {
  const Index b = plan.batch_size;
  const Index d_in = layout.d_in(), d_out = layout.d_out();
  auto copy_sample = [&](Index col, Index sample) {
    for (Index i = 0; i < d_in; ++i) ws.x_batch(i, col) = data.x[sample * d_in + i];
    for (Index i = 0; i < d_out; ++i) ws.y_batch(i, col) = data.y[sample * d_out + i];
  };
  if (plan.sampling == Sampling::kReplacement) {
    DrawStream draws(plan.seed, stream, static_cast<std::uint64_t>(step), Purpose::kReplacement);
    for (Index c = 0; c < b; ++c)
      copy_sample(c, static_cast<Index>(draws.below(static_cast<std::uint64_t>(data.n))));
    return;
  }
  const Index per_epoch = plan.batches_per_epoch(data.n);
  const Index epoch = step / per_epoch;
  const Index within = step % per_epoch;
  if (ws.perm_epoch != epoch || ws.perm_stream != stream) {
    epoch_permutation(plan.seed, stream, static_cast<std::uint64_t>(epoch), ws.perm);
    ws.perm_epoch = epoch;
    ws.perm_stream = stream;
  }
  for (Index c = 0; c < b; ++c) copy_sample(c, ws.perm[within * b + c]);
}

}  // namespace grokescape
