#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "messages/interfaces.hpp"

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

/// Publishes a worker on host:port, over TLS when `sys` uses TLS.
caf::expected<uint16_t> publish_worker(caf::actor_system& sys,
                                       const worker_actor& worker,
                                       uint16_t port, const std::string& host);

/// Deadline of `connect_worker` without one: `objstore.timeout` when the
/// system's config holds it, else this.
constexpr caf::timespan default_connect_timeout = std::chrono::seconds{30};

/// Connects to a worker, over TLS when `sys` uses TLS, within `deadline`
/// (TCP connect, TLS and BASP handshakes). Does not block the caller past
/// the deadline: a peer that accepts the TCP connection and then says
/// nothing (a frozen process, another service) fails the call with
/// `timeout` naming host:port and the deadline. A plain handshake still
/// running then is left to CAF: it completes or fails on its own and does
/// not delay the system's shutdown. A TLS one is aborted (CAF 0.17 spins
/// its network thread on it and cannot shut down while it lasts; see
/// `detail::abort_client_handshakes`). Other errors are CAF's
/// (`cannot_connect_to_node`, `disconnect_during_handshake`,
/// `no_actor_published_at_port`, `unexpected_actor_messaging_interface`).
/// A connection that CAF's heartbeat drops during the handshake (CAF 0.17
/// counts a connecting peer as silent since the clock's epoch) is retried
/// within the deadline. A second call for the same host:port returns the
/// cached proxy.
caf::expected<worker_actor> connect_worker(caf::actor_system& sys,
                                           const std::string& host,
                                           uint16_t port,
                                           caf::timespan deadline);

/// `connect_worker` with `objstore.timeout` from the system's config, or
/// `default_connect_timeout`.
caf::expected<worker_actor>
connect_worker(caf::actor_system& sys, const std::string& host, uint16_t port);

/// Unpublishes a worker published by `publish_worker`.
void unpublish_worker(caf::actor_system& sys, const worker_actor& worker,
                      uint16_t port);

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
