#include "actors/worker/reference_table.hpp"

namespace objstore {

void reference_table::add(const uri& id, session_id owner, uint64_t size_bytes,
                          bool revealed, session_id put_by,
                          clock::time_point now) {
  auto& e = entries_[id];
  e.size_bytes = size_bytes;
  e.revealed = e.revealed || revealed;
  e.put_by = put_by;
  e.created = now;
  if (owner != 0)
    ++e.holders[owner];
}

bool reference_table::hold(const uri& id, session_id s) {
  auto i = entries_.find(id);
  if (i == entries_.end())
    return false;
  ++i->second.holders[s];
  return true;
}

bool reference_table::holds(const uri& id, session_id s) const {
  auto i = entries_.find(id);
  return i != entries_.end() && i->second.holders.count(s) > 0;
}

bool reference_table::release(const uri& id, session_id s) {
  auto i = entries_.find(id);
  if (i == entries_.end()) {
    ++unknown_releases_;
    return false;
  }
  auto h = i->second.holders.find(s);
  if (h == i->second.holders.end()) {
    ++unknown_releases_;
    return false;
  }
  ++releases_;
  if (--h->second == 0)
    i->second.holders.erase(h);
  return is_free(i->second);
}

bool reference_table::release_all(const uri& id, session_id s) {
  auto i = entries_.find(id);
  if (i == entries_.end() || i->second.holders.erase(s) == 0) {
    ++unknown_releases_;
    return false;
  }
  ++releases_;
  return is_free(i->second);
}

bool reference_table::pin(const uri& id) {
  auto i = entries_.find(id);
  if (i == entries_.end())
    return false;
  ++i->second.pins;
  return true;
}

bool reference_table::unpin(const uri& id) {
  auto i = entries_.find(id);
  if (i == entries_.end() || i->second.pins == 0)
    return false;
  --i->second.pins;
  return is_free(i->second);
}

std::pair<std::vector<uri>, uint64_t>
reference_table::drop_session(session_id s) {
  std::vector<uri> freed;
  uint64_t dropped = 0;
  for (auto& [id, e] : entries_) {
    auto h = e.holders.find(s);
    if (h == e.holders.end())
      continue;
    dropped += h->second;
    e.holders.erase(h);
    if (is_free(e))
      freed.push_back(id);
  }
  return {std::move(freed), dropped};
}

void reference_table::forget(const uri& id) {
  entries_.erase(id);
}

const reference_table::entry* reference_table::find(const uri& id) const {
  auto i = entries_.find(id);
  return i == entries_.end() ? nullptr : &i->second;
}

uint64_t reference_table::pinned_objects() const noexcept {
  uint64_t n = 0;
  for (auto& [id, e] : entries_)
    if (e.pins > 0)
      ++n;
  return n;
}

} // namespace objstore
