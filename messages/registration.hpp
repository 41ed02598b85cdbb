#pragma once

#include <caf/actor_system_config.hpp>

namespace objstore {

/// Registers every objstore message type, the error category renderer and
/// the middleman module in `cfg`. Call it on the config of every actor
/// system that hosts objstore actors or talks to them (both sides of each
/// connection), before constructing the system. Idempotent.
void register_types(caf::actor_system_config& cfg);

} // namespace objstore
