#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace objstore {

/// The one error vocabulary of objstore, used by every layer. Values travel
/// inside `caf::error` with category `error_category` and a context message
/// holding one string that names what was wrong (the URI, the op, the rank).
enum class errc : uint8_t {
  /// Not an error.
  none = 0,
  /// A URI did not parse or is not valid for its scheme.
  invalid_uri,
  /// The URI names a scheme no backend serves.
  unsupported_scheme,
  /// The object does not exist.
  not_found,
  /// Access refused: fetch policy, path outside the fs roots, foreign session.
  permission_denied,
  /// Stored or received bytes failed to decode or verify.
  corrupt_data,
  /// A configured limit (memory, object size, message size) was exceeded.
  resource_exhausted,
  /// An op failed: unknown opcode, wrong dtype/shape/arity, kernel error.
  op_failed,
  /// The node holding the object died or the object was dropped.
  object_lost,
  /// A remote call did not complete in time.
  timeout,
  /// A peer failed authentication.
  unauthenticated,
  /// An argument is invalid (bad value shape, mismatched column lengths).
  invalid_argument,
  /// The operating system reported an I/O failure.
  io_error,
  /// The operation was cancelled.
  cancelled,
  /// The feature exists in the protocol but is not available.
  unsupported,
};

/// The category atom under which objstore errors travel in `caf::error`.
constexpr caf::atom_value error_category = caf::atom("objstore");

/// Returns the enumerator's name, e.g. "not_found".
std::string_view to_string(errc code);

/// Builds an objstore error whose context names what went wrong.
caf::error make_error(errc code, std::string what);

/// Enables `caf::error err = errc::timeout;`.
caf::error make_error(errc code);

/// Returns the objstore code in `err`, or `errc::none` when `err` is empty or
/// belongs to another category.
errc code_of(const caf::error& err);

/// Returns the context string of an objstore error, or an empty string.
std::string message_of(const caf::error& err);

/// Renders any error as "objstore.not_found: mem://x" (or CAF's rendering for
/// other categories) without needing an actor system.
std::string describe(const caf::error& err);

/// Renderer to register with `actor_system_config::add_error_category`.
std::string render_error(uint8_t code, caf::atom_value category,
                         const caf::message& context);

} // namespace objstore
