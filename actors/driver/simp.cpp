#include "actors/driver/simp.hpp"

#include <optional>
#include <unordered_map>

#include "actors/driver/driver.hpp"
#include "actors/driver/driver_calls.hpp"
#include "store/error.hpp"

namespace objstore {

namespace {

constexpr std::string_view simp_ops[]
    = {"pcall_static", "pcall_dynamic", "converge",
       "uniform_cond", "while_loop",    "shuffle"};

caf::error simp_error(const op& x, const std::string& why) {
  return make_error(errc::op_failed, "op '" + x.opcode + "': " + why);
}

/// The truth of a fetched scalar predicate.
caf::expected<bool> truth_of(const op& x, const value_ptr& v, uint32_t r) {
  if (!v || !v->is_tensor() || v->as_tensor().num_elements() != 1)
    return simp_error(x, "predicate on rank " + std::to_string(r)
                             + " is not a scalar tensor");
  auto& t = v->as_tensor();
  bool truth = false;
  for (auto b : t.data()->bytes())
    truth = truth || b != std::byte{0};
  if (t.type() == dtype::float32)
    truth = t.values<float>()[0] != 0.0f;
  else if (t.type() == dtype::float64)
    truth = t.values<double>()[0] != 0.0;
  return truth;
}

using vars = std::vector<host_var>;
using vars_fn = detail::then_fn<run_result>;

/// Interprets one SIMP program; lives as long as a callback of one of its
/// steps is pending. All state is touched on the driver actor only.
class simp_interpreter : public std::enable_shared_from_this<simp_interpreter> {
public:
  simp_interpreter(detail::driver_self self, graph program)
      : self_(self), root_(std::move(program)) {
    // nop
  }

  const graph& root() const { return root_; }

  /// Runs `g` (the root or one of its regions) on `inputs`.
  void run(const graph& g, vars inputs, vars_fn done) {
    if (inputs.size() != g.inputs.size()) {
      done(make_error(errc::op_failed,
                      "SIMP graph takes " + std::to_string(g.inputs.size())
                          + " inputs, got " + std::to_string(inputs.size())));
      return;
    }
    auto fr = std::make_shared<frame>();
    fr->g = &g;
    fr->dead = dead_after(g);
    fr->done = std::move(done);
    for (size_t i = 0; i < inputs.size(); ++i)
      fr->env[g.inputs[i]] = std::move(inputs[i]);
    advance(fr);
  }

private:
  struct frame {
    const graph* g = nullptr;
    std::vector<std::vector<value_id>> dead;
    std::unordered_map<value_id, host_var> env;
    size_t next = 0;
    bool stepping = false; // inside advance(): completions only mark `again`
    bool again = false;
    bool failed = false;
    vars_fn done;
  };

  /// Steps through the ops of a frame. A step that completes at once
  /// continues the loop instead of recursing.
  void advance(const std::shared_ptr<frame>& fr) {
    if (fr->stepping) {
      fr->again = true;
      return;
    }
    fr->stepping = true;
    do {
      fr->again = false;
      if (fr->failed)
        break;
      auto& g = *fr->g;
      if (fr->next == g.ops.size()) {
        run_result result;
        for (auto id : g.outputs)
          result.outputs.push_back(fr->env.at(id));
        fr->failed = true; // done: nothing runs after this
        auto done = std::move(fr->done);
        done(std::move(result));
        break;
      }
      auto i = fr->next;
      auto& x = g.ops[i];
      vars args;
      for (auto id : x.inputs)
        args.push_back(fr->env.at(id));
      auto self = shared_from_this();
      step(x, std::move(args), [self, fr, i](caf::expected<run_result> outs) {
        if (fr->failed)
          return;
        auto& x = fr->g->ops[i];
        if (!outs) {
          fr->failed = true;
          fr->done(std::move(outs.error()));
          return;
        }
        if (outs->outputs.size() != x.outputs.size()) {
          fr->failed = true;
          fr->done(simp_error(x, "produced "
                                     + std::to_string(outs->outputs.size())
                                     + " values, graph declares "
                                     + std::to_string(x.outputs.size())));
          return;
        }
        // Drop intermediates after their last use: releases their objects.
        for (auto id : fr->dead[i])
          fr->env.erase(id);
        for (size_t k = 0; k < x.outputs.size(); ++k)
          fr->env[x.outputs[k]] = std::move(outs->outputs[k]);
        fr->next = i + 1;
        self->advance(fr);
      });
    } while (fr->again);
    fr->stepping = false;
  }

