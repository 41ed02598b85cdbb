// The oss:// backend beyond the conformance suite, against a real
// S3-compatible server (tests/s3/server.js): multipart uploads, faults of
// the server, credentials, confinement to the configured buckets, owners.

#include "store/oss_backend.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "s3/s3_test_server.hpp"
#include "store/codec.hpp"
#include "store/error.hpp"
#include "store/object_store.hpp"
#include "store/test_support.hpp"

namespace oss_backend_test_file {
namespace {

using namespace objstore;
using namespace std::chrono_literals;
using test::s3_test_server;

uri oss(const std::string& text) {
  auto result = uri::parse(text);
  EXPECT_TRUE(result) << describe(result.error());
  return *result;
}

/// A value of about `mib` MiB.
value_ptr mib_value(int64_t mib, unsigned seed = 1) {
  return make_value(test::sample_tensor(dtype::uint8, {mib << 20}, seed));
}

std::unique_ptr<oss_backend> open(const oss_backend_options& opts) {
  auto made = oss_backend::make(opts);
  EXPECT_TRUE(made) << describe(made.error());
  return made ? std::move(*made) : nullptr;
}

/// A loopback port nothing listens on.
uint16_t closed_port() {
  auto fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(oss_backend, objects_larger_than_three_parts_go_up_in_parts) {
  s3_test_server server{{}};
  auto opts = server.backend_options();
  opts.parts_in_flight = 3;
  auto b = open(opts);
  ASSERT_TRUE(b);
  auto x = mib_value(22); // 5 parts of 5 MiB
  auto id = oss("oss://objstore-test/big/object.bin");
  ASSERT_FALSE(b->put(id, x));
  EXPECT_EQ(b->activity().multipart_uploads, 1u);
  EXPECT_EQ(b->activity().multipart_aborts, 0u);
  auto got = b->get(id);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(**got, *x);
  auto listed = b->list();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].size_bytes, encode(*x).size());
  // A small object is one PUT.
  ASSERT_FALSE(b->put(oss("oss://objstore-test/small"), mib_value(1)));
  EXPECT_EQ(b->activity().multipart_uploads, 1u);
}

TEST(oss_backend,
     a_server_killed_mid_upload_leaves_the_old_object_and_a_clear_error) {
  s3_test_server::options so;
  so.die_after_parts = 2;
  s3_test_server server{so};
  auto opts = server.backend_options();
  opts.parts_in_flight = 1;
  opts.timeout = 3s;
  opts.max_attempts = 2;
  auto b = open(opts);
  ASSERT_TRUE(b);
  auto id = oss("oss://objstore-test/victim");
  auto old = make_value(test::sample_table(8));
  ASSERT_FALSE(b->put(id, old));
  auto start = std::chrono::steady_clock::now();
  auto err = b->put(id, mib_value(22));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(err);
  EXPECT_TRUE(code_of(err) == errc::io_error || code_of(err) == errc::timeout)
      << describe(err);
  EXPECT_NE(message_of(err).find("oss://objstore-test/victim"),
            std::string::npos);
  EXPECT_LT(took, 10s);
  EXPECT_FALSE(server.running());
  // The server comes back: the old object is whole, nothing partial shows.
  server.restart();
  auto again = open(server.backend_options());
  ASSERT_TRUE(again);
  auto got = again->get(id);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(**got, *old);
  auto listed = again->list();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].size_bytes, encode(*old).size());
}

TEST(oss_backend, wrong_credentials_are_permission_denied_naming_the_bucket) {
  s3_test_server server{{}};
  for (auto [key, secret] :
       {std::pair{"objstore-test", "not-the-secret-9f8e7d"},
        std::pair{"unknown-key", "objstore-test-secret"}}) {
    auto opts = server.backend_options();
    opts.credentials = {key, secret, {}};
    auto made = oss_backend::make(opts);
    ASSERT_FALSE(made);
    EXPECT_EQ(code_of(made.error()), errc::permission_denied)
        << describe(made.error());
    auto text = message_of(made.error());
    EXPECT_NE(text.find("objstore-test"), std::string::npos) << text;
    EXPECT_EQ(text.find(secret), std::string::npos) << "secret in: " << text;
  }
}

TEST(oss_backend, a_missing_bucket_is_not_found) {
  s3_test_server server{{}};
  auto opts = server.backend_options();
  opts.buckets = {"no-such-bucket"};
  auto made = oss_backend::make(opts);
  ASSERT_FALSE(made);
  EXPECT_EQ(code_of(made.error()), errc::not_found);
  EXPECT_NE(message_of(made.error()).find("no-such-bucket"), std::string::npos)
      << describe(made.error());
}

