// Python bindings of the driver side: HostVar, Driver, PendingRun,
// LocalCluster and connect. Every blocking call runs without the GIL.

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "actors/driver/simp.hpp"
#include "python/src/bindings.hpp"
#include "python/src/records.hpp"
#include "python/src/session.hpp"
#include "python/src/values.hpp"

namespace py = pybind11;

namespace objstore::python {

namespace {

using session_ptr = std::shared_ptr<session>;

/// Longest wait of a call given `None` (a year: CAF adds it to now).
constexpr auto forever = std::chrono::hours{24 * 365};

caf::timespan seconds(double x) {
  if (x < 0)
    raise(errc::invalid_argument, "a timeout must not be negative");
  return std::chrono::duration_cast<caf::timespan>(
      std::chrono::duration<double>{x});
}

caf::timespan seconds_or_forever(const std::optional<double>& x) {
  return x ? seconds(*x) : caf::timespan{forever};
}

driver_actor_options make_options(double timeout, std::string client,
                                  std::string operator_secret,
                                  std::optional<double> transfer_timeout) {
  driver_actor_options opts;
  opts.timeout = seconds(timeout);
  if (transfer_timeout)
    opts.transfer_timeout = seconds(*transfer_timeout);
  opts.client = std::move(client);
  opts.operator_secret = std::move(operator_secret);
  return opts;
}

/// The rank to fetch `x` from: `rank`, or the one party holding it.
uint32_t rank_to_fetch(const host_var& x, std::optional<uint32_t> rank) {
  if (rank)
    return *rank;
  auto parties = x.parties();
  if (parties.size() == 1)
    return parties.front();
  raise(errc::invalid_argument, "the value is held by "
                                    + std::to_string(parties.size())
                                    + " parties: name the rank to fetch from");
}

std::vector<uint32_t> parties_or_all(std::optional<std::vector<uint32_t>> xs) {
  return xs ? std::move(*xs) : std::vector<uint32_t>{};
}

/// A Python `PendingRun`: keeps its driver alive and keeps the outcome, so
/// `result()` may be called again, from any thread (like a future).
class run_handle {
public:
  run_handle(session_ptr owner, pending_run run)
      : owner_(std::move(owner)), run_(std::move(run)) {
    owner_->run_started();
  }

  run_handle(const run_handle&) = delete;
  run_handle& operator=(const run_handle&) = delete;

  ~run_handle() {
    run_.reset(); // tells the driver actor to forget the run
    owner_->run_ended();
  }

  uint64_t id() const { return run_->id(); }

  bool wait(std::optional<double> timeout) {
    if (taken_)
      return true;
    auto span = seconds_or_forever(timeout);
    py::gil_scoped_release nogil;
    return run_->wait_for(span);
  }

  py::object result(std::optional<double> timeout) {
    if (timeout && !wait(timeout))
      raise(errc::timeout, "run " + std::to_string(id())
                               + " did not finish within the timeout");
    {
      py::gil_scoped_release nogil;
      std::lock_guard guard{mtx_}; // one `get`; other callers wait for it
      if (!outcome_) {
        outcome_ = run_->get();
        taken_ = true;
      }
    }
    if (!*outcome_)
      raise(outcome_->error());
    return py::cast(**outcome_); // copies share the holds
  }

  size_t cancel() {
    if (taken_)
      return 0;
    py::gil_scoped_release nogil;
    return run_->cancel();
  }

  pending_run& run() { return *run_; }

