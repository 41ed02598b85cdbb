// Large puts and fetches stream over the workers' data ports: only the
// token, the grant and the replies cross the actor connection.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <numeric>

#include <caf/scoped_actor.hpp>

#include "cluster_fixture.hpp"
#include "store/error.hpp"

namespace stream_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;
using namespace std::chrono_literals;

/// Control-plane bytes a streamed call may cost: a few small messages.
constexpr uint64_t control_bytes = 64u << 10;

local_cluster_options stream_options(fetch_policy policy
                                     = fetch_policy::allow) {
  local_cluster_options opts;
  opts.workers = 2;
  opts.policy = policy;
  return opts;
}

value_ptr iota_tensor(int64_t n) {
  auto [t, raw] = tensor::allocate(dtype::int64, {n});
  auto* p = reinterpret_cast<int64_t*>(raw);
  std::iota(p, p + n, int64_t{0});
  return make_value(std::move(t));
}

driver_stats stats_of(driver& d) {
  auto s = d.stats();
  EXPECT_TRUE(s) << describe(s.error());
  return s ? *s : driver_stats{};
}

class stream : public cluster_fixture {};

TEST_F(stream, large_puts_and_fetches_bypass_the_actor_connection) {
  start(stream_options());
  auto& d = connect();
  auto x = iota_tensor(1 << 20); // 8 MiB
  auto before = stats_of(d);
  auto h = d.put(0, x);
  ASSERT_TRUE(h) << describe(h.error());
  auto v = d.fetch(0, *h);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(**v, *x);
  auto after = stats_of(d);
  EXPECT_EQ(after.streamed_puts - before.streamed_puts, 1u);
  EXPECT_EQ(after.streamed_fetches - before.streamed_fetches, 1u);
  // Encoded bytes: the payload and a header of a few hundred bytes.
  EXPECT_GE(after.data_bytes_sent - before.data_bytes_sent, 8u << 20);
  EXPECT_LT(after.data_bytes_sent - before.data_bytes_sent, (8u << 20) + 4096);
  EXPECT_GE(after.data_bytes_received - before.data_bytes_received, 8u << 20);
  EXPECT_LT(after.data_bytes_received - before.data_bytes_received,
            (8u << 20) + 4096);
  EXPECT_LT(after.bytes_sent - before.bytes_sent, control_bytes);
  EXPECT_LT(after.bytes_received - before.bytes_received, control_bytes);
  auto& plane = nodes().node(0).data->counters();
  EXPECT_EQ(plane.transfers_in.load(), 1u);
  // Counted when the worker's serving thread has the driver's final ok,
  // which may be just after the driver returned.
  EXPECT_TRUE(poll_until([&] { return plane.pulls_served.load() == 1; }));
  // The streamed object is an ordinary object of the session.
  auto y = d.run(unary_graph("checksum"), {*h}, {0});
  ASSERT_TRUE(y) << describe(y.error());
  auto objs = d.objects(0);
  ASSERT_TRUE(objs);
  EXPECT_EQ(objs->size(), 2u);
}

TEST_F(stream, small_values_stay_on_the_actor_connection) {
  start(stream_options());
  auto& d = connect();
  auto h = d.put(0, iota_tensor(1000));
  ASSERT_TRUE(h) << describe(h.error());
  auto v = d.fetch(0, *h);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ((*v)->as_tensor().values<int64_t>()[999], 999);
  auto s = stats_of(d);
  EXPECT_EQ(s.streamed_puts, 0u);
  EXPECT_EQ(s.streamed_fetches, 0u);
  EXPECT_EQ(nodes().node(0).data->counters().pulls_served.load(), 0u);
}

