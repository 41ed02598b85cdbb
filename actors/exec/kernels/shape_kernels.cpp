// Shape kernels: reshape, slice, concat, transpose. They work on every dtype
// and only move elements (dispatching on the element width).
//
// | op        | inputs      | attrs                           | result |
// |-----------|-------------|---------------------------------|----------------|
// | reshape   | x           | shape (i64s, one -1 allowed)    | x, new shape |
// | slice     | x           | start, stop (i64s), step (i64s, | sub-tensor | |
// |             | optional, default 1s)           |                | | concat
// | x1..xn      | axis (i64, default 0)           | joined on axis | | | t1..tn
// |                                 | table rows     | | transpose | x | perm
// (i64s, default reversed)   | permuted axes  |
//
// `reshape` shares the input's buffer (no copy); -1 takes the remaining
// size and cannot be inferred when the other dimensions multiply to 0.
// `slice` follows Python's rules per axis: start/stop may be negative (from
// the end) and are clamped, step may be negative but not 0; the lists may
// be shorter than the rank (the remaining axes are taken whole) but must
// have equal lengths. `concat` of tensors needs one dtype and equal sizes
// except on `axis` (negative counts from the end); `concat` of tables needs
// the same column names and dtypes in the same order and appends rows in
// input order.

#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>

#include "actors/exec/kernels/detail/kernel_util.hpp"

