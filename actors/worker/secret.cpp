#include "actors/worker/secret.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <openssl/crypto.h>

namespace objstore {

std::string random_secret(size_t bytes) {
  std::vector<uint8_t> raw(bytes);
  size_t filled = 0;
  while (filled < bytes) {
    auto n = ::getrandom(raw.data() + filled, bytes - filled, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      // Without a random source no secret can be made: refusing to run is
      // the only safe answer.
      std::perror("objstore: getrandom");
      std::abort();
    }
    filled += static_cast<size_t>(n);
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (auto b : raw) {
    out += hex[b >> 4];
    out += hex[b & 0xF];
  }
  return out;
}

bool same_secret(std::string_view x, std::string_view y) noexcept {
  if (x.size() != y.size())
    return false;
  return CRYPTO_memcmp(x.data(), y.data(), x.size()) == 0;
}

} // namespace objstore
