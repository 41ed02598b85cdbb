// The local graph interpreter: validation against the registry, freeing of
// intermediates after their last use, errors, cancellation.

#include "actors/exec/interpreter.hpp"

#include <gtest/gtest.h>

#include "store/error.hpp"

namespace interpreter_test_file {
namespace {

using namespace objstore;

namespace {

value_ptr vec(std::vector<int64_t> xs) {
  auto n = static_cast<int64_t>(xs.size());
  return make_value(tensor::from<int64_t>({n}, xs));
}

/// Registers `spy` (records a weak reference to its input and passes it
/// through) and `alive` (outputs whether the spied value still exists).
std::shared_ptr<op_registry> spying_registry(std::weak_ptr<const value>& seen) {
  auto r = op_registry::with_builtins();
  op_def spy;
  spy.name = "spy";
  spy.min_inputs = spy.max_inputs = 1;
  spy.kernel = [&seen](kernel_context&,
                       std::span<const value_ptr> args) -> kernel_result {
    seen = args[0];
    return std::vector<value_ptr>{
        make_value(tensor::from<int64_t>({}, std::vector<int64_t>{0}))};
  };
  EXPECT_FALSE(r->add(spy));
  op_def alive;
  alive.name = "alive";
  alive.min_inputs = alive.max_inputs = 1;
  alive.kernel
      = [&seen](kernel_context&, std::span<const value_ptr>) -> kernel_result {
    auto live = seen.expired() ? int64_t{0} : int64_t{1};
    return std::vector<value_ptr>{
        make_value(tensor::from<int64_t>({}, std::vector<int64_t>{live}))};
  };
  EXPECT_FALSE(r->add(alive));
  return r;
}

} // namespace

TEST(interpreter, frees_intermediates_after_their_last_use) {
  std::weak_ptr<const value> seen;
  auto ops = spying_registry(seen);
  graph_builder b;
  auto x = b.input();
  auto big = b.add("mul", {x, x}); // intermediate, last used by spy
  auto token = b.add("spy", {big});
  b.output(b.add("alive", {token}));
  auto out = execute(b.build(), {vec({1, 2, 3})}, *ops);
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->outputs[0]->as_tensor().values<int64_t>()[0], 0)
      << "the intermediate must be freed once its last user ran";
}

TEST(interpreter, keeps_graph_outputs_alive) {
  std::weak_ptr<const value> seen;
  auto ops = spying_registry(seen);
  graph_builder b;
  auto x = b.input();
  auto kept = b.add("mul", {x, x});
  auto token = b.add("spy", {kept});
  b.output(b.add("alive", {token}));
  b.output(kept);
  auto out = execute(b.build(), {vec({1, 2})}, *ops);
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->outputs[0]->as_tensor().values<int64_t>()[0], 1);
  EXPECT_EQ(out->outputs[1]->as_tensor().values<int64_t>()[1], 4);
}

TEST(interpreter, validate_checks_opcodes_arity_and_outputs) {
  auto ops = op_registry::with_builtins();
  graph_builder unknown;
  unknown.output(unknown.add("frobnicate", {}));
  auto err = validate(unknown.build(), *ops);
  EXPECT_EQ(code_of(err), errc::op_failed);
  EXPECT_NE(message_of(err).find("frobnicate"), std::string::npos);
  graph_builder arity;
  auto x = arity.input();
  arity.output(arity.add("add", {x}));
  err = validate(arity.build(), *ops);
  EXPECT_EQ(code_of(err), errc::op_failed);
  EXPECT_NE(message_of(err).find("'add'"), std::string::npos)
      << message_of(err);
  graph_builder outs;
  auto y = outs.input();
  for (auto id : outs.add_n("neg", {y}, 2))
    outs.output(id);
  err = validate(outs.build(), *ops);
  EXPECT_NE(message_of(err).find("outputs"), std::string::npos)
      << message_of(err);
}

TEST(interpreter, stops_at_the_first_failing_op) {
  std::weak_ptr<const value> seen;
  auto ops = spying_registry(seen);
  graph_builder b;
  auto x = b.input();
  auto bad = b.add("div", {x, b.add("sub", {x, x})}); // division by zero
  b.output(b.add("spy", {bad}));
  auto out = execute(b.build(), {vec({1, 2})}, *ops);
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::op_failed);
  EXPECT_NE(message_of(out.error()).find("'div'"), std::string::npos);
  EXPECT_TRUE(seen.expired()) << "ops after the failure must not run";
}

TEST(interpreter, honours_cancellation_between_ops) {
  auto ops = op_registry::with_builtins();
  std::atomic<bool> cancel{true};
  graph_builder b;
  auto x = b.input();
  b.output(b.add("neg", {x}));
  auto out = execute(b.build(), {vec({1})}, *ops, cancel_flags{&cancel});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::cancelled);
}

TEST(interpreter, wrong_input_count_is_refused) {
  auto ops = op_registry::with_builtins();
  graph_builder b;
  b.output(b.add("neg", {b.input()}));
  auto out = execute(b.build(), {}, *ops);
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::op_failed);
}

} // namespace
} // namespace interpreter_test_file
