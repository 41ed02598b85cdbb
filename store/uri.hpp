#pragma once

#include <atomic>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

namespace objstore {

/// URI schemes known to objstore.
enum class scheme : uint8_t {
  /// Transient in-memory object, `mem://<id>`; reference counted.
  mem,
  /// Persistent file, `fs://<absolute path>`; confined to the fs roots.
  fs,
  /// Object storage, `oss://<bucket>/<key>`; parsed, not served yet.
  oss,
};

std::string_view to_string(scheme x);

/// Longest accepted URI in bytes.
constexpr size_t max_uri_size = 4096;

/// A validated `scheme://key` handle naming one object. Cheap to copy,
/// totally ordered and hashable. Validation is syntactic: whether an `fs://`
/// path lies inside a node's roots is the file backend's decision.
class uri {
public:
  /// Parses and validates `text`. Errors are `invalid_uri` or
  /// `unsupported_scheme` and name the offending text.
  static caf::expected<uri> parse(std::string_view text);

  /// Makes `mem://<id>` from a generated id.
  static uri make_mem(std::string_view id);

  uri() = default;

  objstore::scheme scheme() const noexcept { return scheme_; }

  /// The part after `scheme://`: the id, absolute path or bucket/key.
  std::string_view key() const noexcept {
    return std::string_view{text_}.substr(key_offset_);
  }

  /// The full text, e.g. `mem://a1b2-7`.
  const std::string& str() const noexcept { return text_; }

  bool empty() const noexcept { return text_.empty(); }

  friend bool operator==(const uri& x, const uri& y) noexcept {
    return x.text_ == y.text_;
  }
  friend auto operator<=>(const uri& x, const uri& y) noexcept {
    return x.text_ <=> y.text_;
  }

private:
  objstore::scheme scheme_ = scheme::mem;
  uint32_t key_offset_ = 0;
  std::string text_;
};

inline std::string to_string(const uri& x) {
  return x.str();
}

/// Generates `mem://` ids unique across nodes and restarts: a random 64-bit
/// node prefix (drawn once per generator) followed by a counter. Thread-safe.
class mem_id_generator {
public:
  /// Draws a random node prefix.
  mem_id_generator();

  /// Uses a fixed node prefix (tests); must be a valid id fragment.
  explicit mem_id_generator(std::string prefix);

  uri next();

  const std::string& prefix() const noexcept { return prefix_; }

private:
  std::string prefix_;
  std::atomic<uint64_t> counter_{0};
};

} // namespace objstore

template<>
struct std::hash<objstore::uri> {
  size_t operator()(const objstore::uri& x) const noexcept {
    return std::hash<std::string>{}(x.str());
  }
};
