#include "store/value.hpp"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <set>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/error.hpp"

namespace objstore {

std::string_view to_string(dtype x) {
  switch (x) {
    case dtype::bool_: return "bool";
    case dtype::int8: return "int8";
    case dtype::uint8: return "uint8";
    case dtype::int32: return "int32";
    case dtype::int64: return "int64";
    case dtype::float32: return "float32";
    case dtype::float64: return "float64";
  }
  return "?";
}

caf::expected<dtype> parse_dtype(std::string_view name) {
  for (size_t i = 0; i < dtype_count; ++i) {
    auto x = static_cast<dtype>(i);
    if (to_string(x) == name)
      return x;
  }
  return make_error(errc::invalid_argument,
                    "unknown dtype '" + std::string{name} + "'");
}

size_t dtype_size(dtype x) noexcept {
  switch (x) {
    case dtype::bool_:
    case dtype::int8:
    case dtype::uint8: return 1;
    case dtype::int32:
    case dtype::float32: return 4;
    case dtype::int64:
    case dtype::float64: return 8;
  }
  return 0;
}

// -- buffer -------------------------------------------------------------------

namespace {

thread_local uint64_t allocation_limit = 0;

thread_local scoped_memory_budget::counter memory_budget;

} // namespace

allocation_limit_exceeded::allocation_limit_exceeded(uint64_t requested,
                                                     uint64_t limit)
    : requested_(requested), limit_(limit),
      what_("allocation of " + std::to_string(requested)
            + " bytes exceeds the object size limit of "
            + std::to_string(limit)) {
  // nop
}

allocation_limit_exceeded
allocation_limit_exceeded::over_budget(uint64_t requested, uint64_t left) {
  allocation_limit_exceeded result{requested, left};
  result.what_ = "allocation of " + std::to_string(requested)
                 + " bytes exceeds the " + std::to_string(left)
                 + " bytes the node has left under objstore.memory-limit";
  return result;
}

scoped_memory_budget::scoped_memory_budget(uint64_t bytes)
    : previous_(std::move(memory_budget)) {
  if (bytes == unlimited)
    memory_budget.reset();
  else
    memory_budget = std::make_shared<std::atomic<int64_t>>(
        static_cast<int64_t>(std::min<uint64_t>(bytes, INT64_MAX)));
}

scoped_memory_budget::~scoped_memory_budget() {
  memory_budget = std::move(previous_);
}

uint64_t scoped_memory_budget::remaining() noexcept {
  if (!memory_budget)
    return unlimited;
  return static_cast<uint64_t>(std::max<int64_t>(memory_budget->load(), 0));
}

scoped_allocation_limit::scoped_allocation_limit(uint64_t max_bytes) noexcept
    : previous_(allocation_limit) {
  allocation_limit = max_bytes;
}

scoped_allocation_limit::~scoped_allocation_limit() {
  allocation_limit = previous_;
}

uint64_t scoped_allocation_limit::current() noexcept {
  return allocation_limit;
}

std::shared_ptr<buffer> buffer::allocate(size_t size) {
  if (allocation_limit > 0 && size > allocation_limit)
    throw allocation_limit_exceeded{size, allocation_limit};
  auto budget = memory_budget;
  if (budget) {
    auto want = static_cast<int64_t>(std::min<uint64_t>(size, INT64_MAX));
    auto left = budget->fetch_sub(want) - want;
    if (left < 0) {
      budget->fetch_add(want);
      throw allocation_limit_exceeded::over_budget(
          size, static_cast<uint64_t>(std::max<int64_t>(left + want, 0)));
    }
  }
  auto result = allocate_unbudgeted(size);
  if (budget)
    result->budget_ = std::move(budget);
  return result;
}

namespace {

/// Recently freed huge-page regions, kept (up to `cap` bytes) for the next
/// large buffer of about their size: a fetch or put of a large object
/// fills memory that is already mapped instead of faulting in every page
/// again (on this machine a fresh 256 MiB buffer fills from a socket at
/// ~2.7 GB/s, a mapped one at ~4.5 GB/s; objstore-bench
/// tcp_fresh_hugepage vs tcp_gbps). A region is reused only for a buffer
/// at least 3/4 of its size, and every reader writes a buffer whole
/// before anyone sees it.
class region_cache {
public:
  static constexpr size_t cap = size_t{512} << 20;

  /// A cached region of at least `size` bytes (and at most 4/3 of it), or
  /// null; `region` receives its size.
  void* take(size_t size, size_t& region) {
    std::lock_guard guard{mtx_};
    auto i = free_.lower_bound(size);
    if (i == free_.end() || i->first > size + size / 3)
      return nullptr;
    auto* ptr = i->second;
    region = i->first;
    bytes_ -= i->first;
    free_.erase(i);
    return ptr;
  }

