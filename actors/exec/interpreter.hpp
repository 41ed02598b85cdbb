#pragma once

#include <atomic>
#include <vector>

#include <caf/expected.hpp>

#include "actors/exec/op_registry.hpp"
#include "messages/graph.hpp"

namespace objstore {

/// Outputs of one local graph run.
struct run_outcome {
  std::vector<value_ptr> outputs;
  /// Per output: produced by a revealing op.
  std::vector<bool> revealed;
};

/// Validates `g` against `registry`: structure (validate_structure), known
/// opcodes, input arity and declared output count. Errors are `op_failed`
/// naming the op.
caf::error validate(const graph& g, const op_registry& registry);

/// Inside a catch block: the thrown object's type (demangled) and its
/// message: what() of a std::exception (and of the exceptions nested in
/// it), the text of a thrown string or C string, the value of a thrown
/// integer: "std::runtime_error: disk full", "int: 42 (not a
/// std::exception)", "my_error (not a std::exception, no message)".
std::string current_exception_text();

/// Executes `g` on one node: runs ops in order, frees each intermediate
/// after its last use, stops at the first failing op. Errors: `op_failed`
/// naming the op and the kernel's message, `cancelled`,
/// `resource_exhausted` (allocation failure). Never throws.
caf::expected<run_outcome> execute(const graph& g,
                                   std::vector<value_ptr> inputs,
                                   const op_registry& registry,
                                   cancel_flags cancel = {});

} // namespace objstore
