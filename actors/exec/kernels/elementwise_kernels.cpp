// Elementwise tensor kernels. Binary and ternary ops broadcast numpy-style
// (see detail/broadcast.hpp): shapes align at their trailing dimensions and
// sizes must be equal or 1. Operands must share one dtype (no implicit
// promotion; use `cast`).
//
// | op               | inputs        | attrs          | result |
// |------------------|---------------|----------------|------------------------|
// | add, sub, mul    | a, b          |                | dtype of a; not bool |
// | div              | a, b          |                | dtype of a; not bool |
// | neg              | a             |                | dtype of a; not bool |
// | minimum, maximum | a, b          |                | dtype of a | | eq ne lt
// le gt ge| a, b          |                | bool                   | | select
// | cond, a, b    |                | dtype of a             | | cast | a |
// dtype (str)    | the given dtype        |
//
// Integer arithmetic wraps (two's complement). Integer `div` truncates toward
// zero and fails on a zero divisor; float `div` follows IEEE (inf, NaN).
// `minimum`/`maximum` propagate NaN. `select` takes a bool or uint8
// condition (nonzero picks a). `cast` converts to bool as `x != 0`, from
// float to integer by truncation saturating at the integer's range (NaN to
// 0), between integers by wrapping; casting to the same dtype returns the
// input without copying.

#include <algorithm>

#include "actors/exec/kernels/detail/broadcast.hpp"
#include "actors/exec/kernels/detail/kernel_util.hpp"

