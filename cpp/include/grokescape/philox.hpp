// Counter-based random numbers: Philox4x64-10 (Salmon et al., SC'11, "Random123").
//
// Every random draw in grokescape is addressed, never sequenced: the key is
// (seed, stream) where the stream is a member or trajectory id, and the counter is
// (index, step, purpose, 0). A draw therefore does not depend on the thread that makes it,
// on the ensemble size, or on how a run is cut into chunks.
//
// The raw block function is bit-identical to numpy.random.Philox: numpy's generator with
// key k and counter c returns philox4x64_10(c + 1, k) as its next four outputs (it
// increments the counter before generating). tests/test_rng.py checks this.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "grokescape/kernels/simd.hpp"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace grokescape {

using Counter = std::array<std::uint64_t, 4>;
using Key = std::array<std::uint64_t, 2>;

namespace detail {
// The multipliers and key increments (Weyl constants) of Philox4x64 (Random123).
namespace philox_constants {
inline constexpr std::uint64_t M0 = 0xD2E7470EE14C6C93ULL, M1 = 0xCA5A826395121157ULL;
inline constexpr std::uint64_t W0 = 0x9E3779B97F4A7C15ULL, W1 = 0xBB67AE8584CAA73BULL;
}  // namespace philox_constants

inline void mulhilo64(std::uint64_t a, std::uint64_t b, std::uint64_t& hi, std::uint64_t& lo) {
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  hi = static_cast<std::uint64_t>(p >> 64);
  lo = static_cast<std::uint64_t>(p);
}
}  // namespace detail

// One Philox4x64 block with 10 rounds.
inline Counter philox4x64_10(Counter c, Key k) {
  using namespace detail::philox_constants;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += W0;
      k[1] += W1;
    }
    std::uint64_t hi0, lo0, hi1, lo1;
    detail::mulhilo64(M0, c[0], hi0, lo0);
    detail::mulhilo64(M1, c[2], hi1, lo1);
    c = Counter{hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
  }
  return c;
}

// Two blocks at once: their multiply chains interleave (one block alone is a chain of
// dependent multiplies) and both states stay in registers. Same results as two calls of
// philox4x64_10.
inline void philox4x64_10_x2(Counter a, Counter b, Key k, Counter& out_a, Counter& out_b) {
  using namespace detail::philox_constants;
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC unroll 10
#endif
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += W0;
      k[1] += W1;
    }
    std::uint64_t ah0, al0, ah1, al1, bh0, bl0, bh1, bl1;
    detail::mulhilo64(M0, a[0], ah0, al0);
    detail::mulhilo64(M0, b[0], bh0, bl0);
    detail::mulhilo64(M1, a[2], ah1, al1);
    detail::mulhilo64(M1, b[2], bh1, bl1);
    a = Counter{ah1 ^ a[1] ^ k[0], al1, ah0 ^ a[3] ^ k[1], al0};
    b = Counter{bh1 ^ b[1] ^ k[0], bl1, bh0 ^ b[3] ^ k[1], bl0};
  }
  out_a = a;
  out_b = b;
}

// Blocks at once in the vector registers of the build's instruction set (8 with AVX-512).
inline constexpr int kPhiloxLanes = kernels::kVectorBytes / 8;

