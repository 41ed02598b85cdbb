#pragma once

// The request and reply types of objstore's actors. Values only travel
// inside `wire_value` (driver puts, fetch replies, transfers); everything
// else is control plane: URIs, graphs, ids, counters.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "messages/graph.hpp"
#include "messages/wire_value.hpp"
#include "store/spill_stats.hpp"

namespace objstore {

/// Fetch policy of a worker (DESIGN.md §9).
enum class fetch_policy : uint8_t {
  /// Nothing is fetchable.
  deny,
  /// Outputs of `reveal` ops and objects the fetching session put itself.
  revealed_only,
  /// Every object the fetching session holds.
  allow,
};

std::string_view to_string(fetch_policy x);

/// Parses "deny", "revealed-only" or "allow"; `invalid_argument` otherwise.
caf::expected<fetch_policy> parse_fetch_policy(std::string_view text);

/// Proof of a session (DESIGN.md §12): the id the worker assigned when the
/// session was opened and the secret it returned then (64 hex characters,
/// 256 bits from the OS's CSPRNG). Every session-scoped request carries it;
/// an unknown id or a wrong secret is `permission_denied` and changes
/// nothing. An actor address is never proof of a session: it is
/// predictable (node id = host hash + pid, sequential actor ids).
struct session_key {
  uint64_t id = 0;
  std::string secret;

  friend bool operator==(const session_key&, const session_key&) = default;
};

/// Asks a worker to open a session.
struct hello_request {
  /// Shown in listings next to the session id (e.g. "objstore-cli");
  /// at most 64 bytes are kept. Never an address.
  std::string client;
  /// The worker's operator secret, or empty. With it the session may list
  /// every session's objects and read node-wide counters.
  std::string operator_secret;
  /// The cluster as the driver knows it: "host:port" of every worker in
  /// rank order. A worker without a configured cluster (objstore.cluster)
  /// pushes this session's transfers only to these endpoints, and only
  /// after the peer there confirmed it is an objstore worker of that rank
  /// (with TLS: one of the cluster's CA); it never takes a data address
  /// from the driver.
  std::vector<std::string> cluster;
  /// A principal configured on the worker (objstore.principals-file) and
  /// its secret, or empty: the session then owns its fs:// objects alone.
  std::string principal;
  std::string principal_secret;

  friend bool operator==(const hello_request&, const hello_request&) = default;
};

/// What a worker tells a peer worker about itself (no session needed):
/// enough to reach its data plane.
struct peer_info {
  uint32_t rank = 0;
  std::string node_id;
  uint16_t data_port = 0;

  friend bool operator==(const peer_info&, const peer_info&) = default;
};

/// Reply to `hello`: who the worker is and the new session's key.
struct session_info {
  uint32_t rank = 0;
  std::string node_id;
  fetch_policy policy = fetch_policy::deny;
  /// Port of the node's data connection (transfer actor), 0 if none.
  uint16_t data_port = 0;
  /// The session's capability: keep it secret.
  session_key key;
  /// Whether the operator secret was accepted.
  bool operator_access = false;
  /// The worker's objstore.max-object-size and objstore.memory-limit (0 =
  /// none): a driver refuses a put that can never fit before sending its
  /// bytes (the worker would otherwise receive all of them to refuse them).
  uint64_t max_object_size = 0;
  uint64_t memory_limit = 0;

  friend bool operator==(const session_info&, const session_info&) = default;
};

/// A driver put: store `value` on the worker. `target` empty means a new
/// `mem://` object; otherwise an `fs://` URI to write.
struct put_request {
  wire_value value;
  std::string target;

  friend bool operator==(const put_request&, const put_request&) = default;
};

/// Run `program` on one worker. `inputs[i]` binds `program.inputs[i]`.
struct task_request {
  uint64_t task_id = 0;
  graph program;
  std::vector<std::string> inputs;

  friend bool operator==(const task_request&, const task_request&) = default;
};

/// URIs of the outputs of a task, in `program.outputs` order. The session
/// holds one reference on each. Every output is a new object, also one that
/// is a graph input (it gets its own URI sharing the input's buffer).
struct task_reply {
  uint64_t task_id = 0;
  std::vector<std::string> outputs;

