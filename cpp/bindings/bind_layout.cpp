// The network shape and parameter layout (grokescape/layout.hpp).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "grokescape/layout.hpp"

namespace py = pybind11;
using grokescape::Index;
using grokescape::Layout;

void bind_layout(py::module_& m) {
  py::enum_<grokescape::Activation>(m, "Activation", py::module_local())
      .value("linear", grokescape::Activation::kLinear)
      .value("tanh", grokescape::Activation::kTanh);

  py::class_<Layout>(m, "Layout", py::module_local())
      .def(py::init<std::vector<Index>, bool, grokescape::Activation>(), py::arg("widths"),
           py::arg("bias"), py::arg("activation"))
      .def_readonly("widths", &Layout::widths)
      .def_readonly("bias", &Layout::bias)
      .def_readonly("activation", &Layout::activation)
      .def_readonly("w_offset", &Layout::w_offset)
      .def_readonly("b_offset", &Layout::b_offset)
      .def_readonly("n_params", &Layout::n_params)
      .def_property_readonly("depth", &Layout::depth);
}
