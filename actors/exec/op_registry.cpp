#include "actors/exec/op_registry.hpp"

#include "store/error.hpp"

namespace objstore {

caf::error op_registry::add(op_def def) {
  if (def.name.empty())
    return make_error(errc::invalid_argument, "op definition without name");
  if (!def.kernel)
    return make_error(errc::invalid_argument,
                      "op '" + def.name + "' has no kernel");
  if (defs_.count(def.name) > 0)
    return make_error(errc::invalid_argument,
                      "op '" + def.name + "' is already registered");
  auto name = def.name;
  defs_.emplace(std::move(name), std::move(def));
  return {};
}

const op_def* op_registry::find(std::string_view name) const {
  auto i = defs_.find(name);
  return i == defs_.end() ? nullptr : &i->second;
}

std::vector<std::string> op_registry::names() const {
  std::vector<std::string> result;
  for (auto& [name, def] : defs_)
    result.push_back(name);
  return result;
}

std::shared_ptr<op_registry> op_registry::with_builtins() {
  auto result = std::make_shared<op_registry>();
  register_builtin_kernels(*result);
  // Not linear: constant, iota and random_uniform (outputs sized by
  // attributes), hash_partition (as many outputs as its attribute asks),
  // matmul (cubic), join (output up to the product of its inputs), sleep.
  // clang-format off
  static constexpr std::string_view linear_ops[] = {
      "add", "cast", "checksum", "column", "concat", "div", "eq", "filter",
      "ge", "group_sum", "gt", "identity", "le", "lt",
      "make_table", "max", "maximum", "mean", "min", "minimum", "mul", "ne",
      "neg", "num_rows", "reshape", "reveal", "select", "select_columns",
      "slice", "sort_by_key", "sub", "sum", "transpose"};
  // clang-format on
  for (auto name : linear_ops)
    if (auto i = result->defs_.find(name); i != result->defs_.end())
      i->second.linear = true;
  return result;
}

} // namespace objstore
