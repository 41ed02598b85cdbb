// libFuzzer target: the data plane's inbound chunk stream. Each input is
// what a (hostile) sender writes after a valid hello: the first 4 bytes
// give the announced total (little-endian, capped at 4 MiB), the rest is
// written raw to a fresh connection (frames and payload as the fuzzer
// likes), then the sender half-closes and reads the reply.
//
// Invariants: the receiving data plane neither crashes nor hangs (it
// replies or closes within 5 s); it adopts only non-null values from
// streams long enough to hold an encoding (decode() checks the rest, see
// fuzz_codec); the node keeps serving (a regular transfer after each
// input succeeds).

#include <atomic>
#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/dataplane/data_plane.hpp"
#include "store/codec.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace objstore;

namespace {

struct harness {
  std::shared_ptr<data_plane> target;
  std::shared_ptr<data_plane> source;
  std::atomic<uint64_t> adopted{0};
  value_ptr sample = make_value(tensor::from<int64_t>({3}, {1, 2, 3}));

  harness() {
    data_plane_options opts;
    opts.local_shortcut = false;
    opts.io_timeout = std::chrono::milliseconds{2000};
    opts.max_object_size = 4u << 20;
    opts.chunk_size = 64;
    opts.window = 256;
    auto made
        = data_plane::start(opts,
                            [this](const transfer_ticket&,
                                   value_ptr x) -> caf::expected<std::string> {
                              if (!x)
                                fuzz::fail("adopted a null value");
                              adopted.fetch_add(1);
                              return std::string{"mem://fz-adopted"};
                            });
    if (!made)
      fuzz::fail(describe(made.error()));
    target = std::move(*made);
    auto src = data_plane::start(opts, [](const transfer_ticket&, value_ptr) {
      return caf::expected<std::string>{std::string{}};
    });
    if (!src)
      fuzz::fail(describe(src.error()));
    source = std::move(*src);
  }

  /// Connects to the target, sends hello + `stream`, half-closes and
  /// drains the reply.
  void raw_transfer(uint64_t total, const uint8_t* stream, size_t size) {
    auto token = target->expect(1, std::chrono::steady_clock::now()
                                       + std::chrono::seconds{30});
    if (!token)
      fuzz::fail(describe(token.error()));
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(target->port());
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
      fuzz::fail("connect");
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char hello[48] = {'O', 'S', 'X', 'F', 1, 0, 0, 0};
    std::memcpy(hello + 8, token->data(), 32);
    std::memcpy(hello + 40, &total, 8);
    std::string out{hello, sizeof(hello)};
    out.append(reinterpret_cast<const char*>(stream), size);
    // The target may refuse early and close; a failed write is fine.
    for (size_t off = 0; off < out.size();) {
      auto n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
      if (n <= 0)
        break;
      off += static_cast<size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
    char buf[4096];
    for (;;) {
      auto n = ::recv(fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        fuzz::fail("target neither replied nor closed within 5 s");
      if (n <= 0)
        break;
    }
    ::close(fd);
  }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static harness* h = new harness; // lives until exit (threads)
  if (size < 4)
    return 0;
  uint32_t total = 0;
  std::memcpy(&total, data, 4);
  total %= (4u << 20);
  auto before = h->adopted.load();
  h->raw_transfer(total, data + 4, size - 4);
  // An encoding has at least a 24-byte prefix and an 8-byte trailer.
  OBJSTORE_FUZZ_CHECK(h->adopted.load() == before || total >= 32,
                      "adopted a value from " + std::to_string(total)
                          + " announced bytes");
  // The node still serves a regular transfer.
  auto token = h->target->expect(1, std::chrono::steady_clock::now()
                                        + std::chrono::seconds{30});
  OBJSTORE_FUZZ_CHECK(token, describe(token.error()));
  auto sent
      = h->source->send("127.0.0.1", h->target->port(), *token, h->sample);
  OBJSTORE_FUZZ_CHECK(sent, describe(sent.error()));
  return 0;
}
