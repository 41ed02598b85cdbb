#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store/backend.hpp"
#include "store/oss_backend.hpp"
#include "store/spiller.hpp"

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

  /// The `oss://` backend (S3-compatible object storage); none means
  /// `oss://` is unsupported.
  std::optional<oss_backend_options> oss;

  /// Where unpinned `mem://` objects spill when memory passes
  /// `spill_threshold` × `memory_limit` (objstore.spill-dir). Spilling is on
  /// when this, `memory_limit` and `spill_threshold` are set; the node's
  /// files go to `<spill_dir>/<spill_key>/` (see spill_directory).
  std::filesystem::path spill_dir;

  /// Names the node's directory below `spill_dir`; stable across restarts
  /// so a restarted node removes what its crashed predecessor left.
  /// Empty: "node".
  std::string spill_key;

  /// Fraction of `memory_limit` above which objects spill in the
  /// background (objstore.spill-threshold); 0 = never spill.
  double spill_threshold = 0.8;

  static object_store_options defaults() { return {}; }
};

/// Totals per scheme. With spilling, `mem` counts every object (spilled
/// ones too) and the bytes in memory; `spill` has the rest.
struct store_stats {
  std::map<objstore::scheme, backend_stats> per_scheme;
  spill_stats spill;

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
  /// a file backend, and with `oss` an oss:// backend. Errors:
  /// `invalid_argument` for a node id that does not make valid `mem://`
  /// ids, and those of file_backend::make and oss_backend::make.
  static caf::expected<std::unique_ptr<object_store>>
  make(object_store_options options);

  /// Builds a store with a memory backend only.
  explicit object_store(object_store_options options = {});

  /// Installs (or replaces) the backend of `b->scheme()`. Not thread-safe:
  /// only while no other thread uses the store (setup).
  void register_backend(std::shared_ptr<backend> b);

  /// Stores `x` under `id`, or under a fresh `mem://` id when `id` is empty,
  /// and returns the URI. With spilling, a mem:// put that does not fit
  /// spills unpinned objects first when `io` allows (blocking on the disk).
  /// Errors: `unsupported_scheme`, `resource_exhausted` (memory or size
  /// limit; with `disk_io::never` also when a spill would be needed first),
  /// the backend's errors.
  caf::expected<uri> put(value_ptr x, std::optional<uri> id = std::nullopt,
                         disk_io io = disk_io::allowed);

  /// `put` of a persistent (fs://, oss://) object recording `owner`
  /// (owned_backend::put_owned); mem:// ignores the owner.
  caf::expected<uri> put_owned(value_ptr x, const uri& id,
                               const std::string& owner);

  /// Whether `principal` may `what` the object `id`: the access rule of
  /// persistent objects (owned_backend::authorize); mem:// objects are
  /// checked by the worker's holders and always pass here.
  caf::error authorize(const uri& id, const std::string& principal,
                       fs_access what);

  /// Returns the object under `id`, restoring a spilled mem:// object
  /// (blocking on the disk). Errors: `not_found`, backend errors, those of
  /// spiller::get.
  caf::expected<value_ptr> get(const uri& id);

  /// The mem:// object under `id` if it is in memory, or null when it is
  /// spilled (restore it with `get` off the actor thread). Never blocks on
  /// the disk. Errors: `not_found`, `invalid_uri` for other schemes.
  caf::expected<value_ptr> get_resident(const uri& id);

  /// Whether the mem:// object `id` is spilled (only on disk now).
  bool is_spilled(const uri& id);

  /// Whether a mem:// put of `size` bytes would have to spill first (call
  /// `put` with `disk_io::allowed` off the actor thread then).
  bool needs_spill_for(uint64_t size);

  /// Whether mem:// objects spill (spill_dir, memory_limit and threshold
  /// set and the directory opened).
  bool spilling() const noexcept { return spill_ != nullptr; }

  /// See spiller::on_background_work (setup only).
  void on_background_work(std::function<void()> hook);

  /// See spiller::run_background_work; nop without spilling.
  void run_background_work();

  /// The spill directory in use (empty without spilling).
  std::filesystem::path spill_path() const;

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
  /// (UINT64_MAX without a limit); with spilling, what unpinned objects
  /// would free by spilling counts as available.
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
  /// `resource_exhausted` naming `id` when `x` exceeds max_object_size.
  caf::error check_size(const uri& id, const value& x) const;

  object_store_options options_;
  mem_id_generator ids_;
  std::map<objstore::scheme, std::shared_ptr<backend>> backends_;
  std::mutex mem_mtx_; // serialises limit check + put for mem://
  /// Set when spilling: every mem:// call goes through it.
  std::unique_ptr<spiller> spill_;
};

} // namespace objstore
