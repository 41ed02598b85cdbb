#pragma once

// The process's log (spdlog): leveled, one structured line per event,
//   2026-01-02T10:11:12.345Z info  worker rank=0 session=3 req=17 message
// on stderr. spdlog stays out of this header (its defines must not reach
// the shared precompiled header).

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

namespace objstore::log {

enum class level { trace, debug, info, warn, error, off };

/// Parses trace, debug, info, warn, error or off. Errors: invalid_argument.
caf::expected<level> parse_level(std::string_view text);

/// Names this process in every line (e.g. "worker rank=0") and sets the
/// least severe level shown. Thread-safe; may be called again.
void init(std::string node, level least);

/// Writes one line when `x` is at least the configured level. `session`
/// and `request` 0: not tied to one (printed as `-`). Thread-safe.
void write(level x, std::string_view message, uint64_t session = 0,
           uint64_t request = 0);

inline void info(std::string_view message, uint64_t session = 0) {
  write(level::info, message, session);
}

inline void warn(std::string_view message, uint64_t session = 0) {
  write(level::warn, message, session);
}

inline void error(std::string_view message, uint64_t session = 0) {
  write(level::error, message, session);
}

/// Makes `self` log a message it has no handler for as one warn line
/// naming the sender and the message's types (instead of CAF's
/// `*** unexpected message` print) and answer it `unexpected_message`.
void log_unexpected_messages(caf::scheduled_actor* self);

} // namespace objstore::log
