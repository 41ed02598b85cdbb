// Peers that attack a data plane below the protocol: TLS peers that hang
// up mid-handshake or mid-transfer (SIGPIPE), slow and idle connections,
// token floods and pushes to a listener that never answers. Each case gets
// its typed error and the plane still moves real values afterwards.

#include "actors/dataplane/data_plane.hpp"

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

#include "actors/test_pki.hpp"
#include "store/codec.hpp"
#include "store/error.hpp"

namespace data_plane_hostile_test_file {
namespace {

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

// -- TLS peers and SIGPIPE ----------------------------------------------------

std::string file(const std::string& name) {
  return test::pki_file(name);
}

tls_options node_tls(const std::string& name) {
  return {file(name + ".pem"), file(name + ".key"), file("ca.pem"), {}};
}

data_plane_options tls_plane(const std::string& name) {
  auto opts = tcp_options();
  opts.tls = node_tls(name);
  return opts;
}

std::string token_for(data_plane& target, uint64_t session = 1) {
  auto token = target.expect(session, clock_type::now() + 60s);
  EXPECT_TRUE(token) << describe(token.error());
  return token ? *token : std::string(32, '0');
}

/// A real transfer from `source` to `target` arrives intact, and soon.
void expect_transfer_works(data_plane& source, data_plane& target,
                           receiver& sink) {
  auto before = sink.count();
  auto x = iota_tensor(100'000);
  auto start = clock_type::now();
  auto uri = source.send("127.0.0.1", target.port(), token_for(target, 77), x);
  ASSERT_TRUE(uri) << describe(uri.error());
  EXPECT_LT(ms_since(start), 2000) << "a real transfer was held up";
  ASSERT_EQ(sink.count(), before + 1);
  std::lock_guard guard{sink.mtx};
  EXPECT_EQ(*sink.stored.back(), *x);
}

/// A raw client socket connected to `port` (10 s socket timeouts).
int dial(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
      << std::strerror(errno);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

/// Closes with a reset (no FIN): what a killed process's socket does when
/// data is left unread.
void close_hard(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  ::close(fd);
}

/// A listener on an ephemeral loopback port.
struct listener {
  int fd = -1;
  uint16_t port = 0;

  explicit listener(int backlog = 16) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd, backlog), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~listener() { ::close(fd); }
};

std::string hello_bytes(const std::string& token, uint64_t total) {
  std::string h(48, '\0');
  std::memcpy(h.data(), "OSXF\1\0\0\0", 8);
  std::memcpy(h.data() + 8, token.data(), 32);
  std::memcpy(h.data() + 40, &total, 8);
  return h;
}

std::string chunk_header(uint32_t length, uint64_t offset) {
  std::string f(16, '\0');
  uint32_t type = 1;
  std::memcpy(f.data(), &type, 4);
  std::memcpy(f.data() + 4, &length, 4);
  std::memcpy(f.data() + 8, &offset, 8);
  return f;
}

/// Puts SIGPIPE at its default disposition (terminate) for the test and
/// restores what it was: a write to a closed peer anywhere in the data
/// plane would end this process.
class sigpipe_kills {
public:
  sigpipe_kills() {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(SIGPIPE, &dfl, &old_);
    sigset_t blocked;
    pthread_sigmask(SIG_SETMASK, nullptr, &blocked);
    unblocked_ = sigismember(&blocked, SIGPIPE) == 0;
  }
  ~sigpipe_kills() { ::sigaction(SIGPIPE, &old_, nullptr); }

  /// Whether a SIGPIPE raised now would terminate the process (threads
  /// the planes start inherit this thread's mask).
  bool armed() const {
    struct sigaction now {};
    ::sigaction(SIGPIPE, nullptr, &now);
    return now.sa_handler == SIG_DFL && unblocked_;
  }

private:
  struct sigaction old_ {};
  bool unblocked_ = false;
};

/// The first flight of a TLS client: a ClientHello.
std::string client_hello() {
  auto* ctx = SSL_CTX_new(TLS_client_method());
  auto* ssl = SSL_new(ctx);
  auto* in = BIO_new(BIO_s_mem());
  auto* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  SSL_set_connect_state(ssl);
  SSL_do_handshake(ssl); // wants to read: the hello is in `out`
  char* data = nullptr;
  auto n = BIO_get_mem_data(out, &data);
  std::string result(data, static_cast<size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return result;
}

/// An OpenSSL context for the test's own TLS peers.
struct peer_ctx {
  SSL_CTX* ctx = nullptr;

  peer_ctx(bool server, const std::string& name) {
    ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    SSL_CTX_use_certificate_chain_file(ctx, file(name + ".pem").c_str());
    SSL_CTX_use_PrivateKey_file(ctx, file(name + ".key").c_str(),
                                SSL_FILETYPE_PEM);
    SSL_CTX_load_verify_locations(ctx, file("ca.pem").c_str(), nullptr);
    SSL_CTX_set_verify(ctx, server ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                       nullptr);
  }
  ~peer_ctx() { SSL_CTX_free(ctx); }
};

TEST(data_plane_hostile, tls_client_hello_then_close_never_raises_sigpipe) {
  sigpipe_kills guard;
  ASSERT_TRUE(guard.armed());
  receiver sink;
  auto target = data_plane::start(tls_plane("node1"), sink.fn());
  auto source = data_plane::start(tls_plane("node2"), receiver{}.fn());
  ASSERT_TRUE(target && source);
  auto hello = client_hello();
  ASSERT_GT(hello.size(), 100u);
  constexpr int rounds = 10;
  for (int i = 0; i < rounds; ++i) {
    int fd = dial((*target)->port());
    ASSERT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(hello.size()));
    if (i % 2 == 1) {
      // Waits for the server's answer before going away (a reset then).
      char buf[512];
      EXPECT_GT(::recv(fd, buf, sizeof(buf), 0), 0);
      close_hard(fd);
    } else {
      ::close(fd); // at once: the server answers a closed socket
    }
  }
  // Each attempt ends as a failed handshake, and the process is alive.
  ASSERT_TRUE(poll_until(
      [&] { return (*target)->counters().failed_in.load() >= rounds; }));
  EXPECT_TRUE(guard.armed());
  expect_transfer_works(**source, **target, sink);
}

TEST(data_plane_hostile, tls_receiver_dying_mid_transfer_never_raises_sigpipe) {
  sigpipe_kills guard;
  ASSERT_TRUE(guard.armed());
  auto source = data_plane::start(tls_plane("node2"), receiver{}.fn());
  ASSERT_TRUE(source);
  peer_ctx server{true, "node1"};
  listener fake;
  for (int round = 0; round < 4; ++round) {
    // Completes the handshake, reads a little, dies.
    std::thread target{[&] {
      int fd = ::accept(fake.fd, nullptr, nullptr);
      auto* ssl = SSL_new(server.ctx);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) {
        // Less than the sender's window: it is still writing.
        char buf[16384];
        for (size_t got = 0; got < (64u << 10);) {
          auto n = SSL_read(ssl, buf, sizeof(buf));
          if (n <= 0)
            break;
          got += static_cast<size_t>(n);
        }
      }
      if (round % 2 == 0)
        close_hard(fd);
      else
        ::close(fd);
      SSL_free(ssl); // no close_notify: the process "died"
    }};
    auto r = (*source)->send("127.0.0.1", fake.port, std::string(32, 'd'),
                             iota_tensor(4 << 20));
    target.join();
    ASSERT_FALSE(r);
    EXPECT_EQ(code_of(r.error()), errc::object_lost) << describe(r.error());
  }
  EXPECT_TRUE(guard.armed());
  receiver sink;
  auto target = data_plane::start(tls_plane("node1"), sink.fn());
  ASSERT_TRUE(target);
  expect_transfer_works(**source, **target, sink);
}

TEST(data_plane_hostile, tls_sender_dying_mid_transfer_never_raises_sigpipe) {
  sigpipe_kills guard;
  ASSERT_TRUE(guard.armed());
  receiver sink;
  auto opts = tls_plane("node1");
  opts.chunk_size = 16u << 10;
  opts.window = 32u << 10; // a credit frame every 16 KiB
  auto target = data_plane::start(opts, sink.fn());
  auto source = data_plane::start(tls_plane("node2"), receiver{}.fn());
  ASSERT_TRUE(target && source);
  peer_ctx client{false, "node2"};
  auto encoding = encode(*iota_tensor(2 << 20));
  constexpr uint64_t rounds = 4;
  auto failed_before = (*target)->counters().failed_in.load();
  for (uint64_t round = 0; round < rounds; ++round) {
    int fd = dial((*target)->port());
    auto* ssl = SSL_new(client.ctx);
    SSL_set_fd(ssl, fd);
    ASSERT_EQ(SSL_connect(ssl), 1);
    auto h = hello_bytes(token_for(**target), encoding.size());
    ASSERT_EQ(SSL_write(ssl, h.data(), static_cast<int>(h.size())), 48);
    auto send_chunk = [&](size_t size, uint64_t off) {
      auto f
          = chunk_header(static_cast<uint32_t>(size), off)
            + std::string{reinterpret_cast<const char*>(&encoding[off]), size};
      ASSERT_GT(SSL_write(ssl, f.data(), static_cast<int>(f.size())), 0);
    };
    if (round % 2 == 0) {
      // Sends the first MiB of 16, ignoring every credit, and dies with
      // the credits unread: the socket resets.
      for (uint64_t off = 0; off < (1u << 20); off += 16u << 10)
        send_chunk(16u << 10, off);
      close_hard(fd);
    } else {
      // Sends a chunk at a wrong offset and dies at once (a FIN): the
      // target's refusal, and its close_notify, go to a closed socket.
      send_chunk(8u << 10, 0);
      send_chunk(8u << 10, 1);
      ::close(fd);
    }
    SSL_free(ssl);
    ASSERT_TRUE(poll_until([&] {
      return (*target)->counters().failed_in.load()
             >= failed_before + round + 1;
    }));
  }
  EXPECT_TRUE(guard.armed());
  EXPECT_EQ(sink.count(), 0u);
  expect_transfer_works(**source, **target, sink);
}

// -- deadlines and slots ------------------------------------------------------

/// Runs `step` every `period` on a thread of its own until destroyed: the
/// pace of a slow peer (a sleep here is the attack, not a wait).
class trickler {
public:
  trickler(std::chrono::milliseconds period, std::function<bool()> step)
      : thread_([this, period, step = std::move(step)] {
          while (running_ && step())
            std::this_thread::sleep_for(period);
        }) {}
  ~trickler() {
    running_ = false;
    thread_.join();
  }

private:
  std::atomic<bool> running_{true};
  std::thread thread_;
};

/// Raw client sockets, closed when the test's scope ends (after any
/// trickler declared later has stopped writing to them).
struct sockets {
  std::vector<int> fds;
  sockets() = default;
  sockets(const sockets&) = delete;
  ~sockets() {
    for (int fd : fds)
      ::close(fd);
  }
};

/// The data plane's reply on a raw connection: a failure frame's code
/// (credits skipped), or none when it closed without one.
std::optional<errc> read_failure(int fd) {
  for (;;) {
    char f[16];
    size_t got = 0;
    while (got < sizeof(f)) {
      auto n = ::recv(fd, f + got, sizeof(f) - got, 0);
      if (n <= 0)
        return std::nullopt;
      got += static_cast<size_t>(n);
    }
    uint32_t type, length;
    uint64_t arg;
    std::memcpy(&type, f, 4);
    std::memcpy(&length, f + 4, 4);
    std::memcpy(&arg, f + 8, 8);
    if (type == 2)
      continue;
    std::string body(length, '\0');
    for (size_t at = 0; at < body.size();) {
      auto n = ::recv(fd, body.data() + at, body.size() - at, 0);
      if (n <= 0)
        break;
      at += static_cast<size_t>(n);
    }
    if (type != 4)
      return errc::none;
    return static_cast<errc>(arg);
  }
}

TEST(data_plane_hostile, tls_handshake_has_its_own_deadline) {
  auto opts = tls_plane("node1");
  opts.handshake_timeout = 300ms;
  opts.hello_timeout = 20s;
  receiver sink;
  auto target = data_plane::start(opts, sink.fn());
  auto source = data_plane::start(tls_plane("node2"), receiver{}.fn());
  ASSERT_TRUE(target && source);
  // Half a ClientHello, then silence.
  auto hello = client_hello();
  int fd = dial((*target)->port());
  auto start = clock_type::now();
  ::send(fd, hello.data(), hello.size() / 2, MSG_NOSIGNAL);
  char buf[64];
  EXPECT_LE(::recv(fd, buf, sizeof(buf), 0), 0) << "closed without a word";
  auto waited = ms_since(start);
  ::close(fd);
  EXPECT_GE(waited, 250);
  EXPECT_LT(waited, 5000) << "dropped at the handshake deadline, not later";
  EXPECT_EQ((*target)->counters().deadline_drops.load(), 1u);
  expect_transfer_works(**source, **target, sink);
}

TEST(data_plane_hostile, slow_peers_are_dropped_at_the_hello_deadline) {
  auto opts = tcp_options();
  opts.hello_timeout = 1500ms;
  receiver sink;
  auto target = data_plane::start(opts, sink.fn());
  auto source = data_plane::start(tcp_options(), receiver{}.fn());
  ASSERT_TRUE(target && source);
  auto per_peer = (*target)->options().max_incoming_per_peer;
  ASSERT_EQ(per_peer, 8u);
  // Eight peers from this address trickle a valid hello, one byte every
  // 100 ms: each recv succeeds, the hello would take 4.8 s.
  auto start = clock_type::now();
  sockets slow;
  for (size_t i = 0; i < per_peer; ++i)
    slow.fds.push_back(dial((*target)->port()));
  auto hello = hello_bytes(token_for(**target), 1000);
  size_t sent = 0;
  trickler trickle{100ms, [&] {
                     for (int fd : slow.fds)
                       ::send(fd, &hello[sent], 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                     return ++sent < hello.size();
                   }};
  // Real transfers from the same address go through meanwhile.
  expect_transfer_works(**source, **target, sink);
  EXPECT_LT(ms_since(start), 1500) << "waited for the slow peers' deadline";
  // Each slow peer is dropped with `timeout` at its deadline.
  for (int fd : slow.fds) {
    auto code = read_failure(fd);
    ASSERT_TRUE(code) << "closed without a failure frame";
    EXPECT_EQ(*code, errc::timeout);
  }
  auto waited = ms_since(start);
  EXPECT_GE(waited, 1400);
  EXPECT_LT(waited, 4500) << "not dropped at the hello deadline";
  EXPECT_EQ((*target)->counters().deadline_drops.load(), per_peer);
  expect_transfer_works(**source, **target, sink);
}

TEST(data_plane_hostile, a_slow_sender_loses_its_slot_at_the_chunk_deadline) {
  auto opts = tcp_options();
  opts.chunk_timeout = 1s;
  receiver sink;
  auto target = data_plane::start(opts, sink.fn());
  auto source = data_plane::start(tcp_options(), receiver{}.fn());
  ASSERT_TRUE(target && source);
  // A valid hello takes a slot; then one chunk frame, one byte a time.
  int fd = dial((*target)->port());
  auto frame = hello_bytes(token_for(**target), 1000) + chunk_header(1000, 0)
               + std::string(1000, 'x');
  ::send(fd, frame.data(), 48, MSG_NOSIGNAL);
  ASSERT_TRUE(poll_until([&] { return (*target)->load().incoming == 1; }));
  auto start = clock_type::now();
  size_t sent = 48;
  std::optional<errc> code;
  int64_t waited = 0;
  {
    trickler trickle{100ms, [&] {
                       ::send(fd, &frame[sent], 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                       return ++sent < frame.size();
                     }};
    code = read_failure(fd);
    waited = ms_since(start);
  }
  ::close(fd);
  ASSERT_TRUE(code) << "closed without a failure frame";
  EXPECT_EQ(*code, errc::timeout);
  EXPECT_GE(waited, 900);
  EXPECT_LT(waited, 4000);
  EXPECT_TRUE(poll_until([&] { return (*target)->load().incoming == 0; }));
  EXPECT_EQ(sink.count(), 0u);
  expect_transfer_works(**source, **target, sink);
}

/// Idle sockets (connected, silent) against `target`: past
/// `max_pending_connections` the oldest are evicted (told why when the
/// connection is plain), the rest wait without a slot, and real transfers
/// get through.
void idle_connections_do_not_block(data_plane& source, data_plane& target,
                                   receiver& sink, size_t idle_count) {
  auto bound = target.options().max_pending_connections;
  ASSERT_LT(bound, idle_count);
  std::vector<int> idle;
  for (size_t i = 0; i < idle_count; ++i)
    idle.push_back(dial(target.port()));
  ASSERT_TRUE(poll_until([&] {
    return target.counters().evicted.load() == idle_count - bound;
  })) << target.counters().evicted.load();
  EXPECT_EQ(target.load().pending_connections, bound);
  EXPECT_EQ(target.load().incoming, 0u) << "an idle socket holds a slot";
  auto oldest = read_failure(idle.front());
  if (target.options().tls.enabled()) {
    EXPECT_FALSE(oldest) << "closed in its handshake: no frame possible";
  } else {
    ASSERT_TRUE(oldest);
    EXPECT_EQ(*oldest, errc::resource_exhausted);
  }
  expect_transfer_works(source, target, sink);
  expect_transfer_works(source, target, sink);
  for (int fd : idle)
    ::close(fd);
}

TEST(data_plane_hostile, idle_connections_cannot_starve_real_transfers) {
  auto opts = tcp_options();
  opts.hello_timeout = 60s; // idle for the whole test
  receiver sink;
  auto target = data_plane::start(opts, sink.fn());
  auto source = data_plane::start(tcp_options(), receiver{}.fn());
  ASSERT_TRUE(target && source);
  ASSERT_EQ((*target)->options().max_pending_connections, 64u);
  idle_connections_do_not_block(**source, **target, sink, 300);
}

TEST(data_plane_hostile, idle_tls_connections_cannot_starve_real_transfers) {
  auto opts = tls_plane("node1");
  opts.handshake_timeout = 60s; // idle for the whole test
  opts.max_pending_connections = 16;
  receiver sink;
  auto target = data_plane::start(opts, sink.fn());
  auto source = data_plane::start(tls_plane("node2"), receiver{}.fn());
  ASSERT_TRUE(target && source);
  idle_connections_do_not_block(**source, **target, sink, 100);
}

// -- bounded senders ----------------------------------------------------------

/// Threads of this process right now.
size_t thread_count() {
  size_t n = 0;
  for ([[maybe_unused]] auto& entry :
       std::filesystem::directory_iterator{"/proc/self/task"})
    ++n;
  return n;
}

/// Outcomes of asynchronous sends.
struct outcomes {
  std::mutex mtx;
  std::vector<std::pair<errc, int64_t>> results; // code, ms after submit
  std::atomic<size_t> done{0};

  send_callback track(clock_type::time_point submitted) {
    return [this, submitted](caf::expected<std::string> r) {
      std::lock_guard guard{mtx};
      results.emplace_back(r ? errc::none : code_of(r.error()),
                           ms_since(submitted));
      done.fetch_add(1);
    };
  }
};

TEST(data_plane_hostile, pushes_to_a_silent_listener_are_bounded) {
  listener silent{512}; // accepts in the kernel, never reads or answers
  auto opts = tcp_options();
  opts.io_timeout = 1s;
  opts.handshake_timeout = 1s;
  receiver sink;
  auto source = data_plane::start(opts, receiver{}.fn());
  auto target = data_plane::start(tcp_options(), sink.fn());
  ASSERT_TRUE(source && target);
  auto bound = (*source)->options().max_senders;
  ASSERT_EQ(bound, 8u);
  auto baseline = thread_count();
  constexpr size_t pushes = 300;
  outcomes out;
  auto x = iota_tensor(1000);
  for (size_t i = 0; i < pushes; ++i)
    (*source)->send_async("127.0.0.1", silent.port, std::string(32, 'e'), x,
                          out.track(clock_type::now()));
  size_t most = 0;
  ASSERT_TRUE(poll_until(
      [&] {
        most = std::max(most, thread_count());
        return out.done.load() == pushes;
      },
      20s));
  EXPECT_LE(most, baseline + bound) << "threads: " << most;
  EXPECT_EQ((*source)->load().sender_threads, bound);
  // Each fails with `timeout` within its deadline: the wait for a sender
  // (io_timeout), connect (handshake_timeout) and one step (io_timeout).
  std::lock_guard guard{out.mtx};
  for (auto& [code, ms] : out.results) {
    EXPECT_EQ(code, errc::timeout);
    EXPECT_LT(ms, 3000 + 1000);
  }
  EXPECT_EQ((*source)->counters().failed_out.load(), pushes);
  std::cout << "[ measure  ] threads before " << baseline << ", at most "
            << most << " during " << pushes << " pushes\n";
  expect_transfer_works(**source, **target, sink);
}

TEST(data_plane_hostile, pushes_beyond_the_queue_are_refused_at_once) {
  listener silent{512};
  auto opts = tcp_options();
  opts.io_timeout = 1s;
  opts.max_senders = 2;
  opts.max_queued_sends = 10;
  receiver sink;
  auto source = data_plane::start(opts, receiver{}.fn());
  auto target = data_plane::start(tcp_options(), sink.fn());
  ASSERT_TRUE(source && target);
  outcomes out;
  auto x = iota_tensor(10);
  for (size_t i = 0; i < 50; ++i)
    (*source)->send_async("127.0.0.1", silent.port, std::string(32, 'f'), x,
                          out.track(clock_type::now()));
  ASSERT_TRUE(poll_until([&] { return out.done.load() == 50; }));
  size_t refused = 0;
  size_t timed_out = 0;
  std::lock_guard guard{out.mtx};
  for (auto& [code, ms] : out.results) {
    refused += code == errc::resource_exhausted && ms < 500 ? 1 : 0;
    timed_out += code == errc::timeout ? 1 : 0;
  }
  // 2 running + 10 queued; the senders may not have taken theirs yet.
  EXPECT_GE(refused, 38u);
  EXPECT_LE(refused, 40u);
  EXPECT_EQ(refused + timed_out, 50u);
  EXPECT_EQ((*source)->counters().refused_sends.load(), refused);
  expect_transfer_works(**source, **target, sink);
}

TEST(data_plane_hostile, a_sender_that_cannot_start_is_a_typed_error) {
  // A child process whose address space is too small for another thread
  // stack: the push fails with resource_exhausted, and its callback runs.
  auto pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0)
    try {
      auto source = data_plane::start(tcp_options(), receiver{}.fn());
      if (!source)
        ::_exit(2);
      std::ifstream status{"/proc/self/status"};
      std::string line;
      rlim_t vm = 0;
      while (std::getline(status, line))
        if (line.rfind("VmSize:", 0) == 0)
          vm = std::stoull(line.substr(7)) * 1024;
      rlimit lim{vm + (2u << 20), vm + (2u << 20)};
      if (vm == 0 || ::setrlimit(RLIMIT_AS, &lim) != 0)
        ::_exit(3);
      // glibc reuses the stacks of threads that ended (the parent's earlier
      // tests left some): take them all, so the next thread needs a new one.
      std::mutex never;
      never.lock();
      for (int i = 0; i < 64; ++i) {
        try {
          std::thread{[&never] {
            never.lock();
          }}.detach();
        } catch (const std::system_error&) {
          break;
        }
      }
      std::atomic<int> code{-1};
      (*source)->send_async("127.0.0.1", 1, std::string(32, 'g'),
                            iota_tensor(10), [&](caf::expected<std::string> r) {
                              code = r ? 0
                                       : static_cast<int>(code_of(r.error()));
                            });
      ::_exit(code == static_cast<int>(errc::resource_exhausted) ? 0
                                                                 : 10 + code);
    } catch (...) {
      ::_exit(4); // the child must never return into GoogleTest
    }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "2: no plane, 3: no limit, 4: exception, 9: callback did not run, "
         "else 10 + code";
}

} // namespace

} // namespace
} // namespace data_plane_hostile_test_file