  /// Keeps `ptr` (a region of `region` bytes) or frees it when full.
  void give(void* ptr, size_t region) {
    {
      std::lock_guard guard{mtx_};
      if (bytes_ + region <= cap) {
        free_.emplace(region, ptr);
        bytes_ += region;
        return;
      }
    }
    std::free(ptr);
  }

private:
  std::mutex mtx_;
  std::multimap<size_t, void*> free_;
  size_t bytes_ = 0;
};

region_cache& regions() {
  // Never destroyed: buffers may be freed during static destruction.
  static auto* cache = new region_cache;
  return *cache;
}

} // namespace

std::shared_ptr<buffer> buffer::allocate_unbudgeted(size_t size) {
  if (size >= huge_threshold) {
    // Large objects on transparent huge pages: a 256 MiB object takes 128
    // page faults instead of 65536, the difference between filling a fresh
    // buffer from a socket at ~0.2 GB/s and at ~2.7 GB/s here
    // (objstore-bench tcp_fresh_buffer vs tcp_fresh_hugepage).
    constexpr size_t huge_page = size_t{2} << 20;
    auto huge = (size + huge_page - 1) / huge_page * huge_page;
    size_t region = 0;
    void* ptr = regions().take(huge, region);
    if (ptr == nullptr) {
      region = huge;
      if (::posix_memalign(&ptr, huge_page, huge) != 0)
        throw std::bad_alloc{};
#ifdef MADV_HUGEPAGE
      ::madvise(ptr, huge, MADV_HUGEPAGE); // advice only: failure is harmless
#endif
    }
    std::shared_ptr<buffer> result{
        new buffer(static_cast<std::byte*>(ptr), size)};
    result->region_ = region;
    return result;
  }
  // aligned_alloc needs a multiple of the alignment; zero-size buffers still
  // get a valid pointer so data() is never null.
  auto rounded = (size + alignment - 1) / alignment * alignment;
  if (rounded == 0)
    rounded = alignment;
  auto* ptr = static_cast<std::byte*>(std::aligned_alloc(alignment, rounded));
  if (ptr == nullptr)
    throw std::bad_alloc{};
  return std::shared_ptr<buffer>{new buffer(ptr, size)};
}

std::shared_ptr<buffer> buffer::copy_of(std::span<const std::byte> bytes) {
  auto result = allocate(bytes.size());
  if (!bytes.empty())
    std::memcpy(result->mutable_data(), bytes.data(), bytes.size());
  return result;
}

namespace {

caf::error file_error(const std::string& what, const std::string& path) {
  return make_error(errc::io_error,
                    what + " " + path + ": " + std::strerror(errno));
}

} // namespace

caf::expected<std::shared_ptr<buffer>>
buffer::map_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return file_error("cannot open", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    auto err = file_error("cannot stat", path);
    ::close(fd);
    return err;
  }
  auto size = static_cast<size_t>(st.st_size);
  void* ptr = nullptr;
  if (size > 0) {
    ptr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (ptr == MAP_FAILED) {
      auto err = file_error("cannot map", path);
      ::close(fd);
      return err;
    }
    ::madvise(ptr, size, MADV_SEQUENTIAL);
  }
  ::close(fd); // the mapping stays
  if (size == 0)
    return allocate_unbudgeted(0);
  std::shared_ptr<buffer> result{
      new buffer(static_cast<std::byte*>(ptr), size)};
  result->mapped_ = true;
  result->mapped_size_ = size;
  return result;
}

caf::expected<std::shared_ptr<buffer>>
buffer::map_new_file(const std::string& path, size_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return file_error("cannot create", path);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    auto err = file_error("cannot size", path);
    ::close(fd);
    return err;
  }
  if (size == 0) {
    ::close(fd);
    return allocate_unbudgeted(0);
  }
  auto* ptr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  auto err = ptr == MAP_FAILED ? file_error("cannot map", path) : caf::error{};
  ::close(fd);
  if (err)
    return err;
  std::shared_ptr<buffer> result{
      new buffer(static_cast<std::byte*>(ptr), size)};
  result->mapped_ = true;
  result->mapped_size_ = size;
  return result;
}

buffer::~buffer() {
  if (mapped_)
    ::munmap(data_, mapped_size_);
  else if (region_ > 0)
    regions().give(data_, region_);
  else
    std::free(data_);
  if (budget_)
    budget_->fetch_add(
        static_cast<int64_t>(std::min<size_t>(size_, INT64_MAX)));
}

// -- tensor -------------------------------------------------------------------

namespace {

// Returns the element count, or -1 on a negative dimension or when the
// byte size (count * dtype_size) overflows; a wrapped byte size would let a
// small buffer pass as a huge tensor.
int64_t element_count(const std::vector<int64_t>& shape, dtype type) {
  int64_t n = 1;
  for (auto dim : shape) {
    if (dim < 0)
      return -1;
    if (dim != 0 && n > std::numeric_limits<int64_t>::max() / dim)
      return -1;
    n *= dim;
  }
  auto elem = static_cast<int64_t>(dtype_size(type));
  if (n > std::numeric_limits<int64_t>::max() / elem)
    return -1;
  return n;
}

} // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0)
      out += ',';
    out += std::to_string(shape[i]);
  }
  out += ']';
  return out;
}

