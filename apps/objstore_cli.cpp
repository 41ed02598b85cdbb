// objstore: operator CLI against a running cluster.
//
//   objstore --objstore.cluster=["127.0.0.1:4242",...] stats
//   objstore --objstore.cluster=[...] top [FRAMES]
//   objstore --objstore.cluster=[...] objects [RANK] [rank=R] [session=S]
//            [state=held|pinned|spilled|revealed] [min-size=B] [sort=size|age]
//   objstore --objstore.cluster=[...] put RANK FILE fs:///abs/path
//   objstore --objstore.cluster=[...] fetch RANK URI [OUT-FILE]
//
// `put` stores FILE's bytes as a persistent fs:// object; `fetch` is
// subject to the worker's fetch policy (mem:// objects of other sessions
// are never fetchable; fs:// objects under the 'allow' policy). Large
// files stream over the workers' data ports with bounded memory: `put`
// maps FILE read-only, `fetch` into OUT-FILE writes from the socket into
// a mapping of OUT-FILE.part and renames it. On a terminal both show their
// progress on stderr.

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <future>
#include <iostream>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/driver/driver.hpp"
#include "actors/worker/node.hpp"
#include "apps/cluster_view.hpp"
#include "config/config.hpp"
#include "store/error.hpp"

using namespace objstore;

namespace {

int usage() {
  std::cerr << "usage: objstore --objstore.cluster=[\"host:port\",...] "
               "stats | top [FRAMES] | objects [RANK] [key=value...] | "
               "put RANK FILE fs:///PATH | fetch RANK URI [OUT-FILE]\n";
  return 2;
}

int fail(const caf::error& err) {
  std::cerr << "objstore: " << describe(err) << '\n';
  return 1;
}

/// Runs `work` (a blocking put or fetch) and, when stderr is a terminal,
/// shows the bytes the driver's data plane has moved so far (`sent`: the
/// data_bytes_sent counter, else data_bytes_received) against `total`
/// (0: unknown), redrawn every 200 ms.
template<class Result>
Result with_progress(driver& d, const std::string& label, uint64_t total,
                     bool sent, std::function<Result()> work) {
  auto task = std::async(std::launch::async, std::move(work));
  if (::isatty(STDERR_FILENO) == 0)
    return task.get();
  auto moved = [&]() -> uint64_t {
    auto s = d.stats();
    return !s ? 0 : sent ? s->data_bytes_sent : s->data_bytes_received;
  };
  auto base = moved();
  auto t0 = std::chrono::steady_clock::now();
  bool shown = false;
  while (task.wait_for(std::chrono::milliseconds{200})
         != std::future_status::ready) {
    auto done = moved() - base;
    auto secs
        = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
              .count();
    auto gib = [](uint64_t n) {
      return static_cast<double>(n) / (1 << 30);
    };
    if (total > 0)
      std::fprintf(stderr, "\r%s: %.2f of %.2f GiB (%.0f%%), %.2f GB/s   ",
                   label.c_str(), gib(done), gib(total),
                   100.0 * static_cast<double>(done)
                       / static_cast<double>(total),
                   static_cast<double>(done) / 1e9 / secs);
    else
      std::fprintf(stderr, "\r%s: %.2f GiB, %.2f GB/s   ", label.c_str(),
                   gib(done), static_cast<double>(done) / 1e9 / secs);
    shown = true;
  }
  if (shown)
    std::fprintf(stderr, "\n");
  return task.get();
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

/// The local time as HH:MM:SS.
std::string clock_now() {
  auto t = std::time(nullptr);
  std::tm local{};
  localtime_r(&t, &local);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &local);
  return buf;
}

/// `objstore top`: redraws every worker's counters once a second, `frames`
/// times (0: until interrupted). On a terminal each frame replaces the
/// last (cursor home, clear); otherwise frames follow each other.
int run_top(driver& d, uint64_t frames) {
  bool tty = ::isatty(STDOUT_FILENO) != 0;
  auto next = std::chrono::steady_clock::now();
  for (uint64_t n = 0; frames == 0 || n < frames; ++n) {
    if (n > 0)
      std::this_thread::sleep_until(next);
    next += std::chrono::seconds{1};
    std::vector<apps::top_row> rows;
    for (uint32_t r = 0; r < d.world_size(); ++r) {
      apps::top_row row;
      row.rank = r;
      if (auto st = d.worker_stats_of(r))
        row.stats = std::move(*st);
      else
        row.error = describe(st.error());
      rows.push_back(std::move(row));
    }
    if (tty)
      std::cout << "\x1b[H\x1b[2J";
    std::cout << apps::render_top(rows, clock_now()) << (tty ? "" : "\n")
              << std::flush;
  }
  return 0;
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
        "  top [FRAMES]               live view of every worker, redrawn\n"
        "                             each second (FRAMES times; default\n"
        "                             until Ctrl-C)\n"
        "  objects [RANK] [FILTER...] objects, holders and pins per worker;\n"
        "                             filters rank=R session=S\n"
        "                             state=held|pinned|spilled|revealed\n"
        "                             min-size=BYTES sort=size|age|uri\n"
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
  if (cmd == "top" && words.size() <= 2) {
    uint64_t frames = 0; // until interrupted
    if (words.size() == 2) {
      char* end = nullptr;
      frames = std::strtoull(words[1].c_str(), &end, 10);
      if (*end != '\0' || frames == 0)
        return usage();
    }
    return run_top(d, frames);
  }
  if (cmd == "objects") {
    auto filter = apps::parse_object_filter({words.begin() + 1, words.end()});
    if (!filter) {
      std::cerr << "objstore: " << describe(filter.error()) << '\n';
      return 2;
    }
    uint32_t first = 0, last = static_cast<uint32_t>(d.world_size());
    if (filter->rank) {
      if (!parse_rank(std::to_string(*filter->rank), d, first))
        return 2;
      last = first + 1;
    }
    for (auto r = first; r < last; ++r) {
      auto xs = d.objects(r);
      if (!xs)
        return fail(xs.error());
      std::erase_if(*xs, [&](auto& x) { return !filter->matches(x); });
      filter->order(*xs);
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
    // Mapped, not read: the file's bytes stay in the page cache while
    // they stream, whatever its size.
    auto mapped = buffer::map_file(words[2]);
    if (!mapped)
      return fail(mapped.error());
    auto value = make_value(blob{std::move(*mapped)});
    auto size = static_cast<uint64_t>(value->size_bytes());
    auto x = with_progress<caf::expected<host_var>>(
        d, "put " + words[2], size, true,
        [&] { return d.put(rank, value, words[3]); });
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
    if (words.size() == 4) {
      // Only a bytes object has a file form (what `put` stores).
      auto n = with_progress<caf::expected<uint64_t>>(
          d, "fetch " + words[2], 0, false,
          [&] { return d.fetch_to_file(rank, x, words[3]); });
      if (!n)
        return fail(n.error());
      std::cout << "bytes (" << *n << " bytes) -> " << words[3] << '\n';
      return 0;
    }
    auto v = d.fetch(rank, x);
    if (!v)
      return fail(v.error());
    std::cout << (*v)->summary() << '\n';
    return 0;
  }
  return usage();
}
