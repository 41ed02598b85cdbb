// Sessions are capabilities (DESIGN.md §12, issue 13): a request proves its
// session with the secret the worker returned at `hello`; an actor address
// proves nothing. Each test plays an attacker against a victim driver and
// checks the typed refusal and that nothing of the victim changed.

#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include <cstdlib>
#include <filesystem>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/cluster_fixture.hpp"
#include "actors/test_pki.hpp"
#include "actors/testing/local_cluster.hpp"
#include "store/error.hpp"

namespace session_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;
using namespace std::chrono_literals;

namespace {

/// Runs every test over plain loopback and over mutual TLS (where another
/// client holds a certificate of the same cluster CA).
class sessions : public ::testing::TestWithParam<bool> {
protected:
  void SetUp() override {
    local_cluster_options opts;
    opts.workers = 3;
    opts.policy = fetch_policy::allow;
    opts.operator_drivers = false; // tenants, unless a test asks otherwise
    opts.driver.timeout = 10s;
    adjust(opts);
    if (GetParam()) {
      opts.tls = {
          pki_file("node0.pem"), pki_file("node0.key"), pki_file("ca.pem"), {}};
    }
    auto c = local_cluster::start(opts);
    ASSERT_TRUE(c) << describe(c.error());
    cluster_ = std::move(*c);
    auto a = cluster_->connect();
    ASSERT_TRUE(a) << describe(a.error());
    victim_ = std::move(*a);
  }

  void TearDown() override {
    victim_.reset();
    cluster_.reset();
  }

  /// Changes the cluster's options before it starts (derived fixtures).
  virtual void adjust(local_cluster_options&) {}

  /// A raw worker proxy of the client system: what an attacker on the same
  /// host (same process even) can reach.
  worker_actor raw_worker(uint32_t rank) {
    auto& ep = cluster_->spec().workers.at(rank);
    auto w = GetParam() ? caf::openssl::remote_actor<worker_actor>(
                 cluster_->client_system(), ep.host, ep.port)
                        : cluster_->client_system()
                              .middleman()
                              .remote_actor<worker_actor>(ep.host, ep.port);
    EXPECT_TRUE(w) << describe(w.error());
    return w ? *w : worker_actor{};
  }

  /// Sends one request and returns its error (none on success).
  template<class Reply, class... Ts>
  caf::error ask(const worker_actor& w, Ts&&... xs) {
    caf::scoped_actor self{cluster_->client_system()};
    caf::error result;
    bool replied = false;
    self->request(w, 10s, std::forward<Ts>(xs)...)
        .receive([&](Reply&) { replied = true; },
                 [&](caf::error& err) { result = std::move(err); });
    if (!replied && !result)
      result = make_error(errc::io_error, "no reply");
    return result;
  }

  /// The victim's key on `rank` with its secret replaced.
  session_key forged(uint32_t rank) const {
    auto key = victim_->sessions().at(rank).key;
    key.secret = std::string(key.secret.size(), '0');
    return key;
  }

  uint64_t refused(uint32_t rank) { return node_stats(rank).refused_requests; }

  /// Node-wide counters through an operator session.
  worker_stats node_stats(uint32_t rank) {
    driver_actor_options opts;
    opts.operator_secret = cluster_->operator_secret();
    auto op = cluster_->connect(opts);
    EXPECT_TRUE(op) << describe(op.error());
    auto st = (*op)->worker_stats_of(rank);
    EXPECT_TRUE(st) << describe(st.error());
    return st ? *st : worker_stats{};
  }

