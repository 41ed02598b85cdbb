#include "actors/exec/interpreter.hpp"

#include <cstdlib>
#include <cxxabi.h>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>

#include "store/error.hpp"

namespace objstore {

namespace {

/// The demangled type of the exception being handled.
std::string current_exception_type() {
  auto* type = abi::__cxa_current_exception_type();
  if (type == nullptr)
    return "unknown type";
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> readable{
      abi::__cxa_demangle(type->name(), nullptr, nullptr, &status), &std::free};
  return status == 0 && readable ? readable.get() : type->name();
}

template<class Integer>
std::string integer_text(Integer x) {
  return " " + std::to_string(x) + " (not a std::exception)";
}

} // namespace

std::string current_exception_text() {
  auto name = current_exception_type();
  try {
    throw;
  } catch (const std::exception& ex) {
    // A user type may override what() to return null.
    const char* what = ex.what();
    auto text = name + ": " + (what != nullptr ? what : "(null message)");
    try {
      std::rethrow_if_nested(ex);
    } catch (...) {
      text += " [nested: " + current_exception_text() + "]";
    }
    return text;
  } catch (const char* what) {
    return name + ": " + (what != nullptr ? what : "(null)")
           + " (not a std::exception)";
  } catch (const std::string& what) {
    // The demangled name (std::__cxx11::basic_string<char, ...>) says less.
    return "std::string: " + what + " (not a std::exception)";
  } catch (int x) {
    return name + ":" + integer_text(x);
  } catch (long x) {
    return name + ":" + integer_text(x);
  } catch (long long x) {
    return name + ":" + integer_text(x);
  } catch (unsigned x) {
    return name + ":" + integer_text(x);
  } catch (unsigned long x) {
    return name + ":" + integer_text(x);
  } catch (unsigned long long x) {
    return name + ":" + integer_text(x);
  } catch (...) {
    return name + " (not a std::exception, no message)";
  }
}

namespace {

caf::error op_error(size_t index, const op& x, const std::string& why) {
  return make_error(errc::op_failed, "op #" + std::to_string(index) + " '"
                                         + x.opcode + "': " + why);
}

caf::error validate_ops(const graph& g, const op_registry& registry) {
  for (size_t i = 0; i < g.ops.size(); ++i) {
    auto& x = g.ops[i];
    auto def = registry.find(x.opcode);
    if (def == nullptr)
      return op_error(i, x, "unknown opcode");
    auto n = x.inputs.size();
    if (n < def->min_inputs || n > def->max_inputs)
      return op_error(i, x,
                      "takes " + std::to_string(def->min_inputs)
                          + (def->max_inputs == SIZE_MAX
                                 ? "+"
                                 : ".." + std::to_string(def->max_inputs))
                          + " inputs, got " + std::to_string(n));
    if (def->num_outputs != SIZE_MAX && x.outputs.size() != def->num_outputs)
      return op_error(i, x,
                      "has " + std::to_string(def->num_outputs)
                          + " outputs, graph declares "
                          + std::to_string(x.outputs.size()));
    for (auto& region : x.regions)
      if (auto err = validate_ops(region, registry))
        return op_error(i, x, "in region: " + describe(err));
  }
  return {};
}

} // namespace

caf::error validate(const graph& g, const op_registry& registry) {
  if (auto err = validate_structure(g))
    return err;
  return validate_ops(g, registry);
}

caf::expected<std::vector<value_ptr>>
kernel_context::run_region(size_t index, std::vector<value_ptr> inputs) const {
  if (index >= node_.regions.size())
    return fail("has no region #" + std::to_string(index));
  auto out
      = execute(node_.regions[index], std::move(inputs), registry_, cancel_);
  if (!out)
    return std::move(out.error());
  return std::move(out->outputs);
}

caf::error kernel_context::fail(const std::string& why) const {
  return make_error(errc::op_failed, "op '" + node_.opcode + "': " + why);
}

caf::expected<run_outcome> execute(const graph& g,
                                   std::vector<value_ptr> inputs,
                                   const op_registry& registry,
                                   cancel_flags cancel) {
  if (inputs.size() != g.inputs.size())
    return make_error(errc::op_failed,
                      "graph takes " + std::to_string(g.inputs.size())
                          + " inputs, got " + std::to_string(inputs.size()));
  auto dead = dead_after(g); // intermediates to free after each op
  std::unordered_map<value_id, value_ptr> env;
  std::unordered_set<value_id> revealed;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i])
      return make_error(errc::invalid_argument,
                        "graph input #" + std::to_string(i) + " is null");
    env[g.inputs[i]] = std::move(inputs[i]);
  }
  std::vector<value_ptr> args;
  for (size_t i = 0; i < g.ops.size(); ++i) {
    auto& x = g.ops[i];
    if (cancel.requested())
      return make_error(errc::cancelled, "run cancelled before op #"
                                             + std::to_string(i) + " '"
                                             + x.opcode + "'");
    auto def = registry.find(x.opcode);
    if (def == nullptr)
      return op_error(i, x, "unknown opcode");
    args.clear();
    for (auto id : x.inputs) {
      auto v = env.find(id);
      if (v == env.end())
        return op_error(i, x, "input %" + std::to_string(id) + " undefined");
      args.push_back(v->second);
    }
    kernel_context ctx{x, registry, cancel};
    kernel_result result = std::vector<value_ptr>{};
    try {
      if (def->check)
        if (auto err = def->check(x, args))
          return err;
      result = def->kernel(ctx, args);
    } catch (const allocation_limit_exceeded& ex) {
      return make_error(errc::resource_exhausted, "op #" + std::to_string(i)
                                                      + " '" + x.opcode
                                                      + "': " + ex.what());
    } catch (const std::bad_alloc&) {
      return make_error(errc::resource_exhausted,
                        "op #" + std::to_string(i) + " '" + x.opcode
                            + "': out of memory (" + current_exception_text()
                            + ")");
    } catch (...) {
      // Any type, std::exception or not (a user op's `throw 42`): the
      // worker keeps serving and the error names what was thrown.
      return op_error(i, x, "threw " + current_exception_text());
    }
    if (!result)
      return std::move(result.error());
    if (result->size() != x.outputs.size())
      return op_error(i, x,
                      "kernel produced " + std::to_string(result->size())
                          + " outputs, graph declares "
                          + std::to_string(x.outputs.size()));
    args.clear();
    for (auto id : dead[i])
      env.erase(id);
    for (size_t k = 0; k < x.outputs.size(); ++k) {
      if (!(*result)[k])
        return op_error(i, x, "kernel produced a null output");
      env[x.outputs[k]] = std::move((*result)[k]);
      if (def->reveals)
        revealed.insert(x.outputs[k]);
    }
  }
  run_outcome out;
  for (auto id : g.outputs) {
    auto v = env.find(id);
    if (v == env.end())
      return make_error(errc::op_failed,
                        "graph output %" + std::to_string(id) + " undefined");
    out.outputs.push_back(v->second);
    out.revealed.push_back(revealed.count(id) > 0);
  }
  return out;
}

} // namespace objstore
