#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <caf/expected.hpp>

#include "actors/dataplane/tls.hpp"
#include "store/codec.hpp"
#include "store/value.hpp"

namespace objstore {

class byte_stream;
class tls_context;

/// Tuning of a node's data plane. Every limit protects the node from
/// peers that connect but do not behave (slow, idle, flooding) and from
/// drivers that ask for more than the node can hold.
struct data_plane_options {
  /// Accept inbound transfers and pulls. Off for a client that only pushes
  /// and pulls (a driver's puts and fetches): no listener, `port()` is 0.
  bool listen = true;
  /// Interface the data listener binds (port is always ephemeral).
  std::string bind_host = "127.0.0.1";
  /// Payload bytes per chunk frame.
  size_t chunk_size = 1u << 20;
  /// Unacknowledged bytes per transfer (credit window): bounds the memory
  /// a transfer needs beyond the source and target buffers.
  size_t window = 8u << 20;
  /// Inbound transfers served at once; more are refused with
  /// `resource_exhausted`. A slot is taken only after the TLS handshake
  /// and a valid hello, so sockets that idle cannot hold one.
  size_t max_incoming = 16;
  /// Inbound transfers served at once from one peer address; more are
  /// refused with `resource_exhausted`, so one peer cannot take every
  /// slot (objstore.max-transfers-per-peer). 0 = only `max_incoming`.
  size_t max_incoming_per_peer = 8;
  /// Inbound connections still in their TLS handshake or hello. Beyond
  /// it, the oldest such connection of the address holding the most of
  /// them is closed: a flood of idle sockets evicts its own, and a real
  /// sender, whose hello follows its connect at once, gets through.
  size_t max_pending_connections = 64;
  /// Deadline of the whole hello of an inbound connection, from accept
  /// (plain) or from the end of the TLS handshake: a peer trickling bytes
  /// is dropped with `timeout` when it passes.
  std::chrono::milliseconds hello_timeout{5'000};
  /// Deadline of a TLS handshake, inbound from accept and outbound
  /// including the TCP connect (plain connects have it too).
  std::chrono::milliseconds handshake_timeout{5'000};
  /// Deadline of each inbound chunk frame (header and payload, and the
  /// credit it earns): a sender slower than chunk_size per chunk_timeout
  /// loses its slot with `timeout`.
  std::chrono::milliseconds chunk_timeout{30'000};
  /// Unused transfer tokens one session may hold; more `expect`s are
  /// refused with `resource_exhausted` until tokens are used or expire.
  size_t max_pending_tokens = 1024;
  /// Unused transfer tokens of the whole node (all sessions): sessions
  /// are cheap, so the per-session cap alone would not bound the table.
  size_t max_tokens = 65'536;
  /// Threads that push values to other nodes; pushes beyond them queue.
  size_t max_senders = 8;
  /// Pushes waiting for a sender thread; more are refused at once with
  /// `resource_exhausted`.
  size_t max_queued_sends = 1024;
  /// Deadline of each step of an outbound transfer (a write, waiting for
  /// credit or for the target's reply) and of a push's wait for a free
  /// sender thread; the receiving node also bounds its adopt with it.
  std::chrono::milliseconds io_timeout{30'000};
  /// Largest accepted inbound object (encoded bytes); 0 = no limit.
  uint64_t max_object_size = 0;
  /// mem:// bytes the node may still store (what is left under
  /// objstore.memory-limit); empty = no limit. Asked when a hello announces
  /// a transfer's size: a transfer larger than what is left, less the
  /// bytes of inbound transfers still being received, is refused with
  /// `resource_exhausted` before any payload is read. The announced size
  /// is the encoding's (payload plus a header of a few hundred bytes), so
  /// an object that would fill the limit to the byte is refused. Called on
  /// the gate thread without the data plane's lock; must not block.
  std::function<uint64_t()> memory_left;
  /// Hand values to a data plane of the same process by pointer (no bytes
  /// copied). Off to force the TCP path (tests, benchmarks).
  bool local_shortcut = true;
  /// Mutual TLS for every data connection (same certificate, key and CA
  /// as the node's actor connections); off when empty.
  tls_options tls;
};

/// Counters of a data plane (monotonic; `max_in_flight` is a high mark).
struct data_plane_counters {
  std::atomic<uint64_t> transfers_out{0};
  std::atomic<uint64_t> transfers_in{0};
  std::atomic<uint64_t> failed_out{0};
  std::atomic<uint64_t> failed_in{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> max_in_flight{0};
  std::atomic<uint64_t> rejected_chunks{0};
  std::atomic<uint64_t> local_handoffs{0};
  /// Inbound connections dropped at their handshake, hello or chunk
  /// deadline.
  std::atomic<uint64_t> deadline_drops{0};
  /// Inbound connections closed in handshake or hello because
  /// `max_pending_connections` was reached.
  std::atomic<uint64_t> evicted{0};
  /// Valid hellos refused because no inbound slot was free.
  std::atomic<uint64_t> refused_in{0};
  /// Transfers refused because the node has too little memory left
  /// (`memory_left`).
  std::atomic<uint64_t> refused_memory{0};
  /// `expect`s refused by a token cap.
  std::atomic<uint64_t> refused_tokens{0};
  /// Pushes refused because the send queue was full or no sender thread
  /// could start.
  std::atomic<uint64_t> refused_sends{0};
  /// Offered values sent to a puller (also counted in transfers_out and
  /// bytes_out).
  std::atomic<uint64_t> pulls_served{0};
  /// Values pulled from other nodes (also counted in transfers_in and
  /// bytes_in).
  std::atomic<uint64_t> pulls{0};
  /// Payload bytes written to and read from chunk frames so far, counted
  /// as each chunk moves (bytes_out/bytes_in count whole transfers when
  /// they end): progress of long streams.
  std::atomic<uint64_t> streamed_out{0};
  std::atomic<uint64_t> streamed_in{0};
};

/// What a data plane holds right now.
struct data_plane_load {
  /// Inbound connections in TLS handshake or hello.
  size_t pending_connections = 0;
  /// Inbound transfers holding a slot.
  size_t incoming = 0;
  /// Unused, unexpired tokens (all sessions).
  size_t tokens = 0;
  /// Sender threads started (at most `max_senders`).
  size_t sender_threads = 0;
  /// Pushes waiting for a sender thread.
  size_t queued_sends = 0;
  /// Announced bytes of the inbound transfers holding a slot (counted
  /// against `memory_left` until each is stored or fails).
  uint64_t receiving_bytes = 0;
};

/// Who an expected inbound transfer is for, and where it goes.
struct transfer_ticket {
  std::string token;
  uint64_t session = 0;
  std::chrono::steady_clock::time_point deadline;
  /// The fs:// URI the value is written to; empty: a new mem:// object
  /// held by `session`.
  std::string target;
  /// Who writes `target` (the session's principal, checked again when the
  /// value is stored).
  std::string principal;
  /// A driver's own put (`expect_put`), not a transfer from another node:
  /// the value came from the session itself.
  bool put = false;
};

/// Stores a received value for the ticket's session (under its target, if
/// any); returns its URI.
using adopt_fn = std::function<caf::expected<std::string>(
    const transfer_ticket&, value_ptr)>;

/// Receives the outcome of an asynchronous send: the URI on the target or
/// a typed error.
using send_callback = std::function<void(caf::expected<std::string>)>;

/// Receives the outcome of an asynchronous pull: the value or a typed
/// error.
using pull_callback = std::function<void(caf::expected<value_ptr>)>;

/// Worker-to-worker data movement over a dedicated TCP connection per
/// transfer, next to (never inside) CAF's BASP connection, so bulk bytes
/// never queue in front of control messages.
///
/// Protocol (little-endian): the sender connects and sends `hello`
/// ("OSXF", version, 32-char token, total bytes), then `chunk` frames
/// {type=1, length, offset} + payload carrying the value's codec encoding
/// (store/codec.hpp). The receiver reads payloads straight into the final
/// buffers (decode), answers `credit` frames {type=2, 0, bytes consumed}
/// for every whole chunk (so a sender never waits on a receiver with a
/// different window), and ends with `ok` {type=3, n} + URI or `error`
/// {type=4, n, code} + message. A chunk whose offset is not the next
/// expected byte (duplicate, out of order) fails the transfer; a partial
/// object is never stored. Tokens are one-shot and expire.
///
/// A pull runs the other way on a connection the receiver opens: its hello
/// says "OSXP" (total 0) and presents a grant from `offer`; the node
/// answers `begin` {type=5, 0, total} and sends the offered value as chunk
/// frames, the puller grants credit and ends with `ok` (or `error`). A
/// driver fetches large objects this way, and puts them by pushing with
/// hello "OSXD" under a token from `expect_put`: a node's own transfers
/// never use that hello, so a driver cannot pass a put token to a worker
/// to have another party's object recorded as its own put.
///
/// Inbound, one gate thread drives every connection through its TLS
/// handshake and hello without blocking (each under its deadline, at most
/// `max_pending_connections` at once); only a valid hello with a live
/// token takes a slot and a serving thread. Outbound, at most
/// `max_senders` threads push; further pushes queue.
///
/// Thread-safety: all members may be called from any thread, except that
/// a send callback must not destroy the data plane. Inbound transfers run
/// on their own threads; `send` blocks its caller.
class data_plane : public std::enable_shared_from_this<data_plane> {
public:
  using clock = std::chrono::steady_clock;

  /// Binds the listener and starts accepting.
  static caf::expected<std::shared_ptr<data_plane>>
  start(data_plane_options options, adopt_fn adopt);

  ~data_plane();

  /// Stops accepting, aborts inbound and outbound transfers, fails queued
  /// pushes (`object_lost`) and joins every thread.
  void stop();

  uint16_t port() const noexcept { return port_; }

  /// Registers an expected inbound transfer for `session`; returns the
  /// one-shot token the sender must present before `deadline` (128 bits
  /// from the kernel's CSPRNG). `target` and `principal` go into the
  /// ticket the adopt function receives (empty: a mem:// object); the
  /// caller checks them. Errors: `resource_exhausted` when the
  /// session holds `max_pending_tokens` or the node `max_tokens` unused
  /// tokens; `io_error` when the kernel has no randomness to give. O(1)
  /// amortized: expired tokens are purged oldest first as they pass.
  caf::expected<std::string> expect(uint64_t session,
                                    clock::time_point deadline,
                                    std::string target = {},
                                    std::string principal = {});

  /// `expect` for a driver's put: the token is accepted only from a
  /// driver's push (`put_async`), and the ticket says `put`.
  caf::expected<std::string> expect_put(uint64_t session,
                                        clock::time_point deadline);

  /// Offers `x` to one pull by `session` before `deadline`; returns the
  /// one-shot grant the puller presents (a token as from `expect`, counted
  /// against the same limits). The offer holds `x` until it is pulled or
  /// expires. Errors as `expect`.
  caf::expected<std::string> offer(uint64_t session, value_ptr x,
                                   clock::time_point deadline);

  /// Unexpired, unused tokens of `session`; O(1) amortized.
  size_t pending_tokens(uint64_t session);

  /// Sends `x` to the data plane at host:port under `token` on a sender
  /// thread; `done` runs exactly once with the URI on the target or an
  /// error: `object_lost` (connection refused or broken, node stopping),
  /// `timeout` (no sender free within `io_timeout`, a connect, handshake
  /// or step past its deadline), `unauthenticated` (TLS), the target's
  /// error, or `resource_exhausted` (`max_queued_sends` pushes waiting or
  /// no sender thread could start). `done` runs on a data-plane thread,
  /// or on the caller's when the push is refused at once.
  void send_async(const std::string& host, uint16_t port,
                  const std::string& token, value_ptr x, send_callback done);

  /// `send_async` of a driver's put, under a token from `expect_put`.
  void put_async(const std::string& host, uint16_t port,
                 const std::string& token, value_ptr x, send_callback done);

  /// Blocking `send_async`: returns what its callback receives. Must not
  /// be called from a send callback (it could wait for its own thread).
  caf::expected<std::string> send(const std::string& host, uint16_t port,
                                  const std::string& token, value_ptr x);

  /// Pulls the value offered under `grant` by the data plane at host:port
  /// on a sender thread (queued and limited like pushes); `done` runs
  /// exactly once with the value or an error: those of `send_async`,
  /// `permission_denied` (unknown or used grant), `corrupt_data` (a bad
  /// stream), `resource_exhausted` (larger than `max_object_size`). The
  /// value is decoded straight into its final buffers.
  void pull_async(const std::string& host, uint16_t port,
                  const std::string& grant, pull_callback done,
                  block_allocator alloc = {});

  /// Blocking `pull_async`.
  caf::expected<value_ptr> pull(const std::string& host, uint16_t port,
                                const std::string& grant);

  const data_plane_counters& counters() const noexcept { return counters_; }
  const data_plane_options& options() const noexcept { return options_; }

  /// Connections, transfers, tokens and senders held right now.
  data_plane_load load();

  /// Announced bytes of the inbound transfers being received now: memory
  /// the node will need when they are stored (`data_plane_load`).
  uint64_t receiving_bytes();

private:
  using expiry_index = std::multimap<clock::time_point, std::string>;

  /// An unused token: who it is for, the value offered to a pull (null
  /// for a push's token) and its place in the expiry index.
  struct token_entry {
    transfer_ticket ticket;
    value_ptr offered;
    expiry_index::iterator expiry;
  };

  /// A used token.
  struct claimed_token {
    transfer_ticket ticket;
    value_ptr offered;
  };

  /// A push or pull waiting for (or running on) a sender thread.
  struct send_job {
    std::string host;
    uint16_t port = 0;
    std::string token;
    /// Pushed value (null for a pull).
    value_ptr value;
    send_callback done;
    /// Set for a pull; where its blocks go (empty: memory).
    pull_callback pulled;
    block_allocator alloc;
    /// A driver's put (hello "OSXD").
    bool put = false;
    /// A job not started by then fails with `timeout`.
    clock::time_point start_deadline;
  };

  struct pending_connection;
  struct inbound;
  struct outbound;

  data_plane(data_plane_options options, adopt_fn adopt);

  caf::error bind_listener();

  // inbound
  void gate_loop();
  enum class progress { waiting, complete, dropped };
  progress advance(pending_connection& c);
  void admit(std::unique_ptr<pending_connection> c);
  void serve(inbound& in);
  void finish(std::unique_ptr<inbound> in);
  void serve_pull(inbound& in);
  caf::expected<claimed_token> claim(const std::string& token);
  caf::expected<claimed_token> claim_locked(const std::string& token);
  caf::expected<std::string>
  add_token(uint64_t session, clock::time_point deadline, value_ptr offered,
            bool put, std::string target, std::string principal);
  void drop_token(std::unordered_map<std::string, token_entry>::iterator i);
  void purge_expired_tokens(clock::time_point now);
  caf::expected<std::string> deliver_local(const std::string& token,
                                           value_ptr x);
  void wake_gate();

  // outbound
  void sender_loop();
  void expire_queued_sends(clock::time_point now);
  send_job job_for(const std::string& host, uint16_t port,
                   const std::string& token);
  void enqueue(send_job job);
  void fail_job(send_job& job, caf::error err);
  caf::expected<std::string> transmit(const send_job& job);
  caf::expected<value_ptr> receive(const send_job& job);
  caf::expected<std::unique_ptr<outbound>>
  open(const std::string& host, uint16_t port, const std::string& what);
  caf::expected<std::string> send_encoded(byte_stream& out,
                                          const encoded_value& pieces,
                                          const std::string& what);
  std::shared_ptr<data_plane> local_peer(const std::string& host,
                                         uint16_t port);

  data_plane_options options_;
  adopt_fn adopt_;
  std::shared_ptr<tls_context> tls_; // null: plain TCP
  int listen_fd_ = -1;
  /// eventfd that wakes the gate (stop, first queued push).
  int wake_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread gate_;
  std::atomic<size_t> pending_count_{0};

  std::mutex mtx_;
  std::condition_variable idle_;
  // Tokens: by token, by expiry (oldest first) and counted per session.
  std::unordered_map<std::string, token_entry> tokens_;
  expiry_index expiry_;
  std::unordered_map<uint64_t, size_t> tokens_per_session_;
  // Inbound transfers holding a slot.
  std::vector<int> active_fds_;
  size_t active_ = 0;
  uint64_t receiving_bytes_ = 0;
  std::unordered_map<std::string, size_t> active_per_peer_;
  // Outbound.
  std::vector<int> outgoing_fds_;
  std::deque<send_job> queue_;
  std::condition_variable work_;
  std::vector<std::thread> senders_;
  size_t idle_senders_ = 0;

  data_plane_counters counters_;
};

} // namespace objstore
