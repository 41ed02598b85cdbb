#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <pybind11/pybind11.h>

#include "actors/driver/driver.hpp"
#include "actors/testing/local_cluster.hpp"
#include "python/src/errors.hpp"

namespace objstore::python {

/// What one Python `Driver` owns: the blocking driver and what it runs on
/// (its own actor system from `connect`, or a local cluster's client
/// system). Handles (`host_var`) never point here: they only hold the
/// driver's release sink, which the driver detaches when it is destroyed,
/// so they may outlive everything. Pending runs do need the driver actor
/// and the system, so teardown waits for the last of them.
///
/// Thread-safe: every call runs without the GIL under a shared lock; `close`
/// fails calls in flight (`Cancelled`), then takes the lock exclusively.
class session {
public:
  /// Connects to the workers of `spec` from a new actor system.
  static std::shared_ptr<session> connect(const cluster_spec& spec,
                                          driver_actor_options opts);

  /// Connects to a local cluster through its client system.
  static std::shared_ptr<session>
  connect(std::shared_ptr<local_cluster> cluster, driver_actor_options opts);

  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session();

  /// Runs `f(driver&)` without the GIL (call with the GIL held); raises
  /// `Cancelled` when the driver is closed.
  template<class F>
  auto with_driver(F&& f) {
    pybind11::gil_scoped_release nogil;
    std::shared_lock guard{mtx_};
    if (closed_)
      raise(errc::cancelled, "the driver is closed");
    return f(*driver_);
  }

  /// Closes the driver's sessions on the workers (their objects are
  /// freed) and, once no pending run needs it, stops the driver and its
  /// actor system. Idempotent; call with the GIL held.
  void close();

  bool closed() const;

  size_t world_size() const noexcept { return world_size_; }

  /// A pending run started (it keeps the driver alive) or ended.
  void run_started() { ++pending_runs_; }
  void run_ended();

private:
  session() = default;

  /// Destroys the driver, then what it ran on. Needs `mtx_` exclusively,
  /// no GIL.
  void teardown();

  mutable std::shared_mutex mtx_;
  bool closed_ = false;
  std::atomic<int> pending_runs_{0};
  size_t world_size_ = 0;
  std::shared_ptr<local_cluster> cluster_;
  std::unique_ptr<caf::actor_system_config> cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::unique_ptr<driver> driver_;
};

/// A local cluster shared by the Python `LocalCluster` object and the
/// drivers it connected (it stops when the last of them is gone).
struct cluster_runtime {
  ~cluster_runtime() {
    if (PyGILState_Check()) { // stopping the nodes joins their threads
      pybind11::gil_scoped_release nogil;
      cluster.reset();
    }
  }

  std::shared_ptr<local_cluster> cluster;
  std::mutex mtx;
  std::vector<std::weak_ptr<session>> sessions;
};

} // namespace objstore::python
