#include "config/config.hpp"

#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include "actors/log.hpp"
#include "actors/system.hpp"
#include "store/error.hpp"

namespace objstore {

namespace {

caf::error bad(const std::string& key, const std::string& why) {
  return make_error(errc::invalid_argument, "objstore." + key + ": " + why);
}

/// Whether `host` names only this machine: 127.0.0.0/8, ::1, localhost.
bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]"
         || host.rfind("127.", 0) == 0;
}

} // namespace

const std::vector<std::string>& config::option_names() {
  static const std::vector<std::string> names{"role",
                                              "rank",
                                              "host",
                                              "port",
                                              "port-file",
                                              "metrics-port",
                                              "metrics-host",
                                              "metrics-port-file",
                                              "log-level",
                                              "cluster",
                                              "fs-roots",
                                              "memory-limit",
                                              "spill-dir",
                                              "spill-threshold",
                                              "max-object-size",
                                              "max-graph-ops",
                                              "max-graph-bytes",
                                              "max-transfers-per-peer",
                                              "sessionless-timeout",
                                              "max-sessionless-connections",
                                              "hello-timeout",
                                              "chunk-timeout",
                                              "max-pending-connections",
                                              "max-senders",
                                              "max-queued-sends",
                                              "max-tokens",
                                              "task-threads",
                                              "max-queued-tasks",
                                              "max-sleep",
                                              "fetch-policy",
                                              "operator-secret-file",
                                              "max-sessions",
                                              "allow-insecure",
                                              "principals-file",
                                              "principal-file",
                                              "shared-roots",
                                              "oss-endpoint",
                                              "oss-region",
                                              "oss-addressing",
                                              "oss-buckets",
                                              "oss-shared-buckets",
                                              "oss-credentials-file",
                                              "oss-profile",
                                              "oss-part-size",
                                              "oss-parts-in-flight",
                                              "oss-retries",
                                              "oss-ca-file",
                                              "timeout",
                                              "chunk-size",
                                              "window",
                                              "heartbeat-interval",
                                              "heartbeat-timeout",
                                              "demo-rows",
                                              "demo-seed"};
  return names;
}

