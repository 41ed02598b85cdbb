// Every objstore message type must survive CAF's binary serializer, both on
// its own and inside a `caf::message` (which is what BASP serializes and
// where an unregistered type is silently dropped on the remote path).

#include "messages/registration.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <optional>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/message.hpp>

#include "messages/interfaces.hpp"
#include "store/error.hpp"

namespace serialization_test_file {
namespace {

using namespace objstore;

namespace {

struct config : caf::actor_system_config {
  config() { register_types(*this); }
};

class serialization : public ::testing::Test {
protected:
  config cfg_;
  caf::actor_system sys_{cfg_};

  template<class T>
  std::vector<char> save(const T& x) {
    std::vector<char> buf;
    caf::binary_serializer sink{sys_, buf};
    auto err = sink(const_cast<T&>(x));
    EXPECT_FALSE(err) << describe(err);
    return buf;
  }

  template<class T>
  caf::expected<T> load(const std::vector<char>& buf) {
    T result{};
    caf::binary_deserializer source{sys_, buf};
    if (auto err = source(result))
      return err;
    if (source.remaining() != 0)
      return make_error(errc::corrupt_data, "trailing bytes");
    return result;
  }

  /// Round-trips `x` directly and inside a message; returns the copy that
  /// went through the message.
  template<class T>
  std::optional<T> round_trip(const T& x) {
    auto direct = load<T>(save(x));
    if (!direct) {
      ADD_FAILURE() << "direct: " << describe(direct.error());
      return std::nullopt;
    }
    EXPECT_TRUE(*direct == x) << "direct round trip changed the value";
    auto msg = caf::make_message(x);
    auto buf = save(msg);
    auto copy = load<caf::message>(buf);
    if (!copy) {
      ADD_FAILURE() << "in a message: " << describe(copy.error());
      return std::nullopt;
    }
    if (!copy->template match_elements<T>()) {
      ADD_FAILURE() << "message lost its element type: "
                    << caf::to_string(*copy);
      return std::nullopt;
    }
    auto result = copy->template get_as<T>(0);
    EXPECT_TRUE(result == x) << "message round trip changed the value";
    return result;
  }
};

// -- sample values ------------------------------------------------------------

template<class T>
value_ptr iota_tensor(std::vector<int64_t> shape, T first = T{1}) {
  auto n = std::accumulate(shape.begin(), shape.end(), int64_t{1},
                           std::multiplies<>{});
  std::vector<T> xs(static_cast<size_t>(n));
  for (size_t i = 0; i < xs.size(); ++i)
    xs[i] = static_cast<T>(first + static_cast<T>(i));
  return make_value(tensor::from<T>(std::move(shape), xs));
}

value_ptr sample_table() {
  std::vector<column> cols;
  cols.push_back({"id", tensor::from<int64_t>({3}, {7, 8, 9})});
  cols.push_back({"score", tensor::from<double>({3}, {0.5, -1.25, 1e300})});
  cols.push_back({"flag", tensor::from<uint8_t>({3}, {0, 1, 255})});
  auto t = table::make(std::move(cols));
  EXPECT_TRUE(t) << describe(t.error());
  return make_value(std::move(*t));
}

graph nested_graph() {
  // A region holding a region: inspect must recurse through op::regions.
  graph_builder inner;
  auto a = inner.input();
  inner.output(inner.add("mul", {a, a}, {make_attr("note", "innermost")}));
  graph_builder middle;
  auto b = middle.input();
  auto c = middle.add("identity", {b}, {}, {inner.build()});
  middle.output(middle.add("add", {b, c}));
  graph_builder outer;
  auto x = outer.input();
  auto y = outer.input();
  auto outs = outer.add_n("cond", {x, y}, 2,
                          {make_attr("k", 3), make_attr("f", 0.25),
                           make_attr("ints", std::vector<int64_t>{1, -2})},
                          {middle.build(), middle.build()});
  outer.output(outs[0]);
  outer.output(outer.add("sum", {outs[1]}));
  return outer.build();
}

// -- values -------------------------------------------------------------------

TEST_F(serialization, wire_value_tensors) {
  for (auto& x : {iota_tensor<double>({3, 4}, 0.5), iota_tensor<int64_t>({5}),
                  iota_tensor<int32_t>({2, 2, 2}), iota_tensor<float>({}),
                  iota_tensor<uint8_t>({0}), iota_tensor<int8_t>({4, 0, 2}),
                  make_value(tensor{})}) {
    SCOPED_TRACE(x->summary());
    auto copy = round_trip(wire_value{x});
    ASSERT_TRUE(copy);
    EXPECT_EQ(copy->ptr->as_tensor().shape(), x->as_tensor().shape());
    EXPECT_EQ(copy->ptr->as_tensor().type(), x->as_tensor().type());
  }
}

TEST_F(serialization, wire_value_table_and_bytes) {
  auto empty_table = table::make({});
  ASSERT_TRUE(empty_table);
  for (auto& x : {sample_table(), make_value(std::move(*empty_table)),
                  make_value(blob::copy_of(std::string{"a\0b\xff", 4})),
                  make_value(blob::copy_of("")), make_value(blob{})}) {
    SCOPED_TRACE(x->summary());
    auto copy = round_trip(wire_value{x});
    ASSERT_TRUE(copy);
    EXPECT_EQ(copy->ptr->kind(), x->kind());
    EXPECT_EQ(copy->ptr->size_bytes(), x->size_bytes());
  }
}

TEST_F(serialization, wire_value_of_a_few_mib) {
  auto x = iota_tensor<int64_t>({3, 1 << 17}); // 3 MiB
  auto buf = save(wire_value{x});
  // Raw payload plus a small header: never element by element.
  EXPECT_GE(buf.size(), x->size_bytes());
  EXPECT_LT(buf.size(), x->size_bytes() + 1024);
  auto copy = round_trip(wire_value{x});
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->ptr->as_tensor().values<int64_t>()[(3 << 17) - 1],
            int64_t{3} << 17);
  auto blob_value = make_value(blob::copy_of(std::string(5 << 20, 'z')));
  auto blob_copy = round_trip(wire_value{blob_value});
  ASSERT_TRUE(blob_copy);
  EXPECT_EQ(blob_copy->ptr->as_bytes().view(), std::string(5 << 20, 'z'));
}

TEST_F(serialization, a_null_wire_value_travels_as_null) {
  auto copy = round_trip(wire_value{});
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->ptr, nullptr);
  // A fetch reply carrying a grant has no value.
  auto reply = round_trip(fetch_reply{{}, std::string(32, 'g'), 1u << 30});
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->value.ptr, nullptr);
  EXPECT_EQ(reply->grant, std::string(32, 'g'));
  EXPECT_EQ(reply->size_bytes, 1u << 30);
  auto inline_value
      = round_trip(fetch_reply{wire_value{sample_table()}, {}, 3});
  ASSERT_TRUE(inline_value);
  ASSERT_NE(inline_value->value.ptr, nullptr);
  EXPECT_EQ(*inline_value->value.ptr, *sample_table());
}

