#include "store/detail/fd_io.hpp"

#include <algorithm>
#include <cerrno>

#include <unistd.h>

namespace objstore::detail {

fd_guard::~fd_guard() {
  if (fd >= 0)
    ::close(fd);
}

bool fd_source::read(std::byte* dst, size_t n) {
  if (n > remaining_)
    return false;
  while (n > 0) {
    auto got = ::read(fd_, dst, std::min<size_t>(n, 1u << 30));
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      return false;
    dst += got;
    n -= static_cast<size_t>(got);
    remaining_ -= static_cast<size_t>(got);
  }
  return true;
}

int write_all(int fd, const void* data, size_t n) {
  auto* pos = static_cast<const char*>(data);
  while (n > 0) {
    auto put = ::write(fd, pos, std::min<size_t>(n, 1u << 30));
    if (put < 0 && errno == EINTR)
      continue;
    if (put < 0)
      return errno;
    pos += put;
    n -= static_cast<size_t>(put);
  }
  return 0;
}

int write_encoded(int fd, const encoded_value& pieces) {
  if (auto code = write_all(fd, pieces.head.data(), pieces.head.size()))
    return code;
  for (auto& block : pieces.blocks)
    if (auto code = write_all(fd, block.data(), block.size()))
      return code;
  unsigned char trailer[8];
  for (int i = 0; i < 8; ++i)
    trailer[i]
        = static_cast<unsigned char>((pieces.checksum >> (8 * i)) & 0xFF);
  return write_all(fd, trailer, sizeof(trailer));
}

} // namespace objstore::detail
