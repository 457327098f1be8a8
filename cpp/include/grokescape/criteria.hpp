// Escape criteria as scores of a member's state: the mode amplitude lambda_i = u_i^T W v_i,
// a singular value of the end-to-end map, or minus the test MSE; larger is further out of
// the trap. Escape runs (escape.hpp) compare a score with a threshold; splitting
// (splitting.hpp) follows its running maximum between interfaces.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "grokescape/layout.hpp"
#include "grokescape/network.hpp"
#include "grokescape/observables.hpp"
#include "grokescape/singular_values.hpp"

namespace grokescape {

enum class CriterionKind : int {
  kModeAmplitude = 0,  // lambda_index = u^T W v > value
  kSingularValue = 1,  // singular value `index` (0 = largest) of W_L...W_1 > value
  kTestMse = 2,        // test MSE < value
};

struct Criterion {
  CriterionKind kind = CriterionKind::kModeAmplitude;
  Index index = 0;
  const double* values = nullptr;  // threshold of each member
  std::int64_t hold = 0;         // steps the criterion must keep holding
  std::int64_t check_every = 1;  // steps between checks
};

// Preallocated buffers for criterion checks (a check allocates nothing).
struct CheckScratch {
  Eigen::VectorXd t, u;
  Eigen::MatrixXd map;
  SingularValues svd;
  Eigen::VectorXd lanes_t, lanes_u;  // (width x lanes) blocks of mode_amplitudes_lanes
  explicit CheckScratch(const Layout& layout, int lanes = 1)
      : t(layout.max_width), u(layout.max_width), map(layout.d_out(), layout.d_in()),
        lanes_t(layout.max_width * lanes), lanes_u(layout.max_width * lanes) {}
};

// W_L ... W_1 v for one input vector, by matrix-vector products, into scratch.t.
template <class S>
const double* chain_apply(const Layout& layout, const S* params, const double* v,
                          CheckScratch& cs) {
  double* cur = cs.t.data();
  double* next = cs.u.data();
  for (Index k = 0; k < layout.d_in(); ++k) cur[k] = v[k];
  for (Index l = 0; l < layout.depth(); ++l) {
    const S* w = params + layout.w_offset[l];
    for (Index i = 0; i < layout.out(l); ++i) {
      double acc = 0.0;
      for (Index k = 0; k < layout.in(l); ++k) acc += static_cast<double>(w[i * layout.in(l) + k]) * cur[k];
      next[i] = acc;
    }
    std::swap(cur, next);
  }
  return cur;
}

// lam[q] = u^T W_L ... W_1 v for the G members of a lane layout (parameter i of lane q at
// p[i * G + q]): chain_apply's arithmetic in every lane (the same products and additions in
// the same order), one pass over the group's parameters instead of a strided copy and a
// dependent scalar chain per member.
template <class S>
void mode_amplitudes_lanes(const Layout& layout, const S* p, int G, const double* v,
                           const double* u, CheckScratch& cs, double* lam) {
  double* cur = cs.lanes_t.data();
  double* next = cs.lanes_u.data();
  for (Index k = 0; k < layout.d_in(); ++k)
    for (int q = 0; q < G; ++q) cur[k * G + q] = v[k];
  for (Index l = 0; l < layout.depth(); ++l) {
    const S* w = p + layout.w_offset[l] * G;
    const Index ni = layout.in(l);
    for (Index i = 0; i < layout.out(l); ++i) {
      double* acc = next + i * G;
      for (int q = 0; q < G; ++q) acc[q] = 0.0;
      for (Index k = 0; k < ni; ++k)
        for (int q = 0; q < G; ++q) acc[q] += static_cast<double>(w[(i * ni + k) * G + q]) * cur[k * G + q];
    }
    std::swap(cur, next);
  }
  for (int q = 0; q < G; ++q) lam[q] = 0.0;
  for (Index i = 0; i < layout.d_out(); ++i)
    for (int q = 0; q < G; ++q) lam[q] += u[i] * cur[i * G + q];
}

// The member's score: larger is further out of the trap. Mode amplitude lambda_index,
// singular value `index` (NaN where the map is not finite), or minus the test MSE.
template <class S, Activation Act>
double criterion_score(CriterionKind kind, Index index, const Layout& layout, const S* params,
                       const DataRef<S>& test, const ModeSpec& modes, Workspace<S>& ws,
                       CheckScratch& cs) {
  switch (kind) {
    case CriterionKind::kModeAmplitude: {
      const double* out = chain_apply(layout, params, modes.in_vec + index * layout.d_in(), cs);
      const double* u = modes.out_vec + index * layout.d_out();
      double lam = 0.0;
      for (Index i = 0; i < layout.d_out(); ++i) lam += u[i] * out[i];
      return lam;
    }
    case CriterionKind::kSingularValue: {
      double unit[64];
      std::vector<double> big;
      double* e = unit;
      if (layout.d_in() > 64) {
        big.assign(static_cast<std::size_t>(layout.d_in()), 0.0);
        e = big.data();
      }
      for (Index j = 0; j < layout.d_in(); ++j) e[j] = 0.0;
      for (Index j = 0; j < layout.d_in(); ++j) {
        e[j] = 1.0;
        const double* col = chain_apply(layout, params, e, cs);
        for (Index i = 0; i < layout.d_out(); ++i) cs.map(i, j) = col[i];
        e[j] = 0.0;
      }
      if (!cs.map.allFinite()) return std::numeric_limits<double>::quiet_NaN();
      return cs.svd.compute(cs.map)[index];
    }
    case CriterionKind::kTestMse: {
      const double mse = dataset_squared_error<S, Act>(layout, params, test, ws) /
                         (static_cast<double>(test.n) * static_cast<double>(layout.d_out()));
      return -mse;
    }
  }
  return std::numeric_limits<double>::quiet_NaN();
}

// A criterion's threshold on the score scale (test MSE < value is score > -value).
inline double threshold_score(CriterionKind kind, double value) {
  return kind == CriterionKind::kTestMse ? -value : value;
}
}  // namespace grokescape
