#include "apps/cluster_view.hpp"

#include <algorithm>
#include <cstdio>

#include "store/error.hpp"

namespace objstore::apps {

namespace {

/// 1536 -> "1.5 KiB".
std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  auto x = static_cast<double>(n);
  size_t i = 0;
  while (x >= 1024 && i + 1 < std::size(units)) {
    x /= 1024;
    ++i;
  }
  char buf[32];
  if (i == 0)
    std::snprintf(buf, sizeof buf, "%llu B",
                  static_cast<unsigned long long>(n));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", x, units[i]);
  return buf;
}

std::string format_row(const char* fmt, uint32_t rank, const worker_stats& s) {
  char buf[256];
  std::snprintf(
      buf, sizeof buf, fmt, rank,
      static_cast<unsigned long long>(s.mem_objects),
      human_bytes(s.mem_bytes).c_str(),
      static_cast<unsigned long long>(s.fs_objects),
      human_bytes(s.fs_bytes).c_str(),
      static_cast<unsigned long long>(s.spill.spilled_objects),
      static_cast<unsigned long long>(
          s.tasks_running - std::min(s.tasks_running, s.tasks_queued)),
      static_cast<unsigned long long>(s.tasks_queued),
      static_cast<unsigned long long>(s.tasks_run),
      static_cast<unsigned long long>(s.tasks_failed),
      static_cast<unsigned long long>(s.transfers_in),
      static_cast<unsigned long long>(s.transfers_out),
      static_cast<unsigned long long>(s.sessions));
  return buf;
}

/// Whether the holder `name` ("session-<id> (client)") is the session
/// `which`: its id, or else a part of its name (the client label).
bool holder_is(const std::string& name, const std::string& which) {
  if (std::all_of(which.begin(), which.end(),
                  [](char c) { return c >= '0' && c <= '9'; })) {
    auto prefix = "session-" + which;
    return name == prefix || name.starts_with(prefix + " ");
  }
  return name.find(which) != std::string::npos;
}

} // namespace

std::string render_top(const std::vector<top_row>& rows,
                       const std::string& now) {
  worker_stats total;
  size_t up = 0;
  for (auto& row : rows) {
    if (!row.stats)
      continue;
    ++up;
    auto& s = *row.stats;
    total.mem_objects += s.mem_objects;
    total.mem_bytes += s.mem_bytes;
    total.fs_objects += s.fs_objects;
    total.fs_bytes += s.fs_bytes;
    total.tasks_running += s.tasks_running;
    total.tasks_queued += s.tasks_queued;
  }
  std::string out = "objstore top - " + now + "  workers " + std::to_string(up)
                    + "/" + std::to_string(rows.size()) + "  objects "
                    + std::to_string(total.mem_objects + total.fs_objects)
                    + " (" + human_bytes(total.mem_bytes + total.fs_bytes)
                    + ")  tasks " + std::to_string(total.tasks_running)
                    + "\n\n";
  char header[256];
  std::snprintf(header, sizeof header,
                "%4s %8s %10s %7s %10s %7s %5s %6s %7s %6s %6s %6s %5s\n",
                "RANK", "MEM-OBJ", "MEM-BYTES", "FS-OBJ", "FS-BYTES", "SPILLED",
                "RUN", "QUEUED", "DONE", "FAILED", "XFR-IN", "XFR-OUT", "SESS");
  out += header;
  for (auto& row : rows) {
    if (!row.stats) {
      out += std::string(
                 4 - std::min<size_t>(4, std::to_string(row.rank).size()), ' ')
             + std::to_string(row.rank) + "  unreachable: " + row.error + "\n";
      continue;
    }
    out += format_row(
        "%4u %8llu %10s %7llu %10s %7llu %5llu %6llu %7llu %6llu %6llu %6llu "
        "%5llu\n",
        row.rank, *row.stats);
  }
  return out;
}

bool object_filter::matches(const object_record& x) const {
  if (x.size_bytes < min_size)
    return false;
  if (!session.empty()
      && std::none_of(x.holders.begin(), x.holders.end(),
                      [&](auto& h) { return holder_is(h.session, session); }))
    return false;
  if (state == "pinned")
    return x.pins > 0;
  if (state == "spilled")
    return x.spilled && x.pins == 0;
  if (state == "held")
    return !x.spilled && x.pins == 0;
  if (state == "revealed")
    return x.revealed;
  return true;
}

void object_filter::order(std::vector<object_record>& xs) const {
  auto by = [this](const object_record& a, const object_record& b) {
    if (sort == "size" && a.size_bytes != b.size_bytes)
      return a.size_bytes > b.size_bytes;
    if (sort == "age" && a.age_ms != b.age_ms)
      return a.age_ms > b.age_ms;
    return a.uri < b.uri;
  };
  std::stable_sort(xs.begin(), xs.end(), by);
}

caf::expected<object_filter>
parse_object_filter(const std::vector<std::string>& words) {
  object_filter f;
  auto number = [](const std::string& text) -> std::optional<uint64_t> {
    char* end = nullptr;
    auto x = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || text[0] == '-')
      return std::nullopt;
    return x;
  };
  for (auto& word : words) {
    auto bad = [&](const std::string& why) {
      return make_error(errc::invalid_argument,
                        "objects: '" + word + "': " + why);
    };
    auto eq = word.find('=');
    if (eq == std::string::npos) {
      auto r = number(word);
      if (!r)
        return bad("expected RANK or key=value");
      f.rank = static_cast<uint32_t>(*r);
      continue;
    }
    auto key = word.substr(0, eq);
    auto val = word.substr(eq + 1);
    if (key == "rank" || key == "min-size") {
      auto x = number(val);
      if (!x)
        return bad("not a number");
      if (key == "rank")
        f.rank = static_cast<uint32_t>(*x);
      else
        f.min_size = *x;
    } else if (key == "session") {
      f.session = val;
    } else if (key == "state") {
      if (val != "held" && val != "pinned" && val != "spilled"
          && val != "revealed")
        return bad("state is held, pinned, spilled or revealed");
      f.state = val;
    } else if (key == "sort") {
      if (val != "size" && val != "age" && val != "uri")
        return bad("sort is size, age or uri");
      f.sort = val;
    } else {
      return bad("unknown filter (rank, session, state, min-size, sort)");
    }
  }
  return f;
}

} // namespace objstore::apps