TEST(oss_backend, throttling_and_server_errors_are_retried) {
  s3_test_server::options so;
  so.fail_first = 3;
  s3_test_server server{so};
  auto b = open(server.backend_options());
  ASSERT_TRUE(b);
  EXPECT_EQ(b->activity().retries, 3u);
  auto id = oss("oss://objstore-test/k");
  ASSERT_FALSE(b->put(id, mib_value(1)));
  auto got = b->get(id);
  ASSERT_TRUE(got) << describe(got.error());
}

TEST(oss_backend, a_completion_answered_200_with_an_error_is_retried) {
  s3_test_server::options so;
  so.complete_errors = 1;
  s3_test_server server{so};
  auto b = open(server.backend_options());
  ASSERT_TRUE(b);
  auto id = oss("oss://objstore-test/k");
  auto x = mib_value(12);
  ASSERT_FALSE(b->put(id, x));
  EXPECT_EQ(b->activity().retries, 1u);
  auto got = b->get(id);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(**got, *x);
}

TEST(oss_backend, a_completion_that_keeps_failing_aborts_and_stores_nothing) {
  s3_test_server::options so;
  so.complete_errors = 100;
  s3_test_server server{so};
  auto opts = server.backend_options();
  opts.max_attempts = 3;
  auto b = open(opts);
  ASSERT_TRUE(b);
  auto id = oss("oss://objstore-test/k");
  auto err = b->put(id, mib_value(12));
  ASSERT_TRUE(err);
  EXPECT_EQ(code_of(err), errc::io_error);
  EXPECT_NE(message_of(err).find("InternalError"), std::string::npos)
      << describe(err);
  EXPECT_EQ(b->activity().multipart_aborts, 1u);
  EXPECT_EQ(b->exists(id), caf::expected<bool>{false});
  EXPECT_EQ(b->stats().objects, 0u);
}

TEST(oss_backend, a_completion_whose_reply_is_lost_is_recognised_as_stored) {
  s3_test_server::options so;
  so.drop_complete_replies = 1;
  s3_test_server server{so};
  auto b = open(server.backend_options());
  ASSERT_TRUE(b);
  auto id = oss("oss://objstore-test/k");
  ASSERT_FALSE(b->put(id, make_value(test::sample_table(4))));
  auto x = mib_value(12);
  // Sent again, the completion fails (the upload is gone); the object
  // that ends with this value's checksum is there: a success.
  EXPECT_FALSE(b->put(id, x));
  EXPECT_GE(b->activity().retries, 1u);
  EXPECT_EQ(b->activity().multipart_uploads, 1u);
  auto got = b->get(id);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(**got, *x);
  EXPECT_EQ(b->stats().objects, 1u);
  EXPECT_EQ(b->stats().bytes, encode(*x).size());
}

TEST(oss_backend, an_unreachable_server_fails_within_the_timeout) {
  oss_backend_options opts;
  opts.endpoint = "http://127.0.0.1:" + std::to_string(closed_port());
  opts.buckets = {"objstore-test"};
  opts.credentials = {"k", "s", {}};
  opts.timeout = 2s;
  auto start = std::chrono::steady_clock::now();
  auto made = oss_backend::make(opts);
  ASSERT_FALSE(made);
  EXPECT_TRUE(code_of(made.error()) == errc::io_error
              || code_of(made.error()) == errc::timeout)
      << describe(made.error());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 6s);
  // A server that dies after the start: each call fails in time too.
  s3_test_server server{{}};
  auto sopts = server.backend_options();
  sopts.timeout = 2s;
  auto b = open(sopts);
  ASSERT_TRUE(b);
  server.kill();
  start = std::chrono::steady_clock::now();
  auto got = b->get(oss("oss://objstore-test/x"));
  ASSERT_FALSE(got);
  EXPECT_TRUE(code_of(got.error()) == errc::io_error
              || code_of(got.error()) == errc::timeout)
      << describe(got.error());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 6s);
}

