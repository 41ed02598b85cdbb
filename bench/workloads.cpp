#include "bench/workloads.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/driver/driver.hpp"
#include "actors/testing/local_cluster.hpp"
#include "bench/processes.hpp"
#include "store/error.hpp"

namespace objstore::bench {

namespace {

using namespace std::chrono_literals;

constexpr caf::timespan request_timeout = std::chrono::seconds{60};

/// What every workload of one mode shares.
struct context {
  context(const options& o, std::string m, caf::actor_system& s, driver& d,
          std::vector<worker_actor> ws)
      : opts(o), mode(std::move(m)), sys(s), drv(d), workers(std::move(ws)) {
    // nop
  }

  const options& opts;
  std::string mode;
  caf::actor_system& sys;
  driver& drv;
  /// Proxies of the workers (the same BASP connections the driver uses),
  /// for the bare CAF baselines.
  std::vector<worker_actor> workers;
  /// CPU seconds of the worker processes so far (NaN in-process, where
  /// the workers' CPU is part of this process).
  std::function<double()> worker_cpu = [] {
    return std::nan("");
  };
  /// Median idle task round trip (task_rtt), for later ratios.
  double idle_task_rtt_us = std::nan("");
  /// The bulk object on rank 0 (made by the put workload or on demand).
  host_var big;
  /// Raw TCP pump rates of the bulk size (warm, fresh buffer, fresh
  /// buffer + checksum, fresh huge pages), measured once per mode: the
  /// ceiling put, fetch and transfer are compared with.
  std::vector<std::vector<double>> pump;
  /// Ids for tasks sent to the driver actor directly (far from the
  /// driver facade's own counter).
  uint64_t next_task_id = uint64_t{1} << 40;

  size_t bulk_bytes() const { return opts.size_mib << 20; }
};

json_line line(const context& cx, std::string_view workload) {
  json_line j{workload};
  j.str("mode", cx.mode);
  return j;
}

void progress(const context& cx, std::string_view what) {
  std::fprintf(stderr, "[%s] %.*s\n", cx.mode.c_str(),
               static_cast<int>(what.size()), what.data());
}

// -- values and graphs --------------------------------------------------------

value_ptr tiny_value() {
  return make_value(
      tensor::from<int64_t>({8}, std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
}

value_ptr big_value(size_t bytes) {
  auto n = static_cast<int64_t>(bytes / 8);
  auto [t, raw] = tensor::allocate(dtype::int64, {n});
  auto* p = reinterpret_cast<int64_t*>(raw);
  for (int64_t i = 0; i < n; ++i)
    p[i] = i;
  return make_value(std::move(t));
}

graph unary(const std::string& opcode) {
  graph_builder b;
  auto x = b.input();
  b.output(b.add(opcode, {x}));
  return b.build();
}

/// One input, `n` identity outputs: `n` objects sharing one buffer.
graph fan_out(size_t n) {
  graph_builder b;
  auto x = b.input();
  for (size_t i = 0; i < n; ++i)
    b.output(b.add("identity", {x}));
  return b.build();
}

// -- polling ------------------------------------------------------------------

uint64_t mem_objects(context& cx, uint32_t rank) {
  return must(cx.drv.worker_stats_of(rank), "worker stats").mem_objects;
}

template<class Pred>
void wait_for(Pred pred, const std::string& what,
              std::chrono::microseconds poll = 200us,
              std::chrono::milliseconds limit = 60s) {
  auto deadline = clock::now() + limit;
  while (!pred()) {
    if (clock::now() > deadline)
      throw failure("timed out waiting for " + what);
    if (poll.count() > 0)
      std::this_thread::sleep_for(poll);
  }
}

/// Sends queued releases and waits until `rank` holds at most `objects`.
void settle(context& cx, uint32_t rank, uint64_t objects) {
  must(cx.drv.flush(), "flush");
  wait_for([&] { return mem_objects(cx, rank) <= objects; },
           "rank " + std::to_string(rank) + " to free its objects");
}

/// Sends queued releases and waits until `rank`'s object count stops
/// changing (releases of earlier workloads are applied); returns it.
uint64_t quiesce(context& cx, uint32_t rank) {
  must(cx.drv.flush(), "flush");
  auto deadline = clock::now() + std::chrono::seconds{10};
  auto last = mem_objects(cx, rank);
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds{25});
    auto now = mem_objects(cx, rank);
    if (now == last || clock::now() > deadline)
      return now;
    last = now;
  }
}

// -- single round trips -------------------------------------------------------

/// A bare CAF request/response to a worker (its `ping`).
double ping_us(caf::scoped_actor& self, const worker_actor& w) {
  caf::error err;
  auto t0 = clock::now();
  self->request(w, request_timeout, ping_atom::value)
      .receive([](ping_atom) {}, [&](caf::error& e) { err = std::move(e); });
  auto us = us_since(t0);
  if (err)
    throw failure("ping: " + describe(err));
  return us;
}

/// One task through the driver facade (`driver::run`); the output handle
/// is dropped after the clock stops.
double api_task_us(context& cx, uint32_t rank, const graph& g,
                   const host_var& x) {
  auto t0 = clock::now();
  auto out = must(cx.drv.run(g, {x}, {rank}), "run");
  return us_since(t0);
}

/// One task sent to the driver actor from a long-lived scoped actor (no
/// facade: the driver actor's own cost).
double actor_task_us(context& cx, caf::scoped_actor& self, uint32_t rank,
                     const graph& g, const std::string& input) {
  task_request req;
  req.task_id = cx.next_task_id++;
  req.program = g;
  req.inputs = {input};
  caf::error err;
  task_reply reply;
  auto t0 = clock::now();
  self->request(cx.drv.handle(), request_timeout, run_atom::value, rank,
                std::move(req))
      .receive([&](task_reply& r) { reply = std::move(r); },
               [&](caf::error& e) { err = std::move(e); });
  auto us = us_since(t0);
  if (err)
    throw failure("run via driver actor: " + describe(err));
  for (auto& uri : reply.outputs)
    cx.drv.adopt(rank, std::move(uri)); // dropped at once: queued release
  return us;
}

/// A task sent by `self` straight to the worker (its own session, no
/// driver actor): the worker's cost plus one BASP round trip.
double direct_task_us(caf::scoped_actor& self, const worker_actor& w,
                      const session_key& key, task_request req,
                      std::vector<std::string>& outputs) {
  caf::error err;
  auto t0 = clock::now();
  self->request(w, request_timeout, run_atom::value, key, std::move(req))
      .receive(
          [&](task_reply& r) {
            for (auto& uri : r.outputs)
              outputs.push_back(std::move(uri));
          },
          [&](caf::error& e) { err = std::move(e); });
  auto us = us_since(t0);
  if (err)
    throw failure("run directly on the worker: " + describe(err));
  return us;
}

/// A request/response between two actors of this process.
caf::behavior echo_actor(caf::event_based_actor*) {
  return {[](ping_atom x) {
    return x;
  }};
}

/// CPU time of this process and of the workers over a phase of `n` ops.
struct cpu_meter {
  explicit cpu_meter(context& cx)
      : cx(cx), self0(cpu_seconds_self()), workers0(cx.worker_cpu()) {
    // nop
  }

