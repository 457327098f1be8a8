// The three small products of one SGD step, for activations stored as "sample rows":
// a layer's activations are a (width x ld) row-major block whose row k holds feature k of
// every sample of the batch, so the vector loops run over samples. Sizes marked NI/NO are
// compile-time constants when positive (fully unrolled, accumulators in registers) and
// run-time values (ni, no) when 0. ld and the batch length bp are multiples of kRowPad.
//
//   forward_rows:   out[i, :] = sum_k W[i, k] in[k, :]  (+ b[i])     W is (no x ni) row-major
//   backprop_rows:  out[k, :] = sum_i W[i, k] d[i, :]                 (W^T d)
//   update_rows:    W[i, k]   = decay W[i, k] - lr sum_b d[i, b] a[k, b]
//                   b[i]      = bias_decay b[i] - lr sum_b d[i, b]
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

// Tile of TB samples starting at b0 for one output row i.
template <class S, int TB, int NI>
inline void forward_tile(const S* __restrict w_row, int ni, const S* __restrict in, Index ld,
                         S init, S* __restrict out) {
  S acc[TB];
  for (int t = 0; t < TB; ++t) acc[t] = init;
  const int n_in = dim<NI>(ni);
  for (int k = 0; k < n_in; ++k) {
    const S w = w_row[k];
    const S* __restrict a = in + k * ld;
    for (int t = 0; t < TB; ++t) acc[t] += w * a[t];
  }
  for (int t = 0; t < TB; ++t) out[t] = acc[t];
}

template <class S, int NI, int NO>
inline void forward_rows(const S* __restrict w, const S* __restrict bias, int ni, int no,
                         const S* __restrict in, S* __restrict out, Index ld, Index bp) {
  constexpr int L = kLanes<S>;
  constexpr int TB = 4 * L;
  const int n_out = dim<NO>(no), n_in = dim<NI>(ni);
  Index b0 = 0;
  for (; b0 + TB <= bp; b0 += TB)
    for (int i = 0; i < n_out; ++i)
      forward_tile<S, TB, NI>(w + i * n_in, n_in, in + b0, ld, bias ? bias[i] : S(0),
                              out + i * ld + b0);
  for (; b0 < bp; b0 += L)
    for (int i = 0; i < n_out; ++i)
      forward_tile<S, L, NI>(w + i * n_in, n_in, in + b0, ld, bias ? bias[i] : S(0),
                             out + i * ld + b0);
}

template <class S, int TB, int NI, int NO>
inline void backprop_tile(const S* __restrict w, int ni, int no, int k, const S* __restrict d,
                          Index ld, S* __restrict out) {
  S acc[TB];
  for (int t = 0; t < TB; ++t) acc[t] = S(0);
  const int n_out = dim<NO>(no), n_in = dim<NI>(ni);
  for (int i = 0; i < n_out; ++i) {
    const S wik = w[i * n_in + k];
    const S* __restrict di = d + i * ld;
    for (int t = 0; t < TB; ++t) acc[t] += wik * di[t];
  }
  for (int t = 0; t < TB; ++t) out[t] = acc[t];
}

template <class S, int NI, int NO>
inline void backprop_rows(const S* __restrict w, int ni, int no, const S* __restrict d,
                          S* __restrict out, Index ld, Index bp) {
  constexpr int L = kLanes<S>;
  constexpr int TB = 4 * L;
  const int n_in = dim<NI>(ni);
  Index b0 = 0;
  for (; b0 + TB <= bp; b0 += TB)
    for (int k = 0; k < n_in; ++k)
      backprop_tile<S, TB, NI, NO>(w, ni, no, k, d + b0, ld, out + k * ld + b0);
  for (; b0 < bp; b0 += L)
    for (int k = 0; k < n_in; ++k)
      backprop_tile<S, L, NI, NO>(w, ni, no, k, d + b0, ld, out + k * ld + b0);
}

// Sum over the batch of x[b] * y[b] with a vector accumulator (fixed order per build).
template <class S>
inline S row_dot(const S* __restrict x, const S* __restrict y, Index bp) {
  constexpr int L = kLanes<S>;
  S acc[L];
  for (int t = 0; t < L; ++t) acc[t] = S(0);
  for (Index b0 = 0; b0 < bp; b0 += L)
    for (int t = 0; t < L; ++t) acc[t] += x[b0 + t] * y[b0 + t];
  for (int width = L / 2; width > 0; width /= 2)
    for (int t = 0; t < width; ++t) acc[t] += acc[t + width];
  return acc[0];
}

template <class S>
inline S row_sum(const S* __restrict x, Index bp) {
  constexpr int L = kLanes<S>;
  S acc[L];
  for (int t = 0; t < L; ++t) acc[t] = S(0);
  for (Index b0 = 0; b0 < bp; b0 += L)
    for (int t = 0; t < L; ++t) acc[t] += x[b0 + t];
  for (int width = L / 2; width > 0; width /= 2)
    for (int t = 0; t < width; ++t) acc[t] += acc[t + width];
  return acc[0];
}

template <class S, int NI, int NO>
inline void update_rows(S* __restrict w, S* __restrict bias, int ni, int no,
                        const S* __restrict d, const S* __restrict a, Index ld, Index bp, S lr,
                        S decay, S bias_decay) {
  const int n_out = dim<NO>(no), n_in = dim<NI>(ni);
  for (int i = 0; i < n_out; ++i) {
    const S* __restrict di = d + i * ld;
    for (int k = 0; k < n_in; ++k) {
      const S g = row_dot(di, a + k * ld, bp);
      w[i * n_in + k] = decay * w[i * n_in + k] - lr * g;
    }
    if (bias) bias[i] = bias_decay * bias[i] - lr * row_sum(di, bp);
  }
}

}  // namespace grokescape::kernels
