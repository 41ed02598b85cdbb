// The one conformance suite of the backend contract (store/backend.hpp),
// run against every backend. Allowed differences are flags on the backend
// kind, as in Arrow's filesystem conformance tests.

#include "store/backend.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include "s3/s3_test_server.hpp"
#include "store/codec.hpp"
#include "store/error.hpp"
#include "store/file_backend.hpp"
#include "store/memory_backend.hpp"
#include "store/oss_backend.hpp"
#include "store/test_support.hpp"

namespace backend_conformance_test_file {
namespace {

using namespace objstore;

namespace {

/// One backend under test and the ways it may differ from the others.
struct backend_kind {
  std::string name;
  /// `object_info::size_bytes` and `stats().bytes` count payload bytes
  /// (memory) rather than encoded bytes on disk (files).
  bool counts_payload_bytes;
  /// Objects survive a new backend instance on the same storage.
  bool persistent;
};

void PrintTo(const backend_kind& x, std::ostream* os) {
  *os << x.name;
}

const backend_kind memory_kind{"memory", true, false};
const backend_kind file_kind{"file", false, true};
/// Against a real S3-compatible server (tests/s3/server.js).
const backend_kind oss_kind{"oss", false, true};

class backend_conformance : public testing::TestWithParam<backend_kind> {
protected:
  void SetUp() override {
    if (GetParam().name == "file")
      root_.emplace();
    if (GetParam().name == "oss")
      server_.emplace(test::s3_test_server::options{});
    open(false);
  }

  void TearDown() override {
    backend_.reset();
    root_.reset();
    server_.reset();
  }

  /// (Re)creates the backend under test; for files on the same root.
  void open(bool sync) {
    backend_.reset();
    if (server_) {
      auto made = oss_backend::make(server_->backend_options());
      ASSERT_TRUE(made) << describe(made.error());
      backend_ = std::move(*made);
      return;
    }
    if (!root_) {
      backend_ = std::make_unique<memory_backend>();
      return;
    }
    file_backend_options opts;
    opts.roots = {root_->path()};
    opts.sync = sync;
    auto files = file_backend::make(std::move(opts));
    ASSERT_TRUE(files) << describe(files.error());
    backend_ = std::move(*files);
  }

  /// A URI of `name` that the backend under test serves.
  uri id(const std::string& name) const {
    auto text = server_ ? "oss://objstore-test/" + name
                : root_ ? "fs://" + (root_->path() / name).string()
                        : "mem://" + name;
    auto result = uri::parse(text);
    EXPECT_TRUE(result) << describe(result.error());
    return *result;
  }

  /// A URI of the other backend's scheme.
  uri foreign_id() const {
    return *uri::parse(root_ || server_ ? "mem://elsewhere"
                                        : "fs:///tmp/elsewhere");
  }

  /// Bytes `x` occupies in `list()` and `stats()`.
  uint64_t accounted_size(const value& x) const {
    return GetParam().counts_payload_bytes ? x.size_bytes() : encode(x).size();
  }

  /// Puts `x`, reads it back and checks it is equal.
  void round_trip(const std::string& name, const value_ptr& x) {
    SCOPED_TRACE(name + ": " + x->summary());
    auto key = id(name);
    ASSERT_FALSE(backend_->put(key, x));
    auto got = backend_->get(key);
    ASSERT_TRUE(got) << describe(got.error());
    ASSERT_NE(*got, nullptr);
    EXPECT_EQ((*got)->kind(), x->kind());
    EXPECT_EQ(**got, *x);
  }

