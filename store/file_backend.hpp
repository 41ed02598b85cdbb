#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "store/backend.hpp"

namespace objstore {

/// Options of the `fs://` backend.
struct file_backend_options {
  /// Directories that may hold objects; created when missing. A URI must
  /// resolve (after symlinks) inside one of them.
  std::vector<std::filesystem::path> roots;

  /// fsync file and directory on every put (off only for throwaway tests).
  bool sync = true;

  /// Roots every session may read and no one may write through objstore:
  /// shared datasets (objstore.shared-roots). Also served as fs://.
  std::vector<std::filesystem::path> read_only_roots;

  /// Remove leftover temp files of interrupted puts at start.
  bool clean_temp_files = true;

  /// Test hook: runs after the temp file is complete, before the rename
  /// that publishes it (fault injection for crash tests).
  std::function<void()> before_publish;

  static file_backend_options defaults() { return {}; }
};

/// Serves `fs://<absolute path>` from files under configured roots.
///
/// Ownership (DESIGN.md §12): a put records its writer (the session's
/// principal) in the extended attribute `user.objstore.owner` of the temp
/// file before the rename, so the owner is published atomically with the
/// object and survives restarts. `authorize` applies the access rule: the
/// owner reads, overwrites and erases; the principal "operator" erases and
/// overwrites (storage management) but does not read; others do nothing.
/// Objects in read-only shared roots are read by everyone and written by
/// no one; files without an owner attribute (placed by hand) are owned by
/// "operator".
///
/// Writes are atomic: the encoding goes to a temp file in the target's
/// directory (name prefix `.objstore-tmp-`), is fsynced, then renamed over
/// the target and the directory fsynced, so a crash leaves the old object or
/// the new one, never a torn one. Paths with `..` or `.` components, paths
/// outside every root and symlinks leading out of the roots are
/// `permission_denied`. Reads go straight from the file into the value's
/// buffers.
///
/// Only regular files are objects. A URI naming a directory, FIFO, socket or
/// device is `invalid_uri` ("is a FIFO, not a regular file") from `get`,
/// `put` and `erase` (and `false` from `exists`), returned at once: object
/// files are checked through an `O_PATH` descriptor and opened with
/// `O_NONBLOCK`, so nothing in a root can block a call.
///
/// `make` scans the roots once (see `scan_warnings`) and `stats` reports
/// counters kept from then on, without walking the roots. The counters
/// follow every put, overwrite and erase of this backend; files that other
/// processes add, change or remove under the roots afterwards show up in
/// `list` at once but in `stats` only after a restart.
///
/// Thread-safe: every member may be called concurrently. A mutex guards the
/// counters together with the check-and-rename of a put and the
/// check-and-unlink of an erase (not the write of the data), so the
/// counters equal a fresh scan after any interleaving of this backend's
/// calls.
class file_backend : public owned_backend {
public:
  /// Prefix of temp files; a URI whose file name starts with it is refused.
  static constexpr std::string_view temp_prefix = ".objstore-tmp-";

  /// How many `scan_warnings` messages are kept; the count goes on.
  static constexpr size_t max_scan_warnings = 100;

  /// Creates missing roots and scans them: counts the objects, removes
  /// temp files of interrupted puts (`clean_temp_files`) and records what
  /// it skipped as `scan_warnings`; nothing found below a root fails it.
  /// Errors: `invalid_argument` naming the root when a root is relative,
  /// not a directory, cannot be created or resolved, is not readable (or,
  /// for writable roots, not writable) by this process, or does not keep
  /// extended attributes; also when there is no root at all.
  static caf::expected<std::unique_ptr<file_backend>>
  make(file_backend_options options);

  /// What the startup scan skipped or found wrong, one "'<path>': <reason>"
  /// each, in the order met; the first `max_scan_warnings` of them. Reported:
  /// symlink loops, dangling symlinks and symlinks out of the roots (never
  /// followed), FIFOs, sockets and devices, entries that cannot be stat'ed,
  /// unreadable directories (skipped with their contents) and unreadable
  /// objects (counted). Fixed after `make`.
  const std::vector<std::string>& scan_warnings() const noexcept {
    return scan_warnings_;
  }

  /// How many warnings the startup scan had, including those beyond
  /// `max_scan_warnings`.
  uint64_t scan_warning_count() const noexcept { return scan_warning_count_; }

  objstore::scheme scheme() const noexcept override { return scheme::fs; }
  caf::error put(const uri& id, const value_ptr& x) override;

  /// `put` recording `owner` with the object.
  caf::error put_owned(const uri& id, const value_ptr& x,
                       const std::string& owner) override;

  /// The recorded owner of an existing object ("operator" when none is
  /// recorded; "" for objects in read-only roots). Errors: not_found, the
  /// resolve errors.
  caf::expected<std::string> owner(const uri& id) const override;

  /// Whether `id` lies in a read-only shared root.
  bool read_only(const uri& id) const override;
  caf::expected<value_ptr> get(const uri& id) override;
  caf::error erase(const uri& id) override;
  caf::expected<bool> exists(const uri& id) override;

  /// Walks the roots like the startup scan (symlinks not followed, nested
  /// or repeated roots once): what the scan skips is not listed. Fails
  /// (`io_error`) only when a root itself cannot be read.
  caf::expected<std::vector<object_info>> list() override;

  /// The counters: O(1), no walk (see the class comment).
  backend_stats stats() override;

  /// The canonical roots.
  const std::vector<std::filesystem::path>& roots() const noexcept {
    return roots_;
  }

  /// Maps `id` to the canonical path it names, enforcing confinement.
  caf::expected<std::filesystem::path> resolve(const uri& id) const;

private:
  explicit file_backend(file_backend_options options);

  /// Scans the roots once: counters, temp file cleanup, warnings.
  caf::error scan(size_t writable_roots);

  file_backend_options options_;
  /// Canonical roots, each once: the writable ones, then the read-only ones.
  std::vector<std::filesystem::path> roots_;
  /// Canonical read-only roots (also in `roots_`).
  std::vector<std::filesystem::path> read_only_roots_;
  std::vector<std::string> scan_warnings_;
  uint64_t scan_warning_count_ = 0;
  /// Guards `objects_` and `bytes_` and makes each put's and erase's
  /// look at the old file plus rename/unlink one step.
  std::mutex counters_mtx_;
  uint64_t objects_ = 0;
  uint64_t bytes_ = 0;
};

} // namespace objstore
