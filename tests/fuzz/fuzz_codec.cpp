// libFuzzer target: value decoding (store/codec.hpp decode) and the
// wire_value path of CAF messages (messages/wire_value.hpp).
//
// The first byte picks a mode:
//   0  decode the rest as it is (mostly stops at the checksums)
//   1  fix up the header and trailer checksums first, so the fuzzer
//      reaches the Boost header parser and value construction
//   2  like 1, then deserialize it as a wire_value inside CAF's binary
//      format (u64 length prefix)
//
// Invariants: decoding never throws and fails only with corrupt_data or
// resource_exhausted; a decoded value re-encodes to bytes that decode to
// an equal value.

#include <cstring>
#include <vector>

#include "messages/wire_value.hpp"
#include "store/codec.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace objstore;

namespace {

uint64_t get_le(const std::byte* in) {
  uint64_t x = 0;
  for (size_t i = 0; i < 8; ++i)
    x |= static_cast<uint64_t>(in[i]) << (8 * i);
  return x;
}

void put_le(std::byte* out, uint64_t x) {
  for (size_t i = 0; i < 8; ++i)
    out[i] = static_cast<std::byte>((x >> (8 * i)) & 0xFF);
}

/// Rewrites the header checksum (bytes 16..24, over the header that the
/// size field at 8..16 announces) and the trailer (last 8 bytes, over
/// everything before it), as encode() would.
void fix_checksums(std::span<std::byte> bytes) {
  constexpr size_t prefix = 24;
  if (bytes.size() < prefix + 8)
    return;
  auto header_size = get_le(bytes.data() + 8);
  if (header_size <= bytes.size() - prefix - 8)
    put_le(bytes.data() + 16, checksum_of(bytes.subspan(
                                  prefix, static_cast<size_t>(header_size))));
  put_le(bytes.data() + bytes.size() - 8,
         checksum_of(bytes.first(bytes.size() - 8)));
}

void check_decoded(const caf::expected<value_ptr>& x) {
  if (!x) {
    auto code = code_of(x.error());
    OBJSTORE_FUZZ_CHECK(code == errc::corrupt_data
                            || code == errc::resource_exhausted,
                        describe(x.error()));
    return;
  }
  OBJSTORE_FUZZ_CHECK(*x != nullptr, "null value");
  (void)(*x)->summary();
  auto bytes = encode(**x);
  auto again = decode(bytes, "fuzz re-decode");
  OBJSTORE_FUZZ_CHECK(again, describe(again.error()));
  OBJSTORE_FUZZ_CHECK(**again == **x, "re-encoding changed the value");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  auto mode = data[0] % 3;
  std::vector<std::byte> bytes(size - 1);
  if (!bytes.empty())
    std::memcpy(bytes.data(), data + 1, bytes.size());
  if (mode == 0) {
    check_decoded(decode(bytes, "fuzz input"));
    return 0;
  }
  if (mode == 1) {
    fix_checksums(bytes);
    check_decoded(decode(bytes, "fuzz input"));
    return 0;
  }
  if (bytes.size() > 8)
    fix_checksums(std::span{bytes}.subspan(8));
  wire_value x;
  if (fuzz::load(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                 x)) {
    // A null value (length 0) is legal on the wire (a fetch reply that
    // carries a grant); it must round-trip as null like any other.
    auto copy = wire_value{};
    auto buf = fuzz::save(x);
    OBJSTORE_FUZZ_CHECK(fuzz::load(reinterpret_cast<const uint8_t*>(buf.data()),
                                   buf.size(), copy),
                        "wire value does not round-trip");
    OBJSTORE_FUZZ_CHECK(copy == x, "wire value round trip changed it");
  }
  return 0;
}
