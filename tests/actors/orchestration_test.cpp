// The driver actor orchestrates (issue 15), on a real in-process cluster:
// handles dropped right after submit, cancel racing completion, closing a
// driver with runs in flight, a failing party failing the run at once, a
// shuffle driven from an actor without blocking, waiting on several runs.

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <chrono>
#include <future>

#include "actors/cluster_fixture.hpp"

namespace orchestration_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;

namespace {

class orchestration : public cluster_fixture {};

/// a = add(x, y); out = sleep(a, ms): fails at once where x and y do not
/// fit together, sleeps where they do.
graph add_then_sleep(int64_t ms) {
  graph_builder b;
  auto x = b.input();
  auto y = b.input();
  b.output(b.add("sleep", {b.add("add", {x, y})}, {make_attr("ms", ms)}));
  return b.build();
}

TEST_F(orchestration, an_input_dropped_right_after_submit_is_still_there) {
  start();
  auto& d = connect();
  for (int i = 0; i < 50; ++i) {
    auto x = d.put(0, small_tensor({i, 1}));
    ASSERT_TRUE(x) << describe(x.error());
    auto pending = d.submit(double_graph(), {*x}, {0});
    x = caf::expected<host_var>{host_var{}}; // the last handle goes now
    auto out = pending.get();
    ASSERT_TRUE(out) << "iteration " << i << ": " << describe(out.error());
    auto v = d.fetch(0, (*out)[0]);
    ASSERT_TRUE(v) << describe(v.error());
    EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{2 * i, 2}));
  }
}

TEST_F(orchestration, threads_racing_for_the_outputs_of_a_run_get_them_once) {
  start();
  auto& d = connect();
  auto x = d.put(0, small_tensor({3, 4}));
  ASSERT_TRUE(x) << describe(x.error());
  for (int i = 0; i < 20; ++i) {
    auto pending = d.submit(double_graph(), {*x}, {0});
    std::promise<void> go;
    auto ready = go.get_future().share();
    auto take = [&] {
      ready.wait();
      return pending.get();
    };
    auto a = std::async(std::launch::async, take);
    auto b = std::async(std::launch::async, take);
    go.set_value();
    auto ra = a.get();
    auto rb = b.get();
    ASSERT_NE(static_cast<bool>(ra), static_cast<bool>(rb))
        << "iteration " << i << ": exactly one thread takes the outputs";
    auto& lost = ra ? rb : ra;
    EXPECT_EQ(code_of(lost.error()), errc::invalid_argument);
    auto& won = ra ? ra : rb;
    auto v = d.fetch(0, (*won)[0]);
    ASSERT_TRUE(v) << describe(v.error());
    EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{6, 8}));
  }
}

TEST_F(orchestration, cancel_racing_completion_returns_at_once) {
  start();
  auto& d = connect();
  auto x = d.put(1, small_tensor({1, 2}));
  ASSERT_TRUE(x) << describe(x.error());
  for (int i = 0; i < 40; ++i) {
    auto pending = d.submit(double_graph(), {*x}, {1});
    if (i % 2 == 0)
      std::this_thread::sleep_for(std::chrono::microseconds{100 * i});
    auto start = std::chrono::steady_clock::now();
    auto still = pending.cancel();
    EXPECT_LT(elapsed_ms(start), 500) << "iteration " << i;
    EXPECT_LE(still, 1u);
    auto out = pending.get();
    if (!out) {
      EXPECT_EQ(code_of(out.error()), errc::cancelled) << describe(out.error());
    }
    // Cancel after the end: nothing to do, at once.
    start = std::chrono::steady_clock::now();
    EXPECT_EQ(pending.cancel(), 0u);
    EXPECT_LT(elapsed_ms(start), 100);
  }
  expect_serving(d, 1);
}

