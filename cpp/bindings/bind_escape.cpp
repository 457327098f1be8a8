// Runs until escape (grokescape/escape.hpp): converts arguments, releases the GIL, calls
// the core, and returns the trajectories that ended as numpy arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "grokescape/escape.hpp"

namespace py = pybind11;
namespace ge = grokescape;
using ge::Index;
using ge::bind::Array;
using ge::bind::data;
using ge::bind::mutable_data;

namespace {

template <class T, class F>
Array<T> column(const std::vector<ge::EscapeEvent>& events, F&& get) {
  Array<T> out(static_cast<py::ssize_t>(events.size()));
  T* o = out.mutable_data();
  for (std::size_t i = 0; i < events.size(); ++i) o[i] = get(events[i]);
  return out;
}

template <class S>
void bind_for(py::module_& m) {
  m.def(
      "run_until_escape",
      [](const ge::Layout& layout, Array<S>& params, Array<std::int64_t>& steps,
         Array<std::uint8_t>& diverged, Array<std::uint64_t>& streams, const Array<S>& init_params,
         const Array<S>& x_train, const Array<S>& y_train, const Array<S>& x_test,
         const Array<S>& y_test, const Array<double>& mode_out, const Array<double>& mode_in,
         const Array<double>& mode_eta, const Array<double>& lr, const Array<double>& beta,
         const Array<double>& temperature, ge::CriterionKind kind, Index index,
         const Array<double>& value,
         std::int64_t hold, std::int64_t check_every, Index batch_size, ge::Sampling sampling,
         std::uint64_t seed, bool decay_bias, bool refill, std::uint64_t refill_base,
         std::int64_t n_steps, Array<std::uint8_t>& active, Array<std::int64_t>& start_step,
         Array<std::int64_t>& hold_since, Array<std::int64_t>& trajectories, int n_threads,
         bool generic_kernel, bool moment_gradient) {
        const Index M = steps.size();
        const Index P = layout.n_params;
        ge::EnsembleRef<S> ens{mutable_data(params, M * P, "params"), M,
                               mutable_data(steps, M, "steps"), mutable_data(diverged, M, "diverged"),
                               mutable_data(streams, M, "streams")};
        const S* init = data(init_params, M * P, "init_params");
        const Index n_train = x_train.ndim() == 2 ? x_train.shape(0) : 0;
        const Index n_test = x_test.ndim() == 2 ? x_test.shape(0) : 0;
        ge::DataRef<S> train{data(x_train, n_train * layout.d_in(), "x_train"),
                             data(y_train, n_train * layout.d_out(), "y_train"), n_train};
        ge::DataRef<S> test{data(x_test, n_test * layout.d_in(), "x_test"),
                            data(y_test, n_test * layout.d_out(), "y_test"), n_test};
        const Index r = mode_eta.size();
        ge::ModeSpec modes{r, data(mode_out, r * layout.d_out(), "mode_out"),
                           data(mode_in, r * layout.d_in(), "mode_in"), mode_eta.data()};
        ge::Criterion crit{kind, index, data(value, M, "value"), hold, check_every};
        ge::SlotState slots{mutable_data(active, M, "active"), mutable_data(start_step, M, "start_step"),
                            mutable_data(hold_since, M, "hold_since"),
                            mutable_data(trajectories, M, "trajectories")};
        ge::EscapeOptions opt;
        opt.batches = {batch_size, sampling, seed};
        opt.decay_bias = decay_bias;
        opt.refill = refill;
        opt.refill_base = refill_base;
        opt.n_steps = n_steps;
        opt.n_threads = n_threads;
        opt.generic_kernel = generic_kernel;
        opt.moment_gradient = moment_gradient;
        const double* lr_p = data(lr, M, "lr");
        const double* beta_p = data(beta, M, "beta");
        const double* temp_p = data(temperature, M, "temperature");
        std::vector<ge::EscapeEvent> events;
        {
          py::gil_scoped_release release;
          events = ge::run_until_escape(layout, ens, init, train, test, modes, lr_p, beta_p, temp_p,
                                        crit, slots, opt);
        }
        py::dict out;
        out["slot"] = column<std::int64_t>(events, [](const auto& e) { return e.slot; });
        out["trajectory"] = column<std::uint64_t>(events, [](const auto& e) { return e.trajectory; });
        out["escape_age"] = column<std::int64_t>(events, [](const auto& e) { return e.escape_age; });
        out["detect_age"] = column<std::int64_t>(events, [](const auto& e) { return e.detect_age; });
        out["diverged"] = column<bool>(events, [](const auto& e) { return e.diverged; });
        return out;
      },
      py::arg("layout"), py::arg("params").noconvert(), py::arg("steps").noconvert(),
      py::arg("diverged").noconvert(), py::arg("streams").noconvert(),
      py::arg("init_params").noconvert(), py::arg("x_train").noconvert(),
      py::arg("y_train").noconvert(), py::arg("x_test").noconvert(), py::arg("y_test").noconvert(),
      py::arg("mode_out").noconvert(), py::arg("mode_in").noconvert(),
      py::arg("mode_eta").noconvert(), py::arg("lr").noconvert(), py::arg("beta").noconvert(),
      py::arg("temperature").noconvert(), py::arg("kind"), py::arg("index"), py::arg("value").noconvert(),
      py::arg("hold"), py::arg("check_every"), py::arg("batch_size"), py::arg("sampling"),
      py::arg("seed"), py::arg("decay_bias"), py::arg("refill"), py::arg("refill_base"),
      py::arg("n_steps"), py::arg("active").noconvert(), py::arg("start_step").noconvert(),
      py::arg("hold_since").noconvert(), py::arg("trajectories").noconvert(),
      py::arg("n_threads"), py::arg("generic_kernel") = false, py::arg("moment_gradient") = true);
}

}  // namespace

void bind_escape(py::module_& m) {
  py::enum_<ge::CriterionKind>(m, "CriterionKind", py::module_local())
      .value("mode_amplitude", ge::CriterionKind::kModeAmplitude)
      .value("singular_value", ge::CriterionKind::kSingularValue)
      .value("test_mse", ge::CriterionKind::kTestMse);
  bind_for<double>(m);
  bind_for<float>(m);
}
