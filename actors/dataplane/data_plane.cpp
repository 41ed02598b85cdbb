#include "actors/dataplane/data_plane.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <future>
#include <span>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "actors/dataplane/byte_stream.hpp"
#include "store/codec.hpp"
#include "store/error.hpp"

static_assert(std::endian::native == std::endian::little,
              "the data plane frames assume a little-endian host");

namespace objstore {

// A named namespace, not an anonymous one: data_plane's members hold a
// `hello`, and a member whose type has internal linkage is an error
// (-Wsubobject-linkage) once this file is part of a unity build.
namespace data_plane_wire {

constexpr char hello_magic[4] = {'O', 'S', 'X', 'F'};
constexpr char pull_magic[4] = {'O', 'S', 'X', 'P'};
constexpr char put_magic[4] = {'O', 'S', 'X', 'D'};
constexpr uint32_t protocol_version = 1;
constexpr size_t token_size = 32;
constexpr size_t max_chunk = 64u << 20;
constexpr size_t max_message = 64u << 10;

enum frame_type : uint32_t {
  chunk = 1,
  credit = 2,
  ok = 3,
  failure = 4,
  begin = 5
};

struct frame {
  uint32_t type = 0;
  uint32_t length = 0;
  uint64_t arg = 0;
};
static_assert(sizeof(frame) == 16);

struct hello {
  char magic[4];
  uint32_t version;
  char token[token_size];
  uint64_t total;
};
static_assert(sizeof(hello) == 48);

// -- process-local registry for the in-process shortcut -----------------------

std::mutex registry_mtx;
std::map<uint16_t, std::weak_ptr<data_plane>> registry;

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1";
}

// -- sockets ------------------------------------------------------------------

using clock_type = std::chrono::steady_clock;

struct fd_owner {
  int fd = -1;
  explicit fd_owner(int x = -1) : fd(x) {}
  fd_owner(const fd_owner&) = delete;
  ~fd_owner() {
    if (fd >= 0)
      ::close(fd);
  }
};

/// Latency and throughput settings of every data socket. No SO_RCVTIMEO:
/// byte_stream enforces deadlines per connection phase instead.
void tune_socket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int buf = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

std::string ms_text(std::chrono::milliseconds x) {
  return std::to_string(x.count()) + " ms";
}

caf::error io_failure(const std::string& what, int code) {
  if (code == EAGAIN || code == EWOULDBLOCK || code == ETIMEDOUT)
    return make_error(errc::timeout, what + ": timed out");
  // After the handshake, EPROTO is an alert (our certificate refused) or
  // a record that failed its MAC.
  if (code == EPROTO)
    return make_error(errc::unauthenticated, what + ": TLS failure");
  return make_error(errc::object_lost,
                    what + ": connection lost (" + std::strerror(code) + ")");
}

int send_frame(byte_stream& out, uint32_t type, uint64_t arg,
               std::string_view body) {
  frame f{type, static_cast<uint32_t>(body.size()), arg};
  iovec iov[2]
      = {{&f, sizeof(f)}, {const_cast<char*>(body.data()), body.size()}};
  return out.write_all(iov, body.empty() ? 1 : 2);
}

/// Writes a failure frame if the socket takes it at once: for a peer that
/// is being dropped, never worth waiting for.
void say_goodbye(byte_stream& out, const caf::error& err) {
  auto msg = message_of(err);
  if (msg.size() > max_message)
    msg.resize(max_message);
  out.deadline(clock_type::time_point::min());
  send_frame(out, failure, static_cast<uint64_t>(code_of(err)), msg);
}

/// 128 bits from the kernel's CSPRNG (getrandom) for every token. A seeded
/// PRNG would do for uniqueness, but a session sees its own tokens
/// (`expect`) and could reconstruct the generator's state from them, then
/// predict and claim another session's tokens.
caf::expected<std::string> random_token() {
  static constexpr char hex[] = "0123456789abcdef";
  unsigned char bytes[token_size / 2];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    auto n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return make_error(errc::io_error,
                        std::string{"no randomness for a transfer token: "}
                            + std::strerror(errno));
    got += static_cast<size_t>(n);
  }
  std::string out;
  out.reserve(token_size);
  for (auto b : bytes) {
    out += hex[b >> 4];
    out += hex[b & 0xF];
  }
  return out;
}

/// Reads the chunk stream of one inbound transfer, granting credit. Each
/// chunk frame (header, payload and the credit it earns) must be done
/// within `timeout`.
class chunk_source : public byte_source {
public:
  chunk_source(byte_stream& in, uint64_t total,
               std::chrono::milliseconds timeout, data_plane_counters& counters)
      : in_(in), remaining_(total), timeout_(timeout), counters_(counters) {}

  size_t remaining() const override { return remaining_; }

  bool read(std::byte* dst, size_t n) override {
    if (n > remaining_)
      return fail("sender sent more than announced");
    while (n > 0) {
      if (chunk_left_ == 0) {
        in_.deadline(clock_type::now() + timeout_);
        frame f;
        if (auto code = in_.read_all(&f, sizeof(f)))
          return broken(code);
        if (f.type != chunk || f.length == 0 || f.length > max_chunk)
          return reject("malformed chunk frame");
        if (f.arg != consumed_)
          return reject("chunk at offset " + std::to_string(f.arg)
                        + ", expected " + std::to_string(consumed_)
                        + " (duplicate or out of order)");
        chunk_left_ = f.length;
      }
      auto k = std::min<size_t>(n, chunk_left_);
      if (auto code = in_.read_all(dst, k))
        return broken(code);
      dst += k;
      n -= k;
      counters_.streamed_in.fetch_add(k, std::memory_order_relaxed);
      chunk_left_ -= k;
      consumed_ += k;
      remaining_ -= k;
      // Credit for every whole chunk (and the end): whatever window the
      // sender keeps (at least one chunk), it never waits for credit this
      // side holds back. The two sides of a pull or a driver's put may be
      // configured with different windows.
      if (chunk_left_ == 0 || remaining_ == 0) {
        if (auto code = send_frame(in_, credit, consumed_, {}))
          return broken(code);
        credited_ = consumed_;
      }
    }
    return true;
  }

