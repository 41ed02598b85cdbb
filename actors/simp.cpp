#include "actors/simp.hpp"

#include <unordered_map>

#include "actors/driver.hpp"
#include "store/error.hpp"

namespace objstore {

namespace {

constexpr std::string_view simp_ops[]
    = {"pcall_static", "pcall_dynamic", "converge",
       "uniform_cond", "while_loop",    "shuffle"};

caf::error simp_error(const op& x, const std::string& why) {
  return make_error(errc::op_failed, "op '" + x.opcode + "': " + why);
}

/// Fetches a scalar predicate from every party holding it.
caf::expected<bool> read_predicate(driver& d, const op& x, const host_var& p,
                                   bool verify) {
  auto parties = p.parties();
  if (parties.empty())
    return simp_error(x, "predicate has no value on any party");
  std::optional<bool> first;
  uint32_t first_rank = 0;
  for (auto r : parties) {
    auto v = d.fetch(p, r);
    if (!v)
      return simp_error(x, "cannot read predicate on rank " + std::to_string(r)
                               + ": " + describe(v.error()));
    if (!(*v)->is_tensor() || (*v)->as_tensor().num_elements() != 1)
      return simp_error(x, "predicate on rank " + std::to_string(r)
                               + " is not a scalar tensor");
    auto& t = (*v)->as_tensor();
    bool truth = false;
    for (auto b : t.data()->bytes())
      truth = truth || b != std::byte{0};
    if (t.type() == dtype::float32)
      truth = t.values<float>()[0] != 0.0f;
    else if (t.type() == dtype::float64)
      truth = t.values<double>()[0] != 0.0;
    if (!first) {
      first = truth;
      first_rank = r;
      if (!verify)
        break;
    } else if (*first != truth) {
      return simp_error(
          x, "predicate is not uniform: rank " + std::to_string(first_rank)
                 + " has " + (*first ? "true" : "false") + ", rank "
                 + std::to_string(r) + " has " + (truth ? "true" : "false"));
    }
  }
  return *first;
}

class simp_interpreter {
public:
  explicit simp_interpreter(driver& d) : d_(d) {}

