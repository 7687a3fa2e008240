// Conformance (conformance_test.cc): small files' bytes in the database
// (schema 8).

#include "libnamespace/include/namespace/admin.h"
#include "tests/conformance_fixture.h"

namespace ns::testing {
namespace {

// ---- small files' bytes in the database (schema 8) -----------------------

TEST_P(ConformanceTest, InlineBytesGoWithSizeMtimeAndChange) {
  const InodeId f = CreateOrFail(ns_->Root(), "small", 0644);
  const Attr before = GetAttrOrFail(f);
  ASSERT_OK_AND_ASSIGN(auto none, ns_->ReadInline(f));
  EXPECT_FALSE(none.has_value());

  const TimeNs t1 = 1'700'000'000'123'456'789;
  ASSERT_OK_AND_ASSIGN(Attr a, ns_->WriteInline(root_, f, 0, "hello", t1));
  EXPECT_EQ(a.size, 5u);
  EXPECT_EQ(a.mtime, t1);
  EXPECT_GT(a.change, before.change);
  EXPECT_EQ(GetAttrOrFail(f).size, 5u);
  ASSERT_OK_AND_ASSIGN(auto got, ns_->ReadInline(f));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, "hello");

  // Overwrite inside, then append: the size only grows.
  ASSERT_OK_AND_ASSIGN(Attr b, ns_->WriteInline(root_, f, 1, "EL", t1 + 1));
  EXPECT_EQ(b.size, 5u);
  EXPECT_GT(b.change, a.change);
  ASSERT_OK_AND_ASSIGN(Attr c, ns_->WriteInline(root_, f, 5, " world", t1 + 2));
  EXPECT_EQ(c.size, 11u);
  ASSERT_OK_AND_ASSIGN(got, ns_->ReadInline(f));
  EXPECT_EQ(*got, "hELlo world");

  // A sparse write: the gap is zeros.
  ASSERT_OK_AND_ASSIGN(Attr d, ns_->WriteInline(root_, f, 20, "z", t1 + 3));
  EXPECT_EQ(d.size, 21u);
  ASSERT_OK_AND_ASSIGN(got, ns_->ReadInline(f));
  EXPECT_EQ(*got, std::string("hELlo world") + std::string(9, '\0') + "z");

  // Binary bytes survive both dialects' encodings.
  std::string bin;
  for (int i = 0; i < 256; ++i) bin += static_cast<char>(i);
  const InodeId g = CreateOrFail(ns_->Root(), "binary", 0644);
  ASSERT_OK(ns_->WriteInline(root_, g, 0, bin, t1).status());
  ASSERT_OK_AND_ASSIGN(got, ns_->ReadInline(g));
  EXPECT_EQ(*got, bin);
}

// A removed file's inline bytes are never read again and are released:
// at once on PostgreSQL; on SQLite listed in inode_data_gone (schema 9)
// and deleted in sorted batches of 256, never the bytes of a live inode.
// fsck counts a listed row as pending, not as left behind.
TEST_P(ConformanceTest, RemovedFilesInlineBytesAreReleasedInBatches) {
  const bool sqlite = GetParam() == "sqlite";
  std::string error;
  std::unique_ptr<RawDb> raw = RawDb::Open(uri_, &error);
  ASSERT_NE(raw, nullptr) << error;
  auto count = [&](const std::string& sql) -> int64_t {
    std::vector<int64_t> v = raw->QueryInts(sql, &error);
    EXPECT_EQ(v.size(), 1u) << sql << ": " << error;
    return v.empty() ? -1 : v[0];
  };
  const std::string dead =
      "SELECT count(*) FROM inode_data d WHERE NOT EXISTS "
      "(SELECT 1 FROM inodes i WHERE i.ino = d.ino)";
  const std::string listed = dead +
                             " AND EXISTS (SELECT 1 FROM inode_data_gone g "
                             "WHERE g.ino = d.ino)";
  const InodeId keep = CreateOrFail(ns_->Root(), "keep", 0644);
  ASSERT_OK(ns_->WriteInline(root_, keep, 0, "kept bytes", WallNs()).status());
  constexpr int kFiles = 300;
  std::vector<InodeId> files;
  for (int i = 0; i < kFiles; ++i) {
    const InodeId f = CreateOrFail(ns_->Root(), "f" + std::to_string(i), 0644);
    ASSERT_OK(ns_->WriteInline(root_, f, 0, std::string(100 + i, 'b'), WallNs())
                  .status());
    files.push_back(f);
  }
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(ns_->Unlink(root_, ns_->Root(), "f" + std::to_string(i)).status());
    EXPECT_STATUS(ns_->ReadInline(files[i]), Stale);
  }
  EXPECT_EQ(count(dead), sqlite ? 10 : 0);
  EXPECT_EQ(count(listed), sqlite ? 10 : 0);
  ASSERT_OK_AND_ASSIGN(FsckReport report, Fsck(*ns_));
  EXPECT_TRUE(report.findings.empty())
      << report.findings.front().check << ": " << report.findings.front().detail;
  // A live inode wrongly listed keeps its bytes through a batch.
  ASSERT_TRUE(raw->Exec("INSERT INTO inode_data_gone (ino) VALUES (" +
                            std::to_string(keep) + ")",
                        &error))
      << error;
  for (int i = 10; i < kFiles; ++i) {
    ASSERT_OK(ns_->Unlink(root_, ns_->Root(), "f" + std::to_string(i)).status());
  }
  // 300 listed: one batch of 256 went, 44 wait.
  EXPECT_EQ(count(dead), sqlite ? kFiles - 256 : 0);
  EXPECT_EQ(count(listed), sqlite ? kFiles - 256 : 0);
  ASSERT_OK_AND_ASSIGN(auto kept, ns_->ReadInline(keep));
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(*kept, "kept bytes");
  for (InodeId f : files) EXPECT_STATUS(ns_->ReadInline(f), Stale);
}

