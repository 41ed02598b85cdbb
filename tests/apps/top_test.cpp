// `objstore top` in a pseudo-terminal (tmux): one refresh against two
// worker processes shows the objects, bytes and sessions they hold.

#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>

#include "apps/process_support.hpp"

namespace top_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;

/// `x` in single quotes for sh.
std::string sh_quoted(const std::string& x) {
  std::string out = "'";
  for (char c : x)
    out += c == '\'' ? std::string{"'\\''"} : std::string(1, c);
  return out + "'";
}

/// The whitespace-separated words of the screen line whose first word is
/// `rank` (after the header line), or nothing.
std::vector<std::string> row_of(const std::string& screen,
                                const std::string& rank) {
  std::istringstream in{screen};
  bool table = false;
  for (std::string line; std::getline(in, line);) {
    std::istringstream words{line};
    std::vector<std::string> xs;
    for (std::string w; words >> w;)
      xs.push_back(w);
    if (!xs.empty() && xs[0] == "RANK")
      table = true;
    else if (table && !xs.empty() && xs[0] == rank)
      return xs;
  }
  return {};
}

class top : public process_fixture {
protected:
  ~top() override {
    if (!tmux_.empty())
      run_shell(tmux_ + " kill-server");
  }

  /// tmux on a server of this test's own (its socket in dir()).
  std::string tmux_;
};

TEST_F(top, one_refresh_in_a_terminal_shows_each_workers_objects) {
  ASSERT_EQ(run_shell("command -v tmux").first, 0)
      << "tmux not found: install Debian's `tmux` (.ci/dev does)";
  auto root = dir() / "fs0";
  fs::create_directory(root);
  ASSERT_TRUE(start_worker(0, worker_flags{}.root(root)));
  ASSERT_TRUE(start_worker(1));
  auto d = connect();
  ASSERT_TRUE(d);
  // Known values: rank 0 holds one fs:// object, rank 1 two mem:// ones
  // of 800 and 80 bytes (int64 payloads).
  auto ints = [](int64_t n) {
    std::vector<int64_t> xs(static_cast<size_t>(n), 3);
    return make_value(tensor::from<int64_t>({n}, xs));
  };
  auto f = d->put(0, ints(4), "fs://" + (root / "a.obj").string());
  ASSERT_TRUE(f) << describe(f.error());
  auto x = d->put(1, ints(100));
  auto y = d->put(1, ints(10));
  ASSERT_TRUE(x && y);
  tmux_ = "tmux -S " + sh_quoted((dir() / "tmux.sock").string())
          + " -f /dev/null";
  // Two frames (the second after a second), then the pane stays.
  std::string cmd;
  for (auto& arg : {std::string{OBJSTORE_CLI_PATH}, cluster_flag(),
                    operator_flag(), std::string{"top"}, std::string{"2"}})
    cmd += sh_quoted(arg) + " ";
  cmd += "; echo top-exited-$?; sleep 120";
  auto [started, why]
      = run_shell(tmux_ + " new-session -d -x 132 -y 24 " + sh_quoted(cmd));
  ASSERT_EQ(started, 0) << why;
  std::string screen;
  EXPECT_TRUE(poll_until(
      [&] {
        screen = run_shell(tmux_ + " capture-pane -p").second;
        return screen.find("top-exited-") != std::string::npos;
      },
      20s))
      << screen;
  EXPECT_NE(screen.find("top-exited-0"), std::string::npos) << screen;
  // On a terminal each frame clears the screen: one frame is visible,
  // its header at the top.
  EXPECT_TRUE(screen.starts_with("objstore top - ")) << screen;
  size_t headers = 0;
  for (auto at = screen.find("objstore top - "); at != std::string::npos;
       at = screen.find("objstore top - ", at + 1))
    ++headers;
  EXPECT_EQ(headers, 1u) << screen;
  EXPECT_NE(screen.find("workers 2/2  objects 3"), std::string::npos) << screen;
  auto r0 = row_of(screen, "0");
  auto r1 = row_of(screen, "1");
  ASSERT_EQ(r0.size(), 15u) << screen;
  ASSERT_EQ(r1.size(), 15u) << screen;
  // RANK MEM-OBJ MEM-BYTES(2 words) FS-OBJ FS-BYTES(2) SPILLED RUN QUEUED
  // DONE FAILED XFR-IN XFR-OUT SESS; sessions: the test's driver and top.
  EXPECT_EQ(r0[1], "0");
  EXPECT_EQ(r0[4], "1");
  EXPECT_EQ(r0[14], "2");
  EXPECT_EQ(r1[1], "2");
  EXPECT_EQ(r1[2] + " " + r1[3], "880 B");
  EXPECT_EQ(r1[4], "0");
  EXPECT_EQ(r1[14], "2");
}

} // namespace
} // namespace top_test_file
