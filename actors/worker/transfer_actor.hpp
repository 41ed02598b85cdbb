#pragma once

#include <memory>

#include "actors/dataplane/data_plane.hpp"
#include "messages/interfaces.hpp"

namespace objstore {

/// Behaviour of a node's transfer actor: hands each push to the data
/// plane's bounded sender pool (`data_plane::send_async`), so blocking
/// socket IO never runs on the scheduler and a flood of pushes costs queue
/// entries, not threads. Every push is answered (the URI or a typed error,
/// `resource_exhausted` when the pool's queue is full), so the worker
/// always unpins its object.
transfer_actor::behavior_type
transfer_actor_impl(transfer_actor::pointer self,
                    std::shared_ptr<data_plane> data);

} // namespace objstore