TEST_F(stream, a_zero_threshold_never_streams) {
  start(stream_options());
  driver_actor_options opts;
  opts.stream_threshold = 0;
  auto& d = connect(opts);
  auto x = iota_tensor(1 << 19); // 4 MiB
  auto h = d.put(1, x);
  ASSERT_TRUE(h) << describe(h.error());
  auto v = d.fetch(1, *h);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(**v, *x);
  auto s = stats_of(d);
  EXPECT_EQ(s.streamed_puts + s.streamed_fetches, 0u);
  EXPECT_GT(s.bytes_sent, 4u << 20) << "the value went over BASP";
}

TEST_F(stream, the_fetch_policy_applies_before_any_grant) {
  start(stream_options(fetch_policy::revealed_only));
  auto& d = connect();
  auto h
      = d.run(unary_graph("identity"), {*d.put(0, iota_tensor(1 << 19))}, {0});
  ASSERT_TRUE(h) << describe(h.error());
  auto v = d.fetch(0, (*h)[0]);
  ASSERT_FALSE(v);
  EXPECT_EQ(code_of(v.error()), errc::permission_denied) << describe(v.error());
  EXPECT_EQ(stats_of(d).streamed_fetches, 0u);
  EXPECT_EQ(nodes().node(0).data->load().tokens, 0u) << "no grant was made";
  // What the session put itself stays fetchable, streamed.
  auto mine = d.put(0, iota_tensor(1 << 19));
  ASSERT_TRUE(mine);
  auto w = d.fetch(0, *mine);
  ASSERT_TRUE(w) << describe(w.error());
  EXPECT_EQ(stats_of(d).streamed_fetches, 1u);
}

TEST_F(stream, another_session_cannot_fetch_a_streamed_object) {
  start(stream_options());
  auto& owner = connect();
  auto& thief = connect();
  auto h = owner.put(0, iota_tensor(1 << 19));
  ASSERT_TRUE(h) << describe(h.error());
  // The thief names the owner's URI through a handle of its own.
  host_var forged{2};
  forged.set(0, thief.adopt(0, *h->uri(0)));
  auto stolen = thief.fetch(0, forged);
  ASSERT_FALSE(stolen);
  EXPECT_EQ(code_of(stolen.error()), errc::permission_denied)
      << describe(stolen.error());
  EXPECT_EQ(stats_of(thief).streamed_fetches, 0u);
  auto v = owner.fetch(0, *h);
  ASSERT_TRUE(v) << describe(v.error());
}

TEST_F(stream, a_large_put_to_an_fs_target_streams_and_writes_the_file) {
  start(stream_options());
  auto& d = connect();
  auto x = iota_tensor(1 << 19); // 4 MiB
  auto target = "fs://" + (nodes().fs_root(1) / "big" / "x.obj").string();
  auto h = d.put(1, x, target);
  ASSERT_TRUE(h) << describe(h.error());
  EXPECT_EQ(*h->uri(1), target);
  auto s = stats_of(d);
  EXPECT_EQ(s.streamed_puts, 1u);
  EXPECT_LT(s.bytes_sent, control_bytes);
  auto stored = nodes().node(1).objects->get(*uri::parse(target));
  ASSERT_TRUE(stored) << describe(stored.error());
  EXPECT_EQ(**stored, *x);
  auto v = d.fetch(1, *h);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(**v, *x);
  EXPECT_EQ(stats_of(d).streamed_fetches, 1u);
  // Outside the roots: refused before a byte streams, nothing written.
  auto outside = d.put(1, x, "fs:///etc/objstore-stream-test.obj");
  ASSERT_FALSE(outside);
  EXPECT_EQ(code_of(outside.error()), errc::permission_denied)
      << describe(outside.error());
  EXPECT_EQ(stats_of(d).streamed_puts, 1u);
}

