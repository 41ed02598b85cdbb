#pragma once

// A typed actor's answer in tests: the value or the error, with the error's
// objstore code and message for readable assertions.

#include <optional>
#include <string>

#include <caf/error.hpp>

#include "store/error.hpp"

namespace objstore::test {

/// Either a reply or an error; `ok()` for readable assertions.
template<class T>
struct reply {
  std::optional<T> value;
  caf::error error;

  bool ok() const { return value.has_value(); }
  errc code() const { return code_of(error); }
  std::string message() const { return message_of(error); }
};

} // namespace objstore::test