  std::unique_ptr<local_cluster> cluster_;
  std::unique_ptr<driver> victim_;
};

#define EXPECT_REFUSED(err)                                                    \
  do {                                                                         \
    auto e_ = (err);                                                           \
    EXPECT_EQ(code_of(e_), errc::permission_denied) << describe(e_);           \
    EXPECT_NE(message_of(e_).find("wrong session secret"), std::string::npos)  \
        << describe(e_);                                                       \
  } while (false)

TEST_P(sessions, sessions_get_distinct_unguessable_secrets) {
  auto second = cluster_->connect();
  ASSERT_TRUE(second);
  auto& a = victim_->sessions().at(0).key;
  auto& b = (*second)->sessions().at(0).key;
  EXPECT_NE(a.id, b.id);
  EXPECT_EQ(a.secret.size(), 64u) << "256 bits, hex";
  EXPECT_EQ(b.secret.size(), 64u);
  EXPECT_NE(a.secret, b.secret);
  EXPECT_FALSE(victim_->sessions().at(0).operator_access);
}

TEST_P(sessions, a_forged_key_is_refused_and_changes_nothing) {
  auto x = victim_->put(0, small_tensor({1, 2, 3}));
  ASSERT_TRUE(x) << describe(x.error());
  auto uri = *x->uri(0);
  auto w = raw_worker(0);
  auto key = forged(0);
  auto before = refused(0);
  EXPECT_REFUSED((ask<wire_value>(w, fetch_atom::value, key, uri)));
  EXPECT_REFUSED((ask<bool>(w, erase_atom::value, key, uri)));
  EXPECT_REFUSED((ask<uint64_t>(w, close_atom::value, key)));
  EXPECT_REFUSED(
      (ask<std::vector<object_record>>(w, objects_atom::value, key)));
  EXPECT_REFUSED((ask<worker_stats>(w, stats_atom::value, key)));
  EXPECT_REFUSED((ask<std::string>(w, expect_atom::value, key)));
  EXPECT_REFUSED((ask<std::string>(
      w, put_atom::value, key,
      put_request{wire_value{small_tensor({9})}, std::string{}})));
  graph_builder b;
  b.output(b.add("identity", {b.input()}));
  EXPECT_REFUSED((ask<task_reply>(w, run_atom::value, key,
                                  task_request{1, b.build(), {uri}})));
  // A release cannot be answered; it is counted as refused.
  caf::scoped_actor self{cluster_->client_system()};
  self->send(w, release_atom::value, key, std::vector<std::string>{uri});
  // A session id alone, with an empty secret, is no better.
  EXPECT_REFUSED(
      (ask<wire_value>(w, fetch_atom::value, session_key{key.id, {}}, uri)));
  EXPECT_TRUE(poll_until([&] { return refused(0) >= before + 10; }))
      << refused(0) - before << " refusals counted";
  // The victim's object and session are intact.
  auto v = victim_->fetch(0, *x);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{1, 2, 3}));
  auto listing = victim_->objects(0);
  ASSERT_TRUE(listing) << describe(listing.error());
  ASSERT_EQ(listing->size(), 1u);
  EXPECT_EQ(listing->front().holders.at(0).count, 1u);
}

TEST_P(sessions, another_driver_cannot_use_the_victims_objects) {
  auto x = victim_->put(1, small_tensor({4, 5}));
  ASSERT_TRUE(x);
  auto attacker = cluster_->connect();
  ASSERT_TRUE(attacker);
  // The attacker knows the URI (e.g. from a log) and names it as its own.
  auto stolen = (*attacker)->adopt(1, *x->uri(1));
  host_var h{3};
  h.set(1, stolen);
  auto v = (*attacker)->fetch(1, h);
  ASSERT_FALSE(v);
  EXPECT_EQ(code_of(v.error()), errc::permission_denied) << describe(v.error());
  auto erased = (*attacker)->erase(1, h);
  EXPECT_EQ(code_of(erased), errc::permission_denied) << describe(erased);
  h = host_var{3};
  // The attacker's own session closing does not touch the victim's.
  attacker->reset();
  auto mine = victim_->fetch(1, *x);
  ASSERT_TRUE(mine) << describe(mine.error());
  EXPECT_EQ(int64_values(*mine), (std::vector<int64_t>{4, 5}));
}

