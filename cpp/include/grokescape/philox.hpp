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

namespace grokescape {

using Counter = std::array<std::uint64_t, 4>;
using Key = std::array<std::uint64_t, 2>;

namespace detail {
inline void mulhilo64(std::uint64_t a, std::uint64_t b, std::uint64_t& hi, std::uint64_t& lo) {
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  hi = static_cast<std::uint64_t>(p >> 64);
  lo = static_cast<std::uint64_t>(p);
}
}  // namespace detail

// One Philox4x64 block with 10 rounds.
inline Counter philox4x64_10(Counter c, Key k) {
  constexpr std::uint64_t M0 = 0xD2E7470EE14C6C93ULL, M1 = 0xCA5A826395121157ULL;
  constexpr std::uint64_t W0 = 0x9E3779B97F4A7C15ULL, W1 = 0xBB67AE8584CAA73BULL;
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
  constexpr std::uint64_t M0 = 0xD2E7470EE14C6C93ULL, M1 = 0xCA5A826395121157ULL;
  constexpr std::uint64_t W0 = 0x9E3779B97F4A7C15ULL, W1 = 0xBB67AE8584CAA73BULL;
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

// What a stream of draws is for; part of the counter so that purposes never overlap.
enum class Purpose : std::uint64_t {
  kInit = 1,         // initial weights
  kPermutation = 2,  // epoch permutations (step = epoch index)
  kReplacement = 3,  // minibatch indices drawn with replacement (step = SGD step)
  kLangevin = 4,     // additive Langevin noise (step = SGD step)
  kResidual = 5,     // random trap residuals
  kUser = 6,         // draws requested from Python for other uses
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
