#include "messages/wire_value.hpp"

namespace objstore::detail {

bool deserializer_source::read(std::byte* dst, size_t n) {
  if (n > remaining_)
    return false;
  if (n == 0)
    return true;
  if (auto err = f_.apply_raw(n, dst)) {
    err_ = std::move(err);
    return false;
  }
  remaining_ -= n;
  return true;
}

caf::error save_wire_value(caf::serializer& f, const wire_value& x) {
  if (!x.ptr) {
    uint64_t none = 0;
    return f(none);
  }
  auto pieces = encode_pieces(*x.ptr);
  uint64_t size = pieces.size();
  if (auto err = f(size))
    return err;
  if (auto err = f.apply_raw(pieces.head.size(), pieces.head.data()))
    return err;
  for (auto& block : pieces.blocks)
    if (!block.empty())
      if (auto err
          = f.apply_raw(block.size(), const_cast<std::byte*>(block.data())))
        return err;
  unsigned char trailer[8];
  for (int i = 0; i < 8; ++i)
    trailer[i]
        = static_cast<unsigned char>((pieces.checksum >> (8 * i)) & 0xFF);
  return f.apply_raw(sizeof(trailer), trailer);
}

caf::error load_wire_value(caf::deserializer& f, wire_value& x,
                           size_t available) {
  uint64_t size = 0;
  if (auto err = f(size))
    return err;
  if (size == 0) {
    x.ptr = nullptr;
    return {};
  }
  if (size > default_max_wire_value || size > available)
    return make_error(errc::corrupt_data,
                      "wire value claims " + std::to_string(size)
                          + " bytes, more than the message holds");
  deserializer_source src{f, static_cast<size_t>(size)};
  auto result = decode(src, "wire value");
  if (!result) {
    if (src.last_error())
      return std::move(src.last_error());
    return std::move(result.error());
  }
  x.ptr = std::move(*result);
  return {};
}

} // namespace objstore::detail
