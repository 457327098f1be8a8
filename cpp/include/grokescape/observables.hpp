// Exact observables of one member, evaluated in the core: MSE on a data set, total loss,
// the end-to-end map, its singular values, the per-mode amplitudes lambda_i = u_i^T W v_i
// on the data's modes, and the reduced per-mode energy of physics.md section 4:
//   E_i(lambda) = 1/2 (lambda - eta_i)^2 + (L beta / 2) |lambda|^(2/L).
// Everything is accumulated in double, also for float32 networks.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <type_traits>

#include "grokescape/layout.hpp"
#include "grokescape/network.hpp"

namespace grokescape {

// A data set as the core sees it: x is a C-contiguous (n, d_in) array, y is (n, d_out).
template <class Scalar>
struct DataRef {
  const Scalar* x = nullptr;
  const Scalar* y = nullptr;
  Index n = 0;
};

// The data's modes: rows of out_vec are u_i (length d_out), rows of in_vec are v_i
// (length d_in), eta are the empirical mode strengths eta_hat_i.
struct ModeSpec {
  Index n_modes = 0;
  const double* out_vec = nullptr;
  const double* in_vec = nullptr;
  const double* eta = nullptr;
};

// Reduced per-mode energy (consistent convention, L beta / 2 on the regulariser).
inline double mode_energy(double lambda, double eta, double beta, Index depth) {
  const double d = lambda - eta;
  const double reg = 0.5 * static_cast<double>(depth) * beta *
                     std::pow(std::abs(lambda), 2.0 / static_cast<double>(depth));
  return 0.5 * d * d + reg;
}

// Sum over all samples of ||f(x) - y||^2 through the layers, in chunks of the workspace's
// capacity (networks with an activation).
template <class Scalar, Activation Act>
double layered_squared_error(const Layout& layout, const Scalar* params, const DataRef<Scalar>& data,
                             Workspace<Scalar>& ws) {
  double total = 0.0;
  for (Index start = 0; start < data.n; start += ws.capacity) {
    const Index count = std::min(ws.capacity, data.n - start);
    SampleMap<Scalar> x(data.x + start * layout.d_in(), layout.d_in(), count);
    SampleMap<Scalar> y(data.y + start * layout.d_out(), layout.d_out(), count);
    forward<Scalar, Act>(layout, params, x, ws);
    total += squared_error(layout, y, ws);
  }
  return total;
}

// End-to-end map W_L ... W_1 (d_out x d_in) in double.
template <class Scalar>
Eigen::MatrixXd end_to_end(const Layout& layout, const Scalar* params) {
  Eigen::MatrixXd map = weight<Scalar>(layout, params, 0).template cast<double>();
  for (Index l = 1; l < layout.depth(); ++l)
    map = (weight<Scalar>(layout, params, l).template cast<double>() * map).eval();
  return map;
}

// A linear network's function f(x) = map x + offset in double: the end-to-end map and, with
// biases, offset = f(0) (empty without biases).
struct AffineMap {
  Eigen::MatrixXd map;
  Eigen::VectorXd offset;
};
template <class Scalar>
AffineMap affine_map(const Layout& layout, const Scalar* params) {
  AffineMap f{end_to_end(layout, params), Eigen::VectorXd()};
  if (layout.bias) {
    f.offset = bias<Scalar>(layout, params, 0).template cast<double>();
    for (Index l = 1; l < layout.depth(); ++l)
      f.offset = (weight<Scalar>(layout, params, l).template cast<double>() * f.offset +
                  bias<Scalar>(layout, params, l).template cast<double>())
                     .eval();
  }
  return f;
}

// Whether a linear network's errors are cheaper through its affine map (d_out x d_in
// multiply-adds per sample) than through its layers (sum of in x out): all but networks with
// a bottleneck narrower than their ends.
inline bool affine_pays(const Layout& layout) {
  return layout.d_in() * layout.d_out() <= layout.n_weights();
}

// Sum over all samples of ||f(x) - y||^2 for a linear network, through its affine map in
// double (float32 networks too: their function is evaluated to double rounding, not through
// float32 layers).
template <class Scalar>
double affine_squared_error(const AffineMap& f, const DataRef<Scalar>& data, Workspace<Scalar>& ws) {
  const Index d_in = f.map.cols(), d_out = f.map.rows();
  double total = 0.0;
  for (Index start = 0; start < data.n; start += ws.capacity) {
    const Index count = std::min(ws.capacity, data.n - start);
    SampleMap<Scalar> x(data.x + start * d_in, d_in, count);
    SampleMap<Scalar> y(data.y + start * d_out, d_out, count);
    auto r = ws.residuals.leftCols(count);
    if constexpr (std::is_same_v<Scalar, double>) {
      r.noalias() = f.map * x;
    } else {
      auto xd = ws.inputs.leftCols(count);
      xd = x.template cast<double>();
      r.noalias() = f.map * xd;
    }
    r -= y.template cast<double>();
    if (f.offset.size() > 0) r.colwise() += f.offset;
    total += r.squaredNorm();
  }
  return total;
}

// Sum over all samples of ||f(x) - y||^2, accumulated in double.
template <class Scalar, Activation Act>
double dataset_squared_error(const Layout& layout, const Scalar* params, const DataRef<Scalar>& data,
                             Workspace<Scalar>& ws) {
  if constexpr (Act == Activation::kLinear)
    if (affine_pays(layout)) return affine_squared_error(affine_map(layout, params), data, ws);
  return layered_squared_error<Scalar, Act>(layout, params, data, ws);
}

// Sum of squared weights, and of squared biases.
template <class Scalar>
void squared_norms(const Layout& layout, const Scalar* params, double& weights, double& biases) {
  weights = 0.0;
  biases = 0.0;
  for (Index l = 0; l < layout.depth(); ++l) {
    weights += weight<Scalar>(layout, params, l).template cast<double>().squaredNorm();
    if (layout.bias) biases += bias<Scalar>(layout, params, l).template cast<double>().squaredNorm();
  }
}

// Where one member's observables go (each pointer to this member's slot; may be null).
struct ObservableSlot {
  double* train_mse = nullptr;
  double* test_mse = nullptr;
  double* loss = nullptr;
  double* lam = nullptr;     // n_modes values
  double* sv = nullptr;      // min(d_in, d_out) values, descending
  double* energy = nullptr;  // n_modes values
};

template <class Scalar, Activation Act>
void evaluate_member(const Layout& layout, const Scalar* params, const DataRef<Scalar>& train,
                     const DataRef<Scalar>& test, const ModeSpec& modes, double beta,
                     bool decay_bias, Workspace<Scalar>& ws, const ObservableSlot& out) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double d_out = static_cast<double>(layout.d_out());
  // linear networks: the map is worked out once, for the errors and the modes
  std::optional<AffineMap> affine;
  if constexpr (Act == Activation::kLinear)
    if (affine_pays(layout)) affine = affine_map(layout, params);
  auto squared_error_on = [&](const DataRef<Scalar>& data) {
    return affine ? affine_squared_error(*affine, data, ws)
                  : layered_squared_error<Scalar, Act>(layout, params, data, ws);
  };
  const double train_se = train.n > 0 ? squared_error_on(train) : nan;
  if (out.train_mse) *out.train_mse = train_se / (static_cast<double>(train.n) * d_out);
  if (out.test_mse)
    *out.test_mse = test.n > 0 ? squared_error_on(test) / (static_cast<double>(test.n) * d_out) : nan;
  if (out.loss) {
    double w2, b2;
    squared_norms(layout, params, w2, b2);
    *out.loss = train_se / (2.0 * static_cast<double>(train.n)) +
                0.5 * beta * (w2 + (decay_bias ? b2 : 0.0));
  }
  if (!out.lam && !out.sv && !out.energy) return;
  const Eigen::MatrixXd map = affine ? std::move(affine->map) : end_to_end(layout, params);
  for (Index i = 0; i < modes.n_modes; ++i) {
    Eigen::Map<const Eigen::VectorXd> u(modes.out_vec + i * layout.d_out(), layout.d_out());
    Eigen::Map<const Eigen::VectorXd> v(modes.in_vec + i * layout.d_in(), layout.d_in());
    const double lam = u.dot(map * v);
    if (out.lam) out.lam[i] = lam;
    if (out.energy) out.energy[i] = mode_energy(lam, modes.eta[i], beta, layout.depth());
  }
  if (out.sv) {
    if (map.allFinite()) {
      const Eigen::VectorXd& s = ws.svd.compute(map);
      for (Index k = 0; k < s.size(); ++k) out.sv[k] = s[k];
    } else {
      for (Index k = 0; k < std::min(layout.d_in(), layout.d_out()); ++k) out.sv[k] = nan;
    }
  }
}

}  // namespace grokescape
