#pragma once

// A throwaway PKI (.ci/make-test-certs: ca, node0.., client, a foreign CA)
// made on first use and shared by every test file of a test binary.
//
// Made lazily, not in a gtest Environment: a test binary holds many files,
// and ctest runs each test case as a process of its own, so a global set-up
// would cost every one of them (~1 s of openssl) whether it uses TLS or not.

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include <stdlib.h>
#include <unistd.h>

namespace objstore::test {

/// The PKI's directory, made on the first call. It is removed when the
/// process that made it exits (a forked child that exits leaves it alone).
inline const std::filesystem::path& pki_dir() {
  struct pki {
    std::filesystem::path dir;
    pid_t maker = ::getpid();
    ~pki() {
      std::error_code ignored;
      if (!dir.empty() && ::getpid() == maker)
        std::filesystem::remove_all(dir, ignored);
    }
  };
  static const pki made = [] {
    char templ[] = "/tmp/objstore-test-pki-XXXXXX";
    if (::mkdtemp(templ) == nullptr) {
      ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
      return pki{};
    }
    auto cmd = std::string{OBJSTORE_SOURCE_DIR} + "/.ci/make-test-certs "
               + templ + " >/dev/null";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return pki{templ};
  }();
  return made.dir;
}

/// A file of the PKI, e.g. "ca.pem" or "node0.key".
inline std::string pki_file(const std::string& name) {
  return (pki_dir() / name).string();
}

} // namespace objstore::test
