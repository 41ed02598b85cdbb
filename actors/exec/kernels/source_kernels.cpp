// Source kernels: tensors made from attributes only (no inputs).
//
// | op             | attrs                                  | result |
// |----------------|----------------------------------------|------------------|
// | constant       | shape (i64s), dtype (str, float64),    | filled tensor |
// |                | value (f64) or values (f64s)           | | | iota | n
// (i64) or shape (i64s), dtype (str,   | start, start+1,  | |                |
// int64), start (i64, 0)                 | ... row-major    | | random_uniform
// | seed (i64), shape (i64s), dtype (str,  | uniform in       | | | float64;
// float32/float64), low (f64,   | [low, high)      | |                | 0),
// high (f64, 1)                      |                  |
//
// `constant` converts the value like `cast` (to bool as `x != 0`, to
// integers saturating); `values` must hold one value per element in
// row-major order. `iota` is not defined for bool; integers wrap.
// `random_uniform` is a pure function of (seed, element index): element i
// is splitmix64(seed + (i + 1) * golden gamma) scaled to [low, high), so the
// same seed and shape give the same tensor on every platform and a larger
// shape extends a smaller one.

#include <cmath>

#include "actors/exec/kernels/detail/kernel_util.hpp"

namespace objstore::kernels {

namespace {

kernel_result constant(kernel_context& ctx, std::span<const value_ptr>) {
  auto& node = ctx.node();
  auto type = dtype_attr(ctx, "dtype", dtype::float64);
  if (!type)
    return type.error();
  auto shape = shape_attr(ctx, "shape");
  if (!shape)
    return shape.error();
  auto [out, raw] = tensor::allocate(*type, *shape);
  auto n = out.num_elements();
  std::vector<double> values;
  if (auto* list = node.find_attr("values", attr_type::f64s)) {
    if (static_cast<int64_t>(list->floats.size()) != n)
      return ctx.fail("attribute 'values' has "
                      + std::to_string(list->floats.size())
                      + " elements, shape " + describe_shape(*shape) + " needs "
                      + std::to_string(n));
    values = list->floats;
  } else {
    auto fill = node.attr_f64("value");
    if (!fill)
      return fill.error();
    values.assign(1, *fill);
  }
  visit_dtype(*type, [&, raw = raw](auto tag) {
    using T = decltype(tag);
    auto* z = reinterpret_cast<T*>(raw);
    auto store = [&](double v) {
      return *type == dtype::bool_ ? convert<T, true>(v) : convert<T, false>(v);
    };
    if (values.size() == 1 && n != 1)
      std::fill_n(z, n, store(values[0]));
    else
      for (int64_t i = 0; i < n; ++i)
        z[i] = store(values[static_cast<size_t>(i)]);
  });
  return one(make_value(std::move(out)));
}

kernel_result iota(kernel_context& ctx, std::span<const value_ptr>) {
  auto& node = ctx.node();
  auto type = dtype_attr(ctx, "dtype", dtype::int64);
  if (!type)
    return type.error();
  if (*type == dtype::bool_)
    return ctx.fail("not defined for bool");
  std::vector<int64_t> shape;
  if (auto* n = node.find_attr("n", attr_type::i64)) {
    if (n->i < 0)
      return ctx.fail("attribute 'n' is negative");
    shape = {n->i};
  } else if (node.find_attr("shape", attr_type::i64s) != nullptr) {
    auto s = shape_attr(ctx, "shape");
    if (!s)
      return s.error();
    shape = std::move(*s);
  } else {
    return ctx.fail("needs attribute 'n' (int) or 'shape' (int list)");
  }
  auto start = node.attr_i64_or("start", 0);
  auto [out, raw] = tensor::allocate(*type, std::move(shape));
  // Outside the lambda: clang 14 cannot capture structured bindings.
  auto n = out.num_elements();
  visit_dtype(*type, [&, raw = raw](auto tag) {
    using T = decltype(tag);
    auto* z = reinterpret_cast<T*>(raw);
    for (int64_t i = 0; i < n; ++i)
      z[i] = static_cast<T>(wrap_add(start, i));
  });
  return one(make_value(std::move(out)));
}

template<class T>
void fill_uniform(T* z, int64_t n, uint64_t seed, double low, double high) {
  auto width = high - low;
  // The largest value below `high` in T, for results rounded up to it.
  auto below_high = std::nextafter(static_cast<T>(high), static_cast<T>(low));
  for (int64_t i = 0; i < n; ++i) {
    auto bits = splitmix64(seed + static_cast<uint64_t>(i + 1) * golden_gamma);
    // 53 random bits give a double in [0, 1).
    auto unit = static_cast<double>(bits >> 11) * 0x1.0p-53;
    auto v = static_cast<T>(low + width * unit);
    z[i] = (v >= static_cast<T>(high) && high > low) ? below_high : v;
  }
}

kernel_result random_uniform(kernel_context& ctx, std::span<const value_ptr>) {
  auto& node = ctx.node();
  auto seed = node.attr_i64("seed");
  if (!seed)
    return seed.error();
  auto shape = shape_attr(ctx, "shape");
  if (!shape)
    return shape.error();
  auto type = dtype_attr(ctx, "dtype", dtype::float64);
  if (!type)
    return type.error();
  if (!is_float(*type))
    return ctx.fail("dtype must be float32 or float64, got "
                    + std::string{to_string(*type)});
  auto low_attr = node.attr_f64("low");
  auto high_attr = node.attr_f64("high");
  auto low = low_attr ? *low_attr : 0.0;
  auto high = high_attr ? *high_attr : 1.0;
  if (!std::isfinite(low) || !std::isfinite(high) || low > high)
    return ctx.fail("needs finite low <= high, got low " + std::to_string(low)
                    + ", high " + std::to_string(high));
  auto [out, raw] = tensor::allocate(*type, std::move(*shape));
  auto n = out.num_elements();
  auto s = static_cast<uint64_t>(*seed);
  if (*type == dtype::float32)
    fill_uniform(reinterpret_cast<float*>(raw), n, s, low, high);
  else
    fill_uniform(reinterpret_cast<double*>(raw), n, s, low, high);
  return one(make_value(std::move(out)));
}

} // namespace

void register_source_kernels(op_registry& r) {
  r.add(make_def("constant", 0, 0, 1, constant));
  r.add(make_def("iota", 0, 0, 1, iota));
  r.add(make_def("random_uniform", 0, 0, 1, random_uniform));
}

} // namespace objstore::kernels
