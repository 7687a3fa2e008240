// The Namespace conformance suite: POSIX semantics of every operation, the
// same tests against SQLite and PostgreSQL (issue 2, items 4 and 5).

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "libnamespace/include/namespace/pnfs.h"
#include "tests/test_util.h"

namespace ns::testing {
namespace {

using ConformanceTest = DialectTest;

const Credentials kUser{1000, 1000, {2000}};
const Credentials kOther{1001, 1001, {}};

// ---- lookup, getattr, create -----------------------------------------------

TEST_P(ConformanceTest, RootIsADirectoryThatIsItsOwnParent) {
  Attr root = GetAttrOrFail(ns_->Root());
  EXPECT_EQ(root.ino, kRootInode);
  EXPECT_EQ(root.type, FileType::kDirectory);
  EXPECT_EQ(root.nlink, 2u);
  EXPECT_EQ(root.parent, kRootInode);
  EXPECT_EQ(root.mode, 0755u);
  EXPECT_GT(root.btime, 0);
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(*ns_, ns_->Root()));
  EXPECT_TRUE(names.empty());
}

TEST_P(ConformanceTest, CreateSetsAttributesAndLookupFindsIt) {
  const TimeNs before = WallNs();
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, ns_->Root(), "f", 0640));
  const TimeNs after = WallNs();
  EXPECT_GT(f.ino, kRootInode);
  EXPECT_EQ(f.type, FileType::kRegular);
  EXPECT_EQ(f.mode, 0640u);
  EXPECT_EQ(f.nlink, 1u);
  EXPECT_EQ(f.uid, 0u);
  EXPECT_EQ(f.gid, 0u);
  EXPECT_EQ(f.size, 0u);
  EXPECT_EQ(f.parent, 0u);
  // A new inode's four times are one instant, taken now.
  EXPECT_EQ(f.mtime, f.ctime);
  EXPECT_EQ(f.atime, f.ctime);
  EXPECT_EQ(f.btime, f.ctime);
  EXPECT_GE(f.btime, before - 2'000'000'000);
  EXPECT_LE(f.btime, after + 2'000'000'000);

  Attr looked = LookupOrFail(ns_->Root(), "f");
  Attr got = GetAttrOrFail(f.ino);
  for (const Attr& a : {looked, got}) {
    EXPECT_EQ(a.ino, f.ino);
    EXPECT_EQ(a.type, f.type);
    EXPECT_EQ(a.mode, f.mode);
    EXPECT_EQ(a.nlink, f.nlink);
    EXPECT_EQ(a.mtime, f.mtime);
    EXPECT_EQ(a.ctime, f.ctime);
    EXPECT_EQ(a.btime, f.btime);
    EXPECT_EQ(a.change, f.change);
  }
  EXPECT_STATUS(ns_->Create(root_, ns_->Root(), "f", 0644), Exists);
  EXPECT_STATUS(ns_->Mkdir(root_, ns_->Root(), "f", 0755), Exists);
  EXPECT_STATUS(ns_->Symlink(root_, ns_->Root(), "f", "x"), Exists);
  EXPECT_STATUS(ns_->Mknod(root_, ns_->Root(), "f", FileType::kFifo, 0644), Exists);
  EXPECT_STATUS(ns_->Lookup(root_, ns_->Root(), "missing"), NotFound);
  EXPECT_STATUS(ns_->Lookup(root_, f.ino, "x"), NotDir);
  EXPECT_STATUS(ns_->Create(root_, f.ino, "x", 0644), NotDir);
  EXPECT_STATUS(ns_->Mkdir(root_, f.ino, "x", 0755), NotDir);
  // Names are bytes: case matters, UTF-8 is kept as given.
  ASSERT_OK(ns_->Create(root_, ns_->Root(), "F", 0644));
  ASSERT_OK(ns_->Create(root_, ns_->Root(), "gr\xC3\xBC\xC3\x9F" "e \xE2\x9C\x93", 0644));
  EXPECT_OK(ns_->Lookup(root_, ns_->Root(), "gr\xC3\xBC\xC3\x9F" "e \xE2\x9C\x93"));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(*ns_, ns_->Root()));
  EXPECT_EQ(names, (std::vector<std::string>{"F", "f", "gr\xC3\xBC\xC3\x9F" "e \xE2\x9C\x93"}));
}

TEST_P(ConformanceTest, NewInodesBelongToTheCaller) {
  InodeId pub = MkdirOrFail(ns_->Root(), "pub", 0777);
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(kUser, pub, "mine", 0600));
  EXPECT_EQ(f.uid, kUser.uid);
  EXPECT_EQ(f.gid, kUser.gid);
  ASSERT_OK_AND_ASSIGN(Attr d, ns_->Mkdir(kUser, pub, "dir", 0700));
  EXPECT_EQ(d.uid, kUser.uid);
  EXPECT_EQ(d.gid, kUser.gid);
  // No write permission in the root (0755, owned by root).
  EXPECT_STATUS(ns_->Create(kUser, ns_->Root(), "nope", 0644), AccessDenied);
  EXPECT_STATUS(ns_->Lookup(root_, ns_->Root(), "nope"), NotFound);
}

