// A driver process for multi-process tests (not a test itself): connects
// to the workers, puts N small objects on each, prints "ready" and sleeps
// holding them until it is killed.
//
//   driver_child N host:port,host:port,...

#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/driver/driver.hpp"
#include "actors/testing/local_cluster.hpp"
#include "store/error.hpp"
#include "store/value.hpp"

using namespace objstore;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: driver_child N host:port,host:port,...\n";
    return 2;
  }
  auto per_worker = std::strtoul(argv[1], nullptr, 10);
  auto spec = cluster_spec::parse(argv[2]);
  if (!spec) {
    std::cerr << "driver_child: " << describe(spec.error()) << '\n';
    return 2;
  }
  caf::actor_system_config cfg;
  configure_system(cfg, 2);
  caf::actor_system sys{cfg};
  auto d = driver::connect(sys, *spec);
  if (!d) {
    std::cerr << "driver_child: " << describe(d.error()) << '\n';
    return 1;
  }
  std::vector<host_var> held;
  for (uint32_t rank = 0; rank < (*d)->world_size(); ++rank) {
    for (unsigned long i = 0; i < per_worker; ++i) {
      auto x = static_cast<int64_t>(rank * 1000 + i);
      auto v = (*d)->put(rank, make_value(tensor::from<int64_t>(
                                   {1}, std::vector<int64_t>{x})));
      if (!v) {
        std::cerr << "driver_child: " << describe(v.error()) << '\n';
        return 1;
      }
      held.push_back(std::move(*v));
    }
  }
  std::cout << "ready" << std::endl;
  for (;;)
    ::pause();
}
