#pragma once

#include <pybind11/pybind11.h>

namespace objstore::python {

// Each part of the module registers its classes and functions.

/// Graph, GraphBuilder (graphs.cpp).
void register_graphs(pybind11::module_& m);

/// HostVar, Driver, PendingRun, LocalCluster, connect (bindings.cpp).
void register_driver(pybind11::module_& m);

/// The C++ baselines of bench/python_bench.py (baselines.cpp).
void register_baselines(pybind11::module_& m);

} // namespace objstore::python
