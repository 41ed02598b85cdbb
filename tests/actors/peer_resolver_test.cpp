// The peer resolver on its own: two actor systems in one process, a fake
// worker published on loopback that answers `peer_atom` as a test says, and
// the connection guard of the fake's system closing the resolver's
// connection under a request (what CAF 0.17.6 does to both connections when
// two workers connect to each other at once).

#include "actors/worker/peer_resolver.hpp"

#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "actors/testing/local_cluster.hpp"
#include "actors/worker/connection_guard.hpp"
#include "messages/interfaces.hpp"
#include "store/error.hpp"

namespace peer_resolver_test_file {
namespace {

using namespace objstore;
using namespace std::chrono_literals;

namespace {

/// How the fake worker treats each `peer_atom` (by arrival, from 1).
enum class answer { reply, ignore };

struct fake_worker_state {
  std::atomic<int> requests{0};
  std::function<answer(int)> policy;
};

caf::behavior fake_worker(caf::event_based_actor* self,
                          std::shared_ptr<fake_worker_state> st) {
  return {
      [=](peer_atom) -> caf::result<peer_info> {
        auto n = ++st->requests;
        if (st->policy(n) == answer::ignore) {
          // Kept unanswered: the request is lost with its connection.
          return self->make_response_promise<peer_info>();
        }
        return peer_info{5, "fake-node", 4321};
      },
  };
}

caf::actor_system_config& configured(caf::actor_system_config& cfg) {
  configure_system(cfg, 2);
  return cfg;
}

class peer_resolver_test : public ::testing::Test {
protected:
  void SetUp() override {
    server_ = std::make_unique<caf::actor_system>(configured(server_cfg_));
    client_ = std::make_unique<caf::actor_system>(configured(client_cfg_));
    fake_ = std::make_shared<fake_worker_state>();
    fake_->policy = [](int) {
      return answer::reply;
    };
    published_ = server_->spawn(fake_worker, fake_);
    auto port = server_->middleman().publish(published_, 0, "127.0.0.1", true);
    ASSERT_TRUE(port) << server_->render(port.error());
    port_ = *port;
    connection_guard_options opts;
    opts.sessionless_timeout = 1ms;
    opts.period = std::chrono::hours{1}; // sweeps only when a test says
    guard_ = std::make_unique<connection_guard>(*server_, opts);
    guard_->watch(port_);
  }

  void TearDown() override {
    guard_.reset();
    caf::anon_send_exit(published_, caf::exit_reason::user_shutdown);
    client_.reset();
    server_.reset();
  }

  /// Resolves the fake through a fresh resolver; also returns how long.
  caf::expected<peer_info> resolve(peer_resolver_options opts,
                                   std::chrono::milliseconds* took = nullptr) {
    auto endpoint = "127.0.0.1:" + std::to_string(port_);
    auto resolver
        = client_->spawn(peer_resolver, client_->middleman().actor_handle(),
                         endpoint, "127.0.0.1", port_, opts);
    caf::scoped_actor self{*client_};
    caf::expected<peer_info> result{peer_info{}};
    auto start = std::chrono::steady_clock::now();
    self->request(resolver, opts.timeout + 5s, caf::get_atom::value)
        .receive([&](peer_info& info) { result = std::move(info); },
                 [&](caf::error& err) { result = std::move(err); });
    if (took != nullptr)
      *took = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - start);
    return result;
  }

  /// Closes the connections to the fake's port (all carry no session).
  void drop_connections() {
    guard_->sweep(); // first sight
    std::this_thread::sleep_for(5ms);
    guard_->sweep(); // older than 1 ms: closed
  }

  /// Waits until the fake saw `n` requests.
  bool wait_requests(int n) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (fake_->requests.load() < n) {
      if (std::chrono::steady_clock::now() > deadline)
        return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }

