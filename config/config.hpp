#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor_system_config.hpp>
#include <caf/timespan.hpp>

#include "actors/dataplane/data_plane.hpp"
#include "actors/dataplane/tls.hpp"
#include "actors/driver/driver.hpp"
#include "actors/system.hpp"
#include "actors/worker/node.hpp"
#include "store/oss_backend.hpp"

namespace objstore {

/// Half the memory this process may use: the smaller of the machine's
/// physical memory and the cgroup's `memory.max` (v2) or
/// `memory.limit_in_bytes` (v1). Ray gives its object store 30 % of the
/// memory; objstore's mem:// store is also the working memory of kernels.
size_t default_memory_limit();

/// The default objstore.spill-dir: `<temp dir>/objstore-spill-<uid>`.
/// Each worker spills below it to `rank-<rank>[-port-<port>]/` (see
/// spill_directory for how nodes sharing it stay apart).
std::string default_spill_dir();

/// The one configuration of an objstore process. Every option is declared
/// once (in the constructor) with its default and help text, and is read
/// from `caf-application.ini` (or `--config-file=`) and the command line
/// (`--objstore.rank=1`; the command line wins).
///
/// CAF 0.17 silently ignores unknown INI keys and some bad values, so
/// `load` validates on its own: unknown `objstore.*` keys, missing required
/// keys and bad values are errors naming the key.
class config : public caf::actor_system_config {
public:
  /// "worker" (serve a node) or "driver" (run the demo job).
  std::string role = "worker";
  /// This worker's rank: its position in `cluster`.
  size_t rank = 0;
  /// Interface the worker (and its data plane) binds.
  std::string host = "127.0.0.1";
  /// Port the worker publishes on; 0 picks a free port.
  size_t port = 0;
  /// Write the bound port to this file once listening (for scripts).
  std::string port_file;
  /// Port of the worker's Prometheus endpoint (GET /metrics); 0 = off,
  /// unless `metrics_port_file` is set: then a free port is picked.
  size_t metrics_port = 0;
  /// Interface the metrics endpoint binds (loopback unless configured).
  std::string metrics_host = "127.0.0.1";
  /// Write the metrics endpoint's bound port to this file (for scripts).
  std::string metrics_port_file;
  /// Least severe log level printed: trace, debug, info, warn, error or
  /// off.
  std::string log_level = "info";
  /// Worker endpoints "host:port" in rank order (driver and CLI).
  std::vector<std::string> cluster;
  /// Directories that may hold fs:// objects (absolute paths).
  std::vector<std::string> fs_roots;
  /// Limit for mem:// payload bytes, kernel allocations included; 0 =
  /// none. Default: default_memory_limit().
  size_t memory_limit = default_memory_limit();
  /// Workers: where unpinned mem:// objects spill when the bytes in memory
  /// pass `spill_threshold` × `memory_limit` (restored on use under the
  /// same URI). Empty: never spill. Default: default_spill_dir().
  std::string spill_dir = default_spill_dir();
  /// Fraction of `memory_limit` above which objects spill; 0 = never.
  double spill_threshold = object_store_options{}.spill_threshold;
  /// Largest accepted object in bytes; 0 = none.
  size_t max_object_size = 0;
  /// Most ops of one task graph (regions included); 0 = none.
  size_t max_graph_ops = node_options{}.max_graph_ops;
  /// Most bytes of ops, attributes and input URIs of one task; 0 = none.
  size_t max_graph_bytes = node_options{}.max_graph_bytes;
  /// Inbound transfers served at once from one peer address; 0 = none.
  size_t max_transfers_per_peer = data_plane_options{}.max_incoming_per_peer;
  /// File holding the operator secret (one line, at least 32 characters,
  /// readable by its owner only). Workers: sessions opened with it may list
  /// every object and read node-wide counters. Drivers and the CLI: the
  /// secret they present. Empty: none.
  std::string operator_secret_file;
  /// Workers: file of principals, one "name secret" per line (owner-only;
  /// secrets of at least 32 characters). A session opened as one owns its
  /// fs:// objects under that name across sessions and restarts.
  std::string principals_file;
  /// Drivers and the CLI: file with one line "name secret": the principal
  /// the sessions act as (owner of the fs:// objects they write).
  std::string principal_file;
  /// Workers: read-only shared roots (datasets every session may read).
  std::vector<std::string> shared_roots;
  /// Workers: the S3-compatible service of oss:// objects
  /// (`https://host[:port]`; empty: no oss://), the region requests are
  /// signed for, "path" or "virtual" (hosted) addressing, the buckets (or
  /// `bucket/prefix`es) this node serves and those it only reads, where the
  /// credentials are (an owner-only AWS credentials file and its profile;
  /// empty: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), multipart part size
  /// and parts moving at once per object, attempts per request, and a CA
  /// bundle for https. Secrets are never options (nor dumped).
  std::string oss_endpoint;
  std::string oss_region = oss_backend_options{}.region;
  std::string oss_addressing = "path";
  std::vector<std::string> oss_buckets;
  std::vector<std::string> oss_shared_buckets;
  std::string oss_credentials_file;
  std::string oss_profile = "default";
  size_t oss_part_size = oss_backend_options{}.part_size;
  size_t oss_parts_in_flight = oss_backend_options{}.parts_in_flight;
  size_t oss_retries = static_cast<size_t>(oss_backend_options{}.max_attempts);
  std::string oss_ca_file;
  /// Sessions a worker keeps open at once (0: no limit).
  size_t max_sessions = node_options{}.max_sessions;
  /// Serve a non-loopback interface without TLS (plain BASP and data
  /// plane: anyone who reaches the port can speak to the node). Off: such a
  /// worker refuses to start and says why.
  bool allow_insecure = false;
  /// Workers: a connection to the worker's port that carries no session is
  /// closed this long after it opened (0: never), and beyond
  /// `max_sessionless_connections` such connections the oldest go first.
  caf::timespan sessionless_timeout = std::chrono::duration_cast<caf::timespan>(
      connection_guard_options{}.sessionless_timeout);
  size_t max_sessionless_connections
      = connection_guard_options{}.max_sessionless;
  /// Data plane: deadline of an inbound connection's hello and of each
  /// chunk; connections waiting in TLS handshake or hello at once; sender
  /// threads and pushes queued per node; transfer tokens per node.
  caf::timespan hello_timeout = std::chrono::duration_cast<caf::timespan>(
      data_plane_options{}.hello_timeout);
  caf::timespan chunk_timeout = std::chrono::duration_cast<caf::timespan>(
      data_plane_options{}.chunk_timeout);
  size_t max_pending_connections = data_plane_options{}.max_pending_connections;
  size_t max_senders = data_plane_options{}.max_senders;
  size_t max_queued_sends = data_plane_options{}.max_queued_sends;
  size_t max_tokens = data_plane_options{}.max_tokens;
  /// Workers: threads running kernels and user ops (0: the hardware
  /// threads), tasks waiting for one (0: no limit), and the longest `sleep`
  /// op a task may ask for (0: no limit).
  size_t task_threads = task_executor_options{}.threads;
  size_t max_queued_tasks = task_executor_options{}.max_queued;
  caf::timespan max_sleep
      = std::chrono::duration_cast<caf::timespan>(node_options{}.max_sleep);
  /// deny | revealed-only | allow.
  std::string fetch_policy = "revealed-only";
  /// Deadline of every remote request, and of connecting to each worker.
  caf::timespan timeout = std::chrono::seconds{30};
  /// Drivers: puts and fetches of values of at least this many bytes
  /// stream over the workers' data ports (0: never).
  size_t stream_threshold = driver_actor_options{}.stream_threshold;
  /// Transfer chunk size in bytes.
  size_t chunk_size = 1u << 20;
  /// Transfer credit window in bytes (bytes in flight per transfer).
  size_t window = 8u << 20;
  /// Heartbeat period between nodes; a silent peer is dropped after
  /// `heartbeat_timeout`. 0 disables heartbeats.
  caf::timespan heartbeat_interval = default_heartbeat_interval;
  caf::timespan heartbeat_timeout = default_heartbeat_timeout;
  /// Demo job: rows per party and the data seed.
  size_t demo_rows = 200'000;
  size_t demo_seed = 7;

