// Bad requests get typed errors and never hurt the worker: after each one
// the same worker still serves puts, runs and fetches.

#include <gtest/gtest.h>

#include <caf/scoped_actor.hpp>

#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/cluster_fixture.hpp"
#include "actors/driver/simp.hpp"

namespace errors_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;

namespace {

graph binary_graph(const char* opcode) {
  graph_builder b;
  auto x = b.input();
  auto y = b.input();
  b.output(b.add(opcode, {x, y}));
  return b.build();
}

class errors : public cluster_fixture {
protected:
  void SetUp() override {
    start();
    drv_ = &connect();
  }

  driver& d() { return *drv_; }

  /// A handle on `uri` at `rank` the driver never got from that worker.
  host_var forged(uint32_t rank, std::string uri) {
    host_var result{d().world_size()};
    result.set(rank, d().adopt(rank, std::move(uri)));
    return result;
  }

  /// A put, a run and a fetch on `rank` all succeed.
  void expect_serving(uint32_t rank) {
    SCOPED_TRACE("rank " + std::to_string(rank) + " still serves");
    auto x = d().put(rank, small_tensor({20, 1}));
    ASSERT_TRUE(x) << describe(x.error());
    auto y = d().run(binary_graph("sub"), {*x, *x});
    ASSERT_TRUE(y) << describe(y.error());
    auto v = d().fetch((*y)[0], rank);
    ASSERT_TRUE(v) << describe(v.error());
    EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{0, 0}));
  }

  driver* drv_ = nullptr;
};

TEST_F(errors, malformed_uri_is_invalid_uri) {
  for (auto text : {"mem://bad uri!", "mem://", "", "no-scheme", "mem:/x"}) {
    SCOPED_TRACE(text);
    auto bad = forged(0, text);
    expect_error(d().fetch(bad, 0), errc::invalid_uri);
    expect_error(d().run(unary_graph("identity"), {bad}), errc::invalid_uri);
    EXPECT_EQ(code_of(d().erase(bad, 0)), errc::invalid_uri);
    expect_serving(0);
  }
}

TEST_F(errors, unknown_uri_is_not_found) {
  auto unknown = forged(1, "mem://nope-1");
  auto why = expect_error(d().fetch(unknown, 1), errc::not_found);
  EXPECT_NE(why.find("mem://nope-1"), std::string::npos) << why;
  EXPECT_NE(why.find("rank 1"), std::string::npos) << why;
  expect_error(d().run(unary_graph("identity"), {unknown}), errc::not_found);
  EXPECT_EQ(code_of(d().erase(unknown, 1)), errc::not_found);
  expect_serving(1);
}

TEST_F(errors, uri_of_another_rank_is_not_found) {
  auto x = d().put(1, small_tensor({5}));
  ASSERT_TRUE(x) << describe(x.error());
  auto misplaced = forged(2, *x->uri(1));
  auto why = expect_error(d().fetch(misplaced, 2), errc::not_found);
  EXPECT_NE(why.find("rank 2"), std::string::npos) << why;
  expect_error(d().run(unary_graph("identity"), {misplaced}), errc::not_found);
  expect_serving(2);
  // The object on its own rank is untouched (the forged release too).
  misplaced.reset();
  ASSERT_TRUE(d().flush());
  EXPECT_TRUE(poll_until([&] {
    auto ws = d().worker_stats_of(2);
    return ws && ws->unknown_releases == 1;
  })) << "the forged release was not counted as unknown";
  auto v = d().fetch(*x, 1);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), std::vector<int64_t>{5});
}

