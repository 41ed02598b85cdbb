#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/timespan.hpp>

#include "actors/dataplane/data_plane.hpp"
#include "actors/driver/host_var.hpp"
#include "messages/graph.hpp"
#include "messages/interfaces.hpp"

namespace objstore {

/// A multi-party run as the driver actor takes it: the graph, the handles
/// of its inputs and the parties (empty: every party holding all inputs).
/// The handles travel inside the message, so the inputs are held from the
/// moment the order is sent until every party has answered: a handle the
/// caller drops right after sending cannot free an input first.
struct run_order {
  graph program;
  std::vector<host_var> inputs;
  std::vector<uint32_t> parties;
};

/// The outputs of a run: one handle per graph output.
struct run_result {
  std::vector<host_var> outputs;
};

} // namespace objstore

// Driver-side messages carry handles (shared pointers into this process's
// reference counts): they never leave the process, so they need no
// serialization.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(objstore::host_var)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(objstore::run_order)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(objstore::run_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(objstore::block_allocator)

namespace objstore {

/// The driver side, in the driver's process: fans requests out to the
/// workers by rank, enforces timeouts, turns a dead worker into
/// `object_lost` at once, counts control-plane bytes and batches releases,
/// and orchestrates multi-party work (runs, transfers, shuffles, SIMP
/// programs) without blocking a thread. In-process only.
///
/// Every reply comes within the configured deadlines; after `close` every
/// request fails at once with `cancelled`.
using driver_actor = caf::typed_actor<
    // -- orchestration --------------------------------------------------------
    /// Runs `program` on its parties (all concurrently) and replies one
    /// handle per output once every party answered. The first failing
    /// party fails the run at once (naming its rank) and the others' parts
    /// are cancelled; outputs they still produce are released.
    caf::replies_to<run_atom, run_order>::with<run_result>,
    /// Starts a run and replies its id at once (the run's requests are on
    /// their way and its inputs held). Errors of the run itself (bad
    /// ranks, missing inputs) surface from `await`.
    caf::replies_to<submit_atom, run_order>::with<uint64_t>,
    /// Waits for submitted run `id` and takes its outputs (once: later
    /// awaits are `invalid_argument`).
    caf::replies_to<await_atom, uint64_t>::with<run_result>,
    /// Waits until at least `k` of the submitted runs `ids` finished or
    /// `timeout` passed; replies the finished ones (in the order of `ids`).
    /// Takes nothing.
    caf::replies_to<await_atom, std::vector<uint64_t>, uint64_t,
                    caf::timespan>::with<std::vector<uint64_t>>,
    /// Cancels submitted run `id`: every party still running it is asked
    /// to stop and the run fails with `cancelled` at once. Replies how many
    /// parties were still running it (0 for a finished or unknown run).
    /// Never waits for a worker.
    caf::replies_to<cancel_atom, uint64_t>::with<uint64_t>,
    /// The caller dropped submitted run `id` without taking it: its
    /// outputs are released when it finishes.
    caf::reacts_to<forget_atom, uint64_t>,
    /// Moves party `from`'s value of `x` to party `to`, worker to worker
    /// over their data plane; replies a handle with the replica on `to`.
    caf::replies_to<transfer_atom, host_var, uint32_t,
                    uint32_t>::with<host_var>,
    /// Moves party `from`'s value of `x` (mem:// or fs://) to the fs://
    /// object `target` on party `to`, written atomically and owned by the
    /// session's principal there; replies a handle on `target` that is not
    /// reference counted (fs:// objects live until erased). Errors as the
    /// worker's `expect` of a target (naming it) and `push`.
    caf::replies_to<transfer_atom, host_var, uint32_t, uint32_t,
                    std::string>::with<host_var>,
    /// SIMP shuffle: `routing[target]` names the source of `target`'s
    /// value (-1: none). All moves run concurrently, at most
    /// `max_transfers_per_worker` per source worker.
    caf::replies_to<shuffle_atom, host_var,
                    std::vector<int64_t>>::with<host_var>,
    /// Repartitions the tables of `x` by column `key` (hash partition on
    /// every holder, all-to-all transfers, concat on each target).
    caf::replies_to<shuffle_atom, host_var, std::string>::with<host_var>,
    /// Interprets a SIMP program (actors/simp.hpp) on the cluster; the
    /// order's parties must be empty.
    caf::replies_to<simp_atom, run_order>::with<run_result>,
    /// Whether each part of `x` is alive: its worker is reachable in the
    /// incarnation that created it. Asks no worker.
    caf::replies_to<alive_atom, host_var>::with<std::vector<bool>>,
    // -- per-rank requests ----------------------------------------------------
    /// Asks worker `rank` for an inbound transfer token.
    caf::replies_to<expect_atom, uint32_t>::with<std::string>,
    /// Asks worker `rank` for a token of an inbound transfer written to
    /// the fs:// object `target` there.
    caf::replies_to<expect_atom, uint32_t, std::string>::with<std::string>,
    /// Asks worker `rank` to push `uri` to worker `target` under `token`
    /// (from the target's `expect`).
    caf::replies_to<push_atom, uint32_t, std::string, uint32_t,
                    std::string>::with<std::string>,
    /// Opens a session on every worker (once; later hellos reply the same
    /// sessions); replies their session infos. Every other request to a
    /// rank needs its session: before `hello` it is `permission_denied`.
    caf::replies_to<hello_atom>::with<std::vector<session_info>>,
    /// Stores a value on worker `rank`. A value of at least
    /// `stream_threshold` bytes for a worker in another process streams
    /// over the worker's data port (chunked, flow-controlled, hashed as it
    /// goes); only the token request and the reply cross the actor
    /// connection.
    caf::replies_to<put_atom, uint32_t, put_request>::with<std::string>,
    caf::replies_to<run_atom, uint32_t, task_request>::with<task_reply>,
    /// Forwards a cancel of task `task_id` to worker `rank`.
    caf::replies_to<cancel_atom, uint32_t, uint64_t>::with<bool>,
    /// Fetches a value from worker `rank`; one of at least
    /// `stream_threshold` bytes in another process is pulled from the
    /// worker's data port under a one-use grant.
    caf::replies_to<fetch_atom, uint32_t, std::string>::with<wire_value>,
    /// `fetch` whose payload blocks, if the value streams, are made by
    /// `alloc` (e.g. a mapping of the file it is fetched into, so memory
    /// stays bounded whatever the size). A value that comes in the reply
    /// is in ordinary memory.
    caf::replies_to<fetch_atom, uint32_t, std::string,
                    block_allocator>::with<wire_value>,
    caf::replies_to<erase_atom, uint32_t, std::string>::with<bool>,
    /// Queues releases; they go out batched (count or timer, or `flush`).
    caf::reacts_to<release_atom, uint32_t, std::vector<std::string>>,
    /// Sends every queued release now. Replies the number sent.
    caf::replies_to<flush_atom>::with<uint64_t>,
    caf::replies_to<stats_atom>::with<driver_stats>,
    caf::replies_to<stats_atom, uint32_t>::with<worker_stats>,
    caf::replies_to<objects_atom, uint32_t>::with<std::vector<object_record>>,
    /// Fails every call in flight with `cancelled`, closes the driver's
    /// sessions on every live worker (waiting at most `close_timeout`) and
    /// replies the holds dropped. Later requests fail with `cancelled`.
    caf::replies_to<close_atom>::with<uint64_t>>;

/// What the driver actor also accepts from itself and its release sink;
/// not part of the interface callers see.
using driver_actor_private = driver_actor::extend<
    /// The caller's deadline of pending call `id` passed: fails it with
    /// `timeout` (the worker's reply is still awaited, so objects it names
    /// can be released).
    caf::reacts_to<deadline_atom, uint64_t>,
    /// Wake-up from the release sink (handles dropped in this process).
    caf::reacts_to<release_atom>,
    /// The `await` of several runs with this waiter id timed out.
    caf::reacts_to<await_atom, uint64_t, bool>,
    /// Time to try reconnecting to lost worker `rank`.
    caf::reacts_to<reconnect_atom, uint32_t>,
    /// The data plane finished streaming call `id`: the URI of a put, the
    /// value of a fetch, or why it failed.
    caf::reacts_to<streamed_atom, uint64_t, std::string>,
    caf::reacts_to<streamed_atom, uint64_t, wire_value>,
    caf::reacts_to<streamed_atom, uint64_t, caf::error>>;

/// Tuning of a driver actor.
struct driver_actor_options {
  /// Deadline of every request to a worker. CAF does not fail requests
  /// when a peer process dies; the down message does (object_lost), and
  /// this bounds everything else.
  caf::timespan timeout = std::chrono::seconds{30};
  /// Deadline of a worker-to-worker transfer (bulk data).
  caf::timespan transfer_timeout = std::chrono::minutes{10};
  /// How long `close` waits for the workers to confirm.
  caf::timespan close_timeout = std::chrono::seconds{1};
  /// How long after `timeout` the driver still awaits a worker's reply. A
  /// put or run that completes late has created objects the session holds;
  /// the driver releases them when the late reply arrives in this window
  /// (past it they stay until the session closes).
  caf::timespan late_reply_window = std::chrono::minutes{5};
  /// Reconnect to a lost worker at its endpoint (from `endpoints`) every
  /// `reconnect_interval` until it is back or the driver closes. A
  /// restarted worker gets a new session: its fs:// objects are reachable
  /// again, mem:// handles of the old process stay lost.
  bool reconnect = true;
  caf::timespan reconnect_interval = std::chrono::seconds{1};
  /// Transfers in flight per source worker; more wait in the driver.
  size_t max_transfers_per_worker = 4;
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
  /// Puts and fetches of values of at least this many payload bytes, to
  /// and from workers in other processes, stream over the workers' data
  /// ports instead of the actor connection (objstore.stream-threshold).
  /// 0: never, except values too large for an actor message
  /// (`max_message_value`, ~4 GiB), which always stream.
  uint64_t stream_threshold = uint64_t{1} << 20;
  /// The driver's data plane for those streams: it only connects out
  /// (`listen` is ignored). Without `tls`, it takes the actor system's
  /// openssl certificate, key and CA. Each streamed put or fetch takes one
  /// of `max_senders` threads; its deadline is `transfer_timeout`.
  data_plane_options data;
};

struct run_state;

struct driver_state {
  static inline const char* name = "objstore.driver";