  friend bool operator==(const task_reply&, const task_reply&) = default;
};

/// Holds of one session on one object. `session` is "session-<id>" plus
/// the client label the session gave at hello; never an address.
struct holder_record {
  std::string session;
  uint32_t count = 0;

  friend bool operator==(const holder_record&, const holder_record&) = default;
};

/// One object of a worker, as listed by `objects` (cf. `ray memory`).
struct object_record {
  std::string uri;
  uint64_t size_bytes = 0;
  std::vector<holder_record> holders;
  uint32_t pins = 0;
  int64_t age_ms = 0;
  bool revealed = false;
  /// Written to the node's spill directory (restored on use); otherwise
  /// in memory.
  bool spilled = false;

  friend bool operator==(const object_record&, const object_record&) = default;
};

/// Counters of one worker.
struct worker_stats {
  uint32_t rank = 0;
  uint64_t mem_objects = 0;
  uint64_t mem_bytes = 0;
  uint64_t fs_objects = 0;
  uint64_t fs_bytes = 0;
  uint64_t sessions = 0;
  uint64_t tasks_run = 0;
  uint64_t tasks_failed = 0;
  /// Tasks accepted and not finished (queued or on a thread).
  uint64_t tasks_running = 0;
  /// Of those, waiting for a task thread (node-wide only).
  uint64_t tasks_queued = 0;
  /// The node's task threads, and how many run a task now (node-wide).
  uint64_t task_threads = 0;
  uint64_t task_threads_busy = 0;
  uint64_t fetches = 0;
  uint64_t fetches_denied = 0;
  uint64_t release_msgs = 0;
  uint64_t releases = 0;
  uint64_t unknown_releases = 0;
  uint64_t pinned_objects = 0;
  uint64_t transfers_in = 0;
  uint64_t transfers_out = 0;
  uint64_t transfers_failed = 0;
  uint64_t transfer_bytes_in = 0;
  uint64_t transfer_bytes_out = 0;
  /// High mark of unacknowledged bytes of one outgoing transfer.
  uint64_t transfer_max_in_flight = 0;
  uint64_t transfer_rejected_chunks = 0;
  /// Requests refused for a wrong or unknown session key (or a wrong
  /// operator secret): attempts to use another session's capability.
  uint64_t refused_requests = 0;
  /// Whether the numbers are node-wide (operator session) or only the
  /// asking session's objects.
  bool node_wide = false;
  /// Spilling (node-wide only): objects and bytes on disk now, cumulative
  /// spills and restores with bytes and time (throughput = bytes / time).
  /// `mem_bytes` counts only bytes in memory.
  spill_stats spill{};

  friend bool operator==(const worker_stats&, const worker_stats&) = default;
};

/// Observations of a duration, in Prometheus' histogram form: `counts[i]`
/// observations fell at or below `bounds[i]` (and above the previous
/// bound); the last element of `counts` (one more than `bounds`) holds the
/// rest (+Inf).
struct histogram_data {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;
  double sum = 0;
  uint64_t count = 0;

  friend bool operator==(const histogram_data&, const histogram_data&)
      = default;
};

/// Objects and bytes of one scheme in one state. mem:// objects are
/// `held` (in memory, no task or transfer using them), `pinned` (used by
/// a task or transfer now) or `spilled` (on disk, not pinned); fs:// and
/// oss:// objects are `held`.
struct object_gauge {
  std::string scheme;
  std::string state;
  uint64_t objects = 0;
  uint64_t bytes = 0;

  friend bool operator==(const object_gauge&, const object_gauge&) = default;
};

/// What a worker's metrics endpoint shows (node-local, never sent to
/// another process): node-wide counters, objects by scheme and state, and
/// what only the metrics keep.
struct worker_metrics {
  worker_stats stats;
  std::vector<object_gauge> objects;
  /// Payload bytes of values drivers put (actor messages and streamed)
  /// and of values fetched by drivers (replies and grants).
  uint64_t put_bytes = 0;
  uint64_t fetch_bytes = 0;
  /// Tasks from acceptance to their end, either outcome.
  histogram_data task_seconds;
  /// Outgoing transfers from `push` to the target's reply, either outcome.
  histogram_data transfer_seconds;

  friend bool operator==(const worker_metrics&, const worker_metrics&)
      = default;
};

/// A fetch's reply: the value itself, or, for a value of at least the
/// threshold the fetch named on a node with a data plane, a one-use grant
/// to pull it from the worker's data port (`data_plane::pull`) so the
/// bytes never cross the actor connection.
struct fetch_reply {
  wire_value value;
  std::string grant;
  /// Payload bytes of the value.
  uint64_t size_bytes = 0;