  const session_ptr& owner() const { return owner_; }

private:
  session_ptr owner_;
  std::optional<pending_run> run_;
  std::mutex mtx_;
  /// The outputs or the error, once taken (under `mtx_`).
  std::optional<caf::expected<std::vector<host_var>>> outcome_;
  std::atomic<bool> taken_{false};
};

std::string repr(const host_var& x) {
  std::string out = "<objstore.HostVar";
  for (uint32_t r = 0; r < x.world_size(); ++r)
    out += (r ? ", " : " ") + std::to_string(r) + ": " + x.uri(r).value_or("-");
  return out + ">";
}

void register_host_var(py::module_& m) {
  py::class_<host_var>(
      m, "HostVar",
      "MPLang's DriverVar: one optional URI per party. The objects are "
      "released on the workers when the last reference to them is gone (or "
      "at release()).")
      .def_property_readonly("world_size", &host_var::world_size)
      .def_property_readonly("parties", &host_var::parties,
                             "The ranks holding a part, ascending.")
      .def_property_readonly("uris",
                             [](const host_var& x) {
                               std::vector<std::optional<std::string>> out;
                               for (uint32_t r = 0; r < x.world_size(); ++r)
                                 out.push_back(x.uri(r));
                               return out;
                             })
      .def("uri", &host_var::uri, py::arg("rank"))
      .def("has", &host_var::has, py::arg("rank"))
      .def(
          "part",
          [](const host_var& x, uint32_t rank) {
            if (!x.has(rank))
              raise(errc::not_found,
                    "no part on rank " + std::to_string(rank) + ": " + repr(x));
            host_var out{x.world_size()};
            out.set(rank, x.part(rank));
            return out;
          },
          py::arg("rank"), "A HostVar of only party `rank`'s part (shared).")
      .def("release", &host_var::reset,
           "Drops this reference's parts now (the objects go once no other "
           "HostVar shares them).")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__",
           [](host_var& x, py::args) {
             x.reset();
             return false;
           })
      .def("__repr__", &repr);
}

void register_run(py::module_& m) {
  py::class_<run_handle, std::shared_ptr<run_handle>>(
      m, "PendingRun", "A run in flight, from Driver.submit.")
      .def_property_readonly("id", &run_handle::id)
      .def("wait", &run_handle::wait, py::arg("timeout") = py::none(),
           "Waits up to `timeout` seconds (None: until done); True once the "
           "run finished, ok or failed.")
      .def("done", [](run_handle& r) { return r.wait(0.0); })
      .def("result", &run_handle::result, py::arg("timeout") = py::none(),
           "The outputs (one HostVar per graph output), or raises the "
           "run's error; `Timeout` if not finished within `timeout`.")
      .def("cancel", &run_handle::cancel,
           "Stops the run on every party still running it; returns how many "
           "were. A finished run keeps its outputs.");
}

/// Driver.wait: the runs' positions once `num_returns` finished.
py::tuple wait_runs(const session_ptr& s,
                    const std::vector<std::shared_ptr<run_handle>>& runs,
                    size_t num_returns, std::optional<double> timeout) {
  std::vector<pending_run*> ptrs;
  for (auto& r : runs) {
    if (r->owner() != s)
      raise(errc::invalid_argument, "a run of another driver");
    ptrs.push_back(&r->run());
  }
  auto span = seconds_or_forever(timeout);
  auto done = s->with_driver([&](driver& d) {
    return d.wait_any(ptrs, std::min(num_returns, runs.size()), span);
  });
  py::list ready;
  py::list rest;
  size_t next = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (next < done.size() && done[next] == i) {
      ready.append(runs[i]);
      ++next;
    } else {
      rest.append(runs[i]);
    }
  }
  return py::make_tuple(ready, rest);
}

