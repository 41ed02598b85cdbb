// configure_system: objstore's settings for any actor system, heartbeats
// as the workers expect them included; set_heartbeats changes them and
// turns dropping silent peers on. The
// header stands alone: config/ and apps/ do not need the testing cluster.

#include "actors/system.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <caf/all.hpp>

namespace system_test_file {
namespace {

using namespace objstore;
using namespace std::chrono_literals;

namespace {

caf::timespan interval_of(const caf::actor_system_config& cfg) {
  return caf::get_or(cfg, "middleman.heartbeat-interval", caf::timespan{0});
}

caf::timespan timeout_of(const caf::actor_system_config& cfg) {
  return caf::get_or(cfg, "middleman.connection-timeout", caf::timespan{0});
}

} // namespace

TEST(system, configure_system_beats_as_the_workers_expect) {
  caf::actor_system_config cfg;
  configure_system(cfg);
  EXPECT_EQ(interval_of(cfg), default_heartbeat_interval);
  // A driver beating at this period is never silent for a worker's timeout.
  EXPECT_LT(default_heartbeat_interval * 2, default_heartbeat_timeout);
  // Dropping silent peers stays off: one large message slower than the
  // timeout would drop a healthy connection.
  EXPECT_EQ(timeout_of(cfg), caf::timespan{0});
  EXPECT_EQ(caf::get_or(cfg, "middleman.workers", size_t{1}), 0u);
  EXPECT_EQ(caf::get_or(cfg, "scheduler.policy", caf::atom("stealing")),
            caf::atom("sharing"));
}

TEST(system, set_heartbeats_changes_them_and_zero_turns_them_off) {
  caf::actor_system_config cfg;
  configure_system(cfg);
  set_heartbeats(cfg, 100ms, 1s);
  EXPECT_EQ(interval_of(cfg), caf::timespan{100ms});
  EXPECT_EQ(timeout_of(cfg), caf::timespan{1s});
  set_heartbeats(cfg, caf::timespan{0}, 1s);
  EXPECT_EQ(interval_of(cfg), caf::timespan{0});
  EXPECT_EQ(timeout_of(cfg), caf::timespan{0});
}

TEST(system, config_and_apps_do_not_include_the_testing_cluster) {
  namespace fs = std::filesystem;
  for (auto folder : {"config", "apps"}) {
    for (auto& entry :
         fs::directory_iterator{fs::path{OBJSTORE_SOURCE_DIR} / folder}) {
      std::ifstream in{entry.path()};
      std::stringstream text;
      text << in.rdbuf();
      EXPECT_EQ(text.str().find("local_cluster.hpp"), std::string::npos)
          << entry.path() << " includes local_cluster.hpp";
    }
  }
  std::ifstream in{fs::path{OBJSTORE_SOURCE_DIR} / "actors" / "system.hpp"};
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str().find("#include \"actors/"), std::string::npos)
      << "system.hpp includes other actors/ headers";
}

} // namespace
} // namespace system_test_file
