// The named parts of a core call (parts.hpp): keyword-only constructors, fields read-only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "parts.hpp"

namespace py = pybind11;
namespace ge = grokescape;
namespace gb = grokescape::bind;

void bind_parts(py::module_& m) {
  py::enum_<ge::Sampling>(m, "Sampling", py::module_local())
      .value("epoch", ge::Sampling::kEpoch)
      .value("replacement", ge::Sampling::kReplacement);
  py::enum_<ge::CriterionKind>(m, "CriterionKind", py::module_local())
      .value("mode_amplitude", ge::CriterionKind::kModeAmplitude)
      .value("singular_value", ge::CriterionKind::kSingularValue)
      .value("test_mse", ge::CriterionKind::kTestMse);

  py::class_<gb::StateArrays>(m, "EnsembleState", py::module_local(),
                              "Member states: the arrays an Ensemble owns (member_state.hpp).")
      .def(py::init([](const ge::Layout& layout, py::array params, py::array steps,
                       py::array streams, py::array order_streams, py::array order_epochs,
                       py::array diverged) {
             gb::StateArrays s{layout, params, steps, streams, order_streams, order_epochs, diverged};
             gb::with_scalar(s, [&](auto scalar) { s.ref<decltype(scalar)>(); });  // checks
             return s;
           }),
           py::kw_only(), py::arg("layout"), py::arg("params"), py::arg("steps"),
           py::arg("streams"), py::arg("order_streams"), py::arg("order_epochs"),
           py::arg("diverged"))
      .def_readonly("layout", &gb::StateArrays::layout)
      .def_property_readonly("n_members", &gb::StateArrays::n_members);

  py::class_<gb::DataArrays>(m, "RunData", py::module_local(),
                             "Training and test sets and the data's modes.")
      .def(py::init([](py::array x_train, py::array y_train, py::array x_test, py::array y_test,
                       py::array mode_out, py::array mode_in, py::array eta) {
             return gb::DataArrays{x_train, y_train, x_test, y_test, mode_out, mode_in, eta};
           }),
           py::kw_only(), py::arg("x_train"), py::arg("y_train"), py::arg("x_test"),
           py::arg("y_test"), py::arg("mode_out"), py::arg("mode_in"), py::arg("eta"));

  py::class_<gb::ScheduleArrays>(m, "Schedule", py::module_local(),
                                 "Stages: stage_end (S,), lr, beta, temperature (S, M).")
      .def(py::init([](py::array stage_end, py::array lr, py::array beta, py::array temperature) {
             return gb::ScheduleArrays{stage_end, lr, beta, temperature};
           }),
           py::kw_only(), py::arg("stage_end"), py::arg("lr"), py::arg("beta"),
           py::arg("temperature"));

  py::class_<gb::RecordArrays>(m, "Records", py::module_local(),
                               "Observables at run steps `at` into (rows, M[, ...]) arrays.")
      .def(py::init([](py::array at, py::array train_mse, py::array test_mse, py::array loss,
                       py::array lam, py::array sv, py::array energy, py::array diverged_at) {
             return gb::RecordArrays{at, train_mse, test_mse, loss, lam, sv, energy, diverged_at};
           }),
           py::kw_only(), py::arg("at"), py::arg("train_mse"), py::arg("test_mse"),
           py::arg("loss"), py::arg("lam"), py::arg("sv"), py::arg("energy"),
           py::arg("diverged_at"));

  py::class_<gb::Options>(m, "Options", py::module_local(),
                          "Batches, L2 on biases, threads and kernel switches.")
      .def(py::init([](ge::Index batch_size, ge::Sampling sampling, std::uint64_t seed,
                       bool decay_bias, int n_threads, bool generic_kernel, bool moment_gradient) {
             return gb::Options{batch_size, sampling, seed, decay_bias, n_threads, generic_kernel,
                                moment_gradient};
           }),
           py::kw_only(), py::arg("batch_size"), py::arg("sampling"), py::arg("seed"),
           py::arg("decay_bias"), py::arg("n_threads"), py::arg("generic_kernel") = false,
           py::arg("moment_gradient") = true);

  py::class_<ge::Span>(m, "Span", py::module_local(),
                       "Members [member_begin, member_end) advance from run step first by n_steps.")
      .def(py::init([](std::int64_t first, std::int64_t n_steps, ge::Index member_begin,
                       ge::Index member_end) {
             return ge::Span{first, n_steps, member_begin, member_end, nullptr};
           }),
           py::kw_only(), py::arg("first"), py::arg("n_steps"), py::arg("member_begin"),
           py::arg("member_end"));

  py::class_<gb::CriterionArrays>(m, "Criterion", py::module_local(),
                                  "Escape criterion with one threshold per member.")
      .def(py::init([](ge::CriterionKind kind, ge::Index index, py::array values,
                       std::int64_t hold, std::int64_t check_every) {
             return gb::CriterionArrays{kind, index, values, hold, check_every};
           }),
           py::kw_only(), py::arg("kind"), py::arg("index"), py::arg("values"), py::arg("hold"),
           py::arg("check_every"));

  py::class_<gb::SlotArrays>(m, "Slots", py::module_local(),
                             "Per-slot state of an escape run and its refill rule.")
      .def(py::init([](py::array active, py::array start_step, py::array hold_since,
                       py::array trajectories, py::array init_params, bool refill,
                       std::uint64_t refill_base) {
             return gb::SlotArrays{active, start_step, hold_since, trajectories, init_params,
                                   refill, refill_base};
           }),
           py::kw_only(), py::arg("active"), py::arg("start_step"), py::arg("hold_since"),
           py::arg("trajectories"), py::arg("init_params"), py::arg("refill"),
           py::arg("refill_base"));
}
