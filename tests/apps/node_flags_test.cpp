// objstore-node refuses bad config files and flags before doing anything:
// exit code 2 and a message on stderr naming the offending key.

#include <gtest/gtest.h>

#include "apps/process_support.hpp"
#include "config/config.hpp"

namespace node_flags_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;

namespace {

class node_flags : public process_fixture {
protected:
  /// Runs objstore-node with `flags`; expects exit code 2, nothing on
  /// stdout, and returns stderr.
  std::string expect_refused(std::vector<std::string> flags) {
    std::vector<std::string> args{OBJSTORE_NODE_PATH};
    args.insert(args.end(), flags.begin(), flags.end());
    auto& proc = spawn(std::move(args), "node" + std::to_string(++runs_));
    auto status = proc.wait_exit(10s);
    if (!status) {
      ADD_FAILURE() << "objstore-node did not exit\n" << proc.describe();
      return {};
    }
    EXPECT_EQ(describe_status(*status), "exit 2") << proc.describe();
    EXPECT_EQ(proc.out(), "") << proc.describe();
    auto err = proc.err();
    EXPECT_TRUE(err.starts_with("objstore-node: ")) << err;
    return err;
  }

  /// Writes an INI file into the temp dir; returns the --config-file flag.
  std::string config_file(const std::string& name, const std::string& text) {
    write_text(dir() / name, text);
    return "--config-file=" + (dir() / name).string();
  }

  size_t runs_ = 0;
};

#define EXPECT_MENTIONS(text, what)                                            \
  EXPECT_NE((text).find(what), std::string::npos) << (text)

TEST_F(node_flags, unknown_ini_key) {
  auto err = expect_refused({config_file(
      "typo.ini", "[objstore]\nrole=\"worker\"\nfetch-polcy=\"allow\"\n")});
  EXPECT_MENTIONS(err, "objstore.fetch-polcy");
  EXPECT_MENTIONS(err, "unknown option");
}

TEST_F(node_flags, unknown_flag) {
  auto err = expect_refused({"--objstore.fetch-polcy=allow"});
  EXPECT_MENTIONS(err, "objstore.fetch-polcy");
}

TEST_F(node_flags, bad_fetch_policy_flag) {
  auto err = expect_refused({"--objstore.fetch-policy=sometimes"});
  EXPECT_MENTIONS(err, "objstore.fetch-policy");
  EXPECT_MENTIONS(err, "sometimes");
}

TEST_F(node_flags, bad_fetch_policy_in_ini) {
  auto err = expect_refused(
      {config_file("policy.ini", "[objstore]\nfetch-policy=\"open\"\n")});
  EXPECT_MENTIONS(err, "objstore.fetch-policy");
  EXPECT_MENTIONS(err, "open");
}

TEST_F(node_flags, missing_config_file) {
  auto missing = (dir() / "nowhere.ini").string();
  auto err = expect_refused({"--config-file=" + missing});
  EXPECT_MENTIONS(err, missing);
}

TEST_F(node_flags, stray_argument) {
  auto err = expect_refused({"--objstore.rank=0", "worker"});
  EXPECT_MENTIONS(err, "'worker'");
  // A long option needs '=': the value would be a stray argument.
  err = expect_refused({"--objstore.port", "4242"});
  EXPECT_MENTIONS(err, "--objstore.port");
}

TEST_F(node_flags, relative_fs_root) {
  auto err = expect_refused({"--objstore.fs-roots=[\"data/objects\"]"});
  EXPECT_MENTIONS(err, "objstore.fs-roots");
  EXPECT_MENTIONS(err, "data/objects");
  err = expect_refused(
      {config_file("roots.ini", "[objstore]\nfs-roots=[\"rel\"]\n")});
  EXPECT_MENTIONS(err, "objstore.fs-roots");
}

TEST_F(node_flags, other_bad_values) {
  EXPECT_MENTIONS(expect_refused({"--objstore.role=observer"}),
                  "objstore.role");
  EXPECT_MENTIONS(expect_refused({"--objstore.port=70000"}), "objstore.port");
  EXPECT_MENTIONS(expect_refused({"--objstore.role=driver"}),
                  "objstore.cluster");
  EXPECT_MENTIONS(expect_refused({"--objstore.cluster=[\"127.0.0.1:1\"]",
                                  "--objstore.rank=3"}),
                  "objstore.rank");
  EXPECT_MENTIONS(expect_refused({"--objstore.heartbeat-interval=2s",
                                  "--objstore.heartbeat-timeout=1s"}),
                  "objstore.heartbeat-timeout");
}

// Example INI files are checked by config_test (example_ini_files_are_valid).

TEST_F(node_flags, help_lists_objstore_options_and_exits_0) {
  struct program {
    std::string path;
    std::vector<std::string> extra;
    std::string usage;
  };
  std::vector<program> programs{
      {OBJSTORE_NODE_PATH, {}, "usage: objstore-node"},
      {OBJSTORE_CLI_PATH, {}, "usage: objstore "},
      // Help wins over a command and over a config that would not load.
      {OBJSTORE_CLI_PATH,
       {"stats", "--objstore.port=70000"},
       "usage: objstore "},
  };
  for (auto& prog : programs) {
    for (std::string flag : {"--help", "-h"}) {
      auto args = std::vector<std::string>{prog.path, flag};
      args.insert(args.end(), prog.extra.begin(), prog.extra.end());
      SCOPED_TRACE(prog.path + " " + flag);
      auto& proc = spawn(args, "help" + std::to_string(++runs_));
      auto status = proc.wait_exit(10s);
      ASSERT_TRUE(status) << proc.describe();
      EXPECT_EQ(describe_status(*status), "exit 0") << proc.describe();
      EXPECT_EQ(proc.err(), "") << proc.describe();
      auto out = proc.out();
      EXPECT_TRUE(out.starts_with(prog.usage)) << out;
      // Every objstore option, with its default.
      for (auto& name : config::option_names())
        EXPECT_MENTIONS(out, "--objstore." + name + "=");
      EXPECT_MENTIONS(out, "[default: \"revealed-only\"]");
      EXPECT_MENTIONS(out, "--long-help");
    }
  }
}

} // namespace

} // namespace
} // namespace node_flags_test_file
