// spill (issue 16, "Measure"): a job whose working set is 3x each worker's
// memory limit, on 2 workers that spill to a temp directory, against the
// same job with no limit (all in memory). The job puts the inputs, runs
// add(x, x) and sum(x) on every input (restoring spilled inputs, spilling
// outputs), fetches and checks every sum and a sample of the doubled
// arrays, then drops everything. Reports both throughputs (input bytes per
// second of the whole job), their ratio, the workers' spill and restore
// counters, and fails if a result is wrong or a spill file is left.

#include "bench/workloads.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/driver/driver.hpp"
#include "actors/testing/local_cluster.hpp"
#include "bench/processes.hpp"
#include "store/error.hpp"
#include "store/spill_directory.hpp"

namespace objstore::bench {

// Named, not anonymous: unity builds compile this file with workloads.cpp.
namespace spill_bench_file {

constexpr size_t object_bytes = 4u << 20;
constexpr uint32_t workers = 2;

/// The whole job's wall time and the workers' counters after it.
struct job_result {
  double wall_s = 0;
  size_t objects_per_worker = 0;
  std::vector<worker_stats> stats;
  /// Spill files left once the workers freed every object (nodes alive).
  size_t files_left = 0;
};

value_ptr input_value(size_t index, uint32_t rank) {
  auto n = static_cast<int64_t>(object_bytes / 8);
  auto [t, raw] = tensor::allocate(dtype::int64, {n});
  auto* p = reinterpret_cast<int64_t*>(raw);
  auto start = static_cast<int64_t>(index * 1000 + rank);
  for (int64_t i = 0; i < n; ++i)
    p[i] = start + i;
  return make_value(std::move(t));
}

void check(bool ok, const std::string& what) {
  if (!ok)
    throw failure("wrong result: " + what);
}

job_result run_job(driver& drv, size_t working_set_per_worker,
                   const std::filesystem::path& spill_dir) {
  job_result result;
  auto count = working_set_per_worker / object_bytes;
  result.objects_per_worker = count;
  auto n = static_cast<int64_t>(object_bytes / 8);
  graph_builder b;
  auto in = b.input();
  b.output(b.add("add", {in, in}));
  b.output(b.add("sum", {in}));
  auto g = b.build();
  auto t0 = clock::now();
  {
    std::vector<host_var> inputs;
    for (size_t i = 0; i < count; ++i) {
      // One host_var per index with a part on each worker: each run below
      // keeps both workers busy.
      host_var x{workers};
      for (uint32_t r = 0; r < workers; ++r) {
        auto part = must(drv.put(r, input_value(i, r)),
                         "put input " + std::to_string(i) + " on rank "
                             + std::to_string(r));
        x.set(r, part.part(r));
      }
      inputs.push_back(std::move(x));
    }
    for (size_t i = 0; i < count; ++i) {
      auto out = must(drv.run(g, {inputs[i]}), "task " + std::to_string(i));
      for (uint32_t r = 0; r < workers; ++r) {
        auto start = static_cast<int64_t>(i * 1000 + r);
        auto sum = must(drv.fetch(r, out[1]), "fetch sum");
        check(sum->as_tensor().values<int64_t>()[0]
                  == n * start + n * (n - 1) / 2,
              "sum of input " + std::to_string(i));
      }
      if (i % 8 == 0) {
        for (uint32_t r = 0; r < workers; ++r) {
          auto start = static_cast<int64_t>(i * 1000 + r);
          auto doubled = must(drv.fetch(r, out[0]), "fetch doubled");
          auto xs = doubled->as_tensor().values<int64_t>();
          check(xs.size() == static_cast<size_t>(n) && xs[0] == 2 * start
                    && xs[n - 1] == 2 * (start + n - 1),
                "doubled input " + std::to_string(i));
        }
      }
    }
    // Inputs come back from disk for a second use, by fetch.
    for (size_t i = 0; i < count; i += 8)
      for (uint32_t r = 0; r < workers; ++r) {
        auto x = must(drv.fetch(r, inputs[i]), "fetch input");
        check(*x == *input_value(i, r), "input " + std::to_string(i));
      }
  }
  result.wall_s = seconds_since(t0);
  for (uint32_t r = 0; r < workers; ++r)
    result.stats.push_back(must(drv.worker_stats_of(r), "worker stats"));
  // Every handle is gone: the workers free everything.
  must(drv.flush(), "flush");
  auto deadline = clock::now() + std::chrono::seconds{30};
  for (uint32_t r = 0; r < workers; ++r)
    while (must(drv.worker_stats_of(r), "worker stats").mem_objects > 0) {
      if (clock::now() > deadline)
        throw failure("rank " + std::to_string(r) + " kept objects");
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
  // Files of freed objects go on the workers' spill threads.
  while (spill_directory::count_files(spill_dir) > 0 && clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  result.files_left = spill_directory::count_files(spill_dir);
  return result;
}

/// Runs the job on a fresh 2-worker cluster; `limit` 0 = no memory limit.
using cluster_job = std::function<job_result(uint64_t limit)>;

cluster_job processes_job(const options& opts,
                          const std::filesystem::path& spill_dir,
                          size_t working_set) {
  return [&opts, spill_dir, working_set](uint64_t limit) {
    worker_processes nodes;
    std::string err;
    auto args = worker_args(opts);
    args.push_back("--objstore.memory-limit=" + std::to_string(limit));
    args.push_back("--objstore.spill-dir=" + spill_dir.string());
    if (!nodes.start(opts.node_path, args, workers, err))
      throw failure(err);
    caf::actor_system_config cfg;
    if (err = configure_driver_system(cfg, opts); !err.empty())
      throw failure(err);
    caf::actor_system sys{cfg};
    auto drv
        = must(driver::connect(sys, nodes.spec(), driver_options(opts, nodes)),
               "driver connect");
    return run_job(*drv, working_set, spill_dir);
  };
}

cluster_job inproc_job(const options& opts,
                       const std::filesystem::path& spill_dir,
                       size_t working_set) {
  return [&opts, spill_dir, working_set](uint64_t limit) {
    local_cluster_options lo;
    lo.workers = workers;
    lo.policy = fetch_policy::allow;
    lo.fs_roots = false;
    lo.driver = driver_options(opts);
    lo.memory_limit = limit;
    lo.spill_dir = spill_dir;
    auto cluster = must(local_cluster::start(lo), "local cluster");
    auto drv = must(cluster->connect(), "driver connect");
    return run_job(*drv, working_set, spill_dir);
  };
}

template<class F>
uint64_t total(const job_result& x, F field) {
  uint64_t sum = 0;
  for (auto& st : x.stats)
    sum += field(st.spill);
  return sum;
}

double rate_gbps(uint64_t bytes, uint64_t ns) {
  return ns == 0 ? std::nan("") : static_cast<double>(bytes) / ns;
}

} // namespace spill_bench_file

int run_spill(const options& opts, const std::string& mode) {
  using namespace spill_bench_file;
  auto t0 = clock::now();
  uint64_t limit = static_cast<uint64_t>(opts.spill_limit_mib) << 20;
  auto working_set = 3 * limit;
  std::string templ
      = (std::filesystem::temp_directory_path() / "objstore-bench-spill-XXXXXX")
            .string();
  if (::mkdtemp(templ.data()) == nullptr) {
    json_line{"spill"}.str("mode", mode).str("error", "mkdtemp failed").print();
    return 1;
  }
  std::filesystem::path dir{templ};
  int failed = 0;
  try {
    std::fprintf(stderr, "[%s] spill: limit %zu MiB, working set %zu MiB\n",
                 mode.c_str(), static_cast<size_t>(limit >> 20),
                 static_cast<size_t>(working_set >> 20));
    auto job = mode == "processes" ? processes_job(opts, dir, working_set)
                                   : inproc_job(opts, dir, working_set);
    auto spilling = job(limit);
    auto left_after_stop = spill_directory::count_files(dir);
    auto in_memory = job(0);
    auto input_bytes = static_cast<double>(spilling.objects_per_worker
                                           * object_bytes * workers);
    auto spill_gbps = input_bytes / spilling.wall_s / 1e9;
    auto memory_gbps = input_bytes / in_memory.wall_s / 1e9;
    auto spilled_bytes
        = total(spilling, [](auto& s) { return s.spilled_bytes_total; });
    auto restored_bytes
        = total(spilling, [](auto& s) { return s.restored_bytes_total; });
    auto failures = total(spilling, [](auto& s) {
      return s.spill_failures + s.restore_failures;
    });
    uint64_t peak_mem = 0;
    for (auto& st : spilling.stats)
      peak_mem = std::max<uint64_t>(peak_mem, st.mem_bytes);
    auto left = spill_directory::count_files(dir);
    json_line{"spill"}
        .str("mode", mode)
        .num("spill_job_gbps", spill_gbps)
        .num("in_memory_job_gbps", memory_gbps)
        .num("spill_vs_memory_ratio", spill_gbps / memory_gbps)
        .num("spill_job_s", spilling.wall_s)
        .num("in_memory_job_s", in_memory.wall_s)
        .count("memory_limit_per_worker", limit)
        .count("working_set_per_worker", working_set)
        .count("objects_per_worker", spilling.objects_per_worker)
        .count("object_bytes", object_bytes)
        .count("spills", total(spilling, [](auto& s) { return s.spills; }))
        .count("respills_without_write",
               total(spilling, [](auto& s) { return s.respills; }))
        .count("spilled_bytes", spilled_bytes)
        .num("spill_write_gbps",
             rate_gbps(spilled_bytes,
                       total(spilling, [](auto& s) { return s.spill_ns; })))
        .count("restores", total(spilling, [](auto& s) { return s.restores; }))
        .count("restored_bytes", restored_bytes)
        .num("restore_read_gbps",
             rate_gbps(restored_bytes,
                       total(spilling, [](auto& s) { return s.restore_ns; })))
        .count("spill_failures", failures)
        .count("mem_bytes_at_end_max", peak_mem)
        .flag("results_correct", true)
        .count("spill_files_left", spilling.files_left)
        .count("spill_files_left_after_stop", std::max(left, left_after_stop))
        .str("loadavg", loadavg())
        .print();
    if (spilling.files_left > 0 || left > 0 || left_after_stop > 0
        || spilled_bytes == 0 || failures > 0)
      failed = 1;
  } catch (const std::exception& e) {
    json_line{"spill"}.str("mode", mode).str("error", e.what()).print();
    failed = 1;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::fprintf(stderr, "[%s] spill took %.2f s\n", mode.c_str(),
               seconds_since(t0));
  return failed;
}

} // namespace objstore::bench
