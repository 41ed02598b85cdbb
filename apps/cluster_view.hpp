#pragma once

// What the operator CLI shows of a cluster: `objstore top` (a live table
// of every worker) and the filters and order of `objstore objects`.
// Pure functions of the counters and listings, testable without a
// cluster.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "messages/protocol.hpp"

namespace objstore::apps {

/// One worker's row in `top`: its counters, or why it did not answer.
struct top_row {
  uint32_t rank = 0;
  std::optional<worker_stats> stats;
  std::string error;
};

/// One frame of `top`: a header line with the time `now` (HH:MM:SS) and
/// cluster totals, then one line per worker: objects and bytes (mem, fs,
/// spilled), tasks running and queued, transfers in and out, sessions.
std::string render_top(const std::vector<top_row>& rows,
                       const std::string& now);

/// `objstore objects` filters and order, parsed from `key=value` words:
/// rank=R, session=S (a holder's name contains S), state=held|pinned|
/// spilled|revealed, min-size=BYTES, sort=size|age|uri.
struct object_filter {
  std::optional<uint32_t> rank;
  std::string session;
  std::string state;
  uint64_t min_size = 0;
  std::string sort = "uri";

  /// Whether `x` passes the filters (not the rank: the caller asks only
  /// the selected ranks).
  bool matches(const object_record& x) const;

  /// Sorts `xs` by the chosen key: size and age descending (largest and
  /// oldest first), uri ascending.
  void order(std::vector<object_record>& xs) const;
};

/// Parses the words after `objects`; a bare number is the rank (as
/// before). Errors: invalid_argument naming the word.
caf::expected<object_filter>
parse_object_filter(const std::vector<std::string>& words);

} // namespace objstore::apps
