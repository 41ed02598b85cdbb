#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include <caf/binary_deserializer.hpp>
#include <caf/deserializer.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/serializer.hpp>

#include "store/codec.hpp"
#include "store/error.hpp"
#include "store/value.hpp"

namespace objstore {

/// Largest value accepted from the wire by default (payload + header).
constexpr uint64_t default_max_wire_value = uint64_t{16} << 30;

/// Largest value (payload bytes) that travels inside an actor message:
/// CAF 0.17's BASP header carries a 32-bit payload length, so a larger
/// message would corrupt the connection. Larger values stream over the
/// data plane (puts, fetches, transfers) or are refused before sending.
constexpr uint64_t max_message_value
    = (uint64_t{4} << 30) - (uint64_t{1} << 20);

/// A value travelling in a CAF message (driver puts, fetch replies, later
/// transfer). Within one process the message shares the `value_ptr` (no
/// copy). Across processes the value is written as the codec's encoding:
/// a u64 length, then head, raw payload blocks and checksum via the
/// serializer's raw-bytes path (never element by element); the receiver
/// decodes straight into fresh buffers and verifies the checksum, so a
/// corrupt or truncated value fails deserialization instead of arriving.
///
/// A null value travels as length 0 (e.g. in a fetch reply that carries a
/// grant instead); handlers that need a value refuse it.
struct wire_value {
  value_ptr ptr;

  friend bool operator==(const wire_value& x, const wire_value& y) {
    if (!x.ptr || !y.ptr)
      return x.ptr == y.ptr;
    return *x.ptr == *y.ptr;
  }
};

namespace detail {

/// Reads encoded bytes through a CAF deserializer.
class deserializer_source : public byte_source {
public:
  deserializer_source(caf::deserializer& f, size_t size)
      : f_(f), remaining_(size) {}
  size_t remaining() const override { return remaining_; }
  bool read(std::byte* dst, size_t n) override;
  caf::error& last_error() { return err_; }

private:
  caf::deserializer& f_;
  size_t remaining_;
  caf::error err_;
};

caf::error save_wire_value(caf::serializer& f, const wire_value& x);
caf::error load_wire_value(caf::deserializer& f, wire_value& x,
                           size_t available);

} // namespace detail

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, wire_value& x) {
  if constexpr (std::is_base_of_v<caf::serializer, Inspector>) {
    return detail::save_wire_value(f, x);
  } else if constexpr (std::is_base_of_v<caf::deserializer, Inspector>) {
    size_t available = SIZE_MAX;
    if constexpr (std::is_same_v<Inspector, caf::binary_deserializer>)
      available = f.remaining();
    return detail::load_wire_value(f, x, available);
  } else {
    std::string summary = x.ptr ? x.ptr->summary() : "null";
    return f(caf::meta::type_name("wire_value"), summary);
  }
}

} // namespace objstore
