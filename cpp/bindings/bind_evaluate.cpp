// Exact full-batch evaluation (grokescape/evaluate.hpp): observables, gradients and
// per-sample gradient moments of every member. Converts, releases the GIL, calls the core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "parts.hpp"
#include "grokescape/evaluate.hpp"

namespace py = pybind11;
namespace ge = grokescape;
namespace gb = grokescape::bind;

void bind_evaluate(py::module_& m) {
  m.def(
      "evaluate",
      [](const gb::StateArrays& state, const gb::DataArrays& data, const py::array& beta,
         const gb::RecordArrays& out, const gb::Options& options) {
        gb::with_scalar(state, [&](auto scalar) {
          using S = decltype(scalar);
          const auto ens = state.ref<S>();
          const auto run_data = data.ref<S>(state.layout);
          const double* b = gb::field<double>(beta, ens.n_members, "beta");
          const ge::RecordPlan rec = out.ref(state.layout, ens.n_members, run_data.modes, 1);
          py::gil_scoped_release release;
          ge::evaluate(state.layout, ens.params, ens.n_members, run_data.train, run_data.test, b,
                       options.decay_bias, rec, options.n_threads);
        });
      },
      py::arg("state"), py::arg("data"), py::arg("beta"), py::arg("out"), py::arg("options"),
      "Observables of every member into row 0 of the record arrays.");

  m.def(
      "gradients",
      [](const gb::StateArrays& state, const gb::DataArrays& data, const py::array& beta,
         py::array& grads, const gb::Options& options) {
        gb::with_scalar(state, [&](auto scalar) {
          using S = decltype(scalar);
          const auto ens = state.ref<S>();
          const auto run_data = data.ref<S>(state.layout);
          const double* b = gb::field<double>(beta, ens.n_members, "beta");
          S* g = gb::field<S>(grads, ens.n_members * ens.n_params, "grads");
          py::gil_scoped_release release;
          ge::gradients(state.layout, ens.params, ens.n_members, run_data.train, b,
                        options.decay_bias, g, options.n_threads);
        });
      },
      py::arg("state"), py::arg("data"), py::arg("beta"), py::arg("grads"), py::arg("options"),
      "Gradient of the total loss of every member into grads (M, P).");

  m.def(
      "per_sample_gradient_moments",
      [](const gb::StateArrays& state, const gb::DataArrays& data, py::array& mean_sq,
         py::array& sq_mean, const gb::Options& options) {
        gb::with_scalar(state, [&](auto scalar) {
          using S = decltype(scalar);
          const auto ens = state.ref<S>();
          const auto run_data = data.ref<S>(state.layout);
          double* ms = gb::field<double>(mean_sq, ens.n_members, "mean_sq");
          double* sm = gb::field<double>(sq_mean, ens.n_members, "sq_mean");
          py::gil_scoped_release release;
          ge::per_sample_gradient_moments(state.layout, ens.params, ens.n_members, run_data.train,
                                          ms, sm, options.n_threads);
        });
      },
      py::arg("state"), py::arg("data"), py::arg("mean_sq"), py::arg("sq_mean"),
      py::arg("options"), "Moments of the per-sample gradients of every member.");
}