  std::optional<test::temp_dir> root_;
  std::optional<test::s3_test_server> server_;
  std::unique_ptr<backend> backend_;
};

TEST_P(backend_conformance, serves_its_scheme) {
  EXPECT_EQ(backend_->scheme(), server_ ? scheme::oss
                                : root_ ? scheme::fs
                                        : scheme::mem);
}

TEST_P(backend_conformance, put_get_exists_erase) {
  auto key = id("obj");
  auto x = make_value(test::sample_tensor(dtype::int32, {2, 3}));
  ASSERT_EQ(backend_->exists(key), caf::expected<bool>{false});
  ASSERT_FALSE(backend_->put(key, x));
  EXPECT_EQ(backend_->exists(key), caf::expected<bool>{true});
  auto got = backend_->get(key);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(**got, *x);
  ASSERT_FALSE(backend_->erase(key));
  EXPECT_EQ(backend_->exists(key), caf::expected<bool>{false});
  EXPECT_EQ(code_of(backend_->get(key).error()), errc::not_found);
  EXPECT_EQ(backend_->stats().objects, 0u);
}

TEST_P(backend_conformance, overwrite_replaces_the_object) {
  auto key = id("obj");
  auto first = make_value(test::sample_tensor(dtype::float64, {100}, 1));
  auto second = make_value(blob::copy_of("second version"));
  ASSERT_FALSE(backend_->put(key, first));
  ASSERT_FALSE(backend_->put(key, second));
  auto got = backend_->get(key);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(**got, *second);
  auto st = backend_->stats();
  EXPECT_EQ(st.objects, 1u);
  EXPECT_EQ(st.bytes, accounted_size(*second));
  auto listed = backend_->list();
  ASSERT_TRUE(listed) << describe(listed.error());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().id, key);
  EXPECT_EQ(listed->front().size_bytes, accounted_size(*second));
}

TEST_P(backend_conformance, absent_objects_are_not_found) {
  auto key = id("missing");
  auto got = backend_->get(key);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::not_found);
  EXPECT_NE(message_of(got.error()).find(key.str()), std::string::npos)
      << describe(got.error());
  auto err = backend_->erase(key);
  EXPECT_EQ(code_of(err), errc::not_found);
  EXPECT_NE(message_of(err).find(key.str()), std::string::npos);
  auto found = backend_->exists(key);
  ASSERT_TRUE(found) << describe(found.error());
  EXPECT_FALSE(*found);
}

TEST_P(backend_conformance, erase_twice_is_not_found_the_second_time) {
  auto key = id("obj");
  ASSERT_FALSE(backend_->put(key, make_value(blob::copy_of("x"))));
  EXPECT_FALSE(backend_->erase(key));
  EXPECT_EQ(code_of(backend_->erase(key)), errc::not_found);
}

TEST_P(backend_conformance, list_returns_exactly_the_stored_objects) {
  auto listed = backend_->list();
  ASSERT_TRUE(listed) << describe(listed.error());
  EXPECT_TRUE(listed->empty());
  std::map<uri, value_ptr> stored;
  for (int i = 0; i < 5; ++i) {
    auto x = make_value(test::sample_tensor(dtype::uint8, {i + 1}));
    stored[id("obj-" + std::to_string(i))] = x;
    ASSERT_FALSE(backend_->put(id("obj-" + std::to_string(i)), x));
  }
  ASSERT_FALSE(backend_->erase(id("obj-2")));
  stored.erase(id("obj-2"));
  listed = backend_->list();
  ASSERT_TRUE(listed) << describe(listed.error());
  std::map<uri, uint64_t> seen;
  for (auto& info : *listed)
    EXPECT_TRUE(seen.emplace(info.id, info.size_bytes).second)
        << "listed twice: " << info.id.str();
  ASSERT_EQ(seen.size(), stored.size());
  for (auto& [key, x] : stored) {
    ASSERT_EQ(seen.count(key), 1u) << key.str();
    EXPECT_EQ(seen[key], accounted_size(*x)) << key.str();
  }
}

TEST_P(backend_conformance, stats_count_objects_and_bytes) {
  EXPECT_EQ(backend_->stats().objects, 0u);
  EXPECT_EQ(backend_->stats().bytes, 0u);
  auto a = make_value(test::sample_tensor(dtype::float32, {10}));
  auto b = make_value(test::sample_table());
  auto c = make_value(blob::copy_of("bytes"));
  ASSERT_FALSE(backend_->put(id("a"), a));
  ASSERT_FALSE(backend_->put(id("b"), b));
  ASSERT_FALSE(backend_->put(id("c"), c));
  auto st = backend_->stats();
  EXPECT_EQ(st.objects, 3u);
  EXPECT_EQ(st.bytes,
            accounted_size(*a) + accounted_size(*b) + accounted_size(*c));
  ASSERT_FALSE(backend_->erase(id("b")));
  st = backend_->stats();
  EXPECT_EQ(st.objects, 2u);
  EXPECT_EQ(st.bytes, accounted_size(*a) + accounted_size(*c));
  ASSERT_FALSE(backend_->erase(id("a")));
  ASSERT_FALSE(backend_->erase(id("c")));
  EXPECT_EQ(backend_->stats().objects, 0u);
  EXPECT_EQ(backend_->stats().bytes, 0u);
}

TEST_P(backend_conformance, large_tensor_round_trips) {
  constexpr int64_t size = int64_t{64} << 20;
  auto x = make_value(test::sample_tensor(dtype::uint8, {size}));
  auto key = id("large");
  ASSERT_FALSE(backend_->put(key, x));
  auto got = backend_->get(key);
  ASSERT_TRUE(got) << describe(got.error());
  auto& t = (*got)->as_tensor();
  ASSERT_EQ(t.shape(), std::vector<int64_t>{size});
  ASSERT_EQ(t.size_bytes(), static_cast<size_t>(size));
  EXPECT_EQ(std::memcmp(t.raw(), x->as_tensor().raw(), t.size_bytes()), 0);
}

TEST_P(backend_conformance, every_dtype_round_trips) {
  for (auto type : test::all_dtypes())
    round_trip("dtype-" + std::string{to_string(type)},
               make_value(test::sample_tensor(type, {3, 5})));
}

TEST_P(backend_conformance, empty_tensors_round_trip) {
  round_trip("empty-1d", make_value(test::sample_tensor(dtype::int64, {0})));
  round_trip("empty-2d",
             make_value(test::sample_tensor(dtype::float32, {3, 0})));
}

TEST_P(backend_conformance, scalar_round_trips) {
  auto x = make_value(tensor::from<double>({}, std::vector<double>{2.5}));
  round_trip("scalar", x);
  auto got = backend_->get(id("scalar"));
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)->as_tensor().rank(), 0u);
  EXPECT_EQ((*got)->as_tensor().values<double>()[0], 2.5);
}

