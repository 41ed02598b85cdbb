#include "apps/worker_main.hpp"

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/dataplane/tls.hpp"
#include "actors/log.hpp"
#include "actors/metrics/node_exporter.hpp"
#include "actors/worker/endpoint.hpp"
#include "actors/worker/node.hpp"
#include "apps/demo_job.hpp"
#include "store/error.hpp"
#include "store/file_backend.hpp"

namespace objstore::apps {

void block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_stop_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

namespace {

/// Writes `text` to `path` atomically (temp file + rename).
bool write_file(const std::string& path, const std::string& text) {
  auto tmp = path + ".tmp";
  {
    std::ofstream out{tmp};
    out << text << '\n';
    if (!out)
      return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

} // namespace

int run_worker(caf::actor_system& sys, const config& cfg) {
  auto opts = cfg.make_node_options();
  if (!opts) {
    log::error(describe(opts.error()));
    return 2;
  }
  auto node = spawn_node(sys, std::move(*opts));
  if (!node) {
    log::error(describe(node.error()));
    return 1;
  }
  if (auto* files = node->objects->files()) {
    // What the start-up scan of the fs roots skipped (loops, FIFOs,
    // unreadable entries): reported, never fatal.
    for (auto& warning : files->scan_warnings())
      log::warn("fs roots: skipped " + warning);
    auto more = files->scan_warning_count() - files->scan_warnings().size();
    if (more > 0)
      log::warn("fs roots: " + std::to_string(more) + " more entries skipped");
  }
  auto port
      = publish_node(sys, *node, static_cast<uint16_t>(cfg.port), cfg.host);
  if (!port) {
    log::error("cannot listen on " + cfg.host + ":" + std::to_string(cfg.port)
               + ": " + describe(port.error()));
    stop_node(*node);
    return 1;
  }
  auto st = node->objects->stats();
  std::cout << "objstore-node: worker rank " << cfg.rank << " listening on "
            << cfg.host << ":" << *port << " (data port "
            << (node->data ? node->data->port() : 0) << ", policy "
            << cfg.fetch_policy << ", " << st.of(scheme::fs).objects
            << " fs objects)" << std::endl;
  if (!cfg.port_file.empty()
      && !write_file(cfg.port_file, std::to_string(*port))) {
    log::error("cannot write " + cfg.port_file);
    stop_node(*node);
    return 1;
  }
  std::unique_ptr<node_exporter> metrics;
  if (cfg.metrics_port != 0 || !cfg.metrics_port_file.empty()) {
    auto exporter = node_exporter::start(
        sys, *node, cfg.metrics_host, static_cast<uint16_t>(cfg.metrics_port));
    if (!exporter) {
      log::error(describe(exporter.error()));
      stop_node(*node);
      return 1;
    }
    metrics = std::move(*exporter);
    std::cout << "objstore-node: metrics on http://" << cfg.metrics_host << ":"
              << metrics->port() << "/metrics" << std::endl;
    if (!cfg.metrics_port_file.empty()
        && !write_file(cfg.metrics_port_file,
                       std::to_string(metrics->port()))) {
      log::error("cannot write " + cfg.metrics_port_file);
      metrics->stop();
      stop_node(*node);
      return 1;
    }
  }
  auto sig = wait_for_stop_signal();
  std::cout << "objstore-node: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
            << ", draining" << std::endl;
  // Whatever hangs past the drain (a read of a stuck filesystem, an actor
  // that does not exit), the process ends: the drain timeout plus 5 s.
  std::thread{[limit = cfg.timeout + std::chrono::seconds{5}] {
    std::this_thread::sleep_for(limit);
    log::error("shutdown stuck, exiting now");
    std::_Exit(1);
  }}.detach();
  // Stop accepting new peers, let running tasks finish (bounded).
  unpublish_worker(sys, node->worker, *port);
  auto deadline = std::chrono::steady_clock::now() + cfg.timeout;
  for (;;) {
    auto running = node->running_tasks->load();
    if (running == 0 || std::chrono::steady_clock::now() > deadline)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  if (metrics)
    metrics->stop();
  stop_node(*node);
  std::cout << "objstore-node: stopped" << std::endl;
  return 0;
}

} // namespace objstore::apps

namespace objstore::apps {

int run_demo(caf::actor_system& sys, const config& cfg) {
  auto spec = cfg.make_cluster_spec();
  if (!spec) {
    log::error(describe(spec.error()));
    return 2;
  }
  auto opts = cfg.make_driver_options();
  opts.client = "objstore-node demo";
  auto d = driver::connect(sys, *spec, opts);
  if (!d) {
    log::error(describe(d.error()));
    return 1;
  }
  auto result = run_demo_job(**d, cfg.demo_rows, cfg.demo_seed, std::cout);
  if (!result) {
    log::error("demo failed: " + describe(result.error()));
    return 1;
  }
  std::cout << "\nresult (revealed per-key sums of amounts > 10, "
            << result->sums.size() << " keys):\n";
  size_t shown = 0;
  double total = 0;
  for (auto& [key, sum] : result->sums) {
    total += sum;
    if (shown++ < 8)
      std::cout << "  key " << key << ": " << std::fixed << std::setprecision(2)
                << sum << '\n';
  }
  std::cout << "  ... total " << std::fixed << std::setprecision(2) << total
            << '\n';
  std::cout << "driver saw " << result->driver_bytes_received
            << " bytes received / " << result->driver_bytes_sent
            << " bytes sent for " << result->data_bytes
            << " bytes of data processed on the workers (" << result->rows
            << " rows)\n";
  auto counts = [](const std::vector<uint64_t>& xs) {
    std::string out;
    for (size_t r = 0; r < xs.size(); ++r)
      out += (r ? ", " : "") + std::string{"rank "} + std::to_string(r) + ": "
             + std::to_string(xs[r]);
    return out;
  };
  std::cout << "objects while holding handles: " << counts(result->objects_held)
            << '\n'
            << "objects after dropping them:   "
            << counts(result->objects_after) << '\n';
  auto expected
      = demo_reference((*d)->world_size(), cfg.demo_rows, cfg.demo_seed);
  bool match = expected && same_sums(*expected, result->sums);
  std::cout << "matches single-process computation: " << (match ? "yes" : "NO")
            << std::endl;
  return match ? 0 : 1;
}

} // namespace objstore::apps
