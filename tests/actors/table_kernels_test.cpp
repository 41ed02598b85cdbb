// Table kernels through objstore::execute: make_table, column, num_rows,
// select_columns, filter, concat, sort_by_key, hash_partition, group_sum,
// join.

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "tests/actors/kernel_test_support.hpp"

namespace table_kernels_test_file {
namespace {

using namespace objstore;
using namespace objstore::testing;

namespace {

using strs = std::vector<std::string>;
using i64s = std::vector<int64_t>;
using f64s = std::vector<double>;

// id: int64, key: T, price: float64, flag: bool.
template<class T>
value_ptr sample(std::vector<T> keys) {
  auto n = static_cast<int64_t>(keys.size());
  i64s ids;
  f64s prices;
  std::vector<bool> flags;
  for (int64_t i = 0; i < n; ++i) {
    ids.push_back(i);
    prices.push_back(static_cast<double>(i) + 0.5);
    flags.push_back(i % 2 == 0);
  }
  return make_table_value({{"id", tens<int64_t>({n}, ids)},
                           {"key", tens<T>({n}, keys)},
                           {"price", tens<double>({n}, prices)},
                           {"flag", bools({n}, flags)}});
}

template<class T>
class keyed : public ::testing::Test {};

TYPED_TEST_SUITE(keyed, numeric_types);

TEST(table_basics, make_table_column_num_rows_select) {
  auto a = tens<int32_t>({3}, {1, 2, 3});
  auto b = tens<float>({3}, {0.5f, 1.5f, 2.5f});
  auto t = run1("make_table", {a, b}, {make_attr("names", strs{"a", "b"})});
  EXPECT_EQ(column_names(t), (strs{"a", "b"}));
  EXPECT_EQ(col<int32_t>(t, "a"), (std::vector<int32_t>{1, 2, 3}));
  auto c = run1("column", {t}, {make_attr("name", "b")});
  EXPECT_EQ(c->as_tensor().data(), b->as_tensor().data()); // no copy
  EXPECT_EQ(vals<int64_t>(run1("num_rows", {t})), (i64s{3}));
  auto s = run1("select_columns", {t}, {make_attr("columns", strs{"b", "a"})});
  EXPECT_EQ(column_names(s), (strs{"b", "a"}));
  auto none = run1("select_columns", {t}, {make_attr("columns", strs{})});
  EXPECT_EQ(vals<int64_t>(run1("num_rows", {none})), (i64s{0}));
  auto empty = run1("make_table", {tens<int32_t>({0}, {})},
                    {make_attr("names", strs{"a"})});
  EXPECT_EQ(vals<int64_t>(run1("num_rows", {empty})), (i64s{0}));
}

TEST(table_basics, filter_by_tensor_or_column) {
  auto t = sample<int32_t>({5, 6, 7, 8});
  auto keep = bools({4}, {false, true, true, false});
  auto f = run1("filter", {t, keep});
  EXPECT_EQ(column_names(f), column_names(t));
  EXPECT_EQ(col<int32_t>(f, "key"), (std::vector<int32_t>{6, 7}));
  EXPECT_EQ(col<double>(f, "price"), (f64s{1.5, 2.5}));
  auto by_col = run1("filter", {t}, {make_attr("predicate", "flag")});
  EXPECT_EQ(col<int64_t>(by_col, "id"), (i64s{0, 2}));
  auto u8 = run1("filter", {t, tens<uint8_t>({4}, {0, 0, 0, 9})});
  EXPECT_EQ(col<int64_t>(u8, "id"), (i64s{3}));
  auto all = run_op("filter", {t, bools({4}, {true, true, true, true})});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->front().get(), t.get());
  auto none = run1("filter", {t, bools({4}, {false, false, false, false})});
  EXPECT_EQ(col<int64_t>(none, "id"), (i64s{}));
  EXPECT_EQ(column_names(none), column_names(t));
  auto empty = run1("filter", {sample<int32_t>({}), bools({0}, {})});
  EXPECT_EQ(vals<int64_t>(run1("num_rows", {empty})), (i64s{0}));
}

TEST(table_basics, concat_appends_rows_in_input_order) {
  auto x = sample<int64_t>({1, 2});
  auto y = sample<int64_t>({3});
  auto e = sample<int64_t>({});
  auto c = run1("concat", {x, e, y, x});
  EXPECT_EQ(col<int64_t>(c, "key"), (i64s{1, 2, 3, 1, 2}));
  EXPECT_EQ(col<uint8_t>(c, "flag"), (std::vector<uint8_t>{1, 0, 1, 1, 0}));
  auto ee = run1("concat", {e, e});
  EXPECT_EQ(vals<int64_t>(run1("num_rows", {ee})), (i64s{0}));
  auto other = sample<int32_t>({1});
  EXPECT_TRUE(fails_naming(run_op("concat", {x, other}), "concat", "schema"));
  auto renamed = make_table_value({{"id", tens<int64_t>({1}, {1})}});
  EXPECT_TRUE(fails_naming(run_op("concat", {x, renamed}), "concat", "schema"));
  EXPECT_TRUE(fails_naming(run_op("concat", {x, tens<int64_t>({1}, {1})}),
                           "concat", "table"));
}

TYPED_TEST(keyed, sort_by_key_is_stable) {
  using T = TypeParam;
  auto t = sample<T>(as<T>({3, 1, 2, 1, 3, 0}));
  auto s = run1("sort_by_key", {t}, {make_attr("key", "key")});
  EXPECT_EQ(col<T>(s, "key"), as<T>({0, 1, 1, 2, 3, 3}));
  EXPECT_EQ(col<int64_t>(s, "id"), (i64s{5, 1, 3, 2, 0, 4}));
  EXPECT_EQ(col<double>(s, "price"), (f64s{5.5, 1.5, 3.5, 2.5, 0.5, 4.5}));
  auto e = run1("sort_by_key", {sample<T>({})}, {make_attr("key", "key")});
  EXPECT_EQ(col<T>(e, "key"), (std::vector<T>{}));
}

TYPED_TEST(keyed, hash_partition_splits_by_key_keeping_order) {
  using T = TypeParam;
  auto keys = as<T>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5});
  auto t = sample<T>(keys);
  auto parts = run_op("hash_partition", {t},
                      {make_attr("key", "key"), make_attr("n", 3)}, 3);
  ASSERT_TRUE(parts) << describe(parts.error());
  ASSERT_EQ(parts->size(), 3u);
  // Each key lives in exactly one part, ids ascend within each part and all
  // rows are accounted for.
  std::map<T, size_t> part_of;
  size_t total = 0;
  for (size_t p = 0; p < 3; ++p) {
    auto ids = col<int64_t>((*parts)[p], "id");
    auto ks = col<T>((*parts)[p], "key");
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    for (size_t i = 0; i < ks.size(); ++i) {
      EXPECT_EQ(ks[i], keys[static_cast<size_t>(ids[i])]);
      auto [it, fresh] = part_of.emplace(ks[i], p);
      EXPECT_EQ(it->second, p) << "key split across parts";
    }
    total += ids.size();
    EXPECT_EQ(column_names((*parts)[p]), column_names(t));
  }
  EXPECT_EQ(total, keys.size());
  // Deterministic: same input, same parts.
  auto again = run_op("hash_partition", {t},
                      {make_attr("key", "key"), make_attr("n", 3)}, 3);
  ASSERT_TRUE(again);
  for (size_t p = 0; p < 3; ++p)
    EXPECT_EQ(*(*again)[p], *(*parts)[p]);
  // Integer keys hash by value whatever their dtype.
  auto as64 = sample<int64_t>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5});
  auto parts64 = run_op("hash_partition", {as64},
                        {make_attr("key", "key"), make_attr("n", 3)}, 3);
  ASSERT_TRUE(parts64);
  if constexpr (std::is_integral_v<T>) {
    for (size_t p = 0; p < 3; ++p)
      EXPECT_EQ(col<int64_t>((*parts64)[p], "id"),
                col<int64_t>((*parts)[p], "id"));
  }
  auto empty = run_op("hash_partition", {sample<T>({})},
                      {make_attr("key", "key"), make_attr("n", 2)}, 2);
  ASSERT_TRUE(empty);
  EXPECT_EQ(col<T>((*empty)[1], "key"), (std::vector<T>{}));
}

