// The driver holds URIs, the data stays on the workers: a loopback cluster
// runs a 3-party pipeline on 64 MiB tensors while the driver's control
// plane stays tiny, and the driver's byte counters reflect what moved.

#include "actors/testing/local_cluster.hpp"

#include <gtest/gtest.h>

#include "actors/cluster_fixture.hpp"

namespace cluster_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;

namespace {

constexpr int64_t tensor_elements = int64_t{8} << 20; // 64 MiB of 8 bytes
constexpr uint64_t mib = uint64_t{1} << 20;

/// Element i of rank's input: small integers, exact in float64 sums.
int64_t input_at(uint32_t rank, int64_t i) {
  return i % 1000 + rank;
}

/// A 64 MiB tensor of input_at(rank, i), int64 or float64.
value_ptr big_input(uint32_t rank, bool as_double) {
  auto [t, raw] = tensor::allocate(as_double ? dtype::float64 : dtype::int64,
                                   {tensor_elements});
  for (int64_t i = 0; i < tensor_elements; ++i) {
    if (as_double)
      reinterpret_cast<double*>(raw)[i]
          = static_cast<double>(input_at(rank, i));
    else
      reinterpret_cast<int64_t*>(raw)[i] = input_at(rank, i);
  }
  return make_value(std::move(t));
}

/// sum_i (v*v + v) for v = i % 1000 + rank, by counting each residue.
int64_t expected_sum(uint32_t rank) {
  int64_t total = 0;
  for (int64_t k = 0; k < 1000; ++k) {
    int64_t count = tensor_elements / 1000 + (k < tensor_elements % 1000);
    int64_t v = k + rank;
    total += count * (v * v + v);
  }
  return total;
}

graph binary_graph(const char* opcode) {
  graph_builder b;
  auto x = b.input();
  auto y = b.input();
  b.output(b.add(opcode, {x, y}));
  return b.build();
}

using cluster = cluster_fixture;

TEST_F(cluster, smoke) {
  start();
  auto& d = connect();
  EXPECT_EQ(d.world_size(), 3u);
  ASSERT_EQ(d.sessions().size(), 3u);
  for (uint32_t r = 0; r < 3; ++r) {
    EXPECT_EQ(d.sessions()[r].rank, r);
    EXPECT_EQ(d.sessions()[r].policy, fetch_policy::allow);
  }
  auto x = d.put(1, small_tensor({1, 2, 3}));
  ASSERT_TRUE(x) << describe(x.error());
  EXPECT_EQ(x->parties(), std::vector<uint32_t>{1});
  auto out = d.run(binary_graph("add"), {*x, *x});
  ASSERT_TRUE(out) << describe(out.error());
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].parties(), std::vector<uint32_t>{1});
  auto v = d.fetch(1, (*out)[0]);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{2, 4, 6}));
}

TEST_F(cluster, pipeline_on_64_mib_keeps_data_on_the_workers) {
  start();
  auto& d = connect();
  std::vector<host_var> parts;
  for (uint32_t r = 0; r < 3; ++r) {
    auto x = d.put(r, big_input(r, r == 1)); // rank 1 holds float64
    ASSERT_TRUE(x) << describe(x.error());
    parts.push_back(std::move(*x));
  }
  auto xs = combine(3, parts);
  parts.clear();
  auto before = d.stats();
  ASSERT_TRUE(before);
  // The puts themselves carried the data, over the workers' data ports.
  EXPECT_GE(before->data_bytes_sent, 3 * 64 * mib);
  EXPECT_LT(before->bytes_sent, 64u * 1024);
  // x*x, then + x, then sum: each step on all three parties at once.
  auto ys = d.run(binary_graph("mul"), {xs, xs});
  ASSERT_TRUE(ys) << describe(ys.error());
  auto zs = d.run(binary_graph("add"), {(*ys)[0], xs});
  ASSERT_TRUE(zs) << describe(zs.error());
  ys->clear(); // released while the pipeline goes on
  auto sums = d.run(unary_graph("sum"), {(*zs)[0]});
  ASSERT_TRUE(sums) << describe(sums.error());
  ASSERT_EQ((*sums)[0].parties(), (std::vector<uint32_t>{0, 1, 2}));
  for (uint32_t r = 0; r < 3; ++r) {
    auto s = d.fetch(r, (*sums)[0]);
    ASSERT_TRUE(s) << describe(s.error());
    auto& t = (*s)->as_tensor();
    ASSERT_EQ(t.num_elements(), 1);
    if (r == 1) {
      ASSERT_EQ(t.type(), dtype::float64);
      EXPECT_EQ(t.values<double>()[0], static_cast<double>(expected_sum(r)));
    } else {
      ASSERT_EQ(t.type(), dtype::int64);
      EXPECT_EQ(t.values<int64_t>()[0], expected_sum(r));
    }
  }
  auto after = d.stats();
  ASSERT_TRUE(after);
  auto received = after->bytes_received - before->bytes_received;
  auto sent = after->bytes_sent - before->bytes_sent;
  EXPECT_LT(received, 64u * 1024) << "the driver received data";
  EXPECT_LT(sent, 64u * 1024) << "the driver sent data";
  EXPECT_GT(received, 0u);
  // Outside the measured window: the intermediate itself is exact.
  auto z0 = d.fetch(0, (*zs)[0]);
  ASSERT_TRUE(z0) << describe(z0.error());
  auto zv = (*z0)->as_tensor().values<int64_t>();
  ASSERT_EQ(zv.size(), static_cast<size_t>(tensor_elements));
  for (int64_t i = 0; i < tensor_elements; i += 4099) {
    auto v = input_at(0, i);
    ASSERT_EQ(zv[static_cast<size_t>(i)], v * v + v) << "element " << i;
  }
  auto last = d.stats();
  ASSERT_TRUE(last);
  EXPECT_GE(last->data_bytes_received - after->data_bytes_received, 64 * mib);
}

