// Keyed table kernels: group-by-key sum and inner join.
//
// | op        | inputs       | attrs                          | result |
// |-----------|--------------|--------------------------------|----------------|
// | group_sum | table        | key (str), values (strs)       | table | | join
// | left, right  | key (str), suffix (str,        | table          | | | |
// default "_right")              |                |
//
// `group_sum` yields one row per distinct key, ascending (NaN keys form one
// last group), with the key column first (its dtype kept) and then one
// column per value column, same name: bool and integer columns sum to int64
// (wrapping), floats to float64.
//
// `join` is an inner equi-join on the column `key`, present in both tables
// with the same dtype. Output columns: every left column, then the right
// columns except the key; a right name that is also a left name gets
// `suffix` appended. Rows: for each left row in order, its matches in right
// row order. NaN keys match nothing.

#include <algorithm>
#include <cmath>

#include "actors/exec/kernels/detail/table_util.hpp"

namespace objstore::kernels {

namespace {

kernel_result group_sum(kernel_context& ctx, std::span<const value_ptr> args) {
  auto t = table_arg(ctx, args, 0);
  if (!t)
    return t.error();
  auto& x = **t;
  auto& node = ctx.node();
  auto key_name = node.attr_str("key");
  if (!key_name)
    return key_name.error();
  auto value_names = node.attr_strs("values");
  if (!value_names)
    return value_names.error();
  auto key = column_arg(ctx, x, *key_name);
  if (!key)
    return key.error();
  std::vector<const column*> values;
  for (auto& name : *value_names) {
    auto col = column_arg(ctx, x, name);
    if (!col)
      return col.error();
    values.push_back(*col);
  }
  auto& keys = (*key)->data;
  auto order = stable_order(keys);
  // Start (in `order`) of each group; the last entry is the row count.
  std::vector<size_t> starts;
  visit_dtype(keys.type(), [&](auto tag) {
    using T = decltype(tag);
    auto* k = data_of<T>(keys);
    for (size_t i = 0; i < order.size(); ++i)
      if (i == 0 || key_less(k[order[i - 1]], k[order[i]]))
        starts.push_back(i);
  });
  auto groups = starts.size();
  starts.push_back(order.size());
  std::vector<int64_t> first_rows(groups);
  for (size_t g = 0; g < groups; ++g)
    first_rows[g] = order[starts[g]];
  std::vector<column> columns;
  columns.push_back(column{*key_name, gather(keys, first_rows)});
  for (auto* col : values) {
    auto& data = col->data;
    auto sum_type = is_float(data.type()) ? dtype::float64 : dtype::int64;
    auto [out, raw]
        = tensor::allocate(sum_type, {static_cast<int64_t>(groups)});
    visit_dtype(data.type(), [&, raw = raw](auto tag) {
      using T = decltype(tag);
      using acc_t
          = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
      auto* v = data_of<T>(data);
      auto* z = reinterpret_cast<acc_t*>(raw);
      for (size_t g = 0; g < groups; ++g) {
        acc_t acc = 0;
        for (size_t i = starts[g]; i < starts[g + 1]; ++i)
          acc = wrap_add(acc, static_cast<acc_t>(v[order[i]]));
        z[g] = acc;
      }
    });
    columns.push_back(column{col->name, std::move(out)});
  }
  return make_table_result(ctx, std::move(columns));
}

/// Refuses a join whose `rows` output rows would not fit the task's limits:
/// its widest column above the per-buffer cap (objstore.max-object-size),
/// or the whole output plus its row indices above the memory the node has
/// left (objstore.memory-limit).
caf::error check_join_size(const table& left, const table& right,
                           uint64_t rows) {
  auto row_bytes = [](const table& t, uint64_t& widest) {
    uint64_t sum = 0;
    auto n = static_cast<uint64_t>(std::max<int64_t>(t.num_rows(), 1));
    for (auto& col : t.columns()) {
      auto per_row = std::max<uint64_t>(col.data.size_bytes() / n, 1);
      widest = std::max(widest, per_row);
      sum += per_row;
    }
    return sum;
  };
  uint64_t widest = 0;
  auto bytes_per_row = row_bytes(left, widest) + row_bytes(right, widest)
                       + 2 * sizeof(int64_t);
  auto total = rows * bytes_per_row; // rows <= 2^63: left x right rows
  auto cap = scoped_allocation_limit::current();
  if (cap > 0 && rows * widest > cap)
    return make_error(
        errc::resource_exhausted,
        "op 'join': " + std::to_string(rows) + " output rows make a column of "
            + std::to_string(rows * widest)
            + " bytes, above the object size limit of " + std::to_string(cap)
            + " bytes (objstore.max-object-size)");
  auto left_over = scoped_memory_budget::remaining();
  if (left_over != scoped_memory_budget::unlimited && total > left_over)
    return make_error(errc::resource_exhausted,
                      "op 'join': " + std::to_string(rows)
                          + " output rows need " + std::to_string(total)
                          + " bytes, the node has " + std::to_string(left_over)
                          + " left under objstore.memory-limit");
  return {};
}

kernel_result join(kernel_context& ctx, std::span<const value_ptr> args) {
  auto l = table_arg(ctx, args, 0);
  if (!l)
    return l.error();
  auto r = table_arg(ctx, args, 1);
  if (!r)
    return r.error();
  auto& left = **l;
  auto& right = **r;
  auto& node = ctx.node();
  auto key_name = node.attr_str("key");
  if (!key_name)
    return key_name.error();
  auto suffix = node.attr_str_or("suffix", "_right");
  auto lkey = column_arg(ctx, left, *key_name);
  if (!lkey)
    return lkey.error();
  auto rkey = column_arg(ctx, right, *key_name);
  if (!rkey)
    return rkey.error();
  auto& lk = (*lkey)->data;
  auto& rk = (*rkey)->data;
  if (lk.type() != rk.type())
    return ctx.fail("key '" + *key_name + "' has dtype "
                    + std::string{to_string(lk.type())} + " on the left and "
                    + std::string{to_string(rk.type())}
                    + " on the right (use cast)");
  // Sort the right side once, then look up each left key: a first pass
  // counts the output rows, so an output too large for the node's limits
  // (an equal-key join of n x m rows) fails before anything is allocated.
  auto right_order = stable_order(rk);
  std::vector<int64_t> left_rows;
  std::vector<int64_t> right_rows;
  caf::error failure;
  visit_dtype(lk.type(), [&](auto tag) {
    using T = decltype(tag);
    auto* lp = data_of<T>(lk);
    auto* rp = data_of<T>(rk);
    auto rows = lk.num_elements();
    auto matches = [&](int64_t i) {
      auto v = lp[i];
      if constexpr (std::is_floating_point_v<T>)
        if (std::isnan(v)) // NaN matches nothing
          return std::make_pair(right_order.end(), right_order.end());
      auto lo
          = std::partition_point(right_order.begin(), right_order.end(),
                                 [&](int64_t j) { return key_less(rp[j], v); });
      auto hi = std::partition_point(lo, right_order.end(), [&](int64_t j) {
        return !key_less(v, rp[j]);
      });
      return std::make_pair(lo, hi);
    };
    uint64_t out_rows = 0;
    for (int64_t i = 0; i < rows; ++i) {
      if ((i & 0xfff) == 0 && ctx.cancelled()) {
        failure = make_error(errc::cancelled, "op 'join' cancelled");
        return;
      }
      auto [lo, hi] = matches(i);
      out_rows += static_cast<uint64_t>(hi - lo);
    }
    if (auto err = check_join_size(left, right, out_rows)) {
      failure = std::move(err);
      return;
    }
    left_rows.reserve(out_rows);
    right_rows.reserve(out_rows);
    for (int64_t i = 0; i < rows; ++i) {
      auto [lo, hi] = matches(i);
      for (auto it = lo; it != hi; ++it) {
        left_rows.push_back(i);
        right_rows.push_back(*it);
      }
    }
  });
  if (failure)
    return failure;
  auto columns = gather_rows(left, left_rows);
  for (auto& col : right.columns()) {
    if (col.name == *key_name)
      continue;
    auto name = left.find(col.name) != nullptr ? col.name + suffix : col.name;
    columns.push_back(column{std::move(name), gather(col.data, right_rows)});
  }
  return make_table_result(ctx, std::move(columns));
}

} // namespace

void register_keyed_table_kernels(op_registry& r) {
  r.add(make_def("group_sum", 1, 1, 1, group_sum));
  r.add(make_def("join", 2, 2, 1, join));
}

} // namespace objstore::kernels
