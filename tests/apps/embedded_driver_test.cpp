// An embedded driver (an actor system set up only by configure_system, as
// in the README) against worker processes with default options: idle past
// the workers' heartbeat timeout it keeps its session and objects.

#include <gtest/gtest.h>

#include <thread>

#include "apps/process_support.hpp"

using namespace objstore;
using namespace objstore::test;

namespace {

using embedded_driver = process_fixture;

TEST_F(embedded_driver,
       idle_past_the_workers_heartbeat_timeout_it_keeps_its_objects) {
  // Default workers drop a peer that is silent for 3 s.
  ASSERT_TRUE(start_workers(2));
  auto d = connect(); // client(): configure_system and nothing else
  ASSERT_TRUE(d);
  auto x = d->put(0, small_tensor({1, 2}));
  ASSERT_TRUE(x) << describe(x.error());
  auto y = d->run(double_graph(), {*x}, {0});
  ASSERT_TRUE(y) << describe(y.error());
  auto z = d->put(1, small_tensor({5}));
  ASSERT_TRUE(z) << describe(z.error());
  // Idle: the silence itself is under test, so there is nothing to poll.
  std::this_thread::sleep_for(5s);
  for (uint32_t r = 0; r < 2; ++r) {
    auto st = d->worker_stats_of(r);
    ASSERT_TRUE(st) << "rank " << r << ": " << describe(st.error());
    EXPECT_EQ(st->sessions, 1u) << "rank " << r << " dropped the driver";
    EXPECT_EQ(st->mem_objects, r == 0 ? 2u : 1u) << "rank " << r;
  }
  // The objects made before the pause still work: a run on each, a fetch.
  auto again = d->run(double_graph(), {(*y)[0]}, {0});
  ASSERT_TRUE(again) << describe(again.error());
  auto v = d->fetch((*again)[0], 0);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{4, 8}));
  auto w = d->run(double_graph(), {*z}, {1});
  ASSERT_TRUE(w) << describe(w.error());
  v = d->fetch((*w)[0], 1);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{10}));
  x->reset();
  y->clear();
  z->reset();
  again->clear();
  w->clear();
  d.reset();
  expect_no_leaks();
}

} // namespace
