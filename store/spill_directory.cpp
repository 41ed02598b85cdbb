#include "store/spill_directory.hpp"

#include <cerrno>
#include <cstring>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/codec.hpp"
#include "store/detail/fd_io.hpp"
#include "store/error.hpp"

namespace fs = std::filesystem;

namespace objstore {

namespace {

/// Numbered siblings `<key>.<n>` a node may take when live nodes hold the
/// lower ones.
constexpr int max_siblings = 64;

constexpr const char* lock_name = ".lock";

bool valid_key(const std::string& key) {
  if (key.empty() || key.size() > 200 || key.front() == '.')
    return false;
  for (char c : key)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-'
        && c != '_')
      return false;
  return true;
}

caf::error path_error(const fs::path& p, std::string_view what, int code) {
  auto ec = code == ENOSPC || code == EDQUOT ? errc::resource_exhausted
                                             : errc::io_error;
  return make_error(ec, "spill directory: " + std::string{what} + " '"
                            + p.string() + "': " + std::strerror(code));
}

/// Whether the open file `fd` is still the file at `path`.
bool same_file(int fd, const fs::path& path) {
  struct stat open_file;
  struct stat at_path;
  return ::fstat(fd, &open_file) == 0 && ::stat(path.c_str(), &at_path) == 0
         && open_file.st_dev == at_path.st_dev
         && open_file.st_ino == at_path.st_ino;
}

/// Removes everything in `dir` but its lock file; returns how many entries.
uint64_t clear_contents(const fs::path& dir) {
  uint64_t removed = 0;
  std::error_code ec;
  for (auto i = fs::directory_iterator{dir, ec}; !ec && i != fs::end(i);
       i.increment(ec)) {
    if (i->path().filename() == lock_name)
      continue;
    std::error_code rm;
    if (fs::remove_all(i->path(), rm) > 0)
      ++removed;
  }
  return removed;
}

/// The part of a mem:// key that makes a safe file name.
std::string file_stem(const uri& id) {
  std::string out;
  for (char c : id.key().substr(0, 120))
    out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'
               ? c
               : '_';
  return out;
}

} // namespace

spill_directory::spill_directory(fs::path dir, int lock_fd, uint64_t leftovers)
    : dir_(std::move(dir)), lock_fd_(lock_fd), leftovers_(leftovers) {
  // nop
}

caf::expected<std::unique_ptr<spill_directory>>
spill_directory::open(const fs::path& root, const std::string& key) {
  if (!valid_key(key))
    return make_error(errc::invalid_argument,
                      "spill directory: bad node key '" + key.substr(0, 200)
                          + "' (characters [A-Za-z0-9._-], not starting with "
                            "'.')");
  if (!root.is_absolute())
    return make_error(errc::invalid_argument,
                      "spill directory: '" + root.string()
                          + "' is not an absolute path");
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec)
    return make_error(errc::io_error, "spill directory: cannot create '"
                                          + root.string()
                                          + "': " + ec.message());
  detail::fd_guard chosen;
  fs::path chosen_dir;
  uint64_t removed = 0;
  int retries = 0;
  for (int n = 0; n < max_siblings; ++n) {
    auto dir = root / (n == 0 ? key : key + "." + std::to_string(n));
    bool exists = fs::is_directory(dir, ec);
    if (!exists && chosen.fd >= 0)
      continue;
    if (!exists && !fs::create_directory(dir, ec) && ec)
      return make_error(errc::io_error, "spill directory: cannot create '"
                                            + dir.string()
                                            + "': " + ec.message());
    auto lock_path = dir / lock_name;
    detail::fd_guard lock{
        ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)};
    if (lock.fd < 0) {
      if (chosen.fd >= 0)
        continue; // someone else's sibling we cannot open: not ours
      return path_error(lock_path, "cannot open lock file", errno);
    }
    if (::flock(lock.fd, LOCK_EX | LOCK_NB) != 0)
      continue; // a live node uses it
    if (!same_file(lock.fd, lock_path)) {
      // Removed as a dead sibling by another node starting meanwhile: the
      // lock we hold is on a deleted file. Look at this place again.
      if (++retries < 100)
        --n;
      continue;
    }
    if (chosen.fd < 0) {
      // Ours now; whatever is inside was left by a crashed process.
      removed += clear_contents(dir);
      chosen.fd = lock.release();
      chosen_dir = dir;
      continue;
    }
    // A numbered sibling of our key that no live process holds.
    removed += clear_contents(dir);
    ::unlink(lock_path.c_str());
    fs::remove(dir, ec);
  }
  if (chosen.fd < 0)
    return make_error(errc::io_error,
                      "spill directory: '" + (root / key).string() + "' and "
                          + std::to_string(max_siblings - 1)
                          + " numbered siblings are held by live processes");
  // Unwritable (read-only mount, full disk): a clear error at start
  // rather than a failure at the first spill.
  auto probe = chosen_dir / ".probe";
  detail::fd_guard file{
      ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
  if (file.fd < 0)
    return path_error(probe, "cannot write in", errno);
  char byte = 0;
  if (auto code = detail::write_all(file.fd, &byte, 1)) {
    ::unlink(probe.c_str());
    return path_error(probe, "cannot write in", code);
  }
  ::unlink(probe.c_str());
  return std::unique_ptr<spill_directory>{
      new spill_directory(std::move(chosen_dir), chosen.release(), removed)};
}

