#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "actors/metrics/metrics_server.hpp"
#include "actors/worker/node.hpp"

namespace objstore {

/// Renders a worker node's metrics in Prometheus' text format: the
/// worker's counters (`m`, a snapshot the worker made), the data plane's
/// and the task threads' live numbers (read from their atomics).
/// `fresh`: whether `m` answers this scrape (else the worker did not
/// answer in time and `m` is the last answer).
std::string render_node_metrics(const worker_metrics& m, bool fresh,
                                data_plane* data,
                                const task_executor* executor);

/// Serves a node's metrics over HTTP (objstore.metrics-port). Each scrape
/// asks the worker actor for a `worker_metrics` snapshot (a message in its
/// mailbox: the worker's thread is never blocked or locked, and no state
/// is shared with it) and waits at most `worker_timeout`; a worker that
/// does not answer in time is shown with its last snapshot and
/// `objstore_metrics_fresh 0`.
///
/// It keeps copies of the node's handles (actors, data plane, executor):
/// destroy it before `sys` shuts down.
class node_exporter {
public:
  static caf::expected<std::unique_ptr<node_exporter>>
  start(caf::actor_system& sys, const node_handles& node,
        const std::string& host, uint16_t port,
        std::chrono::milliseconds worker_timeout = std::chrono::seconds{2});

  /// The bound port (port 0 at start picks a free one).
  uint16_t port() const noexcept { return server_->port(); }

  /// One scrape's text, as served (also usable without HTTP).
  std::string scrape();

  void stop() { server_->stop(); }

private:
  node_exporter(caf::actor_system& sys, node_handles node,
                std::chrono::milliseconds worker_timeout);

  caf::actor_system& sys_;
  node_handles node_;
  std::chrono::milliseconds worker_timeout_;
  std::mutex mtx_;
  worker_metrics last_;
  std::unique_ptr<metrics_server> server_;
};

} // namespace objstore
