#include "actors/data_plane.hpp"

#include <bit>
#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "actors/byte_stream.hpp"
#include "store/codec.hpp"
#include "store/error.hpp"

static_assert(std::endian::native == std::endian::little,
              "the data plane frames assume a little-endian host");

namespace objstore {

namespace {

constexpr char hello_magic[4] = {'O', 'S', 'X', 'F'};
constexpr uint32_t protocol_version = 1;
constexpr size_t token_size = 32;
constexpr size_t max_chunk = 64u << 20;
constexpr size_t max_message = 64u << 10;

enum frame_type : uint32_t { chunk = 1, credit = 2, ok = 3, failure = 4 };

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

struct fd_owner {
  int fd = -1;
  explicit fd_owner(int x = -1) : fd(x) {}
  fd_owner(const fd_owner&) = delete;
  ~fd_owner() {
    if (fd >= 0)
      ::close(fd);
  }
};

void set_socket_options(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int buf = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

caf::error io_failure(const std::string& what, int code) {
  if (code == EAGAIN || code == EWOULDBLOCK)
    return make_error(errc::timeout, what + ": timed out");
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

/// Reads the chunk stream of one inbound transfer, granting credit.
class chunk_source : public byte_source {
public:
  chunk_source(byte_stream& in, uint64_t total, size_t window,
               data_plane_counters& counters)
      : in_(in), remaining_(total), window_(window), counters_(counters) {}

  size_t remaining() const override { return remaining_; }

  bool read(std::byte* dst, size_t n) override {
    if (n > remaining_)
      return fail("sender sent more than announced");
    while (n > 0) {
      if (chunk_left_ == 0) {
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
      chunk_left_ -= k;
      consumed_ += k;
      remaining_ -= k;
      if (consumed_ - credited_ >= window_ / 2 || remaining_ == 0) {
        if (auto code = send_frame(in_, credit, consumed_, {}))
          return broken(code);
        credited_ = consumed_;
      }
    }
    return true;
  }

  /// Why the stream failed, if it did.
  const caf::error& problem() const noexcept { return problem_; }
  bool connection_broken() const noexcept { return broken_; }

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
    problem_ = io_failure("transfer sender", code);
    return false;
  }

  byte_stream& in_;
  uint64_t remaining_;
  size_t window_;
  data_plane_counters& counters_;
  uint64_t chunk_left_ = 0;
  uint64_t consumed_ = 0;
  uint64_t credited_ = 0;
  caf::error problem_;
  bool broken_ = false;
};

void raise_high_mark(std::atomic<uint64_t>& mark, uint64_t value) {
  auto cur = mark.load();
  while (value > cur && !mark.compare_exchange_weak(cur, value)) {
    // retry
  }
}

} // namespace

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
  std::shared_ptr<data_plane> result{
      new data_plane(std::move(options), std::move(adopt))};
  auto& opts = result->options_;
  if (opts.tls.enabled()) {
    auto ctx = tls_context::make(opts.tls);
    if (!ctx)
      return std::move(ctx.error());
    result->tls_ = std::move(*ctx);
  }
  fd_owner fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
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
      || ::listen(fd.fd, 64) != 0)
    return make_error(errc::io_error, "data plane cannot listen on "
                                          + opts.bind_host + ": "
                                          + std::strerror(errno));
  socklen_t len = sizeof(addr);
  ::getsockname(fd.fd, reinterpret_cast<sockaddr*>(&addr), &len);
  result->port_ = ntohs(addr.sin_port);
  result->listen_fd_ = std::exchange(fd.fd, -1);
  result->acceptor_ = std::thread{[ptr = result.get()] {
    ptr->accept_loop();
  }};
  if (opts.local_shortcut) {
    std::lock_guard guard{registry_mtx};
    registry[result->port_] = result;
  }
  return result;
}

data_plane::~data_plane() {
  stop();
}

void data_plane::stop() {
  if (stopping_.exchange(true))
    return;
  {
    std::lock_guard guard{registry_mtx};
    auto i = registry.find(port_);
    if (i != registry.end() && i->second.expired())
      registry.erase(i);
    else if (i != registry.end() && i->second.lock().get() == this)
      registry.erase(i);
  }
  if (acceptor_.joinable())
    acceptor_.join();
  if (listen_fd_ >= 0)
    ::close(listen_fd_);
  std::unique_lock guard{mtx_};
  for (auto fd : active_fds_)
    ::shutdown(fd, SHUT_RDWR);
  for (auto fd : outgoing_fds_)
    ::shutdown(fd, SHUT_RDWR); // a stopping node abandons its sends
  idle_.wait(guard, [this] { return active_ == 0; });
}

// -- receiving ----------------------------------------------------------------

caf::expected<std::string> data_plane::expect(uint64_t session,
                                              clock::time_point deadline) {
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
      *token, token_entry{transfer_ticket{*token, session, deadline}, at});
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

caf::expected<transfer_ticket> data_plane::claim(const std::string& token) {
  std::lock_guard guard{mtx_};
  auto i = tokens_.find(token);
  if (i == tokens_.end()) {
    purge_expired_tokens(clock::now());
    return make_error(errc::permission_denied,
                      "transfer token unknown or already used");
  }
  auto ticket = i->second.ticket;
  drop_token(i);
  purge_expired_tokens(clock::now());
  if (ticket.deadline < clock::now())
    return make_error(errc::timeout, "transfer token expired");
  return ticket;
}

data_plane_load data_plane::load() {
  std::lock_guard guard{mtx_};
  purge_expired_tokens(clock::now());
  data_plane_load result;
  result.incoming = active_;
  result.tokens = tokens_.size();
  return result;
}

void data_plane::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0)
      continue;
    sockaddr_in from{};
    socklen_t from_len = sizeof(from);
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&from),
                       &from_len, SOCK_CLOEXEC);
    if (fd < 0)
      continue;
    set_socket_options(fd, options_.io_timeout);
    char text[INET_ADDRSTRLEN] = "?";
    ::inet_ntop(AF_INET, &from.sin_addr, text, sizeof(text));
    std::string peer{text};
    std::unique_lock guard{mtx_};
    auto& from_peer = active_per_peer_[peer];
    std::string refusal;
    if (active_ >= options_.max_incoming || stopping_)
      refusal = "too many inbound transfers (limit "
                + std::to_string(options_.max_incoming) + ")";
    else if (options_.max_incoming_per_peer > 0
             && from_peer >= options_.max_incoming_per_peer)
      refusal = "too many inbound transfers from " + peer + " (limit "
                + std::to_string(options_.max_incoming_per_peer)
                + ", objstore.max-transfers-per-peer)";
    if (!refusal.empty()) {
      if (from_peer == 0)
        active_per_peer_.erase(peer);
      guard.unlock();
      if (!tls_) // a TLS client only sees the connection close
        send_frame(*make_plain_stream(fd), failure,
                   static_cast<uint64_t>(errc::resource_exhausted), refusal);
      ::close(fd);
      continue;
    }
    ++active_;
    ++from_peer;
    active_fds_.push_back(fd);
    guard.unlock();
    std::thread{[this, fd, peer = std::move(peer)] {
      serve(fd);
      std::lock_guard done{mtx_};
      std::erase(active_fds_, fd);
      ::close(fd);
      if (auto i = active_per_peer_.find(peer);
          i != active_per_peer_.end() && --i->second == 0)
        active_per_peer_.erase(i);
      if (--active_ == 0)
        idle_.notify_all();
    }}.detach();
  }
}