TEST_P(sessions, listings_and_stats_show_only_the_callers_objects) {
  auto mine = victim_->put(0, small_tensor({1}));
  auto other = cluster_->connect();
  ASSERT_TRUE(other && mine);
  auto theirs = (*other)->put(0, small_tensor({2, 3}));
  ASSERT_TRUE(theirs);
  auto listing = victim_->objects(0);
  ASSERT_TRUE(listing) << describe(listing.error());
  ASSERT_EQ(listing->size(), 1u);
  EXPECT_EQ(listing->front().uri, *mine->uri(0));
  ASSERT_EQ(listing->front().holders.size(), 1u);
  auto& name = listing->front().holders.front().session;
  EXPECT_TRUE(name.starts_with("session-")) << name;
  EXPECT_EQ(name.find('@'), std::string::npos) << "no actor address: " << name;
  auto st = victim_->worker_stats_of(0);
  ASSERT_TRUE(st) << describe(st.error());
  EXPECT_FALSE(st->node_wide);
  EXPECT_EQ(st->mem_objects, 1u);
  EXPECT_EQ(st->mem_bytes, 8u);
  EXPECT_EQ(st->sessions, 1u);
  // An operator sees the whole node, holders named by session, no address.
  driver_actor_options op_opts;
  op_opts.operator_secret = cluster_->operator_secret();
  auto op = cluster_->connect(op_opts);
  ASSERT_TRUE(op) << describe(op.error());
  EXPECT_TRUE((*op)->sessions().at(0).operator_access);
  auto all = (*op)->objects(0);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 2u);
  for (auto& rec : *all)
    for (auto& h : rec.holders)
      EXPECT_EQ(h.session.find('@'), std::string::npos) << h.session;
  auto node = (*op)->worker_stats_of(0);
  ASSERT_TRUE(node);
  EXPECT_TRUE(node->node_wide);
  EXPECT_EQ(node->mem_objects, 2u);
  EXPECT_EQ(node->sessions, 3u);
}

