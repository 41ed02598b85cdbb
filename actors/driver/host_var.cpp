#include "actors/driver/host_var.hpp"

#include <caf/send.hpp>

#include "messages/atoms.hpp"
#include "store/error.hpp"

namespace objstore {

void release_sink::push(uint32_t rank, std::string uri) {
  push(rank, std::move(uri), incarnation(rank));
}

uint32_t release_sink::incarnation(uint32_t rank) {
  std::lock_guard guard{mtx_};
  return rank < incarnations_.size() ? incarnations_[rank] : 0;
}

void release_sink::bump(uint32_t rank) {
  std::lock_guard guard{mtx_};
  if (rank >= incarnations_.size())
    incarnations_.resize(rank + 1);
  ++incarnations_[rank];
}

void release_sink::push(uint32_t rank, std::string uri, uint32_t incarnation) {
  caf::actor wake;
  {
    std::lock_guard guard{mtx_};
    auto current = rank < incarnations_.size() ? incarnations_[rank] : 0;
    if (incarnation != current)
      return; // the worker restarted: nothing to release there
    queue_.emplace_back(rank, std::move(uri));
    if (!armed_ || queue_.size() % wake_every_ == 0) {
      armed_ = true;
      wake = driver_;
    }
  }
  if (wake)
    caf::anon_send(wake, release_atom::value);
}

std::vector<std::pair<uint32_t, std::string>> release_sink::drain(bool disarm) {
  std::lock_guard guard{mtx_};
  if (disarm)
    armed_ = false;
  return std::exchange(queue_, {});
}

void release_sink::attach(caf::actor driver) {
  std::lock_guard guard{mtx_};
  driver_ = std::move(driver);
}

remote_ref::remote_ref(uint32_t rank, std::string uri,
                       std::shared_ptr<release_sink> sink)
    : rank_(rank), uri_(std::move(uri)), sink_(std::move(sink)) {
  if (sink_) {
    incarnation_ = sink_->incarnation(rank_);
    sink_->live.fetch_add(1, std::memory_order_relaxed);
  }
}

bool remote_ref::stale() const {
  return sink_ && sink_->incarnation(rank_) != incarnation_;
}

remote_ref::~remote_ref() {
  if (sink_) {
    sink_->live.fetch_sub(1, std::memory_order_relaxed);
    sink_->push(rank_, std::move(uri_), incarnation_);
  }
}

caf::error stale_error(const remote_ref& ref) {
  if (!ref.stale())
    return {};
  return make_error(errc::object_lost,
                    "rank " + std::to_string(ref.rank()) + ": " + ref.uri()
                        + " was lost when its worker restarted");
}

std::optional<std::string> host_var::uri(uint32_t rank) const {
  if (!has(rank))
    return std::nullopt;
  return parts_[rank]->uri();
}

std::vector<uint32_t> host_var::parties() const {
  std::vector<uint32_t> result;
  for (uint32_t i = 0; i < parts_.size(); ++i)
    if (parts_[i])
      result.push_back(i);
  return result;
}

} // namespace objstore