TEST_P(backend_conformance, tables_round_trip) {
  round_trip("table", make_value(test::sample_table(4)));
  round_trip("table-no-rows", make_value(test::sample_table(0)));
  round_trip("table-no-columns", make_value(*table::make({})));
  auto got = backend_->get(id("table"));
  ASSERT_TRUE(got);
  auto& t = (*got)->as_table();
  EXPECT_EQ(t.num_rows(), 4);
  ASSERT_EQ(t.columns().size(), dtype_count);
  for (auto type : test::all_dtypes()) {
    auto* col = t.find("col_" + std::string{to_string(type)});
    ASSERT_NE(col, nullptr);
    EXPECT_EQ(col->data.type(), type);
  }
}

TEST_P(backend_conformance, bytes_round_trip) {
  round_trip("bytes", make_value(blob::copy_of(std::string{"a\0b\xff", 4})));
  round_trip("bytes-empty", make_value(blob::copy_of("")));
}

TEST_P(backend_conformance, other_schemes_are_invalid_uri) {
  auto key = foreign_id();
  auto x = make_value(blob::copy_of("x"));
  EXPECT_EQ(code_of(backend_->put(key, x)), errc::invalid_uri);
  auto got = backend_->get(key);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::invalid_uri);
  EXPECT_NE(message_of(got.error()).find(key.str()), std::string::npos);
  EXPECT_EQ(code_of(backend_->erase(key)), errc::invalid_uri);
  auto found = backend_->exists(key);
  ASSERT_FALSE(found);
  EXPECT_EQ(code_of(found.error()), errc::invalid_uri);
  EXPECT_EQ(backend_->stats().objects, 0u);
}

