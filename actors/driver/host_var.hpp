#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>

namespace objstore {

/// Collects the (rank, URI) pairs of dropped handles for the driver actor,
/// which sends them to the workers in batches. Thread-safe: handles may die
/// on any thread.
class release_sink {
public:
  /// URIs after which the sink wakes the driver actor again.
  explicit release_sink(size_t wake_every = 8192) : wake_every_(wake_every) {}

  /// Queues one release. Wakes the driver actor when the sink is not armed
  /// (and arms it), and every `wake_every` queued releases: a burst of
  /// drops within one release delay costs the driver one wake-up, not one
  /// per handle.
  void push(uint32_t rank, std::string uri);

  /// Queues a release of an object created by incarnation `incarnation`
  /// of worker `rank`; dropped when that worker has restarted since (its
  /// objects are gone, and the URI means nothing to the new process).
  void push(uint32_t rank, std::string uri, uint32_t incarnation);

  /// How often the driver reconnected to a restarted worker `rank`.
  uint32_t incarnation(uint32_t rank);

  /// The driver reconnected to a restarted worker `rank`: handles made
  /// before are stale.
  void bump(uint32_t rank);

  /// Takes everything queued. With `disarm`, the next push wakes the
  /// driver again (the driver disarms when no flush of its own is due).
  std::vector<std::pair<uint32_t, std::string>> drain(bool disarm = true);

  /// Sets (or clears) the actor to wake.
  void attach(caf::actor driver);

  /// Handles currently alive (created minus destroyed).
  std::atomic<int64_t> live{0};

private:
  std::mutex mtx_;
  std::vector<std::pair<uint32_t, std::string>> queue_;
  std::vector<uint32_t> incarnations_;
  caf::actor driver_;
  size_t wake_every_;
  bool armed_ = false;
};

/// One driver-side handle on one object of one worker. Copies of a
/// `host_var` share it; the last owner's destructor queues the release.
class remote_ref {
public:
  remote_ref(uint32_t rank, std::string uri,
             std::shared_ptr<release_sink> sink);
  remote_ref(const remote_ref&) = delete;
  remote_ref& operator=(const remote_ref&) = delete;
  ~remote_ref();

  uint32_t rank() const noexcept { return rank_; }
  const std::string& uri() const noexcept { return uri_; }

  /// Whether the object belongs to an earlier incarnation of its worker
  /// (the worker restarted and the driver reconnected since): it is lost.
  /// Handles that are not reference counted (fs://) never go stale.
  bool stale() const;

private:
  uint32_t rank_;
  uint32_t incarnation_ = 0;
  std::string uri_;
  std::shared_ptr<release_sink> sink_; // null: not reference counted (fs://)
};

/// `object_lost` naming `ref`'s URI and rank if it is stale (its worker
/// restarted since it was made), else no error.
caf::error stale_error(const remote_ref& ref);

/// MPLang's DriverVar: one optional URI per party. Copyable; copies share
/// the per-(rank, URI) counts, so the object lives on its worker until the
/// last copy is gone (deterministic RAII, no finaliser).
class host_var {
public:
  host_var() = default;
  explicit host_var(size_t world_size) : parts_(world_size) {}

  size_t world_size() const noexcept { return parts_.size(); }

  /// Whether party `rank` holds a value.
  bool has(uint32_t rank) const noexcept {
    return rank < parts_.size() && parts_[rank] != nullptr;
  }

  /// The URI on party `rank`, if any.
  std::optional<std::string> uri(uint32_t rank) const;

  /// The parties holding a value, ascending.
  std::vector<uint32_t> parties() const;

  /// The handle of party `rank` (null if none).
  const std::shared_ptr<const remote_ref>& part(uint32_t rank) const {
    return parts_.at(rank);
  }

  void set(uint32_t rank, std::shared_ptr<const remote_ref> ref) {
    parts_.at(rank) = std::move(ref);
  }

  /// Drops this copy's handles now (as if destroyed).
  void reset() { parts_.assign(parts_.size(), nullptr); }

private:
  std::vector<std::shared_ptr<const remote_ref>> parts_;
};

} // namespace objstore
