#pragma once

// Small helpers of objstore-bench without CAF: statistics, JSON lines,
// clocks and the options of a run.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace objstore::bench {

/// Options of one bench run (see `objstore-bench --help`).
struct options {
  /// Bulk object size in MiB (transfer, put, fetch, bytes per task).
  size_t size_mib = 256;
  /// Repetitions of every throughput workload (medians are over these).
  size_t reps = 5;
  /// Round trips sampled by the latency workloads.
  size_t rtt_samples = 2000;
  /// Tasks submitted at once by `tasks_per_s` (one line per count), and
  /// by how many actors.
  std::vector<size_t> task_counts{5000, 20000};
  size_t submitters = 8;
  /// Handles dropped by `release_ms`.
  size_t release_handles = 1000;
  /// Handles created and dropped by the GC workload, and per task.
  size_t gc_handles = 1'000'000;
  size_t gc_per_task = 10'000;
  size_t gc_reps = 3;
  /// Size of the table `shuffle_scaling` repartitions, and over how many
  /// worker processes (one line per count, ratios against the first).
  size_t shuffle_mib = 64;
  /// Memory limit per worker of the `spill` workload (its working set is
  /// 3x this per worker).
  size_t spill_limit_mib = 64;
  std::vector<size_t> shuffle_parties{2, 4, 8};
  /// Skip connecting every pair of workers one at a time before the
  /// shuffles (their first moves then connect all pairs at once).
  bool shuffle_cold = false;
  /// Driver's transfers in flight per source worker; 0: the driver's
  /// default.
  size_t max_transfers_per_worker = 0;
  /// "both", "processes" or "inproc".
  std::string mode = "both";
  /// Workloads to run (empty: all).
  std::set<std::string> only;
  /// The worker program and extra arguments for it.
  std::string node_path;
  std::vector<std::string> node_args;
  /// CAF options "key=value" for the driver's actor system and every
  /// worker process (processes mode only), e.g. scheduler.policy=sharing.
  std::vector<std::string> caf_options;
  /// This program (for the raw TCP sink child).
  std::string self_exe;
  /// In-process mode: hand transfers over by pointer.
  bool local_shortcut = true;
  /// Driver release delay in microseconds; negative: the driver's default.
  long release_delay_us = -1;
  /// Driver's stream threshold in bytes; negative: the driver's default
  /// (0: puts and fetches never stream, the actor-connection baseline).
  long stream_threshold = -1;
  /// Size of the `big_roundtrip` object in GiB (it runs only when asked
  /// for by `--only` or this flag).
  double size_gib = 4.5;
  bool quick = false;

  bool wants(std::string_view workload) const {
    return only.empty() || only.count(std::string{workload}) > 0;
  }
};

using clock = std::chrono::steady_clock;

inline double us_since(clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock::now() - t0).count();
}

inline double seconds_since(clock::time_point t0) {
  return std::chrono::duration<double>(clock::now() - t0).count();
}

/// Nearest-rank percentile (`q` in [0, 1]); NaN for no samples.
inline double percentile(std::vector<double> xs, double q) {
  if (xs.empty())
    return std::nan("");
  std::sort(xs.begin(), xs.end());
  auto rank
      = static_cast<size_t>(std::ceil(q * static_cast<double>(xs.size())));
  return xs[std::clamp<size_t>(rank, 1, xs.size()) - 1];
}

/// Median (mean of the two middle samples for an even count).
inline double median(std::vector<double> xs) {
  if (xs.empty())
    return std::nan("");
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 == 1 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

inline double p99(std::vector<double> xs) {
  return percentile(std::move(xs), 0.99);
}

/// One flat JSON object, built field by field and printed as one line.
class json_line {
public:
  explicit json_line(std::string_view workload) { str("workload", workload); }

  json_line& num(std::string_view key, double x) {
    if (!std::isfinite(x))
      return raw(key, "null");
    char buf[64];
    auto mag = std::fabs(x);
    const char* fmt = mag >= 1000 ? "%.0f" : mag >= 10 ? "%.2f" : "%.4g";
    std::snprintf(buf, sizeof(buf), fmt, x);
    return raw(key, buf);
  }

  json_line& count(std::string_view key, uint64_t x) {
    return raw(key, std::to_string(x));
  }

  json_line& flag(std::string_view key, bool x) {
    return raw(key, x ? "true" : "false");
  }

  json_line& str(std::string_view key, std::string_view x) {
    std::string quoted = "\"";
    for (char c : x) {
      if (c == '"' || c == '\\') {
        quoted += '\\';
        quoted += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        quoted += buf;
      } else {
        quoted += c;
      }
    }
    quoted += '"';
    return raw(key, quoted);
  }

  /// A target `value <= limit` (or `>=` when `at_least`): adds the limit
  /// and whether it is met (null when the value is missing).
  json_line& target(std::string_view key, double value, double limit,
                    bool at_least = false) {
    num(std::string{key} + "_target", limit);
    if (!std::isfinite(value))
      return raw(std::string{key} + "_met", "null");
    return flag(std::string{key} + "_met",
                at_least ? value >= limit : value <= limit);
  }

  std::string text() const { return body_ + "}"; }

  void print() const {
    std::printf("%s\n", text().c_str());
    std::fflush(stdout);
  }

private:
  json_line& raw(std::string_view key, std::string_view value) {
    body_ += body_.size() > 1 ? ",\"" : "\"";
    body_ += key;
    body_ += "\":";
    body_ += value;
    return *this;
  }

  std::string body_ = "{";
};

} // namespace objstore::bench
