// Pulls on the data plane: a node offers a value under a one-use grant and
// a client-only plane (a driver's) pulls it over loopback TCP.

#include "actors/dataplane/data_plane.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <mutex>
#include <numeric>
#include <thread>

#include "store/codec.hpp"
#include "store/error.hpp"

namespace data_plane_pull_test_file {
namespace {

using namespace objstore;
using namespace std::chrono_literals;

adopt_fn refuse_all() {
  return [](const transfer_ticket&, value_ptr) -> caf::expected<std::string> {
    return make_error(errc::unsupported, "no pushes in this test");
  };
}

data_plane_options tcp_options() {
  data_plane_options opts;
  opts.local_shortcut = false;
  opts.chunk_size = 256u << 10;
  opts.window = 1u << 20;
  opts.io_timeout = 5s;
  return opts;
}

data_plane_options client_options() {
  auto opts = tcp_options();
  opts.listen = false;
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

std::string grant_for(data_plane& node, value_ptr x) {
  auto grant = node.offer(7, std::move(x), later());
  EXPECT_TRUE(grant) << describe(grant.error());
  return grant ? *grant : std::string(32, '0');
}

int dial(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

void send_pull_hello(int fd, const std::string& grant, uint64_t total = 0) {
  char buf[48] = {'O', 'S', 'X', 'P', 1, 0, 0, 0};
  std::memcpy(buf + 8, grant.data(), 32);
  std::memcpy(buf + 40, &total, 8);
  ASSERT_EQ(::send(fd, buf, sizeof(buf), MSG_NOSIGNAL), 48);
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

/// A listener that plays a hostile node: accepts one puller, reads its
/// hello and answers with `reply` (raw bytes).
class fake_node {
public:
  explicit fake_node(std::vector<std::byte> reply) : reply_(std::move(reply)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 1);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread{[this] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0)
        return;
      char hello[48];
      size_t got = 0;
      while (got < sizeof(hello)) {
        auto n = ::recv(c, hello + got, sizeof(hello) - got, 0);
        if (n <= 0)
          break;
        got += static_cast<size_t>(n);
      }
      ::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
      char sink[4096];
      timeval tv{5, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      while (::recv(c, sink, sizeof(sink), 0) > 0) {
        // credits and the goodbye
      }
      ::close(c);
    }};
  }

  ~fake_node() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }

  uint16_t port() const noexcept { return port_; }

private:
  std::vector<std::byte> reply_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

void append_frame(std::vector<std::byte>& out, uint32_t type, uint32_t length,
                  uint64_t arg) {
  std::byte f[16];
  std::memcpy(f, &type, 4);
  std::memcpy(f + 4, &length, 4);
  std::memcpy(f + 8, &arg, 8);
  out.insert(out.end(), f, f + 16);
}

TEST(data_plane_pull,
     a_client_pulls_an_offered_value_with_bounded_bytes_in_flight) {
  auto node = data_plane::start(tcp_options(), refuse_all());
  auto client = data_plane::start(client_options(), refuse_all());
  ASSERT_TRUE(node && client);
  EXPECT_EQ((*client)->port(), 0u) << "a client-only plane listens nowhere";
  auto x = iota_tensor(4 << 20); // 32 MiB
  auto grant = grant_for(**node, x);
  auto got = (*client)->pull("127.0.0.1", (*node)->port(), grant);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(**got, *x);
  EXPECT_NE((*got)->as_tensor().raw(), x->as_tensor().raw());
  auto& served = (*node)->counters();
  EXPECT_TRUE(eventually([&] { return served.pulls_served.load() == 1; }));
  EXPECT_GT(served.bytes_out.load(), 32u << 20);
  EXPECT_LE(served.max_in_flight.load(), tcp_options().window)
      << "the puller's credit must bound the bytes in flight";
  EXPECT_EQ((*client)->counters().pulls.load(), 1u);
  EXPECT_EQ((*client)->counters().bytes_in.load(), served.bytes_out.load());
  EXPECT_EQ((*node)->pending_tokens(7), 0u) << "the grant is used";
}

TEST(data_plane_pull, sides_with_different_windows_and_chunks_agree) {
  // A driver and a worker need not share their tuning: each side's
  // credit must keep the other's sender going.
  data_plane_options small = tcp_options();
  small.chunk_size = 64u << 10;
  small.window = 128u << 10;
  data_plane_options large = tcp_options();
  large.chunk_size = 1u << 20;
  large.window = 32u << 20;
  for (auto [node_opts, client_opts] :
       {std::pair{small, large}, std::pair{large, small}}) {
    client_opts.listen = false;
    auto node = data_plane::start(node_opts, refuse_all());
    auto client = data_plane::start(client_opts, refuse_all());
    ASSERT_TRUE(node && client);
    auto x = iota_tensor(1 << 20); // 8 MiB: many windows either way
    auto got
        = (*client)->pull("127.0.0.1", (*node)->port(), grant_for(**node, x));
    ASSERT_TRUE(got) << describe(got.error());
    EXPECT_EQ(**got, *x);
  }
}

TEST(data_plane_pull, a_grant_is_one_shot_and_holds_its_value) {
  auto node = data_plane::start(tcp_options(), refuse_all());
  auto client = data_plane::start(client_options(), refuse_all());
  ASSERT_TRUE(node && client);
  auto grant = grant_for(**node, iota_tensor(1000)); // only the grant holds it
  auto first = (*client)->pull("127.0.0.1", (*node)->port(), grant);
  ASSERT_TRUE(first) << describe(first.error());
  EXPECT_EQ((*first)->as_tensor().values<int64_t>()[999], 999);
  auto second = (*client)->pull("127.0.0.1", (*node)->port(), grant);
  ASSERT_FALSE(second);
  EXPECT_EQ(code_of(second.error()), errc::permission_denied)
      << describe(second.error());
}

TEST(data_plane_pull, push_tokens_and_pull_grants_do_not_mix) {
  auto node = data_plane::start(tcp_options(), refuse_all());
  auto client = data_plane::start(client_options(), refuse_all());
  ASSERT_TRUE(node && client);
  auto port = (*node)->port();
  auto token = (*node)->expect(7, later());
  ASSERT_TRUE(token);
  auto pulled = (*client)->pull("127.0.0.1", port, *token);
  ASSERT_FALSE(pulled);
  EXPECT_EQ(code_of(pulled.error()), errc::permission_denied);
  EXPECT_NE(message_of(pulled.error()).find("is for a transfer"),
            std::string::npos)
      << describe(pulled.error());
  auto grant = grant_for(**node, iota_tensor(100));
  auto pushed = (*client)->send("127.0.0.1", port, grant, iota_tensor(10));
  ASSERT_FALSE(pushed);
  EXPECT_EQ(code_of(pushed.error()), errc::permission_denied);
  EXPECT_NE(message_of(pushed.error()).find("pull grant"), std::string::npos)
      << describe(pushed.error());
  EXPECT_EQ((*node)->counters().pulls_served.load(), 0u);
}

/// Records what arrives and whether its ticket said `put`.
struct recorder {
  std::mutex mtx;
  std::vector<bool> puts;

  adopt_fn fn() {
    return [this](const transfer_ticket& t,
                  value_ptr) -> caf::expected<std::string> {
      std::lock_guard guard{mtx};
      puts.push_back(t.put);
      return "mem://x" + std::to_string(puts.size());
    };
  }
};

TEST(data_plane_pull, put_tokens_take_only_a_drivers_put_and_say_so) {
  recorder sink;
  auto node = data_plane::start(tcp_options(), sink.fn());
  auto client = data_plane::start(client_options(), refuse_all());
  ASSERT_TRUE(node && client);
  auto port = (*node)->port();
  auto done = [](std::promise<caf::expected<std::string>>& box) {
    return [&box](caf::expected<std::string> r) {
      box.set_value(std::move(r));
    };
  };
  // A put token pushed as a transfer (what a worker would send if a
  // driver handed it one) is refused: the object would count as the
  // session's own put, fetchable under revealed-only.
  auto put_token = (*node)->expect_put(7, later());
  ASSERT_TRUE(put_token);
  auto as_transfer
      = (*client)->send("127.0.0.1", port, *put_token, iota_tensor(10));
  ASSERT_FALSE(as_transfer);
  EXPECT_EQ(code_of(as_transfer.error()), errc::permission_denied);
  EXPECT_NE(message_of(as_transfer.error()).find("driver's put"),
            std::string::npos)
      << describe(as_transfer.error());
  // A transfer token is no put token either.
  auto transfer_token = (*node)->expect(7, later());
  ASSERT_TRUE(transfer_token);
  std::promise<caf::expected<std::string>> box1;
  (*client)->put_async("127.0.0.1", port, *transfer_token, iota_tensor(10),
                       done(box1));
  auto as_put = box1.get_future().get();
  ASSERT_FALSE(as_put);
  EXPECT_EQ(code_of(as_put.error()), errc::permission_denied);
  // The right pairs work, and the ticket tells them apart.
  std::promise<caf::expected<std::string>> box2;
  auto fresh = (*node)->expect_put(7, later());
  ASSERT_TRUE(fresh);
  (*client)->put_async("127.0.0.1", port, *fresh, iota_tensor(10), done(box2));
  auto put = box2.get_future().get();
  ASSERT_TRUE(put) << describe(put.error());
  auto pushed = (*client)->send("127.0.0.1", port, *(*node)->expect(7, later()),
                                iota_tensor(10));
  ASSERT_TRUE(pushed) << describe(pushed.error());
  std::lock_guard guard{sink.mtx};
  EXPECT_EQ(sink.puts, (std::vector<bool>{true, false}));
}

TEST(data_plane_pull, expired_and_unknown_grants_are_refused) {
  auto node = data_plane::start(tcp_options(), refuse_all());
  auto client = data_plane::start(client_options(), refuse_all());
  ASSERT_TRUE(node && client);
  auto soon = (*node)->offer(7, iota_tensor(10),
                             std::chrono::steady_clock::now() + 20ms);
  ASSERT_TRUE(soon);
  std::this_thread::sleep_for(60ms);
  auto expired = (*client)->pull("127.0.0.1", (*node)->port(), *soon);
  ASSERT_FALSE(expired);
  EXPECT_TRUE(code_of(expired.error()) == errc::permission_denied
              || code_of(expired.error()) == errc::timeout)
      << describe(expired.error());
  auto unknown
      = (*client)->pull("127.0.0.1", (*node)->port(), std::string(32, 'a'));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(code_of(unknown.error()), errc::permission_denied);
  auto malformed = (*client)->pull("127.0.0.1", (*node)->port(), "short");
  ASSERT_FALSE(malformed);
  EXPECT_EQ(code_of(malformed.error()), errc::invalid_argument);
  EXPECT_FALSE((*node)->offer(7, nullptr, later()));
}

TEST(data_plane_pull, grants_count_against_the_token_limits) {
  auto opts = tcp_options();
  opts.max_pending_tokens = 2;
  auto node = data_plane::start(opts, refuse_all());
  ASSERT_TRUE(node);
  auto x = iota_tensor(10);
  ASSERT_TRUE((*node)->offer(7, x, later()));
  ASSERT_TRUE((*node)->expect(7, later()));
  auto third = (*node)->offer(7, x, later());
  ASSERT_FALSE(third);
  EXPECT_EQ(code_of(third.error()), errc::resource_exhausted);
  EXPECT_TRUE((*node)->offer(8, x, later())) << "another session's own cap";
}

TEST(data_plane_pull,
     a_value_over_the_pullers_limit_is_refused_before_its_bytes) {
  auto node = data_plane::start(tcp_options(), refuse_all());
  auto opts = client_options();
  opts.max_object_size = 1000;
  auto client = data_plane::start(opts, refuse_all());
  ASSERT_TRUE(node && client);
  auto grant = grant_for(**node, iota_tensor(1 << 20)); // 8 MiB
  auto got = (*client)->pull("127.0.0.1", (*node)->port(), grant);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::resource_exhausted)
      << describe(got.error());
  auto& c = (*node)->counters();
  EXPECT_TRUE(eventually([&] { return c.failed_out.load() == 1; }));
  EXPECT_EQ(c.pulls_served.load(), 0u);
  EXPECT_LT(c.max_in_flight.load(), 8u << 20);
}

TEST(data_plane_pull, a_puller_that_stops_reading_loses_its_slot_not_the_node) {
  auto opts = tcp_options();
  opts.io_timeout = 300ms;
  auto node = data_plane::start(opts, refuse_all());
  auto client = data_plane::start(client_options(), refuse_all());
  ASSERT_TRUE(node && client);
  // Large enough that socket buffers cannot absorb it: the node must wait
  // for credit that never comes.
  auto grant = grant_for(**node, iota_tensor(8 << 20));
  int fd = dial((*node)->port());
  send_pull_hello(fd, grant);
  auto& c = (*node)->counters();
  EXPECT_TRUE(eventually([&] { return c.failed_out.load() == 1; }))
      << "the stalled pull must end at its io_timeout";
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return (*node)->load().incoming == 0; }));
  auto again = (*client)->pull("127.0.0.1", (*node)->port(),
                               grant_for(**node, iota_tensor(100)));
  ASSERT_TRUE(again) << describe(again.error());
}

