#pragma once

// Row gathering and key ordering/hashing shared by the table kernels.

#include <bit>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "actors/exec/kernels/detail/kernel_util.hpp"

namespace objstore::kernels {

/// Orders keys ascending with every NaN after all numbers (NaNs compare
/// equal to each other), a strict weak order even for floats.
template<class T>
bool key_less(T x, T y) noexcept {
  if constexpr (std::is_floating_point_v<T>) {
    if (y != y)
      return x == x;
    if (x != x)
      return false;
  }
  return x < y;
}

/// Hash of one key: the key as int64 for bool and integers, the float64 bit
/// pattern for floats (-0.0 hashed as 0.0, every NaN alike), then splitmix64.
template<class T>
uint64_t key_hash(T x) noexcept {
  uint64_t bits;
  if constexpr (std::is_floating_point_v<T>) {
    auto d = static_cast<double>(x);
    if (d != d)
      d = std::numeric_limits<double>::quiet_NaN();
    else if (d == 0)
      d = 0.0;
    bits = std::bit_cast<uint64_t>(d);
  } else {
    bits = static_cast<uint64_t>(static_cast<int64_t>(x));
  }
  return splitmix64(bits + golden_gamma);
}

/// Copies the rows `rows` (in that order) of the 1-D tensor `x`.
tensor gather(const tensor& x, std::span<const int64_t> rows);

/// Copies the rows `rows` of every column of `x`, keeping the names.
std::vector<column> gather_rows(const table& x, std::span<const int64_t> rows);

/// Row indices of the 1-D `key` in stable ascending `key_less` order.
std::vector<int64_t> stable_order(const tensor& key);

/// Finds the column `name` of `x` or fails naming the op and the column.
caf::expected<const column*>
column_arg(const kernel_context& ctx, const table& x, const std::string& name);

/// Builds a table value or turns the validation error into `op_failed`.
kernel_result make_table_result(const kernel_context& ctx,
                                std::vector<column> columns);

} // namespace objstore::kernels
