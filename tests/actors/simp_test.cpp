// SIMP ops across 3 parties on a loopback local_cluster.

#include "actors/driver/simp.hpp"

#include <gtest/gtest.h>

#include "actors/testing/local_cluster.hpp"
#include "store/error.hpp"

namespace simp_test_file {
namespace {

using namespace objstore;

namespace {

value_ptr scalar(int64_t x) {
  return make_value(tensor::from<int64_t>({}, std::vector<int64_t>{x}));
}

int64_t as_int(const value_ptr& x) {
  return x->as_tensor().values<int64_t>()[0];
}

/// A local graph with one input and one output: `opcode(x, x)` or
/// `opcode(x)`.
graph local_unary(const std::string& opcode, bool twice = false) {
  graph_builder b;
  auto x = b.input();
  b.output(twice ? b.add(opcode, {x, x}) : b.add(opcode, {x}));
  return b.build();
}

class simp : public ::testing::Test {
protected:
  void SetUp() override {
    local_cluster_options opts;
    opts.policy = fetch_policy::revealed_only;
    auto c = local_cluster::start(opts);
    ASSERT_TRUE(c) << describe(c.error());
    cluster = std::move(*c);
    auto d = cluster->connect();
    ASSERT_TRUE(d) << describe(d.error());
    drv = std::move(*d);
  }

  void TearDown() override {
    drv.reset();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{5};
    for (uint32_t r = 0; r < cluster->size(); ++r) {
      while (cluster->store_stats_of(r).of(scheme::mem).objects > 0
             && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds{2});
      EXPECT_EQ(cluster->store_stats_of(r).of(scheme::mem).objects, 0u)
          << "rank " << r << " leaked objects";
    }
  }

  /// Puts `x` on every party; returns one host_var holding all parts.
  host_var put_all(const std::vector<int64_t>& xs) {
    host_var out{cluster->size()};
    for (uint32_t r = 0; r < xs.size(); ++r) {
      auto v = drv->put(r, scalar(xs[r]));
      EXPECT_TRUE(v) << describe(v.error());
      out.set(r, v->part(r));
    }
    return out;
  }

  /// Reveals `x` on every party holding it and fetches it from `rank`.
  int64_t reveal_fetch(const host_var& x, uint32_t rank) {
    auto shown = drv->run(local_unary("reveal"), {x});
    EXPECT_TRUE(shown) << describe(shown.error());
    auto v = drv->fetch((*shown)[0], rank);
    EXPECT_TRUE(v) << describe(v.error());
    return v ? as_int(*v) : -1;
  }

  std::unique_ptr<local_cluster> cluster;
  std::unique_ptr<driver> drv;
};

} // namespace

TEST_F(simp, pcall_static_runs_only_on_listed_parties) {
  auto x = put_all({1, 2, 3});
  auto before = drv->worker_stats_of(1);
  ASSERT_TRUE(before);
  graph_builder b;
  auto in = b.input();
  b.output(b.add("pcall_static", {in},
                 {make_attr("parties", std::vector<int64_t>{0, 2})},
                 {local_unary("add", true)}));
  auto out = run_simp(*drv, b.build(), {x});
  ASSERT_TRUE(out) << describe(out.error());
  ASSERT_EQ(out->size(), 1u);
  auto& y = (*out)[0];
  EXPECT_TRUE(y.has(0));
  EXPECT_FALSE(y.has(1)) << "non-member must hold null";
  EXPECT_TRUE(y.has(2));
  EXPECT_EQ(reveal_fetch(y, 0), 2);
  EXPECT_EQ(reveal_fetch(y, 2), 6);
  auto after = drv->worker_stats_of(1);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->tasks_run, before->tasks_run)
      << "rank 1 is not a member and must receive no task";
  EXPECT_EQ(after->tasks_failed, before->tasks_failed);
  EXPECT_EQ(after->mem_objects, before->mem_objects);
}

TEST_F(simp, pcall_static_refuses_parties_outside_the_world) {
  auto x = put_all({1, 2, 3});
  graph_builder b;
  auto in = b.input();
  b.output(b.add("pcall_static", {in},
                 {make_attr("parties", std::vector<int64_t>{0, 7})},
                 {local_unary("add", true)}));
  auto out = run_simp(*drv, b.build(), {x});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::op_failed);
  EXPECT_NE(message_of(out.error()).find("pcall_static"), std::string::npos);
}