TEST(data_plane_pull, a_malformed_pull_hello_is_refused) {
  auto node = data_plane::start(tcp_options(), refuse_all());
  ASSERT_TRUE(node);
  auto grant = grant_for(**node, iota_tensor(100));
  int fd = dial((*node)->port());
  send_pull_hello(fd, grant, 12345); // a pull announces no bytes
  char buf[256];
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  auto n = ::recv(fd, buf, sizeof(buf), MSG_WAITALL);
  ASSERT_GE(n, 16);
  uint32_t type = 0;
  std::memcpy(&type, buf, 4);
  EXPECT_EQ(type, 4u) << "a failure frame";
  EXPECT_NE(
      std::string(buf + 16, static_cast<size_t>(n - 16)).find("bad hello"),
      std::string::npos);
  ::close(fd);
  EXPECT_EQ((*node)->pending_tokens(7), 1u) << "a refused hello uses no grant";
}

TEST(data_plane_pull, a_corrupt_stream_from_a_hostile_node_is_corrupt_data) {
  auto bytes = encode(*iota_tensor(1000));
  bytes[bytes.size() / 2] ^= std::byte{0x5a}; // flips payload bits
  std::vector<std::byte> reply;
  append_frame(reply, 5, 0, bytes.size());
  append_frame(reply, 1, static_cast<uint32_t>(bytes.size()), 0);
  reply.insert(reply.end(), bytes.begin(), bytes.end());
  fake_node hostile{reply};
  auto client = data_plane::start(client_options(), refuse_all());
  ASSERT_TRUE(client);
  auto got = (*client)->pull("127.0.0.1", hostile.port(), std::string(32, 'b'));
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::corrupt_data) << describe(got.error());
  EXPECT_NE(message_of(got.error()).find("checksum"), std::string::npos)
      << describe(got.error());
}

