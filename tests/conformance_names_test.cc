// Conformance (conformance_test.cc): link, unlink, mkdir, rmdir, rename.

#include "tests/conformance_fixture.h"

namespace ns::testing {
namespace {

// ---- link, unlink, mkdir, rmdir ---------------------------------------------

TEST_P(ConformanceTest, HardLinksAreCountedInNlink) {
  InodeId a = MkdirOrFail(ns_->Root(), "a");
  InodeId b = MkdirOrFail(ns_->Root(), "b");
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, a, "f", 0644));
  ASSERT_OK_AND_ASSIGN(Attr l1, ns_->Link(root_, f.ino, b, "g"));
  EXPECT_EQ(l1.ino, f.ino);
  EXPECT_EQ(l1.nlink, 2u);
  EXPECT_GT(l1.ctime, f.ctime);
  EXPECT_GT(l1.change, f.change);
  EXPECT_EQ(l1.btime, f.btime);
  ASSERT_OK_AND_ASSIGN(Attr l2, ns_->Link(root_, f.ino, a, "f2"));
  EXPECT_EQ(l2.nlink, 3u);
  EXPECT_EQ(LookupOrFail(b, "g").ino, f.ino);
  EXPECT_EQ(LookupOrFail(a, "f2").ino, f.ino);
  EXPECT_EQ(GetAttrOrFail(f.ino).nlink, 3u);
  // Linking files does not change a directory's nlink.
  EXPECT_EQ(GetAttrOrFail(a).nlink, 2u);
  EXPECT_EQ(GetAttrOrFail(b).nlink, 2u);

  EXPECT_STATUS(ns_->Link(root_, f.ino, b, "g"), Exists);
  EXPECT_STATUS(ns_->Link(root_, f.ino, f.ino, "x"), NotDir);
  Status dir_link = ns_->Link(root_, a, b, "alias").status();
  EXPECT_TRUE(dir_link.IsIsDir() || dir_link.IsNotPermitted()) << dir_link.ToString();
  EXPECT_STATUS(ns_->Lookup(root_, b, "alias"), NotFound);

  ASSERT_OK_AND_ASSIGN(UnlinkResult u1, ns_->Unlink(root_, a, "f"));
  EXPECT_EQ(u1.ino, f.ino);
  EXPECT_EQ(u1.nlink_left, 2u);
  EXPECT_FALSE(u1.retained);
  Attr after1 = GetAttrOrFail(f.ino);
  EXPECT_EQ(after1.nlink, 2u);
  EXPECT_GT(after1.ctime, l2.ctime);
  EXPECT_GT(after1.change, l2.change);
  ASSERT_OK_AND_ASSIGN(UnlinkResult u2, ns_->Unlink(root_, b, "g"));
  EXPECT_EQ(u2.nlink_left, 1u);
  ASSERT_OK_AND_ASSIGN(UnlinkResult u3, ns_->Unlink(root_, a, "f2"));
  EXPECT_EQ(u3.nlink_left, 0u);
  EXPECT_FALSE(u3.retained);
  EXPECT_STATUS(ns_->GetAttr(root_, f.ino), Stale);
  EXPECT_STATUS(ns_->Link(root_, f.ino, a, "again"), Stale);
}

