#pragma once

// Internal helpers of the built-in kernels: registration entry points of the
// kernel files, dtype predicates, wrapping integer arithmetic, saturating
// conversions and shape arithmetic. Not installed; embedders use
// `actors/kernels/dispatch.hpp`.

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "actors/exec/kernels/dispatch.hpp"

namespace objstore::kernels {

// -- registration, one function per kernel file -------------------------------

void register_basic_kernels(op_registry& registry);
void register_elementwise_kernels(op_registry& registry);
void register_reduce_kernels(op_registry& registry);
void register_shape_kernels(op_registry& registry);
void register_source_kernels(op_registry& registry);
void register_table_kernels(op_registry& registry);
void register_keyed_table_kernels(op_registry& registry);

/// An op definition without check function that reveals nothing.
inline op_def make_def(std::string name, size_t min_inputs, size_t max_inputs,
                       size_t num_outputs, kernel_fn kernel) {
  return op_def{std::move(name), min_inputs,        max_inputs, num_outputs,
                check_fn{},      std::move(kernel), false};
}

/// The table half of `concat` (defined in table_kernels.cpp).
kernel_result concat_tables(kernel_context& ctx,
                            std::span<const value_ptr> args);

// -- dtypes -------------------------------------------------------------------

inline bool is_float(dtype x) noexcept {
  return x == dtype::float32 || x == dtype::float64;
}

/// True for every dtype except bool.
inline bool is_numeric(dtype x) noexcept {
  return x != dtype::bool_;
}

/// Typed read pointer into a tensor's buffer.
template<class T>
const T* data_of(const tensor& x) noexcept {
  return reinterpret_cast<const T*>(x.raw());
}

/// Calls `f(U{})` with an unsigned type as wide as one element of `type`;
/// kernels that only move elements (slice, gather, transpose) dispatch on
/// the width instead of the dtype.
template<class F>
decltype(auto) visit_width(dtype type, F&& f) {
  switch (dtype_size(type)) {
    case 1: return f(uint8_t{});
    case 4: return f(uint32_t{});
    default: return f(uint64_t{});
  }
}

// -- arithmetic ---------------------------------------------------------------

/// Integer arithmetic wraps (two's complement) instead of overflowing, which
/// would be undefined behaviour for signed types.
template<class T>
T wrap_add(T x, T y) noexcept {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(
        static_cast<U>(static_cast<U>(x) + static_cast<U>(y)));
  } else {
    return x + y;
  }
}

template<class T>
T wrap_sub(T x, T y) noexcept {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(
        static_cast<U>(static_cast<U>(x) - static_cast<U>(y)));
  } else {
    return x - y;
  }
}

template<class T>
T wrap_mul(T x, T y) noexcept {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    // uint8 operands promote to int; 255 * 255 still fits.
    return static_cast<T>(
        static_cast<U>(static_cast<U>(x) * static_cast<U>(y)));
  } else {
    return x * y;
  }
}

/// NaN-propagating minimum and maximum (as numpy's `minimum`/`maximum`).
template<class T>
T min_of(T x, T y) noexcept {
  if constexpr (std::is_floating_point_v<T>)
    return (x < y || x != x) ? x : y;
  else
    return x < y ? x : y;
}

template<class T>
T max_of(T x, T y) noexcept {
  if constexpr (std::is_floating_point_v<T>)
    return (x > y || x != x) ? x : y;
  else
    return x > y ? x : y;
}

/// Converts one element to `To`: to bool as `x != 0`; float to integer
/// truncating toward zero, saturating at the integer's range, NaN as 0;
/// integer to integer wrapping (two's complement); everything else as
/// `static_cast`. For bool, `To` is `uint8_t` and `ToBool` is true.
template<class To, bool ToBool, class From>
To convert(From x) noexcept {
  if constexpr (ToBool) {
    return x != From{0} ? To{1} : To{0};
  } else if constexpr (std::is_integral_v<
                           To> && std::is_floating_point_v<From>) {
    auto v = static_cast<double>(x);
    if (v != v)
      return To{0};
    constexpr auto lo = static_cast<double>(std::numeric_limits<To>::lowest());
    constexpr auto hi = static_cast<double>(std::numeric_limits<To>::max());
    if (v <= lo)
      return std::numeric_limits<To>::lowest();
    if (v >= hi)
      return std::numeric_limits<To>::max();
    return static_cast<To>(v);
  } else {
    return static_cast<To>(x);
  }
}

/// The splitmix64 increment (2^64 / golden ratio).
constexpr uint64_t golden_gamma = 0x9e3779b97f4a7c15ULL;

/// The splitmix64 finaliser: a fast, well-mixing bijection on 64 bits used
/// for seeded random numbers and key hashing (stable across platforms).
inline uint64_t splitmix64(uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// -- shapes -------------------------------------------------------------------

/// Product of `dims` (1 for none).
inline int64_t product(std::span<const int64_t> dims) noexcept {
  int64_t n = 1;
  for (auto d : dims)
    n *= d;
  return n;
}

/// Row-major element strides of `shape`.
inline std::vector<int64_t> strides_of(const std::vector<int64_t>& shape) {
  std::vector<int64_t> result(shape.size(), 1);
  for (size_t i = shape.size(); i > 1; --i)
    result[i - 2] = result[i - 1] * shape[i - 1];
  return result;
}

/// Maps `axis` in [-rank, rank) to [0, rank), or nullopt when out of range.
inline std::optional<size_t> normalize_axis(int64_t axis, size_t rank) {
  auto r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r)
    return std::nullopt;
  return static_cast<size_t>(axis < 0 ? axis + r : axis);
}

/// "[2,3]" for messages.
std::string describe_shape(const std::vector<int64_t>& shape);

/// Parses the optional dtype attribute `name`, defaulting to `fallback`.
caf::expected<dtype> dtype_attr(const kernel_context& ctx,
                                std::string_view name, dtype fallback);

/// Reads the shape attribute `name`; rejects negative dimensions.
caf::expected<std::vector<int64_t>> shape_attr(const kernel_context& ctx,
                                               std::string_view name);

} // namespace objstore::kernels