  /// Microseconds of CPU per op: {this process, workers}.
  std::pair<double, double> per_op_us(size_t n) const {
    auto k = 1e6 / static_cast<double>(n);
    return {(cpu_seconds_self() - self0) * k, (cx.worker_cpu() - workers0) * k};
  }

  context& cx;
  double self0;
  double workers0;
};

// -- pipelined submission -----------------------------------------------------

/// `n` requests sent at once, shared by several submitting actors (CAF 0.17
/// keeps an actor's outstanding responses in a flat map searched linearly,
/// so one actor with n outstanding requests costs O(n) per reply); `done`
/// is set on the last reply.
struct pipeline_job {
  size_t n = 0;
  size_t submitters = 1;
  std::vector<std::string> inputs; // per rank (task pipelines)
  graph program;
  uint64_t first_id = 0;
  std::promise<void> done;
  clock::time_point t0;
  clock::time_point t1;
  std::atomic<size_t> left{0};
  std::mutex mtx; // guards the members below
  size_t errors = 0;
  std::string first_error;
  std::vector<std::vector<std::string>> outputs; // per rank

  double per_second() const {
    return static_cast<double>(n)
           / std::chrono::duration<double>(t1 - t0).count();
  }

  /// Requests of submitter `k`: indexes k, k + submitters, ...
  size_t share_of(size_t k) const {
    return n / submitters + (k < n % submitters ? 1 : 0);
  }

  /// Counts one reply; `mine` counts the submitter's own replies left.
  void reply_done(caf::event_based_actor* self, size_t& mine) {
    if (--mine == 0)
      self->quit();
    if (--left == 0) {
      t1 = clock::now();
      done.set_value();
    }
  }

