#include "actors/kernels/dispatch.hpp"

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
  std::string out{to_string(t.type())};
  out += '[';
  for (size_t i = 0; i < t.shape().size(); ++i) {
    if (i > 0)
      out += ',';
    out += std::to_string(t.shape()[i]);
  }
  out += ']';
  return out;
}

} // namespace objstore::kernels
