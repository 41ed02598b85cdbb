#include "store/codec.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <sstream>
#include <stdexcept>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/split_member.hpp>
#include <boost/serialization/version.hpp>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "store/error.hpp"

namespace objstore {

namespace {

constexpr char magic[4] = {'O', 'B', 'J', 'S'};
constexpr size_t prefix_size = 4 + 4 + 8 + 8;
constexpr size_t trailer_size = 8;

/// Header of one block: which column (or the tensor / blob) and its layout.
struct block_header {
  std::string name; // column name; empty for tensor and bytes
  uint8_t type = 0; // dtype
  std::vector<int64_t> shape;
  uint64_t size = 0; // payload bytes
};

/// The Boost-archived header. Written field by field (counts as u64, then
/// raw elements) instead of through Boost's container support, because
/// loading checks every count against the header's real size before
/// allocating: a crafted count must not make the decoder allocate gigabytes
/// (Boost's vector and string loaders resize to whatever count they read).
struct value_header {
  uint8_t kind = 0; // value_kind
  std::vector<block_header> blocks;

  /// Bytes of the archived header; bounds every count while loading.
  uint64_t input_size = 0;

  template<class Archive>
  void save(Archive& ar, unsigned /* version */) const {
    ar << kind;
    uint64_t count = blocks.size();
    ar << count;
    for (auto& b : blocks) {
      uint64_t name_size = b.name.size();
      ar << name_size;
      ar.save_binary(b.name.data(), b.name.size());
      ar << b.type;
      uint64_t rank = b.shape.size();
      ar << rank;
      ar.save_binary(b.shape.data(), rank * sizeof(int64_t));
      ar << b.size;
    }
  }

  template<class Archive>
  void load(Archive& ar, unsigned /* version */) {
    ar >> kind;
    uint64_t count = 0;
    ar >> count;
    check_count(count, 1);
    for (uint64_t i = 0; i < count; ++i) {
      block_header b;
      uint64_t name_size = 0;
      ar >> name_size;
      check_count(name_size, 1);
      b.name.resize(name_size);
      ar.load_binary(b.name.data(), name_size);
      ar >> b.type;
      uint64_t rank = 0;
      ar >> rank;
      check_count(rank, sizeof(int64_t));
      b.shape.resize(rank);
      ar.load_binary(b.shape.data(), rank * sizeof(int64_t));
      ar >> b.size;
      blocks.push_back(std::move(b));
    }
  }

  void check_count(uint64_t count, uint64_t element_size) const {
    if (count > input_size / element_size)
      throw std::length_error("header count " + std::to_string(count)
                              + " exceeds the header size");
  }

  BOOST_SERIALIZATION_SPLIT_MEMBER()
};

} // namespace

} // namespace objstore

BOOST_CLASS_VERSION(objstore::value_header, 1)