TEST_F(serialization, corrupted_wire_value_fails_with_an_error) {
  auto buf = save(wire_value{sample_table()});
  ASSERT_GT(buf.size(), 64u);
  // Every single flipped byte (length prefix, magic, header, payload,
  // checksum) must be detected.
  for (size_t i = 0; i < buf.size(); ++i) {
    auto bad = buf;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    auto x = load<wire_value>(bad);
    EXPECT_FALSE(x) << "flipped byte " << i << " of " << buf.size()
                    << " went unnoticed";
  }
}

TEST_F(serialization, truncated_wire_value_fails_with_an_error) {
  auto buf = save(wire_value{iota_tensor<double>({64})});
  for (size_t n = 0; n < buf.size(); ++n) {
    std::vector<char> cut(buf.begin(), buf.begin() + static_cast<long>(n));
    auto x = load<wire_value>(cut);
    EXPECT_FALSE(x) << "truncated to " << n << " of " << buf.size();
  }
}

TEST_F(serialization, oversized_length_prefix_fails_without_allocating) {
  auto buf = save(wire_value{iota_tensor<int64_t>({4})});
  for (uint64_t claim : {uint64_t{1} << 40, ~uint64_t{0}, uint64_t{1} << 33}) {
    auto bad = buf;
    std::memcpy(bad.data(), &claim, sizeof(claim)); // little-endian host
    auto x = load<wire_value>(bad);
    ASSERT_FALSE(x);
    EXPECT_EQ(code_of(x.error()), errc::corrupt_data) << describe(x.error());
  }
  // Inside a message the value is the last element: its length prefix sits
  // at the same distance from the end. Claims below the hard limit but past
  // the message's end must fail too, without allocating the claim.
  auto msg_buf = save(caf::make_message(wire_value{iota_tensor<int64_t>({4})}));
  auto offset = msg_buf.size() - buf.size();
  for (uint64_t claim : {uint64_t{1} << 40, uint64_t{8} << 30}) {
    auto bad = msg_buf;
    std::memcpy(bad.data() + offset, &claim, sizeof(claim));
    auto x = load<caf::message>(bad);
    EXPECT_FALSE(x && x->match_elements<wire_value>()) << claim;
  }
}

