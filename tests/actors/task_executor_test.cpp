// The node's task pool (actors/task_executor.hpp): bounded threads and
// queue, round-robin between sessions, cancel of queued tasks at once.

#include "actors/exec/task_executor.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace task_executor_test_file {
namespace {

using namespace objstore;
using namespace std::chrono_literals;

namespace {

/// A gate the pool's threads block on until the test opens it.
struct gate {
  std::mutex mtx;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> waiting{0};

  void wait() {
    ++waiting;
    std::unique_lock lock{mtx};
    cv.wait(lock, [this] { return open; });
  }

  void release() {
    {
      std::lock_guard guard{mtx};
      open = true;
    }
    cv.notify_all();
  }
};

bool eventually(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

task_executor_options pool(size_t threads, size_t max_queued = 1024) {
  task_executor_options opts;
  opts.threads = threads;
  opts.max_queued = max_queued;
  return opts;
}

task_executor::cancel_flag flag() {
  return std::make_shared<std::atomic<bool>>(false);
}

TEST(task_executor, sessions_take_turns) {
  task_executor ex{pool(1)};
  gate g;
  // The only thread is busy; session 1 queues a hundred tasks, then
  // session 2 queues one.
  ASSERT_TRUE(ex.submit(0, flag(), [&] { g.wait(); }, {}));
  ASSERT_TRUE(eventually([&] { return g.waiting == 1; }));
  std::mutex mtx;
  std::vector<uint64_t> order;
  auto record = [&](uint64_t s) {
    return [&, s] {
      std::lock_guard guard{mtx};
      order.push_back(s);
    };
  };
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(ex.submit(1, flag(), record(1), {}));
  ASSERT_TRUE(ex.submit(2, flag(), record(2), {}));
  EXPECT_EQ(ex.stats().queued, 101u);
  g.release();
  ASSERT_TRUE(eventually([&] {
    std::lock_guard guard{mtx};
    return order.size() == 101;
  }));
  // Session 2's one task ran second, not after session 1's hundred.
  auto pos = std::find(order.begin(), order.end(), 2u) - order.begin();
  EXPECT_EQ(pos, 1);
}

TEST(task_executor, a_full_queue_refuses_and_runs_nothing_of_the_refused) {
  task_executor ex{pool(1, 2)};
  gate g;
  ASSERT_TRUE(ex.submit(0, flag(), [&] { g.wait(); }, {}));
  ASSERT_TRUE(eventually([&] { return g.waiting == 1; }));
  std::atomic<int> ran{0};
  ASSERT_TRUE(ex.submit(1, flag(), [&] { ++ran; }, {}));
  ASSERT_TRUE(ex.submit(1, flag(), [&] { ++ran; }, {}));
  bool dropped = false;
  EXPECT_FALSE(ex.submit(
      1, flag(), [&] { ran += 100; }, [&] { dropped = true; }));
  EXPECT_EQ(ex.stats().refused, 1u);
  g.release();
  ASSERT_TRUE(eventually([&] { return ran == 2; }));
  EXPECT_FALSE(dropped) << "a refused task's callbacks never run";
  EXPECT_TRUE(eventually([&] { return ex.stats().busy == 0; }));
  EXPECT_EQ(ran, 2);
}

TEST(task_executor, cancel_drops_a_queued_task_at_once) {
  task_executor ex{pool(1)};
  gate g;
  ASSERT_TRUE(ex.submit(0, flag(), [&] { g.wait(); }, {}));
  ASSERT_TRUE(eventually([&] { return g.waiting == 1; }));
  auto f = flag();
  std::atomic<bool> ran{false};
  std::atomic<bool> dropped{false};
  ASSERT_TRUE(ex.submit(
      7, f, [&] { ran = true; }, [&] { dropped = true; }));
  // The only thread is still blocked: the drop happens in `cancel` itself.
  EXPECT_EQ(ex.cancel(f), 1u);
  EXPECT_TRUE(dropped);
  EXPECT_EQ(ex.stats().queued, 0u);
  EXPECT_EQ(ex.cancel(f), 0u) << "only once";
  g.release();
  ASSERT_TRUE(eventually([&] { return ex.stats().busy == 0; }));
  EXPECT_FALSE(ran);
}

TEST(task_executor, cancel_session_drops_only_that_sessions_tasks) {
  task_executor ex{pool(1)};
  gate g;
  ASSERT_TRUE(ex.submit(0, flag(), [&] { g.wait(); }, {}));
  ASSERT_TRUE(eventually([&] { return g.waiting == 1; }));
  std::atomic<int> ran{0};
  std::atomic<int> dropped{0};
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(ex.submit(
        1, flag(), [&] { ran += 1; }, [&] { ++dropped; }));
  ASSERT_TRUE(ex.submit(
      2, flag(), [&] { ran += 10; }, [&] { ++dropped; }));
  EXPECT_EQ(ex.cancel_session(1), 5u);
  EXPECT_EQ(dropped, 5);
  g.release();
  ASSERT_TRUE(eventually([&] { return ran == 10; }));
  EXPECT_EQ(ex.stats().dropped, 5u);
}

TEST(task_executor, stop_drops_the_queue_and_lets_running_tasks_finish) {
  auto ex = std::make_unique<task_executor>(pool(1));
  gate g;
  std::atomic<bool> finished{false};
  ASSERT_TRUE(ex->submit(0, flag(),
                         [&] {
                           g.wait();
                           finished = true;
                         },
                         {}));
  ASSERT_TRUE(eventually([&] { return g.waiting == 1; }));
  std::atomic<int> dropped{0};
  ASSERT_TRUE(ex->submit(
      1, flag(), [] {}, [&] { ++dropped; }));
  ex->stop();
  EXPECT_EQ(dropped, 1);
  EXPECT_FALSE(ex->submit(1, flag(), [] {}, {})) << "stopped";
  std::thread opener{[&] {
    std::this_thread::sleep_for(20ms);
    g.release();
  }};
  ex.reset(); // joins after the running task
  opener.join();
  EXPECT_TRUE(finished);
}

TEST(task_executor, a_throwing_task_does_not_end_its_thread) {
  task_executor ex{pool(1)};
  ASSERT_TRUE(ex.submit(0, flag(), [] { throw 42; }, {}));
  std::atomic<bool> ran{false};
  ASSERT_TRUE(ex.submit(0, flag(), [&] { ran = true; }, {}));
  EXPECT_TRUE(eventually([&] { return ran.load(); }));
}

TEST(task_executor, zero_threads_means_the_hardware_threads) {
  task_executor ex{pool(0)};
  EXPECT_EQ(ex.threads(),
            std::max<size_t>(1, std::thread::hardware_concurrency()));
}

} // namespace

} // namespace
} // namespace task_executor_test_file