TEST_P(ConformanceTest, GetAttrOfUnknownInodeIsStale) {
  EXPECT_STATUS(ns_->GetAttr(root_, 987654321), Stale);
  EXPECT_STATUS(ns_->GetAttr(root_, 0), Stale);
}

// ---- setattr ----------------------------------------------------------------

TEST_P(ConformanceTest, SetAttrModeOwnerSetsCtimeAndChangeOnly) {
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, ns_->Root(), "f", 0644));
  SetAttrRequest req;
  req.mode = 04750;
  ASSERT_OK_AND_ASSIGN(Attr a, ns_->SetAttr(root_, f.ino, req));
  EXPECT_EQ(a.mode, 04750u);
  EXPECT_GT(a.ctime, f.ctime);
  EXPECT_GT(a.change, f.change);
  EXPECT_EQ(a.mtime, f.mtime);
  EXPECT_EQ(a.atime, f.atime);
  EXPECT_EQ(a.btime, f.btime);
  EXPECT_EQ(a.size, 0u);

  SetAttrRequest own;
  own.uid = 4242;
  own.gid = 4343;
  ASSERT_OK_AND_ASSIGN(Attr b, ns_->SetAttr(root_, f.ino, own));
  EXPECT_EQ(b.uid, 4242u);
  EXPECT_EQ(b.gid, 4343u);
  EXPECT_GT(b.ctime, a.ctime);
  EXPECT_GT(b.change, a.change);
  EXPECT_EQ(b.mtime, f.mtime);
  EXPECT_EQ(b.btime, f.btime);

  Attr got = GetAttrOrFail(f.ino);
  // POSIX leaves it open whether root's chown clears setuid (Linux does).
  EXPECT_TRUE(got.mode == 04750u || got.mode == 0750u) << std::oct << got.mode;
  EXPECT_EQ(got.uid, 4242u);
  EXPECT_EQ(got.gid, 4343u);
  EXPECT_EQ(got.ctime, b.ctime);
  EXPECT_EQ(got.change, b.change);
}

TEST_P(ConformanceTest, SetAttrSizeSetsMtimeUnlessMtimeGiven) {
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, ns_->Root(), "f", 0644));
  SetAttrRequest grow;
  grow.size = 123456789012ull;
  ASSERT_OK_AND_ASSIGN(Attr a, ns_->SetAttr(root_, f.ino, grow));
  EXPECT_EQ(a.size, 123456789012ull);
  EXPECT_GT(a.mtime, f.mtime);
  EXPECT_GT(a.ctime, f.ctime);
  EXPECT_EQ(a.mtime, a.ctime);
  EXPECT_GT(a.change, f.change);
  EXPECT_EQ(a.btime, f.btime);

  SetAttrRequest both;
  both.size = 7;
  both.mtime = 1'111'111'111'222'333'444;
  ASSERT_OK_AND_ASSIGN(Attr b, ns_->SetAttr(root_, f.ino, both));
  EXPECT_EQ(b.size, 7u);
  EXPECT_EQ(b.mtime, 1'111'111'111'222'333'444);
  EXPECT_GT(b.ctime, a.ctime);
  EXPECT_GT(b.change, a.change);

  // Truncating to zero is a size change too.
  SetAttrRequest zero;
  zero.size = 0;
  ASSERT_OK_AND_ASSIGN(Attr c, ns_->SetAttr(root_, f.ino, zero));
  EXPECT_EQ(c.size, 0u);
  EXPECT_GT(c.mtime, b.mtime);
  EXPECT_GT(c.change, b.change);

  InodeId d = MkdirOrFail(ns_->Root(), "d");
  EXPECT_STATUS(ns_->SetAttr(root_, d, grow), IsDir);
  ASSERT_OK_AND_ASSIGN(Attr l, ns_->Symlink(root_, ns_->Root(), "l", "f"));
  EXPECT_STATUS(ns_->SetAttr(root_, l.ino, grow), Invalid);
  ASSERT_OK_AND_ASSIGN(Attr p, ns_->Mknod(root_, ns_->Root(), "p", FileType::kFifo, 0644));
  EXPECT_STATUS(ns_->SetAttr(root_, p.ino, grow), Invalid);
}

