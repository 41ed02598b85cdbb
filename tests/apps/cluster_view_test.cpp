// What `objstore top` draws and how `objstore objects` filters and sorts
// (apps/cluster_view.hpp), without a cluster.

#include <gtest/gtest.h>

#include "apps/cluster_view.hpp"
#include "store/error.hpp"

namespace cluster_view_test_file {
namespace {

using namespace objstore;
using namespace objstore::apps;

object_record rec(std::string uri, uint64_t size, int64_t age, uint32_t pins,
                  bool spilled, std::string holder) {
  object_record x;
  x.uri = std::move(uri);
  x.size_bytes = size;
  x.age_ms = age;
  x.pins = pins;
  x.spilled = spilled;
  x.holders.push_back({std::move(holder), 1});
  return x;
}

std::vector<object_record> sample() {
  return {rec("mem://a", 10, 300, 0, false, "session-3 (cli)"),
          rec("mem://b", 5000, 100, 1, false, "session-30 (job)"),
          rec("mem://c", 700, 200, 0, true, "session-3 (cli)")};
}

std::vector<std::string> uris(const object_filter& f) {
  auto xs = sample();
  std::erase_if(xs, [&](auto& x) { return !f.matches(x); });
  f.order(xs);
  std::vector<std::string> out;
  for (auto& x : xs)
    out.push_back(x.uri);
  return out;
}

object_filter parse(std::vector<std::string> words) {
  auto f = parse_object_filter(words);
  EXPECT_TRUE(f) << describe(f.error());
  return f ? *f : object_filter{};
}

using strings = std::vector<std::string>;

TEST(cluster_view, objects_filters_and_sorts) {
  EXPECT_EQ(uris(parse({})), (strings{"mem://a", "mem://b", "mem://c"}));
  EXPECT_EQ(uris(parse({"sort=size"})),
            (strings{"mem://b", "mem://c", "mem://a"}));
  EXPECT_EQ(uris(parse({"sort=age"})),
            (strings{"mem://a", "mem://c", "mem://b"}));
  EXPECT_EQ(uris(parse({"min-size=700"})), (strings{"mem://b", "mem://c"}));
  EXPECT_EQ(uris(parse({"state=pinned"})), (strings{"mem://b"}));
  EXPECT_EQ(uris(parse({"state=spilled"})), (strings{"mem://c"}));
  EXPECT_EQ(uris(parse({"state=held"})), (strings{"mem://a"}));
  // Session 3 is not session 30; a label matches by its text.
  EXPECT_EQ(uris(parse({"session=3", "sort=size"})),
            (strings{"mem://c", "mem://a"}));
  EXPECT_EQ(uris(parse({"session=job"})), (strings{"mem://b"}));
  auto f = parse({"2", "sort=age"});
  ASSERT_TRUE(f.rank);
  EXPECT_EQ(*f.rank, 2u);
  EXPECT_EQ(*parse({"rank=1"}).rank, 1u);
  for (auto bad : {"state=gone", "sort=name", "min-size=x", "color=red", "x"})
    EXPECT_EQ(code_of(parse_object_filter({bad}).error()),
              errc::invalid_argument)
        << bad;
}

TEST(cluster_view, top_shows_each_worker_and_totals) {
  worker_stats a;
  a.mem_objects = 2;
  a.mem_bytes = 1536;
  a.fs_objects = 1;
  a.fs_bytes = 10;
  a.tasks_running = 3;
  a.tasks_queued = 1;
  a.transfers_in = 4;
  a.sessions = 2;
  std::vector<top_row> rows{{0, a, ""}, {1, std::nullopt, "timeout"}};
  auto text = render_top(rows, "12:00:00");
  EXPECT_TRUE(text.starts_with("objstore top - 12:00:00  workers 1/2  "
                               "objects 3 (1.5 KiB)  tasks 3\n"))
      << text;
  EXPECT_NE(text.find("   0        2    1.5 KiB       1       10 B       0"
                      "     2      1       0      0      4      0     2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("   1  unreachable: timeout\n"), std::string::npos)
      << text;
}

} // namespace
} // namespace cluster_view_test_file
