// Reductions (sum, mean, min, max over axes) and matmul through
// objstore::execute, for every dtype they support.

#include <cmath>
#include <limits>

#include "tests/actors/kernel_test_support.hpp"

namespace reduce_kernels_test_file {
namespace {

using namespace objstore;
using namespace objstore::testing;

namespace {

using shape_t = std::vector<int64_t>;

template<class T>
class reduce : public ::testing::Test {};

TYPED_TEST_SUITE(reduce, numeric_types);

TYPED_TEST(reduce, over_all_axes) {
  using T = TypeParam;
  using sum_t
      = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
  auto x = tens<T>({2, 3}, as<T>({1, 2, 3, 4, 5, 6}));
  auto s = run1("sum", {x});
  EXPECT_EQ(type_of(s), dtype_of<sum_t>::value);
  EXPECT_TRUE(shape_of(s).empty());
  EXPECT_EQ(vals<sum_t>(s), (std::vector<sum_t>{21}));
  auto m = run1("mean", {x});
  EXPECT_EQ(type_of(m), dtype::float64);
  EXPECT_EQ(vals<double>(m), (std::vector<double>{3.5}));
  auto lo = run1("min", {x});
  EXPECT_EQ(type_of(lo), dtype_of<T>::value);
  EXPECT_EQ(vals<T>(lo), as<T>({1}));
  EXPECT_EQ(vals<T>(run1("max", {x})), as<T>({6}));
  auto kept = run1("sum", {x}, {make_attr("keepdims", 1)});
  EXPECT_EQ(shape_of(kept), (shape_t{1, 1}));
}

TYPED_TEST(reduce, over_chosen_axes) {
  using T = TypeParam;
  using sum_t
      = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
  // x[i][j][k] = 1 + 4i + 2j + k, shape [2,2,2].
  auto x = tens<T>({2, 2, 2}, as<T>({1, 2, 3, 4, 5, 6, 7, 8}));
  auto axes = [](std::vector<int64_t> a) {
    return make_attr("axes", std::move(a));
  };
  auto s0 = run1("sum", {x}, {axes({0})});
  EXPECT_EQ(shape_of(s0), (shape_t{2, 2}));
  EXPECT_EQ(vals<sum_t>(s0), (std::vector<sum_t>{6, 8, 10, 12}));
  auto s1 = run1("sum", {x}, {axes({1})});
  EXPECT_EQ(vals<sum_t>(s1), (std::vector<sum_t>{4, 6, 12, 14}));
  auto s2 = run1("sum", {x}, {axes({-1})});
  EXPECT_EQ(vals<sum_t>(s2), (std::vector<sum_t>{3, 7, 11, 15}));
  auto s02 = run1("sum", {x}, {axes({0, 2})});
  EXPECT_EQ(shape_of(s02), (shape_t{2}));
  EXPECT_EQ(vals<sum_t>(s02), (std::vector<sum_t>{14, 22}));
  auto k02 = run1("max", {x}, {axes({2, 0}), make_attr("keepdims", 1)});
  EXPECT_EQ(shape_of(k02), (shape_t{1, 2, 1}));
  EXPECT_EQ(vals<T>(k02), as<T>({6, 8}));
  auto m1 = run1("mean", {x}, {axes({1})});
  EXPECT_EQ(vals<double>(m1), (std::vector<double>{2, 3, 6, 7}));
  EXPECT_EQ(vals<T>(run1("min", {x}, {axes({0, 1})})), as<T>({1, 2}));
  // A single int is accepted for one axis; no axes reduce nothing.
  EXPECT_EQ(vals<T>(run1("max", {x}, {make_attr("axes", 1)})),
            as<T>({3, 4, 7, 8}));
  EXPECT_EQ(vals<T>(run1("max", {x}, {make_attr("axis", -2)})),
            as<T>({3, 4, 7, 8}));
  auto none = run1("min", {x}, {axes({})});
  EXPECT_EQ(shape_of(none), (shape_t{2, 2, 2}));
  EXPECT_EQ(vals<T>(none), as<T>({1, 2, 3, 4, 5, 6, 7, 8}));
}

TYPED_TEST(reduce, empty_inputs) {
  using T = TypeParam;
  using sum_t
      = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
  auto e = tens<T>({0}, {});
  EXPECT_EQ(vals<sum_t>(run1("sum", {e})), (std::vector<sum_t>{0}));
  EXPECT_TRUE(std::isnan(vals<double>(run1("mean", {e}))[0]));
  EXPECT_TRUE(fails_naming(run_op("min", {e}), "min", "empty"));
  EXPECT_TRUE(fails_naming(run_op("max", {e}), "max", "empty"));
  // Reducing the non-empty axis of a [0,3] tensor gives [0], not an error.
  auto e03 = tens<T>({0, 3}, {});
  EXPECT_EQ(shape_of(run1("min", {e03}, {make_attr("axes", 1)})), (shape_t{0}));
  auto s0 = run1("sum", {e03}, {make_attr("axes", 0)});
  EXPECT_EQ(vals<sum_t>(s0), (std::vector<sum_t>{0, 0, 0}));
}

TEST(reduce_special, bool_and_nan_and_wrap) {
  auto b = bools({4}, {true, false, true, true});
  EXPECT_EQ(vals<int64_t>(run1("sum", {b})), (std::vector<int64_t>{3}));
  EXPECT_EQ(vals<double>(run1("mean", {b})), (std::vector<double>{0.75}));
  EXPECT_EQ(vals<uint8_t>(run1("min", {b})), (std::vector<uint8_t>{0}));
  EXPECT_EQ(vals<uint8_t>(run1("max", {b})), (std::vector<uint8_t>{1}));
  auto nan = std::numeric_limits<float>::quiet_NaN();
  auto f = tens<float>({3}, {1, nan, 3});
  EXPECT_TRUE(std::isnan(vals<float>(run1("min", {f}))[0]));
  EXPECT_TRUE(std::isnan(vals<float>(run1("max", {f}))[0]));
  EXPECT_TRUE(std::isnan(vals<double>(run1("sum", {f}))[0]));
  // float32 sums accumulate in float64.
  auto small = tens<float>({3}, {1e8f, 1.0f, -1e8f});
  EXPECT_EQ(vals<double>(run1("sum", {small})), (std::vector<double>{1.0}));
  auto max64 = std::numeric_limits<int64_t>::max();
  auto w = tens<int64_t>({2}, {max64, 1});
  EXPECT_EQ(vals<int64_t>(run1("sum", {w})),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::min()}));
}

TEST(reduce_errors, bad_axes) {
  auto x = tens<int32_t>({2, 2}, {1, 2, 3, 4});
  EXPECT_TRUE(fails_naming(run_op("sum", {x}, {make_attr("axes", shape_t{2})}),
                           "sum", "out of range"));
  EXPECT_TRUE(
      fails_naming(run_op("mean", {x}, {make_attr("axes", shape_t{0, -2})}),
                   "mean", "twice"));
  auto t = make_table_value({{"a", tens<int32_t>({1}, {1})}});
  EXPECT_TRUE(fails_naming(run_op("max", {t}), "max", "table"));
  EXPECT_TRUE(fails_naming(run_op("sum", {x, x}), "sum", "inputs"));
}

template<class T>
class matmul : public ::testing::Test {};

using matmul_types = ::testing::Types<int32_t, int64_t, float, double>;
TYPED_TEST_SUITE(matmul, matmul_types);

TYPED_TEST(matmul, multiplies_matrices) {
  using T = TypeParam;
  auto a = tens<T>({2, 3}, as<T>({1, 2, 3, 4, 5, 6}));
  auto b = tens<T>({3, 2}, as<T>({7, 8, 9, 10, 11, 12}));
  auto c = run1("matmul", {a, b});
  EXPECT_EQ(shape_of(c), (shape_t{2, 2}));
  EXPECT_EQ(type_of(c), dtype_of<T>::value);
  EXPECT_EQ(vals<T>(c), as<T>({58, 64, 139, 154}));
  auto id = tens<T>({2, 2}, as<T>({1, 0, 0, 1}));
  EXPECT_EQ(vals<T>(run1("matmul", {id, a})), as<T>({1, 2, 3, 4, 5, 6}));
  auto v = tens<T>({3, 1}, as<T>({1, -1, 2}));
  EXPECT_EQ(vals<T>(run1("matmul", {a, v})), as<T>({5, 11}));
}

TYPED_TEST(matmul, empty_dimensions) {
  using T = TypeParam;
  // [2,0] x [0,3] is a [2,3] of zeros; [0,2] x [2,3] is [0,3].
  auto c = run1("matmul", {tens<T>({2, 0}, {}), tens<T>({0, 3}, {})});
  EXPECT_EQ(shape_of(c), (shape_t{2, 3}));
  EXPECT_EQ(vals<T>(c), as<T>({0, 0, 0, 0, 0, 0}));
  auto d = run1("matmul", {tens<T>({0, 2}, {}),
                           tens<T>({2, 3}, as<T>({1, 2, 3, 4, 5, 6}))});
  EXPECT_EQ(shape_of(d), (shape_t{0, 3}));
}

TEST(matmul_errors, dtype_and_shape) {
  auto f = tens<float>({2, 2}, {1, 2, 3, 4});
  auto d = tens<double>({2, 2}, {1, 2, 3, 4});
  EXPECT_TRUE(fails_naming(run_op("matmul", {f, d}), "matmul", "dtypes"));
  auto i8 = tens<int8_t>({1, 1}, {1});
  EXPECT_TRUE(fails_naming(run_op("matmul", {i8, i8}), "matmul", "int8"));
  auto v = tens<float>({2}, {1, 2});
  EXPECT_TRUE(fails_naming(run_op("matmul", {f, v}), "matmul", "[m,k]"));
  auto f23 = tens<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_TRUE(fails_naming(run_op("matmul", {f23, f23}), "matmul", "[2,3]"));
}

} // namespace

} // namespace
} // namespace reduce_kernels_test_file
