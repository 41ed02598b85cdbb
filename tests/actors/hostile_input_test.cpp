// Hostile input on a live cluster (DESIGN.md §7, §9): malformed URIs, path
// escapes, oversize objects and graphs, forged URIs of other sessions,
// unknown ops and corrupt streams on the data plane. Each attack gets a
// typed error; afterwards the worker still serves and every object stored
// before the attack is intact (fetched value and `checksum` op unchanged).

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "actors/cluster_fixture.hpp"
#include "actors/worker/endpoint.hpp"
#include "store/codec.hpp"

namespace hostile_input_test_file {
namespace {

using namespace objstore;
using namespace objstore::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t object_limit = 1u << 20;
constexpr size_t graph_op_limit = 64;
constexpr size_t graph_byte_limit = 16u << 10;

value_ptr int64_tensor(int64_t n, int64_t start = 0) {
  std::vector<int64_t> xs(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    xs[static_cast<size_t>(i)] = start + i * 7;
  return make_value(tensor::from<int64_t>({n}, xs));
}

graph unary_graph(const std::string& opcode,
                  std::vector<attribute> attrs = {}) {
  graph_builder b;
  b.output(b.add(opcode, {b.input()}, std::move(attrs)));
  return b.build();
}

graph source_graph(const std::string& opcode, std::vector<attribute> attrs) {
  graph_builder b;
  b.output(b.add(opcode, {}, std::move(attrs)));
  return b.build();
}

class hostile_input : public cluster_fixture {
protected:
  struct victim {
    uint32_t rank;
    host_var handle;
    value_ptr value;
    int64_t checksum;
  };

  void SetUp() override {
    local_cluster_options opts;
    opts.workers = 2;
    opts.max_object_size = object_limit;
    opts.max_graph_ops = graph_op_limit;
    opts.max_graph_bytes = graph_byte_limit;
    start(opts);
    owner_ = &connect();
    attacker_ = &connect();
    for (uint32_t r = 0; r < 2; ++r) {
      keep(r, int64_tensor(1000, r));
      auto tbl = table::make({{"k", tensor::from<int64_t>({3}, {1, 2, 3})},
                              {"v", tensor::from<double>({3}, {.5, 1, 2})}});
      keep(r, make_value(std::move(*tbl)));
      keep(r, make_value(
                  blob::copy_of("private bytes of rank " + std::to_string(r))));
      keep(r, int64_tensor(10, 100), fs_uri(r, "victim.obj"));
    }
  }

  void TearDown() override {
    victims_.clear();
    cluster_fixture::TearDown();
  }

  std::string fs_uri(uint32_t rank, const std::string& rel) {
    return "fs://" + (nodes().fs_root(rank) / rel).string();
  }

  /// Stores `x` for the owner session and remembers its checksum.
  void keep(uint32_t rank, value_ptr x, std::string target = {}) {
    auto h
        = target.empty() ? owner_->put(rank, x) : owner_->put(rank, x, target);
    ASSERT_TRUE(h) << describe(h.error());
    victims_.push_back({rank, *h, x, checksum(rank, *h)});
  }

  int64_t checksum(uint32_t rank, const host_var& x) {
    auto out = owner_->run(unary_graph("checksum"), {x}, {rank});
    if (!out) {
      ADD_FAILURE() << describe(out.error());
      return 0;
    }
    auto v = owner_->fetch(rank, (*out)[0]);
    if (!v) {
      ADD_FAILURE() << describe(v.error());
      return 0;
    }
    return int64_values(*v).at(0);
  }

  /// Every object stored in SetUp is unchanged and every worker serves
  /// both sessions.
  void expect_intact() {
    for (auto& x : victims_) {
      SCOPED_TRACE(*x.handle.uri(x.rank));
      auto v = owner_->fetch(x.rank, x.handle);
      ASSERT_TRUE(v) << describe(v.error());
      EXPECT_EQ(**v, *x.value);
      EXPECT_EQ(checksum(x.rank, x.handle), x.checksum);
    }
    for (uint32_t r = 0; r < 2; ++r) {
      auto y = attacker_->put(r, int64_tensor(4));
      ASSERT_TRUE(y) << describe(y.error());
      auto z = attacker_->run(unary_graph("neg"), {*y}, {r});
      ASSERT_TRUE(z) << describe(z.error());
      auto ws = attacker_->worker_stats_of(r);
      ASSERT_TRUE(ws) << describe(ws.error());
      EXPECT_EQ(ws->tasks_running, 0u);
      EXPECT_EQ(ws->pinned_objects, 0u);
    }
  }

  /// A handle on `uri` at `rank` that the attacker never got from there.
  host_var forged(uint32_t rank, std::string uri) {
    host_var result{2};
    result.set(rank, attacker_->adopt(rank, std::move(uri)));
    return result;
  }

  driver* owner_ = nullptr;
  driver* attacker_ = nullptr;
  std::vector<victim> victims_;
};

TEST_F(hostile_input, malformed_uris_are_refused) {
  std::vector<std::string> texts{"",
                                 "mem://",
                                 "mem://a b",
                                 "mem:/x",
                                 "://x",
                                 "MEM://x",
                                 "mem://x\n",
                                 "mem://../etc",
                                 "fs://rel/x",
                                 "fs:///dir/",
                                 "fs:///a\x01"
                                 "b",
                                 "oss://bucket",
                                 "no-scheme",
                                 "mem://" + std::string(300, 'a'),
                                 "mem://" + std::string(5000, 'b'),
                                 std::string{"fs:///a\0b", 9}};
  for (auto& text : texts) {
    SCOPED_TRACE(text.substr(0, 40));
    auto bad = forged(0, text);
    expect_error(attacker_->fetch(0, bad), errc::invalid_uri);
    expect_error(attacker_->run(unary_graph("identity"), {bad}, {0}),
                 errc::invalid_uri);
    EXPECT_EQ(code_of(attacker_->erase(0, bad)), errc::invalid_uri);
    expect_error(attacker_->transfer(bad, 0, 1), errc::invalid_uri);
    if (!text.empty())
      expect_error(attacker_->put(0, int64_tensor(1), text), errc::invalid_uri);
  }
  auto unknown = forged(1, "s3://bucket/key");
  expect_error(attacker_->fetch(1, unknown), errc::unsupported_scheme);
  // Dropping the bad handles sends releases of unparsable URIs: counted.
  ASSERT_TRUE(attacker_->flush());
  expect_intact();
}

TEST_F(hostile_input, fs_paths_cannot_escape_the_roots) {
  auto root = nodes().fs_root(0);
  auto outside = root.parent_path() / "outside";
  fs::create_directories(outside);
  {
    auto bytes = encode(*int64_tensor(3, 42));
    std::ofstream out{outside / "secret.obj", std::ios::binary};
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  }
  fs::create_symlink(outside, root / "link");
  fs::create_symlink(outside / "secret.obj", root / "link-file");
  fs::create_symlink(outside / "created-by-attacker", root / "dangling");
  auto secret = "fs://" + (outside / "secret.obj").string();
  for (auto& text : {secret, fs_uri(0, "../outside/secret.obj"),
                     fs_uri(0, "link/secret.obj"), fs_uri(0, "link-file"),
                     fs_uri(0, "./victim.obj"), std::string{"fs:///etc/passwd"},
                     std::string{"fs:///proc/self/environ"}}) {
    SCOPED_TRACE(text);
    auto bad = forged(0, text);
    expect_error(attacker_->fetch(0, bad), errc::permission_denied);
    expect_error(attacker_->run(unary_graph("identity"), {bad}, {0}),
                 errc::permission_denied);
    EXPECT_EQ(code_of(attacker_->erase(0, bad)), errc::permission_denied);
  }
  for (auto& text :
       {fs_uri(0, "link/evil.obj"), fs_uri(0, "dangling"),
        fs_uri(0, "../outside/evil.obj"), fs_uri(0, "link-file"),
        fs_uri(0, ".objstore-tmp-evil"), std::string{"fs:///tmp/evil.obj"}}) {
    SCOPED_TRACE(text);
    expect_error(attacker_->put(0, int64_tensor(2), text),
                 errc::permission_denied);
  }
  // Nothing outside the root was written, read or removed.
  std::vector<std::string> names;
  for (auto& entry : fs::directory_iterator(outside))
    names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"secret.obj"});
  expect_intact();
}

TEST_F(hostile_input, oversize_objects_are_resource_exhausted) {
  auto big = int64_tensor(static_cast<int64_t>(object_limit / 8) + 1);
  expect_error(attacker_->put(0, big), errc::resource_exhausted);
  expect_error(attacker_->put(1, big, fs_uri(1, "big.obj")),
               errc::resource_exhausted);
  EXPECT_FALSE(fs::exists(nodes().fs_root(1) / "big.obj"));
  // A task asked for an output above the limit fails before allocating.
  for (auto& g :
       {source_graph("iota", {make_attr("n", int64_t{1} << 40),
                              make_attr("dtype", "int64")}),
        source_graph(
            "constant",
            {make_attr("shape", std::vector<int64_t>{1 << 20, 1 << 20}),
             make_attr("dtype", "float64"), make_attr("value", 1.0)}),
        source_graph("random_uniform",
                     {make_attr("shape", std::vector<int64_t>{1 << 18}),
                      make_attr("dtype", "float64"), make_attr("seed", 1)})}) {
    auto why
        = expect_error(attacker_->run(g, {}, {0}), errc::resource_exhausted);
    EXPECT_NE(why.find("object size limit"), std::string::npos) << why;
  }
  expect_intact();
}

TEST_F(hostile_input, oversize_graphs_are_resource_exhausted) {
  auto x = attacker_->put(0, int64_tensor(3));
  ASSERT_TRUE(x) << describe(x.error());
  auto chain = [](size_t ops) {
    graph_builder b;
    auto v = b.input();
    for (size_t i = 0; i < ops; ++i)
      v = b.add("neg", {v});
    b.output(v);
    return b.build();
  };
  EXPECT_TRUE(attacker_->run(chain(graph_op_limit), {*x}));
  auto why = expect_error(attacker_->run(chain(graph_op_limit + 1), {*x}),
                          errc::resource_exhausted);
  EXPECT_NE(why.find("objstore.max-graph-ops"), std::string::npos) << why;
  // Ops hidden in a region count too.
  graph_builder outer;
  auto in = outer.input();
  outer.output(outer.add("identity", {in}, {}, {chain(graph_op_limit)}));
  expect_error(attacker_->run(outer.build(), {*x}), errc::resource_exhausted);
  // Attribute bytes: a constant carrying 32 KiB of values.
  std::vector<double> values(4096, 1.0);
  auto fat = source_graph(
      "constant", {make_attr("shape", std::vector<int64_t>{4096}),
                   make_attr("dtype", "float64"), make_attr("values", values)});
  why = expect_error(attacker_->run(fat, {}, {0}), errc::resource_exhausted);
  EXPECT_NE(why.find("objstore.max-graph-bytes"), std::string::npos) << why;
  // Input URIs: 2000 bindings of one object.
  graph_builder wide;
  std::vector<value_id> ins;
  for (int i = 0; i < 2000; ++i)
    ins.push_back(wide.input());
  wide.output(wide.add("identity", {ins[0]}));
  std::vector<host_var> bound(2000, *x);
  expect_error(attacker_->run(wide.build(), bound), errc::resource_exhausted);
  expect_intact();
}

TEST_F(hostile_input, forged_uris_of_another_session_are_refused) {
  for (auto& x : victims_) {
    auto text = *x.handle.uri(x.rank);
    SCOPED_TRACE(text);
    if (text.rfind("mem://", 0) != 0)
      continue; // fs:// objects are shared by design (see fetch policy)
    auto stolen = forged(x.rank, text);
    auto copy = forged(x.rank, text); // a second forged hold, released too
    auto why = expect_error(attacker_->fetch(x.rank, stolen),
                            errc::permission_denied);
    EXPECT_NE(why.find("not held"), std::string::npos) << why;
    expect_error(attacker_->run(unary_graph("identity"), {stolen}, {x.rank}),
                 errc::permission_denied);
    EXPECT_EQ(code_of(attacker_->erase(x.rank, stolen)),
              errc::permission_denied);
    expect_error(attacker_->transfer(stolen, x.rank, 1 - x.rank),
                 errc::permission_denied);
    auto before = attacker_->worker_stats_of(x.rank);
    ASSERT_TRUE(before);
    stolen.reset();
    copy.reset();
    ASSERT_TRUE(attacker_->flush());
    EXPECT_TRUE(poll_until([&] {
      auto ws = attacker_->worker_stats_of(x.rank);
      return ws && ws->unknown_releases == before->unknown_releases + 2;
    })) << "forged releases were not refused as unknown";
  }
  // A session that ends takes none of the owner's objects with it.
  {
    auto temp = nodes().connect();
    ASSERT_TRUE(temp) << describe(temp.error());
    auto text = *victims_.front().handle.uri(0);
    host_var h{2};
    h.set(0, (*temp)->adopt(0, text));
    expect_error((*temp)->fetch(0, h), errc::permission_denied);
  }
  for (uint32_t r = 0; r < 2; ++r) {
    auto listing = owner_->objects(r);
    ASSERT_TRUE(listing) << describe(listing.error());
    for (auto& rec : *listing)
      for (auto& x : victims_)
        if (rec.uri == *x.handle.uri(x.rank)) {
          ASSERT_EQ(rec.holders.size(), 1u) << rec.uri;
          EXPECT_EQ(rec.holders[0].count, 1u) << rec.uri;
        }
  }
  expect_intact();
}

TEST_F(hostile_input, adopt_from_a_peer_is_refused_and_stores_nothing) {
  // `adopt` is not in the published worker_actor interface; a peer that
  // sends it untyped over its connection is refused by the worker.
  auto& sys = nodes().client_system();
  auto w
      = connect_worker(sys, "127.0.0.1", nodes().spec().workers[0].port, 10s);
  ASSERT_TRUE(w) << describe(w.error());
  auto before = mem_objects(0);
  caf::scoped_actor self{sys};
  caf::error err;
  self->request(caf::actor_cast<caf::actor>(*w), 10s, adopt_atom::value,
                uint64_t{1}, wire_value{int64_tensor(4, 7)})
      .receive([&](std::string& uri) { ADD_FAILURE() << "adopted " << uri; },
               [&](caf::error& e) { err = std::move(e); });
  EXPECT_EQ(code_of(err), errc::permission_denied) << describe(err);
  EXPECT_NE(message_of(err).find("node-local"), std::string::npos)
      << describe(err);
  EXPECT_EQ(mem_objects(0), before);
  // Nor does the variant that writes an fs:// target.
  auto file = nodes().fs_root(0) / "adopted.obj";
  caf::error fs_err;
  self->request(caf::actor_cast<caf::actor>(*w), 10s, adopt_atom::value,
                uint64_t{1}, "fs://" + file.string(), std::string{"operator"},
                wire_value{int64_tensor(4, 7)})
      .receive([&](std::string& uri) { ADD_FAILURE() << "adopted " << uri; },
               [&](caf::error& e) { fs_err = std::move(e); });
  EXPECT_EQ(code_of(fs_err), errc::permission_denied) << describe(fs_err);
  EXPECT_FALSE(std::filesystem::exists(file));
  expect_intact();
}

TEST_F(hostile_input, non_finite_attributes_travel_without_hanging) {
  // CAF 0.17 serializes doubles with a loop that never ends on infinity;
  // attributes must reach the worker bit for bit anyway.
  auto inf = std::numeric_limits<double>::infinity();
  auto nan = std::numeric_limits<double>::quiet_NaN();
  auto g = source_graph(
      "constant", {make_attr("shape", std::vector<int64_t>{3}),
                   make_attr("dtype", "float64"),
                   make_attr("values", std::vector<double>{inf, -inf, nan})});
  auto out = attacker_->run(g, {}, {0});
  ASSERT_TRUE(out) << describe(out.error());
  auto v = attacker_->fetch(0, (*out)[0]);
  ASSERT_TRUE(v) << describe(v.error());
  auto xs = (*v)->as_tensor().values<double>();
  EXPECT_EQ(xs[0], inf);
  EXPECT_EQ(xs[1], -inf);
  EXPECT_TRUE(std::isnan(xs[2]));
  auto scalar = source_graph(
      "constant", {make_attr("shape", std::vector<int64_t>{}),
                   make_attr("dtype", "int64"), make_attr("value", -inf)});
  EXPECT_TRUE(attacker_->run(scalar, {}, {1}));
  expect_intact();
}

TEST_F(hostile_input, unknown_ops_and_malformed_graphs_are_op_failed) {
  auto x = attacker_->put(0, int64_tensor(6));
  ASSERT_TRUE(x) << describe(x.error());
  auto expect_refused = [&](const graph& g, const char* what) {
    SCOPED_TRACE(what);
    auto out = attacker_->run(g, {*x}, {0});
    ASSERT_FALSE(out) << "accepted";
    auto code = code_of(out.error());
    EXPECT_TRUE(code == errc::op_failed || code == errc::resource_exhausted)
        << describe(out.error());
  };
  expect_refused(unary_graph("no_such_op"), "unknown op");
  expect_refused(unary_graph(""), "empty opcode");
  expect_refused(unary_graph(std::string(5000, 'z')), "long opcode");
  auto g = unary_graph("neg");
  g.ops[0].inputs = {g.ops[0].outputs[0]};
  expect_refused(g, "cycle");
  g = unary_graph("neg");
  g.outputs = {12345};
  expect_refused(g, "undefined output");
  g = unary_graph("add");
  expect_refused(g, "arity");
  graph nested = unary_graph("neg");
  for (int i = 0; i < 40; ++i) {
    graph_builder b;
    auto in = b.input();
    b.output(b.add("identity", {in}, {}, {nested}));
    nested = b.build();
  }
  expect_refused(nested, "regions nested 40 deep");
  // Kernels given absurd attributes fail cleanly.
  expect_refused(
      unary_graph("reshape",
                  {make_attr("shape", std::vector<int64_t>{-1, -1})}),
      "reshape -1 -1");
  expect_refused(
      unary_graph("slice", {make_attr("start", std::vector<int64_t>{0}),
                            make_attr("stop", std::vector<int64_t>{6}),
                            make_attr("step", std::vector<int64_t>{0})}),
      "slice step 0");
  expect_refused(
      unary_graph(
          "reshape",
          {make_attr("shape", std::vector<int64_t>{3, 3674937295934324735})}),
      "reshape to a shape whose size overflows");
  expect_refused(unary_graph("cast", {make_attr("dtype", "complex256")}),
                 "cast to an unknown dtype");
  expect_refused(
      unary_graph("sum", {make_attr("axes", std::vector<int64_t>{1 << 30})}),
      "sum over a missing axis");
  expect_intact();
}

} // namespace

} // namespace
} // namespace hostile_input_test_file
