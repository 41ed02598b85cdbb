// Failures on the remote path: a worker dying mid-task turns into
// `object_lost` at once (not at the timeout), a slow worker into
// `timeout`, and the other ranks are unaffected.

#include <gtest/gtest.h>

#include <future>

#include "actors/cluster_fixture.hpp"

namespace fault_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;

namespace {

using fault = cluster_fixture;

/// Requests the driver actor has sent to workers so far.
uint64_t requests_sent(driver& d) {
  auto st = d.stats();
  EXPECT_TRUE(st) << describe(st.error());
  return st ? st->requests : 0;
}

/// Driver options whose request deadline no "at once" effect comes near:
/// a result that waited for it fails with `timeout`, not the error
/// expected, and the test's own deadlines end well before it.
driver_actor_options long_timeout() {
  driver_actor_options opts;
  opts.timeout = 60s;
  return opts;
}

/// Waits until `rank` reports `n` running tasks.
bool wait_running(driver& d, uint32_t rank, uint64_t n) {
  return poll_until([&] {
    auto ws = d.worker_stats_of(rank);
    return ws && ws->tasks_running == n;
  });
}

TEST_F(fault, worker_killed_mid_task_fails_with_object_lost_at_once) {
  start();
  auto& d = connect(long_timeout());
  auto x = d.put(1, small_tensor({1}));
  ASSERT_TRUE(x) << describe(x.error());
  auto running = std::async(std::launch::async,
                            [&] { return d.run(sleep_graph(120'000), {*x}); });
  ASSERT_TRUE(wait_running(d, 1, 1));
  nodes().kill(1);
  // Neither the kernel (120 s) nor the driver's deadline (60 s) ends the
  // call within this wait: only the worker's down message can.
  ASSERT_EQ(running.wait_for(10s), std::future_status::ready)
      << "the driver kept waiting on a dead worker";
  auto why = expect_error(running.get(), errc::object_lost);
  EXPECT_NE(why.find("rank 1"), std::string::npos) << why;
  EXPECT_NE(why.find(*x->uri(1)), std::string::npos) << why;
  // The other ranks do not notice.
  expect_serving(d, 0);
  expect_serving(d, 2);
  // Every later call on rank 1 fails at once, naming the rank: the driver
  // does not even send it.
  auto sent = requests_sent(d);
  why = expect_error(d.fetch(*x, 1), errc::object_lost);
  EXPECT_NE(why.find("rank 1"), std::string::npos) << why;
  expect_error(d.put(1, small_tensor({2})), errc::object_lost);
  expect_error(d.run(double_graph(), {*x}), errc::object_lost);
  expect_error(d.worker_stats_of(1), errc::object_lost);
  EXPECT_EQ(requests_sent(d), sent) << "a call went to the dead worker";
  // Dropping handles on the lost rank is harmless.
  x->reset();
  ASSERT_TRUE(d.flush());
  expect_serving(d, 0);
}

TEST_F(fault, all_pending_calls_on_a_killed_worker_fail) {
  start();
  auto& d = connect(long_timeout());
  auto x = d.put(2, small_tensor({1}));
  auto keep = d.put(0, small_tensor({9}));
  ASSERT_TRUE(x && keep);
  std::vector<std::future<caf::expected<std::vector<host_var>>>> calls;
  for (int i = 0; i < 3; ++i)
    calls.push_back(std::async(
        std::launch::async, [&] { return d.run(sleep_graph(120'000), {*x}); }));
  ASSERT_TRUE(wait_running(d, 2, 3));
  nodes().kill(2);
  for (auto& call : calls) {
    ASSERT_EQ(call.wait_for(10s), std::future_status::ready);
    expect_error(call.get(), errc::object_lost);
  }
  auto v = d.fetch(*keep, 0);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), std::vector<int64_t>{9});
}

TEST_F(fault, a_second_driver_learns_of_the_loss_too) {
  start();
  auto& first = connect();
  auto& second = connect();
  nodes().kill(0);
  // Down messages are asynchronous: poll until each driver has its own.
  for (auto* d : {&first, &second})
    EXPECT_TRUE(poll_until([&] {
      auto ws = d->worker_stats_of(0);
      return !ws && code_of(ws.error()) == errc::object_lost;
    }));
  expect_error(first.put(0, small_tensor({1})), errc::object_lost);
  expect_serving(first, 1);
  expect_serving(second, 2);
}

TEST_F(fault, slow_worker_times_out) {
  start();
  driver_actor_options opts;
  opts.timeout = 250ms;
  auto& d = connect(opts);
  auto x = d.put(0, small_tensor({1}));
  ASSERT_TRUE(x) << describe(x.error());
  auto t0 = std::chrono::steady_clock::now();
  auto result = d.run(sleep_graph(3000), {*x});
  auto took = elapsed_ms(t0);
  // The deadline is what this test is about: it applies (an error, not
  // the task's output at 3 s), names the rank and its length, and comes
  // neither early nor much late (10x slack for a loaded machine).
  auto why = expect_error(result, errc::timeout);
  EXPECT_NE(why.find("rank 0"), std::string::npos) << why;
  EXPECT_NE(why.find("no reply within 250 ms"), std::string::npos) << why;
  EXPECT_GE(took, 200) << "failed before the deadline";
  EXPECT_LT(took, 2500) << "the driver's deadline was applied late";
  // The worker is merely busy, not lost.
  expect_serving(d, 0);
  // Once the task ends, its orphaned output must not stay behind while
  // the driver lives on (the driver never learnt its URI).
  EXPECT_TRUE(wait_running(d, 0, 0));
  EXPECT_TRUE(poll_until([&] { return mem_objects(0) == 1; }))
      << mem_objects(0) << " objects on rank 0, expected only the input";
}

TEST_F(fault, worker_answers_while_a_kernel_runs) {
  start();
  // A worker blocked on the kernel would let these calls hit the
  // deadline (timeout) long before the kernel's 120 s are up.
  driver_actor_options opts;
  opts.timeout = 20s;
  auto& d = connect(opts);
  auto x = d.put(0, small_tensor({3}));
  ASSERT_TRUE(x) << describe(x.error());
  auto run = d.submit(sleep_graph(120'000), {*x});
  ASSERT_TRUE(wait_running(d, 0, 1));
  auto v = d.fetch(*x, 0);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), std::vector<int64_t>{3});
  auto y = d.run(double_graph(), {*x});
  ASSERT_TRUE(y) << describe(y.error());
  auto w = d.fetch((*y)[0], 0);
  ASSERT_TRUE(w) << describe(w.error());
  EXPECT_EQ(int64_values(*w), std::vector<int64_t>{6});
  // All of it answered while the kernel ran (and runs on).
  auto ws = d.worker_stats_of(0);
  ASSERT_TRUE(ws) << describe(ws.error());
  EXPECT_EQ(ws->tasks_running, 1u);
  EXPECT_FALSE(run.wait_for(0ms));
  EXPECT_EQ(run.cancel(), 1u);
  ASSERT_TRUE(run.wait_for(10s)) << "the cancelled kernel kept running";
  expect_error(run.get(), errc::cancelled);
}

} // namespace

// Destroying a driver whose every worker is lost must not wait for a
// reply that never comes (CAF 0.17 response-promise pitfall).
TEST(fault_shutdown, driver_with_only_lost_workers_closes_at_once) {
  objstore::local_cluster_options opts;
  opts.workers = 1;
  opts.driver.timeout = std::chrono::seconds{60};
  auto c = objstore::local_cluster::start(opts);
  ASSERT_TRUE(c);
  auto d = (*c)->connect();
  ASSERT_TRUE(d);
  (*c)->kill(0);
  ASSERT_TRUE(
      objstore::test::poll_until([&] { return !(*d)->worker_stats_of(0); }));
  // Waiting for a reply would take the 60 s timeout; at once is a few
  // milliseconds, bounded here generously.
  auto start = std::chrono::steady_clock::now();
  d->reset();
  EXPECT_LT(objstore::test::elapsed_ms(start), 10'000)
      << "closing waited for the timeout";
}

// -- submit and cancel (DESIGN.md §5) -----------------------------------------

TEST_F(fault, submitted_runs_complete_in_the_background) {
  start();
  auto& d = connect();
  std::vector<host_var> xs;
  std::vector<pending_run> runs;
  for (int64_t i = 0; i < 20; ++i) {
    auto x = d.put(static_cast<uint32_t>(i % 3), small_tensor({i, 1}));
    ASSERT_TRUE(x) << describe(x.error());
    xs.push_back(*x);
    runs.push_back(d.submit(double_graph(), {*x}));
  }
  for (int64_t i = 0; i < 20; ++i) {
    auto r = static_cast<uint32_t>(i % 3);
    auto out = runs[i].get();
    ASSERT_TRUE(out) << describe(out.error());
    ASSERT_EQ(out->size(), 1u);
    EXPECT_EQ((*out)[0].parties(), std::vector<uint32_t>{r});
    auto v = d.fetch((*out)[0], r);
    ASSERT_TRUE(v) << describe(v.error());
    EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{2 * i, 2}));
    expect_error(runs[i].get(), errc::invalid_argument); // taken once
  }
  // A run that cannot start fails from get, naming what was wrong.
  auto bad = d.submit(double_graph(), {xs[0]}, {7});
  EXPECT_TRUE(bad.wait_for(0ms));
  auto why = expect_error(bad.get(), errc::invalid_argument);
  EXPECT_NE(why.find("rank 7"), std::string::npos) << why;
}

TEST_F(fault, cancel_stops_a_running_run_and_keeps_nothing) {
  start();
  auto& d = connect();
  auto x = d.put(1, small_tensor({4, 2}));
  ASSERT_TRUE(x) << describe(x.error());
  auto before = d.worker_stats_of(1);
  ASSERT_TRUE(before);
  auto run = d.submit(sleep_graph(120'000), {*x});
  // Cancelling right after submit reaches the worker after the run
  // request (both go through the run's collector and the driver actor).
  EXPECT_EQ(run.cancel(), 1u);
  // Far inside the kernel's 120 s: only the cancel can end it this soon.
  ASSERT_TRUE(run.wait_for(10s)) << "the cancelled run kept running";
  expect_error(run.get(), errc::cancelled);
  ASSERT_TRUE(wait_running(d, 1, 0));
  auto after = d.worker_stats_of(1);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->pinned_objects, 0u) << "inputs stay pinned";
  EXPECT_EQ(after->mem_objects, before->mem_objects) << "an output was kept";
  EXPECT_EQ(after->tasks_failed, before->tasks_failed + 1);
  // The input is untouched and the worker serves on.
  auto v = d.fetch(*x, 1);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{4, 2}));
  expect_serving(d, 1);
}

TEST_F(fault, cancelling_a_finished_run_keeps_its_outputs) {
  start();
  auto& d = connect();
  auto x = d.put(0, small_tensor({3}));
  ASSERT_TRUE(x) << describe(x.error());
  auto run = d.submit(sleep_graph(10), {*x});
  ASSERT_TRUE(run.wait_for(10s));
  EXPECT_EQ(run.cancel(), 0u);
  auto out = run.get();
  ASSERT_TRUE(out) << describe(out.error());
  auto v = d.fetch((*out)[0], 0);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{3}));
  EXPECT_EQ(run.cancel(), 0u);
}

TEST_F(fault, dropping_a_pending_run_releases_its_outputs) {
  start();
  auto& d = connect();
  auto x = d.put(2, small_tensor({1, 2, 3}));
  ASSERT_TRUE(x) << describe(x.error());
  {
    auto run = d.submit(sleep_graph(50), {*x});
  } // never waited for: its outputs are released when it completes
  EXPECT_TRUE(poll_until([&]() -> bool {
    auto flushed = d.flush();
    auto ws = d.worker_stats_of(2);
    return flushed && ws && ws->tasks_running == 0 && ws->tasks_run >= 1
           && ws->mem_objects == 1;
  })) << "the dropped run's output stayed on the worker";
}

} // namespace
} // namespace fault_test_file
