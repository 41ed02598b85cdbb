#include "messages/graph.hpp"

#include <unordered_map>
#include <unordered_set>

#include "store/error.hpp"

namespace objstore {

attribute make_attr(std::string name, int64_t x) {
  attribute a;
  a.name = std::move(name);
  a.type = attr_type::i64;
  a.i = x;
  return a;
}

attribute make_attr(std::string name, int x) {
  return make_attr(std::move(name), static_cast<int64_t>(x));
}

attribute make_attr(std::string name, double x) {
  attribute a;
  a.name = std::move(name);
  a.type = attr_type::f64;
  a.f = x;
  return a;
}

attribute make_attr(std::string name, std::string x) {
  attribute a;
  a.name = std::move(name);
  a.type = attr_type::str;
  a.s = std::move(x);
  return a;
}

attribute make_attr(std::string name, const char* x) {
  return make_attr(std::move(name), std::string{x});
}

attribute make_attr(std::string name, std::vector<int64_t> xs) {
  attribute a;
  a.name = std::move(name);
  a.type = attr_type::i64s;
  a.ints = std::move(xs);
  return a;
}

attribute make_attr(std::string name, std::vector<double> xs) {
  attribute a;
  a.name = std::move(name);
  a.type = attr_type::f64s;
  a.floats = std::move(xs);
  return a;
}

attribute make_attr(std::string name, std::vector<std::string> xs) {
  attribute a;
  a.name = std::move(name);
  a.type = attr_type::strs;
  a.strs = std::move(xs);
  return a;
}

const attribute* op::find_attr(std::string_view name, attr_type t) const {
  for (auto& a : attrs)
    if (a.name == name && a.type == t)
      return &a;
  return nullptr;
}

namespace {

caf::error missing_attr(const op& x, std::string_view name,
                        std::string_view type) {
  return make_error(errc::op_failed, "op '" + x.opcode + "': missing "
                                         + std::string{type} + " attribute '"
                                         + std::string{name} + "'");
}

} // namespace

caf::expected<int64_t> op::attr_i64(std::string_view name) const {
  if (auto a = find_attr(name, attr_type::i64))
    return a->i;
  return missing_attr(*this, name, "int");
}

caf::expected<double> op::attr_f64(std::string_view name) const {
  if (auto a = find_attr(name, attr_type::f64))
    return a->f;
  if (auto a = find_attr(name, attr_type::i64))
    return static_cast<double>(a->i);
  return missing_attr(*this, name, "float");
}

caf::expected<std::string> op::attr_str(std::string_view name) const {
  if (auto a = find_attr(name, attr_type::str))
    return a->s;
  return missing_attr(*this, name, "string");
}

caf::expected<std::vector<int64_t>> op::attr_i64s(std::string_view name) const {
  if (auto a = find_attr(name, attr_type::i64s))
    return a->ints;
  return missing_attr(*this, name, "int list");
}

caf::expected<std::vector<double>> op::attr_f64s(std::string_view name) const {
  if (auto a = find_attr(name, attr_type::f64s))
    return a->floats;
  return missing_attr(*this, name, "float list");
}

caf::expected<std::vector<std::string>>
op::attr_strs(std::string_view name) const {
  if (auto a = find_attr(name, attr_type::strs))
    return a->strs;
  return missing_attr(*this, name, "string list");
}

int64_t op::attr_i64_or(std::string_view name, int64_t fallback) const {
  auto a = find_attr(name, attr_type::i64);
  return a ? a->i : fallback;
}

std::string op::attr_str_or(std::string_view name, std::string fallback) const {
  auto a = find_attr(name, attr_type::str);
  return a ? a->s : fallback;
}

bool operator==(const op& x, const op& y) {
  return x.opcode == y.opcode && x.inputs == y.inputs && x.outputs == y.outputs
         && x.attrs == y.attrs && x.regions == y.regions;
}

bool operator==(const graph& x, const graph& y) {
  return x.inputs == y.inputs && x.ops == y.ops && x.outputs == y.outputs;
}

namespace {

caf::error op_error(size_t index, const op& x, const std::string& why) {
  return make_error(errc::op_failed, "op #" + std::to_string(index) + " '"
                                         + x.opcode + "': " + why);
}

caf::error validate_scope(const graph& g, int depth) {
  if (depth > 32)
    return make_error(errc::op_failed, "regions nested deeper than 32");
  std::unordered_set<value_id> defined;
  for (auto id : g.inputs)
    if (!defined.insert(id).second)
      return make_error(errc::op_failed, "graph input %" + std::to_string(id)
                                             + " declared twice");
  for (size_t i = 0; i < g.ops.size(); ++i) {
    auto& x = g.ops[i];
    if (x.opcode.empty())
      return op_error(i, x, "empty opcode");
    for (auto id : x.inputs)
      if (defined.count(id) == 0)
        return op_error(i, x,
                        "uses %" + std::to_string(id)
                            + " before it is defined (undefined value"
                              " or cycle)");
    for (auto& region : x.regions)
      if (auto err = validate_scope(region, depth + 1))
        return op_error(i, x, "in region: " + describe(err));
    for (auto id : x.outputs)
      if (!defined.insert(id).second)
        return op_error(i, x, "redefines %" + std::to_string(id));
  }
  for (auto id : g.outputs)
    if (defined.count(id) == 0)
      return make_error(errc::op_failed, "graph output %" + std::to_string(id)
                                             + " is never defined");
  return {};
}

} // namespace

caf::error detail::graph_too_deep() {
  return make_error(errc::resource_exhausted,
                    "graph regions nested deeper than "
                        + std::to_string(max_graph_nesting)
                        + " levels (refused while decoding)");
}

caf::error validate_structure(const graph& g) {
  return validate_scope(g, 0);
}

size_t op_count(const graph& g) {
  size_t n = g.ops.size();
  for (auto& x : g.ops)
    for (auto& r : x.regions)
      n += op_count(r);
  return n;
}

std::vector<std::vector<value_id>> dead_after(const graph& g) {
  std::unordered_map<value_id, size_t> last_use;
  for (size_t i = 0; i < g.ops.size(); ++i)
    for (auto id : g.ops[i].inputs)
      last_use[id] = i;
  for (auto id : g.outputs)
    last_use.erase(id);
  std::vector<std::vector<value_id>> result(g.ops.size());
  for (auto [id, i] : last_use)
    result[i].push_back(id);
  return result;
}

value_id graph_builder::input() {
  auto id = next_++;
  g_.inputs.push_back(id);
  return id;
}

value_id graph_builder::add(std::string opcode, std::vector<value_id> inputs,
                            std::vector<attribute> attrs,
                            std::vector<graph> regions) {
  return add_n(std::move(opcode), std::move(inputs), 1, std::move(attrs),
               std::move(regions))
      .front();
}

std::vector<value_id> graph_builder::add_n(std::string opcode,
                                           std::vector<value_id> inputs,
                                           size_t num_outputs,
                                           std::vector<attribute> attrs,
                                           std::vector<graph> regions) {
  op x;
  x.opcode = std::move(opcode);
  x.inputs = std::move(inputs);
  x.attrs = std::move(attrs);
  x.regions = std::move(regions);
  for (size_t i = 0; i < num_outputs; ++i)
    x.outputs.push_back(next_++);
  auto outs = x.outputs;
  g_.ops.push_back(std::move(x));
  return outs;
}

void graph_builder::output(value_id x) {
  g_.outputs.push_back(x);
}

} // namespace objstore
