// Elementwise tensor kernels (arithmetic, compare, select, cast) through
// objstore::execute, for every dtype they support.

#include <cmath>
#include <limits>

#include "tests/actors/kernel_test_support.hpp"

namespace tensor_kernels_test_file {
namespace {

using namespace objstore;
using namespace objstore::testing;

namespace {

template<class T>
class elementwise : public ::testing::Test {};

TYPED_TEST_SUITE(elementwise, numeric_types);

TYPED_TEST(elementwise, arithmetic_on_equal_shapes) {
  using T = TypeParam;
  auto a = tens<T>({2, 3}, as<T>({6, 8, 10, 12, 14, 16}));
  auto b = tens<T>({2, 3}, as<T>({1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(vals<T>(run1("add", {a, b})), as<T>({7, 10, 13, 16, 19, 22}));
  EXPECT_EQ(vals<T>(run1("sub", {a, b})), as<T>({5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(vals<T>(run1("mul", {a, b})), as<T>({6, 16, 30, 48, 70, 96}));
  EXPECT_EQ(vals<T>(run1("minimum", {a, b})), as<T>({1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(vals<T>(run1("maximum", {a, b})), as<T>({6, 8, 10, 12, 14, 16}));
  auto q = run1("div", {a, b});
  if constexpr (std::is_integral_v<T>)
    EXPECT_EQ(vals<T>(q), as<T>({6, 4, 3, 3, 2, 2})); // truncated
  else
    EXPECT_EQ(vals<T>(q), as<T>({6, 4, 10.0 / 3, 3, 14.0 / 5, 16.0 / 6}));
  EXPECT_EQ(shape_of(q), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(type_of(q), dtype_of<T>::value);
}

TYPED_TEST(elementwise, neg_and_signed_division) {
  using T = TypeParam;
  auto a = tens<T>({3}, as<T>({1, 0, 5}));
  auto n = vals<T>(run1("neg", {a}));
  EXPECT_EQ(n, (std::vector<T>{static_cast<T>(0 - T{1}), T{0},
                               static_cast<T>(0 - T{5})}));
  if constexpr (std::is_signed_v<T>) {
    auto x = tens<T>({4}, as<T>({-7, 7, -7, 7}));
    auto y = tens<T>({4}, as<T>({2, -2, -2, 2}));
    auto q = vals<T>(run1("div", {x, y}));
    if constexpr (std::is_integral_v<T>)
      EXPECT_EQ(q, as<T>({-3, -3, 3, 3})); // toward zero
    else
      EXPECT_EQ(q, as<T>({-3.5, -3.5, 3.5, 3.5}));
  }
}

TYPED_TEST(elementwise, scalar_broadcasts_both_ways) {
  using T = TypeParam;
  auto a = tens<T>({2, 2}, as<T>({1, 2, 3, 4}));
  auto s = scalar<T>(T{10});
  EXPECT_EQ(vals<T>(run1("add", {a, s})), as<T>({11, 12, 13, 14}));
  EXPECT_EQ(vals<T>(run1("sub", {s, a})), as<T>({9, 8, 7, 6}));
  auto m = run1("maximum", {s, a});
  EXPECT_EQ(vals<T>(m), as<T>({10, 10, 10, 10}));
  EXPECT_EQ(shape_of(m), (std::vector<int64_t>{2, 2}));
  auto ss = run1("mul", {s, s});
  EXPECT_EQ(vals<T>(ss), as<T>({100}));
  EXPECT_TRUE(shape_of(ss).empty());
}

TYPED_TEST(elementwise, trailing_and_inner_broadcasting) {
  using T = TypeParam;
  auto m = tens<T>({2, 3}, as<T>({1, 2, 3, 4, 5, 6}));
  auto row = tens<T>({3}, as<T>({10, 20, 30}));
  EXPECT_EQ(vals<T>(run1("add", {m, row})), as<T>({11, 22, 33, 14, 25, 36}));
  auto colv = tens<T>({2, 1}, as<T>({10, 20}));
  EXPECT_EQ(vals<T>(run1("add", {colv, m})), as<T>({11, 12, 13, 24, 25, 26}));
  // [2,1] x [1,3] -> [2,3] outer sum.
  auto r13 = tens<T>({1, 3}, as<T>({1, 2, 3}));
  auto outer = run1("add", {colv, r13});
  EXPECT_EQ(shape_of(outer), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(vals<T>(outer), as<T>({11, 12, 13, 21, 22, 23}));
  // Rank 3 against rank 2 with a middle broadcast dimension.
  auto cube = tens<T>({2, 2, 2}, as<T>({1, 2, 3, 4, 5, 6, 7, 8}));
  auto mid = tens<T>({1, 2}, as<T>({10, 20}));
  EXPECT_EQ(vals<T>(run1("add", {cube, mid})),
            as<T>({11, 22, 13, 24, 15, 26, 17, 28}));
  auto lanes = tens<T>({2, 1, 2}, as<T>({1, 2, 3, 4}));
  EXPECT_EQ(vals<T>(run1("mul", {cube, lanes})),
            as<T>({1, 4, 3, 8, 15, 24, 21, 32}));
}

TYPED_TEST(elementwise, empty_operands) {
  using T = TypeParam;
  auto e = tens<T>({0}, {});
  auto r = run1("add", {e, e});
  EXPECT_EQ(shape_of(r), (std::vector<int64_t>{0}));
  // 1 stretches to 0.
  auto e2 = tens<T>({0, 3}, {});
  auto one_row = tens<T>({1, 3}, as<T>({1, 2, 3}));
  EXPECT_EQ(shape_of(run1("mul", {e2, one_row})), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(shape_of(run1("neg", {e})), (std::vector<int64_t>{0}));
  EXPECT_EQ(shape_of(run1("lt", {e, scalar<T>(T{1})})),
            (std::vector<int64_t>{0}));
}

TYPED_TEST(elementwise, compare) {
  using T = TypeParam;
  auto a = tens<T>({4}, as<T>({1, 2, 3, 4}));
  auto b = tens<T>({4}, as<T>({4, 2, 1, 4}));
  auto check = [&](const char* op, std::vector<uint8_t> want) {
    auto r = run1(op, {a, b});
    EXPECT_EQ(type_of(r), dtype::bool_) << op;
    EXPECT_EQ(vals<uint8_t>(r), want) << op;
  };
  check("eq", {0, 1, 0, 1});
  check("ne", {1, 0, 1, 0});
  check("lt", {1, 0, 0, 0});
  check("le", {1, 1, 0, 1});
  check("gt", {0, 0, 1, 0});
  check("ge", {0, 1, 1, 1});
  auto r = run1("gt", {a, scalar<T>(T{2})});
  EXPECT_EQ(vals<uint8_t>(r), (std::vector<uint8_t>{0, 0, 1, 1}));
}

TYPED_TEST(elementwise, select_with_broadcasting) {
  using T = TypeParam;
  auto cond = bools({2, 2}, {true, false, false, true});
  auto a = tens<T>({2, 2}, as<T>({1, 2, 3, 4}));
  auto b = tens<T>({2, 2}, as<T>({5, 6, 7, 8}));
  EXPECT_EQ(vals<T>(run1("select", {cond, a, b})), as<T>({1, 6, 7, 4}));
  // Row condition and scalar fallback.
  auto row = tens<uint8_t>({2}, {0, 3});
  EXPECT_EQ(vals<T>(run1("select", {row, a, scalar<T>(T{9})})),
            as<T>({9, 2, 9, 4}));
  auto empty
      = run1("select", {bools({0}, {}), tens<T>({0}, {}), scalar<T>(T{1})});
  EXPECT_EQ(shape_of(empty), (std::vector<int64_t>{0}));
}

TYPED_TEST(elementwise, cast_round_trips_small_values) {
  using T = TypeParam;
  auto a = tens<T>({3}, as<T>({0, 1, 100}));
  for (auto target : {dtype::int8, dtype::uint8, dtype::int32, dtype::int64,
                      dtype::float32, dtype::float64}) {
    auto name = std::string{to_string(target)};
    auto c = run1("cast", {a}, {make_attr("dtype", name)});
    ASSERT_TRUE(c) << name;
    EXPECT_EQ(type_of(c), target);
    auto back = run1(
        "cast", {c},
        {make_attr("dtype", std::string{to_string(dtype_of<T>::value)})});
    EXPECT_EQ(vals<T>(back), as<T>({0, 1, 100})) << name;
  }
  auto b = run1("cast", {a}, {make_attr("dtype", "bool")});
  EXPECT_EQ(vals<uint8_t>(b), (std::vector<uint8_t>{0, 1, 1}));
  EXPECT_EQ(
      vals<T>(run1(
          "cast", {b},
          {make_attr("dtype", std::string{to_string(dtype_of<T>::value)})})),
      as<T>({0, 1, 1}));
}

TEST(elementwise_special, integer_wraps_instead_of_overflowing) {
  auto big = tens<int32_t>({2}, {std::numeric_limits<int32_t>::max(),
                                 std::numeric_limits<int32_t>::min()});
  auto r = run1("add", {big, tens<int32_t>({2}, {1, -1})});
  EXPECT_EQ(vals<int32_t>(r),
            (std::vector<int32_t>{std::numeric_limits<int32_t>::min(),
                                  std::numeric_limits<int32_t>::max()}));
  auto q = run1("div", {big, scalar<int32_t>(-1)});
  EXPECT_EQ(vals<int32_t>(q)[1], std::numeric_limits<int32_t>::min());
  auto u = run1("sub", {tens<uint8_t>({1}, {1}), tens<uint8_t>({1}, {2})});
  EXPECT_EQ(vals<uint8_t>(u), (std::vector<uint8_t>{255}));
}

TEST(elementwise_special, floats_follow_ieee_and_propagate_nan) {
  auto nan = std::numeric_limits<double>::quiet_NaN();
  auto a = tens<double>({3}, {1, nan, -1});
  auto b = tens<double>({3}, {0, 2, 0});
  auto q = vals<double>(run1("div", {a, b}));
  EXPECT_EQ(q[0], std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(q[1]));
  EXPECT_EQ(q[2], -std::numeric_limits<double>::infinity());
  auto mn = vals<double>(run1("minimum", {a, b}));
  EXPECT_EQ(mn[0], 0);
  EXPECT_TRUE(std::isnan(mn[1]));
  auto mx = vals<double>(run1("maximum", {b, a}));
  EXPECT_TRUE(std::isnan(mx[1]));
  EXPECT_EQ(vals<uint8_t>(run1("eq", {a, a})), (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(vals<uint8_t>(run1("ne", {a, a})), (std::vector<uint8_t>{0, 1, 0}));
}

TEST(elementwise_special, bool_operands) {
  auto a = bools({4}, {false, false, true, true});
  auto b = bools({4}, {false, true, false, true});
  EXPECT_EQ(vals<uint8_t>(run1("minimum", {a, b})),
            (std::vector<uint8_t>{0, 0, 0, 1}));
  EXPECT_EQ(vals<uint8_t>(run1("maximum", {a, b})),
            (std::vector<uint8_t>{0, 1, 1, 1}));
  EXPECT_EQ(vals<uint8_t>(run1("eq", {a, b})),
            (std::vector<uint8_t>{1, 0, 0, 1}));
  EXPECT_EQ(vals<uint8_t>(run1("lt", {a, b})),
            (std::vector<uint8_t>{0, 1, 0, 0}));
  EXPECT_EQ(vals<uint8_t>(run1("select", {a, b, bools({}, {true})})),
            (std::vector<uint8_t>{1, 1, 0, 1}));
  for (auto op : {"add", "sub", "mul", "div"})
    EXPECT_TRUE(fails_naming(run_op(op, {a, b}), op, "bool")) << op;
  EXPECT_TRUE(fails_naming(run_op("neg", {a}), "neg", "bool"));
}

TEST(elementwise_special, cast_saturates_truncates_and_wraps) {
  auto nan = std::numeric_limits<double>::quiet_NaN();
  auto f = tens<double>({6}, {1e10, -1e10, 2.9, -2.9, nan, 0.5});
  EXPECT_EQ(
      vals<int32_t>(run1("cast", {f}, {make_attr("dtype", "int32")})),
      (std::vector<int32_t>{std::numeric_limits<int32_t>::max(),
                            std::numeric_limits<int32_t>::min(), 2, -2, 0, 0}));
  EXPECT_EQ(vals<uint8_t>(run1("cast", {f}, {make_attr("dtype", "uint8")})),
            (std::vector<uint8_t>{255, 0, 2, 0, 0, 0}));
  EXPECT_EQ(vals<uint8_t>(run1("cast", {f}, {make_attr("dtype", "bool")})),
            (std::vector<uint8_t>{1, 1, 1, 1, 1, 1}));
  auto i = tens<int32_t>({2}, {300, -1});
  EXPECT_EQ(vals<uint8_t>(run1("cast", {i}, {make_attr("dtype", "uint8")})),
            (std::vector<uint8_t>{44, 255}));
  EXPECT_EQ(vals<int8_t>(run1("cast", {i}, {make_attr("dtype", "int8")})),
            (std::vector<int8_t>{44, -1}));
  // Same dtype: the very same value comes back.
  auto same = run_op("cast", {i}, {make_attr("dtype", "int32")});
  ASSERT_TRUE(same);
  EXPECT_EQ(same->front().get(), i.get());
}

TEST(elementwise_errors, are_op_failed_naming_the_op) {
  auto f = tens<float>({2}, {1, 2});
  auto d = tens<double>({2}, {1, 2});
  auto i = tens<int32_t>({2}, {1, 0});
  EXPECT_TRUE(fails_naming(run_op("add", {f, d}), "add", "dtypes"));
  EXPECT_TRUE(fails_naming(run_op("eq", {f, d}), "eq", "dtypes"));
  EXPECT_TRUE(fails_naming(run_op("sub", {tens<float>({3}, {1, 2, 3}), f}),
                           "sub", "broadcast"));
  EXPECT_TRUE(
      fails_naming(run_op("mul", {tens<float>({2, 3}, {1, 2, 3, 4, 5, 6}),
                                  tens<float>({3, 2}, {1, 2, 3, 4, 5, 6})}),
                   "mul", "broadcast"));
  EXPECT_TRUE(fails_naming(run_op("div", {i, i}), "div", "division by zero"));
  auto table = make_table_value({{"x", f}});
  EXPECT_TRUE(fails_naming(run_op("add", {table, f}), "add", "table"));
  EXPECT_TRUE(fails_naming(run_op("add", {f}), "add", "inputs"));
  EXPECT_TRUE(fails_naming(run_op("neg", {f, f}), "neg", "inputs"));
  EXPECT_TRUE(fails_naming(run_op("select", {f, f, f}), "select", "bool"));
  EXPECT_TRUE(fails_naming(run_op("select", {bools({2}, {true, false}), f, d}),
                           "select", "dtypes"));
  EXPECT_TRUE(fails_naming(run_op("cast", {f}), "cast", "dtype"));
  EXPECT_TRUE(fails_naming(run_op("cast", {f}, {make_attr("dtype", "int3")}),
                           "cast", "int3"));
}

TEST(elementwise_errors, kernels_check_arity_even_without_validation) {
  // execute() alone does not check arity (the worker validates first);
  // kernels still fail cleanly instead of reading past their inputs.
  for (auto opcode : {"add", "select", "matmul", "concat", "checksum"}) {
    graph_builder b;
    b.output(b.add(opcode, {}));
    auto result = execute(b.build(), {}, builtins());
    EXPECT_TRUE(fails_naming(result, opcode)) << opcode;
  }
}

} // namespace

} // namespace
} // namespace tensor_kernels_test_file
