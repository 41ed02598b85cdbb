#include "actors/driver/driver_actor.hpp"

#include <optional>
#include <set>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/dataplane/tls.hpp"
#include "actors/driver/driver_calls.hpp"
#include "store/error.hpp"

namespace objstore {

namespace {

using self_ptr = detail::driver_self;
using detail::call;
using detail::call_within;
using detail::message_size;
using detail::queue_release;
using detail::translate;

std::string timeout_text(self_ptr self) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                self->state.options.timeout)
                .count();
  return "no reply within " + std::to_string(ms) + " ms";
}

/// Fails pending call `id` with `timeout` if it is still waiting.
void on_deadline(self_ptr self, uint64_t id) {
  auto& st = self->state;
  auto i = st.pending.find(id);
  if (i == st.pending.end())
    return;
  auto call = std::move(i->second);
  st.pending.erase(i);
  call.fail(make_error(errc::timeout, "rank " + std::to_string(call.rank) + ": "
                                          + call.what + ": "
                                          + timeout_text(self)));
}

template<class Reply, class... Ts>
caf::result<Reply> forward_within(self_ptr self, uint32_t rank,
                                  std::string what, caf::timespan timeout,
                                  Ts&&... xs) {
  auto rp = self->make_response_promise<Reply>();
  call_within<Reply>(
      self, rank, std::move(what), timeout,
      [rp](Reply& reply) mutable { rp.deliver(std::move(reply)); },
      [rp](caf::error err) mutable { rp.deliver(std::move(err)); },
      std::forward<Ts>(xs)...);
  return rp;
}

template<class Reply, class... Ts>
caf::result<Reply> forward(self_ptr self, uint32_t rank, std::string what,
                           Ts&&... xs) {
  return forward_within<Reply>(self, rank, std::move(what),
                               self->state.options.timeout,
                               std::forward<Ts>(xs)...);
}

// -- releases -----------------------------------------------------------------

uint64_t send_releases(self_ptr self, uint32_t rank, bool only_full) {
  auto& st = self->state;
  auto& queue = st.queued_releases[rank];
  uint64_t sent = 0;
  if (!st.lost[rank].empty() || st.keys[rank].id == 0) {
    queue.clear(); // the worker (or our session there) and its objects are gone
    return 0;
  }
  auto batch = st.options.release_batch;
  while (!queue.empty() && (!only_full || queue.size() >= batch)) {
    auto n = std::min(batch, queue.size());
    std::vector<std::string> chunk;
    if (n == queue.size()) {
      chunk = std::move(queue);
      queue.clear();
    } else {
      chunk.assign(std::make_move_iterator(queue.end() - n),
                   std::make_move_iterator(queue.end()));
      queue.resize(queue.size() - n);
    }
    st.counters.bytes_sent
        += message_size(self, release_atom::value, st.keys[rank], chunk);
    ++st.counters.release_msgs;
    st.counters.releases += chunk.size();
    self->send(st.workers[rank], release_atom::value, st.keys[rank],
               std::move(chunk));
    ++sent;
  }
  return sent;
}

void drain_sink(self_ptr self, bool disarm = true) {
  auto& st = self->state;
  for (auto& [rank, uri] : st.sink->drain(disarm))
    if (rank < st.queued_releases.size())
      st.queued_releases[rank].push_back(std::move(uri));
}

void flush_full_batches(self_ptr self) {
  auto& st = self->state;
  bool any = false;
  for (uint32_t r = 0; r < st.queued_releases.size(); ++r) {
    send_releases(self, r, true);
    any = any || !st.queued_releases[r].empty();
  }
  if (any && !st.flush_scheduled) {
    st.flush_scheduled = true;
    caf::delayed_anon_send(caf::actor_cast<driver_actor_private>(self),
                           st.options.release_delay, flush_atom::value);
  }
}

uint64_t flush_all(self_ptr self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  drain_sink(self);
  uint64_t sent = 0;
  for (uint32_t r = 0; r < st.queued_releases.size(); ++r)
    sent += send_releases(self, r, false);
  return sent;
}

