#pragma once

// A GoogleTest fixture around an actor system that runs on CAF 0.17's
// deterministic scheduler (`caf::scheduler::test_coordinator`). Nothing
// runs on its own: actors process messages only inside `sched.run()` (on
// the test thread), and time moves only when the test says so
// (`sched.advance_time`), so a test can state "nothing happens before the
// deadline" without sleeping and without wall-clock bounds.
//
// CAF's own `caf/test/dsl.hpp` needs CAF's test runner; this fixture uses
// the coordinator directly, with the same configuration as that DSL.

#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "messages/atoms.hpp"
#include "messages/protocol.hpp"
#include "messages/registration.hpp"

namespace objstore::test {

/// What one request got back: a value or an error, and how many replies
/// arrived (a request is answered exactly once).
template<class T>
struct outcome {
  std::optional<T> value;
  caf::error error;
  size_t replies = 0;

  bool done() const { return replies > 0; }
};

class deterministic_fixture : public ::testing::Test {
protected:
  deterministic_fixture()
      : sys(init(cfg)), sched(dynamic_cast<caf::scheduler::test_coordinator&>(
                            sys.scheduler())) {
    // Timestamps of zero look like "never set" to some of CAF's code.
    sched.clock().current_time += std::chrono::hours{1};
    sched.run(); // utility actors of the system and the middleman
  }

  ~deterministic_fixture() override {
    // The system's destructor blocks until every actor has quit, and with
    // this scheduler nothing runs unless we run it: kill what the test
    // spawned and let the scheduler finish (pending timers included, their
    // messages go to dead actors).
    for (auto& x : spawned)
      caf::anon_send_exit(x, caf::exit_reason::kill);
    for (int round = 0; round < 1000; ++round)
      if (sched.run() == 0 && sched.trigger_timeouts() == 0)
        break;
  }

  /// Remembers `x` so the fixture can stop it at the end of the test.
  template<class Handle>
  Handle track(Handle x) {
    spawned.push_back(caf::actor_cast<caf::actor>(x));
    return x;
  }

  /// Spawns a client actor that sends `xs...` to `dest` as a request and
  /// records the reply in the returned outcome. Nothing is sent before the
  /// next `sched.run()`.
  template<class T, class Handle, class... Ts>
  std::shared_ptr<outcome<T>> ask(const Handle& dest, Ts... xs) {
    auto out = std::make_shared<outcome<T>>();
    // The unused int: CAF 0.17 binds a reference to a null argument tuple
    // when a function actor is spawned without arguments (UBSan).
    track(sys.spawn(
        [out, dest, xs...](caf::event_based_actor* self, int) {
          self->request(dest, caf::infinite, xs...)
              .then(
                  [out](T& x) {
                    ++out->replies;
                    out->value = std::move(x);
                  },
                  [out](caf::error& err) {
                    ++out->replies;
                    out->error = std::move(err);
                  });
        },
        0));
    return out;
  }

  /// Sends `hello` to `driver` (a driver actor) and runs the scheduler: the
  /// driver opens a session on every worker and keeps each rank's key.
  /// Every other request to a rank is refused (`permission_denied`) until
  /// this happened. Not done when a worker holds its reply.
  template<class Handle>
  std::shared_ptr<outcome<std::vector<session_info>>>
  hello(const Handle& driver) {
    auto out = ask<std::vector<session_info>>(driver, hello_atom::value);
    run();
    return out;
  }

  /// Runs every actor until all mailboxes are empty (no time passes).
  size_t run() { return sched.run(); }

  /// Moves virtual time forward by `d`, then runs the messages of every
  /// timer that expired.
  void advance(caf::timespan d) {
    sched.advance_time(d);
    sched.run();
  }

  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  std::vector<caf::actor> spawned;

private:
  static caf::actor_system_config& init(caf::actor_system_config& cfg) {
    register_types(cfg);
    cfg.set("scheduler.policy", caf::atom("testing"));
    // The middleman (loaded by register_types) on CAF's simulated network:
    // no multiplexer thread, no sockets.
    cfg.set("middleman.network-backend", caf::atom("testing"));
    cfg.set("middleman.manual-multiplexing", true);
    cfg.set("middleman.heartbeat-interval", caf::timespan{0});
    cfg.set("middleman.workers", size_t{0});
    cfg.set("logger.file-verbosity", caf::atom("quiet"));
    return cfg;
  }
};

} // namespace objstore::test
