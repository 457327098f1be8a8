// Shape of one deep network and where its parameters live in the flat per-member vector.
//
// Member m's parameters are one contiguous row of the ensemble's (M, P) parameter array,
// in the order W_1, b_1, W_2, b_2, ..., W_L, b_L (biases only when present). Each W_l is
// stored row-major with shape (widths[l+1], widths[l]) = (out, in), as numpy sees it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace grokescape {

using Index = std::int64_t;

// Hidden-layer nonlinearity; the output layer is always linear.
enum class Activation : int { kLinear = 0, kTanh = 1 };

struct Layout {
  std::vector<Index> widths;    // [d_in, h_1, ..., h_{L-1}, d_out]
  bool bias = false;
  Activation activation = Activation::kLinear;
  std::vector<Index> w_offset;  // start of W_l in the member's parameter vector
  std::vector<Index> b_offset;  // start of b_l (only meaningful when bias)
  Index n_params = 0;
  Index max_width = 0;

  Layout() = default;
  Layout(std::vector<Index> w, bool has_bias, Activation act)
      : widths(std::move(w)), bias(has_bias), activation(act) {
    if (widths.size() < 2) throw std::invalid_argument("widths: need at least [d_in, d_out]");
    for (Index d : widths)
      if (d < 1) throw std::invalid_argument("widths: every width must be >= 1");
    Index off = 0;
    for (Index l = 0; l < depth(); ++l) {
      w_offset.push_back(off);
      off += out(l) * in(l);
      b_offset.push_back(off);
      if (bias) off += out(l);
    }
    n_params = off;
    max_width = *std::max_element(widths.begin(), widths.end());
  }

  Index depth() const { return static_cast<Index>(widths.size()) - 1; }
  Index in(Index l) const { return widths[l]; }
  Index out(Index l) const { return widths[l + 1]; }
  Index d_in() const { return widths.front(); }
  Index d_out() const { return widths.back(); }
  // Number of weights (sum of in x out): multiply-adds of one sample's pass through the layers.
  Index n_weights() const {
    Index n = 0;
    for (Index l = 0; l < depth(); ++l) n += in(l) * out(l);
    return n;
  }
};

// Calls f(std::integral_constant<Activation, ...>) for the layout's activation.
template <class F>
decltype(auto) with_activation(const Layout& layout, F&& f) {
  if (layout.activation == Activation::kTanh)
    return f(std::integral_constant<Activation, Activation::kTanh>{});
  return f(std::integral_constant<Activation, Activation::kLinear>{});
}

}  // namespace grokescape
