#include "actors/worker_actor.hpp"

#include <caf/actor_cast.hpp>
#include <caf/all.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/interpreter.hpp"
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

using self_ptr = worker_actor::stateful_pointer<worker_state>;

/// Everything a task actor needs; shared with the worker by pointer.
struct task_job {
  graph program;
  std::vector<value_ptr> inputs; // resolved mem:// inputs (null for fs)
  std::vector<uri> input_ids;    // all inputs
  std::shared_ptr<object_store> objects;
  std::shared_ptr<const op_registry> ops;
  std::shared_ptr<std::atomic<bool>> stopping;
  /// Set by a `cancel` of the session that submitted the task.
  std::shared_ptr<std::atomic<bool>> cancel
      = std::make_shared<std::atomic<bool>>(false);
};

caf::expected<task_outcome> run_job(task_job& job) {
  for (size_t i = 0; i < job.inputs.size(); ++i) {
    if (job.inputs[i])
      continue;
    auto x = job.objects->get(job.input_ids[i]); // fs:// input: disk IO here
    if (!x)
      return std::move(x.error());
    job.inputs[i] = std::move(*x);
  }
  // No kernel may allocate a buffer above the object size limit: a huge
  // requested output fails before it takes the node's memory.
  scoped_allocation_limit cap{job.objects->options().max_object_size};
  auto result = execute(job.program, std::move(job.inputs), *job.ops,
                        cancel_flags{job.cancel.get(), job.stopping.get()});
  if (!result)
    return std::move(result.error());
  task_outcome out;
  for (size_t i = 0; i < result->outputs.size(); ++i) {
    auto size = result->outputs[i]->size_bytes();
    auto id = job.objects->put(std::move(result->outputs[i]));
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

caf::behavior task_actor(caf::event_based_actor* self,
                         std::shared_ptr<task_job> job) {
  return {
      [self, job](run_atom) -> caf::result<task_outcome> {
        self->quit();
        auto out = run_job(*job);
        if (!out)
          return std::move(out.error());
        return std::move(*out);
      },
  };
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
  return {};
}

/// Returns the session of the current sender, opening it on first contact.
session_id session_of(self_ptr self) {
  auto& sender = self->current_sender();
  if (!sender)
    return 0;
  auto addr = caf::actor_cast<caf::actor_addr>(sender);
  auto& st = self->state;
  auto i = st.sessions.find(addr);
  if (i != st.sessions.end())
    return i->second.id;
  auto id = st.next_session++;
  auto name
      = "session-" + std::to_string(id) + " (" + caf::to_string(addr) + ")";
  st.sessions.emplace(addr, worker_state::session{id, std::move(name)});
  self->monitor(sender);
  return id;
}

void erase_free(self_ptr self, const uri& id) {
  self->state.refs.forget(id);
  self->state.objects->erase(id);
}

uint64_t drop_session(self_ptr self, const caf::actor_addr& addr) {
  auto& st = self->state;
  auto i = st.sessions.find(addr);
  if (i == st.sessions.end())
    return 0;
  auto [freed, dropped] = st.refs.drop_session(i->second.id);
  for (auto& id : freed)
    erase_free(self, id);
  st.sessions.erase(i);
  return dropped;
}

caf::error no_session() {
  return make_error(errc::unauthenticated,
                    "request without a sender (anonymous messages are "
                    "refused)");
}

std::string session_name(self_ptr self, session_id s) {
  for (auto& [addr, x] : self->state.sessions)
    if (x.id == s)
      return x.name;
  return "session-" + std::to_string(s);
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

/// Registers the outputs of a finished task as held by session `s` and
/// builds the reply; erases them instead if the session closed meanwhile.
task_reply task_done(self_ptr self, session_id s, uint64_t task_id,
                     task_outcome& out) {
  auto& st = self->state;
  ++st.counters.tasks_run;
  bool alive = false;
  for (auto& [addr, x] : st.sessions)
    alive = alive || x.id == s;
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

worker_actor::behavior_type
worker_actor_impl(self_ptr self, node_options options,
                  std::shared_ptr<object_store> objects, store_actor store,
                  std::shared_ptr<std::atomic<bool>> stopping,
                  transfer_actor transfer, std::shared_ptr<data_plane> data) {
  auto& st = self->state;
  st.transfer = std::move(transfer);
  st.data = std::move(data);
  st.ops = options.ops ? options.ops : op_registry::with_builtins();
  st.options = std::move(options);
  st.objects = std::move(objects);
  st.store = std::move(store);
  st.stopping = std::move(stopping);
  st.counters.rank = st.options.rank;
  self->set_down_handler(
      [self](caf::down_msg& dm) { drop_session(self, dm.source); });
  return {
      [=](hello_atom) -> caf::result<session_info> {
        if (session_of(self) == 0)
          return no_session();
        session_info info;
        info.rank = self->state.options.rank;
        info.node_id = self->state.objects->options().node_id;
        info.policy = self->state.options.policy;
        info.data_port = self->state.data ? self->state.data->port() : 0;
        return info;
      },
      [=](put_atom, put_request& req) -> caf::result<std::string> {
        auto s = session_of(self);
        if (s == 0)
          return no_session();
        if (!req.value.ptr)
          return make_error(errc::invalid_argument, "put of a null value");
        if (!req.target.empty()) {
          auto id = uri::parse(req.target);
          if (!id)
            return std::move(id.error());
          if (id->scheme() == scheme::mem)
            return make_error(errc::invalid_uri,
                              id->str()
                                  + ": a put names fs:// targets only; "
                                    "mem:// ids are assigned by the worker");
          return self->delegate(self->state.store, put_atom::value,
                                std::move(req.value), std::move(req.target));
        }
        auto size = req.value.ptr->size_bytes();
        auto id = self->state.objects->put(std::move(req.value.ptr));
        if (!id)
          return std::move(id.error());
        self->state.refs.add(*id, s, size, false, s,
                             reference_table::clock::now());
        return id->str();
      },
      [=](run_atom, task_request& req) -> caf::result<task_reply> {
        auto& st = self->state;
        auto s = session_of(self);
        if (s == 0)
          return no_session();
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
            auto x = st.objects->get(*id);
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
        job->ops = st.ops;
        job->stopping = st.stopping;
        ++st.counters.tasks_running;
        auto task_id = req.task_id;
        auto finish = [self, job] {
          auto& st = self->state;
          --st.counters.tasks_running;
          for (auto& id : job->input_ids)
            if (id.scheme() == scheme::mem && st.refs.unpin(id))
              erase_free(self, id);
        };
        if (runs_inline(*job)) {
          // Bounded by the input size: cheaper here than a task actor's
          // spawn and two messages.
          auto out = run_job(*job);
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
        auto task = self->spawn(task_actor, job);
        self->request(task, caf::infinite, run_atom::value)
            .then(
                [self, rp, s, task_id, done](task_outcome& out) mutable {
                  done();
                  rp.deliver(task_done(self, s, task_id, out));
                },
                [self, rp, done](caf::error& err) mutable {
                  done();
                  ++self->state.counters.tasks_failed;
                  rp.deliver(std::move(err));
                });
        return rp;
      },
      [=](cancel_atom, uint64_t task_id) -> bool {
        auto& st = self->state;
        auto s = session_of(self);
        if (s == 0)
          return false;
        bool found = false;
        auto [first, last] = st.running.equal_range(std::make_pair(s, task_id));
        for (auto i = first; i != last; ++i) {
          i->second->store(true, std::memory_order_relaxed);
          found = true;
        }
        return found;
      },
      [=](fetch_atom, std::string& text) -> caf::result<wire_value> {
        auto& st = self->state;
        auto s = session_of(self);
        if (s == 0)
          return no_session();
        ++st.counters.fetches;
        auto id = uri::parse(text);
        if (!id)
          return std::move(id.error());
        if (id->scheme() != scheme::mem) {
          if (st.options.policy != fetch_policy::allow) {
            ++st.counters.fetches_denied;
            return make_error(errc::permission_denied,
                              id->str()
                                  + ": fs:// objects are fetchable only "
                                    "under the 'allow' policy");
          }
          return self->delegate(st.store, get_atom::value, std::move(text));
        }
        if (auto err = check_fetch(self, *id, s)) {
          if (code_of(err) == errc::permission_denied)
            ++st.counters.fetches_denied;
          return err;
        }
        // The message shares the value: it stays alive until serialized even
        // if every handle is released meanwhile.
        auto x = st.objects->get(*id);
        if (!x)
          return std::move(x.error());
        return wire_value{std::move(*x)};
      },
      [=](release_atom, std::vector<std::string>& texts) {
        auto& st = self->state;
        auto s = session_of(self);
        ++st.counters.release_msgs;
        if (s == 0)
          return;
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
      [=](erase_atom, std::string& text) -> caf::result<bool> {
        auto& st = self->state;
        auto s = session_of(self);
        if (s == 0)
          return no_session();
        auto id = uri::parse(text);
        if (!id)
          return std::move(id.error());
        if (id->scheme() != scheme::mem)
          return self->delegate(st.store, erase_atom::value, std::move(text));
        if (auto err = check_held(self, *id, s))
          return err;
        if (st.refs.release_all(*id, s))
          erase_free(self, *id);
        return true;
      },
      [=](stats_atom) -> worker_stats {
        auto& st = self->state;
        auto result = st.counters;
        auto totals = st.objects->stats();
        result.mem_objects = totals.of(scheme::mem).objects;
        result.mem_bytes = totals.of(scheme::mem).bytes;
        result.fs_objects = totals.of(scheme::fs).objects;
        result.fs_bytes = totals.of(scheme::fs).bytes;
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
        return result;
      },
      [=](objects_atom) -> std::vector<object_record> {
        auto& st = self->state;
        std::vector<object_record> result;
        auto now = reference_table::clock::now();
        for (auto& [id, e] : st.refs.entries()) {
          object_record rec;
          rec.uri = id.str();
          rec.size_bytes = e.size_bytes;
          for (auto& [s, n] : e.holders)
            rec.holders.push_back({session_name(self, s), n});
          rec.pins = e.pins;
          rec.age_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           now - e.created)
                           .count();
          rec.revealed = e.revealed;
          result.push_back(std::move(rec));
        }
        std::sort(result.begin(), result.end(),
                  [](auto& x, auto& y) { return x.uri < y.uri; });
        return result;
      },
      [=](close_atom) -> uint64_t {
        auto& sender = self->current_sender();
        if (!sender)
          return 0;
        auto addr = caf::actor_cast<caf::actor_addr>(sender);
        self->demonitor(addr);
        return drop_session(self, addr);
      },
      [=](ping_atom) { return ping_atom::value; },
      [=](expect_atom) -> caf::result<std::string> {
        auto s = session_of(self);
        if (s == 0)
          return no_session();
        auto& st = self->state;
        if (!st.data)
          return make_error(errc::unsupported, "this node has no data plane");
        auto cap = st.data->options().max_pending_tokens;
        if (cap > 0 && st.data->pending_tokens(s) >= cap)
          return make_error(errc::resource_exhausted,
                            "session holds " + std::to_string(cap)
                                + " unused transfer tokens (limit); use or "
                                  "let them expire first");
        auto ttl = std::max<std::chrono::milliseconds>(
            st.options.data.io_timeout * 4, std::chrono::minutes{1});
        return st.data->expect(s, std::chrono::steady_clock::now() + ttl);
      },
      [=](push_atom, std::string& text, std::string& host, uint16_t port,
          std::string& token) -> caf::result<std::string> {
        auto& st = self->state;
        auto s = session_of(self);
        if (s == 0)
          return no_session();
        auto id = uri::parse(text);
        if (!id)
          return std::move(id.error());
        if (id->scheme() != scheme::mem)
          return make_error(errc::unsupported,
                            id->str()
                                + ": only mem:// objects are "
                                  "transferred (load fs:// in a task)");
        if (auto err = check_held(self, *id, s))
          return err;
        auto x = st.objects->get(*id);
        if (!x)
          return std::move(x.error());
        // Pinned while it streams: a release meanwhile cannot free it.
        st.refs.pin(*id);
        auto rp = self->make_response_promise<std::string>();
        auto unpin = [self, id = *id] {
          if (self->state.refs.unpin(id))
            erase_free(self, id);
        };
        self->request(st.transfer, caf::infinite, push_atom::value,
                      std::move(host), port, std::move(token),
                      wire_value{std::move(*x)})
            .then(
                [rp, unpin](std::string& uri) mutable {
                  unpin();
                  rp.deliver(std::move(uri));
                },
                [rp, unpin](caf::error& err) mutable {
                  unpin();
                  rp.deliver(std::move(err));
                });
        return rp;
      },
      [=](adopt_atom, uint64_t session,
          wire_value& x) -> caf::result<std::string> {
        auto& st = self->state;
        auto& sender = self->current_sender();
        if (!sender || sender->node() != self->node())
          return make_error(errc::permission_denied,
                            "adopt is node-local (refused from a peer)");
        bool alive = false;
        for (auto& [addr, info] : st.sessions)
          alive = alive || info.id == session;
        if (!alive)
          return make_error(errc::object_lost,
                            "the receiving session is closed");
        if (!x.ptr)
          return make_error(errc::invalid_argument, "adopt of a null value");
        auto size = x.ptr->size_bytes();
        auto id = st.objects->put(std::move(x.ptr));
        if (!id)
          return std::move(id.error());
        st.refs.add(*id, session, size, false, 0,
                    reference_table::clock::now());
        return id->str();
      },
  };
}

} // namespace objstore