  /// Why the stream failed, if it did.
  const caf::error& problem() const noexcept { return problem_; }
  /// The sender is gone: nobody to tell.
  bool connection_broken() const noexcept { return broken_ && !timed_out_; }
  /// The sender missed a chunk deadline.
  bool timed_out() const noexcept { return timed_out_; }

private:
  bool fail(std::string why) {
    problem_ = make_error(errc::corrupt_data, "transfer: " + why);
    return false;
  }
  bool reject(std::string why) {
    counters_.rejected_chunks.fetch_add(1);
    return fail(std::move(why));
  }
  bool broken(int code) {
    broken_ = true;
    if (code == EAGAIN) {
      timed_out_ = true;
      problem_ = make_error(errc::timeout,
                            "transfer: chunk frame not complete within "
                                + ms_text(timeout_));
      return false;
    }
    problem_ = io_failure("transfer sender", code);
    return false;
  }

  byte_stream& in_;
  uint64_t remaining_;
  std::chrono::milliseconds timeout_;
  data_plane_counters& counters_;
  uint64_t chunk_left_ = 0;
  uint64_t consumed_ = 0;
  uint64_t credited_ = 0;
  caf::error problem_;
  bool broken_ = false;
  bool timed_out_ = false;
};

/// Why a transfer of `bytes` does not fit in the `left` bytes the node has
/// under its memory limit, of which `receiving` are promised to inbound
/// transfers still being received; none when it fits.
caf::error memory_refusal(uint64_t bytes, uint64_t left, uint64_t receiving) {
  auto free_bytes = left > receiving ? left - receiving : 0;
  if (bytes <= free_bytes)
    return {};
  auto text = "transfer of " + std::to_string(bytes) + " bytes exceeds the "
              + std::to_string(free_bytes)
              + " bytes this node has left under objstore.memory-limit";
  if (receiving > 0)
    text += " (" + std::to_string(left) + " left, " + std::to_string(receiving)
            + " of them for transfers being received)";
  return make_error(errc::resource_exhausted, text);
}

void raise_high_mark(std::atomic<uint64_t>& mark, uint64_t value) {
  auto cur = mark.load();
  while (value > cur && !mark.compare_exchange_weak(cur, value)) {
    // retry
  }
}

/// Runs a send callback; an exception from it must not end a sender
/// thread (the node would lose a sender for good).
template<class Callback, class Result>
void complete(Callback& done, Result result) {
  try {
    done(std::move(result));
  } catch (...) {
    // nothing sensible to do with it here
  }
}

/// The error a failure frame carries.
caf::error refusal_of(const frame& f, const std::string& body,
                      const std::string& what) {
  auto code = f.arg <= static_cast<uint64_t>(errc::unsupported)
                  ? static_cast<errc>(f.arg)
                  : errc::io_error;
  return make_error(code == errc::none ? errc::io_error : code,
                    what + ": target refused: " + body);
}

} // namespace data_plane_wire

using namespace data_plane_wire;

/// An inbound connection in its TLS handshake or hello, owned by the gate.
struct data_plane::pending_connection {
  int fd = -1;
  std::string peer;
  std::unique_ptr<byte_stream> stream;
  /// When the current phase (handshake, then hello) must be done.
  clock::time_point deadline;
  bool handshaking = false;
  short events = POLLIN;
  hello h{};
  size_t got = 0;

  pending_connection() = default;
  pending_connection(const pending_connection&) = delete;
  ~pending_connection() {
    stream.reset(); // a TLS stream's close_notify needs the socket
    if (fd >= 0)
      ::close(fd);
  }
};

/// An inbound transfer holding a slot, owned by its serving thread.
struct data_plane::inbound {
  int fd = -1;
  std::string peer;
  std::unique_ptr<byte_stream> stream;
  hello h{};
  transfer_ticket ticket;
  /// The value a pull takes (null for a push).
  value_ptr offered;
  /// Bytes counted in `receiving_bytes_` for this transfer.
  uint64_t reserved = 0;

  inbound() = default;
  inbound(const inbound&) = delete;
  ~inbound() {
    stream.reset();
    if (fd >= 0)
      ::close(fd);
  }
};

/// An outbound connection (push or pull), owned by a sender thread and
/// listed for `stop()` while it is open.
struct data_plane::outbound {
  data_plane* owner = nullptr;
  fd_owner fd;
  std::unique_ptr<byte_stream> stream;

  outbound() = default;
  outbound(const outbound&) = delete;
  ~outbound() {
    stream.reset();
    if (owner != nullptr) {
      std::lock_guard guard{owner->mtx_};
      std::erase(owner->outgoing_fds_, fd.fd);
    }
  }
};

// -- lifecycle ----------------------------------------------------------------

data_plane::data_plane(data_plane_options options, adopt_fn adopt)
    : options_(std::move(options)), adopt_(std::move(adopt)) {
  options_.window = std::max(options_.window, options_.chunk_size);
}

caf::expected<std::shared_ptr<data_plane>>
data_plane::start(data_plane_options options, adopt_fn adopt) {
  if (options.chunk_size == 0 || options.chunk_size > max_chunk)
    return make_error(errc::invalid_argument,
                      "transfer chunk size must be 1 B .. 64 MiB");
  if (options.max_senders == 0 || options.max_pending_connections == 0)
    return make_error(errc::invalid_argument,
                      "data plane: max_senders and max_pending_connections "
                      "must be at least 1");
  using std::chrono::milliseconds;
  if (options.hello_timeout <= milliseconds{0}
      || options.handshake_timeout <= milliseconds{0}
      || options.chunk_timeout <= milliseconds{0}
      || options.io_timeout <= milliseconds{0})
    return make_error(errc::invalid_argument,
                      "data plane timeouts must be positive");
  std::shared_ptr<data_plane> result{
      new data_plane(std::move(options), std::move(adopt))};
  auto& opts = result->options_;
  if (opts.tls.enabled()) {
    auto ctx = tls_context::make(opts.tls);
    if (!ctx)
      return std::move(ctx.error());
    result->tls_ = std::move(*ctx);
  }
  result->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (result->wake_fd_ < 0)
    return make_error(errc::io_error, std::string{"data plane eventfd: "}
                                          + std::strerror(errno));
  if (opts.listen) {
    if (auto err = result->bind_listener())
      return err;
  }
  try {
    result->gate_ = std::thread{[ptr = result.get()] {
      ptr->gate_loop();
    }};
  } catch (const std::system_error& e) {
    return make_error(errc::resource_exhausted,
                      std::string{"data plane cannot start its thread: "}
                          + e.what());
  }
  if (opts.listen && opts.local_shortcut) {
    std::lock_guard guard{registry_mtx};
    registry[result->port_] = result;
  }
  return result;
}

