#include "actors/driver/driver.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/dataplane/tls.hpp"
#include "actors/worker/endpoint.hpp"
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
    if (!w) {
      // A missed deadline stays a timeout: callers retry those.
      auto code = code_of(w.error()) == errc::timeout ? errc::timeout
                                                      : errc::io_error;
      return make_error(code, "cannot connect to rank " + std::to_string(r)
                                  + " at " + ep.str() + ": "
                                  + describe(w.error()));
    }
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
  result->close_wait_ = options.close_timeout + std::chrono::seconds{1};
  result->hosts_.assign(n, "127.0.0.1");
  auto infos = result->ask<std::vector<session_info>>(hello_atom::value);
  if (!infos)
    return std::move(infos.error());
  result->sessions_ = std::move(*infos);
  return result;
}

driver::~driver() {
  close();
  sink_->attach(caf::actor{});
  caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
}

void driver::close() {
  if (closed_.exchange(true))
    return;
  caf::scoped_actor self{sys_};
  self->request(actor_, close_wait_, close_atom::value)
      .receive([](uint64_t) {}, [](caf::error&) {});
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
  // Large values stream (up to transfer_timeout); the driver actor bounds
  // small ones by `timeout`.
  auto uri = ask_within<std::string>(transfer_wait_, put_atom::value, rank,
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
  auto uri
      = ask_within<std::string>(transfer_wait_, put_atom::value, rank,
                                put_request{wire_value{std::move(x)}, target});
  if (!uri)
    return std::move(uri.error());
  host_var result{world_size_};
  if (rank < world_size_)
    result.set(rank, std::make_shared<const remote_ref>(rank, std::move(*uri),
                                                        nullptr));
  return result;
}

caf::expected<std::vector<host_var>>
driver::run(const graph& g, const std::vector<host_var>& inputs,
            std::vector<uint32_t> parties) {
  auto result = ask<run_result>(run_atom::value,
                                run_order{g, inputs, std::move(parties)});
  if (!result)
    return std::move(result.error());
  return std::move(result->outputs);
}

caf::expected<std::vector<host_var>>
driver::run_simp(const graph& g, const std::vector<host_var>& inputs) {
  auto result = ask_within<run_result>(transfer_wait_, simp_atom::value,
                                       run_order{g, inputs, {}});
  if (!result)
    return std::move(result.error());
  return std::move(result->outputs);
}

std::vector<bool> driver::alive(const host_var& x) {
  auto result = ask<std::vector<bool>>(alive_atom::value, x);
  if (!result)
    return std::vector<bool>(x.world_size(), false);
  return std::move(*result);
}

// -- submit -------------------------------------------------------------------

struct pending_run::state {
  caf::actor_system* sys = nullptr;
  driver_actor drv;
  uint64_t id = 0;
  /// Why the run never started (the driver did not answer).
  caf::error refused;
  /// Set by the one `get` that takes the outputs (threads may race).
  std::atomic<bool> taken{false};
  caf::timespan wait{};

  ~state() {
    if (drv && id != 0 && !taken)
      caf::anon_send(drv, forget_atom::value, id);
  }
};

pending_run driver::submit(const graph& g, const std::vector<host_var>& inputs,
                           std::vector<uint32_t> parties) {
  auto st = std::make_shared<pending_run::state>();
  st->sys = &sys_;
  st->drv = actor_;
  st->wait = wait_;
  // The reply comes once the run's requests are sent and its inputs held
  // by the driver actor: dropping `inputs` now cannot free them first.
  auto id = ask<uint64_t>(submit_atom::value,
                          run_order{g, inputs, std::move(parties)});
  if (id)
    st->id = *id;
  else
    st->refused = std::move(id.error());
  return pending_run{std::move(st)};
}

uint64_t pending_run::id() const noexcept {
  return st_->id;
}

bool pending_run::wait_for(caf::timespan timeout) {
  if (st_->id == 0 || st_->taken)
    return true;
  caf::scoped_actor self{*st_->sys, true};
  bool finished = false;
  self->request(st_->drv, timeout + std::chrono::seconds{2}, await_atom::value,
                std::vector<uint64_t>{st_->id}, uint64_t{1}, timeout)
      .receive([&](std::vector<uint64_t>& ids) { finished = !ids.empty(); },
               [](caf::error&) {});
  return finished;
}

caf::expected<std::vector<host_var>> pending_run::get() {
  if (st_->taken.exchange(true))
    return make_error(errc::invalid_argument,
                      "the outputs of this run were already taken");
  if (st_->id == 0)
    return std::move(st_->refused);
  caf::scoped_actor self{*st_->sys, true};
  caf::expected<std::vector<host_var>> result{std::vector<host_var>{}};
  // The run's own calls have deadlines (objstore.timeout): the driver
  // answers within them.
  self->request(st_->drv, caf::infinite, await_atom::value, st_->id)
      .receive([&](run_result& r) { result = std::move(r.outputs); },
               [&](caf::error& err) {
                 result = local_error(err, "run " + std::to_string(st_->id));
               });
  return result;
}

size_t pending_run::cancel() {
  if (st_->id == 0 || st_->taken)
    return 0;
  caf::scoped_actor self{*st_->sys, true};
  uint64_t count = 0;
  self->request(st_->drv, st_->wait, cancel_atom::value, st_->id)
      .receive([&](uint64_t n) { count = n; }, [](caf::error&) {});
  return static_cast<size_t>(count);
}

std::vector<size_t> driver::wait_any(const std::vector<pending_run*>& runs,
                                     size_t k, caf::timespan timeout) {
  std::vector<uint64_t> ids;
  std::vector<size_t> result;
  for (size_t i = 0; i < runs.size(); ++i) {
    auto id = runs[i] ? runs[i]->id() : 0;
    if (id == 0)
      result.push_back(i); // never started: finished (with its error)
    else
      ids.push_back(id);
  }
  if (ids.empty() || result.size() >= k)
    return result;
  auto done = ask_within<std::vector<uint64_t>>(
      timeout + wait_, await_atom::value, ids,
      static_cast<uint64_t>(k - result.size()), timeout);
  if (done)
    for (size_t i = 0; i < runs.size(); ++i)
      if (runs[i] && runs[i]->id() != 0
          && std::find(done->begin(), done->end(), runs[i]->id())
                 != done->end())
        result.push_back(i);
  std::sort(result.begin(), result.end());
  return result;
}

namespace {

/// The URI of `x`'s part on `rank`, or why a call cannot use it: the part
/// is missing (invalid_argument) or of a worker's earlier incarnation.
caf::expected<std::string> live_uri(uint32_t rank, const host_var& x) {
  auto uri = x.uri(rank);
  if (!uri)
    return make_error(errc::invalid_argument,
                      "variable has no value on rank " + std::to_string(rank));
  if (auto err = stale_error(*x.part(rank)))
    return err;
  return *uri;
}

} // namespace

caf::expected<uint64_t> driver::fetch_to_file(uint32_t rank, const host_var& x,
                                              const std::string& path) {
  auto uri = live_uri(rank, x);
  if (!uri)
    return std::move(uri.error());
  auto part = path + ".part";
  auto mapped = std::make_shared<std::atomic<bool>>(false);
  block_allocator alloc
      = [part, mapped,
         name = *uri](size_t index,
                      uint64_t size) -> caf::expected<std::shared_ptr<buffer>> {
    if (index != 0)
      return make_error(errc::invalid_argument,
                        name + " has several blocks: not a bytes object");
    mapped->store(true);
    return buffer::map_new_file(part, size);
  };
  auto v = ask_within<wire_value>(transfer_wait_, fetch_atom::value, rank, *uri,
                                  std::move(alloc));
  auto drop = [&](caf::error err) -> caf::expected<uint64_t> {
    std::error_code ignored;
    std::filesystem::remove(part, ignored);
    return err;
  };
  if (!v)
    return drop(std::move(v.error()));
  auto got = std::move(v->ptr);
  if (!got || !got->is_bytes())
    return drop(make_error(errc::invalid_argument,
                           *uri + " holds " + (got ? got->summary() : "nothing")
                               + ", not bytes: nothing written to " + path));
  auto size = static_cast<uint64_t>(got->size_bytes());
  if (!mapped->load()) {
    // Came in the reply (small): write it out.
    std::ofstream out{part, std::ios::binary | std::ios::trunc};
    auto bytes = got->as_bytes().view();
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out)
      return drop(make_error(errc::io_error, "cannot write " + part));
  }
  got.reset(); // unmaps the file
  std::error_code ec;
  std::filesystem::rename(part, path, ec);
  if (ec)
    return drop(make_error(errc::io_error, "cannot rename " + part + " to "
                                               + path + ": " + ec.message()));
  return size;
}