void schedule_reconnect(self_ptr self, uint32_t rank);

void on_worker_down(self_ptr self, const caf::down_msg& dm) {
  auto& st = self->state;
  for (uint32_t r = 0; r < st.workers.size(); ++r) {
    if (st.workers[r].address() != dm.source || !st.lost[r].empty())
      continue;
    st.lost[r] = dm.reason ? describe(dm.reason) : "exited";
    st.queued_releases[r].clear();
    std::vector<driver_state::pending_call> failed;
    for (auto i = st.pending.begin(); i != st.pending.end();) {
      if (i->second.rank == r) {
        failed.push_back(std::move(i->second));
        i = st.pending.erase(i);
      } else {
        ++i;
      }
    }
    for (auto& call : failed)
      call.fail(make_error(errc::object_lost, "rank " + std::to_string(r)
                                                  + " lost (" + st.lost[r]
                                                  + "): " + call.what));
    schedule_reconnect(self, r);
  }
}

/// What the driver says at hello.
hello_request hello_of(const driver_actor_options& opts);

/// Tries to reach lost worker `rank` at its endpoint again: connect
/// (without blocking: the middleman's own connect request), then open a
/// new session there. Any failure schedules the next attempt.
void try_reconnect(self_ptr self, uint32_t rank) {
  auto& st = self->state;
  st.reconnecting[rank] = false;
  if (st.closed || st.lost[rank].empty())
    return;
  auto& ep = st.options.endpoints[rank];
  auto colon = ep.rfind(':');
  if (colon == std::string::npos)
    return;
  auto host = ep.substr(0, colon);
  auto port = static_cast<uint16_t>(
      std::strtoul(ep.c_str() + colon + 1, nullptr, 10));
  st.reconnecting[rank] = true;
  auto retry = [self, rank](caf::error&) {
    self->state.reconnecting[rank] = false;
    schedule_reconnect(self, rank);
  };
  auto& sys = self->system();
  auto mm = uses_tls(sys) ? sys.openssl_manager().actor_handle()
                          : sys.middleman().actor_handle();
  self->request(mm, st.options.timeout, caf::connect_atom::value, host, port)
      .then(
          [self, rank, retry](const caf::node_id&, caf::strong_actor_ptr& ptr,
                              const std::set<std::string>&) mutable {
            auto& st = self->state;
            if (!ptr || st.closed) {
              caf::error none;
              retry(none);
              return;
            }
            auto worker = caf::actor_cast<worker_actor>(ptr);
            self->request(worker, st.options.timeout, hello_atom::value,
                          hello_of(st.options))
                .then(
                    [self, rank, worker](session_info& info) {
                      auto& st = self->state;
                      st.reconnecting[rank] = false;
                      if (st.closed) {
                        caf::anon_send(worker, close_atom::value, info.key);
                        return;
                      }
                      st.workers[rank] = worker;
                      self->monitor(worker);
                      st.keys[rank] = info.key;
                      st.infos[rank] = info;
                      st.queued_releases[rank].clear();
                      // Handles of the old process are stale from now on.
                      st.sink->bump(rank);
                      st.lost[rank].clear();
                      ++st.reconnects;
                    },
                    retry);
          },
          retry);
}

void schedule_reconnect(self_ptr self, uint32_t rank) {
  auto& st = self->state;
  if (!st.options.reconnect || st.closed || st.reconnecting[rank]
      || rank >= st.options.endpoints.size()
      || st.options.endpoints[rank].empty())
    return;
  st.reconnecting[rank] = true;
  self->delayed_send(caf::actor_cast<driver_actor_private>(self),
                     st.options.reconnect_interval, reconnect_atom::value,
                     rank);
}

/// What the driver says at hello.
hello_request hello_of(const driver_actor_options& opts) {
  hello_request result;
  result.client = opts.client;
  result.operator_secret = opts.operator_secret;
  result.cluster = opts.endpoints;
  result.principal = opts.principal;
  result.principal_secret = opts.principal_secret;
  return result;
}

