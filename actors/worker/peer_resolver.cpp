#include "actors/worker/peer_resolver.hpp"

#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <utility>

#include <caf/all.hpp>
#include <caf/event_based_actor.hpp>

#include "messages/interfaces.hpp"
#include "store/error.hpp"

namespace objstore {

namespace {

/// Private to the resolver (never crosses a process): start the next
/// attempt after a pause.
using resolve_retry_atom = caf::atom_constant<caf::atom("rslvretry")>;

using clock_type = std::chrono::steady_clock;

struct resolver_state {
  caf::io::middleman_actor mm;
  std::string endpoint;
  std::string host;
  uint16_t port = 0;
  peer_resolver_options options;
  clock_type::time_point deadline;
  caf::typed_response_promise<peer_info> rp;
  bool asked = false;
  bool done = false;
  /// Connects started; a reply of an earlier attempt is stale.
  size_t attempt = 0;
  /// The proxy asked in this attempt (monitored).
  caf::actor_addr peer;
  /// Why the last attempt failed.
  caf::error last;
  std::minstd_rand rng{std::random_device{}()};
};

/// Whether `err` means the connection went away under the attempt (worth
/// a new connection), not that the peer refused or is silent.
bool connection_lost(const caf::error& err) {
  if (err.category() == caf::atom("exit"))
    return static_cast<caf::exit_reason>(err.code())
           == caf::exit_reason::remote_link_unreachable;
  if (err.category() != caf::atom("system"))
    return false;
  switch (static_cast<caf::sec>(err.code())) {
    case caf::sec::disconnect_during_handshake:
    case caf::sec::request_receiver_down: return true;
    default: return false;
  }
}

} // namespace

caf::behavior peer_resolver(caf::event_based_actor* self,
                            caf::io::middleman_actor mm, std::string endpoint,
                            std::string host, uint16_t port,
                            peer_resolver_options options) {
  auto st = std::make_shared<resolver_state>();
  st->mm = std::move(mm);
  st->endpoint = std::move(endpoint);
  st->host = std::move(host);
  st->port = port;
  st->options = options;
  auto finish = [self, st](caf::expected<peer_info> result) {
    if (st->done)
      return;
    st->done = true;
    if (result)
      st->rp.deliver(std::move(*result));
    else
      st->rp.deliver(std::move(result.error()));
    self->quit();
  };
  auto unreachable = [st](const caf::error& why) {
    return make_error(errc::object_lost, "cannot reach the worker at "
                                             + st->endpoint + ": "
                                             + describe(why));
  };
  auto remaining = [st] {
    auto left = std::chrono::duration_cast<caf::timespan>(st->deadline
                                                          - clock_type::now());
    return std::max(left, caf::timespan{std::chrono::milliseconds{1}});
  };
  // Gives up, or starts the next attempt after a random pause.
  auto retry = [self, st, finish, unreachable](caf::error why) {
    st->last = std::move(why);
    if (st->peer) {
      self->demonitor(st->peer);
      st->peer = caf::actor_addr{};
    }
    auto span = st->options.backoff * static_cast<int64_t>(st->attempt);
    std::uniform_int_distribution<int64_t> pick{
        1, std::max<int64_t>(span.count(), 1)};
    auto pause = std::chrono::milliseconds{pick(st->rng)};
    if (st->attempt >= st->options.max_attempts
        || clock_type::now() + pause >= st->deadline) {
      finish(unreachable(st->last));
      return;
    }
    // The attempt number retires the old attempt's late replies at once.
    ++st->attempt;
    self->delayed_send(self, pause, resolve_retry_atom::value);
  };
  auto attempt = std::make_shared<std::function<void()>>();
  *attempt = [self, st, finish, unreachable, remaining, retry] {
    if (st->attempt == 0)
      st->attempt = 1;
    auto n = st->attempt;
    self->request(st->mm, remaining(), caf::connect_atom::value, st->host,
                  st->port)
        .then(
            [=](const caf::node_id& nid, caf::strong_actor_ptr& ptr,
                const std::set<std::string>&) {
              if (n != st->attempt || st->done)
                return;
              if (nid == self->node()) {
                finish(make_error(errc::invalid_argument,
                                  "the endpoint " + st->endpoint
                                      + " is this worker itself"));
                return;
              }
              if (!ptr) {
                finish(unreachable(
                    make_error(errc::object_lost, "no actor published there")));
                return;
              }
              auto peer = caf::actor_cast<worker_actor>(ptr);
              st->peer = peer.address();
              // Dies with the connection: the loss shows at once instead
              // of at the request's timeout.
              self->monitor(peer);
              self->request(peer, remaining(), peer_atom::value)
                  .then(
                      [=](peer_info& info) {
                        if (n == st->attempt)
                          finish(std::move(info));
                      },
                      [=](caf::error& err) {
                        if (n != st->attempt || st->done)
                          return;
                        if (connection_lost(err))
                          retry(std::move(err));
                        else
                          finish(unreachable(err));
                      });
            },
            [=](caf::error& err) {
              if (n != st->attempt || st->done)
                return;
              if (connection_lost(err))
                retry(std::move(err));
              else
                finish(unreachable(err));
            });
  };
  self->set_down_handler([st, retry](caf::down_msg& dm) {
    if (!st->done && dm.source == st->peer)
      retry(dm.reason ? dm.reason
                      : make_error(errc::object_lost, "connection lost"));
  });
  return {
      [=](caf::get_atom) -> caf::result<peer_info> {
        if (st->asked)
          return make_error(errc::invalid_argument,
                            "a peer resolver answers only once");
        st->asked = true;
        st->deadline = clock_type::now() + st->options.timeout;
        st->rp = self->make_response_promise<peer_info>();
        (*attempt)();
        return st->rp;
      },
      [=](resolve_retry_atom) {
        if (!st->done)
          (*attempt)();
      },
  };
}

} // namespace objstore
