#include "store/uri.hpp"

#include <gtest/gtest.h>

#include "store/error.hpp"

using namespace objstore;

TEST(uri, parses_mem) {
  auto x = uri::parse("mem://abc-1");
  ASSERT_TRUE(x) << describe(x.error());
  EXPECT_EQ(x->scheme(), scheme::mem);
  EXPECT_EQ(x->key(), "abc-1");
}