TEST_P(ConformanceTest, UnlinkRemovesNonDirectoriesOnly) {
  InodeId d = MkdirOrFail(ns_->Root(), "d");
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, ns_->Root(), "f", 0644));
  ASSERT_OK_AND_ASSIGN(Attr l, ns_->Symlink(root_, ns_->Root(), "l", "d"));
  ASSERT_OK_AND_ASSIGN(Attr p, ns_->Mknod(root_, ns_->Root(), "p", FileType::kFifo, 0644));
  EXPECT_STATUS(ns_->Unlink(root_, ns_->Root(), "d"), IsDir);
  EXPECT_STATUS(ns_->Unlink(root_, ns_->Root(), "missing"), NotFound);
  EXPECT_STATUS(ns_->Unlink(root_, f.ino, "x"), NotDir);
  for (const char* name : {"f", "l", "p"}) {
    ASSERT_OK_AND_ASSIGN(UnlinkResult u, ns_->Unlink(root_, ns_->Root(), name));
    EXPECT_EQ(u.nlink_left, 0u) << name;
    EXPECT_STATUS(ns_->Lookup(root_, ns_->Root(), name), NotFound);
  }
  EXPECT_STATUS(ns_->GetAttr(root_, f.ino), Stale);
  EXPECT_STATUS(ns_->GetAttr(root_, l.ino), Stale);
  EXPECT_STATUS(ns_->GetAttr(root_, p.ino), Stale);
  EXPECT_STATUS(ns_->ReadLink(root_, l.ino), Stale);
  EXPECT_EQ(GetAttrOrFail(d).type, FileType::kDirectory);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(*ns_, ns_->Root()));
  EXPECT_EQ(names, std::vector<std::string>{"d"});
}

// NFSv4 REMOVE's form of Unlink: any type, an empty directory too, in one
// call; a directory with entries stays.
TEST_P(ConformanceTest, UnlinkWithDirectoriesRemovesAnyEmptyName) {
  UnlinkOptions any;
  any.directories = true;
  InodeId d = MkdirOrFail(ns_->Root(), "d");
  InodeId full = MkdirOrFail(ns_->Root(), "full");
  CreateOrFail(full, "inner");
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, ns_->Root(), "f", 0644));
  const uint32_t root_nlink = GetAttrOrFail(ns_->Root()).nlink;
  const uint64_t root_change = GetAttrOrFail(ns_->Root()).change;
  EXPECT_STATUS(ns_->Unlink(root_, ns_->Root(), "full", any), NotEmpty);
  EXPECT_EQ(GetAttrOrFail(full).type, FileType::kDirectory);
  EXPECT_STATUS(ns_->Unlink(root_, ns_->Root(), "missing", any), NotFound);
  ASSERT_OK_AND_ASSIGN(UnlinkResult ud, ns_->Unlink(root_, ns_->Root(), "d", any));
  EXPECT_EQ(ud.ino, d);
  EXPECT_EQ(ud.type, FileType::kDirectory);
  EXPECT_EQ(ud.nlink_left, 0u);
  EXPECT_STATUS(ns_->GetAttr(root_, d), Stale);
  EXPECT_STATUS(ns_->Lookup(root_, ns_->Root(), "d"), NotFound);
  Attr root_after = GetAttrOrFail(ns_->Root());
  EXPECT_EQ(root_after.nlink, root_nlink - 1);
  EXPECT_GT(root_after.change, root_change);
  ASSERT_OK_AND_ASSIGN(UnlinkResult uf, ns_->Unlink(root_, ns_->Root(), "f", any));
  EXPECT_EQ(uf.ino, f.ino);
  EXPECT_EQ(uf.type, FileType::kRegular);
  EXPECT_EQ(uf.nlink_left, 0u);
  EXPECT_STATUS(ns_->GetAttr(root_, f.ino), Stale);
  // Permission as for rmdir: no write permission on the parent, no removal.
  Credentials other{1234, 1234, {}};
  MkdirOrFail(ns_->Root(), "kept");
  EXPECT_STATUS(ns_->Unlink(other, ns_->Root(), "kept", any), AccessDenied);
  ExpectDirNlinks(ns_->Root());
}

