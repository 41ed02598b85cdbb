#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_addr.hpp>

#include "actors/metrics/histogram.hpp"
#include "actors/worker/node.hpp"
#include "actors/worker/reference_table.hpp"
#include "messages/interfaces.hpp"

namespace objstore {

/// State of a worker actor. Only the worker actor touches it.
struct worker_state {
  static inline const char* name = "objstore.worker";

  node_options options;
  std::shared_ptr<object_store> objects;
  std::shared_ptr<const op_registry> ops;
  std::shared_ptr<std::atomic<bool>> stopping;
  store_actor store;
  transfer_actor transfer;
  std::shared_ptr<data_plane> data;
  reference_table refs;

  /// An open session: a capability (its secret) plus the actor that
  /// opened it, monitored so the session ends when that actor goes down.
  struct session {
    session_id id = 0;
    std::string secret;
    /// "session-<id> (client label)": what listings show; no address.
    std::string name;
    caf::actor_addr opener;
    bool operator_access = false;
    /// Owner of the fs:// objects the session writes (file_backend).
    std::string principal;
    /// The cluster's endpoints as the session named them at hello (used
    /// for transfers when the node has no configured members).
    std::vector<std::string> cluster;
  };
  std::unordered_map<session_id, session> sessions;
  /// Sessions by the actor that opened them (down messages, close).
  std::unordered_multimap<caf::actor_addr, session_id> opened_by;
  session_id next_session = 1;
  /// Random per start: makes anonymous principals unique across restarts.
  std::string incarnation;
  /// Peer workers verified by `peer`, by endpoint "host:port".
  std::unordered_map<std::string, peer_info> peers;

  uint64_t next_task = 1;
  /// Cancel flags of the tasks running in task actors, by (session, task
  /// id) as the driver numbered them.
  std::multimap<std::pair<session_id, uint64_t>,
                std::shared_ptr<std::atomic<bool>>>
      running;
  worker_stats counters;
  /// Only the metrics endpoint shows these (worker_metrics).
  uint64_t put_bytes = 0;
  uint64_t fetch_bytes = 0;
  histogram_data task_seconds = seconds_histogram();
  histogram_data transfer_seconds = seconds_histogram();
  /// The node's task threads (node_options::executor).
  std::shared_ptr<task_executor> executor;
  /// The node's spill threads (node_options::spill_io): restores and puts
  /// that must spill first run there, never on the worker's thread.
  std::shared_ptr<task_executor> spill_io;
};

/// Whether the worker runs a task on its own thread instead of a task
/// actor: a flat graph of at most 32 linear ops (`op_def::linear`) over
/// at most 64 KiB of resolved mem:// inputs (`inputs` null for fs://).
/// Anything else runs in a task actor, so stats, fetch and release stay
/// answered while it computes.
bool runs_on_worker_thread(const graph& g, const std::vector<value_ptr>& inputs,
                           const op_registry& ops);

/// Behaviour of the worker actor (see `worker_actor` in messages/):
/// sessions, the reference table, fetch policy, and task execution in
/// spawned task actors so the worker's mailbox stays responsive.
worker_node_actor::behavior_type
worker_actor_impl(worker_node_actor::stateful_pointer<worker_state> self,
                  node_options options, std::shared_ptr<object_store> objects,
                  store_actor store,
                  std::shared_ptr<std::atomic<bool>> stopping,
                  transfer_actor transfer, std::shared_ptr<data_plane> data);

} // namespace objstore
