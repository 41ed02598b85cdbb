#include "store/value.hpp"

#include <gtest/gtest.h>

#include <limits>

#include "store/error.hpp"
#include "store/test_support.hpp"

namespace value_test_file {
namespace {

using namespace objstore;

namespace {

bool is_aligned(const void* ptr) {
  return reinterpret_cast<uintptr_t>(ptr) % buffer::alignment == 0;
}

// -- dtype --------------------------------------------------------------------

TEST(dtype, names_sizes_and_parsing) {
  const std::vector<std::pair<std::string, size_t>> expected{
      {"bool", 1},  {"int8", 1},    {"uint8", 1},   {"int32", 4},
      {"int64", 8}, {"float32", 4}, {"float64", 8},
  };
  ASSERT_EQ(expected.size(), dtype_count);
  for (size_t i = 0; i < dtype_count; ++i) {
    auto type = static_cast<dtype>(i);
    EXPECT_EQ(to_string(type), expected[i].first);
    EXPECT_EQ(dtype_size(type), expected[i].second);
    auto parsed = parse_dtype(expected[i].first);
    ASSERT_TRUE(parsed) << describe(parsed.error());
    EXPECT_EQ(*parsed, type);
  }
  auto bad = parse_dtype("float16");
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::invalid_argument);
  EXPECT_NE(message_of(bad.error()).find("float16"), std::string::npos);
}

// -- buffer -------------------------------------------------------------------

TEST(buffer, allocations_are_64_byte_aligned) {
  for (size_t size : {0, 1, 7, 63, 64, 65, 1000, 1 << 20}) {
    auto buf = buffer::allocate(size);
    ASSERT_NE(buf->data(), nullptr) << size;
    EXPECT_TRUE(is_aligned(buf->data())) << size;
    EXPECT_EQ(buf->size(), size);
    EXPECT_EQ(buf->bytes().size(), size);
  }
}

TEST(buffer, large_buffers_are_huge_page_aligned_and_fully_writable) {
  constexpr size_t huge_page = size_t{2} << 20;
  for (size_t size : {buffer::huge_threshold - 1, buffer::huge_threshold,
                      buffer::huge_threshold + 12345}) {
    auto buf = buffer::allocate(size);
    EXPECT_EQ(buf->size(), size);
    auto addr = reinterpret_cast<uintptr_t>(buf->data());
    if (size >= buffer::huge_threshold)
      EXPECT_EQ(addr % huge_page, 0u) << size;
    else
      EXPECT_TRUE(is_aligned(buf->data())) << size;
    // Every byte up to the size is ours (ASan would flag an overrun).
    std::memset(buf->mutable_data(), 0x5a, size);
    EXPECT_EQ(std::to_integer<int>(buf->data()[size - 1]), 0x5a);
  }
}

TEST(buffer, copy_of_copies_the_bytes) {
  std::string text = "some bytes";
  auto buf = buffer::copy_of(std::as_bytes(std::span{text}));
  EXPECT_TRUE(is_aligned(buf->data()));
  ASSERT_EQ(buf->size(), text.size());
  text[0] = 'X';
  EXPECT_EQ(std::memcmp(buf->data(), "some bytes", 10), 0);
}

// -- tensor -------------------------------------------------------------------

TEST(tensor, make_checks_the_buffer_size) {
  auto ok = tensor::make(dtype::int32, {2, 3}, buffer::allocate(24));
  ASSERT_TRUE(ok) << describe(ok.error());
  EXPECT_EQ(ok->num_elements(), 6);
  EXPECT_EQ(ok->rank(), 2u);
  EXPECT_EQ(ok->size_bytes(), 24u);
  for (size_t wrong : {0, 23, 25, 6}) {
    auto bad = tensor::make(dtype::int32, {2, 3}, buffer::allocate(wrong));
    ASSERT_FALSE(bad) << wrong;
    EXPECT_EQ(code_of(bad.error()), errc::invalid_argument);
    EXPECT_NE(message_of(bad.error()).find("int32[2,3]"), std::string::npos)
        << describe(bad.error());
  }
  auto no_buffer = tensor::make(dtype::int8, {1}, nullptr);
  ASSERT_FALSE(no_buffer);
  EXPECT_EQ(code_of(no_buffer.error()), errc::invalid_argument);
}

TEST(tensor, make_refuses_negative_and_overflowing_shapes) {
  constexpr auto max = std::numeric_limits<int64_t>::max();
  const std::vector<std::vector<int64_t>> shapes{
      {-1},
      {2, -3},
      {-2, -2},
      {max, 2},
      // Element count fits, byte size 2^61 * 8 = 2^64 wraps to zero.
      {int64_t{1} << 61},
      {int64_t{1} << 31, int64_t{1} << 30},
  };
  for (auto& shape : shapes) {
    SCOPED_TRACE(testing::PrintToString(shape));
    auto bad = tensor::make(dtype::int64, shape, buffer::allocate(0));
    ASSERT_FALSE(bad) << "accepted " << bad->num_elements() << " elements";
    EXPECT_EQ(code_of(bad.error()), errc::invalid_argument);
    EXPECT_THROW(tensor::allocate(dtype::int64, shape), std::invalid_argument);
  }
}

TEST(tensor, empty_and_scalar_shapes) {
  auto empty = tensor::make(dtype::float32, {4, 0}, nullptr);
  ASSERT_TRUE(empty) << describe(empty.error());
  EXPECT_EQ(empty->num_elements(), 0);
  EXPECT_NE(empty->raw(), nullptr);
  auto scalar = tensor::from<int64_t>({}, std::vector<int64_t>{42});
  EXPECT_EQ(scalar.rank(), 0u);
  EXPECT_EQ(scalar.num_elements(), 1);
  EXPECT_EQ(scalar.values<int64_t>()[0], 42);
  tensor fallback;
  EXPECT_EQ(fallback.type(), dtype::float64);
  EXPECT_EQ(fallback.shape(), std::vector<int64_t>{0});
  EXPECT_EQ(fallback.num_elements(), 0);
  EXPECT_EQ(fallback.size_bytes(), 0u);
}

TEST(tensor, from_copies_values_and_checks_their_count) {
  auto t = tensor::from<float>({2, 2}, std::vector<float>{1, 2, 3, 4});
  EXPECT_EQ(t.type(), dtype::float32);
  EXPECT_TRUE(is_aligned(t.raw()));
  EXPECT_EQ(t.values<float>()[3], 4.0f);
  auto b = tensor::from<bool>({3}, std::vector<bool>{true, false, true});
  EXPECT_EQ(b.type(), dtype::bool_);
  EXPECT_EQ(b.size_bytes(), 3u);
  EXPECT_EQ(b.values<uint8_t>()[0], 1);
  EXPECT_EQ(b.values<uint8_t>()[1], 0);
  EXPECT_THROW(tensor::from<float>({3}, std::vector<float>{1, 2}),
               std::invalid_argument);
}

TEST(tensor, equality_compares_dtype_shape_and_bytes) {
  auto a = test::sample_tensor(dtype::int32, {2, 3});
  auto same
      = *tensor::make(dtype::int32, {2, 3}, buffer::copy_of(a.data()->bytes()));
  auto reshaped = *tensor::make(dtype::int32, {3, 2}, a.data());
  auto retyped = *tensor::make(dtype::float32, {2, 3}, a.data());
  auto other = test::sample_tensor(dtype::int32, {2, 3}, 9);
  EXPECT_EQ(a, same);
  EXPECT_NE(a.data(), same.data());
  EXPECT_NE(a, reshaped);
  EXPECT_NE(a, retyped);
  EXPECT_NE(a, other);
  EXPECT_EQ(tensor{}, *tensor::make(dtype::float64, {0}, nullptr));
}

// -- table --------------------------------------------------------------------

TEST(table, make_accepts_equal_length_named_columns) {
  auto t = table::make({{"a", test::sample_tensor(dtype::int64, {3})},
                        {"b", test::sample_tensor(dtype::bool_, {3})}});
  ASSERT_TRUE(t) << describe(t.error());
  EXPECT_EQ(t->num_rows(), 3);
  EXPECT_EQ(t->size_bytes(), 3u * 8 + 3u);
  ASSERT_NE(t->find("b"), nullptr);
  EXPECT_EQ(t->find("b")->data.type(), dtype::bool_);
  EXPECT_EQ(t->find("c"), nullptr);
  auto none = table::make({});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->num_rows(), 0);
  EXPECT_EQ(none->size_bytes(), 0u);
}

TEST(table, make_refuses_malformed_columns) {
  struct bad_case {
    std::string why;
    std::vector<column> columns;
    std::string named;
  };
  const std::vector<bad_case> cases{
      {"unequal lengths",
       {{"a", test::sample_tensor(dtype::int8, {3})},
        {"b", test::sample_tensor(dtype::int8, {4})}},
       "'b'"},
      {"duplicate names",
       {{"a", test::sample_tensor(dtype::int8, {3})},
        {"a", test::sample_tensor(dtype::int32, {3})}},
       "'a'"},
      {"empty name", {{"", test::sample_tensor(dtype::int8, {3})}}, "name"},
      {"2-D column", {{"m", test::sample_tensor(dtype::int8, {2, 2})}}, "'m'"},
      {"scalar column", {{"s", test::sample_tensor(dtype::int8, {})}}, "'s'"},
      {"2-D after 1-D",
       {{"a", test::sample_tensor(dtype::int8, {2})},
        {"m", test::sample_tensor(dtype::int8, {2, 1})}},
       "'m'"},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.why);
    auto t = table::make(c.columns);
    ASSERT_FALSE(t);
    EXPECT_EQ(code_of(t.error()), errc::invalid_argument);
    EXPECT_NE(message_of(t.error()).find(c.named), std::string::npos)
        << describe(t.error());
  }
}

