#include "actors/worker/transfer_actor.hpp"

#include <caf/all.hpp>

#include "store/error.hpp"

namespace objstore {

namespace {

/// Carries one push's outcome from a sender thread back into the actor
/// world: the data plane's callback runs on its own threads, where a
/// response promise must not be touched, so it messages this relay, which
/// answers the transfer actor's request. A relay is an event-based actor:
/// no thread of its own.
caf::behavior push_relay(caf::event_based_actor* self,
                         std::shared_ptr<data_plane> data, std::string host,
                         uint16_t port, std::string token, wire_value x) {
  return {
      [=](push_atom) mutable -> caf::result<std::string> {
        auto rp = self->make_response_promise<std::string>();
        // The relay waits only for the outcome, which always comes:
        // send_async runs its callback exactly once.
        self->become(
            [=](caf::ok_atom, std::string& uri) mutable {
              rp.deliver(std::move(uri));
              self->quit();
            },
            [=](caf::ok_atom, caf::error& err) mutable {
              rp.deliver(std::move(err));
              self->quit();
            });
        caf::actor me = caf::actor_cast<caf::actor>(self);
        data->send_async(host, port, token, std::move(x.ptr),
                         [me](caf::expected<std::string> result) {
                           if (result)
                             caf::anon_send(me, caf::ok_atom::value,
                                            std::move(*result));
                           else
                             caf::anon_send(me, caf::ok_atom::value,
                                            std::move(result.error()));
                         });
        return rp;
      },
  };
}

} // namespace

transfer_actor::behavior_type
transfer_actor_impl(transfer_actor::pointer self,
                    std::shared_ptr<data_plane> data) {
  return {
      [=](push_atom, std::string& host, uint16_t port, std::string& token,
          wire_value& x) -> caf::result<std::string> {
        if (!data)
          return make_error(errc::unsupported, "this node has no data plane");
        auto rp = self->make_response_promise<std::string>();
        // The value travels as a spawn argument: CAF 0.17 binds a reference
        // to a null tuple when a function is spawned without arguments
        // (undefined behaviour, reported by UBSan).
        auto relay = self->spawn(push_relay, data, std::move(host), port,
                                 std::move(token), std::move(x));
        self->request(relay, caf::infinite, push_atom::value)
            .then(
                [rp](std::string& uri) mutable { rp.deliver(std::move(uri)); },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
  };
}

} // namespace objstore
