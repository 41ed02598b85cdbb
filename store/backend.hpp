#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "store/uri.hpp"
#include "store/value.hpp"

namespace objstore {

/// What a principal wants to do with a persistent object (the access rule
/// of owned_backend::authorize).
enum class fs_access { read, write, erase };

/// What a backend reports about one stored object.
struct object_info {
  uri id;
  /// Payload bytes for memory objects, encoded bytes on disk for files.
  uint64_t size_bytes = 0;
  /// A mem:// object spilled to disk (only object_store::list sets it).
  bool spilled = false;
};

/// Object and byte totals of one backend.
struct backend_stats {
  uint64_t objects = 0;
  uint64_t bytes = 0;

  bool operator==(const backend_stats&) const = default;
};

/// Storage for the objects of one URI scheme.
///
/// Contract, shared by every implementation and checked by the conformance
/// suite in tests/store/backend_conformance_test.cpp:
/// - `put` stores `x` under `id`, replacing an existing object atomically:
///   a reader sees either the old or the new value, never a mix.
/// - An absent object is `not_found` from `get` and `erase`, and `false`
///   from `exists` (absence is not an error there). Every other failure is a
///   different code: `invalid_uri` (wrong scheme or malformed key),
///   `permission_denied` (outside the configured roots), `corrupt_data`
///   (stored bytes fail to decode), `io_error`, `resource_exhausted`.
/// - Errors name the URI. No member throws.
/// - Thread-safety: every member function may be called concurrently from
///   several threads.
class backend {
public:
  virtual ~backend();

  /// The scheme this backend serves.
  virtual objstore::scheme scheme() const noexcept = 0;

  /// Stores `x` under `id`, replacing any previous object.
  virtual caf::error put(const uri& id, const value_ptr& x) = 0;

  /// Returns the object stored under `id`.
  virtual caf::expected<value_ptr> get(const uri& id) = 0;

  /// Removes the object stored under `id`.
  virtual caf::error erase(const uri& id) = 0;

  /// Returns whether an object is stored under `id`.
  virtual caf::expected<bool> exists(const uri& id) = 0;

  /// Lists every stored object (for files: every object under the roots).
  virtual caf::expected<std::vector<object_info>> list() = 0;

  /// Returns object and byte totals.
  virtual backend_stats stats() = 0;
};

/// A backend of persistent objects that records who wrote each one (fs://
/// files, oss:// objects): sessions own what they write, across sessions
/// and restarts (DESIGN.md §12).
///
/// The access rule (`authorize`), the same for every such backend: the
/// owner reads, overwrites and erases; the principal "operator" overwrites
/// and erases (storage management) but does not read; others do nothing.
/// Objects in read-only shared places are read by everyone and written by
/// no one. Objects without a recorded owner (placed by other tools) are
/// owned by "operator".
class owned_backend : public backend {
public:
  /// `put` recording `owner` with the object, atomically with it.
  virtual caf::error put_owned(const uri& id, const value_ptr& x,
                               const std::string& owner)
      = 0;

  /// The recorded owner of an existing object ("operator" when none is
  /// recorded). Errors: not_found, the backend's errors for `id`.
  virtual caf::expected<std::string> owner(const uri& id) const = 0;

  /// Whether `id` lies in a read-only shared place.
  virtual bool read_only(const uri& id) const = 0;

  /// Whether `principal` may `what` the object `id` (the rule above).
  /// Errors: permission_denied naming the URI and the rule, not_found (read
  /// or erase of a missing object), the errors of `owner`.
  caf::error authorize(const uri& id, const std::string& principal,
                       fs_access what) const;
};

} // namespace objstore
