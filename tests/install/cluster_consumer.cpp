// Uses the installed objstore::testing library as an embedder's test would:
// a simulated cluster of two workers in this process, one driver, a put on
// each party and a fetch back. Usage: cluster_consumer

#include <cstdlib>
#include <iostream>
#include <vector>

#include "actors/testing/local_cluster.hpp"
#include "store/error.hpp"

using namespace objstore;

namespace {

int fail(const std::string& what) {
  std::cerr << "cluster_consumer: " << what << '\n';
  return EXIT_FAILURE;
}

} // namespace

int main() {
  local_cluster_options opts;
  opts.workers = 2;
  opts.fs_roots = false;
  auto cluster = local_cluster::start(opts);
  if (!cluster)
    return fail(describe(cluster.error()));
  auto d = (*cluster)->connect();
  if (!d)
    return fail(describe(d.error()));
  for (uint32_t rank = 0; rank < 2; ++rank) {
    auto x = make_value(tensor::from<int64_t>(
        {2}, std::vector<int64_t>{int64_t{rank}, int64_t{rank} + 10}));
    auto held = (*d)->put(rank, x);
    if (!held)
      return fail(describe(held.error()));
    auto back = (*d)->fetch(rank, *held);
    if (!back)
      return fail(describe(back.error()));
    if (**back != *x)
      return fail("rank " + std::to_string(rank) + " returned another value");
  }
  std::cout << "cluster_consumer: ok\n";
  return EXIT_SUCCESS;
}