  config();

  /// Parses INI file and command line, then validates. Returns an error
  /// naming the offending key or value; prints nothing. When the command
  /// line asks for help (`-h`, `--help`, `-?`) it parses nothing, sets
  /// `cli_helptext_printed` and returns no error: the program prints
  /// `help_text` and exits 0. `--long-help` stays CAF's (every option).
  caf::error load(int argc, char** argv);

  /// Usage line(s) of `program`, then every `objstore.*` option with its
  /// type, default and help, then where CAF's and TLS options are listed.
  std::string help_text(std::string_view usage) const;

  /// Re-reads the INI file untyped and checks every section and value
  /// (also called by `load`).
  caf::error check_ini_file() const;

  /// Validates the parsed values (also called by `load`).
  caf::error validate() const;

  /// Options of a worker node built from this config.
  caf::expected<node_options> make_node_options() const;

  /// oss:// backend options built from this config (credentials loaded);
  /// none when `oss_endpoint` is empty.
  caf::expected<std::optional<oss_backend_options>> make_oss_options() const;

  /// Data plane options built from this config.
  data_plane_options make_data_plane_options() const;

  /// Cluster spec built from `cluster`.
  caf::expected<cluster_spec> make_cluster_spec() const;

  /// TLS options from CAF's openssl.certificate / key / cafile /
  /// passphrase.
  tls_options make_tls_options() const;

  /// Driver options built from this config.
  driver_actor_options make_driver_options() const;

  /// The secret in `operator_secret_file` ("" when unset). Errors:
  /// invalid_argument naming the option (unreadable, readable by group or
  /// others, too short).
  caf::expected<std::string> read_operator_secret() const;

  /// The principals of `principals_file` (empty when unset). Errors:
  /// invalid_argument naming the option and line (never a secret).
  caf::expected<std::map<std::string, std::string>> read_principals() const;

  /// The "name secret" of `principal_file` (empty pair when unset).
  caf::expected<std::pair<std::string, std::string>> read_principal() const;

  /// Names of all declared `objstore.*` options.
  static const std::vector<std::string>& option_names();
};

} // namespace objstore
