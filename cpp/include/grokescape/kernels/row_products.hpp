// The three small products of one SGD step, for activations stored as "sample rows":
// a layer's activations are a (width x ld) row-major block whose row k holds feature k of
// every sample of the batch, so the vector loops run over samples. Sizes marked NI/NO are
// compile-time constants when positive (fully unrolled) and run-time values (ni, no) when
// 0. ld and the padded batch length bp are multiples of kRowPad.
//
//   forward_rows:   out[i, :] = sum_k W[i, k] in[k, :]  (+ b[i])     W is (no x ni) row-major
//   backprop_rows:  out[k, :] = sum_i W[i, k] d[i, :]                 (W^T d)
//   update_rows:    W[i, k]   = decay W[i, k] - lr sum_b d[i, b] a[k, b]
//                   b[i]      = bias_decay b[i] - lr sum_b d[i, b]
//
// Register blocking: two output rows at a time over a tile of up to four vectors of
// samples, so each loaded input vector feeds two FMAs and the accumulators stay in
// registers; the gradient is a tile of outer products over the samples (see update_rows).
#pragma once

#include "grokescape/kernels/simd.hpp"

namespace grokescape::kernels {

template <int N>
inline int dim(int runtime) {
  if constexpr (N > 0)
    return N;
  else
    return runtime;
}

// out rows r0..r0+R-1 (R = 1 or 2) over NV vectors starting at sample b0:
//   out[r, :] = init[r] + sum_k coef(r, k) in[k, :]
// coef(r, k) = c[r * cs + k * ks] (cs, ks strides: W or W^T).
template <class S, int R, int NV, int NK>
GROKESCAPE_INLINE void rows_tile(const S* __restrict c, Index cs, Index ks, int nk, const S* __restrict in,
                      Index ld, const S* init, S* __restrict out) {
  constexpr int L = kLanes<S>;
  Vector<S> acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = broadcast<S>(init ? init[r] : S(0));
  const int n_k = dim<NK>(nk);
  for (int k = 0; k < n_k; ++k) {
    Vector<S> w[R];
    for (int r = 0; r < R; ++r) w[r] = broadcast<S>(c[r * cs + k * ks]);
    const S* __restrict a = in + k * ld;
    for (int v = 0; v < NV; ++v) {
      const Vector<S> x = load<S>(a + v * L);
      for (int r = 0; r < R; ++r) acc[r][v] += w[r] * x;
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) store<S>(out + r * ld + v * L, acc[r][v]);
}

// All n_rows output rows over all samples: out[r, :] = init[r] + sum_k c(r, k) in[k, :].
template <class S, int NK, int NR>
GROKESCAPE_INLINE void rows_product(const S* __restrict c, Index cs, Index ks, int nk, int nr,
                         const S* __restrict in, const S* init, S* __restrict out, Index ld,
                         Index bp) {
  constexpr int L = kLanes<S>;
  const int n_rows = dim<NR>(nr);
  // Tiles of V vectors of samples and R rows, as many accumulators as the registers hold
  // beside the R broadcast coefficients and one input vector: with 32 vector registers
  // (AVX-512) 4 x 4, 2 x 8, 1 x 8; with 16 (AVX2, SSE) 4 x 3, 2 x 5, 1 x 7 (4 x 4 would
  // spill accumulators to memory there). The sums are the same whatever the tile, k in order.
  constexpr bool kManyRegisters = kVectorBytes == 64;
  using R4 = std::integral_constant<int, kManyRegisters ? 4 : 3>;
  using R2 = std::integral_constant<int, kManyRegisters ? 8 : 5>;
  using R1 = std::integral_constant<int, kManyRegisters ? 8 : 7>;
  auto tile = [&](auto nv_c, auto r_c, Index b0) {
    constexpr int V = decltype(nv_c)::value, R = decltype(r_c)::value;
    int r = 0;
    for (; r + R <= n_rows; r += R)
      rows_tile<S, R, V, NK>(c + r * cs, cs, ks, nk, in + b0, ld, init ? init + r : nullptr,
                             out + r * ld + b0);
    for (; r + 2 <= n_rows; r += 2)
      rows_tile<S, 2, V, NK>(c + r * cs, cs, ks, nk, in + b0, ld, init ? init + r : nullptr,
                             out + r * ld + b0);
    if (r < n_rows)
      rows_tile<S, 1, V, NK>(c + r * cs, cs, ks, nk, in + b0, ld, init ? init + r : nullptr,
                             out + r * ld + b0);
  };
  using I1 = std::integral_constant<int, 1>;
  using I2 = std::integral_constant<int, 2>;
  using I4 = std::integral_constant<int, 4>;
  Index b0 = 0;
  for (; b0 + 4 * L <= bp; b0 += 4 * L) tile(I4{}, R4{}, b0);
  for (; b0 + 2 * L <= bp; b0 += 2 * L) tile(I2{}, R2{}, b0);
  for (; b0 < bp; b0 += L) tile(I1{}, R1{}, b0);
}

template <class S, int NI, int NO>
GROKESCAPE_INLINE void forward_rows(const S* __restrict w, const S* __restrict bias, int ni, int no,
                         const S* __restrict in, S* __restrict out, Index ld, Index bp) {
  const int n_in = dim<NI>(ni);
  rows_product<S, NI, NO>(w, n_in, 1, ni, no, in, bias, out, ld, bp);
}

template <class S, int NI, int NO>
GROKESCAPE_INLINE void backprop_rows(const S* __restrict w, int ni, int no, const S* __restrict d,
                          S* __restrict out, Index ld, Index bp) {
  const int n_in = dim<NI>(ni);
  rows_product<S, NO, NI>(w, 1, n_in, no, ni, d, nullptr, out, ld, bp);
}

template <class S>
inline S row_sum(const S* __restrict x, Index bp) {
  constexpr int L = kLanes<S>;
  Vector<S> acc{};
  for (Index b0 = 0; b0 < bp; b0 += L) acc += load<S>(x + b0);
  return lane_sum<S>(acc);
}

// The weight update as outer products over the samples: with the layer's input
// transposed to sample rows (a_t[b * kp + k], kp = padded(ni); square blocks through
// registers), every gradient entry is a sequential sum over b of broadcast d[i, b] times a
// vector of a_t, accumulated in an RI x KV register tile, and the weights are updated a
// vector at a time. With 16 vector registers RI = 3 (12 accumulators; 8 chains of 4-cycle
// additions would keep the FMA units waiting). Dot products along the batch instead would
// need a transposing reduction and scalar updates per block of weights: more shuffles than
// FMAs.
template <class S, int NI, int NO>
GROKESCAPE_INLINE void update_rows(S* __restrict w, S* __restrict bias, int ni, int no,
                        const S* __restrict d, const S* __restrict a, Index ld, Index bp, S lr,
                        S decay, S bias_decay, S* __restrict a_t) {
  constexpr int L = kLanes<S>;
  constexpr int KV = 4;                            // vectors of inputs per tile
  constexpr int RI = kVectorBytes == 64 ? 4 : 3;  // outputs per tile (32 or 16 registers)
  const int n_out = dim<NO>(no), n_in = dim<NI>(ni);
  const Index kp = padded(n_in);
  {  // a_t = a^T in square blocks (bp is a whole number of blocks), then the odd inputs
    constexpr int N = kTransposeBlock<S>;
    const S* src[N];
    int k0 = 0;
    for (; k0 + N <= n_in; k0 += N)
      for (Index b0 = 0; b0 < bp; b0 += N) {
        for (int q = 0; q < N; ++q) src[q] = a + (k0 + q) * ld + b0;
        transpose_block<S>(src, a_t + b0 * kp + k0, kp);
      }
    for (Index b = 0; b < bp; ++b) {
      for (int k = k0; k < n_in; ++k) a_t[b * kp + k] = a[k * ld + b];
      for (Index k = n_in; k < kp; ++k) a_t[b * kp + k] = S(0);
    }
  }
  auto tile = [&](auto ri_c, auto kv_c, int i0, int k0) {
    constexpr int R = decltype(ri_c)::value, V = decltype(kv_c)::value;
    Vector<S> acc[R][V];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < V; ++v) acc[r][v] = Vector<S>{};
    for (Index b = 0; b < bp; ++b) {
      Vector<S> av[V];
      for (int v = 0; v < V; ++v) av[v] = load<S>(a_t + b * kp + k0 + v * L);
      for (int r = 0; r < R; ++r) {
        const Vector<S> dv = broadcast<S>(d[(i0 + r) * ld + b]);
        for (int v = 0; v < V; ++v) acc[r][v] += dv * av[v];
      }
    }
    const Vector<S> decay_v = broadcast<S>(decay), lr_v = broadcast<S>(lr);
    for (int r = 0; r < R; ++r) {
      S* row = w + (i0 + r) * n_in;
      for (int v = 0; v < V; ++v) {
        const int k = k0 + v * L;
        if (k + L <= n_in) {
          store<S>(row + k, decay_v * load<S>(row + k) - lr_v * acc[r][v]);
        } else {
          for (int q = 0; k + q < n_in; ++q) row[k + q] = decay * row[k + q] - lr * acc[r][v][q];
        }
      }
    }
  };
  using IR = std::integral_constant<int, RI>;
  using I1 = std::integral_constant<int, 1>;
  using IKV = std::integral_constant<int, KV>;
  auto row_block = [&](auto ri_c, int i) {
    int k = 0;
    for (; k + KV * L <= kp; k += KV * L) tile(ri_c, IKV{}, i, k);
    for (; k < kp; k += L) tile(ri_c, I1{}, i, k);
  };
  int i = 0;
  for (; i + RI <= n_out; i += RI) row_block(IR{}, i);
  if constexpr (NO == 0 || NO % RI != 0)  // no tail for compile-time widths divisible by RI
    for (; i < n_out; ++i) row_block(I1{}, i);
  if (bias)
    for (int r = 0; r < n_out; ++r) bias[r] = bias_decay * bias[r] - lr * row_sum(d + r * ld, bp);
}

}  // namespace grokescape::kernels
