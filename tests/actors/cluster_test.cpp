#include "actors/local_cluster.hpp"

#include <gtest/gtest.h>

#include "store/error.hpp"

using namespace objstore;

TEST(cluster, smoke) {
  auto cluster = local_cluster::start({});
  ASSERT_TRUE(cluster) << describe(cluster.error());
  auto drv = (*cluster)->connect();
  ASSERT_TRUE(drv) << describe(drv.error());
  auto& d = **drv;
  EXPECT_EQ(d.world_size(), 3u);
  auto x = d.put(
      1, make_value(tensor::from<int32_t>({3}, std::vector<int32_t>{1, 2, 3})));
  ASSERT_TRUE(x) << describe(x.error());
  graph_builder b;
  auto in = b.input();
  b.output(b.add("add", {in, in}));
  auto out = d.run(b.build(), {*x});
  ASSERT_TRUE(out) << describe(out.error());
  auto v = d.fetch((*out)[0], 1);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ((*v)->as_tensor().values<int32_t>()[2], 6);
  auto st = d.stats();
  ASSERT_TRUE(st);
  std::cout << "sent " << st->bytes_sent << " recv " << st->bytes_received
            << "\n";
}
