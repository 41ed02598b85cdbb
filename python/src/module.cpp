// objstore._objstore: the compiled part of the `objstore` Python package
// (python/objstore/__init__.py re-exports it).

#include <pybind11/pybind11.h>

#include "python/src/bindings.hpp"
#include "python/src/errors.hpp"
#include "python/src/values.hpp"

PYBIND11_MODULE(_objstore, m) {
  m.doc() = "objstore's driver side (see the objstore package)";
  objstore::python::register_errors(m);
  objstore::python::register_values(m);
  objstore::python::register_graphs(m);
  objstore::python::register_driver(m);
  objstore::python::register_baselines(m);
}