TEST_P(ConformanceTest, DirectoryNlinkIsTwoPlusSubdirectories) {
  ASSERT_OK_AND_ASSIGN(Attr a, ns_->Mkdir(root_, ns_->Root(), "a", 0750));
  EXPECT_EQ(a.type, FileType::kDirectory);
  EXPECT_EQ(a.mode, 0750u);
  EXPECT_EQ(a.nlink, 2u);
  EXPECT_EQ(a.parent, kRootInode);
  EXPECT_EQ(GetAttrOrFail(ns_->Root()).nlink, 3u);
  InodeId b = MkdirOrFail(a.ino, "b");
  EXPECT_EQ(GetAttrOrFail(b).parent, a.ino);
  InodeId c = MkdirOrFail(a.ino, "c");
  CreateOrFail(a.ino, "f");
  ASSERT_OK(ns_->Symlink(root_, a.ino, "l", "b"));
  EXPECT_EQ(GetAttrOrFail(a.ino).nlink, 4u);
  ExpectDirNlinks(ns_->Root());

  EXPECT_STATUS(ns_->Rmdir(root_, ns_->Root(), "a"), NotEmpty);
  EXPECT_STATUS(ns_->Rmdir(root_, a.ino, "f"), NotDir);
  EXPECT_STATUS(ns_->Rmdir(root_, a.ino, "l"), NotDir);
  EXPECT_STATUS(ns_->Rmdir(root_, a.ino, "missing"), NotFound);
  CreateOrFail(c, "inner");
  EXPECT_STATUS(ns_->Rmdir(root_, a.ino, "c"), NotEmpty);
  ASSERT_OK(ns_->Unlink(root_, c, "inner"));
  ASSERT_OK(ns_->Rmdir(root_, a.ino, "c"));
  EXPECT_STATUS(ns_->GetAttr(root_, c), Stale);
  EXPECT_EQ(GetAttrOrFail(a.ino).nlink, 3u);
  ASSERT_OK(ns_->Rmdir(root_, a.ino, "b"));
  ASSERT_OK(ns_->Unlink(root_, a.ino, "f"));
  ASSERT_OK(ns_->Unlink(root_, a.ino, "l"));
  EXPECT_EQ(GetAttrOrFail(a.ino).nlink, 2u);
  ASSERT_OK(ns_->Rmdir(root_, ns_->Root(), "a"));
  EXPECT_EQ(GetAttrOrFail(ns_->Root()).nlink, 2u);
  EXPECT_STATUS(ns_->GetAttr(root_, a.ino), Stale);
  EXPECT_STATUS(ns_->Create(root_, a.ino, "x", 0644), Stale);
}

TEST_P(ConformanceTest, UnlinkRetainIfLastKeepsAnOrphanUntilReleased) {
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, ns_->Root(), "open", 0644));
  ASSERT_OK(ns_->Link(root_, f.ino, ns_->Root(), "second"));
  UnlinkOptions retain;
  retain.retain_if_last = true;
  // Not the last link: an ordinary unlink.
  ASSERT_OK_AND_ASSIGN(UnlinkResult u1, ns_->Unlink(root_, ns_->Root(), "second", retain));
  EXPECT_EQ(u1.nlink_left, 1u);
  EXPECT_FALSE(u1.retained);
  ASSERT_OK_AND_ASSIGN(UnlinkResult u2, ns_->Unlink(root_, ns_->Root(), "open", retain));
  EXPECT_EQ(u2.ino, f.ino);
  EXPECT_EQ(u2.nlink_left, 0u);
  EXPECT_TRUE(u2.retained);
  EXPECT_STATUS(ns_->Lookup(root_, ns_->Root(), "open"), NotFound);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(*ns_, ns_->Root()));
  EXPECT_TRUE(names.empty());
  ASSERT_OK_AND_ASSIGN(Attr orphan, ns_->GetAttr(root_, f.ino));
  EXPECT_EQ(orphan.nlink, 0u);
  EXPECT_EQ(orphan.type, FileType::kRegular);
  EXPECT_EQ(orphan.btime, f.btime);
  // The open file can still be written to.
  SetAttrRequest grow;
  grow.size = 4096;
  ASSERT_OK_AND_ASSIGN(Attr grown, ns_->SetAttr(root_, f.ino, grow));
  EXPECT_EQ(grown.size, 4096u);
  EXPECT_EQ(grown.nlink, 0u);

  // Releasing a linked inode is refused.
  InodeId linked = CreateOrFail(ns_->Root(), "linked");
  EXPECT_STATUS(ns_->ReleaseOrphan(linked), Invalid);
  EXPECT_EQ(GetAttrOrFail(linked).nlink, 1u);

  ASSERT_OK(ns_->ReleaseOrphan(f.ino));
  EXPECT_STATUS(ns_->GetAttr(root_, f.ino), Stale);

  // Without the option the last unlink deletes at once.
  ASSERT_OK_AND_ASSIGN(UnlinkResult u3, ns_->Unlink(root_, ns_->Root(), "linked"));
  EXPECT_FALSE(u3.retained);
  EXPECT_STATUS(ns_->GetAttr(root_, linked), Stale);
}