TEST_P(ConformanceTest, SetAttrTimesKeepNanosecondsAndBumpCtime) {
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, ns_->Root(), "f", 0644));
  SetAttrRequest req;
  req.atime = 1'234'567'890'123'456'789;
  req.mtime = 987'654'321'987'654'321;
  ASSERT_OK_AND_ASSIGN(Attr a, ns_->SetAttr(root_, f.ino, req));
  EXPECT_EQ(a.atime, 1'234'567'890'123'456'789);
  EXPECT_EQ(a.mtime, 987'654'321'987'654'321);
  EXPECT_GT(a.ctime, f.ctime);
  EXPECT_GT(a.change, f.change);
  EXPECT_EQ(a.btime, f.btime);  // an mtime before btime does not move btime
  Attr got = GetAttrOrFail(f.ino);
  EXPECT_EQ(got.atime, 1'234'567'890'123'456'789);
  EXPECT_EQ(got.mtime, 987'654'321'987'654'321);

  // Times before the epoch survive too.
  SetAttrRequest old;
  old.mtime = -86'400'000'000'001;
  ASSERT_OK_AND_ASSIGN(Attr o, ns_->SetAttr(root_, f.ino, old));
  EXPECT_EQ(o.mtime, -86'400'000'000'001);
  EXPECT_EQ(GetAttrOrFail(f.ino).mtime, -86'400'000'000'001);

  // "now" means the server's clock.
  SetAttrRequest now;
  now.atime_now = true;
  now.mtime_now = true;
  const TimeNs before = WallNs();
  ASSERT_OK_AND_ASSIGN(Attr n, ns_->SetAttr(root_, f.ino, now));
  const TimeNs after = WallNs();
  EXPECT_GE(n.mtime, before - 2'000'000'000);
  EXPECT_LE(n.mtime, after + 2'000'000'000);
  EXPECT_GE(n.atime, before - 2'000'000'000);
  EXPECT_LE(n.atime, after + 2'000'000'000);
  EXPECT_GT(n.change, o.change);
  EXPECT_EQ(n.btime, f.btime);
}

TEST_P(ConformanceTest, SetAttrPermissions) {
  InodeId pub = MkdirOrFail(ns_->Root(), "pub", 0777);
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(kUser, pub, "f", 0644));
  SetAttrRequest mode;
  mode.mode = 0600;
  EXPECT_STATUS(ns_->SetAttr(kOther, f.ino, mode), NotPermitted);
  EXPECT_OK(ns_->SetAttr(kUser, f.ino, mode));
  SetAttrRequest chown;
  chown.uid = kOther.uid;
  EXPECT_STATUS(ns_->SetAttr(kUser, f.ino, chown), NotPermitted);
  SetAttrRequest chgrp_member;
  chgrp_member.gid = 2000;  // a supplementary group of kUser
  EXPECT_OK(ns_->SetAttr(kUser, f.ino, chgrp_member));
  SetAttrRequest chgrp_other;
  chgrp_other.gid = 3000;
  EXPECT_STATUS(ns_->SetAttr(kUser, f.ino, chgrp_other), NotPermitted);
  SetAttrRequest times;
  times.mtime = 5;
  EXPECT_STATUS(ns_->SetAttr(kOther, f.ino, times), NotPermitted);
  Attr a = GetAttrOrFail(f.ino);
  EXPECT_EQ(a.mode, 0600u);
  EXPECT_EQ(a.uid, kUser.uid);
  EXPECT_EQ(a.gid, 2000u);
  EXPECT_NE(a.mtime, 5);
}

// ---- mknod, symlink ------------------------------------------------------------

TEST_P(ConformanceTest, MknodMakesEverySpecialType) {
  struct Case {
    const char* name;
    FileType type;
    uint32_t major, minor;
  };
  const Case cases[] = {
      {"fifo", FileType::kFifo, 0, 0},
      {"sock", FileType::kSocket, 0, 0},
      {"null", FileType::kCharDevice, 1, 3},
      {"sda1", FileType::kBlockDevice, 8, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_OK_AND_ASSIGN(Attr a, ns_->Mknod(root_, ns_->Root(), c.name, c.type,
                                            0620, c.major, c.minor));
    EXPECT_EQ(a.type, c.type);
    EXPECT_EQ(a.mode, 0620u);
    EXPECT_EQ(a.nlink, 1u);
    EXPECT_EQ(a.rdev_major, c.major);
    EXPECT_EQ(a.rdev_minor, c.minor);
    Attr l = LookupOrFail(ns_->Root(), c.name);
    EXPECT_EQ(l.ino, a.ino);
    EXPECT_EQ(l.type, c.type);
    EXPECT_EQ(l.rdev_major, c.major);
    EXPECT_EQ(l.rdev_minor, c.minor);
  }
  ASSERT_OK_AND_ASSIGN(std::vector<DirEntry> entries, ListAll(*ns_, ns_->Root()));
  std::map<std::string, FileType> types;
  for (const DirEntry& e : entries) types[e.name] = e.type;
  for (const Case& c : cases) {
    EXPECT_EQ(types[c.name], c.type) << c.name;
  }

  EXPECT_STATUS(ns_->Mknod(root_, ns_->Root(), "r", FileType::kRegular, 0644), Invalid);
  EXPECT_STATUS(ns_->Mknod(root_, ns_->Root(), "d", FileType::kDirectory, 0755), Invalid);
  EXPECT_STATUS(ns_->Mknod(root_, ns_->Root(), "s", FileType::kSymlink, 0777), Invalid);
  InodeId pub = MkdirOrFail(ns_->Root(), "pub", 0777);
  EXPECT_STATUS(ns_->Mknod(kUser, pub, "dev", FileType::kCharDevice, 0600, 1, 3),
                NotPermitted);
  EXPECT_STATUS(ns_->Mknod(kUser, pub, "blk", FileType::kBlockDevice, 0600, 8, 0),
                NotPermitted);
  EXPECT_OK(ns_->Mknod(kUser, pub, "myfifo", FileType::kFifo, 0600));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(*ns_, pub));
  EXPECT_EQ(names, std::vector<std::string>{"myfifo"});
}

TEST_P(ConformanceTest, SymlinkStoresTargetAsGiven) {
  const std::string targets[] = {"relative/path", "/absolute/path", "../up",
                                 "with space and \xE2\x9C\x93",
                                 std::string(4096, 'x')};
  int i = 0;
  for (const std::string& t : targets) {
    const std::string name = "l" + std::to_string(i++);
    ASSERT_OK_AND_ASSIGN(Attr l, ns_->Symlink(root_, ns_->Root(), name, t));
    EXPECT_EQ(l.type, FileType::kSymlink);
    EXPECT_EQ(l.nlink, 1u);
    EXPECT_EQ(l.size, t.size()) << "a symlink's size is its target's length";
    ASSERT_OK_AND_ASSIGN(std::string back, ns_->ReadLink(root_, l.ino));
    EXPECT_EQ(back, t);
    EXPECT_EQ(LookupOrFail(ns_->Root(), name).type, FileType::kSymlink);
  }
  InodeId f = CreateOrFail(ns_->Root(), "file");
  EXPECT_STATUS(ns_->ReadLink(root_, f), Invalid);
  EXPECT_STATUS(ns_->ReadLink(root_, ns_->Root()), Invalid);
}

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

// ---- times and the change counter ---------------------------------------------

TEST_P(ConformanceTest, EveryEntryChangeUpdatesParentTimesAndChange) {
  InodeId a = MkdirOrFail(ns_->Root(), "a");
  InodeId b = MkdirOrFail(ns_->Root(), "b");
  InodeId keep = CreateOrFail(a, "keep");
  struct Step {
    std::string what;
    std::vector<InodeId> dirs;
    std::function<Status()> op;
  };
  const Credentials root = root_;
  Namespace& ns = *ns_;
  const std::vector<Step> steps = {
      {"create", {a}, [&] { return ns.Create(root, a, "f", 0644).status(); }},
      {"mkdir", {a}, [&] { return ns.Mkdir(root, a, "d", 0755).status(); }},
      {"mknod", {a}, [&] { return ns.Mknod(root, a, "p", FileType::kFifo, 0644).status(); }},
      {"symlink", {a}, [&] { return ns.Symlink(root, a, "s", "f").status(); }},
      {"link", {b}, [&] { return ns.Link(root, keep, b, "k").status(); }},
      {"rename within", {a}, [&] { return ns.Rename(root, a, "f", a, "g").status(); }},
      {"rename across", {a, b}, [&] { return ns.Rename(root, a, "g", b, "g").status(); }},
      {"rename dir across", {a, b}, [&] { return ns.Rename(root, a, "d", b, "d").status(); }},
      {"rename over", {b}, [&] { return ns.Rename(root, b, "g", b, "k").status(); }},
      {"unlink", {a}, [&] { return ns.Unlink(root, a, "p").status(); }},
      {"unlink symlink", {a}, [&] { return ns.Unlink(root, a, "s").status(); }},
      {"rmdir", {b}, [&] { return ns.Rmdir(root, b, "d"); }},
      {"unlink last", {b}, [&] { return ns.Unlink(root, b, "k").status(); }},
  };
  for (const Step& step : steps) {
    SCOPED_TRACE(step.what);
    std::vector<Attr> before;
    for (InodeId d : step.dirs) before.push_back(GetAttrOrFail(d));
    ASSERT_OK(step.op());
    for (size_t i = 0; i < step.dirs.size(); ++i) {
      Attr after = GetAttrOrFail(step.dirs[i]);
      EXPECT_GT(after.mtime, before[i].mtime);
      EXPECT_GT(after.ctime, before[i].ctime);
      EXPECT_GT(after.change, before[i].change);
      EXPECT_EQ(after.btime, before[i].btime);
    }
  }
  ExpectDirNlinks(ns_->Root());
}

TEST_P(ConformanceTest, TimesHaveNanosecondResolutionAndBirthTimeNeverChanges) {
  // Times taken by the server have sub-microsecond digits: of 20 creates at
  // least one has a timestamp that is not a whole microsecond.
  bool sub_micro = false;
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, ns_->Root(), "t" + std::to_string(i), 0644));
    if (f.btime % 1000 != 0 || f.mtime % 1000 != 0) sub_micro = true;
  }
  EXPECT_TRUE(sub_micro) << "every time was a whole microsecond";

  InodeId d = MkdirOrFail(ns_->Root(), "d");
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, d, "f", 0644));
  const TimeNs btime = f.btime;
  const TimeNs dir_btime = GetAttrOrFail(d).btime;
  SetAttrRequest req;
  req.mode = 0600;
  req.size = 99;
  req.atime = 1;
  req.mtime = 2;
  ASSERT_OK(ns_->SetAttr(root_, f.ino, req));
  ASSERT_OK(ns_->Link(root_, f.ino, ns_->Root(), "f2"));
  ASSERT_OK(ns_->Rename(root_, d, "f", ns_->Root(), "f3"));
  ASSERT_OK(ns_->Unlink(root_, ns_->Root(), "f2"));
  SetAttrRequest now;
  now.mtime_now = true;
  ASSERT_OK(ns_->SetAttr(root_, f.ino, now));
  EXPECT_EQ(GetAttrOrFail(f.ino).btime, btime);
  EXPECT_EQ(GetAttrOrFail(d).btime, dir_btime);
  ASSERT_OK(ns_->Rename(root_, ns_->Root(), "d", ns_->Root(), "d2"));
  EXPECT_EQ(GetAttrOrFail(d).btime, dir_btime);
}