namespace detail {
typedef std::uint64_t PhiloxLanes __attribute__((vector_size(kernels::kVectorBytes)));

// Low 32 bits of each lane of a times those of b, as 64-bit products (pmuludq; a plain
// 64-bit vector multiply compiles to the much slower vpmullq).
inline PhiloxLanes mul32x32(PhiloxLanes a, PhiloxLanes b) {
#if defined(__AVX512F__)
  return (PhiloxLanes)_mm512_mul_epu32((__m512i)a, (__m512i)b);
#elif defined(__AVX2__)
  return (PhiloxLanes)_mm256_mul_epu32((__m256i)a, (__m256i)b);
#elif defined(__SSE2__)
  return (PhiloxLanes)_mm_mul_epu32((__m128i)a, (__m128i)b);
#else
  return (a & 0xFFFFFFFFULL) * (b & 0xFFFFFFFFULL);
#endif
}

// hi:lo = a * m per lane, exactly, from four 32 x 32 -> 64-bit products. Partial sums
// never overflow: (2^32 - 1)^2 + 2 (2^32 - 1) < 2^64.
inline void mulhilo64_lanes(PhiloxLanes a, std::uint64_t m, PhiloxLanes& hi, PhiloxLanes& lo) {
  constexpr std::uint64_t kLow = 0xFFFFFFFFULL;
  const PhiloxLanes a_hi = a >> 32;
  const PhiloxLanes m_lo = PhiloxLanes{} + (m & kLow), m_hi = PhiloxLanes{} + (m >> 32);
  const PhiloxLanes p0 = mul32x32(a, m_lo), p1 = mul32x32(a, m_hi), p2 = mul32x32(a_hi, m_lo),
                    p3 = mul32x32(a_hi, m_hi);
  const PhiloxLanes t = p1 + (p0 >> 32);  // a_lo m_hi + carry of the lowest product
  const PhiloxLanes u = p2 + (t & kLow);  // bits 32..95 of the product start here
  lo = (u << 32) | (p0 & kLow);
  hi = p3 + (t >> 32) + (u >> 32);
}

// The ten rounds on kPhiloxLanes blocks at once: lane t holds the counter
// (x0[t], x1[t], x2[t], x3[t]) and the key (k0[t], k1[t]); on return the block's four words.
inline void philox4x64_10_rounds(PhiloxLanes& x0, PhiloxLanes& x1, PhiloxLanes& x2,
                                 PhiloxLanes& x3, PhiloxLanes k0, PhiloxLanes k1) {
  using namespace philox_constants;
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC unroll 10
#endif
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += W0;
      k1 += W1;
    }
    PhiloxLanes hi0, lo0, hi1, lo1;
    mulhilo64_lanes(x0, M0, hi0, lo0);
    mulhilo64_lanes(x2, M1, hi1, lo1);
    const PhiloxLanes y0 = hi1 ^ x1 ^ k0, y2 = hi0 ^ x3 ^ k1;
    x0 = y0;
    x1 = lo1;
    x2 = y2;
    x3 = lo0;
  }
}
}  // namespace detail

// kPhiloxLanes blocks with counters (first + t, c1, c2, c3), t = 0 .. kPhiloxLanes - 1, one
// per vector lane; word j of block t goes to out[4 t + j]. The same results as
// philox4x64_10 on each counter (the scalar blocks, multiply chains and register spills,
// were a large part of the Langevin noise's profile; tests/test_rng.py compares both with
// numpy).
inline void philox4x64_10_lanes(std::uint64_t first, std::uint64_t c1, std::uint64_t c2,
                                std::uint64_t c3, Key k, std::uint64_t* out) {
  using V = detail::PhiloxLanes;
  V x0, x1 = V{} + c1, x2 = V{} + c2, x3 = V{} + c3;
  for (int t = 0; t < kPhiloxLanes; ++t) x0[t] = first + static_cast<std::uint64_t>(t);
  detail::philox4x64_10_rounds(x0, x1, x2, x3, V{} + k[0], V{} + k[1]);
  for (int t = 0; t < kPhiloxLanes; ++t) {
    out[4 * t] = x0[t];
    out[4 * t + 1] = x1[t];
    out[4 * t + 2] = x2[t];
    out[4 * t + 3] = x3[t];
  }
}

// What a stream of draws is for; part of the counter so that purposes never overlap.
enum class Purpose : std::uint64_t {
  kInit = 1,         // initial weights
  kPermutation = 2,  // epoch permutations (step = epoch index)
  kReplacement = 3,  // minibatch indices drawn with replacement (step = SGD step)
  kLangevin = 4,     // additive Langevin noise (step = SGD step)
  kResidual = 5,     // random trap residuals
  kUser = 6,         // draws requested from Python for other uses
  kSplitting = 7,    // parent choices of splitting (step = iteration)
};

