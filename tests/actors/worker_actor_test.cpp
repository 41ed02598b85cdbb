// The worker actor's handlers, driven directly with the typed worker
// messages from scoped actors: hello, put, run, fetch under each policy,
// erase, release, stats, objects, close. Sessions are capabilities (DESIGN.md
// §12, issue 13): each client opens its session with `hello` and proves it
// with the returned session_key on every later request. Tenants see only
// their own objects and counters, so node-wide numbers are read through an
// operator session (node_options::operator_secret). Every test ends with a
// leak check: once the sessions close, the node's store holds no mem://
// object, the reference table is empty and only the operator's session is
// left.

#include "actors/worker/worker_actor.hpp"

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/cluster_fixture.hpp"
#include "actors/reply.hpp"
#include "actors/testing/local_cluster.hpp"
#include "actors/worker/node.hpp"
#include "store/error.hpp"

namespace worker_actor_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

/// The node's operator credential in these tests.
const std::string operator_secret(64, 'c');

using objstore::test::reply;

/// Expects `r` to have failed with `code` and a message holding each of
/// `parts`.
template<class T>
void expect_error(const reply<T>& r, errc code,
                  std::vector<std::string> parts) {
  ASSERT_FALSE(r.ok()) << "expected " << to_string(code) << ", got a value";
  EXPECT_EQ(r.code(), code) << describe(r.error);
  for (auto& part : parts)
    EXPECT_NE(r.message().find(part), std::string::npos)
        << "'" << r.message() << "' does not name '" << part << "'";
}

/// Expects the refusal of a request with a wrong or unknown session key.
template<class T>
void expect_refused(const reply<T>& r) {
  expect_error(r, errc::permission_denied, {"wrong session secret"});
}

/// A hello request naming its client and nothing else.
hello_request named(std::string client) {
  hello_request req;
  req.client = std::move(client);
  return req;
}

bool is_hex(const std::string& text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
           || (c >= 'A' && c <= 'F');
  });
}

/// A scoped actor talking to the worker, with the key of the session it
/// opened last (every session-scoped request carries it).
class client {
public:
  client(caf::actor_system& sys, worker_actor worker)
      : self_(sys), worker_(std::move(worker)) {
    // nop
  }

  template<class T, class... Ts>
  reply<T> ask(Ts&&... xs) {
    reply<T> result;
    self_->request(worker_, 30s, std::forward<Ts>(xs)...)
        .receive([&](T& x) { result.value = std::move(x); },
                 [&](caf::error& err) { result.error = std::move(err); });
    return result;
  }

  /// Opens a new session; on success this client uses its key from now on.
  reply<session_info> hello(hello_request req = {}) {
    auto info = ask<session_info>(hello_atom::value, std::move(req));
    if (info.ok()) {
      key_ = info.value->key;
      open_ = true;
    }
    return info;
  }

  const session_key& key() const { return key_; }

  /// Whether the session of key() is open (as far as this client knows).
  bool open() const { return open_; }

  reply<std::string> put(value_ptr x, std::string target = {}) {
    return ask<std::string>(put_atom::value, key_,
                            put_request{wire_value{std::move(x)}, target});
  }

  /// Puts `x` and returns its URI (fails the test on error).
  std::string must_put(value_ptr x) {
    auto id = put(std::move(x));
    EXPECT_TRUE(id.ok()) << describe(id.error);
    return id.value.value_or("");
  }

  reply<task_reply> run(graph g, std::vector<std::string> inputs,
                        uint64_t task_id = 1) {
    return ask<task_reply>(
        run_atom::value, key_,
        task_request{task_id, std::move(g), std::move(inputs)});
  }

  /// Sends a run request and returns its pending response (receive it to
  /// wait for the task).
  auto run_async(caf::timespan timeout, task_request req) {
    return self_->request(worker_, timeout, run_atom::value, key_,
                          std::move(req));
  }

  reply<wire_value> fetch(std::string id) {
    return ask<wire_value>(fetch_atom::value, key_, std::move(id));
  }

  reply<bool> erase(std::string id) {
    return ask<bool>(erase_atom::value, key_, std::move(id));
  }

  reply<bool> cancel(uint64_t task_id) {
    return ask<bool>(cancel_atom::value, key_, task_id);
  }

  /// Sends one release message (no reply; requests sent after it, from any
  /// actor of this process, are handled after it).
  void release(std::vector<std::string> ids) {
    self_->send(worker_, release_atom::value, key_, std::move(ids));
  }

  worker_stats stats() {
    auto st = ask<worker_stats>(stats_atom::value, key_);
    EXPECT_TRUE(st.ok()) << describe(st.error);
    return st.value.value_or(worker_stats{});
  }

  std::vector<object_record> objects() {
    auto xs = ask<std::vector<object_record>>(objects_atom::value, key_);
    EXPECT_TRUE(xs.ok()) << describe(xs.error);
    return xs.value.value_or(std::vector<object_record>{});
  }

  /// The listing's record of `id`, if listed.
  std::optional<object_record> record_of(const std::string& id) {
    for (auto& rec : objects())
      if (rec.uri == id)
        return rec;
    return std::nullopt;
  }

  reply<uint64_t> close() {
    auto closed = ask<uint64_t>(close_atom::value, key_);
    if (closed.ok())
      open_ = false;
    return closed;
  }

  caf::scoped_actor& self() { return self_; }

private:
  caf::scoped_actor self_;
  worker_actor worker_;
  session_key key_;
  bool open_ = false;
};

/// neg(x): one linear op, small inputs run on the worker's thread.
graph neg_graph() {
  graph_builder b;
  auto x = b.input();
  b.output(b.add("neg", {x}));
  return b.build();
}

