// Vector types of the instruction set this translation unit is compiled for (GCC/Clang
// vector extensions: the compiler keeps them in registers and emits SSE2, AVX2 or AVX-512
// code as the variant's flags allow), and the padding of batch rows to whole vectors.
#pragma once

#include <cstring>
#include <type_traits>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "grokescape/layout.hpp"

#if defined(__GNUC__) || defined(__clang__)
#define GROKESCAPE_INLINE inline __attribute__((always_inline))
#else
#define GROKESCAPE_INLINE inline
#endif

namespace grokescape::kernels {

#if defined(__AVX512F__)
inline constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
inline constexpr int kVectorBytes = 32;
#else
inline constexpr int kVectorBytes = 16;
#endif

template <class S>
inline constexpr int kLanes = kVectorBytes / static_cast<int>(sizeof(S));

template <class S>
struct VectorOf;
template <>
struct VectorOf<double> {
  typedef double type __attribute__((vector_size(kVectorBytes)));
};
template <>
struct VectorOf<float> {
  typedef float type __attribute__((vector_size(kVectorBytes)));
};
template <class S>
using Vector = typename VectorOf<S>::type;

template <class S>
inline Vector<S> load(const S* p) {
  Vector<S> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <class S>
inline void store(S* p, Vector<S> v) {
  std::memcpy(p, &v, sizeof(v));
}
template <class S>
inline Vector<S> broadcast(S x) {
  return x - Vector<S>{};  // x - 0 is x for every x (x + 0 would turn -0 into +0)
}
template <class S>
struct IndexVectorOf;
template <>
struct IndexVectorOf<double> {
  typedef long long type __attribute__((vector_size(kVectorBytes)));
};
template <>
struct IndexVectorOf<float> {
  typedef int type __attribute__((vector_size(kVectorBytes)));
};

// Sum of the lanes by pairwise halving: a[t] += a[t + width] for width = lanes/2, ..., 1
// (log2(lanes) dependent additions), each level one shuffle and one vector addition.
template <class S>
inline S lane_sum(Vector<S> v) {
  constexpr int L = kLanes<S>;
  using IV = typename IndexVectorOf<S>::type;
  for (int width = L / 2; width > 0; width /= 2) {
    IV upper;
    for (int t = 0; t < L; ++t) upper[t] = t < width ? t + width : t;
    v += __builtin_shuffle(v, upper);
  }
  return v[0];
}

namespace detail {
// One level of the transposing reduction: p and q each hold groups of G lanes (partial
// sums of different dot products); the result holds groups of G/2 lanes, p's then q's.
template <class S, int G>
inline Vector<S> merge_halves(Vector<S> p, Vector<S> q) {
  constexpr int L = kLanes<S>;
  typename IndexVectorOf<S>::type first, second;
  for (int t = 0; t < L; ++t) {
    const int source = t < L / 2 ? 0 : L;  // lanes of p, or of q (indices >= L)
    const int u = t % (L / 2);
    const int group = u / (G / 2), offset = u % (G / 2);
    first[t] = source + group * G + offset;
    second[t] = source + group * G + G / 2 + offset;
  }
  return __builtin_shuffle(p, q, first) + __builtin_shuffle(p, q, second);
}

template <class S, int G>
inline void reduce_level(Vector<S>* v, int count) {
  if constexpr (G > 1) {
    for (int j = 0; j < count / 2; ++j) v[j] = merge_halves<S, G>(v[2 * j], v[2 * j + 1]);
    reduce_level<S, G / 2>(v, count / 2);
  }
}
}  // namespace detail

// Lane j of the result is the sum of the lanes of v[j], for kLanes<S> vectors (v is
// overwritten). log2(lanes) levels of shuffles and additions instead of one horizontal
// reduction per vector.
template <class S>
inline Vector<S> transpose_sum(Vector<S>* v) {
  detail::reduce_level<S, kLanes<S>>(v, kLanes<S>);
  return v[0];
}

// True when no element of p[0..n) is NaN or infinite (x - x is 0 exactly for finite x).
// Four independent accumulators: a single one would make this a chain of dependent
// additions, which showed in profiles of small networks (it runs after every step).
template <class S>
inline bool all_finite(const S* p, Index n) {
  constexpr int L = kLanes<S>;
  Vector<S> acc0{}, acc1{}, acc2{}, acc3{};
  Index i = 0;
  for (; i + 4 * L <= n; i += 4 * L) {
    const Vector<S> a = load<S>(p + i), b = load<S>(p + i + L);
    const Vector<S> c = load<S>(p + i + 2 * L), d = load<S>(p + i + 3 * L);
    acc0 += a - a;
    acc1 += b - b;
    acc2 += c - c;
    acc3 += d - d;
  }
  for (; i + L <= n; i += L) {
    const Vector<S> v = load<S>(p + i);
    acc0 += v - v;
  }
  S tail = S(0);
  for (; i < n; ++i) tail += p[i] - p[i];
  return lane_sum<S>((acc0 + acc1) + (acc2 + acc3)) + tail == S(0);
}

// finite[q] = whether p[i * L + q] is finite for every i < n, for the L members of a lane
// layout at once. Eight independent sums per lane: one would be a chain of n dependent
// additions.
template <class S, int L>
inline void lanes_all_finite(const S* p, Index n, bool* finite) {
  S acc[8][L] = {};
  Index i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j)
      for (int q = 0; q < L; ++q) {
        const S a = p[(i + j) * L + q];
        acc[j][q] += a - a;
      }
  for (; i < n; ++i)
    for (int q = 0; q < L; ++q) {
      const S a = p[i * L + q];
      acc[0][q] += a - a;
    }
  for (int q = 0; q < L; ++q)
    finite[q] = ((acc[0][q] + acc[1][q]) + (acc[2][q] + acc[3][q])) +
                    ((acc[4][q] + acc[5][q]) + (acc[6][q] + acc[7][q])) ==
                S(0);
}

// Elements per transpose_block: the square block of 32-byte rows (8 float32, 4 float64).
template <class S>
inline constexpr int kTransposeBlock = 32 / static_cast<int>(sizeof(S));

// A square block of N = kTransposeBlock<S> elements transposed: dst[j * dst_stride + q] =
// src[q][j] for q, j < N, the N source rows at arbitrary addresses. With AVX the rows are
// shuffled in registers (8 x 8 float32: unpacks, shuffles and lane permutes; 4 x 4 float64:
// unpacks and lane permutes); elsewhere a scalar loop.
template <class S>
inline void transpose_block(const S* const* src, S* dst, Index dst_stride) {
  constexpr int N = kTransposeBlock<S>;
#if defined(__AVX__)
  if constexpr (std::is_same_v<S, float>) {
    const __m256 t0 = _mm256_unpacklo_ps(_mm256_loadu_ps(src[0]), _mm256_loadu_ps(src[1]));
    const __m256 t1 = _mm256_unpackhi_ps(_mm256_loadu_ps(src[0]), _mm256_loadu_ps(src[1]));
    const __m256 t2 = _mm256_unpacklo_ps(_mm256_loadu_ps(src[2]), _mm256_loadu_ps(src[3]));
    const __m256 t3 = _mm256_unpackhi_ps(_mm256_loadu_ps(src[2]), _mm256_loadu_ps(src[3]));
    const __m256 t4 = _mm256_unpacklo_ps(_mm256_loadu_ps(src[4]), _mm256_loadu_ps(src[5]));
    const __m256 t5 = _mm256_unpackhi_ps(_mm256_loadu_ps(src[4]), _mm256_loadu_ps(src[5]));
    const __m256 t6 = _mm256_unpacklo_ps(_mm256_loadu_ps(src[6]), _mm256_loadu_ps(src[7]));
    const __m256 t7 = _mm256_unpackhi_ps(_mm256_loadu_ps(src[6]), _mm256_loadu_ps(src[7]));
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * dst_stride, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * dst_stride, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * dst_stride, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * dst_stride, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * dst_stride, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * dst_stride, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * dst_stride, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * dst_stride, _mm256_permute2f128_ps(u3, u7, 0x31));
    return;
  } else if constexpr (std::is_same_v<S, double>) {
    const __m256d r0 = _mm256_loadu_pd(src[0]), r1 = _mm256_loadu_pd(src[1]);
    const __m256d r2 = _mm256_loadu_pd(src[2]), r3 = _mm256_loadu_pd(src[3]);
    const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(dst + 0 * dst_stride, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(dst + 1 * dst_stride, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(dst + 2 * dst_stride, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(dst + 3 * dst_stride, _mm256_permute2f128_pd(t1, t3, 0x31));
    return;
  }
#endif
  for (int j = 0; j < N; ++j)
    for (int q = 0; q < N; ++q) dst[j * dst_stride + q] = src[q][j];
}

// Batch rows are padded to a multiple of 16 elements (a whole number of vectors for every
// supported instruction set and both precisions) so vector loops need no remainder.
inline constexpr Index kRowPad = 16;
inline constexpr Index padded(Index n) { return (n + kRowPad - 1) / kRowPad * kRowPad; }

}  // namespace grokescape::kernels
