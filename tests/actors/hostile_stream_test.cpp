// Hostile bytes below the actor layer of a live cluster: raw sockets
// writing corrupt chunk streams to a worker's data port, one peer trying to
// take every transfer slot, and crafted messages whose decoding would
// recurse or allocate without bound. The node answers each with a typed
// error (or drops the connection), stores nothing, and afterwards still
// serves transfers; the objects stored before are intact.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/cluster_fixture.hpp"
#include "actors/raw_data_connection.hpp"
#include "store/codec.hpp"

namespace hostile_stream_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;

namespace {

constexpr uint64_t object_limit = 1u << 20;

class hostile_stream : public cluster_fixture {
protected:
  void SetUp() override {
    local_cluster_options opts;
    opts.workers = 2;
    opts.max_object_size = object_limit;
    opts.data.io_timeout = std::chrono::seconds{10};
    start(opts);
    drv_ = &connect();
    auto x = drv_->put(0, value_);
    ASSERT_TRUE(x) << describe(x.error());
    kept_ = *x;
    encoding_ = encode(*value_);
  }

  uint16_t port() { return nodes().node(1).data->port(); }

  std::string token() {
    auto t = nodes().node(1).data->expect(999, std::chrono::steady_clock::now()
                                                   + std::chrono::minutes{1});
    EXPECT_TRUE(t) << describe(t.error());
    return t ? *t : std::string(32, '0');
  }

  /// The kept object is intact and moves to rank 1 like any other.
  void expect_serving() {
    auto moved = drv_->transfer(kept_, 0, 1);
    ASSERT_TRUE(moved) << describe(moved.error());
    auto v = drv_->fetch(1, *moved);
    ASSERT_TRUE(v) << describe(v.error());
    EXPECT_EQ(**v, *value_);
    auto w = drv_->fetch(0, kept_);
    ASSERT_TRUE(w) << describe(w.error());
    EXPECT_EQ(**w, *value_);
  }

