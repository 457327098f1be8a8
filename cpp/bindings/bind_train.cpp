// Training (grokescape/train.hpp): converts the named parts, releases the GIL, calls the
// core. Defaults, validation and policy live in python/grokescape/_engine.py.
#include <pybind11/pybind11.h>

#include <string>

#include "parts.hpp"
#include "grokescape/train.hpp"

namespace py = pybind11;
namespace ge = grokescape;
namespace gb = grokescape::bind;

void bind_train(py::module_& m) {
  m.def(
      "train",
      [](const gb::StateArrays& state, const gb::DataArrays& data, const gb::ScheduleArrays& schedule,
         const gb::RecordArrays& records, const gb::Options& options, const ge::Span& span) {
        gb::with_scalar(state, [&](auto scalar) {
          using S = decltype(scalar);
          const auto ens = state.ref<S>();
          const auto run_data = data.ref<S>(state.layout);
          const auto sched = schedule.ref(ens.n_members);
          const auto rec = records.training(state.layout, ens.n_members, run_data.modes);
          const auto opt = options.ref();
          const auto sp = gb::checked(span, ens.n_members);
          py::gil_scoped_release release;
          ge::train(state.layout, ens, run_data, sched, rec, opt, sp);
        });
      },
      py::arg("state"), py::arg("data"), py::arg("schedule"), py::arg("records"),
      py::arg("options"), py::arg("span"),
      "Advance the span's members through the schedule, recording where records.at says.");

  m.def(
      "step_kernel",
      [](const ge::Layout& layout, ge::Index batch_size, ge::Index n_train, bool float32,
         const gb::Options& options) -> std::string {
        const ge::KernelOptions k = options.ref().kernels;
        return float32 ? ge::step_kernel_of<float>(layout, batch_size, n_train, k)
                       : ge::step_kernel_of<double>(layout, batch_size, n_train, k);
      },
      py::arg("layout"), py::arg("batch_size"), py::arg("n_train"), py::arg("float32"),
      py::arg("options"), "The name of the step kernel train() runs for this network and batch.");
}
