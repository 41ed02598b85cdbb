// file_backend's startup scan, its refusal of non-regular files and its
// object counters (split from file_backend_test.cpp by responsibility).

#include "store/file_backend.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <iostream>
#include <set>
#include <thread>

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/codec.hpp"
#include "store/error.hpp"
#include "store/object_store.hpp"
#include "store/test_support.hpp"

using namespace objstore;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace objstore {

void PrintTo(const backend_stats& x, std::ostream* os) {
  *os << "{objects " << x.objects << ", bytes " << x.bytes << "}";
}

} // namespace objstore

namespace file_backend_scan_test_file {
namespace {

namespace {

/// A temp dir holding `root/`, the fs root of the backends under test.
class file_backend_scan_test : public testing::Test {
protected:
  void SetUp() override { fs::create_directories(root()); }

  caf::expected<std::unique_ptr<file_backend>> make(std::vector<fs::path> roots
                                                    = {}) {
    file_backend_options opts;
    opts.roots = roots.empty() ? std::vector<fs::path>{root()} : roots;
    opts.sync = false;
    return file_backend::make(std::move(opts));
  }

  /// A backend on `root()`, or null after a test failure.
  std::unique_ptr<file_backend> open() {
    auto result = make();
    EXPECT_TRUE(result) << describe(result.error());
    return result ? std::move(*result) : nullptr;
  }

  fs::path root() const { return dir_ / "root"; }

  static uri id(const fs::path& p) {
    auto result = uri::parse("fs://" + p.string());
    EXPECT_TRUE(result) << describe(result.error());
    return *result;
  }

  /// Puts a small object of `n` bytes' payload through `files`.
  static void put(file_backend& files, const fs::path& p, size_t n = 10,
                  char fill = 'x') {
    auto err
        = files.put(id(p), make_value(blob::copy_of(std::string(n, fill))));
    ASSERT_FALSE(err) << describe(err);
  }

  /// Object and byte totals of a fresh walk, as `list` sees it.
  static backend_stats walked(file_backend& files) {
    backend_stats result;
    auto listed = files.list();
    EXPECT_TRUE(listed) << describe(listed.error());
    if (listed)
      for (auto& info : *listed) {
        ++result.objects;
        result.bytes += info.size_bytes;
      }
    return result;
  }

  /// Expects the counters of `files` to equal a fresh walk and the startup
  /// scan of a new backend on the same roots.
  void expect_counters_match(file_backend& files) {
    auto counted = files.stats();
    auto fresh_walk = walked(files);
    EXPECT_EQ(counted.objects, fresh_walk.objects);
    EXPECT_EQ(counted.bytes, fresh_walk.bytes);
    auto restarted = make(files.roots());
    ASSERT_TRUE(restarted) << describe(restarted.error());
    EXPECT_EQ((*restarted)->stats().objects, counted.objects);
    EXPECT_EQ((*restarted)->stats().bytes, counted.bytes);
  }

  /// The scan warning that names `p`, or "" when none does.
  static std::string warning_about(const file_backend& files,
                                   const fs::path& p) {
    auto quoted = "'" + p.string() + "'";
    for (auto& text : files.scan_warnings())
      if (text.starts_with(quoted))
        return text;
    return {};
  }

