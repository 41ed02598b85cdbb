#pragma once

#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "actors/driver/host_var.hpp"
#include "messages/graph.hpp"

namespace objstore {

class driver;

/// SIMP opcodes, interpreted by the driver (MPLang's SIMP semantics):
///
// clang-format off
/// | opcode        | inputs               | regions      | attributes                  |
/// |---------------|----------------------|--------------|-----------------------------|
/// | pcall_static  | args...              | body (local) | parties: i64 list           |
/// | pcall_dynamic | args...              | body (local) | -                           |
/// | converge      | xs... (disjoint)     | -            | -                           |
/// | uniform_cond  | pred, args...        | then, else   | verify_uniform: 0/1         |
/// | while_loop    | state..., captures...| cond, body   | num_state (default: all)    |
/// | shuffle       | x                    | -            | routing: i64 list           |
// clang-format on
///
/// `pcall_static` sends the body only to the listed parties and records
/// null for the others, so private data never reaches a non-member.
/// `pcall_dynamic` runs the body on every party holding all arguments.
/// The body of a pcall is a local graph: one task, one round trip per
/// party. `uniform_cond` and `while_loop` regions are SIMP graphs; their
/// predicate is a scalar per party that the driver fetches (so the worker's
/// fetch policy applies: reveal it first under `revealed-only`); with
/// `verify_uniform` a predicate that differs across parties is an error.
/// `shuffle` moves each source's value to its target (`routing[target] =
/// source`, -1 for none) through the workers' transfer actors.
bool is_simp_op(std::string_view opcode);

/// Whether any top-level op of `g` is a SIMP op.
bool has_simp_ops(const graph& g);

/// Interprets a SIMP graph on the cluster behind `d`. Host vars that are
/// intermediate are dropped after their last use (their objects are
/// released on the workers). Errors: `op_failed` naming the op, plus the
/// workers' errors.
caf::expected<std::vector<host_var>>
run_simp(driver& d, const graph& g, const std::vector<host_var>& inputs);

} // namespace objstore