TEST_P(sessions, stats_count_only_the_callers_running_tasks) {
  auto other = cluster_->connect();
  ASSERT_TRUE(other) << describe(other.error());
  auto x = (*other)->put(0, small_tensor({1}));
  ASSERT_TRUE(x) << describe(x.error());
  auto run = (*other)->submit(sleep_graph(60'000), {*x}, {0});
  ASSERT_TRUE(poll_until([&] {
    auto st = (*other)->worker_stats_of(0);
    return st && st->tasks_running == 1;
  })) << "the other session's task never showed as running";
  auto st = victim_->worker_stats_of(0);
  ASSERT_TRUE(st) << describe(st.error());
  EXPECT_EQ(st->tasks_running, 0u) << "another session's task was shown";
  EXPECT_EQ(node_stats(0).tasks_running, 1u);
  EXPECT_EQ(run.cancel(), 1u);
  EXPECT_EQ(code_of(run.get().error()), errc::cancelled);
}

TEST_P(sessions, a_wrong_operator_secret_opens_no_session) {
  driver_actor_options opts;
  opts.operator_secret = std::string(64, 'x');
  auto d = cluster_->connect(opts);
  ASSERT_FALSE(d);
  EXPECT_EQ(code_of(d.error()), errc::permission_denied) << describe(d.error());
  EXPECT_NE(message_of(d.error()).find("wrong operator secret"),
            std::string::npos)
      << describe(d.error());
}

TEST_P(sessions, requests_before_hello_are_refused_by_the_driver_actor) {
  // Actor code that skips hello gets a clear error, not a worker's guess.
  auto sink = std::make_shared<release_sink>(16);
  auto& sys = cluster_->client_system();
  std::vector<worker_actor> ws{raw_worker(0)};
  auto actor = sys.spawn(driver_actor_impl, ws, sink, driver_actor_options{});
  caf::scoped_actor self{sys};
  caf::error err;
  self->request(actor, 10s, fetch_atom::value, uint32_t{0},
                std::string{"mem://x"})
      .receive([](wire_value&) {}, [&](caf::error& e) { err = std::move(e); });
  EXPECT_EQ(code_of(err), errc::permission_denied) << describe(err);
  EXPECT_NE(message_of(err).find("send hello first"), std::string::npos)
      << describe(err);
  self->send_exit(actor, caf::exit_reason::user_shutdown);
}

TEST_P(sessions, transfers_go_only_to_verified_cluster_members) {
  auto x = victim_->put(0, small_tensor({7, 8, 9}));
  ASSERT_TRUE(x);
  // A driver that names rank 2's endpoint as rank 1's: the peer there
  // says who it is, and the push is refused.
  auto& ws = cluster_->spec().workers;
  auto liar_opts = driver_actor_options{};
  liar_opts.timeout = 10s;
  liar_opts.endpoints = {ws[0].str(), ws[2].str(), ws[2].str()};
  auto liar
      = driver::connect(cluster_->client_system(), cluster_->spec(), liar_opts);
  ASSERT_TRUE(liar) << describe(liar.error());
  auto y = (*liar)->put(0, small_tensor({1}));
  ASSERT_TRUE(y);
  auto moved = (*liar)->transfer(*y, 0, 1);
  ASSERT_FALSE(moved);
  EXPECT_EQ(code_of(moved.error()), errc::invalid_argument)
      << describe(moved.error());
  EXPECT_NE(message_of(moved.error()).find("is rank 2, not rank 1"),
            std::string::npos)
      << describe(moved.error());
  // Naming the source itself as the target: refused, nothing connects.
  liar_opts.endpoints = {ws[0].str(), ws[0].str(), ws[2].str()};
  auto self_liar
      = driver::connect(cluster_->client_system(), cluster_->spec(), liar_opts);
  ASSERT_TRUE(self_liar) << describe(self_liar.error());
  auto w = (*self_liar)->put(0, small_tensor({3}));
  ASSERT_TRUE(w);
  auto looped = (*self_liar)->transfer(*w, 0, 1);
  ASSERT_FALSE(looped);
  EXPECT_EQ(code_of(looped.error()), errc::invalid_argument)
      << describe(looped.error());
  // An endpoint where no worker listens (a closed port): object_lost, and
  // the object is unpinned again.
  liar_opts.endpoints = {ws[0].str(), "127.0.0.1:1", ws[2].str()};
  auto lost
      = driver::connect(cluster_->client_system(), cluster_->spec(), liar_opts);
  ASSERT_TRUE(lost) << describe(lost.error());
  auto z = (*lost)->put(0, small_tensor({2}));
  ASSERT_TRUE(z);
  auto gone = (*lost)->transfer(*z, 0, 1);
  ASSERT_FALSE(gone);
  EXPECT_EQ(code_of(gone.error()), errc::object_lost) << describe(gone.error());
  EXPECT_NE(message_of(gone.error()).find("127.0.0.1:1"), std::string::npos)
      << describe(gone.error());
  auto listing = (*lost)->objects(0);
  ASSERT_TRUE(listing);
  ASSERT_EQ(listing->size(), 1u);
  EXPECT_EQ(listing->front().pins, 0u) << "the failed push unpinned";
  // A rank outside the cluster the worker knows.
  auto far = (*lost)->handle();
  caf::scoped_actor self{cluster_->client_system()};
  caf::error err;
  self->request(far, 10s, push_atom::value, uint32_t{0}, *z->uri(0),
                uint32_t{7}, std::string(32, 'a'))
      .receive([](std::string&) {}, [&](caf::error& e) { err = std::move(e); });
  EXPECT_EQ(code_of(err), errc::invalid_argument) << describe(err);
  // The honest driver still transfers.
  auto ok = victim_->transfer(*x, 0, 1);
  ASSERT_TRUE(ok) << describe(ok.error());
  auto v = victim_->fetch(1, *ok);
  ASSERT_TRUE(v);
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{7, 8, 9}));
}

INSTANTIATE_TEST_SUITE_P(transport, sessions, ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "tls" : "plain";
                         });

/// Sessions whose workers close connections without a session quickly
/// (300 ms) and keep at most 64 of them.
class guarded_sessions : public sessions {
protected:
  void adjust(local_cluster_options& opts) override {
    opts.connections.sessionless_timeout = 300ms;
    opts.connections.max_sessionless = 64;
  }

  void TearDown() override {
    for (auto fd : raw_)
      ::close(fd);
    sessions::TearDown();
  }

