// objstore-node: runs a worker node, or a driver running the demo job.
//
//   objstore-node --config-file=worker0.ini
//   objstore-node --objstore.role=worker --objstore.rank=1 --objstore.port=0
//   objstore-node --objstore.role=driver --objstore.cluster=[...]

#include <iostream>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "apps/worker_main.hpp"
#include "store/error.hpp"

int main(int argc, char** argv) {
  objstore::apps::block_stop_signals();
  objstore::config cfg;
  if (auto err = cfg.load(argc, argv)) {
    std::cerr << "objstore-node: " << objstore::describe(err) << '\n';
    return 2;
  }
  if (cfg.cli_helptext_printed)
    return 0;
  caf::actor_system sys{cfg};
  if (cfg.role == "worker")
    return objstore::apps::run_worker(sys, cfg);
  return objstore::apps::run_demo(sys, cfg);
}
