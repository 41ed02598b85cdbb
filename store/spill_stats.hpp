#pragma once

#include <cstdint>

namespace objstore {

/// Counters of a node's spilling. Cumulative totals (`*_total`, `*_ns`)
/// give throughput: bytes / seconds.
struct spill_stats {
  /// Objects (and their payload bytes) whose only copy is on disk now.
  uint64_t spilled_objects = 0;
  uint64_t spilled_bytes = 0;
  /// Encoded bytes of the node's spill files: those objects' and the disk
  /// copies kept for restored objects.
  uint64_t spill_file_bytes = 0;
  /// Objects written to disk, their payload bytes, and the time spent.
  uint64_t spills = 0;
  uint64_t spilled_bytes_total = 0;
  uint64_t spill_ns = 0;
  /// Of `spills`, those of restored objects whose file was still on disk:
  /// nothing written (not in `spilled_bytes_total` / `spill_ns`).
  uint64_t respills = 0;
  /// Objects read back, their payload bytes, and the time spent.
  uint64_t restores = 0;
  uint64_t restored_bytes_total = 0;
  uint64_t restore_ns = 0;
  /// Spills that failed (disk full, IO error): the object stayed in memory.
  uint64_t spill_failures = 0;
  /// Restores that failed (missing or corrupt file, no room).
  uint64_t restore_failures = 0;
  /// Files a crashed earlier process of this node left, removed at start.
  uint64_t leftovers_removed = 0;

  friend bool operator==(const spill_stats&, const spill_stats&) = default;
};

} // namespace objstore
