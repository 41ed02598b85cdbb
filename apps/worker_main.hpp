#pragma once

#include <caf/actor_system.hpp>

#include "config/config.hpp"

namespace objstore::apps {

/// Serves one worker node until SIGTERM or SIGINT, then drains (waits for
/// running tasks, bounded by the timeout) and returns the exit code.
int run_worker(caf::actor_system& sys, const config& cfg);

/// Connects to the cluster and runs the demo job of DESIGN.md §10.
int run_demo(caf::actor_system& sys, const config& cfg);

/// Blocks SIGTERM and SIGINT in the calling thread and every thread it
/// starts afterwards (call before the actor system starts its threads).
void block_stop_signals();

/// Waits for SIGTERM or SIGINT; returns the signal number.
int wait_for_stop_signal();

} // namespace objstore::apps
