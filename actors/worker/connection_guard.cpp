#include "actors/worker/connection_guard.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <caf/atom.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/scoped_actor.hpp>

namespace objstore {

namespace {

using clock_type = std::chrono::steady_clock;

/// One accepted connection on the watched port, through the guard's own
/// duplicate of its descriptor.
struct connection {
  int fd = -1; // the duplicate: closed by the sweep
  uint64_t inode = 0;
  std::string peer_host; // canonical text (v4-mapped v6 shown as v4)
  uint16_t peer_port = 0;
  clock_type::time_point first_seen;
};

/// Canonical text of an address: inet_pton / inet_ntop round trip, with
/// IPv4-mapped IPv6 addresses as plain IPv4. Empty if unparseable.
std::string canonical_host(std::string text) {
  if (text.starts_with("::ffff:") && text.find('.') != std::string::npos)
    text.erase(0, 7);
  char buf[INET6_ADDRSTRLEN] = {};
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1)
    return inet_ntop(AF_INET, &v4, buf, sizeof(buf)) ? buf : "";
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1)
    return inet_ntop(AF_INET6, &v6, buf, sizeof(buf)) ? buf : "";
  return {};
}

/// Host text and port of a socket address (v4 or v6).
bool split(const sockaddr_storage& sa, std::string& host, uint16_t& port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa.ss_family == AF_INET) {
    auto& in = reinterpret_cast<const sockaddr_in&>(sa);
    port = ntohs(in.sin_port);
    if (!inet_ntop(AF_INET, &in.sin_addr, buf, sizeof(buf)))
      return false;
  } else if (sa.ss_family == AF_INET6) {
    auto& in6 = reinterpret_cast<const sockaddr_in6&>(sa);
    port = ntohs(in6.sin6_port);
    if (!inet_ntop(AF_INET6, &in6.sin6_addr, buf, sizeof(buf)))
      return false;
  } else {
    return false;
  }
  host = canonical_host(buf);
  return !host.empty();
}

/// The socket inode behind /proc/self/fd/<name>, or 0.
uint64_t socket_inode(int dir, const char* name) {
  char link[64] = {};
  auto n = readlinkat(dir, name, link, sizeof(link) - 1);
  if (n <= 0)
    return 0;
  std::string_view text{link, static_cast<size_t>(n)};
  if (!text.starts_with("socket:[") || !text.ends_with("]"))
    return 0;
  return std::strtoull(link + 8, nullptr, 10);
}

/// A duplicate of descriptor `name` if it is (still) socket `inode`, an
/// accepted TCP connection whose local port is `port`; else -1.
int accepted_on(const char* name, uint64_t inode, uint16_t port,
                connection& out) {
  char* end = nullptr;
  auto number = std::strtol(name, &end, 10);
  if (end == name || *end != '\0' || number < 0)
    return -1;
  int fd = fcntl(static_cast<int>(number), F_DUPFD_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  auto fail = [fd] {
    ::close(fd);
    return -1;
  };
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)
      || static_cast<uint64_t>(st.st_ino) != inode)
    return fail();
  int type = 0;
  int listening = 0;
  socklen_t len = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0
      || type != SOCK_STREAM)
    return fail();
  len = sizeof(listening);
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0
      || listening != 0)
    return fail();
  sockaddr_storage local{};
  sockaddr_storage peer{};
  socklen_t local_len = sizeof(local);
  socklen_t peer_len = sizeof(peer);
  std::string local_host;
  uint16_t local_port = 0;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0
      || !split(local, local_host, local_port) || local_port != port)
    return fail();
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0
      || !split(peer, out.peer_host, out.peer_port))
    return fail();
  out.fd = fd;
  out.inode = inode;
  return fd;
}

/// Every accepted connection on `port` in this process.
std::vector<connection> list_connections(uint16_t port) {
  std::vector<connection> result;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir)
    return result;
  int own = dirfd(dir);
  // The duplicates made here show up in the listing too: one entry per
  // socket.
  std::set<uint64_t> seen;
  while (auto* entry = readdir(dir)) {
    if (entry->d_name[0] == '.')
      continue;
    if (std::atoi(entry->d_name) == own)
      continue;
    auto inode = socket_inode(own, entry->d_name);
    if (inode == 0 || !seen.insert(inode).second)
      continue;
    connection c;
    if (accepted_on(entry->d_name, inode, port, c) >= 0)
      result.push_back(std::move(c));
  }
  closedir(dir);
  return result;
}

} // namespace

