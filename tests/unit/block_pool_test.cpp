// block_pool_test.cpp: KV block allocation, exhaustion without side effects, release, and slot addressing.
#include <gtest/gtest.h>

#include "kv/block_pool.h"

namespace ls {
namespace {

TEST(BlockPool, AllocatesUntilFullThenRefusesWithoutLeaking) {
  BlockPool pool(4, 16);
  auto a = pool.allocate(3);
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(pool.num_free(), 1);
  auto b = pool.allocate(2);
  ASSERT_FALSE(b.is_ok());
  EXPECT_EQ(b.status().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(pool.num_free(), 1);
  pool.release(a.value());
  EXPECT_EQ(pool.num_free(), 4);
}

TEST(BlockTable, GrowsAndAddressesSlotsAndReleasesOnDestruction) {
  BlockPool pool(8, 4);
  {
    BlockTable table(pool);
    ASSERT_TRUE(table.reserve(5).is_ok());
    EXPECT_EQ(table.blocks().size(), 2u);
    EXPECT_EQ(table.slot_of(5), table.blocks()[1] * 4 + 1);
    ASSERT_TRUE(table.reserve(8).is_ok());
    EXPECT_EQ(table.blocks().size(), 2u);
    EXPECT_EQ(pool.num_free(), 6);
    EXPECT_FALSE(table.reserve(100).is_ok());
    EXPECT_EQ(pool.num_free(), 6);
  }
  EXPECT_EQ(pool.num_free(), 8);
}

}  // namespace
}  // namespace ls