TEST_P(ConformanceTest, ListOrphansFindsRetainedInodesUntilReleased) {
  ASSERT_OK_AND_ASSIGN(std::vector<InodeId> none, ns_->ListOrphans());
  EXPECT_TRUE(none.empty());
  UnlinkOptions retain;
  retain.retain_if_last = true;
  std::vector<InodeId> kept;
  for (const char* name : {"o1", "o2", "o3"}) {
    ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, ns_->Root(), name, 0644));
    ASSERT_OK(ns_->Unlink(root_, ns_->Root(), name, retain).status());
    kept.push_back(f.ino);
  }
  // An ordinary unlink and a linked file are not orphans.
  CreateOrFail(ns_->Root(), "gone");
  ASSERT_OK(ns_->Unlink(root_, ns_->Root(), "gone").status());
  CreateOrFail(ns_->Root(), "linked");
  ASSERT_OK_AND_ASSIGN(std::vector<InodeId> all, ns_->ListOrphans());
  EXPECT_EQ(all, kept);
  // Paged by id.
  ASSERT_OK_AND_ASSIGN(std::vector<InodeId> first, ns_->ListOrphans(0, 2));
  EXPECT_EQ(first, std::vector<InodeId>(kept.begin(), kept.begin() + 2));
  ASSERT_OK_AND_ASSIGN(std::vector<InodeId> rest,
                       ns_->ListOrphans(first.back(), 2));
  EXPECT_EQ(rest, std::vector<InodeId>{kept[2]});
  EXPECT_STATUS(ns_->ListOrphans(0, 0), Invalid);
  // Released ones leave the list, and their inodes are gone.
  ASSERT_OK(ns_->ReleaseOrphan(kept[1]));
  ASSERT_OK_AND_ASSIGN(std::vector<InodeId> left, ns_->ListOrphans());
  EXPECT_EQ(left, (std::vector<InodeId>{kept[0], kept[2]}));
  EXPECT_STATUS(ns_->GetAttr(root_, kept[1]), Stale);
}

// ---- rename -------------------------------------------------------------------

TEST_P(ConformanceTest, RenameFileWithinAndAcrossDirectories) {
  InodeId a = MkdirOrFail(ns_->Root(), "a");
  InodeId b = MkdirOrFail(ns_->Root(), "b");
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, a, "f", 0644));
  ASSERT_OK_AND_ASSIGN(RenameResult r1, ns_->Rename(root_, a, "f", a, "g"));
  EXPECT_FALSE(r1.replaced.has_value());
  EXPECT_STATUS(ns_->Lookup(root_, a, "f"), NotFound);
  EXPECT_EQ(LookupOrFail(a, "g").ino, f.ino);
  ASSERT_OK_AND_ASSIGN(RenameResult r2, ns_->Rename(root_, a, "g", b, "h"));
  EXPECT_FALSE(r2.replaced.has_value());
  EXPECT_STATUS(ns_->Lookup(root_, a, "g"), NotFound);
  Attr moved = LookupOrFail(b, "h");
  EXPECT_EQ(moved.ino, f.ino);
  EXPECT_EQ(moved.nlink, 1u);
  EXPECT_EQ(moved.btime, f.btime);
  // Files do not count in a directory's nlink.
  EXPECT_EQ(GetAttrOrFail(a).nlink, 2u);
  EXPECT_EQ(GetAttrOrFail(b).nlink, 2u);
  EXPECT_STATUS(ns_->Rename(root_, a, "missing", b, "x"), NotFound);
  EXPECT_STATUS(ns_->Rename(root_, b, "h", f.ino, "x"), NotDir);
  EXPECT_STATUS(ns_->Rename(root_, b, "h", 987654321, "x"), Stale);
  EXPECT_EQ(LookupOrFail(b, "h").ino, f.ino);
}