  test::temp_dir dir_;
};

/// Creates a unix domain socket file at `p` (its socket is closed at once;
/// the file stays).
void make_socket_file(const fs::path& p) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(p.string().size(), sizeof(addr.sun_path));
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", p.c_str());
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  auto rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::close(fd);
  ASSERT_EQ(rc, 0) << std::strerror(errno);
}

/// Runs `call` on another thread and fails the test when it has not
/// returned after 10 s. Then opens `fifo` for writing until the call
/// returns: that unblocks a reader stuck opening the FIFO, so a hang turns
/// into a failure instead of a stuck test.
template<class F>
auto returns_at_once(const fs::path& fifo, F call) {
  auto result = std::async(std::launch::async, call);
  if (result.wait_for(10s) != std::future_status::ready) {
    ADD_FAILURE() << "call on " << fifo << " still blocked after 10 s";
    while (result.wait_for(100ms) != std::future_status::ready) {
      int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0)
        ::close(fd);
    }
  }
  return result.get();
}

// -- startup scan -------------------------------------------------------------

TEST_F(file_backend_scan_test, symlink_loops_are_skipped_and_reported) {
  {
    auto files = open();
    ASSERT_NE(files, nullptr);
    put(*files, root() / "top");
    put(*files, root() / "ca" / "in-a");
    put(*files, root() / "cb" / "in-b");
  }
  fs::create_directory_symlink(".", root() / "loop");
  fs::create_symlink("b", root() / "a"); // a -> b -> a
  fs::create_symlink("a", root() / "b");
  // Directories linking to each other: ca/to-b -> cb, cb/to-a -> ca.
  fs::create_directory_symlink(root() / "cb", root() / "ca" / "to-b");
  fs::create_directory_symlink(root() / "ca", root() / "cb" / "to-a");
  fs::create_directory_symlink(dir_.path(), root() / "ca" / "up-and-out");
  auto files = open();
  ASSERT_NE(files, nullptr);
  EXPECT_NE(warning_about(*files, root() / "loop").find("loop"),
            std::string::npos);
  for (auto name : {"a", "b"}) {
    auto text = warning_about(*files, root() / name);
    EXPECT_NE(text.find("symbolic link loop"), std::string::npos)
        << name << ": '" << text << "'";
  }
  EXPECT_NE(warning_about(*files, root() / "ca" / "up-and-out").find("loop"),
            std::string::npos);
  // Links between sibling directories are aliases, walked once at their
  // real path and not reported.
  EXPECT_EQ(warning_about(*files, root() / "ca" / "to-b"), "");
  EXPECT_EQ(files->scan_warning_count(), 4u);
  EXPECT_EQ(files->scan_warnings().size(), 4u);
  // Each object once, at its real path.
  EXPECT_EQ(files->stats().objects, 3u);
  auto listed = files->list();
  ASSERT_TRUE(listed) << describe(listed.error());
  std::set<uri> seen;
  for (auto& info : *listed)
    seen.insert(info.id);
  EXPECT_EQ(seen, (std::set<uri>{id(root() / "top"), id(root() / "ca" / "in-a"),
                                 id(root() / "cb" / "in-b")}));
  expect_counters_match(*files);
  // The objects work, also through the aliases.
  auto got = files->get(id(root() / "ca" / "to-b" / "in-b"));
  EXPECT_TRUE(got) << describe(got.error());
  got = files->get(id(root() / "a"));
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::permission_denied)
      << describe(got.error());
}

TEST_F(file_backend_scan_test, object_store_make_survives_a_bad_root) {
  fs::create_directory_symlink(".", root() / "loop");
  fs::create_symlink("b", root() / "a");
  fs::create_symlink("a", root() / "b");
  ASSERT_EQ(::mkfifo((root() / "fifo").c_str(), 0600), 0);
  object_store_options opts;
  opts.fs_roots = {root()};
  opts.fs_sync = false;
  auto store = object_store::make(opts);
  ASSERT_TRUE(store) << describe(store.error());
  auto* files = (*store)->files();
  ASSERT_NE(files, nullptr);
  EXPECT_EQ(files->scan_warning_count(), 4u);
  EXPECT_EQ((*store)->stats().of(scheme::fs).objects, 0u);
  EXPECT_EQ(object_store{}.files(), nullptr);
}

TEST_F(file_backend_scan_test, fifos_and_sockets_are_skipped_and_reported) {
  {
    auto files = open();
    ASSERT_NE(files, nullptr);
    put(*files, root() / "sub" / "valid");
  }
  ASSERT_EQ(::mkfifo((root() / "sub" / "fifo.obj").c_str(), 0644), 0);
  make_socket_file(root() / "sock.obj");
  auto files = open();
  ASSERT_NE(files, nullptr);
  EXPECT_NE(warning_about(*files, root() / "sub" / "fifo.obj").find("a FIFO"),
            std::string::npos);
  EXPECT_NE(warning_about(*files, root() / "sock.obj").find("a socket"),
            std::string::npos);
  EXPECT_EQ(files->scan_warning_count(), 2u);
  EXPECT_EQ(files->stats().objects, 1u);
  auto got = files->get(id(root() / "sub" / "valid"));
  EXPECT_TRUE(got) << describe(got.error());
  expect_counters_match(*files);
}

