#pragma once

#include <cstddef>

#include <caf/actor_system_config.hpp>

namespace objstore {

/// Applies objstore's defaults for a node or client actor system:
/// registered types, `middleman.workers=0` (halves small-message latency
/// on CAF 0.17), enough scheduler threads for task actors, and the
/// work-sharing scheduler: its idle threads wait on a condition variable
/// and wake at once, where work-stealing ones poll and sleep (a local
/// round trip 14 us instead of ~100 us, a task round trip between
/// processes ~100-160 us instead of ~350 us, objstore-bench). A
/// `--caf.scheduler.policy=stealing` flag or INI entry still overrides it.
void configure_system(caf::actor_system_config& cfg, size_t threads = 4);

} // namespace objstore
