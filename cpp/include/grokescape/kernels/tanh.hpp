// The tanh activation of a block of values, in place and vectorised (std::tanh is a scalar
// library call that made a tanh step ~20x slower than a linear one). Used by the step
// kernels and by the exact evaluation in network.hpp, so both compute the same activations.
//
// Computed in double for float and double:
//   |x| < 1/2:  the odd Taylor series x - x^3/3 + 2x^5/15 - ... to x^33 (coefficients from
//               T' = 1 - T^2, exact rationals rounded once; truncation < 1e-17 relative);
//   |x| >= 1/2: sign(x) (1 - 2 / (exp(2|x|) + 1)) with Eigen's vectorised exp (the
//               subtraction loses at most ~1 bit here since tanh(1/2) > 0.46).
// Error a few ulp (tests hold it against numpy.tanh); NaN stays NaN; +-large gives +-1.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "grokescape/layout.hpp"

namespace grokescape::kernels {

namespace detail {
// Taylor coefficients of tanh(x) / x in powers of x^2 (1, -1/3, 2/15, -17/315, ...).
inline constexpr double kTanhSeries[17] = {
    1.0,
    -0.3333333333333333,
    0.13333333333333333,
    -0.05396825396825397,
    0.021869488536155203,
    -0.008863235529902197,
    0.003592128036572481,
    -0.0014558343870513183,
    0.000590027440945586,
    -0.00023912911424355248,
    9.691537956929451e-05,
    -3.927832388331683e-05,
    1.5918905069328964e-05,
    -6.451689215655431e-06,
    2.6147711512907546e-06,
    -1.0597268320104654e-06,
    4.294911078273806e-07,
};
}  // namespace detail

template <class S>
inline void tanh_in_place(S* v, Index n) {
  constexpr Index kChunk = 32;
  using Chunk = Eigen::Array<double, kChunk, 1>;
  Chunk x, small, big;
  for (Index start = 0; start < n; start += kChunk) {
    const Index m = std::min(kChunk, n - start);
    S* __restrict block = v + start;
    for (Index j = 0; j < m; ++j) x[j] = static_cast<double>(block[j]);
    for (Index j = m; j < kChunk; ++j) x[j] = 0.0;
    const Chunk a = x.abs();
    big = 1.0 - 2.0 / ((2.0 * a).exp() + 1.0);
    const Chunk a2 = a * a;
    small = Chunk::Constant(detail::kTanhSeries[16]);
    for (int k = 15; k >= 0; --k) small = small * a2 + detail::kTanhSeries[k];
    small *= a;
    for (Index j = 0; j < m; ++j)  // a >= 1/2 fails for NaN, which the series keeps
      block[j] = static_cast<S>(std::copysign(a[j] >= 0.5 ? big[j] : small[j], x[j]));
  }
}

}  // namespace grokescape::kernels
