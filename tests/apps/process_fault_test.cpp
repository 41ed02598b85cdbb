// Worker processes failing under an in-test driver: SIGKILL mid-task
// fails the call with object_lost at once; SIGSTOP (a frozen peer) is
// detected by the heartbeat within the configured connection timeout. The
// other ranks keep working in both cases.

#include <gtest/gtest.h>

#include <csignal>
#include <future>

#include "apps/process_support.hpp"

using namespace objstore;
using namespace objstore::test;

namespace {

using process_fault = process_fixture;

TEST_F(process_fault, worker_killed_mid_task_fails_the_call_with_object_lost) {
  ASSERT_TRUE(start_workers(3));
  client(500ms, 3s);
  auto d = connect();
  ASSERT_TRUE(d);
  auto x = d->put(1, small_tensor({1}));
  ASSERT_TRUE(x) << describe(x.error());
  auto uri = *x->uri(1);
  auto running = std::async(std::launch::async, [&] {
    return d->run(sleep_graph(20'000), {*x}, {1});
  });
  ASSERT_TRUE(poll_until([&] {
    auto st = d->worker_stats_of(1);
    return st && st->tasks_running == 1;
  })) << "the sleep op did not start";
  auto killed_at = std::chrono::steady_clock::now();
  proc(1).signal(SIGKILL);
  ASSERT_EQ(running.wait_for(5s), std::future_status::ready)
      << "the driver kept waiting on a dead worker";
  auto result = running.get();
  auto took = elapsed_ms(killed_at);
  auto why = expect_error(result, errc::object_lost);
  EXPECT_NE(why.find("rank 1"), std::string::npos) << why;
  EXPECT_LT(took, 2000) << "object_lost must not wait for the 10 s timeout";
  auto status = proc(1).wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(describe_status(*status), "signal 9");
  // Ranks 0 and 2 keep working; rank 1 fails at once.
  expect_serving(*d, 0);
  expect_serving(*d, 2);
  auto t0 = std::chrono::steady_clock::now();
  why = expect_error(d->fetch(*x, 1), errc::object_lost);
  EXPECT_NE(why.find(uri), std::string::npos) << why;
  expect_error(d->put(1, small_tensor({2})), errc::object_lost);
  expect_error(d->worker_stats_of(1), errc::object_lost);
  EXPECT_LT(elapsed_ms(t0), 500);
  // Dropping the lost handle and the driver is clean and quick.
  x->reset();
  t0 = std::chrono::steady_clock::now();
  d.reset();
  EXPECT_LT(elapsed_ms(t0), 2000) << "destroying the driver waited";
  // Nothing of the session stays on the survivors.
  expect_no_leaks({0, 2});
}

TEST_F(process_fault, sigterm_lets_running_tasks_finish) {
  ASSERT_TRUE(start_workers(2));
  auto d = connect();
  ASSERT_TRUE(d);
  auto x = d->put(0, small_tensor({7}));
  ASSERT_TRUE(x) << describe(x.error());
  auto running = std::async(
      std::launch::async, [&] { return d->run(sleep_graph(500), {*x}, {0}); });
  ASSERT_TRUE(poll_until([&] {
    auto st = d->worker_stats_of(0);
    return st && st->tasks_running == 1;
  })) << "the sleep op did not start";
  proc(0).signal(SIGTERM);
  // The worker drains: the task completes and its result arrives.
  ASSERT_EQ(running.wait_for(5s), std::future_status::ready);
  auto result = running.get();
  EXPECT_TRUE(result) << describe(result.error());
  auto status = proc(0).wait_exit(5s);
  ASSERT_TRUE(status) << proc(0).describe();
  EXPECT_EQ(describe_status(*status), "exit 0") << proc(0).describe();
  EXPECT_NE(proc(0).out().find("SIGTERM, draining"), std::string::npos);
  expect_serving(*d, 1);
  x->reset();
  d.reset();
  // SIGINT drains the same way.
  proc(1).signal(SIGINT);
  status = proc(1).wait_exit(5s);
  ASSERT_TRUE(status) << proc(1).describe();
  EXPECT_EQ(describe_status(*status), "exit 0") << proc(1).describe();
  EXPECT_NE(proc(1).out().find("SIGINT, draining"), std::string::npos);
}

TEST_F(process_fault, stopped_worker_is_detected_within_the_heartbeat_timeout) {
  constexpr auto interval = 200ms;
  constexpr auto connection_timeout = 2s;
  ASSERT_TRUE(start_workers(2, worker_flags{}
                                   .flag("--objstore.heartbeat-interval=200ms")
                                   .flag("--objstore.heartbeat-timeout=2s")));
  client(interval, connection_timeout);
  auto d = connect();
  ASSERT_TRUE(d);
  auto x = d->put(1, small_tensor({5}));
  ASSERT_TRUE(x) << describe(x.error());
  expect_serving(*d, 1);
  proc(1).signal(SIGSTOP);
  ASSERT_TRUE(proc(1).wait_stopped(5s)) << proc(1).describe();
  auto stopped_at = std::chrono::steady_clock::now();
  // Well inside the driver's 10 s request timeout, the heartbeat drops
  // the silent peer and the pending call fails with object_lost.
  auto v = d->fetch(*x, 1);
  auto took = elapsed_ms(stopped_at);
  auto why = expect_error(v, errc::object_lost);
  EXPECT_NE(why.find("rank 1"), std::string::npos) << why;
  EXPECT_LT(took, 2000 + 1500) << "detection took longer than the timeout";
  EXPECT_GE(took, 1000) << "a stopped peer cannot be detected that fast";
  expect_error(d->put(1, small_tensor({6})), errc::object_lost);
  expect_serving(*d, 0);
  proc(1).signal(SIGCONT);
  // A woken worker serves new sessions again.
  auto fresh = connect({1});
  ASSERT_TRUE(fresh);
  expect_serving(*fresh, 0);
  x->reset();
  fresh.reset();
  d.reset();
  expect_no_leaks();
}

} // namespace
