#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "actors/data_plane.hpp"
#include "actors/op_registry.hpp"
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
};

/// The actors of one node and its shared state.
struct node_handles {
  worker_actor worker;
  store_actor store;
  transfer_actor transfer;
  /// The node's object store (shared with the actors; thread-safe).
  std::shared_ptr<object_store> objects;
  /// The node's data plane (worker-to-worker transfers).
  std::shared_ptr<data_plane> data;
  /// Set by `stop_node`; running kernels poll it and stop.
  std::shared_ptr<std::atomic<bool>> stopping;
};

/// Spawns a node's store, worker and transfer actors in `sys` (the
/// embedding entry point). `sys` must have objstore's types registered
/// (register_types). Publishing the worker on a port is up to the caller.
/// Errors: those of object_store::make (fs roots).
caf::expected<node_handles> spawn_node(caf::actor_system& sys,
                                       node_options options);

/// Stops a node's actors: running kernels are cancelled, the actors exit
/// with `reason`; peers monitoring them see a down message.
void stop_node(const node_handles& node,
               caf::exit_reason reason = caf::exit_reason::user_shutdown);

} // namespace objstore