void data_plane::serve(int fd) {
  std::unique_ptr<byte_stream> stream;
  if (tls_) {
    auto secured = tls_->accept(fd);
    if (!secured) {
      counters_.failed_in.fetch_add(1); // unauthenticated peer
      return;
    }
    stream = std::move(*secured);
  } else {
    stream = make_plain_stream(fd);
  }
  auto refuse = [&](const caf::error& err) {
    counters_.failed_in.fetch_add(1);
    auto msg = message_of(err);
    if (msg.size() > max_message)
      msg.resize(max_message);
    send_frame(*stream, failure, static_cast<uint64_t>(code_of(err)), msg);
  };
  hello h;
  if (stream->read_all(&h, sizeof(h)) != 0
      || std::memcmp(h.magic, hello_magic, sizeof(hello_magic)) != 0
      || h.version != protocol_version) {
    refuse(make_error(errc::corrupt_data, "transfer: bad hello"));
    return;
  }
  auto ticket = claim(std::string{h.token, token_size});
  if (!ticket) {
    refuse(ticket.error());
    return;
  }
  if (options_.max_object_size > 0 && h.total > options_.max_object_size) {
    refuse(make_error(errc::resource_exhausted,
                      "transfer of " + std::to_string(h.total)
                          + " bytes exceeds the object size limit of "
                          + std::to_string(options_.max_object_size)));
    return;
  }
  chunk_source src{*stream, h.total, options_.window, counters_};
  auto x = decode(src, "transfer " + ticket->token.substr(0, 8));
  if (!x) {
    if (src.connection_broken()) {
      counters_.failed_in.fetch_add(1); // sender gone: nobody to tell
      return;
    }
    refuse(src.problem() ? src.problem() : x.error());
    return;
  }
  auto uri = adopt_(*ticket, std::move(*x));
  if (!uri) {
    refuse(uri.error());
    return;
  }
  counters_.transfers_in.fetch_add(1);
  counters_.bytes_in.fetch_add(h.total);
  send_frame(*stream, ok, 0, *uri);
}

caf::expected<std::string> data_plane::deliver_local(const std::string& token,
                                                     value_ptr x) {
  auto ticket = claim(token);
  if (!ticket)
    return std::move(ticket.error());
  auto uri = adopt_(*ticket, std::move(x));
  if (uri) {
    counters_.transfers_in.fetch_add(1);
    counters_.local_handoffs.fetch_add(1);
  }
  return uri;
}

// -- sending ------------------------------------------------------------------

