// Helpers shared by the bind_*.cpp files: typed, C-contiguous numpy arrays without
// conversion, and their raw pointers after a dtype, layout and size check. The Python layer
// makes arrays contiguous and of the right dtype and validates values; the checks here only
// stop a programming error from reaching memory, with a message naming the field.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

namespace grokescape::bind {

namespace py = pybind11;

template <class T>
using Array = py::array_t<T, py::array::c_style>;

inline std::string size_error(const char* name, py::ssize_t expected, py::ssize_t got) {
  return std::string(name) + ": expected " + std::to_string(expected) + " elements, got " +
         std::to_string(got);
}

template <class T>
T* mutable_data(Array<T>& a, py::ssize_t size, const char* name) {
  if (a.size() != size) throw std::invalid_argument(size_error(name, size, a.size()));
  return size == 0 ? nullptr : a.mutable_data();
}

template <class T>
const T* data(const Array<T>& a, py::ssize_t size, const char* name) {
  if (a.size() != size) throw std::invalid_argument(size_error(name, size, a.size()));
  return size == 0 ? nullptr : a.data();
}

// Whether `a` holds T in native byte order and is C-contiguous. The dtype is compared by
// equivalence, not identity: an unpickled or np.load-ed array carries its own dtype object.
template <class T>
bool holds(const py::array& a) {
  return py::array_t<T, py::array::c_style>::check_(a);
}

// The elements of an untyped array field as T, after checking dtype, layout and size
// (size < 0: any size).
template <class T>
T* field(const py::array& a, py::ssize_t size, const char* name) {
  if (!holds<T>(a))
    throw std::invalid_argument(std::string(name) + ": expected a C-contiguous " +
                                std::string(py::str(py::dtype::of<T>())) + " array, got " +
                                std::string(py::str(a.dtype())));
  if (size >= 0 && a.size() != size) throw std::invalid_argument(size_error(name, size, a.size()));
  return a.size() == 0 ? nullptr : static_cast<T*>(const_cast<void*>(a.data()));
}

}  // namespace grokescape::bind
