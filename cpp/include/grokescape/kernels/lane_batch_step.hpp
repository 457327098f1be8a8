// Minibatch (B >= 2) SGD + L2 steps of small linear networks, LaneBatchStep::kWidth members at
// once, one member per vector lane ("members inner"), as LaneStep does for B = 1.
//
// With one member per lane, every product of the step is a vertical FMA of two lane vectors:
// no horizontal or transposing reductions, no padded batch rows, and layers of width 2 fill
// the vector as well as layers of width 10 (products: kernels/lane_products.hpp).
//
// Lane layout: parameter i of lane q at p[i * L + q] (L = kWidth). The lanes' samples are
// (d x B) blocks of lane vectors with rows x_stride() = B + 1 long: feature k of sample b of
// lane q at x[(k * x_stride() + b) * L + q].
// The batch is processed in chunks of samples small enough that the chunk's activations and
// error signals stay in L1 with the weights and the gradient; the gradient accumulates over
// the chunks and the weights are updated once, after the last chunk. Per lane:
//   a_{l+1}[i,b] = b[i] + sum_k W[i,k] a_l[k,b]                 (k in order)
//   d_L[i,b] = (a_L[i,b] - y[i,b]) / B,   d_l[k,b] = sum_i W[i,k] d_{l+1}[i,b]   (old W, i in order)
//   G[i,k] = sum_b d[i,b] a[k,b],  g[i] = sum_b d[i,b]           (b in order, from 0)
//   W <- decay W - lr G,   b <- bias_decay b - lr g
// The chunk size does not change any sum's order, and a lane's arithmetic does not depend on
// the other lanes, so results do not depend on how members are grouped.
#pragma once

#include <algorithm>
#include <vector>

#include "grokescape/kernels/lane_products.hpp"
#include "grokescape/kernels/row_products.hpp"
#include "grokescape/kernels/sgd_step.hpp"
#include "grokescape/kernels/shapes.hpp"
#include "grokescape/kernels/simd.hpp"
#include "grokescape/layout.hpp"

namespace grokescape::kernels {

template <class S, class Shape>
class LaneBatchStep {
 public:
  static constexpr int kWidth = kLanes<S>;
  using V = Vector<S>;

  // Whether a network is small enough for this kernel: the lane copies of its parameters and
  // of their gradient stay in L1 (24 KiB each at most).
  static bool fits(const Layout& layout) { return lane_copies_fit_l1(layout); }

  LaneBatchStep(const Layout& layout, Index batch) : layout_(layout), batch_(batch) {
    Index widths = 0;
    for (Index w : layout.widths) widths += w;
    // The activations and two error signals of a chunk in ~24 KiB (they stay in L1 beside
    // the lane weights), whole tiles of kLaneTileCols samples: 8 samples for the paper
    // network.
    const Index bytes = (widths + 2 * layout.max_width) * kVectorBytes;
    chunk_ = std::clamp<Index>(24 * 1024 / bytes / kLaneTileCols * kLaneTileCols, kLaneTileCols, 16 * kLaneTileCols);
    chunk_ = std::min(chunk_, batch);
    // Rows one lane vector longer than needed: rows of 64 samples of 64-byte vectors would lie
    // 4 KiB apart, where loads alias earlier stores to other rows (4K aliasing stalls them).
    ld_ = chunk_ + 1;
    xld_ = batch + 1;
    acts_.resize(static_cast<std::size_t>(layout.depth()) + 1);
    for (Index l = 0; l < layout.depth(); ++l) acts_[l + 1].assign(lanes(layout.out(l) * ld_), S(0));
    delta_.assign(lanes(layout.max_width * ld_), S(0));
    delta_below_.assign(delta_.size(), S(0));
    grad_.assign(lanes(layout.n_params), S(0));
    x_.assign(lanes(layout.d_in() * xld_), S(0));
    y_.assign(lanes(layout.d_out() * xld_), S(0));
  }

  // The lanes' samples, filled by the caller before step(): (d_in x B) and (d_out x B) blocks
  // of lane vectors with rows x_stride() long.
  S* x() { return x_.data(); }
  S* y() { return y_.data(); }
  Index x_stride() const { return xld_; }