TEST(table, equality_compares_names_order_and_data) {
  auto a = test::sample_tensor(dtype::int32, {2}, 1);
  auto b = test::sample_tensor(dtype::int32, {2}, 2);
  auto ab = *table::make({{"a", a}, {"b", b}});
  EXPECT_EQ(ab, *table::make({{"a", a}, {"b", b}}));
  EXPECT_NE(ab, *table::make({{"b", b}, {"a", a}}));
  EXPECT_NE(ab, *table::make({{"a", a}, {"c", b}}));
  EXPECT_NE(ab, *table::make({{"a", a}, {"b", a}}));
}

// -- blob and value -----------------------------------------------------------

TEST(blob, holds_arbitrary_bytes) {
  auto x = blob::copy_of(std::string{"a\0b", 3});
  EXPECT_EQ(x.size_bytes(), 3u);
  EXPECT_EQ(x.view(), std::string_view("a\0b", 3));
  EXPECT_EQ(x, blob::copy_of(std::string{"a\0b", 3}));
  EXPECT_NE(x, blob::copy_of("a"));
  EXPECT_EQ(blob{}, blob::copy_of(""));
  EXPECT_EQ(blob{}.size_bytes(), 0u);
}

TEST(value, kinds_sizes_and_equality) {
  auto t = make_value(test::sample_tensor(dtype::float32, {4, 5}));
  auto tbl = make_value(test::sample_table(3));
  auto b = make_value(blob::copy_of("bytes"));
  EXPECT_TRUE(t->is_tensor());
  EXPECT_TRUE(tbl->is_table());
  EXPECT_TRUE(b->is_bytes());
  EXPECT_EQ(t->kind(), value_kind::tensor);
  EXPECT_EQ(to_string(value_kind::table), "table");
  EXPECT_EQ(t->size_bytes(), 80u);
  EXPECT_EQ(tbl->size_bytes(), tbl->as_table().size_bytes());
  EXPECT_EQ(b->size_bytes(), 5u);
  EXPECT_THROW((void)t->as_table(), std::bad_variant_access);
  EXPECT_NE(*b, value{blob::copy_of("other")});
  EXPECT_EQ(*b, value{blob::copy_of("bytes")});
  // Empty payloads of different kinds are still different values.
  EXPECT_NE(value{tensor{}}, value{blob{}});
}