caf::error data_plane::bind_listener() {
  auto& opts = options_;
  fd_owner fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  if (fd.fd < 0)
    return make_error(errc::io_error, std::string{"data plane socket: "}
                                          + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  if (::inet_pton(AF_INET, opts.bind_host.c_str(), &addr.sin_addr) != 1)
    return make_error(errc::invalid_argument, "data plane bind host '"
                                                  + opts.bind_host
                                                  + "' is not an IPv4 address");
  if (::bind(fd.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0
      || ::listen(fd.fd, SOMAXCONN) != 0)
    return make_error(errc::io_error, "data plane cannot listen on "
                                          + opts.bind_host + ": "
                                          + std::strerror(errno));
  socklen_t len = sizeof(addr);
  ::getsockname(fd.fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  listen_fd_ = std::exchange(fd.fd, -1);
  return {};
}

data_plane::~data_plane() {
  stop();
  if (listen_fd_ >= 0)
    ::close(listen_fd_);
  if (wake_fd_ >= 0)
    ::close(wake_fd_);
}

void data_plane::stop() {
  {
    std::lock_guard guard{mtx_};
    if (stopping_.exchange(true))
      return;
  }
  {
    std::lock_guard guard{registry_mtx};
    auto i = registry.find(port_);
    if (i != registry.end() && i->second.expired())
      registry.erase(i);
    else if (i != registry.end() && i->second.lock().get() == this)
      registry.erase(i);
  }
  wake_gate();
  if (gate_.joinable())
    gate_.join(); // closes every connection still in handshake or hello
  std::deque<send_job> dropped;
  {
    std::lock_guard guard{mtx_};
    for (auto fd : active_fds_)
      ::shutdown(fd, SHUT_RDWR);
    for (auto fd : outgoing_fds_)
      ::shutdown(fd, SHUT_RDWR); // a stopping node abandons its sends
    dropped.swap(queue_);
  }
  work_.notify_all();
  for (auto& job : dropped) {
    counters_.failed_out.fetch_add(1);
    fail_job(job, make_error(errc::object_lost, "transfer to " + job.host + ":"
                                                    + std::to_string(job.port)
                                                    + ": node is stopping"));
  }
  std::vector<std::thread> senders;
  {
    std::lock_guard guard{mtx_};
    senders.swap(senders_);
  }
  for (auto& t : senders) {
    if (t.get_id() == std::this_thread::get_id())
      t.detach(); // stop() from a send callback: this thread ends by itself
    else
      t.join();
  }
  std::unique_lock guard{mtx_};
  idle_.wait(guard, [this] { return active_ == 0; });
}

void data_plane::wake_gate() {
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
}

data_plane_load data_plane::load() {
  std::lock_guard guard{mtx_};
  purge_expired_tokens(clock::now());
  data_plane_load result;
  result.pending_connections = pending_count_.load();
  result.incoming = active_;
  result.tokens = tokens_.size();
  result.sender_threads = senders_.size();
  result.queued_sends = queue_.size();
  result.receiving_bytes = receiving_bytes_;
  return result;
}

uint64_t data_plane::receiving_bytes() {
  std::lock_guard guard{mtx_};
  return receiving_bytes_;
}

// -- tokens -------------------------------------------------------------------

caf::expected<std::string> data_plane::expect(uint64_t session,
                                              clock::time_point deadline,
                                              std::string target,
                                              std::string principal) {
  return add_token(session, deadline, nullptr, false, std::move(target),
                   std::move(principal));
}

caf::expected<std::string> data_plane::expect_put(uint64_t session,
                                                  clock::time_point deadline) {
  return add_token(session, deadline, nullptr, true, {}, {});
}

caf::expected<std::string> data_plane::offer(uint64_t session, value_ptr x,
                                             clock::time_point deadline) {
  if (!x)
    return make_error(errc::invalid_argument, "offer of a null value");
  return add_token(session, deadline, std::move(x), false, {}, {});
}

caf::expected<std::string> data_plane::add_token(uint64_t session,
                                                 clock::time_point deadline,
                                                 value_ptr offered, bool put,
                                                 std::string target,
                                                 std::string principal) {
  auto token = random_token();
  if (!token)
    return token;
  std::lock_guard guard{mtx_};
  purge_expired_tokens(clock::now());
  auto held = tokens_per_session_.find(session);
  auto mine = held == tokens_per_session_.end() ? 0 : held->second;
  if (options_.max_pending_tokens > 0 && mine >= options_.max_pending_tokens) {
    counters_.refused_tokens.fetch_add(1);
    return make_error(errc::resource_exhausted,
                      "session holds " + std::to_string(mine)
                          + " unused transfer tokens (limit "
                            "max_pending_tokens); use or let them expire "
                            "first");
  }
  if (options_.max_tokens > 0 && tokens_.size() >= options_.max_tokens) {
    counters_.refused_tokens.fetch_add(1);
    return make_error(errc::resource_exhausted,
                      "node holds " + std::to_string(tokens_.size())
                          + " unused transfer tokens of all sessions (limit "
                            "max_tokens); try again when some are used or "
                            "expired");
  }
  auto at = expiry_.emplace(deadline, *token);
  auto [i, added] = tokens_.try_emplace(
      *token,
      token_entry{transfer_ticket{*token, session, deadline, std::move(target),
                                  std::move(principal), put},
                  std::move(offered), at});
  if (!added) { // 2^-128: the kernel's randomness is broken
    expiry_.erase(at);
    return make_error(errc::io_error, "transfer token collision");
  }
  ++tokens_per_session_[session];
  return token;
}

size_t data_plane::pending_tokens(uint64_t session) {
  std::lock_guard guard{mtx_};
  purge_expired_tokens(clock::now());
  auto i = tokens_per_session_.find(session);
  return i == tokens_per_session_.end() ? 0 : i->second;
}

void data_plane::drop_token(
    std::unordered_map<std::string, token_entry>::iterator i) {
  auto s = tokens_per_session_.find(i->second.ticket.session);
  if (s != tokens_per_session_.end() && --s->second == 0)
    tokens_per_session_.erase(s);
  expiry_.erase(i->second.expiry);
  tokens_.erase(i);
}

void data_plane::purge_expired_tokens(clock::time_point now) {
  // Oldest first: each token is purged once, so the cost per `expect` is
  // O(1) amortized instead of a scan of the table.
  while (!expiry_.empty() && expiry_.begin()->first < now)
    drop_token(tokens_.find(expiry_.begin()->second));
}

caf::expected<data_plane::claimed_token>
data_plane::claim(const std::string& token) {
  std::lock_guard guard{mtx_};
  return claim_locked(token);
}

caf::expected<data_plane::claimed_token>
data_plane::claim_locked(const std::string& token) {
  auto i = tokens_.find(token);
  if (i == tokens_.end()) {
    purge_expired_tokens(clock::now());
    return make_error(errc::permission_denied,
                      "transfer token unknown or already used");
  }
  claimed_token result{i->second.ticket, std::move(i->second.offered)};
  drop_token(i);
  purge_expired_tokens(clock::now());
  if (result.ticket.deadline < clock::now())
    return make_error(errc::timeout, "transfer token expired");
  return result;
}

// -- receiving ----------------------------------------------------------------

void data_plane::gate_loop() {
  // Connections in handshake or hello, oldest first.
  std::vector<std::unique_ptr<pending_connection>> pending;
  std::vector<pollfd> fds;
  auto listener_resume = clock::time_point::min();
  auto drop_at = [&](size_t i, const caf::error& why, bool tell) {
    counters_.failed_in.fetch_add(1);
    if (tell && !pending[i]->handshaking)
      say_goodbye(*pending[i]->stream, why);
    pending.erase(pending.begin() + static_cast<long>(i));
  };
  // The address holding the most pending connections gives up its oldest:
  // a flood from one address evicts its own sockets, not other peers'.
  auto evict_one = [&] {
    std::unordered_map<std::string_view, size_t> per_peer;
    std::string_view worst;
    size_t most = 0;
    for (auto& c : pending)
      if (auto n = ++per_peer[c->peer]; n > most) {
        most = n;
        worst = c->peer;
      }
    for (size_t i = 0; i < pending.size(); ++i)
      if (pending[i]->peer == worst) {
        counters_.evicted.fetch_add(1);
        drop_at(
            i,
            make_error(errc::resource_exhausted,
                       "too many connections in handshake or hello "
                       "(limit "
                           + std::to_string(options_.max_pending_connections)
                           + ", max_pending_connections)"),
            true);
        return;
      }
  };
  while (!stopping_) {
    auto now = clock::now();
    for (size_t i = 0; i < pending.size();) {
      if (pending[i]->deadline > now) {
        ++i;
        continue;
      }
      counters_.deadline_drops.fetch_add(1);
      auto phase = pending[i]->handshaking ? "TLS handshake" : "hello";
      auto limit = pending[i]->handshaking ? options_.handshake_timeout
                                           : options_.hello_timeout;
      drop_at(i,
              make_error(errc::timeout, std::string{"transfer: "} + phase
                                            + " not complete within "
                                            + ms_text(limit)),
              true);
    }
    expire_queued_sends(now);
    // Sleep until the next deadline, a socket event or a wake-up.
    auto next = clock::time_point::max();
    for (auto& c : pending)
      next = std::min(next, c->deadline);
    {
      std::lock_guard guard{mtx_};
      if (!queue_.empty())
        next = std::min(next, queue_.front().start_deadline);
    }
    bool listening = now >= listener_resume;
    if (!listening)
      next = std::min(next, listener_resume);
    int timeout = -1;
    if (next != clock::time_point::max())
      timeout = static_cast<int>(std::clamp<int64_t>(
          std::chrono::ceil<std::chrono::milliseconds>(next - now).count(), 0,
          60'000));
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listening ? listen_fd_ : -1, POLLIN, 0});
    for (auto& c : pending)
      fds.push_back({c->fd, c->events, 0});
    if (::poll(fds.data(), fds.size(), timeout) <= 0)
      continue;
    if (fds[0].revents != 0) {
      uint64_t ignored;
      [[maybe_unused]] auto n = ::read(wake_fd_, &ignored, sizeof(ignored));
    }
    // Advance the connections with news; hand complete hellos over.
    std::vector<std::unique_ptr<pending_connection>> still;
    still.reserve(pending.size());
    for (size_t i = 0; i < pending.size(); ++i) {
      if (fds[i + 2].revents == 0) {
        still.push_back(std::move(pending[i]));
        continue;
      }
      switch (advance(*pending[i])) {
        case progress::waiting: still.push_back(std::move(pending[i])); break;
        case progress::complete: admit(std::move(pending[i])); break;
        case progress::dropped: counters_.failed_in.fetch_add(1); break;
      }
    }
    pending.swap(still);
    if (listening && (fds[1].revents & POLLIN) != 0) {
      // A bounded batch per round keeps deadlines of older connections
      // checked while a flood arrives.
      for (int k = 0; k < 64 && !stopping_; ++k) {
        sockaddr_in from{};
        socklen_t from_len = sizeof(from);
        int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&from),
                           &from_len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
              || errno == ENOMEM) {
            // Out of descriptors: free one if an idle peer holds it, else
            // pause accepting (a listener that stays readable would spin).
            if (!pending.empty())
              evict_one();
            else
              listener_resume = clock::now() + std::chrono::milliseconds{100};
          }
          break;
        }
        tune_socket(fd);
        auto c = std::make_unique<pending_connection>();
        c->fd = fd;
        char text[INET_ADDRSTRLEN] = "?";
        ::inet_ntop(AF_INET, &from.sin_addr, text, sizeof(text));
        c->peer = text;
        if (tls_) {
          auto stream = tls_->server(fd);
          if (!stream) {
            counters_.failed_in.fetch_add(1);
            continue; // c closes fd
          }
          c->stream = std::move(*stream);
          c->handshaking = true;
          c->deadline = clock::now() + options_.handshake_timeout;
        } else {
          c->stream = make_plain_stream(fd);
          c->deadline = clock::now() + options_.hello_timeout;
        }
        // The gate never waits on one peer.
        c->stream->deadline(clock::time_point::min());
        if (pending.size() >= options_.max_pending_connections)
          evict_one();
        pending.push_back(std::move(c));
      }
    }
    pending_count_ = pending.size();
  }
  pending.clear();
  pending_count_ = 0;
}

