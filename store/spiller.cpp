#include "store/spiller.hpp"

#include <chrono>

#include "store/error.hpp"

namespace objstore {

namespace {

uint64_t elapsed_ns(std::chrono::steady_clock::time_point since) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now() - since)
          .count());
}

} // namespace

spiller::spiller(std::shared_ptr<backend> memory,
                 std::unique_ptr<spill_directory> dir, uint64_t limit,
                 double threshold)
    : memory_(std::move(memory)), dir_(std::move(dir)), limit_(limit),
      threshold_(threshold) {
  stats_.leftovers_removed = dir_->leftovers_removed();
}

spiller::~spiller() {
  // The directory's destructor removes every file, the trash included.
}

void spiller::on_background_work(std::function<void()> hook) {
  hook_ = std::move(hook);
}

uint64_t spiller::used() {
  return memory_->stats().bytes;
}

uint64_t spiller::target() const {
  return static_cast<uint64_t>(static_cast<double>(limit_) * threshold_);
}

value_ptr spiller::unpinned(const uri& id) {
  auto got = memory_->get(id);
  if (!got)
    return nullptr;
  value_ptr x = std::move(*got);
  // The backend's copy and ours: nobody else holds the value.
  return x.use_count() <= 2 ? x : nullptr;
}

uint64_t spiller::spillable(lock_type&) {
  uint64_t result = 0;
  for (auto& id : lru_)
    if (auto x = unpinned(id))
      result += entries_[id].size;
  return result;
}

spiller::spill_result spiller::spill_one(lock_type& lk, caf::error* why) {
  value_ptr x;
  auto pick = lru_.begin();
  for (; pick != lru_.end(); ++pick)
    if ((x = unpinned(*pick)))
      break;
  if (!x)
    return spill_result::nothing;
  auto id = *pick;
  auto& e = entries_[id];
  lru_.erase(pick);
  if (!e.file.path.empty()) {
    // Restored earlier and still on disk: drop the memory copy, no write.
    memory_->erase(id);
    e.where = state::spilled;
    ++stats_.spills;
    ++stats_.respills;
    ++stats_.spilled_objects;
    stats_.spilled_bytes += e.size;
    lk.unlock();
    x.reset(); // the last reference: free it without the lock
    lk.lock();
    return spill_result::spilled;
  }
  e.where = state::spilling;
  auto generation = e.generation;
  auto size = e.size;
  spilling_bytes_ += size;
  lk.unlock();
  auto start = std::chrono::steady_clock::now();
  auto file = dir_->write(id, *x);
  auto took = elapsed_ns(start);
  lk.lock();
  spilling_bytes_ -= size;
  changed_.notify_all();
  auto i = entries_.find(id);
  bool current = i != entries_.end() && i->second.generation == generation
                 && i->second.where == state::spilling;
  if (!file) {
    ++stats_.spill_failures;
    if (why)
      *why = file.error();
    if (current) {
      i->second.where = state::resident;
      i->second.lru = lru_.insert(lru_.end(), id);
    }
    return spill_result::failed;
  }
  // Ours, the backend's: anyone else took the value while it was written.
  if (!current || x.use_count() > 2) {
    forget_file(std::move(*file));
    if (current) {
      i->second.where = state::resident;
      i->second.lru = lru_.insert(lru_.end(), id);
    }
    return spill_result::spilled; // progress of a kind: try another
  }
  memory_->erase(id);
  i->second.where = state::spilled;
  i->second.file = std::move(*file);
  ++stats_.spills;
  stats_.spilled_bytes_total += size;
  stats_.spill_ns += took;
  ++stats_.spilled_objects;
  stats_.spilled_bytes += size;
  stats_.spill_file_bytes += i->second.file.bytes;
  // The last reference: free the memory without the lock.
  lk.unlock();
  x.reset();
  lk.lock();
  return spill_result::spilled;
}

