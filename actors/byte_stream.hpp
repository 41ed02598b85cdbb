#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include <sys/uio.h>

#include <caf/expected.hpp>

#include "actors/tls.hpp"

namespace objstore {

/// A connected, blocking byte stream over a socket the caller owns: plain
/// TCP, or TLS with a verified peer. Socket timeouts (SO_RCVTIMEO /
/// SO_SNDTIMEO) apply to both. Writes never raise SIGPIPE, under TLS too
/// (MSG_NOSIGNAL through a BIO of our own): a peer that closes must not
/// kill the process. Functions return 0 or an errno value (EAGAIN:
/// timeout, EPIPE: closed by the peer, EPROTO: TLS failure).
class byte_stream {
public:
  virtual ~byte_stream();

  /// Writes every byte of the `count` buffers (consumes `iov`).
  virtual int write_all(iovec* iov, int count) = 0;

  /// Reads exactly `size` bytes.
  virtual int read_all(void* data, size_t size) = 0;

  int write_all(const void* data, size_t size) {
    iovec iov{const_cast<void*>(data), size};
    return write_all(&iov, 1);
  }
};

/// A plain TCP stream over `fd`.
std::unique_ptr<byte_stream> make_plain_stream(int fd);

/// TLS settings shared by a node's data-plane connections: mutual
/// authentication against the configured CA, TLS 1.3 only.
class tls_context {
public:
  /// Loads certificate, key and CA. Errors: `invalid_argument` naming the
  /// file (validate_tls gives the precise reason first).
  static caf::expected<std::shared_ptr<tls_context>>
  make(const tls_options& options);

  ~tls_context();

  /// Server side handshake on an accepted socket; the client must present
  /// a certificate issued by the CA. Errors: `unauthenticated`.
  caf::expected<std::unique_ptr<byte_stream>> accept(int fd) const;

  /// Client side handshake on a connected socket; the server must present
  /// a certificate issued by the CA. Errors: `unauthenticated`.
  caf::expected<std::unique_ptr<byte_stream>> connect(int fd) const;

private:
  tls_context() = default;
  void* ctx_ = nullptr; // SSL_CTX*
};

} // namespace objstore
