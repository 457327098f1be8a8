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
#include <cstdint>
#include <vector>

#include "grokescape/kernels/simd.hpp"
#include "grokescape/layout.hpp"
#include "grokescape/philox.hpp"

namespace grokescape {

namespace detail {
// cos and sin of 2 pi u for u in [0, 1): quadrant q = floor(4u), offset x from the quadrant's
// centre (q + 1/2) pi/2 with |x| <= pi/4, Taylor polynomials to x^17 / x^18 (truncation
// below 1e-16). Branch-free, so loops over it vectorise.
inline void cos_sin_turn(double u, double& c, double& s) {
  constexpr double kHalfSqrt2 = 0.70710678118654752440;
  const double t = u * 4.0;
  const std::int64_t q = static_cast<std::int64_t>(t);
  const double x = (t - static_cast<double>(q) - 0.5) * 1.57079632679489661923;  // pi/2
  const double x2 = x * x;
  const double sin_x =
      x * (1.0 + x2 * (-1.0 / 6 + x2 * (1.0 / 120 + x2 * (-1.0 / 5040 + x2 * (1.0 / 362880 +
           x2 * (-1.0 / 39916800 + x2 * (1.0 / 6227020800.0 + x2 * (-1.0 / 1307674368000.0 +
           x2 * (1.0 / 355687428096000.0)))))))));
  const double cos_x =
      1.0 + x2 * (-0.5 + x2 * (1.0 / 24 + x2 * (-1.0 / 720 + x2 * (1.0 / 40320 +
            x2 * (-1.0 / 3628800 + x2 * (1.0 / 479001600.0 + x2 * (-1.0 / 87178291200.0 +
            x2 * (1.0 / 20922789888000.0 + x2 * (-1.0 / 6402373705728000.0)))))))));
  // cos and sin of the centre are +-sqrt(2)/2: signs (+,+), (-,+), (-,-), (+,-) for q = 0..3
  const double cc = kHalfSqrt2 * static_cast<double>(1 - 2 * (((q + 1) >> 1) & 1));
  const double sc = kHalfSqrt2 * static_cast<double>(1 - 2 * ((q >> 1) & 1));
  c = cc * cos_x - sc * sin_x;
  s = sc * cos_x + cc * sin_x;
}
// The same for n angles, vectorised (the scalar function on each lane's values).
inline void cos_sin_turn_all(const double* u, double* c, double* s, Index n) {
  constexpr int L = kernels::kLanes<double>;
  using V = kernels::Vector<double>;
  typedef std::int64_t IV __attribute__((vector_size(kernels::kVectorBytes)));
  Index j = 0;
  for (; j + L <= n; j += L) {
    const V t = kernels::load<double>(u + j) * 4.0;
    const IV q = __builtin_convertvector(t, IV);
    const V x = (t - __builtin_convertvector(q, V) - 0.5) * 1.57079632679489661923;
    const V x2 = x * x;
    const V sin_x =
        x * (1.0 + x2 * (-1.0 / 6 + x2 * (1.0 / 120 + x2 * (-1.0 / 5040 + x2 * (1.0 / 362880 +
             x2 * (-1.0 / 39916800 + x2 * (1.0 / 6227020800.0 + x2 * (-1.0 / 1307674368000.0 +
             x2 * (1.0 / 355687428096000.0)))))))));
    const V cos_x =
        1.0 + x2 * (-0.5 + x2 * (1.0 / 24 + x2 * (-1.0 / 720 + x2 * (1.0 / 40320 +
              x2 * (-1.0 / 3628800 + x2 * (1.0 / 479001600.0 + x2 * (-1.0 / 87178291200.0 +
              x2 * (1.0 / 20922789888000.0 + x2 * (-1.0 / 6402373705728000.0)))))))));
    const V cc = 0.70710678118654752440 * __builtin_convertvector(1 - 2 * (((q + 1) >> 1) & 1), V);
    const V sc = 0.70710678118654752440 * __builtin_convertvector(1 - 2 * ((q >> 1) & 1), V);
    kernels::store<double>(c + j, cc * cos_x - sc * sin_x);
    kernels::store<double>(s + j, sc * cos_x + cc * sin_x);
  }
  for (; j < n; ++j) cos_sin_turn(u[j], c[j], s[j]);
}
}  // namespace detail

// Scratch space for NormalBlock; reused between calls, grows when needed.
class NormalSource {
 public:
  // Writes n standard normals of the stream (seed, stream, step, purpose) into out.
  void fill(std::uint64_t seed, std::uint64_t stream, std::uint64_t step, Purpose purpose,
            double* out, Index n) {
    if (n <= 0) return;
    const Index pairs = (n + 1) / 2;
    const Index blocks = (2 * pairs + 3) / 4;
    words_.resize(static_cast<std::size_t>(4 * blocks));
    radius_.resize(pairs);
    const Key key{seed, stream};
    const std::uint64_t purpose_word = static_cast<std::uint64_t>(purpose);
    // Blocks are independent: kPhiloxLanes at a time in vector lanes, then two at a time
    // (two multiply chains in flight).
    Index b = 0;
    for (; b + kPhiloxLanes <= blocks; b += kPhiloxLanes)
      philox4x64_10_lanes(static_cast<std::uint64_t>(b), step, purpose_word, 0, key, words_.data() + 4 * b);
    for (; b + 2 <= blocks; b += 2) {
      Counter c0, c1;
      philox4x64_10_x2(Counter{static_cast<std::uint64_t>(b), step, purpose_word, 0},
                       Counter{static_cast<std::uint64_t>(b + 1), step, purpose_word, 0}, key, c0,
                       c1);
      for (int j = 0; j < 4; ++j) {
        words_[4 * b + j] = c0[j];
        words_[4 * b + 4 + j] = c1[j];
      }
    }
    for (; b < blocks; ++b) {
      const Counter block =
          philox4x64_10(Counter{static_cast<std::uint64_t>(b), step, purpose_word, 0}, key);
      for (int j = 0; j < 4; ++j) words_[4 * b + j] = block[j];
    }
    constexpr double kScale = 0x1.0p-53;
    angle_.resize(pairs);
    for (Index j = 0; j < pairs; ++j) {  // (w >> 11) < 2^53: exact as a signed integer
      radius_[j] = 1.0 - static_cast<double>(static_cast<std::int64_t>(words_[2 * j] >> 11)) * kScale;
      angle_[j] = static_cast<double>(static_cast<std::int64_t>(words_[2 * j + 1] >> 11)) * kScale;
    }
    radius_ = (-2.0 * radius_.log()).sqrt();  // radius_ held 1 - u in (0, 1]
    cos_.resize(pairs);
    sin_.resize(pairs);
    detail::cos_sin_turn_all(angle_.data(), cos_.data(), sin_.data(), pairs);
    for (Index j = 0; j < n / 2; ++j) {
      out[2 * j] = radius_[j] * cos_[j];
      out[2 * j + 1] = radius_[j] * sin_[j];
    }
    if (n % 2) out[n - 1] = radius_[pairs - 1] * cos_[pairs - 1];
  }

 private:
  std::vector<std::uint64_t> words_;
  Eigen::ArrayXd radius_, angle_, cos_, sin_;
};

}  // namespace grokescape
