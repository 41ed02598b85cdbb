// oss:// example: load a dataset from S3-compatible storage, compute on the
// workers, persist the result to S3-compatible storage. The driver sees
// only URIs and the final number.
//
// Usage: oss_job HOST:PORT,HOST:PORT,... DATASETS_BUCKET RESULTS_BUCKET
//
// 1. Each party's data owner uploads its table (key, amount) through its
//    own worker to oss://DATASETS/sales/part-<rank> (a put to an oss://
//    target; skipped when the object exists).
// 2. The job reads each part on its party (the worker reads oss:// itself),
//    filters amount > 10 and sums it there, moves the partial sums to party
//    0 worker-to-worker and adds them.
// 3. The total is persisted to oss://RESULTS/sales/total by a transfer to
//    party 1, which writes it to the bucket (owned by the job's principal),
//    then read back from there.
// The workers need objstore.oss-endpoint and the buckets in
// objstore.oss-buckets; examples/oss-demo starts such a cluster against a
// local S3 test server.

#include <cstdlib>
#include <iostream>
#include <random>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/driver/driver.hpp"
#include "actors/system.hpp"
#include "store/error.hpp"

using namespace objstore;

namespace {

int fail(const std::string& what, const caf::error& err) {
  std::cerr << "oss_job: " << what << ": " << describe(err) << '\n';
  return EXIT_FAILURE;
}

/// Party `rank`'s private table and the sum the job must find for it.
std::pair<value_ptr, double> make_part(uint32_t rank, int64_t rows) {
  std::mt19937_64 gen{1000 + rank};
  std::uniform_real_distribution<double> amount{0.0, 100.0};
  std::vector<int64_t> keys(rows);
  std::vector<double> amounts(rows);
  double expected = 0;
  for (int64_t i = 0; i < rows; ++i) {
    keys[i] = static_cast<int64_t>(gen() % 16);
    amounts[i] = amount(gen);
    if (amounts[i] > 10.0)
      expected += amounts[i];
  }
  auto t = table::make({{"key", tensor::from<int64_t>({rows}, keys)},
                        {"amount", tensor::from<double>({rows}, amounts)}});
  return {make_value(std::move(*t)), expected};
}

/// A handle on a persistent object of party `rank` (not reference counted).
host_var persistent(size_t parties, uint32_t rank, const std::string& uri) {
  host_var h{parties};
  h.set(rank, std::make_shared<const remote_ref>(rank, uri, nullptr));
  return h;
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr
        << "usage: oss_job HOST:PORT,... DATASETS_BUCKET RESULTS_BUCKET\n";
    return 2;
  }
  auto spec = cluster_spec::parse(argv[1]);
  if (!spec)
    return fail("cluster", spec.error());
  std::string datasets = argv[2];
  std::string results = argv[3];
  caf::actor_system_config cfg;
  configure_system(cfg);
  caf::actor_system sys{cfg};
  auto d = driver::connect(sys, *spec);
  if (!d)
    return fail("connect", d.error());
  auto parties = static_cast<uint32_t>((*d)->world_size());
  if (parties < 2) {
    std::cerr << "oss_job: needs at least 2 workers\n";
    return 2;
  }
  constexpr int64_t rows = 100'000;
  double expected = 0;
  // 1. The data owners' uploads (through each party's worker).
  std::vector<std::string> parts;
  for (uint32_t r = 0; r < parties; ++r) {
    auto [table, sum] = make_part(r, rows);
    expected += sum;
    parts.push_back("oss://" + datasets + "/sales/part-" + std::to_string(r));
    if (auto put = (*d)->put(r, table, parts.back()); !put)
      return fail("upload " + parts.back(), put.error());
  }
  std::cout << "1. uploaded " << parties << " tables of " << rows
            << " rows to oss://" << datasets << "/sales/\n";
  // 2. Load, filter and sum on each party.
  graph_builder b;
  auto in = b.input();
  auto amounts = b.add("column", {in}, {make_attr("name", "amount")});
  auto ten = b.add("constant", {},
                   {make_attr("shape", std::vector<int64_t>{}),
                    make_attr("dtype", "float64"), make_attr("value", 10.0)});
  auto kept = b.add("filter", {in, b.add("gt", {amounts, ten})});
  b.output(
      b.add("sum", {b.add("column", {kept}, {make_attr("name", "amount")})}));
  auto local = b.build();
  host_var total{parties};
  for (uint32_t r = 0; r < parties; ++r) {
    auto partial = (*d)->run(local, {persistent(parties, r, parts[r])}, {r});
    if (!partial)
      return fail("sum on party " + std::to_string(r), partial.error());
    auto here = r == 0 ? (*partial)[0] : (*d)->transfer((*partial)[0], r, 0);
    if (!here)
      return fail("move the partial sum", here.error());
    if (r == 0) {
      total = *here;
      continue;
    }
    graph_builder add;
    auto x = add.input();
    auto y = add.input();
    add.output(add.add("add", {x, y}));
    auto sum = (*d)->run(add.build(), {total, *here}, {0});
    if (!sum)
      return fail("add on party 0", sum.error());
    total = (*sum)[0];
  }
  std::cout << "2. read each part on its party, summed amount > 10 there, "
               "added the partial sums on party 0\n";
  // 3. Persist, then read back from the bucket.
  auto target = "oss://" + results + "/sales/total";
  auto saved = (*d)->transfer(total, 0, 1, target);
  if (!saved)
    return fail("persist " + target, saved.error());
  auto v = (*d)->fetch(1, *saved);
  if (!v)
    return fail("read back " + target, v.error());
  auto got = (*v)->as_tensor().values<double>()[0];
  std::cout << "3. persisted the total to " << target
            << " and read it back: " << got << '\n';
  auto ok = std::abs(got - expected) <= 1e-6 * std::abs(expected);
  std::cout << "matches a single-process computation: " << (ok ? "yes" : "NO")
            << " (" << expected << ")\n";
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