  size_t world_size() const { return self_->state.workers.size(); }

  /// Fetches a scalar predicate from every party holding it (all at once).
  void read_predicate(const op& x, const host_var& p, bool verify,
                      std::function<void(caf::expected<bool>)> done) {
    auto parties = p.parties();
    if (parties.empty()) {
      done(simp_error(x, "predicate has no value on any party"));
      return;
    }
    if (!verify)
      parties.resize(1);
    struct acc_t {
      std::vector<std::optional<bool>> truths;
      size_t left = 0;
      bool failed = false;
    };
    auto acc = std::make_shared<acc_t>();
    acc->truths.resize(parties.size());
    acc->left = parties.size();
    auto shared_done = std::make_shared<decltype(done)>(std::move(done));
    for (size_t k = 0; k < parties.size(); ++k) {
      auto r = parties[k];
      auto fail = [acc, shared_done, &x, r](const std::string& why) {
        if (acc->failed)
          return;
        acc->failed = true;
        (*shared_done)(simp_error(x, "cannot read predicate on rank "
                                         + std::to_string(r) + ": " + why));
      };
      detail::call<wire_value>(
          self_, r, "fetch " + *p.uri(r),
          [acc, shared_done, parties, &x, k, r, fail](wire_value& v) mutable {
            if (acc->failed)
              return;
            auto truth = truth_of(x, v.ptr, r);
            if (!truth) {
              acc->failed = true;
              (*shared_done)(std::move(truth.error()));
              return;
            }
            acc->truths[k] = *truth;
            if (--acc->left > 0)
              return;
            for (size_t j = 1; j < parties.size(); ++j)
              if (*acc->truths[j] != *acc->truths[0]) {
                (*shared_done)(simp_error(
                    x, "predicate is not uniform: rank "
                           + std::to_string(parties[0]) + " has "
                           + (*acc->truths[0] ? "true" : "false") + ", rank "
                           + std::to_string(parties[j]) + " has "
                           + (*acc->truths[j] ? "true" : "false")));
                return;
              }
            (*shared_done)(*acc->truths[0]);
          },
          [fail](caf::error err) mutable { fail(describe(err)); },
          fetch_atom::value, *p.uri(r));
    }
  }

  struct loop {
    const op* x = nullptr;
    size_t num_state = 0;
    int64_t max_iter = 0;
    int64_t iter = 0;
    vars state;
    vars captures;
    vars_fn done;
  };

  /// One iteration of a while loop: cond, predicate, body, again.
  void iterate(const std::shared_ptr<loop>& lp) {
    auto& x = *lp->x;
    if (lp->iter++ >= lp->max_iter) {
      lp->done(simp_error(x, "exceeded max_iterations="
                                 + std::to_string(lp->max_iter)));
      return;
    }
    auto cond_args = lp->state;
    cond_args.insert(cond_args.end(), lp->captures.begin(), lp->captures.end());
    auto self = shared_from_this();
    run(x.regions[0], std::move(cond_args),
        [self, lp](caf::expected<run_result> pred) {
          auto& x = *lp->x;
          if (!pred) {
            lp->done(std::move(pred.error()));
            return;
          }
          if (pred->outputs.size() != 1) {
            lp->done(simp_error(x, "cond region must yield one predicate"));
            return;
          }
          self->read_predicate(
              x, pred->outputs[0], x.attr_i64_or("verify_uniform", 0) != 0,
              [self, lp](caf::expected<bool> truth) {
                auto& x = *lp->x;
                if (!truth) {
                  lp->done(std::move(truth.error()));
                  return;
                }
                if (!*truth) {
                  lp->done(run_result{std::move(lp->state)});
                  return;
                }
                auto body_args = std::move(lp->state);
                body_args.insert(body_args.end(), lp->captures.begin(),
                                 lp->captures.end());
                self->run(x.regions[1], std::move(body_args),
                          [self, lp](caf::expected<run_result> next) {
                            if (!next) {
                              lp->done(std::move(next.error()));
                              return;
                            }
                            if (next->outputs.size() != lp->num_state) {
                              lp->done(simp_error(
                                  *lp->x, "body must yield "
                                              + std::to_string(lp->num_state)
                                              + " state values"));
                              return;
                            }
                            lp->state = std::move(next->outputs);
                            self->iterate(lp);
                          });
              });
        });
  }