TEST_P(ConformanceTest, ChangeCounterIncreasesOnEveryChangeOfTheInode) {
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, ns_->Root(), "f", 0644));
  uint64_t last = f.change;
  auto expect_rise = [&](const char* what) {
    const uint64_t now = GetAttrOrFail(f.ino).change;
    EXPECT_GT(now, last) << what;
    last = now;
  };
  SetAttrRequest m;
  m.mode = 0600;
  ASSERT_OK(ns_->SetAttr(root_, f.ino, m));
  expect_rise("chmod");
  SetAttrRequest s;
  s.size = 10;
  ASSERT_OK(ns_->SetAttr(root_, f.ino, s));
  expect_rise("truncate");
  SetAttrRequest t;
  t.atime = 77;
  ASSERT_OK(ns_->SetAttr(root_, f.ino, t));
  expect_rise("atime");
  ASSERT_OK(ns_->Link(root_, f.ino, ns_->Root(), "g"));
  expect_rise("link");
  ASSERT_OK(ns_->Unlink(root_, ns_->Root(), "g"));
  expect_rise("unlink of the other name");
  // Reads change nothing.
  ASSERT_OK(ns_->Lookup(root_, ns_->Root(), "f"));
  ASSERT_OK(ns_->GetAttr(root_, f.ino));
  EXPECT_EQ(GetAttrOrFail(f.ino).change, last);
}

