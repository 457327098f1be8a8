// Standard normal draws from the counter-based generator, in blocks (used for Langevin
// noise every step, so it is vectorised).
//
// Definition (the same everywhere in grokescape): the stream (seed, stream, step, purpose)
// yields 64-bit words w_0, w_1, ... (Philox blocks with counters (0, step, purpose, 0),
// (1, step, purpose, 0), ...). Uniforms are u_j = (w_j >> 11) 2^-53. Normal pair j is the
// Box-Muller transform of (u_{2j}, u_{2j+1}):
//     z_{2j} = r cos(2 pi u_{2j+1}),  z_{2j+1} = r sin(2 pi u_{2j+1}),  r = sqrt(-2 ln(1 - u_{2j})).
// The cosine and sine are evaluated by quadrant reduction and polynomials accurate to a few
// ulp, the logarithm by the arithmetic of Eigen's vectorised log (Cephes). tests/test_rng.py
// holds the draws against the same formula evaluated by numpy.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "grokescape/kernels/simd.hpp"
#include "grokescape/layout.hpp"
#include "grokescape/philox.hpp"

namespace grokescape {

// Streams drawn at once by standard_normals_lanes (one per Philox lane).
inline constexpr int kNormalLanes = kPhiloxLanes;

namespace detail {
using NormalLanes = kernels::Vector<double>;
static_assert(sizeof(NormalLanes) == sizeof(PhiloxLanes), "one double per 64-bit Philox lane");

inline NormalLanes from_bits(PhiloxLanes b) {
  NormalLanes d;
  std::memcpy(&d, &b, sizeof(d));
  return d;
}
inline PhiloxLanes to_bits(NormalLanes d) {
  PhiloxLanes b;
  std::memcpy(&b, &d, sizeof(b));
  return b;
}

// a b + c, rounded once where the instruction set has FMA (as Eigen's pmadd), else twice.
inline NormalLanes fmadd_lanes(NormalLanes a, NormalLanes b, NormalLanes c) {
#if defined(__AVX512F__)
  return (NormalLanes)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif defined(__FMA__)
  return (NormalLanes)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
  return a * b + c;  // no FMA instruction: nothing to contract
#endif
}

// Natural logarithm of every lane for x in [2^-53, 1] (the Box-Muller radius never leaves
// it): the arithmetic of Eigen's plog_double (Cephes: frexp, shift to [sqrt(1/2), sqrt(2)),
// x - x^2/2 + x^3 P(x)/Q(x), + e ln 2), operation for operation, without its handling of
// zero, negative, infinite and subnormal inputs, and with the exponent read through the
// mantissa of 2^52 instead of Eigen's AVX2 shuffles: fewer instructions, and bit-identical
// to Eigen's plog on that interval (tests/test_rng.py checks the normals against the Box-Muller formula).
inline NormalLanes log_unit_lanes(NormalLanes x) {
  const PhiloxLanes bits = to_bits(x);
  // x = m 2^e with m in [0.5, 1): m keeps x's mantissa, e its unbiased exponent + 1.
  const NormalLanes m = from_bits((bits & 0x800FFFFFFFFFFFFFULL) | 0x3FE0000000000000ULL);
  NormalLanes e = from_bits((bits >> 52) | 0x4330000000000000ULL) - (0x1.0p52 + 1022.0);
  // m < sqrt(1/2): t = 2m - 1 and e - 1, else t = m - 1 (Eigen's order of operations).
  const PhiloxLanes below = (PhiloxLanes)(m < 0.70710678118654752440E0);
  const NormalLanes one = NormalLanes{} + 1.0;
  e = e - from_bits(to_bits(one) & below);
  const NormalLanes t = (m - 1.0) + from_bits(to_bits(m) & below);
  const NormalLanes t2 = t * t;
  const NormalLanes t3 = t2 * t;
  auto c = [](double v) { return NormalLanes{} + v; };
  // P(t) and Q(t) (degree 5), each as two halves joined by t^3.
  NormalLanes p = fmadd_lanes(c(1.01875663804580931796E-4), t, c(4.97494994976747001425E-1));
  NormalLanes p1 = fmadd_lanes(c(1.44989225341610930846E1), t, c(1.79368678507819816313E1));
  p = fmadd_lanes(p, t, c(4.70579119878881725854E0));
  p1 = fmadd_lanes(p1, t, c(7.70838733755885391666E0));
  p = fmadd_lanes(p, t3, p1);
  NormalLanes q = fmadd_lanes(one, t, c(1.12873587189167450590E1));
  NormalLanes q1 = fmadd_lanes(c(8.29875266912776603211E1), t, c(7.11544750618563894466E1));
  q = fmadd_lanes(q, t, c(4.52279145837532221105E1));
  q1 = fmadd_lanes(q1, t, c(2.31251620126765340583E1));
  q = fmadd_lanes(q, t3, q1);
  NormalLanes y = (p * t3) / q;
  y = fmadd_lanes(c(-0.5), t2, y);
  return fmadd_lanes(e, c(0.693147180559945309417232121458), t + y);
}

inline NormalLanes sqrt_lanes(NormalLanes x) {
  for (int t = 0; t < kPhiloxLanes; ++t) x[t] = std::sqrt(x[t]);  // vsqrtpd (no errno)
  return x;
}

// (w >> 11) 2^-53 in every lane: a uniform in [0, 1), exact.
inline NormalLanes uniform_lanes(PhiloxLanes w) {
  constexpr double kScale = 0x1.0p-53;
  w >>= 11;
#if defined(__AVX512DQ__)
  typedef std::int64_t IV __attribute__((vector_size(kernels::kVectorBytes)));
  return __builtin_convertvector(__builtin_convertvector(w, IV), NormalLanes) * kScale;
#else
  // No 64-bit integer conversion: split w < 2^53 into 2^32 hi + lo and build both halves in
  // the mantissas of 2^84 and 2^52 (all steps exact).
  const PhiloxLanes hi = (w >> 32) | 0x4530000000000000ULL;      // 2^84 + hi 2^32
  const PhiloxLanes lo = (w & 0xFFFFFFFFULL) | 0x4330000000000000ULL;  // 2^52 + lo
  return ((from_bits(hi) - 0x1.00000001p84) + from_bits(lo)) * kScale;  // 2^84 + 2^52
#endif
}

// cos and sin of 2 pi u for the uniform u = (w >> 11) 2^-53 of every lane: quadrant
// q = floor(4u), offset x from the quadrant's centre (q + 1/2) pi/2 with |x| <= pi/4, Taylor
// polynomials to x^17 / x^18 (truncation below 1e-16). Branch-free and read from the word's
// bits: q is its top two bits, 4u - q = (bits 61..11) 2^-51 (exact through the mantissa of
// 2^52), and the centre's cosine and sine, +-sqrt(2)/2 with signs (+,+), (-,+), (-,-), (+,-)
// for q = 0..3, get their sign bits from bit 63 xor bit 62 (cosine) and bit 63 (sine).
inline void cos_sin_turn_lanes(PhiloxLanes w, NormalLanes& c, NormalLanes& s) {
  constexpr double kHalfSqrt2 = 0.70710678118654752440;
  constexpr std::uint64_t kSign = 0x8000000000000000ULL;
  const NormalLanes f = (from_bits(((w << 2) >> 13) | 0x4330000000000000ULL) - 0x1.0p52) * 0x1.0p-51;
  const NormalLanes x = (f - 0.5) * 1.57079632679489661923;
  const NormalLanes x2 = x * x;
  const NormalLanes sin_x =
      x * (1.0 + x2 * (-1.0 / 6 + x2 * (1.0 / 120 + x2 * (-1.0 / 5040 + x2 * (1.0 / 362880 +
           x2 * (-1.0 / 39916800 + x2 * (1.0 / 6227020800.0 + x2 * (-1.0 / 1307674368000.0 +
           x2 * (1.0 / 355687428096000.0)))))))));
  const NormalLanes cos_x =
      1.0 + x2 * (-0.5 + x2 * (1.0 / 24 + x2 * (-1.0 / 720 + x2 * (1.0 / 40320 +
            x2 * (-1.0 / 3628800 + x2 * (1.0 / 479001600.0 + x2 * (-1.0 / 87178291200.0 +
            x2 * (1.0 / 20922789888000.0 + x2 * (-1.0 / 6402373705728000.0)))))))));
  const PhiloxLanes centre = to_bits(NormalLanes{} + kHalfSqrt2);
  const NormalLanes cc = from_bits(centre ^ ((w ^ (w << 1)) & kSign));
  const NormalLanes sc = from_bits(centre ^ (w & kSign));
  c = cc * cos_x - sc * sin_x;
  s = sc * cos_x + cc * sin_x;
}

// The Box-Muller pair of every lane from its words (w_radius, w_angle).
inline void box_muller_lanes(PhiloxLanes w_radius, PhiloxLanes w_angle, NormalLanes& z_cos,
                             NormalLanes& z_sin) {
  const NormalLanes r = sqrt_lanes(-2.0 * log_unit_lanes(1.0 - uniform_lanes(w_radius)));
  NormalLanes c, s;
  cos_sin_turn_lanes(w_angle, c, s);
  z_cos = r * c;
  z_sin = r * s;
}

// Normals 4b .. 4b + 3 of every lane's stream from its block b (x0 .. x3).
inline void block_normals_lanes(PhiloxLanes x0, PhiloxLanes x1, PhiloxLanes x2, PhiloxLanes x3,
                                NormalLanes z[4]) {
  box_muller_lanes(x0, x1, z[0], z[1]);
  box_muller_lanes(x2, x3, z[2], z[3]);
}
}  // namespace detail

// Writes n standard normals of the stream (seed, stream, step, purpose) into out; its blocks
// kPhiloxLanes at a time, one per lane.
inline void standard_normals(std::uint64_t seed, std::uint64_t stream, std::uint64_t step,
                             Purpose purpose, double* out, Index n) {
  using V = detail::PhiloxLanes;
  constexpr int L = kPhiloxLanes;
  const V k0 = V{} + seed, k1 = V{} + stream;
  for (Index b = 0; 4 * b < n; b += L) {
    V x0, x1 = V{} + step, x2 = V{} + static_cast<std::uint64_t>(purpose), x3 = V{};
    for (int t = 0; t < L; ++t) x0[t] = static_cast<std::uint64_t>(b + t);
    detail::philox4x64_10_rounds(x0, x1, x2, x3, k0, k1);
    detail::NormalLanes z[4];
    detail::block_normals_lanes(x0, x1, x2, x3, z);
    const Index first = 4 * b, count = std::min<Index>(4 * L, n - first);
    double* o = out + first;
    if (count == 4 * L) {
      for (int t = 0; t < L; ++t)
        for (int j = 0; j < 4; ++j) o[4 * t + j] = z[j][t];
    } else {
      for (Index i = 0; i < count; ++i) o[i] = z[i % 4][i / 4];
    }
  }
}

// Standard normals of kNormalLanes streams at once, one per lane: lane t draws from
// (seed, streams[t], steps[t], purpose), its normal i goes to out[i * kNormalLanes + t]
// (i < n). Every lane's values equal standard_normals on its stream.
inline void standard_normals_lanes(std::uint64_t seed, const std::uint64_t* streams,
                                   const std::uint64_t* steps, Purpose purpose, double* out,
                                   Index n) {
  using V = detail::PhiloxLanes;
  constexpr int L = kNormalLanes;
  V k1, step;
  std::memcpy(&k1, streams, sizeof(k1));
  std::memcpy(&step, steps, sizeof(step));
  const V k0 = V{} + seed;
  for (Index b = 0; 4 * b < n; ++b) {
    V x0 = V{} + static_cast<std::uint64_t>(b), x1 = step,
      x2 = V{} + static_cast<std::uint64_t>(purpose), x3 = V{};
    detail::philox4x64_10_rounds(x0, x1, x2, x3, k0, k1);
    detail::NormalLanes z[4];
    detail::block_normals_lanes(x0, x1, x2, x3, z);
    for (int j = 0; j < 4 && 4 * b + j < n; ++j) kernels::store<double>(out + (4 * b + j) * L, z[j]);
  }
}

}  // namespace grokescape