namespace objstore {

namespace {

void put_le(std::string& out, uint64_t x, size_t n) {
  for (size_t i = 0; i < n; ++i)
    out.push_back(static_cast<char>((x >> (8 * i)) & 0xFF));
}

uint64_t get_le(const std::byte* in, size_t n) {
  uint64_t x = 0;
  for (size_t i = 0; i < n; ++i)
    x |= static_cast<uint64_t>(in[i]) << (8 * i);
  return x;
}

block_header describe_block(const std::string& name, const tensor& t) {
  return {name, static_cast<uint8_t>(t.type()), t.shape(), t.size_bytes()};
}

std::span<const std::byte> bytes_of(const buffer_ptr& data) {
  return data ? data->bytes() : std::span<const std::byte>{};
}

caf::error corrupt(const std::string& what, const std::string& why) {
  return make_error(errc::corrupt_data, what + ": " + why);
}

class span_source : public byte_source {
public:
  explicit span_source(std::span<const std::byte> bytes) : bytes_(bytes) {}
  size_t remaining() const override { return bytes_.size(); }
  bool read(std::byte* dst, size_t n) override {
    if (n > bytes_.size())
      return false;
    if (n > 0)
      std::memcpy(dst, bytes_.data(), n);
    bytes_ = bytes_.subspan(n);
    return true;
  }

private:
  std::span<const std::byte> bytes_;
};

} // namespace

size_t encoded_value::size() const noexcept {
  size_t n = head.size() + trailer_size;
  for (auto& b : blocks)
    n += b.size();
  return n;
}

encoded_value encode_layout(const value& x) {
  encoded_value out;
  value_header hdr;
  hdr.kind = static_cast<uint8_t>(x.kind());
  switch (x.kind()) {
    case value_kind::tensor:
      hdr.blocks.push_back(describe_block({}, x.as_tensor()));
      out.blocks.push_back(bytes_of(x.as_tensor().data()));
      break;
    case value_kind::table:
      for (auto& col : x.as_table().columns()) {
        hdr.blocks.push_back(describe_block(col.name, col.data));
        out.blocks.push_back(bytes_of(col.data.data()));
      }
      break;
    case value_kind::bytes: {
      auto& b = x.as_bytes();
      hdr.blocks.push_back({{}, 0, {}, b.size_bytes()});
      out.blocks.push_back(bytes_of(b.data()));
      break;
    }
  }
  std::ostringstream header_stream;
  {
    boost::archive::binary_oarchive ar{header_stream,
                                       boost::archive::no_header};
    ar << hdr;
  }
  auto header = std::move(header_stream).str();
  out.head.reserve(prefix_size + header.size());
  out.head.append(magic, sizeof(magic));
  put_le(out.head, codec_version, 4);
  put_le(out.head, header.size(), 8);
  put_le(out.head, XXH3_64bits(header.data(), header.size()), 8);
  out.head += header;
  return out;
}

encoded_value encode_pieces(const value& x) {
  auto out = encode_layout(x);
  checksum_stream sum;
  sum.update(std::as_bytes(std::span{out.head}));
  for (auto& b : out.blocks)
    sum.update(b);
  out.checksum = sum.digest();
  return out;
}

checksum_stream::checksum_stream() : state_(XXH3_createState()) {
  if (state_ == nullptr)
    throw std::bad_alloc{};
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}

checksum_stream::~checksum_stream() {
  XXH3_freeState(static_cast<XXH3_state_t*>(state_));
}

void checksum_stream::update(std::span<const std::byte> bytes) noexcept {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), bytes.data(),
                     bytes.size());
}

uint64_t checksum_stream::digest() const noexcept {
  return XXH3_64bits_digest(static_cast<XXH3_state_t*>(state_));
}

std::vector<std::byte> encode(const value& x) {
  auto pieces = encode_pieces(x);
  std::vector<std::byte> out(pieces.size());
  auto* pos = out.data();
  std::memcpy(pos, pieces.head.data(), pieces.head.size());
  pos += pieces.head.size();
  for (auto& b : pieces.blocks) {
    if (!b.empty())
      std::memcpy(pos, b.data(), b.size());
    pos += b.size();
  }
  for (size_t i = 0; i < trailer_size; ++i)
    pos[i] = static_cast<std::byte>((pieces.checksum >> (8 * i)) & 0xFF);
  return out;
}

byte_source::~byte_source() {
  // nop
}

