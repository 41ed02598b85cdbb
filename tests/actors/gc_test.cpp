// Distributed reference counting: releases, pins, sessions (DESIGN.md §6).

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <future>
#include <thread>

#include "actors/local_cluster.hpp"
#include "store/error.hpp"

using namespace objstore;
using namespace std::chrono_literals;

namespace {

value_ptr vec(int64_t n, int64_t start = 0) {
  std::vector<int64_t> xs(n);
  for (int64_t i = 0; i < n; ++i)
    xs[i] = start + i;
  return make_value(tensor::from<int64_t>({n}, xs));
}

/// Polls `pred` until it holds or 10 s pass; returns its last value.
template<class Pred>
bool eventually(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// A graph with one input and `n` outputs, each its own identity op: `n`
/// distinct objects on the worker sharing one buffer.
graph fan_out(size_t n) {
  graph_builder b;
  auto x = b.input();
  for (size_t i = 0; i < n; ++i)
    b.output(b.add("identity", {x}));
  return b.build();
}

class gc : public ::testing::Test {
protected:
  void SetUp() override {
    local_cluster_options opts;
    opts.workers = 2;
    opts.policy = fetch_policy::allow;
    auto c = local_cluster::start(opts);
    ASSERT_TRUE(c) << describe(c.error());
    cluster = std::move(*c);
    drv = connect();
  }

  std::unique_ptr<driver> connect() {
    auto d = cluster->connect();
    EXPECT_TRUE(d) << describe(d.error());
    return d ? std::move(*d) : nullptr;
  }

  uint64_t mem_objects(uint32_t rank) {
    return cluster->store_stats_of(rank).of(scheme::mem).objects;
  }

  void TearDown() override {
    drv.reset();
    for (uint32_t r = 0; r < cluster->size(); ++r)
      EXPECT_TRUE(eventually([&] { return mem_objects(r) == 0; }))
          << "rank " << r << " leaked " << mem_objects(r) << " objects";
  }

  std::unique_ptr<local_cluster> cluster;
  std::unique_ptr<driver> drv;
};

} // namespace

TEST_F(gc, dropping_the_last_copy_frees_the_object) {
  auto x = drv->put(0, vec(1000));
  ASSERT_TRUE(x);
  auto copy = *x;
  EXPECT_EQ(mem_objects(0), 1u);
  x->reset();
  ASSERT_TRUE(drv->flush());
  // Another copy lives: the object must stay.
  auto v = drv->fetch(copy, 0);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(mem_objects(0), 1u);
  copy.reset();
  EXPECT_TRUE(eventually([&] { return mem_objects(0) == 0; }));
}

TEST_F(gc, input_dropped_while_task_is_queued_is_still_found) {
  auto x = drv->put(0, vec(100));
  ASSERT_TRUE(x);
  graph_builder b;
  auto in = b.input();
  b.output(b.add("sum", {b.add("sleep", {in}, {make_attr("ms", 300)})}));
  auto g = b.build();
  auto input = std::move(*x);
  auto pending = std::async(std::launch::async, [&, g, input]() mutable {
    return drv->run(g, {input});
  });
  // Drop every driver-side copy while the task is in flight.
  input.reset();
  ASSERT_TRUE(drv->flush());
  auto out = pending.get();
  ASSERT_TRUE(out) << describe(out.error());
  auto v = drv->fetch((*out)[0], 0);
  ASSERT_TRUE(v);
  EXPECT_EQ((*v)->as_tensor().values<int64_t>()[0], 99 * 100 / 2);
}

TEST_F(gc, fetch_in_flight_survives_a_release) {
  auto x = drv->put(0, vec(4 << 20));
  ASSERT_TRUE(x);
  auto uri = *x->uri(0);
  auto fetched = std::async(std::launch::async,
                            [&, y = *x] { return drv->fetch(y, 0); });
  x->reset();
  auto v = fetched.get();
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ((*v)->as_tensor().values<int64_t>()[(4 << 20) - 1], (4 << 20) - 1);
}

TEST_F(gc, unknown_and_double_releases_are_counted_not_fatal) {
  auto x = drv->put(1, vec(10));
  ASSERT_TRUE(x);
  caf::scoped_actor self{cluster->client_system()};
  auto uri = *x->uri(1);
  self->send(drv->handle(), release_atom::value, uint32_t{1},
             std::vector<std::string>{"mem://never-existed", "not a uri", uri});
  ASSERT_TRUE(drv->flush());
  // The extra release of `uri` freed it while `x` still holds it; `x`'s
  // own release is then a double release.
  x->reset();
  ASSERT_TRUE(drv->flush());
  EXPECT_TRUE(eventually([&] {
    auto st = drv->worker_stats_of(1);
    return st && st->unknown_releases >= 3;
  }));
  auto st = drv->worker_stats_of(1);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->mem_objects, 0u);
  auto y = drv->put(1, vec(10));
  EXPECT_TRUE(y) << "worker must keep serving";
}