  friend bool operator==(const fetch_reply&, const fetch_reply&) = default;
};

/// Counters of a driver: what crossed its control plane (`bytes_*`:
/// actor messages) and its data plane (`data_bytes_*`: puts and fetches
/// streamed to and from workers' data ports).
struct driver_stats {
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t requests = 0;
  uint64_t release_msgs = 0;
  uint64_t releases = 0;
  uint64_t live_handles = 0;
  uint64_t data_bytes_sent = 0;
  uint64_t data_bytes_received = 0;
  /// Puts and fetches that streamed over the data plane.
  uint64_t streamed_puts = 0;
  uint64_t streamed_fetches = 0;

  friend bool operator==(const driver_stats&, const driver_stats&) = default;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_key& x) {
  return f(caf::meta::type_name("objstore::session_key"), x.id, x.secret);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, hello_request& x) {
  return f(caf::meta::type_name("objstore::hello_request"), x.client,
           x.operator_secret, x.cluster, x.principal, x.principal_secret);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, peer_info& x) {
  return f(caf::meta::type_name("objstore::peer_info"), x.rank, x.node_id,
           x.data_port);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_info& x) {
  return f(caf::meta::type_name("objstore::session_info"), x.rank, x.node_id,
           x.policy, x.data_port, x.key, x.operator_access, x.max_object_size,
           x.memory_limit);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, fetch_reply& x) {
  return f(caf::meta::type_name("objstore::fetch_reply"), x.value, x.grant,
           x.size_bytes);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, put_request& x) {
  return f(caf::meta::type_name("objstore::put_request"), x.value, x.target);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_request& x) {
  return f(caf::meta::type_name("objstore::task_request"), x.task_id, x.program,
           x.inputs);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_reply& x) {
  return f(caf::meta::type_name("objstore::task_reply"), x.task_id, x.outputs);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, holder_record& x) {
  return f(caf::meta::type_name("objstore::holder_record"), x.session, x.count);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, object_record& x) {
  return f(caf::meta::type_name("objstore::object_record"), x.uri, x.size_bytes,
           x.holders, x.pins, x.age_ms, x.revealed, x.spilled);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, spill_stats& x) {
  return f(caf::meta::type_name("objstore::spill_stats"), x.spilled_objects,
           x.spilled_bytes, x.spill_file_bytes, x.spills, x.spilled_bytes_total,
           x.spill_ns, x.restores, x.restored_bytes_total, x.restore_ns,
           x.spill_failures, x.restore_failures, x.leftovers_removed,
           x.respills);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_stats& x) {
  return f(caf::meta::type_name("objstore::worker_stats"), x.rank,
           x.mem_objects, x.mem_bytes, x.fs_objects, x.fs_bytes, x.sessions,
           x.tasks_run, x.tasks_failed, x.tasks_running, x.fetches,
           x.fetches_denied, x.release_msgs, x.releases, x.unknown_releases,
           x.pinned_objects, x.transfers_in, x.transfers_out,
           x.transfers_failed, x.transfer_bytes_in, x.transfer_bytes_out,
           x.transfer_max_in_flight, x.transfer_rejected_chunks,
           x.refused_requests, x.tasks_queued, x.task_threads,
           x.task_threads_busy, x.node_wide, x.spill);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, histogram_data& x) {
  return f(caf::meta::type_name("objstore::histogram_data"), x.bounds, x.counts,
           x.sum, x.count);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, object_gauge& x) {
  return f(caf::meta::type_name("objstore::object_gauge"), x.scheme, x.state,
           x.objects, x.bytes);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_metrics& x) {
  return f(caf::meta::type_name("objstore::worker_metrics"), x.stats, x.objects,
           x.put_bytes, x.fetch_bytes, x.task_seconds, x.transfer_seconds);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, driver_stats& x) {
  return f(caf::meta::type_name("objstore::driver_stats"), x.bytes_sent,
           x.bytes_received, x.requests, x.release_msgs, x.releases,
           x.live_handles, x.data_bytes_sent, x.data_bytes_received,
           x.streamed_puts, x.streamed_fetches);
}

} // namespace objstore
