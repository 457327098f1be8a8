// Vector width of the instruction set this translation unit is compiled for, and the
// padding of batch rows to a whole number of vectors.
#pragma once

#include "grokescape/layout.hpp"

namespace grokescape::kernels {

#if defined(__AVX512F__)
inline constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
inline constexpr int kVectorBytes = 32;
#else
inline constexpr int kVectorBytes = 16;
#endif

template <class S>
inline constexpr int kLanes = kVectorBytes / static_cast<int>(sizeof(S));

// Batch rows are padded to a multiple of 16 elements (a whole number of vectors for every
// supported instruction set and both precisions) so vector loops need no remainder.
inline constexpr Index kRowPad = 16;
inline constexpr Index padded(Index n) { return (n + kRowPad - 1) / kRowPad * kRowPad; }

}  // namespace grokescape::kernels
