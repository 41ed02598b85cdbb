// The store actor: put / get / erase / exists / objects / stats through its
// typed interface in a real actor system, with typed errors that name the
// offending URI.

#include "actors/worker/store_actor.hpp"

#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/reply.hpp"
#include "actors/testing/local_cluster.hpp"
#include "store/error.hpp"

namespace store_actor_test_file {
namespace {

using namespace objstore;
using namespace std::chrono_literals;

namespace {

namespace fs = std::filesystem;

value_ptr vec(std::vector<int64_t> xs) {
  auto n = static_cast<int64_t>(xs.size());
  return make_value(tensor::from<int64_t>({n}, xs));
}

value_ptr bytes(std::string_view text) {
  return make_value(blob::copy_of(text));
}

using objstore::test::reply;

class store_actor_test : public ::testing::Test {
protected:
  void SetUp() override {
    configure_system(cfg_, 2);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    self_ = std::make_unique<caf::scoped_actor>(*sys_);
    char templ[] = "/tmp/objstore-store-actor-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
  }

  void TearDown() override {
    if (store_)
      caf::anon_send_exit(store_, caf::exit_reason::user_shutdown);
    // The detached actor's thread ends once the last handle is gone.
    store_ = store_actor{};
    self_.reset();
    sys_.reset(); // waits for the store actor
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  /// Spawns the store actor over a store with `options`.
  void start(object_store_options options = {}) {
    options.fs_sync = false; // throwaway test data
    auto made = object_store::make(options);
    ASSERT_TRUE(made) << describe(made.error());
    objects_ = std::shared_ptr<object_store>{std::move(*made)};
    store_ = sys_->spawn<caf::detached>(store_actor_impl, objects_);
  }

  /// A store with one fs root, `<tmp>/root`.
  void start_with_fs_root() {
    object_store_options options;
    options.fs_roots = {root()};
    start(options);
  }

  fs::path root() const { return dir_ / "root"; }

  std::string fs_uri(const fs::path& p) const { return "fs://" + p.string(); }

  template<class T, class... Ts>
  reply<T> ask(Ts&&... xs) {
    reply<T> result;
    (*self_)
        ->request(store_, 10s, std::forward<Ts>(xs)...)
        .receive([&](T& x) { result.value = std::move(x); },
                 [&](caf::error& err) { result.error = std::move(err); });
    return result;
  }

  reply<std::string> put(value_ptr x, std::string target = {}) {
    return ask<std::string>(put_atom::value, wire_value{std::move(x)},
                            std::move(target));
  }

  reply<wire_value> get(std::string id) {
    return ask<wire_value>(get_atom::value, std::move(id));
  }

  reply<bool> erase(std::string id) {
    return ask<bool>(erase_atom::value, std::move(id));
  }

  reply<bool> exists(std::string id) {
    return ask<bool>(exists_atom::value, std::move(id));
  }

  /// The listing as uri -> size.
  std::map<std::string, uint64_t> listing() {
    auto xs = ask<std::vector<object_record>>(objects_atom::value);
    EXPECT_TRUE(xs.ok()) << describe(xs.error);
    std::map<std::string, uint64_t> result;
    if (xs.ok())
      for (auto& rec : *xs.value)
        result.emplace(rec.uri, rec.size_bytes);
    return result;
  }

  worker_stats stats() {
    auto st = ask<worker_stats>(stats_atom::value);
    EXPECT_TRUE(st.ok()) << describe(st.error);
    return st.value.value_or(worker_stats{});
  }

  /// Expects `r` to have failed with `code` and a message naming `what`.
  template<class T>
  void expect_error(const reply<T>& r, errc code, const std::string& what) {
    ASSERT_FALSE(r.ok()) << "expected " << to_string(code) << " naming " << what
                         << ", got a value";
    EXPECT_EQ(r.code(), code) << describe(r.error);
    EXPECT_NE(r.message().find(what), std::string::npos)
        << "'" << r.message() << "' does not name " << what;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::unique_ptr<caf::scoped_actor> self_;
  fs::path dir_;
  std::shared_ptr<object_store> objects_;
  store_actor store_;
};

TEST_F(store_actor_test, may_write_checks_an_fs_target_without_writing) {
  start_with_fs_root();
  auto may_write = [&](const std::string& uri, const std::string& who) {
    return ask<std::string>(may_write_atom::value, uri, who);
  };
  auto fresh = fs_uri(root() / "new" / "x.obj");
  auto ok = may_write(fresh, "alice");
  ASSERT_TRUE(ok.ok()) << describe(ok.error);
  EXPECT_EQ(*ok.value, fresh);
  EXPECT_FALSE(fs::exists(root() / "new")) << "a check writes nothing";
  auto owned = fs_uri(root() / "owned.obj");
  ASSERT_TRUE((ask<std::string>(put_atom::value, wire_value{vec({1})}, owned,
                                std::string{"alice"}))
                  .ok());
  EXPECT_TRUE(may_write(owned, "alice").ok()) << "its owner overwrites it";
  expect_error(may_write(owned, "bob"), errc::permission_denied, owned);
  auto outside = fs_uri(dir_ / "outside.obj");
  expect_error(may_write(outside, "alice"), errc::permission_denied, outside);
  auto dotdot = fs_uri(root() / ".." / "up.obj");
  expect_error(may_write(dotdot, "alice"), errc::permission_denied, dotdot);
  expect_error(may_write("fs://relative", "alice"), errc::invalid_uri,
               "fs://relative");
  expect_error(may_write("mem://abc", "alice"), errc::unsupported_scheme,
               "mem://abc");
  expect_error(may_write("ftp://host/x", "alice"), errc::unsupported_scheme,
               "ftp://host/x");
}

TEST_F(store_actor_test, may_write_without_fs_roots_is_unsupported_scheme) {
  start();
  auto target = fs_uri(dir_ / "x.obj");
  expect_error(
      ask<std::string>(may_write_atom::value, target, std::string{"alice"}),
      errc::unsupported_scheme, target);
}

TEST_F(store_actor_test, put_without_target_stores_a_new_mem_object) {
  start();
  auto x = vec({1, 2, 3});
  auto id = put(x);
  ASSERT_TRUE(id.ok()) << describe(id.error);
  EXPECT_EQ(id.value->rfind("mem://", 0), 0u) << *id.value;
  auto back = get(*id.value);
  ASSERT_TRUE(back.ok()) << describe(back.error);
  EXPECT_EQ(*back.value->ptr, *x);
  EXPECT_EQ(back.value->ptr.get(), x.get())
      << "an in-process get shares the stored value, copies no bytes";
  auto there = exists(*id.value);
  ASSERT_TRUE(there.ok()) << describe(there.error);
  EXPECT_TRUE(*there.value);
}

TEST_F(store_actor_test, every_put_without_target_gets_a_fresh_uri) {
  start();
  auto x = vec({7});
  auto a = put(x);
  auto b = put(x);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a.value, *b.value);
  EXPECT_EQ(stats().mem_objects, 2u);
}

TEST_F(store_actor_test, put_to_an_existing_mem_target_replaces_the_value) {
  start();
  auto first = put(vec({1, 2, 3, 4}), "mem://fixed");
  ASSERT_TRUE(first.ok()) << describe(first.error);
  EXPECT_EQ(*first.value, "mem://fixed");
  auto second = put(vec({9}), "mem://fixed");
  ASSERT_TRUE(second.ok()) << describe(second.error);
  auto back = get("mem://fixed");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back.value->ptr, *vec({9}));
  auto st = stats();
  EXPECT_EQ(st.mem_objects, 1u);
  EXPECT_EQ(st.mem_bytes, sizeof(int64_t)) << "old bytes are not counted";
}

TEST_F(store_actor_test, erase_removes_and_a_second_erase_is_not_found) {
  start();
  auto id = put(vec({1}));
  ASSERT_TRUE(id.ok());
  auto erased = erase(*id.value);
  ASSERT_TRUE(erased.ok()) << describe(erased.error);
  EXPECT_TRUE(*erased.value);
  auto there = exists(*id.value);
  ASSERT_TRUE(there.ok());
  EXPECT_FALSE(*there.value);
  expect_error(erase(*id.value), errc::not_found, *id.value);
  expect_error(get(*id.value), errc::not_found, *id.value);
  EXPECT_EQ(stats().mem_objects, 0u);
}

TEST_F(store_actor_test, objects_live_until_erased_no_matter_who_reads_them) {
  start();
  auto id = put(vec({5, 6}));
  ASSERT_TRUE(id.ok());
  {
    caf::scoped_actor other{*sys_};
    for (int i = 0; i < 3; ++i)
      other->request(store_, 10s, get_atom::value, *id.value)
          .receive([](wire_value&) {},
                   [](caf::error& err) { ADD_FAILURE() << describe(err); });
  } // the reader is gone; the store holds no references to drop
  EXPECT_EQ(listing(), (std::map<std::string, uint64_t>{
                           {*id.value, 2 * sizeof(int64_t)}}));
  ASSERT_TRUE(erase(*id.value).ok());
  EXPECT_TRUE(listing().empty());
}

TEST_F(store_actor_test, missing_objects_are_not_found_and_do_not_exist) {
  start();
  expect_error(get("mem://nobody-put-this"), errc::not_found,
               "mem://nobody-put-this");
  expect_error(erase("mem://nobody-put-this"), errc::not_found,
               "mem://nobody-put-this");
  auto there = exists("mem://nobody-put-this");
  ASSERT_TRUE(there.ok()) << describe(there.error);
  EXPECT_FALSE(*there.value);
}

TEST_F(store_actor_test, objects_and_stats_cover_every_scheme) {
  start_with_fs_root();
  auto a = put(vec({1, 2}));
  auto b = put(bytes("hello"));
  auto file = fs_uri(root() / "data" / "c");
  auto c = put(vec({3}), file);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << describe(c.error);
  auto xs = listing();
  EXPECT_EQ(xs.size(), 3u);
  EXPECT_EQ(xs[*a.value], 2 * sizeof(int64_t));
  EXPECT_EQ(xs[*b.value], 5u);
  ASSERT_EQ(xs.count(file), 1u);
  EXPECT_GT(xs[file], 0u) << "encoded size on disk";
  auto st = stats();
  EXPECT_EQ(st.mem_objects, 2u);
  EXPECT_EQ(st.mem_bytes, 2 * sizeof(int64_t) + 5);
  EXPECT_EQ(st.fs_objects, 1u);
  EXPECT_EQ(st.fs_bytes, xs[file]);
  ASSERT_TRUE(erase(*a.value).ok());
  ASSERT_TRUE(erase(file).ok());
  st = stats();
  EXPECT_EQ(st.mem_objects, 1u);
  EXPECT_EQ(st.mem_bytes, 5u);
  EXPECT_EQ(st.fs_objects, 0u);
  EXPECT_EQ(st.fs_bytes, 0u);
}

TEST_F(store_actor_test, fs_objects_round_trip_through_files_under_the_root) {
  start_with_fs_root();
  auto path = root() / "sub" / "dir" / "table.bin";
  auto id = put(vec({4, 5, 6}), fs_uri(path));
  ASSERT_TRUE(id.ok()) << describe(id.error);
  EXPECT_EQ(*id.value, fs_uri(path));
  EXPECT_TRUE(fs::is_regular_file(path)) << "persisted as a file";
  auto back = get(*id.value);
  ASSERT_TRUE(back.ok()) << describe(back.error);
  EXPECT_EQ(*back.value->ptr, *vec({4, 5, 6}));
  auto there = exists(*id.value);
  ASSERT_TRUE(there.ok());
  EXPECT_TRUE(*there.value);
  ASSERT_TRUE(erase(*id.value).ok());
  EXPECT_FALSE(fs::exists(path));
  expect_error(get(*id.value), errc::not_found, *id.value);
}

TEST_F(store_actor_test, malformed_uris_are_invalid_and_named) {
  start_with_fs_root();
  for (std::string bad : {"no-scheme", "mem://", "mem://bad id", "mem://a/b",
                          "fs://relative/path", "://x"}) {
    SCOPED_TRACE(bad);
    expect_error(get(bad), errc::invalid_uri, bad);
    expect_error(erase(bad), errc::invalid_uri, bad);
    expect_error(exists(bad), errc::invalid_uri, bad);
    expect_error(put(vec({1}), bad), errc::invalid_uri, bad);
  }
  EXPECT_EQ(stats().mem_objects, 0u) << "a refused put stores nothing";
}

TEST_F(store_actor_test, unknown_and_unserved_schemes_are_unsupported) {
  start();
  // s3:// is no objstore scheme; oss:// is reserved but has no backend; fs://
  // has no backend on a node without fs roots.
  for (std::string id :
       {"s3://bucket/key", "oss://bucket/key", "fs:///tmp/no-roots-here"}) {
    SCOPED_TRACE(id);
    expect_error(get(id), errc::unsupported_scheme, id);
    expect_error(erase(id), errc::unsupported_scheme, id);
    expect_error(exists(id), errc::unsupported_scheme, id);
    expect_error(put(vec({1}), id), errc::unsupported_scheme, id);
  }
}

TEST_F(store_actor_test, fs_paths_outside_the_roots_are_refused_and_named) {
  start_with_fs_root();
  auto outside = dir_ / "outside";
  auto escaping = root().string() + "/../outside";
  for (std::string id : {fs_uri(outside), "fs://" + escaping}) {
    SCOPED_TRACE(id);
    expect_error(put(vec({1}), id), errc::permission_denied, id);
    expect_error(get(id), errc::permission_denied, id);
    expect_error(erase(id), errc::permission_denied, id);
  }
  EXPECT_FALSE(fs::exists(outside)) << "nothing written outside the roots";
  EXPECT_EQ(stats().fs_objects, 0u);
}

TEST_F(store_actor_test, null_values_are_refused) {
  start();
  auto r = put(nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::invalid_argument) << describe(r.error);
  EXPECT_EQ(stats().mem_objects, 0u);
}

TEST_F(store_actor_test, limits_refuse_puts_with_resource_exhausted) {
  object_store_options options;
  options.memory_limit = 4 * sizeof(int64_t);
  options.max_object_size = 3 * sizeof(int64_t);
  start(options);
  expect_error(put(vec({1, 2, 3, 4}), "mem://too-big"),
               errc::resource_exhausted, "mem://too-big");
  ASSERT_TRUE(put(vec({1, 2, 3}), "mem://first").ok());
  expect_error(put(vec({1, 2}), "mem://second"), errc::resource_exhausted,
               "mem://second");
  auto st = stats();
  EXPECT_EQ(st.mem_objects, 1u) << "refused puts store nothing";
  EXPECT_EQ(st.mem_bytes, 3 * sizeof(int64_t));
  ASSERT_TRUE(erase("mem://first").ok());
  EXPECT_TRUE(put(vec({1, 2}), "mem://second").ok())
      << "erasing frees room under the memory limit";
}

TEST_F(store_actor_test, the_store_keeps_serving_after_errors) {
  start();
  expect_error(get("bogus"), errc::invalid_uri, "bogus");
  expect_error(get("mem://missing"), errc::not_found, "mem://missing");
  expect_error(put(nullptr), errc::invalid_argument, "null");
  auto id = put(vec({1}));
  ASSERT_TRUE(id.ok()) << describe(id.error);
  ASSERT_TRUE(get(*id.value).ok());
  ASSERT_TRUE(erase(*id.value).ok());
}

} // namespace

} // namespace
} // namespace store_actor_test_file
