// The operator CLI `objstore` against worker processes: stats as JSON
// lines, put/fetch of fs:// objects byte-for-byte, and fetches the worker
// must refuse, and a frozen worker that fails the command at
// objstore.timeout.

#include <gtest/gtest.h>

#include <csignal>

#include "apps/process_support.hpp"

namespace cli_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;

namespace {

class cli : public process_fixture {
protected:
  /// Runs the CLI with the cluster flag and `words`; waits for its exit.
  /// Returns the exit code (-1 if it did not exit normally).
  int run(std::vector<std::string> words, child_process** out = nullptr) {
    std::vector<std::string> args{OBJSTORE_CLI_PATH, cluster_flag(),
                                  operator_flag()};
    args.insert(args.end(), words.begin(), words.end());
    auto& proc = spawn(std::move(args), "cli" + std::to_string(++runs_));
    if (out != nullptr)
      *out = &proc;
    auto status = proc.wait_exit(20s);
    if (!status) {
      ADD_FAILURE() << "the CLI did not exit\n" << proc.describe();
      return -1;
    }
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  }

  size_t runs_ = 0;
};

/// Lines of `text` (without the newlines).
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    result.push_back(line);
  return result;
}

TEST_F(cli, stats_prints_one_json_line_per_rank) {
  ASSERT_TRUE(start_workers(3));
  child_process* proc = nullptr;
  ASSERT_EQ(run({"stats"}, &proc), 0) << proc->describe();
  auto lines = lines_of(proc->out());
  ASSERT_EQ(lines.size(), 3u) << proc->describe();
  for (size_t r = 0; r < lines.size(); ++r) {
    SCOPED_TRACE(lines[r]);
    EXPECT_TRUE(lines[r].starts_with("{\"rank\":" + std::to_string(r) + ","));
    EXPECT_TRUE(lines[r].ends_with("}"));
    EXPECT_NE(lines[r].find("\"mem_objects\":0,"), std::string::npos);
    EXPECT_NE(lines[r].find("\"sessions\":1,"), std::string::npos);
  }
  EXPECT_EQ(proc->err(), "");
}

