// Multi-party orchestration inside the driver actor: run fan-out, submitted
// runs, transfers, shuffles. Everything here runs on the driver actor and
// continues in callbacks; nothing blocks a thread.

#include <algorithm>

#include <caf/all.hpp>

#include "actors/driver/driver_calls.hpp"
#include "messages/graph.hpp"

namespace objstore {

/// One multi-party run.
struct run_state {
  struct part {
    uint32_t rank = 0;
    uint64_t task_id = 0;
    bool answered = false;
  };

  uint64_t id = 0; // 0: not submitted (no registry entry)
  std::vector<part> parts;
  size_t left = 0;
  /// Held until the run finished: no release can overtake the run.
  std::vector<host_var> inputs;
  run_result result;
  caf::error error;
  bool finished = false;
  /// Submitted runs: taken by `await`, or forgotten by their caller.
  bool taken = false;
  bool forgotten = false;
  detail::then_fn<run_result> done;
  /// `await` calls waiting for this run.
  std::vector<caf::typed_response_promise<run_result>> awaiting;
};

namespace detail {

namespace {

using self_ptr = driver_self;

size_t world_size(self_ptr self) {
  return self->state.workers.size();
}

/// The parties of `order` (checked), or the error.
caf::expected<std::vector<uint32_t>> parties_of(self_ptr self,
                                                const run_order& order) {
  auto n = static_cast<uint32_t>(world_size(self));
  auto parties = order.parties;
  if (parties.empty()) {
    for (uint32_t r = 0; r < n; ++r) {
      bool all = true;
      for (auto& x : order.inputs)
        all = all && x.has(r);
      if (all)
        parties.push_back(r);
    }
    if (parties.empty())
      return make_error(errc::invalid_argument,
                        "no party holds every input of the graph");
  }
  for (size_t i = 0; i < parties.size(); ++i) {
    auto r = parties[i];
    if (r >= n)
      return make_error(errc::invalid_argument,
                        "unknown rank " + std::to_string(r) + " (world size "
                            + std::to_string(n) + ")");
    if (std::find(parties.begin(), parties.begin() + i, r)
        != parties.begin() + i)
      return make_error(errc::invalid_argument,
                        "rank " + std::to_string(r) + " listed twice");
    for (size_t k = 0; k < order.inputs.size(); ++k) {
      if (!order.inputs[k].has(r))
        return make_error(errc::invalid_argument, "input #" + std::to_string(k)
                                                      + " has no value on rank "
                                                      + std::to_string(r));
      if (auto err = stale_error(*order.inputs[k].part(r)))
        return err;
    }
  }
  return parties;
}

/// Wakes every caller waiting for `run` and the `await` of several runs.
void notify_waiters(self_ptr self, run_state& run) {
  for (auto& rp : run.awaiting) {
    if (run.taken) {
      rp.deliver(make_error(errc::invalid_argument,
                            "the outputs of this run were already taken"));
      continue;
    }
    run.taken = true;
    if (run.error)
      rp.deliver(run.error);
    else
      rp.deliver(std::move(run.result));
  }
  run.awaiting.clear();
  if (run.id != 0 && (run.taken || run.forgotten))
    self->state.runs.erase(run.id);
  auto& waiters = self->state.waiters;
  for (auto i = waiters.begin(); i != waiters.end();) {
    auto& w = i->second;
    size_t finished = 0;
    std::vector<uint64_t> ids;
    for (auto id : w.ids) {
      auto r = self->state.runs.find(id);
      if (r == self->state.runs.end() || r->second->finished) {
        ++finished;
        ids.push_back(id);
      }
    }
    if (finished >= w.k) {
      w.promise.deliver(std::move(ids));
      i = waiters.erase(i);
    } else {
      ++i;
    }
  }
}

/// Ends `run` with `result` (or its error) once.
void finish(self_ptr self, const std::shared_ptr<run_state>& run,
            caf::error err) {
  if (run->finished)
    return;
  run->finished = true;
  run->error = std::move(err);
  if (run->error)
    run->result.outputs.clear(); // outputs already here are released
  run->inputs.clear();
  if (run->forgotten)
    run->result.outputs.clear();
  if (run->done) { // not submitted: the callback takes the outputs
    auto done = std::move(run->done);
    run->done = nullptr;
    if (run->error)
      done(run->error);
    else
      done(std::move(run->result));
  }
  notify_waiters(self, *run);
}

/// Asks every party that has not answered to stop `run`'s part.
uint64_t cancel_parts(self_ptr self, run_state& run) {
  uint64_t still = 0;
  for (auto& p : run.parts) {
    if (p.answered)
      continue;
    ++still;
    call<bool>(
        self, p.rank, "cancel task " + std::to_string(p.task_id), [](bool&) {},
        [](caf::error) {}, cancel_atom::value, p.task_id);
  }
  return still;
}

} // namespace

std::shared_ptr<run_state> start_run(driver_self self, run_order order,
                                     then_fn<run_result> done) {
  auto parties = parties_of(self, order);
  if (!parties) {
    done(std::move(parties.error()));
    return nullptr;
  }
  if (self->state.closed) {
    done(closed_error("run"));
    return nullptr;
  }
  auto run = std::make_shared<run_state>();
  run->done = std::move(done);
  run->left = parties->size();
  run->result.outputs.assign(order.program.outputs.size(),
                             host_var{world_size(self)});
  for (auto r : *parties)
    run->parts.push_back({r, self->state.next_task++, false});
  run->inputs = std::move(order.inputs);
  for (size_t i = 0; i < run->parts.size(); ++i) {
    auto r = run->parts[i].rank;
    task_request req;
    req.task_id = run->parts[i].task_id;
    req.program
        = i + 1 == run->parts.size() ? std::move(order.program) : order.program;
    for (auto& x : run->inputs)
      req.inputs.push_back(*x.uri(r));
    std::string what = "task " + std::to_string(req.task_id);
    if (!req.inputs.empty())
      what += " on " + req.inputs.front()
              + (req.inputs.size() > 1 ? ", ..." : "");
    call<task_reply>(
        self, r, std::move(what),
        [self, run, i, r](task_reply& reply) {
          run->parts[i].answered = true;
          if (run->finished) { // failed or cancelled: nobody takes these
            for (auto& uri : reply.outputs)
              queue_release(self, r, uri);
            schedule_flush(self);
            return;
          }
          auto& outs = run->result.outputs;
          for (size_t k = 0; k < reply.outputs.size() && k < outs.size(); ++k)
            outs[k].set(r,
                        std::make_shared<const remote_ref>(
                            r, std::move(reply.outputs[k]), self->state.sink));
          if (--run->left == 0)
            finish(self, run, {});
        },
        [self, run, i](caf::error err) {
          run->parts[i].answered = true;
          if (run->finished)
            return;
          // The first failing party fails the run at once; the others'
          // parts are cancelled and what they still produce is released.
          finish(self, run, std::move(err));
          cancel_parts(self, *run);
        },
        run_atom::value, std::move(req));
    if (run->finished && i + 1 < run->parts.size()) {
      // A part failed before it was sent (rank lost, driver closed):
      // the rest is not sent at all.
      for (size_t k = i + 1; k < run->parts.size(); ++k)
        run->parts[k].answered = true;
      break;
    }
  }
  return run;
}

uint64_t cancel_run(driver_self self, run_state& run) {
  if (run.finished)
    return 0;
  auto still = cancel_parts(self, run);
  auto ptr
      = self->state.runs.count(run.id) ? self->state.runs[run.id] : nullptr;
  if (ptr)
    finish(self, ptr,
           make_error(errc::cancelled,
                      "run " + std::to_string(run.id) + " was cancelled"));
  return still;
}

uint64_t submit_run(driver_self self, run_order order) {
  auto id = self->state.next_run++;
  auto refused = std::make_shared<caf::error>();
  auto run = start_run(self, std::move(order),
                       [refused](caf::expected<run_result> r) {
                         if (!r)
                           *refused = std::move(r.error());
                       });
  if (!run) {
    // Refused before anything was sent: keep the error for `await`.
    run = std::make_shared<run_state>();
    run->finished = true;
    run->error = std::move(*refused);
  } else if (!run->finished) {
    run->done = nullptr; // outputs stay for `await`
  } else if (!run->error) {
    run->error = std::move(*refused);
  }
  run->id = id;
  self->state.runs.emplace(id, run);
  return id;
}

caf::result<run_result> await_run(driver_self self, uint64_t id) {
  auto i = self->state.runs.find(id);
  if (i == self->state.runs.end())
    return make_error(errc::invalid_argument,
                      "no run " + std::to_string(id)
                          + " (already taken, forgotten or unknown)");
  auto run = i->second;
  auto rp = self->make_response_promise<run_result>();
  run->awaiting.push_back(rp);
  if (run->finished)
    notify_waiters(self, *run);
  return rp;
}

caf::result<std::vector<uint64_t>> await_runs(driver_self self,
                                              std::vector<uint64_t> ids,
                                              uint64_t k,
                                              caf::timespan timeout) {
  auto& st = self->state;
  std::vector<uint64_t> finished;
  for (auto id : ids) {
    auto r = st.runs.find(id);
    if (r == st.runs.end() || r->second->finished)
      finished.push_back(id);
  }
  k = std::min<uint64_t>(k, ids.size());
  if (finished.size() >= k || timeout <= caf::timespan::zero())
    return finished;
  auto waiter = st.next_waiter++;
  auto rp = self->make_response_promise<std::vector<uint64_t>>();
  st.waiters.emplace(waiter,
                     driver_state::waiter{std::move(ids), k, std::move(rp)});
  if (timeout < caf::timespan::max())
    self->delayed_send(caf::actor_cast<driver_actor_private>(self), timeout,
                       await_atom::value, waiter, true);
  return st.waiters.at(waiter).promise;
}

void on_await_timeout(driver_self self, uint64_t waiter) {
  auto& st = self->state;
  auto i = st.waiters.find(waiter);
  if (i == st.waiters.end())
    return;
  std::vector<uint64_t> finished;
  for (auto id : i->second.ids) {
    auto r = st.runs.find(id);
    if (r == st.runs.end() || r->second->finished)
      finished.push_back(id);
  }
  i->second.promise.deliver(std::move(finished));
  st.waiters.erase(i);
}

void forget_run(driver_self self, uint64_t id) {
  auto i = self->state.runs.find(id);
  if (i == self->state.runs.end())
    return;
  auto run = i->second;
  run->forgotten = true;
  if (run->finished) {
    run->result.outputs.clear();
    self->state.runs.erase(i);
  }
}

void fail_all_runs(driver_self self, const caf::error& err) {
  std::vector<std::shared_ptr<run_state>> running;
  for (auto& [id, run] : self->state.runs)
    if (!run->finished)
      running.push_back(run);
  for (auto& run : running)
    finish(self, run, err);
}

bool part_alive(driver_self self, const remote_ref& ref) {
  auto& st = self->state;
  return ref.rank() < st.workers.size() && st.lost[ref.rank()].empty()
         && !st.closed && !ref.stale();
}

// -- transfers ----------------------------------------------------------------

namespace {

/// Runs `start` when source rank `from` has a free transfer slot; the
/// started transfer calls the returned `release` when it ends.
void with_push_slot(self_ptr self, uint32_t from, std::function<void()> start) {
  auto& st = self->state;
  if (st.pushes.size() < st.workers.size()) {
    st.pushes.resize(st.workers.size());
    st.queued_pushes.resize(st.workers.size());
  }
  if (st.pushes[from]
      < std::max<size_t>(1, st.options.max_transfers_per_worker)) {
    ++st.pushes[from];
    start();
  } else {
    st.queued_pushes[from].push_back(std::move(start));
  }
}

void release_push_slot(self_ptr self, uint32_t from) {
  auto& st = self->state;
  --st.pushes[from];
  if (!st.queued_pushes[from].empty()) {
    auto next = std::move(st.queued_pushes[from].front());
    st.queued_pushes[from].pop_front();
    ++st.pushes[from];
    next();
  }
}

} // namespace

namespace {

/// Asks rank `to` for a token of an inbound transfer: a new mem:// object,
/// or the fs:// object `target` when not empty.
void expect_on(driver_self self, uint32_t to, const std::string& target,
               std::function<void(std::string&)> ok,
               std::function<void(caf::error)> fail) {
  if (target.empty())
    call<std::string>(self, to, "expect transfer", std::move(ok),
                      std::move(fail), expect_atom::value);
  else
    call<std::string>(self, to, "expect transfer to " + target, std::move(ok),
                      std::move(fail), expect_atom::value, target);
}

} // namespace

void transfer(driver_self self, host_var x, uint32_t from, uint32_t to,
              then_fn<host_var> done, std::string target) {
  auto n = world_size(self);
  if (from >= n || to >= n) {
    done(make_error(errc::invalid_argument,
                    "transfer between unknown ranks " + std::to_string(from)
                        + " -> " + std::to_string(to) + " (world size "
                        + std::to_string(n) + ")"));
    return;
  }
  if (!x.has(from)) {
    done(make_error(errc::invalid_argument,
                    "variable has no value on rank " + std::to_string(from)));
    return;
  }
  if (auto err = stale_error(*x.part(from))) {
    done(std::move(err));
    return;
  }
  host_var result{n};
  if (from == to) {
    if (!target.empty()) {
      done(make_error(errc::invalid_argument,
                      "transfer to " + target + " from rank "
                          + std::to_string(from)
                          + " to itself (a transfer moves between ranks)"));
      return;
    }
    result.set(to, x.part(from));
    done(std::move(result));
    return;
  }
  if (self->state.closed) {
    done(closed_error("transfer"));
    return;
  }
  auto shared_done = std::make_shared<then_fn<host_var>>(std::move(done));
  with_push_slot(self, from, [self, x, from, to, shared_done, target] {
    auto finish = [self, from, shared_done](caf::expected<host_var> r) {
      release_push_slot(self, from);
      (*shared_done)(std::move(r));
    };
    expect_on(
        self, to, target,
        [self, x, from, to, finish, target](std::string& token) {
          auto uri = *x.uri(from);
          auto what = "transfer " + uri + " to rank " + std::to_string(to);
          // `x` stays captured until the push answered: the source is held.
          call_on<std::string>(
              self, from, to, std::move(what),
              self->state.options.transfer_timeout,
              [self, x, to, finish, target](std::string& moved) {
                host_var out{world_size(self)};
                // An fs:// target is persistent: not reference counted.
                auto sink = target.empty() ? self->state.sink : nullptr;
                out.set(to, std::make_shared<const remote_ref>(
                                to, std::move(moved), std::move(sink)));
                finish(std::move(out));
              },
              [finish](caf::error err) { finish(std::move(err)); },
              push_atom::value, uri, to, std::move(token));
        },
        [finish](caf::error err) { finish(std::move(err)); });
  });
}

namespace {

/// Collects `n` results of type T; fails at the first error.
template<class T>
struct gather {
  std::vector<T> results;
  size_t left = 0;
  bool failed = false;
};

} // namespace

void shuffle(driver_self self, host_var x, std::vector<int64_t> routing,
             then_fn<host_var> done) {
  auto n = world_size(self);
  if (routing.size() > n) {
    done(make_error(errc::invalid_argument,
                    "routing names " + std::to_string(routing.size())
                        + " targets, world size is " + std::to_string(n)));
    return;
  }
  std::vector<std::pair<uint32_t, uint32_t>> moves; // (source, target)
  for (uint32_t target = 0; target < routing.size(); ++target) {
    auto source = routing[target];
    if (source < 0)
      continue;
    if (static_cast<size_t>(source) >= n || !x.has(source)) {
      done(make_error(errc::invalid_argument,
                      "routing: rank " + std::to_string(source)
                          + " holds no value for target "
                          + std::to_string(target)));
      return;
    }
    moves.emplace_back(static_cast<uint32_t>(source), target);
  }
  auto acc = std::make_shared<gather<host_var>>();
  acc->results.assign(1, host_var{n});
  acc->left = moves.size();
  auto shared_done = std::make_shared<then_fn<host_var>>(std::move(done));
  if (moves.empty()) {
    (*shared_done)(std::move(acc->results[0]));
    return;
  }
  for (auto [source, target] : moves)
    transfer(self, x, source, target,
             [acc, shared_done, target = target](caf::expected<host_var> r) {
               if (acc->failed)
                 return; // the replica (if any) is released here
               if (!r) {
                 acc->failed = true;
                 acc->results.clear();
                 (*shared_done)(std::move(r.error()));
                 return;
               }
               acc->results[0].set(target, r->part(target));
               if (--acc->left == 0)
                 (*shared_done)(std::move(acc->results[0]));
             });
}

void shuffle_by_key(driver_self self, host_var x, std::string key,
                    then_fn<host_var> done) {
  auto parties = x.parties();
  if (parties.empty()) {
    done(make_error(errc::invalid_argument,
                    "shuffle_by_key of an empty variable"));
    return;
  }
  auto n = parties.size();
  auto world = world_size(self);
  auto shared_done = std::make_shared<then_fn<host_var>>(std::move(done));
  // 1. Every holder splits its table into one part per target.
  graph_builder split;
  auto in = split.input();
  for (auto id : split.add_n(
           "hash_partition", {in}, n,
           {make_attr("key", key), make_attr("n", static_cast<int64_t>(n))}))
    split.output(id);
  auto on_split = [self, parties, n, world,
                   shared_done](caf::expected<run_result> parts) {
    if (!parts) {
      (*shared_done)(std::move(parts.error()));
      return;
    }
    // 2. All-to-all: part i of every source moves to parties[i], all
    //    concurrently (bounded per source worker).
    struct state {
      std::vector<std::vector<host_var>> pieces; // [target][source]
      size_t left = 0;
      bool failed = false;
      host_var result;
      size_t joins_left = 0;
    };
    auto st = std::make_shared<state>();
    st->pieces.assign(n, std::vector<host_var>(n));
    st->left = n * n;
    st->result = host_var{world};
    auto fail = [st, shared_done](caf::error err) {
      if (st->failed)
        return;
      st->failed = true;
      st->pieces.clear();
      (*shared_done)(std::move(err));
    };
    // 3. Each target concatenates its pieces in source rank order; all
    //    targets concurrently.
    auto join = [self, st, parties, n, shared_done, fail] {
      graph_builder b;
      std::vector<value_id> ins;
      for (size_t s = 0; s < n; ++s)
        ins.push_back(b.input());
      b.output(b.add("concat", ins));
      auto joined = b.build();
      st->joins_left = n;
      for (size_t i = 0; i < n; ++i) {
        auto target = parties[i];
        start_run(
            self, run_order{joined, std::move(st->pieces[i]), {target}},
            [st, target, shared_done, fail](caf::expected<run_result> out) {
              if (st->failed)
                return;
              if (!out) {
                fail(std::move(out.error()));
                return;
              }
              st->result.set(target, out->outputs[0].part(target));
              if (--st->joins_left == 0)
                (*shared_done)(std::move(st->result));
            });
      }
    };
    for (size_t i = 0; i < n; ++i)
      for (size_t s = 0; s < n; ++s)
        transfer(self, parts->outputs[i], parties[s], parties[i],
                 [st, i, s, target = parties[i], fail,
                  join](caf::expected<host_var> moved) {
                   if (st->failed)
                     return;
                   if (!moved) {
                     fail(std::move(moved.error()));
                     return;
                   }
                   host_var piece{moved->world_size()};
                   piece.set(target, moved->part(target));
                   st->pieces[i][s] = std::move(piece);
                   if (--st->left == 0)
                     join();
                 });
  };
  start_run(self, run_order{split.build(), {std::move(x)}, parties},
            std::move(on_split));
}

} // namespace detail

} // namespace objstore
