#pragma once

// Publishing a worker on its actor port and reaching one from a driver or a
// peer, over TLS when the actor system uses it (actors/dataplane/tls.hpp).

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "messages/interfaces.hpp"

namespace objstore {

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

} // namespace objstore
