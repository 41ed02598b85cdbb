// host_var, remote_ref and release_sink (actors/host_var.hpp): which drop
// queues a release, and when the sink wakes the driver. The sink wakes an
// actor on CAF's deterministic scheduler, so "no wake-up" is counted
// exactly instead of being inferred from a receive timeout.

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "actors/deterministic_fixture.hpp"
#include "actors/driver/host_var.hpp"
#include "messages/atoms.hpp"

namespace host_var_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;

namespace {

using queued = std::vector<std::pair<uint32_t, std::string>>;

class host_var_test : public deterministic_fixture {
protected:
  /// A sink that wakes a counting actor instead of a driver.
  std::shared_ptr<release_sink> make_sink(size_t wake_every) {
    auto sink = std::make_shared<release_sink>(wake_every);
    auto counter = wake_count;
    // The unused int: see deterministic_fixture.hpp (CAF 0.17, UBSan).
    sink->attach(track(sys.spawn(
        [counter](int) -> caf::behavior {
          return {[=](release_atom) {
            ++*counter;
          }};
        },
        0)));
    return sink;
  }

  /// Wake-ups delivered since the last call.
  size_t wakes() {
    run();
    return std::exchange(*wake_count, 0);
  }

  std::shared_ptr<size_t> wake_count = std::make_shared<size_t>(0);
};

TEST_F(host_var_test, a_burst_of_drops_wakes_the_driver_once) {
  auto sink = make_sink(100);
  sink->push(0, "mem://a");
  sink->push(0, "mem://b");
  sink->push(1, "mem://c");
  EXPECT_EQ(wakes(), 1u) << "the first drop arms the sink";
  sink->push(1, "mem://d");
  EXPECT_EQ(wakes(), 0u) << "armed: no wake until drained";
  EXPECT_EQ(
      sink->drain(true),
      (queued{{0, "mem://a"}, {0, "mem://b"}, {1, "mem://c"}, {1, "mem://d"}}));
}

TEST_F(host_var_test, a_full_batch_wakes_the_driver_again) {
  auto sink = make_sink(4);
  for (int i = 0; i < 9; ++i)
    sink->push(0, "mem://" + std::to_string(i));
  // The 1st drop arms; the 4th and 8th fill a batch each.
  EXPECT_EQ(wakes(), 3u);
  EXPECT_EQ(sink->drain(false).size(), 9u);
}

TEST_F(host_var_test, a_drain_without_disarm_keeps_the_sink_quiet) {
  auto sink = make_sink(100);
  sink->push(0, "mem://a");
  EXPECT_EQ(wakes(), 1u);
  // The driver drains but has a flush of its own scheduled.
  EXPECT_EQ(sink->drain(false).size(), 1u);
  sink->push(0, "mem://b");
  EXPECT_EQ(wakes(), 0u) << "the scheduled flush will pick it up";
  // The flush disarms: the next drop wakes the driver again.
  EXPECT_EQ(sink->drain(true), (queued{{0, "mem://b"}}));
  EXPECT_EQ(wakes(), 0u);
  sink->push(0, "mem://c");
  EXPECT_EQ(wakes(), 1u);
  EXPECT_EQ(sink->drain(true), (queued{{0, "mem://c"}}));
}

TEST_F(host_var_test, a_sink_without_driver_only_queues) {
  release_sink sink{1};
  sink.push(0, "mem://a");
  sink.push(0, "mem://b");
  EXPECT_EQ(sink.drain(), (queued{{0, "mem://a"}, {0, "mem://b"}}));
  EXPECT_TRUE(sink.drain().empty());
}

TEST_F(host_var_test, copies_release_once_when_the_last_copy_drops) {
  auto sink = make_sink(100);
  {
    host_var x{2};
    x.set(1, std::make_shared<const remote_ref>(1, "mem://a", sink));
    EXPECT_EQ(sink->live.load(), 1);
    auto y = x;
    host_var z;
    z = y;
    x.reset();
    y = host_var{};
    EXPECT_EQ(wakes(), 0u) << "z still holds the object";
    EXPECT_TRUE(sink->drain(false).empty());
    EXPECT_EQ(sink->live.load(), 1) << "copies share one handle";
    EXPECT_EQ(z.uri(1), std::optional<std::string>{"mem://a"});
  }
  EXPECT_EQ(wakes(), 1u);
  EXPECT_EQ(sink->drain(), (queued{{1, "mem://a"}})) << "exactly one release";
  EXPECT_EQ(sink->live.load(), 0);
}

TEST_F(host_var_test, a_handle_without_sink_is_never_released) {
  auto sink = make_sink(100);
  {
    // How fs:// handles are made: persistent, not reference counted.
    host_var x{1};
    x.set(0, std::make_shared<const remote_ref>(0, "fs://data/t", nullptr));
    EXPECT_EQ(x.uri(0), std::optional<std::string>{"fs://data/t"});
  }
  EXPECT_EQ(wakes(), 0u);
  EXPECT_TRUE(sink->drain().empty());
  EXPECT_EQ(sink->live.load(), 0);
}

TEST_F(host_var_test, parties_and_uris_follow_the_parts_that_are_set) {
  auto sink = make_sink(100);
  host_var x{4};
  EXPECT_EQ(x.world_size(), 4u);
  EXPECT_TRUE(x.parties().empty());
  x.set(3, std::make_shared<const remote_ref>(3, "mem://c", sink));
  x.set(1, std::make_shared<const remote_ref>(1, "mem://b", sink));
  EXPECT_EQ(x.parties(), (std::vector<uint32_t>{1, 3}));
  EXPECT_TRUE(x.has(1));
  EXPECT_FALSE(x.has(0));
  EXPECT_FALSE(x.has(9)) << "outside the world: not held, no throw";
  EXPECT_EQ(x.uri(3), std::optional<std::string>{"mem://c"});
  EXPECT_EQ(x.uri(0), std::nullopt);
  EXPECT_EQ(x.uri(9), std::nullopt);
  EXPECT_EQ(x.part(1)->rank(), 1u);
  EXPECT_THROW(x.set(4, nullptr), std::out_of_range);
  // Replacing a part drops the old handle.
  x.set(1, std::make_shared<const remote_ref>(1, "mem://b2", sink));
  EXPECT_EQ(sink->drain(), (queued{{1, "mem://b"}}));
}

} // namespace

} // namespace
} // namespace host_var_test_file