data_plane::progress data_plane::advance(pending_connection& c) {
  if (c.handshaking) {
    std::string why;
    auto rc = c.stream->handshake(why);
    if (rc == EAGAIN) {
      c.events = c.stream->wants();
      return progress::waiting;
    }
    if (rc != 0)
      return progress::dropped; // unauthenticated or gone
    c.handshaking = false;
    c.events = POLLIN;
    c.deadline = clock::now() + options_.hello_timeout;
  }
  auto* dst = reinterpret_cast<char*>(&c.h);
  while (c.got < sizeof(hello)) {
    size_t n = 0;
    auto rc = c.stream->read_some(dst + c.got, sizeof(hello) - c.got, n);
    if (rc == EAGAIN) {
      c.events = c.stream->wants();
      return progress::waiting;
    }
    if (rc != 0)
      return progress::dropped; // closed before a whole hello
    c.got += n;
  }
  return progress::complete;
}

void data_plane::admit(std::unique_ptr<pending_connection> c) {
  auto refuse = [&](const caf::error& err) {
    counters_.failed_in.fetch_add(1);
    say_goodbye(*c->stream, err);
  };
  auto& h = c->h;
  auto is_pull = std::memcmp(h.magic, pull_magic, sizeof(pull_magic)) == 0;
  auto is_put = std::memcmp(h.magic, put_magic, sizeof(put_magic)) == 0;
  auto is_push = std::memcmp(h.magic, hello_magic, sizeof(hello_magic)) == 0;
  if (!(is_pull || is_put || is_push) || h.version != protocol_version
      || (is_pull && h.total != 0)) {
    refuse(make_error(errc::corrupt_data, "transfer: bad hello"));
    return;
  }
  // Asked before the lock: the hook reads the object store.
  auto left = options_.memory_left ? options_.memory_left() : UINT64_MAX;
  auto in = std::make_unique<inbound>();
  {
    std::unique_lock guard{mtx_};
    if (stopping_)
      return;
    auto from_peer = active_per_peer_.find(c->peer);
    auto held = from_peer == active_per_peer_.end() ? 0 : from_peer->second;
    std::string refusal;
    if (active_ >= options_.max_incoming)
      refusal = "too many inbound transfers (limit "
                + std::to_string(options_.max_incoming) + ")";
    else if (options_.max_incoming_per_peer > 0
             && held >= options_.max_incoming_per_peer)
      refusal = "too many inbound transfers from " + c->peer + " (limit "
                + std::to_string(options_.max_incoming_per_peer)
                + ", objstore.max-transfers-per-peer)";
    if (!refusal.empty()) {
      guard.unlock();
      counters_.refused_in.fetch_add(1);
      refuse(make_error(errc::resource_exhausted, refusal));
      return;
    }
    // Presenting a token uses it, whatever follows: one-shot.
    auto claimed = claim_locked(std::string{h.token, token_size});
    if (!claimed) {
      guard.unlock();
      refuse(claimed.error());
      return;
    }
    auto& got = *claimed;
    auto kind = got.offered      ? "a pull grant"
                : got.ticket.put ? "for a driver's put"
                                 : "for a transfer";
    if (is_pull != (got.offered != nullptr) || is_put != got.ticket.put) {
      guard.unlock();
      refuse(make_error(errc::permission_denied,
                        std::string{"transfer token is "} + kind + ", not "
                            + (is_pull  ? "for a pull"
                               : is_put ? "for a driver's put"
                                        : "for a transfer")));
      return;
    }
    in->offered = std::move(claimed->offered);
    if (options_.max_object_size > 0 && h.total > options_.max_object_size) {
      guard.unlock();
      refuse(make_error(errc::resource_exhausted,
                        "transfer of " + std::to_string(h.total)
                            + " bytes exceeds the object size limit of "
                            + std::to_string(options_.max_object_size)));
      return;
    }
    // Refused before a byte of payload is read; admitted bytes count
    // against what is left until the transfer ends (finish).
    if (auto err = memory_refusal(h.total, left, receiving_bytes_)) {
      guard.unlock();
      counters_.refused_memory.fetch_add(1);
      refuse(err);
      return;
    }
    if (left != UINT64_MAX) {
      in->reserved = h.total;
      receiving_bytes_ += h.total;
    }
    in->ticket = std::move(claimed->ticket);
    ++active_;
    ++active_per_peer_[c->peer];
    active_fds_.push_back(c->fd);
  }
  in->fd = std::exchange(c->fd, -1);
  in->peer = std::move(c->peer);
  in->stream = std::move(c->stream);
  in->h = h;
  auto* raw = in.release();
  try {
    std::thread{[this, raw] {
      std::unique_ptr<inbound> owned{raw};
      if (owned->offered)
        serve_pull(*owned);
      else
        serve(*owned);
      finish(std::move(owned));
    }}.detach();
  } catch (const std::system_error& e) {
    std::unique_ptr<inbound> owned{raw};
    counters_.failed_in.fetch_add(1);
    say_goodbye(*owned->stream,
                make_error(errc::resource_exhausted,
                           std::string{"cannot start a receiving thread: "}
                               + e.what()));
    finish(std::move(owned));
  }
}

