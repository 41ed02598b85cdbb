// Graph IR: builder, structural validation, attributes.

#include "messages/graph.hpp"

#include <gtest/gtest.h>

#include "store/error.hpp"

namespace graph_test_file {
namespace {

using namespace objstore;

namespace {

std::string error_of(const graph& g) {
  auto err = validate_structure(g);
  EXPECT_TRUE(err);
  EXPECT_EQ(code_of(err), errc::op_failed);
  return message_of(err);
}

} // namespace

TEST(graph, builder_produces_ssa_ids_in_order) {
  graph_builder b;
  auto x = b.input();
  auto y = b.add("mul", {x, x});
  auto outs = b.add_n("hash_partition", {y}, 3, {make_attr("n", 3)});
  b.output(outs[2]);
  auto g = b.build();
  EXPECT_EQ(g.inputs, std::vector<value_id>{0});
  ASSERT_EQ(g.ops.size(), 2u);
  EXPECT_EQ(g.ops[0].outputs, std::vector<value_id>{1});
  EXPECT_EQ(g.ops[1].outputs, (std::vector<value_id>{2, 3, 4}));
  EXPECT_EQ(g.outputs, std::vector<value_id>{4});
  EXPECT_FALSE(validate_structure(g));
  EXPECT_EQ(op_count(g), 2u);
}

TEST(graph, undefined_value_names_the_op) {
  graph g;
  g.inputs = {0};
  g.ops.push_back(op{"add", {0, 7}, {1}, {}, {}});
  g.outputs = {1};
  auto msg = error_of(g);
  EXPECT_NE(msg.find("'add'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("%7"), std::string::npos) << msg;
}

TEST(graph, use_before_definition_is_a_cycle) {
  graph g;
  g.inputs = {0};
  g.ops.push_back(op{"neg", {2}, {1}, {}, {}});
  g.ops.push_back(op{"neg", {1}, {2}, {}, {}});
  g.outputs = {2};
  auto msg = error_of(g);
  EXPECT_NE(msg.find("op #0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cycle"), std::string::npos) << msg;
}

TEST(graph, redefinition_and_bad_outputs_are_refused) {
  graph twice;
  twice.inputs = {0};
  twice.ops.push_back(op{"neg", {0}, {0}, {}, {}});
  EXPECT_NE(error_of(twice).find("redefines %0"), std::string::npos);
  graph dup_input;
  dup_input.inputs = {0, 0};
  EXPECT_NE(error_of(dup_input).find("declared twice"), std::string::npos);
  graph missing_out;
  missing_out.inputs = {0};
  missing_out.outputs = {5};
  EXPECT_NE(error_of(missing_out).find("%5"), std::string::npos);
  graph empty_op;
  empty_op.ops.push_back(op{"", {}, {0}, {}, {}});
  EXPECT_NE(error_of(empty_op).find("empty opcode"), std::string::npos);
}

TEST(graph, regions_have_their_own_scope) {
  graph_builder body;
  auto a = body.input();
  body.output(body.add("neg", {a}));
  graph_builder b;
  auto x = b.input();
  b.output(b.add("pcall_dynamic", {x}, {}, {body.build()}));
  EXPECT_FALSE(validate_structure(b.build()));
  // A region may not use values of the enclosing graph (no implicit
  // captures: pass them as inputs).
  graph leaky = body.build();
  leaky.ops[0].inputs = {42};
  graph_builder outer;
  auto y = outer.input();
  outer.output(outer.add("pcall_dynamic", {y}, {}, {leaky}));
  auto msg = error_of(outer.build());
  EXPECT_NE(msg.find("in region"), std::string::npos) << msg;
}

TEST(graph, deeply_nested_regions_are_refused) {
  graph g;
  g.ops.push_back(op{"identity", {}, {0}, {}, {}});
  g.outputs = {0};
  for (int i = 0; i < 40; ++i) {
    graph outer;
    outer.ops.push_back(op{"pcall_dynamic", {}, {0}, {}, {g}});
    outer.outputs = {0};
    g = std::move(outer);
  }
  EXPECT_NE(error_of(g).find("deeper than 32"), std::string::npos);
}

TEST(graph, typed_attributes) {
  op x{"constant",
       {},
       {0},
       {make_attr("shape", std::vector<int64_t>{2, 3}), make_attr("value", 1.5),
        make_attr("dtype", "int32"), make_attr("n", 4),
        make_attr("names", std::vector<std::string>{"a", "b"})},
       {}};
  EXPECT_EQ(*x.attr_i64s("shape"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(*x.attr_f64("value"), 1.5);
  EXPECT_EQ(*x.attr_f64("n"), 4.0) << "ints widen to float";
  EXPECT_EQ(*x.attr_str("dtype"), "int32");
  EXPECT_EQ(x.attr_i64_or("missing", 9), 9);
  auto wrong = x.attr_i64("dtype");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(code_of(wrong.error()), errc::op_failed);
  EXPECT_NE(message_of(wrong.error()).find("'constant'"), std::string::npos);
  EXPECT_NE(message_of(wrong.error()).find("'dtype'"), std::string::npos);
}

} // namespace
} // namespace graph_test_file
