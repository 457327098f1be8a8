// Singular values of a real matrix (the end-to-end map of a network: records, observables and
// the singular-value escape criterion), by one-sided Jacobi (Hestenes): the columns of the
// matrix are rotated in pairs until every pair is orthogonal to working precision; the
// singular values are then the column norms. It replaces Eigen's two-sided JacobiSVD here.
// Accuracy: relative for the small singular values of matrices whose columns or rows are
// graded (Demmel & Veselic, SIAM J. Matrix Anal. Appl. 13, 1992), about eps * largest
// otherwise; on 16 x 16 matrices graded over 12 decades the largest relative error was 2.5e-15
// (columns) and 4.1e-15 (rows), JacobiSVD's 6.7e-13 and 7.8e-9. Speed: the columns are
// contiguous, so the inner products of a pair and its rotation are vector loops, and a sweep
// visits the pairs in round-robin order, n/2 disjoint pairs at a time, whose rotation angles
// are independent and computed together.
// tests/test_singular_values.py holds the values to a 40-digit reference; README's speed
// section and benchmarks/test_kernels.py (-k observables) compare it with JacobiSVD.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "grokescape/kernels/simd.hpp"

namespace grokescape {

class SingularValues {
 public:
  // The min(rows, cols) singular values of a, largest first. a must be finite (callers check).
  // Entries are scaled by the largest |a_ij| first, so nothing overflows; singular values
  // below about 1e-150 times that entry may come out as 0 (their squares underflow).
  const Eigen::VectorXd& compute(const Eigen::MatrixXd& a) {
    const bool tall = a.rows() >= a.cols();
    const Index m = tall ? a.rows() : a.cols(), n = tall ? a.cols() : a.rows();
    values_.setZero(n);
    const double scale = n > 0 ? a.cwiseAbs().maxCoeff() : 0.0;
    if (!(scale > 0.0)) return values_;
    // columns of work_ (m x n, column-major): the columns of a, or its rows when it is wide
    if (tall)
      work_ = a / scale;
    else
      work_ = a.transpose() / scale;
    rotate_until_orthogonal(m, n);
    for (Index j = 0; j < n; ++j) values_[j] = work_.col(j).norm() * scale;
    std::sort(values_.data(), values_.data() + n, [](double u, double v) { return u > v; });
    return values_;
  }

  // Sweeps the last compute() took (at most kMaxSweeps; a sweep without a rotation ends it).
  int sweeps() const { return sweeps_; }

  static constexpr int kMaxSweeps = 60;

 private:
  using V = kernels::Vector<double>;
  static constexpr int L = kernels::kLanes<double>;

  // x.x, y.y and x.y over n entries: two vectors of partial sums each (entry i into lane
  // i mod 2L), so that the chains of additions are half as long; the tail of n mod 2L entries
  // is added in order, then the lanes pairwise.
  static void dots(const double* x, const double* y, Index n, double& xx, double& yy, double& xy) {
    V a0{}, b0{}, c0{}, a1{}, b1{}, c1{};
    Index i = 0;
    for (; i + 2 * L <= n; i += 2 * L) {
      const V x0 = kernels::load<double>(x + i), y0 = kernels::load<double>(y + i);
      const V x1 = kernels::load<double>(x + i + L), y1 = kernels::load<double>(y + i + L);
      a0 += x0 * x0;
      b0 += y0 * y0;
      c0 += x0 * y0;
      a1 += x1 * x1;
      b1 += y1 * y1;
      c1 += x1 * y1;
    }
    double ta = 0.0, tb = 0.0, tc = 0.0;
    for (Index j = i; j < n; ++j) {
      ta += x[j] * x[j];
      tb += y[j] * y[j];
      tc += x[j] * y[j];
    }
    xx = kernels::lane_sum<double>(a0 + a1) + ta;
    yy = kernels::lane_sum<double>(b0 + b1) + tb;
    xy = kernels::lane_sum<double>(c0 + c1) + tc;
  }

  // Cyclic sweeps in round-robin order: n (rounded up to even) players, player 0 fixed and
  // the others rotating one seat per round; in each round seat i plays seat n - 1 - i. A
  // pair (p, q), p < q, is rotated when |x_p.x_q| > sqrt(m) eps |x_p| |x_q| (the tolerance
  // of LAPACK's dgesvj) by the rotation that makes the two columns orthogonal.
  void rotate_until_orthogonal(Index m, Index n) {
    const Index players = n + (n & 1), pairs = players / 2;
    seat_.resize(static_cast<std::size_t>(players));
    for (Index i = 0; i < players; ++i) seat_[i] = i;
    p_.resize(pairs);
    q_.resize(pairs);
    xx_.resize(pairs);
    yy_.resize(pairs);
    xy_.resize(pairs);
    c_.resize(pairs);
    s_.resize(pairs);
    const double tol = std::sqrt(static_cast<double>(m)) * std::numeric_limits<double>::epsilon();
    double* cols = work_.data();
    sweeps_ = 0;
    while (sweeps_ < kMaxSweeps) {
      ++sweeps_;
      bool rotated = false;
      for (Index round = 0; round + 1 < players; ++round) {
        Index k = 0;
        for (Index i = 0; i < pairs; ++i) {
          Index p = seat_[i], q = seat_[players - 1 - i];
          if (p >= n || q >= n) continue;  // the spare player of odd n
          if (p > q) std::swap(p, q);
          p_[k] = p;
          q_[k] = q;
          ++k;
        }
        for (Index j = 0; j < k; ++j) dots(cols + p_[j] * m, cols + q_[j] * m, m, xx_[j], yy_[j], xy_[j]);
        for (Index j = 0; j < k; ++j) {  // branch-free, so it vectorises over the round's pairs
          const double g = xy_[j];
          const bool rotate = std::abs(g) > tol * std::sqrt(xx_[j]) * std::sqrt(yy_[j]);
          // zeta = cot(2 theta); t = tan(theta), the smaller root of t^2 + 2 zeta t - 1 = 0
          const double zeta = (yy_[j] - xx_[j]) / (2.0 * (rotate ? g : 1.0));
          const double az = std::abs(zeta);
          const double root = az > 1e100 ? az : std::sqrt(1.0 + zeta * zeta);
          const double t = std::copysign(1.0, zeta) / (az + root);
          const double c = 1.0 / std::sqrt(1.0 + t * t);
          c_[j] = rotate ? c : 1.0;
          s_[j] = rotate ? c * t : 0.0;
        }
        bool any = false;
        for (Index j = 0; j < k; ++j) any = any || s_[j] != 0.0;
        if (any) {
          rotated = true;
          for (Index j = 0; j < k; ++j) {
            if (s_[j] == 0.0) continue;
            double* __restrict x = cols + p_[j] * m;
            double* __restrict y = cols + q_[j] * m;
            const double c = c_[j], s = s_[j];
            for (Index i = 0; i < m; ++i) {
              const double xi = x[i], yi = y[i];
              x[i] = c * xi - s * yi;
              y[i] = s * xi + c * yi;
            }
          }
        }
        const Index last = seat_[players - 1];
        for (Index i = players - 1; i > 1; --i) seat_[i] = seat_[i - 1];
        seat_[1] = last;
      }
      if (!rotated) break;
    }
  }

  Eigen::MatrixXd work_;
  Eigen::VectorXd values_;
  std::vector<Index> seat_, p_, q_;
  std::vector<double> xx_, yy_, xy_, c_, s_;
  int sweeps_ = 0;
};

}  // namespace grokescape