TEST_F(stream, fetch_to_file_writes_from_the_socket_into_the_file) {
  start(stream_options());
  auto& d = connect();
  auto dir = nodes().fs_root(0).parent_path();
  std::string payload(6u << 20, 'q');
  for (size_t i = 0; i < payload.size(); i += 997)
    payload[i] = static_cast<char>(i % 127);
  auto h = d.put(0, make_value(blob::copy_of(payload)));
  ASSERT_TRUE(h) << describe(h.error());
  auto out = (dir / "fetched.bin").string();
  auto n = d.fetch_to_file(0, *h, out);
  ASSERT_TRUE(n) << describe(n.error());
  EXPECT_EQ(*n, payload.size());
  EXPECT_EQ(stats_of(d).streamed_fetches, 1u);
  std::ifstream in{out, std::ios::binary};
  std::string back{std::istreambuf_iterator<char>{in}, {}};
  EXPECT_TRUE(back == payload) << "the file differs";
  EXPECT_FALSE(std::filesystem::exists(out + ".part"));
  // A tensor has no file form: refused, and no file or part file stays.
  auto t = d.put(0, iota_tensor(1 << 19));
  ASSERT_TRUE(t);
  auto bad = d.fetch_to_file(0, *t, (dir / "tensor.bin").string());
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::invalid_argument)
      << describe(bad.error());
  EXPECT_FALSE(std::filesystem::exists(dir / "tensor.bin"));
  EXPECT_FALSE(std::filesystem::exists(dir / "tensor.bin.part"));
  // A small one comes in the reply and is written the same way.
  auto small = d.put(0, make_value(blob::copy_of("tiny")));
  ASSERT_TRUE(small);
  auto m = d.fetch_to_file(0, *small, (dir / "small.bin").string());
  ASSERT_TRUE(m) << describe(m.error());
  EXPECT_EQ(*m, 4u);
}

TEST_F(stream, a_put_token_cannot_launder_a_transfer_into_a_put) {
  start(stream_options(fetch_policy::revealed_only));
  auto& d = connect();
  auto in = d.put(0, small_tensor({1, 2, 3}));
  ASSERT_TRUE(in) << describe(in.error());
  auto secret = d.run(unary_graph("identity"), {*in}, {0}); // not revealed
  ASSERT_TRUE(secret) << describe(secret.error());
  // The driver asks rank 1 for a token of its own put, then has rank 0
  // push the secret under it: were it accepted, rank 1 would record the
  // secret as put by the session and let it be fetched.
  caf::scoped_actor self{nodes().client_system()};
  std::string token;
  self->request(nodes().node(1).worker, 5s, put_atom::value,
                d.sessions()[1].key, expect_atom::value)
      .receive([&](std::string& t) { token = std::move(t); },
               [&](caf::error& err) { FAIL() << describe(err); });
  ASSERT_EQ(token.size(), 32u);
  caf::error refused;
  self->request(d.handle(), 30s, push_atom::value, uint32_t{0},
                *(*secret)[0].uri(0), uint32_t{1}, token)
      .receive([&](std::string& uri) { FAIL() << "pushed as " << uri; },
               [&](caf::error& err) { refused = std::move(err); });
  EXPECT_EQ(code_of(refused), errc::permission_denied) << describe(refused);
  EXPECT_EQ(mem_objects(1), 0u) << "nothing stored on rank 1";
}

TEST_F(stream, a_dropped_streamed_put_frees_its_object) {
  start(stream_options());
  auto& d = connect();
  {
    auto h = d.put(1, iota_tensor(1 << 19));
    ASSERT_TRUE(h) << describe(h.error());
    EXPECT_EQ(mem_objects(1), 1u);
  }
  d.flush();
  EXPECT_TRUE(poll_until([&] { return mem_objects(1) == 0; }));
}

TEST_F(stream, limits_are_checked_before_a_byte_streams) {
  auto opts = stream_options();
  opts.memory_limit = 2u << 20;
  start(opts);
  auto& d = connect();
  auto h = d.put(0, iota_tensor(1 << 19)); // 4 MiB > 2 MiB
  ASSERT_FALSE(h);
  EXPECT_EQ(code_of(h.error()), errc::resource_exhausted)
      << describe(h.error());
  EXPECT_EQ(stats_of(d).streamed_puts, 0u);
  EXPECT_EQ(nodes().node(0).data->counters().bytes_in.load(), 0u);
}

