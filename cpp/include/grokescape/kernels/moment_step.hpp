// Minibatch SGD + L2 steps of bias-free deep linear networks from the batch's second moments,
// MomentStep::kWidth members at once, one member per vector lane (lane layout and products as
// in kernels/lane_batch_step.hpp).
//
// The network is linear in its input, f(x) = W x with W = W_L ... W_1, so the batch loss
//   (1 / 2B) sum_b |W x_b - y_b|^2
// depends on the batch only through Sxx = sum_b x_b x_b^T (d_in x d_in) and
// Syx = sum_b y_b x_b^T (d_out x d_in), and so does its gradient:
//   dLoss/dW_l = (W_L ... W_{l+1})^T E (W_{l-1} ... W_1)^T,   E = (W Sxx - Syx) / B.
// That is backpropagation with the d_in columns of the identity as the batch and E as the
// top error signal: per step B (d_in (d_in + 1) / 2 + d_out d_in) additions for the moments
// plus about 3 d_in sum_l n_l n_{l-1} multiply-adds for the chain, against 3 B sum_l n_l
// n_{l-1} for per-sample backpropagation (LaneBatchStep): 2,328 flops instead of 51,620 for
// the paper's [2,10,10,2] network with B = 64 (grokescape.workloads counts both). pays() decides
// by that count. The update is the same SGD step in exact arithmetic; rounding differs from the
// per-sample order (tests/test_engine_reference.py holds both to the NumPy reference).
//
// Each training sample's products x_k x_j (j <= k) and -y_i x_k are computed once, into a
// table row; a step sums its batch's rows. Per lane, with R_0 = I (d_in x d_in), n_0 = d_in:
//   Sxx[k,j] = sum_b fl(x[k,b] x[j,b]),  -Syx[i,k] = sum_b fl(-y[i,b] x[k,b])
//              (b in batch order, from 0; Sxx for j <= k, mirrored)
//   R_l = W_l R_{l-1}   (n_l x d_in, l = 1..L; R_1 = W_1)
//   E = (R_L Sxx + (-Syx)) * (1 / B),   H_L = E
//   G_l = H_l R_{l-1}^T,   H_{l-1} = W_l^T H_l   (old W, l = L..1)
//   W_l <- decay W_l - lr G_l
// A full batch has the same moments every step: fix_moments() sums them once.
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "grokescape/kernels/lane_products.hpp"
#include "grokescape/kernels/shapes.hpp"
#include "grokescape/kernels/simd.hpp"
#include "grokescape/layout.hpp"

namespace grokescape::kernels {

template <class S, class Shape>
class MomentStep {
 public:
  static constexpr int kWidth = kLanes<S>;
  using V = Vector<S>;

  // Whether a step of batch B by moments takes fewer multiply-adds than per-sample
  // backpropagation (bias-free linear networks whose lane copies fit in L1, as LaneBatchStep).
  static bool pays(const Layout& layout, Index batch) {
    if (layout.bias || layout.activation != Activation::kLinear || batch < 2) return false;
    if (!lane_copies_fit_l1(layout)) return false;
    const Index chain = layout.n_weights();
    const Index d_in = layout.d_in(), d_out = layout.d_out();
    const Index moments = batch * (d_in * (d_in + 1) / 2 + d_out * d_in) + 3 * d_in * chain;
    return moments < 3 * batch * chain;
  }

  MomentStep(const Layout& layout, Index batch) : layout_(layout), batch_(batch) {
    const Index d_in = layout.d_in(), d_out = layout.d_out();
    row_ = (d_in * (d_in + 1) / 2 + d_out * d_in + kWidth - 1) / kWidth * kWidth;
    sxx_.assign(lanes(d_in * d_in), S(0));
    neg_syx_.assign(lanes(d_out * d_in), S(0));
    prefix_.resize(static_cast<std::size_t>(layout.depth()));
    for (Index l = 1; l < layout.depth(); ++l) prefix_[l].assign(lanes(layout.out(l) * d_in), S(0));
    h_.assign(lanes(layout.max_width * d_in), S(0));
    h_below_.assign(h_.size(), S(0));
    grad_.assign(lanes(layout.n_params), S(0));
    sums_.assign(lanes(row_), S(0));
  }

