#include "store/file_backend.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <set>

#include <sys/wait.h>
#include <unistd.h>

#include "store/codec.hpp"
#include "store/error.hpp"
#include "store/test_support.hpp"

namespace file_backend_test_file {
namespace {

using namespace objstore;
namespace fs = std::filesystem;

namespace {

/// A temp dir holding `root/` (the only fs root) and `outside/secret`.
class file_backend_test : public testing::Test {
protected:
  void SetUp() override {
    fs::create_directories(root());
    fs::create_directories(outside());
    test::write_file(secret(), "untouched");
    backend_ = open();
  }

  std::unique_ptr<file_backend> open(bool clean_temp_files = true) {
    file_backend_options opts;
    opts.roots = {root()};
    opts.sync = false;
    opts.clean_temp_files = clean_temp_files;
    auto result = file_backend::make(std::move(opts));
    EXPECT_TRUE(result) << describe(result.error());
    return result ? std::move(*result) : nullptr;
  }

  fs::path root() const { return dir_ / "root"; }
  fs::path outside() const { return dir_ / "outside"; }
  fs::path secret() const { return outside() / "secret"; }

  static uri id(const fs::path& p) {
    auto result = uri::parse("fs://" + p.string());
    EXPECT_TRUE(result) << describe(result.error());
    return *result;
  }

  /// Expects every operation on `key` to be refused with permission_denied
  /// and the outside directory to be unchanged.
  void expect_denied(const uri& key) {
    SCOPED_TRACE(key.str());
    auto x = make_value(blob::copy_of("intruder"));
    auto put = backend_->put(key, x);
    EXPECT_EQ(code_of(put), errc::permission_denied) << describe(put);
    EXPECT_NE(message_of(put).find(key.str()), std::string::npos);
    auto got = backend_->get(key);
    ASSERT_FALSE(got);
    EXPECT_EQ(code_of(got.error()), errc::permission_denied);
    EXPECT_EQ(code_of(backend_->erase(key)), errc::permission_denied);
    auto found = backend_->exists(key);
    ASSERT_FALSE(found);
    EXPECT_EQ(code_of(found.error()), errc::permission_denied);
    EXPECT_EQ(test::read_file(secret()), "untouched");
    std::set<fs::path> entries;
    for (auto& entry : fs::directory_iterator(outside()))
      entries.insert(entry.path().filename());
    EXPECT_EQ(entries, std::set<fs::path>{"secret"});
  }

  /// Names of the temp files anywhere under the root.
  std::vector<fs::path> temp_files() const {
    std::vector<fs::path> result;
    for (auto& entry : fs::recursive_directory_iterator(root()))
      if (entry.path().filename().string().starts_with(
              file_backend::temp_prefix))
        result.push_back(entry.path());
    return result;
  }