// ---- path resolution, statfs ----------------------------------------------------

TEST_P(ConformanceTest, ResolveWalksPathsAndFollowsSymlinks) {
  InodeId a = MkdirOrFail(ns_->Root(), "a");
  InodeId b = MkdirOrFail(a, "b");
  InodeId f = CreateOrFail(b, "f");
  ASSERT_OK(ns_->Symlink(root_, ns_->Root(), "rel", "a/b"));
  ASSERT_OK(ns_->Symlink(root_, a, "abs", "/a/b"));
  ASSERT_OK(ns_->Symlink(root_, b, "up", "../.."));
  ASSERT_OK(ns_->Symlink(root_, b, "tof", "f"));
  ASSERT_OK(ns_->Symlink(root_, ns_->Root(), "dangling", "/nowhere"));

  auto ino_of = [&](std::string_view path, bool follow = true) -> InodeId {
    Result<Attr> r = ns_->Resolve(root_, path, follow);
    if (!r.ok()) {
      ADD_FAILURE() << "Resolve(" << path << "): " << r.status().ToString();
      return 0;
    }
    return r->ino;
  };
  EXPECT_EQ(ino_of("/"), kRootInode);
  EXPECT_EQ(ino_of("/a"), a);
  EXPECT_EQ(ino_of("/a/b/f"), f);
  EXPECT_EQ(ino_of("//a///b//f"), f);
  EXPECT_EQ(ino_of("/a/b/"), b);
  EXPECT_EQ(ino_of("/a/./b/../b/f"), f);
  EXPECT_EQ(ino_of("/.."), kRootInode);
  // Symlinks in the middle are followed: relative, absolute, with "..".
  EXPECT_EQ(ino_of("/rel/f"), f);
  EXPECT_EQ(ino_of("/a/abs/f"), f);
  EXPECT_EQ(ino_of("/a/b/up/a/b/f"), f);
  EXPECT_EQ(ino_of("/rel/up/rel/tof"), f);
  // The last component only when asked.
  EXPECT_EQ(ino_of("/rel"), b);
  ASSERT_OK_AND_ASSIGN(Attr link, ns_->Resolve(root_, "/rel", false));
  EXPECT_EQ(link.type, FileType::kSymlink);
  EXPECT_EQ(ino_of("/a/b/tof"), f);
  ASSERT_OK_AND_ASSIGN(Attr tof, ns_->Resolve(root_, "/a/b/tof", false));
  EXPECT_EQ(tof.type, FileType::kSymlink);
  ASSERT_OK_AND_ASSIGN(Attr d, ns_->Resolve(root_, "/dangling", false));
  EXPECT_EQ(d.type, FileType::kSymlink);

  EXPECT_STATUS(ns_->Resolve(root_, "/dangling"), NotFound);
  EXPECT_STATUS(ns_->Resolve(root_, "/nope"), NotFound);
  EXPECT_STATUS(ns_->Resolve(root_, "/a/nope/f"), NotFound);
  EXPECT_STATUS(ns_->Resolve(root_, "/a/b/f/x"), NotDir);
  EXPECT_STATUS(ns_->Resolve(root_, "/a/b/tof/x"), NotDir);
  EXPECT_STATUS(ns_->Resolve(root_, "a/b"), Invalid);
  EXPECT_STATUS(ns_->Resolve(root_, ""), Invalid);
}

