#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "actors/driver/driver_actor.hpp"
#include "actors/driver/host_var.hpp"
#include "messages/interfaces.hpp"

namespace caf {
class scoped_actor;
} // namespace caf

namespace objstore {

/// Where a worker listens.
struct endpoint {
  std::string host;
  uint16_t port = 0;
  std::string str() const { return host + ":" + std::to_string(port); }
};

/// Ordered worker endpoints; rank = position (as MPLang's cluster spec).
struct cluster_spec {
  std::vector<endpoint> workers;

  /// Parses "host:port,host:port,..."; errors are `invalid_argument`
  /// naming the bad entry.
  static caf::expected<cluster_spec> parse(std::string_view text);
};

/// A run in flight, from `driver::submit`: wait for it, take its outputs,
/// or cancel it. Movable; must not outlive its driver. Dropping it without
/// `get` releases the run's outputs when it finishes (it keeps running).
class pending_run {
public:
  struct state;

  explicit pending_run(std::shared_ptr<state> st) : st_(std::move(st)) {}

  /// Waits up to `timeout`; true once the run finished (ok or failed).
  bool wait_for(caf::timespan timeout);

  /// Waits for the run; returns one host_var per graph output, or the
  /// first failing party's error. Only once: a second call returns
  /// `invalid_argument`.
  caf::expected<std::vector<host_var>> get();

  /// Asks every party still running the run to stop at its next op
  /// boundary (or kernel poll): the run fails with `cancelled` at once, its
  /// inputs are unpinned and no output is kept. A finished run keeps its
  /// outputs. Returns how many parties were still running it. Never waits
  /// for a worker.
  size_t cancel();

  /// The driver actor's id of this run (0 if it was never started).
  uint64_t id() const noexcept;

private:
  std::shared_ptr<state> st_;
};

/// The blocking embedding API for plain C++ code. Every call is a request
/// to the driver actor (`handle()`, for actor code) and returns within the
/// configured timeout. Thread-safe: each call uses its own scoped actor.
///
/// Destroying the driver flushes queued releases and closes its sessions
/// on every worker (their objects are freed; handles still alive become
/// dangling and their releases are dropped).
class driver {
public:
  /// Connects to every worker of `spec` (typed remote actors) and opens a
  /// session on each. Errors name the rank and endpoint that failed.
  static caf::expected<std::unique_ptr<driver>>
  connect(caf::actor_system& sys, const cluster_spec& spec,
          driver_actor_options options = {});

  /// Uses already connected worker handles (e.g. in-process nodes).
  static caf::expected<std::unique_ptr<driver>>
  attach(caf::actor_system& sys, std::vector<worker_actor> workers,
         driver_actor_options options = {});

  driver(const driver&) = delete;
  driver& operator=(const driver&) = delete;
  ~driver();

  size_t world_size() const noexcept { return world_size_; }

  /// Session infos returned by the workers at connect.
  const std::vector<session_info>& sessions() const noexcept {
    return sessions_;
  }

  /// The driver actor, for actor code.
  const driver_actor& handle() const noexcept { return actor_; }

  /// Sends `x` to party `rank`; the result holds its new `mem://` URI.
  caf::expected<host_var> put(uint32_t rank, value_ptr x);

  /// Writes `x` to the persistent `fs://` URI `target` on party `rank`.
  /// The handle is not reference counted (fs objects live until erased).
  caf::expected<host_var> put(uint32_t rank, value_ptr x,
                              const std::string& target);

  /// Runs `g` on each party of `parties` (default: every party holding
  /// all inputs, or every party when there are none), binding party p's
  /// part of `inputs[i]` to `g.inputs[i]`. One round trip per party, all
  /// parties concurrently. Returns one host_var per graph output. Errors:
  /// the first failing party's error, naming its rank.
  caf::expected<std::vector<host_var>> run(const graph& g,
                                           const std::vector<host_var>& inputs,
                                           std::vector<uint32_t> parties = {});

  /// Like `run`, without waiting: the returned pending run completes in
  /// the background, so a driver can keep many runs in flight and cancel
  /// them. Errors (bad ranks, missing inputs) surface from `get`.
  pending_run submit(const graph& g, const std::vector<host_var>& inputs,
                     std::vector<uint32_t> parties = {});

  /// Waits until at least `k` of `runs` finished or `timeout` passed;
  /// returns the positions (in `runs`) of the finished ones, ascending.
  std::vector<size_t> wait_any(const std::vector<pending_run*>& runs, size_t k,
                               caf::timespan timeout);

