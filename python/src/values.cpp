#include "python/src/values.hpp"

#include <cstring>
#include <string>

#include "python/src/errors.hpp"
#include "store/error.hpp"

namespace py = pybind11;

namespace objstore::python {

namespace {

/// numpy's (kind, item size) of each dtype.
struct numpy_kind {
  char kind;
  py::ssize_t size;
  dtype type;
};

constexpr numpy_kind numpy_kinds[] = {
    {'b', 1, dtype::bool_},   {'i', 1, dtype::int8},  {'u', 1, dtype::uint8},
    {'i', 4, dtype::int32},   {'i', 8, dtype::int64}, {'f', 4, dtype::float32},
    {'f', 8, dtype::float64},
};

/// The objstore dtype of a numpy dtype, by kind and item size.
dtype dtype_of_numpy(const py::dtype& dt) {
  for (auto& x : numpy_kinds)
    if (dt.kind() == x.kind && dt.itemsize() == x.size)
      return x.type;
  raise(errc::invalid_argument,
        "unsupported dtype " + dt.attr("name").cast<std::string>()
            + " (bool, int8, uint8, int32, int64, float32, float64)");
}

tensor to_tensor(py::handle x) {
  auto numpy = py::module_::import("numpy");
  py::array arr = numpy.attr("asarray")(x);
  auto type = dtype_of_numpy(arr.dtype());
  if (!arr.dtype().attr("isnative").cast<bool>())
    arr = arr.attr("astype")(arr.dtype().attr("newbyteorder")("="));
  // Not numpy.ascontiguousarray: it makes a 0-d array 1-d.
  if ((arr.flags() & py::array::c_style) == 0)
    arr = arr.attr("copy")("C");
  std::vector<int64_t> shape(arr.shape(), arr.shape() + arr.ndim());
  auto [result, out] = tensor::allocate(type, shape);
  if (result.size_bytes() > 0) {
    py::gil_scoped_release nogil; // `arr` keeps the source alive
    std::memcpy(out, arr.data(), result.size_bytes());
  }
  return result;
}

value_ptr to_table(const py::dict& columns) {
  std::vector<column> cols;
  for (auto [name, data] : columns) {
    if (!py::isinstance<py::str>(name))
      throw py::type_error("table column names must be str");
    cols.push_back(column{name.cast<std::string>(), to_tensor(data)});
  }
  return make_value(unwrap(table::make(std::move(cols))));
}

py::array view_of(const tensor& t, const py::object& owner) {
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  py::array arr{numpy_dtype(t.type()), shape, static_cast<const void*>(t.raw()),
                owner};
  arr.attr("setflags")(py::arg("write") = false);
  return arr;
}

} // namespace

py::dtype numpy_dtype(dtype x) {
  return py::dtype{x == dtype::bool_ ? std::string{"bool"}
                                     : std::string{to_string(x)}};
}

value_ptr to_value(py::handle x) {
  if (py::isinstance<py::bytes>(x) || py::isinstance<py::bytearray>(x)
      || py::isinstance<py::memoryview>(x)) {
    py::buffer_info info = py::reinterpret_borrow<py::buffer>(x).request();
    auto size = static_cast<size_t>(info.size * info.itemsize);
    auto buf = buffer::allocate(size);
    if (size > 0)
      std::memcpy(buf->mutable_data(), info.ptr, size);
    return make_value(blob{std::move(buf)});
  }
  if (py::isinstance<py::dict>(x))
    return to_table(py::reinterpret_borrow<py::dict>(x));
  if (py::isinstance<py::str>(x))
    throw py::type_error("put takes numpy arrays, dicts of 1-D arrays "
                         "(tables) and bytes, not str (encode it first)");
  return make_value(to_tensor(x));
}

py::object from_value(value_ptr x) {
  py::object owner = py::cast(value_buffer{x});
  switch (x->kind()) {
    case value_kind::tensor: return view_of(x->as_tensor(), owner);
    case value_kind::table: {
      py::dict result;
      for (auto& col : x->as_table().columns())
        result[py::str(col.name)] = view_of(col.data, owner);
      return result;
    }
    case value_kind::bytes: {
      auto view = x->as_bytes().view();
      return py::bytes(view.data(), view.size());
    }
  }
  raise(errc::invalid_argument, "unknown value kind");
}

void register_values(py::module_& m) {
  py::class_<value_buffer>(m, "ValueBuffer",
                           "A fetched value that numpy arrays view (their "
                           "`base`): alive while any of them is.")
      .def_property_readonly(
          "address",
          [](const value_buffer& x) {
            // The first buffer's address: a tensor's data, a table's first
            // column, the bytes.
            const std::byte* data = nullptr;
            if (x.value->is_tensor())
              data = x.value->as_tensor().raw();
            else if (x.value->is_table()
                     && !x.value->as_table().columns().empty())
              data = x.value->as_table().columns().front().data.raw();
            else if (x.value->is_bytes() && x.value->as_bytes().data())
              data = x.value->as_bytes().data()->data();
            return reinterpret_cast<uintptr_t>(data);
          })
      .def_property_readonly(
          "nbytes", [](const value_buffer& x) { return x.value->size_bytes(); })
      .def("__repr__", [](const value_buffer& x) {
        return "<objstore.ValueBuffer " + x.value->summary() + ">";
      });
}

} // namespace objstore::python
