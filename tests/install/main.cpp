// Uses the installed objstore: puts a tensor through mem:// and fs:// and
// reads it back. Usage: consumer <fs-root>

#include <cstdlib>
#include <iostream>
#include <vector>

#include "store/error.hpp"
#include "store/object_store.hpp"

using namespace objstore;

namespace {

int fail(const std::string& what) {
  std::cerr << "consumer: " << what << '\n';
  return EXIT_FAILURE;
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2)
    return fail("usage: consumer <fs-root>");
  object_store_options opts;
  opts.fs_roots = {argv[1]};
  opts.fs_sync = false;
  auto store = object_store::make(opts);
  if (!store)
    return fail(describe(store.error()));
  auto x = make_value(
      tensor::from<int32_t>({2, 2}, std::vector<int32_t>{1, 2, 3, 4}));
  auto mem_id = (*store)->put(x);
  if (!mem_id)
    return fail(describe(mem_id.error()));
  auto fs_id = uri::parse(std::string{"fs://"} + argv[1] + "/tensor.obj");
  if (!fs_id)
    return fail(describe(fs_id.error()));
  if (auto put = (*store)->put(x, *fs_id); !put)
    return fail(describe(put.error()));
  for (auto& id : {*mem_id, *fs_id}) {
    auto got = (*store)->get(id);
    if (!got)
      return fail(describe(got.error()));
    if (**got != *x)
      return fail("value read from " + id.str() + " differs");
    std::cout << id.str() << ": " << (*got)->summary() << '\n';
  }
  auto missing = (*store)->get(*uri::parse("mem://missing"));
  if (missing || code_of(missing.error()) != errc::not_found)
    return fail("expected not_found for mem://missing");
  std::cout << "consumer: ok\n";
  return EXIT_SUCCESS;
}
