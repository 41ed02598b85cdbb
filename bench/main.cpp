// objstore-bench: the workloads of DESIGN.md §11 on 2 worker processes on
// loopback and on an in-process cluster, one JSON object per line, each
// with its baseline (bare CAF round trip, raw TCP pump) from the same run;
// and shuffle_scaling over 2, 4 and 8 worker processes (issue 15).
//
//   objstore-bench [--quick] [--mode=both|processes|inproc] [--reps=N] ...
//
// Progress goes to stderr, results to stdout.

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include <sys/utsname.h>

#include "bench/bench_util.hpp"
#include "bench/processes.hpp"
#include "bench/workloads.hpp"

using namespace objstore::bench;

namespace {

constexpr const char* usage = R"(usage: objstore-bench [options]
  --quick                 small counts, whole run < 30 s
  --mode=M                both (default), processes or inproc
  --only=a,b,...          workloads: task_rtt tasks_per_s put_gbps fetch_gbps
                          transfer_gbps rtt_under_transfer control_under_load
                          driver_bytes_per_task release_ms gc_handles
                          shuffle_scaling (processes mode only) spill
                          big_roundtrip, oss_gbps (only when named)
  --size-mib=N            bulk object size (default 256)
  --size-gib=X            object size of big_roundtrip (default 4.5); the
                          workload runs only when named by --only
  --stream-threshold=N    driver puts and fetches values of >= N bytes over
                          the workers' data ports (0: never, i.e. over
                          the actor connection; default: driver's 1 MiB)
  --reps=N                repetitions of throughput workloads (default 5)
  --samples=N             round trips per latency workload (default 2000)
  --tasks=N[,N...]        tasks submitted at once by tasks_per_s, one
                          line per count (5000,20000)
  --submitters=N          actors sharing those submissions (8)
  --handles=N             handles dropped by release_ms (1000)
  --gc-handles=N          handles created and dropped by gc (1000000)
  --gc-per-task=N         outputs per fan-out task of gc (10000)
  --gc-reps=N             repetitions of gc (3)
  --shuffle-mib=N         table shuffle_scaling repartitions (64; quick 8)
  --spill-limit-mib=N     memory limit per worker of spill; the working set
                          is 3x it (64; quick 16)
  --shuffle-parties=N,... worker processes of shuffle_scaling, one line
                          per count, ratios to the first (2,4,8)
  --shuffle-cold          no warm-up transfer per worker pair before
                          shuffle_scaling (first moves connect the pairs)
  --max-transfers-per-worker=N
                          driver's transfers in flight per source worker
                          (default: driver's)
  --node=PATH             objstore-node to spawn (default: built one)
  --node-arg=ARG          extra argument for every worker (repeatable)
  --caf=KEY=VALUE         CAF option for the driver and the worker processes
                          (processes mode; repeatable), e.g.
                          --caf=scheduler.policy=sharing
  --local-shortcut=0|1    inproc transfers by pointer (default 1)
  --release-delay-us=N    driver release batching delay (default: driver's)
)";

bool parse_size(const std::string& text, size_t& out) {
  char* end = nullptr;
  auto x = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0')
    return false;
  out = static_cast<size_t>(x);
  return true;
}

/// Parses "n,n,..." of positive sizes; false for an empty list or a bad
/// item.
bool parse_sizes(const std::string& text, std::vector<size_t>& out) {
  out.clear();
  std::stringstream in{text};
  for (std::string item; std::getline(in, item, ',');) {
    size_t n = 0;
    if (!parse_size(item, n) || n == 0)
      return false;
    out.push_back(n);
  }
  return !out.empty();
}

std::string read_first(const char* path, const std::string& prefix) {
  std::ifstream in{path};
  std::string text;
  while (std::getline(in, text))
    if (text.rfind(prefix, 0) == 0) {
      auto colon = text.find(':');
      auto value = colon == std::string::npos ? text : text.substr(colon + 1);
      auto first = value.find_first_not_of(" \t");
      return first == std::string::npos ? "" : value.substr(first);
    }
  return "unknown";
}

void print_machine(const options& opts) {
  // Appended piece by piece: GCC 12 at -O3 reports a false -Wrestrict for
  // `(cond ? "" : ",") + std::to_string(n)` (operator+ inserting at the
  // front of a temporary).
  std::string tasks;
  for (auto n : opts.task_counts) {
    if (!tasks.empty())
      tasks += ',';
    tasks += std::to_string(n);
  }
  std::string shuffle_parties;
  for (auto n : opts.shuffle_parties) {
    if (!shuffle_parties.empty())
      shuffle_parties += ',';
    shuffle_parties += std::to_string(n);
  }
  std::string caf_options;
  for (auto& kv : opts.caf_options) {
    if (!caf_options.empty())
      caf_options += ' ';
    caf_options += kv;
  }
  utsname u{};
  ::uname(&u);
  json_line{"machine"}
      .count("nproc", std::thread::hardware_concurrency())
      .str("cpu", read_first("/proc/cpuinfo", "model name"))
      .str("kernel", std::string{u.sysname} + " " + u.release)
      .str("mem_total", read_first("/proc/meminfo", "MemTotal"))
      .str("loadavg", loadavg())
      .count("size_mib", opts.size_mib)
      .count("reps", opts.reps)
      .count("samples", opts.rtt_samples)
      .str("tasks", tasks)
      .count("gc_handles", opts.gc_handles)
      .count("shuffle_mib", opts.shuffle_mib)
      .str("shuffle_parties", shuffle_parties)
      .flag("shuffle_cold", opts.shuffle_cold)
      .flag("quick", opts.quick)
      .str("node", opts.node_path)
      .str("caf_options", caf_options)
      .print();
}

} // namespace

int main(int argc, char** argv) {
  options opts;
  size_t tcp_port = 0;
  size_t tcp_bytes = 0;
  size_t tcp_rounds = 0;
  size_t tcp_variant_id = 0;
  for (int i = 1; i < argc; ++i)
    if (std::string{argv[i]} == "--quick") {
      opts.quick = true;
      opts.reps = 3;
      opts.rtt_samples = 300;
      opts.task_counts = {5000};
      opts.gc_handles = 200'000;
      opts.gc_reps = 1;
      opts.shuffle_mib = 8;
      opts.spill_limit_mib = 16;
    }
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    auto key = arg.substr(0, eq);
    auto value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    bool ok = true;
    if (arg == "--quick") {
      // handled above
    } else if (arg == "--help" || arg == "-h") {
      std::cout << usage;
      return 0;
    } else if (key == "--mode") {
      opts.mode = value;
      ok = value == "both" || value == "processes" || value == "inproc";
    } else if (key == "--only") {
      std::stringstream in{value};
      for (std::string item; std::getline(in, item, ',');)
        if (!item.empty())
          opts.only.insert(item);
    } else if (key == "--size-mib") {
      ok = parse_size(value, opts.size_mib) && opts.size_mib > 0;
    } else if (key == "--size-gib") {
      char* end = nullptr;
      opts.size_gib = std::strtod(value.c_str(), &end);
      ok = end != value.c_str() && *end == '\0' && opts.size_gib > 0;
    } else if (key == "--stream-threshold") {
      size_t n = 0;
      ok = parse_size(value, n);
      opts.stream_threshold = static_cast<long>(n);
    } else if (key == "--reps") {
      ok = parse_size(value, opts.reps) && opts.reps > 0;
    } else if (key == "--samples") {
      ok = parse_size(value, opts.rtt_samples) && opts.rtt_samples > 0;
    } else if (key == "--tasks") {
      ok = parse_sizes(value, opts.task_counts);
    } else if (key == "--submitters") {
      ok = parse_size(value, opts.submitters) && opts.submitters > 0;
    } else if (key == "--handles") {
      ok = parse_size(value, opts.release_handles) && opts.release_handles > 0;
    } else if (key == "--gc-handles") {
      ok = parse_size(value, opts.gc_handles) && opts.gc_handles > 0;
    } else if (key == "--gc-per-task") {
      ok = parse_size(value, opts.gc_per_task) && opts.gc_per_task > 0;
    } else if (key == "--gc-reps") {
      ok = parse_size(value, opts.gc_reps) && opts.gc_reps > 0;
    } else if (key == "--shuffle-mib") {
      ok = parse_size(value, opts.shuffle_mib) && opts.shuffle_mib > 0;
    } else if (key == "--spill-limit-mib") {
      ok = parse_size(value, opts.spill_limit_mib) && opts.spill_limit_mib > 0;
    } else if (arg == "--shuffle-cold") {
      opts.shuffle_cold = true;
    } else if (key == "--shuffle-parties") {
      ok = parse_sizes(value, opts.shuffle_parties);
    } else if (key == "--max-transfers-per-worker") {
      ok = parse_size(value, opts.max_transfers_per_worker)
           && opts.max_transfers_per_worker > 0;
    } else if (key == "--node") {
      opts.node_path = value;
    } else if (key == "--node-arg") {
      opts.node_args.push_back(value);
    } else if (key == "--caf") {
      ok = value.find('=') != std::string::npos;
      opts.caf_options.push_back(value);
    } else if (key == "--local-shortcut") {
      ok = value == "0" || value == "1";
      opts.local_shortcut = value == "1";
    } else if (key == "--release-delay-us") {
      size_t us = 0;
      ok = parse_size(value, us);
      opts.release_delay_us = static_cast<long>(us);
    } else if (key == "--tcp-sink") {
      ok = parse_size(value, tcp_port) && tcp_port > 0 && tcp_port < 65536;
    } else if (key == "--tcp-bytes") {
      ok = parse_size(value, tcp_bytes);
    } else if (key == "--tcp-rounds") {
      ok = parse_size(value, tcp_rounds);
    } else if (key == "--tcp-variant") {
      ok = parse_size(value, tcp_variant_id);
    } else {
      ok = false;
    }
    if (!ok) {
      std::cerr << "objstore-bench: bad argument '" << arg << "'\n" << usage;
      return 2;
    }
  }
  if (tcp_port > 0) // child of the raw TCP baseline
    return tcp_sink_main(static_cast<uint16_t>(tcp_port), tcp_bytes, tcp_rounds,
                         static_cast<int>(tcp_variant_id));
  opts.self_exe = self_path(argv[0]);
  if (opts.mode != "inproc") {
    opts.node_path = find_node(opts.node_path, opts.self_exe);
    if (opts.node_path.empty()) {
      std::cerr << "objstore-bench: objstore-node not found (use --node=PATH "
                   "or OBJSTORE_NODE_PATH)\n";
      return 2;
    }
  }
  print_machine(opts);
  int failed = 0;
  if (opts.mode != "inproc") {
    auto n = run_processes(opts);
    failed += n < 0 ? 1 : n;
  }
  if (opts.mode != "processes") {
    auto n = run_inproc(opts);
    failed += n < 0 ? 1 : n;
  }
  json_line{"end"}.str("loadavg", loadavg()).count("failed", failed).print();
  return failed == 0 ? 0 : 1;
}
