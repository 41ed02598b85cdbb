#include "store/file_backend.hpp"

#include <cerrno>
#include <cstring>
#include <random>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "store/codec.hpp"
#include "store/error.hpp"

namespace fs = std::filesystem;

namespace objstore {

namespace {

caf::error sys_error(const uri& id, std::string_view what, int code) {
  auto ec = code == ENOSPC || code == EDQUOT ? errc::resource_exhausted
                                             : errc::io_error;
  return make_error(ec, "'" + id.str() + "': " + std::string{what} + ": "
                            + std::strerror(code));
}

bool is_under(const fs::path& p, const fs::path& root) {
  auto [r, q] = std::mismatch(root.begin(), root.end(), p.begin(), p.end());
  return r == root.end();
}

constexpr const char* owner_attr = "user.objstore.owner";

/// Whether extended attributes can be written in `dir` (ext4, xfs, btrfs,
/// tmpfs since Linux 6.6 do; some network file systems do not).
caf::error probe_xattrs(const fs::path& dir) {
  auto probe = dir / ".objstore-tmp-xattr-probe";
  int fd
      = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return make_error(errc::io_error,
                      "fs root '" + dir.string()
                          + "' is not writable: " + std::strerror(errno));
  auto rc = ::fsetxattr(fd, owner_attr, "probe", 5, 0);
  auto code = errno;
  ::close(fd);
  ::unlink(probe.c_str());
  if (rc != 0)
    return make_error(errc::invalid_argument,
                      "fs root '" + dir.string()
                          + "' does not keep extended attributes ("
                          + std::strerror(code)
                          + "); objstore records each object's owner in "
                            "one: use ext4, xfs, btrfs or tmpfs >= 6.6");
  return {};
}

bool is_temp_name(const fs::path& p) {
  return p.filename().string().starts_with(file_backend::temp_prefix);
}

/// Owns a file descriptor.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
};

/// Reads from a file descriptor of known size.
class fd_source : public byte_source {
public:
  fd_source(int fd, size_t size) : fd_(fd), remaining_(size) {}
  size_t remaining() const override { return remaining_; }
  bool read(std::byte* dst, size_t n) override {
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

private:
  int fd_;
  size_t remaining_;
};

/// Writes all of `data`; returns 0 or an errno value.
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

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char hex[] = "0123456789abcdef";
  auto bits = rng();
  std::string out;
  for (int i = 0; i < 16; ++i, bits >>= 4)
    out += hex[bits & 0xF];
  return out;
}

} // namespace

file_backend::file_backend(file_backend_options options)
    : options_(std::move(options)) {
  // nop
}

caf::expected<std::unique_ptr<file_backend>>
file_backend::make(file_backend_options options) {
  if (options.roots.empty() && options.read_only_roots.empty())
    return make_error(errc::invalid_argument, "file backend needs a root");
  std::unique_ptr<file_backend> result{new file_backend(std::move(options))};
  for (auto& root : result->options_.read_only_roots) {
    std::error_code ec;
    auto canonical = fs::canonical(root, ec);
    if (!root.is_absolute() || ec || !fs::is_directory(canonical))
      return make_error(errc::invalid_argument,
                        "shared root '" + root.string()
                            + "' is not an existing absolute directory");
    result->read_only_roots_.push_back(canonical);
  }
  for (auto& root : result->options_.roots) {
    if (!root.is_absolute())
      return make_error(errc::invalid_argument,
                        "fs root '" + root.string() + "' is not absolute");
    std::error_code ec;
    fs::create_directories(root, ec);
    auto canonical = fs::canonical(root, ec);
    if (ec || !fs::is_directory(canonical))
      return make_error(errc::io_error,
                        "fs root '" + root.string()
                            + "' is not a usable directory: " + ec.message());
    if (auto err = probe_xattrs(canonical))
      return err;
    result->roots_.push_back(canonical);
  }
  auto writable = result->roots_.size();
  // Read-only roots resolve like the others; listed after the writable
  // ones, and never cleaned (they may be read-only mounts).
  result->roots_.insert(result->roots_.end(), result->read_only_roots_.begin(),
                        result->read_only_roots_.end());
  if (result->options_.clean_temp_files) {
    for (size_t k = 0; k < writable; ++k) {
      auto& root = result->roots_[k];
      std::error_code ec;
      std::vector<fs::path> stale;
      for (auto i = fs::recursive_directory_iterator(root, ec);
           !ec && i != fs::recursive_directory_iterator(); i.increment(ec))
        if (i->is_regular_file() && is_temp_name(i->path()))
          stale.push_back(i->path());
      for (auto& p : stale)
        fs::remove(p, ec);
    }
  }
  return result;
}

