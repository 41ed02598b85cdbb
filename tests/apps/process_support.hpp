#pragma once

// Support for tests that run real objstore processes: unique temp dirs,
// child processes that never outlive their test, workers on ephemeral
// ports and a client actor system for in-test drivers.
//
// Every child is owned by the fixture, which kills (SIGKILL) and reaps it
// in its destructor, so a failed assertion leaves no stray process; a
// child also dies with the test process (PR_SET_PDEATHSIG). Effects are
// awaited by polling with deadlines, never by fixed sleeps.

#include <gtest/gtest.h>

#include "actors/worker/secret.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/cluster_fixture.hpp"
#include "actors/driver/driver.hpp"
#include "actors/testing/local_cluster.hpp"
#include "store/error.hpp"

namespace objstore::test {

namespace fs = std::filesystem;

/// A fresh directory (mkdtemp, symlinks resolved) that is removed with its
/// content on destruction.
class temp_dir {
public:
  temp_dir() {
    auto templ = (fs::temp_directory_path() / "objstore-apps-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path_ = fs::canonical(templ);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const noexcept { return path_; }

private:
  fs::path path_;
};

/// The content of `path`, or an empty string.
inline std::string read_text(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

inline void write_text(const fs::path& path, std::string_view text) {
  std::ofstream out{path, std::ios::binary};
  out << text;
}

/// Renders a wait status: "exit 0", "signal 9".
inline std::string describe_status(int status) {
  if (WIFEXITED(status))
    return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

/// One child process with stdout and stderr redirected to files. Killed
/// (SIGKILL) and reaped on destruction unless it has exited already.
/// Not thread-safe: create and use it from the test's thread (the death
/// signal is tied to the thread that forks).
class child_process {
public:
  child_process(std::vector<std::string> args, fs::path out, fs::path err)
      : args_(std::move(args)), out_(std::move(out)), err_(std::move(err)) {
    std::vector<char*> argv;
    for (auto& arg : args_)
      argv.push_back(arg.data());
    argv.push_back(nullptr);
    auto out_fd = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    auto err_fd = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    auto parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        ::_exit(127);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      auto null_fd = ::open("/dev/null", O_RDONLY);
      ::dup2(null_fd, 0);
      ::dup2(out_fd, 1);
      ::dup2(err_fd, 2);
      // The test's sockets must not live on in the child: a peer would
      // never see them close.
      if (::close_range(3, ~0u, 0) != 0)
        for (int fd = 3; fd < 4096; ++fd)
          ::close(fd);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out_fd);
    ::close(err_fd);
    if (pid_ < 0)
      throw std::runtime_error("fork failed");
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  ~child_process() {
    if (!status_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  pid_t pid() const noexcept { return pid_; }

  /// Whether the child still runs (reaps it once it has exited).
  bool running() {
    if (status_)
      return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_)
      status_ = status;
    return !status_;
  }

  void signal(int sig) {
    if (running())
      ::kill(pid_, sig);
  }

  /// Waits up to `timeout` until the child is stopped (after SIGSTOP, which
  /// takes effect asynchronously: a loaded machine may let it run on).
  bool wait_stopped(std::chrono::milliseconds timeout) {
    return poll_until(
        [this] {
          auto stat = read_text("/proc/" + std::to_string(pid_) + "/stat");
          auto i = stat.rfind(") ");
          return i != std::string::npos && i + 2 < stat.size()
                 && stat[i + 2] == 'T';
        },
        timeout);
  }

  /// Waits up to `timeout` for the child to exit; returns its wait status.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    poll_until([this] { return !running(); }, timeout);
    return status_;
  }

  /// Waits up to `timeout` until stdout contains `text`.
  bool wait_output(std::string_view text, std::chrono::milliseconds timeout) {
    return poll_until(
               [&] {
                 return out().find(text) != std::string::npos || !running();
               },
               timeout)
           && out().find(text) != std::string::npos;
  }

  std::string out() const { return read_text(out_); }
  std::string err() const { return read_text(err_); }

  /// Command line and output, for failure messages.
  std::string describe() const {
    std::string result = "command:";
    for (auto& arg : args_)
      result += " " + arg;
    return result + "\nstdout:\n" + out() + "\nstderr:\n" + err();
  }

private:
  std::vector<std::string> args_;
  fs::path out_;
  fs::path err_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// Flags of a worker process beyond rank, port and port file.
struct worker_flags {
  std::string fetch_policy = "allow";
  /// Port to listen on; 0: an ephemeral one.
  uint16_t port = 0;
  std::vector<fs::path> fs_roots;
  /// Further `--objstore.name=value` flags.
  std::vector<std::string> extra;

  worker_flags& policy(std::string x) {
    fetch_policy = std::move(x);
    return *this;
  }
  worker_flags& on_port(uint16_t x) {
    port = x;
    return *this;
  }
  worker_flags& root(fs::path x) {
    fs_roots.push_back(std::move(x));
    return *this;
  }
  worker_flags& flag(std::string x) {
    extra.push_back(std::move(x));
    return *this;
  }
};

/// A worker process and where it listens.
struct worker_process {
  uint32_t rank = 0;
  uint16_t port = 0;
  worker_flags flags;
  child_process* proc = nullptr;
};

/// A test owning child processes, a temp dir and an in-test client actor
/// system. Workers are started with `start_worker`; drivers connect with
/// `connect` to the workers started so far, in rank order.
class process_fixture : public ::testing::Test {
protected:
  ~process_fixture() override {
    // Children first: a client system waiting on a stopped peer would
    // otherwise block its shutdown.
    children_.clear();
    client_sys_.reset();
    client_cfg_.reset();
  }

  const fs::path& dir() const { return dir_.path(); }

  /// Spawns `args` (args[0] is the program); output goes to
  /// dir()/<name>.out and .err.
  child_process& spawn(std::vector<std::string> args, const std::string& name) {
    children_.push_back(std::make_unique<child_process>(
        std::move(args), dir() / (name + ".out"), dir() / (name + ".err")));
    return *children_.back();
  }

  /// Starts a worker process on an ephemeral port and waits until it
  /// listens. Restarting a rank replaces its entry. Returns null (after a
  /// test failure) when the worker did not come up.
  worker_process* start_worker(uint32_t rank, worker_flags flags = {}) {
    auto name
        = "worker" + std::to_string(rank) + "-" + std::to_string(++starts_);
    auto port_file = dir() / (name + ".port");
    std::vector<std::string> args{
        OBJSTORE_NODE_PATH,
        "--objstore.role=worker",
        "--objstore.rank=" + std::to_string(rank),
        "--objstore.port=" + std::to_string(flags.port),
        "--objstore.port-file=" + port_file.string(),
        "--objstore.fetch-policy=" + flags.fetch_policy};
    if (!flags.fs_roots.empty()) {
      std::string roots;
      for (auto& root : flags.fs_roots)
        roots += (roots.empty() ? "\"" : ",\"") + root.string() + "\"";
      args.push_back("--objstore.fs-roots=[" + roots + "]");
    }
    args.push_back(operator_flag());
    for (auto& flag : flags.extra)
      args.push_back(flag);
    auto& proc = spawn(std::move(args), name);
    auto up = poll_until(
        [&] { return fs::exists(port_file) || !proc.running(); }, 10s);
    if (!up || !fs::exists(port_file)) {
      ADD_FAILURE() << "worker " << rank << " did not start\n"
                    << proc.describe();
      return nullptr;
    }
    auto& w = workers_[rank];
    w.rank = rank;
    w.port = static_cast<uint16_t>(std::stoul(read_text(port_file)));
    w.flags = std::move(flags);
    w.proc = &proc;
    return &w;
  }

  /// Starts workers 0..n-1 with the same flags; false after a failure.
  bool start_workers(size_t n, const worker_flags& flags = {}) {
    for (uint32_t rank = 0; rank < n; ++rank)
      if (start_worker(rank, flags) == nullptr)
        return false;
    return true;
  }

  worker_process& worker(uint32_t rank) { return workers_.at(rank); }

  /// The worker's process, for signals and output.
  child_process& proc(uint32_t rank) { return *workers_.at(rank).proc; }

  /// Endpoints of the workers `ranks` (default: all), in that order.
  cluster_spec spec(const std::vector<uint32_t>& ranks = {}) const {
    cluster_spec result;
    if (ranks.empty())
      for (auto& [rank, w] : workers_)
        result.workers.push_back({"127.0.0.1", w.port});
    for (auto rank : ranks)
      result.workers.push_back({"127.0.0.1", workers_.at(rank).port});
    return result;
  }

  /// The `--objstore.cluster=[...]` flag for objstore-node and objstore.
  std::string cluster_flag() const {
    std::string list;
    for (auto& [rank, w] : workers_)
      list += (list.empty() ? "\"" : ",\"") + std::string{"127.0.0.1:"}
              + std::to_string(w.port) + "\"";
    return "--objstore.cluster=[" + list + "]";
  }

  /// The in-test client actor system, created on first use (later
  /// arguments are ignored): `configure_system` alone, so it sends
  /// heartbeats and drops no silent peer. A positive `heartbeat` sets
  /// another middleman.heartbeat-interval and, with it,
  /// middleman.connection-timeout: then a frozen peer is dropped.
  caf::actor_system& client(caf::timespan heartbeat = {},
                            caf::timespan connection_timeout = {}) {
    if (!client_sys_) {
      client_cfg_ = std::make_unique<caf::actor_system_config>();
      configure_system(*client_cfg_, 2);
      if (heartbeat.count() > 0)
        set_heartbeats(*client_cfg_, heartbeat, connection_timeout);
      client_sys_ = std::make_unique<caf::actor_system>(*client_cfg_);
    }
    return *client_sys_;
  }

  /// Driver options of in-test drivers: a deadline well below the test's
  /// and far above any expected call.
  static driver_actor_options driver_options() {
    driver_actor_options opts;
    opts.timeout = 10s;
    return opts;
  }

  /// The workers' operator secret (made on first use, in an owner-only
  /// file of dir()): in-test drivers and the CLI read node-wide counters.
  const std::string& operator_secret() {
    if (operator_secret_.empty()) {
      operator_secret_ = random_secret(32);
      auto path = dir() / "operator-secret";
      write_text(path, operator_secret_ + "\n");
      fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
    }
    return operator_secret_;
  }

  /// `--objstore.operator-secret-file=...` for objstore-node and objstore.
  std::string operator_flag() {
    operator_secret();
    return "--objstore.operator-secret-file="
           + (dir() / "operator-secret").string();
  }

  /// Connects a driver from the client system to the workers `ranks`
  /// (default: all) with operator access; null (after a test failure) on
  /// error.
  std::unique_ptr<driver> connect(const std::vector<uint32_t>& ranks = {}) {
    auto opts = driver_options();
    opts.operator_secret = operator_secret();
    auto d = driver::connect(client(), spec(ranks), opts);
    if (!d) {
      ADD_FAILURE() << "connect failed: " << describe(d.error());
      return nullptr;
    }
    return std::move(*d);
  }

  /// Waits until the workers `ranks` (default: all) hold no mem://
  /// objects and no session but the checking driver's own.
  void expect_no_leaks(const std::vector<uint32_t>& ranks = {}) {
    auto d = connect(ranks);
    ASSERT_TRUE(d);
    for (uint32_t r = 0; r < d->world_size(); ++r) {
      caf::expected<worker_stats> st = worker_stats{};
      poll_until([&] {
        st = d->worker_stats_of(r);
        return st && st->mem_objects == 0 && st->sessions == 1;
      });
      ASSERT_TRUE(st) << describe(st.error());
      EXPECT_EQ(st->mem_objects, 0u) << "worker " << r << " leaks objects";
      EXPECT_EQ(st->sessions, 1u) << "worker " << r << " leaks sessions";
    }
  }

private:
  temp_dir dir_;
  std::string operator_secret_;
  size_t starts_ = 0;
  /// By rank (entries stay put, so pointers to them remain valid).
  std::map<uint32_t, worker_process> workers_;
  std::unique_ptr<caf::actor_system_config> client_cfg_;
  std::unique_ptr<caf::actor_system> client_sys_;
  std::vector<std::unique_ptr<child_process>> children_;
};

} // namespace objstore::test
