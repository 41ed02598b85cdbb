#include "actors/dataplane/tls.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/all.hpp>

#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

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

namespace {

/// Returns once `middleman` and CAF's broker behind it answered a request
/// sent after everything `self` sent them before (at most 1 s).
void sync_with(caf::scoped_actor& self,
               const caf::io::middleman_actor& middleman) {
  self->request(middleman, std::chrono::seconds{1}, caf::get_atom::value,
                caf::node_id{})
      .receive([](caf::node_id&, std::string&, uint16_t) {},
               [](caf::error&) {});
}

} // namespace

caf::expected<worker_actor> connect_worker(caf::actor_system& sys,
                                           const std::string& host,
                                           uint16_t port,
                                           caf::timespan deadline) {
  using clock = std::chrono::steady_clock;
  auto where = host + ":" + std::to_string(port);
  // CAF's blocking remote_actor waits on the middleman actor without a
  // timeout; its connect request is the same one, with a deadline.
  auto tls = uses_tls(sys);
  auto middleman = tls ? sys.openssl_manager().actor_handle()
                       : sys.middleman().actor_handle();
  auto start = clock::now();
  auto give_up = start + deadline;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline);
  caf::scoped_actor self{sys, true};
  for (;;) {
    auto left
        = std::chrono::duration_cast<caf::timespan>(give_up - clock::now());
    if (left.count() <= 0) {
      if (tls) {
        // Abandoned TLS handshakes spin CAF's network thread and block
        // the system's shutdown: end them. First let the middleman finish
        // setting up the last attempt (once it answers a later request,
        // every attempt's handshake has begun); after the abort let CAF's
        // broker report the failures to it (it answers after that), so
        // that a new connect does not join a handshake about to fail.
        sync_with(self, middleman);
        detail::abort_client_handshakes(host, port, start,
                                        std::chrono::seconds{1});
        sync_with(self, middleman);
      }
      return make_error(errc::timeout,
                        "connecting to " + where + ": no handshake within "
                            + std::to_string(ms.count())
                            + " ms (a frozen process or not an objstore "
                              "worker?)");
    }
    worker_actor found;
    caf::error failure;
    bool again = false;
    self->request(middleman, left, caf::connect_atom::value, host, port)
        .receive(
            [&](caf::node_id&, caf::strong_actor_ptr& ptr,
                std::set<std::string>& ifs) {
              if (!ptr)
                failure = caf::make_error(caf::sec::no_actor_published_at_port,
                                          port);
              else if (!sys.assignable<worker_actor>(ifs))
                failure = caf::make_error(
                    caf::sec::unexpected_actor_messaging_interface,
                    sys.message_types<worker_actor>(), std::move(ifs));
              else
                found = caf::actor_cast<worker_actor>(std::move(ptr));
            },
            [&](caf::error& err) {
              // request_timeout: the deadline passed (reported above).
              // connection_timeout: the handshake of a healthy peer can
              // straddle one of CAF's heartbeat ticks, which drops it (CAF
              // 0.17 counts a connecting peer as last seen at the clock's
              // epoch), so try again; against a silent peer every tick
              // ends one attempt and the deadline decides.
              if (err == caf::sec::request_timeout
                  || err == caf::sec::connection_timeout)
                again = true;
              else
                failure = std::move(err);
            });
    if (again)
      continue;
    if (failure)
      return failure;
    return found;
  }
}

