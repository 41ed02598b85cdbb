// Reductions over axes and matrix multiplication.
//
// | op     | inputs | attrs                         | result |
// |--------|--------|-------------------------------|--------------------------|
// | sum    | x      | axes (i64s, opt), keepdims    | int64 for bool/integers,
// | |        |        | (i64 0/1, opt)                | float64 for floats | |
// mean   | x      | axes, keepdims                | float64                  |
// | min    | x      | axes, keepdims                | dtype of x | | max    | x
// | axes, keepdims                | dtype of x               | | matmul | a, b
// |                               | [m,k] x [k,n] -> [m,n]   |
//
// `axes` lists distinct axes in [-rank, rank); absent means all axes (the
// result is then a scalar unless keepdims is 1); an empty list reduces
// nothing. `axes` may also be a single i64, or given as `axis` (i64).
// Integer sums wrap in int64. The
// sum of nothing is 0 and the mean of nothing NaN; min/max of an empty
// reduction fail. min/max propagate NaN. `matmul` takes two 2-D tensors of
// one dtype among float32, float64, int32, int64 (integers wrap) and keeps
// that dtype.

#include <algorithm>
#include <limits>

#include "actors/exec/kernels/detail/kernel_util.hpp"

namespace objstore::kernels {

namespace {

// -- planning -----------------------------------------------------------------

// The input's dimensions grouped into maximal runs of reduced or kept axes
// (size-1 axes dropped), which keeps the inner loops long and contiguous.
struct reduce_plan {
  std::vector<int64_t> out_shape;
  int64_t out_count = 1;
  int64_t reduced_count = 1;
  std::vector<int64_t> sizes;
  std::vector<bool> reduced;
  std::vector<int64_t> out_strides; // 0 for reduced groups
};

caf::expected<std::vector<bool>> reduced_axes(const kernel_context& ctx,
                                              const tensor& x) {
  auto& node = ctx.node();
  std::vector<bool> result(x.rank(), true);
  std::vector<int64_t> axes;
  if (auto* list = node.find_attr("axes", attr_type::i64s))
    axes = list->ints;
  else if (auto* single = node.find_attr("axes", attr_type::i64))
    axes = {single->i};
  else if (auto* axis = node.find_attr("axis", attr_type::i64))
    axes = {axis->i};
  else
    return result;
  std::fill(result.begin(), result.end(), false);
  for (auto axis : axes) {
    auto norm = normalize_axis(axis, x.rank());
    if (!norm)
      return ctx.fail("axis " + std::to_string(axis) + " out of range for "
                      + describe_tensor(x));
    if (result[*norm])
      return ctx.fail("axis " + std::to_string(axis) + " listed twice");
    result[*norm] = true;
  }
  return result;
}

caf::expected<reduce_plan> plan_reduce(const kernel_context& ctx,
                                       const tensor& x) {
  auto axes = reduced_axes(ctx, x);
  if (!axes)
    return axes.error();
  auto keepdims = ctx.node().attr_i64_or("keepdims", 0) != 0;
  reduce_plan plan;
  auto& shape = x.shape();
  for (size_t d = 0; d < shape.size(); ++d) {
    if ((*axes)[d]) {
      plan.reduced_count *= shape[d];
      if (keepdims)
        plan.out_shape.push_back(1);
    } else {
      plan.out_count *= shape[d];
      plan.out_shape.push_back(shape[d]);
    }
    if (shape[d] == 1)
      continue;
    if (!plan.sizes.empty() && plan.reduced.back() == (*axes)[d])
      plan.sizes.back() *= shape[d];
    else {
      plan.sizes.push_back(shape[d]);
      plan.reduced.push_back((*axes)[d]);
    }
  }
  if (plan.sizes.empty()) {
    plan.sizes.push_back(1);
    plan.reduced.push_back(false);
  }
  plan.out_strides.assign(plan.sizes.size(), 0);
  int64_t stride = 1;
  for (size_t g = plan.sizes.size(); g-- > 0;) {
    if (!plan.reduced[g]) {
      plan.out_strides[g] = stride;
      stride *= plan.sizes[g];
    }
  }
  return plan;
}

// Folds every input element into its output slot with `combine(acc, x)`;
// `out` starts filled with the identity.
template<class T, class Acc, class Combine>
void reduce_loop(const reduce_plan& plan, const T* in, Acc* out,
                 Combine combine) {
  if (plan.out_count == 0 || plan.reduced_count == 0)
    return;
  auto groups = plan.sizes.size();
  auto inner = plan.sizes.back();
  bool inner_reduced = plan.reduced.back();
  auto rows = plan.out_count * plan.reduced_count / inner;
  std::vector<int64_t> index(groups, 0);
  int64_t out_off = 0;
  for (int64_t row = 0; row < rows; ++row) {
    const T* x = in + row * inner;
    if (inner_reduced) {
      Acc acc = out[out_off];
      for (int64_t i = 0; i < inner; ++i)
        acc = combine(acc, x[i]);
      out[out_off] = acc;
    } else {
      Acc* z = out + out_off;
      for (int64_t i = 0; i < inner; ++i)
        z[i] = combine(z[i], x[i]);
    }
    for (size_t g = groups - 1; g-- > 0;) {
      if (++index[g] < plan.sizes[g]) {
        out_off += plan.out_strides[g];
        break;
      }
      index[g] = 0;
      out_off -= plan.out_strides[g] * (plan.sizes[g] - 1);
    }
  }
}

// -- kernels ------------------------------------------------------------------

enum class reduction { sum, mean, min, max };

template<reduction Kind>
kernel_result reduce(kernel_context& ctx, std::span<const value_ptr> args) {
  auto a = tensor_arg(ctx, args, 0);
  if (!a)
    return a.error();
  auto& x = **a;
  auto plan = plan_reduce(ctx, x);
  if (!plan)
    return plan.error();
  if constexpr (Kind == reduction::min || Kind == reduction::max)
    if (plan->reduced_count == 0 && plan->out_count > 0)
      return ctx.fail("reduction over an empty axis of " + describe_tensor(x)
                      + " has no identity");
  return visit_dtype(x.type(), [&](auto tag) -> kernel_result {
    using T = decltype(tag);
    if constexpr (Kind == reduction::sum || Kind == reduction::mean) {
      using acc_t = std::conditional_t<Kind == reduction::mean
                                           || std::is_floating_point_v<T>,
                                       double, int64_t>;
      auto [out, raw]
          = tensor::allocate(dtype_of<acc_t>::value, plan->out_shape);
      auto* z = reinterpret_cast<acc_t*>(raw);
      std::fill_n(z, plan->out_count, acc_t{0});
      reduce_loop(*plan, data_of<T>(x), z, [](acc_t acc, T v) {
        return wrap_add(acc, static_cast<acc_t>(v));
      });
      if constexpr (Kind == reduction::mean) {
        auto n = static_cast<double>(plan->reduced_count);
        for (int64_t i = 0; i < plan->out_count; ++i)
          z[i] /= n;
      }
      return one(make_value(std::move(out)));
    } else {
      auto [out, raw] = tensor::allocate(x.type(), plan->out_shape);
      auto* z = reinterpret_cast<T*>(raw);
      using limits = std::numeric_limits<T>;
      constexpr bool is_min = Kind == reduction::min;
      T init;
      if constexpr (std::is_floating_point_v<T>)
        init = is_min ? limits::infinity() : -limits::infinity();
      else
        init = is_min ? limits::max() : limits::lowest();
      if (x.type() == dtype::bool_)
        init = is_min ? T{1} : T{0};
      std::fill_n(z, plan->out_count, init);
      reduce_loop(*plan, data_of<T>(x), z, [](T acc, T v) {
        return is_min ? min_of(acc, v) : max_of(acc, v);
      });
      return one(make_value(std::move(out)));
    }
  });
}

kernel_result matmul(kernel_context& ctx, std::span<const value_ptr> args) {
  auto a = tensor_arg(ctx, args, 0);
  if (!a)
    return a.error();
  auto b = tensor_arg(ctx, args, 1);
  if (!b)
    return b.error();
  auto& x = **a;
  auto& y = **b;
  auto type = x.type();
  if (type != dtype::float32 && type != dtype::float64 && type != dtype::int32
      && type != dtype::int64)
    return ctx.fail("supports float32, float64, int32 and int64, got "
                    + describe_tensor(x));
  if (y.type() != type)
    return ctx.fail("operands have different dtypes: " + describe_tensor(x)
                    + " vs " + describe_tensor(y));
  if (x.rank() != 2 || y.rank() != 2 || x.shape()[1] != y.shape()[0])
    return ctx.fail("needs [m,k] x [k,n], got " + describe_tensor(x) + " x "
                    + describe_tensor(y));
  auto m = x.shape()[0];
  auto k = x.shape()[1];
  auto n = y.shape()[1];
  auto [out, raw] = tensor::allocate(type, {m, n});
  auto cancelled = visit_dtype(type, [&, raw = raw](auto tag) {
    using T = decltype(tag);
    auto* pa = data_of<T>(x);
    auto* pb = data_of<T>(y);
    auto* pc = reinterpret_cast<T*>(raw);
    // i-k-j order: the innermost loop streams one row of b into one row of
    // c, both contiguous.
    for (int64_t i = 0; i < m; ++i) {
      if (ctx.cancelled())
        return true;
      T* c = pc + i * n;
      std::fill_n(c, n, T{0});
      for (int64_t kk = 0; kk < k; ++kk) {
        auto aik = pa[i * k + kk];
        const T* row = pb + kk * n;
        for (int64_t j = 0; j < n; ++j)
          c[j] = wrap_add(c[j], wrap_mul(aik, row[j]));
      }
    }
    return false;
  });
  if (cancelled)
    return make_error(errc::cancelled, "op 'matmul' cancelled");
  return one(make_value(std::move(out)));
}

} // namespace

void register_reduce_kernels(op_registry& r) {
  r.add(make_def("sum", 1, 1, 1, reduce<reduction::sum>));
  r.add(make_def("mean", 1, 1, 1, reduce<reduction::mean>));
  r.add(make_def("min", 1, 1, 1, reduce<reduction::min>));
  r.add(make_def("max", 1, 1, 1, reduce<reduction::max>));
  r.add(make_def("matmul", 2, 2, 1, matmul));
}

} // namespace objstore::kernels
