#pragma once

#include <memory>

#include "actors/data_plane.hpp"
#include "messages/interfaces.hpp"

namespace objstore {

/// Behaviour of a node's transfer actor: each push streams on its own
/// detached helper (blocking socket IO never runs on the scheduler), so
/// several transfers proceed at once and the worker stays responsive.
transfer_actor::behavior_type
transfer_actor_impl(transfer_actor::pointer self,
                    std::shared_ptr<data_plane> data);

} // namespace objstore
