// Conformance (conformance_test.cc): times and the change counter, path
// resolution, statfs.

#include "tests/conformance_fixture.h"

namespace ns::testing {
namespace {

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

// What a create, mkdir or unlink returns of the parent is the parent as its
// commit left it: a server answers change_info4 and fills its attribute
// cache from it. SQLite's one writer always has it; PostgreSQL never does
// (entry changes are records folded into the row later).
TEST_P(ConformanceTest, ParentAfterIsTheDirectoryAsCommitted) {
  InodeId a = MkdirOrFail(ns_->Root(), "a");
  const bool exact = GetParam() == "sqlite";
  auto check = [&](const std::optional<Attr>& got, const std::string& what) {
    SCOPED_TRACE(what);
    ASSERT_EQ(got.has_value(), exact);
    if (!got) return;
    const Attr now = GetAttrOrFail(a);
    EXPECT_TRUE(*got == now) << "change " << got->change << " vs " << now.change
                             << ", nlink " << got->nlink << " vs " << now.nlink;
  };
  std::optional<Attr> after;
  ASSERT_OK(ns_->Create(root_, a, "f", 0644, {}, &after).status());
  check(after, "create");
  after.reset();
  ASSERT_OK(ns_->Mkdir(root_, a, "d", 0755, &after).status());
  check(after, "mkdir");
  Result<UnlinkResult> u = ns_->Unlink(root_, a, "f");
  ASSERT_OK(u.status());
  check(u->parent_after, "unlink");
  UnlinkOptions dirs;
  dirs.directories = true;
  u = ns_->Unlink(root_, a, "d", dirs);
  ASSERT_OK(u.status());
  check(u->parent_after, "unlink of a directory");
  EXPECT_EQ(GetAttrOrFail(a).nlink, 2u);
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

}  // namespace
}  // namespace ns::testing
