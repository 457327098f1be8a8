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
