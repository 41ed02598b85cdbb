// objstore across real processes: 3 worker processes running the demo job
// (DESIGN.md §10) for a driver process and for an in-test driver, a
// driver process killed with SIGKILL (its session's objects are freed),
// and a worker restarted on the same fs roots (its fs:// objects survive).

#include <gtest/gtest.h>

#include <csignal>
#include <sstream>

#include "apps/demo_job.hpp"
#include "apps/process_support.hpp"

namespace multiprocess_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;

namespace {

using multiprocess = process_fixture;

/// Small enough to keep the test fast, large enough for every key.
constexpr size_t demo_rows = 20'000;
constexpr uint64_t demo_seed = 11;

TEST_F(multiprocess, children_are_killed_and_reaped) {
  pid_t pid = 0;
  {
    child_process sleeper{
        {"/bin/sleep", "30"}, dir() / "s.out", dir() / "s.err"};
    pid = sleeper.pid();
    ASSERT_TRUE(sleeper.running());
  }
  // Reaped, so the pid is gone (not even a zombie).
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST_F(multiprocess, demo_driver_process_matches_single_process_result) {
  ASSERT_TRUE(start_workers(3, worker_flags{}.policy("revealed-only")));
  auto& drv
      = spawn({OBJSTORE_NODE_PATH, "--objstore.role=driver", cluster_flag(),
               "--objstore.demo-rows=" + std::to_string(demo_rows),
               "--objstore.demo-seed=" + std::to_string(demo_seed)},
              "driver");
  auto status = drv.wait_exit(30s);
  ASSERT_TRUE(status) << "the demo driver did not finish\n" << drv.describe();
  EXPECT_EQ(describe_status(*status), "exit 0") << drv.describe();
  EXPECT_NE(drv.out().find("matches single-process computation: yes"),
            std::string::npos)
      << drv.describe();
  EXPECT_NE(drv.out().find("objects after dropping them:   rank 0: 0, "
                           "rank 1: 0, rank 2: 0"),
            std::string::npos)
      << drv.describe();
  // The same job from an in-test driver against the same processes.
  auto d = connect();
  ASSERT_TRUE(d);
  std::ostringstream log;
  auto result = apps::run_demo_job(*d, demo_rows, demo_seed, log);
  ASSERT_TRUE(result) << describe(result.error()) << "\n" << log.str();
  auto expected = apps::demo_reference(3, demo_rows, demo_seed);
  ASSERT_TRUE(expected) << describe(expected.error());
  EXPECT_FALSE(result->sums.empty());
  EXPECT_TRUE(apps::same_sums(*expected, result->sums));
  EXPECT_EQ(result->rows, 3 * demo_rows);
  EXPECT_EQ(result->objects_after, (std::vector<uint64_t>{0, 0, 0}));
  // The driver saw the small aggregate, not the data.
  EXPECT_LT(result->driver_bytes_received, result->data_bytes / 100);
  d.reset();
  expect_no_leaks();
}

TEST_F(multiprocess, demo_driver_process_stops_on_sigint) {
  ASSERT_TRUE(start_workers(1));
  // The driver waits in connect for the frozen worker until
  // objstore.timeout (30 s): only a signal ends it sooner.
  proc(0).signal(SIGSTOP);
  ASSERT_TRUE(proc(0).wait_stopped(5s)) << proc(0).describe();
  auto& drv = spawn({OBJSTORE_NODE_PATH, "--objstore.role=driver",
                     cluster_flag(), "--objstore.heartbeat-interval=0s"},
                    "driver");
  // Past the actor system's start (it has threads), signals are set up.
  auto task_dir = "/proc/" + std::to_string(drv.pid()) + "/task";
  ASSERT_TRUE(poll_until([&] {
    std::error_code ec;
    auto threads = std::distance(fs::directory_iterator{task_dir, ec},
                                 fs::directory_iterator{});
    return !drv.running() || threads > 1;
  }));
  drv.signal(SIGINT);
  auto status = drv.wait_exit(5s);
  proc(0).signal(SIGCONT);
  ASSERT_TRUE(status) << "the driver ignored SIGINT\n" << drv.describe();
  EXPECT_EQ(describe_status(*status), "signal 2") << drv.describe();
}

TEST_F(multiprocess, killed_driver_process_loses_its_session_objects) {
  ASSERT_TRUE(start_workers(2, worker_flags{}.policy("revealed-only")));
  auto survivor = connect();
  ASSERT_TRUE(survivor);
  constexpr uint64_t own = 2, theirs = 5;
  std::vector<host_var> kept;
  for (uint32_t r = 0; r < 2; ++r)
    for (uint64_t i = 0; i < own; ++i) {
      auto x
          = survivor->put(r, small_tensor({static_cast<int64_t>(10 * r + i)}));
      ASSERT_TRUE(x) << describe(x.error());
      kept.push_back(*x);
    }
  std::string endpoints;
  for (auto& ep : spec().workers)
    endpoints += (endpoints.empty() ? "" : ",") + ep.str();
  auto& child
      = spawn({OBJSTORE_DRIVER_CHILD_PATH, std::to_string(theirs), endpoints},
              "driver_child");
  ASSERT_TRUE(child.wait_output("ready", 10s)) << child.describe();
  for (uint32_t r = 0; r < 2; ++r) {
    auto st = survivor->worker_stats_of(r);
    ASSERT_TRUE(st) << describe(st.error());
    EXPECT_EQ(st->mem_objects, own + theirs) << "rank " << r;
    EXPECT_EQ(st->sessions, 2u) << "rank " << r;
  }
  child.signal(SIGKILL);
  auto status = child.wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(describe_status(*status), "signal 9");
  // The workers see the driver's connection drop and close its session.
  for (uint32_t r = 0; r < 2; ++r) {
    caf::expected<worker_stats> st = worker_stats{};
    EXPECT_TRUE(poll_until([&] {
      st = survivor->worker_stats_of(r);
      return st && st->mem_objects == own && st->sessions == 1;
    })) << "rank "
        << r << ": "
        << (st ? std::to_string(st->mem_objects) + " objects, "
                     + std::to_string(st->sessions) + " sessions"
               : describe(st.error()));
  }
  // The survivor's objects are intact.
  for (uint32_t r = 0; r < 2; ++r) {
    auto v = survivor->fetch(kept[r * own], r);
    ASSERT_TRUE(v) << describe(v.error());
    EXPECT_EQ(int64_values(*v), std::vector<int64_t>{10 * r});
  }
  // A new driver connects and works next to the survivor.
  auto fresh = connect();
  ASSERT_TRUE(fresh);
  expect_serving(*fresh, 0);
  expect_serving(*fresh, 1);
  expect_serving(*survivor, 1);
  kept.clear();
  survivor.reset();
  fresh.reset();
  expect_no_leaks();
}

TEST_F(multiprocess, restarted_worker_serves_its_fs_objects) {
  auto root = dir() / "fs0";
  fs::create_directory(root);
  auto flags = worker_flags{}.policy("allow").root(root);
  ASSERT_TRUE(start_worker(0, flags));
  ASSERT_TRUE(start_worker(1));
  EXPECT_NE(proc(0).out().find("0 fs objects"), std::string::npos)
      << proc(0).describe();
  // Every byte value, so any re-encoding would show.
  std::string payload;
  for (int i = 0; i < 4096; ++i)
    payload.push_back(static_cast<char>(i * 7 % 256));
  auto uri = "fs://" + (root / "x.obj").string();
  {
    auto d = connect();
    ASSERT_TRUE(d);
    auto x = d->put(0, make_value(blob::copy_of(payload)), uri);
    ASSERT_TRUE(x) << describe(x.error());
    EXPECT_EQ(x->uri(0), uri);
    // The worker drains and exits 0 with a driver still connected.
    proc(0).signal(SIGTERM);
    auto status = proc(0).wait_exit(10s);
    ASSERT_TRUE(status) << "SIGTERM did not stop the worker";
    EXPECT_EQ(describe_status(*status), "exit 0") << proc(0).describe();
    EXPECT_NE(proc(0).out().find("SIGTERM, draining"), std::string::npos)
        << proc(0).describe();
    EXPECT_NE(proc(0).out().find("stopped"), std::string::npos)
        << proc(0).describe();
    // The driver sees rank 0 go and keeps rank 1.
    EXPECT_TRUE(poll_until([&] {
      auto st = d->worker_stats_of(0);
      return !st && code_of(st.error()) == errc::object_lost;
    }));
    expect_serving(*d, 1);
  }
  ASSERT_TRUE(start_worker(0, flags));
  EXPECT_NE(proc(0).out().find("1 fs objects"), std::string::npos)
      << proc(0).describe();
  auto d = connect();
  ASSERT_TRUE(d);
  auto st = d->worker_stats_of(0);
  ASSERT_TRUE(st) << describe(st.error());
  EXPECT_EQ(st->fs_objects, 1u);
  host_var x{d->world_size()};
  x.set(0, std::make_shared<const remote_ref>(0, uri, nullptr));
  auto v = d->fetch(x, 0);
  ASSERT_TRUE(v) << describe(v.error());
  ASSERT_TRUE((*v)->is_bytes()) << (*v)->summary();
  EXPECT_TRUE((*v)->as_bytes().view() == payload)
      << "fetched " << (*v)->summary();
  d.reset();
  expect_no_leaks();
}

} // namespace

} // namespace
} // namespace multiprocess_test_file