void register_session(py::module_& m) {
  py::class_<session, session_ptr>(
      m, "Driver", py::dynamic_attr(),
      "A connected driver (objstore.connect, objstore.local_cluster). "
      "Thread-safe; a context manager that closes it.")
      .def_property_readonly("world_size", &session::world_size)
      .def_property_readonly("closed", &session::closed)
      .def(
          "put",
          [](session& s, uint32_t rank, py::handle x,
             std::optional<std::string> target) {
            auto v = to_value(x);
            return s.with_driver([&](driver& d) {
              return unwrap(target ? d.put(rank, v, *target) : d.put(rank, v));
            });
          },
          py::arg("rank"), py::arg("x"), py::arg("target") = py::none(),
          "Stores `x` (numpy array, dict of 1-D arrays, bytes) on party "
          "`rank`: a new mem:// object, or the fs:// URI `target`.")
      .def(
          "fetch",
          [](session& s, const host_var& x, std::optional<uint32_t> rank) {
            auto r = rank_to_fetch(x, rank);
            auto v = s.with_driver(
                [&](driver& d) { return unwrap(d.fetch(r, x)); });
            return from_value(std::move(v));
          },
          py::arg("x"), py::arg("rank") = py::none(),
          "Party `rank`'s value of `x` (default: its only party), under the "
          "worker's fetch policy: a read-only numpy array viewing the fetched "
          "buffer, a dict of them for a table, bytes.")
      .def(
          "run",
          [](session& s, const graph& g, std::vector<host_var> inputs,
             std::optional<std::vector<uint32_t>> parties) {
            return s.with_driver([&](driver& d) {
              return unwrap(
                  d.run(g, inputs, parties_or_all(std::move(parties))));
            });
          },
          py::arg("graph"), py::arg("inputs") = std::vector<host_var>{},
          py::arg("parties") = py::none(),
          "Runs `graph` on `parties` (default: every party holding all "
          "inputs); one HostVar per graph output.")
      .def(
          "submit",
          [](session_ptr s, const graph& g, std::vector<host_var> inputs,
             std::optional<std::vector<uint32_t>> parties) {
            auto run = s->with_driver([&](driver& d) {
              return d.submit(g, inputs, parties_or_all(std::move(parties)));
            });
            return std::make_shared<run_handle>(s, std::move(run));
          },
          py::arg("graph"), py::arg("inputs") = std::vector<host_var>{},
          py::arg("parties") = py::none(), "Like run, without waiting.")
      .def("wait", &wait_runs, py::arg("runs"), py::arg("num_returns") = 1,
           py::arg("timeout") = py::none(),
           "Waits until `num_returns` of `runs` finished or `timeout` "
           "passed; returns (finished, unfinished) lists (like ray.wait).")
      .def(
          "run_simp",
          [](session& s, const graph& g, std::vector<host_var> inputs) {
            return s.with_driver(
                [&](driver& d) { return unwrap(d.run_simp(g, inputs)); });
          },
          py::arg("graph"), py::arg("inputs") = std::vector<host_var>{},
          "Interprets a SIMP program (pcall_static, converge, shuffle, ...).")
      .def(
          "transfer",
          [](session& s, const host_var& x, uint32_t src, uint32_t dst,
             std::optional<std::string> target) {
            return s.with_driver([&](driver& d) {
              return unwrap(target ? d.transfer(x, src, dst, *target)
                                   : d.transfer(x, src, dst));
            });
          },
          py::arg("x"), py::arg("src"), py::arg("dst"),
          py::arg("target") = py::none(),
          "Moves party `src`'s value of `x` to party `dst`, worker to worker.")
      .def(
          "shuffle",
          [](session& s, const host_var& x, std::vector<int64_t> routing) {
            return s.with_driver(
                [&](driver& d) { return unwrap(d.shuffle(x, routing)); });
          },
          py::arg("x"), py::arg("routing"),
          "routing[target] = source party (-1: none).")
      .def(
          "shuffle_by_key",
          [](session& s, const host_var& x, std::string key) {
            return s.with_driver(
                [&](driver& d) { return unwrap(d.shuffle_by_key(x, key)); });
          },
          py::arg("x"), py::arg("key"))
      .def(
          "erase",
          [](session& s, const host_var& x, uint32_t rank) {
            auto err
                = s.with_driver([&](driver& d) { return d.erase(rank, x); });
            if (err)
              raise(err);
          },
          py::arg("x"), py::arg("rank"))
      .def(
          "alive",
          [](session& s, const host_var& x) {
            return s.with_driver([&](driver& d) { return d.alive(x); });
          },
          py::arg("x"))
      .def(
          "adopt",
          [](session& s, uint32_t rank, std::string uri) {
            return s.with_driver([&](driver& d) {
              host_var out{d.world_size()};
              out.set(rank, d.adopt(rank, std::move(uri)));
              return out;
            });
          },
          py::arg("rank"), py::arg("uri"),
          "Takes over a hold on `uri` that a worker gave this driver's "
          "session (released like any handle).")
      .def("stats",
           [](session& s) {
             return to_dict(
                 s.with_driver([](driver& d) { return unwrap(d.stats()); }));
           })
      .def(
          "worker_stats",
          [](session& s, uint32_t rank) {
            return to_dict(s.with_driver(
                [&](driver& d) { return unwrap(d.worker_stats_of(rank)); }));
          },
          py::arg("rank"))
      .def(
          "objects",
          [](session& s, uint32_t rank) {
            auto xs = s.with_driver(
                [&](driver& d) { return unwrap(d.objects(rank)); });
            py::list out;
            for (auto& x : xs)
              out.append(to_dict(x));
            return out;
          },
          py::arg("rank"))
      .def("flush",
           [](session& s) {
             return s.with_driver([](driver& d) { return unwrap(d.flush()); });
           })
      .def("sessions",
           [](session& s) {
             auto xs = s.with_driver([](driver& d) { return d.sessions(); });
             py::list out;
             for (auto& x : xs)
               out.append(to_dict(x));
             return out;
           })
      .def("close", &session::close,
           "Closes the driver's sessions (the workers free its objects). "
           "Idempotent.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](session& s, py::args) {
        s.close();
        return false;
      });
}

