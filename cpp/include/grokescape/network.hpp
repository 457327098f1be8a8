// One deep network in Eigen: forward and backward pass on a set of samples, for a member
// whose parameters are a flat vector (see layout.hpp). This is the readable formulation,
// used for exact evaluation (observables, loss, gradients); training steps run the
// specialised kernels of kernels/sgd_step.hpp. Both are tested against a NumPy reference.
//
// Conventions (physics.md section 2):
//   loss = 1/(2n) sum_n ||y_n - f(x_n)||^2 + beta/2 sum_l ||W_l||_F^2
// Samples are columns: a C-contiguous (n, d) numpy array is a (d x n) column-major matrix.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <vector>

#include "grokescape/kernels/tanh.hpp"
#include "grokescape/layout.hpp"
#include "grokescape/singular_values.hpp"

namespace grokescape {

template <class Scalar>
using ColMat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
template <class Scalar>
using RowMat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class Scalar>
using Vec = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

// Samples as a feature-major matrix view (d x n) of a C-contiguous (n, d) array.
template <class Scalar>
using SampleMap = Eigen::Map<const ColMat<Scalar>>;

// Per-thread scratch space for evaluating one network shape on up to `capacity` samples.
template <class Scalar>
struct Workspace {
  std::vector<ColMat<Scalar>> acts;  // acts[l]: (widths[l] x capacity), l = 1..L (acts[0] unused)
  ColMat<Scalar> delta, delta_prev;  // (max_width x capacity)
  ColMat<double> inputs, residuals;  // (d_in x capacity), (d_out x capacity): observables.hpp
  SingularValues svd;                 // of the end-to-end map: observables.hpp
  Index capacity = 0;

  Workspace(const Layout& layout, Index batch_capacity) : capacity(batch_capacity) {
    acts.emplace_back(0, 0);
    for (Index l = 0; l < layout.depth(); ++l) acts.emplace_back(layout.out(l), capacity);
    delta.resize(layout.max_width, capacity);
    delta_prev.resize(layout.max_width, capacity);
    inputs.resize(layout.d_in(), capacity);
    residuals.resize(layout.d_out(), capacity);
  }
};

// A member's parameters viewed as matrices.
template <class Scalar, class Ptr>
inline auto weight(const Layout& layout, Ptr params, Index l) {
  using M = std::conditional_t<std::is_const_v<std::remove_pointer_t<Ptr>>, const RowMat<Scalar>,
                               RowMat<Scalar>>;
  return Eigen::Map<M>(params + layout.w_offset[l], layout.out(l), layout.in(l));
}
template <class Scalar, class Ptr>
inline auto bias(const Layout& layout, Ptr params, Index l) {
  using V = std::conditional_t<std::is_const_v<std::remove_pointer_t<Ptr>>, const Vec<Scalar>,
                               Vec<Scalar>>;
  return Eigen::Map<V>(params + layout.b_offset[l], layout.out(l));
}

// Forward pass of a batch x (d_in x B, any Eigen expression of samples as columns); leaves
// the activations of layers 1..L in ws.acts[l].leftCols(B). x itself is not copied.
template <class Scalar, Activation Act, class XType>
inline void forward(const Layout& layout, const Scalar* params, const XType& x,
                    Workspace<Scalar>& ws) {
  const Index batch = x.cols();
  const Index depth = layout.depth();
  for (Index l = 0; l < depth; ++l) {
    auto a_out = ws.acts[l + 1].leftCols(batch);
    if (l == 0)
      a_out.noalias() = weight<Scalar>(layout, params, 0) * x;
    else
      a_out.noalias() = weight<Scalar>(layout, params, l) * ws.acts[l].leftCols(batch);
    if (layout.bias) a_out.colwise() += bias<Scalar>(layout, params, l);
    if constexpr (Act == Activation::kTanh) {
      if (l + 1 < depth) kernels::tanh_in_place(a_out.data(), a_out.size());  // contiguous columns
    }
  }
}

// Sum over the batch of ||f(x_n) - y_n||^2 after forward(); accumulated in double.
template <class Scalar, class YType>
inline double squared_error(const Layout& layout, const YType& y, const Workspace<Scalar>& ws) {
  const Index batch = y.cols();
  const auto& out = ws.acts[layout.depth()];
  double total = 0.0;
  for (Index j = 0; j < batch; ++j)
    for (Index i = 0; i < layout.d_out(); ++i) {
      const double e = static_cast<double>(out(i, j)) - static_cast<double>(y(i, j));
      total += e * e;
    }
  return total;
}

// Backward pass after forward() on the same batch. Walks the layers from the top; for
// each layer l it first forms the error signal of layer l-1 with the current W_l, then calls
// on_layer(l, delta_l, a_{l-1}) where delta_l is (out x B) and the data gradient of the
// layer is G_l = delta_l a_{l-1}^T and g_l = sum over columns of delta_l. on_layer may
// therefore update W_l in place (the layers below no longer need it).
template <class Scalar, Activation Act, class XType, class YType, class OnLayer>
inline void backward(const Layout& layout, const Scalar* params, const XType& x, const YType& y,
                     Workspace<Scalar>& ws, OnLayer&& on_layer) {
  const Index batch = y.cols();
  const Index depth = layout.depth();
  const Scalar inv_batch = Scalar(1) / static_cast<Scalar>(batch);
  ws.delta.topLeftCorner(layout.d_out(), batch) =
      (ws.acts[depth].leftCols(batch) - y) * inv_batch;
  ColMat<Scalar>* cur = &ws.delta;
  ColMat<Scalar>* below = &ws.delta_prev;
  for (Index l = depth - 1; l >= 0; --l) {
    const auto d_l = cur->topLeftCorner(layout.out(l), batch);
    if (l > 0) {
      auto d_below = below->topLeftCorner(layout.in(l), batch);
      d_below.noalias() = weight<Scalar>(layout, params, l).transpose() * d_l;
      if constexpr (Act == Activation::kTanh) {
        const auto a = ws.acts[l].leftCols(batch).array();
        d_below.array() *= (Scalar(1) - a * a);
      }
    }
    if (l == 0)
      on_layer(l, d_l, x);
    else
      on_layer(l, d_l, ws.acts[l].leftCols(batch));
    std::swap(cur, below);
  }
}

}  // namespace grokescape
