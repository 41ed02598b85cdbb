#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "store/uri.hpp"
#include "store/value.hpp"

namespace objstore {

/// One spilled object on disk.
struct spill_file {
  std::filesystem::path path;
  /// Encoded bytes in the file.
  uint64_t bytes = 0;
};

/// The directory where one node writes its spilled `mem://` objects.
///
/// Layout: `<root>/<key>/` where `key` identifies the node stably across
/// restarts (objstore uses `rank-<rank>`, plus `-port-<port>` when the
/// worker's port is configured). The node holds an exclusive `flock` on
/// `<root>/<key>/.lock` for its lifetime, so:
/// - at `open`, files in its own directory are left by a crashed earlier
///   process of the same node (a live one would hold the lock) and are
///   removed;
/// - two live nodes with the same key sharing `root` never clean each
///   other's files: the second takes `<key>.1` (then `.2`, ...) instead,
///   and removes such numbered siblings only when no live process locks
///   them.
/// Nodes with other keys are never touched. The destructor removes the
/// node's files and its directory.
///
/// Each file holds one value in the codec's encoding (checksummed), written
/// to a temp name and renamed, so a reader sees a whole file or none.
///
/// Thread-safety: `write`, `read` and `remove` may be called concurrently.
class spill_directory {
public:
  /// Opens (creates) the node's directory below `root`, locks it, removes
  /// what a crashed earlier process left in it, and checks that it is
  /// writable. Errors: `invalid_argument` (bad key, relative root),
  /// `io_error` naming the path (cannot create, lock or write).
  static caf::expected<std::unique_ptr<spill_directory>>
  open(const std::filesystem::path& root, const std::string& key);

  ~spill_directory();

  spill_directory(const spill_directory&) = delete;
  spill_directory& operator=(const spill_directory&) = delete;

  /// Writes `x` as the spilled copy of `id`. Errors: `io_error` or
  /// `resource_exhausted` (disk full) naming `id` and the path.
  caf::expected<spill_file> write(const uri& id, const value& x);

  /// Reads back the value of `id` from `f`. Errors naming `id`:
  /// `object_lost` (the file is gone), `corrupt_data` (it fails to decode
  /// or its checksum does not match), `io_error`.
  caf::expected<value_ptr> read(const uri& id, const spill_file& f);

  /// Removes a spill file (absent is fine).
  void remove(const spill_file& f) noexcept;

  /// The node's directory (`<root>/<key>` or a numbered sibling).
  const std::filesystem::path& path() const noexcept { return dir_; }

  /// Spill files (and temp files) below a spill root, every node's
  /// directory included; lock files do not count. For operators and
  /// leak checks.
  static size_t count_files(const std::filesystem::path& root);

  /// Files and directories `open` removed (left by a crashed process).
  uint64_t leftovers_removed() const noexcept { return leftovers_; }

private:
  spill_directory(std::filesystem::path dir, int lock_fd, uint64_t leftovers);

  std::filesystem::path dir_;
  int lock_fd_;
  uint64_t leftovers_;
  std::atomic<uint64_t> next_file_{0};
};

} // namespace objstore
