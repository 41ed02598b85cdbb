#pragma once

// Numpy-style broadcasting for up to three operands of elementwise kernels.
//
// Shapes are aligned at their trailing dimensions (the shorter one is padded
// with leading 1s); in each dimension the sizes must be equal or 1, and a 1
// stretches to the other size (so 1 against 0 gives 0). Scalars (rank 0)
// broadcast against everything. The plan collapses the iteration space into
// as few dimensions as possible so that the innermost loop runs over long
// contiguous rows where every operand has element stride 1 or 0.

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "actors/exec/kernels/detail/kernel_util.hpp"

namespace objstore::kernels {

struct broadcast_plan {
  static constexpr size_t max_operands = 3;

  /// Shape of the result.
  std::vector<int64_t> shape;

  /// Number of elements of the result.
  int64_t count = 0;

  /// Collapsed iteration dimensions, outermost first; never empty.
  std::vector<int64_t> dims;

  /// Per collapsed dimension: the element stride of each operand (0 where
  /// the operand is broadcast).
  std::vector<std::array<int64_t, max_operands>> strides;

  /// Element stride of each operand in the innermost dimension (0 or 1).
  int64_t inner_stride(size_t operand) const noexcept {
    return strides.back()[operand];
  }
};

/// Plans broadcasting `operands` (1 to 3 tensors) against each other;
/// incompatible shapes are `op_failed` naming the op.
caf::expected<broadcast_plan>
plan_broadcast(const kernel_context& ctx,
               std::span<const tensor* const> operands);

/// Calls `f(offsets, out_offset, n)` for each innermost row of the result:
/// `offsets[k]` is the element offset of operand k at the row start,
/// `out_offset` that of the (contiguous) result, `n` the row length.
template<class F>
void for_each_row(const broadcast_plan& plan, F&& f) {
  if (plan.count == 0)
    return;
  auto rank = plan.dims.size();
  auto inner = plan.dims.back();
  auto rows = plan.count / inner;
  std::array<int64_t, broadcast_plan::max_operands> offsets{};
  std::vector<int64_t> index(rank, 0);
  for (int64_t row = 0; row < rows; ++row) {
    f(offsets.data(), row * inner, inner);
    // Advance the odometer over the outer dimensions.
    for (size_t d = rank - 1; d-- > 0;) {
      auto& stride = plan.strides[d];
      if (++index[d] < plan.dims[d]) {
        for (size_t k = 0; k < offsets.size(); ++k)
          offsets[k] += stride[k];
        break;
      }
      index[d] = 0;
      for (size_t k = 0; k < offsets.size(); ++k)
        offsets[k] -= stride[k] * (plan.dims[d] - 1);
    }
  }
}

} // namespace objstore::kernels
