// Training and exact evaluation of an ensemble (grokescape/train.hpp, evaluate.hpp).
// Converts arguments, releases the GIL, calls one core function. Defaults, validation
// and policy live in python/grokescape/ensemble.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "arrays.hpp"
#include "grokescape/evaluate.hpp"
#include "grokescape/train.hpp"

namespace py = pybind11;
namespace ge = grokescape;
using ge::Index;
using ge::bind::Array;
using ge::bind::data;
using ge::bind::mutable_data;

namespace {

template <class Scalar>
ge::DataRef<Scalar> data_ref(const ge::Layout& layout, const Array<Scalar>& x,
                             const Array<Scalar>& y, const char* name) {
  const Index n = x.ndim() == 2 ? x.shape(0) : 0;
  return {data(x, n * layout.d_in(), name), data(y, n * layout.d_out(), name), n};
}

ge::ModeSpec mode_spec(const ge::Layout& layout, const Array<double>& out_vec,
                       const Array<double>& in_vec, const Array<double>& eta) {
  const Index r = eta.size();
  return {r, data(out_vec, r * layout.d_out(), "mode_out"), data(in_vec, r * layout.d_in(), "mode_in"),
          eta.data()};
}

// Observable arrays of shape (rows, M[, ...]).
ge::RecordPlan record_plan(const ge::Layout& layout, Index rows, Index n_members,
                           const ge::ModeSpec& modes, Array<double>& train_mse,
                           Array<double>& test_mse, Array<double>& loss, Array<double>& lam,
                           Array<double>& sv, Array<double>& energy) {
  const Index cells = rows * n_members;
  const Index k = std::min(layout.d_in(), layout.d_out());
  ge::RecordPlan rec;
  rec.n_records = rows;
  rec.modes = modes;
  rec.train_mse = mutable_data(train_mse, cells, "train_mse");
  rec.test_mse = mutable_data(test_mse, cells, "test_mse");
  rec.loss = mutable_data(loss, cells, "loss");
  rec.lam = mutable_data(lam, cells * modes.n_modes, "lam");
  rec.sv = mutable_data(sv, cells * k, "sv");
  rec.energy = mutable_data(energy, cells * modes.n_modes, "energy");
  return rec;
}

template <class Scalar>
void bind_for(py::module_& m) {
  m.def(
      "train",
      [](const ge::Layout& layout, Array<Scalar>& params, Array<std::int64_t>& steps,
         Array<std::uint8_t>& diverged, Array<std::uint64_t>& streams,
         const Array<Scalar>& x_train, const Array<Scalar>& y_train, const Array<Scalar>& x_test,
         const Array<Scalar>& y_test, const Array<std::int64_t>& stage_end,
         const Array<double>& lr, const Array<double>& beta, const Array<double>& temperature,
         Index batch_size, ge::Sampling sampling, std::uint64_t seed, bool decay_bias,
         std::int64_t run_offset, std::int64_t n_steps, const Array<std::int64_t>& record_at,
         const Array<double>& mode_out, const Array<double>& mode_in,
         const Array<double>& mode_eta, Array<double>& train_mse, Array<double>& test_mse,
         Array<double>& loss, Array<double>& lam, Array<double>& sv, Array<double>& energy,
         Array<std::int64_t>& diverged_at, int n_threads, bool generic_kernel, bool moment_gradient) {
        const Index n_members = steps.size();
        const Index stages = stage_end.size();
        ge::EnsembleRef<Scalar> ens{mutable_data(params, n_members * layout.n_params, "params"),
                                    n_members, mutable_data(steps, n_members, "steps"),
                                    mutable_data(diverged, n_members, "diverged"),
                                    mutable_data(streams, n_members, "streams")};
        ge::Schedule sched{stages, stage_end.data(), data(lr, stages * n_members, "lr"),
                           data(beta, stages * n_members, "beta"),
                           data(temperature, stages * n_members, "temperature")};
        ge::RecordPlan rec =
            record_plan(layout, record_at.size(), n_members,
                        mode_spec(layout, mode_out, mode_in, mode_eta), train_mse, test_mse, loss,
                        lam, sv, energy);
        rec.at = record_at.data();
        rec.diverged_at = mutable_data(diverged_at, n_members, "diverged_at");
        ge::TrainOptions opt;
        opt.batches = {batch_size, sampling, seed};
        opt.decay_bias = decay_bias;
        opt.run_offset = run_offset;
        opt.n_steps = n_steps;
        opt.n_threads = n_threads;
        opt.generic_kernel = generic_kernel;
        opt.moment_gradient = moment_gradient;
        const auto train = data_ref(layout, x_train, y_train, "train data");
        const auto test = data_ref(layout, x_test, y_test, "test data");
        py::gil_scoped_release release;
        ge::train(layout, ens, train, test, sched, rec, opt);
      },
      py::arg("layout"), py::arg("params").noconvert(), py::arg("steps").noconvert(),
      py::arg("diverged").noconvert(), py::arg("streams").noconvert(),
      py::arg("x_train").noconvert(), py::arg("y_train").noconvert(),
      py::arg("x_test").noconvert(), py::arg("y_test").noconvert(),
      py::arg("stage_end").noconvert(), py::arg("lr").noconvert(), py::arg("beta").noconvert(),
      py::arg("temperature").noconvert(), py::arg("batch_size"), py::arg("sampling"),
      py::arg("seed"), py::arg("decay_bias"), py::arg("run_offset"), py::arg("n_steps"),
      py::arg("record_at").noconvert(), py::arg("mode_out").noconvert(),
      py::arg("mode_in").noconvert(), py::arg("mode_eta").noconvert(),
      py::arg("train_mse").noconvert(), py::arg("test_mse").noconvert(),
      py::arg("loss").noconvert(), py::arg("lam").noconvert(), py::arg("sv").noconvert(),
      py::arg("energy").noconvert(), py::arg("diverged_at").noconvert(), py::arg("n_threads"),
      py::arg("generic_kernel") = false, py::arg("moment_gradient") = true);

  m.def(
      "evaluate",
      [](const ge::Layout& layout, const Array<Scalar>& params, const Array<Scalar>& x_train,
         const Array<Scalar>& y_train, const Array<Scalar>& x_test, const Array<Scalar>& y_test,
         const Array<double>& beta, bool decay_bias, const Array<double>& mode_out,
         const Array<double>& mode_in, const Array<double>& mode_eta, Array<double>& train_mse,
         Array<double>& test_mse, Array<double>& loss, Array<double>& lam, Array<double>& sv,
         Array<double>& energy, int n_threads) {
        const Index n_members = beta.size();
        const Scalar* p = data(params, n_members * layout.n_params, "params");
        const ge::RecordPlan out =
            record_plan(layout, 1, n_members, mode_spec(layout, mode_out, mode_in, mode_eta),
                        train_mse, test_mse, loss, lam, sv, energy);
        const auto train = data_ref(layout, x_train, y_train, "train data");
        const auto test = data_ref(layout, x_test, y_test, "test data");
        py::gil_scoped_release release;
        ge::evaluate(layout, p, n_members, train, test, beta.data(), decay_bias, out, n_threads);
      },
      py::arg("layout"), py::arg("params").noconvert(), py::arg("x_train").noconvert(),
      py::arg("y_train").noconvert(), py::arg("x_test").noconvert(),
      py::arg("y_test").noconvert(), py::arg("beta").noconvert(), py::arg("decay_bias"),
      py::arg("mode_out").noconvert(), py::arg("mode_in").noconvert(),
      py::arg("mode_eta").noconvert(), py::arg("train_mse").noconvert(),
      py::arg("test_mse").noconvert(), py::arg("loss").noconvert(), py::arg("lam").noconvert(),
      py::arg("sv").noconvert(), py::arg("energy").noconvert(), py::arg("n_threads"));

  m.def(
      "gradients",
      [](const ge::Layout& layout, const Array<Scalar>& params, const Array<Scalar>& x_train,
         const Array<Scalar>& y_train, const Array<double>& beta, bool decay_bias,
         Array<Scalar>& grads, int n_threads) {
        const Index n_members = beta.size();
        const Index size = n_members * layout.n_params;
        const Scalar* p = data(params, size, "params");
        Scalar* g = mutable_data(grads, size, "grads");
        const auto train = data_ref(layout, x_train, y_train, "train data");
        py::gil_scoped_release release;
        ge::gradients(layout, p, n_members, train, beta.data(), decay_bias, g, n_threads);
      },
      py::arg("layout"), py::arg("params").noconvert(), py::arg("x_train").noconvert(),
      py::arg("y_train").noconvert(), py::arg("beta").noconvert(), py::arg("decay_bias"),
      py::arg("grads").noconvert(), py::arg("n_threads"));

  m.def(
      "per_sample_gradient_moments",
      [](const ge::Layout& layout, const Array<Scalar>& params, const Array<Scalar>& x_train,
         const Array<Scalar>& y_train, Array<double>& mean_sq, Array<double>& sq_mean,
         int n_threads) {
        const Index n_members = mean_sq.size();
        const Scalar* p = data(params, n_members * layout.n_params, "params");
        double* ms = mutable_data(mean_sq, n_members, "mean_sq");
        double* sm = mutable_data(sq_mean, n_members, "sq_mean");
        const auto train = data_ref(layout, x_train, y_train, "train data");
        py::gil_scoped_release release;
        ge::per_sample_gradient_moments(layout, p, n_members, train, ms, sm, n_threads);
      },
      py::arg("layout"), py::arg("params").noconvert(), py::arg("x_train").noconvert(),
      py::arg("y_train").noconvert(), py::arg("mean_sq").noconvert(),
      py::arg("sq_mean").noconvert(), py::arg("n_threads"));
}

}  // namespace

void bind_ensemble(py::module_& m) {
  py::enum_<ge::Sampling>(m, "Sampling", py::module_local())
      .value("epoch", ge::Sampling::kEpoch)
      .value("replacement", ge::Sampling::kReplacement);
  bind_for<double>(m);
  bind_for<float>(m);
  m.def(
      "step_kernel",
      [](const ge::Layout& layout, Index batch_size, Index n_train, bool float32, bool generic_kernel,
         bool moment_gradient) -> std::string {
        return float32 ? ge::step_kernel_of<float>(layout, batch_size, n_train, generic_kernel, moment_gradient)
                       : ge::step_kernel_of<double>(layout, batch_size, n_train, generic_kernel, moment_gradient);
      },
      py::arg("layout"), py::arg("batch_size"), py::arg("n_train"), py::arg("float32"),
      py::arg("generic_kernel") = false, py::arg("moment_gradient") = true);
}
