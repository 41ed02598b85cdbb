// The worker-to-worker data plane on its own: two endpoints in one process
// talking over loopback TCP (the in-process shortcut off unless tested).

#include "actors/dataplane/data_plane.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <numeric>

#include "store/codec.hpp"
#include "store/error.hpp"

namespace data_plane_test_file {
namespace {

using namespace objstore;
using namespace std::chrono_literals;

namespace {

struct receiver {
  std::mutex mtx;
  std::vector<value_ptr> stored;
  std::vector<uint64_t> sessions;

  adopt_fn fn() {
    return [this](const transfer_ticket& t,
                  value_ptr x) -> caf::expected<std::string> {
      std::lock_guard guard{mtx};
      stored.push_back(std::move(x));
      sessions.push_back(t.session);
      return "mem://received-" + std::to_string(stored.size());
    };
  }

  size_t count() {
    std::lock_guard guard{mtx};
    return stored.size();
  }
};

data_plane_options tcp_options() {
  data_plane_options opts;
  opts.local_shortcut = false;
  opts.chunk_size = 256u << 10;
  opts.window = 1u << 20;
  opts.io_timeout = 5s;
  return opts;
}

value_ptr iota_tensor(int64_t n) {
  auto [t, raw] = tensor::allocate(dtype::int64, {n});
  auto* p = reinterpret_cast<int64_t*>(raw);
  std::iota(p, p + n, int64_t{0});
  return make_value(std::move(t));
}

auto later() {
  return std::chrono::steady_clock::now() + 30s;
}

/// A token of `target` for `session` (a test setup step: it must work).
std::string token_for(data_plane& target, uint64_t session,
                      std::chrono::steady_clock::time_point deadline) {
  auto token = target.expect(session, deadline);
  EXPECT_TRUE(token) << describe(token.error());
  return token ? *token : std::string(32, '0');
}

/// A raw client socket connected to `port`.
int dial(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

void send_hello(int fd, const std::string& token, uint64_t total) {
  char buf[48] = {'O', 'S', 'X', 'F', 1, 0, 0, 0};
  std::memcpy(buf + 8, token.data(), 32);
  std::memcpy(buf + 40, &total, 8);
  ASSERT_EQ(::send(fd, buf, sizeof(buf), MSG_NOSIGNAL), 48);
}

void send_chunk(int fd, uint64_t offset, const std::byte* data, uint32_t n) {
  uint32_t hdr[2] = {1, n};
  char buf[16];
  std::memcpy(buf, hdr, 8);
  std::memcpy(buf + 8, &offset, 8);
  ::send(fd, buf, 16, MSG_NOSIGNAL);
  ::send(fd, data, n, MSG_NOSIGNAL);
}

/// Waits until the target has finished with the connection (EOF).
void drain(int fd) {
  char buf[4096];
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  while (::recv(fd, buf, sizeof(buf), 0) > 0) {
    // skip credits and the failure frame
  }
}

} // namespace

TEST(data_plane, moves_a_large_tensor_with_bounded_bytes_in_flight) {
  receiver sink;
  auto target = data_plane::start(tcp_options(), sink.fn());
  auto source = data_plane::start(tcp_options(), receiver{}.fn());
  ASSERT_TRUE(target && source);
  auto x = iota_tensor(8 << 20); // 64 MiB
  auto token = token_for(**target, 42, later());
  auto uri = (*source)->send("127.0.0.1", (*target)->port(), token, x);
  ASSERT_TRUE(uri) << describe(uri.error());
  EXPECT_EQ(*uri, "mem://received-1");
  ASSERT_EQ(sink.count(), 1u);
  EXPECT_EQ(*sink.stored[0], *x);
  EXPECT_NE(sink.stored[0]->as_tensor().raw(), x->as_tensor().raw());
  EXPECT_EQ(sink.sessions[0], 42u);
  auto& out = (*source)->counters();
  EXPECT_EQ(out.transfers_out.load(), 1u);
  EXPECT_GT(out.bytes_out.load(), 64u << 20);
  EXPECT_GT(out.max_in_flight.load(), 0u);
  EXPECT_LE(out.max_in_flight.load(), tcp_options().window)
      << "credit window must bound the bytes in flight";
  EXPECT_EQ((*target)->counters().transfers_in.load(), 1u);
}

TEST(data_plane, tokens_are_one_shot) {
  receiver sink;
  auto target = data_plane::start(tcp_options(), sink.fn());
  auto source = data_plane::start(tcp_options(), receiver{}.fn());
  ASSERT_TRUE(target && source);
  auto token = token_for(**target, 1, later());
  auto x = iota_tensor(10);
  ASSERT_TRUE((*source)->send("127.0.0.1", (*target)->port(), token, x));
  auto again = (*source)->send("127.0.0.1", (*target)->port(), token, x);
  ASSERT_FALSE(again);
  EXPECT_EQ(code_of(again.error()), errc::permission_denied);
  auto forged = (*source)->send("127.0.0.1", (*target)->port(),
                                std::string(32, 'a'), x);
  ASSERT_FALSE(forged);
  EXPECT_EQ(code_of(forged.error()), errc::permission_denied);
  EXPECT_EQ(sink.count(), 1u);
}

TEST(data_plane, expired_tokens_are_refused) {
  receiver sink;
  auto target = data_plane::start(tcp_options(), sink.fn());
  auto source = data_plane::start(tcp_options(), receiver{}.fn());
  ASSERT_TRUE(target && source);
  auto token = token_for(**target, 1, std::chrono::steady_clock::now() - 1s);
  auto r
      = (*source)->send("127.0.0.1", (*target)->port(), token, iota_tensor(4));
  ASSERT_FALSE(r);
  // Refused by the target for the token's age: not as unknown or used
  // (permission_denied), not as a broken connection (object_lost).
  EXPECT_EQ(code_of(r.error()), errc::timeout) << describe(r.error());
  auto why = message_of(r.error());
  EXPECT_NE(why.find("target refused"), std::string::npos) << why;
  EXPECT_NE(why.find("token expired"), std::string::npos) << why;
  EXPECT_NE(why.find("127.0.0.1:" + std::to_string((*target)->port())),
            std::string::npos)
      << why;
  EXPECT_EQ(sink.count(), 0u);
  EXPECT_EQ((*target)->counters().failed_in.load(), 1u);
  EXPECT_EQ((*target)->counters().transfers_in.load(), 0u);
  // The same transfer under a live token goes through.
  auto live = (*target)->expect(1, later());
  ASSERT_TRUE(live) << describe(live.error());
  auto fresh
      = (*source)->send("127.0.0.1", (*target)->port(), *live, iota_tensor(4));
  ASSERT_TRUE(fresh) << describe(fresh.error());
  EXPECT_EQ(sink.count(), 1u);
}

TEST(data_plane, unreachable_target_is_object_lost) {
  auto source = data_plane::start(tcp_options(), receiver{}.fn());
  ASSERT_TRUE(source);
  uint16_t dead_port;
  {
    auto gone = data_plane::start(tcp_options(), receiver{}.fn());
    ASSERT_TRUE(gone);
    dead_port = (*gone)->port();
  }
  auto r = (*source)->send("127.0.0.1", dead_port, std::string(32, 'b'),
                           iota_tensor(4));
  ASSERT_FALSE(r);
  EXPECT_EQ(code_of(r.error()), errc::object_lost);
  EXPECT_EQ((*source)->counters().failed_out.load(), 1u);
}

TEST(data_plane, out_of_order_and_duplicate_chunks_are_rejected) {
  receiver sink;
  auto target = data_plane::start(tcp_options(), sink.fn());
  ASSERT_TRUE(target);
  auto bytes = encode(*iota_tensor(1000));
  for (uint64_t bad_offset : {uint64_t{100}, uint64_t{0}}) {
    auto token = token_for(**target, 7, later());
    int fd = dial((*target)->port());
    send_hello(fd, token, bytes.size());
    send_chunk(fd, 0, bytes.data(), 100);
    // Skips ahead (out of order) or repeats offset 0 (duplicate).
    auto offset = bad_offset == 0 ? 0 : 200;
    send_chunk(fd, offset, bytes.data() + offset, 100);
    drain(fd);
    ::close(fd);
  }
  EXPECT_EQ(sink.count(), 0u) << "a partial object must never be stored";
  EXPECT_EQ((*target)->counters().rejected_chunks.load(), 2u);
}

TEST(data_plane, sender_dying_mid_stream_leaves_nothing_behind) {
  receiver sink;
  auto target = data_plane::start(tcp_options(), sink.fn());
  ASSERT_TRUE(target);
  auto bytes = encode(*iota_tensor(100000));
  auto token = token_for(**target, 7, later());
  int fd = dial((*target)->port());
  send_hello(fd, token, bytes.size());
  send_chunk(fd, 0, bytes.data(), 4096);
  ::close(fd); // the sender is gone
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while ((*target)->counters().failed_in.load() == 0
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ((*target)->counters().failed_in.load(), 1u);
  EXPECT_EQ(sink.count(), 0u);
}

TEST(data_plane, receiver_dying_mid_stream_fails_the_sender) {
  // A fake target that reads the hello and a little data, then closes.
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
            0);
  ::listen(listener, 1);
  socklen_t len = sizeof(addr);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::thread fake{[listener] {
    int fd = ::accept(listener, nullptr, nullptr);
    char buf[65536];
    ::recv(fd, buf, sizeof(buf), 0);
    ::close(fd);
  }};
  auto source = data_plane::start(tcp_options(), receiver{}.fn());
  ASSERT_TRUE(source);
  auto r = (*source)->send("127.0.0.1", ntohs(addr.sin_port),
                           std::string(32, 'c'), iota_tensor(4 << 20));
  fake.join();
  ::close(listener);
  ASSERT_FALSE(r);
  EXPECT_EQ(code_of(r.error()), errc::object_lost) << describe(r.error());
}

TEST(data_plane, oversize_objects_are_refused) {
  receiver sink;
  auto opts = tcp_options();
  opts.max_object_size = 1000;
  auto target = data_plane::start(opts, sink.fn());
  auto source = data_plane::start(tcp_options(), receiver{}.fn());
  ASSERT_TRUE(target && source);
  auto token = token_for(**target, 1, later());
  auto r = (*source)->send("127.0.0.1", (*target)->port(), token,
                           iota_tensor(1 << 20));
  ASSERT_FALSE(r);
  EXPECT_EQ(code_of(r.error()), errc::resource_exhausted)
      << describe(r.error());
  EXPECT_EQ(sink.count(), 0u);
}

TEST(data_plane, in_process_shortcut_copies_no_bytes) {
  receiver sink;
  data_plane_options opts;
  opts.local_shortcut = true;
  auto target = data_plane::start(opts, sink.fn());
  auto source = data_plane::start(opts, receiver{}.fn());
  ASSERT_TRUE(target && source);
  auto x = iota_tensor(1 << 20);
  auto token = token_for(**target, 3, later());
  auto r = (*source)->send("127.0.0.1", (*target)->port(), token, x);
  ASSERT_TRUE(r) << describe(r.error());
  ASSERT_EQ(sink.count(), 1u);
  EXPECT_EQ(sink.stored[0].get(), x.get()) << "same object, no copy";
  EXPECT_EQ((*target)->counters().local_handoffs.load(), 1u);
  EXPECT_EQ((*source)->counters().bytes_out.load(), 0u);
}

TEST(data_plane, a_transfer_over_the_memory_left_is_refused_at_its_hello) {
  receiver sink;
  auto opts = tcp_options();
  std::atomic<uint64_t> left{64u << 10};
  opts.memory_left = [&] {
    return left.load();
  };
  auto target = data_plane::start(opts, sink.fn());
  auto source = data_plane::start(tcp_options(), receiver{}.fn());
  ASSERT_TRUE(target && source);
  auto x = iota_tensor(1 << 20); // 8 MiB, more than the socket buffers
  auto r = (*source)->send("127.0.0.1", (*target)->port(),
                           token_for(**target, 1, later()), x);
  ASSERT_FALSE(r);
  EXPECT_EQ(code_of(r.error()), errc::resource_exhausted)
      << describe(r.error());
  auto why = message_of(r.error());
  EXPECT_NE(why.find("target refused"), std::string::npos) << why;
  EXPECT_NE(why.find("transfer of " + std::to_string(encode(*x).size())
                     + " bytes exceeds the 65536 bytes"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("objstore.memory-limit"), std::string::npos) << why;
  auto& in = (*target)->counters();
  EXPECT_EQ(in.refused_memory.load(), 1u);
  EXPECT_EQ(in.failed_in.load(), 1u);
  EXPECT_EQ(sink.count(), 0u);
  EXPECT_EQ((*target)->load().incoming, 0u);
  // Once the node has room, the same value goes through.
  left = 64u << 20;
  auto ok = (*source)->send("127.0.0.1", (*target)->port(),
                            token_for(**target, 1, later()), x);
  ASSERT_TRUE(ok) << describe(ok.error());
  EXPECT_EQ(sink.count(), 1u);
  EXPECT_EQ((*target)->receiving_bytes(), 0u);
}

TEST(data_plane, bytes_being_received_count_against_the_memory_left) {
  receiver sink;
  auto opts = tcp_options();
  opts.memory_left = [] {
    return uint64_t{1} << 20;
  };
  auto target = data_plane::start(opts, sink.fn());
  auto source = data_plane::start(tcp_options(), receiver{}.fn());
  ASSERT_TRUE(target && source);
  // A slow sender announces 768 KiB and sends only part of it.
  auto bytes = encode(*iota_tensor(96 << 10));
  ASSERT_LT(bytes.size(), 1u << 20);
  int fd = dial((*target)->port());
  send_hello(fd, token_for(**target, 7, later()), bytes.size());
  send_chunk(fd, 0, bytes.data(), 4096);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while ((*target)->receiving_bytes() == 0
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ((*target)->receiving_bytes(), bytes.size());
  EXPECT_EQ((*target)->load().receiving_bytes, bytes.size());
  // What is left besides it is too little for another 512 KiB.
  auto r
      = (*source)->send("127.0.0.1", (*target)->port(),
                        token_for(**target, 8, later()), iota_tensor(64 << 10));
  ASSERT_FALSE(r);
  EXPECT_EQ(code_of(r.error()), errc::resource_exhausted)
      << describe(r.error());
  auto why = message_of(r.error());
  EXPECT_NE(why.find(std::to_string(bytes.size())
                     + " of them for transfers being received"),
            std::string::npos)
      << why;
  // The slow sender gives up: its bytes are free again.
  ::close(fd);
  deadline = std::chrono::steady_clock::now() + 5s;
  while ((*target)->receiving_bytes() != 0
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ((*target)->receiving_bytes(), 0u);
  auto ok
      = (*source)->send("127.0.0.1", (*target)->port(),
                        token_for(**target, 8, later()), iota_tensor(64 << 10));
  ASSERT_TRUE(ok) << describe(ok.error());
  EXPECT_EQ(sink.count(), 1u);
}

TEST(data_plane, in_process_handoff_respects_the_memory_left) {
  receiver sink;
  data_plane_options opts;
  opts.local_shortcut = true;
  auto target_opts = opts;
  target_opts.memory_left = [] {
    return uint64_t{1000};
  };
  auto target = data_plane::start(target_opts, sink.fn());
  auto source = data_plane::start(opts, receiver{}.fn());
  ASSERT_TRUE(target && source);
  auto r = (*source)->send("127.0.0.1", (*target)->port(),
                           token_for(**target, 3, later()), iota_tensor(1000));
  ASSERT_FALSE(r);
  EXPECT_EQ(code_of(r.error()), errc::resource_exhausted)
      << describe(r.error());
  EXPECT_NE(message_of(r.error()).find("transfer of 8000 bytes exceeds the "
                                       "1000 bytes"),
            std::string::npos)
      << describe(r.error());
  EXPECT_EQ(sink.count(), 0u);
  EXPECT_EQ((*target)->counters().refused_memory.load(), 1u);
  auto ok = (*source)->send("127.0.0.1", (*target)->port(),
                            token_for(**target, 3, later()), iota_tensor(100));
  ASSERT_TRUE(ok) << describe(ok.error());
}

} // namespace
} // namespace data_plane_test_file
