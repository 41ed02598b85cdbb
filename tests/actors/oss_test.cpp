// oss:// objects in a running cluster, against a real S3-compatible server
// (tests/s3/server.js): task inputs read by the worker, put and transfer
// targets, transfer sources, the fetch policy and the owner rule.

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <optional>
#include <thread>

#include "actors/cluster_fixture.hpp"
#include "actors/testing/local_cluster.hpp"
#include "s3/s3_test_server.hpp"
#include "store/error.hpp"
#include "store/oss_backend.hpp"
#include "store/test_support.hpp"

namespace oss_test_file {
namespace {

using namespace objstore;
using namespace std::chrono_literals;

const std::string alice_secret(40, 'a');

using test::int64_values;

class oss_cluster : public ::testing::Test {
protected:
  void SetUp() override {
    test::s3_test_server::options so;
    so.buckets = {"objstore-test", "datasets"};
    server_.emplace(so);
    // A dataset placed by another tool (no owner recorded).
    auto place = server_->backend_options();
    place.buckets = {"datasets"};
    auto placer = oss_backend::make(place);
    ASSERT_TRUE(placer) << describe(placer.error());
    ASSERT_FALSE((*placer)->put(*uri::parse("oss://datasets/sets/numbers"),
                                test::small_tensor({10, 20, 30, 40})));
  }

  void start(fetch_policy policy = fetch_policy::allow) {
    local_cluster_options opts;
    opts.workers = 2;
    opts.policy = policy;
    opts.operator_drivers = false;
    opts.principals = {{"alice", alice_secret}};
    auto oss = server_->backend_options();
    oss.buckets = {"objstore-test"};
    oss.shared_buckets = {"datasets/sets/"};
    opts.oss = oss;
    auto c = local_cluster::start(opts);
    ASSERT_TRUE(c) << describe(c.error());
    cluster_ = std::move(*c);
  }

  void TearDown() override {
    cluster_.reset();
    server_.reset();
  }

  std::unique_ptr<driver> connect(std::string principal = {},
                                  std::string secret = {}) {
    driver_actor_options opts;
    opts.timeout = 20s;
    opts.transfer_timeout = 30s;
    opts.principal = std::move(principal);
    opts.principal_secret = std::move(secret);
    auto d = cluster_->connect(opts);
    EXPECT_TRUE(d) << describe(d.error());
    return d ? std::move(*d) : nullptr;
  }

  /// A handle on a persistent object of party `rank` (not counted).
  static host_var handle(uint32_t rank, const std::string& uri) {
    host_var h{2};
    h.set(rank, std::make_shared<const remote_ref>(rank, uri, nullptr));
    return h;
  }

  std::optional<test::s3_test_server> server_;
  std::unique_ptr<local_cluster> cluster_;
};

TEST_F(oss_cluster, a_job_loads_from_oss_computes_and_persists_to_oss) {
  start();
  auto d = connect("alice", alice_secret);
  ASSERT_TRUE(d);
  graph_builder b;
  b.output(b.add("sum", {b.input()}));
  auto sum = d->run(b.build(), {handle(0, "oss://datasets/sets/numbers")});
  ASSERT_TRUE(sum) << describe(sum.error());
  // Persisted by the worker that holds the result, then read back by
  // another session of the same principal on another party.
  auto target = "oss://objstore-test/results/sum";
  auto saved = d->transfer((*sum)[0], 0, 1, target);
  ASSERT_TRUE(saved) << describe(saved.error());
  EXPECT_EQ(*saved->uri(1), target);
  auto later = connect("alice", alice_secret);
  ASSERT_TRUE(later);
  auto v = later->fetch(1, handle(1, target));
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{100}));
  // A put target, and an oss:// object as a transfer source.
  auto put
      = d->put(0, test::small_tensor({1, 2, 3}), "oss://objstore-test/in/p");
  ASSERT_TRUE(put) << describe(put.error());
  auto moved = d->transfer(handle(0, "oss://objstore-test/in/p"), 0, 1);
  ASSERT_TRUE(moved) << describe(moved.error());
  EXPECT_EQ(moved->uri(1)->rfind("mem://", 0), 0u);
  auto w = d->fetch(1, *moved);
  ASSERT_TRUE(w) << describe(w.error());
  EXPECT_EQ(int64_values(*w), (std::vector<int64_t>{1, 2, 3}));
}

TEST_F(oss_cluster, large_puts_go_to_oss_in_parts) {
  start();
  auto d = connect("alice", alice_secret);
  ASSERT_TRUE(d);
  auto x = make_value(test::sample_tensor(dtype::float64, {int64_t{2} << 20}));
  auto target = "oss://objstore-test/big";
  auto put = d->put(1, x, target); // 16 MiB: a multipart upload
  ASSERT_TRUE(put) << describe(put.error());
  auto v = d->fetch(1, handle(1, target));
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(**v, *x);
}

