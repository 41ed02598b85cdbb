#pragma once

// A plain TCP client of a data plane that writes its frame format by hand:
// tests play senders that break the protocol (actors/dataplane/
// data_plane.hpp) with it.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "store/error.hpp"

namespace objstore::test {

/// A plain TCP client of a data plane speaking its frame format by hand.
class raw_connection {
public:
  struct reply {
    uint32_t type = 0; // 0: closed without a frame
    uint64_t arg = 0;
    std::string body;
  };

  explicit raw_connection(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    connected_
        = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }

  ~raw_connection() { ::close(fd_); }

  bool connected() const { return connected_; }

  /// Writes `n` bytes; the peer may already have refused and closed.
  void write(const void* data, size_t n) {
    auto* pos = static_cast<const char*>(data);
    while (n > 0) {
      auto k = ::send(fd_, pos, n, MSG_NOSIGNAL);
      if (k <= 0)
        return;
      pos += k;
      n -= static_cast<size_t>(k);
    }
  }

  void hello(const std::string& token, uint64_t total) {
    char h[48] = {'O', 'S', 'X', 'F', 1, 0, 0, 0};
    std::memcpy(h + 8, token.data(), std::min<size_t>(token.size(), 32));
    std::memcpy(h + 40, &total, 8);
    write(h, sizeof(h));
  }

  void frame(uint32_t type, uint32_t length, uint64_t arg,
             const std::byte* payload = nullptr, size_t payload_size = 0) {
    char f[16];
    std::memcpy(f, &type, 4);
    std::memcpy(f + 4, &length, 4);
    std::memcpy(f + 8, &arg, 8);
    write(f, sizeof(f));
    if (payload_size > 0)
      write(payload, payload_size);
  }

  /// Sends `bytes` as chunk frames of `chunk` bytes at their offsets.
  void chunks(const std::vector<std::byte>& bytes, size_t chunk = 64) {
    for (size_t off = 0; off < bytes.size(); off += chunk) {
      auto n = std::min(chunk, bytes.size() - off);
      frame(1, static_cast<uint32_t>(n), off, bytes.data() + off, n);
    }
  }

  void close_write() { ::shutdown(fd_, SHUT_WR); }

  /// Reads frames until an `ok` or `failure` frame, skipping credits.
  reply read_reply() {
    reply result;
    for (;;) {
      char f[16];
      if (!read(f, sizeof(f)))
        return result;
      uint32_t type, length;
      std::memcpy(&type, f, 4);
      std::memcpy(&length, f + 4, 4);
      std::memcpy(&result.arg, f + 8, 8);
      if (type == 2)
        continue; // credit
      result.type = type;
      result.body.resize(std::min<uint32_t>(length, 1u << 16));
      read(result.body.data(), result.body.size());
      return result;
    }
  }

private:
  bool read(char* dst, size_t n) {
    while (n > 0) {
      auto k = ::recv(fd_, dst, n, 0);
      if (k <= 0)
        return false;
      dst += k;
      n -= static_cast<size_t>(k);
    }
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
};

/// Checks a data plane's answer to a hostile stream: a failure frame with
/// `expected`, or for `errc::none` anything but success (the node may just
/// close the connection).
inline void expect_refused(const raw_connection::reply& r, errc expected) {
  if (expected != errc::none) {
    ASSERT_EQ(r.type, 4u) << "no failure frame";
    EXPECT_EQ(static_cast<errc>(r.arg), expected) << r.body;
  } else {
    EXPECT_NE(r.type, 3u) << "a truncated stream was stored";
  }
}

} // namespace objstore::test