TEST_F(stream, a_worker_killed_mid_stream_fails_the_call_typed) {
  start(stream_options());
  driver_actor_options opts;
  opts.timeout = 5s;
  auto& d = connect(opts);
  auto big = iota_tensor(int64_t{64} << 20); // 512 MiB: still streaming
  auto put = std::async(std::launch::async, [&] { return d.put(1, big); });
  // Kill once the stream is under way (its token was asked for).
  poll_until([&] { return nodes().node(1).data->load().incoming > 0; }, 10s);
  nodes().kill(1);
  ASSERT_EQ(put.wait_for(30s), std::future_status::ready);
  auto h = put.get();
  if (h)
    GTEST_SKIP() << "the put finished before the kill";
  auto code = code_of(h.error());
  EXPECT_TRUE(code == errc::object_lost || code == errc::timeout)
      << describe(h.error());
  // The driver still serves the other rank.
  expect_serving(d, 0);
}

/// MemAvailable from /proc/meminfo, in bytes (0 when unknown).
uint64_t memory_available() {
  std::ifstream in{"/proc/meminfo"};
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:")
      return kb * 1024;
  return 0;
}

TEST_F(stream, objects_over_4_gib_put_fetch_and_transfer) {
  // Two copies of 4.5 GiB are alive at the peak (never three).
  constexpr int64_t n = (int64_t{9} << 30) / 2 / 8; // 4.5 GiB of int64
  if (memory_available() < (uint64_t{12} << 30))
    GTEST_SKIP() << "needs 12 GiB of available memory";
  start(stream_options());
  // Making 4.5 GiB on a loaded 2-core machine (or under sanitizers) can
  // take longer than a task's default deadline.
  driver_actor_options opts;
  opts.timeout = std::chrono::minutes{5};
  auto& d = connect(opts);
  graph_builder b;
  b.output(b.add("iota", {}, {make_attr("n", n), make_attr("dtype", "int64")}));
  auto made = d.run(b.build(), {}, {0});
  ASSERT_TRUE(made) << describe(made.error());
  auto sum_on = [&](uint32_t rank, const host_var& x) -> int64_t {
    auto s = d.run(unary_graph("sum"), {x}, {rank});
    EXPECT_TRUE(s) << describe(s.error());
    auto v = s ? d.fetch(rank, (*s)[0]) : caf::expected<value_ptr>{nullptr};
    EXPECT_TRUE(v) << describe(v.error());
    return v && *v ? (*v)->as_tensor().values<int64_t>()[0] : -1;
  };
  const int64_t expected_sum = n * (n - 1) / 2;
  value_ptr v;
  {
    auto fetched = d.fetch(0, (*made)[0]);
    ASSERT_TRUE(fetched) << describe(fetched.error());
    v = std::move(*fetched);
  }
  made->clear(); // rank 0 frees its copy
  d.flush();
  ASSERT_TRUE(poll_until([&] { return mem_objects(0) == 0; }, 30s));
  ASSERT_EQ(v->size_bytes(), static_cast<size_t>(n) * 8);
  auto xs = v->as_tensor().values<int64_t>();
  for (int64_t i : {int64_t{0}, int64_t{1} << 29, n / 2, n - 1})
    ASSERT_EQ(xs[static_cast<size_t>(i)], i) << "element " << i;
  auto put = d.put(1, v);
  ASSERT_TRUE(put) << describe(put.error());
  v.reset(); // the driver frees its copy
  auto moved = d.transfer(*put, 1, 0);
  ASSERT_TRUE(moved) << describe(moved.error());
  put->reset();
  d.flush();
  EXPECT_EQ(sum_on(0, *moved), expected_sum);
  auto s = stats_of(d);
  EXPECT_EQ(s.streamed_puts, 1u);
  EXPECT_GE(s.streamed_fetches, 1u);
  EXPECT_LT(s.bytes_sent, control_bytes);
}

} // namespace
} // namespace stream_test_file
