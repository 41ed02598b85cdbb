#include "actors/exec/kernels/detail/table_util.hpp"

#include <algorithm>
#include <numeric>

namespace objstore::kernels {

tensor gather(const tensor& x, std::span<const int64_t> rows) {
  auto [out, raw]
      = tensor::allocate(x.type(), {static_cast<int64_t>(rows.size())});
  visit_width(x.type(), [&, raw = raw](auto tag) {
    using T = decltype(tag);
    auto* in = data_of<T>(x);
    auto* z = reinterpret_cast<T*>(raw);
    for (size_t i = 0; i < rows.size(); ++i)
      z[i] = in[rows[i]];
  });
  return std::move(out);
}

std::vector<column> gather_rows(const table& x, std::span<const int64_t> rows) {
  std::vector<column> result;
  result.reserve(x.columns().size());
  for (auto& col : x.columns())
    result.push_back(column{col.name, gather(col.data, rows)});
  return result;
}

std::vector<int64_t> stable_order(const tensor& key) {
  std::vector<int64_t> order(static_cast<size_t>(key.num_elements()));
  std::iota(order.begin(), order.end(), int64_t{0});
  visit_dtype(key.type(), [&](auto tag) {
    using T = decltype(tag);
    auto* k = data_of<T>(key);
    std::stable_sort(order.begin(), order.end(), [k](int64_t x, int64_t y) {
      return key_less(k[x], k[y]);
    });
  });
  return order;
}

caf::expected<const column*>
column_arg(const kernel_context& ctx, const table& x, const std::string& name) {
  if (auto* col = x.find(name))
    return col;
  std::string names;
  for (auto& col : x.columns())
    names += (names.empty() ? "" : ", ") + col.name;
  return ctx.fail("table has no column '" + name + "' (columns: " + names
                  + ")");
}

kernel_result make_table_result(const kernel_context& ctx,
                                std::vector<column> columns) {
  auto result = table::make(std::move(columns));
  if (!result)
    return ctx.fail(message_of(result.error()));
  return one(make_value(std::move(*result)));
}

} // namespace objstore::kernels