void data_plane::finish(std::unique_ptr<inbound> in) {
  auto peer = in->peer;
  auto reserved = in->reserved;
  {
    // Out of the list before the descriptor closes: stop() must never
    // shut down a number the kernel already gave to another socket.
    std::lock_guard guard{mtx_};
    std::erase(active_fds_, in->fd);
  }
  in.reset();
  std::lock_guard guard{mtx_};
  receiving_bytes_ -= reserved;
  if (auto i = active_per_peer_.find(peer);
      i != active_per_peer_.end() && --i->second == 0)
    active_per_peer_.erase(i);
  if (--active_ == 0)
    idle_.notify_all();
}

void data_plane::serve(inbound& in) {
  auto& stream = *in.stream;
  auto refuse = [&](const caf::error& err) {
    counters_.failed_in.fetch_add(1);
    auto msg = message_of(err);
    if (msg.size() > max_message)
      msg.resize(max_message);
    stream.deadline(clock::now() + options_.chunk_timeout);
    send_frame(stream, failure, static_cast<uint64_t>(code_of(err)), msg);
  };
  chunk_source src{stream, in.h.total, options_.chunk_timeout, counters_};
  auto x = decode(src, "transfer " + in.ticket.token.substr(0, 8));
  if (!x) {
    if (src.timed_out()) {
      counters_.deadline_drops.fetch_add(1);
      counters_.failed_in.fetch_add(1);
      say_goodbye(stream, src.problem());
      return;
    }
    if (src.connection_broken()) {
      counters_.failed_in.fetch_add(1); // sender gone: nobody to tell
      return;
    }
    refuse(src.problem() ? src.problem() : x.error());
    return;
  }
  auto uri = adopt_(in.ticket, std::move(*x));
  {
    // Stored or refused: the store accounts for it now. Released before
    // the sender hears of it, so its next request sees the memory left.
    std::lock_guard guard{mtx_};
    receiving_bytes_ -= std::exchange(in.reserved, 0);
  }
  if (!uri) {
    refuse(uri.error());
    return;
  }
  counters_.transfers_in.fetch_add(1);
  counters_.bytes_in.fetch_add(in.h.total);
  stream.deadline(clock::now() + options_.chunk_timeout);
  send_frame(stream, ok, 0, *uri);
}

