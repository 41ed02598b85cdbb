// The C++ side of bench/python_bench.py: the same driver calls timed in
// C++ (no Python, no numpy), in the same process and against the same
// workers as the Python calls they are compared with.

#include <chrono>
#include <vector>

#include <pybind11/stl.h>

#include "python/src/bindings.hpp"
#include "python/src/session.hpp"

namespace py = pybind11;

namespace objstore::python {

namespace {

using clock_type = std::chrono::steady_clock;

double elapsed_seconds(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

} // namespace

void register_baselines(py::module_& m) {
  m.def(
      "_cpp_fetch_seconds",
      [](session& s, const host_var& x, uint32_t rank, size_t repeats) {
        return s.with_driver([&](driver& d) {
          std::vector<double> result;
          for (size_t i = 0; i < repeats; ++i) {
            auto start = clock_type::now();
            auto v = unwrap(d.fetch(rank, x));
            result.push_back(elapsed_seconds(start));
          }
          return result;
        });
      },
      py::arg("driver"), py::arg("x"), py::arg("rank"), py::arg("repeats"),
      "Seconds of each of `repeats` C++ fetches of party `rank`'s `x`.");
  m.def(
      "_cpp_run_seconds",
      [](session& s, const graph& g, std::vector<host_var> inputs,
         size_t repeats) {
        return s.with_driver([&](driver& d) {
          std::vector<double> result;
          for (size_t i = 0; i < repeats; ++i) {
            auto start = clock_type::now();
            auto out = unwrap(d.run(g, inputs));
            out.clear(); // released, as a Python loop drops its result
            result.push_back(elapsed_seconds(start));
          }
          return result;
        });
      },
      py::arg("driver"), py::arg("graph"), py::arg("inputs"),
      py::arg("repeats"), "Seconds of each of `repeats` C++ runs of `graph`.");
}

} // namespace objstore::python
