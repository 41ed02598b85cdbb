#include "store/memory_backend.hpp"

#include <mutex>

#include "store/error.hpp"

namespace objstore {

backend::~backend() {
  // nop
}

caf::error owned_backend::authorize(const uri& id, const std::string& principal,
                                    fs_access what) const {
  if (read_only(id)) {
    if (what == fs_access::read)
      return {};
    return make_error(errc::permission_denied,
                      "'" + id.str() + "': in a read-only shared root");
  }
  auto who = owner(id);
  if (!who) {
    if (code_of(who.error()) == errc::not_found && what == fs_access::write)
      return {}; // a new object: its writer will own it
    return who.error();
  }
  if (*who == principal)
    return {};
  if (principal == "operator" && what != fs_access::read)
    return {};
  return make_error(errc::permission_denied,
                    "'" + id.str() + "': owned by another principal (only its "
                        + "owner may "
                        + (what == fs_access::read    ? "read"
                           : what == fs_access::write ? "overwrite"
                                                      : "erase")
                        + " it)");
}

caf::error memory_backend::check(const uri& id) const {
  if (id.scheme() != scheme::mem)
    return make_error(errc::invalid_uri,
                      "'" + id.str() + "': memory backend serves mem:// only");
  return {};
}

caf::error memory_backend::put(const uri& id, const value_ptr& x) {
  if (auto err = check(id))
    return err;
  if (!x)
    return make_error(errc::invalid_argument, "'" + id.str() + "': null value");
  std::unique_lock guard{mtx_};
  auto& slot = objects_[id];
  if (slot)
    bytes_ -= slot->size_bytes();
  slot = x;
  bytes_ += x->size_bytes();
  return {};
}

caf::expected<value_ptr> memory_backend::get(const uri& id) {
  if (auto err = check(id))
    return err;
  std::shared_lock guard{mtx_};
  auto i = objects_.find(id);
  if (i == objects_.end())
    return make_error(errc::not_found, id.str());
  return i->second;
}

caf::error memory_backend::erase(const uri& id) {
  if (auto err = check(id))
    return err;
  value_ptr victim; // destroyed outside the lock
  std::unique_lock guard{mtx_};
  auto i = objects_.find(id);
  if (i == objects_.end())
    return make_error(errc::not_found, id.str());
  victim = std::move(i->second);
  bytes_ -= victim->size_bytes();
  objects_.erase(i);
  guard.unlock();
  return {};
}

caf::expected<bool> memory_backend::exists(const uri& id) {
  if (auto err = check(id))
    return err;
  std::shared_lock guard{mtx_};
  return objects_.count(id) > 0;
}

caf::expected<std::vector<object_info>> memory_backend::list() {
  std::shared_lock guard{mtx_};
  std::vector<object_info> result;
  result.reserve(objects_.size());
  for (auto& [id, x] : objects_)
    result.push_back({id, x->size_bytes()});
  return result;
}

backend_stats memory_backend::stats() {
  std::shared_lock guard{mtx_};
  return {objects_.size(), bytes_};
}

} // namespace objstore