  test::temp_dir dir_;
  std::unique_ptr<file_backend> backend_;
};

// -- confinement --------------------------------------------------------------

TEST_F(file_backend_test, paths_outside_the_roots_are_denied) {
  expect_denied(id(secret()));
  expect_denied(id(outside() / "new"));
  expect_denied(id(dir_.path() / "root-sibling"));
  expect_denied(id(root())); // the root itself is not an object
  expect_denied(*uri::parse("fs:///etc/passwd"));
}

TEST_F(file_backend_test, dot_and_dot_dot_components_are_denied) {
  expect_denied(id(root() / ".." / "outside" / "secret"));
  expect_denied(id(root() / "a" / ".." / ".." / "outside" / "new"));
  expect_denied(id(root() / "." / "x"));
  // Denied even when the path would stay inside the root.
  expect_denied(id(root() / "a" / ".." / "b"));
}

TEST_F(file_backend_test, symlinks_leading_out_of_the_root_are_denied) {
  fs::create_symlink(secret(), root() / "file-link");
  fs::create_directory_symlink(outside(), root() / "dir-link");
  fs::create_symlink(outside() / "not-yet", root() / "dangling-link");
  expect_denied(id(root() / "file-link"));
  expect_denied(id(root() / "dir-link" / "secret"));
  expect_denied(id(root() / "dir-link" / "new"));
  expect_denied(id(root() / "dangling-link"));
  fs::create_directory_symlink(outside() / "new-dir", root() / "dangling-dir");
  expect_denied(id(root() / "dangling-dir" / "x"));
  expect_denied(id(root() / "dangling-dir" / "sub" / "x"));
  EXPECT_FALSE(fs::exists(outside() / "new-dir"));
  EXPECT_TRUE(fs::is_symlink(root() / "file-link"));
  EXPECT_TRUE(fs::is_symlink(root() / "dangling-link"));
}

TEST_F(file_backend_test, symlinks_within_the_root_work) {
  auto x = make_value(test::sample_tensor(dtype::int32, {4}));
  ASSERT_FALSE(backend_->put(id(root() / "data" / "real"), x));
  fs::create_directory_symlink(root() / "data", root() / "alias");
  fs::create_symlink(root() / "data" / "real", root() / "file-alias");
  for (auto& p : {root() / "alias" / "real", root() / "file-alias"}) {
    SCOPED_TRACE(p.string());
    auto got = backend_->get(id(p));
    ASSERT_TRUE(got) << describe(got.error());
    EXPECT_EQ(**got, *x);
    EXPECT_EQ(backend_->exists(id(p)), caf::expected<bool>{true});
  }
  // A put through the directory link lands in the linked directory.
  auto y = make_value(blob::copy_of("via alias"));
  ASSERT_FALSE(backend_->put(id(root() / "alias" / "new"), y));
  EXPECT_TRUE(fs::is_regular_file(root() / "data" / "new"));
  auto got = backend_->get(id(root() / "data" / "new"));
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(**got, *y);
  EXPECT_EQ(test::read_file(secret()), "untouched");
}

TEST_F(file_backend_test, temp_file_names_are_reserved) {
  auto key = id(root() / (std::string{file_backend::temp_prefix} + "x"));
  EXPECT_EQ(code_of(backend_->put(key, make_value(blob::copy_of("x")))),
            errc::permission_denied);
  EXPECT_TRUE(temp_files().empty());
}

TEST_F(file_backend_test, a_directory_is_not_an_object) {
  fs::create_directories(root() / "dir" / "sub");
  auto key = id(root() / "dir");
  auto put = backend_->put(key, make_value(blob::copy_of("x")));
  EXPECT_EQ(code_of(put), errc::invalid_uri);
  EXPECT_NE(message_of(put).find("is a directory"), std::string::npos)
      << describe(put);
  EXPECT_TRUE(fs::is_directory(root() / "dir" / "sub"));
  auto got = backend_->get(key);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::invalid_uri) << describe(got.error());
  EXPECT_NE(message_of(got.error()).find(key.str()), std::string::npos);
  EXPECT_EQ(backend_->exists(key), caf::expected<bool>{false});
  EXPECT_EQ(code_of(backend_->erase(key)), errc::invalid_uri);
  EXPECT_TRUE(fs::is_directory(root() / "dir" / "sub"));
}

TEST_F(file_backend_test, bad_roots_are_refused) {
  file_backend_options relative;
  relative.roots = {"relative/root"};
  auto made = file_backend::make(relative);
  ASSERT_FALSE(made);
  EXPECT_EQ(code_of(made.error()), errc::invalid_argument);
  EXPECT_NE(message_of(made.error()).find("relative/root"), std::string::npos);
  EXPECT_FALSE(fs::exists("relative"));
  made = file_backend::make(file_backend_options::defaults());
  ASSERT_FALSE(made);
  EXPECT_EQ(code_of(made.error()), errc::invalid_argument);
  // A regular file, or a path through one: a configuration error naming
  // the root, for writable and shared roots alike.
  for (auto& bad : {secret(), secret() / "below"}) {
    SCOPED_TRACE(bad.string());
    file_backend_options on_a_file;
    on_a_file.roots = {bad};
    made = file_backend::make(on_a_file);
    ASSERT_FALSE(made);
    EXPECT_EQ(code_of(made.error()), errc::invalid_argument)
        << describe(made.error());
    EXPECT_NE(message_of(made.error()).find(bad.string()), std::string::npos)
        << describe(made.error());
    file_backend_options shared_file;
    shared_file.read_only_roots = {bad};
    made = file_backend::make(shared_file);
    ASSERT_FALSE(made);
    EXPECT_EQ(code_of(made.error()), errc::invalid_argument);
    EXPECT_NE(message_of(made.error()).find(bad.string()), std::string::npos)
        << describe(made.error());
  }
  EXPECT_EQ(test::read_file(secret()), "untouched");
}

TEST_F(file_backend_test, missing_roots_are_created) {
  file_backend_options opts;
  opts.roots = {dir_ / "new" / "nested" / "root"};
  opts.sync = false;
  auto made = file_backend::make(opts);
  ASSERT_TRUE(made) << describe(made.error());
  EXPECT_TRUE(fs::is_directory(dir_ / "new" / "nested" / "root"));
  EXPECT_EQ((*made)->roots(),
            std::vector<fs::path>{dir_ / "new" / "nested" / "root"});
}

// -- listing ------------------------------------------------------------------

TEST_F(file_backend_test, list_returns_objects_of_every_root) {
  file_backend_options opts;
  opts.roots = {root(), dir_ / "second"};
  opts.sync = false;
  auto made = file_backend::make(opts);
  ASSERT_TRUE(made) << describe(made.error());
  auto& files = **made;
  auto x = make_value(blob::copy_of("payload"));
  std::set<uri> expected{id(root() / "top"), id(root() / "d1" / "mid"),
                         id(root() / "d1" / "d2" / "deep"),
                         id(dir_ / "second" / "other")};
  for (auto& key : expected)
    ASSERT_FALSE(files.put(key, x)) << key.str();
  // Things that are not objects: temp files, symlinks, empty directories.
  test::write_file(
      root() / "d1"
          / (std::string{file_backend::temp_prefix} + "mid-0123456789abcdef"),
      "half");
  fs::create_symlink(root() / "top", root() / "link-to-top");
  fs::create_symlink(dir_ / "nowhere", root() / "d1" / "dangling");
  fs::create_directories(root() / "empty" / "dir");
  auto listed = files.list();
  ASSERT_TRUE(listed) << describe(listed.error());
  std::set<uri> seen;
  for (auto& info : *listed) {
    seen.insert(info.id);
    EXPECT_EQ(info.size_bytes, encode(*x).size()) << info.id.str();
  }
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(files.stats().objects, expected.size());
}

// -- crash safety -------------------------------------------------------------

TEST_F(file_backend_test, crash_before_rename_leaves_the_old_object) {
  auto key = id(root() / "sub" / "obj");
  auto old_value = make_value(test::sample_tensor(dtype::float64, {1000}, 1));
  ASSERT_FALSE(backend_->put(key, old_value));
  auto new_value = make_value(test::sample_tensor(dtype::float64, {4000}, 2));
  auto child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Child: no gtest assertions, leave only through _exit.
    file_backend_options opts;
    opts.roots = {root()};
    opts.sync = true;
    opts.clean_temp_files = false;
    opts.before_publish = [] {
      ::_exit(3);
    };
    auto files = file_backend::make(std::move(opts));
    if (!files)
      ::_exit(1);
    (*files)->put(key, new_value);
    ::_exit(2);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 3) << "child did not die in before_publish";
  // The complete temp file is there, but invisible.
  ASSERT_EQ(temp_files().size(), 1u);
  EXPECT_EQ(fs::file_size(temp_files().front()), encode(*new_value).size());
  auto got = backend_->get(key);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(**got, *old_value);
  auto listed = backend_->list();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().id, key);
  EXPECT_EQ(backend_->stats().objects, 1u);
  // A restarted backend removes the leftover.
  auto restarted = open(true);
  ASSERT_NE(restarted, nullptr);
  EXPECT_TRUE(temp_files().empty());
  got = restarted->get(key);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(**got, *old_value);
  ASSERT_FALSE(restarted->put(key, new_value));
  got = restarted->get(key);
  ASSERT_TRUE(got);
  EXPECT_EQ(**got, *new_value);
}

