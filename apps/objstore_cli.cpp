// objstore: operator CLI against a running cluster.
//
//   objstore --objstore.cluster=["127.0.0.1:4242",...] stats
//   objstore --objstore.cluster=[...] objects [RANK]
//   objstore --objstore.cluster=[...] put RANK FILE fs:///abs/path
//   objstore --objstore.cluster=[...] fetch RANK URI [OUT-FILE]
//
// `put` stores FILE's bytes as a persistent fs:// object; `fetch` is
// subject to the worker's fetch policy (mem:// objects of other sessions
// are never fetchable; fs:// objects under the 'allow' policy).

#include <fstream>
#include <iostream>
#include <sstream>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/driver/driver.hpp"
#include "actors/worker/node.hpp"
#include "config/config.hpp"
#include "store/error.hpp"

using namespace objstore;

namespace {

int usage() {
  std::cerr << "usage: objstore --objstore.cluster=[\"host:port\",...] "
               "stats | objects [RANK] | put RANK FILE fs:///PATH | "
               "fetch RANK URI [OUT-FILE]\n";
  return 2;
}

int fail(const caf::error& err) {
  std::cerr << "objstore: " << describe(err) << '\n';
  return 1;
}

bool parse_rank(const std::string& text, const driver& d, uint32_t& rank) {
  char* end = nullptr;
  auto x = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || x >= d.world_size()) {
    std::cerr << "objstore: bad rank '" << text << "' (world size "
              << d.world_size() << ")\n";
    return false;
  }
  rank = static_cast<uint32_t>(x);
  return true;
}

void print_stats(uint32_t rank, const worker_stats& s) {
  std::cout << "{\"rank\":" << rank << ",\"mem_objects\":" << s.mem_objects
            << ",\"mem_bytes\":" << s.mem_bytes
            << ",\"fs_objects\":" << s.fs_objects
            << ",\"fs_bytes\":" << s.fs_bytes << ",\"sessions\":" << s.sessions
            << ",\"tasks_run\":" << s.tasks_run
            << ",\"tasks_failed\":" << s.tasks_failed
            << ",\"tasks_running\":" << s.tasks_running
            << ",\"fetches\":" << s.fetches
            << ",\"fetches_denied\":" << s.fetches_denied
            << ",\"releases\":" << s.releases
            << ",\"unknown_releases\":" << s.unknown_releases
            << ",\"pinned_objects\":" << s.pinned_objects
            << ",\"transfers_in\":" << s.transfers_in
            << ",\"transfers_out\":" << s.transfers_out
            << ",\"spilled_objects\":" << s.spill.spilled_objects
            << ",\"spilled_bytes\":" << s.spill.spilled_bytes
            << ",\"spills\":" << s.spill.spills
            << ",\"spilled_bytes_total\":" << s.spill.spilled_bytes_total
            << ",\"spill_ns\":" << s.spill.spill_ns
            << ",\"restores\":" << s.spill.restores
            << ",\"restored_bytes_total\":" << s.spill.restored_bytes_total
            << ",\"restore_ns\":" << s.spill.restore_ns
            << ",\"spill_failures\":" << s.spill.spill_failures
            << ",\"restore_failures\":" << s.spill.restore_failures << "}\n";
}

} // namespace

int main(int argc, char** argv) {
  ignore_sigpipe(); // a closed peer is an error, never an exit
  // Positional words (the command) follow the options.
  std::vector<char*> options{argv[0]};
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view{argv[i]}.starts_with("-"))
      options.push_back(argv[i]);
    else
      words.emplace_back(argv[i]);
  }
  config cfg;
  cfg.role = "driver";
  if (auto err = cfg.load(static_cast<int>(options.size()), options.data())) {
    std::cerr << "objstore: " << describe(err) << '\n';
    return 2;
  }
  if (cfg.cli_helptext_printed) {
    std::cout << cfg.help_text(
        "usage: objstore --objstore.cluster=[\"host:port\",...] COMMAND\n"
        "commands:\n"
        "  stats                      counters of every worker (JSON lines)\n"
        "  objects [RANK]             objects, holders and pins per worker\n"
        "  put RANK FILE fs:///PATH   store FILE as a persistent fs:// object\n"
        "  fetch RANK URI [OUT-FILE]  fetch an object (worker's fetch policy)");
    return 0;
  }
  if (words.empty())
    return usage();
  caf::actor_system sys{cfg};
  auto spec = cfg.make_cluster_spec();
  if (!spec)
    return fail(spec.error());
  auto opts = cfg.make_driver_options();
  opts.client = "objstore-cli";
  auto connected = driver::connect(sys, *spec, opts);
  if (!connected)
    return fail(connected.error());
  auto& d = **connected;
  auto& cmd = words[0];
  if (cmd == "stats" && words.size() == 1) {
    for (uint32_t r = 0; r < d.world_size(); ++r) {
      auto st = d.worker_stats_of(r);
      if (!st)
        return fail(st.error());
      print_stats(r, *st);
    }
    return 0;
  }
  if (cmd == "objects" && words.size() <= 2) {
    uint32_t first = 0, last = static_cast<uint32_t>(d.world_size());
    if (words.size() == 2) {
      if (!parse_rank(words[1], d, first))
        return 2;
      last = first + 1;
    }
    for (auto r = first; r < last; ++r) {
      auto xs = d.objects(r);
      if (!xs)
        return fail(xs.error());
      for (auto& x : *xs) {
        std::cout << "rank " << r << "  " << x.uri << "  " << x.size_bytes
                  << " B  pins " << x.pins << "  age " << x.age_ms << " ms"
                  << (x.revealed ? "  revealed" : "")
                  << (x.spilled ? "  spilled" : "  in-memory");
        for (auto& h : x.holders)
          std::cout << "  [" << h.session << " x" << h.count << "]";
        std::cout << '\n';
      }
    }
    return 0;
  }
  if (cmd == "put" && words.size() == 4) {
    uint32_t rank;
    if (!parse_rank(words[1], d, rank))
      return 2;
    std::ifstream in{words[2], std::ios::binary};
    if (!in) {
      std::cerr << "objstore: cannot read " << words[2] << '\n';
      return 1;
    }
    std::stringstream buf;
    buf << in.rdbuf();
    auto x = d.put(rank, make_value(blob::copy_of(buf.str())), words[3]);
    if (!x)
      return fail(x.error());
    std::cout << *x->uri(rank) << '\n';
    return 0;
  }
  if (cmd == "fetch" && (words.size() == 3 || words.size() == 4)) {
    uint32_t rank;
    if (!parse_rank(words[1], d, rank))
      return 2;
    host_var x{d.world_size()};
    x.set(rank, std::make_shared<const remote_ref>(rank, words[2], nullptr));
    auto v = d.fetch(rank, x);
    if (!v)
      return fail(v.error());
    if (words.size() == 4) {
      // Only a bytes object has a file form (what `put` stores).
      if (!(*v)->is_bytes())
        return fail(make_error(errc::invalid_argument,
                               words[2] + " holds " + (*v)->summary()
                                   + ", not bytes: nothing written to "
                                   + words[3]));
      std::ofstream out{words[3], std::ios::binary};
      out << (*v)->as_bytes().view();
      if (!out)
        return fail(make_error(errc::io_error, "cannot write " + words[3]));
    }
    std::cout << (*v)->summary() << '\n';
    return 0;
  }
  return usage();
}