namespace objstore::kernels {

namespace {

kernel_result reshape(kernel_context& ctx, std::span<const value_ptr> args) {
  auto a = tensor_arg(ctx, args, 0);
  if (!a)
    return a.error();
  auto& x = **a;
  auto shape = ctx.node().attr_i64s("shape");
  if (!shape)
    return shape.error();
  int64_t known = 1;
  std::optional<size_t> infer;
  for (size_t i = 0; i < shape->size(); ++i) {
    auto d = (*shape)[i];
    if (d == -1 && !infer)
      infer = i;
    else if (d < 0 || __builtin_mul_overflow(known, d, &known))
      return ctx.fail("invalid target shape " + describe_shape(*shape));
  }
  auto n = x.num_elements();
  if (infer) {
    if (known == 0 || n % known != 0)
      return ctx.fail("cannot reshape " + describe_tensor(x) + " to "
                      + describe_shape(*shape));
    (*shape)[*infer] = n / known;
  } else if (known != n) {
    return ctx.fail("cannot reshape " + describe_tensor(x) + " to "
                    + describe_shape(*shape));
  }
  auto out = tensor::make(x.type(), std::move(*shape), x.data());
  if (!out)
    return ctx.fail(describe(out.error()));
  return one(make_value(std::move(*out)));
}

// Python's slice.indices(): the first index and the element count.
std::pair<int64_t, int64_t> slice_range(int64_t size, int64_t start,
                                        int64_t stop, int64_t step) {
  auto clamp = [&](int64_t i, int64_t lo, int64_t hi) {
    if (i < 0)
      i = i < -size ? lo : i + size;
    return std::min(std::max(i, lo), hi);
  };
  int64_t first;
  int64_t last;
  if (step > 0) {
    first = clamp(start, 0, size);
    last = clamp(stop, 0, size);
    return {first, last > first ? (last - first - 1) / step + 1 : 0};
  }
  first = clamp(start, -1, size - 1);
  last = clamp(stop, -1, size - 1);
  return {first, first > last ? (first - last - 1) / -step + 1 : 0};
}

kernel_result slice(kernel_context& ctx, std::span<const value_ptr> args) {
  auto a = tensor_arg(ctx, args, 0);
  if (!a)
    return a.error();
  auto& x = **a;
  auto& node = ctx.node();
  auto start = node.attr_i64s("start");
  if (!start)
    return start.error();
  auto stop = node.attr_i64s("stop");
  if (!stop)
    return stop.error();
  std::vector<int64_t> step(start->size(), 1);
  if (auto* s = node.find_attr("step", attr_type::i64s))
    step = s->ints;
  if (start->size() != stop->size() || step.size() != start->size()
      || start->size() > x.rank())
    return ctx.fail("start/stop/step need equal lengths of at most the rank of "
                    + describe_tensor(x));
  auto rank = x.rank();
  if (rank == 0)
    return one(args[0]);
  std::vector<int64_t> first(rank, 0);
  std::vector<int64_t> steps(rank, 1);
  std::vector<int64_t> shape = x.shape();
  for (size_t d = 0; d < start->size(); ++d) {
    if (step[d] == 0 || step[d] == std::numeric_limits<int64_t>::min())
      return ctx.fail("invalid step " + std::to_string(step[d]) + " on axis "
                      + std::to_string(d));
    std::tie(first[d], shape[d])
        = slice_range(x.shape()[d], (*start)[d], (*stop)[d], step[d]);
    steps[d] = step[d];
  }
  auto [out, raw] = tensor::allocate(x.type(), shape);
  auto count = out.num_elements();
  if (count == 0)
    return one(make_value(std::move(out)));
  auto in_strides = strides_of(x.shape());
  // Element step of each output axis in the input and the start offset.
  std::vector<int64_t> walk(rank);
  int64_t base = 0;
  for (size_t d = 0; d < rank; ++d) {
    // A single-element axis is never stepped over (and a huge step would
    // overflow).
    walk[d] = shape[d] > 1 ? in_strides[d] * steps[d] : 0;
    base += in_strides[d] * first[d];
  }
  visit_width(x.type(), [&, raw = raw](auto tag) {
    using T = decltype(tag);
    auto* in = data_of<T>(x);
    auto* z = reinterpret_cast<T*>(raw);
    auto inner = shape.back();
    auto inner_walk = walk.back();
    std::vector<int64_t> index(rank, 0);
    int64_t off = base;
    for (int64_t row = 0; row < count / inner; ++row) {
      T* dst = z + row * inner;
      if (inner_walk == 1)
        std::memcpy(dst, in + off, static_cast<size_t>(inner) * sizeof(T));
      else
        for (int64_t i = 0; i < inner; ++i)
          dst[i] = in[off + i * inner_walk];
      for (size_t d = rank - 1; d-- > 0;) {
        if (++index[d] < shape[d]) {
          off += walk[d];
          break;
        }
        index[d] = 0;
        off -= walk[d] * (shape[d] - 1);
      }
    }
  });
  return one(make_value(std::move(out)));
}

kernel_result concat(kernel_context& ctx, std::span<const value_ptr> args) {
  if (!args.empty() && args[0]->is_table())
    return concat_tables(ctx, args);
  auto first = tensor_arg(ctx, args, 0);
  if (!first)
    return first.error();
  auto& x0 = **first;
  auto axis = normalize_axis(ctx.node().attr_i64_or("axis", 0), x0.rank());
  if (!axis)
    return ctx.fail("axis out of range for " + describe_tensor(x0));
  auto shape = x0.shape();
  shape[*axis] = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    auto xi = tensor_arg(ctx, args, i);
    if (!xi)
      return xi.error();
    auto& s = (*xi)->shape();
    bool fits = (*xi)->type() == x0.type() && s.size() == shape.size();
    for (size_t d = 0; fits && d < s.size(); ++d)
      fits = d == *axis || s[d] == x0.shape()[d];
    if (!fits)
      return ctx.fail("cannot concat " + describe_tensor(x0) + " and "
                      + describe_tensor(**xi) + " on axis "
                      + std::to_string(*axis));
    shape[*axis] += s[*axis];
  }
  auto [out, raw] = tensor::allocate(x0.type(), shape);
  // Each input contributes one contiguous chunk per outer index.
  auto outer = product(std::span{shape}.first(*axis));
  auto inner_bytes = static_cast<int64_t>(dtype_size(x0.type()))
                     * product(std::span{shape}.subspan(*axis + 1));
  auto* dst = raw;
  for (int64_t o = 0; o < outer; ++o) {
    for (auto& arg : args) {
      auto& xi = arg->as_tensor();
      auto chunk = static_cast<size_t>(xi.shape()[*axis] * inner_bytes);
      if (chunk > 0)
        std::memcpy(dst, xi.raw() + static_cast<size_t>(o) * chunk, chunk);
      dst += chunk;
    }
  }
  return one(make_value(std::move(out)));
}

kernel_result transpose(kernel_context& ctx, std::span<const value_ptr> args) {
  auto a = tensor_arg(ctx, args, 0);
  if (!a)
    return a.error();
  auto& x = **a;
  auto rank = x.rank();
  std::vector<int64_t> perm(rank);
  for (size_t d = 0; d < rank; ++d)
    perm[d] = static_cast<int64_t>(rank - 1 - d);
  if (auto* p = ctx.node().find_attr("perm", attr_type::i64s))
    perm = p->ints;
  std::vector<bool> seen(rank, false);
  bool valid = perm.size() == rank;
  for (size_t d = 0; valid && d < rank; ++d) {
    valid = perm[d] >= 0 && perm[d] < static_cast<int64_t>(rank)
            && !seen[static_cast<size_t>(perm[d])];
    if (valid)
      seen[static_cast<size_t>(perm[d])] = true;
  }
  if (!valid)
    return ctx.fail("perm " + describe_shape(perm)
                    + " is not a permutation of the axes of "
                    + describe_tensor(x));
  if (rank == 0)
    return one(args[0]);
  auto in_strides = strides_of(x.shape());
  std::vector<int64_t> shape(rank);
  std::vector<int64_t> walk(rank);
  for (size_t d = 0; d < rank; ++d) {
    shape[d] = x.shape()[static_cast<size_t>(perm[d])];
    walk[d] = in_strides[static_cast<size_t>(perm[d])];
  }
  auto [out, raw] = tensor::allocate(x.type(), shape);
  auto count = out.num_elements();
  if (count == 0)
    return one(make_value(std::move(out)));
  visit_width(x.type(), [&, raw = raw](auto tag) {
    using T = decltype(tag);
    auto* in = data_of<T>(x);
    auto* z = reinterpret_cast<T*>(raw);
    auto inner = shape.back();
    auto inner_walk = walk.back();
    std::vector<int64_t> index(rank, 0);
    int64_t off = 0;
    for (int64_t row = 0; row < count / inner; ++row) {
      T* dst = z + row * inner;
      for (int64_t i = 0; i < inner; ++i)
        dst[i] = in[off + i * inner_walk];
      for (size_t d = rank - 1; d-- > 0;) {
        if (++index[d] < shape[d]) {
          off += walk[d];
          break;
        }
        index[d] = 0;
        off -= walk[d] * (shape[d] - 1);
      }
    }
  });
  return one(make_value(std::move(out)));
}

} // namespace

void register_shape_kernels(op_registry& r) {
  r.add(make_def("reshape", 1, 1, 1, reshape));
  r.add(make_def("slice", 1, 1, 1, slice));
  r.add(make_def("concat", 1, SIZE_MAX, 1, concat));
  r.add(make_def("transpose", 1, 1, 1, transpose));
}

} // namespace objstore::kernels