TEST_P(ConformanceTest, ResolveReportsSymlinkLoops) {
  ASSERT_OK(ns_->Symlink(root_, ns_->Root(), "x", "y"));
  ASSERT_OK(ns_->Symlink(root_, ns_->Root(), "y", "/x"));
  ASSERT_OK(ns_->Symlink(root_, ns_->Root(), "self", "self"));
  InodeId d = MkdirOrFail(ns_->Root(), "d");
  ASSERT_OK(ns_->Symlink(root_, d, "again", "../d/again/z"));
  EXPECT_STATUS(ns_->Resolve(root_, "/x"), Loop);
  EXPECT_STATUS(ns_->Resolve(root_, "/x/z"), Loop);
  EXPECT_STATUS(ns_->Resolve(root_, "/self"), Loop);
  EXPECT_STATUS(ns_->Resolve(root_, "/d/again"), Loop);
  // Not following the last one, there is no loop.
  ASSERT_OK_AND_ASSIGN(Attr x, ns_->Resolve(root_, "/x", false));
  EXPECT_EQ(x.type, FileType::kSymlink);

  // A chain of kMaxSymlinkFollows symlinks resolves; one more is a loop.
  InodeId target = CreateOrFail(d, "target");
  const int n = kMaxSymlinkFollows;
  for (int i = 1; i <= n + 1; ++i) {
    const std::string to = i == 1 ? "/d/target" : "/c" + std::to_string(i - 1);
    ASSERT_OK(ns_->Symlink(root_, ns_->Root(), "c" + std::to_string(i), to));
  }
  ASSERT_OK_AND_ASSIGN(Attr end, ns_->Resolve(root_, "/c" + std::to_string(n)));
  EXPECT_EQ(end.ino, target);
  EXPECT_STATUS(ns_->Resolve(root_, "/c" + std::to_string(n + 1)), Loop);
}

TEST_P(ConformanceTest, StatFsCountsInodesAndBytes) {
  ASSERT_OK_AND_ASSIGN(FsStats s0, ns_->StatFs(root_));
  EXPECT_EQ(s0.files, 1u);  // the root
  EXPECT_EQ(s0.bytes, 0u);
  EXPECT_EQ(s0.name_max, kMaxNameBytes);
  InodeId d = MkdirOrFail(ns_->Root(), "d");
  InodeId f1 = CreateOrFail(d, "f1");
  InodeId f2 = CreateOrFail(d, "f2");
  ASSERT_OK(ns_->Symlink(root_, d, "l", "f1"));
  ASSERT_OK(ns_->Mknod(root_, d, "p", FileType::kFifo, 0644));
  ASSERT_OK(ns_->Link(root_, f1, ns_->Root(), "hard"));  // no new inode
  SetAttrRequest s1;
  s1.size = 1000;
  ASSERT_OK(ns_->SetAttr(root_, f1, s1));
  SetAttrRequest s2;
  s2.size = 24;
  ASSERT_OK(ns_->SetAttr(root_, f2, s2));
  ASSERT_OK_AND_ASSIGN(FsStats s, ns_->StatFs(root_));
  EXPECT_EQ(s.files, s0.files + 5);
  EXPECT_EQ(s.bytes, s0.bytes + 1024);
  EXPECT_GT(s.files_free, 0u);
  ASSERT_OK(ns_->Unlink(root_, d, "f2"));
  ASSERT_OK(ns_->Unlink(root_, d, "f1"));  // still linked as /hard
  ASSERT_OK_AND_ASSIGN(FsStats t, ns_->StatFs(root_));
  EXPECT_EQ(t.files, s0.files + 4);
  EXPECT_EQ(t.bytes, s0.bytes + 1000);
}

// ---- readdir --------------------------------------------------------------------