TYPED_TEST(keyed, group_sum_sums_per_distinct_key) {
  using T = TypeParam;
  auto t = sample<T>(as<T>({2, 1, 2, 3, 1, 2}));
  auto g = run1("group_sum", {t},
                {make_attr("key", "key"),
                 make_attr("values", strs{"id", "price", "flag"})});
  EXPECT_EQ(column_names(g), (strs{"key", "id", "price", "flag"}));
  EXPECT_EQ(col<T>(g, "key"), as<T>({1, 2, 3}));
  EXPECT_EQ(col<int64_t>(g, "id"), (i64s{1 + 4, 0 + 2 + 5, 3}));
  EXPECT_EQ(col<double>(g, "price"), (f64s{6, 8.5, 3.5}));
  EXPECT_EQ(col<int64_t>(g, "flag"), (i64s{1, 2, 0})); // bool sums to int64
  // The key itself can be summed under its own name only once; key values
  // of T sum to int64 / float64.
  auto keys_only
      = run1("group_sum", {t},
             {make_attr("key", "id"), make_attr("values", strs{"key"})});
  using sum_t
      = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
  EXPECT_EQ(col<sum_t>(keys_only, "key"),
            (std::vector<sum_t>{2, 1, 2, 3, 1, 2}));
  auto e = run1("group_sum", {sample<T>({})},
                {make_attr("key", "key"), make_attr("values", strs{"price"})});
  EXPECT_EQ(col<double>(e, "price"), (f64s{}));
  EXPECT_EQ(column_names(e), (strs{"key", "price"}));
}

