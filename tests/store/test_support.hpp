#pragma once

// Helpers shared by the store tests: temp directories and sample values.

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/value.hpp"

namespace objstore::test {

/// A fresh directory from mkdtemp (unique across parallel test runs),
/// removed with everything in it on destruction. The path is canonical.
class temp_dir {
public:
  temp_dir() {
    std::string pattern
        = (std::filesystem::temp_directory_path() / "objstore-test-XXXXXX")
              .string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = std::filesystem::canonical(pattern);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  const std::filesystem::path& path() const noexcept { return path_; }

  std::filesystem::path operator/(const std::string& name) const {
    return path_ / name;
  }

private:
  std::filesystem::path path_;
};

/// Returns a tensor of `type` and `shape` filled with a pattern that
/// depends on `seed` (bools hold 0 or 1).
inline tensor sample_tensor(dtype type, std::vector<int64_t> shape,
                            unsigned seed = 1) {
  auto [result, out] = tensor::allocate(type, std::move(shape));
  for (size_t i = 0; i < result.size_bytes(); ++i) {
    auto byte = static_cast<uint8_t>(i * 131 + seed * 7 + (i >> 8));
    if (type == dtype::bool_)
      byte &= 1;
    out[i] = static_cast<std::byte>(byte);
  }
  return result;
}

/// Every dtype, in enum order.
inline std::vector<dtype> all_dtypes() {
  std::vector<dtype> result;
  for (size_t i = 0; i < dtype_count; ++i)
    result.push_back(static_cast<dtype>(i));
  return result;
}

/// A 4-row table with one column per dtype.
inline table sample_table(int64_t rows = 4, unsigned seed = 1) {
  std::vector<column> cols;
  for (auto type : all_dtypes())
    cols.push_back({"col_" + std::string{to_string(type)},
                    sample_tensor(type, {rows}, seed)});
  auto result = table::make(std::move(cols));
  if (!result)
    throw std::logic_error("sample_table: table::make failed");
  return std::move(*result);
}

/// Reads a whole file as bytes.
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in{p, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

/// Replaces the content of a file.
inline void write_file(const std::filesystem::path& p,
                       const std::string& bytes) {
  std::ofstream out{p, std::ios::binary | std::ios::trunc};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

} // namespace objstore::test
