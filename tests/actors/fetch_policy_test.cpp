// The worker, not the driver, decides what may be fetched (DESIGN.md §9):
// `deny`, `allow` and `revealed-only`, plus the rule that a session only
// ever touches objects it holds.

#include <gtest/gtest.h>

#include "actors/cluster_fixture.hpp"

namespace fetch_policy_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;

namespace {

value_ptr small_tensor(std::vector<int64_t> xs) {
  auto n = static_cast<int64_t>(xs.size());
  return make_value(tensor::from<int64_t>({n}, xs));
}

/// x + x, then revealed: the reveal's output is fetchable, the sum not.
graph sum_and_reveal() {
  graph_builder b;
  auto x = b.input();
  auto y = b.add("add", {x, x});
  b.output(y);
  b.output(b.add("reveal", {y}));
  return b.build();
}

local_cluster_options with_policy(fetch_policy policy) {
  local_cluster_options opts;
  opts.policy = policy;
  return opts;
}

using fetch_policy_test = cluster_fixture;

TEST_F(fetch_policy_test, deny_refuses_every_fetch) {
  start(with_policy(fetch_policy::deny));
  auto& d = connect();
  EXPECT_EQ(d.sessions()[0].policy, fetch_policy::deny);
  auto x = d.put(0, small_tensor({1, 2}));
  ASSERT_TRUE(x) << describe(x.error());
  auto why = expect_error(d.fetch(*x, 0), errc::permission_denied);
  EXPECT_NE(why.find("rank 0"), std::string::npos) << why;
  EXPECT_NE(why.find(*x->uri(0)), std::string::npos) << why;
  auto out = d.run(sum_and_reveal(), {*x});
  ASSERT_TRUE(out) << describe(out.error());
  expect_error(d.fetch((*out)[0], 0), errc::permission_denied);
  expect_error(d.fetch((*out)[1], 0), errc::permission_denied);
  auto ws = d.worker_stats_of(0);
  ASSERT_TRUE(ws);
  EXPECT_EQ(ws->fetches, 3u);
  EXPECT_EQ(ws->fetches_denied, 3u);
  // A refusal leaves the objects usable.
  auto again = d.run(unary_graph("sum"), {*x});
  ASSERT_TRUE(again) << describe(again.error());
}

TEST_F(fetch_policy_test, allow_returns_puts_and_task_outputs) {
  start(with_policy(fetch_policy::allow));
  auto& d = connect();
  auto x = d.put(2, small_tensor({1, 2}));
  ASSERT_TRUE(x) << describe(x.error());
  auto v = d.fetch(*x, 2);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{1, 2}));
  auto out = d.run(sum_and_reveal(), {*x});
  ASSERT_TRUE(out) << describe(out.error());
  for (auto& var : *out) {
    auto w = d.fetch(var, 2);
    ASSERT_TRUE(w) << describe(w.error());
    EXPECT_EQ(int64_values(*w), (std::vector<int64_t>{2, 4}));
  }
  auto ws = d.worker_stats_of(2);
  ASSERT_TRUE(ws);
  EXPECT_EQ(ws->fetches_denied, 0u);
}

TEST_F(fetch_policy_test, revealed_only_allows_reveals_and_own_puts) {
  start(with_policy(fetch_policy::revealed_only));
  auto& d = connect();
  auto x = d.put(1, small_tensor({3, 4}));
  ASSERT_TRUE(x) << describe(x.error());
  auto own = d.fetch(*x, 1);
  ASSERT_TRUE(own) << describe(own.error());
  EXPECT_EQ(int64_values(*own), (std::vector<int64_t>{3, 4}));
  auto out = d.run(sum_and_reveal(), {*x});
  ASSERT_TRUE(out) << describe(out.error());
  auto why = expect_error(d.fetch((*out)[0], 1), errc::permission_denied);
  EXPECT_NE(why.find("revealed"), std::string::npos) << why;
  auto revealed = d.fetch((*out)[1], 1);
  ASSERT_TRUE(revealed) << describe(revealed.error());
  EXPECT_EQ(int64_values(*revealed), (std::vector<int64_t>{6, 8}));
  // Reveal flags belong to the object: the listing shows them.
  auto listing = d.objects(1);
  ASSERT_TRUE(listing) << describe(listing.error());
  size_t revealed_count = 0;
  for (auto& rec : *listing)
    revealed_count += rec.revealed ? 1 : 0;
  EXPECT_EQ(revealed_count, 1u);
  // Passing a revealed value through another op hides it again.
  auto copy = d.run(unary_graph("identity"), {(*out)[1]});
  ASSERT_TRUE(copy) << describe(copy.error());
  expect_error(d.fetch((*copy)[0], 1), errc::permission_denied);
}

TEST_F(fetch_policy_test, revealed_only_refuses_another_sessions_put) {
  start(with_policy(fetch_policy::revealed_only));
  auto& first = connect();
  auto& second = connect();
  auto theirs = second.put(0, small_tensor({42}));
  ASSERT_TRUE(theirs) << describe(theirs.error());
  // The first driver learns the URI somehow; it still does not hold it.
  host_var forged{first.world_size()};
  forged.set(0, first.adopt(0, *theirs->uri(0)));
  auto why = expect_error(first.fetch(forged, 0), errc::permission_denied);
  EXPECT_NE(why.find("not held"), std::string::npos) << why;
  expect_error(first.run(unary_graph("identity"), {forged}),
               errc::permission_denied);
  // The owner is unaffected, also by the forged handle's release.
  forged.reset();
  ASSERT_TRUE(first.flush());
  auto v = second.fetch(*theirs, 0);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), std::vector<int64_t>{42});
  auto listing = second.objects(0);
  ASSERT_TRUE(listing);
  ASSERT_EQ(listing->size(), 1u);
  ASSERT_EQ(listing->front().holders.size(), 1u);
  EXPECT_EQ(listing->front().holders[0].count, 1u);
}

TEST_F(fetch_policy_test, fs_objects_are_fetchable_only_under_allow) {
  for (auto policy : {fetch_policy::revealed_only, fetch_policy::allow}) {
    SCOPED_TRACE(std::string{to_string(policy)});
    start(with_policy(policy));
    auto& d = connect();
    auto target = "fs://" + (nodes().fs_root(0) / "x.obj").string();
    auto x = d.put(0, small_tensor({7}), target);
    ASSERT_TRUE(x) << describe(x.error());
    EXPECT_EQ(*x->uri(0), target);
    auto v = d.fetch(*x, 0);
    if (policy == fetch_policy::allow) {
      ASSERT_TRUE(v) << describe(v.error());
      EXPECT_EQ(int64_values(*v), std::vector<int64_t>{7});
    } else {
      expect_error(v, errc::permission_denied);
    }
    ASSERT_FALSE(d.erase(*x, 0));
    TearDown();
  }
}

} // namespace

} // namespace
} // namespace fetch_policy_test_file
