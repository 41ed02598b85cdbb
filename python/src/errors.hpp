#pragma once

#include <exception>
#include <string>
#include <utility>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <pybind11/pybind11.h>

#include "store/error.hpp"

namespace objstore::python {

/// An objstore error on its way to Python: thrown by the bindings, turned
/// by the translator (`register_errors`) into the exception class of its
/// code from `objstore.errors` (`not_found` -> `NotFound`), which carries
/// the code and the message.
class error_exception : public std::exception {
public:
  error_exception(std::string code, std::string message)
      : code_(std::move(code)), message_(std::move(message)) {
    // nop
  }

  const char* what() const noexcept override { return message_.c_str(); }
  const std::string& code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

private:
  std::string code_;
  std::string message_;
};

/// Throws `err` as an `error_exception` (code "error" for errors of
/// another category than objstore's, with CAF's rendering as message).
[[noreturn]] void raise(const caf::error& err);

/// Throws an objstore error `code` with message `what`.
[[noreturn]] void raise(errc code, std::string what);

/// The value of `x`, or throws its error.
template<class T>
T unwrap(caf::expected<T>&& x) {
  if (!x)
    raise(x.error());
  return std::move(*x);
}

/// Installs the translator of `error_exception`.
void register_errors(pybind11::module_& m);

} // namespace objstore::python
