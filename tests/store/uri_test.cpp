#include "store/uri.hpp"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <unordered_set>

#include "store/error.hpp"
#include "store/file_backend.hpp"
#include "store/object_store.hpp"
#include "store/test_support.hpp"

namespace uri_test_file {
namespace {

using namespace objstore;

namespace {

struct good_uri {
  std::string text;
  scheme expected_scheme;
  std::string expected_key;
};

struct bad_uri {
  std::string text;
  errc expected_code;
  std::string why;
};

const std::string long_id(256, 'a');
const std::string too_long_id(257, 'a');
const std::string ten_kb = "mem://" + std::string(10 * 1024, 'x');

std::vector<good_uri> good_uris() {
  return {
      {"mem://abc-1", scheme::mem, "abc-1"},
      {"mem://A.b_c-9", scheme::mem, "A.b_c-9"},
      {"mem://" + long_id, scheme::mem, long_id},
      {"fs:///tmp/x", scheme::fs, "/tmp/x"},
      {"fs:///a/b/c.bin", scheme::fs, "/a/b/c.bin"},
      {"fs:///with space/ünïcode", scheme::fs, "/with space/ünïcode"},
      // Parses: confinement is the file backend's business (tested below).
      {"fs:///root/../../x", scheme::fs, "/root/../../x"},
      {"oss://bucket/key", scheme::oss, "bucket/key"},
      {"oss://bucket/deep/key.bin", scheme::oss, "bucket/deep/key.bin"},
      {"oss://my.bucket-01/a b/ünï+(1).bin", scheme::oss,
       "my.bucket-01/a b/ünï+(1).bin"},
      {"oss://abc/" + std::string(1024, 'k'), scheme::oss,
       "abc/" + std::string(1024, 'k')},
  };
}

std::vector<bad_uri> bad_uris() {
  using std::string_literals::operator""s;
  return {
      {"", errc::invalid_uri, "empty"},
      {"fs://../etc/passwd", errc::invalid_uri, "relative fs path"},
      {"fs://relative/path", errc::invalid_uri, "relative fs path"},
      {"fs://", errc::invalid_uri, "empty fs path"},
      {"fs:///dir/", errc::invalid_uri, "fs path names a directory"},
      {"fs:///a\x01z", errc::invalid_uri, "control character"},
      {"fs:///a\0z"s, errc::invalid_uri, "NUL in path"},
      {"mem://", errc::invalid_uri, "empty id"},
      {"mem://a/b", errc::invalid_uri, "slash in id"},
      {"mem://a b", errc::invalid_uri, "space in id"},
      {"mem://a%2Fb", errc::invalid_uri, "percent in id"},
      {"mem://../x", errc::invalid_uri, "slash in id"},
      {"mem://a\nb", errc::invalid_uri, "newline in id"},
      {"mem://\xc3\xa4", errc::invalid_uri, "non-ASCII id"},
      {"mem://a;rm -rf /", errc::invalid_uri, "shell characters"},
      {"mem://" + too_long_id, errc::invalid_uri, "id too long"},
      {ten_kb, errc::invalid_uri, "10 KB URI"},
      {"oss://bucket", errc::invalid_uri, "oss without key"},
      {"oss:///key", errc::invalid_uri, "oss without bucket"},
      {"oss://bucket/", errc::invalid_uri, "oss with empty key"},
      {"oss://ab/key", errc::invalid_uri, "bucket name too short"},
      {"oss://" + std::string(64, 'b') + "/key", errc::invalid_uri,
       "bucket name too long"},
      {"oss://Bucket/key", errc::invalid_uri, "upper case bucket"},
      {"oss://buck_et/key", errc::invalid_uri, "underscore in bucket"},
      {"oss://-bucket/key", errc::invalid_uri, "bucket starts with '-'"},
      {"oss://bucket./key", errc::invalid_uri, "bucket ends with '.'"},
      {"oss://a..b/key", errc::invalid_uri, "'..' in bucket"},
      {"oss://bucket/dir/", errc::invalid_uri, "key names a folder"},
      {"oss://bucket/" + std::string(1025, 'k'), errc::invalid_uri,
       "key longer than 1024 bytes"},
      {"oss://bucket/a\x7f"
       "b",
       errc::invalid_uri, "DEL in key"},
      {"abc", errc::invalid_uri, "missing scheme"},
      {"/etc/passwd", errc::invalid_uri, "missing scheme"},
      {"://x", errc::invalid_uri, "empty scheme"},
      {"mem:/x", errc::invalid_uri, "single slash"},
      {"ME M://x", errc::invalid_uri, "malformed scheme"},
      {"ftp://host/file", errc::unsupported_scheme, "unknown scheme"},
      {"s3://bucket/key", errc::unsupported_scheme, "unknown scheme"},
  };
}

TEST(uri, good_uris_parse) {
  for (auto& x : good_uris()) {
    SCOPED_TRACE(x.text);
    auto parsed = uri::parse(x.text);
    ASSERT_TRUE(parsed) << describe(parsed.error());
    EXPECT_EQ(parsed->scheme(), x.expected_scheme);
    EXPECT_EQ(parsed->key(), x.expected_key);
    EXPECT_EQ(parsed->str(), x.text);
    EXPECT_EQ(to_string(*parsed), x.text);
    EXPECT_FALSE(parsed->empty());
  }
}

TEST(uri, bad_uris_are_rejected_naming_the_uri) {
  for (auto& x : bad_uris()) {
    SCOPED_TRACE(x.why + ": " + x.text.substr(0, 60));
    auto parsed = uri::parse(x.text);
    ASSERT_FALSE(parsed) << "parsed as " << parsed->str();
    EXPECT_EQ(code_of(parsed.error()), x.expected_code)
        << describe(parsed.error());
    auto msg = message_of(parsed.error());
    EXPECT_NE(msg.find(x.text.substr(0, 200)), std::string::npos) << msg;
    // Hostile input is shown truncated, never echoed at full length.
    EXPECT_LT(msg.size(), 400u) << msg;
  }
}

TEST(uri, ten_kb_uri_message_shows_a_prefix_only) {
  auto parsed = uri::parse(ten_kb);
  ASSERT_FALSE(parsed);
  auto msg = message_of(parsed.error());
  EXPECT_NE(msg.find(ten_kb.substr(0, 200)), std::string::npos);
  EXPECT_EQ(msg.find(ten_kb.substr(0, 201)), std::string::npos);
}

TEST(uri, longest_accepted_uri_is_max_uri_size) {
  auto path = "/" + std::string(max_uri_size - 6, 'p');
  auto at_limit = "fs://" + path;
  ASSERT_EQ(at_limit.size(), max_uri_size);
  EXPECT_TRUE(uri::parse(at_limit));
  auto over = uri::parse(at_limit + "p");
  ASSERT_FALSE(over);
  EXPECT_EQ(code_of(over.error()), errc::invalid_uri);
}

TEST(uri, dot_dot_path_parses_but_the_file_backend_denies_it) {
  test::temp_dir dir;
  file_backend_options opts;
  opts.roots = {dir.path()};
  opts.sync = false;
  auto files = file_backend::make(opts);
  ASSERT_TRUE(files) << describe(files.error());
  for (auto text : {std::string{"fs:///root/../../x"},
                    "fs://" + dir.path().string() + "/../../etc/passwd"}) {
    SCOPED_TRACE(text);
    auto id = uri::parse(text);
    ASSERT_TRUE(id) << describe(id.error());
    auto got = (*files)->get(*id);
    ASSERT_FALSE(got);
    EXPECT_EQ(code_of(got.error()), errc::permission_denied);
    EXPECT_NE(message_of(got.error()).find(text), std::string::npos);
    auto put = (*files)->put(*id, make_value(blob::copy_of("x")));
    EXPECT_EQ(code_of(put), errc::permission_denied);
  }
}

TEST(uri, oss_parses_but_the_store_answers_unsupported_scheme) {
  auto id = uri::parse("oss://bucket/key");
  ASSERT_TRUE(id) << describe(id.error());
  object_store store;
  auto put = store.put(make_value(blob::copy_of("x")), *id);
  ASSERT_FALSE(put);
  EXPECT_EQ(code_of(put.error()), errc::unsupported_scheme);
  EXPECT_NE(message_of(put.error()).find("oss://bucket/key"),
            std::string::npos);
  auto got = store.get(*id);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::unsupported_scheme);
  EXPECT_EQ(code_of(store.erase(*id)), errc::unsupported_scheme);
  auto found = store.exists(*id);
  ASSERT_FALSE(found);
  EXPECT_EQ(code_of(found.error()), errc::unsupported_scheme);
}

TEST(uri, equality_ordering_and_hash_follow_the_text) {
  auto a = *uri::parse("mem://a");
  auto a2 = *uri::parse("mem://a");
  auto b = *uri::parse("mem://b");
  EXPECT_EQ(a, a2);
  EXPECT_NE(a, b);
  EXPECT_LT(a, b);
  EXPECT_EQ(std::hash<uri>{}(a), std::hash<uri>{}(a2));
  std::unordered_set<uri> ids{a, a2, b};
  EXPECT_EQ(ids.size(), 2u);
  EXPECT_TRUE(uri{}.empty());
}

TEST(uri, scheme_names) {
  EXPECT_EQ(to_string(scheme::mem), "mem");
  EXPECT_EQ(to_string(scheme::fs), "fs");
  EXPECT_EQ(to_string(scheme::oss), "oss");
}

TEST(uri, make_mem_matches_parse) {
  auto made = uri::make_mem("node-7");
  auto parsed = uri::parse("mem://node-7");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(made, *parsed);
  EXPECT_EQ(made.key(), "node-7");
  EXPECT_EQ(made.scheme(), scheme::mem);
}

TEST(mem_id_generator, ids_are_unique_across_threads) {
  constexpr int threads = 4;
  constexpr int per_thread = 5000;
  mem_id_generator gen;
  std::vector<std::vector<uri>> made(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i)
        made[t].push_back(gen.next());
    });
  for (auto& w : workers)
    w.join();
  std::set<uri> all;
  for (auto& ids : made)
    for (auto& id : ids) {
      EXPECT_EQ(id.scheme(), scheme::mem);
      EXPECT_TRUE(id.key().starts_with(gen.prefix())) << id.str();
      all.insert(id);
    }
  EXPECT_EQ(all.size(), size_t{threads * per_thread});
  // Generated ids are valid URIs.
  auto reparsed = uri::parse(made[0].back().str());
  ASSERT_TRUE(reparsed) << describe(reparsed.error());
  EXPECT_EQ(*reparsed, made[0].back());
}

TEST(mem_id_generator, generators_draw_different_prefixes) {
  mem_id_generator a;
  mem_id_generator b;
  EXPECT_FALSE(a.prefix().empty());
  EXPECT_NE(a.prefix(), b.prefix());
  EXPECT_NE(a.next(), b.next());
  auto id = a.next();
  EXPECT_TRUE(uri::parse(id.str())) << id.str();
}

TEST(mem_id_generator, fixed_prefix_counts_up) {
  mem_id_generator gen{"node1"};
  EXPECT_EQ(gen.prefix(), "node1");
  EXPECT_EQ(gen.next().str(), "mem://node1-0");
  EXPECT_EQ(gen.next().str(), "mem://node1-1");
}

} // namespace

} // namespace
} // namespace uri_test_file
