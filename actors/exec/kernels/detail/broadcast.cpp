#include "actors/exec/kernels/detail/broadcast.hpp"

#include <algorithm>

namespace objstore::kernels {

caf::expected<broadcast_plan>
plan_broadcast(const kernel_context& ctx,
               std::span<const tensor* const> operands) {
  constexpr auto max_k = broadcast_plan::max_operands;
  if (operands.empty() || operands.size() > max_k)
    return ctx.fail("broadcasts 1 to 3 operands");
  size_t rank = 0;
  for (auto* x : operands)
    rank = std::max(rank, x->rank());
  broadcast_plan plan;
  plan.shape.assign(rank, 1);
  // Per result dimension: each operand's size (1 where padded).
  std::vector<std::array<int64_t, max_k>> sizes(rank);
  for (size_t d = 0; d < rank; ++d) {
    for (size_t k = 0; k < max_k; ++k) {
      int64_t size = 1;
      if (k < operands.size()) {
        auto& shape = operands[k]->shape();
        auto pad = rank - shape.size();
        if (d >= pad)
          size = shape[d - pad];
      }
      sizes[d][k] = size;
      if (size == 1)
        continue;
      if (plan.shape[d] == 1) {
        plan.shape[d] = size;
      } else if (plan.shape[d] != size) {
        std::string shapes;
        for (auto* x : operands)
          shapes += (shapes.empty() ? "" : " vs ") + describe_tensor(*x);
        return ctx.fail("cannot broadcast " + shapes);
      }
    }
  }
  plan.count = product(plan.shape);
  // Element strides of each operand in result coordinates.
  std::vector<std::array<int64_t, max_k>> strides(rank);
  std::array<int64_t, max_k> running;
  running.fill(1);
  for (size_t d = rank; d-- > 0;) {
    for (size_t k = 0; k < max_k; ++k) {
      auto size = sizes[d][k];
      strides[d][k] = (size == plan.shape[d] && size != 1) ? running[k] : 0;
      running[k] *= size;
    }
  }
  // Drop size-1 dimensions, then merge each dimension into its outer
  // neighbour when every operand walks both as one contiguous run.
  for (size_t d = 0; d < rank; ++d) {
    if (plan.shape[d] == 1)
      continue;
    if (!plan.dims.empty()) {
      auto& outer = plan.strides.back();
      bool mergeable = true;
      for (size_t k = 0; k < max_k; ++k)
        mergeable = mergeable && outer[k] == strides[d][k] * plan.shape[d];
      if (mergeable) {
        plan.dims.back() *= plan.shape[d];
        outer = strides[d];
        continue;
      }
    }
    plan.dims.push_back(plan.shape[d]);
    plan.strides.push_back(strides[d]);
  }
  if (plan.dims.empty()) {
    plan.dims.push_back(1);
    plan.strides.push_back({0, 0, 0});
  }
  return plan;
}

} // namespace objstore::kernels
