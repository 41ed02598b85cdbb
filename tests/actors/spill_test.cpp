// Spilling on a simulated cluster: a working set of 3x the memory limit,
// restore on use by tasks, fetch and transfer, the spilled state in
// `objects` and `stats`, typed errors for damaged spill files, and no
// spill file left behind (DESIGN.md §12, issue 16).

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <numeric>
#include <thread>

#include "actors/cluster_fixture.hpp"
#include "actors/testing/local_cluster.hpp"
#include "store/error.hpp"
#include "store/spill_directory.hpp"
#include "store/test_support.hpp"

namespace spill_test_file {
namespace {

using namespace objstore;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr uint64_t limit = 4u << 20;
/// 512 KiB of int64.
constexpr int64_t elems = 64 * 1024;

value_ptr vec(int64_t start, int64_t n = elems) {
  std::vector<int64_t> xs(static_cast<size_t>(n));
  std::iota(xs.begin(), xs.end(), start);
  return test::small_tensor(std::move(xs));
}

class spill : public ::testing::Test {
protected:
  void SetUp() override {
    local_cluster_options opts;
    opts.workers = 2;
    opts.policy = fetch_policy::allow;
    opts.memory_limit = limit;
    opts.spill_dir = spill_root_.path();
    opts.fs_roots = false;
    auto c = local_cluster::start(opts);
    ASSERT_TRUE(c) << describe(c.error());
    cluster = std::move(*c);
    // Puts over the actor connection: a streamed put is admitted by the
    // data plane before the store can spill for it, and right after a put
    // that admission can still count the previous object as pinned
    // (known, see the stop notes of issue 16).
    driver_actor_options dopts;
    dopts.stream_threshold = 0;
    auto d = cluster->connect(dopts);
    ASSERT_TRUE(d) << describe(d.error());
    drv = std::move(*d);
  }

  worker_stats stats_of(uint32_t rank) {
    auto st = drv->worker_stats_of(rank);
    EXPECT_TRUE(st) << describe(st.error());
    return st ? *st : worker_stats{};
  }

  std::optional<object_record> record_of(uint32_t rank, const host_var& x) {
    auto listing = drv->objects(rank);
    EXPECT_TRUE(listing) << describe(listing.error());
    if (listing)
      for (auto& rec : *listing)
        if (rec.uri == x.uri(rank))
          return rec;
    return std::nullopt;
  }

  /// The spill file of `x` on `rank`.
  fs::path file_of(uint32_t rank, const host_var& x) {
    auto key = x.uri(rank)->substr(6); // after "mem://"
    for (auto& e : fs::directory_iterator{spill_root_.path()
                                          / ("rank-" + std::to_string(rank))})
      if (e.path().filename().string().rfind(key + "-", 0) == 0)
        return e.path();
    return {};
  }

  /// Drops the driver's handles and waits until both workers hold nothing
  /// and no spill file is left.
  void expect_clean() {
    drv->flush();
    for (uint32_t r = 0; r < 2; ++r) {
      EXPECT_TRUE(test::poll_until([&] {
        return cluster->store_stats_of(r).of(scheme::mem).objects == 0;
      })) << "rank "
          << r;
    }
    EXPECT_TRUE(test::poll_until([&] {
      return spill_directory::count_files(spill_root_.path()) == 0;
    })) << spill_directory::count_files(spill_root_.path())
        << " spill files left";
  }