caf::expected<fs::path> file_backend::resolve(const uri& id) const {
  if (id.scheme() != scheme::fs)
    return make_error(errc::invalid_uri,
                      "'" + id.str() + "': file backend serves fs:// only");
  fs::path p{std::string{id.key()}};
  if (!p.is_absolute())
    return make_error(errc::invalid_uri,
                      "'" + id.str() + "': fs:// path must be absolute");
  for (auto& part : p)
    if (part == ".." || part == ".")
      return make_error(errc::permission_denied,
                        "'" + id.str()
                            + "': path components '.' and '..' are refused");
  if (is_temp_name(p))
    return make_error(errc::permission_denied,
                      "'" + id.str() + "': reserved temp file name");
  std::error_code ec;
  // Resolves symlinks along the existing prefix, so a link inside a root
  // that points out of it is caught here.
  auto real = fs::weakly_canonical(p, ec);
  if (ec)
    return make_error(errc::permission_denied,
                      "'" + id.str() + "': cannot resolve: " + ec.message());
  for (auto& root : roots_) {
    if (!is_under(real, root) || real == root)
      continue;
    // weakly_canonical leaves a dangling symlink (and what follows it)
    // unresolved; it may point anywhere, so refuse it rather than write
    // through or over it.
    for (auto p = real; p != root; p = p.parent_path())
      if (fs::is_symlink(fs::symlink_status(p, ec)))
        return make_error(errc::permission_denied, "'" + id.str()
                                                       + "': dangling symlink '"
                                                       + p.string() + "'");
    return real;
  }
  return make_error(errc::permission_denied,
                    "'" + id.str() + "': outside the configured fs roots");
}

caf::error file_backend::put(const uri& id, const value_ptr& x) {
  return put_owned(id, x, {});
}

bool file_backend::read_only(const uri& id) const {
  auto path = resolve(id);
  if (!path)
    return false;
  for (auto& root : read_only_roots_)
    if (is_under(*path, root))
      return true;
  return false;
}

caf::expected<std::string> file_backend::owner(const uri& id) const {
  auto path = resolve(id);
  if (!path)
    return path.error();
  if (read_only(id))
    return std::string{};
  char buf[256];
  auto n = ::getxattr(path->c_str(), owner_attr, buf, sizeof(buf));
  if (n >= 0)
    return std::string{buf, static_cast<size_t>(n)};
  if (errno == ENOENT)
    return make_error(errc::not_found, id.str());
  return std::string{"operator"}; // placed by hand: the operator's
}

caf::error file_backend::authorize(const uri& id, const std::string& principal,
                                   fs_access what) const {
  if (read_only(id)) {
    if (what == fs_access::read)
      return {};
    return make_error(errc::permission_denied,
                      "'" + id.str() + "': in a read-only shared root");
  }
  auto who = owner(id);
  if (!who) {
    if (code_of(who.error()) == errc::not_found && what == fs_access::write)
      return {}; // a new object: its writer will own it
    return who.error();
  }
  if (*who == principal)
    return {};
  if (principal == "operator" && what != fs_access::read)
    return {};
  return make_error(errc::permission_denied,
                    "'" + id.str() + "': owned by another principal (only its "
                        + "owner may "
                        + (what == fs_access::read    ? "read"
                           : what == fs_access::write ? "overwrite"
                                                      : "erase")
                        + " it)");
}

