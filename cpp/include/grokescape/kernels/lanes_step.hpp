// Single-sample (B = 1) SGD + L2 steps of LaneStep::kWidth members at once, one member per vector
// lane ("members inner"). A B = 1 step of one member is a chain of small dependent
// mat-vecs with a horizontal reduction per output (see SampleStep); with one member per
// lane every operation is a vertical FMA, there are no reductions, and the lanes' chains
// are independent. Linear networks only (tanh keeps SampleStep).
//
// Lane layout: parameter i of the member in lane q is at p[i * L + q] (L = kWidth);
// activations and error signals of width n are (n x L) blocks. The arithmetic of each lane
// is that of one member's step:
//   a_{l+1}[i] = b[i] + sum_k W[i,k] a_l[k]          (k in order)
//   d_L = a_L - y,   d_l[k] = sum_i W[i,k] d_{l+1}[i] (old W, i in order)
//   W[i,k] <- decay W[i,k] - (lr d[i]) a[k],   b[i] <- bias_decay b[i] - lr d[i]
// which differs from SampleStep only in the order of additions (tests hold both against
// the NumPy reference; every B = 1 step of a linear network uses this kernel, so results
// do not depend on how members are grouped).
#pragma once

#include <cstring>
#include <type_traits>
#include <vector>

#include "grokescape/kernels/sgd_step.hpp"
#include "grokescape/kernels/shapes.hpp"
#include "grokescape/kernels/simd.hpp"
#include "grokescape/layout.hpp"

namespace grokescape::kernels {

// Lanes are at most 32 bytes wide: a 16 x 16 x 16 x 16 network has 768 weights, and 8 float
// lanes of them (24 KiB) stay in a 48 KiB L1 cache with the activations; 16 lanes would be
// 48 KiB of weights alone, which no longer fit beside the activations.
inline constexpr int kLaneBytes = kVectorBytes < 32 ? kVectorBytes : 32;

template <class S>
struct LaneVectorOf;
template <>
struct LaneVectorOf<double> {
  typedef double type __attribute__((vector_size(kLaneBytes)));
};
template <>
struct LaneVectorOf<float> {
  typedef float type __attribute__((vector_size(kLaneBytes)));
};

// The lanes' samples in the lane layout: out[k * W + q] = data[rows[q] * width + k] for
// k < width, q < W (W = LaneStep::kWidth). Where W is a transpose block (32-byte lanes),
// whole blocks of W features are transposed in registers (transpose_block) instead of
// copied one scalar at a time: a B = 1 step does little arithmetic per sample, so scalar
// copies (or vector gathers) would be a visible share of it.
template <class S, int W>
inline void transpose_into_lanes(const S* data, const Index* rows, Index width, S* __restrict out) {
  Index k = 0;
  if constexpr (W == kTransposeBlock<S>) {
    const S* src[W];
    for (; k + W <= width; k += W) {
      for (int q = 0; q < W; ++q) src[q] = data + rows[q] * width + k;
      transpose_block<S>(src, out + k * W, W);
    }
  }
  for (; k < width; ++k)
    for (int q = 0; q < W; ++q) out[k * W + q] = data[rows[q] * width + k];
}

template <class S, class Shape>
class LaneStep {
 public:
  static constexpr int kWidth = kLaneBytes / static_cast<int>(sizeof(S));
  using V = typename LaneVectorOf<S>::type;

  explicit LaneStep(const Layout& layout) : layout_(layout) {
    acts_.resize(static_cast<std::size_t>(layout.depth()) + 1);
    for (Index l = 0; l < layout.depth(); ++l)
      acts_[l + 1].assign(static_cast<std::size_t>(layout.out(l) * kWidth), S(0));
    delta_.assign(static_cast<std::size_t>(layout.max_width * kWidth), S(0));
    delta_below_.assign(delta_.size(), S(0));
    step_.assign(delta_.size(), S(0));
  }