TEST_F(orchestration, closing_a_driver_with_runs_in_flight_returns_at_once) {
  start();
  auto d = nodes().connect();
  ASSERT_TRUE(d) << describe(d.error());
  auto& drv = **d;
  auto x = drv.put(0, small_tensor({1, 2}));
  ASSERT_TRUE(x) << describe(x.error());
  std::vector<pending_run> runs;
  for (int i = 0; i < 3; ++i)
    runs.push_back(drv.submit(sleep_graph(60'000), {*x}, {0}));
  // A blocking run in flight on another thread.
  auto blocked = std::async(std::launch::async, [&] {
    return drv.run(sleep_graph(60'000), {*x}, {0});
  });
  auto& op = connect(); // an operator watching the node
  ASSERT_TRUE(poll_until([&] {
    auto st = op.worker_stats_of(0);
    return st && st->task_threads_busy == 2;
  }));
  auto start = std::chrono::steady_clock::now();
  drv.close();
  EXPECT_LT(elapsed_ms(start), 1'500);
  for (auto& r : runs) {
    auto out = r.get();
    ASSERT_FALSE(out);
    EXPECT_EQ(code_of(out.error()), errc::cancelled) << describe(out.error());
  }
  auto out = blocked.get();
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::cancelled) << describe(out.error());
  // Later calls fail at once; the worker cancelled the session's tasks.
  EXPECT_EQ(code_of(drv.put(0, small_tensor({1})).error()), errc::cancelled);
  EXPECT_TRUE(poll_until([&] {
    auto st = op.worker_stats_of(0);
    return st && st->task_threads_busy == 0 && st->tasks_queued == 0;
  }));
  x = caf::expected<host_var>{host_var{}};
  start = std::chrono::steady_clock::now();
  d->reset();
  EXPECT_LT(elapsed_ms(start), 1'000) << "the destructor closes no further";
}

TEST_F(orchestration,
       a_failing_party_fails_the_run_at_once_and_the_others_are_cancelled) {
  start();
  auto& d = connect();
  // Rank 0's inputs do not fit together (add fails at once); rank 1's do
  // (it sleeps 60 s).
  auto x0 = d.put(0, small_tensor({1, 2, 3}));
  auto y0 = d.put(0, small_tensor({1, 2}));
  auto x1 = d.put(1, small_tensor({1, 2}));
  auto y1 = d.put(1, small_tensor({1, 2}));
  ASSERT_TRUE(x0 && y0 && x1 && y1);
  auto x = combine(3, {*x0, *x1});
  auto y = combine(3, {*y0, *y1});
  auto start = std::chrono::steady_clock::now();
  auto out = d.run(add_then_sleep(60'000), {x, y});
  EXPECT_LT(elapsed_ms(start), 2'000) << "no wait for the slow party";
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::op_failed) << describe(out.error());
  EXPECT_NE(message_of(out.error()).find("rank 0"), std::string::npos)
      << message_of(out.error());
  EXPECT_TRUE(poll_until(
      [&] {
        auto st = d.worker_stats_of(1);
        return st && st->task_threads_busy == 0;
      },
      2s))
      << "rank 1's part is cancelled";
  expect_serving(d, 1);
}

TEST_F(orchestration, wait_any_returns_the_first_finished_runs) {
  start();
  auto& d = connect();
  auto x = d.put(2, small_tensor({1}));
  ASSERT_TRUE(x) << describe(x.error());
  auto slow = d.submit(sleep_graph(60'000), {*x}, {2});
  auto fast = d.submit(sleep_graph(1), {*x}, {2});
  auto start = std::chrono::steady_clock::now();
  auto first = d.wait_any({&slow, &fast}, 1, 10s);
  EXPECT_LT(elapsed_ms(start), 5'000);
  EXPECT_EQ(first, (std::vector<size_t>{1}));
  start = std::chrono::steady_clock::now();
  auto both = d.wait_any({&slow, &fast}, 2, 300ms);
  EXPECT_GE(elapsed_ms(start), 250) << "waits for the timeout";
  EXPECT_EQ(both, (std::vector<size_t>{1}));
  EXPECT_FALSE(slow.wait_for(50ms));
  EXPECT_TRUE(fast.wait_for(50ms));
  EXPECT_EQ(slow.cancel(), 1u);
  EXPECT_EQ(code_of(slow.get().error()), errc::cancelled);
  EXPECT_TRUE(fast.get());
}

TEST_F(orchestration, an_actor_drives_a_shuffle_without_blocking) {
  start();
  auto& d = connect();
  auto x0 = d.put(0, small_tensor({10, 11}));
  auto x2 = d.put(2, small_tensor({12}));
  ASSERT_TRUE(x0 && x2);
  auto x = combine(3, {*x0, *x2});
  auto promise = std::make_shared<std::promise<caf::expected<host_var>>>();
  auto result = promise->get_future();
  // An event-based actor on the client system: it asks and returns.
  nodes().client_system().spawn(
      [promise](caf::event_based_actor* self, driver_actor drv, host_var in) {
        self->request(drv, std::chrono::seconds{30}, shuffle_atom::value, in,
                      std::vector<int64_t>{2, 0, 0})
            .then([promise](
                      host_var& out) { promise->set_value(std::move(out)); },
                  [promise](caf::error& err) {
                    promise->set_value(std::move(err));
                  });
      },
      d.handle(), x);
  ASSERT_EQ(result.wait_for(30s), std::future_status::ready);
  auto out = result.get();
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->parties(), (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_EQ(int64_values(*d.fetch(0, *out)), (std::vector<int64_t>{12}));
  EXPECT_EQ(int64_values(*d.fetch(1, *out)), (std::vector<int64_t>{10, 11}));
  EXPECT_EQ(int64_values(*d.fetch(2, *out)), (std::vector<int64_t>{10, 11}));
}

TEST_F(orchestration, alive_reports_the_parts_on_a_killed_node) {
  start();
  auto& d = connect();
  auto x0 = d.put(0, small_tensor({1}));
  auto x1 = d.put(1, small_tensor({2}));
  ASSERT_TRUE(x0 && x1);
  auto x = combine(3, {*x0, *x1});
  EXPECT_EQ(d.alive(x), (std::vector<bool>{true, true, false}));
  nodes().kill(1);
  EXPECT_TRUE(poll_until([&] {
    return d.alive(x) == std::vector<bool>{true, false, false};
  }));
}

} // namespace

} // namespace
} // namespace orchestration_test_file
