#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

struct ssl_st; // OpenSSL's SSL

namespace objstore {

/// Mutual TLS between nodes (libcaf_openssl for actor connections, OpenSSL
/// directly for the data plane). All three files are PEM; the key may be
/// encrypted with `passphrase`. Off when `certificate` is empty.
struct tls_options {
  std::string certificate;
  std::string key;
  std::string cafile;
  std::string passphrase;

  bool enabled() const noexcept { return !certificate.empty(); }
};

/// Checks a TLS configuration before any actor system starts (CAF aborts
/// or hangs on some bad ones): every file readable and parseable, the key
/// decryptable with the passphrase and matching the certificate, and the
/// certificate issued by the CA. Errors (`invalid_argument`) name the
/// option and file. An empty configuration is valid (TLS off); a partial
/// one is an error.
caf::error validate_tls(const tls_options& x);

/// Loads CAF's OpenSSL module into `cfg` and sets its options from `x`.
/// No effect when TLS is off.
void apply_tls(caf::actor_system_config& cfg, const tls_options& x);

/// Whether `sys` was configured with `apply_tls`.
bool uses_tls(const caf::actor_system& sys);

namespace detail {

/// OpenSSL password callback; `user` points to the passphrase string.
int openssl_passphrase_cb(char* buf, int size, int rwflag, void* user);

/// Takes OpenSSL's oldest queued error as text (clearing the queue), or
/// `fallback` when none is queued.
std::string openssl_reason(const char* fallback);

/// Shuts down the sockets of this process's client TLS handshakes to
/// host:port that began at or after `since` and are still in progress, so
/// that their owner (CAF's network thread) fails them, and waits up to
/// `wait` until it did; returns how many. `connect_worker` calls it when it
/// gives up: CAF 0.17 spins on such a handshake and cannot shut down until
/// it ends.
size_t abort_client_handshakes(const std::string& host, uint16_t port,
                               std::chrono::steady_clock::time_point since,
                               std::chrono::milliseconds wait);

/// Bookkeeping of the interposed SSL_connect and SSL_free (tls.cpp).
void client_handshake_step(ssl_st* ssl, int result);
void client_session_freed(ssl_st* ssl);

} // namespace detail

} // namespace objstore