TEST_F(simp, pcall_dynamic_runs_on_every_holder) {
  auto x = put_all({1, 2, 3});
  graph_builder b;
  auto in = b.input();
  b.output(b.add("pcall_dynamic", {in}, {}, {local_unary("mul", true)}));
  auto out = run_simp(*drv, b.build(), {x});
  ASSERT_TRUE(out) << describe(out.error());
  for (uint32_t r = 0; r < 3; ++r)
    EXPECT_EQ(reveal_fetch((*out)[0], r), (r + 1) * (r + 1));
}

TEST_F(simp, converge_merges_disjoint_parts_and_rejects_overlap) {
  auto x = put_all({1, 2, 3});
  host_var left{3}, right{3};
  left.set(0, x.part(0));
  right.set(2, x.part(2));
  graph_builder b;
  auto l = b.input();
  auto r = b.input();
  b.output(b.add("converge", {l, r}));
  auto out = run_simp(*drv, b.build(), {left, right});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ((*out)[0].parties(), (std::vector<uint32_t>{0, 2}));
  auto overlap = run_simp(*drv, b.build(), {x, right});
  ASSERT_FALSE(overlap);
  EXPECT_EQ(code_of(overlap.error()), errc::op_failed);
  EXPECT_NE(message_of(overlap.error()).find("overlap on rank 2"),
            std::string::npos);
}

namespace {

/// SIMP region: one input, reveals `opcode(x, x)` on every party.
graph simp_region(const std::string& opcode) {
  graph_builder b;
  auto x = b.input();
  b.output(b.add("pcall_dynamic", {x}, {}, {local_unary(opcode, true)}));
  return b.build();
}

/// SIMP region with one input returning it revealed.
graph reveal_region() {
  graph_builder b;
  auto x = b.input();
  b.output(b.add("pcall_dynamic", {x}, {}, {local_unary("reveal")}));
  return b.build();
}

} // namespace

TEST_F(simp, uniform_cond_takes_the_branch_of_the_predicate) {
  auto x = put_all({1, 2, 3});
  for (int64_t truth : {1, 0}) {
    auto pred = put_all({truth, truth, truth});
    graph_builder b;
    auto p = b.input();
    auto in = b.input();
    b.output(b.add("uniform_cond", {p, in}, {make_attr("verify_uniform", 1)},
                   {simp_region("add"), simp_region("mul")}));
    auto out = run_simp(*drv, b.build(), {pred, x});
    ASSERT_TRUE(out) << describe(out.error());
    // then: x + x, else: x * x; on rank 2 (x = 3): 6 or 9.
    EXPECT_EQ(reveal_fetch((*out)[0], 2), truth ? 6 : 9);
  }
}

TEST_F(simp, uniform_cond_detects_a_non_uniform_predicate) {
  auto x = put_all({1, 2, 3});
  auto pred = put_all({1, 0, 1});
  graph_builder b;
  auto p = b.input();
  auto in = b.input();
  b.output(b.add("uniform_cond", {p, in}, {make_attr("verify_uniform", 1)},
                 {simp_region("add"), simp_region("mul")}));
  auto out = run_simp(*drv, b.build(), {pred, x});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::op_failed);
  EXPECT_NE(message_of(out.error()).find("not uniform"), std::string::npos)
      << message_of(out.error());
}