TEST_P(ConformanceTest, ReadDirPagesCookiesVerifierAndAttrs) {
  InodeId d = MkdirOrFail(ns_->Root(), "d");
  {
    ASSERT_OK_AND_ASSIGN(DirPage empty, ns_->ReadDir(root_, d, ReadDirRequest{}));
    EXPECT_TRUE(empty.entries.empty());
    EXPECT_TRUE(empty.eof);
  }
  std::map<std::string, InodeId> made;
  for (int i = 0; i < 40; ++i) {
    const std::string name = "e" + std::to_string(i);
    Result<Attr> a = i % 10 == 3   ? ns_->Mkdir(root_, d, name, 0700)
                     : i % 10 == 5 ? ns_->Symlink(root_, d, name, "target")
                     : i % 10 == 7 ? ns_->Mknod(root_, d, name, FileType::kSocket, 0600)
                                   : ns_->Create(root_, d, name, 0600 + i);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    made[name] = a->ino;
  }
  std::vector<DirEntry> reference;
  for (uint32_t page : {1u, 7u, 1000u}) {
    SCOPED_TRACE("page size " + std::to_string(page));
    ASSERT_OK_AND_ASSIGN(std::vector<DirEntry> all, ListAll(*ns_, d, page));
    ASSERT_EQ(all.size(), made.size());
    std::set<std::string> seen;
    for (const DirEntry& e : all) {
      EXPECT_TRUE(seen.insert(e.name).second) << "repeated " << e.name;
      ASSERT_TRUE(made.count(e.name)) << "unknown " << e.name;
      EXPECT_EQ(e.ino, made[e.name]);
      EXPECT_EQ(e.type, LookupOrFail(d, e.name).type);
    }
    if (reference.empty()) {
      reference = all;
    } else {
      // The same cookies, whatever the page size.
      for (size_t i = 0; i < all.size(); ++i) {
        EXPECT_EQ(all[i].cookie, reference[i].cookie);
        EXPECT_EQ(all[i].name, reference[i].name);
      }
    }
  }
  // Page boundaries: a full page of exactly max_entries, eof only at the end.
  {
    ReadDirRequest req;
    req.max_entries = 7;
    ASSERT_OK_AND_ASSIGN(DirPage p, ns_->ReadDir(root_, d, req));
    EXPECT_EQ(p.entries.size(), 7u);
    EXPECT_FALSE(p.eof);
    req.max_entries = 1000;
    req.cookie = p.entries.back().cookie;
    req.verifier = p.verifier;
    ASSERT_OK_AND_ASSIGN(DirPage rest, ns_->ReadDir(root_, d, req));
    EXPECT_EQ(rest.entries.size(), made.size() - 7);
    EXPECT_TRUE(rest.eof);
    EXPECT_EQ(rest.verifier, p.verifier);
    EXPECT_EQ(rest.entries.front().cookie, reference[7].cookie);
    // Resuming after the last entry: nothing, eof.
    req.cookie = reference.back().cookie;
    ASSERT_OK_AND_ASSIGN(DirPage none, ns_->ReadDir(root_, d, req));
    EXPECT_TRUE(none.entries.empty());
    EXPECT_TRUE(none.eof);
    // A verifier that is not this directory's: NFS4ERR_NOT_SAME.
    req.cookie = reference[3].cookie;
    req.verifier = p.verifier ^ 0x5a5a5a5a5a5a5a5aull;
    EXPECT_STATUS(ns_->ReadDir(root_, d, req), Invalid);
  }
  // readdirplus: the attributes are GetAttr's.
  ASSERT_OK_AND_ASSIGN(std::vector<DirEntry> plus, ListAll(*ns_, d, 7, true));
  ASSERT_EQ(plus.size(), made.size());
  for (const DirEntry& e : plus) {
    ASSERT_TRUE(e.attr.has_value()) << e.name;
    Attr a = GetAttrOrFail(e.ino);
    EXPECT_EQ(e.attr->ino, a.ino);
    EXPECT_EQ(e.attr->type, a.type);
    EXPECT_EQ(e.attr->mode, a.mode);
    EXPECT_EQ(e.attr->nlink, a.nlink);
    EXPECT_EQ(e.attr->uid, a.uid);
    EXPECT_EQ(e.attr->size, a.size);
    EXPECT_EQ(e.attr->mtime, a.mtime);
    EXPECT_EQ(e.attr->change, a.change);
    EXPECT_EQ(e.attr->parent, a.parent);
  }
  InodeId f = made["e0"];
  EXPECT_STATUS(ns_->ReadDir(root_, f, ReadDirRequest{}), NotDir);
  EXPECT_STATUS(ns_->ReadDir(root_, 987654321, ReadDirRequest{}), Stale);
}

