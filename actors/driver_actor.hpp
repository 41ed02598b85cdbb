#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/timespan.hpp>

#include "actors/host_var.hpp"
#include "messages/interfaces.hpp"

namespace objstore {

/// Tuning of a driver actor.
struct driver_actor_options {
  /// Deadline of every request to a worker. CAF does not fail requests
  /// when a peer process dies; the down message does (object_lost), and
  /// this bounds everything else.
  caf::timespan timeout = std::chrono::seconds{30};
  /// Deadline of a worker-to-worker transfer (bulk data).
  caf::timespan transfer_timeout = std::chrono::minutes{10};
  /// How long after `timeout` the driver still awaits a worker's reply. A
  /// put or run that completes late has created objects the session holds;
  /// the driver releases them when the late reply arrives in this window
  /// (past it they stay until the session closes).
  caf::timespan late_reply_window = std::chrono::minutes{5};
  /// URIs per release message.
  size_t release_batch = 8192;
  /// Longest a release waits in the queue before it is sent.
  caf::timespan release_delay = std::chrono::milliseconds{2};
  /// Label of this driver's sessions in the workers' listings.
  std::string client = "objstore driver";
  /// The workers' operator secret (objstore.operator-secret-file), or
  /// empty: with it the sessions list every object and read node-wide
  /// counters.
  std::string operator_secret;
  /// Worker endpoints "host:port" in rank order, told to the workers at
  /// hello so they can find each other for transfers (driver::connect
  /// fills it from the cluster spec).
  std::vector<std::string> endpoints;
  /// Principal (and its secret) the sessions act as: owner of the fs://
  /// objects they write. Empty: each session owns its own.
  std::string principal;
  std::string principal_secret;
};

struct driver_state {
  static inline const char* name = "objstore.driver";

  struct pending_call {
    uint32_t rank = 0;
    std::string what;
    std::function<void(caf::error)> fail;
  };

  driver_actor_options options;
  std::vector<worker_actor> workers;
  /// Per rank: empty while alive, else why it was lost.
  std::vector<std::string> lost;
  std::shared_ptr<release_sink> sink;
  /// Per rank: the session's key (id 0 until `hello` opened it) and what
  /// the worker said at `hello`.
  std::vector<session_key> keys;
  std::vector<session_info> infos;
  std::vector<std::vector<std::string>> queued_releases;
  bool flush_scheduled = false;
  uint64_t next_call = 1;
  std::unordered_map<uint64_t, pending_call> pending;
  driver_stats counters;
  std::vector<char> scratch;
};

/// Behaviour of the driver actor (see `driver_actor` in messages/).
driver_actor::behavior_type
driver_actor_impl(driver_actor::stateful_pointer<driver_state> self,
                  std::vector<worker_actor> workers,
                  std::shared_ptr<release_sink> sink,
                  driver_actor_options options);

} // namespace objstore