TEST_F(errors, foreign_schemes_and_paths) {
  // Parsed but not served.
  auto oss = forged(0, "oss://bucket/key");
  auto v = d().fetch(oss, 0);
  ASSERT_FALSE(v);
  EXPECT_TRUE(code_of(v.error()) == errc::unsupported_scheme
              || code_of(v.error()) == errc::not_found)
      << describe(v.error());
  expect_error(d().fetch(forged(0, "s3://bucket/key"), 0),
               errc::unsupported_scheme);
  // Outside every fs root of the node.
  expect_error(d().fetch(forged(0, "fs:///etc/passwd"), 0),
               errc::permission_denied);
  expect_error(d().put(0, small_tensor({1}), "fs:///tmp/escape.obj"),
               errc::permission_denied);
  // A put never names a mem:// id.
  expect_error(d().put(0, small_tensor({1}), "mem://chosen-1"),
               errc::invalid_uri);
  expect_serving(0);
}

TEST_F(errors, failing_ops_are_op_failed_and_counted) {
  auto x = d().put(0, small_tensor({1, 2, 3}));
  auto y = d().put(0, make_value(tensor::from<double>({2}, {1.0, 2.0})));
  ASSERT_TRUE(x && y);
  auto why
      = expect_error(d().run(binary_graph("add"), {*x, *y}), errc::op_failed);
  EXPECT_NE(why.find("add"), std::string::npos) << why;
  expect_error(d().run(unary_graph("no_such_op"), {*x}), errc::op_failed);
  // The graph takes one input; two are bound (different arity per party).
  graph_builder b;
  b.output(b.add("identity", {b.input()}));
  auto g = b.build();
  g.inputs.push_back(99);
  expect_error(d().run(g, {*x}), errc::op_failed);
  auto ws = d().worker_stats_of(0);
  ASSERT_TRUE(ws);
  EXPECT_GE(ws->tasks_failed, 1u);
  EXPECT_EQ(ws->tasks_running, 0u);
  EXPECT_EQ(ws->pinned_objects, 0u);
  expect_serving(0);
}

TEST_F(errors, partial_failure_releases_the_other_parties_outputs) {
  std::vector<host_var> xs, ys;
  for (uint32_t r = 0; r < 3; ++r) {
    auto x = d().put(r, small_tensor({1, 2}));
    // Rank 2 gets a float64 operand: `add` fails there only.
    auto y = r == 2 ? d().put(r, make_value(tensor::from<double>({2}, {1, 2})))
                    : d().put(r, small_tensor({3, 4}));
    ASSERT_TRUE(x && y);
    xs.push_back(std::move(*x));
    ys.push_back(std::move(*y));
  }
  auto why = expect_error(
      d().run(binary_graph("add"), {combine(3, xs), combine(3, ys)}),
      errc::op_failed);
  EXPECT_NE(why.find("rank 2"), std::string::npos) << why;
  // Ranks 0 and 1 computed an output nobody can reach: it must go.
  for (uint32_t r = 0; r < 3; ++r)
    EXPECT_TRUE(poll_until([&] { return mem_objects(r) == 2; }))
        << "rank " << r << " holds " << mem_objects(r) << " objects";
  expect_serving(0);
}

TEST_F(errors, raw_requests_through_the_driver_actor) {
  caf::scoped_actor self{nodes().client_system()};
  auto ask_fetch = [&](uint32_t rank, std::string uri) {
    caf::error result;
    self->request(d().handle(), std::chrono::seconds{10}, fetch_atom::value,
                  rank, std::move(uri))
        .receive([&](wire_value&) { ADD_FAILURE() << "fetch succeeded"; },
                 [&](caf::error& err) { result = std::move(err); });
    return result;
  };
  EXPECT_EQ(code_of(ask_fetch(0, "mem://bad uri!")), errc::invalid_uri);
  EXPECT_EQ(code_of(ask_fetch(1, "mem://nope-1")), errc::not_found);
  EXPECT_EQ(code_of(ask_fetch(3, "mem://nope-1")), errc::invalid_argument);
  EXPECT_EQ(code_of(ask_fetch(UINT32_MAX, "")), errc::invalid_argument);
  // A task bound to a URI the session does not hold, sent directly.
  task_request req;
  req.task_id = 77;
  req.program = unary_graph("identity");
  req.inputs = {"mem://nope-2"};
  caf::error err;
  self->request(d().handle(), std::chrono::seconds{10}, run_atom::value,
                uint32_t{2}, std::move(req))
      .receive([&](task_reply&) { ADD_FAILURE() << "run succeeded"; },
               [&](caf::error& e) { err = std::move(e); });
  EXPECT_EQ(code_of(err), errc::not_found) << describe(err);
  for (uint32_t r = 0; r < 3; ++r)
    expect_serving(r);
}