/// Accumulates the replies of a fan-out to every live worker.
template<class T>
struct gather_state {
  std::vector<T> results;
  size_t left = 0;
  caf::error first_error;
};

/// Fails every call in flight (runs, transfers, fetches) with `err`.
void fail_all_calls(self_ptr self, const caf::error& err) {
  auto pending = std::move(self->state.pending);
  self->state.pending.clear();
  for (auto& [id, call] : pending)
    call.fail(make_error(code_of(err), "rank " + std::to_string(call.rank)
                                           + ": " + call.what + ": "
                                           + message_of(err)));
}

// -- streaming over the data plane --------------------------------------------

/// Where worker `rank`'s data plane listens, if puts and fetches should
/// stream there: a worker in another process, reached at a known IPv4 or
/// host-name endpoint, with a data port.
std::optional<std::pair<std::string, uint16_t>> stream_route(self_ptr self,
                                                             uint32_t rank) {
  auto& st = self->state;
  if (rank >= st.workers.size() || rank >= st.infos.size()
      || rank >= st.options.endpoints.size() || st.infos[rank].data_port == 0
      || !st.workers[rank] || st.workers[rank].node() == self->node())
    return std::nullopt;
  auto& ep = st.options.endpoints[rank];
  auto colon = ep.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return std::nullopt;
  auto host = ep.substr(0, colon);
  if (host.find(':') != std::string::npos || host.front() == '[')
    return std::nullopt; // IPv6: the data plane speaks IPv4 only
  return std::make_pair(std::move(host), st.infos[rank].data_port);
}

/// The driver's data plane, started on first use (outbound only).
caf::expected<std::shared_ptr<data_plane>> client_plane(self_ptr self) {
  auto& st = self->state;
  if (st.data)
    return st.data;
  auto opts = st.options.data;
  opts.listen = false;
  if (!opts.tls.enabled() && uses_tls(self->system())) {
    auto& cfg = self->system().config();
    opts.tls = tls_options{cfg.openssl_certificate, cfg.openssl_key,
                           cfg.openssl_cafile, cfg.openssl_passphrase};
  }
  auto made = data_plane::start(
      std::move(opts),
      [](const transfer_ticket&, value_ptr) -> caf::expected<std::string> {
        return make_error(errc::unsupported, "a driver accepts no transfers");
      });
  if (!made)
    return std::move(made.error());
  st.data = std::move(*made);
  return st.data;
}

/// Registers a streamed call to `rank` as pending (a deadline of
/// `transfer_timeout`, close and a lost worker fail it like any call);
/// returns its id and the callbacks the data plane's threads report to.
struct stream_reporter {
  uint64_t id;
  caf::actor_addr driver;

  void operator()(caf::expected<std::string> uri) const {
    if (uri)
      send(std::move(*uri));
    else
      send(std::move(uri.error()));
  }

  void operator()(caf::expected<value_ptr> x) const {
    if (x)
      send(wire_value{std::move(*x)});
    else
      send(std::move(x.error()));
  }

  template<class T>
  void send(T x) const {
    // Weak: a stream in flight does not keep a closed driver alive.
    if (auto hdl = caf::actor_cast<driver_actor_private>(driver))
      caf::anon_send(hdl, streamed_atom::value, id, std::move(x));
  }
};

stream_reporter start_stream(self_ptr self, uint32_t rank, std::string what,
                             std::function<void(caf::error)> fail,
                             driver_state::stream_call then) {
  auto& st = self->state;
  auto id = st.next_call++;
  st.pending.emplace(id,
                     driver_state::pending_call{rank, std::move(what), fail});
  st.streams.emplace(id, std::move(then));
  self->delayed_send(caf::actor_cast<driver_actor_private>(self),
                     st.options.transfer_timeout, deadline_atom::value, id);
  return stream_reporter{id, self->address()};
}