TEST_F(cli, put_then_fetch_round_trips_a_file) {
  auto root = dir() / "fs1";
  fs::create_directory(root);
  ASSERT_TRUE(start_worker(0));
  ASSERT_TRUE(start_worker(1, worker_flags{}.policy("allow").root(root)));
  std::string payload;
  for (int i = 0; i < 70'000; ++i)
    payload.push_back(static_cast<char>((i * 31 + i / 256) % 256));
  write_text(dir() / "in.bin", payload);
  auto uri = "fs://" + (root / "sub" / "data.obj").string();
  child_process* proc = nullptr;
  ASSERT_EQ(run({"put", "1", (dir() / "in.bin").string(), uri}, &proc), 0)
      << proc->describe();
  EXPECT_EQ(proc->out(), uri + "\n");
  ASSERT_EQ(run({"fetch", "1", uri, (dir() / "out.bin").string()}, &proc), 0)
      << proc->describe();
  EXPECT_NE(proc->out().find("70000 bytes"), std::string::npos)
      << proc->describe();
  EXPECT_TRUE(read_text(dir() / "out.bin") == payload)
      << "fetched bytes differ";
  // The object lives on rank 1 only, as a persistent fs:// object.
  ASSERT_EQ(run({"stats"}, &proc), 0) << proc->describe();
  auto lines = lines_of(proc->out());
  ASSERT_EQ(lines.size(), 2u) << proc->describe();
  EXPECT_NE(lines[0].find("\"fs_objects\":0,"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("\"fs_objects\":1,"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("\"mem_objects\":0,"), std::string::npos) << lines[1];
  ASSERT_EQ(run({"fetch", "0", uri}, &proc), 1) << proc->describe();
  EXPECT_NE(proc->err().find("no fs:// backend"), std::string::npos)
      << "rank 0 has no fs roots\n"
      << proc->describe();
  // A path outside the roots is refused, nothing is written.
  auto outside = "fs://" + (dir() / "escape.obj").string();
  ASSERT_EQ(run({"put", "1", (dir() / "in.bin").string(), outside}, &proc), 1)
      << proc->describe();
  EXPECT_NE(proc->err().find("permission_denied"), std::string::npos)
      << proc->describe();
  EXPECT_FALSE(fs::exists(dir() / "escape.obj"));
}

TEST_F(cli, large_files_stream_both_ways_and_leave_no_part_file) {
  auto root = dir() / "fs0";
  fs::create_directory(root);
  ASSERT_TRUE(start_worker(0, worker_flags{}.policy("allow").root(root)));
  // 24 MiB: well above the stream threshold, many chunks each way.
  std::string payload(24u << 20, '\0');
  for (size_t i = 0; i < payload.size(); i += 4093)
    payload[i] = static_cast<char>(i * 7 % 251);
  write_text(dir() / "big.bin", payload);
  auto uri = "fs://" + (root / "big.obj").string();
  child_process* proc = nullptr;
  ASSERT_EQ(run({"put", "0", (dir() / "big.bin").string(), uri}, &proc), 0)
      << proc->describe();
  EXPECT_EQ(proc->out(), uri + "\n");
  auto out = dir() / "back.bin";
  ASSERT_EQ(run({"fetch", "0", uri, out.string()}, &proc), 0)
      << proc->describe();
  EXPECT_NE(proc->out().find(std::to_string(payload.size()) + " bytes"),
            std::string::npos)
      << proc->describe();
  EXPECT_TRUE(read_text(out) == payload) << "fetched bytes differ";
  EXPECT_FALSE(fs::exists(out.string() + ".part"));
  // Not a terminal: no progress lines mixed into stderr.
  EXPECT_EQ(proc->err(), "") << proc->describe();
}

TEST_F(cli, fetch_of_a_tensor_into_a_file_is_refused) {
  auto root = dir() / "fs0";
  fs::create_directory(root);
  ASSERT_TRUE(start_worker(0, worker_flags{}.policy("allow").root(root)));
  auto uri = "fs://" + (root / "t.obj").string();
  {
    auto d = connect();
    ASSERT_TRUE(d);
    auto x = d->put(
        0, make_value(tensor::from<int64_t>({2}, std::vector<int64_t>{4, 2})),
        uri);
    ASSERT_TRUE(x) << describe(x.error());
  }
  child_process* proc = nullptr;
  // Without an output file the CLI describes the value.
  ASSERT_EQ(run({"fetch", "0", uri}, &proc), 0) << proc->describe();
  EXPECT_NE(proc->out().find("tensor int64[2]"), std::string::npos)
      << proc->describe();
  // A file can only hold a bytes object: no empty file, an error.
  ASSERT_EQ(run({"fetch", "0", uri, (dir() / "t.bin").string()}, &proc), 1)
      << proc->describe();
  EXPECT_NE(proc->err().find("not bytes"), std::string::npos)
      << proc->describe();
  EXPECT_FALSE(fs::exists(dir() / "t.bin"));
  EXPECT_FALSE(fs::exists(dir() / "t.bin.part"));
}

TEST_F(cli, fetch_of_a_forged_mem_uri_is_refused) {
  ASSERT_TRUE(start_workers(2, worker_flags{}.policy("allow")));
  // An object of another session: its URI alone grants nothing.
  auto d = connect();
  ASSERT_TRUE(d);
  auto x = d->put(1, make_value(blob::copy_of("secret")));
  ASSERT_TRUE(x) << describe(x.error());
  auto uri = *x->uri(1);
  child_process* proc = nullptr;
  EXPECT_NE(run({"fetch", "1", uri, (dir() / "stolen.bin").string()}, &proc),
            0);
  EXPECT_NE(proc->err().find("permission_denied"), std::string::npos)
      << proc->describe();
  EXPECT_EQ(proc->out().find("secret"), std::string::npos);
  EXPECT_TRUE(read_text(dir() / "stolen.bin").empty());
  // A well-formed URI naming no object.
  auto forged = uri + "9";
  EXPECT_NE(run({"fetch", "1", forged}, &proc), 0);
  auto err = proc->err();
  EXPECT_TRUE(err.find("not_found") != std::string::npos
              || err.find("permission_denied") != std::string::npos)
      << proc->describe();
  EXPECT_NE(err.find(forged), std::string::npos) << proc->describe();
  // The owner still fetches it.
  auto v = d->fetch(1, *x);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ((*v)->as_bytes().view(), "secret");
  x->reset();
  d.reset();
  expect_no_leaks();
}

TEST_F(cli, bad_usage_exits_2) {
  ASSERT_TRUE(start_workers(1));
  child_process* proc = nullptr;
  EXPECT_EQ(run({"frobnicate"}, &proc), 2) << proc->describe();
  EXPECT_NE(proc->err().find("usage:"), std::string::npos);
  EXPECT_EQ(run({"fetch", "7", "mem://x"}, &proc), 2) << proc->describe();
  EXPECT_NE(proc->err().find("bad rank '7'"), std::string::npos)
      << proc->describe();
  EXPECT_EQ(run({"--objstore.fetch-policy=never", "stats"}, &proc), 2);
  EXPECT_NE(proc->err().find("objstore.fetch-policy"), std::string::npos)
      << proc->describe();
}

TEST_F(cli, a_stopped_worker_fails_the_command_at_objstore_timeout) {
  ASSERT_TRUE(start_workers(2));
  proc(1).signal(SIGSTOP);
  ASSERT_TRUE(proc(1).wait_stopped(5s)) << proc(1).describe();
  child_process* cmd = nullptr;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(run({"--objstore.timeout=2s", "stats"}, &cmd), 1)
      << cmd->describe();
  auto took = elapsed_ms(start);
  // The process's own start and stop included: well below the 30 s default.
  EXPECT_GE(took, 1900) << cmd->describe();
  EXPECT_LT(took, 2000 + 5000) << cmd->describe();
  auto endpoint = spec().workers[1].str();
  auto err = cmd->err();
  EXPECT_NE(err.find("cannot connect to rank 1 at " + endpoint),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("objstore.timeout: connecting to " + endpoint
                     + ": no handshake within 2000 ms"),
            std::string::npos)
      << err;
  EXPECT_EQ(cmd->out(), "");
  proc(1).signal(SIGCONT);
  EXPECT_EQ(run({"stats"}, &cmd), 0) << cmd->describe();
}

} // namespace

} // namespace
} // namespace cli_test_file