  /// Opens `n` bare TCP connections to `rank`'s actor port that never
  /// speak (no BASP handshake, no TLS ClientHello).
  void open_raw(uint32_t rank, size_t n) {
    auto port = cluster_->spec().workers.at(rank).port;
    for (size_t i = 0; i < n; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      ASSERT_GE(fd, 0) << "socket: " << std::strerror(errno);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(port);
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0)
          << "connect #" << i << ": " << std::strerror(errno);
      raw_.push_back(fd);
    }
  }

  /// How many of the raw connections the worker has closed (EOF or reset
  /// after whatever it sent first).
  size_t raw_closed() {
    size_t closed = 0;
    char buf[4096];
    for (auto fd : raw_) {
      for (;;) {
        auto n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0)
          continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
          ++closed;
        break;
      }
    }
    return closed;
  }

  connection_guard_stats guard_stats(uint32_t rank) {
    return cluster_->node(rank).guard->stats();
  }

  std::vector<int> raw_;
};

TEST_P(guarded_sessions, bare_connections_closed_by_their_peer_harm_no_one) {
  // Under TLS, CAF 0.17 left OpenSSL's error of the aborted handshake on
  // its network thread, and the next read of the victim's connection failed
  // with it: every driver's session on the worker ended (tls.cpp).
  auto mine = victim_->put(0, small_tensor({1, 2}));
  ASSERT_TRUE(mine) << describe(mine.error());
  for (int round = 0; round < 3; ++round) {
    open_raw(0, 5);
    std::this_thread::sleep_for(50ms); // the worker accepts them
    for (auto fd : raw_)
      ::close(fd);
    raw_.clear();
    std::this_thread::sleep_for(50ms); // and sees them close
    auto v = victim_->fetch(0, *mine);
    ASSERT_TRUE(v) << "round " << round << ": " << describe(v.error());
    EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{1, 2}));
  }
}

TEST_P(guarded_sessions, connections_without_a_session_are_closed) {
  auto mine = victim_->put(0, small_tensor({1, 2}));
  ASSERT_TRUE(mine) << describe(mine.error());
  open_raw(0, 20);
  ASSERT_TRUE(poll_until([&] { return raw_closed() == raw_.size(); }, 10s))
      << raw_closed() << " of " << raw_.size() << " closed";
  EXPECT_GE(guard_stats(0).closed_idle, 20u);
  // The victim's connection is older than all of them and carries a
  // session: it stays, and so do its objects.
  auto v = victim_->fetch(0, *mine);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{1, 2}));
  // A driver that connects now is served as usual.
  auto late = cluster_->connect();
  ASSERT_TRUE(late) << describe(late.error());
  auto x = (*late)->put(0, small_tensor({3}));
  ASSERT_TRUE(x) << describe(x.error());
  auto y = (*late)->fetch(0, *x);
  ASSERT_TRUE(y) << describe(y.error());
}

/// Guarded sessions whose idle timeout (5 s) is long enough that a flood
/// of bare connections outgrows the limit however slowly the worker
/// accepts them: with 300 ms, a loaded machine accepting under ~200 per
/// second closed each of them as idle before 64 were open.
class flooded_sessions : public guarded_sessions {
protected:
  void adjust(local_cluster_options& opts) override {
    opts.connections.sessionless_timeout = 5s;
    opts.connections.max_sessionless = 64;
  }
};

TEST_P(flooded_sessions, a_thousand_idle_connections_leave_drivers_served) {
  auto mine = victim_->put(0, small_tensor({4, 5, 6}));
  ASSERT_TRUE(mine) << describe(mine.error());
  open_raw(0, 1000);
  // A real driver connects in the middle of the flood and works.
  auto late = cluster_->connect();
  ASSERT_TRUE(late) << describe(late.error());
  auto x = (*late)->put(0, small_tensor({7}));
  ASSERT_TRUE(x) << describe(x.error());
  auto out = (*late)->run(sleep_graph(0), {*x}, {0});
  ASSERT_TRUE(out) << describe(out.error());
  ASSERT_TRUE(poll_until([&] { return raw_closed() == raw_.size(); }, 30s))
      << raw_closed() << " of " << raw_.size() << " closed";
  auto st = guard_stats(0);
  EXPECT_EQ(st.closed_idle + st.closed_over_limit, 1000u);
  EXPECT_GT(st.closed_over_limit, 0u) << "the limit never applied";
  // Both drivers' sessions survived: their objects are intact.
  auto v = victim_->fetch(0, *mine);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{4, 5, 6}));
  auto w = (*late)->fetch(0, *x);
  ASSERT_TRUE(w) << describe(w.error());
  EXPECT_EQ(int64_values(*w), (std::vector<int64_t>{7}));
}

