// libFuzzer target: graph validation. Deserializes a graph from CAF's
// binary format (as it arrives in a task_request), validates it
// (validate_structure, then validate against the built-in ops) and, when
// valid, executes it on fixed small inputs under a 1 MiB allocation limit
// (the worker's object size limit), the kernels seeing fuzzed attributes.
//
// Invariants: nothing throws, crashes or hangs; validation errors are
// op_failed; validate() fails whenever validate_structure() does; a
// deserialized graph serializes back to the same bytes; execution fails only
// with op_failed, invalid_argument or resource_exhausted and yields one value
// per graph output.

#include "actors/exec/interpreter.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace objstore;

namespace {

/// Values bound to graph inputs, by input position (modulo).
const std::vector<value_ptr>& sample_inputs() {
  static const std::vector<value_ptr> xs = [] {
    std::vector<value_ptr> out;
    out.push_back(
        make_value(tensor::from<int64_t>({2, 3}, {1, 2, 3, 4, 5, 6})));
    out.push_back(make_value(tensor::from<double>({3}, {0.5, -1.0, 2.0})));
    out.push_back(make_value(tensor::from<bool>({3}, {true, false, true})));
    auto tbl = table::make({{"k", tensor::from<int64_t>({4}, {1, 2, 1, 3})},
                            {"v", tensor::from<double>({4}, {1, 2, 3, 4})}});
    out.push_back(make_value(std::move(*tbl)));
    out.push_back(make_value(blob::copy_of("opaque")));
    out.push_back(make_value(tensor::from<int32_t>({}, {7})));
    return out;
  }();
  return xs;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto registry = fuzz::fuzz_registry();
  graph g;
  if (!fuzz::load(data, size, g))
    return 0;
  auto buf = fuzz::save(g);
  graph copy;
  OBJSTORE_FUZZ_CHECK(fuzz::load(reinterpret_cast<const uint8_t*>(buf.data()),
                                 buf.size(), copy),
                      "graph does not round-trip");
  // Compared as bytes: a NaN attribute never equals itself.
  OBJSTORE_FUZZ_CHECK(fuzz::save(copy) == buf, "graph round trip changed it");
  auto structural = validate_structure(g);
  auto full = validate(g, *registry);
  if (structural) {
    OBJSTORE_FUZZ_CHECK(code_of(structural) == errc::op_failed,
                        describe(structural));
    OBJSTORE_FUZZ_CHECK(full, "validate accepts what validate_structure "
                              "refuses");
  }
  if (full) {
    OBJSTORE_FUZZ_CHECK(code_of(full) == errc::op_failed, describe(full));
    return 0;
  }
  (void)op_count(g);
  if (op_count(g) > 64)
    return 0; // keeps each run short; the worker target covers limits
  auto& samples = sample_inputs();
  std::vector<value_ptr> inputs;
  for (size_t i = 0; i < g.inputs.size(); ++i)
    inputs.push_back(samples[i % samples.size()]);
  scoped_allocation_limit cap{1u << 20};
  auto out = execute(g, std::move(inputs), *registry);
  if (!out) {
    auto code = code_of(out.error());
    OBJSTORE_FUZZ_CHECK(code == errc::op_failed
                            || code == errc::invalid_argument
                            || code == errc::resource_exhausted,
                        describe(out.error()));
    return 0;
  }
  OBJSTORE_FUZZ_CHECK(out->outputs.size() == g.outputs.size(), "output count");
  for (auto& x : out->outputs)
    OBJSTORE_FUZZ_CHECK(x != nullptr, "null output");
  return 0;
}
