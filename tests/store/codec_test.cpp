#include "store/codec.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "store/error.hpp"
#include "store/test_support.hpp"

namespace codec_test_file {
namespace {

using namespace objstore;

namespace {

/// One value of every kind and dtype, including the degenerate shapes.
std::vector<value_ptr> samples() {
  std::vector<value_ptr> result;
  for (auto type : test::all_dtypes()) {
    result.push_back(make_value(test::sample_tensor(type, {2, 3})));
    result.push_back(make_value(test::sample_tensor(type, {})));
    result.push_back(make_value(test::sample_tensor(type, {0})));
  }
  result.push_back(make_value(test::sample_tensor(dtype::int8, {2, 0, 3})));
  result.push_back(make_value(test::sample_tensor(dtype::uint8, {1, 1, 1, 7})));
  result.push_back(make_value(test::sample_table(5)));
  result.push_back(make_value(test::sample_table(0)));
  result.push_back(make_value(*table::make({})));
  result.push_back(
      make_value(blob::copy_of(std::string{"\0\x01\xff bytes", 9})));
  result.push_back(make_value(blob::copy_of("")));
  result.push_back(make_value(blob{}));
  result.push_back(make_value(tensor{}));
  return result;
}

caf::expected<value_ptr> decode_bytes(const std::vector<std::byte>& bytes) {
  return decode(std::span<const std::byte>{bytes}, "test-object");
}

/// Offsets inside an encoding (see encoded_value).
constexpr size_t version_offset = 4;
constexpr size_t header_size_offset = 8;
constexpr size_t header_checksum_offset = 16;
constexpr size_t header_offset = 24;

void put_u64(std::vector<std::byte>& bytes, size_t offset, uint64_t x) {
  for (size_t i = 0; i < 8; ++i)
    bytes[offset + i] = static_cast<std::byte>((x >> (8 * i)) & 0xFF);
}

uint64_t get_u64(const std::vector<std::byte>& bytes, size_t offset) {
  uint64_t x = 0;
  for (size_t i = 0; i < 8; ++i)
    x |= static_cast<uint64_t>(bytes[offset + i]) << (8 * i);
  return x;
}

/// Recomputes both checksums after a deliberate edit, so the decoder gets
/// past them and has to judge the content itself.
void reseal(std::vector<std::byte>& bytes) {
  auto header_size = get_u64(bytes, header_size_offset);
  put_u64(bytes, header_checksum_offset,
          checksum_of({bytes.data() + header_offset, header_size}));
  put_u64(bytes, bytes.size() - 8,
          checksum_of({bytes.data(), bytes.size() - 8}));
}

/// Returns the offset of the first little-endian occurrence of `x`.
size_t find_u64(const std::vector<std::byte>& bytes, uint64_t x) {
  for (size_t i = header_offset; i + 8 <= bytes.size(); ++i)
    if (get_u64(bytes, i) == x)
      return i;
  return std::string::npos;
}

TEST(codec, every_kind_and_dtype_round_trips) {
  // Includes default-constructed tensors and blobs (no buffer at all).
  for (auto& x : samples()) {
    SCOPED_TRACE(x->summary());
    auto bytes = encode(*x);
    auto got = decode_bytes(bytes);
    ASSERT_TRUE(got) << describe(got.error());
    EXPECT_EQ((*got)->kind(), x->kind());
    EXPECT_EQ(**got, *x);
    EXPECT_EQ((*got)->size_bytes(), x->size_bytes());
    // Re-encoding the decoded value is byte-identical.
    EXPECT_EQ(encode(**got), bytes);
  }
}

TEST(codec, decoded_buffers_are_aligned) {
  auto got = decode_bytes(encode(*make_value(test::sample_table(33))));
  ASSERT_TRUE(got) << describe(got.error());
  for (auto& col : (*got)->as_table().columns())
    EXPECT_EQ(reinterpret_cast<uintptr_t>(col.data.raw()) % buffer::alignment,
              0u)
        << col.name;
}

TEST(codec, pieces_and_contiguous_encoding_agree) {
  for (auto& x : samples()) {
    SCOPED_TRACE(x->summary());
    auto pieces = encode_pieces(*x);
    auto bytes = encode(*x);
    ASSERT_EQ(pieces.size(), bytes.size());
    ASSERT_GE(bytes.size(), header_offset + 8);
    EXPECT_EQ(std::memcmp(bytes.data(), pieces.head.data(), pieces.head.size()),
              0);
    EXPECT_EQ(get_u64(bytes, bytes.size() - 8), pieces.checksum);
    EXPECT_EQ(std::memcmp(bytes.data(), "OBJS", 4), 0);
    EXPECT_EQ(get_u64(bytes, version_offset) & 0xFFFFFFFF, codec_version);
  }
}

TEST(codec, payload_blocks_are_raw_bytes) {
  auto x = make_value(test::sample_tensor(dtype::float32, {16}));
  auto pieces = encode_pieces(*x);
  ASSERT_EQ(pieces.blocks.size(), 1u);
  // The block references the tensor's own buffer: no copy, no conversion.
  EXPECT_EQ(pieces.blocks[0].data(), x->as_tensor().raw());
  EXPECT_EQ(pieces.blocks[0].size(), x->size_bytes());
}

TEST(codec, every_truncation_is_corrupt_data) {
  for (auto& x : {make_value(test::sample_tensor(dtype::int32, {3})),
                  make_value(test::sample_table(2))}) {
    SCOPED_TRACE(x->summary());
    auto bytes = encode(*x);
    for (size_t n = 0; n < bytes.size(); ++n) {
      std::vector<std::byte> prefix(bytes.begin(), bytes.begin() + n);
      auto got = decode_bytes(prefix);
      ASSERT_FALSE(got) << "prefix of " << n << " bytes decoded";
      ASSERT_EQ(code_of(got.error()), errc::corrupt_data)
          << n << ": " << describe(got.error());
      ASSERT_NE(message_of(got.error()).find("test-object"), std::string::npos);
    }
  }
}

TEST(codec, trailing_bytes_are_corrupt_data) {
  auto bytes = encode(*make_value(blob::copy_of("abc")));
  bytes.push_back(std::byte{0});
  auto got = decode_bytes(bytes);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::corrupt_data);
}

TEST(codec, every_single_byte_flip_is_corrupt_data) {
  std::mt19937 rng{20240601};
  std::uniform_int_distribution<int> mask{1, 255};
  for (auto& x : {make_value(test::sample_tensor(dtype::float64, {2, 2})),
                  make_value(test::sample_table(3)),
                  make_value(blob::copy_of("hello"))}) {
    SCOPED_TRACE(x->summary());
    auto bytes = encode(*x);
    for (size_t pos = 0; pos < bytes.size(); ++pos) {
      for (int flip : {mask(rng), mask(rng), 0xFF}) {
        auto damaged = bytes;
        damaged[pos] ^= static_cast<std::byte>(flip);
        auto got = decode_bytes(damaged);
        ASSERT_FALSE(got) << "flip " << flip << " at " << pos << " decoded";
        ASSERT_EQ(code_of(got.error()), errc::corrupt_data)
            << pos << ": " << describe(got.error());
      }
    }
  }
}

TEST(codec, resealed_header_flips_never_crash) {
  // With valid checksums, Boost parses the damaged header: the decoder must
  // still answer with a value or corrupt_data, never throw or crash.
  auto x = make_value(test::sample_table(3));
  auto bytes = encode(*x);
  auto header_size = get_u64(bytes, header_size_offset);
  size_t decoded = 0;
  for (size_t pos = header_offset; pos < header_offset + header_size; ++pos) {
    for (int flip : {0x01, 0x80, 0xFF}) {
      auto damaged = bytes;
      damaged[pos] ^= static_cast<std::byte>(flip);
      reseal(damaged);
      caf::expected<value_ptr> got{nullptr};
      ASSERT_NO_THROW(got = decode_bytes(damaged));
      if (got) {
        ++decoded;
        ASSERT_NE(*got, nullptr);
        EXPECT_EQ((*got)->size_bytes(), x->size_bytes());
      } else {
        ASSERT_EQ(code_of(got.error()), errc::corrupt_data)
            << pos << ": " << describe(got.error());
      }
    }
  }
  // Flipping a column name character still decodes; most flips do not.
  EXPECT_GT(decoded, 0u);
  EXPECT_LT(decoded, header_size);
}

TEST(codec, version_99_is_corrupt_data_naming_the_version) {
  auto bytes = encode(*make_value(blob::copy_of("v")));
  bytes[version_offset] = std::byte{99};
  reseal(bytes);
  auto got = decode_bytes(bytes);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::corrupt_data);
  auto msg = message_of(got.error());
  EXPECT_NE(msg.find("version"), std::string::npos) << msg;
  EXPECT_NE(msg.find("99"), std::string::npos) << msg;
  bytes[version_offset] = std::byte{0};
  reseal(bytes);
  got = decode_bytes(bytes);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::corrupt_data);
}