INSTANTIATE_TEST_SUITE_P(transport, guarded_sessions,
                         ::testing::Values(false, true), [](const auto& info) {
                           return info.param ? "tls" : "plain";
                         });
INSTANTIATE_TEST_SUITE_P(transport, flooded_sessions,
                         ::testing::Values(false, true), [](const auto& info) {
                           return info.param ? "tls" : "plain";
                         });

TEST(session_limits, hello_beyond_max_sessions_is_resource_exhausted) {
  caf::actor_system_config cfg;
  configure_system(cfg, 2);
  caf::actor_system sys{cfg};
  node_options opts;
  opts.max_sessions = 3;
  auto node = spawn_node(sys, opts);
  ASSERT_TRUE(node) << describe(node.error());
  caf::scoped_actor self{sys};
  std::vector<session_key> keys;
  caf::error last;
  for (int i = 0; i < 4; ++i)
    self->request(node->worker, 10s, hello_atom::value, hello_request{})
        .receive([&](session_info& info) { keys.push_back(info.key); },
                 [&](caf::error& e) { last = std::move(e); });
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_EQ(code_of(last), errc::resource_exhausted) << describe(last);
  // Closing one frees a place.
  self->request(node->worker, 10s, close_atom::value, keys.front())
      .receive([](uint64_t) {}, [](caf::error&) {});
  bool opened = false;
  self->request(node->worker, 10s, hello_atom::value, hello_request{})
      .receive([&](session_info&) { opened = true; },
               [&](caf::error& e) { ADD_FAILURE() << describe(e); });
  EXPECT_TRUE(opened);
  stop_node(*node);
}

} // namespace

namespace {

/// fs:// objects have an owner (DESIGN.md §12): another tenant cannot read,
/// reveal, overwrite or erase them; a configured principal owns its objects
/// across sessions; shared roots are read by all and written by none.
class fs_owners : public ::testing::Test {
protected:
  void SetUp() override {
    char templ[] = "/tmp/objstore-shared-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    shared_ = templ;
    // A dataset placed by the operator (by hand, outside objstore).
    {
      caf::actor_system_config cfg;
      object_store_options so;
      so.fs_roots = {shared_ / "staging"};
      auto store = object_store::make(so);
      ASSERT_TRUE(store) << describe(store.error());
      auto put = (*store)->put(small_tensor({10, 20, 30}),
                               *uri::parse("fs://" + dataset_path()));
      ASSERT_TRUE(put) << describe(put.error());
      std::filesystem::rename(shared_ / "staging" / "data.obj",
                              shared_ / "data.obj");
    }
    local_cluster_options opts;
    opts.workers = 1;
    opts.policy = fetch_policy::allow;
    opts.operator_drivers = false;
    opts.principals = {{"alice", std::string(40, 'a')}};
    opts.shared_roots = {shared_};
    auto c = local_cluster::start(opts);
    ASSERT_TRUE(c) << describe(c.error());
    cluster_ = std::move(*c);
  }

  void TearDown() override {
    cluster_.reset();
    std::filesystem::remove_all(shared_);
  }

  std::string dataset_path() const {
    return (shared_ / "staging" / "data.obj").string();
  }

  std::string target(const std::string& name) const {
    return "fs://" + (cluster_->fs_root(0) / name).string();
  }

  std::unique_ptr<driver> connect(std::string principal = {},
                                  std::string secret = {}) {
    driver_actor_options opts;
    opts.timeout = 10s;
    opts.principal = std::move(principal);
    opts.principal_secret = std::move(secret);
    auto d = cluster_->connect(opts);
    EXPECT_TRUE(d) << describe(d.error());
    return d ? std::move(*d) : nullptr;
  }

