// The driver actor (actors/driver_actor.hpp) against fake workers on CAF's
// deterministic scheduler: sessions (hello first, every request carries the
// rank's key), release batching and the sink's wake-ups, deadlines, late
// replies, lost workers, close and counters. Every step
// is explicit (`run()` delivers messages, `advance()` moves virtual time),
// so "not before the deadline" and "no wake-up" are exact statements, not
// sleeps.

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "actors/deterministic_fixture.hpp"
#include "actors/driver/driver_actor.hpp"
#include "actors/driver/host_var.hpp"
#include "store/error.hpp"

namespace driver_actor_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;
using namespace std::chrono_literals;

namespace {

// -- fake workers ------------------------------------------------------------

/// Test-only: tells a fake worker to deliver the replies it holds.
using reply_atom = caf::atom_constant<caf::atom("t_reply")>;

/// A worker as the driver sees it, plus the test's remote control.
using fake_worker = worker_actor::extend<caf::reacts_to<reply_atom>>;

/// The session key the fake worker of `rank` hands out at hello: id
/// rank + 1 and a 64-character secret that differs between ranks (hex, as
/// a real worker's; worlds of up to 6 ranks).
session_key key_of(uint32_t rank) {
  return session_key{rank + 1u, std::string(64, static_cast<char>('a' + rank))};
}

/// How a fake worker answers and what it received. Shared between the test
/// and the fake; only touched on the test thread (the deterministic
/// scheduler runs actors inside `sched.run()`).
struct worker_script {
  explicit worker_script(uint32_t r) : rank(r) {}

  uint32_t rank;
  /// Keep every reply until the test sends `reply_atom` (or forever).
  bool hold_replies = false;
  /// When set, every request fails with this error instead.
  caf::error fail_with;
  std::vector<std::string> run_outputs;
  std::string put_uri;
  std::string push_uri;
  uint64_t close_count = 0;
  /// The key of the session hello opened (id 0: none, or closed).
  session_key issued;

  /// Everything received, in arrival order ("release a b", "close", ...);
  /// a request without the issued key is logged as "bad key <request>".
  std::vector<std::string> events;
  /// The requests that carried a wrong key (or came before hello).
  std::vector<std::string> bad_keys;
  /// The URIs of each release message.
  std::vector<std::vector<std::string>> releases;