TEST_F(serialization, corrupted_wire_value_inside_a_message_fails) {
  // Inside a message the deserializer is the generic one (no remaining()
  // hint): corruption must still end in an error.
  auto buf = save(caf::make_message(wire_value{iota_tensor<int32_t>({32})}));
  size_t detected = 0;
  for (size_t i = 0; i < buf.size(); ++i) {
    auto bad = buf;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    auto x = load<caf::message>(bad);
    if (!x || !x->match_elements<wire_value>())
      ++detected;
    else
      EXPECT_EQ(x->get_as<wire_value>(0).ptr->as_tensor(),
                iota_tensor<int32_t>({32})->as_tensor())
          << "byte " << i << " changed the value undetected";
  }
  EXPECT_GT(detected, buf.size() / 2);
  for (size_t n = 0; n < buf.size(); ++n) {
    std::vector<char> cut(buf.begin(), buf.begin() + static_cast<long>(n));
    auto x = load<caf::message>(cut);
    // CAF reads a cut at an element boundary as a shorter (e.g. empty)
    // message; what matters is that no wire_value arrives.
    EXPECT_FALSE(x && x->match_elements<wire_value>()) << "truncated to " << n;
  }
}

// -- graphs -------------------------------------------------------------------

TEST_F(serialization, attribute_of_every_type) {
  std::vector<attribute> attrs{
      make_attr("i", int64_t{-42}),
      make_attr("f", 3.5),
      make_attr("s", std::string{"text with \0 inside", 17}),
      make_attr("is", std::vector<int64_t>{1, 2, INT64_MIN}),
      make_attr("fs", std::vector<double>{0.0, -1.5}),
      make_attr("ss", std::vector<std::string>{"a", "", "c"}),
      make_attr("", std::vector<int64_t>{}),
  };
  for (auto& a : attrs) {
    SCOPED_TRACE(a.name);
    auto copy = round_trip(a);
    ASSERT_TRUE(copy);
    EXPECT_EQ(copy->type, a.type);
  }
}

TEST_F(serialization, op_and_graph_with_nested_regions) {
  auto g = nested_graph();
  ASSERT_FALSE(validate_structure(g));
  auto copy = round_trip(g);
  ASSERT_TRUE(copy);
  ASSERT_EQ(copy->ops.size(), 2u);
  ASSERT_EQ(copy->ops[0].regions.size(), 2u);
  ASSERT_EQ(copy->ops[0].regions[0].ops[0].regions.size(), 1u);
  EXPECT_EQ(copy->ops[0].regions[0].ops[0].regions[0].ops[0].attrs[0].s,
            "innermost");
  EXPECT_EQ(op_count(*copy), op_count(g));
  EXPECT_TRUE(round_trip(g.ops[0]));
  EXPECT_TRUE(round_trip(graph{}));
}

// -- control messages ---------------------------------------------------------

TEST_F(serialization, session_info) {
  session_info x{2,
                 "node-abc",
                 fetch_policy::revealed_only,
                 4711,
                 session_key{9, std::string(64, 'a')},
                 true};
  auto copy = round_trip(x);
  ASSERT_TRUE(copy);
  EXPECT_EQ(*copy, x);
  EXPECT_EQ(copy->key.secret, std::string(64, 'a'));
  EXPECT_EQ(copy->rank, 2u);
  EXPECT_EQ(copy->node_id, "node-abc");
  EXPECT_EQ(copy->policy, fetch_policy::revealed_only);
  EXPECT_EQ(copy->data_port, 4711);
  std::vector<session_info> xs{
      x, {0, "n0", fetch_policy::deny, 0, {}, false}, {}};
  auto xs_copy = round_trip(xs);
  ASSERT_TRUE(xs_copy);
  ASSERT_EQ(xs_copy->size(), 3u);
  EXPECT_EQ((*xs_copy)[1].policy, fetch_policy::deny);
}

TEST_F(serialization, put_request) {
  put_request x{wire_value{iota_tensor<int64_t>({10})}, "fs:///data/x.obj"};
  auto copy = round_trip(x);
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->target, "fs:///data/x.obj");
  EXPECT_EQ(copy->value, x.value);
  EXPECT_TRUE(round_trip(put_request{wire_value{sample_table()}, ""}));
}

TEST_F(serialization, task_request_and_reply) {
  task_request req{UINT64_MAX - 1, nested_graph(), {"mem://a-1", "fs:///b"}};
  auto copy = round_trip(req);
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->task_id, UINT64_MAX - 1);
  EXPECT_EQ(copy->program, req.program);
  EXPECT_EQ(copy->inputs, req.inputs);
  task_reply rep{17, {"mem://x-1", "mem://x-2"}};
  auto rep_copy = round_trip(rep);
  ASSERT_TRUE(rep_copy);
  EXPECT_EQ(rep_copy->task_id, 17u);
  EXPECT_EQ(rep_copy->outputs, rep.outputs);
  EXPECT_TRUE(round_trip(task_reply{}));
}

