// The counter-based generator, exposed for tests and for Python-side draws that must follow
// the same (seed, stream, step, purpose) addressing as the core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "grokescape/parallel.hpp"
#include "grokescape/minibatch.hpp"
#include "grokescape/normal.hpp"
#include "grokescape/philox.hpp"

namespace py = pybind11;
using grokescape::bind::Array;

void bind_rng(py::module_& m) {
  py::enum_<grokescape::Purpose>(m, "Purpose", py::module_local())
      .value("init", grokescape::Purpose::kInit)
      .value("permutation", grokescape::Purpose::kPermutation)
      .value("replacement", grokescape::Purpose::kReplacement)
      .value("langevin", grokescape::Purpose::kLangevin)
      .value("residual", grokescape::Purpose::kResidual)
      .value("user", grokescape::Purpose::kUser)
      .value("splitting", grokescape::Purpose::kSplitting);

  m.def(
      "philox4x64_10",
      [](const Array<std::uint64_t>& counters, const Array<std::uint64_t>& key) {
        if (counters.ndim() != 2 || counters.shape(1) != 4)
          throw std::invalid_argument("counters: expected shape (n, 4)");
        const auto* k = grokescape::bind::data(key, 2, "key");
        Array<std::uint64_t> out({counters.shape(0), py::ssize_t{4}});
        const auto* c = counters.data();
        auto* o = out.mutable_data();
        for (py::ssize_t i = 0; i < counters.shape(0); ++i) {
          const auto r = grokescape::philox4x64_10({c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]},
                                                   {k[0], k[1]});
          for (int j = 0; j < 4; ++j) o[4 * i + j] = r[j];
        }
        return out;
      },
      py::arg("counters").noconvert(), py::arg("key").noconvert(),
      "Raw Philox4x64-10 blocks, one per counter row.");

  m.def(
      "standard_normal",
      [](std::uint64_t seed, const Array<std::uint64_t>& streams, std::uint64_t step,
         grokescape::Purpose purpose, Array<double>& out, int n_threads) {
        if (out.ndim() != 2 || out.shape(0) != streams.size())
          throw std::invalid_argument("out: expected shape (len(streams), n)");
        const py::ssize_t n = out.shape(1);
        const auto* s = streams.data();
        double* o = out.mutable_data();
        py::gil_scoped_release release;
        grokescape::parallel_members(
            streams.size(), n_threads, 64, [] { return 0; },
            [&](int&, grokescape::Index m) {
              grokescape::standard_normals(seed, s[m], step, purpose, o + m * n, n);
            });
      },
      py::arg("seed"), py::arg("streams").noconvert(), py::arg("step"), py::arg("purpose"),
      py::arg("out").noconvert(), py::arg("n_threads"),
      "Fill out[m, :] with standard normals from the stream (seed, streams[m], step, purpose).");

  m.def(
      "epoch_permutation",
      [](std::uint64_t seed, std::uint64_t stream, std::uint64_t epoch, grokescape::Index n) {
        std::vector<grokescape::Index> perm(static_cast<std::size_t>(n));
        grokescape::epoch_permutation(seed, stream, epoch, perm);
        Array<std::int64_t> out(n);
        std::copy(perm.begin(), perm.end(), out.mutable_data());
        return out;
      },
      py::arg("seed"), py::arg("stream"), py::arg("epoch"), py::arg("n"),
      "The permutation of n training samples a member uses in one epoch.");
}