  /// All released URIs, sorted.
  std::vector<std::string> released() const {
    std::vector<std::string> result;
    for (auto& batch : releases)
      result.insert(result.end(), batch.begin(), batch.end());
    std::sort(result.begin(), result.end());
    return result;
  }
};

struct fake_state {
  static inline const char* name = "objstore.test.fake_worker";
  std::vector<std::function<void()>> held;
};

using fake_ptr = fake_worker::stateful_pointer<fake_state>;

/// Replies `value` now, or holds it until `reply_atom`. A response promise
/// is made only when the reply is deferred (in CAF 0.17 it takes over the
/// request).
template<class T>
caf::result<T> answer(fake_ptr self, const worker_script& s, T value) {
  if (s.fail_with)
    return s.fail_with;
  if (!s.hold_replies)
    return value;
  auto rp = self->make_response_promise<T>();
  self->state.held.push_back(
      [rp, value]() mutable { rp.deliver(std::move(value)); });
  return rp;
}

fake_worker::behavior_type fake_worker_impl(fake_ptr self,
                                            std::shared_ptr<worker_script> s) {
  auto log = [s](std::string event) {
    s->events.push_back(std::move(event));
  };
  // Logs `event` if `key` is the key hello handed out; otherwise logs and
  // records it as a bad key, and the request changes nothing (as on a real
  // worker).
  auto keyed = [s, log](const session_key& key, std::string event) {
    if (s->issued.id != 0 && key == s->issued) {
      log(std::move(event));
      return true;
    }
    s->bad_keys.push_back(event);
    log("bad key " + event);
    return false;
  };
  auto refused = [] {
    return make_error(errc::permission_denied, "bad key");
  };
  return {
      [=](hello_atom, hello_request&) -> caf::result<session_info> {
        log("hello");
        session_info info;
        info.rank = s->rank;
        info.node_id = "fake-" + std::to_string(s->rank);
        info.data_port = static_cast<uint16_t>(7000 + s->rank);
        info.key = key_of(s->rank);
        s->issued = info.key;
        return answer(self, *s, info);
      },
      [=](put_atom, session_key& key,
          put_request&) -> caf::result<std::string> {
        if (!keyed(key, "put"))
          return refused();
        return answer(self, *s, s->put_uri);
      },
      [=](run_atom, session_key& key,
          task_request& req) -> caf::result<task_reply> {
        if (!keyed(key, "run " + std::to_string(req.task_id)))
          return refused();
        return answer(self, *s, task_reply{req.task_id, s->run_outputs});
      },
      [=](cancel_atom, session_key& key,
          uint64_t task_id) -> caf::result<bool> {
        if (!keyed(key, "cancel " + std::to_string(task_id)))
          return refused();
        return answer(self, *s, false);
      },
      [=](fetch_atom, session_key& key,
          std::string& uri) -> caf::result<wire_value> {
        if (!keyed(key, "fetch " + uri))
          return refused();
        return answer(self, *s, wire_value{});
      },
      [=](fetch_atom, session_key& key, std::string& uri,
          uint64_t) -> caf::result<fetch_reply> {
        if (!keyed(key, "fetch " + uri))
          return refused();
        return answer(self, *s, fetch_reply{});
      },
      [=](release_atom, session_key& key, std::vector<std::string>& uris) {
        std::string event = "release";
        for (auto& uri : uris)
          event += " " + uri;
        if (keyed(key, std::move(event)))
          s->releases.push_back(std::move(uris));
      },
      [=](erase_atom, session_key& key, std::string& uri) -> caf::result<bool> {
        if (!keyed(key, "erase " + uri))
          return refused();
        return answer(self, *s, true);
      },
      [=](stats_atom, session_key& key) -> caf::result<worker_stats> {
        if (!keyed(key, "stats"))
          return refused();
        worker_stats result;
        result.rank = s->rank;
        return answer(self, *s, result);
      },
      [=](objects_atom,
          session_key& key) -> caf::result<std::vector<object_record>> {
        if (!keyed(key, "objects"))
          return refused();
        return answer(self, *s, std::vector<object_record>{});
      },
      [=](close_atom, session_key& key) -> caf::result<uint64_t> {
        if (!keyed(key, "close"))
          return refused();
        s->issued = session_key{}; // the key opens nothing any more
        return answer(self, *s, s->close_count);
      },
      [=](ping_atom) -> caf::result<ping_atom> {
        log("ping");
        return answer(self, *s, ping_atom::value);
      },
      [=](peer_atom) -> caf::result<peer_info> {
        log("peer");
        return answer(self, *s,
                      peer_info{s->rank, "fake-" + std::to_string(s->rank),
                                static_cast<uint16_t>(7000 + s->rank)});
      },
      [=](expect_atom, session_key& key) -> caf::result<std::string> {
        if (!keyed(key, "expect"))
          return refused();
        return answer(self, *s, "token-" + std::to_string(s->rank));
      },
      [=](put_atom, session_key& key, expect_atom) -> caf::result<std::string> {
        if (!keyed(key, "expect put"))
          return refused();
        return answer(self, *s, "put-token-" + std::to_string(s->rank));
      },
      [=](expect_atom, session_key& key,
          std::string& target) -> caf::result<std::string> {
        if (!keyed(key, "expect " + target))
          return refused();
        return answer(self, *s, "token-" + std::to_string(s->rank));
      },
      [=](push_atom, session_key& key, std::string& uri, uint32_t target,
          std::string& token) -> caf::result<std::string> {
        if (!keyed(key, "push " + uri + " to rank " + std::to_string(target)
                            + " " + token))
          return refused();
        return answer(self, *s, s->push_uri);
      },
      [=](reply_atom) {
        auto held = std::move(self->state.held);
        self->state.held.clear();
        for (auto& deliver : held)
          deliver();
      },
  };
}

std::vector<std::string> sorted(std::vector<std::string> xs) {
  std::sort(xs.begin(), xs.end());
  return xs;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// -- fixture ------------------------------------------------------------------

class driver_actor_test : public deterministic_fixture {
protected:
  static constexpr caf::timespan timeout = 1s;
  static constexpr caf::timespan transfer_timeout = 3s;
  static constexpr caf::timespan window = 10s;
  static constexpr caf::timespan delay = 5ms;

  static driver_actor_options defaults() {
    driver_actor_options opts;
    opts.timeout = timeout;
    opts.transfer_timeout = transfer_timeout;
    opts.late_reply_window = window;
    opts.release_delay = delay;
    opts.release_batch = 8192;
    return opts;
  }

  /// Spawns `n` fake workers and the driver actor on them and opens the
  /// driver's sessions (hello); the fakes' logs start after that hello.
  void start(size_t n, driver_actor_options opts = defaults()) {
    start_without_sessions(n, std::move(opts));
    open_sessions();
  }

  /// Spawns `n` fake workers and the driver actor on them, without hello:
  /// the driver has no session on any rank yet. The sink wakes a forwarder
  /// that counts each wake-up and passes it on to the driver, so `wakes` is
  /// exactly how often a drop woke the driver.
  void start_without_sessions(size_t n,
                              driver_actor_options opts = defaults()) {
    std::vector<worker_actor> handles;
    for (uint32_t r = 0; r < n; ++r) {
      scripts.push_back(std::make_shared<worker_script>(r));
      scripts.back()->put_uri = "mem://put-on-" + std::to_string(r);
      fakes.push_back(track(sys.spawn(fake_worker_impl, scripts.back())));
      handles.push_back(fakes.back());
    }
    // The same wake threshold as driver::attach gives its sink.
    sink = std::make_shared<release_sink>(opts.release_batch);
    driver = track(sys.spawn(driver_actor_impl, handles, sink, opts));
    run(); // the driver attaches itself to the sink and monitors the fakes
    auto counter = wakes;
    // The wake-up is private to the driver actor (driver_actor_private).
    auto target = caf::actor_cast<caf::actor>(driver);
    sink->attach(track(sys.spawn(
        [counter, target](caf::event_based_actor* self, int) -> caf::behavior {
          return {[=](release_atom) {
            ++*counter;
            self->send(target, release_atom::value);
          }};
        },
        0)));
  }

  /// The driver's hello: every fake opens a session and hands out its key.
  /// Clears the fakes' logs, so a test sees what follows its setup.
  void open_sessions() {
    auto infos = hello(driver);
    ASSERT_TRUE(infos->value) << describe(infos->error);
    for (auto& s : scripts) {
      EXPECT_EQ(s->events, (std::vector<std::string>{"hello"}));
      EXPECT_EQ(s->issued, key_of(s->rank));
      s->events.clear();
    }
  }

  void TearDown() override {
    // Whatever a test did, the driver sent each worker only the key that
    // worker handed out at hello (and nothing keyed before hello).
    for (auto& s : scripts)
      EXPECT_EQ(s->bad_keys, std::vector<std::string>{})
          << "requests to rank " << s->rank << " with a wrong key";
  }

  ~driver_actor_test() override {
    // The driver's state holds the sink and the sink holds the (forwarder
    // to the) driver: break the cycle as driver's destructor does.
    if (sink)
      sink->attach(caf::actor{});
  }

  /// A handle the driver would hand out for `uri` on `rank`.
  std::shared_ptr<const remote_ref> ref(uint32_t rank, std::string uri) {
    return std::make_shared<const remote_ref>(rank, std::move(uri), sink);
  }

  /// A handle that dies at once: one drop.
  void drop(uint32_t rank, std::string uri) { ref(rank, std::move(uri)); }

  driver_stats stats() {
    auto out = ask<driver_stats>(driver, stats_atom::value);
    run();
    EXPECT_TRUE(out->value);
    return out->value.value_or(driver_stats{});
  }

  /// What a heartbeat timeout (or a killed peer process) does to the proxy
  /// of a remote worker: it quits with `remote_link_unreachable`.
  void lose(uint32_t rank) {
    caf::anon_send_exit(fakes[rank], caf::exit_reason::remote_link_unreachable);
  }

  std::vector<std::shared_ptr<worker_script>> scripts;
  std::vector<fake_worker> fakes;
  std::shared_ptr<release_sink> sink;
  driver_actor driver;
  std::shared_ptr<size_t> wakes = std::make_shared<size_t>(0);
};

size_t
total_release_msgs(const std::vector<std::shared_ptr<worker_script>>& scripts) {
  size_t n = 0;
  for (auto& s : scripts)
    n += s->releases.size();
  return n;
}

// -- release batching ---------------------------------------------------------

TEST_F(driver_actor_test,
       drops_wait_for_the_release_delay_then_go_out_as_one_batch_per_worker) {
  start(3);
  {
    host_var x{3};
    x.set(0, ref(0, "mem://a"));
    x.set(1, ref(1, "mem://b"));
    x.set(2, ref(2, "mem://c"));
    host_var y{3};
    y.set(0, ref(0, "mem://d"));
    y.set(2, ref(2, "mem://e"));
    auto copy = x;
    x.reset();
    run();
    EXPECT_EQ(*wakes, 0u) << "a copy still holds x's objects";
  } // the burst: every handle dropped at once
  run();
  EXPECT_EQ(*wakes, 1u) << "a burst of drops wakes the driver once";
  EXPECT_EQ(total_release_msgs(scripts), 0u) << "nothing before the delay";
  advance(delay - 1ns);
  EXPECT_EQ(total_release_msgs(scripts), 0u) << "nothing before the delay";
  advance(1ns);
  ASSERT_EQ(scripts[0]->releases.size(), 1u);
  ASSERT_EQ(scripts[1]->releases.size(), 1u);
  ASSERT_EQ(scripts[2]->releases.size(), 1u);
  EXPECT_EQ(sorted(scripts[0]->releases[0]),
            (std::vector<std::string>{"mem://a", "mem://d"}));
  EXPECT_EQ(scripts[1]->releases[0], (std::vector<std::string>{"mem://b"}));
  EXPECT_EQ(sorted(scripts[2]->releases[0]),
            (std::vector<std::string>{"mem://c", "mem://e"}));
  // Nothing more is due later.
  advance(window);
  EXPECT_EQ(total_release_msgs(scripts), 3u);
  auto st = stats();
  EXPECT_EQ(st.release_msgs, 3u);
  EXPECT_EQ(st.releases, 5u);
  EXPECT_EQ(st.live_handles, 0u);
}

TEST_F(driver_actor_test, a_full_batch_is_sent_at_once_without_the_timer) {
  auto opts = defaults();
  opts.release_batch = 4;
  start(2, opts);
  sink->push(1, "mem://other");
  run(); // wakes the driver: one queued, the flush timer armed
  EXPECT_EQ(*wakes, 1u);
  for (int i = 0; i < 4; ++i) {
    sink->push(0, "mem://x" + std::to_string(i));
    run(); // the first three queue silently, the sink's 4th wakes again
  }
  EXPECT_EQ(*wakes, 2u);
  ASSERT_EQ(scripts[0]->releases.size(), 1u)
      << "a full batch goes out without waiting for the timer";
  EXPECT_EQ(sorted(scripts[0]->releases[0]),
            (std::vector<std::string>{"mem://x0", "mem://x1", "mem://x2",
                                      "mem://x3"}));
  EXPECT_TRUE(scripts[1]->releases.empty()) << "rank 1's batch is not full";
  advance(delay - 1ns);
  EXPECT_TRUE(scripts[1]->releases.empty()) << "rank 1 waits for the timer";
  advance(1ns);
  ASSERT_EQ(scripts[1]->releases.size(), 1u);
  EXPECT_EQ(scripts[1]->releases[0], (std::vector<std::string>{"mem://other"}));
  EXPECT_EQ(scripts[0]->releases.size(), 1u);
  auto st = stats();
  EXPECT_EQ(st.release_msgs, 2u);
  EXPECT_EQ(st.releases, 5u);
}

TEST_F(driver_actor_test, a_large_queue_is_split_into_full_batches) {
  auto opts = defaults();
  opts.release_batch = 4;
  start(1, opts);
  std::vector<std::string> uris;
  for (int i = 0; i < 10; ++i)
    uris.push_back("mem://y" + std::to_string(i));
  // The explicit release message (host code) shares the batching.
  caf::anon_send(driver, release_atom::value, uint32_t{0}, uris);
  run();
  ASSERT_EQ(scripts[0]->releases.size(), 2u) << "two full batches at once";
  EXPECT_EQ(scripts[0]->releases[0].size(), 4u);
  EXPECT_EQ(scripts[0]->releases[1].size(), 4u);
  advance(delay - 1ns);
  EXPECT_EQ(scripts[0]->releases.size(), 2u) << "the rest waits";
  advance(1ns);
  ASSERT_EQ(scripts[0]->releases.size(), 3u) << "the rest after the delay";
  EXPECT_EQ(scripts[0]->releases[2].size(), 2u);
  EXPECT_EQ(scripts[0]->released(), sorted(uris)) << "each URI exactly once";
}

TEST_F(
    driver_actor_test,
    drops_while_a_flush_is_scheduled_do_not_wake_and_the_next_drop_after_it_does) {
  start(1);
  for (int round = 0; round < 3; ++round) {
    auto first = "mem://r" + std::to_string(round) + "a";
    auto second = "mem://r" + std::to_string(round) + "b";
    auto before = *wakes;
    drop(0, first);
    run();
    EXPECT_EQ(*wakes, before + 1)
        << "round " << round << ": the first drop after a flush wakes";
    drop(0, second);
    run();
    EXPECT_EQ(*wakes, before + 1)
        << "round " << round << ": a flush is scheduled, no wake";
    advance(delay - 1ns);
    EXPECT_EQ(scripts[0]->releases.size(), size_t(round));
    advance(1ns);
    ASSERT_EQ(scripts[0]->releases.size(), size_t(round + 1));
    EXPECT_EQ(sorted(scripts[0]->releases.back()),
              (std::vector<std::string>{first, second}))
        << "round " << round << ": the drop that did not wake is flushed too";
  }
  EXPECT_EQ(*wakes, 3u);
}

TEST_F(driver_actor_test, drops_of_a_rank_outside_the_world_are_ignored) {
  start(1);
  sink->push(5, "mem://nowhere");
  sink->push(0, "mem://here");
  run();
  advance(delay);
  ASSERT_EQ(scripts[0]->releases.size(), 1u);
  EXPECT_EQ(scripts[0]->releases[0], (std::vector<std::string>{"mem://here"}));
  EXPECT_EQ(stats().releases, 1u);
}

TEST_F(driver_actor_test, flush_sends_every_queued_release_now) {
  start(2);
  sink->push(0, "mem://a");
  sink->push(1, "mem://b");
  sink->push(1, "mem://c");
  run();
  advance(delay - 1ns);
  EXPECT_EQ(total_release_msgs(scripts), 0u);
  auto sent = ask<uint64_t>(driver, flush_atom::value);
  run(); // no time passes
  ASSERT_TRUE(sent->value);
  EXPECT_EQ(*sent->value, 2u) << "one message per worker";
  EXPECT_EQ(scripts[0]->released(), (std::vector<std::string>{"mem://a"}));
  EXPECT_EQ(scripts[1]->released(),
            (std::vector<std::string>{"mem://b", "mem://c"}));
  advance(delay); // the timer finds nothing left
  EXPECT_EQ(total_release_msgs(scripts), 2u);
  // The flush disarmed the sink: the next drop wakes the driver again.
  sink->push(0, "mem://d");
  run();
  EXPECT_EQ(*wakes, 2u);
}

// -- deadlines ----------------------------------------------------------------

TEST_F(driver_actor_test, a_silent_worker_fails_the_call_at_the_deadline) {
  start(2);
  scripts[1]->hold_replies = true;
  auto fetch = ask<wire_value>(driver, fetch_atom::value, uint32_t{1},
                               std::string{"mem://x"});
  auto other = ask<wire_value>(driver, fetch_atom::value, uint32_t{0},
                               std::string{"mem://y"});
  run();
  EXPECT_TRUE(other->value) << "rank 0 answers at once";
  EXPECT_EQ(scripts[1]->events, (std::vector<std::string>{"fetch mem://x"}));
  advance(timeout - 1ns);
  EXPECT_FALSE(fetch->done()) << "failed before the deadline";
  advance(1ns);
  ASSERT_TRUE(fetch->done()) << "not failed at the deadline";
  EXPECT_EQ(code_of(fetch->error), errc::timeout) << describe(fetch->error);
  auto text = message_of(fetch->error);
  EXPECT_TRUE(contains(text, "rank 1")) << text;
  EXPECT_TRUE(contains(text, "fetch mem://x")) << text;
  EXPECT_TRUE(contains(text, "1000 ms")) << text;
  // The worker's request lapses at the end of the late-reply window; the
  // caller is not answered twice and nothing is released.
  advance(window);
  EXPECT_EQ(fetch->replies, 1u);
  EXPECT_EQ(total_release_msgs(scripts), 0u);
}

TEST_F(driver_actor_test, each_call_has_its_own_deadline) {
  start(1);
  scripts[0]->hold_replies = true;
  auto first = ask<bool>(driver, erase_atom::value, uint32_t{0},
                         std::string{"mem://a"});
  run();
  advance(timeout / 2);
  auto second = ask<bool>(driver, erase_atom::value, uint32_t{0},
                          std::string{"mem://b"});
  run();
  advance(timeout / 2);
  ASSERT_TRUE(first->done());
  EXPECT_EQ(code_of(first->error), errc::timeout);
  EXPECT_FALSE(second->done()) << "the second call started later";
  advance(timeout / 2);
  ASSERT_TRUE(second->done());
  EXPECT_EQ(code_of(second->error), errc::timeout);
  EXPECT_TRUE(contains(message_of(second->error), "erase mem://b"));
}

TEST_F(driver_actor_test, a_transfer_has_the_transfer_deadline) {
  start(2);
  scripts[0]->hold_replies = true;
  auto push = ask<std::string>(driver, push_atom::value, uint32_t{0},
                               std::string{"mem://src"}, uint32_t{1},
                               std::string{"token-1"});
  run();
  EXPECT_EQ(scripts[0]->events,
            (std::vector<std::string>{"push mem://src to rank 1 token-1"}))
      << "the source is told the target's rank, not an address";
  EXPECT_TRUE(scripts[1]->events.empty());
  advance(timeout);
  EXPECT_FALSE(push->done()) << "a transfer is not bound by `timeout`";
  advance(transfer_timeout - timeout - 1ns);
  EXPECT_FALSE(push->done());
  advance(1ns);
  ASSERT_TRUE(push->done());
  EXPECT_EQ(code_of(push->error), errc::timeout) << describe(push->error);
  EXPECT_TRUE(contains(message_of(push->error), "rank 0"));
  EXPECT_TRUE(contains(message_of(push->error), "mem://src"));
  EXPECT_TRUE(contains(message_of(push->error), "to rank 1"));
}

TEST_F(driver_actor_test,
       a_reply_before_the_deadline_wins_and_is_not_released) {
  start(2);
  scripts[1]->hold_replies = true;
  scripts[1]->run_outputs = {"mem://out"};
  task_request req;
  req.task_id = 7;
  auto result = ask<task_reply>(driver, run_atom::value, uint32_t{1}, req);
  run();
  advance(timeout - 1ns);
  caf::anon_send(fakes[1], reply_atom::value);
  run();
  ASSERT_TRUE(result->value) << describe(result->error);
  EXPECT_EQ(result->value->outputs, (std::vector<std::string>{"mem://out"}));
  advance(window + delay);
  EXPECT_EQ(result->replies, 1u);
  EXPECT_EQ(total_release_msgs(scripts), 0u)
      << "the caller owns a timely reply's outputs";
}

// -- late replies -------------------------------------------------------------

TEST_F(driver_actor_test,
       a_late_run_reply_releases_its_outputs_on_the_rank_that_holds_them) {
  start(3);
  scripts[1]->hold_replies = true;
  scripts[1]->run_outputs = {"mem://o1", "mem://o2", "fs://keep"};
  task_request req;
  req.task_id = 11;
  auto result = ask<task_reply>(driver, run_atom::value, uint32_t{1}, req);
  run();
  advance(timeout);
  ASSERT_TRUE(result->done());
  EXPECT_EQ(code_of(result->error), errc::timeout);
  advance(window / 2);
  caf::anon_send(fakes[1], reply_atom::value); // late, within the window
  run();
  advance(delay - 1ns);
  EXPECT_EQ(total_release_msgs(scripts), 0u) << "batched like any release";
  advance(1ns);
  ASSERT_EQ(scripts[1]->releases.size(), 1u);
  EXPECT_EQ(scripts[1]->released(),
            (std::vector<std::string>{"mem://o1", "mem://o2"}))
      << "mem:// outputs are released where they live; fs:// persists";
  EXPECT_TRUE(scripts[0]->releases.empty());
  EXPECT_TRUE(scripts[2]->releases.empty());
  auto st = stats();
  EXPECT_EQ(st.release_msgs, 1u);
  EXPECT_EQ(st.releases, 2u);
}

TEST_F(driver_actor_test,
       a_late_put_reply_releases_the_new_object_on_the_rank_that_holds_it) {
  start(3);
  scripts[2]->hold_replies = true;
  auto result
      = ask<std::string>(driver, put_atom::value, uint32_t{2}, put_request{});
  run();
  advance(timeout);
  ASSERT_TRUE(result->done());
  EXPECT_EQ(code_of(result->error), errc::timeout);
  EXPECT_TRUE(contains(message_of(result->error), "rank 2: put"));
  caf::anon_send(fakes[2], reply_atom::value);
  run();
  advance(delay);
  ASSERT_EQ(scripts[2]->releases.size(), 1u);
  EXPECT_EQ(scripts[2]->releases[0],
            (std::vector<std::string>{"mem://put-on-2"}));
  EXPECT_TRUE(scripts[0]->releases.empty());
  EXPECT_TRUE(scripts[1]->releases.empty());
}

// A late push reply names the replica on the target: it is released there,
// not on the source it was asked of.
TEST_F(driver_actor_test,
       a_late_transfer_reply_releases_the_replica_on_the_target_rank) {
  start(3);
  auto token = ask<std::string>(driver, expect_atom::value, uint32_t{1});
  run();
  ASSERT_TRUE(token->value);
  scripts[0]->hold_replies = true;
  scripts[0]->push_uri = "mem://replica-on-1";
  auto push
      = ask<std::string>(driver, push_atom::value, uint32_t{0},
                         std::string{"mem://src"}, uint32_t{1}, *token->value);
  run();
  advance(transfer_timeout);
  ASSERT_TRUE(push->done());
  EXPECT_EQ(code_of(push->error), errc::timeout);
  caf::anon_send(fakes[0], reply_atom::value);
  run();
  advance(delay);
  EXPECT_EQ(scripts[1]->released(),
            (std::vector<std::string>{"mem://replica-on-1"}))
      << "the replica lives on the target";
  EXPECT_TRUE(scripts[0]->releases.empty())
      << "the source does not hold the replica";
}

TEST_F(driver_actor_test, a_reply_after_the_late_reply_window_is_not_awaited) {
  start(2);
  scripts[1]->hold_replies = true;
  scripts[1]->run_outputs = {"mem://too-late"};
  auto result
      = ask<task_reply>(driver, run_atom::value, uint32_t{1}, task_request{});
  run();
  advance(timeout + window);
  EXPECT_EQ(code_of(result->error), errc::timeout);
  caf::anon_send(fakes[1], reply_atom::value);
  run();
  advance(delay);
  // Documented: past the window the objects stay until the session closes.
  EXPECT_EQ(total_release_msgs(scripts), 0u);
  EXPECT_EQ(result->replies, 1u);
}

// -- lost workers -------------------------------------------------------------

TEST_F(driver_actor_test,
       a_lost_worker_fails_every_pending_call_to_it_at_once_with_object_lost) {
  start(3);
  scripts[1]->hold_replies = true;
  scripts[2]->hold_replies = true;
  task_request req;
  req.task_id = 3;
  auto task = ask<task_reply>(driver, run_atom::value, uint32_t{1}, req);
  auto fetch = ask<wire_value>(driver, fetch_atom::value, uint32_t{1},
                               std::string{"mem://x"});
  auto elsewhere = ask<wire_value>(driver, fetch_atom::value, uint32_t{2},
                                   std::string{"mem://z"});
  run();
  EXPECT_FALSE(task->done());
  EXPECT_FALSE(fetch->done());
  lose(1);
  run(); // no virtual time passes: the down message alone fails the calls
  ASSERT_TRUE(task->done());
  ASSERT_TRUE(fetch->done());
  for (auto* err : {&task->error, &fetch->error}) {
    EXPECT_EQ(code_of(*err), errc::object_lost) << describe(*err);
    EXPECT_TRUE(contains(message_of(*err), "rank 1")) << describe(*err);
  }
  EXPECT_TRUE(contains(message_of(task->error), "task 3"));
  EXPECT_TRUE(contains(message_of(fetch->error), "fetch mem://x"));
  EXPECT_FALSE(elsewhere->done()) << "rank 2's call is not affected";
  caf::anon_send(fakes[2], reply_atom::value);
  run();
  EXPECT_TRUE(elsewhere->value) << describe(elsewhere->error);
  // The deadlines of the failed calls pass without a second answer.
  advance(timeout + window);
  EXPECT_EQ(task->replies, 1u);
  EXPECT_EQ(fetch->replies, 1u);
}

TEST_F(driver_actor_test, calls_to_a_lost_rank_fail_at_once_and_others_go_on) {
  start(2);
  lose(1);
  run();
  auto before = stats().requests;
  auto lost = ask<bool>(driver, erase_atom::value, uint32_t{1},
                        std::string{"mem://q"});
  auto alive = ask<bool>(driver, erase_atom::value, uint32_t{0},
                         std::string{"mem://q"});
  run();
  ASSERT_TRUE(lost->done()) << "no waiting for a deadline";
  EXPECT_EQ(code_of(lost->error), errc::object_lost) << describe(lost->error);
  EXPECT_TRUE(contains(message_of(lost->error), "rank 1 is lost"))
      << describe(lost->error);
  EXPECT_TRUE(contains(message_of(lost->error), "erase mem://q"));
  ASSERT_TRUE(alive->value) << describe(alive->error);
  EXPECT_EQ(stats().requests, before + 1) << "nothing is sent to a lost rank";
}

TEST_F(driver_actor_test, queued_releases_for_a_lost_worker_are_dropped) {
  start(2);
  sink->push(0, "mem://a");
  sink->push(1, "mem://b");
  sink->push(1, "mem://c");
  run(); // queued, flush timer armed
  lose(1);
  run();
  sink->push(1, "mem://after"); // a handle on the lost rank dies later
  run();
  advance(delay);
  EXPECT_EQ(scripts[0]->released(), (std::vector<std::string>{"mem://a"}));
  auto st = stats();
  EXPECT_EQ(st.release_msgs, 1u) << "nothing sent towards the lost rank";
  EXPECT_EQ(st.releases, 1u);
}

TEST_F(driver_actor_test, a_worker_that_shuts_down_is_lost_as_well) {
  start(1);
  scripts[0]->hold_replies = true;
  auto fetch = ask<wire_value>(driver, fetch_atom::value, uint32_t{0},
                               std::string{"mem://x"});
  run();
  caf::anon_send_exit(fakes[0], caf::exit_reason::user_shutdown);
  run();
  ASSERT_TRUE(fetch->done());
  EXPECT_EQ(code_of(fetch->error), errc::object_lost);
  EXPECT_TRUE(contains(message_of(fetch->error), "rank 0"));
}

// -- close --------------------------------------------------------------------

TEST_F(driver_actor_test, close_flushes_queued_releases_before_closing) {
  start(3);
  for (uint32_t r = 0; r < 3; ++r)
    scripts[r]->close_count = 10 + r;
  sink->push(0, "mem://a");
  sink->push(2, "mem://b");
  run(); // queued behind the release timer
  advance(delay - 1ns);
  EXPECT_EQ(total_release_msgs(scripts), 0u);
  auto closed = ask<uint64_t>(driver, close_atom::value);
  run(); // no virtual time passes
  ASSERT_TRUE(closed->value) << describe(closed->error);
  EXPECT_EQ(*closed->value, 10u + 11u + 12u) << "holds dropped, summed";
  EXPECT_EQ(scripts[0]->events,
            (std::vector<std::string>{"release mem://a", "close"}));
  EXPECT_EQ(scripts[1]->events, (std::vector<std::string>{"close"}));
  EXPECT_EQ(scripts[2]->events,
            (std::vector<std::string>{"release mem://b", "close"}));
  advance(delay); // the release timer finds nothing left
  EXPECT_EQ(total_release_msgs(scripts), 2u);
}

TEST_F(driver_actor_test, close_skips_lost_workers) {
  start(3);
  for (uint32_t r = 0; r < 3; ++r)
    scripts[r]->close_count = 1u << r;
  sink->push(1, "mem://gone");
  run();
  lose(1);
  run();
  auto closed = ask<uint64_t>(driver, close_atom::value);
  run(); // answered without any time passing
  ASSERT_TRUE(closed->value) << describe(closed->error);
  EXPECT_EQ(*closed->value, 1u + 4u);
  EXPECT_EQ(scripts[0]->events, (std::vector<std::string>{"close"}));
  EXPECT_EQ(scripts[2]->events, (std::vector<std::string>{"close"}));
  EXPECT_EQ(stats().release_msgs, 0u);
}

TEST_F(driver_actor_test, close_with_every_worker_lost_answers_zero_at_once) {
  start(2);
  lose(0);
  lose(1);
  run();
  auto closed = ask<uint64_t>(driver, close_atom::value);
  run();
  ASSERT_TRUE(closed->value) << describe(closed->error);
  EXPECT_EQ(*closed->value, 0u);
}

TEST_F(driver_actor_test, close_waits_for_a_silent_worker_until_the_deadline) {
  start(2);
  scripts[0]->close_count = 5;
  scripts[1]->close_count = 100;
  scripts[1]->hold_replies = true;
  auto closed = ask<uint64_t>(driver, close_atom::value);
  run();
  EXPECT_FALSE(closed->done());
  advance(timeout - 1ns);
  EXPECT_FALSE(closed->done());
  advance(1ns);
  ASSERT_TRUE(closed->value) << describe(closed->error);
  EXPECT_EQ(*closed->value, 5u) << "the silent worker counts nothing";
}

// -- errors and fan-out -------------------------------------------------------

TEST_F(driver_actor_test, worker_errors_keep_their_code_and_gain_the_rank) {
  start(2);
  scripts[1]->fail_with = make_error(errc::not_found, "mem://missing");
  auto fetch = ask<wire_value>(driver, fetch_atom::value, uint32_t{1},
                               std::string{"mem://missing"});
  run();
  ASSERT_TRUE(fetch->done());
  EXPECT_EQ(code_of(fetch->error), errc::not_found);
  EXPECT_EQ(message_of(fetch->error), "rank 1: mem://missing");
}

TEST_F(driver_actor_test, an_unknown_rank_is_refused_without_a_request) {
  start(2);
  auto before = stats().requests;
  auto fetch = ask<wire_value>(driver, fetch_atom::value, uint32_t{2},
                               std::string{"mem://x"});
  run();
  ASSERT_TRUE(fetch->done());
  EXPECT_EQ(code_of(fetch->error), errc::invalid_argument);
  EXPECT_TRUE(contains(message_of(fetch->error), "unknown rank 2"));
  EXPECT_TRUE(scripts[0]->events.empty());
  EXPECT_TRUE(scripts[1]->events.empty());
  EXPECT_EQ(stats().requests, before);
}

TEST_F(driver_actor_test,
       a_request_before_hello_is_refused_without_reaching_the_worker) {
  start_without_sessions(2);
  auto fetch = ask<wire_value>(driver, fetch_atom::value, uint32_t{1},
                               std::string{"mem://x"});
  auto push = ask<std::string>(driver, push_atom::value, uint32_t{0},
                               std::string{"mem://src"}, uint32_t{1},
                               std::string{"token-1"});
  auto expect = ask<std::string>(driver, expect_atom::value, uint32_t{1});
  sink->push(0, "mem://dropped"); // a release needs a session as well
  run();
  ASSERT_TRUE(fetch->done()) << "refused at once, no deadline";
  ASSERT_TRUE(push->done());
  ASSERT_TRUE(expect->done());
  for (auto* err : {&fetch->error, &push->error, &expect->error}) {
    EXPECT_EQ(code_of(*err), errc::permission_denied) << describe(*err);
    EXPECT_TRUE(contains(message_of(*err), "send hello first"))
        << describe(*err);
  }
  EXPECT_TRUE(contains(message_of(fetch->error), "rank 1"));
  EXPECT_TRUE(contains(message_of(fetch->error), "fetch mem://x"));
  EXPECT_TRUE(contains(message_of(push->error), "rank 0"));
  advance(delay);
  for (auto& s : scripts)
    EXPECT_TRUE(s->events.empty()) << "rank " << s->rank << " got a message";
  auto st = stats();
  EXPECT_EQ(st.requests, 0u);
  EXPECT_EQ(st.release_msgs, 0u);
  // With the session the same request goes through, with its key.
  auto infos = hello(driver);
  ASSERT_TRUE(infos->value) << describe(infos->error);
  auto again = ask<wire_value>(driver, fetch_atom::value, uint32_t{1},
                               std::string{"mem://x"});
  run();
  EXPECT_TRUE(again->value) << describe(again->error);
  EXPECT_EQ(scripts[1]->events,
            (std::vector<std::string>{"hello", "fetch mem://x"}));
}

TEST_F(driver_actor_test, hello_gathers_every_session_in_rank_order) {
  start_without_sessions(3);
  auto infos = hello(driver);
  ASSERT_TRUE(infos->value) << describe(infos->error);
  ASSERT_EQ(infos->value->size(), 3u);
  for (uint32_t r = 0; r < 3; ++r) {
    EXPECT_EQ((*infos->value)[r].rank, r);
    EXPECT_EQ((*infos->value)[r].data_port, 7000 + r);
    EXPECT_EQ((*infos->value)[r].key, key_of(r));
  }
  // Sessions are opened once: a second hello replies the same sessions
  // without asking the workers again.
  auto requests = stats().requests;
  auto again = hello(driver);
  ASSERT_TRUE(again->value) << describe(again->error);
  EXPECT_EQ(*again->value, *infos->value);
  EXPECT_EQ(stats().requests, requests);
  for (auto& s : scripts)
    EXPECT_EQ(s->events, (std::vector<std::string>{"hello"}));
}

TEST_F(driver_actor_test, hello_fails_with_the_first_failing_rank) {
  start_without_sessions(3);
  scripts[2]->hold_replies = true;
  auto infos = ask<std::vector<session_info>>(driver, hello_atom::value);
  run();
  EXPECT_FALSE(infos->done()) << "waits for every rank";
  advance(timeout);
  ASSERT_TRUE(infos->done());
  EXPECT_EQ(code_of(infos->error), errc::timeout);
  EXPECT_TRUE(contains(message_of(infos->error), "rank 2: hello"));
}

// -- counters -----------------------------------------------------------------

TEST_F(driver_actor_test, stats_count_requests_release_messages_and_releases) {
  start_without_sessions(2);
  auto zero = stats();
  EXPECT_EQ(zero.requests, 0u);
  EXPECT_EQ(zero.release_msgs, 0u);
  EXPECT_EQ(zero.releases, 0u);
  EXPECT_EQ(zero.bytes_sent, 0u);
  auto infos = hello(driver); // a fetch needs the session first
  auto fetch = ask<wire_value>(driver, fetch_atom::value, uint32_t{1},
                               std::string{"mem://x"});
  run();
  ASSERT_TRUE(infos->value);
  ASSERT_TRUE(fetch->value) << describe(fetch->error);
  auto after_calls = stats();
  EXPECT_EQ(after_calls.requests, 3u) << "hello to 2 workers + 1 fetch";
  EXPECT_GT(after_calls.bytes_sent, 0u);
  EXPECT_GT(after_calls.bytes_received, 0u);
  EXPECT_EQ(after_calls.release_msgs, 0u);
  // Handles alive are counted; dropping them queues releases.
  auto a = ref(0, "mem://a");
  auto b = ref(1, "mem://b");
  auto c = ref(1, "mem://c");
  EXPECT_EQ(stats().live_handles, 3u);
  a.reset();
  b.reset();
  c.reset();
  run();
  advance(delay);
  auto after_releases = stats();
  EXPECT_EQ(after_releases.live_handles, 0u);
  EXPECT_EQ(after_releases.release_msgs, 2u);
  EXPECT_EQ(after_releases.releases, 3u);
  EXPECT_EQ(after_releases.requests, 3u) << "releases are not requests";
  EXPECT_GT(after_releases.bytes_sent, after_calls.bytes_sent);
}

// -- orchestration ------------------------------------------------------------

/// A graph with one output (the fakes ignore the program).
graph one_output() {
  graph g;
  g.inputs = {0};
  g.outputs = {0};
  return g;
}

/// `x` on every listed rank, as handles of this driver.
host_var held_on(driver_actor_test&, size_t world,
                 std::vector<std::shared_ptr<const remote_ref>> parts) {
  host_var x{world};
  for (auto& p : parts)
    x.set(p->rank(), p);
  return x;
}

/// Position of the first event starting with `prefix`, or npos.
size_t event_index(const worker_script& s, const std::string& prefix) {
  for (size_t i = 0; i < s.events.size(); ++i)
    if (s.events[i].rfind(prefix, 0) == 0)
      return i;
  return std::string::npos;
}

size_t count_events(const worker_script& s, const std::string& prefix) {
  return static_cast<size_t>(
      std::count_if(s.events.begin(), s.events.end(),
                    [&](auto& e) { return e.rfind(prefix, 0) == 0; }));
}

TEST_F(driver_actor_test,
       a_submitted_run_holds_its_inputs_until_every_party_answered) {
  start(2);
  for (auto& s : scripts) {
    s->hold_replies = true;
    s->run_outputs = {"mem://out-" + std::to_string(s->rank)};
  }
  auto x = held_on(*this, 2, {ref(0, "mem://in-0"), ref(1, "mem://in-1")});
  auto id = ask<uint64_t>(driver, submit_atom::value,
                          run_order{one_output(), {x}, {}});
  x.reset(); // the caller drops its handle right after submit
  run();
  ASSERT_TRUE(id->value) << describe(id->error);
  advance(delay);
  EXPECT_EQ(total_release_msgs(scripts), 0u)
      << "the run still holds its inputs";
  caf::anon_send(fakes[0], reply_atom::value);
  run();
  advance(delay);
  EXPECT_EQ(total_release_msgs(scripts), 0u) << "rank 1 still runs";
  caf::anon_send(fakes[1], reply_atom::value);
  run();
  advance(delay);
  for (auto& s : scripts) {
    auto in = "mem://in-" + std::to_string(s->rank);
    EXPECT_EQ(s->released(), (std::vector<std::string>{in}));
    EXPECT_LT(event_index(*s, "run"), event_index(*s, "release " + in))
        << "the run reaches rank " << s->rank << " before the release";
  }
  auto out = ask<run_result>(driver, await_atom::value, *id->value);
  run();
  ASSERT_TRUE(out->value) << describe(out->error);
  ASSERT_EQ(out->value->outputs.size(), 1u);
  EXPECT_EQ(out->value->outputs[0].uri(1), "mem://out-1");
  auto again = ask<run_result>(driver, await_atom::value, *id->value);
  run();
  EXPECT_EQ(code_of(again->error), errc::invalid_argument);
}

TEST_F(driver_actor_test,
       the_first_failing_party_fails_the_run_at_once_and_cancels_the_others) {
  start(3);
  scripts[0]->fail_with = make_error(errc::op_failed, "op 'x' failed");
  for (uint32_t r = 1; r < 3; ++r) {
    scripts[r]->hold_replies = true;
    scripts[r]->run_outputs = {"mem://late-" + std::to_string(r)};
  }
  auto out = ask<run_result>(driver, run_atom::value,
                             run_order{one_output(), {}, {0, 1, 2}});
  run();
  ASSERT_TRUE(out->done()) << "no wait for the slow parties";
  EXPECT_EQ(code_of(out->error), errc::op_failed);
  EXPECT_TRUE(contains(message_of(out->error), "rank 0"))
      << message_of(out->error);
  for (uint32_t r = 1; r < 3; ++r)
    EXPECT_EQ(count_events(*scripts[r], "cancel"), 1u)
        << "rank " << r << "'s part is cancelled";
  EXPECT_EQ(count_events(*scripts[0], "cancel"), 0u)
      << "the failed party is not cancelled";
  // What the slow parties still produce is released where it lives.
  caf::anon_send(fakes[1], reply_atom::value);
  caf::anon_send(fakes[2], reply_atom::value);
  run();
  advance(delay);
  EXPECT_EQ(scripts[1]->released(), (std::vector<std::string>{"mem://late-1"}));
  EXPECT_EQ(scripts[2]->released(), (std::vector<std::string>{"mem://late-2"}));
}

TEST_F(driver_actor_test, cancel_of_a_submitted_run_answers_without_a_worker) {
  start(2);
  for (auto& s : scripts)
    s->hold_replies = true; // cancels are not answered either
  auto id = ask<uint64_t>(driver, submit_atom::value,
                          run_order{one_output(), {}, {0, 1}});
  run();
  ASSERT_TRUE(id->value);
  auto cancelled = ask<uint64_t>(driver, cancel_atom::value, *id->value);
  run();
  ASSERT_TRUE(cancelled->value) << describe(cancelled->error);
  EXPECT_EQ(*cancelled->value, 2u);
  for (auto& s : scripts)
    EXPECT_EQ(count_events(*s, "cancel"), 1u);
  auto out = ask<run_result>(driver, await_atom::value, *id->value);
  run();
  EXPECT_EQ(code_of(out->error), errc::cancelled);
  // A second cancel, or one of a finished or unknown run, answers 0.
  auto again = ask<uint64_t>(driver, cancel_atom::value, *id->value);
  auto unknown = ask<uint64_t>(driver, cancel_atom::value, uint64_t{999});
  run();
  EXPECT_EQ(again->value, 0u);
  EXPECT_EQ(unknown->value, 0u);
}

TEST_F(driver_actor_test, cancel_after_completion_keeps_the_outputs) {
  start(1);
  scripts[0]->run_outputs = {"mem://kept"};
  auto id = ask<uint64_t>(driver, submit_atom::value,
                          run_order{one_output(), {}, {0}});
  run();
  ASSERT_TRUE(id->value);
  auto cancelled = ask<uint64_t>(driver, cancel_atom::value, *id->value);
  run();
  EXPECT_EQ(cancelled->value, 0u);
  auto out = ask<run_result>(driver, await_atom::value, *id->value);
  run();
  ASSERT_TRUE(out->value) << describe(out->error);
  EXPECT_EQ(out->value->outputs[0].uri(0), "mem://kept");
}

TEST_F(driver_actor_test, a_forgotten_run_releases_its_outputs_when_it_ends) {
  start(1);
  scripts[0]->hold_replies = true;
  scripts[0]->run_outputs = {"mem://unwanted"};
  auto id = ask<uint64_t>(driver, submit_atom::value,
                          run_order{one_output(), {}, {0}});
  run();
  ASSERT_TRUE(id->value);
  caf::anon_send(driver, forget_atom::value, *id->value);
  run();
  caf::anon_send(fakes[0], reply_atom::value);
  run();
  advance(delay);
  EXPECT_EQ(scripts[0]->released(),
            (std::vector<std::string>{"mem://unwanted"}));
}

TEST_F(driver_actor_test,
       await_of_several_runs_answers_the_first_k_or_at_the_timeout) {
  start(2);
  scripts[1]->hold_replies = true;
  auto fast = ask<uint64_t>(driver, submit_atom::value,
                            run_order{one_output(), {}, {0}});
  auto slow = ask<uint64_t>(driver, submit_atom::value,
                            run_order{one_output(), {}, {1}});
  run();
  ASSERT_TRUE(fast->value && slow->value);
  std::vector<uint64_t> ids{*fast->value, *slow->value};
  auto one = ask<std::vector<uint64_t>>(driver, await_atom::value, ids,
                                        uint64_t{1}, caf::timespan{5s});
  run();
  ASSERT_TRUE(one->value) << describe(one->error);
  EXPECT_EQ(*one->value, (std::vector<uint64_t>{*fast->value}));
  auto both = ask<std::vector<uint64_t>>(driver, await_atom::value, ids,
                                         uint64_t{2}, caf::timespan{500ms});
  run();
  EXPECT_FALSE(both->done());
  advance(500ms);
  ASSERT_TRUE(both->value) << describe(both->error);
  EXPECT_EQ(*both->value, (std::vector<uint64_t>{*fast->value}));
  auto late = ask<std::vector<uint64_t>>(driver, await_atom::value, ids,
                                         uint64_t{2}, caf::timespan{5s});
  run();
  EXPECT_FALSE(late->done());
  caf::anon_send(fakes[1], reply_atom::value);
  run();
  ASSERT_TRUE(late->value);
  EXPECT_EQ(*late->value, ids);
}

TEST_F(driver_actor_test,
       close_fails_runs_in_flight_at_once_and_waits_at_most_the_close_timeout) {
  auto opts = defaults();
  opts.timeout = 30s;
  opts.close_timeout = 200ms;
  start(2, opts);
  for (auto& s : scripts)
    s->hold_replies = true;
  auto run_out = ask<run_result>(driver, run_atom::value,
                                 run_order{one_output(), {}, {0, 1}});
  auto id = ask<uint64_t>(driver, submit_atom::value,
                          run_order{one_output(), {}, {0, 1}});
  run();
  auto closed = ask<uint64_t>(driver, close_atom::value);
  run();
  EXPECT_EQ(code_of(run_out->error), errc::cancelled);
  auto submitted = ask<run_result>(driver, await_atom::value, *id->value);
  run();
  EXPECT_EQ(code_of(submitted->error), errc::cancelled);
  EXPECT_FALSE(closed->done());
  advance(200ms);
  ASSERT_TRUE(closed->done()) << "a frozen worker holds close no longer";
  // After close every request fails at once.
  auto later = ask<run_result>(driver, run_atom::value,
                               run_order{one_output(), {}, {0}});
  run();
  EXPECT_EQ(code_of(later->error), errc::cancelled);
}

TEST_F(driver_actor_test, transfers_from_one_source_are_bounded_in_flight) {
  auto opts = defaults();
  opts.max_transfers_per_worker = 1;
  start(3, opts);
  scripts[0]->hold_replies = true;
  scripts[0]->push_uri = "mem://replica";
  auto x = held_on(*this, 3, {ref(0, "mem://src")});
  auto out = ask<host_var>(driver, shuffle_atom::value, x,
                           std::vector<int64_t>{-1, 0, 0});
  run();
  EXPECT_EQ(count_events(*scripts[0], "push"), 1u) << "one in flight";
  caf::anon_send(fakes[0], reply_atom::value);
  run();
  EXPECT_EQ(count_events(*scripts[0], "push"), 2u) << "then the next";
  caf::anon_send(fakes[0], reply_atom::value);
  run();
  ASSERT_TRUE(out->value) << describe(out->error);
  EXPECT_FALSE(out->value->has(0));
  EXPECT_EQ(out->value->uri(1), "mem://replica");
  EXPECT_EQ(out->value->uri(2), "mem://replica");
}

TEST_F(driver_actor_test,
       a_late_transfer_reply_of_a_shuffle_is_released_on_its_target) {
  start(2);
  scripts[0]->hold_replies = true;
  scripts[0]->push_uri = "mem://late-replica";
  auto x = held_on(*this, 2, {ref(0, "mem://src")});
  auto out = ask<host_var>(driver, transfer_atom::value, x, uint32_t{0},
                           uint32_t{1});
  run();
  advance(transfer_timeout);
  EXPECT_EQ(code_of(out->error), errc::timeout);
  caf::anon_send(fakes[0], reply_atom::value);
  run();
  advance(delay);
  EXPECT_EQ(scripts[1]->released(),
            (std::vector<std::string>{"mem://late-replica"}));
  EXPECT_TRUE(scripts[0]->releases.empty());
}

TEST_F(driver_actor_test, alive_tells_which_parts_of_a_handle_can_be_reached) {
  start(3);
  auto x = held_on(*this, 3, {ref(0, "mem://a"), ref(2, "mem://c")});
  lose(2);
  run();
  auto alive = ask<std::vector<bool>>(driver, alive_atom::value, x);
  run();
  ASSERT_TRUE(alive->value);
  EXPECT_EQ(*alive->value, (std::vector<bool>{true, false, false}));
  EXPECT_EQ(total_release_msgs(scripts), 0u) << "asks no worker";
}

TEST_F(driver_actor_test, close_before_hello_answers_zero_and_ends_the_driver) {
  start_without_sessions(2);
  // Close has no session to close anywhere: zero at once.
  auto closed = ask<uint64_t>(driver, close_atom::value);
  run();
  ASSERT_TRUE(closed->value) << describe(closed->error);
  EXPECT_EQ(*closed->value, 0u);
  auto infos = hello(driver);
  EXPECT_EQ(code_of(infos->error), errc::cancelled) << "closed for good";
  for (auto& s : scripts)
    EXPECT_TRUE(s->events.empty()) << "rank " << s->rank << " got a message";
}

} // namespace

} // namespace
} // namespace driver_actor_test_file