TEST_F(file_backend_test, restart_without_cleaning_keeps_temp_files) {
  auto tmp = root() / (std::string{file_backend::temp_prefix} + "x-1");
  test::write_file(tmp, "partial");
  auto kept = open(false);
  ASSERT_NE(kept, nullptr);
  EXPECT_TRUE(fs::exists(tmp));
  auto cleaned = open(true);
  EXPECT_FALSE(fs::exists(tmp));
}

// -- corruption ---------------------------------------------------------------

/// One way to damage the file of an object.
struct damage {
  std::string name;
  std::function<void(const fs::path&, const encoded_value&)> apply;
};

void flip_byte(const fs::path& p, size_t offset) {
  auto bytes = test::read_file(p);
  ASSERT_LT(offset, bytes.size());
  bytes[offset] = static_cast<char>(bytes[offset] ^ 0x5a);
  test::write_file(p, bytes);
}

std::vector<damage> damages() {
  return {
      {"payload byte flipped",
       [](const fs::path& p, const encoded_value& e) {
         flip_byte(p, e.head.size() + 10);
       }},
      {"header byte flipped",
       [](const fs::path& p, const encoded_value& e) {
         flip_byte(p, e.head.size() - 3);
       }},
      {"magic flipped",
       [](const fs::path& p, auto&) {
         flip_byte(p, 0);
       }},
      {"checksum flipped",
       [](const fs::path& p, const encoded_value& e) {
         flip_byte(p, e.size() - 1);
       }},
      {"truncated to half",
       [](const fs::path& p, const encoded_value& e) {
         fs::resize_file(p, e.size() / 2);
       }},
      {"one byte missing",
       [](const fs::path& p, const encoded_value& e) {
         fs::resize_file(p, e.size() - 1);
       }},
      {"one byte appended",
       [](const fs::path& p, auto&) {
         test::write_file(p, test::read_file(p) + "!");
       }},
      {"garbage",
       [](const fs::path& p, auto&) {
         test::write_file(p, "this is not an objstore object, not at all");
       }},
      {"empty file",
       [](const fs::path& p, auto&) {
         test::write_file(p, "");
       }},
  };
}

