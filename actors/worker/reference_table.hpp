#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "store/uri.hpp"

namespace objstore {

/// Identifies a driver session on one worker (assigned by the worker).
using session_id = uint64_t;

/// Holder and pin counts of the `mem://` objects of one worker
/// (DESIGN.md §6). An object may be erased when it has neither holders
/// (sessions holding a handle) nor pins (running tasks, in-flight fetches
/// and transfers). Counts never go negative: releasing what a session does
/// not hold is counted as an unknown release and otherwise ignored.
///
/// Not thread-safe: the worker actor is its only user.
class reference_table {
public:
  using clock = std::chrono::steady_clock;

  struct entry {
    std::map<session_id, uint32_t> holders;
    uint32_t pins = 0;
    uint64_t size_bytes = 0;
    /// Output of a `reveal` op: fetchable under `revealed-only`.
    bool revealed = false;
    /// Session that put the object from the driver (0: produced by a task).
    session_id put_by = 0;
    clock::time_point created;
  };

  /// Registers a new object held once by `owner` (no holder if 0).
  void add(const uri& id, session_id owner, uint64_t size_bytes, bool revealed,
           session_id put_by, clock::time_point now);

  /// Adds one hold of `s` on an existing object; false if unknown.
  bool hold(const uri& id, session_id s);

  /// Whether `s` holds `id`.
  bool holds(const uri& id, session_id s) const;

  /// Drops one hold of `s`. Returns true when the object is now free
  /// (no holders, no pins): the caller erases it from the store.
  bool release(const uri& id, session_id s);

  /// Drops all holds of `s` on `id`; returns true when now free.
  bool release_all(const uri& id, session_id s);

  /// Adds a pin; false if the object is unknown.
  bool pin(const uri& id);

  /// Removes a pin; returns true when the object is now free.
  bool unpin(const uri& id);

  /// Drops every hold of `s`; returns the objects that became free and
  /// the number of holds dropped.
  std::pair<std::vector<uri>, uint64_t> drop_session(session_id s);

  /// Forgets an object (after the caller erased it).
  void forget(const uri& id);

  const entry* find(const uri& id) const;

  const std::unordered_map<uri, entry>& entries() const noexcept {
    return entries_;
  }

  /// Counts a release that names no valid URI.
  void count_unknown() noexcept { ++unknown_releases_; }

  uint64_t releases() const noexcept { return releases_; }
  uint64_t unknown_releases() const noexcept { return unknown_releases_; }
  uint64_t pinned_objects() const noexcept;

private:
  bool is_free(const entry& e) const noexcept {
    return e.holders.empty() && e.pins == 0;
  }

  std::unordered_map<uri, entry> entries_;
  uint64_t releases_ = 0;
  uint64_t unknown_releases_ = 0;
};

} // namespace objstore
