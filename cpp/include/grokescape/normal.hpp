// Standard normal draws from the counter-based generator, in blocks (used for Langevin
// noise every step, so it is vectorised).
//
// Definition (the same everywhere in grokescape): the stream (seed, stream, step, purpose)
// yields 64-bit words w_0, w_1, ... (Philox blocks with counters (0, step, purpose, 0),
// (1, step, purpose, 0), ...). Uniforms are u_j = (w_j >> 11) 2^-53. Normal pair j is the
// Box-Muller transform of (u_{2j}, u_{2j+1}):
//     z_{2j} = r cos(2 pi u_{2j+1}),  z_{2j+1} = r sin(2 pi u_{2j+1}),  r = sqrt(-2 ln(1 - u_{2j})).
// The cosine and sine are evaluated by octant reduction and polynomials accurate to a few
// ulp, the logarithm by Eigen's vectorised log. tests/test_rng.py holds the draws against
// the same formula evaluated by numpy.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "grokescape/layout.hpp"
#include "grokescape/philox.hpp"

namespace grokescape {

namespace detail {
// cos and sin of 2 pi u for u in [0, 1).
inline void cos_sin_turn(double u, double& c, double& s) {
  // Octant k and offset x from its centre (k + 1/2) pi/4, |x| <= pi/8.
  static constexpr double kSin8 = 0.38268343236508977173;  // sin(pi/8)
  static constexpr double kCos8 = 0.92387953251128675613;  // cos(pi/8)
  static constexpr double kCentreSin[8] = {kSin8,  kCos8,  kCos8,  kSin8,
                                           -kSin8, -kCos8, -kCos8, -kSin8};
  static constexpr double kCentreCos[8] = {kCos8,  kSin8,  -kSin8, -kCos8,
                                           -kCos8, -kSin8, kSin8,  kCos8};
  const double t = u * 8.0;
  const int k = static_cast<int>(t);
  const double x = (t - k - 0.5) * 0.78539816339744830962;  // pi/4
  const double x2 = x * x;
  const double sin_x =
      x * (1.0 + x2 * (-1.0 / 6 + x2 * (1.0 / 120 + x2 * (-1.0 / 5040 + x2 * (1.0 / 362880 +
           x2 * (-1.0 / 39916800 + x2 * (1.0 / 6227020800.0)))))));
  const double cos_x =
      1.0 + x2 * (-0.5 + x2 * (1.0 / 24 + x2 * (-1.0 / 720 + x2 * (1.0 / 40320 +
            x2 * (-1.0 / 3628800 + x2 * (1.0 / 479001600.0 + x2 * (-1.0 / 87178291200.0)))))));
  s = kCentreSin[k] * cos_x + kCentreCos[k] * sin_x;
  c = kCentreCos[k] * cos_x - kCentreSin[k] * sin_x;
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
    for (Index b = 0; b < blocks; ++b) {
      const Counter block =
          philox4x64_10(Counter{static_cast<std::uint64_t>(b), step, purpose_word, 0}, key);
      for (int j = 0; j < 4; ++j) words_[4 * b + j] = block[j];
    }
    constexpr double kScale = 0x1.0p-53;
    for (Index j = 0; j < pairs; ++j)
      radius_[j] = 1.0 - static_cast<double>(words_[2 * j] >> 11) * kScale;  // (0, 1]
    radius_ = (-2.0 * radius_.log()).sqrt();
    for (Index j = 0; j < pairs; ++j) {
      double c, s;
      detail::cos_sin_turn(static_cast<double>(words_[2 * j + 1] >> 11) * kScale, c, s);
      out[2 * j] = radius_[j] * c;
      if (2 * j + 1 < n) out[2 * j + 1] = radius_[j] * s;
    }
  }

 private:
  std::vector<std::uint64_t> words_;
  Eigen::ArrayXd radius_;
};

}  // namespace grokescape
