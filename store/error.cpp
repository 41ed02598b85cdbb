#include "store/error.hpp"

#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace objstore {

std::string_view to_string(errc code) {
  switch (code) {
    case errc::none: return "none";
    case errc::invalid_uri: return "invalid_uri";
    case errc::unsupported_scheme: return "unsupported_scheme";
    case errc::not_found: return "not_found";
    case errc::permission_denied: return "permission_denied";
    case errc::corrupt_data: return "corrupt_data";
    case errc::resource_exhausted: return "resource_exhausted";
    case errc::op_failed: return "op_failed";
    case errc::object_lost: return "object_lost";
    case errc::timeout: return "timeout";
    case errc::unauthenticated: return "unauthenticated";
    case errc::invalid_argument: return "invalid_argument";
    case errc::io_error: return "io_error";
    case errc::cancelled: return "cancelled";
    case errc::unsupported: return "unsupported";
  }
  return "unknown";
}

caf::error make_error(errc code, std::string what) {
  return caf::error{static_cast<uint8_t>(code), error_category,
                    caf::make_message(std::move(what))};
}

caf::error make_error(errc code) {
  return caf::error{static_cast<uint8_t>(code), error_category};
}

errc code_of(const caf::error& err) {
  if (!err || err.category() != error_category)
    return errc::none;
  return static_cast<errc>(err.code());
}

std::string message_of(const caf::error& err) {
  if (err && err.category() == error_category
      && err.context().match_elements<std::string>())
    return err.context().get_as<std::string>(0);
  return {};
}

std::string render_error(uint8_t code, caf::atom_value category,
                         const caf::message& context) {
  std::string out = "objstore.";
  if (category != error_category)
    out = caf::to_string(category) + ".";
  out += to_string(static_cast<errc>(code));
  if (context.match_elements<std::string>()) {
    out += ": ";
    out += context.get_as<std::string>(0);
  }
  return out;
}

std::string describe(const caf::error& err) {
  if (!err)
    return "none";
  if (err.category() == error_category)
    return render_error(err.code(), err.category(), err.context());
  if (err.category() == caf::atom("system"))
    return "system." + caf::to_string(static_cast<caf::sec>(err.code()));
  return caf::to_string(err);
}

} // namespace objstore