/// reveal(x): its output is fetchable under `revealed-only`.
graph reveal_graph() {
  graph_builder b;
  auto x = b.input();
  b.output(b.add("reveal", {x}));
  return b.build();
}

/// A graph whose output is its input, unchanged.
graph passthrough_graph() {
  graph_builder b;
  b.output(b.input());
  return b.build();
}

/// Holds of all sessions on a listed object (0 when not listed).
uint32_t hold_count(const std::optional<object_record>& rec) {
  uint32_t n = 0;
  if (rec)
    for (auto& h : rec->holders)
      n += h.count;
  return n;
}

/// Stands in for an object the listing does not show.
const object_record no_record;

std::vector<int64_t> values_of(const reply<wire_value>& r) {
  if (!r.ok() || !r.value->ptr)
    return {};
  return int64_values(r.value->ptr);
}

class worker_actor_test : public ::testing::Test {
protected:
  void SetUp() override {
    configure_system(cfg_);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    char templ[] = "/tmp/objstore-worker-actor-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
  }

  /// Spawns the node under test (rank 3, node id "wtnode").
  void start(fetch_policy policy = fetch_policy::revealed_only,
             bool with_fs_root = false, size_t max_graph_ops = 100'000) {
    node_options opts;
    opts.rank = 3;
    opts.policy = policy;
    opts.store.node_id = "wtnode";
    opts.store.fs_sync = false; // throwaway test data
    if (with_fs_root)
      opts.store.fs_roots = {root()};
    opts.max_graph_ops = max_graph_ops;
    opts.operator_secret = operator_secret;
    auto n = spawn_node(*sys_, opts);
    ASSERT_TRUE(n) << describe(n.error());
    node_ = std::move(*n);
  }

  /// A new client (one more scoped actor) with a session opened by hello.
  client& session() {
    if (!node_)
      throw std::logic_error("session() before a successful start()");
    clients_.push_back(std::make_unique<client>(*sys_, node_->worker));
    auto info = clients_.back()->hello(named("worker-actor-test"));
    EXPECT_TRUE(info.ok()) << describe(info.error);
    return *clients_.back();
  }

  /// The operator's session (opened on first use): node-wide counters and
  /// every session's objects.
  client& op() {
    if (!node_)
      throw std::logic_error("op() before a successful start()");
    if (!op_) {
      op_ = std::make_unique<client>(*sys_, node_->worker);
      hello_request req;
      req.client = "operator";
      req.operator_secret = operator_secret;
      auto info = op_->hello(std::move(req));
      EXPECT_TRUE(info.ok()) << describe(info.error);
      EXPECT_TRUE(info.ok() && info.value->operator_access);
    }
    return *op_;
  }

  /// Node-wide counters (through the operator's session).
  worker_stats node_stats() {
    auto st = op().stats();
    EXPECT_TRUE(st.node_wide);
    return st;
  }

  /// Sessions open on the node, the operator's own not counted.
  uint64_t tenant_sessions() { return node_stats().sessions - 1; }

  fs::path root() const { return dir_ / "root"; }

  uint64_t mem_objects() const {
    return node_->objects->stats().of(scheme::mem).objects;
  }

  /// The leak check: every open session closes, then nothing is left; then
  /// the node stops.
  void finish_node() {
    for (auto& c : clients_) {
      if (!c->open())
        continue;
      auto closed = c->close();
      EXPECT_TRUE(closed.ok()) << describe(closed.error);
    }
    EXPECT_EQ(mem_objects(), 0u) << "the worker leaks mem:// objects";
    EXPECT_TRUE(op().objects().empty())
        << "the reference table still lists objects";
    auto st = node_stats();
    EXPECT_EQ(st.pinned_objects, 0u);
    EXPECT_EQ(st.tasks_running, 0u);
    EXPECT_EQ(st.sessions, 1u) << "only the operator's session is left";
    op_.reset();
    clients_.clear();
    stop_node(*node_);
    node_.reset();
  }

