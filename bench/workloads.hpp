#pragma once

#include "bench/bench_util.hpp"

namespace objstore::bench {

/// Runs the selected workloads against 2 objstore-node processes on
/// loopback; prints one JSON line per workload. Returns the number of
/// workloads that failed (-1: the cluster did not start).
int run_processes(const options& opts);

/// The same workloads against an in-process local_cluster of 2 nodes.
int run_inproc(const options& opts);

} // namespace objstore::bench
