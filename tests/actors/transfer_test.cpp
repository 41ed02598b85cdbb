// Worker-to-worker transfers and shuffles on a loopback local_cluster.

#include <gtest/gtest.h>

#include <future>
#include <map>
#include <random>

#include "actors/simp.hpp"
#include "cluster_fixture.hpp"
#include "store/error.hpp"

using namespace objstore;
using namespace std::chrono_literals;

namespace {

constexpr size_t window = 4u << 20;

local_cluster_options transfer_options(size_t workers = 2) {
  local_cluster_options opts;
  opts.workers = workers;
  opts.policy = fetch_policy::allow;
  opts.data.local_shortcut = false;
  opts.data.chunk_size = 1u << 20;
  opts.data.window = window;
  return opts;
}

value_ptr big_tensor(size_t bytes) {
  auto n = static_cast<int64_t>(bytes / 8);
  auto [t, raw] = tensor::allocate(dtype::int64, {n});
  auto* p = reinterpret_cast<int64_t*>(raw);
  for (int64_t i = 0; i < n; ++i)
    p[i] = i * 2654435761 % 1000003;
  return make_value(std::move(t));
}

graph unary(const std::string& opcode) {
  graph_builder b;
  auto x = b.input();
  b.output(b.add(opcode, {x}));
  return b.build();
}

int64_t checksum_on(driver& d, const host_var& x, uint32_t rank) {
  auto sum = d.run(unary("checksum"), {x}, {rank});
  EXPECT_TRUE(sum) << describe(sum.error());
  auto v = d.fetch((*sum)[0], rank);
  EXPECT_TRUE(v) << describe(v.error());
  return v ? (*v)->as_tensor().values<int64_t>()[0] : 0;
}

template<class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

} // namespace

class transfer : public test::cluster_fixture {};

TEST_F(transfer, moves_256_mib_between_workers_without_the_driver) {
  start(transfer_options());
  auto& d = connect();
  auto x = d.put(0, big_tensor(256u << 20));
  ASSERT_TRUE(x) << describe(x.error());
  auto before = d.stats();
  ASSERT_TRUE(before);
  auto moved = d.transfer(*x, 0, 1);
  ASSERT_TRUE(moved) << describe(moved.error());
  auto after = d.stats();
  ASSERT_TRUE(after);
  EXPECT_LT(after->bytes_received - before->bytes_received, 64u << 10);
  EXPECT_LT(after->bytes_sent - before->bytes_sent, 64u << 10);
  EXPECT_TRUE(moved->has(1));
  EXPECT_FALSE(moved->has(0));
  EXPECT_EQ(checksum_on(d, *moved, 1), checksum_on(d, *x, 0));
  auto src = d.worker_stats_of(0);
  auto dst = d.worker_stats_of(1);
  ASSERT_TRUE(src && dst);
  EXPECT_EQ(src->transfers_out, 1u);
  EXPECT_EQ(dst->transfers_in, 1u);
  EXPECT_GE(dst->transfer_bytes_in, 256u << 20);
  EXPECT_GT(src->transfer_max_in_flight, 0u);
  EXPECT_LE(src->transfer_max_in_flight, window)
      << "bytes in flight must stay within the credit window";
  EXPECT_EQ(src->pinned_objects, 0u) << "source unpinned after the transfer";
}

TEST_F(transfer, control_messages_overtake_a_bulk_transfer) {
  start(transfer_options());
  auto& d = connect();
  auto x = d.put(0, big_tensor(256u << 20));
  ASSERT_TRUE(x);
  std::atomic<bool> done{false};
  auto pending = std::async(std::launch::async, [&] {
    auto r = d.transfer(*x, 0, 1);
    done = true;
    return r;
  });
  // Once the source pinned the object the bytes are streaming.
  ASSERT_TRUE(eventually([&] {
    auto st = d.worker_stats_of(0);
    return done || (st && st->pinned_objects > 0);
  }));
  auto st = d.worker_stats_of(1); // a small request to the receiver
  ASSERT_TRUE(st);
  bool answered_first = !done.load();
  auto moved = pending.get();
  ASSERT_TRUE(moved) << describe(moved.error());
  EXPECT_TRUE(answered_first)
      << "the receiver's stats reply must not wait for the transfer";
}

TEST_F(transfer, sender_killed_mid_transfer_leaves_no_partial_object) {
  start(transfer_options());
  auto& d = connect();
  auto x = d.put(0, big_tensor(512u << 20));
  ASSERT_TRUE(x);
  auto objects_before = nodes().store_stats_of(1).of(scheme::mem).objects;
  auto pending
      = std::async(std::launch::async, [&] { return d.transfer(*x, 0, 1); });
  ASSERT_TRUE(eventually([&] {
    return nodes().node(1).data->counters().bytes_in.load() > 0
           || nodes().node(0).data->counters().max_in_flight.load() > 0;
  }));
  nodes().kill(0);
  auto moved = pending.get();
  ASSERT_FALSE(moved);
  EXPECT_EQ(code_of(moved.error()), errc::object_lost)
      << describe(moved.error());
  EXPECT_TRUE(eventually([&] {
    return nodes().node(1).data->counters().failed_in.load() > 0
           || nodes().node(1).data->counters().transfers_in.load() > 0;
  }));
  EXPECT_EQ(nodes().node(1).data->counters().transfers_in.load(), 0u);
  EXPECT_EQ(nodes().store_stats_of(1).of(scheme::mem).objects, objects_before);
}

