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
template <class MakeState, class Body>
void parallel_members(Index n, int n_threads, Index grain, MakeState&& make_state, Body&& body) {
  if (n <= 0) return;
  if (n_threads < 1) n_threads = 1;
  if (static_cast<Index>(n_threads) > n) n_threads = static_cast<int>(n);
  std::exception_ptr error = nullptr;
  std::mutex error_mutex;
  std::atomic<bool> failed{false};
#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads)
#endif
  {
    FlushDenormals flush;
    try {
      auto state = make_state();
#ifdef _OPENMP
#pragma omp for schedule(dynamic, grain)
#endif
      for (Index m = 0; m < n; ++m) {
        if (failed.load(std::memory_order_relaxed)) continue;
        try {
          body(state, m);
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (!error) error = std::current_exception();
          failed.store(true);
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      failed.store(true);
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace grokescape
