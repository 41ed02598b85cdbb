// configure_system has a header of its own: config/ and apps/ do not need
// the testing cluster.

#include "actors/system.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace objstore;

TEST(system, config_and_apps_do_not_include_the_testing_cluster) {
  namespace fs = std::filesystem;
  for (auto folder : {"config", "apps"}) {
    for (auto& entry :
         fs::directory_iterator{fs::path{OBJSTORE_SOURCE_DIR} / folder}) {
      std::ifstream in{entry.path()};
      std::stringstream text;
      text << in.rdbuf();
      EXPECT_EQ(text.str().find("local_cluster.hpp"), std::string::npos)
          << entry.path() << " includes local_cluster.hpp";
    }
  }
  std::ifstream in{fs::path{OBJSTORE_SOURCE_DIR} / "actors" / "system.hpp"};
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str().find("#include \"actors/"), std::string::npos)
      << "system.hpp includes other actors/ headers";
}
