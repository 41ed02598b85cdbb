// An embedded driver (an actor system set up only by configure_system, as
// in the README) against worker processes with default options: idle past
// the workers' heartbeat timeout it keeps its session and objects, and
// connecting to a frozen (SIGSTOPped) worker fails with `timeout` at the
// driver's deadline, plain and over mutual TLS, whether or not heartbeat
// ticks drop the attempts.

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <future>
#include <thread>

#include "actors/system.hpp"
#include "actors/test_pki.hpp"
#include "actors/worker/endpoint.hpp"
#include "apps/process_support.hpp"

namespace embedded_driver_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;

namespace {

using embedded_driver = process_fixture;

/// Deadline of the connects in these tests.
constexpr auto connect_deadline = 2s;

/// Generous slack above the deadline for a loaded machine, still far
/// below "forever" and the 30 s default.
constexpr int64_t slack_ms = 3000;

driver_actor_options short_deadline(const std::string& operator_secret) {
  driver_actor_options opts;
  opts.timeout = connect_deadline;
  opts.operator_secret = operator_secret;
  return opts;
}

/// Connects to every worker of `spec`, where `frozen_rank` (process
/// `frozen`) is stopped: fails with the timeout naming the rank and
/// endpoint, at the deadline. A connect that hangs is a failure; killing
/// the frozen worker then ends it.
void expect_connect_times_out(caf::actor_system& sys, const cluster_spec& spec,
                              uint32_t frozen_rank, child_process& frozen,
                              const driver_actor_options& opts) {
  auto start = std::chrono::steady_clock::now();
  auto attempt = std::async(std::launch::async,
                            [&] { return driver::connect(sys, spec, opts); });
  if (attempt.wait_for(20s) != std::future_status::ready) {
    ADD_FAILURE() << "connect ignored its deadline";
    frozen.signal(SIGKILL);
    return;
  }
  auto d = attempt.get();
  auto took = elapsed_ms(start);
  ASSERT_FALSE(d) << "connected to a frozen worker";
  auto why = describe(d.error());
  auto endpoint = spec.workers[frozen_rank].str();
  EXPECT_NE(why.find("rank " + std::to_string(frozen_rank) + " at " + endpoint),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("objstore.timeout: connecting to " + endpoint),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("2000 ms"), std::string::npos) << why;
  EXPECT_GE(took, 1900) << why;
  EXPECT_LT(took, 2000 + slack_ms) << "the deadline was 2 s";
}

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
  auto v = d->fetch(0, (*again)[0]);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{4, 8}));
  auto w = d->run(double_graph(), {*z}, {1});
  ASSERT_TRUE(w) << describe(w.error());
  v = d->fetch(1, (*w)[0]);
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

TEST_F(embedded_driver, connect_to_a_stopped_worker_fails_at_the_deadline) {
  ASSERT_TRUE(start_workers(2));
  proc(1).signal(SIGSTOP);
  ASSERT_TRUE(proc(1).wait_stopped(5s)) << proc(1).describe();
  auto opts = short_deadline(operator_secret());
  {
    // Nothing ends the handshake, which stays pending in CAF's middleman
    // past the deadline.
    SCOPED_TRACE("configure_system's heartbeats");
    expect_connect_times_out(client(), spec(), 1, proc(1), opts);
  }
  // Dropping silent peers on (as objstore-node and the CLI have it): each
  // heartbeat tick ends one attempt, which connect_worker retries.
  caf::actor_system_config cfg;
  configure_system(cfg, 2);
  set_heartbeats(cfg, 200ms, 2s);
  auto dropping = std::make_unique<caf::actor_system>(cfg);
  {
    SCOPED_TRACE("dropping silent peers");
    expect_connect_times_out(*dropping, spec(), 1, proc(1), opts);
  }
  // Woken, the worker completes the handshake left behind (its result
  // reaches nobody) and serves both systems.
  proc(1).signal(SIGCONT);
  for (auto* sys : {&client(), dropping.get()}) {
    auto d = driver::connect(*sys, spec(), opts);
    ASSERT_TRUE(d) << describe(d.error());
    expect_serving(**d, 1);
  }
  auto start = std::chrono::steady_clock::now();
  dropping.reset();
  EXPECT_LT(elapsed_ms(start), 5000) << "shutting the system down waited";
  expect_no_leaks();
}

TEST_F(embedded_driver, connect_to_a_stopped_tls_worker_fails_at_the_deadline) {
  auto file = [](const std::string& name) {
    return test::pki_file(name);
  };
  ASSERT_TRUE(
      start_worker(0, worker_flags{}
                          .flag("--openssl.certificate=" + file("node0.pem"))
                          .flag("--openssl.key=" + file("node0.key"))
                          .flag("--openssl.cafile=" + file("ca.pem"))));
  caf::actor_system_config cfg;
  configure_system(cfg, 2);
  apply_tls(cfg, {file("driver.pem"), file("driver.key"), file("ca.pem"), {}});
  caf::actor_system sys{cfg};
  proc(0).signal(SIGSTOP);
  ASSERT_TRUE(proc(0).wait_stopped(5s)) << proc(0).describe();
  auto opts = short_deadline(operator_secret());
  expect_connect_times_out(sys, spec(), 0, proc(0), opts);
  proc(0).signal(SIGCONT);
  auto d = driver::connect(sys, spec(), opts);
  ASSERT_TRUE(d) << describe(d.error());
  expect_serving(**d, 0);
}

} // namespace

} // namespace
} // namespace embedded_driver_test_file
