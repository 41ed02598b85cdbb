// Transfers from and to fs:// objects on a loopback local_cluster: an
// fs:// object its principal may read moves like a mem:// one, and a
// transfer may write an fs:// URI on the target, atomically, confined to
// the target's roots and owned by the receiving session's principal.

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <set>

#include <caf/scoped_actor.hpp>

#include "actors/cluster_fixture.hpp"
#include "actors/raw_data_connection.hpp"
#include "store/codec.hpp"
#include "store/file_backend.hpp"

namespace fs_transfer_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;
namespace fs = std::filesystem;

const std::string alice_secret(40, 'a');

value_ptr iota_tensor(int64_t n) {
  auto [t, raw] = tensor::allocate(dtype::int64, {n});
  auto* p = reinterpret_cast<int64_t*>(raw);
  for (int64_t i = 0; i < n; ++i)
    p[i] = i * 7 + 1;
  return make_value(std::move(t));
}

/// Every entry below `dir` (names relative to it), temp files included.
std::set<std::string> entries_below(const fs::path& dir) {
  std::set<std::string> result;
  for (auto& e : fs::recursive_directory_iterator{dir})
    result.insert(fs::relative(e.path(), dir).string());
  return result;
}

class fs_transfer : public cluster_fixture {
protected:
  void SetUp() override { start_cluster(); }

  void TearDown() override {
    cluster_fixture::TearDown();
    if (!shared_.empty())
      fs::remove_all(shared_);
  }

  void start_cluster(bool local_shortcut = false) {
    char templ[] = "/tmp/objstore-fsxfer-shared-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    shared_ = templ;
    local_cluster_options opts;
    opts.workers = 2;
    opts.policy = fetch_policy::allow;
    // Ordinary tenants: the operator principal may not read fs:// objects.
    opts.operator_drivers = false;
    opts.principals = {{"alice", alice_secret}};
    opts.shared_roots = {shared_};
    opts.data.local_shortcut = local_shortcut;
    opts.data.chunk_size = 64u << 10;
    opts.data.window = 256u << 10;
    opts.data.io_timeout = 10s;
    start(opts);
  }

  driver& tenant(std::string principal = {}, std::string secret = {}) {
    driver_actor_options opts;
    opts.timeout = 10s;
    opts.principal = std::move(principal);
    opts.principal_secret = std::move(secret);
    return connect(opts);
  }

  fs::path root(uint32_t rank) { return nodes().fs_root(rank); }

  std::string fs_uri(uint32_t rank, const std::string& name) {
    return "fs://" + (root(rank) / name).string();
  }

  /// A handle on an fs:// object (not reference counted).
  host_var fs_handle(uint32_t rank, const std::string& uri) {
    host_var h{nodes().size()};
    h.set(rank, std::make_shared<const remote_ref>(rank, uri, nullptr));
    return h;
  }

  uint64_t transfers_in(uint32_t rank) {
    return nodes().node(rank).data->counters().transfers_in.load();
  }