caf::expected<value_ptr> decode(byte_source& src, const std::string& what,
                                const block_allocator& alloc) {
  try {
    auto total = src.remaining();
    if (total < prefix_size + trailer_size)
      return corrupt(what, "truncated encoding (" + std::to_string(total)
                               + " bytes)");
    std::byte prefix[prefix_size];
    if (!src.read(prefix, prefix_size))
      return corrupt(what, "read failed");
    if (std::memcmp(prefix, magic, sizeof(magic)) != 0)
      return corrupt(what, "bad magic (not an objstore encoding)");
    auto version = get_le(prefix + 4, 4);
    if (version == 0 || version > codec_version)
      return corrupt(what,
                     "unsupported encoding version " + std::to_string(version));
    auto header_size = get_le(prefix + 8, 8);
    if (header_size > max_codec_header_size
        || header_size > src.remaining() - trailer_size)
      return corrupt(what, "header size out of range");
    std::string header(header_size, '\0');
    if (!src.read(reinterpret_cast<std::byte*>(header.data()), header_size))
      return corrupt(what, "truncated header");
    // The header checksum is verified before Boost parses anything, so
    // random corruption never reaches the archive code.
    if (get_le(prefix + 16, 8) != XXH3_64bits(header.data(), header.size()))
      return corrupt(what, "header checksum mismatch");
    value_header hdr;
    hdr.input_size = header_size;
    {
      std::istringstream in{header};
      boost::archive::binary_iarchive ar{in, boost::archive::no_header};
      ar >> hdr;
    }
    // Checks block sizes against what is left before allocating anything.
    uint64_t payload = 0;
    for (auto& b : hdr.blocks) {
      if (b.size > src.remaining())
        return corrupt(what, "block larger than the encoding");
      payload += b.size;
    }
    if (payload + trailer_size != src.remaining())
      return corrupt(what, "payload size mismatch (truncated or padded)");
    checksum_stream sum;
    sum.update({prefix, prefix_size});
    sum.update(std::as_bytes(std::span{header}));
    std::vector<buffer_ptr> buffers;
    for (auto& b : hdr.blocks) {
      std::shared_ptr<buffer> buf;
      if (alloc) {
        auto made = alloc(buffers.size(), b.size);
        if (!made)
          return std::move(made.error());
        buf = std::move(*made);
      } else {
        buf = buffer::allocate(b.size);
      }
      // Hashed piece by piece right after each read, while the bytes are
      // still in cache: one pass over memory instead of two.
      constexpr uint64_t piece = uint64_t{1} << 20;
      for (uint64_t off = 0; off < b.size; off += piece) {
        auto n = static_cast<size_t>(std::min(piece, b.size - off));
        auto* dst = buf->mutable_data() + off;
        if (!src.read(dst, n))
          return corrupt(what, "truncated payload");
        sum.update({dst, n});
      }
      buffers.push_back(std::move(buf));
    }
    std::byte trailer[trailer_size];
    if (!src.read(trailer, trailer_size))
      return corrupt(what, "truncated checksum");
    if (get_le(trailer, trailer_size) != sum.digest())
      return corrupt(what, "checksum mismatch");
    auto make_tensor = [&](size_t i) -> caf::expected<tensor> {
      auto& b = hdr.blocks[i];
      if (b.type >= dtype_count)
        return corrupt(what, "unknown dtype " + std::to_string(b.type));
      auto t = tensor::make(static_cast<dtype>(b.type), b.shape, buffers[i]);
      if (!t)
        return corrupt(what, describe(t.error()));
      return t;
    };
    switch (static_cast<value_kind>(hdr.kind)) {
      case value_kind::tensor: {
        if (hdr.blocks.size() != 1)
          return corrupt(what, "tensor needs exactly one block");
        auto t = make_tensor(0);
        if (!t)
          return t.error();
        return make_value(std::move(*t));
      }
      case value_kind::table: {
        std::vector<column> cols;
        for (size_t i = 0; i < hdr.blocks.size(); ++i) {
          auto t = make_tensor(i);
          if (!t)
            return t.error();
          cols.push_back({hdr.blocks[i].name, std::move(*t)});
        }
        auto tbl = table::make(std::move(cols));
        if (!tbl)
          return corrupt(what, describe(tbl.error()));
        return make_value(std::move(*tbl));
      }
      case value_kind::bytes:
        if (hdr.blocks.size() != 1)
          return corrupt(what, "bytes need exactly one block");
        return make_value(blob{buffers[0]});
    }
    return corrupt(what, "unknown value kind " + std::to_string(hdr.kind));
  } catch (const std::bad_alloc&) {
    return make_error(errc::resource_exhausted,
                      what + ": out of memory while decoding");
  } catch (const std::exception& ex) {
    return corrupt(what, std::string{"malformed header: "} + ex.what());
  }
}

caf::expected<value_ptr> decode(std::span<const std::byte> bytes,
                                const std::string& what) {
  span_source src{bytes};
  return decode(src, what);
}

uint64_t checksum_of(std::span<const std::byte> bytes) noexcept {
  return XXH3_64bits(bytes.data(), bytes.size());
}

} // namespace objstore