  caf::actor_system_config server_cfg_;
  caf::actor_system_config client_cfg_;
  std::unique_ptr<caf::actor_system> server_;
  std::unique_ptr<caf::actor_system> client_;
  std::shared_ptr<fake_worker_state> fake_;
  caf::actor published_;
  uint16_t port_ = 0;
  std::unique_ptr<connection_guard> guard_;
};

} // namespace

TEST_F(peer_resolver_test, answers_with_the_peers_info) {
  auto info = resolve({});
  ASSERT_TRUE(info) << describe(info.error());
  EXPECT_EQ(info->rank, 5u);
  EXPECT_EQ(info->data_port, 4321);
  EXPECT_EQ(fake_->requests.load(), 1);
}

TEST_F(peer_resolver_test, a_connection_lost_under_the_request_is_retried) {
  // The first request goes down with its connection; the second connection
  // gets an answer, long before the deadline.
  fake_->policy = [](int n) {
    return n == 1 ? answer::ignore : answer::reply;
  };
  peer_resolver_options opts;
  opts.timeout = 20s;
  std::chrono::milliseconds took{0};
  std::thread closer{[&] {
    if (wait_requests(1))
      drop_connections();
  }};
  auto info = resolve(opts, &took);
  closer.join();
  ASSERT_TRUE(info) << describe(info.error());
  EXPECT_EQ(info->rank, 5u);
  EXPECT_EQ(fake_->requests.load(), 2);
  EXPECT_LT(took, 5s) << "the loss must show at once, not at the timeout";
  EXPECT_EQ(guard_->stats().closed_idle, 1u);
}

TEST_F(peer_resolver_test, gives_up_after_its_attempts_naming_the_cause) {
  fake_->policy = [](int) {
    return answer::ignore;
  };
  peer_resolver_options opts;
  opts.timeout = 20s;
  opts.max_attempts = 2;
  opts.backoff = 1ms;
  std::thread closer{[&] {
    for (int n = 1; n <= 2; ++n)
      if (wait_requests(n))
        drop_connections();
  }};
  std::chrono::milliseconds took{0};
  auto info = resolve(opts, &took);
  closer.join();
  ASSERT_FALSE(info);
  EXPECT_EQ(code_of(info.error()), errc::object_lost) << describe(info.error());
  auto why = message_of(info.error());
  EXPECT_NE(
      why.find("cannot reach the worker at 127.0.0.1:" + std::to_string(port_)),
      std::string::npos)
      << why;
  EXPECT_NE(why.find("remote_link_unreachable"), std::string::npos) << why;
  EXPECT_EQ(fake_->requests.load(), 2);
  EXPECT_LT(took, 5s);
}

TEST_F(peer_resolver_test, a_silent_peer_fails_at_the_deadline) {
  fake_->policy = [](int) {
    return answer::ignore;
  };
  peer_resolver_options opts;
  opts.timeout = 300ms;
  auto info = resolve(opts);
  ASSERT_FALSE(info);
  EXPECT_EQ(code_of(info.error()), errc::object_lost) << describe(info.error());
  EXPECT_NE(message_of(info.error()).find("request_timeout"), std::string::npos)
      << describe(info.error());
  EXPECT_EQ(fake_->requests.load(), 1) << "a timeout is not retried";
}

TEST_F(peer_resolver_test, its_own_node_is_refused) {
  auto resolver
      = server_->spawn(peer_resolver, server_->middleman().actor_handle(),
                       "127.0.0.1:" + std::to_string(port_), "127.0.0.1", port_,
                       peer_resolver_options{});
  caf::scoped_actor self{*server_};
  caf::error err;
  self->request(resolver, 10s, caf::get_atom::value)
      .receive([&](peer_info&) { ADD_FAILURE() << "resolved itself"; },
               [&](caf::error& e) { err = std::move(e); });
  EXPECT_EQ(code_of(err), errc::invalid_argument) << describe(err);
  EXPECT_EQ(fake_->requests.load(), 0);
}

} // namespace
} // namespace peer_resolver_test_file