TEST(codec, huge_header_size_is_corrupt_data) {
  auto bytes = encode(*make_value(blob::copy_of("v")));
  put_u64(bytes, header_size_offset, ~uint64_t{0});
  auto got = decode_bytes(bytes);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::corrupt_data);
}

TEST(codec, shape_whose_byte_size_overflows_is_corrupt_data) {
  // An empty int64 tensor of shape {0, marker}; the shape is rewritten to
  // {2^61, 1}, whose byte size 2^64 wraps to the 0 payload bytes present.
  constexpr uint64_t marker = 0x0123456789abcdefULL;
  auto x = make_value(
      test::sample_tensor(dtype::int64, {0, static_cast<int64_t>(marker)}));
  auto bytes = encode(*x);
  auto at = find_u64(bytes, marker);
  ASSERT_NE(at, std::string::npos);
  ASSERT_EQ(get_u64(bytes, at - 8), 0u);
  put_u64(bytes, at - 8, uint64_t{1} << 61);
  put_u64(bytes, at, 1);
  reseal(bytes);
  auto got = decode_bytes(bytes);
  ASSERT_FALSE(got) << "decoded " << (*got)->summary();
  EXPECT_EQ(code_of(got.error()), errc::corrupt_data);
}

TEST(codec, unknown_dtype_is_corrupt_data) {
  // A bool tensor's dtype byte is 0; search the header for shape {5} to find
  // the block and patch the dtype byte right before the shape.
  auto x = make_value(test::sample_tensor(dtype::bool_, {5}));
  auto bytes = encode(*x);
  auto at = find_u64(bytes, 5);
  ASSERT_NE(at, std::string::npos);
  // Layout: ... type (1 byte) | shape count (8 bytes) | 5 ...
  ASSERT_EQ(get_u64(bytes, at - 8), 1u);
  ASSERT_EQ(bytes[at - 9], std::byte{0});
  bytes[at - 9] = std::byte{42};
  reseal(bytes);
  auto got = decode_bytes(bytes);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::corrupt_data);
  EXPECT_NE(message_of(got.error()).find("dtype"), std::string::npos)
      << describe(got.error());
}

} // namespace

TEST(codec, crafted_counts_are_corrupt_data) {
  // Counts larger than the header itself are refused before allocating
  // (2^40 dimensions would be an 8 TB allocation, 2^28 one of 2 GB).
  for (uint64_t rank : {uint64_t{1} << 40, uint64_t{1} << 28, uint64_t{64}}) {
    SCOPED_TRACE(rank);
    auto bytes = encode(*make_value(test::sample_tensor(dtype::bool_, {5})));
    auto at = find_u64(bytes, 5);
    ASSERT_NE(at, std::string::npos);
    ASSERT_EQ(get_u64(bytes, at - 8), 1u);
    put_u64(bytes, at - 8, rank);
    reseal(bytes);
    auto got = decode_bytes(bytes);
    ASSERT_FALSE(got);
    EXPECT_EQ(code_of(got.error()), errc::corrupt_data)
        << describe(got.error());
  }
}

} // namespace
} // namespace codec_test_file