TEST_P(ConformanceTest, RenameOverAnExistingFileReplacesIt) {
  ASSERT_OK_AND_ASSIGN(Attr src, ns_->Create(root_, ns_->Root(), "src", 0644));
  ASSERT_OK_AND_ASSIGN(Attr dst, ns_->Create(root_, ns_->Root(), "dst", 0644));
  ASSERT_OK_AND_ASSIGN(RenameResult r, ns_->Rename(root_, ns_->Root(), "src", ns_->Root(), "dst"));
  ASSERT_TRUE(r.replaced.has_value());
  EXPECT_EQ(r.replaced->ino, dst.ino);
  EXPECT_EQ(r.replaced->nlink_left, 0u);
  EXPECT_FALSE(r.replaced->retained);
  EXPECT_STATUS(ns_->GetAttr(root_, dst.ino), Stale);
  EXPECT_EQ(LookupOrFail(ns_->Root(), "dst").ino, src.ino);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(*ns_, ns_->Root()));
  EXPECT_EQ(names, std::vector<std::string>{"dst"});

  // A replaced inode with another link lives on with one link less.
  ASSERT_OK_AND_ASSIGN(Attr t, ns_->Create(root_, ns_->Root(), "t", 0644));
  ASSERT_OK(ns_->Link(root_, t.ino, ns_->Root(), "t2"));
  ASSERT_OK_AND_ASSIGN(RenameResult r2, ns_->Rename(root_, ns_->Root(), "dst", ns_->Root(), "t"));
  ASSERT_TRUE(r2.replaced.has_value());
  EXPECT_EQ(r2.replaced->ino, t.ino);
  EXPECT_EQ(r2.replaced->nlink_left, 1u);
  EXPECT_EQ(GetAttrOrFail(t.ino).nlink, 1u);
  EXPECT_EQ(LookupOrFail(ns_->Root(), "t").ino, src.ino);
  EXPECT_EQ(LookupOrFail(ns_->Root(), "t2").ino, t.ino);

  // With retain_if_last the replaced inode becomes an orphan.
  ASSERT_OK_AND_ASSIGN(Attr v, ns_->Create(root_, ns_->Root(), "v", 0644));
  UnlinkOptions retain;
  retain.retain_if_last = true;
  ASSERT_OK_AND_ASSIGN(RenameResult r3, ns_->Rename(root_, ns_->Root(), "t2", ns_->Root(), "v", retain));
  ASSERT_TRUE(r3.replaced.has_value());
  EXPECT_EQ(r3.replaced->ino, v.ino);
  EXPECT_TRUE(r3.replaced->retained);
  ASSERT_OK_AND_ASSIGN(Attr orphan, ns_->GetAttr(root_, v.ino));
  EXPECT_EQ(orphan.nlink, 0u);
  ASSERT_OK(ns_->ReleaseOrphan(v.ino));
  EXPECT_STATUS(ns_->GetAttr(root_, v.ino), Stale);
}

