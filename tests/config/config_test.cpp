#include "config/config.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <caf/actor_system.hpp>

#include "actors/silent_listener.hpp"
#include "actors/test_pki.hpp"
#include "actors/worker/endpoint.hpp"
#include "store/error.hpp"

namespace config_test_file {
namespace {

using namespace objstore;
using namespace std::chrono_literals;

namespace {

/// Writes `text` to a unique temp INI file; removed on destruction.
struct ini_file {
  std::string path;
  explicit ini_file(const std::string& text) {
    char templ[] = "/tmp/objstore-config-XXXXXX";
    int fd = ::mkstemp(templ);
    ::close(fd);
    path = templ;
    std::ofstream{path} << text;
  }
  ~ini_file() { std::remove(path.c_str()); }
};

caf::error load(config& cfg, std::vector<std::string> args) {
  std::vector<char*> argv;
  static std::string prog = "objstore-node";
  argv.push_back(prog.data());
  for (auto& a : args)
    argv.push_back(a.data());
  return cfg.load(static_cast<int>(argv.size()), argv.data());
}

} // namespace

TEST(config, defaults_are_valid) {
  config cfg;
  EXPECT_FALSE(load(cfg, {})) << "defaults must validate";
  EXPECT_EQ(cfg.role, "worker");
  EXPECT_EQ(cfg.fetch_policy, "revealed-only");
}

TEST(config, reads_ini_and_command_line_wins) {
  ini_file ini{"[objstore]\nrole=\"worker\"\nrank=1\nport=4243\n"
               "cluster=[\"127.0.0.1:4242\", \"127.0.0.1:4243\"]\n"
               "fs-roots=[\"/tmp/objstore-root\"]\nfetch-policy=\"allow\"\n"
               "timeout=250ms\n"};
  config cfg;
  auto err = load(cfg, {"--config-file=" + ini.path, "--objstore.port=5000"});
  ASSERT_FALSE(err) << describe(err);
  EXPECT_EQ(cfg.rank, 1u);
  EXPECT_EQ(cfg.port, 5000u);
  EXPECT_EQ(cfg.cluster.size(), 2u);
  EXPECT_EQ(cfg.fetch_policy, "allow");
  EXPECT_EQ(cfg.timeout, std::chrono::milliseconds{250});
  auto spec = cfg.make_cluster_spec();
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->workers[1].port, 4243);
  auto opts = cfg.make_node_options();
  ASSERT_TRUE(opts);
  EXPECT_EQ(opts->policy, fetch_policy::allow);
  EXPECT_EQ(opts->store.fs_roots.size(), 1u);
}

TEST(config, unknown_ini_key_is_an_error) {
  ini_file ini{"[objstore]\nrnak=1\n"};
  config cfg;
  auto err = load(cfg, {"--config-file=" + ini.path});
  ASSERT_TRUE(err);
  EXPECT_EQ(code_of(err), errc::invalid_argument);
  EXPECT_NE(message_of(err).find("objstore.rnak"), std::string::npos)
      << describe(err);
}

TEST(config, missing_config_file_is_an_error) {
  config cfg;
  auto err = load(cfg, {"--config-file=/nonexistent/objstore.ini"});
  EXPECT_TRUE(err);
}

TEST(config, bad_values_name_the_key) {
  struct bad_case {
    std::vector<std::string> args;
    std::string key;
  };
  std::vector<bad_case> cases{
      {{"--objstore.role=boss"}, "objstore.role"},
      {{"--objstore.fetch-policy=sometimes"}, "objstore.fetch-policy"},
      {{"--objstore.fs-roots=[\"relative/dir\"]"}, "objstore.fs-roots"},
      {{"--objstore.port=70000"}, "objstore.port"},
      {{"--objstore.chunk-size=0"}, "objstore.chunk-size"},
      {{"--objstore.hello-timeout=0s"}, "objstore.hello-timeout"},
      {{"--objstore.chunk-timeout=0s"}, "objstore.chunk-timeout"},
      {{"--objstore.max-senders=0"}, "objstore.max-senders"},
      {{"--objstore.role=driver"}, "objstore.cluster"},
      {{"--objstore.cluster=[\"nohost\"]"}, "objstore.cluster"},
      {{"--objstore.cluster=[\"127.0.0.1:1\"]", "--objstore.rank=3"},
       "objstore.rank"},
  };
  for (auto& c : cases) {
    config cfg;
    auto err = load(cfg, c.args);
    ASSERT_TRUE(err) << c.key;
    EXPECT_NE(message_of(err).find(c.key), std::string::npos)
        << c.key << ": " << describe(err);
  }
}

TEST(config, connection_and_data_plane_limits_reach_the_node) {
  config cfg;
  ASSERT_FALSE(load(
      cfg, {"--objstore.sessionless-timeout=2s",
            "--objstore.max-sessionless-connections=7",
            "--objstore.hello-timeout=750ms", "--objstore.chunk-timeout=3s",
            "--objstore.max-pending-connections=9", "--objstore.max-senders=3",
            "--objstore.max-queued-sends=11", "--objstore.max-tokens=13"}));
  auto opts = cfg.make_node_options();
  ASSERT_TRUE(opts) << describe(opts.error());
  EXPECT_EQ(opts->connections.sessionless_timeout, 2s);
  EXPECT_EQ(opts->connections.max_sessionless, 7u);
  EXPECT_EQ(opts->data.hello_timeout, 750ms);
  EXPECT_EQ(opts->data.handshake_timeout, 750ms);
  EXPECT_EQ(opts->data.chunk_timeout, 3s);
  EXPECT_EQ(opts->data.max_pending_connections, 9u);
  EXPECT_EQ(opts->data.max_senders, 3u);
  EXPECT_EQ(opts->data.max_queued_sends, 11u);
  EXPECT_EQ(opts->data.max_tokens, 13u);
  // The defaults are the libraries' own.
  config plain;
  ASSERT_FALSE(load(plain, {}));
  auto defaults = plain.make_node_options();
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->connections.sessionless_timeout,
            connection_guard_options{}.sessionless_timeout);
  EXPECT_EQ(defaults->data.max_senders, data_plane_options{}.max_senders);
  EXPECT_EQ(defaults->data.hello_timeout, data_plane_options{}.hello_timeout);
}

