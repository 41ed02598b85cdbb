#include "config/config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "store/error.hpp"

using namespace objstore;

namespace {

/// Writes `text` to a unique temp INI file; removed on destruction.
struct ini_file {
  std::string path;
  explicit ini_file(const std::string& text) {
    char templ[] = "/tmp/objstore-config-XXXXXX";
    int fd = ::mkstemp(templ);
    ::close(fd);
    path = templ;
    std::ofstream{path} << text;
  }
  ~ini_file() { std::remove(path.c_str()); }
};

caf::error load(config& cfg, std::vector<std::string> args) {
  std::vector<char*> argv;
  static std::string prog = "objstore-node";
  argv.push_back(prog.data());
  for (auto& a : args)
    argv.push_back(a.data());
  return cfg.load(static_cast<int>(argv.size()), argv.data());
}

} // namespace

TEST(config, defaults_are_valid) {
  config cfg;
  EXPECT_FALSE(load(cfg, {})) << "defaults must validate";
  EXPECT_EQ(cfg.role, "worker");
  EXPECT_EQ(cfg.fetch_policy, "revealed-only");
}

TEST(config, reads_ini_and_command_line_wins) {
  ini_file ini{"[objstore]\nrole=\"worker\"\nrank=1\nport=4243\n"
               "cluster=[\"127.0.0.1:4242\", \"127.0.0.1:4243\"]\n"
               "fs-roots=[\"/tmp/objstore-root\"]\nfetch-policy=\"allow\"\n"
               "timeout=250ms\n"};
  config cfg;
  auto err = load(cfg, {"--config-file=" + ini.path, "--objstore.port=5000"});
  ASSERT_FALSE(err) << describe(err);
  EXPECT_EQ(cfg.rank, 1u);
  EXPECT_EQ(cfg.port, 5000u);
  EXPECT_EQ(cfg.cluster.size(), 2u);
  EXPECT_EQ(cfg.fetch_policy, "allow");
  EXPECT_EQ(cfg.timeout, std::chrono::milliseconds{250});
  auto spec = cfg.make_cluster_spec();
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->workers[1].port, 4243);
  auto opts = cfg.make_node_options();
  ASSERT_TRUE(opts);
  EXPECT_EQ(opts->policy, fetch_policy::allow);
  EXPECT_EQ(opts->store.fs_roots.size(), 1u);
}

TEST(config, unknown_ini_key_is_an_error) {
  ini_file ini{"[objstore]\nrnak=1\n"};
  config cfg;
  auto err = load(cfg, {"--config-file=" + ini.path});
  ASSERT_TRUE(err);
  EXPECT_EQ(code_of(err), errc::invalid_argument);
  EXPECT_NE(message_of(err).find("objstore.rnak"), std::string::npos)
      << describe(err);
}

TEST(config, missing_config_file_is_an_error) {
  config cfg;
  auto err = load(cfg, {"--config-file=/nonexistent/objstore.ini"});
  EXPECT_TRUE(err);
}

TEST(config, bad_values_name_the_key) {
  struct bad_case {
    std::vector<std::string> args;
    std::string key;
  };
  std::vector<bad_case> cases{
      {{"--objstore.role=boss"}, "objstore.role"},
      {{"--objstore.fetch-policy=sometimes"}, "objstore.fetch-policy"},
      {{"--objstore.fs-roots=[\"relative/dir\"]"}, "objstore.fs-roots"},
      {{"--objstore.port=70000"}, "objstore.port"},
      {{"--objstore.chunk-size=0"}, "objstore.chunk-size"},
      {{"--objstore.role=driver"}, "objstore.cluster"},
      {{"--objstore.cluster=[\"nohost\"]"}, "objstore.cluster"},
      {{"--objstore.cluster=[\"127.0.0.1:1\"]", "--objstore.rank=3"},
       "objstore.rank"},
  };
  for (auto& c : cases) {
    config cfg;
    auto err = load(cfg, c.args);
    ASSERT_TRUE(err) << c.key;
    EXPECT_NE(message_of(err).find(c.key), std::string::npos)
        << c.key << ": " << describe(err);
  }
}

TEST(config, unparsable_values_and_stray_arguments_are_errors) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"--objstore.rank=many"}, {"stray"}, {"--objstore.timeout=soon"}}) {
    config cfg;
    EXPECT_TRUE(load(cfg, args)) << args.front();
  }
}

TEST(config, example_ini_files_are_valid) {
  namespace fs = std::filesystem;
  size_t checked = 0;
  for (auto& entry : fs::recursive_directory_iterator(
           fs::path{OBJSTORE_SOURCE_DIR} / "examples")) {
    if (entry.path().extension() != ".ini")
      continue;
    config cfg;
    auto err = load(cfg, {"--config-file=" + entry.path().string()});
    EXPECT_FALSE(err) << entry.path() << ": " << describe(err);
    ++checked;
  }
  EXPECT_GE(checked, 6u);
}

TEST(config, ini_values_of_the_wrong_type_are_errors) {
  for (auto text : {"[objstore]\nport=\"abc\"\n", "[objstore]\nrank=-1\n",
                    "[objstore]\ntimeout=\"soon\"\n"}) {
    ini_file ini{text};
    config cfg;
    auto err = load(cfg, {"--config-file=" + ini.path});
    ASSERT_TRUE(err) << text;
    EXPECT_NE(message_of(err).find("bad value"), std::string::npos)
        << describe(err);
    EXPECT_NE(message_of(err).find(ini.path), std::string::npos)
        << "the error names the file";
  }
}

TEST(config, misspelled_sections_are_errors) {
  ini_file ini{"[objstor]\nrank=1\n"};
  config cfg;
  auto err = load(cfg, {"--config-file=" + ini.path});
  ASSERT_TRUE(err);
  EXPECT_NE(message_of(err).find("[objstor]"), std::string::npos)
      << describe(err);
}
