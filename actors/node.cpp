#include "actors/node.hpp"

#include <caf/all.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/store_actor.hpp"
#include "actors/transfer_actor.hpp"
#include "actors/worker_actor.hpp"

namespace objstore {

caf::expected<node_handles> spawn_node(caf::actor_system& sys,
                                       node_options options) {
  if (options.store.node_id.empty())
    options.store.node_id
        = mem_id_generator{}.prefix() + "r" + std::to_string(options.rank);
  auto objects = object_store::make(options.store);
  if (!objects)
    return std::move(objects.error());
  node_handles result;
  result.objects = std::shared_ptr<object_store>{std::move(*objects)};
  result.stopping = std::make_shared<std::atomic<bool>>(false);
  result.store = sys.spawn<caf::detached>(store_actor_impl, result.objects);
  result.transfer = sys.spawn(transfer_actor_impl);
  result.worker = sys.spawn(worker_actor_impl, std::move(options),
                            result.objects, result.store, result.stopping);
  return result;
}

void stop_node(const node_handles& node, caf::exit_reason reason) {
  node.stopping->store(true);
  caf::anon_send_exit(node.worker, reason);
  caf::anon_send_exit(node.store, reason);
  caf::anon_send_exit(node.transfer, reason);
}

} // namespace objstore
