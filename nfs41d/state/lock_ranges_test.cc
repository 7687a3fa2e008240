// Unit tests of LockRanges: conflicts, split, merge, upgrade, downgrade.

#include "nfs41d/state/lock_ranges.h"

#include <gtest/gtest.h>

#include <limits>

namespace nfs41d::state {
namespace {

constexpr uint64_t kEof = std::numeric_limits<uint64_t>::max();

TEST(LockRanges, ReadLocksShareWriteLocksConflict) {
  LockRanges l;
  l.Lock(1, false, 0, 99);
  EXPECT_FALSE(l.Conflict(2, false, 50, 60));
  auto c = l.Conflict(2, true, 50, 60);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->owner, 1u);
  EXPECT_EQ(c->start, 0u);
  EXPECT_EQ(c->end, 99u);
  EXPECT_FALSE(l.Conflict(2, true, 100, 200));
  EXPECT_FALSE(l.Conflict(1, true, 0, 99));  // own locks never conflict
  l.Lock(2, true, 100, kEof);
  EXPECT_TRUE(l.Conflict(1, false, kEof, kEof));
  EXPECT_TRUE(l.Conflict(3, false, 150, 150));
}

TEST(LockRanges, UnlockSplits) {
  LockRanges l;
  l.Lock(1, true, 0, 99);
  l.Unlock(1, 40, 59);
  ASSERT_EQ(l.ranges().size(), 2u);
  EXPECT_EQ(l.ranges()[0], (LockRange{1, true, 0, 39}));
  EXPECT_EQ(l.ranges()[1], (LockRange{1, true, 60, 99}));
  EXPECT_FALSE(l.Conflict(2, true, 40, 59));
  EXPECT_TRUE(l.Conflict(2, true, 39, 40));
  l.Unlock(1, 0, kEof);
  EXPECT_TRUE(l.empty());
  l.Unlock(1, 0, 10);  // nothing locked: fine
  EXPECT_TRUE(l.empty());
}

TEST(LockRanges, AdjacentAndOverlappingMerge) {
  LockRanges l;
  l.Lock(1, false, 0, 9);
  l.Lock(1, false, 10, 19);
  l.Lock(1, false, 15, 30);
  ASSERT_EQ(l.ranges().size(), 1u);
  EXPECT_EQ(l.ranges()[0], (LockRange{1, false, 0, 30}));
  // Another owner's adjacent range stays separate.
  l.Lock(2, false, 31, 40);
  EXPECT_EQ(l.ranges().size(), 2u);
}

TEST(LockRanges, UpgradeAndDowngradeInTheMiddle) {
  LockRanges l;
  l.Lock(1, false, 0, 99);
  l.Lock(1, true, 40, 59);  // upgrade a sub-range
  ASSERT_EQ(l.ranges().size(), 3u);
  EXPECT_EQ(l.ranges()[0], (LockRange{1, false, 0, 39}));
  EXPECT_EQ(l.ranges()[1], (LockRange{1, true, 40, 59}));
  EXPECT_EQ(l.ranges()[2], (LockRange{1, false, 60, 99}));
  EXPECT_FALSE(l.Conflict(2, false, 0, 39));
  EXPECT_TRUE(l.Conflict(2, false, 45, 45));
  l.Lock(1, false, 40, 59);  // downgrade back: one range again
  ASSERT_EQ(l.ranges().size(), 1u);
  EXPECT_EQ(l.ranges()[0], (LockRange{1, false, 0, 99}));
}

TEST(LockRanges, ToEofAndRemoveOwner) {
  LockRanges l;
  l.Lock(1, true, 0, kEof);
  l.Lock(1, true, 5, kEof);
  ASSERT_EQ(l.ranges().size(), 1u);
  l.Unlock(1, 100, kEof);
  ASSERT_EQ(l.ranges().size(), 1u);
  EXPECT_EQ(l.ranges()[0].end, 99u);
  l.Lock(2, false, 200, 300);
  EXPECT_TRUE(l.HasOwner(1));
  l.RemoveOwner(1);
  EXPECT_FALSE(l.HasOwner(1));
  EXPECT_TRUE(l.HasOwner(2));
}

}  // namespace
}  // namespace nfs41d::state
