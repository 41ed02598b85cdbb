#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/dataplane/tls.hpp"
#include "actors/driver/driver.hpp"
#include "actors/system.hpp" // configure_system, for existing callers
#include "actors/worker/node.hpp"

namespace objstore {

/// Options of a simulated cluster.
struct local_cluster_options {
  size_t workers = 3;
  fetch_policy policy = fetch_policy::allow;
  /// Per-node memory limit for mem:// payload bytes; 0 = none.
  uint64_t memory_limit = 0;
  /// Spill directory shared by the nodes (each spills below it to
  /// `rank-<rank>/`); empty = no spilling. Needs `memory_limit`.
  std::filesystem::path spill_dir;
  /// Fraction of `memory_limit` above which objects spill.
  double spill_threshold = object_store_options{}.spill_threshold;
  /// Per-node largest accepted object (payload bytes); 0 = none.
  uint64_t max_object_size = 0;
  /// Per-node most ops of one task graph; 0 = none.
  size_t max_graph_ops = node_options{}.max_graph_ops;
  /// Per-node most bytes of one task request; 0 = none.
  size_t max_graph_bytes = node_options{}.max_graph_bytes;
  /// Give each node an fs root in a fresh temp directory.
  bool fs_roots = true;
  /// Opcodes of every node; null = built-ins.
  std::shared_ptr<const op_registry> ops;
  /// Timeout and release batching of drivers from `connect()`.
  driver_actor_options driver;
  /// Give drivers from `connect()` operator access (node-wide `stats` and
  /// `objects`), through an operator secret made at start. Tests that play
  /// an ordinary tenant connect with `operator_drivers = false` or through
  /// `driver::connect(client_system(), spec(), opts)`.
  bool operator_drivers = true;
  /// Principals of every node (name -> secret; node_options::principals).
  std::map<std::string, std::string> principals;
  /// Read-only shared roots of every node (node_options: store.
  /// fs_shared_roots).
  std::vector<std::filesystem::path> shared_roots;
  /// The oss:// backend of every node (object_store_options::oss); none:
  /// no oss://.
  std::optional<oss_backend_options> oss;
  /// Mutual TLS for every connection (nodes and the client system); off
  /// when empty. Validated at start.
  tls_options tls;
  /// Data plane of every node. Transfers go over loopback TCP unless
  /// `data.local_shortcut` is set (then they hand values over by pointer,
  /// as between nodes of one embedding process).
  /// Closing connections to the workers' ports that carry no session.
  connection_guard_options connections;
  /// Every node's task threads and queue (default: 2 threads, so tests see
  /// queueing on any machine).
  task_executor_options tasks = [] {
    task_executor_options opts;
    opts.threads = 2;
    return opts;
  }();
  data_plane_options data = [] {
    data_plane_options opts;
    opts.local_shortcut = false;
    return opts;
  }();
};

/// N worker nodes in this process, each with its own `actor_system`,
/// published on an ephemeral loopback port: drivers reach them through
/// real BASP connections, so every message is serialized. For tests,
/// examples and benchmarks.
class local_cluster {
public:
  /// Starts the nodes. Errors: fs root creation, publishing.
  static caf::expected<std::unique_ptr<local_cluster>>
  start(local_cluster_options options = {});

  local_cluster(const local_cluster&) = delete;
  local_cluster& operator=(const local_cluster&) = delete;

  /// Stops every node and removes the temp fs roots.
  ~local_cluster();

  size_t size() const noexcept { return nodes_.size(); }

  /// Loopback endpoints of the workers, rank order.
  const cluster_spec& spec() const noexcept { return spec_; }

  /// An actor system (with objstore's types) for drivers in this process.
  caf::actor_system& client_system() { return *client_sys_; }

  /// Connects a new driver (a new session on every worker) over loopback.
  caf::expected<std::unique_ptr<driver>> connect();
  caf::expected<std::unique_ptr<driver>> connect(driver_actor_options opts);

  /// Stops node `rank` abruptly: kernels are cancelled, its actors are
  /// killed and its port closed. Drivers see the worker go down.
  void kill(uint32_t rank);

  /// Whether node `rank` is running (not killed).
  bool alive(uint32_t rank) const { return !nodes_.at(rank)->killed; }

  /// The node's actors and store (in-process access for tests).
  const node_handles& node(uint32_t rank) const {
    return nodes_.at(rank)->handles;
  }

  /// The actor system hosting node `rank`.
  caf::actor_system& system_of(uint32_t rank) { return *nodes_.at(rank)->sys; }

  /// The node's fs root (empty without fs roots).
  const std::filesystem::path& fs_root(uint32_t rank) const {
    return nodes_.at(rank)->fs_root;
  }

  /// The nodes' operator secret (random, made at start).
  const std::string& operator_secret() const noexcept {
    return operator_secret_;
  }

  /// Payload stats of a node's store read in-process (no session needed).
  store_stats store_stats_of(uint32_t rank) const;

private:
  struct node_runtime {
    std::unique_ptr<caf::actor_system_config> cfg;
    std::unique_ptr<caf::actor_system> sys;
    node_handles handles;
    std::filesystem::path fs_root;
    uint16_t port = 0;
    bool killed = false;
  };

  local_cluster() = default;

  local_cluster_options options_;
  std::unique_ptr<caf::actor_system_config> client_cfg_;
  std::unique_ptr<caf::actor_system> client_sys_;
  std::vector<std::unique_ptr<node_runtime>> nodes_;
  std::filesystem::path temp_dir_;
  cluster_spec spec_;
  std::string operator_secret_;
};

} // namespace objstore
