#pragma once

// Child processes of objstore-bench (worker nodes and the raw TCP sink)
// and what the bench measures of processes (CPU time, threads). No CAF
// here.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

#include "actors/driver/driver.hpp"

namespace objstore::bench {

/// A child process; SIGTERM on destruction (then SIGKILL after 10 s).
class child_process {
public:
  child_process() = default;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  child_process(child_process&& other) noexcept : pid_(other.pid_) {
    other.pid_ = -1;
  }
  ~child_process() { stop(); }

  /// Starts `argv[0]` with `argv`; stdout and stderr go to `log_path`
  /// (empty: inherited). Returns false with `err` set on failure.
  bool start(const std::vector<std::string>& argv, const std::string& log_path,
             std::string& err);

  /// SIGTERM, wait (SIGKILL after 10 s); returns the exit status or -1.
  int stop();

  /// Waits for a normal exit (no signal sent); returns the exit status.
  int wait();

  pid_t pid() const noexcept { return pid_; }

private:
  pid_t pid_ = -1;
};

/// Two (or more) objstore-node worker processes on loopback.
class worker_processes {
public:
  /// Starts `n` workers with the fetch policy `allow` on ephemeral ports
  /// and waits (up to 20 s) for their port files.
  bool start(const std::string& node_path,
             const std::vector<std::string>& extra_args, size_t n,
             std::string& err);

  ~worker_processes();

  const std::vector<uint16_t>& ports() const noexcept { return ports_; }

  /// The workers as a cluster spec (127.0.0.1 and their ports).
  cluster_spec spec() const;

  /// CPU seconds all workers used so far.
  double cpu_seconds() const;
  const std::string& dir() const noexcept { return dir_; }

  /// The workers' operator secret (node-wide stats for the bench driver).
  const std::string& operator_secret() const noexcept {
    return operator_secret_;
  }

  /// Keep the directory with the workers' logs after stopping them.
  void keep_logs() { keep_ = true; }

private:
  std::string dir_;
  std::string operator_secret_;
  std::vector<child_process> children_;
  std::vector<uint16_t> ports_;
  bool keep_ = false;
};

/// How the raw TCP baseline treats its buffers.
enum class tcp_variant {
  /// The ceiling: the sink receives into one buffer mapped up front.
  warm,
  /// A fresh (unmapped) buffer per round: the receiver page-faults as the
  /// data plane does when it allocates the received object.
  fresh,
  /// `fresh`, plus an XXH3 pass over the payload on both sides, before
  /// sending and after receiving (what the transfer's codec does).
  fresh_checksum,
  /// `fresh` with the buffer 2 MiB aligned and madvise(MADV_HUGEPAGE).
  fresh_hugepage,
};

const char* to_string(tcp_variant x);

/// The raw TCP baseline: this process sends `bytes` `reps` times (after one
/// warm-up round) to a child process (`self_exe --tcp-sink=PORT ...`) over
/// loopback, 256 KiB per send/recv call, 4 MiB socket buffers. Returns GB/s
/// (1e9 bytes/s) per round, each round timed from the sink's "ready" until
/// it acknowledges the last byte. Empty with `err` set on failure.
std::vector<double> tcp_pump(const std::string& self_exe, size_t bytes,
                             size_t reps, tcp_variant variant,
                             std::string& err);

/// Entry point of the sink child: connects to 127.0.0.1:`port`, receives
/// `rounds` x `bytes` and acknowledges each round with one byte.
int tcp_sink_main(uint16_t port, size_t bytes, size_t rounds, int variant);

/// CPU seconds (user + system) a process used so far; NaN if unknown.
double cpu_seconds_of(pid_t pid);

/// CPU seconds (user + system) of this process so far.
double cpu_seconds_self();

/// The 1, 5 and 15 minute load averages (other work on the machine
/// skews every number of the bench).
std::string loadavg();

/// Threads of this process now (`Threads:` of /proc/self/status); 0 if
/// unreadable.
size_t thread_count_self();

/// Samples the thread count of this process every `period` on a thread of
/// its own, from construction until `stop`, and keeps the highest count.
/// The sampler's own thread is not counted. Not thread-safe: one owner
/// constructs and stops it.
class thread_sampler {
public:
  explicit thread_sampler(std::chrono::microseconds period
                          = std::chrono::milliseconds{5});
  thread_sampler(const thread_sampler&) = delete;
  thread_sampler& operator=(const thread_sampler&) = delete;
  ~thread_sampler() { stop(); }

  /// Ends sampling (idempotent); returns the peak without the sampler.
  size_t stop();

  /// Samples taken (valid after `stop`).
  size_t samples() const noexcept { return samples_; }

private:
  std::atomic<bool> stopping_{false};
  /// Written by the sampling thread only, read after it is joined.
  size_t peak_ = 0;
  size_t samples_ = 0;
  std::thread thread_;
};

/// Path of this executable (/proc/self/exe), or `argv0` if unreadable.
std::string self_path(const char* argv0);

/// Finds objstore-node: `explicit_path`, $OBJSTORE_NODE_PATH, the path
/// compiled in, or next to this binary (also ../apps/). Empty if none.
std::string find_node(const std::string& explicit_path,
                      const std::string& self_exe);

} // namespace objstore::bench
