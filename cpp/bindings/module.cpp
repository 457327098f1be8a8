// grokescape._core: the compiled core. One bind_<topic>.cpp file per concept.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_config(py::module_& m);
void bind_rng(py::module_& m);
void bind_layout(py::module_& m);
void bind_parts(py::module_& m);
void bind_state(py::module_& m);
void bind_train(py::module_& m);
void bind_evaluate(py::module_& m);
void bind_escape(py::module_& m);
void bind_splitting(py::module_& m);

PYBIND11_MODULE(GROKESCAPE_MODULE_NAME, m) {
  m.doc() = "grokescape compiled core (private; use the grokescape package)";
  bind_config(m);
  bind_rng(m);
  bind_layout(m);
  bind_parts(m);
  bind_state(m);
  bind_train(m);
  bind_evaluate(m);
  bind_escape(m);
  bind_splitting(m);
}