  // The training samples (x: n x d_in, y: n x d_out, row-major), once before the first step:
  // each sample's products x_k x_j (j <= k) and -y_i x_k, in one row of a table.
  bool has_samples() const { return n_samples_ > 0; }
  void set_samples(const S* x, const S* y, Index n) {
    const Index d_in = layout_.d_in(), d_out = layout_.d_out();
    table_.assign(static_cast<std::size_t>(n * row_), S(0));
    for (Index b = 0; b < n; ++b) {
      S* row = table_.data() + b * row_;
      const S* xb = x + b * d_in;
      const S* yb = y + b * d_out;
      for (Index k = 0; k < d_in; ++k)
        for (Index j = 0; j <= k; ++j) *row++ = xb[k] * xb[j];
      for (Index i = 0; i < d_out; ++i)
        for (Index k = 0; k < d_in; ++k) *row++ = -yb[i] * xb[k];
    }
    n_samples_ = n;
  }

  // The moments of lane q's batch: samples idx[q][0..B) (B = the batch size), summed in order.
  // All lanes at once: their sums are independent chains of additions (one lane at a time,
  // each chain waits on the latency of the last addition).
  void gather_moments(const Index* const* idx) {
    if (row_ == kWidth) {
      gather_lanes<1>(idx);
    } else if (row_ == 2 * kWidth) {  // e.g. d_in = d_out = 2 in float64 with AVX2
      gather_lanes<2>(idx);
    } else {
      for (int q = 0; q < kWidth; ++q) sum_rows(idx[q], batch_, sums_.data() + q * row_);
    }
    spread_sums(false);
  }

  // Every step of every lane uses the moments of all n samples, in their order: full batch.
  void fix_moments() {
    std::vector<Index> all(static_cast<std::size_t>(n_samples_));
    for (Index b = 0; b < n_samples_; ++b) all[b] = b;
    sum_rows(all.data(), n_samples_, sums_.data());
    spread_sums(true);
    fixed_ = true;
  }
  bool moments_fixed() const { return fixed_; }

  // One step of every lane: p (P x L) parameters; lr / decay / bias_decay one value per lane.
  // finite[q] = whether every updated parameter of lane q is finite.
  void step(S* p, const S* lr, const S* decay, const S* bias_decay, bool* finite) {
    constexpr int L = kWidth;
    constexpr int NX = fixed_first<Shape>(), NY = fixed_last<Shape>();
    const Layout& lay = layout_;
    const int depth = static_cast<int>(lay.depth());
    const int d_in = dim<NX>(static_cast<int>(lay.d_in()));
    const int d_out = dim<NY>(static_cast<int>(lay.d_out()));
    // R_l = W_l R_{l-1}: prefix(l) (n_{l+1} x d_in rows, 0-based layer l)
    auto prefix = [&](int l) -> const S* { return l == 0 ? p + lay.w_offset[0] * L : prefix_[l].data(); };
    layers_up<Shape>(lay, [&](int l, auto ni_c, auto no_c) {
      constexpr int NI = decltype(ni_c)::value, NO = decltype(no_c)::value;
      if (l == 0) return;
      const int ni = dim<NI>(static_cast<int>(lay.in(l))), no = dim<NO>(static_cast<int>(lay.out(l)));
      lane_products<S, NI>(no, d_in, ni, p + lay.w_offset[l] * L, ni * L, L, prefix(l - 1), d_in * L,
                           L, nullptr, 0, 0, prefix_[l].data(), d_in * L, L);
    });
    // E = (R_L Sxx - Syx) / B
    S* h = h_.data();
    S* h_below = h_below_.data();
    lane_products<S, NX>(d_out, d_in, d_in, prefix(depth - 1), d_in * L, L, sxx_.data(), d_in * L, L,
                         neg_syx_.data(), d_in * L, L, h, d_in * L, L);
    const V inv_batch = broadcast<S>(S(1) / static_cast<S>(batch_));
    for (int i = 0; i < d_out * d_in; ++i) store<S>(h + i * L, load<S>(h + i * L) * inv_batch);
    layers_down<Shape>(lay, [&](int l, auto ni_c, auto no_c) {
      constexpr int NI = decltype(ni_c)::value, NO = decltype(no_c)::value;
      const int ni = dim<NI>(static_cast<int>(lay.in(l))), no = dim<NO>(static_cast<int>(lay.out(l)));
      const S* w = p + lay.w_offset[l] * L;
      S* g = grad_.data() + lay.w_offset[l] * L;
      if (l == 0) {  // G_1 = H_1 (R_0 = I)
        std::copy(h, h + no * d_in * L, g);
        return;
      }
      // G_l(i, k) = sum_j H(i, j) R_{l-1}(k, j)
      lane_products<S, NX>(no, ni, d_in, h, d_in * L, L, prefix(l - 1), L, d_in * L, nullptr, 0, 0,
                           g, ni * L, L);
      // H_below(k, j) = sum_i W(i, k) H(i, j), with the old W
      lane_products<S, NO>(ni, d_in, no, w, L, ni * L, h, d_in * L, L, nullptr, 0, 0, h_below,
                           d_in * L, L);
      std::swap(h, h_below);
    });
    lane_sgd_update<S>(lay, p, grad_.data(), lr, decay, bias_decay, finite);
  }