  struct pending_call {
    uint32_t rank = 0;
    std::string what;
    std::function<void(caf::error)> fail;
  };

  /// A caller waiting for `k` of several submitted runs.
  struct waiter {
    std::vector<uint64_t> ids;
    size_t k = 0;
    caf::typed_response_promise<std::vector<uint64_t>> promise;
  };

  driver_actor_options options;
  std::vector<worker_actor> workers;
  /// Per rank: empty while alive, else why it was lost.
  std::vector<std::string> lost;
  /// Per rank: a reconnect attempt is scheduled or under way.
  std::vector<bool> reconnecting;
  /// Reconnects that succeeded (all ranks).
  uint64_t reconnects = 0;
  std::shared_ptr<release_sink> sink;
  /// Per rank: the session's key (id 0 until `hello` opened it) and what
  /// the worker said at `hello`.
  std::vector<session_key> keys;
  std::vector<session_info> infos;
  std::vector<std::vector<std::string>> queued_releases;
  bool flush_scheduled = false;
  /// Set by `close`: every later request fails with `cancelled`.
  bool closed = false;
  uint64_t next_call = 1;
  uint64_t next_task = 1;
  uint64_t next_run = 1;
  uint64_t next_waiter = 1;
  std::unordered_map<uint64_t, pending_call> pending;
  /// Submitted runs not yet taken (or forgotten and still running).
  std::unordered_map<uint64_t, std::shared_ptr<run_state>> runs;
  std::unordered_map<uint64_t, waiter> waiters;
  /// Per source rank: transfers in flight and transfers waiting for one
  /// of the `max_transfers_per_worker` slots.
  std::vector<size_t> pushes;
  std::vector<std::deque<std::function<void()>>> queued_pushes;
  /// What to do when the data plane reports streamed call `id` (also in
  /// `pending` until it fails or succeeds): its rank and exactly one of
  /// the two continuations.
  struct stream_call {
    uint32_t rank = 0;
    std::function<void(std::string&)> put_done;
    std::function<void(wire_value&)> fetch_done;
  };
  std::unordered_map<uint64_t, stream_call> streams;
  /// Started on the first streamed put or fetch.
  std::shared_ptr<data_plane> data;
  driver_stats counters;
  std::vector<char> scratch;
};

/// Behaviour of the driver actor.
driver_actor_private::behavior_type
driver_actor_impl(driver_actor_private::stateful_pointer<driver_state> self,
                  std::vector<worker_actor> workers,
                  std::shared_ptr<release_sink> sink,
                  driver_actor_options options);

} // namespace objstore