TEST(config, the_default_memory_limit_is_half_the_memory) {
  config cfg;
  ASSERT_FALSE(load(cfg, {}));
  auto pages = ::sysconf(_SC_PHYS_PAGES);
  auto page = ::sysconf(_SC_PAGESIZE);
  auto physical = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
  EXPECT_GT(cfg.memory_limit, 0u) << "not unlimited";
  EXPECT_LE(cfg.memory_limit, physical / 2);
  EXPECT_EQ(cfg.memory_limit, default_memory_limit());
  auto opts = cfg.make_node_options();
  ASSERT_TRUE(opts);
  EXPECT_EQ(opts->store.memory_limit, cfg.memory_limit);
  config off;
  ASSERT_FALSE(load(off, {"--objstore.memory-limit=0"}));
  EXPECT_EQ(off.memory_limit, 0u) << "0 still means none";
}

TEST(config, spilling_is_on_by_default_in_a_per_user_temp_directory) {
  config cfg;
  ASSERT_FALSE(load(cfg, {"--objstore.rank=2"}));
  EXPECT_EQ(cfg.spill_dir, default_spill_dir());
  EXPECT_NE(cfg.spill_dir.find("objstore-spill-" + std::to_string(::getuid())),
            std::string::npos);
  auto opts = cfg.make_node_options();
  ASSERT_TRUE(opts);
  EXPECT_EQ(opts->store.spill_dir, cfg.spill_dir);
  EXPECT_EQ(opts->store.spill_threshold, 0.8);
  EXPECT_EQ(opts->store.spill_key, "rank-2");
  config custom;
  ASSERT_FALSE(
      load(custom, {"--objstore.spill-dir=/var/tmp/x",
                    "--objstore.spill-threshold=0.5", "--objstore.port=4250"}));
  opts = custom.make_node_options();
  ASSERT_TRUE(opts);
  EXPECT_EQ(opts->store.spill_dir, "/var/tmp/x");
  EXPECT_EQ(opts->store.spill_threshold, 0.5);
  EXPECT_EQ(opts->store.spill_key, "rank-0-port-4250");
  config off;
  ASSERT_FALSE(load(off, {"--objstore.spill-threshold=0"}));
  EXPECT_EQ(off.make_node_options()->store.spill_threshold, 0.0);
  ini_file ini{"[objstore]\nspill-dir=\"\"\n"};
  config none;
  ASSERT_FALSE(load(none, {"--config-file=" + ini.path}));
  EXPECT_TRUE(none.make_node_options()->store.spill_dir.empty());
  for (auto bad :
       {"--objstore.spill-dir=relative/dir", "--objstore.spill-threshold=1.5",
        "--objstore.spill-threshold=-0.1"}) {
    config cfg2;
    auto err = load(cfg2, {bad});
    ASSERT_TRUE(err) << bad;
    EXPECT_NE(message_of(err).find("objstore.spill-"), std::string::npos)
        << message_of(err);
  }
}