 private:
  template <class Sh>
  static constexpr int fixed_first() {
    if constexpr (std::is_same_v<Sh, Dynamic>) return 0; else return Sh::widths[0];
  }
  template <class Sh>
  static constexpr int fixed_last() {
    if constexpr (std::is_same_v<Sh, Dynamic>) return 0; else return Sh::widths[Sh::depth];
  }

  static std::size_t lanes(Index n) { return static_cast<std::size_t>(n * kWidth); }

  template <int NV>
  void gather_lanes(const Index* const* idx) {
    using V = Vector<S>;
    constexpr int L = kWidth;
    const S* __restrict table = table_.data();
    const Index row = row_;
    V acc[L][NV];
    for (int q = 0; q < L; ++q)
      for (int v = 0; v < NV; ++v) acc[q][v] = V{};
    for (Index b = 0; b < batch_; ++b)
      for (int q = 0; q < L; ++q) {
        const S* r = table + idx[q][b] * row;
        for (int v = 0; v < NV; ++v) acc[q][v] += load<S>(r + v * L);
      }
    for (int q = 0; q < L; ++q)
      for (int v = 0; v < NV; ++v) store<S>(sums_.data() + q * row + v * L, acc[q][v]);
  }

  // sums[0..row_) = sum of the table rows of samples idx[0..n), in order.
  void sum_rows(const Index* idx, Index n, S* sums) const {
    const S* __restrict table = table_.data();
    const Index row = row_;
    std::fill(sums, sums + row, S(0));
    for (Index b = 0; b < n; ++b) {
      const S* r = table + idx[b] * row;
      for (Index e = 0; e < row; e += kWidth) store<S>(sums + e, load<S>(sums + e) + load<S>(r + e));
    }
  }

  // The summed rows (lane q's at sums_[q * row_], or one row for every lane) into the lane
  // layouts of Sxx (mirrored) and -Syx.
  void spread_sums(bool one_row) {
    constexpr int L = kWidth;
    const Index d_in = layout_.d_in(), d_out = layout_.d_out();
    for (int q = 0; q < L; ++q) {
      const S* sum = sums_.data() + (one_row ? 0 : q * row_);
      for (Index k = 0; k < d_in; ++k)
        for (Index j = 0; j <= k; ++j) {
          const S v = *sum++;
          sxx_[(k * d_in + j) * L + q] = v;
          sxx_[(j * d_in + k) * L + q] = v;
        }
      for (Index i = 0; i < d_out * d_in; ++i) neg_syx_[i * L + q] = *sum++;
    }
  }

  const Layout& layout_;
  Index batch_;
  Index row_;             // products per sample, padded to whole lane vectors
  Index n_samples_ = 0;
  bool fixed_ = false;
  AlignedVector<S> table_;  // (n_samples x row_): the products of each training sample
  AlignedVector<S> sums_;   // (L x row_): the summed rows of each lane's batch
  AlignedVector<S> sxx_, neg_syx_, h_, h_below_, grad_;
  std::vector<AlignedVector<S>> prefix_;  // prefix_[l]: R after layer l (n_{l+1} x d_in), l >= 1
};

}  // namespace grokescape::kernels
