#pragma once

#include <pybind11/pybind11.h>

#include "messages/protocol.hpp"

namespace objstore::python {

// The driver's and workers' records as Python dicts (field names as in
// messages/protocol.hpp).

pybind11::dict to_dict(const driver_stats& x);

pybind11::dict to_dict(const worker_stats& x);

pybind11::dict to_dict(const object_record& x);

pybind11::dict to_dict(const session_info& x);

} // namespace objstore::python
