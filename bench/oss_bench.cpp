// oss_gbps (issue 17): put and get of one `--size-mib` tensor through the
// oss:// backend against the local S3 test server (tests/s3/server.js:
// s3rver, a Node.js process writing to a temp directory), with 1 and 4
// parts in flight. Baselines in the same run: boto3 (4 parts at once, the
// same part size) moving as many bytes to and from the same server
// (tests/s3/boto3_bench.py): the ratio says how our client does where the
// server is the same; and the fs:// backend (fsync on) on the same disk.
// Runs only when named by --only.

#include "bench/workloads.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "bench/bench_util.hpp"
#include "store/error.hpp"
#include "store/file_backend.hpp"
#include "store/oss_backend.hpp"
#include "tests/s3/s3_test_server.hpp"

namespace objstore::bench {

namespace oss_bench_file {

/// Median seconds of `reps` puts and of `reps` gets of `x` under `id`.
std::pair<double, double> time_backend(backend& b, const uri& id,
                                       const value_ptr& x, size_t reps) {
  std::vector<double> puts;
  std::vector<double> gets;
  for (size_t i = 0; i < reps; ++i) {
    auto start = clock::now();
    if (auto err = b.put(id, x))
      throw failure("put " + id.str() + ": " + describe(err));
    puts.push_back(seconds_since(start));
    start = clock::now();
    auto got = must(b.get(id), "get " + id.str());
    gets.push_back(seconds_since(start));
    if (got->size_bytes() != x->size_bytes())
      throw failure("get " + id.str() + ": wrong size");
  }
  return {median(puts), median(gets)};
}

/// boto3's median put and get GB/s on `server` (tests/s3/boto3_bench.py).
std::pair<double, double> boto3_gbps(const test::s3_test_server& server,
                                     const options& opts) {
  auto o = server.backend_options();
  auto command = "/usr/bin/python3 " + std::string{OBJSTORE_SOURCE_DIR}
                 + "/tests/s3/boto3_bench.py " + server.endpoint() + " "
                 + o.credentials.access_key_id + " "
                 + o.credentials.secret_access_key + " objstore-test "
                 + std::to_string(opts.size_mib) + " "
                 + std::to_string(opts.reps) + " 2>&1";
  auto pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr)
    throw failure("cannot run boto3_bench.py");
  std::string out;
  char buf[4096];
  while (auto n = std::fread(buf, 1, sizeof buf, pipe))
    out.append(buf, n);
  if (::pclose(pipe) != 0)
    throw failure("boto3_bench.py: " + out);
  auto field = [&](const std::string& name) {
    auto i = out.find("\"" + name + "\": ");
    if (i == std::string::npos)
      throw failure("boto3_bench.py: no " + name + " in " + out);
    return std::strtod(out.c_str() + i + name.size() + 4, nullptr);
  };
  return {field("boto3_put_gbps"), field("boto3_get_gbps")};
}

} // namespace oss_bench_file

int run_oss(const options& opts) {
  using namespace oss_bench_file;
  json_line line{"oss_gbps"};
  try {
    auto bytes = opts.size_mib << 20;
    auto x = make_value(
        tensor::allocate(dtype::uint8, {static_cast<int64_t>(bytes)}).first);
    test::s3_test_server server{{}};
    line.num("size_mib", static_cast<double>(opts.size_mib));
    auto gb = static_cast<double>(bytes) / 1e9;
    for (size_t in_flight : {size_t{1}, size_t{4}}) {
      auto o = server.backend_options();
      o.part_size = 8u << 20;
      o.parts_in_flight = in_flight;
      o.timeout = std::chrono::minutes{2};
      auto b = must(oss_backend::make(o), "oss backend");
      auto [put_s, get_s] = time_backend(
          *b, *uri::parse("oss://objstore-test/bench"), x, opts.reps);
      auto tag = "_" + std::to_string(in_flight) + "_in_flight";
      line.num("oss_put_gbps" + tag, gb / put_s)
          .num("oss_get_gbps" + tag, gb / get_s);
      if (in_flight == 4) {
        auto [boto_put, boto_get] = boto3_gbps(server, opts);
        line.num("boto3_put_gbps", boto_put)
            .num("boto3_get_gbps", boto_get)
            .num("put_ratio_to_boto3", gb / put_s / boto_put)
            .num("get_ratio_to_boto3", gb / get_s / boto_get);
        file_backend_options fo;
        fo.roots = {server.directory() / "fs"};
        auto files = must(file_backend::make(fo), "fs backend");
        auto id = *uri::parse("fs://" + (fo.roots[0] / "bench").string());
        auto [fs_put_s, fs_get_s] = time_backend(*files, id, x, opts.reps);
        line.num("fs_put_gbps", gb / fs_put_s)
            .num("fs_get_gbps", gb / fs_get_s)
            .num("put_ratio_to_fs", fs_put_s / put_s)
            .num("get_ratio_to_fs", fs_get_s / get_s);
      }
    }
    line.print();
    return 0;
  } catch (const std::exception& e) {
    line.str("error", e.what()).print();
    return 1;
  }
}

} // namespace objstore::bench