TEST_F(file_backend_scan_test, names_that_make_no_uri_are_not_objects) {
  test::write_file(root() / "bell\x07name", "bytes");
  test::write_file(root() / "plain", "bytes");
  auto files = open();
  ASSERT_NE(files, nullptr);
  EXPECT_NE(warning_about(*files, root() / "bell\x07name").find("no valid"),
            std::string::npos);
  EXPECT_EQ(files->stats().objects, 1u);
  expect_counters_match(*files);
}

TEST_F(file_backend_scan_test, scan_warnings_are_bounded) {
  constexpr size_t fifos = file_backend::max_scan_warnings + 50;
  for (size_t i = 0; i < fifos; ++i)
    ASSERT_EQ(::mkfifo((root() / ("f" + std::to_string(i))).c_str(), 0600), 0);
  auto files = open();
  ASSERT_NE(files, nullptr);
  EXPECT_EQ(files->scan_warnings().size(), file_backend::max_scan_warnings);
  EXPECT_EQ(files->scan_warning_count(), fifos);
}

/// What `check_unreadable_entries` checks, as one failure text ("" when
/// all is well), so it can run in a child process without gtest.
std::string unreadable_entries_problems(const fs::path& root,
                                        const fs::path& locked,
                                        const fs::path& private_root) {
  std::string problems;
  file_backend_options opts;
  opts.roots = {root};
  opts.sync = false;
  auto made = file_backend::make(opts);
  if (!made)
    return "make failed: " + describe(made.error());
  auto& files = **made;
  auto quoted = "'" + locked.string() + "': cannot read directory";
  auto reported = [&](const std::string& prefix) {
    return std::any_of(files.scan_warnings().begin(),
                       files.scan_warnings().end(),
                       [&](auto& text) { return text.starts_with(prefix); });
  };
  if (!reported(quoted))
    problems += "no warning about the locked directory; ";
  if (!reported("'" + (root / "secret").string() + "': object not readable"))
    problems += "no warning about the unreadable object; ";
  // The visible object and the unreadable one, not what is locked away.
  if (files.stats().objects != 2)
    problems += "stats counted " + std::to_string(files.stats().objects)
                + " objects, not 2; ";
  auto listed = files.list();
  if (!listed || listed->size() != 2)
    problems += "list does not hold the 2 objects; ";
  auto got = files.get(*uri::parse("fs://" + (root / "visible").string()));
  if (!got)
    problems += "get of the visible object: " + describe(got.error()) + "; ";
  opts.roots = {private_root};
  made = file_backend::make(opts);
  if (made)
    problems += "a root this process cannot read was accepted; ";
  else if (code_of(made.error()) != errc::invalid_argument
           || message_of(made.error()).find(private_root.string())
                  == std::string::npos)
    problems += "refusing the private root: " + describe(made.error()) + "; ";
  return problems;
}

TEST_F(file_backend_scan_test, unreadable_entries_are_skipped_and_reported) {
  auto locked = root() / "locked";
  auto private_root = dir_ / "private";
  {
    auto files = open();
    ASSERT_NE(files, nullptr);
    put(*files, root() / "visible");
    put(*files, root() / "secret");
    put(*files, locked / "hidden");
  }
  fs::create_directories(private_root);
  fs::permissions(root() / "secret", fs::perms::owner_read);
  fs::permissions(locked, fs::perms::none);
  fs::permissions(private_root, fs::perms::owner_all);
  std::string problems;
  if (::geteuid() != 0) {
    problems = unreadable_entries_problems(root(), locked, private_root);
  } else {
    // Permission bits do not stop root: run the check as "nobody" in a
    // child process, on directories nobody can reach.
    fs::permissions(dir_.path(), fs::perms::owner_all | fs::perms::group_exec
                                     | fs::perms::others_exec);
    fs::permissions(root(), fs::perms::all);
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    auto child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // Child: no gtest assertions, leave only through _exit.
      ::close(pipe_fds[0]);
      std::string out;
      if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0
          || ::setresuid(65534, 65534, 65534) != 0)
        out = "SKIP: cannot switch to uid 65534";
      else
        out = unreadable_entries_problems(root(), locked, private_root);
      auto rc = ::write(pipe_fds[1], out.data(), out.size());
      ::_exit(rc == static_cast<ssize_t>(out.size()) ? 0 : 1);
    }
    ::close(pipe_fds[1]);
    char buf[512];
    for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof(buf))) > 0;)
      problems.append(buf, static_cast<size_t>(n));
    ::close(pipe_fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  // Everything readable again, so the temp dir can be removed.
  fs::permissions(locked, fs::perms::owner_all);
  fs::permissions(root() / "secret",
                  fs::perms::owner_read | fs::perms::owner_write);
  if (problems.starts_with("SKIP"))
    GTEST_SKIP() << problems;
  EXPECT_EQ(problems, "");
}

