#include "store/spiller.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include <caf/sec.hpp>

#include "store/error.hpp"
#include "store/object_store.hpp"
#include "store/spill_directory.hpp"
#include "store/test_support.hpp"

namespace spiller_test_file {
namespace {

using namespace objstore;
namespace fs = std::filesystem;

value_ptr blob_of(size_t n, char fill) {
  return make_value(blob::copy_of(std::string(n, fill)));
}

/// A store with a 1000-byte memory limit spilling to a temp directory.
class spiller_test : public testing::Test {
protected:
  std::unique_ptr<object_store> make_store(double threshold = 0.8) {
    object_store_options opts;
    opts.node_id = "sp";
    opts.memory_limit = 1000;
    opts.spill_dir = root_.path() / "spill";
    opts.spill_key = "rank-0";
    opts.spill_threshold = threshold;
    auto result = object_store::make(std::move(opts));
    EXPECT_TRUE(result) << describe(result.error());
    return result ? std::move(*result) : nullptr;
  }

  fs::path node_dir() const { return root_.path() / "spill" / "rank-0"; }

  test::temp_dir root_;
};

TEST_F(spiller_test, three_times_the_limit_fits_and_comes_back) {
  auto store = make_store();
  ASSERT_TRUE(store->spilling());
  std::vector<uri> ids;
  for (int i = 0; i < 10; ++i) {
    auto id = store->put(blob_of(300, static_cast<char>('a' + i)));
    ASSERT_TRUE(id) << describe(id.error());
    ids.push_back(*id);
    EXPECT_LE(store->stats().of(scheme::mem).bytes, 1000u);
  }
  auto st = store->stats();
  EXPECT_EQ(st.of(scheme::mem).objects, 10u);
  EXPECT_GE(st.spill.spilled_objects, 7u);
  EXPECT_EQ(st.spill.spilled_bytes, 300 * st.spill.spilled_objects);
  EXPECT_EQ(st.spill.spills, st.spill.spilled_objects);
  EXPECT_EQ(spill_directory::count_files(node_dir()), st.spill.spilled_objects);
  // The oldest went first.
  EXPECT_TRUE(store->is_spilled(ids.front()));
  EXPECT_FALSE(store->is_spilled(ids.back()));
  for (int i = 0; i < 10; ++i) {
    auto x = store->get(ids[i]);
    ASSERT_TRUE(x) << describe(x.error());
    EXPECT_EQ(**x, *blob_of(300, static_cast<char>('a' + i)));
  }
  st = store->stats();
  EXPECT_GE(st.spill.restores, 7u);
  EXPECT_EQ(st.spill.restored_bytes_total, 300 * st.spill.restores);
  EXPECT_GT(st.spill.spill_ns, 0u);
  EXPECT_GT(st.spill.restore_ns, 0u);
  for (auto& id : ids)
    EXPECT_FALSE(store->erase(id));
  store->run_background_work(); // deletes the dropped files
  st = store->stats();
  EXPECT_EQ(st.of(scheme::mem).objects, 0u);
  EXPECT_EQ(st.of(scheme::mem).bytes, 0u);
  EXPECT_EQ(st.spill.spilled_objects, 0u);
  EXPECT_EQ(st.spill.spill_file_bytes, 0u);
  EXPECT_EQ(spill_directory::count_files(node_dir()), 0u);
  store.reset();
  EXPECT_FALSE(fs::exists(node_dir()));
}

TEST_F(spiller_test, pinned_objects_never_spill) {
  auto store = make_store();
  auto a = store->put(blob_of(600, 'a'));
  ASSERT_TRUE(a);
  auto held = store->get(*a); // a task's input, say
  ASSERT_TRUE(held);
  auto b = store->put(blob_of(600, 'b'));
  ASSERT_FALSE(b);
  EXPECT_EQ(code_of(b.error()), errc::resource_exhausted);
  EXPECT_NE(message_of(b.error()).find("pinned"), std::string::npos)
      << message_of(b.error());
  EXPECT_FALSE(store->is_spilled(*a));
  held->reset(); // unpinned: may spill now
  b = store->put(blob_of(600, 'b'));
  ASSERT_TRUE(b) << describe(b.error());
  EXPECT_TRUE(store->is_spilled(*a));
  // Larger than the whole limit: refused without spilling anything.
  auto huge = store->put(blob_of(1001, 'h'));
  ASSERT_FALSE(huge);
  EXPECT_EQ(code_of(huge.error()), errc::resource_exhausted);
  EXPECT_FALSE(store->is_spilled(*b));
}

TEST_F(spiller_test, resident_reads_and_puts_never_touch_the_disk) {
  auto store = make_store();
  auto a = store->put(blob_of(600, 'a'));
  ASSERT_TRUE(a);
  EXPECT_TRUE(store->needs_spill_for(600));
  EXPECT_FALSE(store->needs_spill_for(400));
  // Unpinned bytes count as available: a put of them spills first.
  EXPECT_EQ(store->memory_left(), 1000u);
  auto b = store->put(blob_of(600, 'b'), std::nullopt, disk_io::never);
  ASSERT_FALSE(b);
  EXPECT_EQ(code_of(b.error()), errc::resource_exhausted);
  EXPECT_FALSE(store->is_spilled(*a));
  b = store->put(blob_of(600, 'b'));
  ASSERT_TRUE(b);
  auto resident = store->get_resident(*a);
  ASSERT_TRUE(resident);
  EXPECT_EQ(*resident, nullptr); // spilled: restore with get
  resident = store->get_resident(*b);
  ASSERT_TRUE(resident);
  ASSERT_NE(*resident, nullptr);
  EXPECT_EQ(**resident, *blob_of(600, 'b'));
  auto listed = store->list(scheme::mem);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  for (auto& x : *listed)
    EXPECT_EQ(x.spilled, x.id == *a) << x.id.str();
  auto missing = store->get_resident(*uri::parse("mem://sp-999"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(code_of(missing.error()), errc::not_found);
}

TEST_F(spiller_test, background_work_spills_down_to_the_threshold) {
  auto store = make_store(0.5);
  std::atomic<int> calls = 0;
  store->on_background_work([&] { ++calls; });
  std::vector<uri> ids;
  for (int i = 0; i < 4; ++i)
    ids.push_back(*store->put(blob_of(200, 'x')));
  EXPECT_EQ(calls.load(), 1); // once until the work runs
  EXPECT_EQ(store->stats().of(scheme::mem).bytes, 800u);
  store->run_background_work();
  EXPECT_LE(store->stats().of(scheme::mem).bytes, 500u);
  EXPECT_TRUE(store->is_spilled(ids[0]));
  EXPECT_FALSE(store->is_spilled(ids[3]));
  // Erasing a spilled object asks for its file to be deleted.
  EXPECT_FALSE(store->erase(ids[0]));
  EXPECT_EQ(calls.load(), 2);
  store->run_background_work();
  EXPECT_EQ(spill_directory::count_files(node_dir()),
            store->stats().spill.spilled_objects);
}

TEST_F(spiller_test, a_restored_object_spills_again_without_a_write) {
  auto store = make_store(1.0); // spill only to make room
  auto a = *store->put(blob_of(600, 'a'));
  auto b = *store->put(blob_of(600, 'b')); // a spills: one write
  ASSERT_TRUE(store->is_spilled(a));
  auto x = store->get(a); // restores a, b spills: a second write
  ASSERT_TRUE(x);
  EXPECT_EQ(**x, *blob_of(600, 'a'));
  x->reset();
  ASSERT_TRUE(store->is_spilled(b));
  auto c = *store->put(blob_of(600, 'c')); // a spills again: no write
  auto st = store->stats();
  EXPECT_TRUE(store->is_spilled(a));
  EXPECT_EQ(st.spill.spills, 3u);
  EXPECT_EQ(st.spill.respills, 1u);
  EXPECT_EQ(st.spill.spilled_bytes_total, 1200u);
  EXPECT_EQ(st.spill.spilled_objects, 2u);
  EXPECT_EQ(spill_directory::count_files(node_dir()), 2u);
  x = store->get(a); // from the kept file (c spills)
  ASSERT_TRUE(x);
  EXPECT_EQ(**x, *blob_of(600, 'a'));
  x->reset();
  // The kept file goes with its object.
  for (auto& id : {a, b, c})
    EXPECT_FALSE(store->erase(id));
  store->run_background_work();
  EXPECT_EQ(spill_directory::count_files(node_dir()), 0u);
  EXPECT_EQ(store->stats().spill.spill_file_bytes, 0u);
}

TEST_F(spiller_test, damaged_or_missing_files_are_typed_errors) {
  auto store = make_store(1.0); // spill only to make room
  auto a = *store->put(blob_of(500, 'a'));
  auto b = *store->put(blob_of(500, 'b'));
  ASSERT_TRUE(store->put(blob_of(500, 'c')));
  ASSERT_TRUE(store->put(blob_of(500, 'd')));
  ASSERT_TRUE(store->is_spilled(a));
  ASSERT_TRUE(store->is_spilled(b));
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator{node_dir()})
    if (e.path().extension() == ".spill")
      files.push_back(e.path());
  ASSERT_EQ(files.size(), 2u);
  for (auto& f : files) {
    if (f.filename().string().find(std::string{a.key()}) == 0) {
      auto bytes = test::read_file(f);
      bytes[bytes.size() - 20] ^= 1;
      test::write_file(f, bytes);
    } else {
      fs::remove(f);
    }
  }
  auto x = store->get(a);
  ASSERT_FALSE(x);
  EXPECT_EQ(code_of(x.error()), errc::corrupt_data);
  EXPECT_NE(message_of(x.error()).find(a.str()), std::string::npos);
  auto y = store->get(b);
  ASSERT_FALSE(y);
  EXPECT_EQ(code_of(y.error()), errc::object_lost);
  EXPECT_NE(message_of(y.error()).find(b.str()), std::string::npos);
  EXPECT_EQ(store->stats().spill.restore_failures, 2u);
  // The store goes on; the broken objects can still be erased.
  EXPECT_TRUE(store->is_spilled(a));
  EXPECT_FALSE(store->erase(a));
  EXPECT_FALSE(store->erase(b));
  store->run_background_work();
  EXPECT_EQ(spill_directory::count_files(node_dir()), 0u);
}

TEST_F(spiller_test, concurrent_use_keeps_values_and_leaves_no_files) {
  auto store = make_store();
  std::atomic<int> wrong = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      std::vector<std::pair<uri, char>> mine;
      for (int i = 0; i < 200; ++i) {
        auto fill = static_cast<char>('a' + (i + t) % 26);
        if (mine.size() < 4 || rng() % 3 == 0) {
          auto id = store->put(blob_of(100 + rng() % 100, fill));
          if (id)
            mine.emplace_back(*id, fill);
          continue;
        }
        auto k = rng() % mine.size();
        auto x = store->get(mine[k].first);
        if (!x || (*x)->as_bytes().view().front() != mine[k].second)
          ++wrong;
        if (rng() % 2 == 0) {
          store->erase(mine[k].first);
          mine.erase(mine.begin() + static_cast<long>(k));
        }
      }
      for (auto& [id, fill] : mine)
        store->erase(id);
    });
  for (auto& x : threads)
    x.join();
  EXPECT_EQ(wrong.load(), 0);
  store->run_background_work();
  auto st = store->stats();
  EXPECT_EQ(st.of(scheme::mem).objects, 0u);
  EXPECT_EQ(st.spill.spilled_objects, 0u);
  EXPECT_GT(st.spill.spills, 0u);
  EXPECT_EQ(spill_directory::count_files(node_dir()), 0u);
}

TEST_F(spiller_test, off_without_a_limit_or_threshold) {
  object_store_options opts;
  opts.spill_dir = root_.path() / "spill";
  auto no_limit = object_store::make(opts);
  ASSERT_TRUE(no_limit);
  EXPECT_FALSE((*no_limit)->spilling());
  opts.memory_limit = 1000;
  opts.spill_threshold = 0;
  auto no_threshold = object_store::make(opts);
  ASSERT_TRUE(no_threshold);
  EXPECT_FALSE((*no_threshold)->spilling());
  EXPECT_FALSE(fs::exists(root_.path() / "spill"));
}

} // namespace
} // namespace spiller_test_file
