#include "actors/testing/local_cluster.hpp"

#include <cstdlib>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include "actors/worker/endpoint.hpp"
#include "actors/worker/secret.hpp"
#include "store/error.hpp"

namespace objstore {

caf::expected<std::unique_ptr<local_cluster>>
local_cluster::start(local_cluster_options options) {
  std::unique_ptr<local_cluster> result{new local_cluster};
  result->options_ = options;
  result->operator_secret_ = random_secret(32);
  if (auto err = validate_tls(options.tls))
    return err;
  result->client_cfg_ = std::make_unique<caf::actor_system_config>();
  configure_system(*result->client_cfg_, 2);
  apply_tls(*result->client_cfg_, options.tls);
  result->client_sys_
      = std::make_unique<caf::actor_system>(*result->client_cfg_);
  if (options.fs_roots) {
    auto templ
        = (std::filesystem::temp_directory_path() / "objstore-cluster-XXXXXX")
              .string();
    if (::mkdtemp(templ.data()) == nullptr)
      return make_error(errc::io_error, "cannot create a temp directory");
    result->temp_dir_ = templ;
  }
  for (uint32_t rank = 0; rank < options.workers; ++rank) {
    auto rt = std::make_unique<node_runtime>();
    rt->cfg = std::make_unique<caf::actor_system_config>();
    configure_system(*rt->cfg);
    apply_tls(*rt->cfg, options.tls);
    rt->sys = std::make_unique<caf::actor_system>(*rt->cfg);
    node_options opts;
    opts.rank = rank;
    opts.policy = options.policy;
    opts.ops = options.ops;
    opts.store.memory_limit = options.memory_limit;
    opts.store.max_object_size = options.max_object_size;
    opts.store.spill_dir = options.spill_dir;
    opts.store.spill_threshold = options.spill_threshold;
    opts.max_graph_ops = options.max_graph_ops;
    opts.max_graph_bytes = options.max_graph_bytes;
    opts.operator_secret = result->operator_secret_;
    opts.principals = options.principals;
    opts.connections = options.connections;
    opts.tasks = options.tasks;
    opts.store.fs_shared_roots = options.shared_roots;
    opts.store.oss = options.oss;
    opts.data = options.data;
    opts.data.tls = options.tls;
    if (options.fs_roots) {
      rt->fs_root = result->temp_dir_ / ("node" + std::to_string(rank));
      opts.store.fs_roots = {rt->fs_root};
      opts.store.fs_sync = false; // throwaway test data
    }
    auto handles = spawn_node(*rt->sys, std::move(opts));
    if (!handles)
      return std::move(handles.error());
    rt->handles = std::move(*handles);
    auto port = publish_node(*rt->sys, rt->handles, 0, "127.0.0.1");
    if (!port)
      return make_error(errc::io_error, "cannot publish rank "
                                            + std::to_string(rank) + ": "
                                            + describe(port.error()));
    rt->port = *port;
    result->spec_.workers.push_back({"127.0.0.1", *port});
    result->nodes_.push_back(std::move(rt));
  }
  return result;
}

local_cluster::~local_cluster() {
  for (auto& rt : nodes_)
    if (!rt->killed)
      stop_node(rt->handles, caf::exit_reason::user_shutdown);
  // Node systems first (they wait for their actors), then the client.
  nodes_.clear();
  client_sys_.reset();
  if (!temp_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(temp_dir_, ec);
  }
}

caf::expected<std::unique_ptr<driver>> local_cluster::connect() {
  return connect(options_.driver);
}

caf::expected<std::unique_ptr<driver>>
local_cluster::connect(driver_actor_options opts) {
  if (options_.operator_drivers && opts.operator_secret.empty())
    opts.operator_secret = operator_secret_;
  return driver::connect(*client_sys_, spec_, opts);
}

void local_cluster::kill(uint32_t rank) {
  auto& rt = nodes_.at(rank);
  if (rt->killed)
    return;
  rt->killed = true;
  stop_node(rt->handles, caf::exit_reason::kill);
  unpublish_worker(*rt->sys, rt->handles.worker, rt->port);
}

store_stats local_cluster::store_stats_of(uint32_t rank) const {
  return nodes_.at(rank)->handles.objects->stats();
}

} // namespace objstore
