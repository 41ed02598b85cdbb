#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <caf/expected.hpp>

namespace objstore {

/// Element types of a tensor.
enum class dtype : uint8_t {
  bool_,
  int8,
  uint8,
  int32,
  int64,
  float32,
  float64,
};

/// Number of dtypes; `dtype` values are `0 .. dtype_count - 1`.
constexpr size_t dtype_count = 7;

std::string_view to_string(dtype x);

/// Parses "float32" etc.; errors are `invalid_argument`.
caf::expected<dtype> parse_dtype(std::string_view name);

/// "[2,3]" for messages.
std::string shape_string(const std::vector<int64_t>& shape);

/// Size of one element in bytes (bool is one byte, 0 or 1).
size_t dtype_size(dtype x) noexcept;

/// Maps a C++ element type to its dtype.
template<class T>
struct dtype_of;
template<>
struct dtype_of<bool> {
  static constexpr dtype value = dtype::bool_;
};
template<>
struct dtype_of<int8_t> {
  static constexpr dtype value = dtype::int8;
};
template<>
struct dtype_of<uint8_t> {
  static constexpr dtype value = dtype::uint8;
};
template<>
struct dtype_of<int32_t> {
  static constexpr dtype value = dtype::int32;
};
template<>
struct dtype_of<int64_t> {
  static constexpr dtype value = dtype::int64;
};
template<>
struct dtype_of<float> {
  static constexpr dtype value = dtype::float32;
};
template<>
struct dtype_of<double> {
  static constexpr dtype value = dtype::float64;
};

/// Thrown by `buffer::allocate` for a request above the calling thread's
/// `scoped_allocation_limit`.
class allocation_limit_exceeded : public std::bad_alloc {
public:
  allocation_limit_exceeded(uint64_t requested, uint64_t limit);
  /// A request above what is left of the task's memory budget.
  static allocation_limit_exceeded over_budget(uint64_t requested,
                                               uint64_t left);
  const char* what() const noexcept override { return what_.c_str(); }
  uint64_t requested() const noexcept { return requested_; }
  uint64_t limit() const noexcept { return limit_; }

private:
  uint64_t requested_;
  uint64_t limit_;
  std::string what_;
};

/// Caps the size of every `buffer::allocate` on the calling thread while
/// alive (0 = no cap; nests, the inner scope wins). A worker runs each
/// task under its node's object size limit, so a kernel asked for a huge
/// output fails with `resource_exhausted` before allocating, instead of
/// exhausting the node's memory.
class scoped_allocation_limit {
public:
  explicit scoped_allocation_limit(uint64_t max_bytes) noexcept;
  scoped_allocation_limit(const scoped_allocation_limit&) = delete;
  scoped_allocation_limit& operator=(const scoped_allocation_limit&) = delete;
  ~scoped_allocation_limit();

  /// The cap of the calling thread (0 = none).
  static uint64_t current() noexcept;

private:
  uint64_t previous_;
};

/// The memory a task may still hold in buffers it allocates on the calling
/// thread while alive (nests; the inner scope wins). `buffer::allocate`
/// charges each buffer against it and throws `allocation_limit_exceeded`
/// past it; a buffer gives its bytes back when it is freed, so a kernel's
/// freed intermediates do not count. A worker opens one per task with the
/// memory its node has left under `objstore.memory-limit`: kernel
/// allocations count against the limit before anything is stored.
class scoped_memory_budget {
public:
  static constexpr uint64_t unlimited = UINT64_MAX;

  explicit scoped_memory_budget(uint64_t bytes);
  scoped_memory_budget(const scoped_memory_budget&) = delete;
  scoped_memory_budget& operator=(const scoped_memory_budget&) = delete;
  ~scoped_memory_budget();

  /// Bytes the calling thread may still allocate (`unlimited` outside a
  /// budget).
  static uint64_t remaining() noexcept;

