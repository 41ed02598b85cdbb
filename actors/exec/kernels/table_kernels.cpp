// Table kernels: building and taking apart tables, row selection, ordering
// and partitioning. Columns of any dtype are carried along.
//
// | op             | inputs          | attrs                | result          |
// |----------------|-----------------|----------------------|-----------------|
// | make_table     | x1..xn (1-D)    | names (strs, n)      | table           |
// | column         | table           | name (str)           | 1-D tensor      |
// | num_rows       | table           |                      | int64 scalar    |
// | select_columns | table           | columns (strs)       | table           |
// | filter         | table [, pred]  | predicate (str) when | table           |
// |                |                 | no pred input        |                 |
// | concat         | t1..tn          | (see shape_kernels)  | table           |
// | sort_by_key    | table           | key (str)            | table           |
// | hash_partition | table           | key (str), n (i64)   | n tables        |
//
// `column` and `select_columns` share the column buffers (no copy);
// `select_columns` returns the columns in the listed order. `filter` keeps
// the rows where the predicate (a bool or uint8 tensor of one element per
// row, or the named bool/uint8 column, which stays in the result) is
// nonzero, in their order. `sort_by_key` is stable and ascending, NaN keys
// last. `hash_partition` declares n outputs; row r goes to part
// hash(key[r]) % n with the hash of detail/table_util.hpp (splitmix64 of
// the key as int64, or of its float64 bits), so equal keys of any integer
// dtype land in the same part on every platform; rows keep their order
// within a part.

#include <cstring>

#include "actors/exec/kernels/detail/table_util.hpp"