caf::expected<std::string> data_plane::send(const std::string& host,
                                            uint16_t port,
                                            const std::string& token,
                                            value_ptr x) {
  auto what = "transfer to " + host + ":" + std::to_string(port);
  if (!x)
    return make_error(errc::invalid_argument, what + ": null value");
  if (token.size() != token_size)
    return make_error(errc::invalid_argument, what + ": malformed token");
  if (options_.local_shortcut && is_loopback(host)) {
    std::shared_ptr<data_plane> target;
    {
      std::lock_guard guard{registry_mtx};
      if (auto i = registry.find(port); i != registry.end())
        target = i->second.lock();
    }
    if (target && target->options_.local_shortcut) {
      auto result = target->deliver_local(token, std::move(x));
      counters_.transfers_out.fetch_add(result ? 1 : 0);
      counters_.failed_out.fetch_add(result ? 0 : 1);
      return result;
    }
  }
  auto fail = [&](caf::error err) -> caf::expected<std::string> {
    counters_.failed_out.fetch_add(1);
    return err;
  };
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found)
          != 0
      || found == nullptr)
    return fail(make_error(errc::object_lost, what + ": cannot resolve host"));
  fd_owner fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  {
    std::lock_guard guard{mtx_};
    if (stopping_) {
      ::freeaddrinfo(found);
      return fail(make_error(errc::object_lost, what + ": node is stopping"));
    }
    outgoing_fds_.push_back(fd.fd);
  }
  auto unregister = std::unique_ptr<void, std::function<void(void*)>>{
      this, [this, sock = fd.fd](void*) {
        std::lock_guard guard{mtx_};
        std::erase(outgoing_fds_, sock);
      }};
  set_socket_options(fd.fd, options_.io_timeout);
  auto rc = ::connect(fd.fd, found->ai_addr, found->ai_addrlen);
  auto connect_errno = errno;
  ::freeaddrinfo(found);
  if (rc != 0)
    return fail(io_failure(what, connect_errno));
  std::unique_ptr<byte_stream> stream;
  if (tls_) {
    auto secured = tls_->connect(fd.fd);
    if (!secured)
      return fail(make_error(errc::unauthenticated,
                             what + ": " + message_of(secured.error())));
    stream = std::move(*secured);
  } else {
    stream = make_plain_stream(fd.fd);
  }
  auto pieces = encode_pieces(*x);
  hello h;
  std::memcpy(h.magic, hello_magic, sizeof(hello_magic));
  h.version = protocol_version;
  std::memcpy(h.token, token.data(), token_size);
  h.total = pieces.size();
  if (auto code = stream->write_all(&h, sizeof(h)))
    return fail(io_failure(what, code));
  uint64_t trailer = pieces.checksum;
  std::vector<std::span<const std::byte>> spans;
  spans.push_back(std::as_bytes(std::span{pieces.head}));
  spans.insert(spans.end(), pieces.blocks.begin(), pieces.blocks.end());
  spans.push_back(std::as_bytes(std::span{&trailer, 1}));
  uint64_t sent = 0;
  uint64_t acked = 0;
  // Reads one frame from the target; a failure frame ends the transfer.
  auto read_reply = [&](frame& f, std::string& body) -> caf::error {
    if (auto code = stream->read_all(&f, sizeof(f)))
      return io_failure(what, code);
    if (f.type == credit) {
      acked = std::max(acked, f.arg);
      return {};
    }
    if ((f.type != ok && f.type != failure) || f.length > max_message)
      return make_error(errc::corrupt_data, what + ": malformed reply");
    body.resize(f.length);
    if (auto code = stream->read_all(body.data(), body.size()))
      return io_failure(what, code);
    if (f.type == failure) {
      auto code = f.arg <= static_cast<uint64_t>(errc::unsupported)
                      ? static_cast<errc>(f.arg)
                      : errc::io_error;
      return make_error(code == errc::none ? errc::io_error : code,
                        what + ": target refused: " + body);
    }
    return {};
  };
  frame f;
  std::string body;
  for (auto span : spans) {
    size_t off = 0;
    while (off < span.size()) {
      auto len = std::min(options_.chunk_size, span.size() - off);
      while (sent + len - acked > options_.window) {
        if (auto err = read_reply(f, body))
          return fail(std::move(err));
        if (f.type == ok)
          return fail(make_error(errc::corrupt_data,
                                 what + ": early reply from target"));
      }
      frame hdr{chunk, static_cast<uint32_t>(len), sent};
      iovec iov[2] = {{&hdr, sizeof(hdr)},
                      {const_cast<std::byte*>(span.data() + off), len}};
      if (auto code = stream->write_all(iov, 2)) {
        // The target may have refused with a reason before closing.
        if (auto err = read_reply(f, body); err && f.type == failure)
          return fail(std::move(err));
        return fail(io_failure(what, code));
      }
      sent += len;
      off += len;
      raise_high_mark(counters_.max_in_flight, sent - acked);
    }
  }
  for (;;) {
    if (auto err = read_reply(f, body))
      return fail(std::move(err));
    if (f.type == ok)
      break;
  }
  counters_.transfers_out.fetch_add(1);
  counters_.bytes_out.fetch_add(sent);
  return body;
}

} // namespace objstore