size_t default_memory_limit() {
  auto pages = ::sysconf(_SC_PHYS_PAGES);
  auto page = ::sysconf(_SC_PAGESIZE);
  uint64_t total = pages > 0 && page > 0 ? static_cast<uint64_t>(pages)
                                               * static_cast<uint64_t>(page)
                                         : 0;
  for (auto path : {"/sys/fs/cgroup/memory.max",
                    "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in{path};
    uint64_t limit = 0;
    if (in >> limit && limit > 0 && (total == 0 || limit < total))
      total = limit; // "max" (no limit) does not parse
  }
  return static_cast<size_t>(total / 2);
}

std::string default_spill_dir() {
  std::error_code ec;
  auto tmp = std::filesystem::temp_directory_path(ec);
  if (ec)
    tmp = "/tmp";
  // Per user: another user's directory in a shared /tmp is not writable.
  return (tmp / ("objstore-spill-" + std::to_string(::getuid()))).string();
}

config::config() {
  configure_system(*this);
  opt_group{custom_options_, "objstore"}
      .add(role, "role", "worker (serve a node) or driver (run the demo job)")
      .add(rank, "rank", "this worker's rank (position in objstore.cluster)")
      .add(host, "host", "interface the worker and its data plane bind")
      .add(port, "port", "port the worker publishes on (0: pick a free one)")
      .add(port_file, "port-file", "write the bound port to this file")
      .add(metrics_port, "metrics-port",
           "port of the Prometheus endpoint GET /metrics (0: off, or a free "
           "port when metrics-port-file is set)")
      .add(metrics_host, "metrics-host",
           "interface the metrics endpoint binds (default loopback)")
      .add(metrics_port_file, "metrics-port-file",
           "write the metrics endpoint's bound port to this file")
      .add(log_level, "log-level",
           "least severe log level shown: trace, debug, info, warn, error, "
           "off")
      .add(cluster, "cluster", "worker endpoints host:port in rank order")
      .add(fs_roots, "fs-roots", "absolute directories for fs:// objects")
      .add(memory_limit, "memory-limit",
           "limit for mem:// and kernel bytes (0: none; default half the "
           "memory)")
      .add(spill_dir, "spill-dir",
           "workers: where unpinned mem:// objects spill above "
           "spill-threshold of memory-limit (empty: never spill)")
      .add(spill_threshold, "spill-threshold",
           "fraction of memory-limit above which objects spill (0: never)")
      .add(max_object_size, "max-object-size",
           "largest accepted object in bytes (0: none)")
      .add(max_graph_ops, "max-graph-ops",
           "most ops of one task graph, regions included (0: none)")
      .add(max_graph_bytes, "max-graph-bytes",
           "most bytes of ops, attributes and URIs of one task (0: none)")
      .add(max_transfers_per_peer, "max-transfers-per-peer",
           "inbound transfers at once from one peer address (0: none)")
      .add(sessionless_timeout, "sessionless-timeout",
           "close connections without a session this long after they open "
           "(0: never)")
      .add(max_sessionless_connections, "max-sessionless-connections",
           "connections without a session kept at once; the oldest go first "
           "(0: none)")
      .add(hello_timeout, "hello-timeout",
           "data plane: deadline of an inbound connection's hello")
      .add(chunk_timeout, "chunk-timeout",
           "data plane: deadline of each inbound chunk")
      .add(max_pending_connections, "max-pending-connections",
           "data plane: connections waiting in handshake or hello (0: none)")
      .add(max_senders, "max-senders",
           "data plane: sender threads per node (outgoing pushes at once)")
      .add(max_queued_sends, "max-queued-sends",
           "data plane: pushes queued beyond max-senders (0: none)")
      .add(max_tokens, "max-tokens",
           "data plane: unused transfer tokens per node (0: none)")
      .add(task_threads, "task-threads",
           "threads running kernels and user ops (0: hardware threads)")
      .add(max_queued_tasks, "max-queued-tasks",
           "tasks waiting for a task thread; beyond it resource_exhausted "
           "(0: none)")
      .add(max_sleep, "max-sleep", "longest 'sleep' op a task may ask for")
      .add(fetch_policy, "fetch-policy", "deny, revealed-only or allow")
      .add(stream_threshold, "stream-threshold",
           "drivers: put and fetch values of at least this many bytes over "
           "the workers' data ports (0: never)")
      .add(operator_secret_file, "operator-secret-file",
           "file with the operator secret (owner-only, >= 32 chars)")
      .add(max_sessions, "max-sessions",
           "sessions a worker keeps open at once (0: none)")
      .add(principals_file, "principals-file",
           "workers: \"name secret\" lines (owner-only file)")
      .add(principal_file, "principal-file",
           "drivers: file with \"name secret\" to act as")
      .add(shared_roots, "shared-roots",
           "read-only directories of shared fs:// datasets")
      .add(oss_endpoint, "oss-endpoint",
           "workers: S3-compatible service of oss:// objects, "
           "http(s)://host[:port] (empty: no oss://)")
      .add(oss_region, "oss-region", "region oss:// requests are signed for")
      .add(oss_addressing, "oss-addressing",
           "path (host/bucket/key) or virtual (bucket.host/key)")
      .add(oss_buckets, "oss-buckets",
           "buckets (or bucket/prefix) this worker's oss:// objects live in")
      .add(oss_shared_buckets, "oss-shared-buckets",
           "read-only buckets (or bucket/prefix) of shared datasets")
      .add(oss_credentials_file, "oss-credentials-file",
           "owner-only AWS credentials file (empty: AWS_ACCESS_KEY_ID and "
           "AWS_SECRET_ACCESS_KEY)")
      .add(oss_profile, "oss-profile", "profile in oss-credentials-file")
      .add(oss_part_size, "oss-part-size",
           "multipart part and read range size in bytes (5 MiB .. 5 GiB)")
      .add(oss_parts_in_flight, "oss-parts-in-flight",
           "parts or ranges moving at once per object")
      .add(oss_retries, "oss-retries",
           "attempts per oss:// request on 5xx, throttling, network errors")
      .add(oss_ca_file, "oss-ca-file", "CA bundle to verify an https service")
      .add(allow_insecure, "allow-insecure",
           "serve a non-loopback host without TLS (unsafe)")
      .add(timeout, "timeout",
           "deadline of every remote request and of connecting")
      .add(chunk_size, "chunk-size", "transfer chunk size in bytes")
      .add(window, "window", "transfer bytes in flight per transfer")
      .add(heartbeat_interval, "heartbeat-interval",
           "heartbeat period between nodes (0: off)")
      .add(heartbeat_timeout, "heartbeat-timeout",
           "drop a peer silent for this long")
      .add(demo_rows, "demo-rows", "demo job: rows per party")
      .add(demo_seed, "demo-seed", "demo job: data seed");
}

caf::error config::load(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg{argv[i]};
    if (arg == "-h" || arg == "--help" || arg == "-?") {
      cli_helptext_printed = true;
      return {};
    }
  }
  if (auto err = parse(argc, argv))
    return make_error(errc::invalid_argument,
                      "bad configuration: " + caf::to_string(err));
  for (auto& arg : remainder)
    return make_error(errc::invalid_argument,
                      "unexpected argument '" + arg
                          + "' (options need --name=value)");
  // CAF accepts unknown INI keys silently: check the objstore group.
  if (auto i = content.find("objstore"); i != content.end()) {
    if (auto group = caf::get_if<caf::settings>(&i->second)) {
      auto& names = option_names();
      for (auto& [key, value] : *group)
        if (std::find(names.begin(), names.end(), key) == names.end())
          return make_error(errc::invalid_argument,
                            "unknown option 'objstore." + key + "'");
    }
  }
  if (auto err = check_ini_file())
    return err;
  if (auto err = validate())
    return err;
  // Mutual TLS (CAF's openssl.* options): validated here, because CAF
  // aborts or hangs on some bad TLS configurations.
  auto tls = make_tls_options();
  if (auto err = validate_tls(tls))
    return err;
  apply_tls(*this, tls);
  // configure_system set the defaults; these options win (0 turns off).
  set_heartbeats(*this, heartbeat_interval, heartbeat_timeout);
  // connect_worker's overload without a deadline reads it from here.
  set("objstore.timeout", timeout);
  return {};
}

