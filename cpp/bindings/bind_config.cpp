// Build and machine facts for grokescape.show_config().
#include <pybind11/pybind11.h>

#include <Eigen/Core>
#include <string>

#include "grokescape/kernels/simd.hpp"
#include "grokescape/parallel.hpp"

namespace py = pybind11;

namespace {
std::string compiled_isa() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__)
  return "avx2";
#elif defined(__SSE2__) || defined(_M_X64)
  return "sse2";
#else
  return "generic";
#endif
}

py::dict cpu_features() {
  py::dict d;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  d["sse2"] = static_cast<bool>(__builtin_cpu_supports("sse2"));
  d["avx2"] = static_cast<bool>(__builtin_cpu_supports("avx2"));
  d["fma"] = static_cast<bool>(__builtin_cpu_supports("fma"));
  d["avx512f"] = static_cast<bool>(__builtin_cpu_supports("avx512f"));
  d["avx512dq"] = static_cast<bool>(__builtin_cpu_supports("avx512dq"));
  d["avx512bw"] = static_cast<bool>(__builtin_cpu_supports("avx512bw"));
  d["avx512vl"] = static_cast<bool>(__builtin_cpu_supports("avx512vl"));
#endif
  return d;
}
}  // namespace

void bind_config(py::module_& m) {
  m.def("build_info", [] {
    py::dict d;
    d["eigen_version"] = std::to_string(EIGEN_WORLD_VERSION) + "." +
                         std::to_string(EIGEN_MAJOR_VERSION) + "." +
                         std::to_string(EIGEN_MINOR_VERSION);
    d["eigen_simd"] = std::string(Eigen::SimdInstructionSetsInUse());
    d["openmp"] = grokescape::openmp_enabled();
#ifdef _OPENMP
    d["openmp_version"] = static_cast<int>(_OPENMP);
#endif
    d["compiled_isa"] = compiled_isa();
    // the width the lane kernels fill, which decides where they fit (driver.hpp)
    d["vector_bytes"] = static_cast<int>(grokescape::kernels::kVectorBytes);
    d["cpu_features"] = cpu_features();
#if defined(__clang__)
    d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    d["compiler"] = std::string("gcc ") + __VERSION__;
#else
    d["compiler"] = std::string("unknown");
#endif
    d["pybind11_version"] = std::to_string(PYBIND11_VERSION_MAJOR) + "." +
                            std::to_string(PYBIND11_VERSION_MINOR) + "." +
                            std::to_string(PYBIND11_VERSION_PATCH);
    return d;
  });
  m.def("default_threads", &grokescape::default_threads,
        "Threads an OpenMP region gets by default (OMP_NUM_THREADS or the core count).");
  m.def(
      "parallel_selftest",
      [](grokescape::Index n, int n_threads, int failing_thread) {
        py::gil_scoped_release release;
        return grokescape::parallel_selftest(n, n_threads, failing_thread);
      },
      py::arg("n"), py::arg("n_threads"), py::arg("failing_thread"),
      "Runs the parallel member loop with a per-thread set-up that throws on one thread (tests).");
}
