#include "actors/worker/worker_actor.hpp"

#include <caf/actor_cast.hpp>
#include <caf/all.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/exec/interpreter.hpp"
#include "actors/log.hpp"
#include "actors/worker/peer_resolver.hpp"
#include "actors/worker/secret.hpp"
#include "store/error.hpp"

namespace objstore::detail {

/// What a task actor hands back to the worker: never leaves the process.
struct task_outcome {
  std::vector<uri> outputs;
  std::vector<uint64_t> sizes;
  std::vector<bool> revealed;
};

} // namespace objstore::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(objstore::detail::task_outcome)

namespace objstore {

bool runs_on_worker_thread(const graph& g, const std::vector<value_ptr>& inputs,
                           const op_registry& ops) {
  constexpr size_t max_ops = 32;
  constexpr size_t max_input_bytes = 64 * 1024;
  if (g.ops.size() > max_ops)
    return false;
  size_t bytes = 0;
  for (auto& x : inputs) {
    if (!x)
      return false; // fs:// input: disk IO
    bytes += x->size_bytes();
  }
  if (bytes > max_input_bytes)
    return false;
  for (auto& x : g.ops) {
    auto def = ops.find(x.opcode);
    if (!x.regions.empty() || def == nullptr || !def->linear)
      return false;
  }
  return true;
}

namespace {

using detail::task_outcome;

using self_ptr = worker_node_actor::stateful_pointer<worker_state>;

/// Everything a task actor needs; shared with the worker by pointer.
struct task_job {
  graph program;
  std::vector<value_ptr> inputs; // resolved mem:// inputs (null for fs)
  std::vector<uri> input_ids;    // all inputs
  std::shared_ptr<object_store> objects;
  /// The node's data plane (null without one): bytes it is receiving are
  /// memory the task may not take.
  std::shared_ptr<data_plane> data;
  std::shared_ptr<const op_registry> ops;
  std::shared_ptr<std::atomic<bool>> stopping;
  /// Who runs it: fs:// inputs must be readable by this principal.
  std::string principal;
  /// Set by a `cancel` of the session that submitted the task.
  std::shared_ptr<std::atomic<bool>> cancel
      = std::make_shared<std::atomic<bool>>(false);
  /// Runs on the worker's own thread: storing outputs may not wait for a
  /// spill (never disk IO there).
  bool on_worker_thread = false;
};

/// What a task may allocate: the memory left under the node's limit, less
/// the announced bytes of inbound transfers still being received.
uint64_t task_memory_budget(const task_job& job) {
  auto left = job.objects->memory_left();
  if (left == scoped_memory_budget::unlimited || !job.data)
    return left;
  auto receiving = job.data->receiving_bytes();
  return left > receiving ? left - receiving : 0;
}

caf::expected<task_outcome> run_job(task_job& job) {
  for (size_t i = 0; i < job.inputs.size(); ++i) {
    if (job.inputs[i])
      continue;
    // fs:// or spilled mem:// input: disk IO here, off the worker's thread
    // (a spilled input is pinned and comes back under its URI); for fs://
    // the owner rule first (another session's private object is no input
    // of ours).
    if (auto err = job.objects->authorize(job.input_ids[i], job.principal,
                                          fs_access::read))
      return err;
    auto x = job.objects->get(job.input_ids[i]);
    if (!x)
      return std::move(x.error());
    job.inputs[i] = std::move(*x);
  }
  // No kernel may allocate a buffer above the object size limit: a huge
  // requested output fails before it takes the node's memory.
  scoped_allocation_limit cap{job.objects->options().max_object_size};
  // And no kernel may hold more than the memory the node has left.
  scoped_memory_budget budget{task_memory_budget(job)};
  auto result = execute(job.program, std::move(job.inputs), *job.ops,
                        cancel_flags{job.cancel.get(), job.stopping.get()});
  if (!result)
    return std::move(result.error());
  task_outcome out;
  for (size_t i = 0; i < result->outputs.size(); ++i) {
    auto size = result->outputs[i]->size_bytes();
    auto id = job.objects->put(std::move(result->outputs[i]), std::nullopt,
                               job.on_worker_thread ? disk_io::never
                                                    : disk_io::allowed);
    if (!id) {
      for (auto& done : out.outputs)
        job.objects->erase(done);
      return std::move(id.error());
    }
    out.outputs.push_back(std::move(*id));
    out.sizes.push_back(size);
    out.revealed.push_back(result->revealed[i]);
  }
  return out;
}

/// run_job where nothing thrown escapes: reading fs:// inputs and storing
/// outputs can throw too (the ops' own exceptions are the interpreter's).
caf::expected<task_outcome> run_job_safely(task_job& job) {
  try {
    return run_job(job);
  } catch (const std::bad_alloc&) {
    return make_error(errc::resource_exhausted, "task ran out of memory ("
                                                    + current_exception_text()
                                                    + ")");
  } catch (...) {
    return make_error(errc::op_failed,
                      "task threw " + current_exception_text());
  }
}

using task_done_atom = caf::atom_constant<caf::atom("taskdone")>;

/// Runs `work` on the executor `pool` (for `session`, cancellable through
/// `cancel`) and answers the requester's `run` with its result. Lives only
/// while its work is queued or running; never serialized, hence unreachable
/// from other nodes.
template<class Result>
caf::behavior offload_actor(caf::event_based_actor* self,
                            std::function<caf::expected<Result>()> work,
                            std::weak_ptr<task_executor> pool,
                            session_id session,
                            std::shared_ptr<std::atomic<bool>> cancel) {
  // Weak: the actor may be freed on a pool thread (the pool's callback
  // holds the last reference), and the pool must never be destroyed there.
  return {
      [=](run_atom) -> caf::result<Result> {
        auto executor = pool.lock();
        if (!executor) {
          self->quit();
          return make_error(errc::cancelled, "the node is stopping");
        }
        auto me = caf::actor_cast<caf::actor>(self);
        auto run = [work, me] {
          auto out = work();
          if (out)
            caf::anon_send(me, task_done_atom::value, std::move(*out));
          else
            caf::anon_send(me, task_done_atom::value, std::move(out.error()));
        };
        auto dropped = [me] {
          caf::anon_send(
              me, task_done_atom::value,
              make_error(errc::cancelled, "task cancelled before it started"));
        };
        if (!executor->submit(session, cancel, std::move(run),
                              std::move(dropped))) {
          self->quit();
          return make_error(errc::resource_exhausted,
                            "the node's task queue is full ("
                                + std::to_string(executor->stats().queued)
                                + " tasks wait; limit "
                                  "objstore.max-queued-tasks)");
        }
        auto rp = self->make_response_promise<Result>();
        self->become(
            [=](task_done_atom, Result& out) mutable {
              rp.deliver(std::move(out));
              self->quit();
            },
            [=](task_done_atom, caf::error& err) mutable {
              rp.deliver(std::move(err));
              self->quit();
            });
        return rp;
      },
  };
}

/// Runs one task's job on the node's executor and answers the worker's
/// `run` with the outcome.
caf::behavior task_actor(caf::event_based_actor* self,
                         std::shared_ptr<task_job> job,
                         std::weak_ptr<task_executor> pool,
                         session_id session) {
  return offload_actor<task_outcome>(
      self, [job] { return run_job_safely(*job); }, std::move(pool), session,
      job->cancel);
}

bool runs_inline(const task_job& job) {
  return runs_on_worker_thread(job.program, job.inputs, *job.ops);
}

/// What one task request costs the worker: ops (regions included) and an
/// estimate of its encoded bytes. Stops counting past the limits and below
/// the nesting depth validate_structure accepts, so a hostile graph costs
/// no more than the limits to measure.
struct task_footprint {
  size_t ops = 0;
  size_t bytes = 0;
  /// The longest `sleep` op's "ms" (objstore.max-sleep).
  int64_t max_sleep_ms = 0;
};

void measure(const graph& g, int depth, size_t max_ops, size_t max_bytes,
             task_footprint& out) {
  out.bytes += (g.inputs.size() + g.outputs.size()) * sizeof(value_id);
  if (depth > 32)
    return; // validate_structure rejects it
  for (auto& x : g.ops) {
    if ((max_ops > 0 && out.ops > max_ops)
        || (max_bytes > 0 && out.bytes > max_bytes))
      return;
    ++out.ops;
    if (x.opcode == "sleep")
      out.max_sleep_ms = std::max(out.max_sleep_ms, x.attr_i64_or("ms", 0));
    out.bytes += x.opcode.size()
                 + (x.inputs.size() + x.outputs.size()) * sizeof(value_id);
    for (auto& a : x.attrs) {
      out.bytes += a.name.size() + a.s.size() + sizeof(int64_t)
                   + a.ints.size() * sizeof(int64_t)
                   + a.floats.size() * sizeof(double);
      for (auto& str : a.strs)
        out.bytes += str.size() + 1;
    }
    for (auto& region : x.regions)
      measure(region, depth + 1, max_ops, max_bytes, out);
  }
}

/// Checks a task against the node's graph limits before anything else
/// looks at it. Errors: `resource_exhausted` naming the limit.
caf::error check_task_limits(const task_request& req,
                             const node_options& opts) {
  task_footprint fp;
  for (auto& text : req.inputs)
    fp.bytes += text.size() + 1;
  measure(req.program, 0, opts.max_graph_ops, opts.max_graph_bytes, fp);
  if (opts.max_graph_ops > 0 && fp.ops > opts.max_graph_ops)
    return make_error(errc::resource_exhausted,
                      "task graph has more than "
                          + std::to_string(opts.max_graph_ops)
                          + " ops (limit objstore.max-graph-ops)");
  if (opts.max_graph_bytes > 0 && fp.bytes > opts.max_graph_bytes)
    return make_error(errc::resource_exhausted,
                      "task request holds more than "
                          + std::to_string(opts.max_graph_bytes)
                          + " bytes of ops, attributes and URIs (limit "
                            "objstore.max-graph-bytes)");
  if (opts.max_sleep.count() > 0 && fp.max_sleep_ms > opts.max_sleep.count())
    return make_error(errc::resource_exhausted,
                      "op 'sleep' asks for " + std::to_string(fp.max_sleep_ms)
                          + " ms, more than "
                          + std::to_string(opts.max_sleep.count())
                          + " ms (limit objstore.max-sleep)");
  return {};
}

using session = worker_state::session;

caf::error no_session() {
  return make_error(errc::unauthenticated,
                    "request without a sender (anonymous messages are "
                    "refused)");
}

/// Checks a request's session key. Unknown ids and wrong secrets get the
/// same answer, so a guesser learns nothing about which ids exist.
caf::expected<session*> authenticate(self_ptr self, const session_key& key) {
  auto& st = self->state;
  auto i = st.sessions.find(key.id);
  if (i == st.sessions.end() || !same_secret(i->second.secret, key.secret)) {
    ++st.counters.refused_requests;
    return make_error(errc::permission_denied,
                      "rank " + std::to_string(st.options.rank)
                          + ": unknown session or wrong session secret "
                            "(session "
                          + std::to_string(key.id) + ")");
  }
  return &i->second;
}

/// Keeps what a client may call itself: printable ASCII, 64 bytes.
std::string client_label(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (out.size() == 64)
      break;
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

caf::expected<session_info> open_session(self_ptr self,
                                         const hello_request& req) {
  auto& st = self->state;
  auto& sender = self->current_sender();
  if (!sender)
    return no_session();
  std::string principal;
  if (!req.principal.empty()) {
    auto i = st.options.principals.find(req.principal);
    if (i == st.options.principals.end()
        || !same_secret(i->second, req.principal_secret)) {
      ++st.counters.refused_requests;
      return make_error(errc::permission_denied,
                        "rank " + std::to_string(st.options.rank)
                            + ": unknown principal or wrong principal secret");
    }
    principal = req.principal;
  }
  bool op = false;
  if (!req.operator_secret.empty()) {
    if (st.options.operator_secret.empty()
        || !same_secret(st.options.operator_secret, req.operator_secret)) {
      ++st.counters.refused_requests;
      return make_error(errc::permission_denied,
                        "rank " + std::to_string(st.options.rank)
                            + ": wrong operator secret");
    }
    op = true;
  }
  if (st.options.max_sessions > 0
      && st.sessions.size() >= st.options.max_sessions)
    return make_error(errc::resource_exhausted,
                      "rank " + std::to_string(st.options.rank) + " has "
                          + std::to_string(st.sessions.size())
                          + " sessions open (limit)");
  auto addr = caf::actor_cast<caf::actor_addr>(sender);
  session x;
  x.id = st.next_session++;
  x.secret = random_secret(32);
  x.name = "session-" + std::to_string(x.id);
  if (auto label = client_label(req.client); !label.empty())
    x.name += " (" + label + ")";
  x.opener = addr;
  x.operator_access = op;
  // Who owns the fs:// objects this session writes: a configured principal
  // (persistent across sessions and restarts), the operator, or this
  // session alone (unique across restarts through the incarnation).
  x.principal = !principal.empty() ? principal
                : op               ? std::string{"operator"}
                     : "session-" + std::to_string(x.id) + "@" + st.incarnation;
  for (auto& ep : req.cluster) {
    if (x.cluster.size() == 4096)
      break; // a session cannot grow the node's memory without bound
    x.cluster.push_back(ep.substr(0, 300));
  }
  if (st.opened_by.count(addr) == 0)
    self->monitor(sender);
  st.opened_by.emplace(addr, x.id);
  if (st.options.guard)
    st.options.guard->session_opened(addr.node());
  session_info info;
  info.rank = st.options.rank;
  info.node_id = st.objects->options().node_id;
  info.policy = st.options.policy;
  info.data_port = st.data ? st.data->port() : 0;
  info.key = session_key{x.id, x.secret};
  info.operator_access = op;
  info.max_object_size = st.objects->options().max_object_size;
  info.memory_limit = st.objects->options().memory_limit;
  st.sessions.emplace(x.id, std::move(x));
  return info;
}

void erase_free(self_ptr self, const uri& id) {
  self->state.refs.forget(id);
  self->state.objects->erase(id);
}

/// Ends session `s`: drops its holds (freeing what nobody else holds or
/// pins) and cancels its running tasks. Returns the holds dropped.
uint64_t drop_session(self_ptr self, session_id s) {
  auto& st = self->state;
  auto i = st.sessions.find(s);
  if (i == st.sessions.end())
    return 0;
  auto [freed, dropped] = st.refs.drop_session(s);
  for (auto& id : freed)
    erase_free(self, id);
  // Its tasks stop: queued ones leave the queue now, running ones at their
  // next kernel poll; their pins go when their task actors answer.
  for (auto j = st.running.lower_bound(std::make_pair(s, uint64_t{0}));
       j != st.running.end() && j->first.first == s; ++j)
    j->second->store(true, std::memory_order_relaxed);
  st.executor->cancel_session(s);
  auto opener = i->second.opener;
  st.sessions.erase(i);
  if (st.options.guard)
    st.options.guard->session_closed(opener.node());
  auto [first, last] = st.opened_by.equal_range(opener);
  for (auto j = first; j != last; ++j) {
    if (j->second == s) {
      st.opened_by.erase(j);
      break;
    }
  }
  if (st.opened_by.count(opener) == 0)
    self->demonitor(opener);
  return dropped;
}

/// The actor that opened sessions went down: end them all.
void drop_sessions_of(self_ptr self, const caf::actor_addr& addr) {
  std::vector<session_id> ids;
  auto [first, last] = self->state.opened_by.equal_range(addr);
  for (auto i = first; i != last; ++i)
    ids.push_back(i->second);
  for (auto s : ids)
    drop_session(self, s);
}

std::string session_name(self_ptr self, session_id s) {
  auto& st = self->state;
  if (auto i = st.sessions.find(s); i != st.sessions.end())
    return i->second.name;
  return "session-" + std::to_string(s);
}

bool session_alive(self_ptr self, session_id s) {
  return self->state.sessions.count(s) > 0;
}

/// Checks that `s` holds the mem:// object `id`. A session may use only
/// objects it holds: a forged or foreign URI is refused.
caf::error check_held(self_ptr self, const uri& id, session_id s) {
  auto& st = self->state;
  auto e = st.refs.find(id);
  if (e == nullptr)
    return make_error(errc::not_found,
                      id.str() + " on rank " + std::to_string(st.options.rank));
  if (e->holders.count(s) == 0)
    return make_error(errc::permission_denied,
                      id.str() + ": not held by this session");
  return {};
}

/// Applies the fetch policy to a mem:// object held by `s`.
caf::error check_fetch(self_ptr self, const uri& id, session_id s) {
  auto& st = self->state;
  if (auto err = check_held(self, id, s))
    return err;
  auto e = st.refs.find(id);
  switch (st.options.policy) {
    case fetch_policy::allow: return {};
    case fetch_policy::deny:
      return make_error(errc::permission_denied,
                        id.str() + ": fetch policy of rank "
                            + std::to_string(st.options.rank) + " is 'deny'");
    case fetch_policy::revealed_only:
      if (e->revealed || e->put_by == s)
        return {};
      return make_error(errc::permission_denied,
                        id.str() + ": not revealed (fetch policy of rank "
                            + std::to_string(st.options.rank)
                            + " is 'revealed-only')");
  }
  return make_error(errc::permission_denied, id.str());
}

/// Runs `work` on the node's spill threads, where it may block on the disk,
/// and calls `done` with its result on the worker's thread.
template<class Result>
void off_thread(self_ptr self, std::function<caf::expected<Result>()> work,
                std::function<void(caf::expected<Result>)> done) {
  auto helper
      = self->spawn(offload_actor<Result>, std::move(work),
                    std::weak_ptr<task_executor>{self->state.spill_io},
                    session_id{0}, std::make_shared<std::atomic<bool>>(false));
  self->request(helper, caf::infinite, run_atom::value)
      .then([done](Result& x) { done(std::move(x)); },
            [done](caf::error& err) { done(std::move(err)); });
}

using value_callback = std::function<void(caf::expected<value_ptr>)>;

/// Restore-on-use: calls `done` with the mem:// object `id`, at once when
/// it is in memory; when it is spilled, after restoring it on the node's
/// spill threads (this actor never waits for the disk). `id` stays pinned
/// while it is restored, so a release meanwhile cannot free it; the caller
/// has checked that the session holds it. Errors: `not_found`, and for a
/// spilled object `object_lost` (spill file missing), `corrupt_data`,
/// `resource_exhausted` (no room to restore), `io_error`, naming `id`.
void with_value(self_ptr self, const uri& id, value_callback done) {
  auto& st = self->state;
  auto x = st.objects->get_resident(id);
  if (!x) {
    done(std::move(x.error()));
    return;
  }
  if (*x) {
    done(std::move(*x));
    return;
  }
  st.refs.pin(id);
  auto objects = st.objects;
  off_thread<wire_value>(
      self,
      [objects, id]() -> caf::expected<wire_value> {
        auto restored = objects->get(id);
        if (!restored)
          return std::move(restored.error());
        return wire_value{std::move(*restored)};
      },
      [self, id, done](caf::expected<wire_value> restored) {
        if (self->state.refs.unpin(id))
          erase_free(self, id);
        if (!restored)
          done(std::move(restored.error()));
        else
          done(std::move(restored->ptr));
      });
}

/// Stores `x` as a new mem:// object held by session `s` (put by
/// `put_by`, 0 for none) and answers `rp` with its URI. When the store has
/// to spill first to make room, the put runs on the node's spill threads;
/// if the session closed meanwhile the object is erased again (no leak).
/// Errors: those of object_store::put (`resource_exhausted` when what is
/// pinned leaves no room), `object_lost` for a session gone meanwhile.
void store_held(self_ptr self, value_ptr x, session_id s, session_id put_by,
                caf::typed_response_promise<std::string> rp) {
  auto size = x->size_bytes();
  auto finish = [self, s, put_by, size, rp](caf::expected<uri> id) mutable {
    auto& st = self->state;
    if (!id) {
      rp.deliver(std::move(id.error()));
      return;
    }
    if (!session_alive(self, s)) {
      st.objects->erase(*id);
      rp.deliver(make_error(errc::object_lost, "the session closed"));
      return;
    }
    st.refs.add(*id, s, size, false, put_by, reference_table::clock::now());
    if (put_by != 0)
      st.put_bytes += size;
    rp.deliver(id->str());
  };
  auto& objects = self->state.objects;
  if (!objects->needs_spill_for(size)) {
    finish(objects->put(std::move(x), std::nullopt, disk_io::never));
    return;
  }
  off_thread<std::string>(
      self,
      // Moved into the store: a copy left in this closure would make the
      // new object look pinned (held outside the store) until the helper
      // actor is gone, and a put right after could find nothing to spill.
      [objects, x]() mutable -> caf::expected<std::string> {
        auto id = objects->put(std::move(x));
        if (!id)
          return std::move(id.error());
        return id->str();
      },
      [finish](caf::expected<std::string> text) mutable {
        if (!text)
          finish(std::move(text.error()));
        else
          finish(uri::parse(*text));
      });
}

/// Gets the value of `text` for a fetch by session `me` if the fetch
/// policy allows it: mem:// objects at once, fs:// objects from the store
/// actor (file IO off this thread). `then` receives the value or the error.
template<class Then>
void fetch_value(self_ptr self, const session& me, const std::string& text,
                 Then reply) {
  auto& st = self->state;
  ++st.counters.fetches;
  auto then
      = [self, reply = std::move(reply)](caf::expected<value_ptr> x) mutable {
          if (x && *x)
            self->state.fetch_bytes += (*x)->size_bytes();
          reply(std::move(x));
        };
  auto id = uri::parse(text);
  if (!id)
    return then(caf::expected<value_ptr>{std::move(id.error())});
  if (id->scheme() != scheme::mem) {
    if (st.options.policy != fetch_policy::allow) {
      ++st.counters.fetches_denied;
      return then(caf::expected<value_ptr>{make_error(
          errc::permission_denied,
          id->str()
              + ": persistent (fs://, oss://) objects are fetchable only "
                "under the 'allow' policy")});
    }
    self->request(st.store, caf::infinite, get_atom::value, text, me.principal)
        .then(
            [then](wire_value& x) mutable {
              then(caf::expected<value_ptr>{std::move(x.ptr)});
            },
            [then](caf::error& err) mutable {
              then(caf::expected<value_ptr>{std::move(err)});
            });
    return;
  }
  if (auto err = check_fetch(self, *id, me.id)) {
    if (code_of(err) == errc::permission_denied)
      ++st.counters.fetches_denied;
    return then(caf::expected<value_ptr>{std::move(err)});
  }
  // The reply shares the value: it stays alive until serialized (or
  // pulled) even if every handle is released meanwhile.
  with_value(self, *id, std::move(then));
}

/// How long an unused transfer token or fetch grant stays valid.
std::chrono::milliseconds token_ttl(const node_options& options) {
  return std::max<std::chrono::milliseconds>(options.data.io_timeout * 4,
                                             std::chrono::minutes{1});
}

/// Where worker `rank` of session `me`'s cluster listens for BASP: the
/// node's configured members if any, else what the session named at hello.
caf::expected<std::string> member_endpoint(self_ptr self, const session& me,
                                           uint32_t rank) {
  auto& st = self->state;
  auto& members = st.options.members.empty() ? me.cluster : st.options.members;
  if (rank >= members.size())
    return make_error(errc::invalid_argument,
                      "transfer to rank " + std::to_string(rank)
                          + ": not a member of the cluster this worker knows ("
                          + std::to_string(members.size()) + " workers)");
  if (rank == st.options.rank)
    return make_error(errc::invalid_argument, "transfer to rank "
                                                  + std::to_string(rank)
                                                  + ": that is this worker");
  return members[rank];
}

using peer_callback
    = std::function<void(caf::expected<std::pair<std::string, uint16_t>>)>;

/// Finds the data plane of the worker at `endpoint` (host:port of its
/// actor connection): connects to it as a peer (over TLS when this node uses
/// TLS, so only a member of the cluster's CA answers) and asks who it is.
/// The peer must say it is `rank`; its data port is cached per endpoint.
void resolve_peer(self_ptr self, const std::string& endpoint, uint32_t rank,
                  peer_callback done) {
  auto& st = self->state;
  auto check = [rank, endpoint](const peer_info& info)
      -> caf::expected<std::pair<std::string, uint16_t>> {
    if (info.rank != rank)
      return make_error(errc::invalid_argument,
                        "the worker at " + endpoint + " is rank "
                            + std::to_string(info.rank) + ", not rank "
                            + std::to_string(rank));
    if (info.data_port == 0)
      return make_error(errc::unsupported,
                        "the worker at " + endpoint + " has no data plane");
    return std::make_pair(endpoint.substr(0, endpoint.rfind(':')),
                          info.data_port);
  };
  if (auto i = st.peers.find(endpoint); i != st.peers.end()) {
    done(check(i->second));
    return;
  }
  auto colon = endpoint.rfind(':');
  auto port = colon == std::string::npos
                  ? 0ul
                  : std::strtoul(endpoint.c_str() + colon + 1, nullptr, 10);
  if (colon == std::string::npos || colon == 0 || port == 0 || port > 65535) {
    done(make_error(errc::invalid_argument,
                    "bad cluster endpoint '" + endpoint + "'"));
    return;
  }
  auto host = endpoint.substr(0, colon);
  // The worker itself behind another name: connecting to oneself over TLS
  // tears down the node's routes in CAF 0.17, so refuse before connecting.
  auto own = st.options.published_port ? st.options.published_port->load()
                                       : uint16_t{0};
  bool local_host = host == "localhost" || host == "::1" || host == "[::1]"
                    || host.rfind("127.", 0) == 0 || host == "0.0.0.0"
                    || host == st.options.data.bind_host;
  if (own != 0 && port == own && local_host) {
    done(make_error(errc::invalid_argument,
                    "the endpoint " + endpoint + " is this worker itself"));
    return;
  }
  auto& sys = self->system();
  auto mm = st.options.data.tls.enabled() && sys.has_openssl_manager()
                ? sys.openssl_manager().actor_handle()
                : sys.middleman().actor_handle();
  peer_resolver_options opts;
  opts.timeout = st.options.data.io_timeout;
  // A resolver of its own per lookup: it watches the peer's proxy, which a
  // worker's down handler (sessions) must not see.
  auto resolver = self->spawn(peer_resolver, mm, endpoint, std::move(host),
                              static_cast<uint16_t>(port), opts);
  // The resolver answers within its own deadline; this one only backs it.
  auto backstop = caf::timespan{opts.timeout + std::chrono::seconds{5}};
  self->request(resolver, backstop, caf::get_atom::value)
      .then(
          [self, endpoint, check, done](peer_info& info) {
            self->state.peers[endpoint] = info;
            done(check(info));
          },
          [endpoint, done](caf::error& err) {
            if (code_of(err) != errc::none)
              done(std::move(err));
            else
              done(make_error(errc::object_lost, "cannot reach the worker at "
                                                     + endpoint + ": "
                                                     + describe(err)));
          });
}

/// Streams `value` to the data plane of worker `rank` (at `endpoint`)
/// under `token` and answers `rp` with the URI on the target; `done` runs
/// when the push ended either way (unpins a mem:// source).
void push_to_peer(self_ptr self, caf::typed_response_promise<std::string> rp,
                  const std::string& endpoint, uint32_t rank, std::string token,
                  value_ptr value, std::function<void()> done) {
  resolve_peer(
      self, endpoint, rank,
      [self, rp, token = std::move(token), value = std::move(value),
       done = [self, done = std::move(done),
               start = std::chrono::steady_clock::now()] {
         observe(self->state.transfer_seconds,
                 seconds_since(start, std::chrono::steady_clock::now()));
         done();
       }](caf::expected<std::pair<std::string, uint16_t>> where) mutable {
        if (!where) {
          done();
          rp.deliver(std::move(where.error()));
          return;
        }
        self->request(self->state.transfer, caf::infinite, push_atom::value,
                      std::move(where->first), where->second, std::move(token),
                      wire_value{std::move(value)})
            .then(
                [rp, done](std::string& uri) mutable {
                  done();
                  rp.deliver(std::move(uri));
                },
                [rp, done](caf::error& err) mutable {
                  done();
                  rp.deliver(std::move(err));
                });
      });
}

/// Registers an expected inbound transfer for session `me` (written to
/// the fs:// URI `target` when not empty) under the token caps.
caf::expected<std::string> expect_transfer(self_ptr self, const session& me,
                                           std::string target = {},
                                           bool put = false) {
  auto& st = self->state;
  if (!st.data)
    return make_error(errc::unsupported, "this node has no data plane");
  auto cap = st.data->options().max_pending_tokens;
  if (cap > 0 && st.data->pending_tokens(me.id) >= cap)
    return make_error(errc::resource_exhausted,
                      "session holds " + std::to_string(cap)
                          + " unused transfer tokens (limit); use or "
                            "let them expire first");
  auto deadline = std::chrono::steady_clock::now() + token_ttl(st.options);
  if (put)
    return st.data->expect_put(me.id, deadline);
  auto principal = target.empty() ? std::string{} : me.principal;
  return st.data->expect(me.id, deadline, std::move(target),
                         std::move(principal));
}

/// Checks an `adopt` before anything is stored: sent by this node's data
/// plane, for a live session, with a value.
caf::error check_adopt(self_ptr self, uint64_t session, const wire_value& x) {
  auto& sender = self->current_sender();
  if (!sender || sender->node() != self->node())
    return make_error(errc::permission_denied,
                      "adopt is node-local (refused from a peer)");
  if (!session_alive(self, session))
    return make_error(errc::object_lost, "the receiving session is closed");
  if (!x.ptr)
    return make_error(errc::invalid_argument, "adopt of a null value");
  return {};
}

/// Stores a value the data plane received for `session` (node-local
/// senders only); `put`: the session's own put, else a transfer.
caf::result<std::string> adopt_value(self_ptr self, uint64_t session,
                                     wire_value& x, bool put) {
  if (auto err = check_adopt(self, session, x))
    return err;
  auto rp = self->make_response_promise<std::string>();
  store_held(self, std::move(x.ptr), session, put ? session : 0, rp);
  return rp;
}

/// Node-wide counters: for operator sessions only.
worker_stats node_stats(self_ptr self) {
  auto& st = self->state;
  auto result = st.counters;
  auto totals = st.objects->stats();
  result.mem_objects = totals.of(scheme::mem).objects;
  result.mem_bytes = totals.of(scheme::mem).bytes;
  result.fs_objects = totals.of(scheme::fs).objects;
  result.fs_bytes = totals.of(scheme::fs).bytes;
  result.spill = totals.spill;
  result.sessions = st.sessions.size();
  result.releases = st.refs.releases();
  result.unknown_releases = st.refs.unknown_releases();
  result.pinned_objects = st.refs.pinned_objects();
  if (st.data) {
    auto& c = st.data->counters();
    result.transfers_in = c.transfers_in.load();
    result.transfers_out = c.transfers_out.load();
    result.transfers_failed = c.failed_in.load() + c.failed_out.load();
    result.transfer_bytes_in = c.bytes_in.load();
    result.transfer_bytes_out = c.bytes_out.load();
    result.transfer_max_in_flight = c.max_in_flight.load();
    result.transfer_rejected_chunks = c.rejected_chunks.load();
  }
  auto pool = st.executor->stats();
  result.tasks_queued = pool.queued;
  result.task_threads = pool.threads;
  result.task_threads_busy = pool.busy;
  result.node_wide = true;
  return result;
}

/// What a session may know: the objects it holds. No other session's
/// numbers, and no node totals (they would show others' activity).
worker_stats session_stats(self_ptr self, session_id s) {
  auto& st = self->state;
  worker_stats result;
  result.rank = st.options.rank;
  result.sessions = 1;
  for (auto& [id, e] : st.refs.entries()) {
    if (e.holders.count(s) == 0)
      continue;
    ++result.mem_objects;
    result.mem_bytes += e.size_bytes;
    if (e.pins > 0)
      ++result.pinned_objects;
  }
  // Tasks in task actors; inline ones finish before the next message.
  auto first = st.running.lower_bound({s, 0});
  auto last = st.running.lower_bound({s + 1, 0});
  result.tasks_running = static_cast<uint64_t>(std::distance(first, last));
  return result;
}

/// Node-wide counters and objects by scheme and state for the node's
/// metrics endpoint (node_exporter.hpp).
worker_metrics node_metrics(self_ptr self) {
  auto& st = self->state;
  worker_metrics result;
  result.stats = node_stats(self);
  object_gauge held{"mem", "held"}, pinned{"mem", "pinned"},
      spilled{"mem", "spilled"};
  for (auto& [id, e] : st.refs.entries()) {
    auto& g = e.pins > 0 ? pinned : st.objects->is_spilled(id) ? spilled : held;
    ++g.objects;
    g.bytes += e.size_bytes;
  }
  result.objects = {held, pinned, spilled};
  auto totals = st.objects->stats();
  for (auto x : {scheme::fs, scheme::oss}) {
    auto b = totals.of(x);
    result.objects.push_back(
        {std::string{to_string(x)}, "held", b.objects, b.bytes});
  }
  result.put_bytes = st.put_bytes;
  result.fetch_bytes = st.fetch_bytes;
  result.task_seconds = st.task_seconds;
  result.transfer_seconds = st.transfer_seconds;
  return result;
}

/// The session's own objects (each with only its own holds), or every
/// object for an operator session. Holders are named, never addressed.
std::vector<object_record> list_objects(self_ptr self, const session& me) {
  auto& st = self->state;
  std::vector<object_record> result;
  auto now = reference_table::clock::now();
  for (auto& [id, e] : st.refs.entries()) {
    if (!me.operator_access && e.holders.count(me.id) == 0)
      continue;
    object_record rec;
    rec.uri = id.str();
    rec.size_bytes = e.size_bytes;
    for (auto& [s, n] : e.holders)
      if (me.operator_access || s == me.id)
        rec.holders.push_back({session_name(self, s), n});
    rec.pins = e.pins;
    rec.age_ms
        = std::chrono::duration_cast<std::chrono::milliseconds>(now - e.created)
              .count();
    rec.revealed = e.revealed;
    rec.spilled = st.objects->is_spilled(id);
    result.push_back(std::move(rec));
  }
  std::sort(result.begin(), result.end(),
            [](auto& x, auto& y) { return x.uri < y.uri; });
  return result;
}

/// Registers the outputs of a finished task as held by session `s` and
/// builds the reply; erases them instead if the session closed meanwhile.
task_reply task_done(self_ptr self, session_id s, uint64_t task_id,
                     task_outcome& out) {
  auto& st = self->state;
  ++st.counters.tasks_run;
  bool alive = session_alive(self, s);
  task_reply reply;
  reply.task_id = task_id;
  auto now = reference_table::clock::now();
  for (size_t i = 0; i < out.outputs.size(); ++i) {
    if (!alive) {
      st.objects->erase(out.outputs[i]);
      continue;
    }
    st.refs.add(out.outputs[i], s, out.sizes[i], out.revealed[i], 0, now);
    reply.outputs.push_back(out.outputs[i].str());
  }
  return reply;
}

} // namespace

worker_node_actor::behavior_type
worker_actor_impl(self_ptr self, node_options options,
                  std::shared_ptr<object_store> objects, store_actor store,
                  std::shared_ptr<std::atomic<bool>> stopping,
                  transfer_actor transfer, std::shared_ptr<data_plane> data) {
  auto& st = self->state;
  st.transfer = std::move(transfer);
  st.data = std::move(data);
  st.ops = options.ops ? options.ops : op_registry::with_builtins();
  if (!options.executor)
    options.executor = std::make_shared<task_executor>(options.tasks);
  st.executor = options.executor;
  if (!options.spill_io && objects->spilling())
    options.spill_io = std::make_shared<task_executor>(
        task_executor_options{node_options::spill_threads, 0});
  st.spill_io = options.spill_io;
  st.options = std::move(options);
  st.objects = std::move(objects);
  st.store = std::move(store);
  st.stopping = std::move(stopping);
  st.counters.rank = st.options.rank;
  st.incarnation = random_secret(6);
  log::log_unexpected_messages(self);
  self->set_down_handler(
      [self](caf::down_msg& dm) { drop_sessions_of(self, dm.source); });
  return {
      [=](hello_atom, hello_request& req) -> caf::result<session_info> {
        auto info = open_session(self, req);
        if (!info)
          return std::move(info.error());
        return std::move(*info);
      },
      [=](put_atom, session_key& key,
          put_request& req) -> caf::result<std::string> {
        auto me = authenticate(self, key);
        if (!me)
          return std::move(me.error());
        auto s = (*me)->id;
        if (!req.value.ptr)
          return make_error(errc::invalid_argument, "put of a null value");
        if (!req.target.empty()) {
          auto id = uri::parse(req.target);
          if (!id)
            return std::move(id.error());
          if (id->scheme() == scheme::mem)
            return make_error(errc::invalid_uri,
                              id->str()
                                  + ": a put names fs:// or oss:// targets "
                                    "only; mem:// ids are assigned by the "
                                    "worker");
          return self->delegate(self->state.store, put_atom::value,
                                std::move(req.value), std::move(req.target),
                                (*me)->principal);
        }
        auto rp = self->make_response_promise<std::string>();
        store_held(self, std::move(req.value.ptr), s, s, rp);
        return rp;
      },
      [=](run_atom, session_key& key,
          task_request& req) -> caf::result<task_reply> {
        auto& st = self->state;
        auto me = authenticate(self, key);
        if (!me)
          return std::move(me.error());
        auto s = (*me)->id;
        if (auto err = check_task_limits(req, st.options))
          return err;
        if (auto err = validate(req.program, *st.ops))
          return err;
        if (req.inputs.size() != req.program.inputs.size())
          return make_error(
              errc::op_failed,
              "graph takes " + std::to_string(req.program.inputs.size())
                  + " inputs, task binds " + std::to_string(req.inputs.size()));
        auto job = std::make_shared<task_job>();
        for (auto& text : req.inputs) {
          auto id = uri::parse(text);
          if (!id)
            return std::move(id.error());
          if (id->scheme() == scheme::mem) {
            if (auto err = check_held(self, *id, s))
              return err;
            // Null when spilled: the task restores it on its thread.
            auto x = st.objects->get_resident(*id);
            if (!x)
              return std::move(x.error());
            job->inputs.push_back(std::move(*x));
          } else {
            job->inputs.push_back(nullptr);
          }
          job->input_ids.push_back(std::move(*id));
        }
        // Pin on arrival: a release racing this task cannot free its inputs.
        for (auto& id : job->input_ids)
          if (id.scheme() == scheme::mem)
            st.refs.pin(id);
        job->program = std::move(req.program);
        job->objects = st.objects;
        job->data = st.data;
        job->ops = st.ops;
        job->stopping = st.stopping;
        job->principal = (*me)->principal;
        ++st.counters.tasks_running;
        if (st.options.running_tasks)
          ++*st.options.running_tasks;
        auto task_id = req.task_id;
        auto finish = [self, job, start = std::chrono::steady_clock::now()] {
          auto& st = self->state;
          observe(st.task_seconds,
                  seconds_since(start, std::chrono::steady_clock::now()));
          --st.counters.tasks_running;
          if (st.options.running_tasks)
            --*st.options.running_tasks;
          for (auto& id : job->input_ids)
            if (id.scheme() == scheme::mem && st.refs.unpin(id))
              erase_free(self, id);
        };
        if (runs_inline(*job) && !st.objects->needs_spill_for(4u << 20)) {
          // Bounded by the input size: cheaper here than a task actor's
          // spawn and two messages (and its outputs fit without a spill).
          job->on_worker_thread = true;
          auto out = run_job_safely(*job);
          finish();
          if (!out) {
            ++st.counters.tasks_failed;
            return std::move(out.error());
          }
          return task_done(self, s, task_id, *out);
        }
        auto rp = self->make_response_promise<task_reply>();
        // Cancellable while its task actor runs.
        auto running
            = st.running.emplace(std::make_pair(s, task_id), job->cancel);
        auto done = [self, running, finish] {
          self->state.running.erase(running);
          finish();
        };
        auto task = self->spawn(task_actor, job,
                                std::weak_ptr<task_executor>{st.executor}, s);
        self->request(task, caf::infinite, run_atom::value)
            .then(
                [self, rp, s, task_id, done](task_outcome& out) mutable {
                  done();
                  if (self->state.stopping->load()) {
                    // Going down (stop_node): the worker's down message
                    // answers the driver; outputs are not kept.
                    for (auto& id : out.outputs)
                      self->state.objects->erase(id);
                    return;
                  }
                  rp.deliver(task_done(self, s, task_id, out));
                },
                [self, rp, done](caf::error& err) mutable {
                  done();
                  ++self->state.counters.tasks_failed;
                  if (self->state.stopping->load())
                    return; // as above: cancelled by the stop, not the driver
                  rp.deliver(std::move(err));
                });
        return rp;
      },
      [=](cancel_atom, session_key& key, uint64_t task_id) -> bool {
        auto& st = self->state;
        auto me = authenticate(self, key);
        if (!me)
          return false;
        auto s = (*me)->id;
        bool found = false;
        auto [first, last] = st.running.equal_range(std::make_pair(s, task_id));
        for (auto i = first; i != last; ++i) {
          i->second->store(true, std::memory_order_relaxed);
          // Still queued: out of the queue now, answered `cancelled`.
          st.executor->cancel(i->second);
          found = true;
        }
        return found;
      },
      [=](fetch_atom, session_key& key,
          std::string& text) -> caf::result<wire_value> {
        auto me = authenticate(self, key);
        if (!me)
          return std::move(me.error());
        auto rp = self->make_response_promise<wire_value>();
        fetch_value(
            self, **me, text, [rp, text](caf::expected<value_ptr> x) mutable {
              if (!x)
                rp.deliver(std::move(x.error()));
              else if ((*x)->size_bytes() > max_message_value)
                rp.deliver(
                    make_error(errc::resource_exhausted,
                               text + ": " + std::to_string((*x)->size_bytes())
                                   + " bytes are too large for an actor "
                                     "message; fetch it over the data plane "
                                     "(a driver does above its stream "
                                     "threshold)"));
              else
                rp.deliver(wire_value{std::move(*x)});
            });
        return rp;
      },
      [=](fetch_atom, session_key& key, std::string& text,
          uint64_t stream_threshold) -> caf::result<fetch_reply> {
        auto me = authenticate(self, key);
        if (!me)
          return std::move(me.error());
        auto s = (*me)->id;
        auto rp = self->make_response_promise<fetch_reply>();
        fetch_value(
            self, **me, text,
            [self, rp, s,
             stream_threshold](caf::expected<value_ptr> x) mutable {
              if (!x) {
                rp.deliver(std::move(x.error()));
                return;
              }
              auto& st = self->state;
              fetch_reply reply;
              reply.size_bytes = (*x)->size_bytes();
              // Too large for an actor message: a grant whatever the
              // threshold.
              auto fits = reply.size_bytes <= max_message_value;
              auto streams = st.data && st.data->port() != 0;
              if (!fits && !streams) {
                rp.deliver(make_error(
                    errc::resource_exhausted,
                    std::to_string(reply.size_bytes)
                        + " bytes are too large for an actor message and "
                          "this node has no data plane"));
                return;
              }
              if (fits && (reply.size_bytes < stream_threshold || !streams)) {
                reply.value = wire_value{std::move(*x)};
                rp.deliver(std::move(reply));
                return;
              }
              auto grant = st.data->offer(s, std::move(*x),
                                          std::chrono::steady_clock::now()
                                              + token_ttl(st.options));
              if (!grant) {
                rp.deliver(std::move(grant.error()));
                return;
              }
              reply.grant = std::move(*grant);
              rp.deliver(std::move(reply));
            });
        return rp;
      },
      [=](release_atom, session_key& key, std::vector<std::string>& texts) {
        auto& st = self->state;
        ++st.counters.release_msgs;
        auto me = authenticate(self, key);
        if (!me)
          return;
        auto s = (*me)->id;
        for (auto& text : texts) {
          auto id = uri::parse(text);
          if (!id) {
            st.refs.count_unknown();
            continue;
          }
          if (st.refs.release(*id, s))
            erase_free(self, *id);
        }
      },
      [=](erase_atom, session_key& key,
          std::string& text) -> caf::result<bool> {
        auto& st = self->state;
        auto me = authenticate(self, key);
        if (!me)
          return std::move(me.error());
        auto s = (*me)->id;
        auto id = uri::parse(text);
        if (!id)
          return std::move(id.error());
        if (id->scheme() != scheme::mem)
          return self->delegate(st.store, erase_atom::value, std::move(text),
                                (*me)->principal);
        if (auto err = check_held(self, *id, s))
          return err;
        if (st.refs.release_all(*id, s))
          erase_free(self, *id);
        return true;
      },
      [=](stats_atom, session_key& key) -> caf::result<worker_stats> {
        auto me = authenticate(self, key);
        if (!me)
          return std::move(me.error());
        return (*me)->operator_access ? node_stats(self)
                                      : session_stats(self, (*me)->id);
      },
      [=](objects_atom,
          session_key& key) -> caf::result<std::vector<object_record>> {
        auto me = authenticate(self, key);
        if (!me)
          return std::move(me.error());
        return list_objects(self, **me);
      },
      [=](close_atom, session_key& key) -> caf::result<uint64_t> {
        auto me = authenticate(self, key);
        if (!me)
          return std::move(me.error());
        return drop_session(self, (*me)->id);
      },
      [=](ping_atom) { return ping_atom::value; },
      [=](metrics_atom) -> worker_metrics { return node_metrics(self); },
      [=](expect_atom, session_key& key) -> caf::result<std::string> {
        auto me = authenticate(self, key);
        if (!me)
          return std::move(me.error());
        return expect_transfer(self, **me);
      },
      [=](expect_atom, session_key& key,
          std::string& text) -> caf::result<std::string> {
        auto& st = self->state;
        auto me = authenticate(self, key);
        if (!me)
          return std::move(me.error());
        auto id = uri::parse(text);
        if (!id)
          return std::move(id.error());
        if (id->scheme() == scheme::mem)
          return make_error(errc::invalid_uri,
                            id->str()
                                + ": a transfer names fs:// or oss:// targets "
                                  "only; mem:// ids are assigned by the "
                                  "worker");
        if (!st.data)
          return make_error(errc::unsupported, "this node has no data plane");
        // The write check touches the disk or the network: on the store
        // actor's thread.
        auto rp = self->make_response_promise<std::string>();
        auto s = (*me)->id;
        self->request(st.store, caf::infinite, may_write_atom::value,
                      std::move(text), (*me)->principal)
            .then(
                [self, rp, s](std::string& target) mutable {
                  auto i = self->state.sessions.find(s);
                  if (i == self->state.sessions.end()) {
                    rp.deliver(
                        make_error(errc::object_lost, "the session closed"));
                    return;
                  }
                  auto token
                      = expect_transfer(self, i->second, std::move(target));
                  if (token)
                    rp.deliver(std::move(*token));
                  else
                    rp.deliver(std::move(token.error()));
                },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [=](put_atom, session_key& key, expect_atom) -> caf::result<std::string> {
        auto me = authenticate(self, key);
        if (!me)
          return std::move(me.error());
        return expect_transfer(self, **me, {}, true);
      },
      [=](push_atom, session_key& key, std::string& text, uint32_t target,
          std::string& token) -> caf::result<std::string> {
        auto& st = self->state;
        auto me = authenticate(self, key);
        if (!me)
          return std::move(me.error());
        auto s = (*me)->id;
        auto id = uri::parse(text);
        if (!id)
          return std::move(id.error());
        if (id->scheme() != scheme::mem) {
          // fs:// (persistent, owned): the store actor applies the access
          // rule and reads the file off this thread; nothing to pin.
          auto endpoint = member_endpoint(self, **me, target);
          if (!endpoint)
            return std::move(endpoint.error());
          auto rp = self->make_response_promise<std::string>();
          self->request(st.store, caf::infinite, get_atom::value,
                        std::move(text), (*me)->principal)
              .then(
                  [self, rp, endpoint = *endpoint, target,
                   token = std::move(token)](wire_value& x) mutable {
                    push_to_peer(self, rp, endpoint, target, std::move(token),
                                 std::move(x.ptr), [] {});
                  },
                  [rp](caf::error& err) mutable {
                    rp.deliver(std::move(err));
                  });
          return rp;
        }
        if (auto err = check_held(self, *id, s))
          return err;
        auto endpoint = member_endpoint(self, **me, target);
        if (!endpoint)
          return std::move(endpoint.error());
        // Pinned while it is restored, the peer is found and the value
        // streams: a release meanwhile cannot free it.
        st.refs.pin(*id);
        auto rp = self->make_response_promise<std::string>();
        auto unpin = [self, id = *id] {
          if (self->state.refs.unpin(id))
            erase_free(self, id);
        };
        with_value(self, *id,
                   [self, rp, unpin, token, endpoint = *endpoint,
                    target](caf::expected<value_ptr> x) mutable {
                     if (!x) {
                       unpin();
                       rp.deliver(std::move(x.error()));
                       return;
                     }
                     push_to_peer(self, rp, endpoint, target, std::move(token),
                                  std::move(*x), unpin);
                   });
        return rp;
      },
      [=](peer_atom) -> peer_info {
        auto& st = self->state;
        return peer_info{st.options.rank, st.objects->options().node_id,
                         st.data ? st.data->port() : uint16_t{0}};
      },
      [=](adopt_atom, uint64_t session,
          wire_value& x) -> caf::result<std::string> {
        return adopt_value(self, session, x, false);
      },
      [=](adopt_atom, uint64_t session, wire_value& x,
          put_atom) -> caf::result<std::string> {
        return adopt_value(self, session, x, true);
      },
      [=](adopt_atom, uint64_t session, std::string& target,
          std::string& principal, wire_value& x) -> caf::result<std::string> {
        auto& st = self->state;
        if (auto err = check_adopt(self, session, x))
          return err;
        if (st.sessions.at(session).principal != principal)
          return make_error(errc::permission_denied,
                            target
                                + ": the transfer's principal is not the "
                                  "receiving session's");
        // Like a put to an fs:// target: the store actor checks the write
        // again (the file may have changed hands since `expect`) and writes
        // temp file + rename off this thread; the object is owned, not held.
        return self->delegate(st.store, put_atom::value, std::move(x),
                              std::move(target), std::move(principal));
      },
  };
}

} // namespace objstore
