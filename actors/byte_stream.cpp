#include "actors/byte_stream.hpp"

#include <cerrno>
#include <cstdint>

#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "store/error.hpp"

namespace objstore {

byte_stream::~byte_stream() {
  // nop
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
      auto n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR)
          continue;
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
      auto n = ::recv(fd_, pos, size, 0);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        return errno;
      }
      if (n == 0)
        return EPIPE;
      pos += n;
      size -= static_cast<size_t>(n);
    }
    return 0;
  }

private:
  int fd_;
};

// -- TLS over a socket BIO of our own -----------------------------------------

int bio_fd(BIO* b) {
  return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b)));
}

int bio_write(BIO* b, const char* data, size_t size, size_t* written) {
  // MSG_NOSIGNAL is the point of this BIO: OpenSSL's own socket BIO
  // writes with write(2), and SIGPIPE from a closed peer ends the process.
  BIO_clear_retry_flags(b);
  for (;;) {
    auto n = ::send(bio_fd(b), data, size, MSG_NOSIGNAL);
    if (n >= 0) {
      *written = static_cast<size_t>(n);
      return 1;
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      BIO_set_retry_write(b); // SO_SNDTIMEO passed
    return 0; // errno tells OpenSSL's caller why (SSL_ERROR_SYSCALL)
  }
}

int bio_read(BIO* b, char* data, size_t size, size_t* read) {
  BIO_clear_retry_flags(b);
  for (;;) {
    auto n = ::recv(bio_fd(b), data, size, 0);
    if (n > 0) {
      *read = static_cast<size_t>(n);
      return 1;
    }
    if (n == 0) {
      BIO_set_flags(b, BIO_FLAGS_IN_EOF);
      return 0;
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      BIO_set_retry_read(b); // SO_RCVTIMEO passed
    return 0;
  }
}

long bio_ctrl(BIO* b, int cmd, long, void* ptr) {
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1; // nothing is buffered here
    case BIO_CTRL_EOF: return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    case BIO_C_GET_FD:
      if (ptr != nullptr)
        *static_cast<int*>(ptr) = bio_fd(b);
      return bio_fd(b);
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

/// An SSL session on `fd` whose writes never raise SIGPIPE, or null.
SSL* make_ssl(void* ctx, int fd) {
  auto* ssl = SSL_new(static_cast<SSL_CTX*>(ctx));
  auto* bio = ssl != nullptr ? BIO_new(socket_method()) : nullptr;
  if (bio == nullptr) {
    SSL_free(ssl);
    return nullptr;
  }
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl, bio, bio); // one reference for both directions
  return ssl;
}

/// Maps an SSL I/O failure to an errno value; `broken` is set when
/// OpenSSL forbids further use (SSL_shutdown included).
int ssl_errno(SSL* ssl, int rc, bool& broken) {
  auto sys = errno;
  auto code = SSL_get_error(ssl, rc);
  auto reason = ERR_GET_REASON(ERR_peek_error());
  ERR_clear_error();
  switch (code) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: return EAGAIN;
    case SSL_ERROR_ZERO_RETURN: broken = true; return EPIPE;
    case SSL_ERROR_SYSCALL: broken = true; return sys != 0 ? sys : EPIPE;
    default:
      broken = true;
      // A peer that closes without close_notify (it died) is a closed
      // connection, not a protocol violation.
      return reason == SSL_R_UNEXPECTED_EOF_WHILE_READING ? EPIPE : EPROTO;
  }
}

class tls_stream : public byte_stream {
public:
  explicit tls_stream(SSL* ssl) : ssl_(ssl) {}
  ~tls_stream() override {
    if (!broken_)
      SSL_shutdown(ssl_);
    SSL_free(ssl_);
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
          return ssl_errno(ssl_, rc, broken_);
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
      errno = 0;
      auto rc = SSL_read_ex(ssl_, pos, size, &got);
      if (rc != 1)
        return ssl_errno(ssl_, rc, broken_);
      pos += got;
      size -= got;
    }
    return 0;
  }

private:
  SSL* ssl_;
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

caf::expected<std::unique_ptr<byte_stream>> tls_context::accept(int fd) const {
  auto* ssl = make_ssl(ctx_, fd);
  if (ssl == nullptr)
    return make_error(errc::io_error, "cannot create a TLS session");
  if (SSL_accept(ssl) != 1) {
    auto why = detail::openssl_reason("handshake failed");
    SSL_free(ssl);
    return make_error(errc::unauthenticated,
                      "data plane TLS handshake refused: " + why);
  }
  return std::unique_ptr<byte_stream>{new tls_stream(ssl)};
}

caf::expected<std::unique_ptr<byte_stream>> tls_context::connect(int fd) const {
  auto* ssl = make_ssl(ctx_, fd);
  if (ssl == nullptr)
    return make_error(errc::io_error, "cannot create a TLS session");
  if (SSL_connect(ssl) != 1) {
    auto why = detail::openssl_reason("handshake failed");
    SSL_free(ssl);
    return make_error(errc::unauthenticated,
                      "data plane TLS handshake failed: " + why);
  }
  return std::unique_ptr<byte_stream>{new tls_stream(ssl)};
}

} // namespace objstore