caf::expected<std::string> data_plane::deliver_local(const std::string& token,
                                                     value_ptr x) {
  auto claimed = claim(token);
  if (!claimed)
    return std::move(claimed.error());
  if (claimed->offered || claimed->ticket.put)
    return make_error(errc::permission_denied,
                      claimed->offered
                          ? "transfer token is a pull grant, not for a "
                            "transfer"
                          : "transfer token is for a driver's put, not for "
                            "a transfer");
  if (options_.memory_left) {
    auto left = options_.memory_left();
    if (auto err = memory_refusal(x->size_bytes(), left, receiving_bytes())) {
      counters_.refused_memory.fetch_add(1);
      return err;
    }
  }
  auto uri = adopt_(claimed->ticket, std::move(x));
  if (uri) {
    counters_.transfers_in.fetch_add(1);
    counters_.local_handoffs.fetch_add(1);
  }
  return uri;
}

void data_plane::serve_pull(inbound& in) {
  auto& stream = *in.stream;
  auto what = "pull by " + in.peer;
  auto pieces = encode_layout(*in.offered);
  stream.deadline(clock::now() + options_.io_timeout);
  if (send_frame(stream, begin, pieces.size(), {}) != 0) {
    counters_.failed_out.fetch_add(1);
    return;
  }
  auto sent = send_encoded(stream, pieces, what);
  if (!sent) {
    counters_.failed_out.fetch_add(1);
    return;
  }
  // pulls_served last: whoever waits for it sees the byte counts too.
  counters_.transfers_out.fetch_add(1);
  counters_.bytes_out.fetch_add(pieces.size());
  counters_.pulls_served.fetch_add(1);
}

// -- sending ------------------------------------------------------------------

std::shared_ptr<data_plane> data_plane::local_peer(const std::string& host,
                                                   uint16_t port) {
  if (!options_.local_shortcut || !is_loopback(host))
    return nullptr;
  std::lock_guard guard{registry_mtx};
  auto i = registry.find(port);
  if (i == registry.end())
    return nullptr;
  auto target = i->second.lock();
  return target && target->options_.local_shortcut ? target : nullptr;
}

data_plane::send_job data_plane::job_for(const std::string& host, uint16_t port,
                                         const std::string& token) {
  send_job job;
  job.host = host;
  job.port = port;
  job.token = token;
  job.start_deadline = clock::now() + options_.io_timeout;
  return job;
}

void data_plane::send_async(const std::string& host, uint16_t port,
                            const std::string& token, value_ptr x,
                            send_callback done) {
  auto job = job_for(host, port, token);
  job.value = std::move(x);
  job.done = std::move(done);
  enqueue(std::move(job));
}

void data_plane::put_async(const std::string& host, uint16_t port,
                           const std::string& token, value_ptr x,
                           send_callback done) {
  auto job = job_for(host, port, token);
  job.value = std::move(x);
  job.done = std::move(done);
  job.put = true;
  enqueue(std::move(job));
}

void data_plane::pull_async(const std::string& host, uint16_t port,
                            const std::string& grant, pull_callback done,
                            block_allocator alloc) {
  auto job = job_for(host, port, grant);
  job.pulled = std::move(done);
  job.alloc = std::move(alloc);
  enqueue(std::move(job));
}

void data_plane::fail_job(send_job& job, caf::error err) {
  if (job.pulled)
    complete(job.pulled, caf::expected<value_ptr>{std::move(err)});
  else
    complete(job.done, caf::expected<std::string>{std::move(err)});
}

void data_plane::enqueue(send_job job) {
  auto what = std::string{job.pulled ? "pull from "
                          : job.put  ? "put to "
                                     : "transfer to "}
              + job.host + ":" + std::to_string(job.port);
  auto refuse = [&](caf::error err) {
    counters_.failed_out.fetch_add(1);
    fail_job(job, std::move(err));
  };
  if (!job.pulled && !job.value)
    return refuse(make_error(errc::invalid_argument, what + ": null value"));
  if (job.token.size() != token_size)
    return refuse(
        make_error(errc::invalid_argument, what + ": malformed token"));
  std::unique_lock guard{mtx_};
  if (stopping_) {
    guard.unlock();
    return refuse(make_error(errc::object_lost, what + ": node is stopping"));
  }
  if (queue_.size() >= options_.max_queued_sends) {
    guard.unlock();
    counters_.refused_sends.fetch_add(1);
    return refuse(make_error(
        errc::resource_exhausted,
        what + ": " + std::to_string(options_.max_queued_sends)
            + " pushes already wait for a sender (limit max_queued_sends)"));
  }
  auto was_empty = queue_.empty();
  queue_.push_back(std::move(job));
  if (queue_.size() > idle_senders_ && senders_.size() < options_.max_senders) {
    try {
      senders_.emplace_back([this] { sender_loop(); });
    } catch (const std::system_error& e) {
      if (senders_.empty()) {
        // Nobody would ever take the job: fail it now, typed.
        auto last = std::move(queue_.back());
        queue_.pop_back();
        guard.unlock();
        counters_.refused_sends.fetch_add(1);
        counters_.failed_out.fetch_add(1);
        fail_job(last, make_error(errc::resource_exhausted,
                                  what + ": cannot start a sender thread ("
                                      + e.what() + ")"));
        return;
      }
      // A running sender takes it when it is free.
    }
  }
  work_.notify_one();
  if (was_empty)
    wake_gate(); // the gate watches the oldest job's start deadline
}

