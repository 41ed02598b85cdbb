#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <vector>

#include <caf/expected.hpp>

#include "actors/driver/driver.hpp"

namespace objstore::apps {

/// What the demo job of DESIGN.md §10 computed and observed.
struct demo_result {
  /// Per-key sums of the filtered amounts over all parties (revealed).
  std::map<int64_t, double> sums;
  /// Rows generated and bytes of table data processed on the workers.
  uint64_t rows = 0;
  uint64_t data_bytes = 0;
  /// What crossed the driver's control plane during the job.
  uint64_t driver_bytes_received = 0;
  uint64_t driver_bytes_sent = 0;
  /// mem:// objects per worker before the job, while it holds its
  /// handles, and after dropping them.
  std::vector<uint64_t> objects_before;
  std::vector<uint64_t> objects_held;
  std::vector<uint64_t> objects_after;
};

/// Runs the demo on the cluster behind `d`: every party generates a
/// private table (key, amount) from `seed` and its rank, filters amounts
/// above 10 and sums them per key locally, the parties shuffle by key so
/// equal keys meet, sum again, and reveal only the final per-key sums,
/// which the driver fetches. Progress goes to `log`.
caf::expected<demo_result> run_demo_job(driver& d, size_t rows, uint64_t seed,
                                        std::ostream& log);

/// The same computation in this process, without any cluster.
caf::expected<std::map<int64_t, double>>
demo_reference(size_t parties, size_t rows, uint64_t seed);

/// Whether two per-key sums agree (same keys, values within 1e-9 relative).
bool same_sums(const std::map<int64_t, double>& x,
               const std::map<int64_t, double>& y);

} // namespace objstore::apps
