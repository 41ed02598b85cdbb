#include "bench/processes.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/worker/secret.hpp"
#include "bench/bench_util.hpp"
#include "store/codec.hpp"

namespace objstore::bench {

namespace {

constexpr size_t io_piece = 256u << 10; // bytes per send/recv call
constexpr int socket_buffer = 4u << 20; // SO_SNDBUF / SO_RCVBUF

std::string errno_text(const char* what) {
  return std::string{what} + ": " + std::strerror(errno);
}

void tune_socket(int fd) {
  int buf = socket_buffer;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

/// Moves `n` bytes with `io` (send or recv), in pieces of `io_piece`.
template<class Io>
bool transfer_all(int fd, char* data, size_t n, Io io) {
  size_t off = 0;
  while (off < n) {
    auto k = io(fd, data + off, std::min(io_piece, n - off));
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    off += static_cast<size_t>(k);
  }
  return true;
}

bool send_all(int fd, const char* data, size_t n) {
  return transfer_all(
      fd, const_cast<char*>(data), n,
      [](int s, char* p, size_t k) { return ::send(s, p, k, MSG_NOSIGNAL); });
}

bool recv_all(int fd, char* data, size_t n) {
  return transfer_all(
      fd, data, n, [](int s, char* p, size_t k) { return ::recv(s, p, k, 0); });
}

} // namespace

// -- child_process ------------------------------------------------------------

bool child_process::start(const std::vector<std::string>& argv,
                          const std::string& log_path, std::string& err) {
  // Everything the child needs is prepared before fork: between fork and
  // exec only async-signal-safe calls (this process runs CAF threads).
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                    0644);
    if (log_fd < 0) {
      err = errno_text(("open " + log_path).c_str());
      return false;
    }
  }
  auto parent = ::getpid();
  auto pid = ::fork();
  if (pid < 0) {
    err = errno_text("fork");
    if (log_fd >= 0)
      ::close(log_fd);
    return false;
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM); // never outlive the bench
    if (::getppid() != parent)
      ::_exit(127);
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    // The worker blocks SIGTERM itself; undo nothing else.
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  if (log_fd >= 0)
    ::close(log_fd);
  pid_ = pid;
  return true;
}

