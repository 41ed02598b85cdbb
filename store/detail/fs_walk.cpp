#include "store/detail/fs_walk.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/error.hpp"

namespace fs = std::filesystem;

namespace objstore::detail {

namespace {

/// Owns a directory stream.
struct dir_guard {
  DIR* handle = nullptr;
  ~dir_guard() {
    if (handle != nullptr)
      ::closedir(handle);
  }
};

/// Why the symlink `link` in directory `dir` deserves a warning, or an empty
/// string for an alias of something inside the roots.
std::string symlink_problem(const fs::path& link, const fs::path& dir,
                            const std::vector<fs::path>& all_roots) {
  std::error_code ec;
  auto target = fs::canonical(link, ec);
  if (ec == std::errc::too_many_symbolic_link_levels)
    return "symbolic link loop (not followed)";
  if (ec)
    return "dangling symbolic link (" + ec.message() + ")";
  if (is_under(dir, target))
    return "symbolic link to an ancestor directory, a loop (not followed)";
  for (auto& root : all_roots)
    if (is_under(target, root))
      return {};
  return "symbolic link out of the fs roots (not followed)";
}

} // namespace

bool is_under(const fs::path& p, const fs::path& root) {
  auto [r, q] = std::mismatch(root.begin(), root.end(), p.begin(), p.end());
  return r == root.end();
}

std::string_view file_type_name(mode_t mode) {
  if (S_ISREG(mode))
    return "a regular file";
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISLNK(mode))
    return "a symbolic link";
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISSOCK(mode))
    return "a socket";
  if (S_ISCHR(mode))
    return "a character device";
  if (S_ISBLK(mode))
    return "a block device";
  return "a file of unknown type";
}

caf::error walk_root(const fs::path& root,
                     const std::vector<fs::path>& all_roots,
                     std::string_view temp_prefix, const walk_visitor& visit) {
  auto warn = [&](const fs::path& path, std::string reason) {
    visit(walk_entry{walk_entry::warning, path, 0, std::move(reason)});
  };
  std::set<std::pair<dev_t, ino_t>> visited;
  std::vector<fs::path> pending{root};
  while (!pending.empty()) {
    auto dir = std::move(pending.back());
    pending.pop_back();
    // O_NOFOLLOW: a directory swapped for a symlink since it was listed is
    // not followed either.
    int fd
        = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    dir_guard stream{fd >= 0 ? ::fdopendir(fd) : nullptr};
    if (stream.handle == nullptr) {
      auto code = errno;
      if (fd >= 0)
        ::close(fd);
      if (dir == root)
        return make_error(errc::io_error, "cannot read fs root '"
                                              + root.string()
                                              + "': " + std::strerror(code));
      warn(dir, std::string{"cannot read directory, skipped with everything "
                            "in it: "}
                    + std::strerror(code));
      continue;
    }
    struct stat dir_st;
    if (::fstat(fd, &dir_st) == 0
        && !visited.emplace(dir_st.st_dev, dir_st.st_ino).second) {
      warn(dir, "directory met twice (a bind mount of an ancestor?), "
                "not entered again");
      continue;
    }
    for (;;) {
      errno = 0;
      auto* entry = ::readdir(stream.handle);
      if (entry == nullptr) {
        if (errno != 0)
          warn(dir, std::string{"cannot read all directory entries: "}
                        + std::strerror(errno));
        break;
      }
      std::string_view name{entry->d_name};
      if (name == "." || name == "..")
        continue;
      auto path = dir / name;
      struct stat st;
      if (::fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        warn(path,
             std::string{"cannot stat, skipped: "} + std::strerror(errno));
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        if (std::find(all_roots.begin(), all_roots.end(), path)
            == all_roots.end())
          pending.push_back(std::move(path));
      } else if (S_ISREG(st.st_mode)) {
        if (name.starts_with(temp_prefix)) {
          visit(walk_entry{walk_entry::temp_file, path, 0, {}});
          continue;
        }
        visit(walk_entry{
            walk_entry::object, path, static_cast<uint64_t>(st.st_size), {}});
        if (::faccessat(fd, entry->d_name, R_OK, AT_EACCESS) != 0)
          warn(path, std::string{"object not readable by this process "
                                 "(counted; get fails): "}
                         + std::strerror(errno));
      } else if (S_ISLNK(st.st_mode)) {
        if (auto problem = symlink_problem(path, dir, all_roots);
            !problem.empty())
          warn(path, std::move(problem));
      } else {
        warn(path, "is " + std::string{file_type_name(st.st_mode)}
                       + ", not a regular file: skipped");
      }
    }
  }
  return {};
}

} // namespace objstore::detail