TEST_P(ConformanceTest, RenameDirectoryOverEmptyDirectory) {
  InodeId a = MkdirOrFail(ns_->Root(), "a");
  InodeId b = MkdirOrFail(ns_->Root(), "b");
  InodeId src = MkdirOrFail(a, "src");
  CreateOrFail(src, "payload");
  InodeId empty = MkdirOrFail(b, "empty");
  InodeId same_parent_dst = MkdirOrFail(b, "other");
  ASSERT_EQ(GetAttrOrFail(b).nlink, 4u);

  ASSERT_OK_AND_ASSIGN(RenameResult r, ns_->Rename(root_, a, "src", b, "empty"));
  ASSERT_TRUE(r.replaced.has_value());
  EXPECT_EQ(r.replaced->ino, empty);
  EXPECT_STATUS(ns_->GetAttr(root_, empty), Stale);
  EXPECT_EQ(LookupOrFail(b, "empty").ino, src);
  EXPECT_EQ(GetAttrOrFail(src).parent, b);
  EXPECT_OK(ns_->Lookup(root_, src, "payload"));
  EXPECT_EQ(GetAttrOrFail(a).nlink, 2u);  // lost src
  EXPECT_EQ(GetAttrOrFail(b).nlink, 4u);  // gained src, lost empty

  // Within one directory: one subdirectory fewer.
  ASSERT_OK(ns_->Unlink(root_, src, "payload"));
  ASSERT_OK_AND_ASSIGN(RenameResult r2, ns_->Rename(root_, b, "empty", b, "other"));
  ASSERT_TRUE(r2.replaced.has_value());
  EXPECT_EQ(r2.replaced->ino, same_parent_dst);
  EXPECT_EQ(GetAttrOrFail(b).nlink, 3u);
  ExpectDirNlinks(ns_->Root());
}

TEST_P(ConformanceTest, RenameRefusals) {
  InodeId a = MkdirOrFail(ns_->Root(), "a");
  InodeId ab = MkdirOrFail(a, "b");
  InodeId abc = MkdirOrFail(ab, "c");
  InodeId full = MkdirOrFail(ns_->Root(), "full");
  CreateOrFail(full, "x");
  InodeId empty = MkdirOrFail(ns_->Root(), "empty");
  CreateOrFail(ns_->Root(), "file");
  (void)empty;
  ASSERT_OK_AND_ASSIGN(std::string before, Snapshot(*ns_));

  // A directory into its own subtree.
  EXPECT_STATUS(ns_->Rename(root_, ns_->Root(), "a", abc, "a"), Invalid);
  EXPECT_STATUS(ns_->Rename(root_, ns_->Root(), "a", ab, "moved"), Invalid);
  EXPECT_STATUS(ns_->Rename(root_, ns_->Root(), "a", a, "self"), Invalid);
  // Onto a non-empty directory.
  EXPECT_STATUS(ns_->Rename(root_, ns_->Root(), "empty", ns_->Root(), "full"), NotEmpty);
  EXPECT_STATUS(ns_->Rename(root_, ns_->Root(), "a", ns_->Root(), "full"), NotEmpty);
  // Type mismatches.
  EXPECT_STATUS(ns_->Rename(root_, ns_->Root(), "empty", ns_->Root(), "file"), NotDir);
  EXPECT_STATUS(ns_->Rename(root_, ns_->Root(), "file", ns_->Root(), "empty"), IsDir);
  // The root cannot be moved; nothing can replace an ancestor.
  EXPECT_STATUS(ns_->Rename(root_, abc, "..", ns_->Root(), "x"), Invalid);
  EXPECT_STATUS(ns_->Rename(root_, ab, "c", a, "b"), NotEmpty);

  ASSERT_OK_AND_ASSIGN(std::string after, Snapshot(*ns_));
  EXPECT_EQ(before, after);
}