caf::error file_backend::put_owned(const uri& id, const value_ptr& x,
                                   const std::string& owner) {
  auto path = resolve(id);
  if (!path)
    return path.error();
  if (read_only(id))
    return make_error(errc::permission_denied,
                      "'" + id.str() + "': in a read-only shared root");
  if (!x)
    return make_error(errc::invalid_argument, "'" + id.str() + "': null value");
  std::error_code ec;
  auto dir = path->parent_path();
  fs::create_directories(dir, ec);
  if (ec)
    return make_error(errc::io_error,
                      "'" + id.str()
                          + "': cannot create directory: " + ec.message());
  if (fs::is_directory(*path, ec))
    return make_error(errc::invalid_uri,
                      "'" + id.str() + "': names a directory");
  auto tmp = dir
             / (std::string{temp_prefix} + path->filename().string() + "-"
                + random_suffix());
  auto pieces = encode_pieces(*x);
  fd_guard file{
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
  if (file.fd < 0)
    return sys_error(id, "cannot create temp file", errno);
  auto fail = [&](std::string_view what, int code) {
    ::unlink(tmp.c_str());
    return sys_error(id, what, code);
  };
  if (auto code = write_all(file.fd, pieces.head.data(), pieces.head.size()))
    return fail("write failed", code);
  for (auto& block : pieces.blocks)
    if (auto code = write_all(file.fd, block.data(), block.size()))
      return fail("write failed", code);
  unsigned char trailer[8];
  for (int i = 0; i < 8; ++i)
    trailer[i]
        = static_cast<unsigned char>((pieces.checksum >> (8 * i)) & 0xFF);
  if (auto code = write_all(file.fd, trailer, sizeof(trailer)))
    return fail("write failed", code);
  if (!owner.empty()
      && ::fsetxattr(file.fd, owner_attr, owner.data(), owner.size(), 0) != 0)
    return fail("cannot record the owner", errno);
  if (options_.sync && ::fsync(file.fd) != 0)
    return fail("fsync failed", errno);
  if (::close(file.fd) != 0) {
    file.fd = -1;
    return fail("close failed", errno);
  }
  file.fd = -1;
  if (options_.before_publish)
    options_.before_publish();
  if (::rename(tmp.c_str(), path->c_str()) != 0)
    return fail("rename failed", errno);
  if (options_.sync) {
    fd_guard dir_fd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (dir_fd.fd >= 0)
      ::fsync(dir_fd.fd);
  }
  return {};
}

caf::expected<value_ptr> file_backend::get(const uri& id) {
  auto path = resolve(id);
  if (!path)
    return path.error();
  fd_guard file{::open(path->c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
  if (file.fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return make_error(errc::not_found, id.str());
    return sys_error(id, "cannot open", errno);
  }
  struct stat st;
  if (::fstat(file.fd, &st) != 0)
    return sys_error(id, "cannot stat", errno);
  if (!S_ISREG(st.st_mode))
    return make_error(errc::not_found, id.str() + " (not a regular file)");
  fd_source src{file.fd, static_cast<size_t>(st.st_size)};
  return decode(src, id.str());
}

caf::error file_backend::erase(const uri& id) {
  auto path = resolve(id);
  if (!path)
    return path.error();
  if (read_only(id))
    return make_error(errc::permission_denied,
                      "'" + id.str() + "': in a read-only shared root");
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(*path, ec)))
    return make_error(errc::not_found, id.str());
  if (::unlink(path->c_str()) != 0) {
    if (errno == ENOENT)
      return make_error(errc::not_found, id.str());
    return sys_error(id, "cannot remove", errno);
  }
  return {};
}

caf::expected<bool> file_backend::exists(const uri& id) {
  auto path = resolve(id);
  if (!path)
    return path.error();
  std::error_code ec;
  return fs::is_regular_file(fs::symlink_status(*path, ec));
}

caf::expected<std::vector<object_info>> file_backend::list() {
  std::vector<object_info> result;
  for (auto& root : roots_) {
    std::error_code ec;
    for (auto i = fs::recursive_directory_iterator(root, ec);
         i != fs::recursive_directory_iterator(); i.increment(ec)) {
      if (ec)
        break;
      if (!i->is_regular_file(ec) || i->is_symlink(ec)
          || is_temp_name(i->path()))
        continue;
      auto id = uri::parse("fs://" + i->path().string());
      if (id)
        result.push_back({std::move(*id), i->file_size(ec)});
    }
    if (ec)
      return make_error(errc::io_error, "cannot list fs root '" + root.string()
                                            + "': " + ec.message());
  }
  return result;
}

backend_stats file_backend::stats() {
  backend_stats result;
  if (auto objects = list(); objects) {
    result.objects = objects->size();
    for (auto& info : *objects)
      result.bytes += info.size_bytes;
  }
  return result;
}

} // namespace objstore