  /// The budget's counter (shared with the buffers charged to it).
  using counter = std::shared_ptr<std::atomic<int64_t>>;

private:
  counter previous_;
};

/// One contiguous, 64-byte aligned block of memory. Written once by its
/// creator (through `mutable_data`), then shared read-only via
/// `std::shared_ptr<const buffer>`; never resized.
class buffer {
public:
  static constexpr size_t alignment = 64;

  /// Buffers from this size on are 2 MiB aligned and advised onto
  /// transparent huge pages.
  static constexpr size_t huge_threshold = size_t{4} << 20;

  /// Allocates `size` uninitialised bytes; throws `std::bad_alloc`
  /// (`allocation_limit_exceeded` above the thread's allocation limit).
  static std::shared_ptr<buffer> allocate(size_t size);

  /// Allocates and copies `bytes`.
  static std::shared_ptr<buffer> copy_of(std::span<const std::byte> bytes);

  /// Maps the whole file `path` read-only: its bytes stay in the page
  /// cache (reclaimable), not in anonymous memory, so a file of any size
  /// can be put with bounded memory. Errors: `io_error` naming the file.
  static caf::expected<std::shared_ptr<buffer>>
  map_file(const std::string& path);

  /// Creates (or truncates) `path` with `size` bytes and maps it writable
  /// and shared: what is written lands in the file through the page cache.
  /// Errors: `io_error` naming the file.
  static caf::expected<std::shared_ptr<buffer>>
  map_new_file(const std::string& path, size_t size);

  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;
  ~buffer();

  const std::byte* data() const noexcept { return data_; }
  std::byte* mutable_data() noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }

private:
  /// The allocation itself (no limit or budget applied).
  static std::shared_ptr<buffer> allocate_unbudgeted(size_t size);

  buffer(std::byte* data, size_t size) : data_(data), size_(size) {}
  std::byte* data_;
  size_t size_;
  /// A file mapping (munmap instead of free); its length.
  bool mapped_ = false;
  size_t mapped_size_ = 0;
  /// Bytes of a huge-page region (0: an ordinary allocation): given back
  /// to the process's cache of recently freed regions.
  size_t region_ = 0;
  /// The task budget this buffer is charged to (given back when freed).
  scoped_memory_budget::counter budget_;
};

using buffer_ptr = std::shared_ptr<const buffer>;

/// Dense n-dimensional array in row-major order. The shape may hold zeros
/// (an empty tensor); a scalar has an empty shape and one element. A
/// default-constructed tensor is an empty float64 vector (shape {0}).
class tensor {
public:
  /// Builds a tensor over `data`; errors (`invalid_argument`) when the
  /// buffer size does not equal product(shape) * dtype_size, a dimension
  /// is negative, or that byte size does not fit in int64.
  static caf::expected<tensor> make(dtype type, std::vector<int64_t> shape,
                                    buffer_ptr data);

  /// Allocates a tensor and returns it with its writable buffer; throws
  /// `std::invalid_argument` on a shape `make` refuses.
  static std::pair<tensor, std::byte*> allocate(dtype type,
                                                std::vector<int64_t> shape);

  /// Copies `values` into a new tensor (convenience for tests and drivers).
  template<class T>
  static tensor from(std::vector<int64_t> shape, std::span<const T> values);

  template<class T>
  static tensor from(std::vector<int64_t> shape, const std::vector<T>& values) {
    if constexpr (std::is_same_v<T, bool>) {
      std::vector<uint8_t> tmp(values.begin(), values.end());
      auto t = from<uint8_t>(std::move(shape), std::span<const uint8_t>{tmp});
      return *make(dtype::bool_, t.shape(), t.data());
    } else {
      return from<T>(std::move(shape), std::span<const T>{values});
    }
  }

  tensor() = default;