/// The data plane reported streamed call `id`: the continuation runs if the
/// call is still pending; a put that completed after its caller gave up
/// is released.
template<class T>
void on_streamed(self_ptr self, uint64_t id, T& result) {
  auto& st = self->state;
  auto i = st.streams.find(id);
  if (i == st.streams.end())
    return;
  auto call = std::move(i->second);
  st.streams.erase(i);
  auto pending = st.pending.find(id);
  if (pending == st.pending.end()) {
    if constexpr (std::is_same_v<T, std::string>) {
      if (call.rank < st.lost.size() && st.lost[call.rank].empty()) {
        detail::queue_release(self, call.rank, result);
        detail::schedule_flush(self);
      }
    }
    return;
  }
  auto fail = std::move(pending->second.fail);
  auto what = std::move(pending->second.what);
  st.pending.erase(pending);
  if constexpr (std::is_same_v<T, caf::error>) {
    fail(make_error(code_of(result), "rank " + std::to_string(call.rank) + ": "
                                         + what + ": " + message_of(result)));
  } else if constexpr (std::is_same_v<T, std::string>) {
    call.put_done(result);
  } else {
    call.fetch_done(result);
  }
}

/// A put of a value above the threshold: a token from the worker, then the
/// bytes over its data port.
void stream_put(self_ptr self, uint32_t rank,
                std::pair<std::string, uint16_t> route, put_request req,
                std::string what, caf::typed_response_promise<std::string> rp) {
  auto fail = [rp](caf::error err) mutable {
    rp.deliver(std::move(err));
  };
  auto value = std::move(req.value.ptr);
  // A put to an fs:// target streams under a transfer token naming it (the
  // worker checks the write at once and again on arrival); a mem:// put
  // under a put token, so the object counts as the session's own put.
  auto to_file = !req.target.empty();
  std::function<void(std::string&)> on_token
      = [self, rank, route, value, what, rp, fail,
         to_file](std::string& token) mutable {
          auto plane = client_plane(self);
          if (!plane) {
            fail(std::move(plane.error()));
            return;
          }
          auto& st = self->state;
          ++st.counters.streamed_puts;
          driver_state::stream_call then;
          then.rank = rank;
          then.put_done = [rp](std::string& uri) mutable {
            rp.deliver(std::move(uri));
          };
          auto report = start_stream(self, rank, what, fail, std::move(then));
          if (to_file)
            (*plane)->send_async(route.first, route.second, token,
                                 std::move(value), report);
          else
            (*plane)->put_async(route.first, route.second, token,
                                std::move(value), report);
        };
  if (to_file)
    detail::call<std::string>(self, rank, what + " (token)", on_token, fail,
                              expect_atom::value, std::move(req.target));
  else
    detail::call<std::string>(self, rank, what + " (token)", on_token, fail,
                              put_atom::value, expect_atom::value);
}

/// A fetch that lets the worker choose: the value in the reply, or a grant
/// to pull it from its data port.
void stream_fetch(self_ptr self, uint32_t rank,
                  std::pair<std::string, uint16_t> route, std::string uri,
                  caf::typed_response_promise<wire_value> rp,
                  block_allocator alloc = {}) {
  auto fail = [rp](caf::error err) mutable {
    rp.deliver(std::move(err));
  };
  auto what = "fetch " + uri;
  // 0: never streamed, unless too large for an actor message.
  auto threshold = self->state.options.stream_threshold;
  if (threshold == 0)
    threshold = UINT64_MAX;
  detail::call<fetch_reply>(
      self, rank, what,
      [self, rank, route, what, rp, fail, alloc](fetch_reply& reply) mutable {
        if (reply.grant.empty()) {
          rp.deliver(std::move(reply.value));
          return;
        }
        auto plane = client_plane(self);
        if (!plane) {
          fail(std::move(plane.error()));
          return;
        }
        auto& st = self->state;
        ++st.counters.streamed_fetches;
        driver_state::stream_call then;
        then.rank = rank;
        then.fetch_done = [rp](wire_value& x) mutable {
          rp.deliver(std::move(x));
        };
        auto report = start_stream(self, rank, what, fail, std::move(then));
        (*plane)->pull_async(route.first, route.second, reply.grant, report,
                             std::move(alloc));
      },
      fail, fetch_atom::value, std::move(uri), threshold);
}

} // namespace

