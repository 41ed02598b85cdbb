// Peers that attack a data plane below the protocol: token floods. Each
// case gets its typed error and the plane still moves real values
// afterwards.

#include "actors/data_plane.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <thread>
#include <unordered_set>

#include "store/codec.hpp"
#include "store/error.hpp"

using namespace objstore;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

/// Polls `done` every millisecond until it holds or `timeout` passes.
bool poll_until(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = 10s) {
  auto deadline = clock_type::now() + timeout;
  while (!done()) {
    if (clock_type::now() >= deadline)
      return done();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

int64_t ms_since(clock_type::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now()
                                                               - start)
      .count();
}

struct receiver {
  std::mutex mtx;
  std::vector<value_ptr> stored;

  adopt_fn fn() {
    return [this](const transfer_ticket&,
                  value_ptr x) -> caf::expected<std::string> {
      std::lock_guard guard{mtx};
      stored.push_back(std::move(x));
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
  opts.chunk_size = 64u << 10;
  opts.window = 256u << 10;
  opts.io_timeout = 5s;
  return opts;
}

value_ptr iota_tensor(int64_t n) {
  auto [t, raw] = tensor::allocate(dtype::int64, {n});
  auto* p = reinterpret_cast<int64_t*>(raw);
  std::iota(p, p + n, int64_t{0});
  return make_value(std::move(t));
}

// -- tokens -------------------------------------------------------------------

TEST(data_plane_hostile, a_token_flood_hits_the_node_cap) {
  receiver sink;
  auto target = data_plane::start(tcp_options(), sink.fn());
  auto source = data_plane::start(tcp_options(), receiver{}.fn());
  ASSERT_TRUE(target && source);
  auto cap = (*target)->options().max_tokens;
  auto per_session = (*target)->options().max_pending_tokens;
  ASSERT_EQ(cap, 65'536u);
  ASSERT_EQ(per_session, 1024u);
  // 128 sessions of 512 tokens each: every session is under its own cap.
  constexpr uint64_t sessions = 128;
  std::vector<std::string> tokens;
  tokens.reserve(cap);
  auto start = clock_type::now();
  for (uint64_t i = 0; i < cap; ++i) {
    auto t = (*target)->expect(1000 + i % sessions, clock_type::now() + 60s);
    ASSERT_TRUE(t) << i << ": " << describe(t.error());
    tokens.push_back(std::move(*t));
  }
  auto flood_ms = ms_since(start);
  auto refused = (*target)->expect(5000, clock_type::now() + 60s);
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::resource_exhausted)
      << describe(refused.error());
  EXPECT_NE(message_of(refused.error()).find("max_tokens"), std::string::npos);
  EXPECT_EQ((*target)->pending_tokens(1000), cap / sessions);
  EXPECT_EQ((*target)->pending_tokens(5000), 0u);
  EXPECT_EQ((*target)->load().tokens, cap);
  // 128-bit tokens from the kernel: distinct, 32 hex digits.
  std::unordered_set<std::string> distinct(tokens.begin(), tokens.end());
  EXPECT_EQ(distinct.size(), tokens.size());
  EXPECT_EQ(tokens[0].find_first_not_of("0123456789abcdef"), std::string::npos);
  // Earlier tokens still work; each use frees room for one more expect.
  for (size_t i : {size_t{0}, tokens.size() / 2}) {
    auto uri = (*source)->send("127.0.0.1", (*target)->port(), tokens[i],
                               iota_tensor(1000));
    ASSERT_TRUE(uri) << describe(uri.error());
  }
  EXPECT_EQ(sink.count(), 2u);
  EXPECT_TRUE((*target)->expect(5000, clock_type::now() + 60s));
  std::cout << "[ measure  ] " << cap << " expects in " << flood_ms << " ms\n";
}

TEST(data_plane_hostile, expired_tokens_leave_the_node_cap) {
  auto opts = tcp_options();
  opts.max_tokens = 1000;
  receiver sink;
  auto target = data_plane::start(opts, sink.fn());
  auto source = data_plane::start(tcp_options(), receiver{}.fn());
  ASSERT_TRUE(target && source);
  auto soon = clock_type::now() + 200ms;
  for (uint64_t i = 0; i < 1000; ++i)
    ASSERT_TRUE((*target)->expect(i, soon));
  auto refused = (*target)->expect(1, clock_type::now() + 60s);
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::resource_exhausted);
  // Once they expire, they are purged and the cap has room again.
  caf::expected<std::string> later{std::string{}};
  EXPECT_TRUE(poll_until([&] {
    later = (*target)->expect(1, clock_type::now() + 60s);
    return bool{later};
  }));
  EXPECT_EQ((*target)->load().tokens, 1u);
  auto uri = (*source)->send("127.0.0.1", (*target)->port(), *later,
                             iota_tensor(10));
  ASSERT_TRUE(uri) << describe(uri.error());
}

} // namespace