namespace objstore::kernels {

namespace {

kernel_result make_table(kernel_context& ctx, std::span<const value_ptr> args) {
  auto names = ctx.node().attr_strs("names");
  if (!names)
    return names.error();
  if (names->size() != args.size())
    return ctx.fail("has " + std::to_string(args.size()) + " inputs but "
                    + std::to_string(names->size()) + " names");
  std::vector<column> columns;
  for (size_t i = 0; i < args.size(); ++i) {
    auto x = tensor_arg(ctx, args, i);
    if (!x)
      return x.error();
    columns.push_back(column{(*names)[i], **x});
  }
  return make_table_result(ctx, std::move(columns));
}

kernel_result column_of(kernel_context& ctx, std::span<const value_ptr> args) {
  auto t = table_arg(ctx, args, 0);
  if (!t)
    return t.error();
  auto name = ctx.node().attr_str("name");
  if (!name)
    return name.error();
  auto col = column_arg(ctx, **t, *name);
  if (!col)
    return col.error();
  return one(make_value((*col)->data));
}

kernel_result num_rows(kernel_context& ctx, std::span<const value_ptr> args) {
  auto t = table_arg(ctx, args, 0);
  if (!t)
    return t.error();
  return one(make_value(
      tensor::from<int64_t>({}, std::vector<int64_t>{(*t)->num_rows()})));
}

kernel_result select_columns(kernel_context& ctx,
                             std::span<const value_ptr> args) {
  auto t = table_arg(ctx, args, 0);
  if (!t)
    return t.error();
  auto names = ctx.node().attr_strs("columns");
  if (!names)
    return names.error();
  std::vector<column> columns;
  for (auto& name : *names) {
    auto col = column_arg(ctx, **t, name);
    if (!col)
      return col.error();
    columns.push_back(**col);
  }
  return make_table_result(ctx, std::move(columns));
}

kernel_result filter(kernel_context& ctx, std::span<const value_ptr> args) {
  auto t = table_arg(ctx, args, 0);
  if (!t)
    return t.error();
  auto& x = **t;
  const tensor* pred = nullptr;
  if (args.size() > 1) {
    auto p = tensor_arg(ctx, args, 1);
    if (!p)
      return p.error();
    pred = *p;
  } else {
    auto name = ctx.node().attr_str("predicate");
    if (!name)
      return ctx.fail("needs a predicate input or a 'predicate' attribute");
    auto col = column_arg(ctx, x, *name);
    if (!col)
      return col.error();
    pred = &(*col)->data;
  }
  if ((pred->type() != dtype::bool_ && pred->type() != dtype::uint8)
      || pred->rank() != 1 || pred->shape()[0] != x.num_rows())
    return ctx.fail("predicate must be bool or uint8 with one element per row ("
                    + std::to_string(x.num_rows()) + "), got "
                    + describe_tensor(*pred));
  auto* p = data_of<uint8_t>(*pred);
  auto rows = x.num_rows();
  std::vector<int64_t> kept;
  kept.reserve(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    if (p[r] != 0)
      kept.push_back(r);
  if (static_cast<int64_t>(kept.size()) == rows)
    return one(args[0]);
  return make_table_result(ctx, gather_rows(x, kept));
}

kernel_result sort_by_key(kernel_context& ctx,
                          std::span<const value_ptr> args) {
  auto t = table_arg(ctx, args, 0);
  if (!t)
    return t.error();
  auto key = ctx.node().attr_str("key");
  if (!key)
    return key.error();
  auto col = column_arg(ctx, **t, *key);
  if (!col)
    return col.error();
  auto order = stable_order((*col)->data);
  return make_table_result(ctx, gather_rows(**t, order));
}

kernel_result hash_partition(kernel_context& ctx,
                             std::span<const value_ptr> args) {
  auto t = table_arg(ctx, args, 0);
  if (!t)
    return t.error();
  auto& x = **t;
  auto& node = ctx.node();
  auto key = node.attr_str("key");
  if (!key)
    return key.error();
  auto n = node.attr_i64("n");
  if (!n)
    return n.error();
  if (*n < 1 || static_cast<size_t>(*n) != node.outputs.size())
    return ctx.fail("attribute n = " + std::to_string(*n)
                    + " must be positive and equal the number of outputs ("
                    + std::to_string(node.outputs.size()) + ")");
  auto col = column_arg(ctx, x, *key);
  if (!col)
    return col.error();
  auto parts = static_cast<size_t>(*n);
  auto rows = static_cast<size_t>(x.num_rows());
  // Counting sort of the row indices by part keeps rows in order per part.
  std::vector<uint32_t> part_of(rows);
  visit_dtype((*col)->data.type(), [&](auto tag) {
    using T = decltype(tag);
    auto* k = data_of<T>((*col)->data);
    for (size_t r = 0; r < rows; ++r)
      part_of[r] = static_cast<uint32_t>(key_hash(k[r]) % parts);
  });
  std::vector<size_t> begin(parts + 1, 0);
  for (auto p : part_of)
    ++begin[p + 1];
  for (size_t p = 0; p < parts; ++p)
    begin[p + 1] += begin[p];
  std::vector<int64_t> order(rows);
  auto next = begin;
  for (size_t r = 0; r < rows; ++r)
    order[next[part_of[r]]++] = static_cast<int64_t>(r);
  std::vector<value_ptr> result;
  result.reserve(parts);
  for (size_t p = 0; p < parts; ++p) {
    auto rows_of_p
        = std::span{order}.subspan(begin[p], begin[p + 1] - begin[p]);
    auto part = make_table_result(ctx, gather_rows(x, rows_of_p));
    if (!part)
      return part.error();
    result.push_back(std::move(part->front()));
  }
  return result;
}

} // namespace

kernel_result concat_tables(kernel_context& ctx,
                            std::span<const value_ptr> args) {
  auto first = table_arg(ctx, args, 0);
  if (!first)
    return first.error();
  auto& schema = (*first)->columns();
  int64_t rows = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    auto ti = table_arg(ctx, args, i);
    if (!ti)
      return ti.error();
    auto& cols = (*ti)->columns();
    bool same = cols.size() == schema.size();
    for (size_t c = 0; same && c < cols.size(); ++c)
      same = cols[c].name == schema[c].name
             && cols[c].data.type() == schema[c].data.type();
    if (!same)
      return ctx.fail("input #" + std::to_string(i)
                      + " has another schema (column names and dtypes)"
                        " than input #0");
    rows += (*ti)->num_rows();
  }
  std::vector<column> columns;
  for (size_t c = 0; c < schema.size(); ++c) {
    auto [data, raw] = tensor::allocate(schema[c].data.type(), {rows});
    auto* dst = raw;
    for (auto& arg : args) {
      auto& part = arg->as_table().columns()[c].data;
      if (part.size_bytes() > 0)
        std::memcpy(dst, part.raw(), part.size_bytes());
      dst += part.size_bytes();
    }
    columns.push_back(column{schema[c].name, std::move(data)});
  }
  return make_table_result(ctx, std::move(columns));
}

void register_table_kernels(op_registry& r) {
  r.add(make_def("make_table", 0, SIZE_MAX, 1, make_table));
  r.add(make_def("column", 1, 1, 1, column_of));
  r.add(make_def("num_rows", 1, 1, 1, num_rows));
  r.add(make_def("select_columns", 1, 1, 1, select_columns));
  r.add(make_def("filter", 1, 2, 1, filter));
  r.add(make_def("sort_by_key", 1, 1, 1, sort_by_key));
  r.add(make_def("hash_partition", 1, 1, SIZE_MAX, hash_partition));
}

} // namespace objstore::kernels