TEST_F(oss_cluster, a_long_upload_does_not_hold_up_other_sessions) {
  start();
  auto uploader = connect("alice", alice_secret);
  auto other = connect();
  ASSERT_TRUE(uploader && other);
  auto big = make_value(test::sample_tensor(dtype::uint8, {int64_t{96} << 20}));
  auto upload = std::async(std::launch::async, [&] {
    return uploader->put(0, big, "oss://objstore-test/long-upload");
  });
  // Its first part reached the server: the upload is under way on one of
  // the node's store threads.
  auto started = false;
  for (int i = 0; i < 2000 && !started; ++i) {
    std::error_code ec;
    for (auto it
         = std::filesystem::recursive_directory_iterator{server_->directory(),
                                                         ec};
         it != std::filesystem::recursive_directory_iterator{};
         it.increment(ec))
      if (it->path().string().find("_S3rver_uploads") != std::string::npos
          && it->path().filename() == "1")
        started = true;
    if (!started)
      std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(started) << server_->output();
  // Another session's persistent-object calls go on meanwhile.
  for (int i = 0; i < 3; ++i) {
    auto target
        = "fs://"
          + (cluster_->fs_root(0) / ("small-" + std::to_string(i))).string();
    auto put = other->put(0, test::small_tensor({i}), target);
    ASSERT_TRUE(put) << describe(put.error());
  }
  EXPECT_EQ(upload.wait_for(0s), std::future_status::timeout)
      << "the small puts waited for the upload";
  auto done = upload.get();
  ASSERT_TRUE(done) << describe(done.error());
}

TEST_F(oss_cluster, another_tenant_cannot_read_reveal_overwrite_or_erase) {
  start();
  auto victim = connect("alice", alice_secret);
  auto attacker = connect();
  ASSERT_TRUE(victim && attacker);
  auto obj = "oss://objstore-test/private/victim";
  ASSERT_TRUE(victim->put(0, test::small_tensor({7, 8, 9}), obj));
  auto h = handle(0, obj);
  auto denied = [](const caf::error& err, const std::string& verb) {
    EXPECT_EQ(code_of(err), errc::permission_denied) << describe(err);
    EXPECT_NE(message_of(err).find("owned by another principal"),
              std::string::npos)
        << describe(err);
    EXPECT_NE(message_of(err).find(verb), std::string::npos) << describe(err);
  };
  auto fetched = attacker->fetch(0, h);
  ASSERT_FALSE(fetched);
  denied(fetched.error(), "read");
  graph_builder b;
  b.output(b.add("reveal", {b.input()}));
  auto revealed = attacker->run(b.build(), {h});
  ASSERT_FALSE(revealed);
  denied(revealed.error(), "read");
  auto moved = attacker->transfer(h, 0, 1);
  ASSERT_FALSE(moved);
  denied(moved.error(), "read");
  auto overwritten = attacker->put(0, test::small_tensor({0}), obj);
  ASSERT_FALSE(overwritten);
  denied(overwritten.error(), "overwrite");
  denied(attacker->erase(0, h), "erase");
  // Shared datasets: read by all, written by none; other buckets: nobody.
  auto w = attacker->put(0, test::small_tensor({0}),
                         "oss://datasets/sets/numbers");
  ASSERT_FALSE(w);
  EXPECT_EQ(code_of(w.error()), errc::permission_denied);
  auto elsewhere
      = attacker->put(0, test::small_tensor({0}), "oss://datasets/other");
  ASSERT_FALSE(elsewhere);
  EXPECT_EQ(code_of(elsewhere.error()), errc::permission_denied);
  EXPECT_NE(message_of(elsewhere.error()).find("oss-buckets"),
            std::string::npos);
  // Nothing of the victim changed.
  auto mine = victim->fetch(0, h);
  ASSERT_TRUE(mine) << describe(mine.error());
  EXPECT_EQ(int64_values(*mine), (std::vector<int64_t>{7, 8, 9}));
  EXPECT_FALSE(victim->erase(0, h));
  auto gone = victim->fetch(0, h);
  ASSERT_FALSE(gone);
  EXPECT_EQ(code_of(gone.error()), errc::not_found) << describe(gone.error());
}

TEST_F(oss_cluster, the_fetch_policy_applies_to_oss_objects) {
  start(fetch_policy::revealed_only);
  auto d = connect("alice", alice_secret);
  ASSERT_TRUE(d);
  auto v = d->fetch(0, handle(0, "oss://datasets/sets/numbers"));
  ASSERT_FALSE(v);
  EXPECT_EQ(code_of(v.error()), errc::permission_denied) << describe(v.error());
  EXPECT_NE(message_of(v.error()).find("'allow' policy"), std::string::npos);
  // Computing on it is fine; the revealed result may be fetched.
  graph_builder b;
  b.output(b.add("reveal", {b.add("sum", {b.input()})}));
  auto sum = d->run(b.build(), {handle(0, "oss://datasets/sets/numbers")});
  ASSERT_TRUE(sum) << describe(sum.error());
  auto s = d->fetch(0, (*sum)[0]);
  ASSERT_TRUE(s) << describe(s.error());
  EXPECT_EQ(int64_values(*s), (std::vector<int64_t>{100}));
}

TEST_F(oss_cluster, a_node_whose_service_is_down_does_not_start_and_says_why) {
  server_->kill();
  local_cluster_options opts;
  opts.workers = 1;
  auto oss = server_->backend_options();
  oss.timeout = 2s;
  opts.oss = oss;
  auto c = local_cluster::start(opts);
  ASSERT_FALSE(c);
  EXPECT_TRUE(code_of(c.error()) == errc::io_error
              || code_of(c.error()) == errc::timeout)
      << describe(c.error());
  EXPECT_NE(message_of(c.error()).find("oss-buckets"), std::string::npos)
      << describe(c.error());
}

} // namespace
} // namespace oss_test_file