std::string config::help_text(std::string_view usage) const {
  std::string out{usage};
  out += "\n\nobjstore options (command line --objstore.NAME=VALUE, or "
         "NAME=VALUE"
         "\nunder [objstore] in caf-application.ini / --config-file=PATH):\n";
  for (auto& opt : custom_options_) {
    if (opt.category() != "objstore")
      continue;
    std::string line = "  --objstore.";
    line.append(opt.long_name().data(), opt.long_name().size());
    line += '=';
    line.append(opt.type_name().data(), opt.type_name().size());
    if (line.size() < 44)
      line.resize(44, ' ');
    else
      line += ' ';
    line.append(opt.description().data(), opt.description().size());
    if (auto value = opt.get())
      line += " [default: " + caf::to_string(*value) + "]";
    out += line + '\n';
  }
  out += "\nMutual TLS: openssl.certificate, openssl.key, openssl.cafile,"
         "\nopenssl.passphrase. Every CAF option: --long-help.\n";
  return out;
}

caf::error config::check_ini_file() const {
  // CAF 0.17 drops INI values of the wrong type ("abc" for a port) and whole
  // misspelled sections without a word: re-read the file untyped and check
  // every value against its declared option.
  auto path = caf::get_or(content, "config-file", config_file_path);
  std::ifstream in{path};
  if (!in)
    return {}; // no default caf-application.ini; a named one CAF checked
  auto raw = parse_config(in);
  if (!raw)
    return make_error(errc::invalid_argument,
                      path + ": " + caf::to_string(raw.error()));
  static const std::set<std::string> sections{
      "objstore", "openssl",       "middleman", "scheduler", "logger",
      "stream",   "work-stealing", "global",    "caf",       "config-file"};
  for (auto& [section, value] : *raw) {
    if (sections.count(section) == 0)
      return make_error(errc::invalid_argument,
                        path + ": unknown section [" + section + "]");
    auto group = caf::get_if<caf::settings>(&value);
    if (group == nullptr)
      continue;
    for (auto& [key, x] : *group) {
      auto opt = custom_options_.qualified_name_lookup(section, key);
      if (opt == nullptr) {
        if (section == "objstore")
          return make_error(errc::invalid_argument,
                            path + ": unknown option 'objstore." + key + "'");
        continue; // CAF's own sections: CAF checks what it knows
      }
      if (auto err = opt->check(x))
        return make_error(errc::invalid_argument,
                          path + ": bad value " + caf::to_string(x) + " for '"
                              + section + "." + key + "'");
    }
  }
  return {};
}

