// Snapshot, restore and clone of member states (grokescape/member_state.hpp): copies
// member states between ensembles' arrays, optionally continuing them with fresh streams.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "parts.hpp"
#include "grokescape/member_state.hpp"

namespace py = pybind11;
namespace ge = grokescape;
namespace gb = grokescape::bind;

void bind_state(py::module_& m) {
  m.def(
      "copy_members",
      [](const gb::StateArrays& source, const py::array& source_members,
         const gb::StateArrays& target, const py::array& target_members,
         const py::array& new_streams, ge::Index batches_per_epoch) {
        if (source.layout.widths != target.layout.widths || source.layout.bias != target.layout.bias ||
            source.layout.activation != target.layout.activation ||
            source.float32() != target.float32())
          throw std::invalid_argument("target: its networks differ from the source's");
        const ge::Index n = source_members.size();
        const auto* from = gb::field<std::int64_t>(source_members, n, "source_members");
        const auto* to = gb::field<std::int64_t>(target_members, n, "target_members");
        const auto* streams =
            new_streams.size() > 0 ? gb::field<std::uint64_t>(new_streams, n, "new_streams") : nullptr;
        gb::with_scalar(source, [&](auto scalar) {
          using S = decltype(scalar);
          ge::copy_members(source.ref<S>(), from, target.ref<S>(), to, n, streams, batches_per_epoch);
        });
      },
      py::arg("source"), py::arg("source_members"), py::arg("target"), py::arg("target_members"),
      py::arg("new_streams"), py::arg("batches_per_epoch"),
      "Member target_members[i] of target takes the state of source_members[i] of source; with "
      "new_streams, continued with that stream (the epoch in progress finishes in its order).");
}