caf::expected<worker_actor>
connect_worker(caf::actor_system& sys, const std::string& host, uint16_t port) {
  return connect_worker(
      sys, host, port,
      caf::get_or(sys.config(), "objstore.timeout", default_connect_timeout));
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

namespace {

/// Client TLS handshakes in progress in this process (CAF's and the data
/// plane's), by session, with the time of their first SSL_connect.
/// Entries leave when the handshake ends or the session is freed, both
/// under the mutex: every SSL* in the table is alive and owns its socket.
struct client_handshakes {
  std::mutex mtx;
  std::unordered_map<SSL*, std::chrono::steady_clock::time_point> started;
};

client_handshakes& handshakes() {
  // Never destroyed: OpenSSL sessions may be freed during static
  // destruction.
  static auto* table = new client_handshakes;
  return *table;
}

/// Whether `fd` is connected to one of `addrs`.
bool peer_in(int fd, const std::vector<sockaddr_storage>& addrs) {
  sockaddr_storage peer{};
  socklen_t len = sizeof(peer);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0)
    return false;
  for (auto& addr : addrs) {
    if (addr.ss_family != peer.ss_family)
      continue;
    if (peer.ss_family == AF_INET) {
      auto& x = reinterpret_cast<const sockaddr_in&>(peer);
      auto& y = reinterpret_cast<const sockaddr_in&>(addr);
      if (x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr)
        return true;
    } else if (peer.ss_family == AF_INET6) {
      auto& x = reinterpret_cast<const sockaddr_in6&>(peer);
      auto& y = reinterpret_cast<const sockaddr_in6&>(addr);
      if (x.sin6_port == y.sin6_port
          && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(x.sin6_addr)) == 0)
        return true;
    }
  }
  return false;
}

} // namespace

void client_handshake_step(SSL* ssl, int result) {
  auto& table = handshakes();
  std::lock_guard guard{table.mtx};
  auto error = result == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, result);
  auto pending = error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE;
  if (pending)
    table.started.emplace(ssl, std::chrono::steady_clock::now());
  else
    table.started.erase(ssl);
}

void client_session_freed(SSL* ssl) {
  auto& table = handshakes();
  std::lock_guard guard{table.mtx};
  table.started.erase(ssl);
}

size_t abort_client_handshakes(const std::string& host, uint16_t port,
                               std::chrono::steady_clock::time_point since,
                               std::chrono::milliseconds wait) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  if (::getaddrinfo(host.c_str(), service.c_str(), &hints, &found) != 0)
    return 0;
  std::vector<sockaddr_storage> addrs;
  for (auto* ai = found; ai != nullptr; ai = ai->ai_next) {
    sockaddr_storage addr{};
    std::memcpy(&addr, ai->ai_addr,
                std::min<size_t>(ai->ai_addrlen, sizeof(addr)));
    addrs.push_back(addr);
  }
  ::freeaddrinfo(found);
  auto& table = handshakes();
  std::vector<SSL*> aborted;
  {
    std::lock_guard guard{table.mtx};
    for (auto& [ssl, started] : table.started) {
      auto fd = SSL_get_fd(ssl);
      if (started >= since && fd >= 0 && peer_in(fd, addrs)) {
        // The owner's next SSL_connect reads the end of the stream, fails
        // and leaves the table.
        ::shutdown(fd, SHUT_RDWR);
        aborted.push_back(ssl);
      }
    }
  }
  auto until = std::chrono::steady_clock::now() + wait;
  for (;;) {
    {
      std::lock_guard guard{table.mtx};
      auto ended = std::none_of(aborted.begin(), aborted.end(), [&](SSL* x) {
        return table.started.count(x) > 0;
      });
      if (ended || std::chrono::steady_clock::now() >= until)
        return aborted.size();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
}

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
//
// SSL_connect and SSL_free also keep the table of client handshakes in
// progress that `connect_worker` aborts when it gives up: CAF 0.17's TLS
// stream retries a handshake that waits for the peer on every "writable"
// event, so a handshake with a silent peer spins CAF's network thread and
// blocks the actor system's shutdown until the peer answers or goes away.
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
  auto result = next(ssl);
  objstore::detail::client_handshake_step(ssl, result);
  return result;
}

void SSL_free(SSL* ssl) {
  static auto next = next_symbol<void (*)(SSL*)>("SSL_free");
  if (ssl != nullptr)
    objstore::detail::client_session_freed(ssl);
  next(ssl);
}

} // extern "C"
