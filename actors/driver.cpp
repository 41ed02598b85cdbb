#include "actors/driver.hpp"

#include <condition_variable>
#include <functional>
#include <future>
#include <optional>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/tls.hpp"
#include "store/error.hpp"

namespace objstore {

namespace {

caf::error local_error(const caf::error& err, const std::string& what) {
  if (code_of(err) != errc::none)
    return err;
  if (err.category() == caf::atom("system")
      && static_cast<caf::sec>(err.code()) == caf::sec::request_timeout)
    return make_error(errc::timeout, what + ": driver actor did not answer");
  return make_error(errc::io_error, what + ": " + describe(err));
}

/// Turns party `r`'s reply into its part of each output variable.
void adopt_outputs(std::vector<host_var>& outputs, uint32_t r,
                   task_reply& reply,
                   const std::shared_ptr<release_sink>& sink) {
  for (size_t k = 0; k < reply.outputs.size() && k < outputs.size(); ++k)
    outputs[k].set(r, std::make_shared<const remote_ref>(
                          r, std::move(reply.outputs[k]), sink));
}

/// Keeps the first failing party's error of a run, naming its rank.
void keep_first_error(caf::error& first, uint32_t r, const caf::error& err) {
  if (!first)
    first = local_error(err, "run on rank " + std::to_string(r));
}

} // namespace

caf::expected<cluster_spec> cluster_spec::parse(std::string_view text) {
  cluster_spec result;
  while (!text.empty()) {
    auto comma = text.find(',');
    auto item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{}
                                           : text.substr(comma + 1);
    auto colon = item.rfind(':');
    if (colon == std::string_view::npos || colon == 0
        || colon + 1 == item.size())
      return make_error(errc::invalid_argument, "bad endpoint '"
                                                    + std::string{item}
                                                    + "' (expected host:port)");
    auto port_text = std::string{item.substr(colon + 1)};
    char* end = nullptr;
    auto port = std::strtoul(port_text.c_str(), &end, 10);
    if (*end != '\0' || port == 0 || port > 65535)
      return make_error(errc::invalid_argument,
                        "bad port in endpoint '" + std::string{item} + "'");
    result.workers.push_back(
        {std::string{item.substr(0, colon)}, static_cast<uint16_t>(port)});
  }
  if (result.workers.empty())
    return make_error(errc::invalid_argument, "empty cluster spec");
  return result;
}

driver::driver(caf::actor_system& sys, driver_actor actor,
               std::shared_ptr<release_sink> sink, size_t world_size,
               caf::timespan wait)
    : sys_(sys), actor_(std::move(actor)), sink_(std::move(sink)),
      world_size_(world_size), wait_(wait) {
  // nop
}

caf::expected<std::unique_ptr<driver>>
driver::connect(caf::actor_system& sys, const cluster_spec& spec,
                driver_actor_options options) {
  std::vector<worker_actor> workers;
  for (size_t r = 0; r < spec.workers.size(); ++r) {
    auto& ep = spec.workers[r];
    auto w = connect_worker(sys, ep.host, ep.port, options.timeout);
    if (!w)
      return make_error(errc::io_error,
                        "cannot connect to rank " + std::to_string(r) + " at "
                            + ep.str() + ": " + describe(w.error()));
    workers.push_back(std::move(*w));
  }
  if (options.endpoints.empty())
    for (auto& ep : spec.workers)
      options.endpoints.push_back(ep.str());
  auto result = attach(sys, std::move(workers), options);
  if (result)
    for (size_t r = 0; r < spec.workers.size(); ++r)
      (*result)->hosts_[r] = spec.workers[r].host;
  return result;
}

class driver::lease {
public:
  explicit lease(driver& d) : d_(d) {
    {
      std::lock_guard guard{d_.selves_mtx_};
      if (!d_.selves_.empty()) {
        self_ = std::move(d_.selves_.back());
        d_.selves_.pop_back();
      }
    }
    if (!self_)
      self_ = std::make_unique<caf::scoped_actor>(d_.sys_, true);
  }

