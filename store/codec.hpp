#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "store/value.hpp"

namespace objstore {

/// Current version of the encoding. Decoders accept versions 1..this.
constexpr uint32_t codec_version = 1;

/// Upper bound for the encoded header (names, shapes); larger is corrupt.
constexpr size_t max_codec_header_size = 16u << 20;

/// The encoding of one value, as pieces that can be written without first
/// copying the payload into one block:
///
///   head = "OBJS" | u32 version | u64 header size | u64 XXH3 of header
///          | header
///   then every payload block as raw bytes, then a u64 XXH3 checksum over
///   head and blocks. Integers are little-endian.
///
/// The header is a Boost.Serialization binary archive describing the kind,
/// dtypes, shapes, column names and block sizes; payload bytes are never
/// serialized element by element.
struct encoded_value {
  std::string head;
  std::vector<std::span<const std::byte>> blocks;
  uint64_t checksum = 0;

  /// Total encoded size in bytes, checksum trailer included.
  size_t size() const noexcept;
};

/// Encodes `x`; the blocks reference `x`'s buffers (keep `x` alive).
encoded_value encode_pieces(const value& x);

/// `encode_pieces` without the trailing checksum (left 0): for writers that
/// hash each piece while it is still in cache, as they send it
/// (`checksum_stream`), instead of reading the whole payload once more
/// first.
encoded_value encode_layout(const value& x);

/// Incremental XXH3 64-bit hash: `update` over every byte of an encoding
/// in order gives the checksum `encode_pieces` puts in its trailer.
class checksum_stream {
public:
  checksum_stream();
  ~checksum_stream();
  checksum_stream(const checksum_stream&) = delete;
  checksum_stream& operator=(const checksum_stream&) = delete;

  void update(std::span<const std::byte> bytes) noexcept;
  uint64_t digest() const noexcept;

private:
  void* state_; // XXH3_state_t
};

/// Encodes `x` into one contiguous byte vector.
std::vector<std::byte> encode(const value& x);

/// A source of encoded bytes with a known remaining length.
class byte_source {
public:
  virtual ~byte_source();

  /// Bytes left to read.
  virtual size_t remaining() const = 0;

  /// Reads exactly `n` bytes into `dst`; returns false on failure.
  virtual bool read(std::byte* dst, size_t n) = 0;
};

/// Where `decode` puts payload block `index` of `size` bytes (e.g. a
/// file mapping, `buffer::map_new_file`); an error fails the decode.
using block_allocator = std::function<caf::expected<std::shared_ptr<buffer>>(
    size_t index, uint64_t size)>;

/// Decodes one value from `src`, reading every payload block straight into
/// its final buffer (from `alloc` if given, else `buffer::allocate`). A
/// corrupt, truncated or oversized encoding is a `corrupt_data` error
/// mentioning `what` (e.g. the URI); never throws.
caf::expected<value_ptr> decode(byte_source& src, const std::string& what,
                                const block_allocator& alloc = {});

/// Decodes one value from contiguous bytes.
caf::expected<value_ptr> decode(std::span<const std::byte> bytes,
                                const std::string& what);

/// XXH3 64-bit hash of `bytes`.
uint64_t checksum_of(std::span<const std::byte> bytes) noexcept;

} // namespace objstore