namespace objstore::kernels {

namespace {

// -- functors -----------------------------------------------------------------

struct add_fn {
  static constexpr bool allows_bool = false;
  template<class T>
  static T apply(T x, T y) noexcept {
    return wrap_add(x, y);
  }
};

struct sub_fn {
  static constexpr bool allows_bool = false;
  template<class T>
  static T apply(T x, T y) noexcept {
    return wrap_sub(x, y);
  }
};

struct mul_fn {
  static constexpr bool allows_bool = false;
  template<class T>
  static T apply(T x, T y) noexcept {
    return wrap_mul(x, y);
  }
};

// Callers reject integer zero divisors before the loop.
struct div_fn {
  static constexpr bool allows_bool = false;
  template<class T>
  static T apply(T x, T y) noexcept {
    if constexpr (std::is_integral_v<T> && std::is_signed_v<T>)
      // min / -1 overflows (and traps on x86); wrap instead.
      return y == T{-1} ? wrap_sub(T{0}, x) : static_cast<T>(x / y);
    else
      return static_cast<T>(x / y);
  }
};

struct minimum_fn {
  static constexpr bool allows_bool = true;
  template<class T>
  static T apply(T x, T y) noexcept {
    return min_of(x, y);
  }
};

struct maximum_fn {
  static constexpr bool allows_bool = true;
  template<class T>
  static T apply(T x, T y) noexcept {
    return max_of(x, y);
  }
};

struct eq_fn {
  template<class T>
  static bool apply(T x, T y) noexcept {
    return x == y;
  }
};

struct ne_fn {
  template<class T>
  static bool apply(T x, T y) noexcept {
    return x != y;
  }
};

struct lt_fn {
  template<class T>
  static bool apply(T x, T y) noexcept {
    return x < y;
  }
};

struct le_fn {
  template<class T>
  static bool apply(T x, T y) noexcept {
    return x <= y;
  }
};

struct gt_fn {
  template<class T>
  static bool apply(T x, T y) noexcept {
    return x > y;
  }
};

struct ge_fn {
  template<class T>
  static bool apply(T x, T y) noexcept {
    return x >= y;
  }
};

// -- loops --------------------------------------------------------------------

// Runs `f` over the broadcast result; the inner loops are specialised for
// the four stride combinations so that each compiles to a plain (and
// vectorisable) loop over raw pointers.
template<class T, class R, class F>
void binary_loop(const broadcast_plan& plan, const T* a, const T* b, R* out,
                 F f) {
  auto sa = plan.inner_stride(0);
  auto sb = plan.inner_stride(1);
  for_each_row(plan, [&](const int64_t* off, int64_t out_off, int64_t n) {
    const T* x = a + off[0];
    const T* y = b + off[1];
    R* z = out + out_off;
    if (sa == 1 && sb == 1) {
      for (int64_t i = 0; i < n; ++i)
        z[i] = static_cast<R>(f(x[i], y[i]));
    } else if (sa == 1) {
      auto yv = *y;
      for (int64_t i = 0; i < n; ++i)
        z[i] = static_cast<R>(f(x[i], yv));
    } else if (sb == 1) {
      auto xv = *x;
      for (int64_t i = 0; i < n; ++i)
        z[i] = static_cast<R>(f(xv, y[i]));
    } else {
      std::fill_n(z, n, static_cast<R>(f(*x, *y)));
    }
  });
}

struct operands {
  const tensor* a;
  const tensor* b;
};

caf::expected<operands> same_dtype_pair(const kernel_context& ctx,
                                        std::span<const value_ptr> args) {
  auto a = tensor_arg(ctx, args, 0);
  if (!a)
    return a.error();
  auto b = tensor_arg(ctx, args, 1);
  if (!b)
    return b.error();
  if ((*a)->type() != (*b)->type())
    return ctx.fail("operands have different dtypes: " + describe_tensor(**a)
                    + " vs " + describe_tensor(**b) + " (use cast)");
  return operands{*a, *b};
}

template<class T>
bool has_zero(const tensor& x) {
  auto* p = data_of<T>(x);
  auto n = x.num_elements();
  bool zero = false;
  for (int64_t i = 0; i < n; ++i)
    zero |= p[i] == T{0};
  return zero;
}

template<class Fn>
kernel_result arithmetic(kernel_context& ctx, std::span<const value_ptr> args) {
  auto xs = same_dtype_pair(ctx, args);
  if (!xs)
    return xs.error();
  auto& a = *xs->a;
  auto& b = *xs->b;
  if (!Fn::allows_bool && a.type() == dtype::bool_)
    return ctx.fail("not defined for bool operands (use cast)");
  const tensor* ops[] = {&a, &b};
  auto plan = plan_broadcast(ctx, ops);
  if (!plan)
    return plan.error();
  if constexpr (std::is_same_v<Fn, div_fn>) {
    auto zero = visit_dtype(a.type(), [&](auto tag) {
      using T = decltype(tag);
      return std::is_integral_v<T> && plan->count > 0 && has_zero<T>(b);
    });
    if (zero)
      return ctx.fail("integer division by zero");
  }
  auto [out, raw] = tensor::allocate(a.type(), plan->shape);
  visit_dtype(a.type(), [&, raw = raw](auto tag) {
    using T = decltype(tag);
    binary_loop(*plan, data_of<T>(a), data_of<T>(b), reinterpret_cast<T*>(raw),
                [](T x, T y) { return Fn::template apply<T>(x, y); });
  });
  return one(make_value(std::move(out)));
}

template<class Fn>
kernel_result compare(kernel_context& ctx, std::span<const value_ptr> args) {
  auto xs = same_dtype_pair(ctx, args);
  if (!xs)
    return xs.error();
  const tensor* ops[] = {xs->a, xs->b};
  auto plan = plan_broadcast(ctx, ops);
  if (!plan)
    return plan.error();
  auto [out, raw] = tensor::allocate(dtype::bool_, plan->shape);
  visit_dtype(xs->a->type(), [&, raw = raw](auto tag) {
    using T = decltype(tag);
    binary_loop(*plan, data_of<T>(*xs->a), data_of<T>(*xs->b),
                reinterpret_cast<uint8_t*>(raw),
                [](T x, T y) { return Fn::template apply<T>(x, y); });
  });
  return one(make_value(std::move(out)));
}

kernel_result neg(kernel_context& ctx, std::span<const value_ptr> args) {
  auto a = tensor_arg(ctx, args, 0);
  if (!a)
    return a.error();
  auto& x = **a;
  if (x.type() == dtype::bool_)
    return ctx.fail("not defined for bool operands (use cast)");
  auto [out, raw] = tensor::allocate(x.type(), x.shape());
  visit_dtype(x.type(), [&, raw = raw](auto tag) {
    using T = decltype(tag);
    auto* p = data_of<T>(x);
    auto* z = reinterpret_cast<T*>(raw);
    auto n = x.num_elements();
    for (int64_t i = 0; i < n; ++i)
      z[i] = wrap_sub(T{0}, p[i]);
  });
  return one(make_value(std::move(out)));
}

kernel_result select(kernel_context& ctx, std::span<const value_ptr> args) {
  auto c = tensor_arg(ctx, args, 0);
  if (!c)
    return c.error();
  auto& cond = **c;
  if (cond.type() != dtype::bool_ && cond.type() != dtype::uint8)
    return ctx.fail("condition must be bool or uint8, got "
                    + describe_tensor(cond));
  auto xs = same_dtype_pair(ctx, args.subspan(1));
  if (!xs)
    return xs.error();
  const tensor* ops[] = {&cond, xs->a, xs->b};
  auto plan = plan_broadcast(ctx, ops);
  if (!plan)
    return plan.error();
  auto [out, raw] = tensor::allocate(xs->a->type(), plan->shape);
  visit_width(xs->a->type(), [&, raw = raw](auto tag) {
    using T = decltype(tag);
    auto* pc = data_of<uint8_t>(cond);
    auto* pa = data_of<T>(*xs->a);
    auto* pb = data_of<T>(*xs->b);
    auto* z = reinterpret_cast<T*>(raw);
    auto sc = plan->inner_stride(0);
    auto sa = plan->inner_stride(1);
    auto sb = plan->inner_stride(2);
    for_each_row(*plan, [&](const int64_t* off, int64_t out_off, int64_t n) {
      auto* rc = pc + off[0];
      auto* ra = pa + off[1];
      auto* rb = pb + off[2];
      auto* rz = z + out_off;
      for (int64_t i = 0; i < n; ++i)
        rz[i] = rc[i * sc] != 0 ? ra[i * sa] : rb[i * sb];
    });
  });
  return one(make_value(std::move(out)));
}

template<class From, class To, bool ToBool>
void convert_all(const From* in, To* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = convert<To, ToBool>(in[i]);
}

kernel_result cast(kernel_context& ctx, std::span<const value_ptr> args) {
  auto a = tensor_arg(ctx, args, 0);
  if (!a)
    return a.error();
  auto& x = **a;
  auto name = ctx.node().attr_str("dtype");
  if (!name)
    return name.error();
  auto target = parse_dtype(*name);
  if (!target)
    return ctx.fail("unknown dtype '" + *name + "'");
  if (*target == x.type())
    return one(args[0]);
  auto [out, raw] = tensor::allocate(*target, x.shape());
  auto n = x.num_elements();
  visit_dtype(x.type(), [&, raw = raw](auto from_tag) {
    using From = decltype(from_tag);
    visit_dtype(*target, [&](auto to_tag) {
      using To = decltype(to_tag);
      if (*target == dtype::bool_)
        convert_all<From, To, true>(data_of<From>(x),
                                    reinterpret_cast<To*>(raw), n);
      else
        convert_all<From, To, false>(data_of<From>(x),
                                     reinterpret_cast<To*>(raw), n);
    });
  });
  return one(make_value(std::move(out)));
}

} // namespace

void register_elementwise_kernels(op_registry& r) {
  r.add(make_def("add", 2, 2, 1, arithmetic<add_fn>));
  r.add(make_def("sub", 2, 2, 1, arithmetic<sub_fn>));
  r.add(make_def("mul", 2, 2, 1, arithmetic<mul_fn>));
  r.add(make_def("div", 2, 2, 1, arithmetic<div_fn>));
  r.add(make_def("minimum", 2, 2, 1, arithmetic<minimum_fn>));
  r.add(make_def("maximum", 2, 2, 1, arithmetic<maximum_fn>));
  r.add(make_def("neg", 1, 1, 1, neg));
  r.add(make_def("eq", 2, 2, 1, compare<eq_fn>));
  r.add(make_def("ne", 2, 2, 1, compare<ne_fn>));
  r.add(make_def("lt", 2, 2, 1, compare<lt_fn>));
  r.add(make_def("le", 2, 2, 1, compare<le_fn>));
  r.add(make_def("gt", 2, 2, 1, compare<gt_fn>));
  r.add(make_def("ge", 2, 2, 1, compare<ge_fn>));
  r.add(make_def("select", 3, 3, 1, select));
  r.add(make_def("cast", 1, 1, 1, cast));
}

} // namespace objstore::kernels
