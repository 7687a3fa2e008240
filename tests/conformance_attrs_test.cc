// Conformance (conformance_test.cc): lookup, getattr, create, setattr,
// mknod, symlink.

#include "tests/conformance_fixture.h"

namespace ns::testing {
namespace {

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

}  // namespace
}  // namespace ns::testing