caf::error spiller::make_room(lock_type& lk, const uri& id, uint64_t size,
                              uint64_t replaced, disk_io io) {
  auto refuse = [&](const std::string& why) {
    return make_error(
        errc::resource_exhausted,
        "'" + id.str() + "': storing " + std::to_string(size)
            + " bytes exceeds the memory limit (objstore.memory-limit; "
            + std::to_string(used()) + " of " + std::to_string(limit_) + " used"
            + why + ")");
  };
  if (size > limit_)
    return refuse("");
  for (;;) {
    auto now = used();
    auto after = now - std::min(now, replaced) + size;
    if (after <= limit_)
      return {};
    if (io == disk_io::never)
      return refuse("; needs a spill first");
    // Writes in flight will free their bytes: wait rather than spill more.
    if (spilling_bytes_ > 0 && after <= limit_ + spilling_bytes_) {
      changed_.wait(lk);
      continue;
    }
    if (spilling_bytes_ == 0 && after > limit_ + spillable(lk))
      return refuse(", the rest pinned");
    caf::error why;
    switch (spill_one(lk, &why)) {
      case spill_result::spilled: continue;
      case spill_result::failed:
        return refuse("; spilling failed: " + message_of(why));
      case spill_result::nothing:
        if (spilling_bytes_ > 0) {
          changed_.wait(lk);
          continue;
        }
        return refuse(", the rest pinned");
    }
  }
}

void spiller::wake_background(lock_type& lk, disk_io io) {
  bool over = used() > target() || !trash_.empty();
  if (!over || background_pending_)
    return;
  if (!hook_) {
    if (io == disk_io::never)
      return; // the next call that may block does it
    lk.unlock();
    run_background_work();
    lk.lock();
    return;
  }
  background_pending_ = true;
  lk.unlock();
  hook_();
  lk.lock();
}

void spiller::drop_copy(entry& e) {
  switch (e.where) {
    case state::resident:
      lru_.erase(e.lru);
      if (!e.file.path.empty()) { // a disk copy from an earlier spill
        stats_.spill_file_bytes -= e.file.bytes;
        forget_file(std::move(e.file));
      }
      break;
    case state::spilled:
    case state::restoring:
      --stats_.spilled_objects;
      stats_.spilled_bytes -= e.size;
      stats_.spill_file_bytes -= e.file.bytes;
      forget_file(std::move(e.file));
      break;
    case state::spilling: break; // the write sees the change
  }
}

void spiller::forget_file(spill_file f) {
  trash_.push_back(std::move(f)); // removed by the next background run
}

caf::error spiller::put(const uri& id, const value_ptr& x, disk_io io) {
  if (!x)
    return make_error(errc::invalid_argument, "'" + id.str() + "': null value");
  lock_type lk{mtx_};
  auto size = x->size_bytes();
  auto old = entries_.find(id);
  uint64_t replaced = 0;
  if (old != entries_.end()
      && (old->second.where == state::resident
          || old->second.where == state::spilling))
    replaced = old->second.size;
  if (auto err = make_room(lk, id, size, replaced, io))
    return err;
  if (auto err = memory_->put(id, x))
    return err;
  auto& e = entries_[id]; // make_room may have unlocked: look up again
  if (e.generation != 0)  // not a fresh entry
    drop_copy(e);         // IO in flight for it sees the new generation
  e.size = size;
  e.where = state::resident;
  e.generation = ++generation_;
  e.file = {};
  e.lru = lru_.insert(lru_.end(), id);
  changed_.notify_all();
  wake_background(lk, io);
  return {};
}

caf::expected<value_ptr> spiller::get_resident(const uri& id) {
  lock_type lk{mtx_};
  auto i = entries_.find(id);
  if (i == entries_.end())
    return make_error(errc::not_found, id.str());
  if (i->second.where == state::spilled || i->second.where == state::restoring)
    return value_ptr{};
  if (i->second.where == state::resident)
    lru_.splice(lru_.end(), lru_, i->second.lru);
  return memory_->get(id);
}

