#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "messages/graph.hpp"
#include "store/value.hpp"

namespace objstore {

class op_registry;

/// Whether a run should stop: its own flag (a driver's `cancel`) or its
/// node's stop flag. Either may be null.
struct cancel_flags {
  const std::atomic<bool>* run = nullptr;
  const std::atomic<bool>* node = nullptr;

  bool requested() const noexcept {
    return (run != nullptr && run->load(std::memory_order_relaxed))
           || (node != nullptr && node->load(std::memory_order_relaxed));
  }
};

/// What a kernel sees besides its inputs.
class kernel_context {
public:
  kernel_context(const op& node, const op_registry& registry,
                 cancel_flags cancel)
      : node_(node), registry_(registry), cancel_(cancel) {}

  /// The op being executed (attributes, regions).
  const op& node() const noexcept { return node_; }

  /// True once the run was cancelled or the node is stopping; long
  /// kernels poll it and return `cancelled`.
  bool cancelled() const noexcept { return cancel_.requested(); }

  /// Runs region `index` of the op on `inputs` (for control-flow ops).
  caf::expected<std::vector<value_ptr>>
  run_region(size_t index, std::vector<value_ptr> inputs) const;

  /// An `op_failed` error naming the op.
  caf::error fail(const std::string& why) const;

private:
  const op& node_;
  const op_registry& registry_;
  cancel_flags cancel_;
};

using kernel_result = caf::expected<std::vector<value_ptr>>;

/// Computes the outputs of one op from its inputs. Must not throw (the
/// interpreter converts exceptions into `op_failed` anyway).
using kernel_fn
    = std::function<kernel_result(kernel_context&, std::span<const value_ptr>)>;

/// Checks dtype and shape of the inputs before the kernel runs.
using check_fn
    = std::function<caf::error(const op&, std::span<const value_ptr>)>;

/// The definition of one opcode.
struct op_def {
  std::string name;
  size_t min_inputs = 0;
  size_t max_inputs = SIZE_MAX;
  /// Outputs the op must declare; SIZE_MAX means "as many as declared".
  size_t num_outputs = 1;
  /// Optional dtype/shape rule, run before the kernel.
  check_fn check;
  kernel_fn kernel;
  /// Outputs are revealed (fetchable under the `revealed-only` policy).
  bool reveals = false;
  /// Work and output size grow at most like the input size (no outputs
  /// sized by attributes, no quadratic blow-up, no waiting). On small
  /// inputs the worker runs such ops on its own thread instead of
  /// spawning a task actor (see `worker_actor`).
  bool linear = false;
};

/// Maps opcodes to kernels. Built-ins come from `with_builtins()`;
/// embedders add their own ops with `add` before spawning nodes. Immutable
/// once shared with a node (nodes hold a `shared_ptr<const op_registry>`),
/// hence safe to read from many task threads.
class op_registry {
public:
  /// Adds `def`; `invalid_argument` for an empty name, a missing kernel or
  /// a name already registered.
  caf::error add(op_def def);

  /// Returns the definition of `name`, or nullptr.
  const op_def* find(std::string_view name) const;

  /// All registered opcodes, sorted.
  std::vector<std::string> names() const;

  /// A registry holding every built-in kernel.
  static std::shared_ptr<op_registry> with_builtins();

private:
  std::map<std::string, op_def, std::less<>> defs_;
};

/// Registers objstore's built-in kernels into `registry`.
void register_builtin_kernels(op_registry& registry);

} // namespace objstore
