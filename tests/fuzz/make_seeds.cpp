// Writes the seed corpus of every fuzz target: make_seeds <dir> creates
// <dir>/<target>/seed-<n> with well-formed inputs (URIs, encodings,
// serialized graphs and requests, chunk streams), from which libFuzzer
// mutates. Generated instead of checked in, so seeds follow the formats.

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "messages/protocol.hpp"
#include "store/codec.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace objstore;
namespace fs = std::filesystem;

namespace {

struct writer {
  fs::path dir;
  int n = 0;

  void raw(const void* data, size_t size) {
    std::ofstream out{dir / ("seed-" + std::to_string(n++)), std::ios::binary};
    out.write(static_cast<const char*>(data),
              static_cast<std::streamsize>(size));
  }
  void text(const std::string& x) { raw(x.data(), x.size()); }
  void tagged(uint8_t tag, const std::vector<char>& body) {
    std::string x(1, static_cast<char>(tag));
    x.append(body.data(), body.size());
    text(x);
  }
};

std::vector<value_ptr> sample_values() {
  std::vector<value_ptr> out;
  out.push_back(make_value(tensor::from<int64_t>({2, 3}, {1, 2, 3, 4, 5, 6})));
  out.push_back(make_value(tensor::from<float>({2}, {1.5f, -2.f})));
  out.push_back(make_value(tensor::from<bool>({}, {true})));
  auto tbl = table::make({{"k", tensor::from<int64_t>({3}, {1, 2, 1})},
                          {"v", tensor::from<double>({3}, {1, 2, 3})}});
  out.push_back(make_value(std::move(*tbl)));
  out.push_back(make_value(blob::copy_of("bytes")));
  return out;
}

std::vector<graph> sample_graphs() {
  std::vector<graph> out;
  {
    graph_builder b;
    auto x = b.input();
    auto y = b.add("mul", {x, x});
    b.output(b.add("sum", {y}, {make_attr("axes", std::vector<int64_t>{0})}));
    out.push_back(b.build());
  }
  {
    graph_builder b;
    b.output(
        b.add("iota", {}, {make_attr("n", 8), make_attr("dtype", "int64")}));
    b.output(b.add("constant", {},
                   {make_attr("shape", std::vector<int64_t>{2, 2}),
                    make_attr("dtype", "float64"), make_attr("value", 1.5)}));
    out.push_back(b.build());
  }
  {
    graph_builder b;
    auto t = b.input();
    auto parts = b.add_n("hash_partition", {t}, 2,
                         {make_attr("key", "k"), make_attr("n", 2)});
    auto s = b.add("sort_by_key", {parts[0]}, {make_attr("key", "k")});
    b.output(b.add("group_sum", {s},
                   {make_attr("key", "k"),
                    make_attr("values", std::vector<std::string>{"v"})}));
    b.output(b.add("reveal", {b.add("num_rows", {t})}));
    out.push_back(b.build());
  }
  {
    graph_builder b;
    auto x = b.input();
    auto r = b.add("reshape", {x},
                   {make_attr("shape", std::vector<int64_t>{3, -1})});
    auto s = b.add("slice", {r},
                   {make_attr("start", std::vector<int64_t>{0, 0}),
                    make_attr("stop", std::vector<int64_t>{2, 2})});
    auto c = b.add("cast", {s}, {make_attr("dtype", "float32")});
    b.output(b.add("checksum", {b.add("transpose", {c})}));
    out.push_back(b.build());
  }
  {
    graph_builder inner;
    auto a = inner.input();
    inner.output(inner.add("neg", {a}));
    graph_builder b;
    auto x = b.input();
    b.output(b.add("identity", {x}, {}, {inner.build()}));
    out.push_back(b.build());
  }
  return out;
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <corpus dir>\n");
    return 2;
  }
  fs::path base{argv[1]};
  for (auto name : {"fuzz_uri", "fuzz_codec", "fuzz_graph", "fuzz_worker",
                    "fuzz_data_plane"})
    fs::create_directories(base / name);
  writer uris{base / "fuzz_uri"};
  for (auto x : {"mem://abc-1", "mem://node_r0.x-42", "fs:///data/x.bin",
                 "fs:///a/../b", "fs://escape/secret", "fs://dir/x",
                 "oss://bucket/key", "s3://b/k", "mem://", "fs://relative",
                 "fs:///dangling/x", "fs:///inner/y", "x://y/..//z"})
    uris.text(x);
  writer codec{base / "fuzz_codec"};
  writer graphs{base / "fuzz_graph"};
  writer worker{base / "fuzz_worker"};
  writer stream{base / "fuzz_data_plane"};
  for (auto& x : sample_values()) {
    auto bytes = encode(*x);
    for (uint8_t mode : {0, 1}) {
      std::string s(1, static_cast<char>(mode));
      s.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      codec.text(s);
    }
    codec.tagged(2, fuzz::save(wire_value{x}));
    worker.tagged(1, fuzz::save(put_request{wire_value{x}, {}}));
    // A chunk stream: total, then {type=1, length, offset} + payload per
    // 16-byte chunk.
    uint32_t total = static_cast<uint32_t>(bytes.size());
    std::string s(reinterpret_cast<const char*>(&total), 4);
    for (size_t off = 0; off < bytes.size(); off += 16) {
      uint32_t hdr[2] = {
          1, static_cast<uint32_t>(std::min<size_t>(16, bytes.size() - off))};
      uint64_t offset = off;
      s.append(reinterpret_cast<const char*>(hdr), 8);
      s.append(reinterpret_cast<const char*>(&offset), 8);
      s.append(reinterpret_cast<const char*>(bytes.data()) + off, hdr[1]);
    }
    stream.text(s);
  }
  worker.tagged(1, fuzz::save(put_request{wire_value{sample_values()[0]},
                                          "fs:///tmp/x"}));
  for (auto& g : sample_graphs()) {
    graphs.raw(fuzz::save(g).data(), fuzz::save(g).size());
    task_request req;
    req.task_id = 1;
    req.program = g;
    for (size_t i = 0; i < g.inputs.size(); ++i)
      req.inputs.push_back("$" + std::to_string(i));
    worker.tagged(0, fuzz::save(req));
    for (auto& in : req.inputs)
      in[0] = '@';
    worker.tagged(0, fuzz::save(req));
  }
  for (auto x : {"$0", "@1", "mem://fz-0", "fs:///etc/passwd", "mem://x"}) {
    worker.tagged(2, fuzz::save(std::string{x}));
    worker.tagged(3, fuzz::save(std::string{x}));
  }
  worker.tagged(4, fuzz::save(std::vector<std::string>{"@0", "@1", "$2"}));
  return 0;
}
