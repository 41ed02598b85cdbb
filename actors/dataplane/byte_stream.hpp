#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include <poll.h>
#include <sys/uio.h>

#include <caf/expected.hpp>

#include "actors/dataplane/tls.hpp"

namespace objstore {

/// A connected byte stream over a socket the caller owns: plain TCP, or TLS
/// with a verified peer. Every call waits at most until the stream's
/// deadline, which the caller sets per connection phase: a peer that
/// trickles one byte at a time cannot stretch a phase the way it could
/// restart a per-`recv` timeout. A deadline in the past makes every call
/// non-blocking (the data plane's gate drives many handshakes from one
/// thread that way). Writes never raise SIGPIPE, under TLS too: a peer
/// that closes must not kill the process. Functions return 0 or an errno
/// value (EAGAIN: not done by the deadline, EPIPE: closed by the peer,
/// EPROTO: TLS failure).
class byte_stream {
public:
  using clock = std::chrono::steady_clock;

  virtual ~byte_stream();

  /// Runs the TLS handshake (plain streams: nothing to do). On failure
  /// other than EAGAIN, `why` names the reason.
  virtual int handshake(std::string& why);

  /// Writes every byte of the `count` buffers (consumes `iov`).
  virtual int write_all(iovec* iov, int count) = 0;

  /// Reads exactly `size` bytes.
  virtual int read_all(void* data, size_t size) = 0;

  /// Reads between 1 and `size` bytes into `data` (`got` says how many),
  /// waiting until the deadline for the first one.
  virtual int read_some(void* data, size_t size, size_t& got) = 0;

  /// The readiness (POLLIN or POLLOUT) the last EAGAIN waited for: a TLS
  /// handshake or read may need to write first.
  virtual short wants() const noexcept { return POLLIN; }

  /// Sets the deadline of every following call (`clock::time_point::max()`
  /// waits without limit, the default).
  void deadline(clock::time_point t) noexcept { deadline_ = t; }

  clock::time_point deadline() const noexcept { return deadline_; }

  int write_all(const void* data, size_t size) {
    iovec iov{const_cast<void*>(data), size};
    return write_all(&iov, 1);
  }

protected:
  clock::time_point deadline_ = clock::time_point::max();
};

/// A plain TCP stream over `fd`.
std::unique_ptr<byte_stream> make_plain_stream(int fd);

/// Waits until `fd` is ready for `events` (POLLIN / POLLOUT); returns 0
/// when it is (or has an error or hang-up for the next call to report),
/// EAGAIN once `deadline` has passed, or poll's errno.
int wait_ready(int fd, short events, byte_stream::clock::time_point deadline);

/// TLS settings shared by a node's data-plane connections: mutual
/// authentication against the configured CA, TLS 1.3 only.
class tls_context {
public:
  /// Loads certificate, key and CA. Errors: `invalid_argument` naming the
  /// file (validate_tls gives the precise reason first).
  static caf::expected<std::shared_ptr<tls_context>>
  make(const tls_options& options);

  ~tls_context();

  /// Wraps an accepted socket; `handshake()` then runs the server side,
  /// which requires a client certificate issued by the CA. Errors:
  /// `io_error` (OpenSSL out of memory).
  caf::expected<std::unique_ptr<byte_stream>> server(int fd) const;

  /// Wraps a connected socket; `handshake()` then runs the client side,
  /// which requires a server certificate issued by the CA. Errors:
  /// `io_error` (OpenSSL out of memory).
  caf::expected<std::unique_ptr<byte_stream>> client(int fd) const;

private:
  tls_context() = default;
  caf::expected<std::unique_ptr<byte_stream>> wrap(int fd, bool server) const;
  void* ctx_ = nullptr; // SSL_CTX*
};

} // namespace objstore