TEST_P(ConformanceTest, InlineStartsOnlyInAnEmptyRegularFile) {
  const InodeId f = CreateOrFail(ns_->Root(), "sized", 0644);
  SetAttrRequest grow;
  grow.size = 10;
  ASSERT_OK(ns_->SetAttr(root_, f, grow).status());
  // Its bytes (zeros so far) belong to the data store.
  EXPECT_STATUS(ns_->WriteInline(root_, f, 0, "x", WallNs()), NotFound);
  ASSERT_OK_AND_ASSIGN(auto none, ns_->ReadInline(f));
  EXPECT_FALSE(none.has_value());

  const InodeId d = MkdirOrFail(ns_->Root(), "dir");
  EXPECT_STATUS(ns_->WriteInline(root_, d, 0, "x", WallNs()), Invalid);
  const InodeId e = CreateOrFail(ns_->Root(), "empty", 0644);
  EXPECT_STATUS(ns_->WriteInline(root_, e, 0, "", WallNs()), Invalid);
  EXPECT_STATUS(ns_->WriteInline(root_, 999999, 0, "x", WallNs()), Stale);
  EXPECT_STATUS(ns_->ReadInline(999999), Stale);
}

TEST_P(ConformanceTest, InlineWriteRefusesToPassTheLimit) {
  const InodeId f = CreateOrFail(ns_->Root(), "f", 0644);
  ASSERT_OK(ns_->WriteInline(root_, f, 0, "1234", WallNs(), 8).status());
  EXPECT_STATUS(ns_->WriteInline(root_, f, 6, "5678", WallNs(), 8), TooBig);
  EXPECT_STATUS(ns_->WriteInline(root_, f, kMaxInlineBytes, "x", WallNs()),
                TooBig);
  // Nothing of a refused write stays.
  ASSERT_OK_AND_ASSIGN(auto got, ns_->ReadInline(f));
  EXPECT_EQ(*got, "1234");
  EXPECT_EQ(GetAttrOrFail(f).size, 4u);
}

TEST_P(ConformanceTest, SetAttrSizeCutsAndDropsInlineBytes) {
  const InodeId f = CreateOrFail(ns_->Root(), "f", 0644);
  ASSERT_OK(ns_->WriteInline(root_, f, 0, "0123456789", WallNs()).status());
  SetAttrRequest q;
  q.size = 4;
  ASSERT_OK(ns_->SetAttr(root_, f, q).status());
  ASSERT_OK_AND_ASSIGN(auto got, ns_->ReadInline(f));
  EXPECT_EQ(*got, "0123");
  // Growing within the bound keeps the bytes; the rest reads as zeros.
  q.size = 100;
  ASSERT_OK(ns_->SetAttr(root_, f, q).status());
  ASSERT_OK_AND_ASSIGN(got, ns_->ReadInline(f));
  EXPECT_EQ(*got, "0123");
  EXPECT_EQ(GetAttrOrFail(f).size, 100u);
  // Past the bound the bytes must leave the database first.
  q.size = kMaxInlineBytes + 1;
  EXPECT_STATUS(ns_->SetAttr(root_, f, q), NotSupported);
  EXPECT_EQ(GetAttrOrFail(f).size, 100u);
  // 0 drops them: an empty file has none.
  q.size = 0;
  ASSERT_OK(ns_->SetAttr(root_, f, q).status());
  ASSERT_OK_AND_ASSIGN(got, ns_->ReadInline(f));
  EXPECT_FALSE(got.has_value());
  // ... and may start inline again.
  ASSERT_OK(ns_->WriteInline(root_, f, 0, "again", WallNs()).status());
}

