#pragma once

#include <shared_mutex>
#include <unordered_map>

#include "store/backend.hpp"

namespace objstore {

/// Serves `mem://` from a hash map of shared values: `get` hands out the
/// stored `value_ptr` itself, so no bytes are copied. Thread-safe (a shared
/// mutex; readers run in parallel).
class memory_backend : public backend {
public:
  objstore::scheme scheme() const noexcept override { return scheme::mem; }
  caf::error put(const uri& id, const value_ptr& x) override;
  caf::expected<value_ptr> get(const uri& id) override;
  caf::error erase(const uri& id) override;
  caf::expected<bool> exists(const uri& id) override;
  caf::expected<std::vector<object_info>> list() override;
  backend_stats stats() override;

private:
  caf::error check(const uri& id) const;

  mutable std::shared_mutex mtx_;
  std::unordered_map<uri, value_ptr> objects_;
  uint64_t bytes_ = 0;
};

} // namespace objstore
