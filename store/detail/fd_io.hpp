#pragma once

// Plain POSIX file IO shared by the backends that keep encoded values in
// files (file_backend for fs://, spill_directory for spilled mem://).

#include <cstddef>
#include <utility>

#include "store/codec.hpp"

namespace objstore::detail {

/// Owns a file descriptor.
struct fd_guard {
  int fd = -1;
  fd_guard() = default;
  explicit fd_guard(int x) : fd(x) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard();
  /// Gives up ownership.
  int release() noexcept { return std::exchange(fd, -1); }
};

/// Reads from a file descriptor of known size.
class fd_source : public byte_source {
public:
  fd_source(int fd, size_t size) : fd_(fd), remaining_(size) {}
  size_t remaining() const override { return remaining_; }
  bool read(std::byte* dst, size_t n) override;

private:
  int fd_;
  size_t remaining_;
};

/// Writes all of `data`; returns 0 or an errno value.
int write_all(int fd, const void* data, size_t n);

/// Writes an encoding (head, blocks, checksum trailer); returns 0 or an
/// errno value.
int write_encoded(int fd, const encoded_value& pieces);

} // namespace objstore::detail
