// shuffle_scaling (issue 15, "Measure"): driver::shuffle_by_key of one
// fixed table, split evenly over 2, 4 and 8 objstore-node processes on
// loopback. Per party count: wall time, bytes the workers' data planes
// moved, time per MiB moved and the peak thread count of this (the driver)
// process during the shuffle, with ratios to the first count. Targets:
// driver threads independent of the party count, time per byte no worse
// with more parties.

#include "bench/workloads.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/driver/driver.hpp"
#include "bench/processes.hpp"
#include "store/error.hpp"

namespace objstore::bench {

// A named namespace, not an anonymous one: unity builds compile this file
// in one translation unit with workloads.cpp, whose helpers share names.
namespace shuffle_scaling_file {

using namespace std::chrono_literals;

/// Key column plus three payload columns, 8 bytes each.
constexpr size_t row_bytes = 32;

/// Party `rank`'s share of the table: `rows` rows of uniformly random
/// int64 keys (so every target gets about 1/n of each source) and payload
/// columns `a` (float64), `b` and `c` (int64).
value_ptr table_part(size_t rows, uint32_t rank) {
  std::mt19937_64 rng{0x5eed'0000 + rank};
  auto n = static_cast<int64_t>(rows);
  auto [k, k_raw] = tensor::allocate(dtype::int64, {n});
  auto [a, a_raw] = tensor::allocate(dtype::float64, {n});
  auto [b, b_raw] = tensor::allocate(dtype::int64, {n});
  auto [c, c_raw] = tensor::allocate(dtype::int64, {n});
  auto* kp = reinterpret_cast<int64_t*>(k_raw);
  auto* ap = reinterpret_cast<double*>(a_raw);
  auto* bp = reinterpret_cast<int64_t*>(b_raw);
  auto* cp = reinterpret_cast<int64_t*>(c_raw);
  for (int64_t i = 0; i < n; ++i) {
    kp[i] = static_cast<int64_t>(rng() >> 1);
    ap[i] = static_cast<double>(i) * 0.5;
    bp[i] = i;
    cp[i] = static_cast<int64_t>(rank);
  }
  return make_value(must(table::make({{"k", std::move(k)},
                                      {"a", std::move(a)},
                                      {"b", std::move(b)},
                                      {"c", std::move(c)}}),
                         "make table"));
}

/// Node-wide counters summed over every worker.
struct cluster_counters {
  uint64_t bytes_out = 0;
  uint64_t transfers_out = 0;
};

cluster_counters counters_of(driver& drv) {
  cluster_counters result;
  for (uint32_t r = 0; r < drv.world_size(); ++r) {
    auto st = must(drv.worker_stats_of(r), "worker stats");
    if (!st.node_wide)
      throw failure("worker stats are not node-wide (operator secret?)");
    result.bytes_out += st.transfer_bytes_out;
    result.transfers_out += st.transfers_out;
  }
  return result;
}

/// Sends queued releases and waits until every rank holds at most
/// `objects[rank]` objects.
void settle(driver& drv, const std::vector<uint64_t>& objects) {
  must(drv.flush(), "flush");
  auto deadline = clock::now() + 60s;
  for (uint32_t r = 0; r < drv.world_size(); ++r)
    while (must(drv.worker_stats_of(r), "worker stats").mem_objects
           > objects[r]) {
      if (clock::now() > deadline)
        throw failure("rank " + std::to_string(r)
                      + " did not free its objects within 60 s");
      std::this_thread::sleep_for(1ms);
    }
}

/// Rows of the shuffled table summed over its parties.
int64_t total_rows(driver& drv, const host_var& x) {
  graph_builder b;
  b.output(b.add("num_rows", {b.input()}));
  auto counts = must(drv.run(b.build(), {x}), "num_rows");
  int64_t sum = 0;
  for (auto r : counts[0].parties()) {
    auto v = must(drv.fetch(r, counts[0]), "fetch num_rows");
    sum += v->as_tensor().values<int64_t>()[0];
  }
  return sum;
}

/// The split step of shuffle_by_key alone, on every party.
graph partition_graph(size_t n) {
  graph_builder b;
  auto in = b.input();
  for (auto id : b.add_n(
           "hash_partition", {in}, n,
           {make_attr("key", "k"), make_attr("n", static_cast<int64_t>(n))}))
    b.output(id);
  return b.build();
}

/// Moves a tiny object along every ordered pair of workers, one pair at a
/// time, so each worker has resolved (and connected to) every peer before
/// the shuffle measured: the shuffle's own first moves would otherwise
/// make every pair connect at once.
void connect_peers(driver& drv) {
  auto n = static_cast<uint32_t>(drv.world_size());
  for (uint32_t from = 0; from < n; ++from) {
    auto x = must(drv.put(from, make_value(tensor::from<int64_t>(
                                    {1}, std::vector<int64_t>{from}))),
                  "put tiny");
    for (uint32_t to = 0; to < n; ++to)
      if (to != from)
        must(drv.transfer(x, from, to),
             "transfer " + std::to_string(from) + " -> " + std::to_string(to));
  }
}

/// The medians of one party count.
struct scaling_point {
  size_t parties = 0;
  double wall_s = 0;
  double bytes_moved = 0;
  size_t threads_peak = 0;
};

/// Measures one party count on a cluster of its own and prints its line.
/// `reference` is the first count's point for the ratios: null when this
/// is the first count (ratios 1) or when the first count failed (ratios
/// null).
scaling_point measure(const options& opts, size_t parties,
                      const scaling_point* reference, bool first) {
  std::fprintf(stderr, "[processes] shuffle_scaling: %zu workers\n", parties);
  worker_processes nodes;
  std::string err;
  if (!nodes.start(opts.node_path, worker_args(opts), parties, err))
    throw failure(err);
  try {
    auto spec = nodes.spec();
    caf::actor_system_config cfg;
    if (err = configure_driver_system(cfg, opts); !err.empty())
      throw failure(err);
    caf::actor_system sys{cfg};
    auto drv_opts = driver_options(opts, nodes);
    auto max_transfers = drv_opts.max_transfers_per_worker;
    auto drv = must(driver::connect(sys, spec, drv_opts), "driver connect");
    if (!opts.shuffle_cold)
      connect_peers(*drv);
    // Equal shares of one fixed table.
    auto rows = (opts.shuffle_mib << 20) / row_bytes / parties;
    host_var tables{parties};
    size_t table_bytes = 0;
    for (uint32_t r = 0; r < parties; ++r) {
      auto part = table_part(rows, r);
      table_bytes += part->size_bytes();
      tables.set(r, must(drv->put(r, std::move(part)), "put table").part(r));
    }
    std::vector<uint64_t> base;
    for (uint32_t r = 0; r < parties; ++r)
      base.push_back(must(drv->worker_stats_of(r), "stats").mem_objects);
    auto split = partition_graph(parties);
    std::vector<double> wall;
    std::vector<double> moved;
    std::vector<double> transfers;
    std::vector<double> partition;
    std::vector<double> worker_cpu;
    std::vector<double> driver_cpu;
    std::vector<double> control_bytes;
    size_t threads_idle = 0;
    size_t threads_peak = 0;
    size_t samples = 0;
    // Cheap repetitions (~0.3 s at 64 MiB): at least 10, the spread on a
    // shared machine is wide.
    auto reps = std::max<size_t>(opts.reps, 10);
    // The first shuffles on a fresh cluster are up to 10x slower (0.6 s
    // against 0.06 s at 2 workers); they settle after two or three.
    constexpr size_t warmup_reps = 3;
    double cold_wall = 0;
    for (size_t rep = 0; rep < warmup_reps + reps; ++rep) {
      auto before = counters_of(*drv);
      auto ctl_before = must(drv->stats(), "driver stats");
      auto cpu_workers = nodes.cpu_seconds();
      auto cpu_self = cpu_seconds_self();
      auto idle = thread_count_self();
      thread_sampler sampler;
      auto t0 = clock::now();
      auto out = must(drv->shuffle_by_key(tables, "k"), "shuffle_by_key");
      auto s = seconds_since(t0);
      auto peak = sampler.stop();
      auto cpu_self_used = cpu_seconds_self() - cpu_self;
      auto cpu_workers_used = nodes.cpu_seconds() - cpu_workers;
      auto ctl_after = must(drv->stats(), "driver stats");
      auto after = counters_of(*drv);
      if (rep == 0) {
        auto got = total_rows(*drv, out);
        auto want = static_cast<int64_t>(rows * parties);
        if (out.parties().size() != parties || got != want)
          throw failure("the shuffle returned " + std::to_string(got)
                        + " rows on " + std::to_string(out.parties().size())
                        + " parties, expected " + std::to_string(want) + " on "
                        + std::to_string(parties));
      }
      out.reset();
      settle(*drv, base);
      // Threads over every shuffle, the cold ones included.
      threads_idle = std::max(threads_idle, idle);
      threads_peak = std::max(threads_peak, peak);
      samples += sampler.samples();
      if (rep == 0)
        cold_wall = s;
      if (rep < warmup_reps)
        continue;
      wall.push_back(s);
      moved.push_back(static_cast<double>(after.bytes_out - before.bytes_out));
      transfers.push_back(
          static_cast<double>(after.transfers_out - before.transfers_out));
      worker_cpu.push_back(cpu_workers_used);
      driver_cpu.push_back(cpu_self_used);
      control_bytes.push_back(static_cast<double>(
          ctl_after.bytes_sent - ctl_before.bytes_sent
          + ctl_after.bytes_received - ctl_before.bytes_received));
      // The split step alone, for a breakdown of the wall time.
      auto t1 = clock::now();
      auto pieces = must(drv->run(split, {tables}), "hash_partition");
      partition.push_back(seconds_since(t1));
      pieces.clear();
      settle(*drv, base);
    }
    std::string walls;
    for (auto x : wall) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), " %.3f", x);
      walls += buf;
    }
    std::fprintf(stderr,
                 "[processes] shuffle_scaling: %zu workers, wall s:%s\n",
                 parties, walls.c_str());
    scaling_point point{parties, median(wall), median(moved), threads_peak};
    auto mib_moved = point.bytes_moved / (1 << 20);
    auto mib_table = static_cast<double>(table_bytes) / (1 << 20);
    auto per_byte = [](const scaling_point& p) {
      return p.wall_s / p.bytes_moved;
    };
    auto no_ratio = first ? 1.0 : std::nan("");
    auto time_ratio
        = reference ? per_byte(point) / per_byte(*reference) : no_ratio;
    auto threads_ratio
        = reference ? static_cast<double>(point.threads_peak)
                          / static_cast<double>(reference->threads_peak)
                    : no_ratio;
    auto cpu_s = median(worker_cpu) + median(driver_cpu);
    json_line{"shuffle_scaling"}
        .str("mode", "processes")
        .count("parties", parties)
        .count("table_bytes", table_bytes)
        .count("rows", rows * parties)
        .num("wall_s", point.wall_s)
        .num("wall_s_min", *std::min_element(wall.begin(), wall.end()))
        .num("wall_s_max", *std::max_element(wall.begin(), wall.end()))
        .num("bytes_moved", point.bytes_moved)
        .num("moved_fraction",
             point.bytes_moved / static_cast<double>(table_bytes))
        .num("transfers", median(transfers))
        .num("ms_per_mib_moved", point.wall_s * 1000 / mib_moved)
        .num("ms_per_mib_table", point.wall_s * 1000 / mib_table)
        .num("time_per_byte_ratio_vs_2", time_ratio)
        // 10 % above 1 for the noise of a shared machine.
        .target("time_per_byte_ratio_vs_2", time_ratio, 1.1)
        .num("partition_s", median(partition))
        .num("transfer_and_concat_s", point.wall_s - median(partition))
        .count("driver_threads_idle", threads_idle)
        .count("driver_threads_peak", threads_peak)
        .num("threads_ratio_vs_2", threads_ratio)
        .target("threads_ratio_vs_2", threads_ratio, 1)
        .count("thread_samples", samples)
        .num("worker_cpu_s", median(worker_cpu))
        .num("driver_cpu_s", median(driver_cpu))
        .num("cpu_busy_fraction",
             cpu_s / point.wall_s
                 / static_cast<double>(
                     std::max(1u, std::thread::hardware_concurrency())))
        .num("driver_control_bytes", median(control_bytes))
        .count("reference_parties", opts.shuffle_parties.front())
        .count("max_transfers_per_worker", max_transfers)
        .flag("peers_connected_first", !opts.shuffle_cold)
        .num("cold_wall_s", cold_wall)
        .count("warmup_reps", warmup_reps)
        .count("reps", reps)
        .str("loadavg", loadavg())
        .print();
    return point;
  } catch (...) {
    nodes.keep_logs();
    std::fprintf(stderr, "[processes] worker logs kept in %s\n",
                 nodes.dir().c_str());
    throw;
  }
}

} // namespace shuffle_scaling_file

int run_shuffle_scaling(const options& opts) {
  int failed = 0;
  auto t0 = clock::now();
  std::optional<shuffle_scaling_file::scaling_point> reference;
  for (size_t i = 0; i < opts.shuffle_parties.size(); ++i) {
    auto parties = opts.shuffle_parties[i];
    try {
      auto point = shuffle_scaling_file::measure(
          opts, parties, reference ? &*reference : nullptr, i == 0);
      if (i == 0)
        reference = point;
    } catch (const std::exception& e) {
      ++failed;
      json_line{"shuffle_scaling"}
          .str("mode", "processes")
          .count("parties", parties)
          .str("error", e.what())
          .print();
    }
  }
  std::fprintf(stderr, "[processes] shuffle_scaling took %.2f s\n",
               seconds_since(t0));
  return failed;
}

} // namespace objstore::bench
