#include "actors/worker/endpoint.hpp"

#include <chrono>
#include <set>
#include <string>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/all.hpp>

#include "actors/dataplane/tls.hpp"
#include "store/error.hpp"

namespace objstore {

caf::expected<uint16_t> publish_worker(caf::actor_system& sys,
                                       const worker_actor& worker,
                                       uint16_t port, const std::string& host) {
  if (uses_tls(sys))
    return caf::openssl::publish(worker, port, host.c_str(), true);
  return sys.middleman().publish(worker, port, host.c_str(), true);
}

namespace {

/// Returns once `middleman` and CAF's broker behind it answered a request
/// sent after everything `self` sent them before (at most 1 s).
void sync_with(caf::scoped_actor& self,
               const caf::io::middleman_actor& middleman) {
  self->request(middleman, std::chrono::seconds{1}, caf::get_atom::value,
                caf::node_id{})
      .receive([](caf::node_id&, std::string&, uint16_t) {},
               [](caf::error&) {});
}

} // namespace

caf::expected<worker_actor> connect_worker(caf::actor_system& sys,
                                           const std::string& host,
                                           uint16_t port,
                                           caf::timespan deadline) {
  using clock = std::chrono::steady_clock;
  auto where = host + ":" + std::to_string(port);
  // CAF's blocking remote_actor waits on the middleman actor without a
  // timeout; its connect request is the same one, with a deadline.
  auto tls = uses_tls(sys);
  auto middleman = tls ? sys.openssl_manager().actor_handle()
                       : sys.middleman().actor_handle();
  auto start = clock::now();
  auto give_up = start + deadline;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline);
  caf::scoped_actor self{sys, true};
  for (;;) {
    auto left
        = std::chrono::duration_cast<caf::timespan>(give_up - clock::now());
    if (left.count() <= 0) {
      if (tls) {
        // Abandoned TLS handshakes spin CAF's network thread and block
        // the system's shutdown: end them. First let the middleman finish
        // setting up the last attempt (once it answers a later request,
        // every attempt's handshake has begun); after the abort let CAF's
        // broker report the failures to it (it answers after that), so
        // that a new connect does not join a handshake about to fail.
        sync_with(self, middleman);
        detail::abort_client_handshakes(host, port, start,
                                        std::chrono::seconds{1});
        sync_with(self, middleman);
      }
      return make_error(errc::timeout,
                        "connecting to " + where + ": no handshake within "
                            + std::to_string(ms.count())
                            + " ms (a frozen process or not an objstore "
                              "worker?)");
    }
    worker_actor found;
    caf::error failure;
    bool again = false;
    self->request(middleman, left, caf::connect_atom::value, host, port)
        .receive(
            [&](caf::node_id&, caf::strong_actor_ptr& ptr,
                std::set<std::string>& ifs) {
              if (!ptr)
                failure = caf::make_error(caf::sec::no_actor_published_at_port,
                                          port);
              else if (!sys.assignable<worker_actor>(ifs))
                failure = caf::make_error(
                    caf::sec::unexpected_actor_messaging_interface,
                    sys.message_types<worker_actor>(), std::move(ifs));
              else
                found = caf::actor_cast<worker_actor>(std::move(ptr));
            },
            [&](caf::error& err) {
              // request_timeout: the deadline passed (reported above).
              // connection_timeout: the handshake of a healthy peer can
              // straddle one of CAF's heartbeat ticks, which drops it (CAF
              // 0.17 counts a connecting peer as last seen at the clock's
              // epoch), so try again; against a silent peer every tick
              // ends one attempt and the deadline decides.
              if (err == caf::sec::request_timeout
                  || err == caf::sec::connection_timeout)
                again = true;
              else
                failure = std::move(err);
            });
    if (again)
      continue;
    if (failure)
      return failure;
    return found;
  }
}

caf::expected<worker_actor>
connect_worker(caf::actor_system& sys, const std::string& host, uint16_t port) {
  return connect_worker(
      sys, host, port,
      caf::get_or(sys.config(), "objstore.timeout", default_connect_timeout));
}

void unpublish_worker(caf::actor_system& sys, const worker_actor& worker,
                      uint16_t port) {
  if (uses_tls(sys)) {
    // caf/openssl/unpublish.hpp of 0.17.6 does not compile: ask the SSL
    // middleman actor directly.
    caf::anon_send(sys.openssl_manager().actor_handle(),
                   caf::unpublish_atom::value, worker.address(), port);
  } else {
    sys.middleman().unpublish(worker, port);
  }
}

} // namespace objstore
