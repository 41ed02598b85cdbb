// Basic kernels and the registration of every built-in kernel.
//
// | op       | inputs   | attrs         | result                              |
// |----------|----------|---------------|-------------------------------------|
// | identity | x1..xn   |               | x1..xn (declares n outputs)         |
// | reveal   | x        |               | x, marked revealed                  |
// | checksum | x        |               | int64 scalar over x's encoding      |
// | sleep    | x1..xn   | ms (i64, 0)   | x1..xn after ms milliseconds;       |
// |          |          |               | cancellable (fault tests)           |
//
// The other built-ins live in elementwise_kernels.cpp, reduce_kernels.cpp,
// shape_kernels.cpp, source_kernels.cpp, table_kernels.cpp and
// keyed_table_kernels.cpp; each file's header comment lists its ops.

#include <chrono>
#include <thread>

#include "actors/exec/kernels/detail/kernel_util.hpp"
#include "store/codec.hpp"

namespace objstore::kernels {

namespace {

kernel_result identity(kernel_context&, std::span<const value_ptr> args) {
  return std::vector<value_ptr>(args.begin(), args.end());
}

kernel_result checksum(kernel_context& ctx, std::span<const value_ptr> args) {
  if (args.size() != 1)
    return ctx.fail("takes one input");
  auto bytes = encode_pieces(*args[0]);
  int64_t h = 0;
  for (auto& b : bytes.blocks)
    h = static_cast<int64_t>(checksum_of(b) ^ (static_cast<uint64_t>(h) * 31));
  return one(make_value(tensor::from<int64_t>({}, std::vector<int64_t>{h})));
}

kernel_result sleep_ms(kernel_context& ctx, std::span<const value_ptr> args) {
  auto ms = ctx.node().attr_i64_or("ms", 0);
  auto deadline
      = std::chrono::steady_clock::now() + std::chrono::milliseconds{ms};
  while (std::chrono::steady_clock::now() < deadline) {
    if (ctx.cancelled())
      return make_error(errc::cancelled, "op 'sleep' cancelled");
    std::this_thread::sleep_for(std::chrono::milliseconds{2});
  }
  return std::vector<value_ptr>(args.begin(), args.end());
}

} // namespace

void register_basic_kernels(op_registry& r) {
  r.add(make_def("identity", 0, SIZE_MAX, SIZE_MAX, identity));
  auto reveal = make_def("reveal", 1, 1, 1, identity);
  reveal.reveals = true;
  r.add(std::move(reveal));
  r.add(make_def("checksum", 1, 1, 1, checksum));
  r.add(make_def("sleep", 0, SIZE_MAX, SIZE_MAX, sleep_ms));
}

} // namespace objstore::kernels

namespace objstore {

void register_builtin_kernels(op_registry& registry) {
  kernels::register_basic_kernels(registry);
  kernels::register_elementwise_kernels(registry);
  kernels::register_reduce_kernels(registry);
  kernels::register_shape_kernels(registry);
  kernels::register_source_kernels(registry);
  kernels::register_table_kernels(registry);
  kernels::register_keyed_table_kernels(registry);
}

} // namespace objstore
