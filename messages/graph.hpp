#pragma once

#include <bit>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <caf/deserializer.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/serializer.hpp>

namespace objstore {

/// Identifies one SSA value inside a graph (and its regions).
using value_id = uint32_t;

enum class attr_type : uint8_t { i64, f64, str, i64s, f64s, strs };

/// A typed op attribute. Exactly the member named by `type` is meaningful.
struct attribute {
  std::string name;
  attr_type type = attr_type::i64;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strs;

  friend bool operator==(const attribute&, const attribute&) = default;
};

attribute make_attr(std::string name, int64_t x);
attribute make_attr(std::string name, int x);
attribute make_attr(std::string name, double x);
attribute make_attr(std::string name, std::string x);
attribute make_attr(std::string name, const char* x);
attribute make_attr(std::string name, std::vector<int64_t> xs);
attribute make_attr(std::string name, std::vector<double> xs);
attribute make_attr(std::string name, std::vector<std::string> xs);

struct graph;

/// One operation: `outputs = opcode(inputs; attrs; regions)`.
struct op {
  std::string opcode;
  std::vector<value_id> inputs;
  std::vector<value_id> outputs;
  std::vector<attribute> attrs;
  std::vector<graph> regions;

  /// Returns the attribute `name` of type `t`, or nullptr.
  const attribute* find_attr(std::string_view name, attr_type t) const;

  /// Typed attribute access; errors are `op_failed` naming op and attr.
  caf::expected<int64_t> attr_i64(std::string_view name) const;
  caf::expected<double> attr_f64(std::string_view name) const;
  caf::expected<std::string> attr_str(std::string_view name) const;
  caf::expected<std::vector<int64_t>> attr_i64s(std::string_view name) const;
  caf::expected<std::vector<double>> attr_f64s(std::string_view name) const;
  caf::expected<std::vector<std::string>>
  attr_strs(std::string_view name) const;

  /// Attribute with a default when absent.
  int64_t attr_i64_or(std::string_view name, int64_t fallback) const;
  std::string attr_str_or(std::string_view name, std::string fallback) const;

  friend bool operator==(const op&, const op&);
};

/// A flat SSA list of ops with graph inputs and outputs (value ids). Ops run
/// in list order; every value is defined once, before its first use.
struct graph {
  std::vector<value_id> inputs;
  std::vector<op> ops;
  std::vector<value_id> outputs;

  friend bool operator==(const graph&, const graph&);
};

/// Structural validation: every value defined exactly once (graph input or
/// op output), every use after its definition (so no cycles), outputs
/// defined; regions validated recursively in their own scope. Errors are
/// `op_failed` naming the op index and opcode.
caf::error validate_structure(const graph& g);

/// Number of ops including those in regions (a size limit measure).
size_t op_count(const graph& g);

/// For each op index, the values whose last use is that op (graph outputs
/// excluded): what an interpreter drops right after running it.
std::vector<std::vector<value_id>> dead_after(const graph& g);

/// Builds graphs in a readable way:
///
///   graph_builder b;
///   auto x = b.input();
///   auto y = b.add("mul", {x, x});
///   b.output(b.add("sum", {y}, {make_attr("axis", 0)}));
///   graph g = b.build();
class graph_builder {
public:
  /// Declares a new graph input.
  value_id input();

  /// Appends an op with one output and returns it.
  value_id add(std::string opcode, std::vector<value_id> inputs,
               std::vector<attribute> attrs = {},
               std::vector<graph> regions = {});

  /// Appends an op with `num_outputs` outputs and returns them.
  std::vector<value_id> add_n(std::string opcode, std::vector<value_id> inputs,
                              size_t num_outputs,
                              std::vector<attribute> attrs = {},
                              std::vector<graph> regions = {});

  /// Marks `x` as a graph output.
  void output(value_id x);

  graph build() const { return g_; }

private:
  value_id next_ = 0;
  graph g_;
};

/// Attributes travel with their doubles as IEEE-754 bit patterns: CAF
/// 0.17's own float encoding (detail::pack754) loops forever on +-infinity
/// and converts NaN to an integer (undefined behaviour), so a graph with
/// `constant(value = inf)` would hang the sender's network thread.
template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, attribute& x) {
  constexpr bool saving = std::is_base_of_v<caf::serializer, Inspector>;
  constexpr bool loading = std::is_base_of_v<caf::deserializer, Inspector>;
  if constexpr (saving || loading) {
    auto bits = std::bit_cast<uint64_t>(x.f);
    std::vector<uint64_t> floats;
    floats.reserve(saving ? x.floats.size() : 0);
    if constexpr (saving)
      for (auto v : x.floats)
        floats.push_back(std::bit_cast<uint64_t>(v));
    auto err = f(caf::meta::type_name("objstore::attribute"), x.name, x.type,
                 x.i, bits, x.s, x.ints, floats, x.strs);
    if constexpr (loading) {
      x.f = std::bit_cast<double>(bits);
      x.floats.clear();
      x.floats.reserve(floats.size());
      for (auto v : floats)
        x.floats.push_back(std::bit_cast<double>(v));
    }
    return err;
  } else {
    return f(caf::meta::type_name("objstore::attribute"), x.name, x.type, x.i,
             x.f, x.s, x.ints, x.floats, x.strs);
  }
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, graph& x);

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, op& x) {
  return f(caf::meta::type_name("objstore::op"), x.opcode, x.inputs, x.outputs,
           x.attrs, x.regions);
}

/// Deepest region nesting a graph may have on the wire. Decoding recurses
/// once per level, so a crafted message nesting a million regions in a few
/// megabytes would overflow the receiving thread's stack; deeper graphs
/// fail to deserialize (`resource_exhausted`). validate_structure accepts
/// only 32 levels anyway.
constexpr int max_graph_nesting = 64;

namespace detail {

/// Nesting depth of the graph being deserialized on this thread.
inline thread_local int graph_load_depth = 0;

caf::error graph_too_deep();

} // namespace detail

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, graph& x) {
  if constexpr (std::is_base_of_v<caf::deserializer, Inspector>) {
    if (detail::graph_load_depth >= max_graph_nesting)
      return detail::graph_too_deep();
    struct depth_guard {
      depth_guard() { ++detail::graph_load_depth; }
      ~depth_guard() { --detail::graph_load_depth; }
    } guard;
    return f(caf::meta::type_name("objstore::graph"), x.inputs, x.ops,
             x.outputs);
  } else {
    return f(caf::meta::type_name("objstore::graph"), x.inputs, x.ops,
             x.outputs);
  }
}

} // namespace objstore