// Property: a listing resumed at any cookie handed out earlier, with random
// creates, removes and renames in between, neither repeats nor skips entries
// that existed throughout.
TEST_P(ConformanceTest, ReadDirResumesAtEveryCookieWhileTheDirectoryChanges) {
  std::mt19937_64 rng(0x5eed2024);
  constexpr int kInitial = 240;
  InodeId d = MkdirOrFail(ns_->Root(), "prop");
  struct Entry {
    bool stable = false;        // never removed while the test runs
    bool live = true;
    bool renamed = false;       // arrived by rename: its cookie may be old
    uint64_t born = 0;          // sequence number of its creation
    uint64_t cookie = 0;        // 0 until seen in a listing
  };
  std::map<std::string, Entry> entries;
  std::vector<std::string> removable;  // live, not stable
  uint64_t seq = 0;
  int serial = 0;

  for (int i = 0; i < kInitial; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "init%03d", i);
    ASSERT_OK(ns_->Create(root_, d, name, 0644));
    Entry e;
    e.stable = i % 2 == 0;
    e.born = ++seq;
    entries[name] = e;
    if (!e.stable) removable.push_back(name);
  }
  std::set<std::string> removed_now;  // removed during the current listing
  auto mutate = [&]() {
    const int what = static_cast<int>(rng() % 100);
    if (what < 45 || removable.empty()) {
      const std::string name = "new" + std::to_string(serial++);
      Status s = ns_->Create(root_, d, name, 0644).status();
      ASSERT_TRUE(s.ok()) << s.ToString();
      Entry e;
      e.born = ++seq;
      entries[name] = e;
      removable.push_back(name);
      return;
    }
    const size_t k = rng() % removable.size();
    const std::string victim = removable[k];
    removable.erase(removable.begin() + static_cast<ptrdiff_t>(k));
    entries[victim].live = false;
    removed_now.insert(victim);
    if (what < 80) {
      Status s = ns_->Unlink(root_, d, victim).status();
      ASSERT_TRUE(s.ok()) << victim << ": " << s.ToString();
    } else {
      const std::string name = "ren" + std::to_string(serial++);
      Status s = ns_->Rename(root_, d, victim, d, name).status();
      ASSERT_TRUE(s.ok()) << victim << ": " << s.ToString();
      Entry e;
      e.born = ++seq;
      e.renamed = true;
      entries[name] = e;
      removable.push_back(name);
    }
  };
  struct Handed {
    uint64_t cookie;
    uint64_t seq;  // creations up to this number happened before it was handed
  };
  std::vector<Handed> handed;
  uint64_t verifier = 0;
  int64_t checks = 0;  // (listing, entry) pairs whose presence was checked

  // One listing from `start`, mutating between pages. Checks it and records
  // every cookie handed out.
  auto list_from = [&](uint64_t start, uint64_t start_seq, uint32_t page_size,
                       bool record) {
    std::map<std::string, Entry> at_start = entries;
    removed_now.clear();
    std::set<std::string> listed;
    ReadDirRequest req;
    req.cookie = start;
    req.verifier = start == 0 ? 0 : verifier;
    req.max_entries = page_size;
    for (int pages = 0;; ++pages) {
      ASSERT_LT(pages, 20000) << "the listing does not come to an end";
      Result<DirPage> page = ns_->ReadDir(root_, d, req);
      ASSERT_TRUE(page.ok()) << "cookie " << req.cookie << ": " << page.status().ToString();
      if (start == 0 && pages == 0) verifier = page->verifier;
      EXPECT_EQ(page->verifier, verifier);
      ASSERT_LE(page->entries.size(), page_size);
      ASSERT_TRUE(!page->entries.empty() || page->eof);
      for (const DirEntry& e : page->entries) {
        ASSERT_GT(e.cookie, req.cookie) << "cookies must ascend";
        req.cookie = e.cookie;
        auto it = entries.find(e.name);
        ASSERT_NE(it, entries.end()) << "a name never created: " << e.name;
        EXPECT_TRUE(listed.insert(e.name).second) << "repeated: " << e.name;
        if (it->second.cookie == 0) {
          it->second.cookie = e.cookie;
        } else {
          EXPECT_EQ(it->second.cookie, e.cookie) << e.name << " changed its cookie";
        }
        if (record) handed.push_back({e.cookie, seq});
      }
      req.verifier = page->verifier;
      if (page->eof) break;
      // Change the directory between some pages: rarely enough that a
      // listing in pages of one entry still outruns the creates.
      if (rng() % 4 == 0) {
        mutate();
        if (HasFatalFailure()) return;
      }
    }
    // Every entry that existed throughout and lies after `start` was listed.
    for (const auto& [name, e0] : at_start) {
      if (!e0.live || removed_now.count(name)) continue;
      const Entry& e = entries[name];
      bool after_start;
      if (e.cookie != 0) {
        after_start = e.cookie > start;
      } else if (!e.renamed && e.born > start_seq) {
        after_start = true;  // created after `start` was handed out
      } else {
        continue;  // cookie unknown and may lie before `start`
      }
      ++checks;
      if (after_start) {
        EXPECT_TRUE(listed.count(name)) << "skipped " << name << " resuming at " << start;
      } else {
        EXPECT_FALSE(listed.count(name)) << "listed " << name << " before " << start;
      }
    }
  };

  // Pass 1: the whole directory in small pages of varying size.
  {
    std::uniform_int_distribution<uint32_t> size(1, 20);
    list_from(0, 0, size(rng), true);
    if (HasFatalFailure()) return;
    for (const auto& [name, e] : entries) {
      if (e.stable) {
        EXPECT_NE(e.cookie, 0u) << "stable entry never listed: " << name;
      }
    }
  }
  // Pass 2: resume at every cookie handed out in pass 1, in random order,
  // after more changes.
  std::vector<Handed> todo = handed;
  std::shuffle(todo.begin(), todo.end(), rng);
  const uint32_t sizes[] = {1, 7, 1000, 13, 64};
  size_t i = 0;
  for (const Handed& h : todo) {
    mutate();
    if (HasFatalFailure()) return;
    const uint32_t page_size = i % 25 == 0 ? 1 : sizes[1 + rng() % 4];
    ++i;
    list_from(h.cookie, h.seq, page_size, false);
    if (HasFatalFailure()) return;
  }
  // And the stable entries still carry the cookies they had at the start.
  ASSERT_OK_AND_ASSIGN(std::vector<DirEntry> final_list, ListAll(*ns_, d, 1000));
  size_t stable_seen = 0;
  for (const DirEntry& e : final_list) {
    const Entry& known = entries[e.name];
    EXPECT_TRUE(known.live) << "removed entry still listed: " << e.name;
    if (known.stable) {
      ++stable_seen;
      EXPECT_EQ(e.cookie, known.cookie);
    }
  }
  EXPECT_EQ(stable_seen, static_cast<size_t>(kInitial / 2));
  // The property was checked many times over, not vacuously.
  EXPECT_GT(handed.size(), static_cast<size_t>(kInitial));
  EXPECT_GT(checks, 20 * kInitial);
  size_t live = 0;
  for (const auto& [name, e] : entries) live += e.live;
  EXPECT_EQ(final_list.size(), live);
}

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

INSTANTIATE_TEST_SUITE_P(Backends, ConformanceTest, ::testing::ValuesIn(DialectsWithPartitions()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace ns::testing
