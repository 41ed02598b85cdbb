#include "python/src/errors.hpp"

namespace py = pybind11;

namespace objstore::python {

void raise(const caf::error& err) {
  auto code = code_of(err);
  if (code == errc::none)
    throw error_exception{"error", describe(err)};
  throw error_exception{std::string{to_string(code)}, message_of(err)};
}

void raise(errc code, std::string what) {
  throw error_exception{std::string{to_string(code)}, std::move(what)};
}

void register_errors(py::module_&) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p)
        std::rethrow_exception(p);
    } catch (const error_exception& e) {
      // The classes live in Python (objstore/errors.py), so that users can
      // subclass and pickle them like any exception.
      auto errors = py::module_::import("objstore.errors");
      auto exc = errors.attr("from_code")(e.code(), e.message());
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())),
                      exc.ptr());
    }
  });
}

} // namespace objstore::python