  void failed(caf::event_based_actor* self, size_t& mine,
              const caf::error& err) {
    {
      std::lock_guard guard{mtx};
      if (errors++ == 0)
        first_error = describe(err);
    }
    reply_done(self, mine);
  }
};

/// Submitter `k` of a task pipeline: sends its share of tiny tasks to the
/// driver actor, round robin over the ranks of `job->inputs`, all before
/// handling the first reply.
caf::behavior task_pipeliner(caf::event_based_actor* self, driver_actor d,
                             size_t k, std::shared_ptr<pipeline_job> job) {
  auto mine = std::make_shared<size_t>(job->share_of(k));
  for (size_t i = k; i < job->n; i += job->submitters) {
    auto rank = static_cast<uint32_t>(i % job->inputs.size());
    task_request req;
    req.task_id = job->first_id + i;
    req.program = job->program;
    req.inputs = {job->inputs[rank]};
    self->request(d, request_timeout, run_atom::value, rank, std::move(req))
        .then(
            [self, job, rank, mine](task_reply& r) {
              {
                std::lock_guard guard{job->mtx};
                for (auto& uri : r.outputs)
                  job->outputs[rank].push_back(std::move(uri));
              }
              job->reply_done(self, *mine);
            },
            [self, job, mine](caf::error& err) {
              job->failed(self, *mine, err);
            });
  }
  return {[](ping_atom) {
  }}; // alive until its last reply (quit)
}

/// The bare CAF counterpart: pings to the workers, round robin.
caf::behavior ping_pipeliner(caf::event_based_actor* self,
                             std::vector<worker_actor> workers, size_t k,
                             std::shared_ptr<pipeline_job> job) {
  auto mine = std::make_shared<size_t>(job->share_of(k));
  for (size_t i = k; i < job->n; i += job->submitters)
    self->request(workers[i % workers.size()], request_timeout,
                  ping_atom::value)
        .then([self, job, mine](ping_atom) { job->reply_done(self, *mine); },
              [self, job, mine](caf::error& err) {
                job->failed(self, *mine, err);
              });
  return {[](ping_atom) {
  }};
}

template<class F, class Target>
void run_pipeline(context& cx, F fun, std::shared_ptr<pipeline_job> job,
                  const Target& target) {
  job->submitters = std::max<size_t>(1, std::min(job->submitters, job->n));
  job->left = job->n;
  job->outputs.resize(job->inputs.size());
  auto fut = job->done.get_future();
  job->t0 = clock::now();
  for (size_t k = 0; k < job->submitters; ++k)
    cx.sys.spawn(fun, target, k, job);
  if (fut.wait_for(std::chrono::seconds{300}) != std::future_status::ready)
    throw failure("pipeline of " + std::to_string(job->n)
                  + " requests did not finish within 300 s");
  std::lock_guard guard{job->mtx};
  if (job->errors > 0)
    throw failure(std::to_string(job->errors) + " of " + std::to_string(job->n)
                  + " pipelined requests failed, first: " + job->first_error);
}

// -- bulk object --------------------------------------------------------------

void ensure_big(context& cx) {
  if (cx.big.has(0))
    return;
  progress(cx, "putting the bulk object");
  cx.big = must(cx.drv.put(0, big_value(cx.bulk_bytes())), "put bulk object");
}

double gbps(size_t bytes, double seconds) {
  return static_cast<double>(bytes) / seconds / 1e9;
}

// -- workloads ----------------------------------------------------------------

void task_rtt(context& cx) {
  auto n = cx.opts.rtt_samples;
  auto warm = std::min<size_t>(100, n);
  auto x = must(cx.drv.put(0, tiny_value()), "put tiny input");
  auto uri = *x.uri(0);
  auto g = unary("sum");
  caf::scoped_actor self{cx.sys};
  auto& w = cx.workers[0];
  // The scoped actor's own session on the worker, for direct tasks.
  std::string own_input;
  session_key key;
  {
    caf::error err;
    self->request(w, request_timeout, hello_atom::value,
                  [] {
                    hello_request req;
                    req.client = "objstore-bench direct";
                    return req;
                  }())
        .receive([&](session_info& info) { key = info.key; },
                 [&](caf::error& e) { err = std::move(e); });
    if (err)
      throw failure("hello on the worker directly: " + describe(err));
    self->request(w, request_timeout, put_atom::value, key,
                  put_request{wire_value{tiny_value()}, {}})
        .receive([&](std::string& u) { own_input = std::move(u); },
                 [&](caf::error& e) { err = std::move(e); });
    if (err)
      throw failure("put on the worker directly: " + describe(err));
  }
  auto echo = cx.sys.spawn(echo_actor);
  std::vector<std::string> direct_outputs;
  auto direct = [&] {
    task_request req;
    req.task_id = cx.next_task_id++;
    req.program = g;
    req.inputs = {own_input};
    auto us = direct_task_us(self, w, key, std::move(req), direct_outputs);
    if (direct_outputs.size() >= 256)
      self->send(w, release_atom::value, key, std::move(direct_outputs));
    direct_outputs.clear();
    return us;
  };
  auto local = [&] {
    auto t0 = clock::now();
    self->request(echo, request_timeout, ping_atom::value)
        .receive([](ping_atom) {}, [](caf::error&) {});
    return us_since(t0);
  };
  // CPU is metered in one phase per path, each after its own warm-up (this
  // process and the worker processes).
  auto phase = [&](auto fn, std::pair<double, double>* cpu) {
    for (size_t i = 0; i < warm; ++i)
      fn();
    cpu_meter meter{cx};
    for (size_t i = 0; i < n; ++i)
      fn();
    *cpu = meter.per_op_us(n);
  };
  std::pair<double, double> cpu_bare;
  std::pair<double, double> cpu_api;
  std::pair<double, double> cpu_direct;
  phase([&] { return ping_us(self, w); }, &cpu_bare);
  phase([&] { return api_task_us(cx, 0, g, x); }, &cpu_api);
  phase(direct, &cpu_direct);
  // Latencies come from interleaved rounds (one sample of every path per
  // round): the ratio to the CAF ping does not depend on which path ran
  // while the shared machine was busier.
  std::vector<double> bare;
  std::vector<double> api;
  std::vector<double> actor;
  std::vector<double> worker_only;
  std::vector<double> local_hop;
  for (size_t i = 0; i < n; ++i) {
    bare.push_back(ping_us(self, w));
    api.push_back(api_task_us(cx, 0, g, x));
    actor.push_back(actor_task_us(cx, self, 0, g, uri));
    worker_only.push_back(direct());
    local_hop.push_back(local());
  }
  self->send(w, release_atom::value, key, std::move(direct_outputs));
  self->request(w, request_timeout, close_atom::value, key)
      .receive([](uint64_t) {}, [](caf::error&) {});
  self->send_exit(echo, caf::exit_reason::user_shutdown);
  auto ratio = median(api) / median(bare);
  cx.idle_task_rtt_us = median(api);
  line(cx, "task_rtt")
      .num("task_rtt_us", median(api))
      .num("task_rtt_p99_us", p99(api))
      .num("caf_rtt_us", median(bare))
      .num("caf_rtt_p99_us", p99(bare))
      .num("ratio", ratio)
      .target("ratio", ratio, 1.5)
      .num("task_rtt_driver_actor_us", median(actor))
      .num("task_rtt_worker_direct_us", median(worker_only))
      .num("local_rtt_us", median(local_hop))
      .num("caf_rtt_cpu_us_driver_process", cpu_bare.first)
      .num("caf_rtt_cpu_us_workers", cpu_bare.second)
      .num("task_cpu_us_driver_process", cpu_api.first)
      .num("task_cpu_us_workers", cpu_api.second)
      .num("direct_task_cpu_us_driver_process", cpu_direct.first)
      .num("direct_task_cpu_us_workers", cpu_direct.second)
      .count("samples", n)
      .str("op", "sum(int64[8])")
      .print();
}

void tasks_per_s(context& cx) {
  std::vector<host_var> inputs;
  std::vector<uint64_t> base;
  for (uint32_t r = 0; r < 2; ++r) {
    inputs.push_back(must(cx.drv.put(r, tiny_value()), "put tiny input"));
    base.push_back(quiesce(cx, r));
  }
  for (auto n : cx.opts.task_counts) {
    std::vector<double> tasks;
    std::vector<double> pings;
    std::vector<double> cpu_driver;
    std::vector<double> cpu_workers;
    for (size_t rep = 0; rep <= cx.opts.reps; ++rep) { // rep 0: warm-up
      auto job = std::make_shared<pipeline_job>();
      job->n = n;
      job->submitters = cx.opts.submitters;
      job->program = unary("sum");
      for (uint32_t r = 0; r < 2; ++r)
        job->inputs.push_back(*inputs[r].uri(r));
      job->first_id = cx.next_task_id;
      cx.next_task_id += job->n;
      cpu_meter meter{cx};
      run_pipeline(cx, task_pipeliner, job, cx.drv.handle());
      if (rep > 0) {
        tasks.push_back(job->per_second());
        auto [driver_us, workers_us] = meter.per_op_us(job->n);
        cpu_driver.push_back(driver_us);
        cpu_workers.push_back(workers_us);
      }
      for (uint32_t r = 0; r < 2; ++r)
        caf::anon_send(cx.drv.handle(), release_atom::value, r,
                       std::move(job->outputs[r]));
      for (uint32_t r = 0; r < 2; ++r)
        settle(cx, r, base[r]);
      auto ping_job = std::make_shared<pipeline_job>();
      ping_job->n = n;
      ping_job->submitters = cx.opts.submitters;
      run_pipeline(cx, ping_pipeliner, ping_job, cx.workers);
      if (rep > 0)
        pings.push_back(ping_job->per_second());
    }
    uint64_t failed = 0;
    for (uint32_t r = 0; r < 2; ++r)
      failed += must(cx.drv.worker_stats_of(r), "stats").tasks_failed;
    auto rate = median(tasks);
    line(cx, "tasks_per_s")
        .num("tasks_per_s", rate)
        .target("tasks_per_s", rate, 30000, true)
        .num("caf_pings_per_s", median(pings))
        .num("ratio", rate / median(pings))
        .num("tasks_per_s_min", *std::min_element(tasks.begin(), tasks.end()))
        .num("tasks_per_s_max", *std::max_element(tasks.begin(), tasks.end()))
        .num("cpu_us_per_task_driver_process", median(cpu_driver))
        .num("cpu_us_per_task_workers", median(cpu_workers))
        .count("tasks", n)
        .count("submitters", cx.opts.submitters)
        .count("reps", cx.opts.reps)
        .count("workers", 2)
        .count("worker_tasks_failed", failed)
        .print();
  }
}

/// The raw TCP pump baselines of this mode (measured on first use).
const std::vector<std::vector<double>>& pump_baseline(context& cx) {
  if (!cx.pump.empty())
    return cx.pump;
  progress(cx, "raw TCP pump baselines");
  // Pointer hand-off in-process: only the ceiling is of interest.
  auto shortcut = cx.mode == "inproc" && cx.opts.local_shortcut;
  for (auto v : {tcp_variant::warm, tcp_variant::fresh,
                 tcp_variant::fresh_checksum, tcp_variant::fresh_hugepage}) {
    if (shortcut && v != tcp_variant::warm) {
      cx.pump.emplace_back();
      continue;
    }
    std::string err;
    // Cheap rounds (~0.1 s): at least 10, the ceiling varies run to run.
    cx.pump.push_back(tcp_pump(cx.opts.self_exe, cx.bulk_bytes(),
                               std::max<size_t>(cx.opts.reps, 10), v, err));
    if (cx.pump.back().empty()) {
      cx.pump.clear();
      throw failure(std::string{"tcp baseline ("} + to_string(v) + "): " + err);
    }
  }
  return cx.pump;
}

/// Adds the rates of one bulk workload and their ratio to the warm pump.
json_line& with_rates(json_line& out, context& cx, const std::string& name,
                      const std::vector<double>& rates) {
  auto& tcp = pump_baseline(cx);
  auto rate = median(rates);
  auto ceiling = median(tcp[0]);
  return out.num(name, rate)
      .num(name + "_min", *std::min_element(rates.begin(), rates.end()))
      .num(name + "_max", *std::max_element(rates.begin(), rates.end()))
      .num("tcp_gbps", ceiling)
      .num("tcp_gbps_min", *std::min_element(tcp[0].begin(), tcp[0].end()))
      .num("tcp_gbps_max", *std::max_element(tcp[0].begin(), tcp[0].end()))
      .num("ratio", rate / ceiling)
      .target("ratio", rate / ceiling, 0.75, true);
}

void put_gbps(context& cx) {
  auto bytes = cx.bulk_bytes();
  auto v = big_value(bytes);
  pump_baseline(cx);
  auto base = quiesce(cx, 0);
  auto streamed0 = must(cx.drv.stats(), "driver stats").streamed_puts;
  std::vector<double> rates;
  for (size_t rep = 0; rep <= cx.opts.reps; ++rep) {
    auto t0 = clock::now();
    auto x = must(cx.drv.put(0, v), "put bulk object");
    auto s = seconds_since(t0);
    if (rep > 0)
      rates.push_back(gbps(bytes, s));
    if (rep == cx.opts.reps && !cx.big.has(0)) {
      cx.big = std::move(x);
    } else {
      x.reset();
      settle(cx, 0, base);
    }
  }
  auto streamed
      = must(cx.drv.stats(), "driver stats").streamed_puts - streamed0;
  auto out = line(cx, "put_gbps");
  with_rates(out, cx, "put_gbps", rates)
      .count("bytes", bytes)
      .count("reps", cx.opts.reps)
      .count("streamed", streamed)
      .print();
}

void fetch_gbps(context& cx) {
  ensure_big(cx);
  pump_baseline(cx);
  auto bytes = cx.bulk_bytes();
  auto streamed0 = must(cx.drv.stats(), "driver stats").streamed_fetches;
  std::vector<double> rates;
  for (size_t rep = 0; rep <= cx.opts.reps; ++rep) {
    auto t0 = clock::now();
    auto v = must(cx.drv.fetch(0, cx.big), "fetch bulk object");
    auto s = seconds_since(t0);
    if (!v || v->size_bytes() != bytes)
      throw failure("fetch returned " + std::to_string(v ? v->size_bytes() : 0)
                    + " bytes, expected " + std::to_string(bytes));
    if (rep > 0)
      rates.push_back(gbps(bytes, s));
  }
  auto streamed
      = must(cx.drv.stats(), "driver stats").streamed_fetches - streamed0;
  auto out = line(cx, "fetch_gbps");
  with_rates(out, cx, "fetch_gbps", rates)
      .count("bytes", bytes)
      .count("reps", cx.opts.reps)
      .count("streamed", streamed)
      .print();
}

void transfer_gbps(context& cx) {
  ensure_big(cx);
  auto bytes = cx.bulk_bytes();
  auto& tcp = pump_baseline(cx);
  auto shortcut = cx.mode == "inproc" && cx.opts.local_shortcut;
  auto base = quiesce(cx, 1);
  std::vector<double> rates;
  for (size_t rep = 0; rep <= cx.opts.reps; ++rep) {
    auto t0 = clock::now();
    auto moved = must(cx.drv.transfer(cx.big, 0, 1), "transfer 0 -> 1");
    auto s = seconds_since(t0);
    if (rep > 0)
      rates.push_back(gbps(bytes, s));
    moved.reset();
    settle(cx, 1, base);
  }
  auto src = must(cx.drv.worker_stats_of(0), "stats");
  auto rate = median(rates);
  auto out = line(cx, "transfer_gbps");
  with_rates(out, cx, "transfer_gbps", rates)
      .num("tcp_fresh_buffer_gbps", median(tcp[1]))
      .num("tcp_fresh_buffer_checksum_gbps", median(tcp[2]))
      .num("tcp_fresh_hugepage_gbps", median(tcp[3]))
      .num("ratio_vs_fresh_checksum", rate / median(tcp[2]))
      .count("bytes", bytes)
      .count("reps", cx.opts.reps)
      .count("tcp_rounds", tcp[0].size())
      .count("max_in_flight_bytes", src.transfer_max_in_flight)
      .flag("local_shortcut", shortcut)
      .print();
}

/// One object of `--size-gib` (default 4.5 GiB, past every 32-bit length)
/// put to rank 0 and fetched back: time only. The driver's copy is freed
/// before the fetch, so two copies are alive at most.
void big_roundtrip(context& cx) {
  auto bytes = static_cast<size_t>(cx.opts.size_gib * double(1u << 30)) / 8 * 8;
  auto n = static_cast<int64_t>(bytes / 8);
  auto t_make = clock::now();
  value_ptr v;
  {
    auto [t, raw] = tensor::allocate(dtype::int64, {n});
    auto* p = reinterpret_cast<int64_t*>(raw);
    for (int64_t i = 0; i < n; ++i)
      p[i] = i;
    v = make_value(std::move(t));
  }
  auto make_s = seconds_since(t_make);
  auto t0 = clock::now();
  auto x = must(cx.drv.put(0, v), "put big object");
  auto put_s = seconds_since(t0);
  v.reset();
  auto t1 = clock::now();
  auto back = must(cx.drv.fetch(0, x), "fetch big object");
  auto fetch_s = seconds_since(t1);
  if (!back || back->size_bytes() != bytes)
    throw failure("fetch returned "
                  + std::to_string(back ? back->size_bytes() : 0)
                  + " bytes, expected " + std::to_string(bytes));
  auto xs = back->as_tensor().values<int64_t>();
  for (auto i : {int64_t{0}, n / 2, n - 1})
    if (xs[static_cast<size_t>(i)] != i)
      throw failure("element " + std::to_string(i) + " came back as "
                    + std::to_string(xs[static_cast<size_t>(i)]));
  back.reset();
  x.reset();
  line(cx, "big_roundtrip")
      .num("size_gib", cx.opts.size_gib)
      .num("make_s", make_s)
      .num("put_s", put_s)
      .num("fetch_s", fetch_s)
      .num("put_gbps", gbps(bytes, put_s))
      .num("fetch_gbps", gbps(bytes, fetch_s))
      .count("bytes", bytes)
      .print();
}

void rtt_under_transfer(context& cx) {
  ensure_big(cx);
  auto y = must(cx.drv.put(1, tiny_value()), "put tiny input");
  auto g = unary("sum");
  caf::scoped_actor self{cx.sys};
  std::vector<double> idle;
  std::vector<double> idle_ping;
  auto n_idle = std::min<size_t>(cx.opts.rtt_samples, 500);
  for (size_t i = 0; i < n_idle + 50; ++i) {
    auto t = api_task_us(cx, 1, g, y);
    auto c = ping_us(self, cx.workers[1]);
    if (i >= 50) {
      idle.push_back(t);
      idle_ping.push_back(c);
    }
  }
  auto base = quiesce(cx, 1);
  std::vector<double> busy;
  std::vector<double> busy_ping;
  size_t empty_transfers = 0;
  for (size_t rep = 0; rep < cx.opts.reps; ++rep) {
    std::atomic<bool> done{false};
    auto pending = std::async(std::launch::async, [&] {
      auto r = cx.drv.transfer(cx.big, 0, 1);
      done = true;
      return r;
    });
    // Once the source pinned the object its bytes are streaming.
    wait_for(
        [&] {
          if (done)
            return true;
          auto st = cx.drv.worker_stats_of(0);
          return st && st->pinned_objects > 0;
        },
        "the transfer to start", 0us);
    size_t got = 0;
    while (!done) {
      auto t = api_task_us(cx, 1, g, y);
      auto c = ping_us(self, cx.workers[1]);
      if (!done) {
        busy.push_back(t);
        busy_ping.push_back(c);
        ++got;
      }
    }
    if (got == 0)
      ++empty_transfers;
    auto moved = must(pending.get(), "transfer 0 -> 1");
    moved.reset();
    settle(cx, 1, base);
  }
  auto rtt = median(busy);
  auto ratio = rtt / median(idle);
  auto j = line(cx, "rtt_under_transfer");
  if (busy.empty())
    j.str("note", "every transfer ended before a task round trip did "
                  "(pointer hand-off)");
  j.num("rtt_under_transfer_us", rtt)
      .num("rtt_under_transfer_p99_us", p99(busy))
      .num("idle_task_rtt_us", median(idle))
      .num("ratio", ratio)
      .target("ratio", ratio, 3)
      .num("ratio_vs_task_rtt", rtt / cx.idle_task_rtt_us)
      .num("caf_rtt_under_transfer_us", median(busy_ping))
      .num("caf_rtt_idle_us", median(idle_ping))
      .count("samples", busy.size())
      .count("transfers", cx.opts.reps)
      .count("transfers_without_samples", empty_transfers)
      .print();
}

/// Milliseconds since `t0`.
double ms_since(clock::time_point t0) {
  return us_since(t0) / 1000.0;
}

/// One stats round trip through the driver (a control message the worker
/// answers on its own thread).
double stats_us(context& cx, uint32_t rank) {
  auto t0 = clock::now();
  must(cx.drv.worker_stats_of(rank), "stats");
  return us_since(t0);
}

/// Control round trips (stats and CAF ping) to a worker whose every task
/// thread runs a long kernel and that has 100 tasks queued, next to the
/// same round trips idle; then how long a cancel takes to land on a queued
/// and on a running task under that load.
void control_under_load(context& cx) {
  constexpr uint32_t rank = 1;
  constexpr uint64_t queued = 100;
  auto y = must(cx.drv.put(rank, tiny_value()), "put tiny input");
  caf::scoped_actor self{cx.sys};
  auto n = std::min<size_t>(cx.opts.rtt_samples, 1000);
  std::vector<double> idle;
  std::vector<double> idle_ping;
  for (size_t i = 0; i < n + 50; ++i) {
    auto t = stats_us(cx, rank);
    auto c = ping_us(self, cx.workers[rank]);
    if (i >= 50) {
      idle.push_back(t);
      idle_ping.push_back(c);
    }
  }
  auto threads = must(cx.drv.worker_stats_of(rank), "stats").task_threads;
  auto sleeper = [] {
    graph_builder b;
    auto x = b.input();
    b.output(b.add("sleep", {x}, {make_attr("ms", int64_t{120'000})}));
    return b.build();
  }();
  std::vector<pending_run> runs;
  for (uint64_t i = 0; i < threads + queued; ++i)
    runs.push_back(cx.drv.submit(sleeper, {y}, {rank}));
  wait_for(
      [&] {
        auto st = cx.drv.worker_stats_of(rank);
        return st && st->task_threads_busy == threads
               && st->tasks_queued == queued;
      },
      "every task thread busy and 100 tasks queued", 0us);
  std::vector<double> busy;
  std::vector<double> busy_ping;
  for (size_t i = 0; i < n; ++i) {
    busy.push_back(stats_us(cx, rank));
    busy_ping.push_back(ping_us(self, cx.workers[rank]));
  }
  // Cancel latency: from cancel() until the run has failed `cancelled`.
  auto cancel_ms = [&](pending_run& r) {
    auto t0 = clock::now();
    r.cancel();
    if (!r.wait_for(std::chrono::seconds{30}))
      throw failure("a cancel did not land within 30 s");
    auto ms = ms_since(t0);
    auto out = r.get();
    if (out || code_of(out.error()) != errc::cancelled)
      throw failure("a cancelled run did not fail with `cancelled`");
    return ms;
  };
  std::vector<double> cancel_queued;
  for (size_t i = 0; i < 10; ++i)
    cancel_queued.push_back(cancel_ms(runs[runs.size() - 1 - i]));
  std::vector<double> cancel_running;
  for (uint64_t i = 0; i < threads; ++i)
    cancel_running.push_back(cancel_ms(runs[i]));
  for (auto& r : runs)
    r.cancel();
  for (auto& r : runs)
    if (r.wait_for(std::chrono::seconds{30}))
      static_cast<void>(r.get());
  wait_for(
      [&] {
        auto st = cx.drv.worker_stats_of(rank);
        return st && st->tasks_running == 0;
      },
      "the cancelled tasks to end", 0us);
  auto ratio = median(busy) / median(idle);
  line(cx, "control_under_load")
      .num("control_busy_us", median(busy))
      .num("control_busy_p99_us", p99(busy))
      .num("control_idle_us", median(idle))
      .num("ratio", ratio)
      .target("ratio", ratio, 3)
      .target("control_busy_p99_us", p99(busy), 20'000)
      .num("caf_ping_busy_us", median(busy_ping))
      .num("caf_ping_idle_us", median(idle_ping))
      .num("cancel_queued_ms", median(cancel_queued))
      .num("cancel_running_ms", median(cancel_running))
      .num("cancel_running_max_ms",
           *std::max_element(cancel_running.begin(), cancel_running.end()))
      .count("task_threads", threads)
      .count("queued", queued)
      .count("samples", n)
      .print();
}

void driver_bytes_per_task(context& cx) {
  ensure_big(cx);
  auto g = unary("checksum");
  std::vector<double> total;
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t release = 0;
  for (size_t rep = 0; rep < cx.opts.reps; ++rep) {
    must(cx.drv.flush(), "flush");
    auto before = must(cx.drv.stats(), "driver stats");
    auto out = must(cx.drv.run(g, {cx.big}, {0}), "checksum task");
    auto mid = must(cx.drv.stats(), "driver stats");
    out.clear();
    must(cx.drv.flush(), "flush");
    auto after = must(cx.drv.stats(), "driver stats");
    sent = mid.bytes_sent - before.bytes_sent;
    received = mid.bytes_received - before.bytes_received;
    release = after.bytes_sent - mid.bytes_sent;
    total.push_back(static_cast<double>(after.bytes_sent - before.bytes_sent
                                        + after.bytes_received
                                        - before.bytes_received));
  }
  auto bytes = median(total);
  line(cx, "driver_bytes_per_task")
      .num("driver_bytes_per_task", bytes)
      .target("driver_bytes_per_task", bytes, 1024)
      .count("request_bytes", sent)
      .count("reply_bytes", received)
      .count("release_bytes", release)
      .count("input_bytes", cx.bulk_bytes())
      .str("op", "checksum")
      .print();
}

void release_ms(context& cx) {
  constexpr uint32_t rank = 1;
  auto n = cx.opts.release_handles;
  auto seed = must(cx.drv.put(rank, tiny_value()), "put seed");
  auto g = fan_out(n);
  // Releases still in flight from earlier workloads would free objects
  // during a measurement and end it early.
  auto base = quiesce(cx, rank);
  std::vector<double> automatic;
  std::vector<double> flushed;
  uint64_t msgs = 0;
  auto reps = std::max<size_t>(cx.opts.reps, 10); // cheap: ~10 ms each
  for (int explicit_flush = 0; explicit_flush < 2; ++explicit_flush) {
    for (size_t rep = 0; rep <= reps; ++rep) {
      auto outs = must(cx.drv.run(g, {seed}, {rank}), "fan-out task");
      if (mem_objects(cx, rank) != base + n)
        throw failure("rank 1 holds " + std::to_string(mem_objects(cx, rank))
                      + " objects, expected " + std::to_string(base + n));
      auto before = must(cx.drv.stats(), "driver stats");
      auto t0 = clock::now();
      outs.clear(); // drops n handles
      if (explicit_flush)
        must(cx.drv.flush(), "flush");
      wait_for([&] { return mem_objects(cx, rank) <= base; },
               "the worker to free the objects", 0us);
      auto ms = us_since(t0) / 1000;
      auto after = must(cx.drv.stats(), "driver stats");
      if (rep == 0)
        continue;
      (explicit_flush ? flushed : automatic).push_back(ms);
      if (!explicit_flush)
        msgs += after.release_msgs - before.release_msgs;
    }
  }
  auto ms = median(automatic);
  line(cx, "release_ms")
      .num("release_ms", ms)
      .num("release_p99_ms", p99(automatic))
      .target("release_ms", ms, 5)
      .num("release_with_flush_ms", median(flushed))
      .num("release_msgs_per_handle",
           static_cast<double>(msgs) / static_cast<double>(n * reps))
      .count("handles", n)
      .count("reps", reps)
      .num("release_delay_ms",
           cx.opts.release_delay_us >= 0
               ? static_cast<double>(cx.opts.release_delay_us) / 1000
               : 5.0)
      .print();
}

void gc_handles(context& cx) {
  constexpr uint32_t rank = 0;
  auto per_task
      = std::max<size_t>(1, std::min(cx.opts.gc_per_task, cx.opts.gc_handles));
  auto tasks = std::max<size_t>(1, cx.opts.gc_handles / per_task);
  auto handles = per_task * tasks;
  auto seed = must(cx.drv.put(rank, tiny_value()), "put seed");
  auto g = fan_out(per_task);
  auto base = quiesce(cx, rank);
  std::vector<double> total;
  std::vector<double> create;
  std::vector<double> drop;
  std::vector<double> release;
  uint64_t msgs = 0;
  for (size_t rep = 0; rep < cx.opts.gc_reps; ++rep) {
    auto before = must(cx.drv.stats(), "driver stats");
    auto t0 = clock::now();
    std::vector<std::vector<host_var>> held;
    held.reserve(tasks);
    for (size_t i = 0; i < tasks; ++i)
      held.push_back(must(cx.drv.run(g, {seed}, {rank}), "fan-out task"));
    auto t1 = clock::now();
    held.clear();
    auto t2 = clock::now();
    wait_for([&] { return mem_objects(cx, rank) <= base; },
             "the worker to free the objects", 1000us, 300s);
    auto t3 = clock::now();
    auto after = must(cx.drv.stats(), "driver stats");
    msgs = after.release_msgs - before.release_msgs;
    using secs = std::chrono::duration<double>;
    create.push_back(secs(t1 - t0).count());
    drop.push_back(secs(t2 - t1).count());
    release.push_back(secs(t3 - t2).count());
    total.push_back(secs(t3 - t0).count());
  }
  auto s = median(total);
  auto j = line(cx, "gc_handles");
  if (handles == 1'000'000)
    j.num("gc_1m_handles_s", s);
  else
    j.num("gc_1m_handles_s_extrapolated",
          s * 1e6 / static_cast<double>(handles));
  j.num("gc_s", s)
      .count("handles", handles)
      .num("create_s", median(create))
      .num("drop_s", median(drop))
      .num("release_s", median(release))
      .num("handles_per_s", static_cast<double>(handles) / s)
      .count("release_msgs", msgs)
      .count("tasks", tasks)
      .count("reps", cx.opts.gc_reps)
      .print();
}

// -- driving one mode ---------------------------------------------------------

int run_all(context& cx) {
  int failed = 0;
  auto t_mode = clock::now();
  auto step = [&](const char* name, void (*fn)(context&)) {
    if (!cx.opts.wants(name))
      return;
    auto t0 = clock::now();
    progress(cx, name);
    try {
      fn(cx);
    } catch (const std::exception& e) {
      ++failed;
      line(cx, name).str("error", e.what()).print();
    }
    std::fprintf(stderr, "[%s] %s took %.2f s\n", cx.mode.c_str(), name,
                 seconds_since(t0));
  };
  step("task_rtt", task_rtt);
  step("tasks_per_s", tasks_per_s);
  step("put_gbps", put_gbps);
  step("fetch_gbps", fetch_gbps);
  step("transfer_gbps", transfer_gbps);
  step("rtt_under_transfer", rtt_under_transfer);
  step("control_under_load", control_under_load);
  step("driver_bytes_per_task", driver_bytes_per_task);
  step("release_ms", release_ms);
  step("gc_handles", gc_handles);
  if (cx.opts.only.count("big_roundtrip") > 0)
    step("big_roundtrip", big_roundtrip);
  cx.big.reset();
  std::fprintf(stderr, "[%s] done in %.2f s\n", cx.mode.c_str(),
               seconds_since(t_mode));
  return failed;
}

std::vector<worker_actor> worker_proxies(caf::actor_system& sys,
                                         const cluster_spec& spec) {
  std::vector<worker_actor> result;
  for (auto& ep : spec.workers)
    result.push_back(
        must(sys.middleman().remote_actor<worker_actor>(ep.host, ep.port),
             "connect to " + ep.str()));
  return result;
}

/// Whether any workload of the 2-node clusters (`run_all`) is selected.
bool wants_two_nodes(const options& opts) {
  constexpr const char* names[]
      = {"task_rtt",           "tasks_per_s",           "put_gbps",
         "fetch_gbps",         "transfer_gbps",         "rtt_under_transfer",
         "control_under_load", "driver_bytes_per_task", "release_ms",
         "gc_handles",         "big_roundtrip"};
  return std::any_of(std::begin(names), std::end(names),
                     [&](const char* name) { return opts.wants(name); });
}

int run_two_processes(const options& opts) {
  worker_processes nodes;
  std::string err;
  if (!nodes.start(opts.node_path, worker_args(opts), 2, err)) {
    json_line{"cluster"}.str("mode", "processes").str("error", err).print();
    return -1;
  }
  auto spec = nodes.spec();
  caf::actor_system_config cfg;
  if (err = configure_driver_system(cfg, opts); !err.empty()) {
    json_line{"cluster"}.str("mode", "processes").str("error", err).print();
    return -1;
  }
  caf::actor_system sys{cfg};
  try {
    auto drv = must(driver::connect(sys, spec, driver_options(opts, nodes)),
                    "driver connect");
    context cx{opts, "processes", sys, *drv, worker_proxies(sys, spec)};
    cx.worker_cpu = [&nodes] {
      return nodes.cpu_seconds();
    };
    auto failed = run_all(cx);
    if (failed > 0) {
      nodes.keep_logs();
      std::fprintf(stderr, "[processes] worker logs kept in %s\n",
                   nodes.dir().c_str());
    }
    return failed;
  } catch (const std::exception& e) {
    json_line{"cluster"}
        .str("mode", "processes")
        .str("error", e.what())
        .print();
    return -1;
  }
}

} // namespace

driver_actor_options driver_options(const options& opts) {
  driver_actor_options result;
  if (opts.release_delay_us >= 0)
    result.release_delay = std::chrono::microseconds{opts.release_delay_us};
  if (opts.max_transfers_per_worker > 0)
    result.max_transfers_per_worker = opts.max_transfers_per_worker;
  if (opts.stream_threshold >= 0)
    result.stream_threshold = static_cast<uint64_t>(opts.stream_threshold);
  return result;
}

driver_actor_options driver_options(const options& opts,
                                    const worker_processes& nodes) {
  auto result = driver_options(opts);
  result.operator_secret = nodes.operator_secret();
  return result;
}

std::vector<std::string> worker_args(const options& opts) {
  auto result = opts.node_args;
  for (auto& kv : opts.caf_options)
    result.push_back("--" + kv);
  return result;
}

std::string configure_driver_system(caf::actor_system_config& cfg,
                                    const options& opts) {
  configure_system(cfg, 2);
  // As objstore::config does for drivers: objstore-node drops a peer that
  // is silent for its heartbeat timeout (3 s), so the driver must beat too.
  cfg.set("middleman.heartbeat-interval", caf::timespan{500ms});
  cfg.set("middleman.connection-timeout", caf::timespan{3s});
  if (opts.caf_options.empty())
    return {};
  caf::actor_system_config::string_list caf_args;
  for (auto& kv : opts.caf_options)
    caf_args.push_back("--" + kv);
  std::istringstream no_ini;
  if (auto err = cfg.parse(caf_args, no_ini))
    return "bad --caf option: " + cfg.render(err);
  return {};
}

int run_processes(const options& opts) {
  int failed = 0;
  if (wants_two_nodes(opts)) {
    auto n = run_two_processes(opts);
    failed += n < 0 ? 1 : n;
  }
  if (opts.wants("spill"))
    failed += run_spill(opts, "processes");
  if (opts.only.count("oss_gbps") > 0)
    failed += run_oss(opts);
  if (opts.wants("shuffle_scaling"))
    failed += run_shuffle_scaling(opts);
  return failed;
}

int run_inproc(const options& opts) {
  auto spilled = opts.wants("spill") ? run_spill(opts, "inproc") : 0;
  if (!wants_two_nodes(opts))
    return spilled;
  local_cluster_options lo;
  lo.workers = 2;
  lo.policy = fetch_policy::allow;
  lo.fs_roots = false;
  lo.driver = driver_options(opts);
  lo.data.local_shortcut = opts.local_shortcut;
  auto cluster = local_cluster::start(lo);
  if (!cluster) {
    json_line{"cluster"}
        .str("mode", "inproc")
        .str("error", describe(cluster.error()))
        .print();
    return -1;
  }
  auto& sys = (*cluster)->client_system();
  try {
    auto drv = must((*cluster)->connect(), "driver connect");
    context cx{opts, "inproc", sys, *drv,
               worker_proxies(sys, (*cluster)->spec())};
    return spilled + run_all(cx);
  } catch (const std::exception& e) {
    json_line{"cluster"}.str("mode", "inproc").str("error", e.what()).print();
    return -1;
  }
}

} // namespace objstore::bench
