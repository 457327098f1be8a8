// Runs until escape (grokescape/escape.hpp): converts the named parts, releases the GIL,
// calls the core, and returns the trajectories that ended as numpy arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "parts.hpp"
#include "grokescape/escape.hpp"

namespace py = pybind11;
namespace ge = grokescape;
namespace gb = grokescape::bind;

namespace {
template <class T, class F>
gb::Array<T> column(const std::vector<ge::EscapeEvent>& events, F&& get) {
  gb::Array<T> out(static_cast<py::ssize_t>(events.size()));
  T* o = out.mutable_data();
  for (std::size_t i = 0; i < events.size(); ++i) o[i] = get(events[i]);
  return out;
}
}  // namespace

void bind_escape(py::module_& m) {
  m.def(
      "run_until_escape",
      [](const gb::StateArrays& state, const gb::DataArrays& data, const gb::ScheduleArrays& schedule,
         const gb::CriterionArrays& criterion, const gb::SlotArrays& slots, const gb::Options& options,
         const ge::Span& span) {
        std::vector<ge::EscapeEvent> events;
        gb::with_scalar(state, [&](auto scalar) {
          using S = decltype(scalar);
          const auto ens = state.ref<S>();
          const auto run_data = data.ref<S>(state.layout);
          const auto sched = schedule.ref(ens.n_members);
          const auto crit = criterion.ref(ens.n_members);
          const auto sl = slots.ref<S>(ens.n_members, ens.n_params);
          const auto opt = options.ref();
          const auto sp = gb::checked(span, ens.n_members);
          py::gil_scoped_release release;
          events = ge::run_until_escape(state.layout, ens, run_data, sched, crit, sl, opt, sp);
        });
        py::dict out;
        out["slot"] = column<std::int64_t>(events, [](const auto& e) { return e.slot; });
        out["trajectory"] = column<std::uint64_t>(events, [](const auto& e) { return e.trajectory; });
        out["escape_age"] = column<std::int64_t>(events, [](const auto& e) { return e.escape_age; });
        out["detect_age"] = column<std::int64_t>(events, [](const auto& e) { return e.detect_age; });
        out["diverged"] = column<bool>(events, [](const auto& e) { return e.diverged; });
        return out;
      },
      py::arg("state"), py::arg("data"), py::arg("schedule"), py::arg("criterion"),
      py::arg("slots"), py::arg("options"), py::arg("span"),
      "Advance every active slot of the span; returns the trajectories that ended.");
}