  void TearDown() override {
    if (node_)
      finish_node();
    op_.reset();
    clients_.clear();
    sys_.reset(); // waits for the node's actors
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  fs::path dir_;
  std::optional<node_handles> node_;
  std::vector<std::unique_ptr<client>> clients_;
  std::unique_ptr<client> op_;
};

// -- hello, ping, sessions ----------------------------------------------------

// Changed on purpose (issue 13): hello is no longer idempotent and the
// sender's address no longer names a session. Each hello opens a new session
// with its own unguessable key, also for the same actor.
TEST_F(worker_actor_test, hello_describes_the_node_and_opens_a_new_session) {
  start(fetch_policy::allow);
  client a{*sys_, node_->worker};
  auto info = a.hello(named("a"));
  ASSERT_TRUE(info.ok()) << describe(info.error);
  EXPECT_EQ(info.value->rank, 3u);
  EXPECT_EQ(info.value->node_id, "wtnode");
  EXPECT_EQ(info.value->policy, fetch_policy::allow);
  EXPECT_EQ(info.value->data_port, node_->data->port());
  EXPECT_NE(info.value->data_port, 0u);
  EXPECT_FALSE(info.value->operator_access);
  EXPECT_EQ(info.value->key.secret.size(), 64u) << "256 bits, hex";
  EXPECT_TRUE(is_hex(info.value->key.secret)) << info.value->key.secret;
  EXPECT_EQ(tenant_sessions(), 1u);
  auto again = a.hello(named("a"));
  ASSERT_TRUE(again.ok()) << describe(again.error);
  EXPECT_NE(again.value->key.id, info.value->key.id)
      << "a second hello opens a new session";
  EXPECT_NE(again.value->key.secret, info.value->key.secret);
  EXPECT_EQ(again.value->key.secret.size(), 64u);
  EXPECT_EQ(again.value->rank, info.value->rank);
  EXPECT_EQ(again.value->node_id, info.value->node_id);
  EXPECT_EQ(tenant_sessions(), 2u);
  auto& b = session();
  EXPECT_NE(b.key().id, again.value->key.id);
  EXPECT_NE(b.key().id, info.value->key.id);
  EXPECT_NE(b.key().secret, again.value->key.secret);
  EXPECT_NE(b.key().secret, info.value->key.secret);
  EXPECT_EQ(tenant_sessions(), 3u) << "every hello is its own session";
  EXPECT_EQ(a.stats().rank, 3u);
  EXPECT_FALSE(a.stats().node_wide) << "a tenant sees its own numbers";
  EXPECT_EQ(a.stats().sessions, 1u) << "and no other session's";
  // Both of a's sessions work, each with its own key.
  auto x = a.must_put(small_tensor({7}));
  auto first = info.value->key;
  expect_error(a.ask<wire_value>(fetch_atom::value, first, x),
               errc::permission_denied, {x, "not held by this session"});
  // A wrong secret or an unknown id is refused and changes nothing.
  auto refused_before = node_stats().refused_requests;
  auto wrong = a.key();
  wrong.secret = std::string(wrong.secret.size(), '0');
  expect_refused(a.ask<wire_value>(fetch_atom::value, wrong, x));
  expect_refused(a.ask<bool>(erase_atom::value, wrong, x));
  expect_refused(a.ask<uint64_t>(close_atom::value, wrong));
  expect_refused(a.ask<worker_stats>(stats_atom::value, wrong));
  expect_refused(a.ask<std::vector<object_record>>(objects_atom::value, wrong));
  expect_refused(
      a.ask<wire_value>(fetch_atom::value, session_key{a.key().id, {}}, x));
  auto unknown = session_key{987'654, a.key().secret};
  expect_refused(a.ask<wire_value>(fetch_atom::value, unknown, x));
  expect_refused(a.ask<uint64_t>(close_atom::value, unknown));
  EXPECT_EQ(node_stats().refused_requests, refused_before + 8);
  EXPECT_EQ(tenant_sessions(), 3u) << "a refused close closes nothing";
  EXPECT_EQ(values_of(a.fetch(x)), (std::vector<int64_t>{7}));
  EXPECT_EQ(hold_count(a.record_of(x)), 1u);
  EXPECT_EQ(mem_objects(), 1u);
  bool pong = false;
  a.self()
      ->request(node_->worker, 30s, ping_atom::value)
      .receive([&](ping_atom) { pong = true; },
               [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  EXPECT_TRUE(pong) << "ping needs no session";
  // a is not in clients_: close both its sessions here.
  auto closed = a.close();
  ASSERT_TRUE(closed.ok()) << describe(closed.error);
  EXPECT_EQ(*closed.value, 1u);
  auto closed_first = a.ask<uint64_t>(close_atom::value, first);
  ASSERT_TRUE(closed_first.ok()) << describe(closed_first.error);
  EXPECT_EQ(*closed_first.value, 0u);
}

// -- put ----------------------------------------------------------------------

TEST_F(worker_actor_test,
       put_stores_a_new_mem_object_held_once_by_the_session) {
  start();
  auto& a = session();
  auto x = small_tensor({1, 2, 3});
  auto id = a.put(x);
  ASSERT_TRUE(id.ok()) << describe(id.error);
  EXPECT_EQ(id.value->rfind("mem://wtnode", 0), 0u) << *id.value;
  auto second = a.put(x);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(*second.value, *id.value) << "every put is a new object";
  EXPECT_EQ(mem_objects(), 2u);
  auto rec = a.record_of(*id.value);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->size_bytes, 3 * sizeof(int64_t));
  ASSERT_EQ(rec->holders.size(), 1u);
  EXPECT_EQ(rec->holders[0].count, 1u);
  EXPECT_NE(rec->holders[0].session.find("session-"), std::string::npos);
  EXPECT_EQ(rec->holders[0].session.find('@'), std::string::npos)
      << "holders are named, never addressed";
  EXPECT_EQ(rec->pins, 0u);
  EXPECT_FALSE(rec->revealed);
  auto st = a.stats();
  EXPECT_EQ(st.mem_objects, 2u);
  EXPECT_EQ(st.mem_bytes, 6 * sizeof(int64_t));
}

TEST_F(worker_actor_test, put_errors_are_typed_and_name_the_target) {
  start();
  auto& a = session();
  auto bad_null = a.put(nullptr);
  ASSERT_FALSE(bad_null.ok());
  EXPECT_EQ(bad_null.code(), errc::invalid_argument)
      << describe(bad_null.error);
  expect_error(a.put(small_tensor({1}), "mem://my-own-id"), errc::invalid_uri,
               {"mem://my-own-id", "assigned by the worker"});
  expect_error(a.put(small_tensor({1}), "not a uri"), errc::invalid_uri,
               {"not a uri"});
  expect_error(a.put(small_tensor({1}), "s3://bucket/key"),
               errc::unsupported_scheme, {"s3://bucket/key"});
  expect_error(a.put(small_tensor({1}), "fs:///tmp/node-has-no-roots"),
               errc::unsupported_scheme, {"fs:///tmp/node-has-no-roots"});
  EXPECT_EQ(mem_objects(), 0u) << "a refused put stores nothing";
  EXPECT_TRUE(a.objects().empty());
}

TEST_F(worker_actor_test, put_to_fs_writes_inside_the_roots_only) {
  start(fetch_policy::allow, true);
  auto& a = session();
  auto file = "fs://" + (root() / "in" / "x.bin").string();
  auto id = a.put(small_tensor({4, 2}), file);
  ASSERT_TRUE(id.ok()) << describe(id.error);
  EXPECT_EQ(*id.value, file);
  EXPECT_TRUE(fs::is_regular_file(root() / "in" / "x.bin"));
  EXPECT_EQ(node_stats().fs_objects, 1u);
  EXPECT_EQ(mem_objects(), 0u) << "an fs:// put holds no mem:// object";
  auto outside = "fs://" + (dir_ / "outside.bin").string();
  expect_error(a.put(small_tensor({1}), outside), errc::permission_denied,
               {outside});
  auto escaping = "fs://" + root().string() + "/../outside.bin";
  expect_error(a.put(small_tensor({1}), escaping), errc::permission_denied,
               {escaping});
  EXPECT_FALSE(fs::exists(dir_ / "outside.bin"));
  auto erased = a.erase(file);
  ASSERT_TRUE(erased.ok()) << describe(erased.error);
  EXPECT_FALSE(fs::exists(root() / "in" / "x.bin"));
}

// -- run ----------------------------------------------------------------------

TEST_F(worker_actor_test, run_replies_new_outputs_held_by_the_session) {
  start(fetch_policy::allow);
  auto& a = session();
  auto x = a.must_put(small_tensor({1, -2}));
  auto out = a.run(neg_graph(), {x}, 42);
  ASSERT_TRUE(out.ok()) << describe(out.error);
  EXPECT_EQ(out.value->task_id, 42u) << "the reply names the task";
  ASSERT_EQ(out.value->outputs.size(), 1u);
  auto y = out.value->outputs[0];
  EXPECT_NE(y, x);
  EXPECT_EQ(values_of(a.fetch(y)), (std::vector<int64_t>{-1, 2}));
  auto rec = a.record_of(y);
  ASSERT_TRUE(rec);
  ASSERT_EQ(rec->holders.size(), 1u);
  EXPECT_EQ(rec->holders[0].count, 1u);
  EXPECT_EQ(rec->pins, 0u) << "inputs and outputs are unpinned after a run";
  EXPECT_EQ(a.record_of(x).value_or(object_record{}).pins, 0u);
  auto st = node_stats();
  EXPECT_EQ(st.tasks_run, 1u);
  EXPECT_EQ(st.tasks_failed, 0u);
  EXPECT_EQ(st.tasks_running, 0u);
  EXPECT_EQ(st.mem_objects, 2u);
  EXPECT_EQ(a.stats().mem_objects, 2u);
}

TEST_F(worker_actor_test, run_in_a_task_actor_keeps_the_same_contract) {
  start(fetch_policy::allow);
  auto& a = session();
  // Above 64 KiB of input the worker spawns a task actor.
  std::vector<int64_t> big(10'000, 3);
  auto x = a.must_put(small_tensor(big));
  auto out = a.run(neg_graph(), {x}, 7);
  ASSERT_TRUE(out.ok()) << describe(out.error);
  EXPECT_EQ(out.value->task_id, 7u);
  ASSERT_EQ(out.value->outputs.size(), 1u);
  auto v = a.fetch(out.value->outputs[0]);
  ASSERT_TRUE(v.ok()) << describe(v.error);
  EXPECT_EQ(values_of(v), std::vector<int64_t>(10'000, -3));
  // A non-linear op (sleep) takes the task actor path for small inputs.
  auto slept = a.run(sleep_graph(0), {x}, 8);
  ASSERT_TRUE(slept.ok()) << describe(slept.error);
  EXPECT_EQ(slept.value->task_id, 8u);
  auto st = node_stats();
  EXPECT_EQ(st.tasks_run, 2u);
  EXPECT_EQ(st.pinned_objects, 0u);
  EXPECT_EQ(st.mem_objects, 3u);
}

TEST_F(worker_actor_test, an_output_that_is_an_input_becomes_a_new_object) {
  start(fetch_policy::allow);
  auto& a = session();
  auto x = a.must_put(small_tensor({5, 6}));
  auto out = a.run(passthrough_graph(), {x});
  ASSERT_TRUE(out.ok()) << describe(out.error);
  ASSERT_EQ(out.value->outputs.size(), 1u);
  auto y = out.value->outputs[0];
  EXPECT_NE(y, x) << "an output gets its own URI";
  EXPECT_EQ(hold_count(a.record_of(x)), 1u) << "the input gets no extra hold";
  a.release({x});
  EXPECT_EQ(values_of(a.fetch(y)), (std::vector<int64_t>{5, 6}))
      << "releasing the input leaves the output";
  EXPECT_EQ(a.stats().mem_objects, 1u);
  EXPECT_EQ(mem_objects(), 1u);
}

TEST_F(worker_actor_test, run_errors_are_typed_and_name_what_was_wrong) {
  start(fetch_policy::allow);
  auto& a = session();
  auto& b = session();
  auto x = a.must_put(small_tensor({1, 2}));
  auto theirs = b.must_put(small_tensor({3}));
  graph_builder unknown;
  unknown.output(unknown.add("frobnicate", {unknown.input()}));
  expect_error(a.run(unknown.build(), {x}), errc::op_failed,
               {"'frobnicate'", "unknown opcode"});
  expect_error(a.run(neg_graph(), {x, x}), errc::op_failed,
               {"takes 1 inputs", "binds 2"});
  expect_error(a.run(neg_graph(), {"mem://bad id"}), errc::invalid_uri,
               {"mem://bad id"});
  expect_error(a.run(neg_graph(), {"mem://wtnode-999999"}), errc::not_found,
               {"mem://wtnode-999999", "rank 3"});
  expect_error(a.run(neg_graph(), {theirs}), errc::permission_denied,
               {theirs, "not held by this session"});
  // A kernel failure: shapes [2] and [3] do not broadcast.
  graph_builder add;
  auto p = add.input();
  auto q = add.input();
  add.output(add.add("add", {p, q}));
  auto y = a.must_put(small_tensor({1, 2, 3}));
  expect_error(a.run(add.build(), {x, y}), errc::op_failed, {"'add'"});
  auto st = node_stats();
  EXPECT_EQ(st.tasks_failed, 1u) << "only the run that executed failed";
  EXPECT_EQ(st.tasks_run, 0u);
  EXPECT_EQ(st.pinned_objects, 0u) << "a failed run unpins its inputs";
  EXPECT_EQ(st.mem_objects, 3u) << "no output of a failed run is kept";
  EXPECT_EQ(a.stats().mem_objects, 2u);
  EXPECT_EQ(values_of(b.fetch(theirs)), (std::vector<int64_t>{3}))
      << "the refused run did not touch the other session's object";
}

TEST_F(worker_actor_test, graphs_above_the_op_limit_are_refused) {
  start(fetch_policy::allow, false, 2);
  auto& a = session();
  auto x = a.must_put(small_tensor({1}));
  graph_builder b;
  b.output(b.add("neg", {b.add("neg", {b.add("neg", {b.input()})})}));
  expect_error(a.run(b.build(), {x}), errc::resource_exhausted,
               {"max-graph-ops"});
  EXPECT_TRUE(a.run(neg_graph(), {x}).ok()) << "within the limit it runs";
}

// -- fetch --------------------------------------------------------------------

TEST_F(worker_actor_test,
       fetch_under_deny_refuses_everything_naming_the_policy) {
  start(fetch_policy::deny);
  auto& a = session();
  auto x = a.must_put(small_tensor({1}));
  auto revealed = a.run(reveal_graph(), {x});
  ASSERT_TRUE(revealed.ok()) << describe(revealed.error);
  expect_error(a.fetch(x), errc::permission_denied, {x, "'deny'", "rank 3"});
  expect_error(a.fetch(revealed.value->outputs[0]), errc::permission_denied,
               {"'deny'"});
  auto st = node_stats();
  EXPECT_EQ(st.fetches, 2u);
  EXPECT_EQ(st.fetches_denied, 2u);
}

TEST_F(worker_actor_test,
       fetch_under_revealed_only_serves_own_puts_and_reveals) {
  start(fetch_policy::revealed_only);
  auto& a = session();
  auto x = a.must_put(small_tensor({4, 5}));
  auto own = a.fetch(x);
  ASSERT_TRUE(own.ok()) << describe(own.error);
  EXPECT_EQ(values_of(own), (std::vector<int64_t>{4, 5}))
      << "a session may fetch what it put itself";
  auto computed = a.run(neg_graph(), {x});
  auto revealed = a.run(reveal_graph(), {x});
  ASSERT_TRUE(computed.ok() && revealed.ok());
  auto secret = computed.value->outputs[0];
  expect_error(a.fetch(secret), errc::permission_denied,
               {secret, "not revealed", "'revealed-only'"});
  auto shown = a.fetch(revealed.value->outputs[0]);
  ASSERT_TRUE(shown.ok()) << describe(shown.error);
  EXPECT_EQ(values_of(shown), (std::vector<int64_t>{4, 5}));
  EXPECT_TRUE(
      a.record_of(revealed.value->outputs[0]).value_or(no_record).revealed);
  EXPECT_FALSE(a.record_of(secret).value_or(no_record).revealed);
  auto st = node_stats();
  EXPECT_EQ(st.fetches, 3u);
  EXPECT_EQ(st.fetches_denied, 1u);
}

TEST_F(worker_actor_test, fetch_under_allow_serves_every_held_object) {
  start(fetch_policy::allow);
  auto& a = session();
  auto x = a.must_put(small_tensor({4, 5}));
  auto computed = a.run(neg_graph(), {x});
  ASSERT_TRUE(computed.ok());
  auto v = a.fetch(computed.value->outputs[0]);
  ASSERT_TRUE(v.ok()) << describe(v.error);
  EXPECT_EQ(values_of(v), (std::vector<int64_t>{-4, -5}));
  EXPECT_EQ(node_stats().fetches_denied, 0u);
}

TEST_F(worker_actor_test, fetch_refuses_other_sessions_unknown_and_bad_uris) {
  for (auto policy :
       {fetch_policy::deny, fetch_policy::revealed_only, fetch_policy::allow}) {
    SCOPED_TRACE(std::string{to_string(policy)});
    start(policy);
    auto& a = session();
    auto& b = session();
    auto x = a.must_put(small_tensor({1}));
    expect_error(b.fetch(x), errc::permission_denied,
                 {x, "not held by this session"});
    expect_error(b.fetch("mem://wtnode-424242"), errc::not_found,
                 {"mem://wtnode-424242"});
    expect_error(b.fetch("mem://"), errc::invalid_uri, {"mem://"});
    EXPECT_EQ(node_stats().fetches_denied, 1u)
        << "only the foreign object counts as denied";
    // Next policy: a fresh node (the leak check of this one first).
    finish_node();
  }
  start(); // for the fixture's leak check
}

TEST_F(worker_actor_test, fs_objects_are_fetchable_only_under_allow) {
  for (auto policy :
       {fetch_policy::deny, fetch_policy::revealed_only, fetch_policy::allow}) {
    SCOPED_TRACE(std::string{to_string(policy)});
    start(policy, true);
    auto& a = session();
    auto file = "fs://" + (root() / to_string(policy)).string();
    ASSERT_TRUE(a.put(small_tensor({9}), file).ok());
    auto v = a.fetch(file);
    if (policy == fetch_policy::allow) {
      ASSERT_TRUE(v.ok()) << describe(v.error);
      EXPECT_EQ(values_of(v), (std::vector<int64_t>{9}));
    } else {
      expect_error(v, errc::permission_denied, {file, "'allow'"});
    }
    ASSERT_TRUE(a.erase(file).ok());
    finish_node();
  }
  start();
}

// -- erase --------------------------------------------------------------------

TEST_F(worker_actor_test, erase_frees_an_own_object_and_then_it_is_not_found) {
  start(fetch_policy::allow);
  auto& a = session();
  auto x = a.must_put(small_tensor({1}));
  auto erased = a.erase(x);
  ASSERT_TRUE(erased.ok()) << describe(erased.error);
  EXPECT_TRUE(*erased.value);
  EXPECT_EQ(mem_objects(), 0u);
  EXPECT_FALSE(a.record_of(x));
  expect_error(a.erase(x), errc::not_found, {x});
  expect_error(a.fetch(x), errc::not_found, {x});
  expect_error(a.erase("mem://"), errc::invalid_uri, {"mem://"});
}

TEST_F(worker_actor_test, a_session_cannot_erase_another_sessions_object) {
  start(fetch_policy::allow);
  auto& a = session();
  auto& b = session();
  auto x = a.must_put(small_tensor({1, 1}));
  expect_error(b.erase(x), errc::permission_denied,
               {x, "not held by this session"});
  EXPECT_EQ(values_of(a.fetch(x)), (std::vector<int64_t>{1, 1}));
  b.release({x});
  EXPECT_EQ(node_stats().unknown_releases, 1u)
      << "a release of another session's object is an unknown release";
  EXPECT_EQ(mem_objects(), 1u) << "and frees nothing";
  EXPECT_EQ(hold_count(a.record_of(x)), 1u);
}

TEST_F(worker_actor_test, erase_of_fs_objects_goes_to_the_store) {
  start(fetch_policy::allow, true);
  auto& a = session();
  auto file = "fs://" + (root() / "y").string();
  ASSERT_TRUE(a.put(small_tensor({1}), file).ok());
  auto erased = a.erase(file);
  ASSERT_TRUE(erased.ok()) << describe(erased.error);
  EXPECT_TRUE(*erased.value);
  expect_error(a.erase(file), errc::not_found, {file});
  auto outside = "fs://" + (dir_ / "z").string();
  expect_error(a.erase(outside), errc::permission_denied, {outside});
}

// -- release and pins ---------------------------------------------------------

TEST_F(worker_actor_test, release_frees_known_and_counts_unknown_and_double) {
  start();
  auto& a = session();
  auto x = a.must_put(small_tensor({1}));
  auto y = a.must_put(small_tensor({2}));
  auto z = a.must_put(small_tensor({3}));
  a.release({x, y}); // one batched message
  auto st = node_stats();
  EXPECT_EQ(st.release_msgs, 1u);
  EXPECT_EQ(st.releases, 2u);
  EXPECT_EQ(st.unknown_releases, 0u);
  EXPECT_EQ(st.mem_objects, 1u);
  EXPECT_EQ(a.stats().mem_objects, 1u);
  EXPECT_FALSE(a.record_of(x));
  a.release({x});                      // double release
  a.release({"mem://wtnode-77777"});   // never existed
  a.release({"definitely not a uri"}); // malformed
  st = node_stats();
  EXPECT_EQ(st.release_msgs, 4u);
  EXPECT_EQ(st.releases, 2u);
  EXPECT_EQ(st.unknown_releases, 3u);
  EXPECT_EQ(st.refused_requests, 0u) << "the key was right every time";
  EXPECT_EQ(values_of(a.fetch(z)), (std::vector<int64_t>{3}))
      << "bad releases never touch other objects";
  EXPECT_EQ(hold_count(a.record_of(z)), 1u);
}

// Changed on purpose (issue 13): the key, not the sender, proves a session.
// An anonymous sender opened no session (hello refuses anonymous senders),
// so it has no key to send: whatever key it makes up is refused, counted in
// refused_requests, and releases nothing.
TEST_F(worker_actor_test, an_anonymous_release_is_refused_and_drops_nothing) {
  start();
  auto& a = session();
  auto x = a.must_put(small_tensor({1}));
  auto before = node_stats();
  auto guessed = session_key{a.key().id, std::string(64, '0')};
  caf::anon_send(node_->worker, release_atom::value, guessed,
                 std::vector<std::string>{x});
  caf::anon_send(node_->worker, release_atom::value, session_key{},
                 std::vector<std::string>{x});
  // anon_send enqueued both before the stats request below is sent.
  auto st = node_stats();
  EXPECT_EQ(st.release_msgs, before.release_msgs + 2);
  EXPECT_EQ(st.refused_requests, before.refused_requests + 2);
  EXPECT_EQ(st.releases, before.releases);
  EXPECT_EQ(st.unknown_releases, before.unknown_releases);
  EXPECT_EQ(mem_objects(), 1u);
  EXPECT_EQ(hold_count(a.record_of(x)), 1u);
}

TEST_F(worker_actor_test, inputs_stay_pinned_while_their_task_runs) {
  start(fetch_policy::allow);
  auto& a = session();
  auto x = a.must_put(small_tensor({1, 2}));
  auto y = a.must_put(small_tensor({3}));
  // A long, cancellable task: its run request is handled (and x pinned)
  // before the release and erase sent after it.
  auto running = a.run_async(60s, task_request{5, sleep_graph(60'000), {x}});
  a.release({x});
  // x is no longer a's, so only the operator's listing shows it.
  EXPECT_FALSE(a.record_of(x)) << "released: not in the session's listing";
  auto rec = op().record_of(x);
  ASSERT_TRUE(rec) << "released but pinned: still stored";
  EXPECT_TRUE(rec->holders.empty());
  EXPECT_EQ(rec->pins, 1u);
  auto st = node_stats();
  EXPECT_EQ(st.pinned_objects, 1u);
  EXPECT_EQ(st.tasks_running, 1u);
  EXPECT_EQ(st.mem_objects, 2u);
  EXPECT_EQ(a.cancel(6).value, std::optional<bool>{false}) << "no such task";
  auto& b = session();
  EXPECT_EQ(b.cancel(5).value, std::optional<bool>{false})
      << "another session cannot cancel it";
  auto forged = a.key();
  forged.secret = std::string(forged.secret.size(), '0');
  EXPECT_EQ(a.ask<bool>(cancel_atom::value, forged, uint64_t{5}).value,
            std::optional<bool>{false})
      << "nor can a wrong key";
  EXPECT_EQ(node_stats().tasks_running, 1u);
  EXPECT_EQ(a.cancel(5).value, std::optional<bool>{true});
  caf::error failure;
  running.receive([](task_reply&) { ADD_FAILURE() << "cancelled run"; },
                  [&](caf::error& err) { failure = std::move(err); });
  EXPECT_EQ(code_of(failure), errc::cancelled) << describe(failure);
  EXPECT_FALSE(op().record_of(x)) << "freed once its last pin went";
  st = node_stats();
  EXPECT_EQ(st.pinned_objects, 0u);
  EXPECT_EQ(st.tasks_running, 0u);
  EXPECT_EQ(st.tasks_failed, 1u);
  EXPECT_EQ(st.mem_objects, 1u) << "only y is left";
  EXPECT_TRUE(a.record_of(y));
}

TEST_F(worker_actor_test, erase_of_a_pinned_input_waits_for_its_task) {
  start(fetch_policy::allow);
  auto& a = session();
  auto x = a.must_put(small_tensor({1}));
  auto running = a.run_async(60s, task_request{9, sleep_graph(60'000), {x}});
  auto erased = a.erase(x);
  ASSERT_TRUE(erased.ok()) << describe(erased.error);
  EXPECT_EQ(mem_objects(), 1u) << "pinned by the running task";
  EXPECT_EQ(op().record_of(x).value_or(object_record{}).pins, 1u);
  expect_error(a.fetch(x), errc::permission_denied,
               {x, "not held by this session"});
  EXPECT_EQ(a.cancel(9).value, std::optional<bool>{true});
  running.receive([](task_reply&) { ADD_FAILURE() << "cancelled run"; },
                  [](caf::error&) {});
  EXPECT_EQ(mem_objects(), 0u);
}

// -- objects, stats -----------------------------------------------------------

// Changed on purpose (issue 13): a tenant's listing shows only its own
// objects; the operator's shows every session's, each holder by name.
TEST_F(worker_actor_test,
       objects_lists_sorted_records_with_holders_per_session) {
  start(fetch_policy::allow);
  auto& a = session();
  auto& b = session();
  auto xa = a.must_put(small_tensor({1}));
  auto xb = b.must_put(small_tensor({1, 2}));
  auto ya = a.run(reveal_graph(), {xa});
  ASSERT_TRUE(ya.ok());
  auto xs = op().objects();
  ASSERT_EQ(xs.size(), 3u);
  EXPECT_TRUE(std::is_sorted(xs.begin(), xs.end(),
                             [](auto& p, auto& q) { return p.uri < q.uri; }));
  auto rec_a = op().record_of(xa);
  auto rec_b = op().record_of(xb);
  auto rec_y = op().record_of(ya.value->outputs[0]);
  ASSERT_TRUE(rec_a && rec_b && rec_y);
  EXPECT_EQ(rec_b->size_bytes, 2 * sizeof(int64_t));
  ASSERT_EQ(rec_a->holders.size(), 1u);
  ASSERT_EQ(rec_b->holders.size(), 1u);
  EXPECT_NE(rec_a->holders[0].session, rec_b->holders[0].session);
  EXPECT_EQ(rec_y->holders, rec_a->holders) << "outputs held by the runner";
  EXPECT_TRUE(rec_y->revealed);
  EXPECT_FALSE(rec_a->revealed);
  EXPECT_GE(rec_a->age_ms, 0);
  auto mine = a.objects();
  ASSERT_EQ(mine.size(), 2u) << "a sees its own two objects only";
  EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end(),
                             [](auto& p, auto& q) { return p.uri < q.uri; }));
  EXPECT_FALSE(a.record_of(xb)) << "not b's";
  EXPECT_EQ(a.record_of(xa).value_or(no_record).holders, rec_a->holders);
  auto theirs = b.objects();
  ASSERT_EQ(theirs.size(), 1u);
  EXPECT_EQ(theirs[0].uri, xb);
  EXPECT_EQ(theirs[0].holders, rec_b->holders);
  EXPECT_EQ(b.stats().mem_objects, 1u);
  EXPECT_EQ(b.stats().mem_bytes, 2 * sizeof(int64_t));
  EXPECT_EQ(node_stats().mem_objects, 3u);
}

// -- close and dead sessions --------------------------------------------------

// Changed on purpose (issue 13): a closed session's key is no longer valid,
// so a second close with it is refused (wrong session secret) instead of
// replying 0; it still changes nothing.
TEST_F(worker_actor_test, close_drops_the_sessions_holds_and_is_idempotent) {
  start(fetch_policy::allow);
  auto& a = session();
  auto& b = session();
  auto x = a.must_put(small_tensor({1}));
  ASSERT_TRUE(a.run(neg_graph(), {x}).ok());
  auto kept = b.must_put(small_tensor({2}));
  auto closed = a.close();
  ASSERT_TRUE(closed.ok()) << describe(closed.error);
  EXPECT_EQ(*closed.value, 2u) << "x and the run's output";
  EXPECT_EQ(mem_objects(), 1u) << "the other session's object stays";
  EXPECT_EQ(tenant_sessions(), 1u);
  auto refused_before = node_stats().refused_requests;
  expect_refused(a.ask<uint64_t>(close_atom::value, a.key()));
  expect_refused(a.fetch(x));
  EXPECT_EQ(node_stats().refused_requests, refused_before + 2);
  EXPECT_EQ(tenant_sessions(), 1u);
  EXPECT_EQ(mem_objects(), 1u);
  EXPECT_EQ(values_of(b.fetch(kept)), (std::vector<int64_t>{2}));
  // The same actor may open a new session afterwards.
  ASSERT_TRUE(a.hello().ok());
  auto fresh = a.must_put(small_tensor({3}));
  EXPECT_EQ(tenant_sessions(), 2u);
  expect_error(a.fetch(x), errc::not_found, {x});
  EXPECT_TRUE(a.fetch(fresh).ok());
}

TEST_F(worker_actor_test, a_session_whose_actor_goes_down_loses_its_holds) {
  start();
  auto& observer = session();
  {
    client gone{*sys_, node_->worker};
    ASSERT_TRUE(gone.hello().ok());
    gone.must_put(small_tensor({1}));
    gone.must_put(small_tensor({2}));
    EXPECT_EQ(tenant_sessions(), 2u);
  } // the scoped actor ends: its down message is in the worker's mailbox
  EXPECT_EQ(tenant_sessions(), 1u);
  EXPECT_EQ(mem_objects(), 0u);
  EXPECT_EQ(observer.stats().sessions, 1u);
}

// Since issue 13 closing the session also cancels the run (see the next
// test), so the run may fail with `cancelled` instead of replying no
// outputs; either way nothing of it is kept.
TEST_F(worker_actor_test, outputs_of_a_run_whose_session_closed_are_not_kept) {
  start(fetch_policy::allow);
  auto& a = session();
  auto x = a.must_put(small_tensor({1}));
  auto running = a.run_async(60s, task_request{3, sleep_graph(300), {x}});
  auto closed = a.close();
  ASSERT_TRUE(closed.ok());
  EXPECT_EQ(*closed.value, 1u);
  running.receive(
      [](task_reply& r) {
        EXPECT_TRUE(r.outputs.empty()) << "outputs for a closed session";
      },
      [](caf::error&) {});
  EXPECT_EQ(mem_objects(), 0u) << "neither x nor the output is kept";
}

// DESIGN.md §12: "A session that closes or dies has its tasks cancelled."
// Fixed by issue 13: drop_session cancels the session's running tasks.
TEST_F(worker_actor_test, closing_a_session_cancels_its_running_tasks) {
  start(fetch_policy::allow);
  auto& a = session();
  auto x = a.must_put(small_tensor({1}));
  auto running = a.run_async(10s, task_request{4, sleep_graph(60'000), {x}});
  EXPECT_EQ(node_stats().tasks_running, 1u);
  ASSERT_TRUE(a.close().ok());
  caf::error failure;
  running.receive([](task_reply&) { ADD_FAILURE() << "the run went on"; },
                  [&](caf::error& err) { failure = std::move(err); });
  EXPECT_EQ(code_of(failure), errc::cancelled) << describe(failure);
  auto st = node_stats();
  EXPECT_EQ(st.tasks_running, 0u);
  EXPECT_EQ(st.tasks_failed, 1u);
  EXPECT_EQ(st.pinned_objects, 0u);
  EXPECT_EQ(mem_objects(), 0u);
}

// DESIGN.md §12: "fs:// objects are persistent and owned ... record their
// writer; other sessions cannot overwrite, erase or reveal them unless
// granted." Fixed by issue 13: the writer's principal is stored with the
// object and the store checks it on erase, overwrite and read.
TEST_F(worker_actor_test, a_session_cannot_erase_another_sessions_fs_object) {
  start(fetch_policy::allow, true);
  auto& a = session();
  auto& b = session();
  auto file = "fs://" + (root() / "owned").string();
  ASSERT_TRUE(a.put(small_tensor({1}), file).ok());
  expect_error(b.erase(file), errc::permission_denied,
               {file, "owned by another principal"});
  expect_error(b.put(small_tensor({2}), file), errc::permission_denied,
               {file, "owned by another principal"});
  expect_error(b.fetch(file), errc::permission_denied,
               {file, "owned by another principal"});
  EXPECT_TRUE(fs::is_regular_file(root() / "owned"));
  EXPECT_EQ(values_of(a.fetch(file)), (std::vector<int64_t>{1}));
  auto erased = a.erase(file);
  ASSERT_TRUE(erased.ok()) << describe(erased.error);
  EXPECT_FALSE(fs::exists(root() / "owned"));
}

// -- adopt (node-local) -------------------------------------------------------

TEST_F(worker_actor_test, adopt_for_a_closed_session_is_object_lost) {
  start();
  auto& a = session();
  auto r = a.ask<std::string>(adopt_atom::value, uint64_t{987'654},
                              wire_value{small_tensor({1})});
  expect_error(r, errc::object_lost, {"session is closed"});
  EXPECT_EQ(mem_objects(), 0u);
}

} // namespace

} // namespace
} // namespace worker_actor_test_file
