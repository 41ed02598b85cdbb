#pragma once

// Helpers for the kernel tests: run one op through objstore::execute (the
// interpreter path, no actor system) and build / read values tersely.

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "actors/exec/interpreter.hpp"
#include "actors/exec/op_registry.hpp"
#include "messages/graph.hpp"
#include "store/error.hpp"
#include "store/value.hpp"

namespace objstore::testing {

/// The built-in registry, shared by all tests of a binary.
inline const op_registry& builtins() {
  static auto registry = op_registry::with_builtins();
  return *registry;
}

/// Runs `opcode(inputs; attrs)` as a one-op graph with `outputs` outputs,
/// validating it first as a worker does.
inline caf::expected<std::vector<value_ptr>>
run_op(const std::string& opcode, std::vector<value_ptr> inputs,
       std::vector<attribute> attrs = {}, size_t outputs = 1,
       const op_registry& registry = builtins()) {
  graph_builder b;
  std::vector<value_id> ids;
  for (size_t i = 0; i < inputs.size(); ++i)
    ids.push_back(b.input());
  for (auto id : b.add_n(opcode, ids, outputs, std::move(attrs)))
    b.output(id);
  auto g = b.build();
  if (auto err = validate(g, registry))
    return err;
  auto result = execute(g, std::move(inputs), registry);
  if (!result)
    return std::move(result.error());
  return std::move(result->outputs);
}

/// Runs a one-output op and returns its value (nullptr on error, with a
/// test failure naming the error).
inline value_ptr run1(const std::string& opcode, std::vector<value_ptr> inputs,
                      std::vector<attribute> attrs = {}) {
  auto result = run_op(opcode, std::move(inputs), std::move(attrs));
  if (!result) {
    ADD_FAILURE() << opcode << ": " << describe(result.error());
    return nullptr;
  }
  return result->front();
}

/// True when `result` failed with `op_failed` and the message names
/// `opcode` and contains `detail`.
template<class T>
::testing::AssertionResult fails_naming(const caf::expected<T>& result,
                                        const std::string& opcode,
                                        const std::string& detail = "") {
  if (result)
    return ::testing::AssertionFailure() << opcode << " succeeded";
  auto& err = result.error();
  auto msg = message_of(err);
  if (code_of(err) != errc::op_failed)
    return ::testing::AssertionFailure() << "not op_failed: " << describe(err);
  if (msg.find("'" + opcode + "'") == std::string::npos)
    return ::testing::AssertionFailure()
           << "message does not name " << opcode << ": " << msg;
  if (msg.find(detail) == std::string::npos)
    return ::testing::AssertionFailure()
           << "message lacks '" << detail << "': " << msg;
  return ::testing::AssertionSuccess();
}

template<class T>
value_ptr tens(std::vector<int64_t> shape, std::vector<T> values) {
  return make_value(tensor::from<T>(std::move(shape), values));
}

template<class T>
value_ptr scalar(T x) {
  return tens<T>({}, {x});
}

inline value_ptr bools(std::vector<int64_t> shape, std::vector<bool> values) {
  return make_value(tensor::from<bool>(std::move(shape), values));
}

/// The elements of a tensor value as T (bool reads as uint8_t).
template<class T>
std::vector<T> vals(const value_ptr& x) {
  if (!x || !x->is_tensor())
    return {};
  auto span = x->as_tensor().values<T>();
  return {span.begin(), span.end()};
}

inline int64_t product_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape)
    n *= d;
  return n;
}

inline std::vector<int64_t> shape_of(const value_ptr& x) {
  return x && x->is_tensor() ? x->as_tensor().shape()
                             : std::vector<int64_t>{-1};
}

inline dtype type_of(const value_ptr& x) {
  return x->as_tensor().type();
}

/// Builds a table value from (name, tensor value) pairs.
inline value_ptr
make_table_value(std::vector<std::pair<std::string, value_ptr>> cols) {
  std::vector<column> columns;
  for (auto& [name, v] : cols)
    columns.push_back(column{name, v->as_tensor()});
  auto result = table::make(std::move(columns));
  if (!result) {
    ADD_FAILURE() << describe(result.error());
    return nullptr;
  }
  return make_value(std::move(*result));
}

/// The column `name` of a table value as T.
template<class T>
std::vector<T> col(const value_ptr& x, const std::string& name) {
  if (!x || !x->is_table())
    return {};
  auto* c = x->as_table().find(name);
  if (c == nullptr)
    return {};
  auto span = c->data.values<T>();
  return {span.begin(), span.end()};
}

inline std::vector<std::string> column_names(const value_ptr& x) {
  std::vector<std::string> names;
  if (x && x->is_table())
    for (auto& c : x->as_table().columns())
      names.push_back(c.name);
  return names;
}

/// Converts a list of small numbers to T (for typed tests).
template<class T>
std::vector<T> as(std::initializer_list<double> xs) {
  std::vector<T> result;
  for (auto x : xs)
    result.push_back(static_cast<T>(x));
  return result;
}

using numeric_types
    = ::testing::Types<int8_t, uint8_t, int32_t, int64_t, float, double>;

} // namespace objstore::testing