TEST_F(gc, sessions_are_isolated_and_dropped_when_the_driver_dies) {
  auto second = connect();
  ASSERT_TRUE(second);
  auto mine = drv->put(0, vec(10));
  auto theirs = second->put(0, vec(20));
  ASSERT_TRUE(mine && theirs);
  EXPECT_EQ(mem_objects(0), 2u);
  // A session cannot release or fetch another session's object.
  caf::scoped_actor self{cluster->client_system()};
  self->send(drv->handle(), release_atom::value, uint32_t{0},
             std::vector<std::string>{*theirs->uri(0)});
  ASSERT_TRUE(drv->flush());
  auto stolen = drv->fetch(*theirs, 0);
  ASSERT_FALSE(stolen);
  EXPECT_EQ(code_of(stolen.error()), errc::permission_denied);
  EXPECT_EQ(mem_objects(0), 2u);
  // The first driver's actor dies without closing its session.
  caf::anon_send_exit(drv->handle(), caf::exit_reason::kill);
  EXPECT_TRUE(eventually([&] { return mem_objects(0) == 1; }));
  auto v = second->fetch(*theirs, 0);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ((*v)->as_tensor().values<int64_t>()[19], 19);
  mine->reset();
  drv.reset();
  theirs->reset();
  second.reset();
}

TEST_F(gc, closing_a_session_drops_its_holds) {
  auto x = drv->put(0, vec(10));
  ASSERT_TRUE(x);
  caf::scoped_actor self{cluster->client_system()};
  uint64_t dropped = 0;
  self->request(drv->handle(), 5s, close_atom::value)
      .receive([&](uint64_t n) { dropped = n; },
               [&](caf::error& err) { FAIL() << describe(err); });
  EXPECT_EQ(dropped, 1u);
  EXPECT_TRUE(eventually([&] { return mem_objects(0) == 0; }));
}

TEST_F(gc, fs_objects_are_not_collected) {
  auto target = "fs://" + (cluster->fs_root(0) / "keep.obj").string();
  auto x = drv->put(0, vec(10), target);
  ASSERT_TRUE(x) << describe(x.error());
  x->reset();
  drv.reset();
  auto st = cluster->store_stats_of(0);
  EXPECT_EQ(st.of(scheme::fs).objects, 1u);
  drv = connect();
  ASSERT_TRUE(drv);
  host_var again{2};
  again.set(0, std::make_shared<const remote_ref>(0, target, nullptr));
  EXPECT_TRUE(drv->erase(again, 0) == caf::error{});
  EXPECT_EQ(cluster->store_stats_of(0).of(scheme::fs).objects, 0u);
}