caf::expected<std::string> data_plane::send(const std::string& host,
                                            uint16_t port,
                                            const std::string& token,
                                            value_ptr x) {
  // Shared: the callback may still be inside set_value when get() returns.
  auto box = std::make_shared<std::promise<caf::expected<std::string>>>();
  auto result = box->get_future();
  send_async(
      host, port, token, std::move(x),
      [box](caf::expected<std::string> r) { box->set_value(std::move(r)); });
  return result.get();
}

caf::expected<value_ptr> data_plane::pull(const std::string& host,
                                          uint16_t port,
                                          const std::string& grant) {
  auto box = std::make_shared<std::promise<caf::expected<value_ptr>>>();
  auto result = box->get_future();
  pull_async(host, port, grant, [box](caf::expected<value_ptr> r) {
    box->set_value(std::move(r));
  });
  return result.get();
}

void data_plane::sender_loop() {
  for (;;) {
    std::unique_lock guard{mtx_};
    ++idle_senders_;
    work_.wait(guard, [this] { return stopping_ || !queue_.empty(); });
    --idle_senders_;
    if (queue_.empty())
      return; // stopping
    auto job = std::move(queue_.front());
    queue_.pop_front();
    guard.unlock();
    if (job.start_deadline <= clock::now()) {
      counters_.failed_out.fetch_add(1);
      fail_job(job,
               make_error(errc::timeout, "transfer to " + job.host + ":"
                                             + std::to_string(job.port)
                                             + ": no sender free within "
                                             + ms_text(options_.io_timeout)));
      continue;
    }
    if (job.pulled) {
      auto result = receive(job);
      if (!result)
        counters_.failed_out.fetch_add(1);
      complete(job.pulled, std::move(result));
      continue;
    }
    auto result = transmit(job);
    job.value.reset();
    if (!result)
      counters_.failed_out.fetch_add(1);
    complete(job.done, std::move(result));
  }
}

void data_plane::expire_queued_sends(clock::time_point now) {
  std::vector<send_job> expired;
  {
    std::lock_guard guard{mtx_};
    while (!queue_.empty() && queue_.front().start_deadline <= now) {
      expired.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
  for (auto& job : expired) {
    counters_.failed_out.fetch_add(1);
    fail_job(job,
             make_error(errc::timeout, "transfer to " + job.host + ":"
                                           + std::to_string(job.port)
                                           + ": no sender free within "
                                           + ms_text(options_.io_timeout)));
  }
}

caf::expected<std::unique_ptr<data_plane::outbound>>
data_plane::open(const std::string& host, uint16_t port,
                 const std::string& what) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found)
          != 0
      || found == nullptr)
    return make_error(errc::object_lost, what + ": cannot resolve host");
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> found_owner{
      found, &::freeaddrinfo};
  auto conn = std::make_unique<outbound>();
  conn->fd.fd
      = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (conn->fd.fd < 0)
    return make_error(errno == EMFILE || errno == ENFILE
                          ? errc::resource_exhausted
                          : errc::io_error,
                      what + ": no socket (" + std::strerror(errno) + ")");
  {
    std::lock_guard guard{mtx_};
    if (stopping_)
      return make_error(errc::object_lost, what + ": node is stopping");
    outgoing_fds_.push_back(conn->fd.fd);
    conn->owner = this;
  }
  auto fd = conn->fd.fd;
  tune_socket(fd);
  // Connect and handshake share one deadline: a black-holed address or a
  // peer that never answers the handshake cannot hold a sender longer.
  auto setup_deadline = clock::now() + options_.handshake_timeout;
  if (::connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
    if (errno != EINPROGRESS)
      return io_failure(what, errno);
    if (auto code = wait_ready(fd, POLLOUT, setup_deadline))
      return code == EAGAIN ? make_error(
                 errc::timeout, what + ": connect not complete within "
                                    + ms_text(options_.handshake_timeout))
                            : io_failure(what, code);
    int err = 0;
    socklen_t err_len = sizeof(err);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len);
    if (err != 0)
      return io_failure(what, err);
  }
  if (!tls_) {
    conn->stream = make_plain_stream(fd);
    return conn;
  }
  auto secured = tls_->client(fd);
  if (!secured)
    return std::move(secured.error());
  conn->stream = std::move(*secured);
  conn->stream->deadline(setup_deadline);
  std::string why;
  if (auto code = conn->stream->handshake(why)) {
    if (code == EAGAIN)
      return make_error(errc::timeout,
                        what + ": TLS handshake not complete within "
                            + ms_text(options_.handshake_timeout));
    if (code == EPROTO)
      return make_error(errc::unauthenticated,
                        what + ": data plane TLS handshake failed: " + why);
    return make_error(errc::object_lost,
                      what + ": connection lost in the TLS handshake (" + why
                          + ")");
  }
  return conn;
}

