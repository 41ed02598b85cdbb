#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <caf/fwd.hpp>

#include "bench/bench_util.hpp"
#include "store/error.hpp"

namespace objstore {
struct driver_actor_options;
} // namespace objstore

namespace objstore::bench {

class worker_processes;

/// A workload failed; the message names the step.
struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The value of `x`, or throws `failure` naming `what` and the error.
template<class T>
T must(caf::expected<T> x, const std::string& what) {
  if (!x)
    throw failure(what + ": " + describe(x.error()));
  return std::move(*x);
}

/// Runs the selected workloads against 2 objstore-node processes on
/// loopback, then `shuffle_scaling` on clusters of its own; prints one
/// JSON line per workload. Returns the number of workloads that failed (a
/// cluster that did not start counts as one).
int run_processes(const options& opts);

/// The same workloads against an in-process local_cluster of 2 nodes
/// (`shuffle_scaling` measures processes only). Returns the number of
/// workloads that failed (-1: the cluster did not start).
int run_inproc(const options& opts);

/// `shuffle_scaling`: driver::shuffle_by_key of one table of
/// `opts.shuffle_mib` over each count of `opts.shuffle_parties` worker
/// processes; one JSON line per count. Returns the number of counts that
/// failed.
int run_shuffle_scaling(const options& opts);

/// `spill`: a job whose working set is 3x each worker's memory limit
/// (`opts.spill_limit_mib`), on 2 workers spilling to a temp directory,
/// against the same job all in memory; checks every result and that no
/// spill file is left; one JSON line. `mode` is "processes" (objstore-node
/// workers) or "inproc" (a local_cluster). Returns 1 if it failed.
int run_spill(const options& opts, const std::string& mode);

/// `oss_gbps`: the oss:// backend against the local S3 test server next
/// to fs:// (bench/oss_bench.cpp); one JSON line. Returns 1 if it failed.
int run_oss(const options& opts);

/// The driver options the bench flags ask for.
driver_actor_options driver_options(const options& opts);

/// Those, with the operator secret of `nodes` (node-wide stats).
driver_actor_options driver_options(const options& opts,
                                    const worker_processes& nodes);

/// Arguments for every worker process: `--node-arg`s and `--caf` options.
std::vector<std::string> worker_args(const options& opts);

/// Configures the driver's actor system for worker processes: objstore's
/// defaults, the heartbeats the workers expect and the `--caf` options.
/// Returns an error text, empty on success.
std::string configure_driver_system(caf::actor_system_config& cfg,
                                    const options& opts);

} // namespace objstore::bench