// The draws of one (seed, stream, step, purpose) address, read sequentially.
class DrawStream {
 public:
  DrawStream(std::uint64_t seed, std::uint64_t stream, std::uint64_t step, Purpose purpose)
      : key_{seed, stream}, step_(step), purpose_(static_cast<std::uint64_t>(purpose)) {}

  std::uint64_t next_u64() {
    if (pos_ == 4) refill();
    return block_[pos_++];
  }

  // Uniform double in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

  // The next `count` 32-bit draws, in stream order, into out (blocks generated back to back).
  void fill_u32(std::uint32_t* out, std::size_t count) {
    std::size_t i = 0;
    while (i < count && (half_ || pos_ < 4)) out[i++] = next_u32();
    while (i + 8 * kPhiloxLanes <= count) {
      std::uint64_t words[4 * kPhiloxLanes];
      philox4x64_10_lanes(index_, step_, purpose_, 0, key_, words);
      index_ += kPhiloxLanes;
      for (int j = 0; j < 4 * kPhiloxLanes; ++j) {
        out[i++] = static_cast<std::uint32_t>(words[j]);
        out[i++] = static_cast<std::uint32_t>(words[j] >> 32);
      }
    }
    while (i + 16 <= count) {
      Counter blocks[2];
      philox4x64_10_x2(Counter{index_, step_, purpose_, 0}, Counter{index_ + 1, step_, purpose_, 0},
                       key_, blocks[0], blocks[1]);
      index_ += 2;
      for (int q = 0; q < 2; ++q)
        for (int j = 0; j < 4; ++j) {
          out[i++] = static_cast<std::uint32_t>(blocks[q][j]);
          out[i++] = static_cast<std::uint32_t>(blocks[q][j] >> 32);
        }
    }
    while (i + 8 <= count) {
      const Counter b = philox4x64_10(Counter{index_++, step_, purpose_, 0}, key_);
      for (int j = 0; j < 4; ++j) {
        out[i++] = static_cast<std::uint32_t>(b[j]);
        out[i++] = static_cast<std::uint32_t>(b[j] >> 32);
      }
    }
    while (i < count) out[i++] = next_u32();
  }

  // Next 32 random bits (each 64-bit word gives two: low half first).
  std::uint32_t next_u32() {
    if (half_) {
      half_ = false;
      return static_cast<std::uint32_t>(word_ >> 32);
    }
    word_ = next_u64();
    half_ = true;
    return static_cast<std::uint32_t>(word_);
  }

  // Uniform integer in [0, n) for n <= 2^32, exact (Lemire's multiply-shift with
  // rejection on 32-bit draws).
  std::uint32_t below32(std::uint32_t n) {
    std::uint64_t m = static_cast<std::uint64_t>(next_u32()) * n;
    std::uint32_t low = static_cast<std::uint32_t>(m);
    if (low < n) {
      const std::uint32_t threshold = (0u - n) % n;
      while (low < threshold) {
        m = static_cast<std::uint64_t>(next_u32()) * n;
        low = static_cast<std::uint32_t>(m);
      }
    }
    return static_cast<std::uint32_t>(m >> 32);
  }

  // Uniform integer in [0, n), exact: 32-bit draws when n fits, else 64-bit ones.
  std::uint64_t below(std::uint64_t n) {
    if (n <= (std::uint64_t{1} << 32)) {
      if (n == (std::uint64_t{1} << 32)) return next_u32();
      return below32(static_cast<std::uint32_t>(n));
    }
    unsigned __int128 m = static_cast<unsigned __int128>(next_u64()) * n;
    std::uint64_t low = static_cast<std::uint64_t>(m);
    if (low < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next_u64()) * n;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

 private:
  void refill() {
    block_ = philox4x64_10(Counter{index_++, step_, purpose_, 0}, key_);
    pos_ = 0;
  }
  Key key_;
  std::uint64_t step_, purpose_;
  std::uint64_t index_ = 0;
  Counter block_{};
  int pos_ = 4;
  std::uint64_t word_ = 0;
  bool half_ = false;
};

}  // namespace grokescape