  /// Interprets a SIMP program (actors/simp.hpp) on the cluster.
  caf::expected<std::vector<host_var>>
  run_simp(const graph& g, const std::vector<host_var>& inputs);

  /// Whether each part of `x` can still be reached (its worker alive, in
  /// the incarnation that created it), without asking the workers.
  std::vector<bool> alive(const host_var& x);

  /// Fetches party `rank`'s value of `x` (subject to the worker's policy).
  caf::expected<value_ptr> fetch(uint32_t rank, const host_var& x);

  /// Fetches party `rank`'s bytes object `x` into the file `path`: written
  /// to `path.part`, then renamed. A value that streams goes from the
  /// socket straight into a shared mapping of that file, so the driver's
  /// memory stays bounded whatever its size. Replies the bytes written.
  /// Errors as `fetch`, `invalid_argument` (not a bytes object: nothing
  /// is left behind), `io_error` naming the file.
  caf::expected<uint64_t> fetch_to_file(uint32_t rank, const host_var& x,
                                        const std::string& path);

  /// Erases party `rank`'s object of `x` now (fs:// objects included).
  caf::error erase(uint32_t rank, const host_var& x);

  /// What crossed the driver's control plane.
  caf::expected<driver_stats> stats();

  caf::expected<worker_stats> worker_stats_of(uint32_t rank);

  caf::expected<std::vector<object_record>> objects(uint32_t rank);

  /// Sends queued releases now; returns the number of messages sent.
  caf::expected<uint64_t> flush();

  /// Moves party `from`'s value of `x` to party `to`, worker to worker
  /// over their data plane (never through the driver); the result holds
  /// the new URI on `to`. Errors: object_lost (a side died), timeout,
  /// permission_denied / not_found (the source), resource_exhausted.
  caf::expected<host_var> transfer(const host_var& x, uint32_t from,
                                   uint32_t to);

  /// Moves party `from`'s value of `x` to the persistent fs:// object
  /// `target` on party `to` (atomic, owned by this driver's principal on
  /// `to`); the result holds `target` on `to`, not reference counted, like
  /// `put(rank, x, target)`. `x` may name a mem:// or an fs:// object.
  /// Errors: those of `transfer`, and invalid_uri / unsupported_scheme /
  /// permission_denied naming `target` when it may not be written there
  /// (nothing is written then).
  caf::expected<host_var> transfer(const host_var& x, uint32_t from,
                                   uint32_t to, const std::string& target);

  /// SIMP shuffle: `routing[target]` names the source party whose value of
  /// `x` moves to `target` (-1: none). All moves run concurrently.
  caf::expected<host_var> shuffle(const host_var& x,
                                  const std::vector<int64_t>& routing);

  /// Repartitions the tables of `x` by `key` so that equal keys end on one
  /// party: hash-partition on every holder, all-to-all transfers, concat on
  /// each target. Deterministic: rows keep their order within a source and
  /// sources are concatenated in rank order.
  caf::expected<host_var> shuffle_by_key(const host_var& x,
                                         const std::string& key);

  /// Fails every call in flight with `cancelled` and closes the sessions
  /// (within `close_timeout` even when a worker is frozen). Later calls
  /// fail with `cancelled`. Idempotent; the destructor calls it.
  void close();

  /// Wraps a URI returned by a worker into a reference-counted handle.
  std::shared_ptr<const remote_ref> adopt(uint32_t rank, std::string uri);

private:
  driver(caf::actor_system& sys, driver_actor actor,
         std::shared_ptr<release_sink> sink, size_t world_size,
         caf::timespan wait);

  /// A scoped actor for one blocking call, taken from a small pool: a
  /// fresh scoped actor per call cost ~30 us of a ~170 us task round trip.
  /// One that saw an error (possibly a late reply still on its way) is
  /// dropped instead of returned.
  class lease;

  template<class Reply, class... Ts>
  caf::expected<Reply> ask(Ts&&... xs);

  template<class Reply, class... Ts>
  caf::expected<Reply> ask_within(caf::timespan wait, Ts&&... xs);

  caf::actor_system& sys_;
  driver_actor actor_;
  std::shared_ptr<release_sink> sink_;
  size_t world_size_;
  caf::timespan wait_;
  caf::timespan transfer_wait_;
  /// Host of each rank (for the data plane); loopback when attached.
  std::vector<std::string> hosts_;
  std::vector<session_info> sessions_;
  caf::timespan close_wait_;
  std::atomic<bool> closed_{false};
  std::mutex selves_mtx_;
  std::vector<std::unique_ptr<caf::scoped_actor>> selves_;
};

} // namespace objstore