TYPED_TEST(keyed, join_matches_keys_in_left_then_right_order) {
  using T = TypeParam;
  auto left = make_table_value({{"k", tens<T>({4}, as<T>({1, 2, 3, 2}))},
                                {"v", tens<int32_t>({4}, {10, 20, 30, 40})}});
  auto right
      = make_table_value({{"w", tens<float>({4}, {0.5f, 1.5f, 2.5f, 3.5f})},
                          {"k", tens<T>({4}, as<T>({2, 4, 2, 1}))},
                          {"v", tens<int64_t>({4}, {7, 8, 9, 6})}});
  auto j = run1("join", {left, right}, {make_attr("key", "k")});
  EXPECT_EQ(column_names(j), (strs{"k", "v", "w", "v_right"}));
  EXPECT_EQ(col<T>(j, "k"), as<T>({1, 2, 2, 2, 2}));
  EXPECT_EQ(col<int32_t>(j, "v"), (std::vector<int32_t>{10, 20, 20, 40, 40}));
  EXPECT_EQ(col<float>(j, "w"),
            (std::vector<float>{3.5f, 0.5f, 2.5f, 0.5f, 2.5f}));
  EXPECT_EQ(col<int64_t>(j, "v_right"), (i64s{6, 7, 9, 7, 9}));
  auto s = run1("join", {left, right},
                {make_attr("key", "k"), make_attr("suffix", "_r")});
  EXPECT_EQ(column_names(s), (strs{"k", "v", "w", "v_r"}));
  auto empty_right = make_table_value({{"k", tens<T>({0}, {})}});
  auto e = run1("join", {left, empty_right}, {make_attr("key", "k")});
  EXPECT_EQ(column_names(e), (strs{"k", "v"}));
  EXPECT_EQ(col<T>(e, "k"), (std::vector<T>{}));
}

TEST(keyed_special, bool_keys) {
  auto t = sample<int32_t>({5, 6, 7, 8, 9}); // flag: 1 0 1 0 1
  auto s = run1("sort_by_key", {t}, {make_attr("key", "flag")});
  EXPECT_EQ(col<int64_t>(s, "id"), (i64s{1, 3, 0, 2, 4}));
  auto g = run1("group_sum", {t},
                {make_attr("key", "flag"), make_attr("values", strs{"key"})});
  EXPECT_EQ(col<uint8_t>(g, "flag"), (std::vector<uint8_t>{0, 1}));
  EXPECT_EQ(col<int64_t>(g, "key"), (i64s{6 + 8, 5 + 7 + 9}));
  auto j = run1("join", {t, t}, {make_attr("key", "flag")});
  EXPECT_EQ(vals<int64_t>(run1("num_rows", {j})), (i64s{2 * 2 + 3 * 3}));
  auto parts = run_op("hash_partition", {t},
                      {make_attr("key", "flag"), make_attr("n", 2)}, 2);
  ASSERT_TRUE(parts);
  EXPECT_EQ(col<int64_t>((*parts)[0], "id").size()
                + col<int64_t>((*parts)[1], "id").size(),
            5u);
}

