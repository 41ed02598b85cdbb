// Basic kernels: identity, reveal, constant/iota, elementwise arithmetic,
// sum, checksum and the cooperative `sleep` used by fault tests.

#include <chrono>
#include <thread>

#include "actors/kernels/dispatch.hpp"
#include "store/codec.hpp"

namespace objstore::kernels {

namespace {

kernel_result identity(kernel_context&, std::span<const value_ptr> args) {
  return std::vector<value_ptr>(args.begin(), args.end());
}

template<class Op>
kernel_result elementwise(kernel_context& ctx, std::span<const value_ptr> args,
                          Op op) {
  auto x = tensor_arg(ctx, args, 0);
  if (!x)
    return x.error();
  auto y = tensor_arg(ctx, args, 1);
  if (!y)
    return y.error();
  auto& a = **x;
  auto& b = **y;
  if (a.type() != b.type() || a.shape() != b.shape())
    return ctx.fail("operands differ: " + describe_tensor(a) + " vs "
                    + describe_tensor(b));
  auto [out, raw] = tensor::allocate(a.type(), a.shape());
  visit_dtype(a.type(), [&](auto tag) {
    using T = decltype(tag);
    auto n = static_cast<size_t>(a.num_elements());
    auto* px = reinterpret_cast<const T*>(a.raw());
    auto* py = reinterpret_cast<const T*>(b.raw());
    auto* pz = reinterpret_cast<T*>(raw);
    for (size_t i = 0; i < n; ++i)
      pz[i] = static_cast<T>(op(px[i], py[i]));
  });
  return one(make_value(std::move(out)));
}

kernel_result sum_all(kernel_context& ctx, std::span<const value_ptr> args) {
  auto x = tensor_arg(ctx, args, 0);
  if (!x)
    return x.error();
  auto& a = **x;
  return visit_dtype(a.type(), [&](auto tag) -> kernel_result {
    using T = decltype(tag);
    using acc_t
        = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
    acc_t acc = 0;
    for (auto v : a.values<T>())
      acc += v;
    auto out = tensor::from<acc_t>({}, std::vector<acc_t>{acc});
    return one(make_value(std::move(out)));
  });
}

kernel_result constant(kernel_context& ctx, std::span<const value_ptr>) {
  auto& node = ctx.node();
  auto type = parse_dtype(node.attr_str_or("dtype", "float64"));
  if (!type)
    return ctx.fail(describe(type.error()));
  auto shape = node.attr_i64s("shape");
  if (!shape)
    return shape.error();
  auto fill = node.attr_f64("value");
  if (!fill)
    return fill.error();
  for (auto d : *shape)
    if (d < 0)
      return ctx.fail("negative dimension in shape");
  auto [out, raw] = tensor::allocate(*type, *shape);
  visit_dtype(*type, [&, raw = raw, n = out.num_elements()](auto tag) {
    using T = decltype(tag);
    std::fill_n(reinterpret_cast<T*>(raw), n, static_cast<T>(*fill));
  });
  return one(make_value(std::move(out)));
}

kernel_result checksum(kernel_context&, std::span<const value_ptr> args) {
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
  r.add({"identity", 0, SIZE_MAX, SIZE_MAX, {}, identity, false});
  r.add({"reveal", 1, 1, 1, {}, identity, true});
  r.add({"add",
         2,
         2,
         1,
         {},
         [](kernel_context& c, std::span<const value_ptr> a) {
           return elementwise(c, a, [](auto x, auto y) { return x + y; });
         },
         false});
  r.add({"sub",
         2,
         2,
         1,
         {},
         [](kernel_context& c, std::span<const value_ptr> a) {
           return elementwise(c, a, [](auto x, auto y) { return x - y; });
         },
         false});
  r.add({"mul",
         2,
         2,
         1,
         {},
         [](kernel_context& c, std::span<const value_ptr> a) {
           return elementwise(c, a, [](auto x, auto y) { return x * y; });
         },
         false});
  r.add({"sum", 1, 1, 1, {}, sum_all, false});
  r.add({"constant", 0, 0, 1, {}, constant, false});
  r.add({"checksum", 1, 1, 1, {}, checksum, false});
  r.add({"sleep", 0, SIZE_MAX, SIZE_MAX, {}, sleep_ms, false});
}

} // namespace objstore::kernels

namespace objstore {

void register_builtin_kernels(op_registry& registry) {
  kernels::register_basic_kernels(registry);
}

} // namespace objstore