TEST_F(cluster, byte_counters_follow_data_not_control) {
  start();
  // Everything over the actor connection (no streaming), so its byte
  // counters see the data.
  driver_actor_options opts;
  opts.stream_threshold = 0;
  auto& d = connect(opts);
  auto s0 = d.stats();
  ASSERT_TRUE(s0);
  // Connecting is control plane only.
  EXPECT_LT(s0->bytes_sent, 4096u);
  EXPECT_LT(s0->bytes_received, 4096u);
  auto big = d.put(0, make_value(tensor::from<int64_t>(
                          {1 << 19}, std::vector<int64_t>(1 << 19, 7))));
  ASSERT_TRUE(big) << describe(big.error());
  auto s1 = d.stats();
  ASSERT_TRUE(s1);
  EXPECT_GE(s1->bytes_sent - s0->bytes_sent, 4 * mib);
  EXPECT_LT(s1->bytes_sent - s0->bytes_sent, 4 * mib + 4096);
  EXPECT_LT(s1->bytes_received - s0->bytes_received, 1024u);
  EXPECT_GT(s1->requests, s0->requests);
  // Control messages: a run, worker stats and a listing stay small.
  auto out = d.run(unary_graph("identity"), {*big});
  ASSERT_TRUE(out) << describe(out.error());
  ASSERT_TRUE(d.worker_stats_of(0));
  ASSERT_TRUE(d.objects(0));
  auto s2 = d.stats();
  ASSERT_TRUE(s2);
  EXPECT_LT(s2->bytes_sent - s1->bytes_sent, 4096u);
  EXPECT_LT(s2->bytes_received - s1->bytes_received, 4096u);
  EXPECT_GT(s2->bytes_received, s1->bytes_received);
  // A fetch brings the data back and is counted as received.
  auto v = d.fetch(0, (*out)[0]);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ((*v)->as_tensor().values<int64_t>()[(1 << 19) - 1], 7);
  auto s3 = d.stats();
  ASSERT_TRUE(s3);
  EXPECT_GE(s3->bytes_received - s2->bytes_received, 4 * mib);
  EXPECT_LT(s3->bytes_sent - s2->bytes_sent, 1024u);
}

TEST_F(cluster, objects_listing_crosses_the_wire) {
  start();
  auto& d = connect();
  auto x = d.put(2, small_tensor({5, 6}));
  ASSERT_TRUE(x) << describe(x.error());
  auto listing = d.objects(2);
  ASSERT_TRUE(listing) << describe(listing.error());
  ASSERT_EQ(listing->size(), 1u);
  auto& rec = listing->front();
  EXPECT_EQ(rec.uri, *x->uri(2));
  EXPECT_EQ(rec.size_bytes, 16u);
  ASSERT_EQ(rec.holders.size(), 1u);
  EXPECT_EQ(rec.holders[0].count, 1u);
  EXPECT_FALSE(rec.revealed);
  auto others = d.objects(0);
  ASSERT_TRUE(others);
  EXPECT_TRUE(others->empty());
  auto ws = d.worker_stats_of(2);
  ASSERT_TRUE(ws) << describe(ws.error());
  EXPECT_EQ(ws->rank, 2u);
  EXPECT_EQ(ws->mem_objects, 1u);
  EXPECT_EQ(ws->mem_bytes, 16u);
}

TEST_F(cluster, dropped_handles_free_objects_while_the_driver_lives) {
  start();
  auto& d = connect();
  {
    auto x = d.put(0, small_tensor({1, 2}));
    ASSERT_TRUE(x);
    auto y = d.run(binary_graph("mul"), {*x, *x});
    ASSERT_TRUE(y);
    auto copy = (*y)[0]; // copies share the handle
    y->clear();
    ASSERT_EQ(mem_objects(0), 2u);
    auto st = d.stats();
    ASSERT_TRUE(st);
    EXPECT_EQ(st->live_handles, 2u);
  }
  EXPECT_TRUE(poll_until([&] { return mem_objects(0) == 0; }))
      << mem_objects(0) << " objects left on rank 0";
  auto st = d.stats();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->live_handles, 0u);
  EXPECT_EQ(st->releases, 2u);
  // The session itself is still usable.
  auto z = d.put(0, small_tensor({3}));
  ASSERT_TRUE(z) << describe(z.error());
}

TEST_F(cluster, closing_a_driver_frees_its_objects_but_not_others) {
  start();
  auto& keeper = connect();
  auto kept = keeper.put(1, small_tensor({4}));
  ASSERT_TRUE(kept);
  host_var outlives_its_driver;
  {
    auto other = nodes().connect();
    ASSERT_TRUE(other) << describe(other.error());
    auto gone = (*other)->put(1, small_tensor({9, 9}));
    ASSERT_TRUE(gone);
    auto gone2 = (*other)->run(unary_graph("identity"), {*gone});
    ASSERT_TRUE(gone2);
    outlives_its_driver = (*gone2)[0];
    EXPECT_EQ(mem_objects(1), 3u);
  }
  EXPECT_TRUE(poll_until([&] { return mem_objects(1) == 1; }));
  auto v = keeper.fetch(1, *kept);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), std::vector<int64_t>{4});
  // Dropping a handle of a closed driver is harmless.
  outlives_its_driver.reset();
  ASSERT_TRUE(keeper.fetch(1, *kept));
}

} // namespace

} // namespace
} // namespace cluster_test_file
