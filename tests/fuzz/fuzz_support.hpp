#pragma once

// Helpers shared by the libFuzzer targets of tests/fuzz (see .ci/fuzz).
// A target aborts (a libFuzzer crash) when an invariant breaks; sanitizer
// reports and libFuzzer's memory and time limits catch the rest.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "actors/exec/op_registry.hpp"
#include "messages/graph.hpp"
#include "store/error.hpp"

namespace objstore::fuzz {

/// Fails the run with a message (libFuzzer saves the input).
[[noreturn]] inline void fail(const std::string& why) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", why.c_str());
  std::abort();
}

#define OBJSTORE_FUZZ_CHECK(cond, why)                                         \
  do {                                                                         \
    if (!(cond))                                                               \
      ::objstore::fuzz::fail(std::string{#cond ": "} + (why));                 \
  } while (false)

/// Deserializes `x` from all of `bytes` the way BASP does (CAF's binary
/// format); false on any error or trailing bytes.
template<class T>
bool load(const uint8_t* data, size_t size, T& x) {
  caf::binary_deserializer source{static_cast<caf::execution_unit*>(nullptr),
                                  reinterpret_cast<const char*>(data), size};
  if (source(x))
    return false;
  return source.remaining() == 0;
}

/// Serializes `x` in CAF's binary format.
template<class T>
std::vector<char> save(const T& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{static_cast<caf::execution_unit*>(nullptr), buf};
  if (auto err = sink(const_cast<T&>(x)))
    fail("cannot serialize: " + describe(err));
  return buf;
}

/// Whether `g` (or a region of it) uses `opcode`.
inline bool uses_op(const graph& g, std::string_view opcode, int depth = 0) {
  if (depth > 64)
    return false;
  for (auto& x : g.ops) {
    if (x.opcode == opcode)
      return true;
    for (auto& r : x.regions)
      if (uses_op(r, opcode, depth + 1))
        return true;
  }
  return false;
}

/// The built-in ops without `sleep`, whose only effect is wall time (a
/// fuzzer would find "sleep for a year" and nothing else).
inline std::shared_ptr<const op_registry> fuzz_registry() {
  static auto result = [] {
    auto all = op_registry::with_builtins();
    auto out = std::make_shared<op_registry>();
    for (auto& name : all->names())
      if (name != "sleep")
        if (auto err = out->add(*all->find(name)))
          fail(describe(err));
    return std::shared_ptr<const op_registry>{std::move(out)};
  }();
  return result;
}

} // namespace objstore::fuzz
