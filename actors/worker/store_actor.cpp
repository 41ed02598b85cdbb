#include "actors/worker/store_actor.hpp"
#include <caf/all.hpp>

#include "store/error.hpp"

namespace objstore {

namespace {

caf::expected<uri> parse_target(const std::string& text) {
  return uri::parse(text);
}

} // namespace

store_actor::behavior_type
store_actor_impl(store_actor::stateful_pointer<store_actor_state> self,
                 std::shared_ptr<object_store> objects) {
  self->state.objects = std::move(objects);
  return {
      [=](put_atom, wire_value& x,
          std::string& target) -> caf::result<std::string> {
        std::optional<uri> id;
        if (!target.empty()) {
          auto parsed = parse_target(target);
          if (!parsed)
            return std::move(parsed.error());
          id = std::move(*parsed);
        }
        auto result = self->state.objects->put(std::move(x.ptr), std::move(id));
        if (!result)
          return std::move(result.error());
        return result->str();
      },
      [=](put_atom, wire_value& x, std::string& target,
          std::string& principal) -> caf::result<std::string> {
        auto id = parse_target(target);
        if (!id)
          return std::move(id.error());
        auto& objects = *self->state.objects;
        if (auto err = objects.authorize(*id, principal, fs_access::write))
          return err;
        auto result = objects.put_owned(std::move(x.ptr), *id, principal);
        if (!result)
          return std::move(result.error());
        return result->str();
      },
      [=](may_write_atom, std::string& text,
          std::string& principal) -> caf::result<std::string> {
        auto id = parse_target(text);
        if (!id)
          return std::move(id.error());
        if (id->scheme() == scheme::mem)
          return make_error(errc::unsupported_scheme,
                            id->str()
                                + ": only fs:// and oss:// objects are "
                                  "written under a principal");
        // Without fs roots (or oss buckets): unsupported_scheme naming the
        // URI.
        auto& objects = *self->state.objects;
        if (auto err = objects.authorize(*id, principal, fs_access::write))
          return err;
        return id->str();
      },
      [=](get_atom, std::string& text,
          std::string& principal) -> caf::result<wire_value> {
        auto id = uri::parse(text);
        if (!id)
          return std::move(id.error());
        auto& objects = *self->state.objects;
        if (auto err = objects.authorize(*id, principal, fs_access::read))
          return err;
        auto x = objects.get(*id);
        if (!x)
          return std::move(x.error());
        return wire_value{std::move(*x)};
      },
      [=](erase_atom, std::string& text,
          std::string& principal) -> caf::result<bool> {
        auto id = uri::parse(text);
        if (!id)
          return std::move(id.error());
        auto& objects = *self->state.objects;
        if (auto err = objects.authorize(*id, principal, fs_access::erase))
          return err;
        if (auto err = objects.erase(*id))
          return err;
        return true;
      },
      [=](get_atom, std::string& text) -> caf::result<wire_value> {
        auto id = uri::parse(text);
        if (!id)
          return std::move(id.error());
        auto x = self->state.objects->get(*id);
        if (!x)
          return std::move(x.error());
        return wire_value{std::move(*x)};
      },
      [=](erase_atom, std::string& text) -> caf::result<bool> {
        auto id = uri::parse(text);
        if (!id)
          return std::move(id.error());
        if (auto err = self->state.objects->erase(*id))
          return err;
        return true;
      },
      [=](exists_atom, std::string& text) -> caf::result<bool> {
        auto id = uri::parse(text);
        if (!id)
          return std::move(id.error());
        auto x = self->state.objects->exists(*id);
        if (!x)
          return std::move(x.error());
        return *x;
      },
      [=](objects_atom) -> caf::result<std::vector<object_record>> {
        auto xs = self->state.objects->list();
        if (!xs)
          return std::move(xs.error());
        std::vector<object_record> result;
        for (auto& info : *xs) {
          object_record rec;
          rec.uri = info.id.str();
          rec.size_bytes = info.size_bytes;
          result.push_back(std::move(rec));
        }
        return result;
      },
      [=](stats_atom) -> worker_stats {
        auto st = self->state.objects->stats();
        worker_stats result;
        result.mem_objects = st.of(scheme::mem).objects;
        result.mem_bytes = st.of(scheme::mem).bytes;
        result.fs_objects = st.of(scheme::fs).objects;
        result.fs_bytes = st.of(scheme::fs).bytes;
        return result;
      },
  };
}

} // namespace objstore
