#include "actors/dataplane/byte_stream.hpp"

#include <cerrno>
#include <climits>
#include <cstring>

#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "store/error.hpp"

namespace objstore {

byte_stream::~byte_stream() {
  // nop
}

int byte_stream::handshake(std::string&) {
  return 0;
}

int wait_ready(int fd, short events, byte_stream::clock::time_point deadline) {
  using namespace std::chrono;
  for (;;) {
    int ms = -1;
    if (deadline != byte_stream::clock::time_point::max()) {
      auto now = byte_stream::clock::now();
      if (deadline <= now)
        return EAGAIN;
      // Rounded up, so a poll that times out ends past the deadline.
      auto left = ceil<milliseconds>(deadline - now).count();
      ms = static_cast<int>(std::min<int64_t>(left, INT_MAX));
    }
    pollfd p{fd, events, 0};
    auto rc = ::poll(&p, 1, ms);
    if (rc > 0)
      return 0;
    if (rc < 0 && errno != EINTR)
      return errno;
  }
}

namespace {

class plain_stream : public byte_stream {
public:
  explicit plain_stream(int fd) : fd_(fd) {}

  int write_all(iovec* iov, int count) override {
    while (count > 0) {
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<size_t>(count);
      auto n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          if (auto code = wait_ready(fd_, POLLOUT, deadline_))
            return code;
          continue;
        }
        return errno;
      }
      auto left = static_cast<size_t>(n);
      while (count > 0 && left >= iov->iov_len) {
        left -= iov->iov_len;
        ++iov;
        --count;
      }
      if (count > 0) {
        iov->iov_base = static_cast<char*>(iov->iov_base) + left;
        iov->iov_len -= left;
      }
    }
    return 0;
  }

  int read_all(void* data, size_t size) override {
    auto* pos = static_cast<char*>(data);
    while (size > 0) {
      size_t got = 0;
      if (auto code = read_some(pos, size, got))
        return code;
      pos += got;
      size -= got;
    }
    return 0;
  }

  int read_some(void* data, size_t size, size_t& got) override {
    for (;;) {
      auto n = ::recv(fd_, data, size, MSG_DONTWAIT);
      if (n > 0) {
        got = static_cast<size_t>(n);
        return 0;
      }
      if (n == 0)
        return EPIPE;
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        return errno;
      if (auto code = wait_ready(fd_, POLLIN, deadline_))
        return code;
    }
  }

private:
  int fd_;
};

// -- TLS over a socket BIO of our own -----------------------------------------

/// What the BIO of a TLS stream needs: the socket, the stream's deadline
/// and where to report which readiness it waited for.
struct bio_target {
  int fd = -1;
  const byte_stream::clock::time_point* deadline = nullptr;
  short wants = POLLIN;
};

/// Shared by the read and write callbacks: a would-block result waits for
/// readiness until the deadline; past it, OpenSSL sees a retryable result
/// (SSL_ERROR_WANT_*) that the stream reports as EAGAIN.
template<class Io>
int bio_io(BIO* b, short events, size_t* done, Io io) {
  auto* t = static_cast<bio_target*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  for (;;) {
    auto n = io(t->fd);
    if (n > 0 || (n == 0 && events == POLLOUT)) {
      *done = static_cast<size_t>(n);
      return 1;
    }
    if (n == 0) {
      BIO_set_flags(b, BIO_FLAGS_IN_EOF);
      return 0;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      return 0; // errno tells OpenSSL's caller why (SSL_ERROR_SYSCALL)
    t->wants = events;
    auto code = wait_ready(t->fd, events, *t->deadline);
    if (code == 0)
      continue;
    if (code == EAGAIN) {
      if (events == POLLIN)
        BIO_set_retry_read(b);
      else
        BIO_set_retry_write(b);
    }
    errno = code;
    return 0;
  }
}

int bio_write(BIO* b, const char* data, size_t size, size_t* written) {
  // MSG_NOSIGNAL is the point of this BIO: OpenSSL's own socket BIO
  // writes with write(2), and SIGPIPE from a closed peer ends the process.
  return bio_io(b, POLLOUT, written, [&](int fd) {
    return ::send(fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
  });
}

int bio_read(BIO* b, char* data, size_t size, size_t* read) {
  return bio_io(b, POLLIN, read,
                [&](int fd) { return ::recv(fd, data, size, MSG_DONTWAIT); });
}

long bio_ctrl(BIO* b, int cmd, long, void* ptr) {
  auto* t = static_cast<bio_target*>(BIO_get_data(b));
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1; // nothing is buffered here
    case BIO_CTRL_EOF: return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    case BIO_C_GET_FD:
      if (ptr != nullptr)
        *static_cast<int*>(ptr) = t->fd;
      return t->fd;
    default: return 0; // unsupported (kTLS, dgram, ...)
  }
}

BIO_METHOD* socket_method() {
  static BIO_METHOD* method = [] {
    auto* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK
                               | BIO_TYPE_DESCRIPTOR,
                           "objstore socket");
    if (m != nullptr) {
      BIO_meth_set_write_ex(m, bio_write);
      BIO_meth_set_read_ex(m, bio_read);
      BIO_meth_set_ctrl(m, bio_ctrl);
    }
    return m;
  }();
  return method;
}

class tls_stream : public byte_stream {
public:
  /// Takes ownership of `ssl`, whose BIO points to `target_`.
  tls_stream(SSL* ssl, int fd) : ssl_(ssl) {
    target_.fd = fd;
    target_.deadline = &deadline_;
  }

  ~tls_stream() override {
    if (!broken_ && SSL_is_init_finished(ssl_)) {
      // Best effort close_notify: never wait for a peer that does not read.
      deadline_ = clock::time_point::min();
      SSL_shutdown(ssl_);
    }
    SSL_free(ssl_);
  }