TEST_F(serialization, object_listing) {
  holder_record h{"session-1 (addr)", 3};
  auto h_copy = round_trip(h);
  ASSERT_TRUE(h_copy);
  EXPECT_EQ(h_copy->count, 3u);
  object_record rec{"mem://n-9", 1 << 20, {h, {"session-2", 1}}, 2, -5,
                    true,        true};
  auto copy = round_trip(rec);
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->uri, "mem://n-9");
  EXPECT_EQ(copy->size_bytes, 1u << 20);
  ASSERT_EQ(copy->holders.size(), 2u);
  EXPECT_EQ(copy->holders[1].session, "session-2");
  EXPECT_EQ(copy->pins, 2u);
  EXPECT_EQ(copy->age_ms, -5);
  EXPECT_TRUE(copy->revealed);
  EXPECT_TRUE(copy->spilled);
  // The reply type of `objects` is the vector, so the vector must be
  // registered as well.
  std::vector<object_record> xs{rec, object_record{}};
  auto xs_copy = round_trip(xs);
  ASSERT_TRUE(xs_copy);
  EXPECT_EQ(xs_copy->size(), 2u);
}

TEST_F(serialization, worker_and_driver_stats) {
  // Distinct values in every counter, so a swapped field is noticed.
  worker_stats w{7,    1000, 1001, 1002, 1003, 1004, 1005, 1006,
                 1007, 1008, 1009, 1010, 1011, 1012, 1013};
  auto w_copy = round_trip(w);
  ASSERT_TRUE(w_copy);
  EXPECT_EQ(w_copy->rank, 7u);
  EXPECT_EQ(w_copy->mem_objects, 1000u);
  EXPECT_EQ(w_copy->pinned_objects, w.pinned_objects);
  EXPECT_EQ(w_copy->fetches_denied, w.fetches_denied);
  w.spill.spilled_objects = 21;
  w.spill.spills = 22;
  w.spill.restore_ns = 23;
  w.spill.leftovers_removed = 24;
  w_copy = round_trip(w);
  ASSERT_TRUE(w_copy);
  EXPECT_EQ(w_copy->spill, w.spill);
  driver_stats d{1, 2, 3, 4, 5, 6};
  auto d_copy = round_trip(d);
  ASSERT_TRUE(d_copy);
  EXPECT_EQ(d_copy->bytes_sent, 1u);
  EXPECT_EQ(d_copy->bytes_received, 2u);
  EXPECT_EQ(d_copy->live_handles, 6u);
}

TEST_F(serialization, whole_request_messages) {
  // The exact shapes the worker interface receives.
  session_key key{3, std::string(64, 'k')};
  auto hello = caf::make_message(hello_atom::value, [] {
    hello_request req;
    req.client = "test client";
    req.operator_secret = "op-secret";
    return req;
  }());
  auto hello_copy = load<caf::message>(save(hello));
  ASSERT_TRUE(hello_copy) << describe(hello_copy.error());
  ASSERT_TRUE((hello_copy->match_elements<hello_atom, hello_request>()));
  EXPECT_EQ(hello_copy->get_as<hello_request>(1).operator_secret, "op-secret");
  auto run = caf::make_message(run_atom::value, key,
                               task_request{1, nested_graph(), {"mem://a"}});
  auto copy = load<caf::message>(save(run));
  ASSERT_TRUE(copy) << describe(copy.error());
  ASSERT_TRUE((copy->match_elements<run_atom, session_key, task_request>()));
  EXPECT_EQ(copy->get_as<session_key>(1), key);
  EXPECT_EQ(copy->get_as<task_request>(2).program, nested_graph());
  auto put = caf::make_message(
      put_atom::value, key,
      put_request{wire_value{iota_tensor<double>({8})}, ""});
  auto put_copy = load<caf::message>(save(put));
  ASSERT_TRUE(put_copy) << describe(put_copy.error());
  ASSERT_TRUE((put_copy->match_elements<put_atom, session_key, put_request>()));
  auto release = caf::make_message(release_atom::value, key,
                                   std::vector<std::string>{"mem://a", "b"});
  auto release_copy = load<caf::message>(save(release));
  ASSERT_TRUE(release_copy);
  ASSERT_TRUE((release_copy->match_elements<release_atom, session_key,
                                            std::vector<std::string>>()));
  EXPECT_EQ(release_copy->get_as<std::vector<std::string>>(2).size(), 2u);
}

} // namespace

} // namespace
} // namespace serialization_test_file