  static host_var handle(const std::string& uri) {
    host_var h{1};
    h.set(0, std::make_shared<const remote_ref>(0, uri, nullptr));
    return h;
  }

  std::filesystem::path shared_;
  std::unique_ptr<local_cluster> cluster_;
};

TEST_F(fs_owners, another_tenant_cannot_read_reveal_overwrite_or_erase) {
  auto victim = connect();
  auto attacker = connect();
  ASSERT_TRUE(victim && attacker);
  auto obj = target("victim.obj");
  ASSERT_TRUE(victim->put(0, small_tensor({1, 2, 3}), obj));
  auto h = handle(obj);
  auto expect_denied = [](const caf::error& err, const std::string& verb) {
    EXPECT_EQ(code_of(err), errc::permission_denied) << describe(err);
    EXPECT_NE(message_of(err).find("owned by another principal"),
              std::string::npos)
        << describe(err);
    EXPECT_NE(message_of(err).find(verb), std::string::npos) << describe(err);
  };
  auto fetched = attacker->fetch(0, h);
  ASSERT_FALSE(fetched);
  expect_denied(fetched.error(), "read");
  // The one-op reveal task that used to return the content.
  graph_builder b;
  b.output(b.add("reveal", {b.input()}));
  auto revealed = attacker->run(b.build(), {h});
  ASSERT_FALSE(revealed);
  expect_denied(revealed.error(), "read");
  auto overwritten = attacker->put(0, small_tensor({6, 6, 6}), obj);
  ASSERT_FALSE(overwritten);
  expect_denied(overwritten.error(), "overwrite");
  expect_denied(attacker->erase(0, h), "erase");
  // Nothing of the victim changed.
  auto mine = victim->fetch(0, h);
  ASSERT_TRUE(mine) << describe(mine.error());
  EXPECT_EQ(int64_values(*mine), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_FALSE(victim->erase(0, h)) << "the owner erases it";
}

TEST_F(fs_owners, a_principal_owns_its_objects_across_sessions) {
  auto obj = target("checkpoint.obj");
  {
    auto first = connect("alice", std::string(40, 'a'));
    ASSERT_TRUE(first);
    ASSERT_TRUE(first->put(0, small_tensor({42}), obj));
  }
  auto later = connect("alice", std::string(40, 'a'));
  ASSERT_TRUE(later);
  auto v = later->fetch(0, handle(obj));
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{42}));
  auto stranger = connect();
  ASSERT_TRUE(stranger);
  EXPECT_EQ(code_of(stranger->erase(0, handle(obj))), errc::permission_denied);
  EXPECT_FALSE(later->erase(0, handle(obj)));
  // A wrong principal secret opens no session.
  driver_actor_options opts;
  opts.principal = "alice";
  opts.principal_secret = std::string(40, 'b');
  auto impostor = cluster_->connect(opts);
  ASSERT_FALSE(impostor);
  EXPECT_EQ(code_of(impostor.error()), errc::permission_denied)
      << describe(impostor.error());
}

TEST_F(fs_owners, shared_roots_are_read_by_all_and_written_by_none) {
  auto d = connect();
  ASSERT_TRUE(d);
  auto data = "fs://" + (shared_ / "data.obj").string();
  graph_builder b;
  b.output(b.add("sum", {b.input()}));
  auto sum = d->run(b.build(), {handle(data)});
  ASSERT_TRUE(sum) << describe(sum.error());
  auto v = d->fetch(0, (*sum)[0]);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{60}));
  auto w = d->put(0, small_tensor({0}), data);
  ASSERT_FALSE(w);
  EXPECT_EQ(code_of(w.error()), errc::permission_denied) << describe(w.error());
  EXPECT_NE(message_of(w.error()).find("read-only shared root"),
            std::string::npos);
  EXPECT_EQ(code_of(d->erase(0, handle(data))), errc::permission_denied);
  EXPECT_TRUE(std::filesystem::exists(shared_ / "data.obj"));
}

} // namespace

} // namespace
} // namespace session_test_file