  ~lease() {
    if (!reusable_)
      return;
    std::lock_guard guard{d_.selves_mtx_};
    if (d_.selves_.size() < max_pooled)
      d_.selves_.push_back(std::move(self_));
  }

  lease(const lease&) = delete;
  lease& operator=(const lease&) = delete;

  caf::scoped_actor& operator*() { return *self_; }

  /// Drops the scoped actor instead of returning it to the pool.
  void discard() { reusable_ = false; }

private:
  static constexpr size_t max_pooled = 8;
  driver& d_;
  std::unique_ptr<caf::scoped_actor> self_;
  bool reusable_ = true;
};

caf::expected<std::unique_ptr<driver>>
driver::attach(caf::actor_system& sys, std::vector<worker_actor> workers,
               driver_actor_options options) {
  auto sink = std::make_shared<release_sink>(options.release_batch);
  auto n = workers.size();
  // On the shared scheduler, not detached: in CAF 0.17 the thread of a
  // detached actor waits for the actor's destruction, and a reference the
  // runtime still holds when the system shuts down (request timeouts,
  // delayed messages) left ~actor_system waiting forever in about one
  // exit in ten (CAF issue 1196, fixed in 0.18 only). The round trip is
  // the same within noise (objstore-bench task_rtt).
  auto actor = sys.spawn(driver_actor_impl, std::move(workers), sink, options);
  // The facade waits a little longer than the actor's own deadline, so
  // the actor's precise error wins.
  auto wait = options.timeout + std::chrono::seconds{2};
  std::unique_ptr<driver> result{new driver(sys, actor, sink, n, wait)};
  result->transfer_wait_ = options.transfer_timeout + std::chrono::seconds{2};
  result->hosts_.assign(n, "127.0.0.1");
  auto infos = result->ask<std::vector<session_info>>(hello_atom::value);
  if (!infos)
    return std::move(infos.error());
  result->sessions_ = std::move(*infos);
  return result;
}

driver::~driver() {
  caf::scoped_actor self{sys_};
  self->request(actor_, wait_, close_atom::value)
      .receive([](uint64_t) {}, [](caf::error&) {});
  sink_->attach(caf::actor{});
  self->send_exit(actor_, caf::exit_reason::user_shutdown);
}

template<class Reply, class... Ts>
caf::expected<Reply> driver::ask(Ts&&... xs) {
  return ask_within<Reply>(wait_, std::forward<Ts>(xs)...);
}

template<class Reply, class... Ts>
caf::expected<Reply> driver::ask_within(caf::timespan wait, Ts&&... xs) {
  lease self{*this};
  std::optional<Reply> value;
  caf::error err;
  (*self)
      ->request(actor_, wait, std::forward<Ts>(xs)...)
      .receive([&](Reply& reply) { value = std::move(reply); },
               [&](caf::error& e) { err = std::move(e); });
  if (value)
    return std::move(*value);
  self.discard();
  return local_error(err, "driver request");
}

std::shared_ptr<const remote_ref> driver::adopt(uint32_t rank,
                                                std::string uri) {
  return std::make_shared<const remote_ref>(rank, std::move(uri), sink_);
}

caf::expected<host_var> driver::put(uint32_t rank, value_ptr x) {
  auto uri = ask<std::string>(put_atom::value, rank,
                              put_request{wire_value{std::move(x)}, {}});
  if (!uri)
    return std::move(uri.error());
  host_var result{world_size_};
  if (rank < world_size_)
    result.set(rank, adopt(rank, std::move(*uri)));
  return result;
}

caf::expected<host_var> driver::put(uint32_t rank, value_ptr x,
                                    const std::string& target) {
  auto uri = ask<std::string>(put_atom::value, rank,
                              put_request{wire_value{std::move(x)}, target});
  if (!uri)
    return std::move(uri.error());
  host_var result{world_size_};
  if (rank < world_size_)
    result.set(rank, std::make_shared<const remote_ref>(rank, std::move(*uri),
                                                        nullptr));
  return result;
}

caf::expected<std::vector<std::pair<uint32_t, task_request>>>
driver::make_tasks(const graph& g, const std::vector<host_var>& inputs,
                   std::vector<uint32_t> parties) {
  if (parties.empty()) {
    for (uint32_t r = 0; r < world_size_; ++r) {
      bool all = true;
      for (auto& x : inputs)
        all = all && x.has(r);
      if (all)
        parties.push_back(r);
    }
    if (parties.empty())
      return make_error(errc::invalid_argument,
                        "no party holds every input of the graph");
  }
  std::vector<std::pair<uint32_t, task_request>> tasks;
  for (auto r : parties) {
    if (r >= world_size_)
      return make_error(errc::invalid_argument,
                        "unknown rank " + std::to_string(r));
    task_request req;
    req.task_id = next_task_.fetch_add(1);
    req.program = g;
    for (size_t i = 0; i < inputs.size(); ++i) {
      auto uri = inputs[i].uri(r);
      if (!uri)
        return make_error(errc::invalid_argument, "input #" + std::to_string(i)
                                                      + " has no value on rank "
                                                      + std::to_string(r));
      req.inputs.push_back(std::move(*uri));
    }
    tasks.emplace_back(r, std::move(req));
  }
  return tasks;
}

caf::expected<std::vector<host_var>>
driver::run(const graph& g, const std::vector<host_var>& inputs,
            std::vector<uint32_t> parties) {
  auto tasks = make_tasks(g, inputs, std::move(parties));
  if (!tasks)
    return std::move(tasks.error());
  // All parties at once: send every request, then collect the replies.
  lease self{*this};
  using handle_t = decltype((*self)->request(actor_, wait_, run_atom::value,
                                             uint32_t{0}, task_request{}));
  std::vector<handle_t> handles;
  for (auto& [r, req] : *tasks)
    handles.push_back(
        (*self)->request(actor_, wait_, run_atom::value, r, std::move(req)));
  std::vector<host_var> outputs(g.outputs.size(), host_var{world_size_});
  caf::error first_error;
  for (size_t i = 0; i < tasks->size(); ++i) {
    auto r = (*tasks)[i].first;
    handles[i].receive(
        [&](task_reply& reply) { adopt_outputs(outputs, r, reply, sink_); },
        [&](caf::error& err) { keep_first_error(first_error, r, err); });
  }
  if (first_error) {
    self.discard();
    return first_error; // outputs of other parties are released here
  }
  return outputs;
}

// -- submit -------------------------------------------------------------------

struct pending_run::state {
  std::mutex mtx;
  std::condition_variable cv;
  bool done = false;
  bool taken = false;
  size_t left = 0;
  std::vector<host_var> outputs;
  caf::error first_error;
  /// The actor collecting the replies; it also sends the cancels, so they
  /// reach the driver actor (and the workers) after the run requests.
  caf::actor collector;
  caf::timespan wait{};
};

namespace {

using submit_tasks = std::vector<std::pair<uint32_t, task_request>>;

void finish_one(caf::event_based_actor* self,
                const std::shared_ptr<pending_run::state>& st,
                std::function<void(pending_run::state&)> apply) {
  std::lock_guard guard{st->mtx};
  apply(*st);
  if (--st->left == 0) {
    st->done = true;
    st->cv.notify_all();
    self->quit();
  }
}

/// Sends the run requests of one submitted run and collects the replies
/// into its state; answers `cancel` with the number of parties that were
/// still running the run.
caf::behavior submit_collector(caf::event_based_actor* self,
                               std::shared_ptr<pending_run::state> st,
                               driver_actor drv,
                               std::shared_ptr<release_sink> sink,
                               submit_tasks tasks) {
  std::vector<std::pair<uint32_t, uint64_t>> ids;
  for (auto& [r, req] : tasks) {
    ids.emplace_back(r, req.task_id);
    self->request(drv, st->wait, run_atom::value, r, std::move(req))
        .then(
            [self, st, sink, r = r](task_reply& reply) {
              finish_one(self, st, [&](pending_run::state& x) {
                adopt_outputs(x.outputs, r, reply, sink);
              });
            },
            [self, st, r = r](caf::error& err) {
              finish_one(self, st, [&](pending_run::state& x) {
                keep_first_error(x.first_error, r, err);
              });
            });
  }
  return {
      [=](cancel_atom) -> caf::result<uint64_t> {
        auto rp = self->make_response_promise<uint64_t>();
        auto count = std::make_shared<uint64_t>(0);
        auto left = std::make_shared<size_t>(ids.size());
        for (auto& [r, id] : ids)
          self->request(drv, st->wait, cancel_atom::value, r, id)
              .then(
                  [rp, count, left](bool running) mutable {
                    *count += running ? 1 : 0;
                    if (--*left == 0)
                      rp.deliver(*count);
                  },
                  [rp, count, left](caf::error&) mutable {
                    if (--*left == 0)
                      rp.deliver(*count);
                  });
        return rp;
      },
  };
}

} // namespace

pending_run driver::submit(const graph& g, const std::vector<host_var>& inputs,
                           std::vector<uint32_t> parties) {
  auto st = std::make_shared<pending_run::state>();
  st->wait = wait_;
  auto tasks = make_tasks(g, inputs, std::move(parties));
  if (!tasks) {
    st->first_error = std::move(tasks.error());
    st->done = true;
    return pending_run{std::move(st)};
  }
  st->outputs.assign(g.outputs.size(), host_var{world_size_});
  st->left = tasks->size();
  std::lock_guard guard{st->mtx}; // replies wait until `collector` is set
  st->collector
      = sys_.spawn(submit_collector, st, actor_, sink_, std::move(*tasks));
  return pending_run{st};
}

bool pending_run::wait_for(caf::timespan timeout) {
  std::unique_lock guard{st_->mtx};
  return st_->cv.wait_for(guard, timeout, [this] { return st_->done; });
}

caf::expected<std::vector<host_var>> pending_run::get() {
  std::unique_lock guard{st_->mtx};
  st_->cv.wait(guard, [this] { return st_->done; });
  if (st_->taken)
    return make_error(errc::invalid_argument,
                      "the outputs of this run were already taken");
  st_->taken = true;
  st_->collector = nullptr;
  if (st_->first_error) {
    st_->outputs.clear(); // outputs of other parties are released here
    return std::move(st_->first_error);
  }
  return std::move(st_->outputs);
}

size_t pending_run::cancel() {
  caf::actor collector;
  caf::timespan wait;
  {
    std::lock_guard guard{st_->mtx};
    if (st_->done || !st_->collector)
      return 0;
    collector = st_->collector;
    wait = st_->wait;
  }
  caf::scoped_actor self{collector->home_system(), true};
  uint64_t count = 0;
  self->request(collector, wait, cancel_atom::value)
      .receive([&](uint64_t n) { count = n; }, [](caf::error&) {});
  return static_cast<size_t>(count);
}

caf::expected<value_ptr> driver::fetch(const host_var& x, uint32_t rank) {
  auto uri = x.uri(rank);
  if (!uri)
    return make_error(errc::invalid_argument,
                      "variable has no value on rank " + std::to_string(rank));
  auto v = ask<wire_value>(fetch_atom::value, rank, *uri);
  if (!v)
    return std::move(v.error());
  return std::move(v->ptr);
}

caf::error driver::erase(const host_var& x, uint32_t rank) {
  auto uri = x.uri(rank);
  if (!uri)
    return make_error(errc::invalid_argument,
                      "variable has no value on rank " + std::to_string(rank));
  auto ok = ask<bool>(erase_atom::value, rank, *uri);
  return ok ? caf::error{} : std::move(ok.error());
}

caf::expected<driver_stats> driver::stats() {
  return ask<driver_stats>(stats_atom::value);
}

caf::expected<worker_stats> driver::worker_stats_of(uint32_t rank) {
  return ask<worker_stats>(stats_atom::value, rank);
}

caf::expected<std::vector<object_record>> driver::objects(uint32_t rank) {
  return ask<std::vector<object_record>>(objects_atom::value, rank);
}

caf::expected<uint64_t> driver::flush() {
  return ask<uint64_t>(flush_atom::value);
}

caf::expected<host_var> driver::transfer(const host_var& x, uint32_t from,
                                         uint32_t to) {
  if (from >= world_size_ || to >= world_size_)
    return make_error(errc::invalid_argument,
                      "transfer between unknown ranks " + std::to_string(from)
                          + " -> " + std::to_string(to));
  auto uri = x.uri(from);
  if (!uri)
    return make_error(errc::invalid_argument,
                      "variable has no value on rank " + std::to_string(from));
  host_var result{world_size_};
  if (from == to) {
    result.set(to, x.part(from));
    return result;
  }
  auto token = ask<std::string>(expect_atom::value, to);
  if (!token)
    return std::move(token.error());
  auto moved = ask_within<std::string>(transfer_wait_, push_atom::value, from,
                                       *uri, to, std::move(*token));
  if (!moved)
    return std::move(moved.error());
  result.set(to, adopt(to, std::move(*moved)));
  return result;
}

caf::expected<host_var> driver::shuffle(const host_var& x,
                                        const std::vector<int64_t>& routing) {
  if (routing.size() > world_size_)
    return make_error(errc::invalid_argument,
                      "routing names " + std::to_string(routing.size())
                          + " targets, world size is "
                          + std::to_string(world_size_));
  host_var result{world_size_};
  std::vector<std::pair<uint32_t, std::future<caf::expected<host_var>>>> moves;
  for (uint32_t target = 0; target < routing.size(); ++target) {
    auto source = routing[target];
    if (source < 0)
      continue;
    if (static_cast<size_t>(source) >= world_size_ || !x.has(source))
      return make_error(errc::invalid_argument,
                        "routing: rank " + std::to_string(source)
                            + " holds no value for target "
                            + std::to_string(target));
    auto from = static_cast<uint32_t>(source);
    moves.emplace_back(target, std::async(std::launch::async, [=, this] {
                         return transfer(x, from, target);
                       }));
  }
  caf::error first_error;
  for (auto& [target, pending] : moves) {
    auto moved = pending.get();
    if (!moved) {
      if (!first_error)
        first_error = std::move(moved.error());
      continue;
    }
    result.set(target, moved->part(target));
  }
  if (first_error)
    return first_error;
  return result;
}

caf::expected<host_var> driver::shuffle_by_key(const host_var& x,
                                               const std::string& key) {
  auto parties = x.parties();
  if (parties.empty())
    return make_error(errc::invalid_argument, "shuffle_by_key of an empty "
                                              "variable");
  auto n = parties.size();
  // 1. Every holder splits its table into one part per target.
  graph_builder split;
  auto in = split.input();
  for (auto id : split.add_n(
           "hash_partition", {in}, n,
           {make_attr("key", key), make_attr("n", static_cast<int64_t>(n))}))
    split.output(id);
  auto parts = run(split.build(), {x}, parties);
  if (!parts)
    return std::move(parts.error());
  // 2. All-to-all: part i of every source moves to parties[i].
  using move_result = std::future<caf::expected<host_var>>;
  std::vector<std::vector<move_result>> incoming(n);
  for (size_t i = 0; i < n; ++i)
    for (auto source : parties)
      incoming[i].push_back(std::async(std::launch::async, [&, i, source] {
        return transfer((*parts)[i], source, parties[i]);
      }));
  std::vector<std::vector<host_var>> pieces(n);
  caf::error first_error;
  for (size_t i = 0; i < n; ++i)
    for (auto& pending : incoming[i]) {
      auto moved = pending.get();
      if (!moved && !first_error)
        first_error = std::move(moved.error());
      if (moved)
        pieces[i].push_back(std::move(*moved));
    }
  parts->clear();
  if (first_error)
    return first_error;
  // 3. Each target concatenates its pieces in source rank order.
  graph_builder join;
  std::vector<value_id> ins;
  for (size_t s = 0; s < n; ++s)
    ins.push_back(join.input());
  join.output(join.add("concat", ins));
  auto joined = join.build();
  host_var result{world_size_};
  for (size_t i = 0; i < n; ++i) {
    auto out = run(joined, pieces[i], {parties[i]});
    if (!out)
      return std::move(out.error());
    result.set(parties[i], (*out)[0].part(parties[i]));
  }
  return result;
}

} // namespace objstore
