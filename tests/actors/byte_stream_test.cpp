// byte_stream over real loopback sockets: exact round trips of buffers of
// many sizes (plain TCP and mutual TLS), a peer closing mid-transfer, read
// and write deadlines, and refused TLS handshakes.

#include "actors/dataplane/byte_stream.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "actors/test_pki.hpp"
#include "store/error.hpp"

namespace byte_stream_test_file {
namespace {

using namespace objstore;
using namespace std::chrono_literals;

namespace {

/// The shared test PKI (test_pki.hpp), made on first use.
struct pki {
  static const std::filesystem::path& dir() { return test::pki_dir(); }
};

tls_options tls_of(const std::string& cert, const std::string& ca = "ca") {
  auto file = [](const std::string& name) {
    return (pki::dir() / name).string();
  };
  return {file(cert + ".pem"), file(cert + ".key"), file(ca + ".pem"), {}};
}

/// Closes a socket on scope exit (byte streams never close their fd).
struct socket_fd {
  int fd = -1;

  socket_fd() = default;
  explicit socket_fd(int x) : fd(x) {}
  socket_fd(socket_fd&& other) noexcept : fd(other.fd) { other.fd = -1; }
  socket_fd& operator=(socket_fd&& other) noexcept {
    std::swap(fd, other.fd);
    return *this;
  }
  ~socket_fd() { close(); }

