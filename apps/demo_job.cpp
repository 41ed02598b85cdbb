#include "apps/demo_job.hpp"

#include <chrono>
#include <cmath>
#include <thread>

#include "actors/exec/interpreter.hpp"
#include "actors/driver/simp.hpp"
#include "store/error.hpp"

namespace objstore::apps {

namespace {

constexpr int64_t num_keys = 50;

/// The party-local part of the job: generate, filter, aggregate.
graph local_stage(size_t rows, uint64_t seed) {
  auto n = static_cast<int64_t>(rows);
  graph_builder b;
  auto raw_keys = b.add("random_uniform", {},
                        {make_attr("seed", static_cast<int64_t>(seed)),
                         make_attr("shape", std::vector<int64_t>{n}),
                         make_attr("low", 0.0),
                         make_attr("high", static_cast<double>(num_keys))});
  auto keys = b.add("cast", {raw_keys}, {make_attr("dtype", "int64")});
  auto amounts = b.add("random_uniform", {},
                       {make_attr("seed", static_cast<int64_t>(seed + 1)),
                        make_attr("shape", std::vector<int64_t>{n}),
                        make_attr("low", 0.0), make_attr("high", 100.0)});
  auto table
      = b.add("make_table", {keys, amounts},
              {make_attr("names", std::vector<std::string>{"key", "amount"})});
  auto ten = b.add("constant", {},
                   {make_attr("shape", std::vector<int64_t>{}),
                    make_attr("dtype", "float64"), make_attr("value", 10.0)});
  auto keep = b.add("gt", {amounts, ten});
  auto kept = b.add("filter", {table, keep});
  b.output(b.add("group_sum", {kept},
                 {make_attr("key", "key"),
                  make_attr("values", std::vector<std::string>{"amount"})}));
  return b.build();
}

/// The final stage on each party after the shuffle: sum again, reveal.
graph final_stage() {
  graph_builder b;
  auto x = b.input();
  auto sums = b.add("group_sum", {x},
                    {make_attr("key", "key"),
                     make_attr("values", std::vector<std::string>{"amount"})});
  b.output(b.add("reveal", {sums}));
  return b.build();
}

uint64_t party_seed(uint64_t seed, uint32_t rank) {
  return seed * 1000 + rank * 17;
}

void add_sums(std::map<int64_t, double>& out, const value& x) {
  auto& t = x.as_table();
  auto keys = t.find("key")->data.values<int64_t>();
  auto amounts = t.find("amount")->data.values<double>();
  for (size_t i = 0; i < keys.size(); ++i)
    out[keys[i]] += amounts[i];
}

std::vector<uint64_t> object_counts(driver& d) {
  std::vector<uint64_t> result;
  for (uint32_t r = 0; r < d.world_size(); ++r) {
    auto st = d.worker_stats_of(r);
    result.push_back(st ? st->mem_objects : UINT64_MAX);
  }
  return result;
}

std::string counts_text(const std::vector<uint64_t>& xs) {
  std::string out;
  for (size_t r = 0; r < xs.size(); ++r)
    out += (r ? ", " : "") + std::string{"rank "} + std::to_string(r) + ": "
           + std::to_string(xs[r]);
  return out;
}

} // namespace

caf::expected<demo_result> run_demo_job(driver& d, size_t rows, uint64_t seed,
                                        std::ostream& log) {
  demo_result result;
  auto parties = static_cast<uint32_t>(d.world_size());
  result.objects_before = object_counts(d);
  log << "demo: " << parties << " parties, " << rows
      << " private rows each (key, amount)\n"
      << "objects before: " << counts_text(result.objects_before) << '\n';
  auto start_stats = d.stats();
  if (!start_stats)
    return std::move(start_stats.error());
  {
    // SIMP program: each party generates and aggregates its own table in
    // its own pcall_static (private seed), converge joins the parts.
    graph_builder prog;
    std::vector<value_id> parts;
    for (uint32_t r = 0; r < parties; ++r)
      parts.push_back(prog.add(
          "pcall_static", {},
          {make_attr("parties", std::vector<int64_t>{static_cast<int64_t>(r)})},
          {local_stage(rows, party_seed(seed, r))}));
    prog.output(prog.add("converge", parts));
    auto partial = run_simp(d, prog.build(), {});
    if (!partial)
      return std::move(partial.error());
    log << "step 1: generated, filtered (amount > 10) and summed per key "
           "locally on every party\n";
    auto shuffled = d.shuffle_by_key((*partial)[0], "key");
    if (!shuffled)
      return std::move(shuffled.error());
    log << "step 2: shuffled by key worker-to-worker (equal keys meet)\n";
    auto revealed = d.run(final_stage(), {*shuffled});
    if (!revealed)
      return std::move(revealed.error());
    log << "step 3: summed per key and revealed the aggregate\n";
    for (uint32_t r = 0; r < parties; ++r) {
      auto v = d.fetch((*revealed)[0], r);
      if (!v)
        return std::move(v.error());
      add_sums(result.sums, **v);
    }
    result.objects_held = object_counts(d);
    auto end_stats = d.stats();
    if (!end_stats)
      return std::move(end_stats.error());
    result.driver_bytes_received
        = end_stats->bytes_received - start_stats->bytes_received;
    result.driver_bytes_sent = end_stats->bytes_sent - start_stats->bytes_sent;
  } // every handle of the job is dropped here
  d.flush();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  for (;;) {
    result.objects_after = object_counts(d);
    bool zero = true;
    for (size_t r = 0; r < result.objects_after.size(); ++r)
      zero = zero && result.objects_after[r] <= result.objects_before[r];
    if (zero || std::chrono::steady_clock::now() > deadline)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
  result.rows = rows * parties;
  result.data_bytes = result.rows * (sizeof(int64_t) + sizeof(double));
  return result;
}

caf::expected<std::map<int64_t, double>>
demo_reference(size_t parties, size_t rows, uint64_t seed) {
  auto ops = op_registry::with_builtins();
  std::map<int64_t, double> sums;
  for (uint32_t r = 0; r < parties; ++r) {
    auto out = execute(local_stage(rows, party_seed(seed, r)), {}, *ops);
    if (!out)
      return std::move(out.error());
    add_sums(sums, *out->outputs[0]);
  }
  return sums;
}

bool same_sums(const std::map<int64_t, double>& x,
               const std::map<int64_t, double>& y) {
  if (x.size() != y.size())
    return false;
  for (auto& [k, v] : x) {
    auto i = y.find(k);
    if (i == y.end())
      return false;
    if (std::abs(v - i->second) > 1e-9 * std::max(1.0, std::abs(v)))
      return false;
  }
  return true;
}

} // namespace objstore::apps