TEST(data_plane_pull, a_hostile_node_announcing_garbage_is_corrupt_data) {
  std::vector<std::byte> reply;
  append_frame(reply, 77, 0, 0); // not a begin frame
  fake_node hostile{reply};
  auto client = data_plane::start(client_options(), refuse_all());
  ASSERT_TRUE(client);
  auto got = (*client)->pull("127.0.0.1", hostile.port(), std::string(32, 'b'));
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::corrupt_data) << describe(got.error());
}

TEST(data_plane_pull, in_process_pulls_hand_the_value_over_by_pointer) {
  auto opts = tcp_options();
  opts.local_shortcut = true;
  auto node = data_plane::start(opts, refuse_all());
  auto copts = client_options();
  copts.local_shortcut = true;
  auto client = data_plane::start(copts, refuse_all());
  ASSERT_TRUE(node && client);
  auto x = iota_tensor(1000);
  auto got
      = (*client)->pull("127.0.0.1", (*node)->port(), grant_for(**node, x));
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ((*got)->as_tensor().raw(), x->as_tensor().raw());
  EXPECT_EQ((*node)->counters().local_handoffs.load(), 1u);
}

TEST(data_plane_pull, stopping_fails_queued_and_running_pulls) {
  auto node = data_plane::start(tcp_options(), refuse_all());
  auto client = data_plane::start(client_options(), refuse_all());
  ASSERT_TRUE(node && client);
  (*client)->stop();
  auto got = (*client)->pull("127.0.0.1", (*node)->port(),
                             grant_for(**node, iota_tensor(10)));
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::object_lost) << describe(got.error());
}

} // namespace
} // namespace data_plane_pull_test_file