caf::error config::validate() const {
  if (role != "worker" && role != "driver")
    return bad("role", "'" + role + "' is neither worker nor driver");
  if (port > 65535)
    return bad("port", std::to_string(port) + " is not a port");
  if (metrics_port > 65535)
    return bad("metrics-port", std::to_string(metrics_port) + " is not a port");
  if (auto least = log::parse_level(log_level); !least)
    return bad("log-level", message_of(least.error()));
  if (auto p = parse_fetch_policy(fetch_policy); !p)
    return bad("fetch-policy", message_of(p.error()));
  for (auto& root : fs_roots)
    if (!std::filesystem::path{root}.is_absolute())
      return bad("fs-roots", "'" + root + "' is not an absolute path");
  if (!spill_dir.empty() && !std::filesystem::path{spill_dir}.is_absolute())
    return bad("spill-dir", "'" + spill_dir + "' is not an absolute path");
  if (!(spill_threshold >= 0 && spill_threshold <= 1))
    return bad("spill-threshold", "must be 0 .. 1");
  if (timeout.count() <= 0)
    return bad("timeout", "must be positive");
  if (chunk_size == 0 || chunk_size > (64u << 20))
    return bad("chunk-size", "must be 1 byte .. 64 MiB");
  if (window < chunk_size)
    return bad("window", "must be at least chunk-size");
  if (heartbeat_interval.count() > 0 && heartbeat_timeout <= heartbeat_interval)
    return bad("heartbeat-timeout", "must exceed heartbeat-interval");
  if (sessionless_timeout.count() < 0)
    return bad("sessionless-timeout", "must not be negative");
  if (hello_timeout.count() <= 0)
    return bad("hello-timeout", "must be positive");
  if (chunk_timeout.count() <= 0)
    return bad("chunk-timeout", "must be positive");
  if (task_threads > 1024)
    return bad("task-threads", "at most 1024");
  if (max_sleep.count() < 0)
    return bad("max-sleep", "must not be negative");
  if (max_senders == 0)
    return bad("max-senders", "must be at least 1");
  if (auto secret = read_operator_secret(); !secret)
    return secret.error();
  if (auto xs = read_principals(); !xs)
    return xs.error();
  if (auto x = read_principal(); !x)
    return x.error();
  for (auto& root : shared_roots)
    if (!std::filesystem::path{root}.is_absolute())
      return bad("shared-roots", "'" + root + "' is not an absolute path");
  if (auto oss = make_oss_options(); !oss)
    return oss.error();
  if (role == "worker" && !is_loopback_host(host)
      && !make_tls_options().enabled() && !allow_insecure)
    return bad(
        "host",
        "'" + host
            + "' is not a loopback interface and TLS is off: anyone "
              "who reaches the port could talk to this node "
              "unauthenticated. Configure openssl.certificate, "
              "openssl.key and openssl.cafile, or set "
              "objstore.allow-insecure (flag --objstore.allow-insecure, or "
              "allow-insecure=true in the INI file) on a trusted "
              "network");
  if (role == "driver" && cluster.empty())
    return bad("cluster", "a driver needs the worker endpoints");
  if (!cluster.empty()) {
    if (auto spec = make_cluster_spec(); !spec)
      return bad("cluster", message_of(spec.error()));
    if (role == "worker" && rank >= cluster.size())
      return bad("rank", std::to_string(rank) + " is outside the cluster of "
                             + std::to_string(cluster.size()));
  }
  return {};
}