void register_cluster(py::module_& m) {
  py::class_<cluster_runtime, std::shared_ptr<cluster_runtime>>(
      m, "LocalCluster",
      "Worker nodes in this process on loopback ports (tests, examples).")
      .def(
          py::init([](size_t workers, std::string policy, uint64_t memory_limit,
                      uint64_t max_object_size, size_t task_threads) {
            local_cluster_options opts;
            opts.workers = workers;
            opts.policy = unwrap(parse_fetch_policy(policy));
            opts.memory_limit = memory_limit;
            opts.max_object_size = max_object_size;
            if (task_threads > 0)
              opts.tasks.threads = task_threads;
            auto result = std::make_shared<cluster_runtime>();
            py::gil_scoped_release nogil;
            result->cluster = unwrap(local_cluster::start(opts));
            return result;
          }),
          py::arg("workers") = 3, py::arg("fetch_policy") = "allow",
          py::arg("memory_limit") = 0, py::arg("max_object_size") = 0,
          py::arg("task_threads") = 0)
      .def_property_readonly("endpoints",
                             [](cluster_runtime& c) {
                               if (!c.cluster)
                                 raise(errc::cancelled, "the cluster stopped");
                               std::string out;
                               for (auto& ep : c.cluster->spec().workers)
                                 out += (out.empty() ? "" : ",") + ep.str();
                               return out;
                             })
      .def_property_readonly("operator_secret",
                             [](cluster_runtime& c) {
                               if (!c.cluster)
                                 raise(errc::cancelled, "the cluster stopped");
                               return c.cluster->operator_secret();
                             })
      .def(
          "connect",
          [](cluster_runtime& c, double timeout, std::string client) {
            if (!c.cluster)
              raise(errc::cancelled, "the cluster stopped");
            auto s = session::connect(
                c.cluster, make_options(timeout, std::move(client), "", {}));
            std::lock_guard guard{c.mtx};
            c.sessions.push_back(s);
            return s;
          },
          py::arg("timeout") = 30.0, py::arg("client") = "objstore python",
          "A new driver with operator access (a new session on every node).")
      .def(
          "kill",
          [](cluster_runtime& c, uint32_t rank) {
            if (!c.cluster)
              raise(errc::cancelled, "the cluster stopped");
            py::gil_scoped_release nogil;
            c.cluster->kill(rank);
          },
          py::arg("rank"), "Stops node `rank` abruptly.")
      .def(
          "alive",
          [](cluster_runtime& c, uint32_t rank) {
            return c.cluster && c.cluster->alive(rank);
          },
          py::arg("rank"))
      .def("stop", [](cluster_runtime& c) {
        // Closes the drivers it made; the nodes stop when the last of them
        // (and of their pending runs) is gone.
        std::vector<session_ptr> open;
        {
          std::lock_guard guard{c.mtx};
          for (auto& w : c.sessions)
            if (auto s = w.lock())
              open.push_back(std::move(s));
          c.sessions.clear();
        }
        for (auto& s : open)
          s->close();
        auto last = std::move(c.cluster);
        py::gil_scoped_release nogil;
        last.reset();
      });
}

} // namespace

void register_driver(py::module_& m) {
  register_host_var(m);
  register_run(m);
  register_session(m);
  register_cluster(m);
  m.def(
      "connect",
      [](const std::string& cluster, double timeout, std::string client,
         std::string operator_secret, std::optional<double> transfer_timeout) {
        auto spec = unwrap(cluster_spec::parse(cluster));
        return session::connect(spec, make_options(timeout, std::move(client),
                                                   std::move(operator_secret),
                                                   transfer_timeout));
      },
      py::arg("cluster"), py::arg("timeout") = 30.0,
      py::arg("client") = "objstore python", py::arg("operator_secret") = "",
      py::arg("transfer_timeout") = py::none(),
      "Connects to the workers \"host:port,host:port\" (rank = position); "
      "`timeout` (seconds) bounds every remote call.");
}

} // namespace objstore::python
