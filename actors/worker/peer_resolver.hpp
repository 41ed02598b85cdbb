#pragma once

// Asks the worker published at an endpoint who it is (peer_atom), over a
// BASP connection of the asking node, and survives CAF 0.17.6 dropping that
// connection under the request.
//
// Why a retry is needed: when two nodes connect to each other at the same
// time, each keeps one of the two connections and closes the other as
// "redundant" (basp::instance, server handshake). If both handshakes cross,
// each side can close the connection the other side kept: both go, and a
// request already written to one is never answered; CAF does not fail
// outstanding requests when a connection dies, so it would end only at its
// timeout. Workers that push to each other at once (shuffle_by_key) hit
// this in about 2 % of the worker pairs that first meet. A connection
// closed by the peer's connection guard (worker-to-worker connections
// carry no session) looks the same. The resolver monitors the peer's
// proxy, sees the loss at once (the proxy dies with the connection), and
// connects again after a random pause, so two workers retrying do not meet
// again in lockstep.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include <caf/behavior.hpp>
#include <caf/fwd.hpp>
#include <caf/io/middleman_actor.hpp>

namespace objstore {

struct peer_resolver_options {
  /// Deadline of the whole resolution: every connect, request and pause.
  std::chrono::milliseconds timeout{30'000};
  /// Most connects tried; only a connection lost before the answer is
  /// retried, never a refusal or a timeout.
  size_t max_attempts = 5;
  /// Retry n waits a random time up to `n * backoff`.
  std::chrono::milliseconds backoff{50};
};

/// A one-shot actor: its first `get_atom` is answered with the `peer_info`
/// of the worker published at `host:port` (reached through `mm`, the plain
/// or the TLS middleman), then it quits. Errors, naming `endpoint`:
/// `invalid_argument` when the endpoint is the resolver's own node;
/// `object_lost` when nothing is published there, or when no attempt got
/// an answer within the deadline or the attempts (the last cause in the
/// message). Idempotent: `peer_atom` only reads.
caf::behavior peer_resolver(caf::event_based_actor* self,
                            caf::io::middleman_actor mm, std::string endpoint,
                            std::string host, uint16_t port,
                            peer_resolver_options options);

} // namespace objstore
