#include "store/file_backend.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <random>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "store/codec.hpp"
#include "store/detail/fd_io.hpp"
#include "store/detail/fs_walk.hpp"
#include "store/error.hpp"

namespace fs = std::filesystem;

namespace objstore {

namespace {

using detail::fd_guard;
using detail::fd_source;

caf::error sys_error(const uri& id, std::string_view what, int code) {
  auto ec = code == ENOSPC || code == EDQUOT ? errc::resource_exhausted
                                             : errc::io_error;
  return make_error(ec, "'" + id.str() + "': " + std::string{what} + ": "
                            + std::strerror(code));
}

using detail::is_under;

constexpr const char* owner_attr = "user.objstore.owner";

/// Whether extended attributes can be written in `dir` (ext4, xfs, btrfs,
/// tmpfs since Linux 6.6 do; some network file systems do not).
caf::error probe_xattrs(const fs::path& dir) {
  auto probe = dir / ".objstore-tmp-xattr-probe";
  // O_EXCL after removing a leftover: never opens whatever (a FIFO, a
  // symlink) might sit under the probe's name.
  ::unlink(probe.c_str());
  int fd = ::open(probe.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return make_error(errc::invalid_argument,
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

/// Checks that `root` names a directory this process can use as a root
/// (creating a missing writable one) and returns its canonical path.
/// Errors are `invalid_argument` naming the root: configuration errors.
caf::expected<fs::path> usable_root(const fs::path& root, bool writable) {
  auto fail = [&](const std::string& why) {
    return make_error(errc::invalid_argument,
                      std::string{writable ? "fs root '" : "shared root '"}
                          + root.string() + "' " + why);
  };
  if (!root.is_absolute())
    return fail("is not absolute");
  std::error_code ec;
  auto st = fs::status(root, ec);
  if (st.type() == fs::file_type::not_found) {
    if (!writable)
      return fail("does not exist");
    if (fs::create_directories(root, ec); ec)
      return fail("cannot be created: " + ec.message());
  } else if (ec) {
    return fail("cannot be resolved: " + ec.message());
  }
  auto canonical = fs::canonical(root, ec);
  if (ec)
    return fail("cannot be resolved: " + ec.message());
  if (!fs::is_directory(canonical, ec))
    return fail("is not a directory");
  auto mode = R_OK | X_OK | (writable ? W_OK : 0);
  if (::faccessat(AT_FDCWD, canonical.c_str(), mode, AT_EACCESS) != 0)
    return fail(std::string{"is not "}
                + (writable ? "readable and writable" : "readable")
                + " by this process: " + std::strerror(errno));
  return canonical;
}

/// The URI of an object file, or none when its path makes no valid fs://
/// URI (control characters, too long): such files cannot be addressed, so
/// they are not objects.
std::optional<uri> object_uri(const fs::path& p) {
  auto result = uri::parse("fs://" + p.string());
  if (!result)
    return std::nullopt;
  return std::move(*result);
}

/// The error for a URI naming something else than a regular file.
caf::error not_regular(const uri& id, mode_t mode) {
  return make_error(errc::invalid_uri,
                    "'" + id.str() + "': is "
                        + std::string{detail::file_type_name(mode)}
                        + ", not a regular file");
}

/// Opens the object file `path` for reading without ever blocking: an
/// `O_PATH` descriptor (which opens no device and reads no FIFO) checks
/// that it is a regular file first, and the read descriptor is opened with
/// `O_NONBLOCK` and checked again before the flag is cleared (a concurrent
/// put may have renamed a new file in between; that one is read). Fills
/// `st`. Errors: `not_found`, `invalid_uri` (not a regular file),
/// `io_error`.
caf::expected<int> open_object(const fs::path& path, const uri& id,
                               struct stat& st) {
  fd_guard probe{::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC)};
  if (probe.fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return make_error(errc::not_found, id.str());
    return sys_error(id, "cannot open", errno);
  }
  if (::fstat(probe.fd, &st) != 0)
    return sys_error(id, "cannot stat", errno);
  if (!S_ISREG(st.st_mode))
    return not_regular(id, st.st_mode);
  fd_guard file{
      ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
  if (file.fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return make_error(errc::not_found, id.str());
    return sys_error(id, "cannot open", errno);
  }
  if (::fstat(file.fd, &st) != 0)
    return sys_error(id, "cannot stat", errno);
  if (!S_ISREG(st.st_mode))
    return not_regular(id, st.st_mode); // swapped since the check
  auto flags = ::fcntl(file.fd, F_GETFL);
  if (flags < 0 || ::fcntl(file.fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
    return sys_error(id, "cannot clear O_NONBLOCK", errno);
  return file.release();
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
  auto& roots = result->roots_;
  auto known = [&roots](const fs::path& p) {
    return std::find(roots.begin(), roots.end(), p) != roots.end();
  };
  for (auto& root : result->options_.read_only_roots) {
    auto canonical = usable_root(root, false);
    if (!canonical)
      return canonical.error();
    result->read_only_roots_.push_back(std::move(*canonical));
  }
  for (auto& root : result->options_.roots) {
    auto canonical = usable_root(root, true);
    if (!canonical)
      return canonical.error();
    if (auto err = probe_xattrs(*canonical))
      return err;
    // Each root once, or the scan would count its objects twice.
    if (!known(*canonical))
      roots.push_back(std::move(*canonical));
  }
  auto writable = roots.size();
  // Read-only roots resolve like the others; listed after the writable
  // ones, and never cleaned (they may be read-only mounts).
  for (auto& root : result->read_only_roots_)
    if (!known(root))
      roots.push_back(root);
  if (auto err = result->scan(writable))
    return err;
  return result;
}

caf::error file_backend::scan(size_t writable_roots) {
  auto warn = [this](std::string text) {
    if (scan_warnings_.size() < max_scan_warnings)
      scan_warnings_.push_back(std::move(text));
    ++scan_warning_count_;
  };
  bool clean = false;
  std::vector<fs::path> stale;
  auto visit = [&](const detail::walk_entry& entry) {
    switch (entry.kind) {
      case detail::walk_entry::object:
        if (!object_uri(entry.path)) {
          warn("'" + entry.path.string()
               + "': name makes no valid fs:// URI, not an object");
          break;
        }
        ++objects_;
        bytes_ += entry.size;
        break;
      case detail::walk_entry::temp_file:
        if (clean)
          stale.push_back(entry.path);
        break;
      case detail::walk_entry::warning:
        warn("'" + entry.path.string() + "': " + entry.reason);
        break;
    }
  };
  for (size_t k = 0; k < roots_.size(); ++k) {
    clean = options_.clean_temp_files && k < writable_roots;
    if (auto err = detail::walk_root(roots_[k], roots_, temp_prefix, visit))
      return err;
  }
  for (auto& p : stale) {
    std::error_code ec;
    if (!fs::remove(p, ec) && ec)
      warn("'" + p.string() + "': cannot remove temp file: " + ec.message());
  }
  return {};
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
  struct stat old;
  if (::lstat(path->c_str(), &old) == 0 && !S_ISREG(old.st_mode))
    return not_regular(id, old.st_mode);
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
  if (auto code = detail::write_encoded(file.fd, pieces))
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
  {
    // The old file's size and the rename in one step, so concurrent puts
    // and erases of the same path cannot both count it.
    std::lock_guard guard{counters_mtx_};
    bool replaces = false;
    if (::lstat(path->c_str(), &old) == 0) {
      if (!S_ISREG(old.st_mode)) {
        ::unlink(tmp.c_str());
        return not_regular(id, old.st_mode);
      }
      replaces = true;
    }
    if (::rename(tmp.c_str(), path->c_str()) != 0)
      return fail("rename failed", errno);
    if (replaces) {
      bytes_ -= std::min(bytes_, static_cast<uint64_t>(old.st_size));
    } else {
      ++objects_;
    }
    bytes_ += pieces.size();
  }
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
  struct stat st;
  auto fd = open_object(*path, id, st);
  if (!fd)
    return fd.error();
  fd_guard file{*fd};
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
  std::lock_guard guard{counters_mtx_};
  struct stat st;
  if (::lstat(path->c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return make_error(errc::not_found, id.str());
    return sys_error(id, "cannot stat", errno);
  }
  if (!S_ISREG(st.st_mode))
    return not_regular(id, st.st_mode);
  if (::unlink(path->c_str()) != 0) {
    if (errno == ENOENT)
      return make_error(errc::not_found, id.str());
    return sys_error(id, "cannot remove", errno);
  }
  objects_ -= std::min<uint64_t>(objects_, 1);
  bytes_ -= std::min(bytes_, static_cast<uint64_t>(st.st_size));
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
  auto visit = [&result](const detail::walk_entry& entry) {
    if (entry.kind != detail::walk_entry::object)
      return;
    if (auto id = object_uri(entry.path))
      result.push_back({std::move(*id), entry.size});
  };
  for (auto& root : roots_)
    if (auto err = detail::walk_root(root, roots_, temp_prefix, visit))
      return err;
  return result;
}

backend_stats file_backend::stats() {
  std::lock_guard guard{counters_mtx_};
  return {objects_, bytes_};
}

} // namespace objstore