/// A cluster whose nodes know a user op that throws on rank 1 only: the
/// error must carry the exception's type and message through every way a
/// driver runs ops.
class user_op_errors : public cluster_fixture {
protected:
  struct index_error : std::out_of_range {
    index_error() : std::out_of_range("row 9 of 3") {}
  };

  void SetUp() override {
    auto ops = op_registry::with_builtins();
    op_def def;
    def.name = "lookup";
    def.min_inputs = 1;
    def.max_inputs = 1;
    def.linear = true; // small inputs: the worker's own thread
    def.kernel = [](kernel_context&,
                    std::span<const value_ptr> args) -> kernel_result {
      if (args[0]->as_tensor().values<int64_t>()[0] == 1)
        throw index_error{};
      return std::vector<value_ptr>{args[0]};
    };
    EXPECT_FALSE(ops->add(def));
    def.name = "lookup_slow"; // a task thread
    def.linear = false;
    EXPECT_FALSE(ops->add(def));
    local_cluster_options opts;
    opts.workers = 2;
    opts.ops = ops;
    start(opts);
    drv_ = &connect();
    std::vector<host_var> parts;
    for (uint32_t r = 0; r < 2; ++r) {
      auto x = drv_->put(r, small_tensor({int64_t{r}}));
      ASSERT_TRUE(x) << describe(x.error());
      parts.push_back(std::move(*x));
    }
    inputs_ = combine(2, parts);
  }

  void TearDown() override {
    inputs_ = host_var{};
    cluster_fixture::TearDown();
  }

  /// The error names the party, the op, the exception's type and message.
  static void expect_typed(const caf::error& err, const std::string& op) {
    EXPECT_EQ(code_of(err), errc::op_failed) << describe(err);
    auto why = message_of(err);
    for (auto piece : {std::string{"rank 1"}, "'" + op + "'",
                       std::string{"index_error"}, std::string{"row 9 of 3"}})
      EXPECT_NE(why.find(piece), std::string::npos)
          << "'" << piece << "' missing in: " << why;
  }

  driver* drv_ = nullptr;
  host_var inputs_;
};

TEST_F(user_op_errors, run_and_submit_keep_the_exception_type) {
  for (auto op : {"lookup", "lookup_slow"}) {
    SCOPED_TRACE(op);
    auto out = drv_->run(unary_graph(op), {inputs_});
    ASSERT_FALSE(out);
    expect_typed(out.error(), op);
    auto pending = drv_->submit(unary_graph(op), {inputs_});
    auto got = pending.get();
    ASSERT_FALSE(got);
    expect_typed(got.error(), op);
  }
  expect_serving(*drv_, 0);
  expect_serving(*drv_, 1);
}

TEST_F(user_op_errors, simp_programs_keep_the_exception_type) {
  for (auto op : {"lookup", "lookup_slow"}) {
    SCOPED_TRACE(op);
    graph_builder b;
    auto in = b.input();
    b.output(b.add("pcall_dynamic", {in}, {}, {unary_graph(op)}));
    auto out = run_simp(*drv_, b.build(), {inputs_});
    ASSERT_FALSE(out);
    expect_typed(out.error(), op);
  }
  expect_serving(*drv_, 1);
}

} // namespace

} // namespace
} // namespace errors_test_file