namespace detail {

caf::error translate(driver_self self, const caf::error& err, uint32_t rank,
                     const std::string& what) {
  auto prefix = "rank " + std::to_string(rank) + ": ";
  if (err.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(err.code())) {
      case caf::sec::request_timeout:
        return make_error(errc::timeout,
                          prefix + what + ": " + timeout_text(self));
      case caf::sec::request_receiver_down:
        return make_error(errc::object_lost,
                          prefix + what + ": worker is down");
      default:
        return make_error(errc::io_error, prefix + what + ": " + describe(err));
    }
  }
  if (code_of(err) != errc::none)
    return make_error(code_of(err), prefix + message_of(err));
  return err;
}

caf::error closed_error(const std::string& what) {
  return make_error(errc::cancelled, what + ": the driver is closed");
}

void queue_release(driver_self self, uint32_t rank, const std::string& uri) {
  if (rank < self->state.queued_releases.size()
      && uri.rfind("mem://", 0) == 0) // only mem:// objects are counted
    self->state.queued_releases[rank].push_back(uri);
}

void schedule_flush(driver_self self) {
  flush_full_batches(self);
}

caf::error check_rank(driver_self self, uint32_t rank, const std::string& what,
                      bool keyed) {
  auto& st = self->state;
  if (st.closed)
    return closed_error(what);
  if (rank >= st.workers.size())
    return make_error(errc::invalid_argument,
                      "unknown rank " + std::to_string(rank) + " (world size "
                          + std::to_string(st.workers.size()) + "): " + what);
  if (!st.lost[rank].empty())
    return make_error(errc::object_lost, "rank " + std::to_string(rank)
                                             + " is lost (" + st.lost[rank]
                                             + "): " + what);
  if (keyed && st.keys[rank].id == 0)
    return make_error(errc::permission_denied,
                      "rank " + std::to_string(rank)
                          + " has no session of this driver (send hello "
                            "first): "
                          + what);
  return {};
}

} // namespace detail

