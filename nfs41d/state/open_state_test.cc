// Unit tests of OpenStateTable: share reservations, seqids, downgrades,
// write overlay, release with a client, lock owners.

#include "nfs41d/state/open_state.h"

#include <gtest/gtest.h>

#include <cstring>

namespace nfs41d::state {
namespace {

constexpr uint32_t kR = OPEN4_SHARE_ACCESS_READ;
constexpr uint32_t kW = OPEN4_SHARE_ACCESS_WRITE;
constexpr uint32_t kDenyR = OPEN4_SHARE_DENY_READ;
constexpr uint32_t kDenyW = OPEN4_SHARE_DENY_WRITE;

TEST(OpenStateTable, ShareReservationMatrix) {
  // (access1, deny1) then (access2, deny2) by another owner: allowed?
  struct Case {
    uint32_t a1, d1, a2, d2;
    bool ok;
  } cases[] = {
      {kR, 0, kR, 0, true},          {kR, 0, kW, 0, true},
      {kR, kDenyW, kW, 0, false},    {kR, kDenyW, kR, 0, true},
      {kR, 0, kR, kDenyR, false},    {kW, 0, kR, kDenyW, false},
      {kR | kW, kDenyR | kDenyW, kR, 0, false},
      {kR, kDenyR, kW, kDenyW, true},
  };
  for (const Case& c : cases) {
    OpenStateTable t;
    stateid4 s1, s2;
    ASSERT_EQ(t.Open(1, "a", 10, c.a1, c.d1, 0, &s1), NFS4_OK);
    nfsstat4 st = t.Open(2, "b", 10, c.a2, c.d2, 0, &s2);
    EXPECT_EQ(st, c.ok ? NFS4_OK : NFS4ERR_SHARE_DENIED)
        << c.a1 << "/" << c.d1 << " then " << c.a2 << "/" << c.d2;
    // A denied OPEN leaves nothing behind.
    EXPECT_EQ(t.stateid_count(), c.ok ? 2u : 1u);
  }
}

TEST(OpenStateTable, UpgradeDowngradeSeqids) {
  OpenStateTable t;
  stateid4 s1, s2, s3;
  ASSERT_EQ(t.Open(1, "o", 5, kR, 0, 0, &s1), NFS4_OK);
  EXPECT_EQ(s1.seqid, 1u);
  ASSERT_EQ(t.Open(1, "o", 5, kW, kDenyW, 0, &s2), NFS4_OK);
  EXPECT_EQ(s2.seqid, 2u);
  EXPECT_EQ(std::memcmp(s1.other, s2.other, 12), 0);
  StateInfo info;
  ASSERT_EQ(t.Find(1, s2, &info), NFS4_OK);
  EXPECT_EQ(info.access, kR | kW);
  EXPECT_EQ(info.deny, kDenyW);
  EXPECT_EQ(t.Find(1, s1, &info), NFS4ERR_OLD_STATEID);
  EXPECT_EQ(t.Downgrade(1, s2, kR, kDenyR, &s3), NFS4ERR_INVAL);
  EXPECT_EQ(t.Downgrade(1, s2, 0, 0, &s3), NFS4ERR_INVAL);
  ASSERT_EQ(t.Downgrade(1, s2, kR, 0, &s3), NFS4_OK);
  EXPECT_EQ(s3.seqid, 3u);
  EXPECT_FALSE(t.Denied(5, kW));
  // Another client cannot see it; special stateids are never found.
  EXPECT_EQ(t.Find(2, s3, &info), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(t.Find(1, stateid4{}, &info), NFS4ERR_BAD_STATEID);
}

TEST(OpenStateTable, SpecialStateids) {
  stateid4 s{};
  EXPECT_TRUE(IsAnonymousStateid(s));
  s.seqid = 1;
  EXPECT_TRUE(IsCurrentStateid(s));
  s.seqid = 0xffffffff;
  EXPECT_TRUE(IsInvalidStateid(s));
  std::memset(s.other, 0xff, 12);
  EXPECT_TRUE(IsReadBypassStateid(s));
  EXPECT_TRUE(IsSpecialStateid(s));
  s.other[3] = 1;
  EXPECT_FALSE(IsSpecialStateid(s));
}

TEST(OpenStateTable, WriteOverlayAndRelease) {
  OpenStateTable t;
  stateid4 a, b;
  ASSERT_EQ(t.Open(1, "o", 7, kW, 0, 100, &a), NFS4_OK);
  ASSERT_EQ(t.Open(2, "o", 7, kR, 0, 100, &b), NFS4_OK);
  EXPECT_TRUE(t.NoteWrite(7, 50, 1000));  // inside: size stays
  EXPECT_EQ(t.Overlay(7)->size, 100u);
  EXPECT_TRUE(t.NoteWrite(7, 200, 2000));
  EXPECT_EQ(t.Overlay(7)->size, 200u);
  EXPECT_EQ(t.Overlay(7)->writes, 2u);
  EXPECT_EQ(t.DirtyFiles(), std::vector<ns::InodeId>{7});
  auto d = t.TakeDirty(7);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->mtime, 2000);
  EXPECT_FALSE(t.TakeDirty(7));
  EXPECT_FALSE(t.NoteWrite(8, 1, 1));  // not open
  EXPECT_TRUE(t.MarkOrphan(7));
  std::optional<FileRelease> r;
  ASSERT_EQ(t.Close(1, a, &r), NFS4_OK);
  EXPECT_FALSE(r);  // client 2 still has it open
  std::vector<FileRelease> rel = t.ReleaseClient(2);
  ASSERT_EQ(rel.size(), 1u);
  EXPECT_EQ(rel[0].ino, 7u);
  EXPECT_TRUE(rel[0].orphan);
  EXPECT_EQ(rel[0].size, 200u);
  EXPECT_FALSE(t.IsOpen(7));
  EXPECT_EQ(t.stateid_count(), 0u);
  EXPECT_FALSE(t.MarkOrphan(7));
}

TEST(OpenStateTable, LocksAndTheirStateids) {
  OpenStateTable t;
  stateid4 o1, o2, l1, l2;
  LockDenied den;
  ASSERT_EQ(t.Open(1, "o", 3, kR | kW, 0, 0, &o1), NFS4_OK);
  ASSERT_EQ(t.Open(2, "o", 3, kR, 0, 0, &o2), NFS4_OK);
  ASSERT_EQ(t.LockNew(1, o1, "L", true, 0, 9, &l1, &den), NFS4_OK);
  EXPECT_EQ(t.LockNew(2, o2, "M", true, 0, 0, &l2, &den), NFS4ERR_OPENMODE);
  ASSERT_EQ(t.LockNew(2, o2, "M", false, 5, 5, &l2, &den), NFS4ERR_DENIED);
  EXPECT_EQ(den.client, 1u);
  EXPECT_EQ(den.owner, "L");
  EXPECT_EQ(den.offset, 0u);
  EXPECT_EQ(den.length, 10u);
  EXPECT_EQ(t.stateid_count(), 3u);  // the denied LOCK made no stateid
  EXPECT_EQ(t.TestLock(2, "M", 3, false, 10, 20, &den), NFS4_OK);
  // A second open_to_lock_owner of the same owner reuses its stateid.
  stateid4 again;
  ASSERT_EQ(t.LockNew(1, o1, "L", false, 20, 29, &again, &den), NFS4_OK);
  EXPECT_EQ(std::memcmp(again.other, l1.other, 12), 0);
  EXPECT_EQ(again.seqid, 2u);
  std::optional<FileRelease> r;
  EXPECT_EQ(t.Close(1, o1, &r), NFS4ERR_LOCKS_HELD);
  EXPECT_EQ(t.Free(1, again), NFS4ERR_LOCKS_HELD);
  stateid4 u;
  ASSERT_EQ(t.Unlock(1, again, 0, ~uint64_t{0}, &u), NFS4_OK);
  ASSERT_EQ(t.Close(1, o1, &r), NFS4_OK);
  StateInfo info;
  EXPECT_EQ(t.Find(1, u, &info), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(t.stateid_count(), 1u);
}

}  // namespace
}  // namespace nfs41d::state
