#include "actors/dataplane/tls.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/all.hpp>

#include <dlfcn.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "store/error.hpp"

namespace objstore {

namespace {

caf::error bad(const std::string& option, const std::string& file,
               const std::string& why) {
  return make_error(errc::invalid_argument,
                    "openssl." + option + " '" + file + "': " + why);
}

struct file_closer {
  void operator()(FILE* f) const {
    if (f != nullptr)
      std::fclose(f);
  }
};
using file_ptr = std::unique_ptr<FILE, file_closer>;

struct x509_free {
  void operator()(X509* x) const { X509_free(x); }
};
using x509_ptr = std::unique_ptr<X509, x509_free>;

struct pkey_free {
  void operator()(EVP_PKEY* x) const { EVP_PKEY_free(x); }
};

} // namespace

caf::error validate_tls(const tls_options& x) {
  if (x.certificate.empty() && x.key.empty() && x.cafile.empty())
    return {};
  if (x.certificate.empty() || x.key.empty() || x.cafile.empty())
    return make_error(errc::invalid_argument,
                      "mutual TLS needs openssl.certificate, openssl.key "
                      "and openssl.cafile together");
  file_ptr cert_file{std::fopen(x.certificate.c_str(), "r")};
  if (!cert_file)
    return bad("certificate", x.certificate, "cannot be read");
  x509_ptr cert{PEM_read_X509(cert_file.get(), nullptr, nullptr, nullptr)};
  if (!cert)
    return bad("certificate", x.certificate,
               "not a PEM certificate ("
                   + detail::openssl_reason("unknown OpenSSL error") + ")");
  file_ptr key_file{std::fopen(x.key.c_str(), "r")};
  if (!key_file)
    return bad("key", x.key, "cannot be read");
  auto passphrase = x.passphrase;
  std::unique_ptr<EVP_PKEY, pkey_free> key{PEM_read_PrivateKey(
      key_file.get(), nullptr, detail::openssl_passphrase_cb, &passphrase)};
  if (!key)
    return bad("key", x.key,
               "cannot be decrypted or parsed (wrong openssl.passphrase?)");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return bad("key", x.key, "does not match " + x.certificate);
  }
  file_ptr ca_file{std::fopen(x.cafile.c_str(), "r")};
  if (!ca_file)
    return bad("cafile", x.cafile, "cannot be read");
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store{
      X509_STORE_new(), &X509_STORE_free};
  size_t cas = 0;
  while (auto* ca = PEM_read_X509(ca_file.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store.get(), ca);
    X509_free(ca);
    ++cas;
  }
  ERR_clear_error();
  if (cas == 0)
    return bad("cafile", x.cafile, "holds no PEM certificate");
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx{
      X509_STORE_CTX_new(), &X509_STORE_CTX_free};
  X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr);
  if (X509_verify_cert(ctx.get()) != 1) {
    auto why
        = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    ERR_clear_error();
    return bad("certificate", x.certificate,
               std::string{"not issued by openssl.cafile: "} + why);
  }
  return {};
}

void apply_tls(caf::actor_system_config& cfg, const tls_options& x) {
  if (!x.enabled())
    return;
  cfg.load<caf::openssl::manager>();
  cfg.openssl_certificate = x.certificate;
  cfg.openssl_key = x.key;
  cfg.openssl_cafile = x.cafile;
  cfg.openssl_passphrase = x.passphrase;
}

bool uses_tls(const caf::actor_system& sys) {
  return sys.has_openssl_manager() && !sys.config().openssl_certificate.empty();
}

caf::expected<uint16_t> publish_worker(caf::actor_system& sys,
                                       const worker_actor& worker,
                                       uint16_t port, const std::string& host) {
  if (uses_tls(sys))
    return caf::openssl::publish(worker, port, host.c_str(), true);
  return sys.middleman().publish(worker, port, host.c_str(), true);
}

caf::expected<worker_actor>
connect_worker(caf::actor_system& sys, const std::string& host, uint16_t port) {
  if (uses_tls(sys))
    return caf::openssl::remote_actor<worker_actor>(sys, host, port);
  return sys.middleman().remote_actor<worker_actor>(host, port);
}

void unpublish_worker(caf::actor_system& sys, const worker_actor& worker,
                      uint16_t port) {
  if (uses_tls(sys)) {
    // caf/openssl/unpublish.hpp of 0.17.6 does not compile: ask the SSL
    // middleman actor directly.
    caf::anon_send(sys.openssl_manager().actor_handle(),
                   caf::unpublish_atom::value, worker.address(), port);
  } else {
    sys.middleman().unpublish(worker, port);
  }
}

namespace detail {

int openssl_passphrase_cb(char* buf, int size, int, void* user) {
  auto* text = static_cast<const std::string*>(user);
  auto n = std::min<int>(size, static_cast<int>(text->size()));
  std::copy_n(text->data(), n, buf);
  return n;
}

std::string openssl_reason(const char* fallback) {
  auto code = ERR_get_error();
  ERR_clear_error();
  if (code == 0)
    return fallback;
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

} // namespace detail

} // namespace objstore

// CAF 0.17's openssl module reads SSL_get_error without clearing the
// thread's OpenSSL error queue before its SSL calls, which OpenSSL requires.
// OpenSSL 3 leaves an error in that queue when a peer closes a connection
// before its handshake ends; the next SSL_read of *another* connection on
// CAF's network thread then reads as a fatal error and CAF drops that
// connection. One bare TCP connect-and-close to a TLS worker's port ended
// every driver's session on it (session_test, `..._closed_before_tls`).
// These definitions interpose the four I/O calls CAF makes (the executable's
// symbols come before libssl's) and clear the queue first, as documented.
namespace {

template<class F>
F next_symbol(const char* name) {
  auto f = reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
  if (f == nullptr) {
    std::fprintf(stderr, "objstore: cannot find OpenSSL's %s: %s\n", name,
                 dlerror());
    std::abort();
  }
  return f;
}

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static auto next = next_symbol<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return next(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto next = next_symbol<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return next(ssl, buf, num);
}

int SSL_accept(SSL* ssl) {
  static auto next = next_symbol<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return next(ssl);
}

int SSL_connect(SSL* ssl) {
  static auto next = next_symbol<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return next(ssl);
}

} // extern "C"