TEST(config, unparsable_values_and_stray_arguments_are_errors) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"--objstore.rank=many"}, {"stray"}, {"--objstore.timeout=soon"}}) {
    config cfg;
    EXPECT_TRUE(load(cfg, args)) << args.front();
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in{path};
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The shared test PKI (test_pki.hpp) plus an owner-only operator secret
/// beside it, written once per test binary.
const std::filesystem::path& deployment_files() {
  static const std::filesystem::path& dir
      = []() -> const std::filesystem::path& {
    auto& result = test::pki_dir();
    std::ofstream{result / "operator-secret"} << std::string(64, 's') << '\n';
    std::filesystem::permissions(result / "operator-secret",
                                 std::filesystem::perms::owner_read
                                     | std::filesystem::perms::owner_write);
    return result;
  }();
  return dir;
}

TEST(config, a_non_loopback_worker_without_tls_is_refused) {
  config cfg;
  auto err = load(cfg, {"--objstore.host=0.0.0.0"});
  ASSERT_TRUE(err);
  EXPECT_NE(message_of(err).find("objstore.host"), std::string::npos)
      << describe(err);
  EXPECT_NE(message_of(err).find("TLS is off"), std::string::npos)
      << describe(err);
  config insecure;
  EXPECT_FALSE(
      load(insecure, {"--objstore.host=0.0.0.0", "--objstore.allow-insecure"}));
  auto& dir = deployment_files();
  config tls;
  EXPECT_FALSE(
      load(tls, {"--objstore.host=0.0.0.0",
                 "--openssl.certificate=" + (dir / "node0.pem").string(),
                 "--openssl.key=" + (dir / "node0.key").string(),
                 "--openssl.cafile=" + (dir / "ca.pem").string()}));
  config loopback;
  EXPECT_FALSE(load(loopback, {"--objstore.host=127.0.0.2"}));
}

TEST(config, operator_secret_file_must_be_private_and_long) {
  auto& dir = deployment_files();
  config good;
  EXPECT_FALSE(load(good, {"--objstore.operator-secret-file="
                           + (dir / "operator-secret").string()}));
  auto opts = good.make_node_options();
  ASSERT_TRUE(opts);
  EXPECT_EQ(opts->operator_secret, std::string(64, 's'));
  EXPECT_EQ(good.make_driver_options().operator_secret, std::string(64, 's'));
  auto open = dir / "open-secret";
  std::ofstream{open} << std::string(64, 's') << '\n';
  std::filesystem::permissions(open, std::filesystem::perms::owner_read
                                         | std::filesystem::perms::group_read);
  config readable;
  auto err
      = load(readable, {"--objstore.operator-secret-file=" + open.string()});
  ASSERT_TRUE(err);
  EXPECT_NE(message_of(err).find("readable by group or others"),
            std::string::npos)
      << describe(err);
  auto short_file = dir / "short-secret";
  std::ofstream{short_file} << "hunter2\n";
  std::filesystem::permissions(short_file, std::filesystem::perms::owner_read);
  config weak;
  err = load(weak, {"--objstore.operator-secret-file=" + short_file.string()});
  ASSERT_TRUE(err);
  EXPECT_NE(message_of(err).find("at least 32 characters"), std::string::npos)
      << describe(err);
  EXPECT_EQ(message_of(err).find("hunter2"), std::string::npos)
      << "the secret never appears in errors";
}

TEST(config, example_ini_files_are_valid) {
  namespace fs = std::filesystem;
  size_t checked = 0;
  for (auto& entry : fs::recursive_directory_iterator(
           fs::path{OBJSTORE_SOURCE_DIR} / "examples")) {
    if (entry.path().extension() != ".ini")
      continue;
    std::vector<std::string> args{"--config-file=" + entry.path().string()};
    // Files a deployment provides (/etc/objstore/...) come from a throwaway
    // PKI and secret here; the command line overrides the INI file, so
    // everything else in the example is still checked.
    if (read_file(entry.path()).find("/etc/objstore/") != std::string::npos) {
      auto& dir = deployment_files();
      args.push_back("--openssl.certificate=" + (dir / "node0.pem").string());
      args.push_back("--openssl.key=" + (dir / "node0.key").string());
      args.push_back("--openssl.cafile=" + (dir / "ca.pem").string());
      if (read_file(entry.path()).find("operator-secret-file")
          != std::string::npos)
        args.push_back("--objstore.operator-secret-file="
                       + (dir / "operator-secret").string());
    }
    config cfg;
    auto err = load(cfg, args);
    EXPECT_FALSE(err) << entry.path() << ": " << describe(err);
    ++checked;
  }
  EXPECT_GE(checked, 6u);
}

TEST(config, ini_values_of_the_wrong_type_are_errors) {
  for (auto text : {"[objstore]\nport=\"abc\"\n", "[objstore]\nrank=-1\n",
                    "[objstore]\ntimeout=\"soon\"\n"}) {
    ini_file ini{text};
    config cfg;
    auto err = load(cfg, {"--config-file=" + ini.path});
    ASSERT_TRUE(err) << text;
    EXPECT_NE(message_of(err).find("bad value"), std::string::npos)
        << describe(err);
    EXPECT_NE(message_of(err).find(ini.path), std::string::npos)
        << "the error names the file";
  }
}

TEST(config, misspelled_sections_are_errors) {
  ini_file ini{"[objstor]\nrank=1\n"};
  config cfg;
  auto err = load(cfg, {"--config-file=" + ini.path});
  ASSERT_TRUE(err);
  EXPECT_NE(message_of(err).find("[objstor]"), std::string::npos)
      << describe(err);
}

TEST(config, heartbeats_default_to_the_workers_and_zero_turns_them_off) {
  auto interval = [](const config& cfg) {
    return caf::get_or(cfg, "middleman.heartbeat-interval", caf::timespan{0});
  };
  auto timeout = [](const config& cfg) {
    return caf::get_or(cfg, "middleman.connection-timeout", caf::timespan{0});
  };
  config defaults;
  ASSERT_FALSE(load(defaults, {}));
  EXPECT_EQ(defaults.heartbeat_interval, default_heartbeat_interval);
  EXPECT_EQ(defaults.heartbeat_timeout, default_heartbeat_timeout);
  EXPECT_EQ(interval(defaults), default_heartbeat_interval);
  EXPECT_EQ(timeout(defaults), default_heartbeat_timeout);
  config tuned;
  ASSERT_FALSE(load(tuned, {"--objstore.heartbeat-interval=200ms",
                            "--objstore.heartbeat-timeout=2s"}));
  EXPECT_EQ(interval(tuned), caf::timespan{200ms});
  EXPECT_EQ(timeout(tuned), caf::timespan{2s});
  // configure_system turned the interval on; the option turns it off.
  config off;
  ASSERT_FALSE(load(off, {"--objstore.heartbeat-interval=0s"}));
  EXPECT_EQ(interval(off), caf::timespan{0});
  EXPECT_EQ(timeout(off), caf::timespan{0});
}

TEST(config, objstore_timeout_is_the_connect_deadline) {
  test::silent_listener silent;
  config cfg;
  ASSERT_FALSE(load(cfg, {"--objstore.timeout=700ms"}));
  caf::actor_system sys{cfg};
  auto start = std::chrono::steady_clock::now();
  auto w = connect_worker(sys, "127.0.0.1", silent.port());
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(w);
  EXPECT_EQ(code_of(w.error()), errc::timeout) << describe(w.error());
  EXPECT_GE(took, 650ms);
  EXPECT_LT(took, 2700ms) << "objstore.timeout was 700 ms, not the default "
                          << "30 s";
}

} // namespace
} // namespace config_test_file

