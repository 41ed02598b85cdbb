#include "actors/system.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include "messages/registration.hpp"

namespace objstore {

void configure_system(caf::actor_system_config& cfg, size_t threads) {
  register_types(cfg);
  cfg.set("middleman.workers", size_t{0});
  cfg.set("scheduler.max-threads", threads);
  cfg.set("scheduler.policy", caf::atom("sharing"));
  // Never print to the terminal from inside the runtime.
  cfg.set("middleman.enable-automatic-connections", false);
  set_heartbeats(cfg, default_heartbeat_interval, caf::timespan{0});
}

void set_heartbeats(caf::actor_system_config& cfg, caf::timespan interval,
                    caf::timespan timeout) {
  if (interval.count() <= 0) {
    cfg.set("middleman.heartbeat-interval", caf::timespan{0});
    cfg.set("middleman.connection-timeout", caf::timespan{0});
    return;
  }
  cfg.set("middleman.heartbeat-interval", interval);
  cfg.set("middleman.connection-timeout", timeout);
}

} // namespace objstore