connection_guard::connection_guard(caf::actor_system& sys,
                                   connection_guard_options options)
    : sys_(sys), options_(options) {
  if (options_.period.count() <= 0) {
    auto quarter = options_.sessionless_timeout / 4;
    options_.period = quarter.count() > 0 ? std::min<std::chrono::milliseconds>(
                          quarter, std::chrono::seconds{1})
                                          : std::chrono::milliseconds{1'000};
  }
}

connection_guard::~connection_guard() {
  stop();
}

void connection_guard::session_opened(const caf::node_id& node) {
  std::lock_guard guard{mtx_};
  ++session_nodes_[node];
}

void connection_guard::session_closed(const caf::node_id& node) {
  std::lock_guard guard{mtx_};
  auto i = session_nodes_.find(node);
  if (i != session_nodes_.end() && --i->second == 0)
    session_nodes_.erase(i);
}

void connection_guard::watch(uint16_t port) {
  if (port == 0 || port_.exchange(port) != 0)
    return;
  if (options_.sessionless_timeout.count() == 0
      && options_.max_sessionless == 0)
    return;
  std::lock_guard guard{mtx_};
  if (!stopping_ && !thread_.joinable())
    thread_ = std::thread{[this] {
      loop();
    }};
}

void connection_guard::stop() {
  {
    std::lock_guard guard{mtx_};
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id())
    thread_.join();
}

connection_guard_stats connection_guard::stats() const {
  std::lock_guard guard{mtx_};
  return stats_;
}

void connection_guard::loop() {
  std::unique_lock lock{mtx_};
  while (!stopping_) {
    if (cv_.wait_for(lock, options_.period, [this] { return stopping_; }))
      break;
    lock.unlock();
    sweep();
    lock.lock();
  }
}

size_t connection_guard::sweep() {
  auto port = port_.load();
  if (port == 0)
    return 0;
  std::lock_guard one_at_a_time{sweep_mtx_};
  auto now = clock_type::now();
  auto conns = list_connections(port);
  std::vector<caf::node_id> nodes;
  {
    std::lock_guard guard{mtx_};
    std::map<uint64_t, clock_type::time_point> seen;
    for (auto& c : conns) {
      auto i = first_seen_.find(c.inode);
      c.first_seen = i != first_seen_.end() ? i->second : now;
      seen.emplace(c.inode, c.first_seen);
    }
    first_seen_ = std::move(seen);
    // Shut down earlier but not yet closed by CAF: not counted twice.
    std::erase_if(shut_down_, [&](uint64_t inode) {
      return first_seen_.count(inode) == 0;
    });
    stats_.connections = conns.size();
    for (auto& [node, n] : session_nodes_)
      nodes.push_back(node);
  }
  auto timeout = options_.sessionless_timeout;
  auto expired = [&](const connection& c) {
    return timeout.count() > 0 && now - c.first_seen >= timeout;
  };
  bool over
      = options_.max_sessionless > 0 && conns.size() > options_.max_sessionless;
  bool any_expired = std::any_of(conns.begin(), conns.end(), expired);
  size_t idle = 0;
  size_t over_limit = 0;
  if (over || any_expired) {
    // The connections of nodes holding a session, as CAF's BASP broker
    // knows them (peer address and port of the direct route).
    std::set<std::pair<std::string, uint16_t>> protect;
    bool unknown = false;
    if (!nodes.empty()) {
      caf::scoped_actor self{sys_};
      // TLS connections belong to the openssl manager's broker.
      std::vector<caf::io::middleman_actor> managers;
      if (sys_.has_openssl_manager())
        managers.push_back(sys_.openssl_manager().actor_handle());
      managers.push_back(sys_.middleman().actor_handle());
      for (auto& node : nodes) {
        if (node == sys_.node())
          continue; // an in-process driver: no connection
        bool found = false;
        for (auto& mm : managers) {
          self->request(mm, std::chrono::seconds{1}, caf::get_atom::value, node)
              .receive(
                  [&](const caf::node_id&, const std::string& addr,
                      uint16_t remote_port) {
                    if (remote_port != 0) {
                      protect.emplace(canonical_host(addr), remote_port);
                      found = true;
                    }
                  },
                  [&](const caf::error&) {});
          if (found)
            break;
        }
        // A session's node without a known direct connection (it may be
        // coming or going): nothing tells its connection apart.
        unknown = unknown || !found;
      }
    }
    if (unknown) {
      // A session's connection could not be told apart: close nothing
      // rather than perhaps a driver's (the next sweep tries again).
      for (auto& c : conns)
        ::close(c.fd);
      std::lock_guard guard{mtx_};
      ++stats_.skipped_sweeps;
      return 0;
    }
    auto is_protected = [&](const connection& c) {
      return protect.count({c.peer_host, c.peer_port}) > 0
             // An address CAF writes differently: the port decides (a
             // collision only spares a connection, never closes one).
             || protect.count({std::string{}, c.peer_port}) > 0;
    };
    std::vector<connection*> open;
    for (auto& c : conns)
      if (!is_protected(c) && !shut_down_.count(c.inode))
        open.push_back(&c);
    std::sort(open.begin(), open.end(),
              [](auto* x, auto* y) { return x->first_seen < y->first_seen; });
    size_t kept = open.size();
    for (auto* c : open) {
      bool is_idle = expired(*c);
      if (!is_idle
          && (options_.max_sessionless == 0
              || kept <= options_.max_sessionless))
        continue;
      {
        // Counted before the peer can see the close.
        std::lock_guard guard{mtx_};
        ++(is_idle ? stats_.closed_idle : stats_.closed_over_limit);
      }
      ::shutdown(c->fd, SHUT_RDWR);
      shut_down_.insert(c->inode);
      ++(is_idle ? idle : over_limit);
      --kept;
    }
  }
  for (auto& c : conns)
    ::close(c.fd);
  return idle + over_limit;
}

} // namespace objstore