caf::expected<value_ptr> driver::fetch(uint32_t rank, const host_var& x) {
  auto uri = live_uri(rank, x);
  if (!uri)
    return std::move(uri.error());
  auto v
      = ask_within<wire_value>(transfer_wait_, fetch_atom::value, rank, *uri);
  if (!v)
    return std::move(v.error());
  return std::move(v->ptr);
}

caf::error driver::erase(uint32_t rank, const host_var& x) {
  auto uri = live_uri(rank, x);
  if (!uri)
    return std::move(uri.error());
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
  return ask_within<host_var>(transfer_wait_, transfer_atom::value, x, from,
                              to);
}

caf::expected<host_var> driver::transfer(const host_var& x, uint32_t from,
                                         uint32_t to,
                                         const std::string& target) {
  return ask_within<host_var>(transfer_wait_, transfer_atom::value, x, from, to,
                              target);
}

caf::expected<host_var> driver::shuffle(const host_var& x,
                                        const std::vector<int64_t>& routing) {
  return ask_within<host_var>(transfer_wait_, shuffle_atom::value, x, routing);
}

caf::expected<host_var> driver::shuffle_by_key(const host_var& x,
                                               const std::string& key) {
  return ask_within<host_var>(transfer_wait_ + 2 * wait_, shuffle_atom::value,
                              x, key);
}

} // namespace objstore
