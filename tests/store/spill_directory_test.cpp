#include "store/spill_directory.hpp"

#include <gtest/gtest.h>

#include <caf/sec.hpp>

#include "store/error.hpp"
#include "store/test_support.hpp"

namespace spill_directory_test_file {
namespace {

using namespace objstore;
namespace fs = std::filesystem;

value_ptr sample(unsigned seed = 1) {
  return make_value(test::sample_tensor(dtype::int32, {64, 4}, seed));
}

uri id_of(const std::string& key) {
  return *uri::parse("mem://" + key);
}

size_t files_in(const fs::path& dir) {
  size_t n = 0;
  std::error_code ec;
  for (auto i = fs::directory_iterator{dir, ec}; !ec && i != fs::end(i);
       i.increment(ec))
    if (i->path().filename() != ".lock")
      ++n;
  return n;
}

TEST(spill_directory, round_trip_and_remove) {
  test::temp_dir root;
  auto dir = spill_directory::open(root.path(), "rank-0");
  ASSERT_TRUE(dir) << describe(dir.error());
  EXPECT_EQ((*dir)->path(), root / "rank-0");
  auto x = sample();
  auto f = (*dir)->write(id_of("n-1"), *x);
  ASSERT_TRUE(f) << describe(f.error());
  EXPECT_TRUE(fs::exists(f->path));
  EXPECT_EQ(f->path.parent_path(), root / "rank-0");
  EXPECT_EQ(f->bytes, fs::file_size(f->path));
  auto back = (*dir)->read(id_of("n-1"), *f);
  ASSERT_TRUE(back) << describe(back.error());
  EXPECT_EQ(**back, *x);
  (*dir)->remove(*f);
  EXPECT_FALSE(fs::exists(f->path));
  EXPECT_EQ(files_in((*dir)->path()), 0u); // no temp file either
}

TEST(spill_directory, missing_file_is_object_lost_naming_the_uri) {
  test::temp_dir root;
  auto dir = spill_directory::open(root.path(), "rank-0");
  ASSERT_TRUE(dir);
  auto f = (*dir)->write(id_of("n-7"), *sample());
  ASSERT_TRUE(f);
  fs::remove(f->path);
  auto back = (*dir)->read(id_of("n-7"), *f);
  ASSERT_FALSE(back);
  EXPECT_EQ(code_of(back.error()), errc::object_lost);
  EXPECT_NE(message_of(back.error()).find("mem://n-7"), std::string::npos);
}

TEST(spill_directory, damaged_file_is_corrupt_data_naming_the_uri) {
  test::temp_dir root;
  auto dir = spill_directory::open(root.path(), "rank-0");
  ASSERT_TRUE(dir);
  auto f = (*dir)->write(id_of("n-8"), *sample());
  ASSERT_TRUE(f);
  auto bytes = test::read_file(f->path);
  bytes[bytes.size() / 2] ^= 0x5a; // a payload byte: only the checksum sees it
  test::write_file(f->path, bytes);
  auto back = (*dir)->read(id_of("n-8"), *f);
  ASSERT_FALSE(back);
  EXPECT_EQ(code_of(back.error()), errc::corrupt_data);
  EXPECT_NE(message_of(back.error()).find("mem://n-8"), std::string::npos);
  test::write_file(f->path, bytes.substr(0, 10)); // truncated
  back = (*dir)->read(id_of("n-8"), *f);
  ASSERT_FALSE(back);
  EXPECT_EQ(code_of(back.error()), errc::corrupt_data);
}

TEST(spill_directory, open_removes_what_a_crashed_process_left) {
  test::temp_dir root;
  fs::create_directories(root / "rank-2");
  test::write_file(root / "rank-2" / "n-1-0.spill", "old");
  test::write_file(root / "rank-2" / ".tmp-n-2-1.spill", "torn");
  // A numbered sibling of the same key nobody holds: also left behind.
  fs::create_directories(root / "rank-2.3");
  test::write_file(root / "rank-2.3" / "n-3-0.spill", "old");
  // Another node's files are never touched.
  fs::create_directories(root / "rank-5");
  test::write_file(root / "rank-5" / "n-4-0.spill", "theirs");
  auto dir = spill_directory::open(root.path(), "rank-2");
  ASSERT_TRUE(dir) << describe(dir.error());
  EXPECT_EQ((*dir)->path(), root / "rank-2");
  EXPECT_EQ(files_in(root / "rank-2"), 0u);
  EXPECT_FALSE(fs::exists(root / "rank-2.3"));
  EXPECT_EQ((*dir)->leftovers_removed(), 3u);
  EXPECT_TRUE(fs::exists(root / "rank-5" / "n-4-0.spill"));
}

TEST(spill_directory, live_nodes_with_one_key_never_clean_each_other) {
  test::temp_dir root;
  auto first = spill_directory::open(root.path(), "rank-0");
  ASSERT_TRUE(first);
  auto f = (*first)->write(id_of("a-1"), *sample());
  ASSERT_TRUE(f);
  auto second = spill_directory::open(root.path(), "rank-0");
  ASSERT_TRUE(second) << describe(second.error());
  EXPECT_EQ((*second)->path(), root / "rank-0.1");
  EXPECT_TRUE(fs::exists(f->path)); // the live first node's file stays
  auto g = (*second)->write(id_of("b-1"), *sample(2));
  ASSERT_TRUE(g);
  second->reset(); // removes only its own directory
  EXPECT_FALSE(fs::exists(root / "rank-0.1"));
  EXPECT_TRUE(fs::exists(f->path));
  first->reset();
  EXPECT_FALSE(fs::exists(root / "rank-0"));
  EXPECT_TRUE(fs::is_empty(root.path()));
}

TEST(spill_directory, bad_places_are_clear_errors) {
  test::temp_dir root;
  auto relative = spill_directory::open("relative/dir", "rank-0");
  ASSERT_FALSE(relative);
  EXPECT_EQ(code_of(relative.error()), errc::invalid_argument);
  for (auto key : {"", "../up", "a/b", ".hidden"}) {
    auto bad = spill_directory::open(root.path(), key);
    ASSERT_FALSE(bad) << key;
    EXPECT_EQ(code_of(bad.error()), errc::invalid_argument) << key;
  }
  // A regular file where the directory should be: cannot be created.
  test::write_file(root / "file", "x");
  auto blocked = spill_directory::open(root / "file" / "spill", "rank-0");
  ASSERT_FALSE(blocked);
  EXPECT_EQ(code_of(blocked.error()), errc::io_error);
  EXPECT_NE(message_of(blocked.error()).find("file"), std::string::npos);
}

} // namespace
} // namespace spill_directory_test_file