TEST(oss_backend, uris_outside_the_buckets_and_in_shared_ones) {
  s3_test_server::options so;
  so.buckets = {"objstore-test", "shared-data", "elsewhere"};
  s3_test_server server{so};
  // Another node writes the dataset into the shared bucket.
  auto opts = server.backend_options();
  opts.buckets = {"shared-data"};
  auto writer = open(opts);
  ASSERT_TRUE(writer);
  auto dataset = oss("oss://shared-data/sets/a.bin");
  ASSERT_FALSE(writer->put(dataset, make_value(test::sample_table(3))));
  opts.buckets = {"objstore-test/jobs/"};
  opts.shared_buckets = {"shared-data/sets"};
  auto b = open(opts);
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->read_only(dataset));
  auto got = b->get(dataset);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(code_of(b->put(dataset, mib_value(1))), errc::permission_denied);
  EXPECT_EQ(code_of(b->erase(dataset)), errc::permission_denied);
  EXPECT_FALSE(b->authorize(dataset, "anyone", fs_access::read));
  EXPECT_EQ(code_of(b->authorize(dataset, "operator", fs_access::erase)),
            errc::permission_denied);
  for (auto text : {"oss://elsewhere/x", "oss://objstore-test/other/x",
                    "oss://shared-data/other"}) {
    SCOPED_TRACE(text);
    auto err = b->put(oss(text), mib_value(1));
    EXPECT_EQ(code_of(err), errc::permission_denied);
    EXPECT_NE(message_of(err).find(text), std::string::npos);
    auto read = b->get(oss(text));
    ASSERT_FALSE(read);
    EXPECT_EQ(code_of(read.error()), errc::permission_denied);
  }
  ASSERT_FALSE(b->put(oss("oss://objstore-test/jobs/r"), mib_value(1)));
  // Only the places this node serves are listed (and counted).
  auto listed = b->list();
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 2u);
  EXPECT_EQ(b->stats().objects, 2u);
}

TEST(oss_backend, owners_are_recorded_with_the_object) {
  s3_test_server server{{}};
  auto b = open(server.backend_options());
  ASSERT_TRUE(b);
  auto id = oss("oss://objstore-test/owned");
  ASSERT_FALSE(b->put_owned(id, mib_value(1), "alice"));
  EXPECT_EQ(b->owner(id), caf::expected<std::string>{"alice"});
  EXPECT_FALSE(b->authorize(id, "alice", fs_access::read));
  EXPECT_FALSE(b->authorize(id, "alice", fs_access::erase));
  EXPECT_EQ(code_of(b->authorize(id, "bob", fs_access::read)),
            errc::permission_denied);
  EXPECT_EQ(code_of(b->authorize(id, "bob", fs_access::write)),
            errc::permission_denied);
  EXPECT_EQ(code_of(b->authorize(id, "operator", fs_access::read)),
            errc::permission_denied);
  EXPECT_FALSE(b->authorize(id, "operator", fs_access::erase));
  // Without a recorded owner (another tool's object): the operator's.
  auto plain = oss("oss://objstore-test/plain");
  ASSERT_FALSE(b->put(plain, mib_value(1)));
  EXPECT_EQ(b->owner(plain), caf::expected<std::string>{"operator"});
  // A new object: its writer will own it; reading it is not_found.
  auto fresh = oss("oss://objstore-test/fresh");
  EXPECT_FALSE(b->authorize(fresh, "bob", fs_access::write));
  EXPECT_EQ(code_of(b->authorize(fresh, "bob", fs_access::read)),
            errc::not_found);
  // Through the object store, as the worker uses it.
  object_store_options sopts;
  object_store store{sopts};
  store.register_backend(std::shared_ptr<backend>{std::move(b)});
  EXPECT_EQ(code_of(store.authorize(id, "bob", fs_access::read)),
            errc::permission_denied);
  auto put = store.put_owned(mib_value(1), fresh, "bob");
  ASSERT_TRUE(put) << describe(put.error());
  EXPECT_FALSE(store.authorize(fresh, "bob", fs_access::read));
  EXPECT_EQ(code_of(store.authorize(fresh, "alice", fs_access::read)),
            errc::permission_denied);
}

TEST(oss_backend, odd_keys_round_trip_and_list_under_their_uri) {
  s3_test_server server{{}};
  auto b = open(server.backend_options());
  ASSERT_TRUE(b);
  auto id = oss("oss://objstore-test/dir a/ü+(1)%20&=?#~x.bin");
  auto x = make_value(test::sample_table(5));
  ASSERT_FALSE(b->put(id, x));
  auto got = b->get(id);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(**got, *x);
  auto listed = b->list();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, id);
  EXPECT_FALSE(b->erase(id));
  EXPECT_EQ(code_of(b->erase(id)), errc::not_found);
}

