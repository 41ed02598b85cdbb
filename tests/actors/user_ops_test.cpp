// Embedders register their own ops (kernel plus shape/dtype rule) next to
// the built-ins and run them through objstore::execute; unknown opcodes are
// rejected with op_failed.

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/exec/kernels/dispatch.hpp"
#include "actors/worker/worker_actor.hpp"
#include "tests/actors/kernel_test_support.hpp"

namespace user_ops_test_file {
namespace {

using namespace objstore;
using namespace objstore::testing;

namespace {

// A user op: y = x * factor + 1 on float64 vectors.
caf::error axpb_check(const op& node, std::span<const value_ptr> args) {
  auto& x = *args[0];
  if (!x.is_tensor() || x.as_tensor().type() != dtype::float64
      || x.as_tensor().rank() != 1)
    return make_error(errc::op_failed, "op '" + node.opcode
                                           + "': expects a float64 vector, got "
                                           + x.summary());
  return {};
}

kernel_result axpb(kernel_context& ctx, std::span<const value_ptr> args) {
  auto factor = ctx.node().attr_f64("factor");
  if (!factor)
    return factor.error();
  auto& x = args[0]->as_tensor();
  auto [out, raw] = tensor::allocate(dtype::float64, x.shape());
  auto* in = x.values<double>().data();
  auto* z = reinterpret_cast<double*>(raw);
  for (int64_t i = 0; i < x.num_elements(); ++i)
    z[i] = in[i] * *factor + 1;
  return kernels::one(make_value(std::move(out)));
}

// A generic user op over every dtype with two outputs: (x, count as int64).
kernel_result with_count(kernel_context& ctx, std::span<const value_ptr> args) {
  auto x = kernels::tensor_arg(ctx, args, 0);
  if (!x)
    return x.error();
  auto n = kernels::visit_dtype((*x)->type(), [&](auto tag) {
    return static_cast<int64_t>((*x)->values<decltype(tag)>().size());
  });
  return std::vector<value_ptr>{args[0], scalar<int64_t>(n)};
}

std::shared_ptr<op_registry> user_registry() {
  auto registry = op_registry::with_builtins();
  EXPECT_FALSE(registry->add({"axpb", 1, 1, 1, axpb_check, axpb, false}));
  EXPECT_FALSE(registry->add({"with_count", 1, 1, 2, {}, with_count, false}));
  return registry;
}

TEST(user_ops, run_next_to_builtins_in_one_graph) {
  auto registry = user_registry();
  graph_builder b;
  auto x = b.input();
  auto y = b.add("axpb", {x}, {make_attr("factor", 2.0)});
  auto z = b.add("mul", {y, y});
  auto outs = b.add_n("with_count", {z}, 2);
  b.output(b.add("sum", {outs[0]}));
  b.output(outs[1]);
  auto g = b.build();
  EXPECT_FALSE(validate(g, *registry));
  auto result = execute(g, {tens<double>({3}, {0, 1, 2})}, *registry);
  ASSERT_TRUE(result) << describe(result.error());
  // (1, 3, 5) squared and summed.
  EXPECT_EQ(vals<double>(result->outputs[0]), (std::vector<double>{35}));
  EXPECT_EQ(vals<int64_t>(result->outputs[1]), (std::vector<int64_t>{3}));
}

TEST(user_ops, check_function_rejects_bad_inputs_before_the_kernel) {
  auto registry = user_registry();
  auto bad = run_op("axpb", {tens<float>({2}, {1, 2})},
                    {make_attr("factor", 2.0)}, 1, *registry);
  EXPECT_TRUE(fails_naming(bad, "axpb", "float64 vector"));
  auto matrix = run_op("axpb", {tens<double>({1, 1}, {1})},
                       {make_attr("factor", 2.0)}, 1, *registry);
  EXPECT_TRUE(fails_naming(matrix, "axpb", "float64 vector"));
  auto no_attr = run_op("axpb", {tens<double>({1}, {1})}, {}, 1, *registry);
  EXPECT_TRUE(fails_naming(no_attr, "axpb", "factor"));
  auto arity = run_op("with_count", {tens<double>({1}, {1})}, {}, 1, *registry);
  EXPECT_TRUE(fails_naming(arity, "with_count", "outputs"));
}

TEST(user_ops, unknown_opcodes_fail_validation) {
  auto registry = user_registry();
  graph_builder b;
  auto x = b.input();
  b.output(b.add("no_such_op", {x}));
  auto g = b.build();
  auto err = validate(g, *registry);
  EXPECT_EQ(code_of(err), errc::op_failed);
  EXPECT_NE(message_of(err).find("'no_such_op'"), std::string::npos);
  EXPECT_NE(message_of(err).find("unknown opcode"), std::string::npos);
  auto run = execute(g, {scalar<double>(1)}, *registry);
  EXPECT_TRUE(fails_naming(run, "no_such_op", "unknown opcode"));
  // An embedder's registry without built-ins knows only its own ops.
  op_registry only_user;
  EXPECT_FALSE(only_user.add({"axpb", 1, 1, 1, axpb_check, axpb, false}));
  EXPECT_TRUE(fails_naming(
      run_op("add", {scalar<double>(1), scalar<double>(2)}, {}, 1, only_user),
      "add", "unknown opcode"));
  EXPECT_EQ(vals<double>(run_op("axpb", {tens<double>({1}, {1})},
                                {make_attr("factor", 3)}, 1, only_user)
                             ->front()),
            (std::vector<double>{4}));
}

TEST(user_ops, registration_errors) {
  op_registry r;
  EXPECT_EQ(code_of(r.add({"", 0, 0, 1, {}, axpb, false})),
            errc::invalid_argument);
  EXPECT_EQ(code_of(r.add({"nokernel", 0, 0, 1, {}, {}, false})),
            errc::invalid_argument);
  EXPECT_FALSE(r.add({"axpb", 1, 1, 1, axpb_check, axpb, false}));
  EXPECT_EQ(code_of(r.add({"axpb", 1, 1, 1, {}, axpb, false})),
            errc::invalid_argument);
  auto builtins = op_registry::with_builtins();
  EXPECT_EQ(code_of(builtins->add({"add", 2, 2, 1, {}, axpb, false})),
            errc::invalid_argument);
}

TEST(user_ops, throwing_kernels_become_op_failed) {
  op_registry r;
  EXPECT_FALSE(
      r.add({"boom",
             0,
             0,
             1,
             {},
             [](kernel_context&, std::span<const value_ptr>) -> kernel_result {
               throw std::runtime_error("kaboom");
             },
             false}));
  EXPECT_TRUE(fails_naming(run_op("boom", {}, {}, 1, r), "boom", "kaboom"));
}

namespace {

struct quota_exceeded : std::runtime_error {
  quota_exceeded() : std::runtime_error("quota of 3 rows") {}
};

struct silent_error : std::exception {
  const char* what() const noexcept override { return nullptr; }
};

struct not_an_exception {};

/// An op "<name>" whose kernel (or, for "<name>_check", whose check
/// function) runs `raise`.
void add_thrower(op_registry& r, const std::string& name,
                 std::function<void()> raise) {
  auto kernel
      = [raise](kernel_context&, std::span<const value_ptr>) -> kernel_result {
    raise();
    return std::vector<value_ptr>{};
  };
  EXPECT_FALSE(r.add({name, 0, 0, 1, {}, kernel, false}));
  auto check = [raise](const op&, std::span<const value_ptr>) -> caf::error {
    raise();
    return {};
  };
  EXPECT_FALSE(r.add({name + "_check", 0, 0, 1, check, kernel, false}));
}

} // namespace

TEST(user_ops, exceptions_keep_their_type_and_message_in_op_failed) {
  op_registry r;
  add_thrower(r, "range", [] { (void)std::vector<int>{}.at(1); });
  add_thrower(r, "quota", [] { throw quota_exceeded{}; });
  add_thrower(r, "silent", [] { throw silent_error{}; });
  add_thrower(r, "odd", [] { throw not_an_exception{}; });
  add_thrower(r, "number", [] { throw 17L; });
  for (auto suffix : {"", "_check"}) {
    SCOPED_TRACE(suffix[0] == 0 ? "kernel throws" : "check throws");
    auto op = [&](const char* name) {
      return std::string{name} + suffix;
    };
    EXPECT_TRUE(
        fails_naming(run_op(op("range"), {}, {}, 1, r), op("range"),
                     "threw std::out_of_range: vector::_M_range_check"));
    EXPECT_TRUE(fails_naming(run_op(op("quota"), {}, {}, 1, r), op("quota"),
                             "quota_exceeded: quota of 3 rows"));
    EXPECT_TRUE(fails_naming(run_op(op("silent"), {}, {}, 1, r), op("silent"),
                             "silent_error: (null message)"));
    EXPECT_TRUE(
        fails_naming(run_op(op("odd"), {}, {}, 1, r), op("odd"),
                     "not_an_exception (not a std::exception, no message)"));
    EXPECT_TRUE(fails_naming(run_op(op("number"), {}, {}, 1, r), op("number"),
                             "long: 17 (not a std::exception)"));
  }
}

TEST(user_ops, builtin_names_are_registered) {
  auto names = op_registry::with_builtins()->names();
  for (auto name : {"identity",
                    "reveal",
                    "checksum",
                    "sleep",
                    "add",
                    "sub",
                    "mul",
                    "div",
                    "neg",
                    "minimum",
                    "maximum",
                    "eq",
                    "ne",
                    "lt",
                    "le",
                    "gt",
                    "ge",
                    "select",
                    "cast",
                    "sum",
                    "mean",
                    "min",
                    "max",
                    "matmul",
                    "reshape",
                    "slice",
                    "concat",
                    "transpose",
                    "constant",
                    "iota",
                    "random_uniform",
                    "make_table",
                    "column",
                    "num_rows",
                    "select_columns",
                    "filter",
                    "sort_by_key",
                    "hash_partition",
                    "group_sum",
                    "join"})
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
}

} // namespace

namespace {

/// A graph applying `opcode` to `n` fresh inputs, `repeat` times in a chain.
graph chain(const std::string& opcode, size_t n, size_t repeat = 1) {
  graph_builder b;
  std::vector<value_id> xs;
  for (size_t i = 0; i < n; ++i)
    xs.push_back(b.input());
  auto y = b.add(opcode, xs);
  for (size_t i = 1; i < repeat; ++i) {
    auto ys = xs;
    ys[0] = y;
    y = b.add(opcode, ys);
  }
  b.output(y);
  return b.build();
}

std::vector<value_ptr> doubles(size_t count, size_t n) {
  return std::vector<value_ptr>(
      count, tens<double>({static_cast<int64_t>(n)}, std::vector<double>(n)));
}

} // namespace

TEST(user_ops, only_small_flat_linear_graphs_run_on_the_worker_thread) {
  auto registry = user_registry();
  EXPECT_TRUE(
      registry->add({"linear_axpb", 1, 1, 1, axpb_check, axpb, false, true})
      == caf::error{});
  // Built-in elementwise ops over small inputs: inline.
  EXPECT_TRUE(runs_on_worker_thread(chain("add", 2), doubles(2, 8), *registry));
  EXPECT_TRUE(
      runs_on_worker_thread(chain("add", 2, 32), doubles(2, 8), *registry));
  EXPECT_TRUE(
      runs_on_worker_thread(chain("linear_axpb", 1), doubles(1, 8), *registry));
  // More than 32 ops, or more than 64 KiB of input: a task actor.
  EXPECT_FALSE(
      runs_on_worker_thread(chain("add", 2, 33), doubles(2, 8), *registry));
  EXPECT_TRUE(
      runs_on_worker_thread(chain("add", 2), doubles(2, 4096), *registry));
  EXPECT_FALSE(
      runs_on_worker_thread(chain("add", 2), doubles(2, 4097), *registry));
  // An fs:// input (not resolved yet: disk IO) or a region: a task actor.
  auto inputs = doubles(2, 8);
  inputs[1] = nullptr;
  EXPECT_FALSE(runs_on_worker_thread(chain("add", 2), inputs, *registry));
  auto nested = chain("add", 2);
  nested.ops[0].regions.push_back(chain("add", 2));
  EXPECT_FALSE(runs_on_worker_thread(nested, doubles(2, 8), *registry));
  // User ops are not linear unless they say so; neither are ops whose
  // work or output is not bounded by the input size.
  EXPECT_FALSE(
      runs_on_worker_thread(chain("axpb", 1), doubles(1, 8), *registry));
  EXPECT_FALSE(
      runs_on_worker_thread(chain("matmul", 2), doubles(2, 8), *registry));
  EXPECT_FALSE(
      runs_on_worker_thread(chain("join", 2), doubles(2, 8), *registry));
  EXPECT_FALSE(
      runs_on_worker_thread(chain("sleep", 1), doubles(1, 8), *registry));
  EXPECT_FALSE(runs_on_worker_thread(chain("iota", 0), {}, *registry));
  EXPECT_FALSE(runs_on_worker_thread(chain("hash_partition", 1), doubles(1, 8),
                                     *registry));
  EXPECT_FALSE(
      runs_on_worker_thread(chain("no_such_op", 1), doubles(1, 8), *registry));
}

} // namespace
} // namespace user_ops_test_file
