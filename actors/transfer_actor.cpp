#include "actors/transfer_actor.hpp"

#include <caf/all.hpp>

#include "store/error.hpp"

namespace objstore {

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
        auto sender = self->spawn<caf::detached>(
            [data, host, port, token](caf::event_based_actor* helper,
                                      wire_value x) -> caf::behavior {
              return {
                  [=](push_atom) -> caf::result<std::string> {
                    helper->quit();
                    auto uri = data->send(host, port, token, x.ptr);
                    if (!uri)
                      return std::move(uri.error());
                    return std::move(*uri);
                  },
              };
            },
            std::move(x));
        self->request(sender, caf::infinite, push_atom::value)
            .then(
                [rp](std::string& uri) mutable { rp.deliver(std::move(uri)); },
                [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
  };
}

} // namespace objstore
