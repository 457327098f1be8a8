// Standard normal draws from the counter-based generator, in blocks (used for Langevin
// noise every step, so it is vectorised).
//
// Definition (the same everywhere in grokescape): the stream (seed, stream, step, purpose)
// yields 64-bit words w_0, w_1, ... (Philox blocks with counters (0, step, purpose, 0),
// (1, step, purpose, 0), ...). Uniforms are u_j = (w_j >> 11) 2^-53. Normal pair j is the
// Box-Muller transform of (u_{2j}, u_{2j+1}):
//     z_{2j} = r cos(2 pi u_{2j+1}),  z_{2j+1} = r sin(2 pi u_{2j+1}),  r = sqrt(-2 ln(1 - u_{2j})).
// The cosine and sine are evaluated by quadrant reduction and polynomials accurate to a few
// ulp, the logarithm by Eigen's vectorised log. tests/test_rng.py holds the draws against
// the same formula evaluated by numpy.
#pragma once

#include <Eigen/Core>
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

// Natural logarithm of every lane: Eigen's vectorised log on the instruction set's packet
// (the same instructions for every lane, so a draw never depends on its neighbours).
inline NormalLanes log_lanes(NormalLanes x) {
  using Packet = Eigen::internal::packet_traits<double>::type;
  if constexpr (sizeof(Packet) == sizeof(NormalLanes)) {
    Packet p;
    std::memcpy(&p, &x, sizeof(p));
    p = Eigen::internal::plog(p);
    std::memcpy(&x, &p, sizeof(p));
  } else {
    for (int t = 0; t < kPhiloxLanes; ++t) x[t] = std::log(x[t]);
  }
  return x;
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
  NormalLanes dh, dl;
  std::memcpy(&dh, &hi, sizeof(dh));
  std::memcpy(&dl, &lo, sizeof(dl));
  return ((dh - 0x1.00000001p84) + dl) * kScale;  // 0x1.00000001p84 = 2^84 + 2^52
#endif
}

// floor(t) of every lane for 0 <= t < 2^52, exactly. With SSE4.1 / AVX / AVX-512 one rounding
// instruction; without AVX-512DQ a conversion through 64-bit integers has no vector
// instruction and compiles to a scalar conversion per lane: the hottest spot of the AVX2
// Langevin noise (one core of an AMD EPYC (Zen 3): 8.5-9.6 ns per normal with the
// conversions, 7.1-7.8 with the rounding; the draws are bit-identical).
inline NormalLanes floor_lanes(NormalLanes t) {
  // (the vector width follows the same macros as kernels::kVectorBytes)
#if defined(__AVX512F__)
  return (NormalLanes)_mm512_roundscale_pd((__m512d)t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
#elif defined(__AVX__)
  return (NormalLanes)_mm256_round_pd((__m256d)t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
#elif defined(__SSE4_1__)
  return (NormalLanes)_mm_round_pd((__m128d)t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
#else
  typedef std::int64_t IV __attribute__((vector_size(kernels::kVectorBytes)));
  return __builtin_convertvector(__builtin_convertvector(t, IV), NormalLanes);  // t >= 0: trunc
#endif
}

// cos and sin of 2 pi u for u in [0, 1), every lane: quadrant q = floor(4u), offset x from
// the quadrant's centre (q + 1/2) pi/2 with |x| <= pi/4, Taylor polynomials to x^17 / x^18
// (truncation below 1e-16). Branch-free, no integer conversions: the centre's cosine and sine
// are +-sqrt(2)/2 with signs (+,+), (-,+), (-,-), (+,-) for q = 0..3, set by flipping the sign
// bit where q is 1 or 2 (cosine) and where q >= 2 (sine).
inline void cos_sin_turn_lanes(NormalLanes u, NormalLanes& c, NormalLanes& s) {
  typedef std::uint64_t UV __attribute__((vector_size(kernels::kVectorBytes)));
  constexpr double kHalfSqrt2 = 0.70710678118654752440;
  const NormalLanes t = u * 4.0;
  const NormalLanes q = floor_lanes(t);
  const NormalLanes x = (t - q - 0.5) * 1.57079632679489661923;
  const NormalLanes x2 = x * x;
  const NormalLanes sin_x =
      x * (1.0 + x2 * (-1.0 / 6 + x2 * (1.0 / 120 + x2 * (-1.0 / 5040 + x2 * (1.0 / 362880 +
           x2 * (-1.0 / 39916800 + x2 * (1.0 / 6227020800.0 + x2 * (-1.0 / 1307674368000.0 +
           x2 * (1.0 / 355687428096000.0)))))))));
  const NormalLanes cos_x =
      1.0 + x2 * (-0.5 + x2 * (1.0 / 24 + x2 * (-1.0 / 720 + x2 * (1.0 / 40320 +
            x2 * (-1.0 / 3628800 + x2 * (1.0 / 479001600.0 + x2 * (-1.0 / 87178291200.0 +
            x2 * (1.0 / 20922789888000.0 + x2 * (-1.0 / 6402373705728000.0)))))))));
  constexpr std::uint64_t kSign = 0x8000000000000000ULL;
  const NormalLanes centre = NormalLanes{} + kHalfSqrt2;
  UV cc_bits, sc_bits;
  std::memcpy(&cc_bits, &centre, sizeof(centre));
  sc_bits = cc_bits;
  cc_bits ^= (UV)((q == 1.0) | (q == 2.0)) & kSign;
  sc_bits ^= (UV)(q >= 2.0) & kSign;
  NormalLanes cc, sc;
  std::memcpy(&cc, &cc_bits, sizeof(cc));
  std::memcpy(&sc, &sc_bits, sizeof(sc));
  c = cc * cos_x - sc * sin_x;
  s = sc * cos_x + cc * sin_x;
}

// The Box-Muller pair of every lane from its words (w_radius, w_angle).
inline void box_muller_lanes(PhiloxLanes w_radius, PhiloxLanes w_angle, NormalLanes& z_cos,
                             NormalLanes& z_sin) {
  const NormalLanes r = sqrt_lanes(-2.0 * log_lanes(1.0 - uniform_lanes(w_radius)));
  NormalLanes c, s;
  cos_sin_turn_lanes(uniform_lanes(w_angle), c, s);
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
