#pragma once

#include <memory>

#include "messages/interfaces.hpp"
#include "store/object_store.hpp"

namespace objstore {

struct store_actor_state {
  static inline const char* name = "objstore.store";
  std::shared_ptr<object_store> objects;
};

/// Behaviour of the store actor (see `store_actor` in messages/). Spawn it
/// detached: `fs://` and `oss://` calls block on disk or network IO. A node
/// runs several behind a round-robin pool (spawn_node).
store_actor::behavior_type
store_actor_impl(store_actor::stateful_pointer<store_actor_state> self,
                 std::shared_ptr<object_store> objects);

} // namespace objstore