  void close() {
    if (fd >= 0)
      ::close(fd);
    fd = -1;
  }
};

void set_timeouts(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
  ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
}

struct connected_pair {
  socket_fd client;
  socket_fd server;
};

/// Options of a loopback connection; small buffers force partial sends.
struct pair_options {
  std::chrono::milliseconds timeout = 20s;
  int buffer_size = 0; // 0: kernel default
};

/// Connects two TCP sockets over 127.0.0.1 on an ephemeral port. The
/// generous default timeout turns a would-be hang into a test failure.
connected_pair connect_loopback(pair_options opts = {}) {
  connected_pair result;
  socket_fd listener{::socket(AF_INET, SOCK_STREAM, 0)};
  EXPECT_GE(listener.fd, 0) << std::strerror(errno);
  if (opts.buffer_size > 0) {
    ::setsockopt(listener.fd, SOL_SOCKET, SO_RCVBUF, &opts.buffer_size,
                 sizeof(int));
    ::setsockopt(listener.fd, SOL_SOCKET, SO_SNDBUF, &opts.buffer_size,
                 sizeof(int));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(
      ::bind(listener.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
      << std::strerror(errno);
  EXPECT_EQ(::listen(listener.fd, 1), 0);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(
      ::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  EXPECT_NE(addr.sin_port, 0);
  result.client = socket_fd{::socket(AF_INET, SOCK_STREAM, 0)};
  if (opts.buffer_size > 0) {
    ::setsockopt(result.client.fd, SOL_SOCKET, SO_RCVBUF, &opts.buffer_size,
                 sizeof(int));
    ::setsockopt(result.client.fd, SOL_SOCKET, SO_SNDBUF, &opts.buffer_size,
                 sizeof(int));
  }
  EXPECT_EQ(::connect(result.client.fd, reinterpret_cast<sockaddr*>(&addr),
                      sizeof(addr)),
            0)
      << std::strerror(errno);
  result.server = socket_fd{::accept(listener.fd, nullptr, nullptr)};
  EXPECT_GE(result.server.fd, 0) << std::strerror(errno);
  set_timeouts(result.client.fd, opts.timeout);
  set_timeouts(result.server.fd, opts.timeout);
  return result;
}

/// `n` pseudo-random bytes; a different seed per buffer, so a shifted or
/// repeated block cannot match by accident.
std::vector<char> random_bytes(size_t n, uint32_t seed) {
  std::vector<char> result(n);
  std::mt19937 gen{seed};
  for (auto& c : result)
    c = static_cast<char>(gen());
  return result;
}

const std::vector<size_t> sizes{
    0, 1, 7, 4096, 65'537, (1u << 20) - 1, (5u << 20) + 3};

/// Writes every buffer of `sizes` from `from` while `to` reads them back one
/// by one, each with one read_all of its exact size.
void expect_exact_round_trips(byte_stream& from, byte_stream& to) {
  std::vector<std::vector<char>> sent;
  for (size_t i = 0; i < sizes.size(); ++i)
    sent.push_back(random_bytes(sizes[i], static_cast<uint32_t>(i + 1)));
  auto writer = std::async(std::launch::async, [&] {
    for (auto& buf : sent)
      if (auto rc = from.write_all(buf.data(), buf.size()))
        return rc;
    return 0;
  });
  for (size_t i = 0; i < sent.size(); ++i) {
    std::vector<char> got(sent[i].size(), 0);
    ASSERT_EQ(to.read_all(got.data(), got.size()), 0) << sizes[i] << " bytes";
    EXPECT_TRUE(got == sent[i])
        << "buffer of " << sizes[i] << " bytes differs after the round trip";
  }
  EXPECT_EQ(writer.get(), 0) << std::strerror(writer.get());
}

// -- plain TCP ----------------------------------------------------------------

TEST(byte_stream, plain_round_trips_buffers_of_every_size_exactly) {
  auto pair = connect_loopback();
  auto client = make_plain_stream(pair.client.fd);
  auto server = make_plain_stream(pair.server.fd);
  expect_exact_round_trips(*client, *server);
  expect_exact_round_trips(*server, *client); // and the other way
}

extern "C" void ignore_signal(int) {
  // nop
}

/// Polls `done` every few milliseconds until it holds or `timeout` passes.
bool poll_until(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

TEST(byte_stream, plain_scatter_write_resumes_exactly_after_a_partial_send) {
  // A blocking sendmsg returns early only when interrupted (or timed out).
  // With a signal handler installed without SA_RESTART, a signal that hits
  // the writer while its first sendmsg waits for buffer space makes it
  // return the bytes sent so far: somewhere inside the iovec array, usually
  // inside one buffer, and write_all must resume at exactly that byte.
  struct sigaction interrupt {};
  struct sigaction previous {};
  interrupt.sa_handler = ignore_signal;
  sigemptyset(&interrupt.sa_mask);
  interrupt.sa_flags = 0; // no SA_RESTART
  ASSERT_EQ(::sigaction(SIGUSR1, &interrupt, &previous), 0);
  auto pair = connect_loopback({20s, 16 * 1024});
  auto client = make_plain_stream(pair.client.fd);
  auto server = make_plain_stream(pair.server.fd);
  std::vector<std::vector<char>> parts;
  std::mt19937 gen{42};
  for (uint32_t i = 0; i < 200; ++i)
    parts.push_back(random_bytes(gen() % 50'000, i + 100));
  parts.push_back({}); // an empty buffer among them
  parts.push_back(random_bytes(3, 99));
  std::vector<iovec> iov;
  std::vector<char> expected;
  for (auto& p : parts) {
    iov.push_back({p.data(), p.size()});
    expected.insert(expected.end(), p.begin(), p.end());
  }
  int write_rc = -1;
  std::thread writer{[&] {
    write_rc = client->write_all(iov.data(), static_cast<int>(iov.size()));
  }};
  // Bytes arrived but the reader has not read: the writer is inside its
  // first sendmsg (megabytes do not fit the socket buffers).
  EXPECT_TRUE(poll_until([&] {
    int queued = 0;
    return ::ioctl(pair.server.fd, FIONREAD, &queued) == 0 && queued > 0;
  }));
  ::pthread_kill(writer.native_handle(), SIGUSR1);
  std::vector<char> got(expected.size());
  auto read_rc = server->read_all(got.data(), got.size());
  writer.join();
  ::sigaction(SIGUSR1, &previous, nullptr);
  EXPECT_EQ(read_rc, 0) << std::strerror(read_rc);
  EXPECT_EQ(write_rc, 0) << std::strerror(write_rc);
  EXPECT_TRUE(got == expected) << "the write did not resume at the right byte";
}

// Bug: write_all hands the whole iovec array to one sendmsg, which fails
// with EMSGSIZE above IOV_MAX (1024) buffers, although the header promises
// "Writes every byte of the `count` buffers". Callers today pass at most
// two buffers, so nothing in objstore trips over it yet.
TEST(byte_stream, DISABLED_plain_scatter_write_of_more_than_iov_max_buffers) {
  auto pair = connect_loopback({2s}); // the reader times out on the bug
  auto client = make_plain_stream(pair.client.fd);
  auto server = make_plain_stream(pair.server.fd);
  auto payload = random_bytes(2048 * 8, 7);
  std::vector<iovec> iov;
  for (size_t i = 0; i < 2048; ++i)
    iov.push_back({payload.data() + i * 8, 8});
  auto writer = std::async(std::launch::async, [&] {
    return client->write_all(iov.data(), static_cast<int>(iov.size()));
  });
  std::vector<char> got(payload.size());
  auto read_rc = server->read_all(got.data(), got.size());
  auto write_rc = writer.get();
  EXPECT_EQ(write_rc, 0) << std::strerror(write_rc);
  EXPECT_EQ(read_rc, 0) << std::strerror(read_rc);
  EXPECT_TRUE(got == payload);
}

TEST(byte_stream, plain_read_of_zero_bytes_returns_at_once) {
  auto pair = connect_loopback({50ms});
  auto server = make_plain_stream(pair.server.fd);
  char dummy = 'x';
  EXPECT_EQ(server->read_all(&dummy, 0), 0);
  EXPECT_EQ(dummy, 'x');
}

TEST(byte_stream, plain_peer_closing_mid_read_gives_epipe) {
  auto pair = connect_loopback();
  auto client = make_plain_stream(pair.client.fd);
  auto server = make_plain_stream(pair.server.fd);
  auto half = random_bytes(1u << 20, 3);
  // Half of what the reader waits for, then the peer goes away.
  auto writer = std::async(std::launch::async, [&] {
    auto rc = client->write_all(half.data(), half.size());
    pair.client.close();
    return rc;
  });
  std::vector<char> got(2u << 20);
  EXPECT_EQ(server->read_all(got.data(), got.size()), EPIPE);
  EXPECT_EQ(writer.get(), 0);
  EXPECT_TRUE(std::equal(half.begin(), half.end(), got.begin()))
      << "bytes before the close are delivered";
}

TEST(byte_stream, plain_peer_gone_before_any_byte_gives_epipe) {
  auto pair = connect_loopback();
  auto server = make_plain_stream(pair.server.fd);
  pair.client.close();
  char buf[16];
  EXPECT_EQ(server->read_all(buf, sizeof(buf)), EPIPE);
}

TEST(byte_stream, plain_write_to_a_closed_peer_fails_without_sigpipe) {
  auto pair = connect_loopback();
  auto client = make_plain_stream(pair.client.fd);
  pair.server.close();
  // More than any socket buffer holds: the write must see the reset. A
  // SIGPIPE would kill the test binary instead.
  auto big = random_bytes(32u << 20, 5);
  auto rc = client->write_all(big.data(), big.size());
  EXPECT_TRUE(rc == EPIPE || rc == ECONNRESET) << std::strerror(rc);
}

TEST(byte_stream, plain_read_deadline_gives_eagain) {
  auto pair = connect_loopback();
  auto client = make_plain_stream(pair.client.fd);
  auto server = make_plain_stream(pair.server.fd);
  char buf[8];
  server->deadline(byte_stream::clock::now() + 100ms);
  EXPECT_EQ(server->read_all(buf, sizeof(buf)), EAGAIN) << "nothing sent";
  ASSERT_EQ(client->write_all("abcd", 4), 0);
  server->deadline(byte_stream::clock::now() + 100ms);
  EXPECT_EQ(server->read_all(buf, sizeof(buf)), EAGAIN)
      << "half of the bytes sent";
}

TEST(byte_stream, plain_write_deadline_gives_eagain_when_the_peer_stalls) {
  auto pair = connect_loopback({20s, 16 * 1024});
  auto client = make_plain_stream(pair.client.fd);
  client->deadline(byte_stream::clock::now() + 100ms);
  // The server never reads: 32 MiB cannot fit in the socket buffers.
  auto big = random_bytes(32u << 20, 6);
  EXPECT_EQ(client->write_all(big.data(), big.size()), EAGAIN);
}

TEST(byte_stream, destroying_a_plain_stream_leaves_the_socket_open) {
  auto pair = connect_loopback();
  make_plain_stream(pair.client.fd).reset();
  EXPECT_NE(::fcntl(pair.client.fd, F_GETFD), -1) << "the caller owns the fd";
  auto again = make_plain_stream(pair.client.fd);
  auto server = make_plain_stream(pair.server.fd);
  ASSERT_EQ(again->write_all("ok", 2), 0);
  char buf[2];
  ASSERT_EQ(server->read_all(buf, 2), 0);
  EXPECT_EQ(std::string(buf, 2), "ok");
}

// -- TLS ----------------------------------------------------------------------

struct tls_pair {
  connected_pair sockets;
  caf::expected<std::unique_ptr<byte_stream>> client{nullptr};
  caf::expected<std::unique_ptr<byte_stream>> server{nullptr};
};

/// The server or client side of a TLS stream with its handshake done
/// (what the data plane does in steps); a failed handshake is
/// `unauthenticated` naming it.
caf::expected<std::unique_ptr<byte_stream>> tls_side(const tls_context& ctx,
                                                     int fd, bool server) {
  auto stream = server ? ctx.server(fd) : ctx.client(fd);
  if (!stream)
    return stream;
  std::string why;
  if (auto rc = (*stream)->handshake(why); rc != 0)
    return make_error(
        errc::unauthenticated,
        "TLS handshake failed: "
            + (why.empty() ? std::string{std::strerror(rc)} : why));
  return stream;
}

/// Handshakes both ends concurrently (each side blocks on the other).
tls_pair handshake(const tls_context& client_ctx, const tls_context& server_ctx,
                   pair_options opts = {}) {
  tls_pair result;
  result.sockets = connect_loopback(opts);
  auto server = std::async(std::launch::async, [&] {
    return tls_side(server_ctx, result.sockets.server.fd, true);
  });
  result.client = tls_side(client_ctx, result.sockets.client.fd, false);
  result.server = server.get();
  return result;
}

std::shared_ptr<tls_context> context_of(const tls_options& opts) {
  auto ctx = tls_context::make(opts);
  EXPECT_TRUE(ctx) << describe(ctx.error());
  return ctx ? *ctx : nullptr;
}

/// Reads and drops whatever already arrived on `fd` (the server's TLS 1.3
/// session tickets), so a close() sends FIN rather than RST: with unread
/// bytes the kernel resets the connection and the peer may lose data.
void drain(int fd) {
  char buf[4096];
  while (::recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
    // nop
  }
}

/// A TLS client made with OpenSSL directly, for what tls_context refuses
/// to do: present a certificate its CA did not issue, or vanish without
/// close_notify. Trusts our CA.
struct raw_tls_client {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;

  raw_tls_client(const tls_options& opts, int fd) {
    ctx = SSL_CTX_new(TLS_client_method());
    EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx, opts.certificate.c_str()),
              1);
    EXPECT_EQ(
        SSL_CTX_use_PrivateKey_file(ctx, opts.key.c_str(), SSL_FILETYPE_PEM),
        1);
    EXPECT_EQ(SSL_CTX_load_verify_locations(
                  ctx, (pki::dir() / "ca.pem").string().c_str(), nullptr),
              1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
  }

  /// Frees the connection without sending close_notify.
  ~raw_tls_client() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
};

TEST(byte_stream, tls_round_trips_buffers_of_every_size_exactly) {
  auto client_ctx = context_of(tls_of("node1"));
  auto server_ctx = context_of(tls_of("node0"));
  ASSERT_TRUE(client_ctx && server_ctx);
  auto pair = handshake(*client_ctx, *server_ctx);
  ASSERT_TRUE(pair.client) << describe(pair.client.error());
  ASSERT_TRUE(pair.server) << describe(pair.server.error());
  expect_exact_round_trips(**pair.client, **pair.server);
  expect_exact_round_trips(**pair.server, **pair.client);
}

TEST(byte_stream, tls_scatter_write_keeps_byte_order) {
  auto ctx = context_of(tls_of("node0"));
  ASSERT_TRUE(ctx);
  auto pair = handshake(*ctx, *ctx);
  ASSERT_TRUE(pair.client && pair.server);
  auto a = random_bytes(100'000, 11);
  auto b = random_bytes(0, 12);
  auto c = random_bytes(3'000'001, 13);
  iovec iov[] = {{a.data(), a.size()}, {b.data(), 0}, {c.data(), c.size()}};
  auto writer = std::async(std::launch::async,
                           [&] { return (*pair.client)->write_all(iov, 3); });
  std::vector<char> got(a.size() + c.size());
  ASSERT_EQ((*pair.server)->read_all(got.data(), got.size()), 0);
  EXPECT_EQ(writer.get(), 0);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), got.begin()));
  EXPECT_TRUE(std::equal(c.begin(), c.end(), got.begin() + a.size()));
}

TEST(byte_stream, tls_peer_closing_mid_read_gives_an_error) {
  auto ctx = context_of(tls_of("node0"));
  ASSERT_TRUE(ctx);
  auto pair = handshake(*ctx, *ctx);
  ASSERT_TRUE(pair.client && pair.server);
  auto half = random_bytes(1u << 20, 21);
  auto writer = std::async(std::launch::async, [&] {
    auto rc = (*pair.client)->write_all(half.data(), half.size());
    pair.client->reset(); // close_notify
    drain(pair.sockets.client.fd);
    pair.sockets.client.close();
    return rc;
  });
  std::vector<char> got(2u << 20);
  auto rc = (*pair.server)->read_all(got.data(), got.size());
  EXPECT_EQ(writer.get(), 0);
  EXPECT_EQ(rc, EPIPE) << std::strerror(rc);
  EXPECT_TRUE(std::equal(half.begin(), half.end(), got.begin()))
      << "bytes before the close are delivered";
}

TEST(byte_stream, tls_peer_dropping_the_socket_without_close_notify_fails) {
  auto server_ctx = context_of(tls_of("node0"));
  ASSERT_TRUE(server_ctx);
  auto pair = connect_loopback();
  auto server = std::async(std::launch::async, [&] {
    return tls_side(*server_ctx, pair.server.fd, true);
  });
  {
    raw_tls_client client{tls_of("node1"), pair.client.fd};
    ASSERT_EQ(SSL_connect(client.ssl), 1);
    ASSERT_EQ(SSL_write(client.ssl, "abc", 3), 3);
  } // gone without close_notify: a truncation
  auto accepted = server.get();
  ASSERT_TRUE(accepted) << describe(accepted.error());
  drain(pair.client.fd);
  pair.client.close();
  char buf[8];
  auto rc = (*accepted)->read_all(buf, sizeof(buf));
  EXPECT_TRUE(rc == EPIPE || rc == EPROTO) << std::strerror(rc);
}

// tls_stream writes through a BIO that sends with MSG_NOSIGNAL (issue 13):
// writing to a peer that has gone away, and the close_notify that
// ~tls_stream sends, fail with an error instead of raising SIGPIPE, which
// would kill the whole node. The forked child keeps SIGPIPE's default
// action, so a regression kills it.
TEST(byte_stream, tls_write_to_a_closed_peer_fails_without_sigpipe) {
  pki::dir(); // made here: the forked child shares it
  auto write_after_peer_left = [] {
    auto ctx = context_of(tls_of("node0"));
    auto pair = handshake(*ctx, *ctx);
    if (!pair.client || !pair.server)
      std::_Exit(2);
    pair.server->reset();
    drain(pair.sockets.server.fd);
    pair.sockets.server.close();
    auto big = random_bytes(32u << 20, 9);
    auto rc = (*pair.client)->write_all(big.data(), big.size());
    pair.client->reset(); // close_notify to a closed peer
    std::_Exit(rc == EPIPE || rc == ECONNRESET ? 0 : 1);
  };
  EXPECT_EXIT(write_after_peer_left(), ::testing::ExitedWithCode(0), "")
      << "killed by a signal (SIGPIPE) instead of returning EPIPE";
}

TEST(byte_stream, tls_read_deadline_gives_eagain) {
  auto ctx = context_of(tls_of("node0"));
  ASSERT_TRUE(ctx);
  auto pair = handshake(*ctx, *ctx, {200ms});
  ASSERT_TRUE(pair.client && pair.server);
  char buf[8];
  (*pair.server)->deadline(byte_stream::clock::now() + 200ms);
  EXPECT_EQ((*pair.server)->read_all(buf, sizeof(buf)), EAGAIN);
}

TEST(byte_stream,
     tls_server_refuses_a_client_certificate_its_ca_did_not_issue) {
  auto server_ctx = context_of(tls_of("node0"));
  ASSERT_TRUE(server_ctx);
  auto pair = connect_loopback();
  auto server = std::async(std::launch::async, [&] {
    return tls_side(*server_ctx, pair.server.fd, true);
  });
  // Trusts our CA but presents a certificate of another CA (tls_context
  // refuses to build such a context, hence OpenSSL directly).
  raw_tls_client rogue{tls_of("rogue"), pair.client.fd};
  SSL_connect(rogue.ssl); // TLS 1.3: may succeed before the server verified
  auto accepted = server.get();
  ASSERT_FALSE(accepted) << "the server accepted a rogue client certificate";
  EXPECT_EQ(code_of(accepted.error()), errc::unauthenticated)
      << describe(accepted.error());
  EXPECT_NE(message_of(accepted.error()).find("handshake"), std::string::npos)
      << message_of(accepted.error());
  char buf[1];
  EXPECT_LE(SSL_read(rogue.ssl, buf, 1), 0) << "the rogue client got data";
}

TEST(byte_stream,
     tls_client_refuses_a_server_certificate_its_ca_did_not_issue) {
  auto client_ctx = context_of(tls_of("node1"));
  auto rogue_server_ctx = context_of(tls_of("rogue", "rogue-ca"));
  ASSERT_TRUE(client_ctx && rogue_server_ctx);
  auto pair = handshake(*client_ctx, *rogue_server_ctx);
  ASSERT_FALSE(pair.client) << "the client accepted a rogue server";
  EXPECT_EQ(code_of(pair.client.error()), errc::unauthenticated)
      << describe(pair.client.error());
  EXPECT_NE(message_of(pair.client.error()).find("handshake"),
            std::string::npos)
      << message_of(pair.client.error());
  EXPECT_FALSE(pair.server) << "the server side fails too (alert)";
}

TEST(byte_stream, tls_client_refuses_a_plain_server) {
  auto ctx = context_of(tls_of("node0"));
  ASSERT_TRUE(ctx);
  auto pair = connect_loopback({2s});
  // The server speaks plain bytes, not TLS.
  auto server = make_plain_stream(pair.server.fd);
  auto garbage = std::async(std::launch::async, [&] {
    char hello[5];
    server->read_all(hello, sizeof(hello)); // the client's hello starts
    return server->write_all("HTTP/1.0 400 nope\r\n\r\n", 21);
  });
  auto client = tls_side(*ctx, pair.client.fd, false);
  ASSERT_FALSE(client);
  EXPECT_EQ(code_of(client.error()), errc::unauthenticated)
      << describe(client.error());
  garbage.get();
}

TEST(byte_stream, tls_context_refuses_bad_files_naming_the_option) {
  auto opts = tls_of("node0");
  opts.key = (pki::dir() / "missing.key").string();
  auto ctx = tls_context::make(opts);
  ASSERT_FALSE(ctx);
  EXPECT_EQ(code_of(ctx.error()), errc::invalid_argument);
  EXPECT_NE(message_of(ctx.error()).find("openssl.key"), std::string::npos)
      << message_of(ctx.error());
  auto rogue = tls_of("rogue"); // trusts our CA, which did not issue it
  auto refused = tls_context::make(rogue);
  ASSERT_FALSE(refused) << "a certificate the CA did not issue is accepted";
  EXPECT_EQ(code_of(refused.error()), errc::invalid_argument);
}

} // namespace

} // namespace
} // namespace byte_stream_test_file
