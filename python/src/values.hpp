#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "store/value.hpp"

namespace objstore::python {

/// Keeps a fetched value alive for the numpy arrays that view its buffers
/// (their `base`). Exposed as `objstore.ValueBuffer`.
struct value_buffer {
  value_ptr value;
};

/// Converts a Python object to a value (needs the GIL): a numpy array (or
/// anything `numpy.asarray` takes) of a supported dtype to a tensor, a dict
/// of equal-length 1-D arrays to a table, bytes-like objects to bytes.
/// Copies the data once into a new buffer (without the GIL). Errors:
/// `InvalidArgument` (unsupported dtype, ragged table), `TypeError`.
value_ptr to_value(pybind11::handle x);

/// Converts a value to Python (needs the GIL): a tensor to a read-only
/// numpy array viewing the value's buffer (no copy; the array keeps the
/// value alive), a table to a dict of such arrays, bytes to `bytes`.
pybind11::object from_value(value_ptr x);

/// numpy's dtype for `x`.
pybind11::dtype numpy_dtype(dtype x);

void register_values(pybind11::module_& m);

} // namespace objstore::python
