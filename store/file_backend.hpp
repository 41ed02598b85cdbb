#pragma once

#include <filesystem>
#include <functional>
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
/// buffers. Thread-safe: no shared mutable state besides the file system.
class file_backend : public backend {
public:
  /// Prefix of temp files; a URI whose file name starts with it is refused.
  static constexpr std::string_view temp_prefix = ".objstore-tmp-";

  /// Creates missing roots; fails with `io_error` naming the root when a
  /// root cannot be created or resolved, `invalid_argument` for relative
  /// roots or none at all.
  static caf::expected<std::unique_ptr<file_backend>>
  make(file_backend_options options);

  objstore::scheme scheme() const noexcept override { return scheme::fs; }
  caf::error put(const uri& id, const value_ptr& x) override;

  /// `put` recording `owner` with the object.
  caf::error put_owned(const uri& id, const value_ptr& x,
                       const std::string& owner);

  /// The recorded owner of an existing object ("operator" when none is
  /// recorded; "" for objects in read-only roots). Errors: not_found, the
  /// resolve errors.
  caf::expected<std::string> owner(const uri& id) const;

  /// Whether `principal` may `what` the object `id`. Errors:
  /// permission_denied naming the URI and the rule, not_found (read or
  /// erase of a missing object), the resolve errors.
  caf::error authorize(const uri& id, const std::string& principal,
                       fs_access what) const;

  /// Whether `id` lies in a read-only shared root.
  bool read_only(const uri& id) const;
  caf::expected<value_ptr> get(const uri& id) override;
  caf::error erase(const uri& id) override;
  caf::expected<bool> exists(const uri& id) override;
  caf::expected<std::vector<object_info>> list() override;
  backend_stats stats() override;

  /// The canonical roots.
  const std::vector<std::filesystem::path>& roots() const noexcept {
    return roots_;
  }

  /// Maps `id` to the canonical path it names, enforcing confinement.
  caf::expected<std::filesystem::path> resolve(const uri& id) const;

private:
  explicit file_backend(file_backend_options options);

  file_backend_options options_;
  std::vector<std::filesystem::path> roots_;
  /// Canonical read-only roots (also in `roots_`).
  std::vector<std::filesystem::path> read_only_roots_;
};

} // namespace objstore
