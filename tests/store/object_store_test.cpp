#include "store/object_store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include <caf/sec.hpp>

#include "store/error.hpp"
#include "store/test_support.hpp"

namespace object_store_test_file {
namespace {

using namespace objstore;
namespace fs = std::filesystem;

namespace {

value_ptr bytes_of_size(size_t n, char fill = 'x') {
  return make_value(blob::copy_of(std::string(n, fill)));
}

/// A store with a memory backend and a file backend on a temp root.
class object_store_test : public testing::Test {
protected:
  std::unique_ptr<object_store> make_store(object_store_options opts = {}) {
    opts.fs_roots = {dir_.path()};
    opts.fs_sync = false;
    auto result = object_store::make(std::move(opts));
    EXPECT_TRUE(result) << describe(result.error());
    return result ? std::move(*result) : nullptr;
  }

  uri fs_id(const std::string& name) const {
    return *uri::parse("fs://" + (dir_.path() / name).string());
  }

  /// Every scheme's store back to zero objects (leak check).
  static void expect_empty(object_store& store) {
    auto st = store.stats();
    for (auto& [key, totals] : st.per_scheme) {
      EXPECT_EQ(totals.objects, 0u) << to_string(key);
      EXPECT_EQ(totals.bytes, 0u) << to_string(key);
    }
  }