// -- non-regular files under fs:// URIs ---------------------------------------

TEST_F(file_backend_scan_test, fifos_and_sockets_are_refused_at_once) {
  auto files = open();
  ASSERT_NE(files, nullptr);
  auto fifo = root() / "sub" / "fifo.obj";
  fs::create_directories(fifo.parent_path());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  auto sock = root() / "sock.obj";
  make_socket_file(sock);
  // A link inside the root to the FIFO resolves to it.
  fs::create_symlink(fifo, root() / "link-to-fifo");
  put(*files, root() / "valid");
  auto before = files->stats();
  for (auto& [path, kind] :
       {std::pair{fifo, "a FIFO"}, std::pair{root() / "link-to-fifo", "a FIFO"},
        std::pair{sock, "a socket"}}) {
    SCOPED_TRACE(path.string());
    auto key = id(path);
    auto expect_refused = [&, kind = kind](const caf::error& err) {
      EXPECT_EQ(code_of(err), errc::invalid_uri) << describe(err);
      EXPECT_NE(message_of(err).find(key.str()), std::string::npos)
          << describe(err);
      EXPECT_NE(
          message_of(err).find(std::string{kind} + ", not a regular file"),
          std::string::npos)
          << describe(err);
    };
    auto got = returns_at_once(fifo, [&] { return files->get(key); });
    ASSERT_FALSE(got);
    expect_refused(got.error());
    expect_refused(returns_at_once(
        fifo, [&] { return files->put(key, make_value(blob::copy_of("x"))); }));
    expect_refused(returns_at_once(fifo, [&] { return files->erase(key); }));
    EXPECT_EQ(returns_at_once(fifo, [&] { return files->exists(key); }),
              caf::expected<bool>{false});
  }
  struct stat st;
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO was replaced";
  ASSERT_EQ(::lstat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode)) << "the socket was replaced";
  EXPECT_EQ(files->stats(), before);
  // The rest of the root keeps working.
  auto got = files->get(id(root() / "valid"));
  EXPECT_TRUE(got) << describe(got.error());
  put(*files, root() / "sub" / "next-to-the-fifo");
  expect_counters_match(*files);
}

// -- counters -----------------------------------------------------------------

TEST_F(file_backend_scan_test, counters_follow_puts_overwrites_and_erases) {
  auto files = open();
  ASSERT_NE(files, nullptr);
  fs::create_directories(root() / "d0");
  fs::create_directory_symlink(root() / "d0", root() / "alias");
  // A fixed pseudo-random sequence over few keys: many overwrites, erases
  // of present and absent objects, sizes that change on each overwrite.
  uint64_t state = 42;
  auto next = [&state] {
    state = state * 6364136223846793005u + 1442695040888963407u;
    return state >> 33;
  };
  for (int step = 0; step < 300; ++step) {
    auto dir = root() / ("d" + std::to_string(next() % 3));
    auto key = dir / ("k" + std::to_string(next() % 8));
    switch (next() % 4) {
      case 0: {
        auto err = files->erase(id(key));
        EXPECT_TRUE(!err || code_of(err) == errc::not_found) << describe(err);
        break;
      }
      case 1: // the same file through a directory symlink
        put(*files, root() / "alias" / key.filename(), next() % 5000);
        break;
      default:
        put(*files, key, next() % 5000, static_cast<char>('a' + step % 26));
    }
    if (step % 50 == 0)
      expect_counters_match(*files);
  }
  // Refused calls change nothing.
  EXPECT_EQ(
      code_of(files->put(id(root() / "d0"), make_value(blob::copy_of("x")))),
      errc::invalid_uri);
  EXPECT_EQ(code_of(files->erase(id(root() / "absent"))), errc::not_found);
  expect_counters_match(*files);
  // Erasing everything brings both counters back to zero.
  auto listed = files->list();
  ASSERT_TRUE(listed);
  for (auto& info : *listed)
    ASSERT_FALSE(files->erase(info.id)) << info.id.str();
  EXPECT_EQ(files->stats(), backend_stats{});
  expect_counters_match(*files);
}

