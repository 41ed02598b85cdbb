#include "actors/exec/kernels/dispatch.hpp"

#include "actors/exec/kernels/detail/kernel_util.hpp"

namespace objstore::kernels {

caf::expected<const tensor*> tensor_arg(const kernel_context& ctx,
                                        std::span<const value_ptr> args,
                                        size_t index) {
  if (index >= args.size())
    return ctx.fail("missing input #" + std::to_string(index));
  if (!args[index]->is_tensor())
    return ctx.fail("input #" + std::to_string(index) + " is a "
                    + std::string{to_string(args[index]->kind())}
                    + ", expected a tensor");
  return &args[index]->as_tensor();
}

caf::expected<const table*> table_arg(const kernel_context& ctx,
                                      std::span<const value_ptr> args,
                                      size_t index) {
  if (index >= args.size())
    return ctx.fail("missing input #" + std::to_string(index));
  if (!args[index]->is_table())
    return ctx.fail("input #" + std::to_string(index) + " is a "
                    + std::string{to_string(args[index]->kind())}
                    + ", expected a table");
  return &args[index]->as_table();
}

std::string describe_tensor(const tensor& t) {
  return std::string{to_string(t.type())} + shape_string(t.shape());
}

// -- internal helpers (detail/kernel_util.hpp)
// ---------------------------------

std::string describe_shape(const std::vector<int64_t>& shape) {
  return shape_string(shape);
}

caf::expected<dtype> dtype_attr(const kernel_context& ctx,
                                std::string_view name, dtype fallback) {
  auto* a = ctx.node().find_attr(name, attr_type::str);
  if (a == nullptr)
    return fallback;
  auto type = parse_dtype(a->s);
  if (!type)
    return ctx.fail("attribute '" + std::string{name} + "': unknown dtype '"
                    + a->s + "'");
  return *type;
}

caf::expected<std::vector<int64_t>> shape_attr(const kernel_context& ctx,
                                               std::string_view name) {
  auto shape = ctx.node().attr_i64s(name);
  if (!shape)
    return shape.error();
  for (auto d : *shape)
    if (d < 0)
      return ctx.fail("attribute '" + std::string{name}
                      + "' has a negative dimension: "
                      + describe_shape(*shape));
  return shape;
}

} // namespace objstore::kernels
