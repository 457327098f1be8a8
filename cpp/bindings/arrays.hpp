// Helpers shared by the bind_*.cpp files: typed, C-contiguous numpy arrays without
// conversion, and their raw pointers after a size check. The Python layer makes arrays
// contiguous and of the right dtype and validates values; the checks here only stop a
// programming error from reaching memory.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

namespace grokescape::bind {

namespace py = pybind11;

template <class T>
using Array = py::array_t<T, py::array::c_style>;

template <class T>
T* mutable_data(Array<T>& a, py::ssize_t size, const char* name) {
  if (a.size() != size)
    throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(size) +
                                " elements, got " + std::to_string(a.size()));
  return size == 0 ? nullptr : a.mutable_data();
}

template <class T>
const T* data(const Array<T>& a, py::ssize_t size, const char* name) {
  if (a.size() != size)
    throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(size) +
                                " elements, got " + std::to_string(a.size()));
  return size == 0 ? nullptr : a.data();
}

}  // namespace grokescape::bind