  bio_target* target() noexcept { return &target_; }

  int handshake(std::string& why) override {
    errno = 0;
    ERR_clear_error();
    auto rc = SSL_do_handshake(ssl_);
    if (rc == 1)
      return 0;
    auto code = SSL_get_error(ssl_, rc);
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
      ERR_clear_error();
      return EAGAIN;
    }
    broken_ = true;
    auto sys = errno;
    auto reason = ERR_GET_REASON(ERR_peek_error());
    why = detail::openssl_reason(sys != 0 ? std::strerror(sys)
                                          : "peer closed the connection");
    // A peer that goes away mid-handshake is a lost connection; only a
    // TLS-level failure (certificate, protocol) is EPROTO.
    if (code == SSL_ERROR_SYSCALL)
      return sys != 0 ? sys : EPIPE;
    return reason == SSL_R_UNEXPECTED_EOF_WHILE_READING ? EPIPE : EPROTO;
  }

  int write_all(iovec* iov, int count) override {
    for (int i = 0; i < count; ++i) {
      auto* pos = static_cast<const char*>(iov[i].iov_base);
      auto left = iov[i].iov_len;
      while (left > 0) {
        size_t written = 0;
        errno = 0;
        auto rc = SSL_write_ex(ssl_, pos, left, &written);
        if (rc != 1)
          return failure(rc);
        pos += written;
        left -= written;
      }
    }
    return 0;
  }

  int read_all(void* data, size_t size) override {
    auto* pos = static_cast<char*>(data);
    while (size > 0) {
      size_t got = 0;
      if (auto code = read_some(pos, size, got))
        return code;
      pos += got;
      size -= got;
    }
    return 0;
  }

  int read_some(void* data, size_t size, size_t& got) override {
    errno = 0;
    auto rc = SSL_read_ex(ssl_, data, size, &got);
    return rc == 1 ? 0 : failure(rc);
  }

  short wants() const noexcept override { return target_.wants; }

private:
  /// Maps an SSL I/O failure to an errno value.
  int failure(int rc) {
    auto sys = errno;
    auto code = SSL_get_error(ssl_, rc);
    auto reason = ERR_GET_REASON(ERR_peek_error());
    ERR_clear_error();
    switch (code) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE: return EAGAIN;
      case SSL_ERROR_ZERO_RETURN: broken_ = true; return EPIPE;
      case SSL_ERROR_SYSCALL: broken_ = true; return sys != 0 ? sys : EPIPE;
      default:
        broken_ = true;
        // A peer that closes without close_notify (it died) is a closed
        // connection, not a protocol violation.
        return reason == SSL_R_UNEXPECTED_EOF_WHILE_READING ? EPIPE : EPROTO;
    }
  }

  SSL* ssl_;
  bio_target target_;
  /// After a fatal error OpenSSL forbids SSL_shutdown.
  bool broken_ = false;
};

} // namespace

std::unique_ptr<byte_stream> make_plain_stream(int fd) {
  return std::make_unique<plain_stream>(fd);
}

caf::expected<std::shared_ptr<tls_context>>
tls_context::make(const tls_options& options) {
  if (auto err = validate_tls(options))
    return err;
  std::shared_ptr<tls_context> result{new tls_context};
  auto* ctx = SSL_CTX_new(TLS_method());
  if (ctx == nullptr || socket_method() == nullptr)
    return make_error(errc::io_error, "cannot create a TLS context");
  result->ctx_ = ctx;
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  // No resumption: tickets would only add writes after the handshake.
  SSL_CTX_set_num_tickets(ctx, 0);
  auto passphrase = options.passphrase;
  SSL_CTX_set_default_passwd_cb(ctx, detail::openssl_passphrase_cb);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, &passphrase);
  auto fail = [&](const std::string& option, const std::string& file) {
    return make_error(errc::invalid_argument,
                      "openssl." + option + " '" + file
                          + "': " + detail::openssl_reason("handshake failed"));
  };
  if (SSL_CTX_use_certificate_chain_file(ctx, options.certificate.c_str()) != 1)
    return fail("certificate", options.certificate);
  if (SSL_CTX_use_PrivateKey_file(ctx, options.key.c_str(), SSL_FILETYPE_PEM)
      != 1)
    return fail("key", options.key);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
  if (SSL_CTX_load_verify_locations(ctx, options.cafile.c_str(), nullptr) != 1)
    return fail("cafile", options.cafile);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     nullptr);
  return result;
}

tls_context::~tls_context() {
  SSL_CTX_free(static_cast<SSL_CTX*>(ctx_));
}

caf::expected<std::unique_ptr<byte_stream>>
tls_context::wrap(int fd, bool server) const {
  auto* ssl = SSL_new(static_cast<SSL_CTX*>(ctx_));
  auto* bio = ssl != nullptr ? BIO_new(socket_method()) : nullptr;
  if (bio == nullptr) {
    SSL_free(ssl);
    ERR_clear_error();
    return make_error(errc::io_error, "cannot create a TLS session");
  }
  auto stream = std::make_unique<tls_stream>(ssl, fd);
  BIO_set_data(bio, stream->target());
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl, bio, bio); // one reference for both directions
  if (server)
    SSL_set_accept_state(ssl);
  else
    SSL_set_connect_state(ssl);
  return std::unique_ptr<byte_stream>{std::move(stream)};
}

caf::expected<std::unique_ptr<byte_stream>> tls_context::server(int fd) const {
  return wrap(fd, true);
}

caf::expected<std::unique_ptr<byte_stream>> tls_context::client(int fd) const {
  return wrap(fd, false);
}

} // namespace objstore