  // One step of every lane: p (P x L) parameters; lr / decay / bias_decay one value per lane.
  // finite[q] = whether every updated parameter of lane q is finite (a sum of w - w over
  // them, folded into the update, is 0 exactly when all are finite).
  void step(S* p, const S* lr, const S* decay, const S* bias_decay, bool* finite) {
    constexpr int L = kWidth;
    const Layout& lay = layout_;
    const int depth = static_cast<int>(lay.depth());
    const Index batch = batch_;
    const S inv_batch = S(1) / static_cast<S>(batch);
    std::fill(grad_.begin(), grad_.end(), S(0));
    for (Index c0 = 0; c0 < batch; c0 += chunk_) {
      const int n = static_cast<int>(std::min(chunk_, batch - c0));
      const Index ld = ld_, xld = xld_;
      layers_up<Shape>(lay, [&](int l, auto ni_c, auto no_c) {
        constexpr int NI = decltype(ni_c)::value, NO = decltype(no_c)::value;
        const int ni = dim<NI>(static_cast<int>(lay.in(l))), no = dim<NO>(static_cast<int>(lay.out(l)));
        const S* w = p + lay.w_offset[l] * L;
        const S* b = lay.bias ? p + lay.b_offset[l] * L : nullptr;
        // in(k, c): x rows are B samples long, activation rows `ld`
        const S* in = l == 0 ? x_.data() + c0 * L : acts_[l].data();
        const Index ld_in = l == 0 ? xld : ld;
        S* out = acts_[l + 1].data();
        lane_products<S, NI>(no, n, ni, w, ni * L, L, in, ld_in * L, L, b, L, 0, out, ld * L, L);
      });
      S* d = delta_.data();
      S* d_below = delta_below_.data();
      {
        const S* top = acts_[depth].data();
        const S* y = y_.data() + c0 * L;
        for (Index i = 0; i < lay.d_out(); ++i)
          for (int c = 0; c < n; ++c)
            store<S>(d + (i * ld + c) * L, (load<S>(top + (i * ld + c) * L) - load<S>(y + (i * xld + c) * L)) * inv_batch);
      }
      layers_down<Shape>(lay, [&](int l, auto ni_c, auto no_c) {
        constexpr int NI = decltype(ni_c)::value, NO = decltype(no_c)::value;
        const int ni = dim<NI>(static_cast<int>(lay.in(l))), no = dim<NO>(static_cast<int>(lay.out(l)));
        const S* w = p + lay.w_offset[l] * L;
        const S* a_in = l == 0 ? x_.data() + c0 * L : acts_[l].data();
        const Index ld_in = l == 0 ? xld : ld;
        if (l > 0)  // d_below(k, c) = sum_i W(i, k) d(i, c), with the old W
          lane_products<S, NO>(ni, n, no, w, L, ni * L, d, ld * L, L, nullptr, 0, 0, d_below, ld * L, L);
        // G(i, k) += sum_c d(i, c) a_in(k, c)
        S* g = grad_.data() + lay.w_offset[l] * L;
        lane_products<S, 0>(no, ni, n, d, ld * L, L, a_in, L, ld_in * L, g, ni * L, L, g, ni * L, L);
        if (lay.bias) {
          S* gb = grad_.data() + lay.b_offset[l] * L;
          for (int i = 0; i < no; ++i) {
            V acc = load<S>(gb + i * L);
            for (int c = 0; c < n; ++c) acc += load<S>(d + (i * ld + c) * L);
            store<S>(gb + i * L, acc);
          }
        }
        std::swap(d, d_below);
      });
    }
    lane_sgd_update<S>(lay, p, grad_.data(), lr, decay, bias_decay, finite);
  }

 private:
  static std::size_t lanes(Index n) { return static_cast<std::size_t>(n * kWidth); }

  const Layout& layout_;
  Index batch_, chunk_, ld_, xld_;
  std::vector<AlignedVector<S>> acts_;  // acts_[l]: (widths[l] x chunk) lanes, l = 1..L
  AlignedVector<S> delta_, delta_below_, grad_, x_, y_;
};

}  // namespace grokescape::kernels