TEST_P(ConformanceTest, RenameOntoTheSameInodeIsANoOp) {
  InodeId d = MkdirOrFail(ns_->Root(), "d");
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, d, "f", 0644));
  ASSERT_OK(ns_->Link(root_, f.ino, d, "hard"));
  InodeId e = MkdirOrFail(ns_->Root(), "e");
  ASSERT_OK(ns_->Link(root_, f.ino, e, "far"));
  MkdirOrFail(d, "sub");
  ASSERT_OK_AND_ASSIGN(std::string before, Snapshot(*ns_));

  ASSERT_OK_AND_ASSIGN(RenameResult r1, ns_->Rename(root_, d, "f", d, "f"));
  EXPECT_FALSE(r1.replaced.has_value());
  ASSERT_OK_AND_ASSIGN(RenameResult r2, ns_->Rename(root_, d, "sub", d, "sub"));
  EXPECT_FALSE(r2.replaced.has_value());
  // Two hard links of one inode: rename(2) does nothing, both names stay.
  ASSERT_OK_AND_ASSIGN(RenameResult r3, ns_->Rename(root_, d, "f", d, "hard"));
  EXPECT_FALSE(r3.replaced.has_value());
  ASSERT_OK_AND_ASSIGN(RenameResult r4, ns_->Rename(root_, e, "far", d, "f"));
  EXPECT_FALSE(r4.replaced.has_value());

  ASSERT_OK_AND_ASSIGN(std::string after, Snapshot(*ns_));
  EXPECT_EQ(before, after);
  EXPECT_EQ(GetAttrOrFail(f.ino).nlink, 3u);
}

TEST_P(ConformanceTest, RenameDirectoryAcrossDirectoriesMovesDotDot) {
  InodeId a = MkdirOrFail(ns_->Root(), "a");
  InodeId b = MkdirOrFail(ns_->Root(), "b");
  InodeId d = MkdirOrFail(a, "d");
  MkdirOrFail(d, "inner");
  Attr a0 = GetAttrOrFail(a), b0 = GetAttrOrFail(b), d0 = GetAttrOrFail(d);
  ASSERT_EQ(a0.nlink, 3u);
  ASSERT_EQ(b0.nlink, 2u);
  ASSERT_EQ(d0.parent, a);

  ASSERT_OK_AND_ASSIGN(RenameResult r, ns_->Rename(root_, a, "d", b, "d2"));
  EXPECT_FALSE(r.replaced.has_value());
  Attr a1 = GetAttrOrFail(a), b1 = GetAttrOrFail(b), d1 = GetAttrOrFail(d);
  EXPECT_EQ(a1.nlink, 2u);
  EXPECT_EQ(b1.nlink, 3u);
  EXPECT_EQ(d1.parent, b);
  EXPECT_EQ(d1.nlink, 3u);
  EXPECT_EQ(d1.btime, d0.btime);
  EXPECT_GT(a1.mtime, a0.mtime);
  EXPECT_GT(b1.mtime, b0.mtime);
  EXPECT_GT(a1.change, a0.change);
  EXPECT_GT(b1.change, b0.change);
  EXPECT_EQ(LookupOrFail(b, "d2").ino, d);
  // The moved directory's subtree moved with it.
  ASSERT_OK_AND_ASSIGN(Attr inner, ns_->Resolve(root_, "/b/d2/inner"));
  EXPECT_EQ(inner.parent, d);
  ASSERT_OK_AND_ASSIGN(Attr up, ns_->Resolve(root_, "/b/d2/inner/../.."));
  EXPECT_EQ(up.ino, b);
  ExpectDirNlinks(ns_->Root());

  // Moving it back up to the root.
  ASSERT_OK(ns_->Rename(root_, b, "d2", ns_->Root(), "top"));
  EXPECT_EQ(GetAttrOrFail(d).parent, kRootInode);
  EXPECT_EQ(GetAttrOrFail(ns_->Root()).nlink, 5u);
  ExpectDirNlinks(ns_->Root());
}

}  // namespace
}  // namespace ns::testing
