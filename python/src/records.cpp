#include "python/src/records.hpp"

#include <string>

namespace py = pybind11;

namespace objstore::python {

namespace {

py::dict to_dict(const spill_stats& x) {
  py::dict d;
  d["spilled_objects"] = x.spilled_objects;
  d["spilled_bytes"] = x.spilled_bytes;
  d["spill_file_bytes"] = x.spill_file_bytes;
  d["spills"] = x.spills;
  d["spilled_bytes_total"] = x.spilled_bytes_total;
  d["spill_ns"] = x.spill_ns;
  d["respills"] = x.respills;
  d["restores"] = x.restores;
  d["restored_bytes_total"] = x.restored_bytes_total;
  d["restore_ns"] = x.restore_ns;
  d["spill_failures"] = x.spill_failures;
  d["restore_failures"] = x.restore_failures;
  d["leftovers_removed"] = x.leftovers_removed;
  return d;
}

} // namespace

py::dict to_dict(const driver_stats& x) {
  py::dict d;
  d["bytes_sent"] = x.bytes_sent;
  d["bytes_received"] = x.bytes_received;
  d["requests"] = x.requests;
  d["release_msgs"] = x.release_msgs;
  d["releases"] = x.releases;
  d["live_handles"] = x.live_handles;
  d["data_bytes_sent"] = x.data_bytes_sent;
  d["data_bytes_received"] = x.data_bytes_received;
  d["streamed_puts"] = x.streamed_puts;
  d["streamed_fetches"] = x.streamed_fetches;
  return d;
}

py::dict to_dict(const worker_stats& x) {
  py::dict d;
  d["rank"] = x.rank;
  d["mem_objects"] = x.mem_objects;
  d["mem_bytes"] = x.mem_bytes;
  d["fs_objects"] = x.fs_objects;
  d["fs_bytes"] = x.fs_bytes;
  d["sessions"] = x.sessions;
  d["tasks_run"] = x.tasks_run;
  d["tasks_failed"] = x.tasks_failed;
  d["tasks_running"] = x.tasks_running;
  d["tasks_queued"] = x.tasks_queued;
  d["task_threads"] = x.task_threads;
  d["task_threads_busy"] = x.task_threads_busy;
  d["fetches"] = x.fetches;
  d["fetches_denied"] = x.fetches_denied;
  d["release_msgs"] = x.release_msgs;
  d["releases"] = x.releases;
  d["unknown_releases"] = x.unknown_releases;
  d["pinned_objects"] = x.pinned_objects;
  d["transfers_in"] = x.transfers_in;
  d["transfers_out"] = x.transfers_out;
  d["transfers_failed"] = x.transfers_failed;
  d["transfer_bytes_in"] = x.transfer_bytes_in;
  d["transfer_bytes_out"] = x.transfer_bytes_out;
  d["refused_requests"] = x.refused_requests;
  d["node_wide"] = x.node_wide;
  d["spill"] = to_dict(x.spill);
  return d;
}

py::dict to_dict(const object_record& x) {
  py::dict d;
  d["uri"] = x.uri;
  d["size_bytes"] = x.size_bytes;
  py::list holders;
  for (auto& h : x.holders)
    holders.append(py::make_tuple(h.session, h.count));
  d["holders"] = holders;
  d["pins"] = x.pins;
  d["age_ms"] = x.age_ms;
  d["revealed"] = x.revealed;
  d["spilled"] = x.spilled;
  return d;
}

py::dict to_dict(const session_info& x) {
  py::dict d;
  d["rank"] = x.rank;
  d["node_id"] = x.node_id;
  d["fetch_policy"] = std::string{to_string(x.policy)};
  d["operator_access"] = x.operator_access;
  return d;
}

} // namespace objstore::python