caf::expected<value_ptr> spiller::get(const uri& id) {
  lock_type lk{mtx_};
  for (;;) {
    auto i = entries_.find(id);
    if (i == entries_.end())
      return make_error(errc::not_found, id.str());
    auto& e = i->second;
    if (e.where == state::restoring) {
      changed_.wait(lk);
      continue;
    }
    if (e.where != state::spilled) {
      if (e.where == state::resident)
        lru_.splice(lru_.end(), lru_, e.lru);
      return memory_->get(id);
    }
    e.where = state::restoring;
    auto generation = e.generation;
    auto file = e.file;
    auto size = e.size;
    lk.unlock();
    auto start = std::chrono::steady_clock::now();
    auto x = dir_->read(id, file);
    lk.lock();
    auto still = [&]() -> entry* {
      auto j = entries_.find(id);
      return j != entries_.end() && j->second.generation == generation
                     && j->second.where == state::restoring
                 ? &j->second
                 : nullptr;
    };
    if (!still()) {
      changed_.notify_all();
      continue; // erased or replaced meanwhile: look again
    }
    auto fail = [&](caf::error err) {
      ++stats_.restore_failures;
      still()->where = state::spilled;
      changed_.notify_all();
      return err;
    };
    if (!x)
      return fail(std::move(x.error()));
    if ((*x)->size_bytes() != size)
      return fail(make_error(errc::corrupt_data,
                             "'" + id.str() + "': spill file '"
                                 + file.path.string() + "' holds "
                                 + std::to_string((*x)->size_bytes())
                                 + " bytes, expected " + std::to_string(size)));
    if (auto err = make_room(lk, id, size, 0, disk_io::allowed)) {
      if (!still()) {
        changed_.notify_all();
        continue;
      }
      return fail(make_error(errc::resource_exhausted,
                             "cannot restore spilled " + message_of(err)));
    }
    auto* cur = still();
    if (!cur) {
      changed_.notify_all();
      continue;
    }
    if (auto err = memory_->put(id, *x))
      return fail(std::move(err));
    cur->where = state::resident;
    cur->lru = lru_.insert(lru_.end(), id);
    // The file stays as the object's disk copy: unchanged (objects are
    // immutable), it spills again without a write; it goes with the object.
    --stats_.spilled_objects;
    stats_.spilled_bytes -= size;
    ++stats_.restores;
    stats_.restored_bytes_total += size;
    stats_.restore_ns += elapsed_ns(start);
    changed_.notify_all();
    auto result = std::move(*x);
    wake_background(lk, disk_io::allowed);
    return result;
  }
}

caf::error spiller::erase(const uri& id) {
  lock_type lk{mtx_};
  auto i = entries_.find(id);
  if (i == entries_.end())
    return make_error(errc::not_found, id.str());
  auto& e = i->second;
  // A restore in progress reads an open file or finds it gone; either way
  // it sees the entry gone and answers not_found. A write in progress ends
  // in the trash.
  drop_copy(e);
  entries_.erase(i);
  // Resident or being written: the memory copy goes now. Being freed: drop
  // the backend's reference outside our lock only if it is the last.
  auto err = memory_->erase(id);
  changed_.notify_all();
  wake_background(lk, disk_io::never);
  if (err && code_of(err) != errc::not_found)
    return err;
  return {};
}

bool spiller::exists(const uri& id) {
  std::lock_guard guard{mtx_};
  return entries_.count(id) > 0;
}

bool spiller::is_spilled(const uri& id) {
  std::lock_guard guard{mtx_};
  auto i = entries_.find(id);
  return i != entries_.end()
         && (i->second.where == state::spilled
             || i->second.where == state::restoring);
}

std::vector<object_info> spiller::spilled_objects() {
  std::lock_guard guard{mtx_};
  std::vector<object_info> result;
  for (auto& [id, e] : entries_)
    if (e.where == state::spilled || e.where == state::restoring)
      result.push_back({id, e.size, true});
  return result;
}

backend_stats spiller::totals() {
  std::lock_guard guard{mtx_};
  return {entries_.size(), used()};
}

uint64_t spiller::available() {
  lock_type lk{mtx_};
  auto now = used();
  auto free_now = now >= limit_ ? 0 : limit_ - now;
  return std::min<uint64_t>(limit_, free_now + spillable(lk));
}

bool spiller::needs_spill_for(uint64_t size) {
  std::lock_guard guard{mtx_};
  return used() + size > limit_;
}

void spiller::run_background_work() {
  lock_type lk{mtx_};
  background_pending_ = false;
  auto trash = std::move(trash_);
  trash_.clear();
  lk.unlock();
  for (auto& f : trash)
    dir_->remove(f);
  lk.lock();
  while (used() > target() + spilling_bytes_)
    if (spill_one(lk, nullptr) != spill_result::spilled)
      break;
}

spill_stats spiller::stats() {
  std::lock_guard guard{mtx_};
  return stats_;
}

} // namespace objstore