  test::temp_dir spill_root_;
  std::unique_ptr<local_cluster> cluster;
  std::unique_ptr<driver> drv;
};

TEST_F(spill, a_working_set_of_three_times_the_limit_completes_correctly) {
  constexpr int per_rank = 24; // 24 x 512 KiB = 12 MiB = 3x the limit
  std::vector<std::vector<host_var>> inputs(2);
  for (uint32_t r = 0; r < 2; ++r)
    for (int i = 0; i < per_rank; ++i) {
      auto x = drv->put(r, vec(i * 1000 + r));
      ASSERT_TRUE(x) << "rank " << r << " input " << i << ": "
                     << describe(x.error());
      inputs[r].push_back(std::move(*x));
    }
  for (uint32_t r = 0; r < 2; ++r) {
    auto st = stats_of(r);
    EXPECT_GT(st.spill.spilled_objects, 0u);
    EXPECT_LE(st.mem_bytes, limit);
    EXPECT_EQ(st.mem_objects, static_cast<uint64_t>(per_rank));
  }
  // Every input goes through a task: the spilled ones come back on use,
  // and the outputs (as large again) spill in turn.
  graph_builder b;
  auto in = b.input();
  b.output(b.add("add", {in, in}));
  b.output(b.add("sum", {in}));
  auto g = b.build();
  std::vector<std::vector<std::vector<host_var>>> outputs(2);
  for (uint32_t r = 0; r < 2; ++r)
    for (int i = 0; i < per_rank; ++i) {
      auto out = drv->run(g, {inputs[r][i]}, {r});
      ASSERT_TRUE(out) << "rank " << r << " task " << i << ": "
                       << describe(out.error());
      outputs[r].push_back(std::move(*out));
    }
  for (uint32_t r = 0; r < 2; ++r)
    for (int i = 0; i < per_rank; ++i) {
      int64_t start = i * 1000 + r;
      auto doubled = drv->fetch(r, outputs[r][i][0]);
      ASSERT_TRUE(doubled) << describe(doubled.error());
      auto xs = (*doubled)->as_tensor().values<int64_t>();
      ASSERT_EQ(xs.size(), static_cast<size_t>(elems));
      EXPECT_EQ(xs[0], 2 * start);
      EXPECT_EQ(xs[elems - 1], 2 * (start + elems - 1));
      auto sum = drv->fetch(r, outputs[r][i][1]);
      ASSERT_TRUE(sum) << describe(sum.error());
      EXPECT_EQ((*sum)->as_tensor().values<int64_t>()[0],
                elems * start + elems * (elems - 1) / 2);
      auto back = drv->fetch(r, inputs[r][i]);
      ASSERT_TRUE(back) << describe(back.error());
      EXPECT_EQ(**back, *vec(start));
    }
  for (uint32_t r = 0; r < 2; ++r) {
    auto st = stats_of(r);
    EXPECT_GT(st.spill.spills, 0u);
    EXPECT_GT(st.spill.restores, 0u);
    EXPECT_GT(st.spill.spilled_bytes_total, 0u);
    EXPECT_GT(st.spill.restored_bytes_total, 0u);
    EXPECT_GT(st.spill.spill_ns, 0u);
    EXPECT_GT(st.spill.restore_ns, 0u);
    EXPECT_EQ(st.spill.spill_failures, 0u);
    EXPECT_EQ(st.spill.restore_failures, 0u);
    EXPECT_LE(st.mem_bytes, limit);
    EXPECT_EQ(st.tasks_failed, 0u);
  }
  inputs.clear();
  outputs.clear();
  expect_clean();
}

TEST_F(spill, objects_and_stats_show_what_is_spilled) {
  auto a = drv->put(0, vec(1, 256 * 1024)); // 2 MiB each
  auto b = drv->put(0, vec(2, 256 * 1024));
  auto c = drv->put(0, vec(3, 256 * 1024));
  ASSERT_TRUE(a && b && c);
  auto rec = record_of(0, *a);
  ASSERT_TRUE(rec);
  EXPECT_TRUE(rec->spilled);
  rec = record_of(0, *c);
  ASSERT_TRUE(rec);
  EXPECT_FALSE(rec->spilled);
  auto st = stats_of(0);
  EXPECT_GE(st.spill.spilled_objects, 1u);
  EXPECT_EQ(st.spill.spilled_bytes, st.spill.spilled_objects * (2u << 20));
  EXPECT_GT(st.spill.spill_file_bytes, st.spill.spilled_bytes);
  EXPECT_EQ(st.mem_objects, 3u);
  // A fetch restores it under the same URI.
  auto x = drv->fetch(0, *a);
  ASSERT_TRUE(x) << describe(x.error());
  EXPECT_EQ(**x, *vec(1, 256 * 1024));
  rec = record_of(0, *a);
  ASSERT_TRUE(rec);
  EXPECT_FALSE(rec->spilled);
  EXPECT_GE(stats_of(0).spill.restores, 1u);
  a->reset(); // its object and file go with the last handle
  b->reset();
  c->reset();
  expect_clean();
}

TEST_F(spill, a_spilled_object_transfers_correctly) {
  auto a = drv->put(0, vec(5, 256 * 1024));
  auto b = drv->put(0, vec(6, 256 * 1024));
  auto c = drv->put(0, vec(7, 256 * 1024));
  ASSERT_TRUE(a && b && c);
  ASSERT_TRUE(record_of(0, *a)->spilled);
  auto moved = drv->transfer(*a, 0, 1);
  ASSERT_TRUE(moved) << describe(moved.error());
  auto x = drv->fetch(1, *moved);
  ASSERT_TRUE(x) << describe(x.error());
  EXPECT_EQ(**x, *vec(5, 256 * 1024));
  a->reset();
  b->reset();
  c->reset();
  moved->reset();
  expect_clean();
}

TEST_F(spill, an_inbound_transfer_spills_the_target_first) {
  auto resident = drv->put(1, vec(8, 384 * 1024)); // 3 MiB on the target
  auto source = drv->put(0, vec(9, 256 * 1024));   // 2 MiB to move there
  ASSERT_TRUE(resident && source);
  ASSERT_FALSE(record_of(1, *resident)->spilled);
  auto moved = drv->transfer(*source, 0, 1);
  ASSERT_TRUE(moved) << describe(moved.error());
  EXPECT_TRUE(record_of(1, *resident)->spilled);
  auto x = drv->fetch(1, *moved);
  ASSERT_TRUE(x) << describe(x.error());
  EXPECT_EQ(**x, *vec(9, 256 * 1024));
  auto y = drv->fetch(1, *resident);
  ASSERT_TRUE(y) << describe(y.error());
  EXPECT_EQ(**y, *vec(8, 384 * 1024));
  resident->reset();
  source->reset();
  moved->reset();
  expect_clean();
}

TEST_F(spill, pinned_inputs_never_spill_and_the_refusal_is_typed) {
  auto a = drv->put(0, vec(1, 384 * 1024)); // 3 MiB
  ASSERT_TRUE(a);
  graph_builder b;
  auto in = b.input();
  b.add("sleep", {in}, {make_attr("ms", 1500)});
  auto busy = drv->submit(b.build(), {*a}, {0});
  ASSERT_TRUE(test::poll_until([&] { return record_of(0, *a)->pins > 0; }));
  // 3 MiB pinned + 2 MiB > 4 MiB, and nothing else to spill.
  auto refused = drv->put(0, vec(2, 256 * 1024));
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::resource_exhausted)
      << describe(refused.error());
  // Refused by the store ("... the rest pinned"), or, for a put that
  // streams over the data plane, by its admission before any payload.
  auto why = describe(refused.error());
  EXPECT_TRUE(why.find("pinned") != std::string::npos
              || why.find("objstore.memory-limit") != std::string::npos)
      << why;
  EXPECT_FALSE(record_of(0, *a)->spilled);
  ASSERT_TRUE(busy.get());
  // Unpinned now: the put spills it first.
  auto admitted = drv->put(0, vec(2, 256 * 1024));
  ASSERT_TRUE(admitted) << describe(admitted.error());
  EXPECT_TRUE(record_of(0, *a)->spilled);
  a->reset();
  admitted->reset();
  expect_clean();
}

TEST_F(spill, damaged_or_missing_spill_files_are_typed_errors) {
  auto a = drv->put(0, vec(1, 256 * 1024));
  auto b = drv->put(0, vec(2, 256 * 1024));
  auto c = drv->put(0, vec(3, 256 * 1024));
  auto d = drv->put(0, vec(4, 256 * 1024));
  ASSERT_TRUE(a && b && c && d);
  ASSERT_TRUE(record_of(0, *a)->spilled);
  ASSERT_TRUE(record_of(0, *b)->spilled);
  auto damaged = file_of(0, *a);
  ASSERT_FALSE(damaged.empty());
  auto bytes = test::read_file(damaged);
  bytes[bytes.size() / 2] ^= 0x01;
  test::write_file(damaged, bytes);
  auto lost = file_of(0, *b);
  ASSERT_FALSE(lost.empty());
  fs::remove(lost);
  auto x = drv->fetch(0, *a);
  ASSERT_FALSE(x);
  EXPECT_EQ(code_of(x.error()), errc::corrupt_data) << describe(x.error());
  EXPECT_NE(describe(x.error()).find(*a->uri(0)), std::string::npos);
  graph_builder g;
  g.output(g.add("sum", {g.input()}));
  auto ran = drv->run(g.build(), {*b}, {0});
  ASSERT_FALSE(ran);
  EXPECT_EQ(code_of(ran.error()), errc::object_lost) << describe(ran.error());
  EXPECT_NE(describe(ran.error()).find(*b->uri(0)), std::string::npos);
  // The worker goes on: other objects are served, the broken ones erased.
  auto y = drv->fetch(0, *d);
  ASSERT_TRUE(y) << describe(y.error());
  EXPECT_EQ(stats_of(0).spill.restore_failures, 2u);
  a->reset();
  b->reset();
  c->reset();
  d->reset();
  expect_clean();
}

TEST(spill_setup, an_unusable_spill_dir_fails_the_start_clearly) {
  test::temp_dir root;
  test::write_file(root / "file", "x");
  local_cluster_options opts;
  opts.workers = 1;
  opts.memory_limit = limit;
  opts.spill_dir = root / "file";
  opts.fs_roots = false;
  auto c = local_cluster::start(opts);
  ASSERT_FALSE(c);
  EXPECT_EQ(code_of(c.error()), errc::io_error) << describe(c.error());
  EXPECT_NE(describe(c.error()).find("spill directory"), std::string::npos);
}

TEST(spill_setup, the_spill_directory_goes_with_the_cluster) {
  test::temp_dir root;
  fs::create_directories(root / "rank-0");
  test::write_file(root / "rank-0" / "old-1.spill", "left by a crash");
  {
    local_cluster_options opts;
    opts.workers = 1;
    opts.memory_limit = limit;
    opts.spill_dir = root.path();
    opts.fs_roots = false;
    auto c = local_cluster::start(opts);
    ASSERT_TRUE(c) << describe(c.error());
    EXPECT_FALSE(fs::exists(root / "rank-0" / "old-1.spill"));
    EXPECT_EQ((*c)->store_stats_of(0).spill.leftovers_removed, 1u);
  }
  EXPECT_TRUE(fs::is_empty(root.path()));
}

} // namespace
} // namespace spill_test_file
