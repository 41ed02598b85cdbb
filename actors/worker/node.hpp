#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "actors/dataplane/data_plane.hpp"
#include "actors/exec/op_registry.hpp"
#include "actors/exec/task_executor.hpp"
#include "actors/worker/connection_guard.hpp"
#include "messages/interfaces.hpp"
#include "store/object_store.hpp"

namespace objstore {

/// Everything a worker node needs; built from the config struct by apps,
/// or directly by embedders and tests.
struct node_options {
  /// Position of this worker in the cluster spec.
  uint32_t rank = 0;
  /// The node's object store (mem id prefix, limits, fs roots).
  object_store_options store;
  /// Which objects a driver may fetch (enforced here, not by the driver).
  fetch_policy policy = fetch_policy::revealed_only;
  /// Opcodes this node executes; null means the built-ins.
  std::shared_ptr<const op_registry> ops;
  /// The node's worker-to-worker data connection.
  data_plane_options data;
  /// Most ops of one task graph, regions included (objstore.max-graph-ops);
  /// a larger task is refused with `resource_exhausted`. 0 = no limit.
  size_t max_graph_ops = 100'000;
  /// Most bytes of one task request as the worker measures it: opcodes,
  /// attributes, value ids and input URIs (objstore.max-graph-bytes); a
  /// larger task is refused with `resource_exhausted`. 0 = no limit.
  size_t max_graph_bytes = 64u << 20;
  /// Operator credential (objstore.operator-secret-file): a session opened
  /// with it lists every session's objects and reads node-wide counters.
  /// Empty: no operator access over the network.
  std::string operator_secret;
  /// Worker endpoints "host:port" in rank order (objstore.cluster). When
  /// set, transfers go only to these members; when empty, to the endpoints
  /// each session named at hello (verified with the peer).
  std::vector<std::string> members;
  /// Principals (name -> secret, objstore.principals-file): a session that
  /// opens with one owns its fs:// objects under that name, across sessions
  /// and restarts (checkpoints, datasets of one party's jobs).
  std::map<std::string, std::string> principals;
  /// Mirror of the worker's running task count for the node's own process
  /// (spawn_node sets it; node_handles::running_tasks).
  std::shared_ptr<std::atomic<uint64_t>> running_tasks;
  /// The port the worker is published on (spawn_node makes it; whoever
  /// publishes stores the port: node_handles::published_port). A transfer
  /// target at a local address and this port is the worker itself and is
  /// refused before anything connects.
  std::shared_ptr<std::atomic<uint16_t>> published_port;
  /// Sessions open at once; `hello` beyond it is `resource_exhausted`, so
  /// free sessions cannot grow the node's tables without bound. 0 = none.
  size_t max_sessions = 1024;
  /// The node's task threads and queue (objstore.task-threads,
  /// objstore.max-queued-tasks).
  task_executor_options tasks;
  /// The executor built from `tasks` (spawn_node makes it; a worker spawned
  /// without one makes its own).
  std::shared_ptr<task_executor> executor;
  /// Threads of the node's spill IO (background spilling, restores, puts
  /// that must spill first): the worker actor never waits for the disk.
  static constexpr size_t spill_threads = 2;
  /// The spill IO executor (spawn_node makes it when the store spills; a
  /// worker spawned without one makes its own).
  std::shared_ptr<task_executor> spill_io;
  /// Longest `sleep` op a task may ask for (objstore.max-sleep); longer is
  /// `resource_exhausted`. 0 = no limit.
  std::chrono::milliseconds max_sleep{300'000};
  /// Closing connections to the worker's port that carry no session.
  connection_guard_options connections;
  /// The node's connection guard (spawn_node makes it; the worker tells it
  /// which nodes hold sessions).
  std::shared_ptr<connection_guard> guard;
};

/// The worker as its own node sees it: `worker_actor` (what peers and
/// drivers may send) plus what only the node itself sends. Never published:
/// `publish_worker` takes the `worker_actor` it converts to.
using worker_node_actor = worker_actor::extend<
    /// Adopts a value the node's data plane received for `session`; the
    /// worker refuses it from any other node (an untyped send from a peer
    /// still reaches the behaviour). Not idempotent.
    caf::replies_to<adopt_atom, uint64_t, wire_value>::with<std::string>,
    /// `adopt` of a driver's own streamed put: recorded as put by the
    /// session (fetchable by it under `revealed-only`).
    caf::replies_to<adopt_atom, uint64_t, wire_value,
                    put_atom>::with<std::string>,
    /// Writes a value the node's data plane received for `session` to the
    /// fs:// URI `target` as `principal` (the session's), checking the
    /// write again; replies `target`. Node-local like the above. Not
    /// idempotent.
    caf::replies_to<adopt_atom, uint64_t, std::string, std::string,
                    wire_value>::with<std::string>,
    /// Node-wide counters for the node's metrics endpoint (never sent by
    /// another process: no session key). Idempotent.
    caf::replies_to<metrics_atom>::with<worker_metrics>>;

/// The actors of one node and its shared state.
struct node_handles {
  worker_node_actor worker;
  store_actor store;
  transfer_actor transfer;
  /// The node's object store (shared with the actors; thread-safe).
  std::shared_ptr<object_store> objects;
  /// The node's data plane (worker-to-worker transfers).
  std::shared_ptr<data_plane> data;
  /// Set by `stop_node`; running kernels poll it and stop.
  std::shared_ptr<std::atomic<bool>> stopping;
  /// Tasks running now (for a drain in the node's own process: no session
  /// needed).
  std::shared_ptr<std::atomic<uint64_t>> running_tasks;
  /// Set it after publishing the worker (local_cluster and objstore-node
  /// do): see node_options::published_port.
  std::shared_ptr<std::atomic<uint16_t>> published_port;
  /// Closes connections to the published port that carry no session once
  /// `publish_node` (or the embedder, with `guard->watch(port)`) starts it.
  std::shared_ptr<connection_guard> guard;
  /// The node's task threads (stop_node stops them).
  std::shared_ptr<task_executor> executor;
  /// The node's spill IO threads, null when the store does not spill
  /// (stop_node stops them).
  std::shared_ptr<task_executor> spill_io;
};

/// Sets SIGPIPE to ignored unless the process installed its own handler:
/// a peer closing a connection is then an EPIPE error on that connection,
/// never the end of the process. Called by `spawn_node`.
void ignore_sigpipe();

/// Spawns a node's store, worker and transfer actors in `sys` (the
/// embedding entry point). `sys` must have objstore's types registered
/// (register_types). Publishing the worker on a port is up to the caller.
/// Sets SIGPIPE to ignored if it had the default action (ignore_sigpipe).
/// When `options.store` enables spilling, the node's spill directory is
/// `<spill_dir>/<spill_key>` with `rank-<rank>` as the default key.
/// Errors: those of object_store::make (fs roots, spill directory).
caf::expected<node_handles> spawn_node(caf::actor_system& sys,
                                       node_options options);

/// Publishes the node's worker on `host:port` (TLS when `sys` has the
/// openssl manager; port 0 picks a free one), records the port
/// (node_handles::published_port) and starts the connection guard on it.
/// Returns the bound port.
caf::expected<uint16_t> publish_node(caf::actor_system& sys,
                                     const node_handles& node, uint16_t port,
                                     const std::string& host);

/// Stops a node's actors: running kernels are cancelled, the actors exit
/// with `reason`; peers monitoring them see a down message.
void stop_node(const node_handles& node,
               caf::exit_reason reason = caf::exit_reason::user_shutdown);

} // namespace objstore