TEST_F(simp, uniform_cond_predicate_is_subject_to_the_fetch_policy) {
  // A predicate computed by a task (not revealed, not put by the session)
  // cannot be read under revealed-only.
  auto x = put_all({1, 1, 1});
  auto computed = drv->run(local_unary("add", true), {x});
  ASSERT_TRUE(computed);
  graph_builder b;
  auto p = b.input();
  b.output(
      b.add("uniform_cond", {p, p}, {}, {reveal_region(), reveal_region()}));
  auto out = run_simp(*drv, b.build(), {(*computed)[0]});
  ASSERT_FALSE(out);
  EXPECT_NE(message_of(out.error()).find("permission_denied"),
            std::string::npos)
      << message_of(out.error());
}

TEST_F(simp, while_loop_iterates_until_the_predicate_is_false) {
  auto counter = put_all({0, 0, 0});
  auto limit = put_all({5, 5, 5});
  auto one = put_all({1, 1, 1});
  // cond(x, limit, one) = reveal(limit - x): nonzero while x < limit.
  graph cond;
  {
    graph_builder b;
    auto x = b.input();
    auto lim = b.input();
    b.input();
    graph_builder body;
    auto bx = body.input();
    auto bl = body.input();
    body.output(body.add("reveal", {body.add("sub", {bl, bx})}));
    b.output(b.add("pcall_dynamic", {x, lim}, {}, {body.build()}));
    cond = b.build();
  }
  // body(x, limit, one) = x + one.
  graph step;
  {
    graph_builder b;
    auto x = b.input();
    b.input();
    auto inc = b.input();
    graph_builder body;
    auto bx = body.input();
    auto bi = body.input();
    body.output(body.add("add", {bx, bi}));
    b.output(b.add("pcall_dynamic", {x, inc}, {}, {body.build()}));
    step = b.build();
  }
  graph_builder b;
  auto x = b.input();
  auto lim = b.input();
  auto inc = b.input();
  b.output(b.add("while_loop", {x, lim, inc}, {make_attr("num_state", 1)},
                 {cond, step}));
  auto out = run_simp(*drv, b.build(), {counter, limit, one});
  ASSERT_TRUE(out) << describe(out.error());
  for (uint32_t r = 0; r < 3; ++r)
    EXPECT_EQ(reveal_fetch((*out)[0], r), 5);
}

TEST_F(simp, shuffle_refuses_a_routing_from_an_empty_party) {
  auto x = put_all({1, 2, 3});
  host_var only_first{3};
  only_first.set(0, x.part(0));
  graph_builder b;
  auto in = b.input();
  b.output(b.add("shuffle", {in},
                 {make_attr("routing", std::vector<int64_t>{-1, 2, -1})}));
  auto out = run_simp(*drv, b.build(), {only_first});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::invalid_argument);
  EXPECT_NE(message_of(out.error()).find("rank 2"), std::string::npos)
      << message_of(out.error());
}

TEST_F(simp, failing_op_names_the_op_and_the_worker_keeps_serving) {
  auto x = put_all({1, 2, 3});
  auto table_value = make_value(*table::make(
      {{"k", tensor::from<int64_t>({2}, std::vector<int64_t>{1, 2})}}));
  auto t = drv->put(1, table_value);
  ASSERT_TRUE(t);
  host_var mixed{3};
  mixed.set(1, t->part(1));
  graph_builder b;
  auto a = b.input();
  auto c = b.input();
  b.output(b.add("add", {a, c}));
  auto bad = drv->run(b.build(), {x, mixed}, {1});
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::op_failed);
  EXPECT_NE(message_of(bad.error()).find("'add'"), std::string::npos)
      << message_of(bad.error());
  graph_builder u;
  auto in = u.input();
  u.output(u.add("no_such_op", {in}));
  auto unknown = drv->run(u.build(), {x});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(code_of(unknown.error()), errc::op_failed);
  EXPECT_NE(message_of(unknown.error()).find("no_such_op"), std::string::npos);
  EXPECT_EQ(reveal_fetch(x, 1), 2) << "worker must keep serving";
}

} // namespace
} // namespace simp_test_file