TEST_P(backend_conformance, null_value_is_invalid_argument) {
  EXPECT_EQ(code_of(backend_->put(id("null"), nullptr)),
            errc::invalid_argument);
  EXPECT_EQ(backend_->exists(id("null")), caf::expected<bool>{false});
}

TEST_P(backend_conformance, synced_puts_round_trip_and_persist) {
  open(true);
  auto x = make_value(test::sample_table(16));
  round_trip("synced", x);
  open(true);
  auto got = backend_->get(id("synced"));
  if (GetParam().persistent) {
    ASSERT_TRUE(got) << describe(got.error());
    EXPECT_EQ(**got, *x);
  } else {
    ASSERT_FALSE(got);
    EXPECT_EQ(code_of(got.error()), errc::not_found);
  }
}

TEST_P(backend_conformance, stats_follow_any_sequence_of_puts_and_erases) {
  // What the stats must be, tracked independently of the backend.
  std::map<std::string, uint64_t> stored;
  auto expect_stats = [&](const std::string& when) {
    SCOPED_TRACE(when);
    uint64_t bytes = 0;
    for (auto& [name, size] : stored)
      bytes += size;
    auto st = backend_->stats();
    EXPECT_EQ(st.objects, stored.size());
    EXPECT_EQ(st.bytes, bytes);
  };
  for (int step = 0; step < 60; ++step) {
    auto name = "k" + std::to_string(step * 7 % 5);
    if (step % 4 == 3) {
      auto err = backend_->erase(id(name));
      EXPECT_EQ(code_of(err), stored.erase(name) ? errc::none : errc::not_found)
          << describe(err);
    } else {
      // Overwrites change the size, up and down.
      auto x = make_value(blob::copy_of(std::string(step * 13 % 200, 'q')));
      ASSERT_FALSE(backend_->put(id(name), x));
      stored[name] = accounted_size(*x);
    }
    expect_stats("step " + std::to_string(step));
  }
  if (GetParam().persistent) {
    open(false);
    expect_stats("reopened");
  }
}

TEST_P(backend_conformance, concurrent_puts_and_gets_see_whole_values) {
  constexpr int threads = 4;
  constexpr int rounds = 25;
  std::vector<std::thread> workers;
  std::vector<int> failures(threads, 0);
  auto shared_key = id("shared");
  auto a = make_value(test::sample_tensor(dtype::int64, {512}, 1));
  auto b = make_value(test::sample_tensor(dtype::int64, {512}, 2));
  ASSERT_FALSE(backend_->put(shared_key, a));
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      auto own = id("own-" + std::to_string(t));
      for (int i = 0; i < rounds; ++i) {
        auto x = make_value(test::sample_tensor(dtype::int32, {i + 1}, t));
        if (backend_->put(own, x) || backend_->put(shared_key, i % 2 ? a : b))
          ++failures[t];
        auto mine = backend_->get(own);
        if (!mine || **mine != *x)
          ++failures[t];
        auto shared = backend_->get(shared_key);
        if (!shared || (**shared != *a && **shared != *b))
          ++failures[t];
      }
    });
  for (auto& w : workers)
    w.join();
  for (int t = 0; t < threads; ++t)
    EXPECT_EQ(failures[t], 0) << "thread " << t;
  EXPECT_EQ(backend_->stats().objects, threads + 1u);
}

INSTANTIATE_TEST_SUITE_P(backends, backend_conformance,
                         testing::Values(memory_kind, file_kind, oss_kind),
                         [](const testing::TestParamInfo<backend_kind>& info) {
                           return info.param.name;
                         });

} // namespace

} // namespace
} // namespace backend_conformance_test_file
