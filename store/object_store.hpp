#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store/backend.hpp"

namespace objstore {

class file_backend;

/// Options of one node's object store.
struct object_store_options {
  /// Prefix of generated `mem://` ids; empty draws a random node id.
  /// Characters are `[A-Za-z0-9._-]` (checked by `make`).
  std::string node_id;

  /// Upper bound for the payload bytes of all `mem://` objects; 0 = none.
  uint64_t memory_limit = 0;

  /// Largest accepted object in payload bytes; 0 = none.
  uint64_t max_object_size = 0;

  /// Roots of the `fs://` backend; none means `fs://` is unsupported.
  std::vector<std::filesystem::path> fs_roots;

  /// Read-only shared roots of `fs://` (datasets every session reads).
  std::vector<std::filesystem::path> fs_shared_roots;

  /// fsync `fs://` writes (see file_backend_options::sync).
  bool fs_sync = true;

  static object_store_options defaults() { return {}; }
};

/// Totals per scheme.
struct store_stats {
  std::map<objstore::scheme, backend_stats> per_scheme;

  backend_stats of(objstore::scheme x) const {
    auto i = per_scheme.find(x);
    return i == per_scheme.end() ? backend_stats{} : i->second;
  }
};

/// A node's object store: dispatches each URI to the backend of its scheme
/// and enforces the memory and object size limits.
///
/// Thread-safety: after construction, every member but `register_backend`
/// may be called concurrently (backends are thread-safe; the memory-limit
/// accounting is serialised internally). `register_backend` writes the
/// scheme map unlocked: call it before the store is shared. In objstore the
/// node's store actor owns the only instance.
class object_store {
public:
  /// Builds a store with a memory backend and, when `fs_roots` is not empty,
  /// a file backend. Errors: `invalid_argument` for a node id that does not
  /// make valid `mem://` ids, and those of file_backend::make.
  static caf::expected<std::unique_ptr<object_store>>
  make(object_store_options options);

  /// Builds a store with a memory backend only.
  explicit object_store(object_store_options options = {});

  /// Installs (or replaces) the backend of `b->scheme()`. Not thread-safe:
  /// only while no other thread uses the store (setup).
  void register_backend(std::shared_ptr<backend> b);

  /// Stores `x` under `id`, or under a fresh `mem://` id when `id` is empty,
  /// and returns the URI. Errors: `unsupported_scheme`, `resource_exhausted`
  /// (memory or size limit), the backend's errors.
  caf::expected<uri> put(value_ptr x, std::optional<uri> id = std::nullopt);

  /// `put` of an fs:// object recording `owner` (file_backend::put_owned);
  /// other schemes ignore the owner.
  caf::expected<uri> put_owned(value_ptr x, const uri& id,
                               const std::string& owner);

  /// Whether `principal` may `what` the object `id`: the fs:// access rule
  /// (file_backend::authorize); other schemes are checked by the worker's
  /// holders and always pass here.
  caf::error authorize(const uri& id, const std::string& principal,
                       fs_access what);

  /// Returns the object under `id`. Errors: `not_found`, backend errors.
  caf::expected<value_ptr> get(const uri& id);

  /// Removes the object under `id`. Errors: `not_found`, backend errors.
  caf::error erase(const uri& id);

  /// Returns whether `id` exists.
  caf::expected<bool> exists(const uri& id);

  /// Lists the objects of one scheme, or of all schemes.
  caf::expected<std::vector<object_info>>
  list(std::optional<objstore::scheme> only = std::nullopt);

  /// Object and byte totals per scheme.
  store_stats stats();

  /// mem:// bytes that may still be stored under `memory_limit`
  /// (UINT64_MAX without a limit).
  uint64_t memory_left();

  /// Generates a fresh `mem://` URI (unique across nodes).
  uri next_mem_uri() { return ids_.next(); }

  const object_store_options& options() const noexcept { return options_; }

  /// The `fs://` backend, or null when the store serves no `fs://` or
  /// another class serves it; e.g. for the `scan_warnings` of its startup
  /// scan after `make`.
  file_backend* files() const noexcept;

  /// Returns the backend of `x`, or an `unsupported_scheme` error naming
  /// `id`.
  caf::expected<backend*> backend_for(objstore::scheme x, const uri& id);

private:
  object_store_options options_;
  mem_id_generator ids_;
  std::map<objstore::scheme, std::shared_ptr<backend>> backends_;
  std::mutex mem_mtx_; // serialises limit check + put for mem://
};

} // namespace objstore
