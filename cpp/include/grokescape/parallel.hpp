// Parallel loop over ensemble members with OpenMP (serial when built without it).
//
// Members are independent, so the loop has no reductions and its result does not depend
// on the thread count or the schedule. Exceptions thrown by a member are caught inside the
// parallel region and the first one is rethrown after it (an exception must not escape
// an OpenMP region).
#pragma once

#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include "grokescape/layout.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define GROKESCAPE_HAS_MXCSR 1
#endif

namespace grokescape {

// Flushes subnormal results and inputs to zero on this thread while alive, then restores
// the previous mode. Weights that decay under L2 (unlearned modes, hysteresis sweeps) pass
// through the subnormal range, where x86 arithmetic is ~100x slower; values below
// 2.2e-308 (double) or 1.2e-38 (float) are physically zero here.
class FlushDenormals {
 public:
  FlushDenormals() {
#ifdef GROKESCAPE_HAS_MXCSR
    saved_ = _mm_getcsr();
    _mm_setcsr(saved_ | 0x8040u);  // FTZ (bit 15) and DAZ (bit 6)
#endif
  }
  ~FlushDenormals() {
#ifdef GROKESCAPE_HAS_MXCSR
    _mm_setcsr(saved_);
#endif
  }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned int saved_ = 0;
};

inline bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

// Threads a parallel region gets by default (honours OMP_NUM_THREADS).
inline int default_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Calls body(thread_state, m) for every m in [0, n). make_state() runs once per thread
// (allocate scratch space there); members are handed out dynamically, `grain` at a time.
// Subnormals are flushed to zero inside (see FlushDenormals).
//
// Every thread reaches the shared `omp for`, also one whose make_state() threw: a thread
// that skipped it would leave the others waiting at its barrier (undefined behaviour in
// OpenMP). After a failure the remaining members are skipped and the first exception is
// rethrown once the region has ended.
template <class MakeState, class Body>
void parallel_members(Index n, int n_threads, Index grain, MakeState&& make_state, Body&& body) {
  if (n <= 0) return;
  if (n_threads < 1) n_threads = 1;
  if (static_cast<Index>(n_threads) > n) n_threads = static_cast<int>(n);
  using State = decltype(make_state());
  std::exception_ptr error = nullptr;
  std::mutex error_mutex;
  std::atomic<bool> failed{false};
  auto fail = [&] {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!error) error = std::current_exception();
    failed.store(true);
  };
#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads)
#endif
  {
    FlushDenormals flush;
    std::optional<State> state;
    try {
      state.emplace(make_state());
    } catch (...) {
      fail();
    }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, grain)
#endif
    for (Index m = 0; m < n; ++m) {
      if (!state || failed.load(std::memory_order_relaxed)) continue;
      try {
        body(*state, m);
      } catch (...) {
        fail();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

// The failure path above, exercised on purpose (tests): make_state() throws on thread
// `failing_thread` (-1: on none). Returns the number of members whose body ran.
inline Index parallel_selftest(Index n, int n_threads, int failing_thread) {
  std::atomic<Index> ran{0};
  parallel_members(
      n, n_threads, 1,
      [&] {
#ifdef _OPENMP
        const int thread = omp_get_thread_num();
#else
        const int thread = 0;
#endif
        if (thread == failing_thread)
          throw std::runtime_error("make_state failed on thread " + std::to_string(thread));
        return 0;
      },
      [&](int&, Index) { ++ran; });
  return ran.load();
}

}  // namespace grokescape