  dtype type() const noexcept { return type_; }
  const std::vector<int64_t>& shape() const noexcept { return shape_; }
  size_t rank() const noexcept { return shape_.size(); }
  int64_t num_elements() const noexcept;
  size_t size_bytes() const noexcept { return data_ ? data_->size() : 0; }
  const buffer_ptr& data() const noexcept { return data_; }
  const std::byte* raw() const noexcept {
    return data_ ? data_->data() : nullptr;
  }

  /// Typed view; the caller must know the dtype (checked in debug builds).
  template<class T>
  std::span<const T> values() const noexcept {
    return {reinterpret_cast<const T*>(raw()),
            static_cast<size_t>(num_elements())};
  }

  /// Value equality: dtype, shape and bytes.
  friend bool operator==(const tensor& x, const tensor& y) noexcept;

private:
  dtype type_ = dtype::float64;
  std::vector<int64_t> shape_ = {0};
  buffer_ptr data_;
};

/// A named 1-D column of a table.
struct column {
  std::string name;
  tensor data;
  friend bool operator==(const column&, const column&) = default;
};

/// Named, equal-length 1-D columns.
class table {
public:
  /// Errors (`invalid_argument`) on a non-1-D column, unequal lengths or
  /// duplicate or empty names.
  static caf::expected<table> make(std::vector<column> columns);

  table() = default;

  const std::vector<column>& columns() const noexcept { return columns_; }
  int64_t num_rows() const noexcept;
  size_t size_bytes() const noexcept;

  /// Returns the column called `name`, or nullptr.
  const column* find(std::string_view name) const noexcept;

  friend bool operator==(const table&, const table&) = default;

private:
  std::vector<column> columns_;
};

/// An opaque blob for user types.
class blob {
public:
  blob() = default;
  explicit blob(buffer_ptr data) : data_(std::move(data)) {}
  static blob copy_of(std::string_view bytes);

  size_t size_bytes() const noexcept { return data_ ? data_->size() : 0; }
  const buffer_ptr& data() const noexcept { return data_; }
  std::string_view view() const noexcept;

  friend bool operator==(const blob& x, const blob& y) noexcept;

private:
  buffer_ptr data_;
};

enum class value_kind : uint8_t { tensor, table, bytes };

std::string_view to_string(value_kind x);

/// An immutable object of the store: a tensor, a table or bytes. Shared as
/// `value_ptr`, so handing a value around in one process copies no bytes.
class value {
public:
  value(tensor x) : data_(std::move(x)) {}
  value(table x) : data_(std::move(x)) {}
  value(blob x) : data_(std::move(x)) {}

  value_kind kind() const noexcept {
    return static_cast<value_kind>(data_.index());
  }
  bool is_tensor() const noexcept { return kind() == value_kind::tensor; }
  bool is_table() const noexcept { return kind() == value_kind::table; }
  bool is_bytes() const noexcept { return kind() == value_kind::bytes; }

  const tensor& as_tensor() const { return std::get<tensor>(data_); }
  const table& as_table() const { return std::get<table>(data_); }
  const blob& as_bytes() const { return std::get<blob>(data_); }

  /// Payload bytes (sum of buffer sizes), what memory limits account.
  size_t size_bytes() const noexcept;

  /// One-line description such as "tensor float32[4,5] (80 bytes)".
  std::string summary() const;

  friend bool operator==(const value&, const value&) = default;

private:
  std::variant<tensor, table, blob> data_;
};

using value_ptr = std::shared_ptr<const value>;

template<class T>
value_ptr make_value(T x) {
  return std::make_shared<const value>(std::move(x));
}

template<class T>
tensor tensor::from(std::vector<int64_t> shape, std::span<const T> values) {
  auto [t, out] = allocate(dtype_of<T>::value, std::move(shape));
  if (values.size() != static_cast<size_t>(t.num_elements()))
    throw std::invalid_argument("tensor::from: value count != shape");
  if (!values.empty())
    std::memcpy(out, values.data(), t.size_bytes());
  return t;
}

} // namespace objstore