  value_ptr value_ = make_value(tensor::from<int64_t>({4}, {4, 3, 2, 1}));
  std::vector<std::byte> encoding_;
  host_var kept_;
  driver* drv_ = nullptr;
};

TEST_F(hostile_stream, corrupt_chunk_streams_are_refused) {
  struct attack {
    const char* name;
    errc expected; // none: the node may just close the connection
    std::function<void(raw_connection&)> send;
  };
  auto n = encoding_.size();
  auto flipped = encoding_;
  flipped[n / 2] ^= std::byte{0x40};
  std::vector<attack> attacks{
      {"not a hello", errc::corrupt_data,
       [](raw_connection& c) {
         std::string http(64, ' ');
         http.replace(0, 16, "GET / HTTP/1.1\r\n");
         c.write(http.data(), http.size());
       }},
      {"unknown token", errc::permission_denied,
       [&](raw_connection& c) {
         c.hello(std::string(32, 'a'), n);
       }},
      {"out-of-order chunk", errc::corrupt_data,
       [&](raw_connection& c) {
         c.hello(token(), n);
         c.frame(1, 8, 16, encoding_.data() + 16, 8);
       }},
      {"zero-length chunk", errc::corrupt_data,
       [&](raw_connection& c) {
         c.hello(token(), n);
         c.frame(1, 0, 0);
       }},
      {"wrong frame type", errc::corrupt_data,
       [&](raw_connection& c) {
         c.hello(token(), n);
         c.frame(3, 8, 0, encoding_.data(), 8);
       }},
      {"4 GiB chunk length", errc::corrupt_data,
       [&](raw_connection& c) {
         c.hello(token(), n);
         c.frame(1, UINT32_MAX, 0);
       }},
      {"flipped payload bit", errc::corrupt_data,
       [&](raw_connection& c) {
         c.hello(token(), n);
         c.chunks(flipped);
       }},
      {"fewer bytes announced than sent", errc::corrupt_data,
       [&](raw_connection& c) {
         c.hello(token(), n - 8);
         c.chunks(encoding_);
       }},
      {"above the object size limit", errc::resource_exhausted,
       [&](raw_connection& c) {
         c.hello(token(), object_limit * 2);
       }},
      {"truncated, then closed", errc::none,
       [&](raw_connection& c) {
         c.hello(token(), n);
         c.frame(1, 8, 0, encoding_.data(), 8);
         c.close_write();
       }},
  };
  for (auto& a : attacks) {
    SCOPED_TRACE(a.name);
    // Rank 1 holds nothing once the copies of earlier checks are released.
    ASSERT_TRUE(drv_->flush());
    ASSERT_TRUE(poll_until([&] { return mem_objects(1) == 0; }));
    raw_connection c{port()};
    ASSERT_TRUE(c.connected());
    a.send(c);
    expect_refused(c.read_reply(), a.expected);
    EXPECT_EQ(mem_objects(1), 0u) << "a corrupt stream was stored";
    expect_serving();
  }
  auto ws = drv_->worker_stats_of(1);
  ASSERT_TRUE(ws);
  EXPECT_GE(ws->transfer_rejected_chunks, 1u);
}

TEST_F(hostile_stream, tokens_are_one_shot) {
  auto t = token();
  {
    raw_connection c{port()};
    c.hello(t, encoding_.size());
    c.frame(1, 0, 0);
    EXPECT_EQ(c.read_reply().type, 4u);
  }
  raw_connection replay{port()};
  replay.hello(t, encoding_.size());
  replay.chunks(encoding_);
  auto r = replay.read_reply();
  ASSERT_EQ(r.type, 4u);
  EXPECT_EQ(static_cast<errc>(r.arg), errc::permission_denied) << r.body;
  expect_serving();
}

TEST_F(hostile_stream, one_peer_cannot_take_every_transfer_slot) {
  auto& target = *nodes().node(1).data;
  auto limit = target.options().max_incoming_per_peer;
  ASSERT_GT(limit, 0u);
  ASSERT_LT(limit, target.options().max_incoming);
  // Only a valid hello takes a slot (idle sockets do not): these senders
  // hold real tokens and stall after their hello.
  std::vector<std::unique_ptr<raw_connection>> stalled;
  for (size_t i = 0; i < limit; ++i) {
    stalled.push_back(std::make_unique<raw_connection>(port()));
    ASSERT_TRUE(stalled.back()->connected());
    stalled.back()->hello(token(), encoding_.size());
  }
  ASSERT_TRUE(poll_until([&] { return target.load().incoming == limit; }));
  raw_connection extra{port()};
  extra.hello(token(), encoding_.size());
  auto r = extra.read_reply();
  ASSERT_EQ(r.type, 4u);
  EXPECT_EQ(static_cast<errc>(r.arg), errc::resource_exhausted) << r.body;
  EXPECT_NE(r.body.find("objstore.max-transfers-per-peer"), std::string::npos)
      << r.body;
  stalled.clear(); // the node serves again once the slots are given back
  EXPECT_TRUE(poll_until([&] { return bool{drv_->transfer(kept_, 0, 1)}; }));
  expect_serving();
}

TEST_F(hostile_stream, slow_peers_cannot_block_transfers) {
  // Eight connections from the driver's address trickle a hello, one byte
  // every 200 ms; none of them holds an inbound slot meanwhile.
  std::vector<std::unique_ptr<raw_connection>> slow;
  for (int i = 0; i < 8; ++i) {
    slow.push_back(std::make_unique<raw_connection>(port()));
    ASSERT_TRUE(slow.back()->connected());
  }
  auto hello = std::string{"OSXF"} + std::string(44, '\1');
  std::atomic<bool> trickling{true};
  std::thread trickle{[&] {
    for (size_t at = 0; at < hello.size() && trickling; ++at) {
      for (auto& c : slow)
        c->write(&hello[at], 1);
      std::this_thread::sleep_for(std::chrono::milliseconds{200});
    }
  }};
  auto start = std::chrono::steady_clock::now();
  expect_serving();
  auto took = elapsed_ms(start);
  trickling = false;
  trickle.join();
  EXPECT_LT(took, 2000) << "a transfer waited for slow peers";
  std::cout << "[ measure  ] transfer next to 8 slow peers: " << took
            << " ms\n";
}

TEST_F(hostile_stream, idle_connections_cannot_block_transfers) {
  auto& target = *nodes().node(1).data;
  std::vector<std::unique_ptr<raw_connection>> idle;
  for (int i = 0; i < 1000; ++i) {
    idle.push_back(std::make_unique<raw_connection>(port()));
    ASSERT_TRUE(idle.back()->connected());
  }
  auto bound = target.options().max_pending_connections;
  ASSERT_TRUE(poll_until(
      [&] { return target.counters().evicted.load() >= 1000 - bound; }));
  EXPECT_EQ(target.load().incoming, 0u);
  auto start = std::chrono::steady_clock::now();
  expect_serving();
  std::cout << "[ measure  ] transfer next to 1000 idle connections: "
            << elapsed_ms(start) << " ms\n";
}

TEST_F(hostile_stream, a_session_cannot_hoard_transfer_tokens) {
  caf::scoped_actor self{nodes().client_system()};
  auto expect = [&] {
    caf::error result;
    self->request(drv_->handle(), std::chrono::seconds{10}, expect_atom::value,
                  uint32_t{1})
        .receive([](std::string&) {},
                 [&](caf::error& err) { result = std::move(err); });
    return result;
  };
  auto cap = nodes().node(1).data->options().max_pending_tokens;
  for (size_t i = 0; i < cap; ++i)
    ASSERT_FALSE(expect()) << i;
  auto err = expect();
  EXPECT_EQ(code_of(err), errc::resource_exhausted) << describe(err);
  // Another session is not affected.
  auto other = nodes().connect();
  ASSERT_TRUE(other) << describe(other.error());
  auto x = (*other)->put(0, value_);
  ASSERT_TRUE(x);
  EXPECT_TRUE((*other)->transfer(*x, 0, 1));
}

/// Bytes of a graph whose regions nest `depth` levels, built without
/// recursion (a recursive serializer would overflow first).
std::vector<char> nested_graph_bytes(size_t depth) {
  auto save = [](graph g) {
    std::vector<char> buf;
    caf::binary_serializer sink{static_cast<caf::execution_unit*>(nullptr),
                                buf};
    EXPECT_FALSE(sink(g));
    return buf;
  };
  graph leaf;
  graph one;
  one.ops.push_back(op{"identity", {}, {}, {}, {leaf}});
  auto inner = save(leaf);
  auto outer = save(one);
  // outer == prefix + inner + suffix, the suffix being the outer graph's
  // (empty) output list: one count byte.
  constexpr size_t suffix_size = 1;
  auto split = outer.size() - inner.size() - suffix_size;
  EXPECT_TRUE(std::equal(inner.begin(), inner.end(),
                         outer.begin() + static_cast<long>(split)));
  std::vector<char> prefix(outer.begin(),
                           outer.begin() + static_cast<long>(split));
  std::vector<char> suffix(outer.end() - static_cast<long>(suffix_size),
                           outer.end());
  std::vector<char> result;
  for (size_t i = 0; i < depth; ++i)
    result.insert(result.end(), prefix.begin(), prefix.end());
  result.insert(result.end(), inner.begin(), inner.end());
  for (size_t i = 0; i < depth; ++i)
    result.insert(result.end(), suffix.begin(), suffix.end());
  return result;
}

TEST(hostile_messages, deeply_nested_graphs_fail_to_decode_without_recursing) {
  // Two levels decode fine (the byte construction is right) ...
  auto ok = nested_graph_bytes(2);
  graph g;
  caf::binary_deserializer source{static_cast<caf::execution_unit*>(nullptr),
                                  ok.data(), ok.size()};
  ASSERT_FALSE(source(g));
  ASSERT_EQ(g.ops.size(), 1u);
  ASSERT_EQ(g.ops[0].regions.size(), 1u);
  // ... a million levels (7 MB) would overflow the network thread's stack.
  auto bomb = nested_graph_bytes(1'000'000);
  caf::binary_deserializer bomb_source{
      static_cast<caf::execution_unit*>(nullptr), bomb.data(), bomb.size()};
  graph deep;
  auto err = bomb_source(deep);
  ASSERT_TRUE(err);
  EXPECT_EQ(code_of(err), errc::resource_exhausted) << describe(err);
}

TEST(hostile_messages, huge_counts_fail_without_allocating) {
  std::vector<char> buf;
  caf::binary_serializer sink{static_cast<caf::execution_unit*>(nullptr), buf};
  task_request req;
  req.inputs = {"mem://x"};
  ASSERT_FALSE(sink(req));
  // The request ends with the inputs: count (1 byte), the URI's length (1
  // byte) and its 7 characters. Patch in a count, then a length, of ~2^60.
  auto huge = std::vector<char>(8, static_cast<char>(0xFF));
  huge.push_back(0x0F);
  for (size_t at : {buf.size() - 9, buf.size() - 8}) {
    std::vector<char> bad(buf.begin(), buf.begin() + static_cast<long>(at));
    bad.insert(bad.end(), huge.begin(), huge.end());
    bad.insert(bad.end(), buf.begin() + static_cast<long>(at) + 1, buf.end());
    task_request out;
    caf::binary_deserializer source{static_cast<caf::execution_unit*>(nullptr),
                                    bad.data(), bad.size()};
    EXPECT_TRUE(source(out)) << "decoded a request claiming 2^60 elements";
  }
}

} // namespace

} // namespace
} // namespace hostile_stream_test_file
