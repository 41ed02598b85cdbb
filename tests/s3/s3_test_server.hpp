#pragma once

// The S3-compatible server of the oss:// tests (tests/s3/server.js: s3rver
// with SigV4 checked by aws4) as a child process on an ephemeral port, with
// its own storage directory. .ci/install-s3-test-server installs its npm
// packages into <build>/s3-test-server/node_modules.

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "store/oss_backend.hpp"

namespace objstore::test {

class s3_test_server {
public:
  struct options {
    /// Buckets that exist from the start.
    std::vector<std::string> buckets{"objstore-test"};
    /// Answer 503 SlowDown to the first N requests.
    int fail_first = 0;
    /// Store the Nth part of a multipart upload, then die (SIGKILL).
    int die_after_parts = 0;
    /// Answer the first N CompleteMultipartUpload with 200 + an error.
    int complete_errors = 0;
    /// Complete the first N multipart uploads, then close the connection
    /// instead of answering.
    int drop_complete_replies = 0;
    /// 0: an ephemeral port.
    uint16_t port = 0;
    /// Where the objects live; empty: a fresh directory of this server.
    std::filesystem::path directory;
    std::string access_key = "objstore-test";
    std::string secret_key = "objstore-test-secret";
  };

  static std::filesystem::path node_modules() {
    return OBJSTORE_S3_NODE_MODULES;
  }

  explicit s3_test_server(options opts) : opts_(std::move(opts)) {
    if (!std::filesystem::exists(node_modules() / "s3rver"))
      throw std::runtime_error(
          "the S3 test server is not installed in " + node_modules().string()
          + ": run .ci/install-s3-test-server <build-dir>");
    std::string pattern
        = (std::filesystem::temp_directory_path() / "objstore-s3-XXXXXX")
              .string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed for " + pattern);
    own_ = pattern;
    if (opts_.directory.empty())
      opts_.directory = own_ / "data";
    std::filesystem::create_directories(opts_.directory);
    start();
  }

  s3_test_server(const s3_test_server&) = delete;
  s3_test_server& operator=(const s3_test_server&) = delete;

  ~s3_test_server() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(own_, ec);
  }

  uint16_t port() const noexcept { return port_; }

  std::string endpoint() const {
    return "http://127.0.0.1:" + std::to_string(port_);
  }

  const std::filesystem::path& directory() const noexcept {
    return opts_.directory;
  }

  /// SIGKILL and reap (nop when it is gone).
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  /// Whether the process still runs (reaps it once it has exited).
  bool running() {
    if (pid_ <= 0)
      return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  /// Starts a fresh server process on the same port and directory (after
  /// `kill`, or after it died), without the fault injection.
  void restart() {
    kill();
    opts_.port = port_;
    opts_.fail_first = 0;
    opts_.die_after_parts = 0;
    opts_.complete_errors = 0;
    opts_.drop_complete_replies = 0;
    start();
  }

  /// Backend options for this server: its buckets, its key pair, short
  /// deadlines and small parts (multipart from 5 MiB on).
  oss_backend_options backend_options() const {
    oss_backend_options result;
    result.endpoint = endpoint();
    result.buckets = opts_.buckets;
    result.credentials = {opts_.access_key, opts_.secret_key, {}};
    result.part_size = uint64_t{5} << 20;
    result.timeout = std::chrono::seconds{10};
    result.retry_delay = std::chrono::milliseconds{20};
    return result;
  }

  std::string output() const {
    std::ifstream in{own_ / "server.log"};
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

private:
  void start() {
    std::vector<std::string> args{"node",
                                  std::string{OBJSTORE_SOURCE_DIR}
                                      + "/tests/s3/server.js",
                                  "--directory",
                                  opts_.directory.string(),
                                  "--port",
                                  std::to_string(opts_.port),
                                  "--access-key",
                                  opts_.access_key,
                                  "--secret-key",
                                  opts_.secret_key,
                                  "--fail-first",
                                  std::to_string(opts_.fail_first),
                                  "--die-after-parts",
                                  std::to_string(opts_.die_after_parts),
                                  "--complete-errors",
                                  std::to_string(opts_.complete_errors),
                                  "--drop-complete-replies",
                                  std::to_string(opts_.drop_complete_replies)};
    std::string buckets;
    for (auto& b : opts_.buckets)
      buckets += (buckets.empty() ? "" : ",") + b;
    if (!buckets.empty()) {
      args.emplace_back("--buckets");
      args.push_back(buckets);
    }
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    auto log = own_ / "server.log";
    auto log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    // The environment is built here: between fork and exec only
    // async-signal-safe calls.
    std::vector<std::string> env_text{"NODE_PATH=" + node_modules().string()};
    for (char** e = environ; *e != nullptr; ++e)
      if (std::string_view{*e}.rfind("NODE_PATH=", 0) != 0)
        env_text.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& e : env_text)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    auto parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        ::_exit(127);
      auto null_fd = ::open("/dev/null", O_RDONLY);
      ::dup2(null_fd, 0);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      if (::close_range(3, ~0u, 0) != 0)
        for (int fd = 3; fd < 4096; ++fd)
          ::close(fd);
      ::execvpe("node", argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(log_fd);
    if (pid_ < 0)
      throw std::runtime_error("fork failed");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
    while (std::chrono::steady_clock::now() < deadline) {
      auto text = output();
      if (auto i = text.find("port ");
          i != std::string::npos && text.find('\n', i) != std::string::npos) {
        port_ = static_cast<uint16_t>(std::stoi(text.substr(i + 5)));
        return;
      }
      if (!running())
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
    auto text = output();
    kill();
    throw std::runtime_error("the S3 test server did not start: " + text);
  }

  options opts_;
  std::filesystem::path own_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

} // namespace objstore::test