TEST_F(file_backend_scan_test, counters_stay_exact_under_concurrent_calls) {
  auto files = open();
  ASSERT_NE(files, nullptr);
  constexpr int threads = 4;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      // All threads race on the same few keys.
      for (int i = 0; i < 200; ++i) {
        auto key = id(root() / ("k" + std::to_string((i + t) % 5)));
        if ((i + t) % 3 == 0)
          files->erase(key);
        else
          files->put(key, make_value(blob::copy_of(
                              std::string((i * 37 + t) % 900, 'z'))));
      }
    });
  for (auto& w : workers)
    w.join();
  expect_counters_match(*files);
}

TEST_F(file_backend_scan_test, nested_and_repeated_roots_count_objects_once) {
  auto inner = root() / "inner";
  auto made = make({root(), inner, root()});
  ASSERT_TRUE(made) << describe(made.error());
  auto& files = **made;
  EXPECT_EQ(files.roots(), (std::vector<fs::path>{root(), inner}));
  put(files, root() / "outer-obj");
  put(files, inner / "inner-obj");
  auto listed = files.list();
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 2u);
  EXPECT_EQ(files.stats().objects, 2u);
  expect_counters_match(files);
}

TEST_F(file_backend_scan_test, stats_are_counters_not_a_walk) {
  // 5,000 small files in 50 directories, placed by hand (more take long to
  // create on a slow disk; what the test shows does not depend on the size).
  constexpr int dirs = 50;
  constexpr int per_dir = 100;
  uint64_t bytes = 0;
  for (int d = 0; d < dirs; ++d) {
    auto dir = root() / ("d" + std::to_string(d));
    fs::create_directories(dir);
    for (int f = 0; f < per_dir; ++f) {
      std::string content(static_cast<size_t>(f % 7 + 1), 'b');
      test::write_file(dir / ("f" + std::to_string(f)), content);
      bytes += content.size();
    }
  }
  auto start = std::chrono::steady_clock::now();
  auto files = open();
  ASSERT_NE(files, nullptr);
  auto scanned = std::chrono::steady_clock::now();
  backend_stats expected{dirs * per_dir, bytes};
  EXPECT_EQ(files->stats(), expected);
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(files->stats(), expected) << "call " << i;
  auto called = std::chrono::steady_clock::now();
  auto ms = [](auto d) {
    return std::chrono::duration<double, std::milli>(d).count();
  };
  std::cout << "[ measured ] startup scan of " << dirs * per_dir
            << " files: " << ms(scanned - start)
            << " ms; 1000 stats() calls: " << ms(called - scanned) << " ms\n";
  expect_counters_match(*files);
  // A file placed behind the backend's back shows in list() and in a new
  // backend's scan, not in the counters: stats() did not walk.
  test::write_file(root() / "d0" / "by-hand", "12345");
  EXPECT_EQ(files->stats(), expected);
  EXPECT_EQ(walked(*files).objects, expected.objects + 1);
  auto restarted = open();
  ASSERT_NE(restarted, nullptr);
  EXPECT_EQ(restarted->stats().objects, expected.objects + 1);
  EXPECT_EQ(restarted->stats().bytes, expected.bytes + 5);
}

} // namespace

} // namespace
} // namespace file_backend_scan_test_file