TEST(value, sharing_copies_no_bytes) {
  auto t = test::sample_tensor(dtype::uint8, {1024});
  auto* raw = t.raw();
  auto x = make_value(std::move(t));
  value_ptr copy = x;
  EXPECT_EQ(copy->as_tensor().raw(), raw);
  auto tbl = test::sample_table(2);
  auto* col_raw = tbl.columns()[0].data.raw();
  EXPECT_EQ(make_value(tbl)->as_table().columns()[0].data.raw(), col_raw);
}

TEST(value, summary_describes_kind_shape_and_size) {
  EXPECT_EQ(make_value(test::sample_tensor(dtype::float32, {4, 5}))->summary(),
            "tensor float32[4,5] (80 bytes)");
  EXPECT_EQ(make_value(test::sample_tensor(dtype::float64, {}))->summary(),
            "tensor float64[] (8 bytes)");
  EXPECT_EQ(make_value(test::sample_tensor(dtype::int8, {0}))->summary(),
            "tensor int8[0] (0 bytes)");
  auto tbl = *table::make({{"a", test::sample_tensor(dtype::int64, {3})},
                           {"b", test::sample_tensor(dtype::uint8, {3})}});
  EXPECT_EQ(make_value(tbl)->summary(), "table 2 columns x 3 rows (27 bytes)");
  EXPECT_EQ(make_value(blob::copy_of("hello"))->summary(), "bytes (5 bytes)");
}

TEST(memory_budget, buffers_are_charged_and_give_their_bytes_back) {
  EXPECT_EQ(scoped_memory_budget::remaining(), scoped_memory_budget::unlimited);
  {
    scoped_memory_budget budget{1000};
    EXPECT_EQ(scoped_memory_budget::remaining(), 1000u);
    auto a = buffer::allocate(600);
    EXPECT_EQ(scoped_memory_budget::remaining(), 400u);
    try {
      buffer::allocate(500);
      ADD_FAILURE() << "500 bytes fit in the 400 left";
    } catch (const allocation_limit_exceeded& ex) {
      EXPECT_NE(std::string{ex.what()}.find("objstore.memory-limit"),
                std::string::npos)
          << ex.what();
      EXPECT_EQ(ex.limit(), 400u);
    }
    EXPECT_EQ(scoped_memory_budget::remaining(), 400u) << "a refusal is free";
    a.reset(); // a freed intermediate no longer counts
    EXPECT_EQ(scoped_memory_budget::remaining(), 1000u);
    auto b = buffer::allocate(1000);
    EXPECT_EQ(scoped_memory_budget::remaining(), 0u);
    {
      scoped_memory_budget inner{scoped_memory_budget::unlimited};
      EXPECT_NO_THROW(buffer::allocate(4096)) << "the inner scope wins";
    }
    EXPECT_THROW(buffer::allocate(1), allocation_limit_exceeded);
  }
  EXPECT_EQ(scoped_memory_budget::remaining(), scoped_memory_budget::unlimited);
}

} // namespace

} // namespace
} // namespace value_test_file