TEST(keyed_special, nan_keys) {
  auto nan = std::numeric_limits<double>::quiet_NaN();
  auto t = sample<double>({nan, 2, nan, 1});
  auto s = run1("sort_by_key", {t}, {make_attr("key", "key")});
  EXPECT_EQ(col<int64_t>(s, "id"), (i64s{3, 1, 0, 2})); // NaN last, stable
  auto g = run1("group_sum", {t},
                {make_attr("key", "key"), make_attr("values", strs{"id"})});
  EXPECT_EQ(col<int64_t>(g, "id"), (i64s{3, 1, 2})); // one NaN group
  auto j = run1("join", {t, t}, {make_attr("key", "key")});
  EXPECT_EQ(col<int64_t>(j, "id"), (i64s{1, 3})); // NaN matches nothing
  // -0.0 and 0.0 are one key for hashing.
  auto z = sample<double>({0.0, -0.0});
  auto parts = run_op("hash_partition", {z},
                      {make_attr("key", "key"), make_attr("n", 2)}, 2);
  ASSERT_TRUE(parts);
  EXPECT_TRUE(col<int64_t>((*parts)[0], "id").size() % 2 == 0);
}

TEST(table_errors, are_op_failed_naming_the_op) {
  auto t = sample<int32_t>({1, 2});
  auto x = tens<int32_t>({2}, {1, 2});
  EXPECT_TRUE(
      fails_naming(run_op("make_table", {x}, {make_attr("names", strs{})}),
                   "make_table", "names"));
  EXPECT_TRUE(
      fails_naming(run_op("make_table", {x, tens<int32_t>({3}, {1, 2, 3})},
                          {make_attr("names", strs{"a", "b"})}),
                   "make_table", "rows"));
  EXPECT_TRUE(fails_naming(
      run_op("make_table", {x, x}, {make_attr("names", strs{"a", "a"})}),
      "make_table", "duplicate"));
  EXPECT_TRUE(fails_naming(run_op("make_table", {tens<int32_t>({1, 1}, {1})},
                                  {make_attr("names", strs{"a"})}),
                           "make_table", "1-D"));
  EXPECT_TRUE(fails_naming(run_op("column", {t}, {make_attr("name", "nope")}),
                           "column", "nope"));
  EXPECT_TRUE(fails_naming(run_op("column", {x}, {make_attr("name", "a")}),
                           "column", "tensor"));
  EXPECT_TRUE(fails_naming(run_op("num_rows", {x}), "num_rows", "table"));
  EXPECT_TRUE(
      fails_naming(run_op("select_columns", {t}), "select_columns", "columns"));
  EXPECT_TRUE(fails_naming(run_op("filter", {t}), "filter", "predicate"));
  EXPECT_TRUE(fails_naming(run_op("filter", {t, x}), "filter", "bool"));
  EXPECT_TRUE(
      fails_naming(run_op("filter", {t, bools({3}, {true, true, true})}),
                   "filter", "per row"));
  EXPECT_TRUE(
      fails_naming(run_op("filter", {t}, {make_attr("predicate", "price")}),
                   "filter", "bool"));
  EXPECT_TRUE(fails_naming(run_op("sort_by_key", {t}), "sort_by_key", "key"));
  EXPECT_TRUE(fails_naming(run_op("sort_by_key", {t}, {make_attr("key", "zz")}),
                           "sort_by_key", "zz"));
  EXPECT_TRUE(
      fails_naming(run_op("hash_partition", {t},
                          {make_attr("key", "key"), make_attr("n", 3)}, 2),
                   "hash_partition", "outputs"));
  EXPECT_TRUE(
      fails_naming(run_op("hash_partition", {t},
                          {make_attr("key", "key"), make_attr("n", 0)}, 0),
                   "hash_partition", "positive"));
  EXPECT_TRUE(
      fails_naming(run_op("hash_partition", {t}, {make_attr("n", 1)}, 1),
                   "hash_partition", "key"));
  EXPECT_TRUE(fails_naming(run_op("group_sum", {t}, {make_attr("key", "key")}),
                           "group_sum", "values"));
  EXPECT_TRUE(fails_naming(
      run_op("group_sum", {t},
             {make_attr("key", "key"), make_attr("values", strs{"q"})}),
      "group_sum", "q"));
  EXPECT_TRUE(fails_naming(
      run_op("group_sum", {t},
             {make_attr("key", "key"), make_attr("values", strs{"key"})}),
      "group_sum", "duplicate"));
  auto other = sample<int64_t>({1});
  EXPECT_TRUE(fails_naming(
      run_op("join", {t, other}, {make_attr("key", "key")}), "join", "dtype"));
  EXPECT_TRUE(fails_naming(run_op("join", {t}, {make_attr("key", "key")}),
                           "join", "inputs"));
  EXPECT_TRUE(
      fails_naming(run_op("join", {t, t},
                          {make_attr("key", "key"), make_attr("suffix", "")}),
                   "join", "duplicate"));
}

} // namespace

} // namespace
} // namespace table_kernels_test_file