  test::temp_dir dir_;
};

TEST_F(object_store_test, put_without_uri_returns_a_fresh_mem_uri) {
  object_store_options opts;
  opts.node_id = "node7";
  object_store store{opts};
  auto x = make_value(test::sample_tensor(dtype::int64, {3}));
  auto a = store.put(x);
  auto b = store.put(x);
  ASSERT_TRUE(a) << describe(a.error());
  ASSERT_TRUE(b) << describe(b.error());
  EXPECT_EQ(a->scheme(), scheme::mem);
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(a->str().starts_with("mem://node7-")) << a->str();
  auto reparsed = uri::parse(a->str());
  ASSERT_TRUE(reparsed) << describe(reparsed.error());
  EXPECT_EQ(*reparsed, *a);
  EXPECT_EQ(store.stats().of(scheme::mem).objects, 2u);
  ASSERT_FALSE(store.erase(*a));
  ASSERT_FALSE(store.erase(*b));
  expect_empty(store);
}

TEST_F(object_store_test, stores_of_different_nodes_generate_different_ids) {
  object_store first;
  object_store second;
  auto x = make_value(blob::copy_of("x"));
  EXPECT_NE(*first.put(x), *second.put(x));
}

TEST_F(object_store_test, node_ids_that_make_invalid_uris_are_refused) {
  for (auto& bad :
       std::vector<std::string>{"a/b", "has space", std::string(300, 'n')}) {
    object_store_options opts;
    opts.node_id = bad;
    auto made = object_store::make(opts);
    ASSERT_FALSE(made) << bad;
    EXPECT_EQ(code_of(made.error()), errc::invalid_argument);
  }
}

TEST_F(object_store_test, get_of_mem_returns_the_stored_pointer) {
  object_store store;
  auto x = make_value(test::sample_tensor(dtype::float32, {256}));
  auto id = store.put(x);
  ASSERT_TRUE(id);
  auto got = store.get(*id);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(got->get(), x.get());
  EXPECT_EQ((*got)->as_tensor().raw(), x->as_tensor().raw());
  EXPECT_EQ(store.exists(*id), caf::expected<bool>{true});
  ASSERT_FALSE(store.erase(*id));
  EXPECT_EQ(store.exists(*id), caf::expected<bool>{false});
  EXPECT_EQ(code_of(store.get(*id).error()), errc::not_found);
}

TEST_F(object_store_test, put_with_fs_uri_writes_a_file) {
  auto store = make_store();
  ASSERT_NE(store, nullptr);
  auto x = make_value(test::sample_table(6));
  auto target = fs_id("dir/table.obj");
  auto id = store->put(x, target);
  ASSERT_TRUE(id) << describe(id.error());
  EXPECT_EQ(*id, target);
  EXPECT_TRUE(fs::is_regular_file(dir_.path() / "dir" / "table.obj"));
  auto got = store->get(target);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(**got, *x);
  EXPECT_NE(got->get(), x.get()); // read back from disk
  ASSERT_FALSE(store->erase(target));
  EXPECT_FALSE(fs::exists(dir_.path() / "dir" / "table.obj"));
  expect_empty(*store);
}

TEST_F(object_store_test, memory_limit_refuses_puts_that_exceed_it) {
  object_store_options opts;
  opts.memory_limit = 1000;
  object_store store{opts};
  auto first = bytes_of_size(600, 'a');
  auto first_id = store.put(first);
  ASSERT_TRUE(first_id) << describe(first_id.error());
  auto target = *uri::parse("mem://second");
  auto refused = store.put(bytes_of_size(600, 'b'), target);
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::resource_exhausted);
  EXPECT_NE(message_of(refused.error()).find("mem://second"), std::string::npos)
      << describe(refused.error());
  // Nothing changed.
  EXPECT_EQ(store.exists(target), caf::expected<bool>{false});
  auto got = store.get(*first_id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->get(), first.get());
  EXPECT_EQ(store.stats().of(scheme::mem).bytes, 600u);
  // Exactly up to the limit fits; a replacement only counts the difference.
  ASSERT_TRUE(store.put(bytes_of_size(400), target));
  EXPECT_EQ(store.stats().of(scheme::mem).bytes, 1000u);
  ASSERT_TRUE(store.put(bytes_of_size(300), target));
  EXPECT_EQ(store.stats().of(scheme::mem).bytes, 900u);
  // Erasing frees room.
  ASSERT_FALSE(store.erase(*first_id));
  ASSERT_TRUE(store.put(bytes_of_size(700)));
}

TEST_F(object_store_test, memory_limit_holds_under_concurrent_puts) {
  object_store_options opts;
  opts.memory_limit = 10'000;
  object_store store{opts};
  std::atomic<int> accepted{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t)
    workers.emplace_back([&] {
      for (int i = 0; i < 50; ++i)
        if (store.put(bytes_of_size(100)))
          ++accepted;
    });
  for (auto& w : workers)
    w.join();
  EXPECT_EQ(accepted.load(), 100);
  EXPECT_EQ(store.stats().of(scheme::mem).bytes, 10'000u);
}

TEST_F(object_store_test, memory_limit_does_not_apply_to_files) {
  object_store_options opts;
  opts.memory_limit = 100;
  auto store = make_store(opts);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->put(bytes_of_size(1000), fs_id("big")));
  EXPECT_FALSE(store->put(bytes_of_size(1000)));
}

TEST_F(object_store_test, max_object_size_applies_to_every_scheme) {
  object_store_options opts;
  opts.max_object_size = 100;
  auto store = make_store(opts);
  ASSERT_NE(store, nullptr);
  for (auto target : {*uri::parse("mem://big"), fs_id("big")}) {
    SCOPED_TRACE(target.str());
    auto refused = store->put(bytes_of_size(101), target);
    ASSERT_FALSE(refused);
    EXPECT_EQ(code_of(refused.error()), errc::resource_exhausted);
    EXPECT_NE(message_of(refused.error()).find(target.str()),
              std::string::npos);
    EXPECT_EQ(store->exists(target), caf::expected<bool>{false});
    EXPECT_TRUE(store->put(bytes_of_size(100), target));
  }
}

TEST_F(object_store_test, stats_and_list_per_scheme) {
  auto store = make_store();
  ASSERT_NE(store, nullptr);
  auto a = make_value(test::sample_tensor(dtype::int32, {10}));
  auto b = bytes_of_size(7);
  auto a_id = store->put(a);
  auto b_id = store->put(b);
  auto f_id = store->put(a, fs_id("f"));
  ASSERT_TRUE(a_id && b_id && f_id);
  auto st = store->stats();
  EXPECT_EQ(st.of(scheme::mem).objects, 2u);
  EXPECT_EQ(st.of(scheme::mem).bytes, 47u);
  EXPECT_EQ(st.of(scheme::fs).objects, 1u);
  EXPECT_GT(st.of(scheme::fs).bytes, 40u);
  EXPECT_EQ(st.of(scheme::oss).objects, 0u);
  auto ids_of = [&](std::optional<scheme> only) {
    std::set<uri> result;
    auto listed = store->list(only);
    EXPECT_TRUE(listed) << describe(listed.error());
    if (listed)
      for (auto& info : *listed)
        result.insert(info.id);
    return result;
  };
  EXPECT_EQ(ids_of(scheme::mem), (std::set<uri>{*a_id, *b_id}));
  EXPECT_EQ(ids_of(scheme::fs), (std::set<uri>{*f_id}));
  EXPECT_EQ(ids_of(scheme::oss), std::set<uri>{});
  EXPECT_EQ(ids_of(std::nullopt), (std::set<uri>{*a_id, *b_id, *f_id}));
  for (auto& id : {*a_id, *b_id, *f_id})
    ASSERT_FALSE(store->erase(id));
  expect_empty(*store);
}

TEST_F(object_store_test, unsupported_schemes) {
  object_store no_files; // no fs roots: fs:// is not served
  auto oss = *uri::parse("oss://bucket/key");
  for (auto id : {oss, fs_id("x")}) {
    SCOPED_TRACE(id.str());
    auto put = no_files.put(bytes_of_size(1), id);
    ASSERT_FALSE(put);
    EXPECT_EQ(code_of(put.error()), errc::unsupported_scheme);
    EXPECT_NE(message_of(put.error()).find(id.str()), std::string::npos);
    auto got = no_files.get(id);
    ASSERT_FALSE(got);
    EXPECT_EQ(code_of(got.error()), errc::unsupported_scheme);
    EXPECT_EQ(code_of(no_files.erase(id)), errc::unsupported_scheme);
    EXPECT_EQ(code_of(no_files.exists(id).error()), errc::unsupported_scheme);
  }
  EXPECT_TRUE(fs::is_empty(dir_.path()));
}

TEST_F(object_store_test, bad_fs_roots_and_null_values) {
  object_store_options opts;
  opts.fs_roots = {"relative"};
  auto made = object_store::make(opts);
  ASSERT_FALSE(made);
  EXPECT_EQ(code_of(made.error()), errc::invalid_argument);
  object_store store;
  auto put = store.put(nullptr);
  ASSERT_FALSE(put);
  EXPECT_EQ(code_of(put.error()), errc::invalid_argument);
}

TEST_F(object_store_test, registered_backends_take_over_their_scheme) {
  // A fake oss backend, as a later issue will plug in a real one.
  struct fake_oss : backend {
    int puts = 0;
    objstore::scheme scheme() const noexcept override { return scheme::oss; }
    caf::error put(const uri&, const value_ptr&) override {
      ++puts;
      return {};
    }
    caf::expected<value_ptr> get(const uri& id) override {
      return make_error(errc::not_found, id.str());
    }
    caf::error erase(const uri& id) override {
      return make_error(errc::not_found, id.str());
    }
    caf::expected<bool> exists(const uri&) override { return false; }
    caf::expected<std::vector<object_info>> list() override {
      return std::vector<object_info>{};
    }
    backend_stats stats() override { return {}; }
  };
  object_store store;
  auto fake = std::make_shared<fake_oss>();
  store.register_backend(fake);
  auto id = *uri::parse("oss://bucket/key");
  ASSERT_TRUE(store.put(bytes_of_size(3), id));
  EXPECT_EQ(fake->puts, 1);
  EXPECT_EQ(code_of(store.get(id).error()), errc::not_found);
}

// -- errors -------------------------------------------------------------------

TEST(errc, converts_to_and_from_caf_error) {
  auto err = make_error(errc::not_found, "mem://x");
  EXPECT_EQ(err.category(), error_category);
  EXPECT_EQ(code_of(err), errc::not_found);
  EXPECT_EQ(message_of(err), "mem://x");
  EXPECT_EQ(describe(err), "objstore.not_found: mem://x");
  caf::error implicit = errc::timeout;
  EXPECT_EQ(code_of(implicit), errc::timeout);
  EXPECT_EQ(message_of(implicit), "");
  EXPECT_EQ(describe(implicit), "objstore.timeout");
  EXPECT_EQ(code_of(caf::error{}), errc::none);
  EXPECT_EQ(describe(caf::error{}), "none");
  auto system = caf::make_error(caf::sec::unexpected_message);
  EXPECT_EQ(code_of(system), errc::none);
  EXPECT_EQ(message_of(system), "");
  EXPECT_EQ(describe(system), "system.unexpected_message");
  EXPECT_EQ(render_error(static_cast<uint8_t>(errc::corrupt_data),
                         error_category, caf::make_message(std::string{"f"})),
            "objstore.corrupt_data: f");
}

TEST(errc, every_code_has_a_distinct_name) {
  std::set<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(errc::unsupported); ++i) {
    auto name = to_string(static_cast<errc>(i));
    EXPECT_NE(name, "unknown") << i;
    EXPECT_TRUE(names.insert(name).second) << name;
    auto err = make_error(static_cast<errc>(i), "what");
    if (i != 0) {
      EXPECT_EQ(code_of(err), static_cast<errc>(i));
    }
  }
  EXPECT_EQ(to_string(errc::permission_denied), "permission_denied");
}

} // namespace

} // namespace
} // namespace object_store_test_file
