// Worker processes failing under an in-test driver: SIGKILL mid-task
// fails the call with object_lost at once; SIGSTOP (a frozen peer) is
// detected by the heartbeat within the configured connection timeout. The
// other ranks keep working in both cases.

#include <gtest/gtest.h>

#include <csignal>
#include <future>

#include <sys/stat.h>

#include "apps/process_support.hpp"

namespace process_fault_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;

namespace {

using process_fault = process_fixture;

/// Driver options whose request deadline no detection in these tests
/// comes near: a call that waited for it fails with `timeout`, not
/// `object_lost`, and the tests' own deadlines end well before it.
driver_actor_options long_timeout() {
  driver_actor_options opts;
  opts.timeout = 60s;
  return opts;
}

/// Requests the driver actor has sent to workers so far.
uint64_t requests_sent(driver& d) {
  auto st = d.stats();
  EXPECT_TRUE(st) << describe(st.error());
  return st ? st->requests : 0;
}

TEST_F(process_fault, worker_killed_mid_task_fails_the_call_with_object_lost) {
  ASSERT_TRUE(start_workers(3));
  // The client drops no silent peer: only the closed connection can tell
  // the driver.
  auto connected = driver::connect(client(), spec(), long_timeout());
  ASSERT_TRUE(connected) << describe(connected.error());
  auto d = std::move(*connected);
  auto x = d->put(1, small_tensor({1}));
  ASSERT_TRUE(x) << describe(x.error());
  auto uri = *x->uri(1);
  auto running = std::async(std::launch::async, [&] {
    return d->run(sleep_graph(120'000), {*x}, {1});
  });
  ASSERT_TRUE(poll_until([&] {
    auto st = d->worker_stats_of(1);
    return st && st->tasks_running == 1;
  })) << "the sleep op did not start: "
      << (running.wait_for(0s) == std::future_status::ready
              ? describe(running.get().error())
              : std::string{"still running"});
  proc(1).signal(SIGKILL);
  // Neither the kernel (120 s) nor the driver's deadline (60 s) ends the
  // call within this wait: only the worker's down message can.
  ASSERT_EQ(running.wait_for(10s), std::future_status::ready)
      << "the driver kept waiting on a dead worker";
  auto why = expect_error(running.get(), errc::object_lost);
  EXPECT_NE(why.find("rank 1"), std::string::npos) << why;
  auto status = proc(1).wait_exit(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(describe_status(*status), "signal 9");
  // Ranks 0 and 2 keep working; rank 1 fails at once: the driver does not
  // even send the calls.
  expect_serving(*d, 0);
  expect_serving(*d, 2);
  auto sent = requests_sent(*d);
  why = expect_error(d->fetch(*x, 1), errc::object_lost);
  EXPECT_NE(why.find(uri), std::string::npos) << why;
  expect_error(d->put(1, small_tensor({2})), errc::object_lost);
  expect_error(d->worker_stats_of(1), errc::object_lost);
  EXPECT_EQ(requests_sent(*d), sent) << "a call went to the dead worker";
  // Dropping the lost handle and the driver is clean and quick: waiting
  // on rank 1 would take the 60 s timeout.
  x->reset();
  auto t0 = std::chrono::steady_clock::now();
  d.reset();
  EXPECT_LT(elapsed_ms(t0), 10'000) << "destroying the driver waited";
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
  ASSERT_EQ(running.wait_for(10s), std::future_status::ready);
  auto result = running.get();
  EXPECT_TRUE(result) << describe(result.error());
  auto status = proc(0).wait_exit(10s);
  ASSERT_TRUE(status) << proc(0).describe();
  EXPECT_EQ(describe_status(*status), "exit 0") << proc(0).describe();
  EXPECT_NE(proc(0).out().find("SIGTERM, draining"), std::string::npos);
  expect_serving(*d, 1);
  x->reset();
  d.reset();
  // SIGINT drains the same way.
  proc(1).signal(SIGINT);
  status = proc(1).wait_exit(10s);
  ASSERT_TRUE(status) << proc(1).describe();
  EXPECT_EQ(describe_status(*status), "exit 0") << proc(1).describe();
  EXPECT_NE(proc(1).out().find("SIGINT, draining"), std::string::npos);
}

TEST_F(process_fault, a_root_with_loops_and_fifos_starts_serves_and_stops) {
  // Used to be a crash loop (uncaught filesystem_error on the loop) or a
  // node whose every fs:// call and SIGTERM hung on the FIFO.
  auto root = dir() / "root";
  fs::create_directories(root / "data");
  fs::create_symlink(".", root / "data" / "loop");
  fs::create_directory_symlink(root / "b", root / "a");
  fs::create_directory_symlink(root / "a", root / "b");
  ASSERT_EQ(::mkfifo((root / "data" / "pipe.obj").c_str(), 0600), 0);
  ASSERT_TRUE(start_workers(1, worker_flags{}.root(root)));
  auto err = proc(0).err();
  EXPECT_NE(err.find("skipped"), std::string::npos) << err;
  EXPECT_NE(err.find("pipe.obj"), std::string::npos) << err;
  auto d = connect();
  ASSERT_TRUE(d);
  // The FIFO's URI is refused at once; fs:// objects next to it work.
  auto pipe = "fs://" + (root / "data" / "pipe.obj").string();
  host_var fifo{d->world_size()};
  fifo.set(0, d->adopt(0, pipe));
  auto fetched
      = std::async(std::launch::async, [&] { return d->fetch(fifo, 0); });
  ASSERT_EQ(fetched.wait_for(10s), std::future_status::ready)
      << "the FIFO blocked the worker";
  auto why = expect_error(fetched.get(), errc::invalid_uri);
  EXPECT_NE(why.find("not a regular file"), std::string::npos) << why;
  auto target = "fs://" + (root / "data" / "x.obj").string();
  auto x = d->put(0, small_tensor({4}), target);
  ASSERT_TRUE(x) << describe(x.error());
  auto v = d->fetch(*x, 0);
  ASSERT_TRUE(v) << describe(v.error());
  x->reset();
  fifo.reset();
  d.reset();
  proc(0).signal(SIGTERM);
  auto status = proc(0).wait_exit(20s);
  ASSERT_TRUE(status) << proc(0).describe();
  EXPECT_EQ(describe_status(*status), "exit 0") << proc(0).describe();
}

TEST_F(process_fault, stopped_worker_is_detected_within_the_heartbeat_timeout) {
  constexpr auto interval = 200ms;
  constexpr auto connection_timeout = 2s;
  ASSERT_TRUE(start_workers(2, worker_flags{}
                                   .flag("--objstore.heartbeat-interval=200ms")
                                   .flag("--objstore.heartbeat-timeout=2s")));
  client(interval, connection_timeout);
  auto connected = driver::connect(client(), spec(), long_timeout());
  ASSERT_TRUE(connected) << describe(connected.error());
  auto d = std::move(*connected);
  auto x = d->put(1, small_tensor({5}));
  ASSERT_TRUE(x) << describe(x.error());
  expect_serving(*d, 1);
  proc(1).signal(SIGSTOP);
  ASSERT_TRUE(proc(1).wait_stopped(10s)) << proc(1).describe();
  auto stopped_at = std::chrono::steady_clock::now();
  // Well inside the driver's 60 s request timeout (which would fail the
  // call with `timeout`), the heartbeat drops the silent peer and the
  // pending call fails with object_lost.
  auto v = d->fetch(*x, 1);
  auto took = elapsed_ms(stopped_at);
  auto why = expect_error(v, errc::object_lost);
  EXPECT_NE(why.find("rank 1"), std::string::npos) << why;
  // Detected about one connection timeout (2 s) after the last message
  // the peer sent: not before it, and not much after (a generous bound,
  // still far from the request timeout).
  EXPECT_GE(took, 1000) << "a stopped peer cannot be detected that fast";
  EXPECT_LT(took, 15'000) << "detection took far longer than the timeout";
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

TEST_F(
    process_fault,
    a_driver_reconnects_to_a_restarted_worker_and_its_fs_handles_work_again) {
  // The fs:// objects belong to a principal, so a new session (on the new
  // process) may read them; a session's own objects die with the session.
  auto root = dir() / "root0";
  fs::create_directories(root);
  auto principals = dir() / "principals";
  write_text(principals, "alice " + std::string(40, 'a') + "\n");
  fs::permissions(principals, fs::perms::owner_read | fs::perms::owner_write);
  auto flags = worker_flags{}.root(root).flag("--objstore.principals-file="
                                              + principals.string());
  ASSERT_TRUE(start_worker(0, flags));
  ASSERT_TRUE(start_worker(1, worker_flags{}.flag("--objstore.principals-file="
                                                  + principals.string())));
  auto opts = long_timeout();
  opts.reconnect_interval = 200ms;
  opts.principal = "alice";
  opts.principal_secret = std::string(40, 'a');
  auto connected = driver::connect(client(), spec(), opts);
  ASSERT_TRUE(connected) << describe(connected.error());
  auto d = std::move(*connected);
  auto mem = d->put(0, small_tensor({1, 2}));
  auto uri = "fs://" + (root / "kept.obj").string();
  auto kept = d->put(0, small_tensor({7, 8}), uri);
  ASSERT_TRUE(mem && kept) << describe(mem ? kept.error() : mem.error());
  EXPECT_EQ(d->alive(*mem), (std::vector<bool>{true, false}));
  auto port = worker(0).port;
  proc(0).signal(SIGKILL);
  ASSERT_TRUE(proc(0).wait_exit(10s));
  ASSERT_TRUE(poll_until([&] { return !d->alive(*kept)[0]; }))
      << "the driver did not see the worker go";
  expect_error(d->fetch(*kept, 0), errc::object_lost);
  // The same endpoint and fs root, a new process.
  ASSERT_TRUE(start_worker(0, flags.on_port(port)));
  // CAF may hand out a connection to the dead process once more before
  // the new one: the driver then loses the rank again and retries.
  ASSERT_TRUE(
      poll_until([&] { return static_cast<bool>(d->fetch(*kept, 0)); }, 15s))
      << "the driver did not reconnect";
  EXPECT_TRUE(d->alive(*kept)[0]);
  auto v = d->fetch(*kept, 0);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{7, 8}));
  // The old process's mem:// object is gone: lost, without asking.
  EXPECT_EQ(d->alive(*mem), (std::vector<bool>{false, false}));
  auto why = expect_error(d->fetch(*mem, 0), errc::object_lost);
  EXPECT_NE(why.find("restarted"), std::string::npos) << why;
  expect_error(d->run(double_graph(), {*mem}, {0}), errc::object_lost);
  // New work on the restarted worker, including from the fs:// object.
  auto doubled = d->run(double_graph(), {*kept}, {0});
  ASSERT_TRUE(doubled) << describe(doubled.error());
  EXPECT_EQ(int64_values(*d->fetch((*doubled)[0], 0)),
            (std::vector<int64_t>{14, 16}));
  expect_serving(*d, 0);
  expect_serving(*d, 1);
  mem->reset(); // a stale handle's release goes nowhere
  doubled->clear();
  d.reset();
  expect_no_leaks();
}

} // namespace

} // namespace
} // namespace process_fault_test_file