  // One step of every lane: p (P x L) parameters, x (d_in x L) and y (d_out x L) the lanes'
  // samples, lr / decay / bias_decay one value per lane. finite[q] = whether every updated
  // parameter of lane q is finite (the sum of w - w over them is 0 exactly when all are
  // finite, NaN otherwise): the check rides on the update instead of a pass of its own, in the
  // floating-point adders (w * 0 would take an FMA slot per weight from the update).
  void step(S* p, const S* x, const S* y, const S* lr, const S* decay, const S* bias_decay,
            bool* finite) {
    V check{};
    constexpr int L = kWidth;
    const Layout& lay = layout_;
    const int depth = static_cast<int>(lay.depth());
    layers_up<Shape>(lay, [&](int l, auto ni_c, auto no_c) {
      constexpr int NI = decltype(ni_c)::value, NO = decltype(no_c)::value;
      const int ni = dim<NI>(static_cast<int>(lay.in(l))), no = dim<NO>(static_cast<int>(lay.out(l)));
      const S* __restrict w = p + lay.w_offset[l] * L;
      const S* __restrict b = lay.bias ? p + lay.b_offset[l] * L : nullptr;
      const S* __restrict in = l == 0 ? x : acts_[l].data();
      S* __restrict out = acts_[l + 1].data();
      // blocks of up to 8 outputs, accumulated over the inputs in order
      auto block = [&](auto r_c, int i0) {
        constexpr int R = decltype(r_c)::value;
        V acc[R];
        for (int r = 0; r < R; ++r) acc[r] = b ? load(b + (i0 + r) * L) : V{};
        for (int k = 0; k < ni; ++k) {
          const V a = load(in + k * L);
          for (int r = 0; r < R; ++r) acc[r] += load(w + ((i0 + r) * ni + k) * L) * a;
        }
        for (int r = 0; r < R; ++r) store(out + (i0 + r) * L, acc[r]);
      };
      int i = 0;
      for (; i + 8 <= no; i += 8) block(Int<8>{}, i);
      if constexpr (NO % 8 != 0 || NO == 0)  // no tail for compile-time widths 8, 16, ...
        for (; i < no; ++i) block(Int<1>{}, i);
    });
    S* d = delta_.data();
    S* d_below = delta_below_.data();
    {
      const S* top = acts_[depth].data();
      for (Index i = 0; i < lay.d_out(); ++i)
        store(d + i * L, load(top + i * L) - load(y + i * L));
    }
    const V lr_v = load(lr), decay_v = load(decay), bias_decay_v = load(bias_decay);
    layers_down<Shape>(lay, [&](int l, auto ni_c, auto no_c) {
      constexpr int NI = decltype(ni_c)::value, NO = decltype(no_c)::value;
      const int ni = dim<NI>(static_cast<int>(lay.in(l))), no = dim<NO>(static_cast<int>(lay.out(l)));
      S* __restrict w = p + lay.w_offset[l] * L;
      const S* __restrict a_in = l == 0 ? x : acts_[l].data();
      const S* __restrict dd = d;
      S* __restrict db = d_below;
      S* __restrict g = step_.data();
      for (int i = 0; i < no; ++i) store(g + i * L, lr_v * load(dd + i * L));
      // Blocks of up to 8 inputs k held in registers (their activations and error sums),
      // outputs i in order inside: each weight is loaded and stored once and the error sums
      // are 8 independent chains (one chain per input, outputs inner, is latency-bound; the
      // sums are the same, in the same order).
      auto block = [&](auto r_c, int k0) {
        constexpr int R = decltype(r_c)::value;
        V ak[R], acc[R], zeros[4] = {};
        for (int r = 0; r < R; ++r) {
          ak[r] = load(a_in + (k0 + r) * L);
          acc[r] = V{};
        }
        for (int i = 0; i < no; ++i) {
          const V di = load(dd + i * L), gi = load(g + i * L);
          S* wi = w + (i * ni + k0) * L;
          for (int r = 0; r < R; ++r) {
            const V wv = load(wi + r * L);
            if (l > 0) acc[r] += wv * di;
            const V updated = decay_v * wv - gi * ak[r];
            store(wi + r * L, updated);
            zeros[r % 4] += updated - updated;
          }
        }
        if (l > 0)
          for (int r = 0; r < R; ++r) store(db + (k0 + r) * L, acc[r]);
        check += (zeros[0] + zeros[1]) + (zeros[2] + zeros[3]);
      };
      int k = 0;
      for (; k + 8 <= ni; k += 8) block(Int<8>{}, k);
      if constexpr (NI % 8 != 0 || NI == 0)
        for (; k < ni; ++k) block(Int<1>{}, k);
      if (lay.bias) {
        S* b = p + lay.b_offset[l] * L;
        for (int i = 0; i < no; ++i) {
          const V updated = bias_decay_v * load(b + i * L) - lr_v * load(dd + i * L);
          store(b + i * L, updated);
          check += updated - updated;
        }
      }
      std::swap(d, d_below);
    });
    for (int q = 0; q < L; ++q) finite[q] = check[q] == S(0);
  }

 private:
  static V load(const S* p) {
    V v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  static void store(S* p, V v) { std::memcpy(p, &v, sizeof(v)); }

  const Layout& layout_;
  std::vector<AlignedVector<S>> acts_;  // acts_[l]: (widths[l] x L), l = 1..L
  AlignedVector<S> delta_, delta_below_, step_;  // step_: lr d of the current layer
};

}  // namespace grokescape::kernels
