// libFuzzer target: URI parsing (uri::parse) and the fs:// confinement of
// the file backend (file_backend::resolve) on a root that holds a
// symlink pointing out of it.
//
// Invariants: parse never throws; a parsed URI prints back to its input,
// re-parses to itself and has a key inside its text; errors are
// invalid_uri or unsupported_scheme. A resolved fs:// path lies strictly
// inside the root, also after resolving every symlink on it.

#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "store/file_backend.hpp"
#include "store/uri.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace fs = std::filesystem;
using namespace objstore;

namespace {

struct sandbox {
  fs::path base;
  fs::path root;
  std::unique_ptr<file_backend> files;

  sandbox() {
    auto templ
        = (fs::temp_directory_path() / "objstore-fuzz-uri-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr)
      fuzz::fail("mkdtemp");
    base = templ;
    root = base / "root";
    fs::create_directories(root / "dir");
    fs::create_directories(base / "outside");
    fs::create_symlink(base / "outside", root / "escape");
    fs::create_symlink(base / "missing", root / "dangling");
    fs::create_symlink(root / "dir", root / "inner");
    file_backend_options opts;
    opts.roots = {root};
    opts.sync = false;
    auto made = file_backend::make(opts);
    if (!made)
      fuzz::fail(describe(made.error()));
    files = std::move(*made);
    root = files->roots().front();
  }

  ~sandbox() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
};

bool strictly_under(const fs::path& p, const fs::path& root) {
  auto rel = p.lexically_relative(root);
  return !rel.empty() && *rel.begin() != ".." && rel != ".";
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static sandbox box;
  std::string_view text{reinterpret_cast<const char*>(data), size};
  auto x = uri::parse(text);
  if (!x) {
    auto code = code_of(x.error());
    OBJSTORE_FUZZ_CHECK(code == errc::invalid_uri
                            || code == errc::unsupported_scheme,
                        describe(x.error()));
    (void)describe(x.error());
  } else {
    OBJSTORE_FUZZ_CHECK(x->str() == text, x->str());
    OBJSTORE_FUZZ_CHECK(x->key().size() + 3 < text.size(), x->str());
    auto again = uri::parse(x->str());
    OBJSTORE_FUZZ_CHECK(again && *again == *x, x->str());
    OBJSTORE_FUZZ_CHECK(again->scheme() == x->scheme(), x->str());
  }
  // The same text as a path below the root: fs://<root>/<text>.
  auto rooted = "fs://" + box.root.string() + "/" + std::string{text};
  for (auto& candidate : {std::string{text}, rooted}) {
    auto id = uri::parse(candidate);
    if (!id || id->scheme() != scheme::fs)
      continue;
    auto path = box.files->resolve(*id);
    if (!path) {
      auto code = code_of(path.error());
      OBJSTORE_FUZZ_CHECK(code == errc::permission_denied
                              || code == errc::invalid_uri,
                          describe(path.error()));
      continue;
    }
    OBJSTORE_FUZZ_CHECK(strictly_under(*path, box.root), path->string());
    std::error_code ec;
    auto real = fs::weakly_canonical(*path, ec);
    OBJSTORE_FUZZ_CHECK(!ec && strictly_under(real, box.root),
                        path->string() + " -> " + real.string());
  }
  return 0;
}
