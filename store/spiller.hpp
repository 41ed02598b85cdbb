#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "store/backend.hpp"
#include "store/spill_directory.hpp"
#include "store/spill_stats.hpp"

namespace objstore {

/// Whether a call may block on disk IO (spilling to make room).
enum class disk_io { allowed, never };

/// Keeps a node's `mem://` objects under its memory limit by writing
/// unpinned ones to a spill directory and restoring them on use under the
/// same URI (as Ray's and Dask's object stores do).
///
/// Objects live in the memory backend while resident; the spiller indexes
/// every `mem://` object (resident or spilled) and keeps resident ones in
/// least-recently-used order, the order in which they spill.
///
/// Pinned: an object whose value anybody outside the store holds (a task's
/// input, a push or fetch in progress, a caller of `get`) never spills: the
/// spiller only writes values whose sole owner is the memory backend
/// (`use_count`), and drops the memory copy only if that is still so after
/// the write. Every `get` goes through the spiller's lock, so a value cannot
/// gain an owner unseen.
///
/// Admission: a put that does not fit under the limit spills unpinned
/// objects first (if allowed to block), and is `resource_exhausted` only
/// when what is pinned leaves no room.
///
/// Background work: above `threshold` × limit, or with spill files to
/// delete, the spiller calls its background hook (from any thread, without
/// its lock held, at most once until `run_background_work` starts); the
/// owner then runs `run_background_work` on a thread that may block on
/// disk IO. Without a hook that work happens inline.
///
/// Thread-safety: every member may be called concurrently. Disk IO never
/// happens under the spiller's lock, so resident gets and puts that fit
/// never wait for the disk.
class spiller {
public:
  spiller(std::shared_ptr<backend> memory, std::unique_ptr<spill_directory> dir,
          uint64_t limit, double threshold);

  ~spiller();

  /// Stores `x` under `id` within the limit, spilling others first when
  /// `io` allows. Errors: `resource_exhausted` (does not fit; with
  /// `disk_io::never` also when it would need a spill first), the memory
  /// backend's errors.
  caf::error put(const uri& id, const value_ptr& x, disk_io io);

  /// Returns the value of `id`, restoring it from disk when spilled (blocks
  /// on disk IO then). Errors: `not_found`; for a spilled object
  /// `object_lost` (file missing), `corrupt_data` (file damaged),
  /// `resource_exhausted` (no room to restore), `io_error`.
  caf::expected<value_ptr> get(const uri& id);

  /// The value of `id` if it is in memory, null if it is spilled (no IO).
  /// Errors: `not_found`.
  caf::expected<value_ptr> get_resident(const uri& id);

  /// Removes `id` and its spill file. Errors: `not_found`.
  caf::error erase(const uri& id);

  bool exists(const uri& id);

  /// Whether `id`'s only copy is on disk (spilled or being restored).
  bool is_spilled(const uri& id);

  /// The objects on disk only (payload sizes).
  std::vector<object_info> spilled_objects();

  /// Objects indexed (resident and spilled) and bytes in memory.
  backend_stats totals();

  /// Bytes a put may still take: the room under the limit plus what
  /// unpinned resident objects would free by spilling.
  uint64_t available();

  /// Whether storing `size` more bytes needs a spill first.
  bool needs_spill_for(uint64_t size);

  /// Sets the background hook (setup only, before concurrent use).
  void on_background_work(std::function<void()> hook);

  /// Deletes dropped spill files and spills least-recently-used unpinned
  /// objects until memory is at or below the threshold. Blocks on disk IO.
  void run_background_work();

  spill_stats stats();

  const spill_directory& directory() const noexcept { return *dir_; }

private:
  enum class state { resident, spilling, spilled, restoring };

  struct entry {
    uint64_t size = 0;
    state where = state::resident;
    /// Bumped by every put of the URI: an IO finishing for an older value
    /// leaves the entry alone.
    uint64_t generation = 0;
    spill_file file;
    std::list<uri>::iterator lru;
  };

  enum class spill_result { spilled, nothing, failed };

  using lock_type = std::unique_lock<std::mutex>;

  uint64_t used();
  uint64_t target() const;
  uint64_t spillable(lock_type&);
  value_ptr unpinned(const uri& id);
  spill_result spill_one(lock_type& lk, caf::error* why);
  caf::error make_room(lock_type& lk, const uri& id, uint64_t size,
                       uint64_t replaced, disk_io io);
  /// Forgets `e`'s current copy: out of the LRU order when resident, its
  /// file to the trash when spilled.
  void drop_copy(entry& e);
  void forget_file(spill_file f);
  void wake_background(lock_type& lk, disk_io io);

  std::shared_ptr<backend> memory_;
  std::unique_ptr<spill_directory> dir_;
  uint64_t limit_;
  double threshold_;
  std::function<void()> hook_;

  std::mutex mtx_;
  std::condition_variable changed_;
  std::unordered_map<uri, entry> entries_;
  /// Resident, not spilling; least recently used first.
  std::list<uri> lru_;
  uint64_t generation_ = 0;
  /// Payload bytes being written now (leave memory when the writes end).
  uint64_t spilling_bytes_ = 0;
  std::vector<spill_file> trash_;
  bool background_pending_ = false;
  spill_stats stats_;
};

} // namespace objstore
