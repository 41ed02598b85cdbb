// Shape kernels (reshape, slice, concat, transpose) and source kernels
// (constant, iota, random_uniform) through objstore::execute.

#include <set>

#include "tests/actors/kernel_test_support.hpp"

namespace shape_kernels_test_file {
namespace {

using namespace objstore;
using namespace objstore::testing;

namespace {

using shape_t = std::vector<int64_t>;

template<class T>
class shape_ops : public ::testing::Test {};

using all_types
    = ::testing::Types<bool, int8_t, uint8_t, int32_t, int64_t, float, double>;
TYPED_TEST_SUITE(shape_ops, all_types);

// Values 0..n-1 as T (mod 2 for bool), with T's dtype.
template<class T>
value_ptr seq(shape_t shape) {
  auto n = product_of(shape);
  if constexpr (std::is_same_v<T, bool>) {
    std::vector<bool> v;
    for (int64_t i = 0; i < n; ++i)
      v.push_back(i % 2 == 1);
    return bools(std::move(shape), v);
  } else {
    std::vector<T> v;
    for (int64_t i = 0; i < n; ++i)
      v.push_back(static_cast<T>(i));
    return tens<T>(std::move(shape), v);
  }
}

template<class T>
using storage_t = std::conditional_t<std::is_same_v<T, bool>, uint8_t, T>;

template<class T>
std::vector<storage_t<T>> expect_seq(std::vector<int64_t> indices) {
  std::vector<storage_t<T>> result;
  for (auto i : indices)
    result.push_back(std::is_same_v<T, bool> ? static_cast<storage_t<T>>(i % 2)
                                             : static_cast<storage_t<T>>(i));
  return result;
}

TYPED_TEST(shape_ops, reshape_shares_the_buffer) {
  using T = TypeParam;
  auto x = seq<T>({2, 3});
  auto r = run1("reshape", {x}, {make_attr("shape", shape_t{3, -1})});
  EXPECT_EQ(shape_of(r), (shape_t{3, 2}));
  EXPECT_EQ(r->as_tensor().data(), x->as_tensor().data());
  EXPECT_EQ(shape_of(run1("reshape", {x}, {make_attr("shape", shape_t{6})})),
            (shape_t{6}));
  auto e
      = run1("reshape", {seq<T>({0, 4})}, {make_attr("shape", shape_t{2, 0})});
  EXPECT_EQ(shape_of(e), (shape_t{2, 0}));
  auto s = run1("reshape", {seq<T>({1, 1})}, {make_attr("shape", shape_t{})});
  EXPECT_TRUE(shape_of(s).empty());
}

TYPED_TEST(shape_ops, slice_follows_python_rules) {
  using T = TypeParam;
  auto x = seq<T>({3, 4}); // x[i][j] = 4i + j
  auto attrs = [](shape_t start, shape_t stop, shape_t step) {
    return std::vector<attribute>{make_attr("start", std::move(start)),
                                  make_attr("stop", std::move(stop)),
                                  make_attr("step", std::move(step))};
  };
  auto a = run1("slice", {x}, attrs({1, 1}, {3, 3}, {1, 1}));
  EXPECT_EQ(shape_of(a), (shape_t{2, 2}));
  EXPECT_EQ(vals<storage_t<T>>(a), expect_seq<T>({5, 6, 9, 10}));
  auto b = run1("slice", {x}, attrs({0, -1}, {100, -5}, {2, -2}));
  EXPECT_EQ(shape_of(b), (shape_t{2, 2}));
  EXPECT_EQ(vals<storage_t<T>>(b), expect_seq<T>({3, 1, 11, 9}));
  // Fewer entries than axes: trailing axes are taken whole; no step attr.
  auto c
      = run1("slice", {x},
             {make_attr("start", shape_t{-1}), make_attr("stop", shape_t{3})});
  EXPECT_EQ(shape_of(c), (shape_t{1, 4}));
  EXPECT_EQ(vals<storage_t<T>>(c), expect_seq<T>({8, 9, 10, 11}));
  auto empty = run1("slice", {x}, attrs({2, 0}, {1, 4}, {1, 1}));
  EXPECT_EQ(shape_of(empty), (shape_t{0, 4}));
  auto of_empty = run1("slice", {seq<T>({0})}, attrs({0}, {5}, {1}));
  EXPECT_EQ(shape_of(of_empty), (shape_t{0}));
}

TYPED_TEST(shape_ops, concat_on_any_axis) {
  using T = TypeParam;
  auto x = seq<T>({2, 2}); // 0 1 / 2 3
  auto y = seq<T>({2, 1}); // 0 / 1
  auto c1 = run1("concat", {x, y, x}, {make_attr("axis", -1)});
  EXPECT_EQ(shape_of(c1), (shape_t{2, 5}));
  EXPECT_EQ(vals<storage_t<T>>(c1),
            expect_seq<T>({0, 1, 0, 0, 1, 2, 3, 1, 2, 3}));
  auto c0 = run1("concat", {x, seq<T>({1, 2}), seq<T>({0, 2})});
  EXPECT_EQ(shape_of(c0), (shape_t{3, 2}));
  EXPECT_EQ(vals<storage_t<T>>(c0), expect_seq<T>({0, 1, 2, 3, 0, 1}));
  auto single = run1("concat", {seq<T>({0})});
  EXPECT_EQ(shape_of(single), (shape_t{0}));
}

TYPED_TEST(shape_ops, transpose) {
  using T = TypeParam;
  auto x = seq<T>({2, 3});
  auto t = run1("transpose", {x});
  EXPECT_EQ(shape_of(t), (shape_t{3, 2}));
  EXPECT_EQ(vals<storage_t<T>>(t), expect_seq<T>({0, 3, 1, 4, 2, 5}));
  auto cube = seq<T>({2, 3, 2}); // index 6i + 2j + k
  auto p = run1("transpose", {cube}, {make_attr("perm", shape_t{1, 0, 2})});
  EXPECT_EQ(shape_of(p), (shape_t{3, 2, 2}));
  EXPECT_EQ(vals<storage_t<T>>(p),
            expect_seq<T>({0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11}));
  EXPECT_EQ(shape_of(run1("transpose", {seq<T>({0, 3})})), (shape_t{3, 0}));
}

TEST(shape_errors, are_op_failed_naming_the_op) {
  auto x = tens<float>({2, 3}, {0, 1, 2, 3, 4, 5});
  auto reshape = [&](shape_t s) {
    return run_op("reshape", {x}, {make_attr("shape", std::move(s))});
  };
  EXPECT_TRUE(fails_naming(reshape({4, 2}), "reshape", "cannot reshape"));
  EXPECT_TRUE(fails_naming(reshape({-1, -1}), "reshape", "invalid"));
  EXPECT_TRUE(fails_naming(reshape({-1, 4}), "reshape", "cannot reshape"));
  EXPECT_TRUE(fails_naming(run_op("reshape", {x}), "reshape", "shape"));
  EXPECT_TRUE(fails_naming(run_op("reshape", {tens<float>({0}, {})},
                                  {make_attr("shape", shape_t{-1, 0})}),
                           "reshape", "cannot reshape"));
  EXPECT_TRUE(fails_naming(
      run_op("slice", {x},
             {make_attr("start", shape_t{0}), make_attr("stop", shape_t{1}),
              make_attr("step", shape_t{0})}),
      "slice", "step"));
  EXPECT_TRUE(fails_naming(run_op("slice", {x},
                                  {make_attr("start", shape_t{0, 0, 0}),
                                   make_attr("stop", shape_t{1, 1, 1})}),
                           "slice", "rank"));
  EXPECT_TRUE(fails_naming(
      run_op("slice", {x}, {make_attr("start", shape_t{0})}), "slice", "stop"));
  auto d = tens<double>({2, 3}, {0, 1, 2, 3, 4, 5});
  EXPECT_TRUE(
      fails_naming(run_op("concat", {x, d}), "concat", "cannot concat"));
  EXPECT_TRUE(fails_naming(run_op("concat", {x, x}, {make_attr("axis", 2)}),
                           "concat", "axis"));
  EXPECT_TRUE(fails_naming(run_op("concat",
                                  {x, tens<float>({3, 2}, {0, 1, 2, 3, 4, 5})},
                                  {make_attr("axis", 1)}),
                           "concat", "cannot concat"));
  EXPECT_TRUE(
      fails_naming(run_op("transpose", {x}, {make_attr("perm", shape_t{0, 0})}),
                   "transpose", "permutation"));
  EXPECT_TRUE(
      fails_naming(run_op("transpose", {x}, {make_attr("perm", shape_t{1})}),
                   "transpose", "permutation"));
}

// -- sources ------------------------------------------------------------------

TEST(sources, constant_fills_and_converts) {
  auto c = run1("constant", {},
                {make_attr("shape", shape_t{2, 2}), make_attr("value", 2.5)});
  EXPECT_EQ(type_of(c), dtype::float64);
  EXPECT_EQ(vals<double>(c), (std::vector<double>{2.5, 2.5, 2.5, 2.5}));
  auto i = run1("constant", {},
                {make_attr("shape", shape_t{3}), make_attr("dtype", "int8"),
                 make_attr("value", 1000)});
  EXPECT_EQ(vals<int8_t>(i), (std::vector<int8_t>{127, 127, 127}));
  auto b = run1("constant", {},
                {make_attr("shape", shape_t{}), make_attr("dtype", "bool"),
                 make_attr("value", 2)});
  EXPECT_EQ(vals<uint8_t>(b), (std::vector<uint8_t>{1}));
  auto v = run1("constant", {},
                {make_attr("shape", shape_t{2}), make_attr("dtype", "int32"),
                 make_attr("values", std::vector<double>{-3, 4})});
  EXPECT_EQ(vals<int32_t>(v), (std::vector<int32_t>{-3, 4}));
  auto e = run1("constant", {},
                {make_attr("shape", shape_t{0, 2}), make_attr("value", 1)});
  EXPECT_EQ(shape_of(e), (shape_t{0, 2}));
  EXPECT_TRUE(
      fails_naming(run_op("constant", {}, {make_attr("shape", shape_t{2})}),
                   "constant", "value"));
  EXPECT_TRUE(fails_naming(
      run_op("constant", {},
             {make_attr("shape", shape_t{-2}), make_attr("value", 1)}),
      "constant", "negative"));
  EXPECT_TRUE(
      fails_naming(run_op("constant", {},
                          {make_attr("shape", shape_t{3}),
                           make_attr("values", std::vector<double>{1, 2})}),
                   "constant", "values"));
  EXPECT_TRUE(
      fails_naming(run_op("constant", {},
                          {make_attr("shape", shape_t{1}),
                           make_attr("value", 1), make_attr("dtype", "f32")}),
                   "constant", "f32"));
}

TEST(sources, constant_in_every_dtype) {
  for (size_t i = 0; i < dtype_count; ++i) {
    auto type = static_cast<dtype>(i);
    auto name = std::string{to_string(type)};
    auto c = run1("constant", {},
                  {make_attr("shape", shape_t{2, 1}), make_attr("dtype", name),
                   make_attr("values", std::vector<double>{0, 1})});
    ASSERT_TRUE(c) << name;
    EXPECT_EQ(type_of(c), type);
    EXPECT_EQ(shape_of(c), (shape_t{2, 1}));
    auto as64 = run1("cast", {c}, {make_attr("dtype", "int64")});
    EXPECT_EQ(vals<int64_t>(as64), (std::vector<int64_t>{0, 1})) << name;
  }
}

TEST(sources, iota_counts_in_every_numeric_dtype) {
  for (auto type : {dtype::int8, dtype::uint8, dtype::int32, dtype::int64,
                    dtype::float32, dtype::float64}) {
    auto name = std::string{to_string(type)};
    auto x = run1("iota", {}, {make_attr("n", 4), make_attr("dtype", name)});
    ASSERT_TRUE(x) << name;
    EXPECT_EQ(type_of(x), type);
    auto as64 = run1("cast", {x}, {make_attr("dtype", "int64")});
    EXPECT_EQ(vals<int64_t>(as64), (std::vector<int64_t>{0, 1, 2, 3})) << name;
  }
  auto m = run1("iota", {},
                {make_attr("shape", shape_t{2, 2}), make_attr("start", 10)});
  EXPECT_EQ(type_of(m), dtype::int64);
  EXPECT_EQ(shape_of(m), (shape_t{2, 2}));
  EXPECT_EQ(vals<int64_t>(m), (std::vector<int64_t>{10, 11, 12, 13}));
  EXPECT_EQ(shape_of(run1("iota", {}, {make_attr("n", 0)})), (shape_t{0}));
  EXPECT_TRUE(fails_naming(run_op("iota", {}), "iota", "'n'"));
  EXPECT_TRUE(fails_naming(
      run_op("iota", {}, {make_attr("n", 2), make_attr("dtype", "bool")}),
      "iota", "bool"));
  EXPECT_TRUE(fails_naming(run_op("iota", {}, {make_attr("n", -1)}), "iota",
                           "negative"));
}

TEST(sources, random_uniform_is_deterministic_and_in_range) {
  for (auto type : {std::string{"float32"}, std::string{"float64"}}) {
    auto attrs = [&](int64_t seed, shape_t shape) {
      return std::vector<attribute>{
          make_attr("seed", seed), make_attr("shape", std::move(shape)),
          make_attr("dtype", type), make_attr("low", -2.0),
          make_attr("high", 3)};
    };
    auto a = run1("random_uniform", {}, attrs(42, {1000}));
    auto b = run1("random_uniform", {}, attrs(42, {1000}));
    auto c = run1("random_uniform", {}, attrs(43, {1000}));
    ASSERT_TRUE(a && b && c);
    EXPECT_EQ(*a, *b) << type;
    EXPECT_NE(*a, *c) << type;
    auto as64
        = vals<double>(run1("cast", {a}, {make_attr("dtype", "float64")}));
    std::set<double> distinct(as64.begin(), as64.end());
    EXPECT_GT(distinct.size(), 990u);
    double mean = 0;
    for (auto v : as64) {
      EXPECT_GE(v, -2.0);
      EXPECT_LT(v, 3.0);
      mean += v / 1000;
    }
    EXPECT_NEAR(mean, 0.5, 0.25) << type;
    // Element i depends only on (seed, i): a larger shape extends a smaller.
    auto small = run1("random_uniform", {}, attrs(42, {2, 5}));
    auto head
        = vals<double>(run1("cast", {small}, {make_attr("dtype", "float64")}));
    EXPECT_EQ(head, std::vector<double>(as64.begin(), as64.begin() + 10));
    EXPECT_EQ(shape_of(run1("random_uniform", {}, attrs(1, {0}))),
              (shape_t{0}));
  }
  EXPECT_TRUE(fails_naming(
      run_op("random_uniform", {}, {make_attr("shape", shape_t{2})}),
      "random_uniform", "seed"));
  EXPECT_TRUE(
      fails_naming(run_op("random_uniform", {},
                          {make_attr("seed", 1), make_attr("shape", shape_t{2}),
                           make_attr("dtype", "int32")}),
                   "random_uniform", "float32"));
  EXPECT_TRUE(
      fails_naming(run_op("random_uniform", {},
                          {make_attr("seed", 1), make_attr("shape", shape_t{2}),
                           make_attr("low", 2.0), make_attr("high", 1.0)}),
                   "random_uniform", "low"));
}

} // namespace

} // namespace
} // namespace shape_kernels_test_file