driver_actor_private::behavior_type
driver_actor_impl(self_ptr self, std::vector<worker_actor> workers,
                  std::shared_ptr<release_sink> sink,
                  driver_actor_options options) {
  auto& st = self->state;
  st.options = options;
  st.lost.resize(workers.size());
  st.reconnecting.resize(workers.size());
  st.queued_releases.resize(workers.size());
  st.keys.resize(workers.size());
  st.infos.resize(workers.size());
  st.workers = std::move(workers);
  st.sink = std::move(sink);
  st.sink->attach(caf::actor_cast<caf::actor>(self));
  for (auto& w : st.workers)
    self->monitor(w);
  self->set_down_handler(
      [self](caf::down_msg& dm) { on_worker_down(self, dm); });
  return {
      [=](hello_atom) -> caf::result<std::vector<session_info>> {
        auto n = self->state.workers.size();
        if (n == 0)
          return std::vector<session_info>{};
        bool open = true;
        for (auto& k : self->state.keys)
          open = open && k.id != 0;
        if (open)
          return self->state.infos; // sessions are opened once
        auto rp = self->make_response_promise<std::vector<session_info>>();
        auto acc = std::make_shared<gather_state<session_info>>();
        acc->results.resize(n);
        acc->left = n;
        for (uint32_t r = 0; r < n; ++r) {
          auto done = [rp, acc]() mutable {
            if (--acc->left > 0)
              return;
            if (acc->first_error)
              rp.deliver(acc->first_error);
            else
              rp.deliver(acc->results);
          };
          call<session_info>(
              self, r, "hello",
              [self, acc, r, done](session_info& info) mutable {
                self->state.keys[r] = info.key;
                self->state.infos[r] = info;
                acc->results[r] = info;
                done();
              },
              [acc, done](caf::error err) mutable {
                if (!acc->first_error)
                  acc->first_error = std::move(err);
                done();
              },
              hello_atom::value, hello_of(self->state.options));
        }
        return rp;
      },
      [=](put_atom, uint32_t rank,
          put_request& req) -> caf::result<std::string> {
        auto what
            = "put " + (req.value.ptr ? req.value.ptr->summary() : "null");
        // Bytes that can never fit stay here: the worker would receive
        // them all (CAF reads whole messages) only to refuse them.
        if (req.value.ptr && rank < self->state.infos.size()) {
          auto& info = self->state.infos[rank];
          auto size = static_cast<uint64_t>(req.value.ptr->size_bytes());
          auto over = [&](uint64_t limit, const char* option) {
            return make_error(errc::resource_exhausted,
                              what + ": " + std::to_string(size)
                                  + " bytes exceed rank " + std::to_string(rank)
                                  + "'s limit of " + std::to_string(limit)
                                  + " bytes (" + option + "); nothing sent");
          };
          if (info.max_object_size > 0 && size > info.max_object_size)
            return over(info.max_object_size, "objstore.max-object-size");
          if (req.target.empty() && info.memory_limit > 0
              && size > info.memory_limit)
            return over(info.memory_limit, "objstore.memory-limit");
          auto route = stream_route(self, rank);
          auto must_stream = size > max_message_value;
          auto threshold = self->state.options.stream_threshold;
          if (route && ((threshold > 0 && size >= threshold) || must_stream)) {
            auto rp = self->make_response_promise<std::string>();
            stream_put(self, rank, std::move(*route), std::move(req),
                       std::move(what), rp);
            return rp;
          }
          if (must_stream && self->state.workers[rank].node() != self->node())
            return make_error(
                errc::resource_exhausted,
                what + ": " + std::to_string(size)
                    + " bytes are too large for an actor message (at most "
                    + std::to_string(max_message_value) + ") and rank "
                    + std::to_string(rank)
                    + " cannot be streamed to (no data port or endpoint); "
                      "nothing sent");
        }
        return forward<std::string>(self, rank, std::move(what),
                                    put_atom::value, std::move(req));
      },
      [=](run_atom, uint32_t rank,
          task_request& req) -> caf::result<task_reply> {
        std::string what = "task " + std::to_string(req.task_id);
        if (!req.inputs.empty())
          what += " on " + req.inputs.front()
                  + (req.inputs.size() > 1 ? ", ..." : "");
        return forward<task_reply>(self, rank, std::move(what), run_atom::value,
                                   std::move(req));
      },
      [=](fetch_atom, uint32_t rank, std::string& uri,
          block_allocator& alloc) -> caf::result<wire_value> {
        auto rp = self->make_response_promise<wire_value>();
        if (auto route = stream_route(self, rank))
          stream_fetch(self, rank, std::move(*route), std::move(uri), rp,
                       std::move(alloc));
        else
          call<wire_value>(
              self, rank, "fetch " + uri,
              [rp](wire_value& x) mutable { rp.deliver(std::move(x)); },
              [rp](caf::error err) mutable { rp.deliver(std::move(err)); },
              fetch_atom::value, std::move(uri));
        return rp;
      },
      [=](fetch_atom, uint32_t rank,
          std::string& uri) -> caf::result<wire_value> {
        if (auto route = stream_route(self, rank)) {
          auto rp = self->make_response_promise<wire_value>();
          stream_fetch(self, rank, std::move(*route), std::move(uri), rp);
          return rp;
        }
        return forward<wire_value>(self, rank, "fetch " + uri,
                                   fetch_atom::value, std::move(uri));
      },
      [=](erase_atom, uint32_t rank, std::string& uri) -> caf::result<bool> {
        return forward<bool>(self, rank, "erase " + uri, erase_atom::value,
                             std::move(uri));
      },
      [=](release_atom, uint32_t rank, std::vector<std::string>& uris) {
        auto& st = self->state;
        if (rank >= st.queued_releases.size())
          return;
        auto& queue = st.queued_releases[rank];
        queue.insert(queue.end(), std::make_move_iterator(uris.begin()),
                     std::make_move_iterator(uris.end()));
        flush_full_batches(self);
      },
      [=](release_atom) {
        // The sink stays armed (drops do not wake us) while a flush is
        // scheduled; that flush disarms it.
        drain_sink(self, false);
        flush_full_batches(self);
        if (!self->state.flush_scheduled) {
          drain_sink(self, true);
          flush_full_batches(self);
        }
      },
      [=](deadline_atom, uint64_t id) { on_deadline(self, id); },
      [=](streamed_atom, uint64_t id, std::string& uri) {
        on_streamed(self, id, uri);
      },
      [=](streamed_atom, uint64_t id, wire_value& x) {
        on_streamed(self, id, x);
      },
      [=](streamed_atom, uint64_t id, caf::error& err) {
        on_streamed(self, id, err);
      },
      [=](reconnect_atom, uint32_t rank) {
        if (rank < self->state.workers.size())
          try_reconnect(self, rank);
      },
      [=](cancel_atom, uint32_t rank, uint64_t task_id) -> caf::result<bool> {
        return forward<bool>(self, rank,
                             "cancel task " + std::to_string(task_id),
                             cancel_atom::value, task_id);
      },
      [=](expect_atom, uint32_t rank) -> caf::result<std::string> {
        return forward<std::string>(self, rank, "expect transfer",
                                    expect_atom::value);
      },
      [=](expect_atom, uint32_t rank,
          std::string& target) -> caf::result<std::string> {
        auto what = "expect transfer to " + target;
        return forward<std::string>(self, rank, std::move(what),
                                    expect_atom::value, std::move(target));
      },
      [=](push_atom, uint32_t rank, std::string& uri, uint32_t target,
          std::string& token) -> caf::result<std::string> {
        auto what = "transfer " + uri + " to rank " + std::to_string(target);
        auto rp = self->make_response_promise<std::string>();
        // A late reply names the replica on the target: released there.
        detail::call_on<std::string>(
            self, rank, target, std::move(what),
            self->state.options.transfer_timeout,
            [rp](std::string& uri) mutable { rp.deliver(std::move(uri)); },
            [rp](caf::error err) mutable { rp.deliver(std::move(err)); },
            push_atom::value, std::move(uri), target, std::move(token));
        return rp;
      },
      [=](flush_atom) -> uint64_t { return flush_all(self); },
      [=](stats_atom) -> driver_stats {
        auto result = self->state.counters;
        result.live_handles = static_cast<uint64_t>(
            std::max<int64_t>(0, self->state.sink->live.load()));
        // Counted chunk by chunk: progress of streams still under way.
        if (auto& plane = self->state.data) {
          result.data_bytes_sent = plane->counters().streamed_out.load();
          result.data_bytes_received = plane->counters().streamed_in.load();
        }
        return result;
      },
      [=](stats_atom, uint32_t rank) -> caf::result<worker_stats> {
        return forward<worker_stats>(self, rank, "stats", stats_atom::value);
      },
      [=](objects_atom,
          uint32_t rank) -> caf::result<std::vector<object_record>> {
        return forward<std::vector<object_record>>(self, rank, "objects",
                                                   objects_atom::value);
      },
      [=](close_atom) -> caf::result<uint64_t> {
        auto& st = self->state;
        if (st.closed)
          return uint64_t{0};
        flush_all(self);
        st.closed = true;
        auto err = make_error(errc::cancelled, "the driver is closing");
        fail_all_calls(self, err);
        detail::fail_all_runs(self, err);
        auto acc = std::make_shared<gather_state<uint64_t>>();
        for (uint32_t r = 0; r < st.workers.size(); ++r)
          if (st.lost[r].empty() && st.keys[r].id != 0)
            ++acc->left;
        // In CAF 0.17 a response promise takes over the request: create it
        // only when the reply is really deferred.
        if (acc->left == 0)
          return uint64_t{0};
        auto rp = self->make_response_promise<uint64_t>();
        acc->results.push_back(0);
        for (uint32_t r = 0; r < st.workers.size(); ++r) {
          if (!st.lost[r].empty() || st.keys[r].id == 0)
            continue;
          auto done = [rp, acc]() mutable {
            if (--acc->left == 0)
              rp.deliver(acc->results[0]);
          };
          auto key = std::exchange(st.keys[r], session_key{});
          ++st.counters.requests;
          // Not a `call`: the driver is closed, and a frozen worker must
          // not hold the caller longer than `close_timeout`.
          self->request(st.workers[r], st.options.close_timeout,
                        close_atom::value, key)
              .then(
                  [acc, done](uint64_t n) mutable {
                    acc->results[0] += n;
                    done();
                  },
                  [done](caf::error&) mutable { done(); });
        }
        return rp;
      },
      // -- orchestration ------------------------------------------------------
      [=](run_atom, run_order& order) -> caf::result<run_result> {
        auto rp = self->make_response_promise<run_result>();
        detail::start_run(self, std::move(order), detail::deliver_to(rp));
        return rp;
      },
      [=](submit_atom, run_order& order) -> uint64_t {
        return detail::submit_run(self, std::move(order));
      },
      [=](await_atom, uint64_t id) -> caf::result<run_result> {
        return detail::await_run(self, id);
      },
      [=](await_atom, std::vector<uint64_t>& ids, uint64_t k,
          caf::timespan timeout) -> caf::result<std::vector<uint64_t>> {
        return detail::await_runs(self, std::move(ids), k, timeout);
      },
      [=](await_atom, uint64_t waiter, bool) {
        detail::on_await_timeout(self, waiter);
      },
      [=](cancel_atom, uint64_t id) -> uint64_t {
        auto i = self->state.runs.find(id);
        if (i == self->state.runs.end())
          return 0;
        auto run = i->second; // cancel_run may erase the entry
        return detail::cancel_run(self, *run);
      },
      [=](forget_atom, uint64_t id) { detail::forget_run(self, id); },
      [=](transfer_atom, host_var& x, uint32_t from,
          uint32_t to) -> caf::result<host_var> {
        auto rp = self->make_response_promise<host_var>();
        detail::transfer(self, std::move(x), from, to, detail::deliver_to(rp));
        return rp;
      },
      [=](transfer_atom, host_var& x, uint32_t from, uint32_t to,
          std::string& target) -> caf::result<host_var> {
        auto rp = self->make_response_promise<host_var>();
        detail::transfer(self, std::move(x), from, to, detail::deliver_to(rp),
                         std::move(target));
        return rp;
      },
      [=](shuffle_atom, host_var& x,
          std::vector<int64_t>& routing) -> caf::result<host_var> {
        auto rp = self->make_response_promise<host_var>();
        detail::shuffle(self, std::move(x), std::move(routing),
                        detail::deliver_to(rp));
        return rp;
      },
      [=](shuffle_atom, host_var& x,
          std::string& key) -> caf::result<host_var> {
        auto rp = self->make_response_promise<host_var>();
        detail::shuffle_by_key(self, std::move(x), std::move(key),
                               detail::deliver_to(rp));
        return rp;
      },
      [=](simp_atom, run_order& order) -> caf::result<run_result> {
        auto rp = self->make_response_promise<run_result>();
        if (!order.parties.empty()) {
          rp.deliver(make_error(errc::invalid_argument,
                                "a SIMP program names its parties in its "
                                "ops, not in the order"));
          return rp;
        }
        detail::run_simp(self, std::move(order.program),
                         std::move(order.inputs), detail::deliver_to(rp));
        return rp;
      },
      [=](alive_atom, host_var& x) -> std::vector<bool> {
        std::vector<bool> result(x.world_size(), false);
        for (auto r : x.parties())
          result[r] = detail::part_alive(self, *x.part(r));
        return result;
      },
  };
}

} // namespace objstore
