#include "python/src/session.hpp"

#include "actors/system.hpp"

namespace py = pybind11;

namespace objstore::python {

std::shared_ptr<session> session::connect(const cluster_spec& spec,
                                          driver_actor_options opts) {
  std::shared_ptr<session> result{new session};
  py::gil_scoped_release nogil;
  result->cfg_ = std::make_unique<caf::actor_system_config>();
  configure_system(*result->cfg_, 2);
  result->sys_ = std::make_unique<caf::actor_system>(*result->cfg_);
  auto d = driver::connect(*result->sys_, spec, std::move(opts));
  if (!d)
    raise(d.error()); // ~session stops the system
  result->driver_ = std::move(*d);
  result->world_size_ = result->driver_->world_size();
  return result;
}

std::shared_ptr<session>
session::connect(std::shared_ptr<local_cluster> cluster,
                 driver_actor_options opts) {
  std::shared_ptr<session> result{new session};
  py::gil_scoped_release nogil;
  auto d = cluster->connect(std::move(opts));
  if (!d)
    raise(d.error());
  result->cluster_ = std::move(cluster);
  result->driver_ = std::move(*d);
  result->world_size_ = result->driver_->world_size();
  return result;
}

session::~session() {
  if (PyGILState_Check()) {
    py::gil_scoped_release nogil;
    teardown();
  } else {
    teardown();
  }
}

void session::teardown() {
  driver_.reset(); // closes it, detaches the handles' release sink
  sys_.reset();
  cfg_.reset();
  cluster_.reset();
}

void session::close() {
  py::gil_scoped_release nogil;
  {
    std::shared_lock guard{mtx_};
    if (driver_)
      driver_->close(); // fails calls in flight, so the lock frees soon
  }
  std::unique_lock guard{mtx_};
  closed_ = true;
  if (pending_runs_ == 0)
    teardown();
}

bool session::closed() const {
  std::shared_lock guard{mtx_};
  return closed_;
}

void session::run_ended() {
  if (--pending_runs_ == 0 && closed()) {
    py::gil_scoped_release nogil;
    std::unique_lock guard{mtx_};
    if (pending_runs_ == 0)
      teardown();
  }
}

} // namespace objstore::python
