#pragma once

#include "messages/interfaces.hpp"

namespace objstore {

/// Placeholder transfer actor: answers `unsupported` until worker-to-worker
/// transfers land.
transfer_actor::behavior_type transfer_actor_impl();

} // namespace objstore