caf::expected<std::string> data_plane::transmit(const send_job& job) {
  auto& host = job.host;
  auto port = job.port;
  auto& token = job.token;
  auto& x = job.value;
  auto what = std::string{job.put ? "put to " : "transfer to "} + host + ":"
              + std::to_string(port);
  if (auto target = job.put ? nullptr : local_peer(host, port)) {
    auto result = target->deliver_local(token, x);
    counters_.transfers_out.fetch_add(result ? 1 : 0);
    return result;
  }
  auto conn = open(host, port, what);
  if (!conn)
    return std::move(conn.error());
  auto& stream = *(*conn)->stream;
  auto pieces = encode_layout(*x);
  hello h;
  std::memcpy(h.magic, job.put ? put_magic : hello_magic, sizeof(hello_magic));
  h.version = protocol_version;
  std::memcpy(h.token, token.data(), token_size);
  h.total = pieces.size();
  stream.deadline(clock::now() + options_.io_timeout);
  if (auto code = stream.write_all(&h, sizeof(h)))
    return io_failure(what, code);
  auto result = send_encoded(stream, pieces, what);
  if (result) {
    counters_.transfers_out.fetch_add(1);
    counters_.bytes_out.fetch_add(pieces.size());
  }
  return result;
}

caf::expected<std::string> data_plane::send_encoded(byte_stream& stream,
                                                    const encoded_value& pieces,
                                                    const std::string& what) {
  // Every step (a write, waiting for credit or the reply) has its own
  // io_timeout: a silent peer fails the transfer, a slow one does not.
  auto step = [&] {
    stream.deadline(clock::now() + options_.io_timeout);
  };
  uint64_t sent = 0;
  uint64_t acked = 0;
  // Reads one frame from the peer; a failure frame ends the transfer.
  auto read_reply = [&](frame& f, std::string& body) -> caf::error {
    step();
    if (auto code = stream.read_all(&f, sizeof(f)))
      return io_failure(what, code);
    if (f.type == credit) {
      acked = std::max(acked, f.arg);
      return {};
    }
    if ((f.type != ok && f.type != failure) || f.length > max_message)
      return make_error(errc::corrupt_data, what + ": malformed reply");
    body.resize(f.length);
    if (auto code = stream.read_all(body.data(), body.size()))
      return io_failure(what, code);
    if (f.type == failure)
      return refusal_of(f, body, what);
    return {};
  };
  frame f;
  std::string body;
  // The checksum is computed chunk by chunk just before each chunk is
  // written, while its bytes are in cache: one pass over the payload.
  checksum_stream sum;
  uint64_t trailer = 0;
  auto send_span
      = [&](std::span<const std::byte> span, bool hash) -> caf::error {
    size_t off = 0;
    while (off < span.size()) {
      auto len = std::min(options_.chunk_size, span.size() - off);
      while (sent + len - acked > options_.window) {
        if (auto err = read_reply(f, body))
          return err;
        if (f.type == ok)
          return make_error(errc::corrupt_data,
                            what + ": early reply from target");
      }
      if (hash)
        sum.update(span.subspan(off, len));
      frame hdr{chunk, static_cast<uint32_t>(len), sent};
      iovec iov[2] = {{&hdr, sizeof(hdr)},
                      {const_cast<std::byte*>(span.data() + off), len}};
      step();
      if (auto code = stream.write_all(iov, 2)) {
        // The peer may have refused with a reason before closing.
        if (auto err = read_reply(f, body); err && f.type == failure)
          return err;
        return io_failure(what, code);
      }
      sent += len;
      off += len;
      counters_.streamed_out.fetch_add(len, std::memory_order_relaxed);
      raise_high_mark(counters_.max_in_flight, sent - acked);
    }
    return {};
  };
  if (auto err = send_span(std::as_bytes(std::span{pieces.head}), true))
    return err;
  for (auto& block : pieces.blocks)
    if (auto err = send_span(block, true))
      return err;
  trailer = sum.digest();
  if (auto err = send_span(std::as_bytes(std::span{&trailer, 1}), false))
    return err;
  for (;;) {
    if (auto err = read_reply(f, body))
      return err;
    if (f.type == ok)
      break;
  }
  return body;
}

caf::expected<value_ptr> data_plane::receive(const send_job& job) {
  auto& host = job.host;
  auto port = job.port;
  auto& grant = job.token;
  auto what = "pull from " + host + ":" + std::to_string(port);
  if (auto target = local_peer(host, port)) {
    auto claimed = target->claim(grant);
    if (!claimed)
      return std::move(claimed.error());
    if (!claimed->offered)
      return make_error(errc::permission_denied,
                        what + ": transfer token is for a push, not a pull");
    target->counters_.pulls_served.fetch_add(1);
    target->counters_.local_handoffs.fetch_add(1);
    counters_.pulls.fetch_add(1);
    return std::move(claimed->offered);
  }
  auto conn = open(host, port, what);
  if (!conn)
    return std::move(conn.error());
  auto& stream = *(*conn)->stream;
  hello h;
  std::memcpy(h.magic, pull_magic, sizeof(pull_magic));
  h.version = protocol_version;
  std::memcpy(h.token, grant.data(), token_size);
  h.total = 0;
  stream.deadline(clock::now() + options_.io_timeout);
  if (auto code = stream.write_all(&h, sizeof(h)))
    return io_failure(what, code);
  frame f;
  if (auto code = stream.read_all(&f, sizeof(f)))
    return io_failure(what, code);
  if (f.type == failure && f.length <= max_message) {
    std::string body(f.length, '\0');
    if (auto code = stream.read_all(body.data(), body.size()))
      return io_failure(what, code);
    return refusal_of(f, body, what);
  }
  if (f.type != begin || f.length != 0)
    return make_error(errc::corrupt_data, what + ": malformed reply");
  auto total = f.arg;
  if (options_.max_object_size > 0 && total > options_.max_object_size) {
    auto err = make_error(errc::resource_exhausted,
                          what + ": " + std::to_string(total)
                              + " bytes exceed the object size limit of "
                              + std::to_string(options_.max_object_size));
    say_goodbye(stream, err);
    return err;
  }
  chunk_source src{stream, total, options_.io_timeout, counters_};
  auto x = decode(src, what, job.alloc);
  if (!x) {
    auto err = src.problem() ? src.problem() : x.error();
    if (!src.connection_broken())
      say_goodbye(stream, err);
    return err;
  }
  stream.deadline(clock::now() + options_.io_timeout);
  if (auto code = send_frame(stream, ok, 0, {}))
    return io_failure(what, code);
  counters_.pulls.fetch_add(1);
  counters_.transfers_in.fetch_add(1);
  counters_.bytes_in.fetch_add(total);
  return x;
}

} // namespace objstore
