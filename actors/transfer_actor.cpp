#include "actors/transfer_actor.hpp"
#include <caf/all.hpp>

#include "store/error.hpp"

namespace objstore {

transfer_actor::behavior_type transfer_actor_impl() {
  return {
      [](transfer_atom, const std::string& id,
         const std::string& target) -> caf::result<std::string> {
        return make_error(errc::unsupported, "transfer of " + id + " to "
                                                 + target
                                                 + ": not implemented yet");
      },
  };
}

} // namespace objstore