caf::expected<node_options> config::make_node_options() const {
  node_options result;
  result.rank = static_cast<uint32_t>(rank);
  auto policy = parse_fetch_policy(fetch_policy);
  if (!policy)
    return std::move(policy.error());
  result.policy = *policy;
  result.store.memory_limit = memory_limit;
  result.store.max_object_size = max_object_size;
  result.store.spill_dir = spill_dir;
  result.store.spill_threshold = spill_threshold;
  // Stable across restarts (a restarted node cleans up after a crashed
  // one) and distinct for workers of one host with their own ports.
  result.store.spill_key = "rank-" + std::to_string(rank);
  if (port != 0)
    result.store.spill_key += "-port-" + std::to_string(port);
  result.max_graph_ops = max_graph_ops;
  result.max_graph_bytes = max_graph_bytes;
  for (auto& root : fs_roots)
    result.store.fs_roots.emplace_back(root);
  result.data = make_data_plane_options();
  result.max_sessions = max_sessions;
  result.tasks.threads = task_threads;
  result.tasks.max_queued = max_queued_tasks;
  result.max_sleep
      = std::chrono::duration_cast<std::chrono::milliseconds>(max_sleep);
  result.connections.sessionless_timeout
      = std::chrono::duration_cast<std::chrono::milliseconds>(
          sessionless_timeout);
  result.connections.max_sessionless = max_sessionless_connections;
  result.members = cluster; // a worker transfers only to these when set
  auto secret = read_operator_secret();
  if (!secret)
    return std::move(secret.error());
  result.operator_secret = std::move(*secret);
  auto principals = read_principals();
  if (!principals)
    return std::move(principals.error());
  result.principals = std::move(*principals);
  for (auto& root : shared_roots)
    result.store.fs_shared_roots.emplace_back(root);
  auto oss = make_oss_options();
  if (!oss)
    return std::move(oss.error());
  result.store.oss = std::move(*oss);
  return result;
}

caf::expected<std::optional<oss_backend_options>>
config::make_oss_options() const {
  if (oss_endpoint.empty()) {
    if (!oss_buckets.empty() || !oss_shared_buckets.empty())
      return bad("oss-endpoint", "oss-buckets are set but no endpoint");
    return std::optional<oss_backend_options>{};
  }
  oss_backend_options result;
  result.endpoint = oss_endpoint;
  result.region = oss_region;
  if (oss_addressing != "path" && oss_addressing != "virtual")
    return bad("oss-addressing",
               "'" + oss_addressing + "' is neither path nor virtual");
  result.virtual_hosted = oss_addressing == "virtual";
  result.buckets = oss_buckets;
  result.shared_buckets = oss_shared_buckets;
  if (result.buckets.empty() && result.shared_buckets.empty())
    return bad("oss-buckets", "an oss-endpoint needs oss-buckets or "
                              "oss-shared-buckets");
  auto creds = load_oss_credentials(oss_credentials_file, oss_profile);
  if (!creds)
    return bad(oss_credentials_file.empty() ? "oss-endpoint"
                                            : "oss-credentials-file",
               message_of(creds.error()));
  result.credentials = std::move(*creds);
  result.part_size = oss_part_size;
  result.parts_in_flight = oss_parts_in_flight;
  result.max_attempts = static_cast<int>(std::min<size_t>(oss_retries, 100));
  result.timeout
      = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  result.ca_file = oss_ca_file;
  return std::optional<oss_backend_options>{std::move(result)};
}

namespace {

/// Lines of an owner-only file named by option `key` (secrets inside).
caf::expected<std::vector<std::string>>
read_private_lines(const std::string& key, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto status = fs::status(path, ec);
  if (ec || !fs::is_regular_file(status))
    return bad(key, "'" + path + "' is not a readable file");
  if ((status.permissions() & (fs::perms::group_all | fs::perms::others_all))
      != fs::perms::none)
    return bad(key,
               "'" + path + "' is readable by group or others (chmod 600)");
  std::ifstream in{path};
  if (!in)
    return bad(key, "'" + path + "' cannot be read");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
      line.pop_back();
    if (!line.empty() && line.front() != '#')
      lines.push_back(std::move(line));
  }
  return lines;
}