TEST(oss_backend, a_damaged_object_is_corrupt_data) {
  s3_test_server server{{}};
  auto b = open(server.backend_options());
  ASSERT_TRUE(b);
  auto id = oss("oss://objstore-test/damaged");
  ASSERT_FALSE(b->put(id, mib_value(1)));
  // Flip one payload byte in the server's file.
  std::filesystem::path file;
  for (auto& entry :
       std::filesystem::recursive_directory_iterator{server.directory()})
    if (entry.path().filename().string().find("damaged") == 0
        && entry.path().string().find("object") != std::string::npos)
      file = entry.path();
  ASSERT_FALSE(file.empty());
  {
    std::fstream f{file, std::ios::in | std::ios::out | std::ios::binary};
    f.seekp(1000);
    f.put('\x5a');
  }
  auto got = b->get(id);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::corrupt_data) << describe(got.error());
  EXPECT_NE(message_of(got.error()).find("oss://objstore-test/damaged"),
            std::string::npos);
}

TEST(oss_backend, bad_options_are_named) {
  auto base = oss_backend_options{};
  base.endpoint = "http://127.0.0.1:1";
  base.buckets = {"objstore-test"};
  base.credentials = {"k", "s", {}};
  struct bad {
    std::string option;
    std::function<void(oss_backend_options&)> change;
  };
  std::vector<bad> cases{
      {"endpoint",
       [](auto& o) {
         o.endpoint = "ftp://x";
       }},
      {"endpoint",
       [](auto& o) {
         o.endpoint = "http://";
       }},
      {"endpoint",
       [](auto& o) {
         o.endpoint = "http://a/b";
       }},
      {"part-size",
       [](auto& o) {
         o.part_size = 1 << 20;
       }},
      {"parts-in-flight",
       [](auto& o) {
         o.parts_in_flight = 0;
       }},
      {"buckets",
       [](auto& o) {
         o.buckets = {};
       }},
      {"buckets",
       [](auto& o) {
         o.buckets = {"Bad_Bucket"};
       }},
      {"credentials",
       [](auto& o) {
         o.credentials = {};
       }},
  };
  for (auto& c : cases) {
    auto opts = base;
    c.change(opts);
    auto made = oss_backend::make(opts);
    ASSERT_FALSE(made) << c.option;
    EXPECT_EQ(code_of(made.error()), errc::invalid_argument);
    EXPECT_NE(message_of(made.error()).find("objstore.oss-" + c.option),
              std::string::npos)
        << describe(made.error());
  }
}

TEST(oss_credentials, from_a_file_with_profiles) {
  test::temp_dir dir;
  auto file = (dir / "credentials").string();
  {
    std::ofstream out{file};
    out << "# comment\n[default]\naws_access_key_id = AKDEFAULT\n"
           "aws_secret_access_key = default-secret-123\n\n"
           "[profile job]\naws_access_key_id=AKJOB\n"
           "aws_secret_access_key=job-secret-456\naws_session_token = tok\n";
  }
  std::filesystem::permissions(file, std::filesystem::perms::owner_read
                                         | std::filesystem::perms::owner_write);
  auto d = load_oss_credentials(file);
  ASSERT_TRUE(d) << describe(d.error());
  EXPECT_EQ(d->access_key_id, "AKDEFAULT");
  EXPECT_EQ(d->secret_access_key, "default-secret-123");
  auto j = load_oss_credentials(file, "job");
  ASSERT_TRUE(j) << describe(j.error());
  EXPECT_EQ(j->access_key_id, "AKJOB");
  EXPECT_EQ(j->session_token, "tok");
  auto missing = load_oss_credentials(file, "nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(code_of(missing.error()), errc::invalid_argument);
  EXPECT_NE(message_of(missing.error()).find("nope"), std::string::npos);
  // Readable by others: refused, without the secret in the message.
  std::filesystem::permissions(file, std::filesystem::perms::group_read,
                               std::filesystem::perm_options::add);
  auto open_file = load_oss_credentials(file);
  ASSERT_FALSE(open_file);
  EXPECT_NE(message_of(open_file.error()).find("readable by others"),
            std::string::npos);
  EXPECT_EQ(message_of(open_file.error()).find("secret-123"),
            std::string::npos);
  auto none = load_oss_credentials((dir / "absent").string());
  ASSERT_FALSE(none);
  EXPECT_EQ(code_of(none.error()), errc::invalid_argument);
}

TEST(oss_credentials, from_the_environment) {
  ::setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
  ::unsetenv("AWS_SESSION_TOKEN");
  auto c = load_oss_credentials("");
  ASSERT_TRUE(c) << describe(c.error());
  EXPECT_EQ(c->access_key_id, "AKENV");
  EXPECT_EQ(c->secret_access_key, "env-secret");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  auto none = load_oss_credentials("");
  ASSERT_FALSE(none);
  EXPECT_NE(message_of(none.error()).find("AWS_SECRET_ACCESS_KEY"),
            std::string::npos);
  ::unsetenv("AWS_ACCESS_KEY_ID");
}

} // namespace
} // namespace oss_backend_test_file