TEST_F(file_backend_test, corrupt_files_are_corrupt_data_and_the_store_works) {
  auto bystander = id(root() / "bystander");
  auto bystander_value = make_value(test::sample_table(8));
  ASSERT_FALSE(backend_->put(bystander, bystander_value));
  auto x = make_value(test::sample_tensor(dtype::int64, {64}));
  auto pieces = encode_pieces(*x);
  for (auto& d : damages()) {
    SCOPED_TRACE(d.name);
    auto key = id(root() / "victim");
    ASSERT_FALSE(backend_->put(key, x));
    d.apply(root() / "victim", pieces);
    auto got = backend_->get(key);
    ASSERT_FALSE(got) << "decoded " << (*got)->summary();
    EXPECT_EQ(code_of(got.error()), errc::corrupt_data)
        << describe(got.error());
    EXPECT_NE(message_of(got.error()).find(key.str()), std::string::npos)
        << describe(got.error());
    // The store stays usable: other objects, listing, new puts.
    auto other = backend_->get(bystander);
    ASSERT_TRUE(other) << describe(other.error());
    EXPECT_EQ(**other, *bystander_value);
    EXPECT_EQ(backend_->exists(key), caf::expected<bool>{true});
    auto listed = backend_->list();
    ASSERT_TRUE(listed);
    EXPECT_EQ(listed->size(), 2u);
    auto fresh = id(root() / "fresh");
    ASSERT_FALSE(backend_->put(fresh, x));
    auto reread = backend_->get(fresh);
    ASSERT_TRUE(reread) << describe(reread.error());
    EXPECT_EQ(**reread, *x);
    ASSERT_FALSE(backend_->erase(fresh));
    // Overwriting repairs the object.
    ASSERT_FALSE(backend_->put(key, x));
    got = backend_->get(key);
    ASSERT_TRUE(got) << describe(got.error());
    EXPECT_EQ(**got, *x);
  }
}

} // namespace

} // namespace
} // namespace file_backend_test_file