/// Splits "name secret"; errors name the option, file and line number.
caf::expected<std::pair<std::string, std::string>>
parse_principal_line(const std::string& key, const std::string& path,
                     const std::string& line, size_t number) {
  auto where = "'" + path + "' line " + std::to_string(number);
  auto space = line.find(' ');
  if (space == std::string::npos || space == 0)
    return bad(key, where + ": expected \"name secret\"");
  auto name = line.substr(0, space);
  auto secret = line.substr(line.find_first_not_of(' ', space));
  if (name == "operator" || name.starts_with("session-"))
    return bad(key, where + ": the name '" + name + "' is reserved");
  if (secret.size() < 32)
    return bad(key, where + ": secret of fewer than 32 characters");
  return std::make_pair(std::move(name), std::move(secret));
}

} // namespace

caf::expected<std::map<std::string, std::string>>
config::read_principals() const {
  std::map<std::string, std::string> result;
  if (principals_file.empty())
    return result;
  auto lines = read_private_lines("principals-file", principals_file);
  if (!lines)
    return std::move(lines.error());
  for (size_t i = 0; i < lines->size(); ++i) {
    auto x = parse_principal_line("principals-file", principals_file,
                                  (*lines)[i], i + 1);
    if (!x)
      return std::move(x.error());
    result[x->first] = std::move(x->second);
  }
  return result;
}

caf::expected<std::pair<std::string, std::string>>
config::read_principal() const {
  if (principal_file.empty())
    return std::pair<std::string, std::string>{};
  auto lines = read_private_lines("principal-file", principal_file);
  if (!lines)
    return std::move(lines.error());
  if (lines->size() != 1)
    return bad("principal-file",
               "'" + principal_file + "' must hold one \"name secret\" line");
  return parse_principal_line("principal-file", principal_file, lines->front(),
                              1);
}

caf::expected<std::string> config::read_operator_secret() const {
  if (operator_secret_file.empty())
    return std::string{};
  auto lines = read_private_lines("operator-secret-file", operator_secret_file);
  if (!lines)
    return std::move(lines.error());
  if (lines->size() != 1 || lines->front().size() < 32)
    return bad("operator-secret-file",
               "'" + operator_secret_file
                   + "' must hold one line of at least 32 characters (use "
                     "e.g. `openssl rand -hex 32`)");
  return lines->front();
}

data_plane_options config::make_data_plane_options() const {
  data_plane_options result;
  result.bind_host = host;
  result.chunk_size = chunk_size;
  result.window = window;
  result.max_object_size = max_object_size;
  result.max_incoming_per_peer = max_transfers_per_peer;
  result.tls = make_tls_options();
  result.io_timeout
      = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  result.hello_timeout
      = std::chrono::duration_cast<std::chrono::milliseconds>(hello_timeout);
  result.handshake_timeout = result.hello_timeout;
  result.chunk_timeout
      = std::chrono::duration_cast<std::chrono::milliseconds>(chunk_timeout);
  result.max_pending_connections = max_pending_connections;
  result.max_senders = max_senders;
  result.max_queued_sends = max_queued_sends;
  result.max_tokens = max_tokens;
  return result;
}

caf::expected<cluster_spec> config::make_cluster_spec() const {
  std::string joined;
  for (auto& ep : cluster) {
    if (!joined.empty())
      joined += ',';
    joined += ep;
  }
  return cluster_spec::parse(joined);
}

tls_options config::make_tls_options() const {
  return {openssl_certificate, openssl_key, openssl_cafile, openssl_passphrase};
}

driver_actor_options config::make_driver_options() const {
  driver_actor_options result;
  result.timeout = timeout;
  result.stream_threshold = stream_threshold;
  result.data.chunk_size = chunk_size;
  result.data.window = window;
  result.data.max_senders = max_senders;
  result.data.tls = make_tls_options();
  if (auto secret = read_operator_secret())
    result.operator_secret = std::move(*secret); // validate() reported errors
  if (auto x = read_principal()) {
    result.principal = std::move(x->first);
    result.principal_secret = std::move(x->second);
  }
  return result;
}

} // namespace objstore