TEST_P(ConformanceTest, DropInlineOnlyDropsTheBytesItWasGiven) {
  const InodeId f = CreateOrFail(ns_->Root(), "f", 0644);
  ASSERT_OK_AND_ASSIGN(Attr a,
                       ns_->WriteInline(root_, f, 0, "abc", WallNs()));
  // Changed since read: refused, nothing lost.
  EXPECT_STATUS(ns_->DropInline(f, "ab"), Unavailable);
  ASSERT_OK_AND_ASSIGN(auto got, ns_->ReadInline(f));
  EXPECT_EQ(*got, "abc");
  ASSERT_OK(ns_->DropInline(f, "abc"));
  ASSERT_OK_AND_ASSIGN(got, ns_->ReadInline(f));
  EXPECT_FALSE(got.has_value());
  // The contents did not change: size, mtime and change stay.
  const Attr b = GetAttrOrFail(f);
  EXPECT_EQ(b.size, 3u);
  EXPECT_EQ(b.mtime, a.mtime);
  EXPECT_EQ(b.change, a.change);
  ASSERT_OK(ns_->DropInline(f, "abc"));  // not inline: nothing to do
  // Bytes in the data store now: no way back while the file is not empty.
  EXPECT_STATUS(ns_->WriteInline(root_, f, 0, "x", WallNs()), NotFound);
}

TEST_P(ConformanceTest, InlineBytesGoWithTheInode) {
  const InodeId f = CreateOrFail(ns_->Root(), "gone", 0644);
  ASSERT_OK(ns_->WriteInline(root_, f, 0, "bytes", WallNs()).status());
  ASSERT_OK(ns_->Unlink(root_, ns_->Root(), "gone").status());
  EXPECT_STATUS(ns_->ReadInline(f), Stale);

  // Unlinked while open: readable until released.
  const InodeId g = CreateOrFail(ns_->Root(), "open", 0644);
  ASSERT_OK(ns_->WriteInline(root_, g, 0, "still", WallNs()).status());
  UnlinkOptions keep;
  keep.retain_if_last = true;
  ASSERT_OK(ns_->Unlink(root_, ns_->Root(), "open", keep).status());
  ASSERT_OK_AND_ASSIGN(auto got, ns_->ReadInline(g));
  EXPECT_EQ(*got, "still");
  ASSERT_OK(ns_->ReleaseOrphan(g));
  EXPECT_STATUS(ns_->ReadInline(g), Stale);
}

TEST_P(ConformanceTest, InlineWriteClearsSetuidOfANonRootWriter) {
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, ns_->Root(), "suid", 0755));
  SetAttrRequest own;
  own.uid = kUser.uid;
  own.gid = kUser.gid;
  ASSERT_OK(ns_->SetAttr(root_, f.ino, own).status());
  SetAttrRequest suid;
  suid.mode = 04755;
  ASSERT_OK_AND_ASSIGN(Attr s, ns_->SetAttr(kUser, f.ino, suid));
  ASSERT_EQ(s.mode & 04000, 04000u);
  ASSERT_OK_AND_ASSIGN(Attr a, ns_->WriteInline(kUser, f.ino, 0, "x",
                                                WallNs()));
  EXPECT_EQ(a.mode & 04000, 0u);
  EXPECT_EQ(a.mode & 0777, 0755u);
}

TEST_P(ConformanceTest, InlineBytesAndPnfsLayoutsExcludeEachOther) {
  PnfsRegistry pnfs(ns_.get());
  const InodeId f = CreateOrFail(ns_->Root(), "inline", 0644);
  ASSERT_OK(ns_->WriteInline(root_, f, 0, "x", WallNs()).status());
  EXPECT_STATUS(pnfs.SetLayoutIfAbsent({f, 1, 65536}), Unavailable);
  ASSERT_OK_AND_ASSIGN(auto none, pnfs.GetLayout(f));
  EXPECT_FALSE(none.has_value());

  const InodeId g = CreateOrFail(ns_->Root(), "striped", 0644);
  ASSERT_OK(pnfs.SetLayoutIfAbsent({g, 1, 65536}).status());
  EXPECT_STATUS(ns_->WriteInline(root_, g, 0, "x", WallNs()), NotFound);
  ASSERT_OK_AND_ASSIGN(auto no_bytes, ns_->ReadInline(g));
  EXPECT_FALSE(no_bytes.has_value());
}

}  // namespace
}  // namespace ns::testing
