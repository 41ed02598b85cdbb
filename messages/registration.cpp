#include "messages/registration.hpp"

#include <caf/io/middleman.hpp>

#include "messages/interfaces.hpp"
#include "store/error.hpp"

namespace objstore {

std::string_view to_string(fetch_policy x) {
  switch (x) {
    case fetch_policy::deny: return "deny";
    case fetch_policy::revealed_only: return "revealed-only";
    case fetch_policy::allow: return "allow";
  }
  return "?";
}

caf::expected<fetch_policy> parse_fetch_policy(std::string_view text) {
  for (auto x :
       {fetch_policy::deny, fetch_policy::revealed_only, fetch_policy::allow})
    if (to_string(x) == text)
      return x;
  return make_error(errc::invalid_argument,
                    "unknown fetch policy '" + std::string{text}
                        + "' (deny, revealed-only, allow)");
}

void register_types(caf::actor_system_config& cfg) {
  if (cfg.type_names_by_rtti.count(std::type_index{typeid(wire_value)}) > 0)
    return;
  cfg.load<caf::io::middleman>();
  cfg.add_message_type<wire_value>("objstore::wire_value");
  cfg.add_message_type<attribute>("objstore::attribute");
  cfg.add_message_type<op>("objstore::op");
  cfg.add_message_type<graph>("objstore::graph");
  cfg.add_message_type<session_key>("objstore::session_key");
  cfg.add_message_type<hello_request>("objstore::hello_request");
  cfg.add_message_type<peer_info>("objstore::peer_info");
  cfg.add_message_type<session_info>("objstore::session_info");
  cfg.add_message_type<put_request>("objstore::put_request");
  cfg.add_message_type<fetch_reply>("objstore::fetch_reply");
  cfg.add_message_type<task_request>("objstore::task_request");
  cfg.add_message_type<task_reply>("objstore::task_reply");
  cfg.add_message_type<holder_record>("objstore::holder_record");
  cfg.add_message_type<object_record>("objstore::object_record");
  cfg.add_message_type<worker_stats>("objstore::worker_stats");
  cfg.add_message_type<driver_stats>("objstore::driver_stats");
  cfg.add_message_type<worker_metrics>("objstore::worker_metrics");
  cfg.add_error_category(error_category, render_error);
}

} // namespace objstore