int child_process::stop() {
  if (pid_ <= 0)
    return -1;
  ::kill(pid_, SIGTERM);
  auto deadline = clock::now() + std::chrono::seconds{10};
  int status = 0;
  for (;;) {
    auto r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR))
      break;
    if (clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int child_process::wait() {
  if (pid_ <= 0)
    return -1;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// -- worker_processes ---------------------------------------------------------

bool worker_processes::start(const std::string& node_path,
                             const std::vector<std::string>& extra_args,
                             size_t n, std::string& err) {
  auto templ
      = (std::filesystem::temp_directory_path() / "objstore-bench-XXXXXX")
            .string();
  if (::mkdtemp(templ.data()) == nullptr) {
    err = errno_text("mkdtemp");
    return false;
  }
  dir_ = templ;
  operator_secret_ = objstore::random_secret(32);
  auto secret_file = dir_ + "/operator-secret";
  {
    std::ofstream out{secret_file};
    out << operator_secret_ << '\n';
  }
  ::chmod(secret_file.c_str(), 0600);
  std::vector<std::string> port_files;
  for (size_t rank = 0; rank < n; ++rank) {
    auto port_file = dir_ + "/port" + std::to_string(rank);
    std::vector<std::string> argv{node_path,
                                  "--objstore.role=worker",
                                  "--objstore.rank=" + std::to_string(rank),
                                  "--objstore.port=0",
                                  "--objstore.port-file=" + port_file,
                                  "--objstore.fetch-policy=allow",
                                  "--objstore.operator-secret-file="
                                      + secret_file};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    child_process child;
    if (!child.start(argv, dir_ + "/node" + std::to_string(rank) + ".log", err))
      return false;
    children_.push_back(std::move(child));
    port_files.push_back(port_file);
  }
  auto deadline = clock::now() + std::chrono::seconds{20};
  for (size_t rank = 0; rank < n; ++rank) {
    for (;;) {
      std::ifstream in{port_files[rank]};
      unsigned port = 0;
      if (in >> port && port > 0 && port < 65536) {
        ports_.push_back(static_cast<uint16_t>(port));
        break;
      }
      if (clock::now() > deadline) {
        err = "worker rank " + std::to_string(rank)
              + " wrote no port file within 20 s (log: " + dir_ + "/node"
              + std::to_string(rank) + ".log)";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
  }
  return true;
}

worker_processes::~worker_processes() {
  for (auto& child : children_)
    child.stop();
  if (!dir_.empty() && !keep_) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

// -- raw TCP baseline ---------------------------------------------------------

namespace {

constexpr size_t huge_page = 2u << 20;

bool is_fresh(tcp_variant v) {
  return v != tcp_variant::warm;
}

/// A receive buffer of the sink: unmapped until written for the fresh
/// variants (as a newly allocated object on a worker).
char* allocate_sink_buffer(size_t bytes, tcp_variant v) {
  if (v == tcp_variant::fresh_hugepage) {
    auto rounded = (bytes + huge_page - 1) / huge_page * huge_page;
    void* p = nullptr;
    if (::posix_memalign(&p, huge_page, rounded) != 0)
      return nullptr;
    ::madvise(p, rounded, MADV_HUGEPAGE);
    return static_cast<char*>(p);
  }
  return static_cast<char*>(std::malloc(bytes));
}

} // namespace

const char* to_string(tcp_variant x) {
  switch (x) {
    case tcp_variant::warm: return "warm";
    case tcp_variant::fresh: return "fresh";
    case tcp_variant::fresh_checksum: return "fresh_checksum";
    case tcp_variant::fresh_hugepage: return "fresh_hugepage";
  }
  return "?";
}

std::vector<double> tcp_pump(const std::string& self_exe, size_t bytes,
                             size_t reps, tcp_variant variant,
                             std::string& err) {
  std::vector<double> result;
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) {
    err = errno_text("socket");
    return result;
  }
  tune_socket(lfd); // inherited by the accepted socket
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0
      || ::listen(lfd, 1) != 0
      || ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    err = errno_text("bind/listen");
    ::close(lfd);
    return result;
  }
  auto port = ntohs(addr.sin_port);
  auto rounds = reps + 1; // one warm-up round
  child_process sink;
  if (!sink.start(
          {self_exe, "--tcp-sink=" + std::to_string(port),
           "--tcp-bytes=" + std::to_string(bytes),
           "--tcp-rounds=" + std::to_string(rounds),
           "--tcp-variant=" + std::to_string(static_cast<int>(variant))},
          "", err)) {
    ::close(lfd);
    return result;
  }
  pollfd pfd{lfd, POLLIN, 0};
  if (::poll(&pfd, 1, 10'000) != 1) {
    err = "tcp sink did not connect within 10 s";
    ::close(lfd);
    return result;
  }
  int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(lfd);
  if (fd < 0) {
    err = errno_text("accept");
    return result;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::vector<char> data(bytes); // zero-filled: mapped, like a stored object
  for (size_t i = 0; i < bytes; i += 4096)
    data[i] = static_cast<char>(i >> 12);
  for (size_t round = 0; round < rounds; ++round) {
    char byte = 0;
    if (!recv_all(fd, &byte, 1)) { // the sink is ready (buffer allocated)
      err = "tcp pump: connection lost in round " + std::to_string(round);
      result.clear();
      break;
    }
    auto t0 = clock::now();
    if (variant == tcp_variant::fresh_checksum)
      static_cast<void>(checksum_of(std::as_bytes(std::span{data})));
    if (!send_all(fd, data.data(), bytes) || !recv_all(fd, &byte, 1)) {
      err = "tcp pump: connection lost in round " + std::to_string(round);
      result.clear();
      break;
    }
    auto s = seconds_since(t0);
    if (round > 0)
      result.push_back(static_cast<double>(bytes) / s / 1e9);
  }
  ::close(fd);
  if (sink.wait() != 0 && err.empty()) {
    err = "tcp sink failed";
    result.clear();
  }
  return result;
}

int tcp_sink_main(uint16_t port, size_t bytes, size_t rounds, int variant_id) {
  if (variant_id < 0
      || variant_id > static_cast<int>(tcp_variant::fresh_hugepage))
    return 2;
  auto variant = static_cast<tcp_variant>(variant_id);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 1;
  tune_socket(fd);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return 1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::vector<char> warm;
  if (!is_fresh(variant))
    warm.resize(bytes); // zero-filled: mapped once, reused every round
  for (size_t round = 0; round < rounds; ++round) {
    char* buf = warm.data();
    if (is_fresh(variant)) {
      buf = allocate_sink_buffer(bytes, variant);
      if (buf == nullptr)
        return 1;
    }
    char byte = 1;
    if (!send_all(fd, &byte, 1) || !recv_all(fd, buf, bytes))
      return 1;
    if (variant == tcp_variant::fresh_checksum)
      static_cast<void>(checksum_of(std::as_bytes(std::span{buf, bytes})));
    if (!send_all(fd, &byte, 1))
      return 1;
    if (is_fresh(variant))
      std::free(buf);
  }
  ::close(fd);
  return 0;
}

double cpu_seconds_of(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string text;
  if (!std::getline(in, text))
    return std::nan("");
  // Fields after the command name (which may hold spaces) end with ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos)
    return std::nan("");
  std::istringstream fields{text.substr(close + 2)};
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14)
      utime = std::stoull(field);
    if (i == 15)
      stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime)
         / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double cpu_seconds_self() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec)
           + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

std::string loadavg() {
  std::ifstream in{"/proc/loadavg"};
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

size_t thread_count_self() {
  // Raw read(2): the sampler reads this every few milliseconds.
  int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  char buf[4096];
  auto n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  auto* line = std::strstr(buf, "\nThreads:");
  if (line == nullptr)
    return 0;
  return static_cast<size_t>(std::strtoull(line + 9, nullptr, 10));
}

thread_sampler::thread_sampler(std::chrono::microseconds period) {
  thread_ = std::thread{[this, period] {
    do {
      peak_ = std::max(peak_, thread_count_self());
      ++samples_;
      std::this_thread::sleep_for(period);
    } while (!stopping_.load());
  }};
}

size_t thread_sampler::stop() {
  if (thread_.joinable()) {
    stopping_ = true;
    thread_.join();
  }
  return peak_ > 0 ? peak_ - 1 : 0;
}

cluster_spec worker_processes::spec() const {
  cluster_spec result;
  for (auto port : ports_)
    result.workers.push_back({"127.0.0.1", port});
  return result;
}

double worker_processes::cpu_seconds() const {
  double sum = 0;
  for (auto& child : children_)
    sum += cpu_seconds_of(child.pid());
  return sum;
}

// -- paths --------------------------------------------------------------------

std::string self_path(const char* argv0) {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string{argv0} : p.string();
}

std::string find_node(const std::string& explicit_path,
                      const std::string& self_exe) {
  namespace fs = std::filesystem;
  std::vector<fs::path> candidates;
  if (!explicit_path.empty())
    return explicit_path;
  if (auto env = std::getenv("OBJSTORE_NODE_PATH"); env && *env)
    return env;
#ifdef OBJSTORE_NODE_PATH
  candidates.emplace_back(OBJSTORE_NODE_PATH);
#endif
  auto dir = fs::path{self_exe}.parent_path();
  candidates.push_back(dir / "objstore-node");
  candidates.push_back(dir / ".." / "apps" / "objstore-node");
  for (auto& p : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec))
      return p.string();
  }
  return {};
}

} // namespace objstore::bench