caf::expected<tensor> tensor::make(dtype type, std::vector<int64_t> shape,
                                   buffer_ptr data) {
  auto n = element_count(shape, type);
  if (n < 0)
    return make_error(errc::invalid_argument,
                      "invalid tensor shape " + shape_string(shape));
  auto expected_size = static_cast<size_t>(n) * dtype_size(type);
  auto actual_size = data ? data->size() : 0;
  if (expected_size != actual_size)
    return make_error(
        errc::invalid_argument,
        "tensor " + std::string{to_string(type)} + shape_string(shape)
            + " needs " + std::to_string(expected_size) + " bytes, buffer has "
            + std::to_string(actual_size));
  tensor result;
  result.type_ = type;
  result.shape_ = std::move(shape);
  result.data_ = data ? std::move(data) : buffer::allocate(0);
  return result;
}

std::pair<tensor, std::byte*> tensor::allocate(dtype type,
                                               std::vector<int64_t> shape) {
  auto n = element_count(shape, type);
  if (n < 0)
    throw std::invalid_argument("invalid tensor shape " + shape_string(shape));
  auto buf = buffer::allocate(static_cast<size_t>(n) * dtype_size(type));
  auto* out = buf->mutable_data();
  tensor result;
  result.type_ = type;
  result.shape_ = std::move(shape);
  result.data_ = std::move(buf);
  return {std::move(result), out};
}

int64_t tensor::num_elements() const noexcept {
  int64_t n = 1;
  for (auto dim : shape_)
    n *= dim;
  return n;
}

bool operator==(const tensor& x, const tensor& y) noexcept {
  if (x.type_ != y.type_ || x.shape_ != y.shape_)
    return false;
  if (x.size_bytes() != y.size_bytes())
    return false;
  return x.size_bytes() == 0
         || std::memcmp(x.raw(), y.raw(), x.size_bytes()) == 0;
}

// -- table --------------------------------------------------------------------

caf::expected<table> table::make(std::vector<column> columns) {
  std::set<std::string_view> names;
  for (auto& col : columns) {
    if (col.name.empty())
      return make_error(errc::invalid_argument, "table column without name");
    if (!names.insert(col.name).second)
      return make_error(errc::invalid_argument,
                        "duplicate table column '" + col.name + "'");
    if (col.data.rank() != 1)
      return make_error(errc::invalid_argument,
                        "table column '" + col.name + "' is not 1-D");
    if (col.data.shape()[0] != columns.front().data.shape()[0])
      return make_error(errc::invalid_argument,
                        "table column '" + col.name + "' has "
                            + std::to_string(col.data.shape()[0])
                            + " rows, expected "
                            + std::to_string(columns.front().data.shape()[0]));
  }
  table result;
  result.columns_ = std::move(columns);
  return result;
}

int64_t table::num_rows() const noexcept {
  return columns_.empty() ? 0 : columns_.front().data.shape()[0];
}

size_t table::size_bytes() const noexcept {
  size_t n = 0;
  for (auto& col : columns_)
    n += col.data.size_bytes();
  return n;
}

const column* table::find(std::string_view name) const noexcept {
  for (auto& col : columns_)
    if (col.name == name)
      return &col;
  return nullptr;
}

// -- blob ---------------------------------------------------------------------

blob blob::copy_of(std::string_view bytes) {
  return blob{buffer::copy_of(std::as_bytes(std::span{bytes}))};
}

std::string_view blob::view() const noexcept {
  if (!data_)
    return {};
  return {reinterpret_cast<const char*>(data_->data()), data_->size()};
}

bool operator==(const blob& x, const blob& y) noexcept {
  return x.view() == y.view();
}

// -- value --------------------------------------------------------------------

std::string_view to_string(value_kind x) {
  switch (x) {
    case value_kind::tensor: return "tensor";
    case value_kind::table: return "table";
    case value_kind::bytes: return "bytes";
  }
  return "?";
}

size_t value::size_bytes() const noexcept {
  return std::visit([](const auto& x) { return x.size_bytes(); }, data_);
}

std::string value::summary() const {
  std::string out;
  switch (kind()) {
    case value_kind::tensor: {
      auto& t = as_tensor();
      out = "tensor " + std::string{to_string(t.type())}
            + shape_string(t.shape());
      break;
    }
    case value_kind::table: {
      auto& t = as_table();
      out = "table " + std::to_string(t.columns().size()) + " columns x "
            + std::to_string(t.num_rows()) + " rows";
      break;
    }
    case value_kind::bytes: out = "bytes"; break;
  }
  out += " (" + std::to_string(size_bytes()) + " bytes)";
  return out;
}

} // namespace objstore
