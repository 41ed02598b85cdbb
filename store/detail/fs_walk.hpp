#pragma once

// The walk over the fs:// roots behind file_backend's startup scan and
// list(): it never follows a symlink, never opens anything but directories
// and never throws, so no entry of a root can stop or hang it.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include <caf/error.hpp>

namespace objstore::detail {

/// Whether `p` is `root` or lies below it (both canonical).
bool is_under(const std::filesystem::path& p,
              const std::filesystem::path& root);

/// Names the file type in `mode` for messages: "a FIFO", "a directory", ...
std::string_view file_type_name(mode_t mode);

/// One entry `walk_root` reports.
struct walk_entry {
  enum kind_t {
    /// A regular file outside the temp namespace: an object of `size` bytes.
    object,
    /// A temp file of an interrupted put.
    temp_file,
    /// Something the walk skipped or could not read, or an object with a
    /// problem (reported twice then: as `object` and as `warning`).
    warning,
  };

  kind_t kind;
  const std::filesystem::path& path;
  /// Bytes of an `object`.
  uint64_t size = 0;
  /// Why a `warning` was reported.
  std::string reason;
};

using walk_visitor = std::function<void(const walk_entry&)>;

/// Walks the tree under the canonical directory `root` and reports its
/// entries to `visit`.
///
/// Directories are entered by their real path only: symlinks are never
/// followed, so a link to `.` or a cycle `a -> b -> a` cannot loop; a
/// directory met twice (a bind mount of an ancestor) is entered once.
/// Directories equal to another entry of `all_roots` are left to the walk of
/// that root, so nested roots count each object once. Warnings: symlink
/// loops, dangling symlinks and symlinks out of `all_roots` (symlinks to
/// something inside the roots are aliases and pass silently), FIFOs,
/// sockets and devices, entries that cannot be stat'ed, directories that
/// cannot be read, and objects this process cannot read.
///
/// Returns an error naming `root` only when `root` itself cannot be opened;
/// every problem below it is a warning.
caf::error walk_root(const std::filesystem::path& root,
                     const std::vector<std::filesystem::path>& all_roots,
                     std::string_view temp_prefix, const walk_visitor& visit);

} // namespace objstore::detail
