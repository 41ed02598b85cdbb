#pragma once

#include <cstdint>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/expected.hpp>

#include "messages/interfaces.hpp"

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

/// Connects to a worker, over TLS when `sys` uses TLS.
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

} // namespace detail

} // namespace objstore