  caf::expected<std::vector<host_var>> run(const graph& g,
                                           std::vector<host_var> inputs) {
    if (inputs.size() != g.inputs.size())
      return make_error(errc::op_failed,
                        "SIMP graph takes " + std::to_string(g.inputs.size())
                            + " inputs, got " + std::to_string(inputs.size()));
    auto dead = dead_after(g);
    std::unordered_map<value_id, host_var> env;
    for (size_t i = 0; i < inputs.size(); ++i)
      env[g.inputs[i]] = std::move(inputs[i]);
    for (size_t i = 0; i < g.ops.size(); ++i) {
      auto& x = g.ops[i];
      std::vector<host_var> args;
      for (auto id : x.inputs)
        args.push_back(env.at(id));
      auto outs = step(x, std::move(args));
      if (!outs)
        return std::move(outs.error());
      if (outs->size() != x.outputs.size())
        return simp_error(x, "produced " + std::to_string(outs->size())
                                 + " values, graph declares "
                                 + std::to_string(x.outputs.size()));
      // Drop intermediates after their last use: releases their objects.
      for (auto id : dead[i])
        env.erase(id);
      for (size_t k = 0; k < outs->size(); ++k)
        env[x.outputs[k]] = std::move((*outs)[k]);
    }
    std::vector<host_var> result;
    for (auto id : g.outputs)
      result.push_back(env.at(id));
    return result;
  }

private:
  caf::expected<std::vector<host_var>> step(const op& x,
                                            std::vector<host_var> args) {
    if (x.opcode == "pcall_static" || x.opcode == "pcall_dynamic") {
      if (x.regions.size() != 1)
        return simp_error(x, "needs exactly one region (the body)");
      std::vector<uint32_t> parties;
      if (x.opcode == "pcall_static") {
        auto listed = x.attr_i64s("parties");
        if (!listed)
          return std::move(listed.error());
        for (auto p : *listed) {
          if (p < 0 || static_cast<size_t>(p) >= d_.world_size())
            return simp_error(x, "party " + std::to_string(p)
                                     + " outside the world of "
                                     + std::to_string(d_.world_size()));
          parties.push_back(static_cast<uint32_t>(p));
        }
        if (parties.empty())
          return simp_error(x, "empty party list");
      }
      auto outs = d_.run(x.regions[0], args, parties);
      if (!outs)
        return std::move(outs.error());
      return outs;
    }
    if (x.opcode == "converge") {
      if (args.empty())
        return simp_error(x, "needs at least one input");
      host_var out{d_.world_size()};
      for (size_t i = 0; i < args.size(); ++i)
        for (auto r : args[i].parties()) {
          if (out.has(r))
            return simp_error(x, "inputs overlap on rank " + std::to_string(r)
                                     + " (input #" + std::to_string(i) + ")");
          out.set(r, args[i].part(r));
        }
      return std::vector<host_var>{std::move(out)};
    }
    if (x.opcode == "uniform_cond") {
      if (x.regions.size() != 2)
        return simp_error(x, "needs two regions (then, else)");
      if (args.empty())
        return simp_error(x, "needs a predicate input");
      auto truth = read_predicate(d_, x, args[0],
                                  x.attr_i64_or("verify_uniform", 0) != 0);
      if (!truth)
        return std::move(truth.error());
      std::vector<host_var> branch_args(args.begin() + 1, args.end());
      return run(x.regions[*truth ? 0 : 1], std::move(branch_args));
    }
    if (x.opcode == "while_loop") {
      if (x.regions.size() != 2)
        return simp_error(x, "needs two regions (cond, body)");
      auto num_state = static_cast<size_t>(
          x.attr_i64_or("num_state", static_cast<int64_t>(args.size())));
      if (num_state > args.size())
        return simp_error(x, "num_state exceeds the inputs");
      auto max_iter = x.attr_i64_or("max_iterations", 1'000'000);
      std::vector<host_var> state(args.begin(), args.begin() + num_state);
      std::vector<host_var> captures(args.begin() + num_state, args.end());
      for (int64_t iter = 0;; ++iter) {
        if (iter >= max_iter)
          return simp_error(x, "exceeded max_iterations="
                                   + std::to_string(max_iter));
        auto cond_args = state;
        cond_args.insert(cond_args.end(), captures.begin(), captures.end());
        auto pred = run(x.regions[0], std::move(cond_args));
        if (!pred)
          return std::move(pred.error());
        if (pred->size() != 1)
          return simp_error(x, "cond region must yield one predicate");
        auto truth = read_predicate(d_, x, (*pred)[0],
                                    x.attr_i64_or("verify_uniform", 0) != 0);
        if (!truth)
          return std::move(truth.error());
        if (!*truth)
          return state;
        auto body_args = std::move(state);
        body_args.insert(body_args.end(), captures.begin(), captures.end());
        auto next = run(x.regions[1], std::move(body_args));
        if (!next)
          return std::move(next.error());
        if (next->size() != num_state)
          return simp_error(x, "body must yield " + std::to_string(num_state)
                                   + " state values");
        state = std::move(*next);
      }
    }
    if (x.opcode == "shuffle") {
      if (args.size() != 1)
        return simp_error(x, "takes exactly one input");
      auto routing = x.attr_i64s("routing");
      if (!routing)
        return std::move(routing.error());
      auto out = d_.shuffle(args[0], *routing);
      if (!out)
        return std::move(out.error());
      return std::vector<host_var>{std::move(*out)};
    }
    // A local op at the SIMP level runs on every party holding its inputs.
    graph single;
    for (size_t i = 0; i < x.inputs.size(); ++i)
      single.inputs.push_back(static_cast<value_id>(i));
    op local = x;
    for (size_t i = 0; i < local.inputs.size(); ++i)
      local.inputs[i] = static_cast<value_id>(i);
    for (size_t k = 0; k < local.outputs.size(); ++k) {
      local.outputs[k] = static_cast<value_id>(x.inputs.size() + k);
      single.outputs.push_back(local.outputs[k]);
    }
    single.ops.push_back(std::move(local));
    return d_.run(single, args);
  }

  driver& d_;
};

} // namespace

bool is_simp_op(std::string_view opcode) {
  for (auto name : simp_ops)
    if (name == opcode)
      return true;
  return false;
}

bool has_simp_ops(const graph& g) {
  for (auto& x : g.ops)
    if (is_simp_op(x.opcode))
      return true;
  return false;
}

caf::expected<std::vector<host_var>>
run_simp(driver& d, const graph& g, const std::vector<host_var>& inputs) {
  if (auto err = validate_structure(g))
    return err;
  simp_interpreter interp{d};
  return interp.run(g, inputs);
}

} // namespace objstore
