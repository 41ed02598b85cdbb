#include "actors/worker/node.hpp"

#include <csignal>
#include <mutex>

#include <caf/actor_pool.hpp>
#include <caf/all.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/dataplane/tls.hpp"
#include "actors/worker/endpoint.hpp"
#include "actors/worker/store_actor.hpp"
#include "actors/worker/transfer_actor.hpp"
#include "actors/worker/worker_actor.hpp"
#include "store/error.hpp"

namespace objstore {

namespace {

/// Store actors (threads) per node: blocking fs:// and oss:// calls at once.
constexpr size_t store_threads = 4;

/// Where the data plane's receiving threads hand values to: the worker,
/// known only after the data plane exists.
struct adopt_target {
  std::mutex mtx;
  caf::actor_system* sys = nullptr;
  worker_node_actor worker;
  std::chrono::milliseconds timeout{30'000};
};

adopt_fn make_adopt(std::shared_ptr<adopt_target> target) {
  return [target](const transfer_ticket& ticket,
                  value_ptr x) -> caf::expected<std::string> {
    caf::actor_system* sys;
    worker_node_actor worker;
    {
      std::lock_guard guard{target->mtx};
      sys = target->sys;
      worker = target->worker;
    }
    if (sys == nullptr || !worker)
      return make_error(errc::object_lost, "receiving node is stopping");
    caf::scoped_actor self{*sys};
    caf::expected<std::string> result{std::string{}};
    auto on_uri = [&](std::string& uri) {
      result = std::move(uri);
    };
    auto on_error = [&](caf::error& err) {
      result = std::move(err);
    };
    if (!ticket.target.empty()) // an fs:// target, written as the principal
      self->request(worker, target->timeout, adopt_atom::value, ticket.session,
                    ticket.target, ticket.principal, wire_value{std::move(x)})
          .receive(on_uri, on_error);
    else if (ticket.put)
      self->request(worker, target->timeout, adopt_atom::value, ticket.session,
                    wire_value{std::move(x)}, put_atom::value)
          .receive(on_uri, on_error);
    else
      self->request(worker, target->timeout, adopt_atom::value, ticket.session,
                    wire_value{std::move(x)})
          .receive(on_uri, on_error);
    return result;
  };
}

/// The store's background hook: spill and delete files on the node's spill
/// threads. Weak: the store owns the hook, and the threads may outlive it.
std::function<void()> background_spilling(std::weak_ptr<object_store> store,
                                          std::weak_ptr<task_executor> io) {
  return [store, io] {
    auto executor = io.lock();
    if (!executor)
      return;
    auto flag = std::make_shared<std::atomic<bool>>(false);
    executor->submit(
        0, flag,
        [store] {
          if (auto objects = store.lock())
            objects->run_background_work();
        },
        [] {
          // nop: stopping; the store removes its files when destroyed
        });
  };
}

} // namespace

void ignore_sigpipe() {
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0
      && current.sa_handler == SIG_DFL)
    std::signal(SIGPIPE, SIG_IGN);
}

caf::expected<node_handles> spawn_node(caf::actor_system& sys,
                                       node_options options) {
  // A peer closing a socket mid-write must be an EPIPE error on that
  // connection, never the end of the node (OpenSSL writes with write(2)).
  ignore_sigpipe();
  if (options.store.node_id.empty())
    options.store.node_id
        = mem_id_generator{}.prefix() + "r" + std::to_string(options.rank);
  if (options.data.max_object_size == 0)
    options.data.max_object_size = options.store.max_object_size;
  if (options.store.spill_key.empty())
    options.store.spill_key = "rank-" + std::to_string(options.rank);
  auto made = object_store::make(options.store);
  if (!made)
    return std::move(made.error());
  std::shared_ptr<object_store> objects{std::move(*made)};
  // Inbound transfers are refused before their bytes arrive when the
  // memory limit cannot take them (an embedder's own hook wins).
  if (!options.data.memory_left && options.store.memory_limit > 0)
    options.data.memory_left = [objects] {
      return objects->memory_left();
    };
  auto target = std::make_shared<adopt_target>();
  target->timeout = options.data.io_timeout;
  auto data = data_plane::start(options.data, make_adopt(target));
  if (!data)
    return std::move(data.error());
  node_handles result;
  result.objects = std::move(objects);
  result.data = std::move(*data);
  result.stopping = std::make_shared<std::atomic<bool>>(false);
  result.running_tasks = std::make_shared<std::atomic<uint64_t>>(0);
  options.running_tasks = result.running_tasks;
  result.published_port = std::make_shared<std::atomic<uint16_t>>(0);
  options.published_port = result.published_port;
  result.guard = std::make_shared<connection_guard>(sys, options.connections);
  options.guard = result.guard;
  result.executor = std::make_shared<task_executor>(options.tasks);
  options.executor = result.executor;
  if (result.objects->spilling()) {
    result.spill_io = std::make_shared<task_executor>(
        task_executor_options{node_options::spill_threads, 0});
    options.spill_io = result.spill_io;
    result.objects->on_background_work(
        background_spilling(result.objects, result.spill_io));
  }
  // A pool of detached store actors, round robin: an fs:// or oss:// call
  // blocks one thread (a multi-GB upload for seconds), not every session's
  // persistent-object calls on this node. The backends are thread-safe.
  auto objects_for_store = result.objects;
  auto store_pool = caf::actor_pool::make(
      sys.dummy_execution_unit(), store_threads,
      [&sys, objects_for_store] {
        return caf::actor_cast<caf::actor>(
            sys.spawn<caf::detached>(store_actor_impl, objects_for_store));
      },
      caf::actor_pool::round_robin());
  result.store = caf::actor_cast<store_actor>(store_pool);
  result.transfer = sys.spawn(transfer_actor_impl, result.data);
  result.worker
      = sys.spawn(worker_actor_impl, std::move(options), result.objects,
                  result.store, result.stopping, result.transfer, result.data);
  std::lock_guard guard{target->mtx};
  target->sys = &sys;
  target->worker = result.worker;
  return result;
}

caf::expected<uint16_t> publish_node(caf::actor_system& sys,
                                     const node_handles& node, uint16_t port,
                                     const std::string& host) {
  auto bound = publish_worker(sys, node.worker, port, host);
  if (!bound)
    return bound;
  node.published_port->store(*bound);
  if (node.guard)
    node.guard->watch(*bound);
  return bound;
}

void stop_node(const node_handles& node, caf::exit_reason reason) {
  node.stopping->store(true);
  if (node.guard)
    node.guard->stop();
  // Queued tasks are answered `cancelled`; running ones see `stopping`.
  if (node.executor)
    node.executor->stop();
  if (node.spill_io)
    node.spill_io->stop();
  caf::anon_send_exit(node.worker, reason);
  caf::anon_send_exit(node.store, reason);
  caf::anon_send_exit(node.transfer, reason);
  if (node.data)
    node.data->stop();
}

} // namespace objstore
