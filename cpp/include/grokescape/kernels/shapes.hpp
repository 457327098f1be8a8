// Network shapes known at compile time, and the loop over layers that hands each layer's
// widths to a kernel as compile-time constants (Fixed<...>) or as 0 = "read at run time"
// (Dynamic). Common shapes get fully unrolled kernels; any other shape runs the same code
// with run-time sizes.
#pragma once

#include <type_traits>
#include <utility>

#include "grokescape/layout.hpp"

namespace grokescape::kernels {

template <int... W>
struct Fixed {
  static constexpr int depth = static_cast<int>(sizeof...(W)) - 1;
  static constexpr int widths[sizeof...(W)] = {W...};
  static bool matches(const Layout& layout) {
    if (static_cast<int>(layout.widths.size()) != depth + 1) return false;
    for (int l = 0; l <= depth; ++l)
      if (layout.widths[l] != widths[l]) return false;
    return true;
  }
};

struct Dynamic {
  static bool matches(const Layout&) { return true; }
};

template <int N>
using Int = std::integral_constant<int, N>;

namespace detail {
template <class F, int... W, std::size_t... I>
inline void up(F& f, Fixed<W...>, std::index_sequence<I...>) {
  using S = Fixed<W...>;
  (f(static_cast<int>(I), Int<S::widths[I]>{}, Int<S::widths[I + 1]>{}), ...);
}
template <class F, int... W, std::size_t... I>
inline void down(F& f, Fixed<W...>, std::index_sequence<I...>) {
  using S = Fixed<W...>;
  constexpr int top = S::depth - 1;
  (f(top - static_cast<int>(I), Int<S::widths[top - I]>{}, Int<S::widths[top - I + 1]>{}), ...);
}
}  // namespace detail

// f(l, Int<NI>, Int<NO>) for l = 0 .. L-1 (NI = NO = 0 for a Dynamic shape).
template <class Shape, class F>
inline void layers_up(const Layout& layout, F&& f) {
  if constexpr (std::is_same_v<Shape, Dynamic>) {
    for (Index l = 0; l < layout.depth(); ++l) f(static_cast<int>(l), Int<0>{}, Int<0>{});
  } else {
    detail::up(f, Shape{}, std::make_index_sequence<Shape::depth>{});
  }
}

// The same for l = L-1 down to 0.
template <class Shape, class F>
inline void layers_down(const Layout& layout, F&& f) {
  if constexpr (std::is_same_v<Shape, Dynamic>) {
    for (Index l = layout.depth() - 1; l >= 0; --l) f(static_cast<int>(l), Int<0>{}, Int<0>{});
  } else {
    detail::down(f, Shape{}, std::make_index_sequence<Shape::depth>{});
  }
}

// Input and output widths, compile-time constants for Fixed shapes.
template <class Shape>
inline Index first_width(const Layout& layout) {
  if constexpr (std::is_same_v<Shape, Dynamic>)
    return layout.d_in();
  else
    return Shape::widths[0];
}
template <class Shape>
inline Index last_width(const Layout& layout) {
  if constexpr (std::is_same_v<Shape, Dynamic>)
    return layout.d_out();
  else
    return Shape::widths[Shape::depth];
}

// Calls f(shape) with the first compiled shape matching the layout, else f(Dynamic{}).
// `generic` forces Dynamic (tests compare the two).
template <Activation Act, class F>
decltype(auto) with_compiled_shape(const Layout& layout, bool generic, F&& f) {
  if (!generic) {
    if (Fixed<2, 10, 10, 2>::matches(layout)) return f(Fixed<2, 10, 10, 2>{});
    if constexpr (Act == Activation::kLinear) {
      if (Fixed<2, 10, 10, 10, 2>::matches(layout)) return f(Fixed<2, 10, 10, 10, 2>{});
      if (Fixed<2, 10, 10, 10, 10, 2>::matches(layout)) return f(Fixed<2, 10, 10, 10, 10, 2>{});
      if (Fixed<16, 16, 16, 16>::matches(layout)) return f(Fixed<16, 16, 16, 16>{});
      if (Fixed<64, 64, 64, 64>::matches(layout)) return f(Fixed<64, 64, 64, 64>{});
      if (Fixed<1, 1, 1, 1>::matches(layout)) return f(Fixed<1, 1, 1, 1>{});
      if (Fixed<1, 1, 1, 1, 1>::matches(layout)) return f(Fixed<1, 1, 1, 1, 1>{});
    }
  }
  return f(Dynamic{});
}

}  // namespace grokescape::kernels