  void step(const op& x, vars args, vars_fn done) {
    if (x.opcode == "pcall_static" || x.opcode == "pcall_dynamic") {
      if (x.regions.size() != 1)
        return done(simp_error(x, "needs exactly one region (the body)"));
      std::vector<uint32_t> parties;
      if (x.opcode == "pcall_static") {
        auto listed = x.attr_i64s("parties");
        if (!listed)
          return done(std::move(listed.error()));
        for (auto p : *listed) {
          if (p < 0 || static_cast<size_t>(p) >= world_size())
            return done(simp_error(x, "party " + std::to_string(p)
                                          + " outside the world of "
                                          + std::to_string(world_size())));
          parties.push_back(static_cast<uint32_t>(p));
        }
        if (parties.empty())
          return done(simp_error(x, "empty party list"));
      }
      detail::start_run(
          self_, run_order{x.regions[0], std::move(args), std::move(parties)},
          std::move(done));
      return;
    }
    if (x.opcode == "converge") {
      if (args.empty())
        return done(simp_error(x, "needs at least one input"));
      host_var out{world_size()};
      for (size_t i = 0; i < args.size(); ++i)
        for (auto r : args[i].parties()) {
          if (out.has(r))
            return done(simp_error(x, "inputs overlap on rank "
                                          + std::to_string(r) + " (input #"
                                          + std::to_string(i) + ")"));
          out.set(r, args[i].part(r));
        }
      return done(run_result{{std::move(out)}});
    }
    if (x.opcode == "uniform_cond") {
      if (x.regions.size() != 2)
        return done(simp_error(x, "needs two regions (then, else)"));
      if (args.empty())
        return done(simp_error(x, "needs a predicate input"));
      auto self = shared_from_this();
      auto pred = args[0];
      auto shared_done = std::make_shared<vars_fn>(std::move(done));
      read_predicate(x, pred, x.attr_i64_or("verify_uniform", 0) != 0,
                     [self, &x, args = std::move(args),
                      shared_done](caf::expected<bool> truth) mutable {
                       if (!truth)
                         return (*shared_done)(std::move(truth.error()));
                       vars branch_args(args.begin() + 1, args.end());
                       self->run(x.regions[*truth ? 0 : 1],
                                 std::move(branch_args),
                                 std::move(*shared_done));
                     });
      return;
    }
    if (x.opcode == "while_loop") {
      if (x.regions.size() != 2)
        return done(simp_error(x, "needs two regions (cond, body)"));
      auto num_state = static_cast<size_t>(
          x.attr_i64_or("num_state", static_cast<int64_t>(args.size())));
      if (num_state > args.size())
        return done(simp_error(x, "num_state exceeds the inputs"));
      auto lp = std::make_shared<loop>();
      lp->x = &x;
      lp->num_state = num_state;
      lp->max_iter = x.attr_i64_or("max_iterations", 1'000'000);
      lp->state.assign(args.begin(), args.begin() + num_state);
      lp->captures.assign(args.begin() + num_state, args.end());
      lp->done = std::move(done);
      iterate(lp);
      return;
    }
    if (x.opcode == "shuffle") {
      if (args.size() != 1)
        return done(simp_error(x, "takes exactly one input"));
      auto routing = x.attr_i64s("routing");
      if (!routing)
        return done(std::move(routing.error()));
      auto shared_done = std::make_shared<vars_fn>(std::move(done));
      detail::shuffle(self_, std::move(args[0]), std::move(*routing),
                      [shared_done](caf::expected<host_var> out) {
                        if (!out)
                          return (*shared_done)(std::move(out.error()));
                        (*shared_done)(run_result{{std::move(*out)}});
                      });
      return;
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
    detail::start_run(self_, run_order{std::move(single), std::move(args), {}},
                      std::move(done));
  }

  detail::driver_self self_;
  graph root_;
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

namespace detail {

void run_simp(driver_self self, graph program, std::vector<host_var> inputs,
              then_fn<run_result> done) {
  if (auto err = validate_structure(program)) {
    done(std::move(err));
    return;
  }
  auto interp = std::make_shared<simp_interpreter>(self, std::move(program));
  // The interpreter lives in the callbacks of its pending steps.
  interp->run(interp->root(), std::move(inputs),
              [interp, done = std::move(done)](
                  caf::expected<run_result> r) mutable { done(std::move(r)); });
}

} // namespace detail

caf::expected<std::vector<host_var>>
run_simp(driver& d, const graph& g, const std::vector<host_var>& inputs) {
  return d.run_simp(g, inputs);
}

} // namespace objstore
