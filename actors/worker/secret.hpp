#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace objstore {

/// `bytes` bytes from the kernel's CSPRNG (getrandom(2)), as lowercase hex
/// (2 × `bytes` characters). Used for session secrets and transfer tokens:
/// a seeded PRNG would be predictable from the values a peer sees.
/// Thread-safe. Aborts only if the kernel has no random source at all.
std::string random_secret(size_t bytes = 32);

/// Compares two secrets in time independent of where they differ (the
/// length may leak; every objstore secret has a fixed length).
bool same_secret(std::string_view x, std::string_view y) noexcept;

} // namespace objstore
