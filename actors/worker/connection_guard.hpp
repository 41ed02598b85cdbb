#pragma once

// Closes connections to a worker's actor port that carry no session.
//
// CAF 0.17 keeps every accepted BASP connection for as long as the peer
// likes: a bare TCP connect, or a peer that never finishes its handshake, is
// never timed out, and enough of them exhaust the process's descriptors
// (CAF's accept loop then spins). CAF gives actors no view of its
// connections, so the guard watches them from the outside: it lists the
// process's sockets whose local port is the worker's, asks CAF's middleman
// which of them lead to nodes that opened a session on the worker, and
// shuts down the others once they are `sessionless_timeout` old (or, beyond
// `max_sessionless`, the oldest first). CAF then sees an ordinary close.
//
// Only sockets are touched that the guard verified, through its own
// duplicate of the descriptor, to be accepted connections on the watched
// port: a descriptor number reused meanwhile is never shut down by mistake.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/node_id.hpp>

namespace objstore {

struct connection_guard_options {
  /// A connection that carries no session is closed this long after the
  /// guard first saw it (objstore.sessionless-timeout). 0 = never.
  std::chrono::milliseconds sessionless_timeout{10'000};
  /// Most connections without a session kept at once; beyond it the oldest
  /// are closed at the next sweep (objstore.max-sessionless-connections).
  /// 0 = no limit.
  size_t max_sessionless = 256;
  /// How often the guard looks. 0 = min(1 s, sessionless_timeout / 4).
  std::chrono::milliseconds period{0};
};

/// Counters of a guard (monotonic).
struct connection_guard_stats {
  /// Connections on the port at the last sweep.
  uint64_t connections = 0;
  /// Closed because they carried no session for the timeout.
  uint64_t closed_idle = 0;
  /// Closed because too many connections carried no session.
  uint64_t closed_over_limit = 0;
  /// Sweeps that closed nothing because CAF did not say which connection
  /// belongs to a session's node in time.
  uint64_t skipped_sweeps = 0;
};

class connection_guard {
public:
  connection_guard(caf::actor_system& sys, connection_guard_options options);
  ~connection_guard();

  connection_guard(const connection_guard&) = delete;
  connection_guard& operator=(const connection_guard&) = delete;

  /// The worker opened / closed a session whose driver runs on `node`
  /// (thread-safe; counted, so several sessions of one node are fine).
  void session_opened(const caf::node_id& node);
  void session_closed(const caf::node_id& node);

  /// Starts watching accepted connections on `port` (after the worker is
  /// published there). A second call is ignored. Does nothing when the
  /// timeout and the limit are both 0.
  void watch(uint16_t port);

  /// Stops the guard's thread (also done by the destructor).
  void stop();

  /// One sweep now, on the calling thread; returns connections closed.
  size_t sweep();

  connection_guard_stats stats() const;

  const connection_guard_options& options() const { return options_; }

private:
  void loop();

  caf::actor_system& sys_;
  connection_guard_options options_;
  std::atomic<uint16_t> port_{0};
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<caf::node_id, size_t> session_nodes_;
  /// Socket inode -> when the guard first saw it.
  std::map<uint64_t, std::chrono::steady_clock::time_point> first_seen_;
  /// Sockets the guard shut down that CAF has not closed yet.
  std::set<uint64_t> shut_down_;
  connection_guard_stats stats_;
  std::mutex sweep_mtx_;
  std::thread thread_;
};

} // namespace objstore
