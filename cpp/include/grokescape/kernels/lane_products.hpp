// Matrix products and the SGD + L2 update for the lane layouts, where every matrix element
// is a lane vector holding one member per lane (kernels/lane_batch_step.hpp,
// kernels/moment_step.hpp). Each product is an independent small GEMM per lane, done with
// vertical FMAs only, register-blocked like a small GEMM: a tile of kLaneTileRows x
// kLaneTileCols accumulators, each loaded lane vector feeding several FMAs.
#pragma once

#include "grokescape/kernels/row_products.hpp"
#include "grokescape/kernels/shapes.hpp"
#include "grokescape/kernels/simd.hpp"
#include "grokescape/layout.hpp"

namespace grokescape::kernels {

#if defined(__AVX512F__)
inline constexpr int kVectorRegisters = 32;
#else
inline constexpr int kVectorRegisters = 16;
#endif

// Tile shape: kLaneTileRows x kLaneTileCols accumulators plus kLaneTileCols operands and
// one more in registers.
inline constexpr int kLaneTileCols = 4;
inline constexpr int kLaneTileRows = kVectorRegisters == 32 ? 5 : 2;

// f(Int<size>{}, start) over [0, n) in blocks of M, the last block n mod M long.
template <int M, class F>
GROKESCAPE_INLINE void for_blocks(int n, F&& f) {
  int s = 0;
  for (; s + M <= n; s += M) f(Int<M>{}, s);
  if constexpr (M > 1) {
    const int rest = n - s;
    if (rest > 0)
      for_blocks<M - 1>(rest, [&](auto size_c, int t) __attribute__((always_inline)) { f(size_c, s + t); });
  }
}

namespace detail {
template <class S, int R, int C, int NJ>
GROKESCAPE_INLINE void lane_tile(int nj, const S* __restrict a, Index ar, Index aj,
                                 const S* __restrict b, Index bj, Index bc, const S* i0, Index ir,
                                 Index ic, S* o, Index or_, Index oc) {
  using V = Vector<S>;
  V acc[R][C];
  if (i0) {
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] = load<S>(i0 + r * ir + c * ic);
  } else {
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] = V{};
  }
  for (int j = 0; j < dim<NJ>(nj); ++j) {
    V bv[C];
    for (int c = 0; c < C; ++c) bv[c] = load<S>(b + j * bj + c * bc);
    for (int r = 0; r < R; ++r) {
      const V av = load<S>(a + r * ar + j * aj);
      for (int c = 0; c < C; ++c) acc[r][c] += av * bv[c];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) store<S>(o + r * or_ + c * oc, acc[r][c]);
}
}  // namespace detail

// out(r, c) = init(r, c) + sum_{j < nj} A(r, j) B(j, c) for r < nr, c < nc, where
// A(r, j) = a[r * ar + j * aj], B(j, c) = b[j * bj + c * bc], init(r, c) = i0[r * ir + c * ic]
// (0 when i0 is null) and out(r, c) = o[r * or_ + c * oc] are lane vectors (offsets in
// scalars, so a transposed operand is a swap of its strides); j runs in order. NJ > 0: nj is
// that compile-time constant. out may be init, not A or B.
template <class S, int NJ>
GROKESCAPE_INLINE void lane_products(int nr, int nc, int nj, const S* __restrict a, Index ar,
                                     Index aj, const S* __restrict b, Index bj, Index bc,
                                     const S* i0, Index ir, Index ic, S* o, Index or_, Index oc) {
  const int n_j = dim<NJ>(nj);
  for_blocks<kLaneTileRows>(nr, [&](auto r_c, int r0) __attribute__((always_inline)) {
    constexpr int R = decltype(r_c)::value;
    for_blocks<kLaneTileCols>(nc, [&](auto c_c, int c0) __attribute__((always_inline)) {
      constexpr int C = decltype(c_c)::value;
      detail::lane_tile<S, R, C, NJ>(n_j, a + r0 * ar, ar, aj, b + c0 * bc, bj, bc,
                                     i0 ? i0 + r0 * ir + c0 * ic : nullptr, ir, ic,
                                     o + r0 * or_ + c0 * oc, or_, oc);
    });
  });
}

// Whether the lane copies of a network's parameters and of their gradient stay in L1 (24 KiB
// each at most): the condition of both lane-layout minibatch kernels (LaneBatchStep,
// MomentStep).
inline bool lane_copies_fit_l1(const Layout& layout) {
  return layout.n_params * kVectorBytes <= 24 * 1024 && layout.max_width <= 32;
}

// The SGD + L2 update of every lane: W <- decay W - lr G for the weights, b <- bias_decay b
// - lr g for the biases; p and grad (P x L) parameters and gradient, lr / decay / bias_decay
// one value per lane. finite[q] = whether every updated parameter of lane q is finite (a sum
// of w - w over them, folded into the update, is 0 exactly when all are finite). The sum
// runs in four independent chains of additions rather than one chain of dependent w * 0
// FMAs, and the subtractions leave the FMA units to the update.
template <class S>
inline void lane_sgd_update(const Layout& lay, S* p, const S* grad, const S* lr, const S* decay,
                            const S* bias_decay, bool* finite) {
  using V = Vector<S>;
  constexpr int L = kLanes<S>;
  const V lr_v = load<S>(lr), decay_v = load<S>(decay), bias_decay_v = load<S>(bias_decay);
  V check{};
  for (Index l = 0; l < lay.depth(); ++l) {
    auto update = [&](Index begin, Index end, V keep) {
      V zeros[4] = {};
      auto one = [&](Index i, V& zero) {
        const V updated = keep * load<S>(p + i * L) - lr_v * load<S>(grad + i * L);
        store<S>(p + i * L, updated);
        zero += updated - updated;
      };
      Index i = begin;
      for (; i + 4 <= end; i += 4)
        for (int j = 0; j < 4; ++j) one(i + j, zeros[j]);
      for (; i < end; ++i) one(i, zeros[0]);
      check += (zeros[0] + zeros[1]) + (zeros[2] + zeros[3]);
    };
    update(lay.w_offset[l], lay.w_offset[l] + lay.out(l) * lay.in(l), decay_v);
    if (lay.bias) update(lay.b_offset[l], lay.b_offset[l] + lay.out(l), bias_decay_v);
  }
  for (int q = 0; q < L; ++q) finite[q] = check[q] == S(0);
}

}  // namespace grokescape::kernels