namespace config_test_file {
namespace {

/// An owner-only AWS credentials file with a known secret.
struct credentials_file {
  std::string path;
  static constexpr auto secret = "oss-secret-never-shown-7c1e";
  credentials_file() {
    char templ[] = "/tmp/objstore-oss-creds-XXXXXX";
    int fd = ::mkstemp(templ);
    ::close(fd);
    path = templ;
    std::ofstream{path} << "[default]\naws_access_key_id = AKTEST\n"
                        << "aws_secret_access_key = " << secret << "\n";
  }
  ~credentials_file() { std::remove(path.c_str()); }
};

TEST(config, oss_options_reach_the_node) {
  credentials_file creds;
  config cfg;
  ASSERT_FALSE(load(
      cfg,
      {"--objstore.oss-endpoint=https://oss.example:9000",
       "--objstore.oss-region=cn-hangzhou", "--objstore.oss-addressing=virtual",
       "--objstore.oss-buckets=[\"jobs/prefix\"]",
       "--objstore.oss-shared-buckets=[\"datasets\"]",
       "--objstore.oss-credentials-file=" + creds.path,
       "--objstore.oss-part-size=16777216", "--objstore.oss-parts-in-flight=2",
       "--objstore.oss-retries=7", "--objstore.timeout=12s"}));
  auto node = cfg.make_node_options();
  ASSERT_TRUE(node) << describe(node.error());
  ASSERT_TRUE(node->store.oss);
  auto& oss = *node->store.oss;
  EXPECT_EQ(oss.endpoint, "https://oss.example:9000");
  EXPECT_EQ(oss.region, "cn-hangzhou");
  EXPECT_TRUE(oss.virtual_hosted);
  EXPECT_EQ(oss.buckets, std::vector<std::string>{"jobs/prefix"});
  EXPECT_EQ(oss.shared_buckets, std::vector<std::string>{"datasets"});
  EXPECT_EQ(oss.credentials.access_key_id, "AKTEST");
  EXPECT_EQ(oss.credentials.secret_access_key, credentials_file::secret);
  EXPECT_EQ(oss.part_size, 16u << 20);
  EXPECT_EQ(oss.parts_in_flight, 2u);
  EXPECT_EQ(oss.max_attempts, 7);
  EXPECT_EQ(oss.timeout, 12s);
  // The secret is no option: nothing of the parsed configuration holds it.
  EXPECT_EQ(caf::deep_to_string(cfg.content).find(credentials_file::secret),
            std::string::npos);
  config none;
  ASSERT_FALSE(load(none, {}));
  auto plain = none.make_node_options();
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->store.oss);
}

TEST(config, bad_oss_options_name_the_key_and_never_the_secret) {
  credentials_file creds;
  std::string endpoint = "--objstore.oss-endpoint=http://127.0.0.1:9";
  std::string buckets = "--objstore.oss-buckets=[\"b1x\"]";
  std::string file = "--objstore.oss-credentials-file=" + creds.path;
  struct bad_case {
    std::vector<std::string> args;
    std::string key;
  };
  std::vector<bad_case> cases{
      {{endpoint, buckets, file, "--objstore.oss-addressing=sideways"},
       "objstore.oss-addressing"},
      {{buckets, file}, "objstore.oss-endpoint"},
      {{endpoint, file}, "objstore.oss-buckets"},
      {{endpoint, buckets, "--objstore.oss-credentials-file=/nonexistent/c"},
       "objstore.oss-credentials-file"},
  };
  for (auto& c : cases) {
    config cfg;
    auto err = load(cfg, c.args);
    ASSERT_TRUE(err) << c.key;
    EXPECT_NE(message_of(err).find(c.key), std::string::npos)
        << c.key << ": " << describe(err);
  }
  // A credentials file others may read is refused, without its secret.
  std::filesystem::permissions(creds.path, std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  config cfg;
  auto err = load(cfg, {endpoint, buckets, file});
  ASSERT_TRUE(err);
  EXPECT_NE(message_of(err).find("readable by others"), std::string::npos)
      << describe(err);
  EXPECT_EQ(message_of(err).find(credentials_file::secret), std::string::npos);
}

} // namespace
} // namespace config_test_file