  /// Asks rank `rank` (through `d`'s driver actor) for a token of a
  /// transfer written to `target` there.
  caf::expected<std::string> fs_token(driver& d, uint32_t rank,
                                      const std::string& target) {
    caf::scoped_actor self{nodes().client_system()};
    caf::expected<std::string> result{std::string{}};
    self->request(d.handle(), caf::timespan{10s}, expect_atom::value, rank,
                  target)
        .receive([&](std::string& token) { result = std::move(token); },
                 [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  /// Pushes `x`'s value on `from` under `token` (through `d`'s driver).
  caf::expected<std::string> push(driver& d, const host_var& x, uint32_t from,
                                  uint32_t to, const std::string& token) {
    caf::scoped_actor self{nodes().client_system()};
    caf::expected<std::string> result{std::string{}};
    self->request(d.handle(), caf::timespan{10s}, push_atom::value, from,
                  *x.uri(from), to, token)
        .receive([&](std::string& uri) { result = std::move(uri); },
                 [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  fs::path shared_;
};

// -- fs:// sources ------------------------------------------------------------

TEST_F(fs_transfer, an_fs_source_becomes_a_mem_object_on_the_target) {
  auto& d = tenant();
  auto value = iota_tensor(100'000);
  auto src = d.put(0, value, fs_uri(0, "src.obj"));
  ASSERT_TRUE(src) << describe(src.error());
  auto moved = d.transfer(*src, 0, 1);
  ASSERT_TRUE(moved) << describe(moved.error());
  ASSERT_TRUE(moved->has(1));
  EXPECT_EQ(moved->uri(1)->rfind("mem://", 0), 0u) << *moved->uri(1);
  auto v = d.fetch(1, *moved);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(**v, *value);
  EXPECT_EQ(transfers_in(1), 1u) << "over the data plane";
  EXPECT_EQ(mem_objects(1), 1u);
  // The source stays where it was, unpinned and untouched.
  EXPECT_TRUE(fs::exists(root(0) / "src.obj"));
  auto st = d.worker_stats_of(0);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->pinned_objects, 0u);
  // The replica is the session's like any transfer's: dropped, it goes.
  moved->reset();
  ASSERT_TRUE(d.flush());
  EXPECT_TRUE(poll_until([&] { return mem_objects(1) == 0; }));
}

TEST_F(fs_transfer, a_shared_dataset_is_pushed_by_any_session) {
  {
    // Placed by the operator, outside objstore.
    object_store_options so;
    so.fs_roots = {shared_ / "staging"};
    auto store = object_store::make(so);
    ASSERT_TRUE(store) << describe(store.error());
    auto staged = "fs://" + (shared_ / "staging" / "data.obj").string();
    ASSERT_TRUE((*store)->put(small_tensor({10, 20, 30}), *uri::parse(staged)));
    fs::rename(shared_ / "staging" / "data.obj", shared_ / "data.obj");
  }
  auto& d = tenant();
  auto data = fs_handle(0, "fs://" + (shared_ / "data.obj").string());
  auto moved = d.transfer(data, 0, 1);
  ASSERT_TRUE(moved) << describe(moved.error());
  auto v = d.fetch(1, *moved);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{10, 20, 30}));
}

TEST_F(fs_transfer, a_second_session_cannot_push_a_private_fs_object) {
  auto& owner = tenant();
  auto& other = tenant();
  auto obj = fs_uri(0, "private.obj");
  ASSERT_TRUE(owner.put(0, small_tensor({1, 2, 3}), obj));
  auto h = fs_handle(0, obj);
  auto stolen = other.transfer(h, 0, 1);
  auto msg = expect_error(stolen, errc::permission_denied);
  EXPECT_NE(msg.find(obj), std::string::npos) << msg;
  EXPECT_NE(msg.find("owned by another principal"), std::string::npos) << msg;
  auto to_file = other.transfer(h, 0, 1, fs_uri(1, "stolen.obj"));
  expect_error(to_file, errc::permission_denied);
  EXPECT_FALSE(fs::exists(root(1) / "stolen.obj"));
  EXPECT_EQ(transfers_in(1), 0u) << "nothing was sent";
  EXPECT_EQ(mem_objects(1), 0u);
  // A missing fs:// source is not_found, naming it.
  auto missing = owner.transfer(fs_handle(0, fs_uri(0, "none.obj")), 0, 1);
  EXPECT_NE(expect_error(missing, errc::not_found).find("none.obj"),
            std::string::npos);
  // The owner still pushes it.
  auto moved = owner.transfer(h, 0, 1);
  ASSERT_TRUE(moved) << describe(moved.error());
}

// -- fs:// targets ------------------------------------------------------------

TEST_F(fs_transfer, a_mem_source_is_written_to_an_fs_target) {
  auto& d = tenant();
  auto value = iota_tensor(200'000); // several chunks and credit windows
  auto x = d.put(0, value);
  ASSERT_TRUE(x) << describe(x.error());
  auto target = fs_uri(1, "results/part-0.obj");
  auto moved = d.transfer(*x, 0, 1, target);
  ASSERT_TRUE(moved) << describe(moved.error());
  ASSERT_TRUE(moved->has(1));
  EXPECT_EQ(*moved->uri(1), target);
  EXPECT_EQ(transfers_in(1), 1u);
  EXPECT_EQ(mem_objects(1), 0u) << "an fs:// target is no mem:// object";
  EXPECT_EQ(entries_below(root(1)),
            (std::set<std::string>{"results", "results/part-0.obj"}))
      << "the file and its directory, no temp file";
  auto v = d.fetch(1, *moved);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(**v, *value);
  // Persistent: dropping every handle (and the session) keeps the file.
  moved->reset();
  ASSERT_TRUE(d.flush());
  auto in_store = nodes().node(1).objects->get(*uri::parse(target));
  ASSERT_TRUE(in_store) << describe(in_store.error());
  EXPECT_EQ(**in_store, *value);
}

TEST_F(fs_transfer, an_fs_source_is_written_to_an_fs_target) {
  auto& d = tenant();
  auto value = iota_tensor(50'000);
  auto src = d.put(0, value, fs_uri(0, "a.obj"));
  ASSERT_TRUE(src) << describe(src.error());
  auto target = fs_uri(1, "copy/a.obj");
  auto moved = d.transfer(*src, 0, 1, target);
  ASSERT_TRUE(moved) << describe(moved.error());
  EXPECT_EQ(*moved->uri(1), target);
  auto v = d.fetch(1, *moved);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(**v, *value);
  // The session overwrites its own object (again atomically).
  auto other = d.put(0, small_tensor({5, 6}), fs_uri(0, "b.obj"));
  ASSERT_TRUE(other);
  ASSERT_TRUE(d.transfer(*other, 0, 1, target));
  auto w = d.fetch(1, fs_handle(1, target));
  ASSERT_TRUE(w) << describe(w.error());
  EXPECT_EQ(int64_values(*w), (std::vector<int64_t>{5, 6}));
  EXPECT_EQ(entries_below(root(1)),
            (std::set<std::string>{"copy", "copy/a.obj"}));
  EXPECT_EQ(mem_objects(0) + mem_objects(1), 0u);
}

TEST_F(fs_transfer, the_written_file_is_owned_by_the_sessions_principal) {
  auto target = fs_uri(1, "alice/model.obj");
  {
    auto& alice = tenant("alice", alice_secret);
    auto x = alice.put(0, small_tensor({4, 2}));
    ASSERT_TRUE(x);
    ASSERT_TRUE(alice.transfer(*x, 0, 1, target));
  }
  auto owner = nodes().node(1).objects->files()->owner(*uri::parse(target));
  ASSERT_TRUE(owner) << describe(owner.error());
  EXPECT_EQ(*owner, "alice");
  // Another session of alice reads it; a stranger may neither read,
  // overwrite (by transfer or put) nor erase it.
  auto& later = tenant("alice", alice_secret);
  auto v = later.fetch(1, fs_handle(1, target));
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(int64_values(*v), (std::vector<int64_t>{4, 2}));
  auto& stranger = tenant();
  auto read = stranger.fetch(1, fs_handle(1, target));
  expect_error(read, errc::permission_denied);
  auto y = stranger.put(0, small_tensor({6, 6}));
  ASSERT_TRUE(y);
  auto overwrite = stranger.transfer(*y, 0, 1, target);
  auto msg = expect_error(overwrite, errc::permission_denied);
  EXPECT_NE(msg.find(target), std::string::npos) << msg;
  EXPECT_EQ(code_of(stranger.erase(1, fs_handle(1, target))),
            errc::permission_denied);
  auto unchanged = later.fetch(1, fs_handle(1, target));
  ASSERT_TRUE(unchanged);
  EXPECT_EQ(int64_values(*unchanged), (std::vector<int64_t>{4, 2}));
}

TEST_F(fs_transfer, bad_targets_are_typed_errors_and_write_nothing) {
  auto& d = tenant();
  auto x = d.put(0, small_tensor({1, 2, 3}));
  ASSERT_TRUE(x);
  auto& victim = tenant();
  auto taken = fs_uri(1, "taken.obj");
  ASSERT_TRUE(victim.put(1, small_tensor({9}), taken));
  auto shared = "fs://" + (shared_ / "new.obj").string();
  struct bad_target {
    std::string uri;
    errc code;
    std::string says; // besides the URI
  };
  std::vector<bad_target> cases{
      {"fs:///tmp/objstore-outside-every-root/x.obj", errc::permission_denied,
       "outside the configured fs roots"},
      {"fs://" + root(1).string() + "/../escaped.obj", errc::permission_denied,
       "'..'"},
      {taken, errc::permission_denied, "owned by another principal"},
      {shared, errc::permission_denied, "read-only shared root"},
      {"fs://relative/x.obj", errc::invalid_uri, "absolute"},
      {"no scheme at all", errc::invalid_uri, ""},
      {"s3://bucket/key", errc::unsupported_scheme, ""},
      {"oss://bucket/key", errc::unsupported_scheme, ""},
      {"mem://someid-1", errc::invalid_uri, "targets only"},
      {fs_uri(1, ".objstore-tmp-x"), errc::permission_denied, "temp"},
  };
  auto before = entries_below(root(1));
  for (auto& c : cases) {
    SCOPED_TRACE(c.uri);
    auto moved = d.transfer(*x, 0, 1, c.uri);
    auto msg = expect_error(moved, c.code);
    EXPECT_NE(msg.find(c.uri), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.says), std::string::npos) << msg;
  }
  EXPECT_EQ(entries_below(root(1)), before) << "nothing written";
  EXPECT_FALSE(fs::exists(root(1).parent_path() / "escaped.obj"));
  EXPECT_FALSE(fs::exists("/tmp/objstore-outside-every-root"));
  EXPECT_FALSE(fs::exists(shared_ / "new.obj"));
  EXPECT_EQ(transfers_in(1), 0u) << "refused before any byte moved";
  auto kept = victim.fetch(1, fs_handle(1, taken));
  ASSERT_TRUE(kept) << describe(kept.error());
  EXPECT_EQ(int64_values(*kept), (std::vector<int64_t>{9}));
  // A transfer to an fs:// target moves between ranks.
  expect_error(d.transfer(*x, 0, 0, fs_uri(0, "self.obj")),
               errc::invalid_argument);
}

TEST_F(fs_transfer, the_write_is_authorized_again_when_the_value_arrives) {
  auto& d = tenant();
  auto& victim = tenant();
  auto x = d.put(0, small_tensor({1, 2, 3}));
  ASSERT_TRUE(x);
  auto target = fs_uri(1, "race.obj");
  auto token = fs_token(d, 1, target); // new file: allowed now
  ASSERT_TRUE(token) << describe(token.error());
  ASSERT_TRUE(victim.put(1, small_tensor({7}), target)); // taken meanwhile
  auto pushed = push(d, *x, 0, 1, *token);
  auto msg = expect_error(pushed, errc::permission_denied);
  EXPECT_NE(msg.find(target), std::string::npos) << msg;
  auto kept = victim.fetch(1, fs_handle(1, target));
  ASSERT_TRUE(kept) << describe(kept.error());
  EXPECT_EQ(int64_values(*kept), (std::vector<int64_t>{7}));
  EXPECT_EQ(entries_below(root(1)), (std::set<std::string>{"race.obj"}));
}

TEST_F(fs_transfer, a_corrupt_or_broken_stream_leaves_no_file) {
  auto& d = tenant();
  auto value = iota_tensor(20'000);
  auto encoding = encode(*value);
  auto n = encoding.size();
  auto flipped = encoding;
  flipped[n / 2] ^= std::byte{0x40};
  auto bad_checksum = encoding;
  bad_checksum[n - 1] ^= std::byte{0x01}; // the trailer's checksum
  struct attack {
    const char* name;
    errc expected; // none: the sender is gone, nobody to answer
    std::function<void(raw_connection&, const std::string& token)> send;
  };
  std::vector<attack> attacks{
      {"flipped payload bit", errc::corrupt_data,
       [&](raw_connection& c, const std::string& token) {
         c.hello(token, n);
         c.chunks(flipped, 4096);
       }},
      {"wrong checksum", errc::corrupt_data,
       [&](raw_connection& c, const std::string& token) {
         c.hello(token, n);
         c.chunks(bad_checksum, 4096);
       }},
      {"sender dies after half the bytes", errc::none,
       [&](raw_connection& c, const std::string& token) {
         c.hello(token, n);
         std::vector<std::byte> half{encoding.begin(),
                                     encoding.begin() + n / 2};
         c.chunks(half, 4096);
         c.close_write();
       }},
  };
  auto target = fs_uri(1, "out/victim.obj");
  for (auto& a : attacks) {
    SCOPED_TRACE(a.name);
    auto token = fs_token(d, 1, target);
    ASSERT_TRUE(token) << describe(token.error());
    raw_connection c{nodes().node(1).data->port()};
    ASSERT_TRUE(c.connected());
    a.send(c, *token);
    expect_refused(c.read_reply(), a.expected);
    ASSERT_TRUE(
        poll_until([&] { return nodes().node(1).data->load().incoming == 0; }));
    EXPECT_FALSE(fs::exists(root(1) / "out" / "victim.obj"));
    for (auto& name : entries_below(root(1)))
      EXPECT_EQ(name.find(".objstore-tmp-"), std::string::npos) << name;
  }
  EXPECT_EQ(transfers_in(1), 0u);
  // A sound stream under the same kind of token writes the file.
  auto x = d.put(0, value);
  ASSERT_TRUE(x);
  auto moved = d.transfer(*x, 0, 1, target);
  ASSERT_TRUE(moved) << describe(moved.error());
  auto v = d.fetch(1, *moved);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(**v, *value);
}

TEST_F(fs_transfer, a_source_killed_mid_transfer_leaves_no_file) {
  auto& d = tenant();
  auto x = d.put(0, iota_tensor(int64_t{16} << 20)); // 128 MiB
  ASSERT_TRUE(x) << describe(x.error());
  auto target = fs_uri(1, "big.obj");
  auto pending = std::async(std::launch::async,
                            [&] { return d.transfer(*x, 0, 1, target); });
  // Chunks are on their way (64 KiB each, 256 KiB window: ~2000 windows).
  ASSERT_TRUE(poll_until(
      [&] {
        return nodes().node(1).data->load().incoming > 0
               && nodes().node(0).data->counters().max_in_flight.load() > 0;
      },
      30s));
  nodes().kill(0);
  auto moved = pending.get();
  ASSERT_FALSE(moved) << "the transfer finished before the kill";
  EXPECT_EQ(code_of(moved.error()), errc::object_lost)
      << describe(moved.error());
  ASSERT_TRUE(poll_until(
      [&] { return nodes().node(1).data->counters().failed_in.load() > 0; }));
  EXPECT_EQ(transfers_in(1), 0u);
  EXPECT_TRUE(entries_below(root(1)).empty()) << "no file, no temp file";
}

class fs_transfer_in_process : public fs_transfer {
protected:
  void SetUp() override { start_cluster(true); }
};

TEST_F(fs_transfer_in_process, a_handoff_by_pointer_writes_the_target_too) {
  auto& d = tenant();
  auto value = iota_tensor(1000);
  auto x = d.put(0, value);
  ASSERT_TRUE(x);
  auto target = fs_uri(1, "handed.obj");
  auto moved = d.transfer(*x, 0, 1, target);
  ASSERT_TRUE(moved) << describe(moved.error());
  EXPECT_EQ(*moved->uri(1), target);
  EXPECT_EQ(nodes().node(1).data->counters().local_handoffs.load(), 1u);
  auto v = d.fetch(1, *moved);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(**v, *value);
  auto back = d.transfer(*moved, 1, 0);
  ASSERT_TRUE(back) << describe(back.error());
  auto w = d.fetch(0, *back);
  ASSERT_TRUE(w) << describe(w.error());
  EXPECT_EQ(**w, *value);
}

} // namespace
} // namespace fs_transfer_test_file