spill_directory::~spill_directory() {
  clear_contents(dir_);
  ::unlink((dir_ / lock_name).c_str());
  std::error_code ec;
  fs::remove(dir_, ec);
  ::close(lock_fd_);
}

caf::expected<spill_file> spill_directory::write(const uri& id,
                                                 const value& x) {
  auto name = file_stem(id) + "-" + std::to_string(next_file_++) + ".spill";
  auto path = dir_ / name;
  auto tmp = dir_ / (".tmp-" + name);
  auto fail = [&](std::string_view what, int code) {
    ::unlink(tmp.c_str());
    auto err = path_error(tmp, what, code);
    return make_error(code_of(err), "'" + id.str() + "': " + message_of(err));
  };
  auto pieces = encode_pieces(x);
  detail::fd_guard file{
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (file.fd < 0)
    return fail("cannot create", errno);
  if (auto code = detail::write_encoded(file.fd, pieces))
    return fail("cannot write", code);
  if (::close(file.release()) != 0)
    return fail("cannot close", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return fail("cannot rename", errno);
  return spill_file{std::move(path), pieces.size()};
}

caf::expected<value_ptr> spill_directory::read(const uri& id,
                                               const spill_file& f) {
  detail::fd_guard file{::open(f.path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) {
    if (errno == ENOENT)
      return make_error(errc::object_lost, "'" + id.str() + "': spill file '"
                                               + f.path.string()
                                               + "' is missing");
    auto err = path_error(f.path, "cannot open", errno);
    return make_error(code_of(err), "'" + id.str() + "': " + message_of(err));
  }
  struct stat st;
  if (::fstat(file.fd, &st) != 0) {
    auto err = path_error(f.path, "cannot stat", errno);
    return make_error(code_of(err), "'" + id.str() + "': " + message_of(err));
  }
  detail::fd_source src{file.fd, static_cast<size_t>(st.st_size)};
  return decode(src, id.str() + " (spill file '" + f.path.string() + "')");
}

size_t spill_directory::count_files(const fs::path& root) {
  size_t n = 0;
  std::error_code ec;
  for (auto i = fs::recursive_directory_iterator{root, ec};
       !ec && i != fs::end(i); i.increment(ec))
    if (i->is_regular_file() && i->path().filename() != lock_name)
      ++n;
  return n;
}

void spill_directory::remove(const spill_file& f) noexcept {
  ::unlink(f.path.c_str());
}

} // namespace objstore
