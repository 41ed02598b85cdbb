#pragma once

#include <chrono>
#include <cstddef>

#include <caf/actor_system_config.hpp>
#include <caf/timespan.hpp>

namespace objstore {

/// Heartbeat period of every objstore actor system (workers, drivers, the
/// CLI, embedders' systems set up by `configure_system`): CAF's
/// `middleman.heartbeat-interval`. Workers drop a peer that stays silent
/// for `default_heartbeat_timeout`, so a driver must beat at least this
/// often or it loses its session (and its objects) while idle.
constexpr caf::timespan default_heartbeat_interval
    = std::chrono::milliseconds{500};

/// Silence after which objstore-node (and the CLI) drop a peer: CAF's
/// `middleman.connection-timeout`. A frozen peer is detected this long
/// after its last message. CAF 0.17 counts a peer as silent while one large
/// message from it is still arriving (it notes a peer only per complete
/// message), so a put or fetch whose one message takes longer than this
/// drops a healthy connection too.
constexpr caf::timespan default_heartbeat_timeout = std::chrono::seconds{3};

/// Applies objstore's defaults for a node or client actor system:
/// registered types, `middleman.workers=0` (halves small-message latency
/// on CAF 0.17), enough scheduler threads for task actors, heartbeats sent
/// every `default_heartbeat_interval` (so a default worker never drops an
/// idle driver), and the work-sharing scheduler: its idle threads wait on a
/// condition variable and wake at once, where work-stealing ones poll and
/// sleep (a local round trip 14 us instead of ~100 us, a task round trip
/// between processes ~100-160 us instead of ~350 us, objstore-bench). A
/// `--caf.scheduler.policy=stealing` flag or INI entry still overrides it.
///
/// Dropping silent peers stays off (the large-message caveat above):
/// `set_heartbeats(cfg, default_heartbeat_interval,
/// default_heartbeat_timeout)` turns it on as objstore-node has it, so that
/// a frozen worker fails calls with `object_lost` after the timeout rather
/// than at each call's deadline.
void configure_system(caf::actor_system_config& cfg, size_t threads = 4);

/// Sets the heartbeat period and the silence after which a peer is dropped
/// (CAF's `middleman.heartbeat-interval` and `middleman.connection-timeout`;
/// a zero `timeout` never drops). A zero `interval` turns both off: then a
/// peer of a default worker must not stay idle for longer than the
/// worker's timeout.
void set_heartbeats(caf::actor_system_config& cfg, caf::timespan interval,
                    caf::timespan timeout);

} // namespace objstore
