#pragma once

// Helpers shared by the kernel files: dtype dispatch and input checks.

#include <cstdint>
#include <span>
#include <string>

#include "actors/exec/op_registry.hpp"
#include "store/error.hpp"
#include "store/value.hpp"

namespace objstore::kernels {

/// Calls `f(T{})` with the C++ type of `type` (bool as uint8_t storage).
template<class F>
decltype(auto) visit_dtype(dtype type, F&& f) {
  switch (type) {
    case dtype::bool_: return f(uint8_t{});
    case dtype::int8: return f(int8_t{});
    case dtype::uint8: return f(uint8_t{});
    case dtype::int32: return f(int32_t{});
    case dtype::int64: return f(int64_t{});
    case dtype::float32: return f(float{});
    case dtype::float64: return f(double{});
  }
  return f(double{});
}

/// Returns the tensor in `x` or an `op_failed` error naming the op.
caf::expected<const tensor*> tensor_arg(const kernel_context& ctx,
                                        std::span<const value_ptr> args,
                                        size_t index);

/// Returns the table in `x` or an `op_failed` error naming the op.
caf::expected<const table*> table_arg(const kernel_context& ctx,
                                      std::span<const value_ptr> args,
                                      size_t index);

/// "float32[2,3]" for messages.
std::string describe_tensor(const tensor& t);

/// Wraps one output.
inline kernel_result one(value_ptr x) {
  return std::vector<value_ptr>{std::move(x)};
}

} // namespace objstore::kernels
