// Store demo: puts a tensor through mem:// and fs:// and reads it back.
//
// Usage: store_demo [fs-root]   (default: a fresh directory under /tmp)

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <numeric>

#include "store/error.hpp"
#include "store/object_store.hpp"

using namespace objstore;

namespace {

int fail(const caf::error& err) {
  std::cerr << "error: " << describe(err) << '\n';
  return EXIT_FAILURE;
}

} // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  auto root = argc > 1 ? fs::path{argv[1]}
                       : fs::temp_directory_path()
                             / ("objstore-demo-" + std::to_string(::getpid()));
  object_store_options opts;
  opts.fs_roots = {root};
  auto store = object_store::make(opts);
  if (!store)
    return fail(store.error());
  std::vector<double> data(1 << 20);
  std::iota(data.begin(), data.end(), 0.0);
  auto x = make_value(tensor::from<double>({1024, 1024}, data));
  std::cout << "value: " << x->summary() << '\n';

  auto in_mem = (*store)->put(x);
  if (!in_mem)
    return fail(in_mem.error());
  auto back = (*store)->get(*in_mem);
  if (!back)
    return fail(back.error());
  std::cout << "put " << in_mem->str() << " -> get returns the same object: "
            << (back->get() == x.get() ? "yes (no copy)" : "no") << '\n';

  auto on_disk = uri::parse("fs://" + (root / "demo" / "x.obj").string());
  if (!on_disk)
    return fail(on_disk.error());
  if (auto put = (*store)->put(x, *on_disk); !put)
    return fail(put.error());
  auto loaded = (*store)->get(*on_disk);
  if (!loaded)
    return fail(loaded.error());
  std::cout << "put " << on_disk->str()
            << " -> get equal: " << (**loaded == *x ? "yes" : "NO") << '\n';

  auto escape = uri::parse("fs://" + (root / ".." / "etc" / "passwd").string());
  if (escape) {
    auto refused = (*store)->get(*escape);
    std::cout << "get " << escape->str() << " -> "
              << (refused ? "served (BUG)" : describe(refused.error())) << '\n';
  }
  auto st = (*store)->stats();
  std::cout << "stats: mem " << st.of(scheme::mem).objects << " objects / "
            << st.of(scheme::mem).bytes << " bytes, fs "
            << st.of(scheme::fs).objects << " objects / "
            << st.of(scheme::fs).bytes << " bytes\n";
  if (argc <= 1)
    fs::remove_all(root);
  return **loaded == *x ? EXIT_SUCCESS : EXIT_FAILURE;
}
