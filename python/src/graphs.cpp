// Python bindings of the graph IR: `objstore.Graph` and
// `objstore.GraphBuilder`, whose `add` takes attributes from Python ints,
// floats, strings and lists of them.

#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "messages/graph.hpp"
#include "python/src/bindings.hpp"
#include "python/src/errors.hpp"

namespace py = pybind11;

namespace objstore::python {

namespace {

enum class scalar_kind { integer, real, text, other };

scalar_kind kind_of(py::handle x) {
  if (PyBool_Check(x.ptr()) || PyLong_Check(x.ptr()))
    return scalar_kind::integer;
  if (PyFloat_Check(x.ptr()))
    return scalar_kind::real;
  if (py::isinstance<py::str>(x))
    return scalar_kind::text;
  if (PyIndex_Check(x.ptr())) // numpy integers
    return scalar_kind::integer;
  if (PyNumber_Check(x.ptr()) && py::hasattr(x, "__float__"))
    return scalar_kind::real; // numpy floats
  return scalar_kind::other;
}

attribute list_attr(std::string name, const py::list& xs) {
  bool ints = true;
  bool reals = true;
  bool texts = true;
  for (auto x : xs) {
    auto k = kind_of(x);
    ints = ints && k == scalar_kind::integer;
    reals = reals && (k == scalar_kind::integer || k == scalar_kind::real);
    texts = texts && k == scalar_kind::text;
  }
  if (ints) // an empty list too
    return make_attr(std::move(name), xs.cast<std::vector<int64_t>>());
  if (reals) {
    std::vector<double> values;
    for (auto x : xs)
      values.push_back(py::float_(py::reinterpret_borrow<py::object>(x)));
    return make_attr(std::move(name), std::move(values));
  }
  if (texts)
    return make_attr(std::move(name), xs.cast<std::vector<std::string>>());
  throw py::type_error("attribute '" + name
                       + "': a list must hold only ints, only numbers or "
                         "only strings");
}

} // namespace

attribute to_attr(std::string name, py::handle x) {
  if (py::isinstance<py::list>(x) || py::isinstance<py::tuple>(x))
    return list_attr(std::move(name),
                     py::list(py::reinterpret_borrow<py::object>(x)));
  if (py::hasattr(x, "ndim") && py::hasattr(x, "tolist")) { // numpy arrays
    auto items = x.attr("tolist")();
    if (py::isinstance<py::list>(items))
      return list_attr(std::move(name), items);
    return to_attr(std::move(name), items);
  }
  switch (kind_of(x)) {
    case scalar_kind::integer:
      return make_attr(std::move(name), x.cast<int64_t>());
    case scalar_kind::real:
      return make_attr(std::move(name),
                       static_cast<double>(
                           py::float_(py::reinterpret_borrow<py::object>(x))));
    case scalar_kind::text:
      return make_attr(std::move(name), x.cast<std::string>());
    default:
      throw py::type_error("attribute '" + name + "': unsupported type "
                           + py::str(py::type::handle_of(x)).cast<std::string>()
                           + " (int, float, str or a list of them)");
  }
}

std::vector<attribute> to_attrs(const py::object& attrs,
                                const py::kwargs& more) {
  std::vector<attribute> result;
  auto add_all = [&](const py::dict& xs) {
    for (auto [name, x] : xs)
      result.push_back(to_attr(name.cast<std::string>(), x));
  };
  if (!attrs.is_none())
    add_all(attrs.cast<py::dict>());
  add_all(more);
  return result;
}

void register_graphs(py::module_& m) {
  py::class_<graph>(m, "Graph",
                    "A flat SSA list of ops (messages/graph.hpp); build "
                    "one with GraphBuilder.")
      .def_readonly("inputs", &graph::inputs)
      .def_readonly("outputs", &graph::outputs)
      .def_property_readonly("num_ops",
                             [](const graph& g) { return op_count(g); })
      .def_property_readonly("opcodes",
                             [](const graph& g) {
                               std::vector<std::string> result;
                               for (auto& x : g.ops)
                                 result.push_back(x.opcode);
                               return result;
                             })
      .def("validate",
           [](const graph& g) {
             if (auto err = validate_structure(g))
               raise(err);
           })
      .def("__eq__", [](const graph& x, const graph& y) { return x == y; })
      .def("__repr__", [](const graph& g) {
        return "<objstore.Graph " + std::to_string(g.inputs.size())
               + " inputs, " + std::to_string(op_count(g)) + " ops, "
               + std::to_string(g.outputs.size()) + " outputs>";
      });

  py::class_<graph_builder>(m, "GraphBuilder",
                            "Builds a Graph: value ids are ints.")
      .def(py::init<>())
      .def("input", &graph_builder::input, "Declares a new graph input.")
      .def(
          "add",
          [](graph_builder& b, std::string opcode, std::vector<value_id> inputs,
             py::object attrs, std::vector<graph> regions, py::kwargs more) {
            return b.add(std::move(opcode), std::move(inputs),
                         to_attrs(attrs, more), std::move(regions));
          },
          py::arg("opcode"), py::arg("inputs") = std::vector<value_id>{},
          py::arg("attrs") = py::none(),
          py::arg("regions") = std::vector<graph>{},
          "Appends an op with one output and returns its value id. Attributes "
          "come from `attrs` (a dict) and keyword arguments.")
      .def(
          "add_n",
          [](graph_builder& b, std::string opcode, std::vector<value_id> inputs,
             size_t num_outputs, py::object attrs, std::vector<graph> regions,
             py::kwargs more) {
            return b.add_n(std::move(opcode), std::move(inputs), num_outputs,
                           to_attrs(attrs, more), std::move(regions));
          },
          py::arg("opcode"), py::arg("inputs"), py::arg("num_outputs"),
          py::arg("attrs") = py::none(),
          py::arg("regions") = std::vector<graph>{},
          "Appends an op with `num_outputs` outputs and returns their ids.")
      .def("output", &graph_builder::output, "Marks a value as graph output.")
      .def("build", &graph_builder::build);
}

} // namespace objstore::python
