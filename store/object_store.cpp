#include "store/object_store.hpp"

#include <limits>

#include "store/error.hpp"
#include "store/file_backend.hpp"
#include "store/memory_backend.hpp"

namespace objstore {

namespace {

mem_id_generator make_ids(const std::string& node_id) {
  return node_id.empty() ? mem_id_generator{} : mem_id_generator{node_id};
}

} // namespace

object_store::object_store(object_store_options options)
    : options_(std::move(options)), ids_(make_ids(options_.node_id)) {
  register_backend(std::make_shared<memory_backend>());
}

caf::expected<std::unique_ptr<object_store>>
object_store::make(object_store_options options) {
  if (!options.node_id.empty()) {
    // The longest id this prefix will produce must be a valid mem:// URI.
    auto longest = "mem://" + options.node_id + "-"
                   + std::to_string(std::numeric_limits<uint64_t>::max());
    if (auto parsed = uri::parse(longest); !parsed)
      return make_error(errc::invalid_argument,
                        "node id '" + options.node_id.substr(0, 200)
                            + "' does not make valid mem:// ids: "
                            + message_of(parsed.error()));
  }
  auto result = std::make_unique<object_store>(options);
  if (!options.fs_roots.empty() || !options.fs_shared_roots.empty()) {
    file_backend_options fs_opts;
    fs_opts.roots = options.fs_roots;
    fs_opts.read_only_roots = options.fs_shared_roots;
    fs_opts.sync = options.fs_sync;
    auto files = file_backend::make(std::move(fs_opts));
    if (!files)
      return files.error();
    result->register_backend(std::shared_ptr<backend>{std::move(*files)});
  }
  if (options.oss) {
    auto objects = oss_backend::make(*options.oss);
    if (!objects)
      return objects.error();
    result->register_backend(std::shared_ptr<backend>{std::move(*objects)});
  }
  if (!options.spill_dir.empty() && options.memory_limit > 0
      && options.spill_threshold > 0) {
    auto dir = spill_directory::open(
        options.spill_dir,
        options.spill_key.empty() ? std::string{"node"} : options.spill_key);
    if (!dir)
      return dir.error();
    result->spill_ = std::make_unique<spiller>(
        result->backends_[scheme::mem], std::move(*dir), options.memory_limit,
        options.spill_threshold);
  }
  return result;
}

void object_store::register_backend(std::shared_ptr<backend> b) {
  auto key = b->scheme();
  backends_[key] = std::move(b);
}

file_backend* object_store::files() const noexcept {
  auto i = backends_.find(scheme::fs);
  if (i == backends_.end())
    return nullptr;
  return dynamic_cast<file_backend*>(i->second.get());
}

caf::expected<backend*> object_store::backend_for(objstore::scheme x,
                                                  const uri& id) {
  auto i = backends_.find(x);
  if (i == backends_.end())
    return make_error(errc::unsupported_scheme,
                      "'" + id.str() + "': no " + std::string{to_string(x)}
                          + ":// backend on this node");
  return i->second.get();
}

caf::expected<uri> object_store::put_owned(value_ptr x, const uri& id,
                                           const std::string& owner) {
  if (id.scheme() == scheme::mem)
    return put(std::move(x), id);
  if (!x)
    return make_error(errc::invalid_argument, "put of a null value");
  if (auto err = check_size(id, *x))
    return err;
  auto b = backend_for(id.scheme(), id);
  if (!b)
    return b.error();
  auto owned = dynamic_cast<owned_backend*>(*b);
  auto err = owned ? owned->put_owned(id, x, owner) : (*b)->put(id, x);
  if (err)
    return err;
  return id;
}

caf::error object_store::authorize(const uri& id, const std::string& principal,
                                   fs_access what) {
  if (id.scheme() == scheme::mem)
    return {};
  auto b = backend_for(id.scheme(), id);
  if (!b)
    return b.error();
  if (auto owned = dynamic_cast<owned_backend*>(*b))
    return owned->authorize(id, principal, what);
  return {};
}

caf::error object_store::check_size(const uri& id, const value& x) const {
  auto size = x.size_bytes();
  if (options_.max_object_size > 0 && size > options_.max_object_size)
    return make_error(errc::resource_exhausted,
                      "'" + id.str() + "': object of " + std::to_string(size)
                          + " bytes exceeds the limit of "
                          + std::to_string(options_.max_object_size));
  return {};
}

caf::expected<uri> object_store::put(value_ptr x, std::optional<uri> id,
                                     disk_io io) {
  if (!x)
    return make_error(errc::invalid_argument, "put of a null value");
  auto target = id ? std::move(*id) : ids_.next();
  auto size = x->size_bytes();
  if (auto err = check_size(target, *x))
    return err;
  auto b = backend_for(target.scheme(), target);
  if (!b)
    return b.error();
  if (target.scheme() == scheme::mem && spill_) {
    if (auto err = spill_->put(target, x, io))
      return err;
    return target;
  }
  if (target.scheme() == scheme::mem && options_.memory_limit > 0) {
    std::lock_guard guard{mem_mtx_};
    auto used = (*b)->stats().bytes;
    uint64_t replaced = 0;
    if (auto old = (*b)->get(target); old)
      replaced = (*old)->size_bytes();
    if (used - replaced + size > options_.memory_limit)
      return make_error(
          errc::resource_exhausted,
          "'" + target.str() + "': storing " + std::to_string(size)
              + " bytes exceeds the memory " + "limit (" + std::to_string(used)
              + " of " + std::to_string(options_.memory_limit) + " used)");
    if (auto err = (*b)->put(target, x))
      return err;
    return target;
  }
  if (auto err = (*b)->put(target, x))
    return err;
  return target;
}

caf::expected<value_ptr> object_store::get(const uri& id) {
  if (spill_ && id.scheme() == scheme::mem)
    return spill_->get(id);
  auto b = backend_for(id.scheme(), id);
  if (!b)
    return b.error();
  return (*b)->get(id);
}

caf::expected<value_ptr> object_store::get_resident(const uri& id) {
  if (id.scheme() != scheme::mem)
    return make_error(errc::invalid_uri,
                      "'" + id.str() + "': only mem:// objects are resident");
  if (spill_)
    return spill_->get_resident(id);
  return get(id);
}

bool object_store::is_spilled(const uri& id) {
  return spill_ && id.scheme() == scheme::mem && spill_->is_spilled(id);
}

bool object_store::needs_spill_for(uint64_t size) {
  return spill_ && spill_->needs_spill_for(size);
}

void object_store::on_background_work(std::function<void()> hook) {
  if (spill_)
    spill_->on_background_work(std::move(hook));
}

void object_store::run_background_work() {
  if (spill_)
    spill_->run_background_work();
}

std::filesystem::path object_store::spill_path() const {
  return spill_ ? spill_->directory().path() : std::filesystem::path{};
}

caf::error object_store::erase(const uri& id) {
  if (spill_ && id.scheme() == scheme::mem)
    return spill_->erase(id);
  auto b = backend_for(id.scheme(), id);
  if (!b)
    return b.error();
  return (*b)->erase(id);
}

caf::expected<bool> object_store::exists(const uri& id) {
  if (spill_ && id.scheme() == scheme::mem)
    return spill_->exists(id);
  auto b = backend_for(id.scheme(), id);
  if (!b)
    return b.error();
  return (*b)->exists(id);
}

caf::expected<std::vector<object_info>>
object_store::list(std::optional<objstore::scheme> only) {
  std::vector<object_info> result;
  for (auto& [key, b] : backends_) {
    if (only && *only != key)
      continue;
    auto part = b->list();
    if (!part)
      return part.error();
    result.insert(result.end(), part->begin(), part->end());
    if (key == scheme::mem && spill_)
      for (auto& x : spill_->spilled_objects()) {
        x.spilled = true;
        result.push_back(std::move(x));
      }
  }
  return result;
}

uint64_t object_store::memory_left() {
  if (options_.memory_limit == 0)
    return UINT64_MAX;
  if (spill_)
    return spill_->available();
  auto b = backends_.find(scheme::mem);
  if (b == backends_.end())
    return options_.memory_limit;
  auto used = b->second->stats().bytes;
  return used >= options_.memory_limit ? 0 : options_.memory_limit - used;
}

store_stats object_store::stats() {
  store_stats result;
  for (auto& [key, b] : backends_)
    result.per_scheme[key] = b->stats();
  if (spill_) {
    result.per_scheme[scheme::mem] = spill_->totals();
    result.spill = spill_->stats();
  }
  return result;
}

} // namespace objstore
