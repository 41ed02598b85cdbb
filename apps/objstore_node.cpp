// objstore-node: runs a worker node, or a driver running the demo job.
//
//   objstore-node --config-file=worker0.ini
//   objstore-node --objstore.role=worker --objstore.rank=1 --objstore.port=0
//   objstore-node --objstore.role=driver --objstore.cluster=[...]

#include <iostream>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/log.hpp"
#include "actors/worker/node.hpp"
#include "apps/worker_main.hpp"
#include "store/error.hpp"

int main(int argc, char** argv) {
  objstore::ignore_sigpipe(); // a closed peer is an error, never an exit
  objstore::config cfg;
  if (auto err = cfg.load(argc, argv)) {
    std::cerr << "objstore-node: " << objstore::describe(err) << '\n';
    return 2;
  }
  if (cfg.cli_helptext_printed) {
    std::cout << cfg.help_text(
        "usage: objstore-node [--config-file=PATH] [--objstore.NAME=VALUE...]\n"
        "Runs a worker node (objstore.role=worker) or the demo driver job\n"
        "(objstore.role=driver) against objstore.cluster.");
    return 0;
  }
  // A worker waits for SIGTERM/SIGINT to drain; block them before the
  // actor system starts its threads. A driver keeps the default action,
  // so Ctrl-C stops it (its workers then drop its session).
  if (auto least = objstore::log::parse_level(cfg.log_level))
    objstore::log::init(cfg.role == "worker"
                            ? "worker rank=" + std::to_string(cfg.rank)
                            : std::string{"driver"},
                        *least);
  if (cfg.role == "worker")
    objstore::apps::block_stop_signals();
  caf::actor_system sys{cfg};
  if (cfg.role == "worker")
    return objstore::apps::run_worker(sys, cfg);
  return objstore::apps::run_demo(sys, cfg);
}
