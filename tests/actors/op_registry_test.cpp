// The op registry: built-ins, lookups, registration rules for user ops and
// the flags the worker reads from a definition (linear, reveals).

#include "actors/exec/op_registry.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "actors/exec/interpreter.hpp"
#include "actors/worker/worker_actor.hpp"
#include "messages/graph.hpp"
#include "store/error.hpp"

namespace op_registry_test_file {
namespace {

using namespace objstore;

namespace {

value_ptr vec(std::vector<int64_t> xs) {
  auto n = static_cast<int64_t>(xs.size());
  return make_value(tensor::from<int64_t>({n}, xs));
}

std::vector<int64_t> values_of(const value_ptr& x) {
  auto xs = x->as_tensor().values<int64_t>();
  return {xs.begin(), xs.end()};
}

/// A kernel returning its inputs; counts its calls in `*calls` if given.
kernel_fn passthrough(int* calls = nullptr) {
  return [calls](kernel_context&,
                 std::span<const value_ptr> args) -> kernel_result {
    if (calls != nullptr)
      ++*calls;
    return std::vector<value_ptr>(args.begin(), args.end());
  };
}

op_def user_op(std::string name, kernel_fn kernel = passthrough()) {
  op_def def;
  def.name = std::move(name);
  def.min_inputs = 1;
  def.max_inputs = 1;
  def.num_outputs = 1;
  def.kernel = std::move(kernel);
  return def;
}

/// y = opcode(x) as a one-op graph.
graph unary(const std::string& opcode) {
  graph_builder b;
  auto x = b.input();
  b.output(b.add(opcode, {x}));
  return b.build();
}

// Kept in sync with op_registry::with_builtins by hand on purpose: a
// built-in silently turning linear (or not) changes where the worker runs
// it, and this list makes that change visible in review.
const std::vector<std::string> linear_builtins{
    "add",      "cast",        "checksum",   "column",
    "concat",   "div",         "eq",         "filter",
    "ge",       "group_sum",   "gt",         "identity",
    "le",       "lt",          "make_table", "max",
    "maximum",  "mean",        "min",        "minimum",
    "mul",      "ne",          "neg",        "num_rows",
    "reshape",  "reveal",      "select",     "select_columns",
    "slice",    "sort_by_key", "sub",        "sum",
    "transpose"};

const std::vector<std::string> nonlinear_builtins{
    "constant", "iota", "random_uniform", "hash_partition",
    "matmul",   "join", "sleep"};

TEST(op_registry, builtins_are_found_by_name_with_their_kernels) {
  auto registry = op_registry::with_builtins();
  for (auto& names : {linear_builtins, nonlinear_builtins})
    for (auto& name : names) {
      auto def = registry->find(name);
      ASSERT_NE(def, nullptr) << name;
      EXPECT_EQ(def->name, name);
      EXPECT_TRUE(def->kernel) << name;
    }
  auto add = registry->find("add");
  EXPECT_EQ(add->min_inputs, 2u);
  EXPECT_EQ(add->max_inputs, 2u);
  EXPECT_EQ(add->num_outputs, 1u);
}

TEST(op_registry, only_the_documented_builtins_are_linear) {
  auto registry = op_registry::with_builtins();
  for (auto& name : linear_builtins)
    EXPECT_TRUE(registry->find(name)->linear) << name << " should be linear";
  for (auto& name : nonlinear_builtins)
    EXPECT_FALSE(registry->find(name)->linear) << name << " is not linear";
  size_t linear = 0;
  for (auto& name : registry->names())
    if (registry->find(name)->linear)
      ++linear;
  EXPECT_EQ(linear, linear_builtins.size()) << "an undocumented linear op";
}

TEST(op_registry, only_reveal_reveals_among_builtins) {
  auto registry = op_registry::with_builtins();
  for (auto& name : registry->names())
    EXPECT_EQ(registry->find(name)->reveals, name == "reveal") << name;
}

TEST(op_registry, lookup_is_exact_and_unknown_names_give_null) {
  auto registry = op_registry::with_builtins();
  EXPECT_EQ(registry->find("no_such_op"), nullptr);
  EXPECT_EQ(registry->find(""), nullptr);
  EXPECT_EQ(registry->find("Add"), nullptr) << "names are case-sensitive";
  EXPECT_EQ(registry->find("ad"), nullptr);
  EXPECT_EQ(registry->find("add "), nullptr);
  op_registry empty;
  EXPECT_EQ(empty.find("add"), nullptr) << "a plain registry has no builtins";
  EXPECT_TRUE(empty.names().empty());
}

TEST(op_registry, names_are_sorted_and_unique) {
  auto names = op_registry::with_builtins()->names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
  EXPECT_GE(names.size(), linear_builtins.size() + nonlinear_builtins.size());
}

TEST(op_registry, unknown_op_error_names_the_op) {
  auto registry = op_registry::with_builtins();
  auto g = unary("frobnicate");
  auto err = validate(g, *registry);
  EXPECT_EQ(code_of(err), errc::op_failed) << describe(err);
  EXPECT_NE(message_of(err).find("'frobnicate'"), std::string::npos)
      << message_of(err);
  EXPECT_NE(message_of(err).find("unknown opcode"), std::string::npos)
      << message_of(err);
  auto run = execute(g, {vec({1})}, *registry);
  ASSERT_FALSE(run);
  EXPECT_EQ(code_of(run.error()), errc::op_failed);
  EXPECT_NE(message_of(run.error()).find("'frobnicate'"), std::string::npos)
      << message_of(run.error());
}

TEST(op_registry, user_op_is_found_and_runs_next_to_builtins) {
  auto registry = op_registry::with_builtins();
  int calls = 0;
  auto def = user_op("user_passthrough", passthrough(&calls));
  ASSERT_FALSE(registry->add(def));
  auto found = registry->find("user_passthrough");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->name, "user_passthrough");
  auto names = registry->names();
  EXPECT_TRUE(std::binary_search(names.begin(), names.end(),
                                 std::string{"user_passthrough"}));
  graph_builder b;
  auto x = b.input();
  b.output(b.add("add", {b.add("user_passthrough", {x}), x}));
  auto g = b.build();
  EXPECT_FALSE(validate(g, *registry));
  auto run = execute(g, {vec({1, 2})}, *registry);
  ASSERT_TRUE(run) << describe(run.error());
  EXPECT_EQ(values_of(run->outputs[0]), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(calls, 1);
}

TEST(op_registry, registration_refuses_empty_name_and_missing_kernel) {
  op_registry registry;
  auto nameless = user_op("");
  auto err = registry.add(nameless);
  EXPECT_EQ(code_of(err), errc::invalid_argument) << describe(err);
  auto kernelless = user_op("no_kernel");
  kernelless.kernel = nullptr;
  err = registry.add(kernelless);
  EXPECT_EQ(code_of(err), errc::invalid_argument) << describe(err);
  EXPECT_NE(message_of(err).find("'no_kernel'"), std::string::npos)
      << message_of(err);
  EXPECT_TRUE(registry.names().empty()) << "a refused op is not registered";
}

TEST(op_registry, duplicate_name_is_refused_and_keeps_the_first_definition) {
  op_registry registry;
  int first_calls = 0;
  int second_calls = 0;
  auto first = user_op("twice", passthrough(&first_calls));
  ASSERT_FALSE(registry.add(first));
  auto second = user_op("twice", passthrough(&second_calls));
  second.max_inputs = 5;
  second.linear = true;
  auto err = registry.add(second);
  EXPECT_EQ(code_of(err), errc::invalid_argument) << describe(err);
  EXPECT_NE(message_of(err).find("'twice'"), std::string::npos)
      << message_of(err);
  EXPECT_NE(message_of(err).find("already registered"), std::string::npos)
      << message_of(err);
  auto kept = registry.find("twice");
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(kept->max_inputs, 1u);
  EXPECT_FALSE(kept->linear);
  ASSERT_TRUE(execute(unary("twice"), {vec({7})}, registry));
  EXPECT_EQ(first_calls, 1);
  EXPECT_EQ(second_calls, 0);
  EXPECT_EQ(registry.names(), (std::vector<std::string>{"twice"}));
}

TEST(op_registry, builtin_names_cannot_be_replaced_by_user_ops) {
  auto registry = op_registry::with_builtins();
  int calls = 0;
  auto fake_add = user_op("add", passthrough(&calls));
  fake_add.min_inputs = 2;
  fake_add.max_inputs = 2;
  auto err = registry->add(fake_add);
  EXPECT_EQ(code_of(err), errc::invalid_argument) << describe(err);
  EXPECT_NE(message_of(err).find("'add'"), std::string::npos);
  graph_builder b;
  auto x = b.input();
  b.output(b.add("add", {x, x}));
  auto run = execute(b.build(), {vec({3})}, *registry);
  ASSERT_TRUE(run) << describe(run.error());
  EXPECT_EQ(values_of(run->outputs[0]), (std::vector<int64_t>{6}));
  EXPECT_EQ(calls, 0);
}

TEST(op_registry, registries_from_with_builtins_are_independent) {
  auto one = op_registry::with_builtins();
  auto other = op_registry::with_builtins();
  ASSERT_FALSE(one->add(user_op("only_in_one")));
  EXPECT_NE(one->find("only_in_one"), nullptr);
  EXPECT_EQ(other->find("only_in_one"), nullptr);
  EXPECT_EQ(op_registry::with_builtins()->find("only_in_one"), nullptr);
}

TEST(op_registry, user_ops_are_not_linear_unless_they_opt_in) {
  auto registry = op_registry::with_builtins();
  ASSERT_FALSE(registry->add(user_op("heavy")));
  auto light = user_op("light");
  light.linear = true;
  ASSERT_FALSE(registry->add(light));
  EXPECT_FALSE(registry->find("heavy")->linear);
  EXPECT_TRUE(registry->find("light")->linear);
  std::vector<value_ptr> small{vec({1, 2, 3})};
  EXPECT_FALSE(runs_on_worker_thread(unary("heavy"), small, *registry))
      << "a user op that did not opt in must run in a task actor";
  EXPECT_TRUE(runs_on_worker_thread(unary("light"), small, *registry));
  EXPECT_TRUE(runs_on_worker_thread(unary("neg"), small, *registry));
  EXPECT_FALSE(runs_on_worker_thread(unary("sleep"), small, *registry));
  EXPECT_FALSE(runs_on_worker_thread(unary("unknown"), small, *registry));
  // Linear ops still leave the worker thread above 64 KiB of input or
  // with fs:// (unresolved) inputs.
  std::vector<int64_t> big(64 * 1024 / sizeof(int64_t) + 1, 1);
  EXPECT_FALSE(runs_on_worker_thread(unary("light"), {vec(big)}, *registry));
  EXPECT_FALSE(runs_on_worker_thread(unary("light"), {nullptr}, *registry));
}

TEST(op_registry, arity_and_output_rules_of_a_user_op_are_enforced) {
  auto registry = op_registry::with_builtins();
  auto pair = user_op("pair");
  pair.min_inputs = 2;
  pair.max_inputs = 3;
  pair.num_outputs = 2;
  pair.kernel
      = [](kernel_context&, std::span<const value_ptr> args) -> kernel_result {
    return std::vector<value_ptr>{args[0], args[1]};
  };
  ASSERT_FALSE(registry->add(pair));
  auto graph_of = [](size_t inputs, size_t outputs) {
    graph_builder b;
    std::vector<value_id> xs;
    for (size_t i = 0; i < inputs; ++i)
      xs.push_back(b.input());
    for (auto y : b.add_n("pair", xs, outputs))
      b.output(y);
    return b.build();
  };
  EXPECT_FALSE(validate(graph_of(2, 2), *registry));
  EXPECT_FALSE(validate(graph_of(3, 2), *registry));
  for (auto [inputs, outputs] :
       {std::pair<size_t, size_t>{1, 2}, {4, 2}, {2, 1}, {2, 3}}) {
    auto err = validate(graph_of(inputs, outputs), *registry);
    EXPECT_EQ(code_of(err), errc::op_failed)
        << inputs << " inputs, " << outputs << " outputs";
    EXPECT_NE(message_of(err).find("'pair'"), std::string::npos)
        << message_of(err);
  }
}

TEST(op_registry, a_revealing_user_op_marks_its_outputs_revealed) {
  auto registry = op_registry::with_builtins();
  auto publish = user_op("publish");
  publish.reveals = true;
  ASSERT_FALSE(registry->add(publish));
  graph_builder b;
  auto x = b.input();
  auto shown = b.add("publish", {x});
  b.output(shown);
  b.output(b.add("neg", {shown}));
  auto run = execute(b.build(), {vec({1})}, *registry);
  ASSERT_TRUE(run) << describe(run.error());
  EXPECT_EQ(run->revealed, (std::vector<bool>{true, false}))
      << "only the revealing op's own output is revealed";
}

TEST(op_registry, kernel_context_fail_names_the_op_and_reports_cancel) {
  auto registry = op_registry::with_builtins();
  op node;
  node.opcode = "my_op";
  std::atomic<bool> run_flag{false};
  std::atomic<bool> node_flag{false};
  kernel_context ctx{node, *registry, cancel_flags{&run_flag, &node_flag}};
  auto err = ctx.fail("bad input");
  EXPECT_EQ(code_of(err), errc::op_failed);
  EXPECT_EQ(message_of(err), "op 'my_op': bad input");
  EXPECT_FALSE(ctx.cancelled());
  run_flag = true;
  EXPECT_TRUE(ctx.cancelled());
  run_flag = false;
  node_flag = true;
  EXPECT_TRUE(ctx.cancelled());
  EXPECT_FALSE(cancel_flags{}.requested()) << "null flags never cancel";
}

} // namespace

} // namespace
} // namespace op_registry_test_file
