#include "actors/metrics/node_exporter.hpp"

#include <caf/scoped_actor.hpp>

#include "actors/metrics/exposition.hpp"

namespace objstore {

namespace {

double num(uint64_t x) {
  return static_cast<double>(x);
}

void write_objects(exposition& out, const worker_metrics& m) {
  out.family("objstore_objects", "gauge",
             "Objects in the node's store by scheme and state (mem: held, "
             "pinned by a task or transfer, or spilled to disk).");
  for (auto& g : m.objects)
    out.sample("objstore_objects", {{"scheme", g.scheme}, {"state", g.state}},
               num(g.objects));
  out.family("objstore_object_bytes", "gauge",
             "Payload bytes of the objects in objstore_objects.");
  for (auto& g : m.objects)
    out.sample("objstore_object_bytes",
               {{"scheme", g.scheme}, {"state", g.state}}, num(g.bytes));
}

void write_tasks(exposition& out, const worker_metrics& m,
                 const task_executor* executor) {
  auto& s = m.stats;
  auto queued = s.tasks_queued;
  auto running = s.tasks_running > queued ? s.tasks_running - queued : 0;
  out.family("objstore_tasks", "gauge",
             "Accepted tasks not finished: running on a task thread or "
             "queued for one.");
  out.sample("objstore_tasks", {{"state", "running"}}, num(running));
  out.sample("objstore_tasks", {{"state", "queued"}}, num(queued));
  out.family("objstore_tasks_total", "counter",
             "Finished tasks by outcome (a cancelled task is failed).");
  out.sample("objstore_tasks_total", {{"outcome", "succeeded"}},
             num(s.tasks_run));
  out.sample("objstore_tasks_total", {{"outcome", "failed"}},
             num(s.tasks_failed));
  out.histogram("objstore_task_duration_seconds",
                "Tasks from acceptance to their end, either outcome.",
                m.task_seconds);
  if (executor == nullptr)
    return;
  auto pool = executor->stats();
  out.single("objstore_executor_threads", "gauge", "The node's task threads.",
             num(pool.threads));
  out.single("objstore_executor_busy_threads", "gauge",
             "Task threads running a task now.", num(pool.busy));
  out.single("objstore_executor_queue_length", "gauge",
             "Tasks waiting for a task thread.", num(pool.queued));
  out.single("objstore_executor_refused_total", "counter",
             "Tasks refused because the queue was full.", num(pool.refused));
}

void write_data_plane(exposition& out, const worker_metrics& m,
                      data_plane* data) {
  auto& s = m.stats;
  out.family("objstore_transfers_total", "counter",
             "Worker-to-worker transfers and data-plane pulls by direction.");
  out.sample("objstore_transfers_total", {{"direction", "in"}},
             num(s.transfers_in));
  out.sample("objstore_transfers_total", {{"direction", "out"}},
             num(s.transfers_out));
  out.single("objstore_transfers_failed_total", "counter",
             "Transfers that failed, either direction.",
             num(s.transfers_failed));
  out.family("objstore_transfer_bytes_total", "counter",
             "Payload bytes of finished transfers by direction.");
  out.sample("objstore_transfer_bytes_total", {{"direction", "in"}},
             num(s.transfer_bytes_in));
  out.sample("objstore_transfer_bytes_total", {{"direction", "out"}},
             num(s.transfer_bytes_out));
  out.histogram("objstore_transfer_duration_seconds",
                "Outgoing transfers from push to the target's reply.",
                m.transfer_seconds);
  if (data == nullptr)
    return;
  auto& c = data->counters();
  auto load = data->load();
  out.family("objstore_data_plane_connections", "gauge",
             "Inbound data-plane connections: in handshake or hello, or "
             "carrying a transfer.");
  out.sample("objstore_data_plane_connections", {{"state", "handshake"}},
             num(load.pending_connections));
  out.sample("objstore_data_plane_connections", {{"state", "transfer"}},
             num(load.incoming));
  out.family("objstore_data_plane_refusals_total", "counter",
             "Data-plane connections and transfers refused or dropped, by "
             "reason.");
  auto refusal = [&](const char* reason, const std::atomic<uint64_t>& x) {
    out.sample("objstore_data_plane_refusals_total", {{"reason", reason}},
               num(x.load()));
  };
  refusal("deadline", c.deadline_drops);
  refusal("evicted", c.evicted);
  refusal("no_slot", c.refused_in);
  refusal("memory", c.refused_memory);
  refusal("tokens", c.refused_tokens);
  refusal("send_queue", c.refused_sends);
  refusal("rejected_chunk", c.rejected_chunks);
}

void write_requests(exposition& out, const worker_metrics& m) {
  auto& s = m.stats;
  out.single("objstore_sessions", "gauge", "Open driver sessions.",
             num(s.sessions));
  out.family("objstore_fetches_total", "counter",
             "Fetches by drivers, by the fetch policy's decision.");
  auto denied = s.fetches_denied;
  out.sample("objstore_fetches_total", {{"outcome", "allowed"}},
             num(s.fetches > denied ? s.fetches - denied : 0));
  out.sample("objstore_fetches_total", {{"outcome", "denied"}}, num(denied));
  out.family("objstore_client_bytes_total", "counter",
             "Payload bytes drivers put (in) and fetched (out).");
  out.sample("objstore_client_bytes_total", {{"direction", "in"}},
             num(m.put_bytes));
  out.sample("objstore_client_bytes_total", {{"direction", "out"}},
             num(m.fetch_bytes));
  out.family("objstore_releases_total", "counter",
             "Released holds: of objects the session held (known) or not "
             "(unknown or excess).");
  out.sample("objstore_releases_total", {{"kind", "known"}}, num(s.releases));
  out.sample("objstore_releases_total", {{"kind", "unknown"}},
             num(s.unknown_releases));
  out.single("objstore_release_messages_total", "counter",
             "Release batches received.", num(s.release_msgs));
  out.single("objstore_refused_requests_total", "counter",
             "Requests refused for a wrong or unknown session key.",
             num(s.refused_requests));
}

void write_spill(exposition& out, const worker_metrics& m) {
  auto& sp = m.stats.spill;
  out.family("objstore_spill_bytes_total", "counter",
             "Bytes spilled to disk (out) and restored from it (in).");
  out.sample("objstore_spill_bytes_total", {{"direction", "out"}},
             num(sp.spilled_bytes_total));
  out.sample("objstore_spill_bytes_total", {{"direction", "in"}},
             num(sp.restored_bytes_total));
  out.family("objstore_spill_failures_total", "counter",
             "Spills and restores that failed.");
  out.sample("objstore_spill_failures_total", {{"op", "spill"}},
             num(sp.spill_failures));
  out.sample("objstore_spill_failures_total", {{"op", "restore"}},
             num(sp.restore_failures));
}

} // namespace

std::string render_node_metrics(const worker_metrics& m, bool fresh,
                                data_plane* data,
                                const task_executor* executor) {
  exposition out;
  out.family("objstore_node_info", "gauge",
             "Always 1; labels name the worker.");
  out.sample("objstore_node_info", {{"rank", std::to_string(m.stats.rank)}}, 1);
  out.single("objstore_metrics_fresh", "gauge",
             "1 when the worker answered this scrape; 0 when it was busy "
             "past the timeout and its counters are the last answer.",
             fresh ? 1 : 0);
  write_objects(out, m);
  write_tasks(out, m, executor);
  write_data_plane(out, m, data);
  write_requests(out, m);
  write_spill(out, m);
  return out.text();
}

node_exporter::node_exporter(caf::actor_system& sys, node_handles node,
                             std::chrono::milliseconds worker_timeout)
    : sys_(sys), node_(std::move(node)), worker_timeout_(worker_timeout) {
  // nop
}

caf::expected<std::unique_ptr<node_exporter>>
node_exporter::start(caf::actor_system& sys, const node_handles& node,
                     const std::string& host, uint16_t port,
                     std::chrono::milliseconds worker_timeout) {
  std::unique_ptr<node_exporter> x{
      new node_exporter(sys, node, worker_timeout)};
  auto* self = x.get();
  auto server
      = metrics_server::start(host, port, [self] { return self->scrape(); });
  if (!server)
    return std::move(server.error());
  x->server_ = std::move(*server);
  return x;
}

std::string node_exporter::scrape() {
  bool fresh = false;
  worker_metrics m;
  {
    caf::scoped_actor self{sys_};
    self->request(node_.worker, worker_timeout_, metrics_atom::value)
        .receive(
            [&](worker_metrics& x) {
              m = std::move(x);
              fresh = true;
            },
            [&](caf::error&) {
              // nop: the last answer below
            });
  }
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (fresh)
      last_ = m;
    else
      m = last_;
  }
  return render_node_metrics(m, fresh, node_.data.get(), node_.executor.get());
}

} // namespace objstore