TEST_F(transfer, receiver_killed_mid_transfer_unpins_the_source) {
  start(transfer_options());
  auto& d = connect();
  auto x = d.put(0, big_tensor(512u << 20));
  ASSERT_TRUE(x);
  auto pending
      = std::async(std::launch::async, [&] { return d.transfer(*x, 0, 1); });
  ASSERT_TRUE(eventually([&] {
    return nodes().node(0).data->counters().max_in_flight.load() > 0;
  }));
  nodes().kill(1);
  auto moved = pending.get();
  ASSERT_FALSE(moved);
  auto code = code_of(moved.error());
  EXPECT_TRUE(code == errc::object_lost || code == errc::timeout)
      << describe(moved.error());
  EXPECT_TRUE(eventually([&] {
    auto st = d.worker_stats_of(0);
    return st && st->pinned_objects == 0;
  })) << "the source must unpin when the receiver dies";
  auto again = d.transfer(*x, 0, 1);
  ASSERT_FALSE(again);
  EXPECT_EQ(code_of(again.error()), errc::object_lost);
}

TEST_F(transfer, foreign_and_unknown_sources_are_refused) {
  start(transfer_options());
  auto& d = connect();
  host_var forged{2};
  forged.set(0, d.adopt(0, "mem://nobody-1"));
  auto r = d.transfer(forged, 0, 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(code_of(r.error()), errc::not_found);
  auto& other = connect();
  auto theirs = other.put(0, big_tensor(1024));
  ASSERT_TRUE(theirs);
  host_var stolen{2};
  stolen.set(0, d.adopt(0, *theirs->uri(0)));
  auto s = d.transfer(stolen, 0, 1);
  ASSERT_FALSE(s);
  EXPECT_EQ(code_of(s.error()), errc::permission_denied);
}

TEST_F(transfer, in_process_mode_copies_no_bytes) {
  auto opts = transfer_options();
  opts.data.local_shortcut = true;
  start(opts);
  auto& d = connect();
  auto x = d.put(0, big_tensor(8u << 20));
  ASSERT_TRUE(x);
  auto moved = d.transfer(*x, 0, 1);
  ASSERT_TRUE(moved) << describe(moved.error());
  auto dst = d.worker_stats_of(1);
  ASSERT_TRUE(dst);
  EXPECT_EQ(dst->transfers_in, 1u);
  EXPECT_EQ(dst->transfer_bytes_in, 0u) << "handed over by pointer";
  auto a = nodes().node(0).objects->get(*uri::parse(*x->uri(0)));
  auto b = nodes().node(1).objects->get(*uri::parse(*moved->uri(1)));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->get(), b->get()) << "same buffer on both nodes";
}

TEST_F(transfer, simp_shuffle_routes_values_between_parties) {
  start(transfer_options(3));
  auto& d = connect();
  host_var x{3};
  for (uint32_t r = 0; r < 3; ++r) {
    auto v = d.put(r, make_value(tensor::from<int64_t>(
                          {1}, std::vector<int64_t>{int64_t{r} * 10})));
    ASSERT_TRUE(v);
    x.set(r, v->part(r));
  }
  graph_builder b;
  auto in = b.input();
  // target 0 <- source 2, target 1 <- source 0, target 2 <- source 1
  b.output(b.add("shuffle", {in},
                 {make_attr("routing", std::vector<int64_t>{2, 0, 1})}));
  auto out = run_simp(d, b.build(), {x});
  ASSERT_TRUE(out) << describe(out.error());
  std::vector<int64_t> expected{20, 0, 10};
  for (uint32_t r = 0; r < 3; ++r) {
    auto v = d.fetch((*out)[0], r);
    ASSERT_TRUE(v) << describe(v.error());
    EXPECT_EQ((*v)->as_tensor().values<int64_t>()[0], expected[r]);
  }
}

TEST_F(transfer, shuffle_by_key_matches_a_single_node_computation) {
  start(transfer_options(3));
  auto& d = connect();
  constexpr int64_t rows = 1'000'000;
  std::map<int64_t, double> expected;
  host_var tables{3};
  std::mt19937_64 rng{42};
  for (uint32_t r = 0; r < 3; ++r) {
    auto n = rows / 3 + (r == 0 ? rows % 3 : 0);
    std::vector<int64_t> keys(n);
    std::vector<double> vals(n);
    for (int64_t i = 0; i < n; ++i) {
      keys[i] = static_cast<int64_t>(rng() % 1000);
      vals[i] = static_cast<double>(rng() % 100);
      expected[keys[i]] += vals[i];
    }
    auto t = table::make({{"k", tensor::from<int64_t>({n}, keys)},
                          {"v", tensor::from<double>({n}, vals)}});
    ASSERT_TRUE(t);
    auto v = d.put(r, make_value(std::move(*t)));
    ASSERT_TRUE(v);
    tables.set(r, v->part(r));
  }
  auto shuffled = d.shuffle_by_key(tables, "k");
  ASSERT_TRUE(shuffled) << describe(shuffled.error());
  graph_builder b;
  auto in = b.input();
  b.output(b.add("group_sum", {in},
                 {make_attr("key", "k"),
                  make_attr("values", std::vector<std::string>{"v"})}));
  auto sums = d.run(b.build(), {*shuffled});
  ASSERT_TRUE(sums) << describe(sums.error());
  std::map<int64_t, double> got;
  for (uint32_t r = 0; r < 3; ++r) {
    auto v = d.fetch((*sums)[0], r);
    ASSERT_TRUE(v) << describe(v.error());
    auto& t = (*v)->as_table();
    auto ks = t.find("k")->data.values<int64_t>();
    auto vs = t.find("v")->data.values<double>();
    for (size_t i = 0; i < ks.size(); ++i) {
      EXPECT_EQ(got.count(ks[i]), 0u)
          << "key " << ks[i] << " landed on more than one party";
      got[ks[i]] = vs[i];
    }
  }
  EXPECT_EQ(got, expected);
}