TEST_F(gc, object_listing_shows_holders_and_pins) {
  auto x = drv->put(1, vec(10));
  ASSERT_TRUE(x);
  auto listing = drv->objects(1);
  ASSERT_TRUE(listing) << describe(listing.error());
  ASSERT_EQ(listing->size(), 1u);
  auto& rec = listing->front();
  EXPECT_EQ(rec.uri, *x->uri(1));
  EXPECT_EQ(rec.size_bytes, 80u);
  ASSERT_EQ(rec.holders.size(), 1u);
  EXPECT_EQ(rec.holders.front().count, 1u);
  EXPECT_EQ(rec.pins, 0u);
  EXPECT_GE(rec.age_ms, 0);
}

TEST_F(gc, a_million_handles_cost_few_release_messages) {
  constexpr size_t per_task = 10'000;
  constexpr size_t tasks = 100;
  auto seed = drv->put(0, vec(1));
  ASSERT_TRUE(seed);
  auto g = fan_out(per_task);
  std::vector<std::vector<host_var>> handles;
  for (size_t i = 0; i < tasks; ++i) {
    auto out = drv->run(g, {*seed});
    ASSERT_TRUE(out) << describe(out.error());
    handles.push_back(std::move(*out));
  }
  seed->reset();
  ASSERT_TRUE(drv->flush());
  EXPECT_TRUE(eventually([&] { return mem_objects(0) == per_task * tasks; }));
  auto before = drv->stats();
  ASSERT_TRUE(before);
  handles.clear(); // drops 1,000,000 handles
  ASSERT_TRUE(drv->flush());
  EXPECT_TRUE(eventually([&] { return mem_objects(0) == 0; }));
  auto after = drv->stats();
  ASSERT_TRUE(after);
  auto msgs = after->release_msgs - before->release_msgs;
  EXPECT_GE(after->releases - before->releases, per_task * tasks);
  EXPECT_LE(msgs, 1000u) << "releases must be batched";
  std::cout << "1M handles released with " << msgs << " messages\n";
}

TEST(release_sink, a_burst_of_drops_wakes_the_driver_once_per_flush) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  release_sink sink{4};
  sink.attach(caf::actor_cast<caf::actor>(self));
  auto wakes = [&] {
    size_t n = 0;
    for (bool more = true; more;)
      self->receive([&](release_atom) { ++n; },
                    caf::after(std::chrono::milliseconds{50}) >>
                        [&] { more = false; });
    return n;
  };
  sink.push(0, "mem://a");
  sink.push(0, "mem://b");
  sink.push(1, "mem://c");
  EXPECT_EQ(wakes(), 1u) << "one wake for a burst";
  sink.push(1, "mem://d"); // the 4th queued release: a batch is full
  EXPECT_EQ(wakes(), 1u);
  // Drained while a flush of the driver's own is due: still armed.
  EXPECT_EQ(sink.drain(false).size(), 4u);
  sink.push(0, "mem://e");
  EXPECT_EQ(wakes(), 0u);
  // The flush disarms: the next drop wakes the driver again.
  EXPECT_EQ(sink.drain(true).size(), 1u);
  sink.push(0, "mem://f");
  EXPECT_EQ(wakes(), 1u);
  EXPECT_EQ(sink.drain().size(), 1u);
}

TEST_F(gc, handles_dropped_one_by_one_are_released_without_a_flush) {
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 50; ++i) {
      auto x = drv->put(i % 2, vec(4, i));
      ASSERT_TRUE(x) << describe(x.error());
      auto y = drv->run(fan_out(2), {*x});
      ASSERT_TRUE(y) << describe(y.error());
    } // each handle dropped right after its task
    for (uint32_t r = 0; r < 2; ++r)
      EXPECT_TRUE(eventually([&] { return mem_objects(r) == 0; }))
          << "round " << round << ": rank " << r << " holds " << mem_objects(r);
    // Idle long enough for the scheduled flush to pass and disarm the
    // sink; the next round's first drop must wake the driver again.
    std::this_thread::sleep_for(20ms);
  }
}
