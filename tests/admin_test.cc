// nsadmin fsck and stats (issue 9, items 3 and 4) on both backends: each
// kind of corruption is made on purpose in the stored rows, fsck must name
// it, --repair must fix what it calls repairable, and a second run must come
// back clean with the namespace still usable. fsck on a healthy namespace
// under concurrent writers finds nothing and blocks no one.

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "libnamespace/include/namespace/admin.h"
#include "tests/test_util.h"

namespace ns::testing {
namespace {

class AdminTest : public DialectTest {
 protected:
  // A small tree: /a/b/c, /a/f (two names: /a/f and /a/b/f2), /a/l -> /a/f.
  void SetUp() override {
    DialectTest::SetUp();
    if (HasFatalFailure()) return;
    a_ = MkdirOrFail(ns_->Root(), "a");
    b_ = MkdirOrFail(a_, "b");
    c_ = MkdirOrFail(b_, "c");
    f_ = CreateOrFail(a_, "f");
    ASSERT_OK(ns_->Link(root_, f_, b_, "f2"));
    ASSERT_OK_AND_ASSIGN(Attr l, ns_->Symlink(root_, a_, "l", "/a/f"));
    l_ = l.ino;
    std::string error;
    raw_ = RawDb::Open(uri_, &error);
    ASSERT_NE(raw_, nullptr) << error;
  }

  void Corrupt(const std::string& sql) {
    std::string error;
    ASSERT_TRUE(raw_->Exec(sql, &error)) << sql << ": " << error;
  }

  FsckReport RunFsck(bool repair) {
    FsckOptions options;
    options.repair = repair;
    Result<FsckReport> r = Fsck(*ns_, options);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : FsckReport{};
  }

  static std::multiset<std::string> Checks(const FsckReport& r) {
    std::multiset<std::string> out;
    for (const FsckFinding& f : r.findings) out.insert(f.check);
    return out;
  }

  // Detects exactly `check` (at least once, nothing else), repairs it if
  // `repairable`, and leaves a clean namespace whose tree still reads.
  void ExpectFound(const std::string& check, bool repairable) {
    const FsckReport found = RunFsck(false);
    ASSERT_FALSE(found.findings.empty()) << "fsck found nothing";
    for (const FsckFinding& f : found.findings) {
      EXPECT_EQ(f.check, check) << f.detail;
      EXPECT_FALSE(f.repaired);
    }
    const FsckReport fixed = RunFsck(true);
    for (const FsckFinding& f : fixed.findings) {
      EXPECT_EQ(f.repaired, repairable) << f.check << ": " << f.detail;
    }
    if (repairable) {
      const FsckReport again = RunFsck(false);
      EXPECT_TRUE(again.findings.empty())
          << again.findings.front().check << ": "
          << again.findings.front().detail;
      ExpectDirNlinks(ns_->Root());
    }
  }

  InodeId a_ = 0, b_ = 0, c_ = 0, f_ = 0, l_ = 0;
  std::unique_ptr<RawDb> raw_;
};

TEST_P(AdminTest, HealthyNamespaceIsClean) {
  const FsckReport r = RunFsck(false);
  EXPECT_TRUE(r.findings.empty()) << r.findings.front().detail;
  EXPECT_EQ(r.inodes, 6u);  // root, a, b, c, f, l
  EXPECT_EQ(r.entries, 6u);
  EXPECT_EQ(r.Unrepaired(), 0u);
}

TEST_P(AdminTest, EntryNamingMissingInodeIsRemoved) {
  Corrupt("INSERT INTO dirents (parent, name, child, type, cookie) VALUES (" +
          std::to_string(a_) + ", 'ghost', 999999, 1, 999999)");
  ExpectFound("entry-missing-inode", true);
  EXPECT_STATUS(ns_->Lookup(root_, a_, "ghost"), NotFound);
}

TEST_P(AdminTest, UnreferencedInodeGoesToLostFound) {
  Corrupt("DELETE FROM dirents WHERE name = 'c'");
  // c lost its name: unreferenced, and b's nlink now counts a missing subdir.
  const FsckReport found = RunFsck(false);
  EXPECT_EQ(Checks(found), (std::multiset<std::string>{
                               "unreferenced-inode", "directory-nlink"}));
  const FsckReport fixed = RunFsck(true);
  EXPECT_EQ(fixed.Unrepaired(), 0u);
  ASSERT_OK_AND_ASSIGN(Attr lf, ns_->Resolve(root_, "/lost+found"));
  EXPECT_EQ(lf.mode & 07777, 0700u);
  ASSERT_OK_AND_ASSIGN(Attr c, ns_->Lookup(root_, lf.ino, "#" + std::to_string(c_)));
  EXPECT_EQ(c.ino, c_);
  EXPECT_EQ(c.parent, lf.ino);
  EXPECT_TRUE(RunFsck(false).findings.empty());
  ExpectDirNlinks(ns_->Root());
}

TEST_P(AdminTest, WrongFileLinkCountIsFixed) {
  Corrupt("UPDATE inodes SET nlink = 7 WHERE ino = " + std::to_string(f_));
  ExpectFound("file-nlink", true);
  EXPECT_EQ(GetAttrOrFail(f_).nlink, 2u);
}

TEST_P(AdminTest, WrongDirectoryLinkCountIsFixed) {
  Corrupt("UPDATE inodes SET nlink = 9 WHERE ino = " + std::to_string(a_));
  ExpectFound("directory-nlink", true);
  EXPECT_EQ(GetAttrOrFail(a_).nlink, 3u);
}

TEST_P(AdminTest, EntryTypeMismatchIsFixed) {
  Corrupt("UPDATE dirents SET type = 1 WHERE name = 'c'");
  // b's subdirectory count (what nlink must be) drops with it.
  const FsckReport found = RunFsck(false);
  EXPECT_EQ(Checks(found), (std::multiset<std::string>{"entry-type-mismatch",
                                                       "directory-nlink"}));
  EXPECT_EQ(RunFsck(true).Unrepaired(), 0u);
  EXPECT_TRUE(RunFsck(false).findings.empty());
  ASSERT_OK_AND_ASSIGN(DirPage page, ns_->ReadDir(root_, b_, ReadDirRequest{}));
  bool seen = false;
  for (const DirEntry& e : page.entries) {
    if (e.name == "c") {
      seen = true;
      EXPECT_EQ(e.type, FileType::kDirectory);
    }
  }
  EXPECT_TRUE(seen);
  EXPECT_EQ(GetAttrOrFail(b_).nlink, 3u);
}

TEST_P(AdminTest, WrongParentPointerIsFixed) {
  Corrupt("UPDATE inodes SET parent = 1 WHERE ino = " + std::to_string(c_));
  ExpectFound("directory-parent", true);
  EXPECT_EQ(GetAttrOrFail(c_).parent, b_);
}

TEST_P(AdminTest, EntryInsideAFileIsRemoved) {
  Corrupt("INSERT INTO dirents (parent, name, child, type, cookie) VALUES (" +
          std::to_string(f_) + ", 'x', " + std::to_string(l_) +
          ", 3, 999998)");
  // l has two names now: the entry in the file, and its own.
  const FsckReport found = RunFsck(false);
  EXPECT_EQ(Checks(found), (std::multiset<std::string>{
                               "entry-in-non-directory", "file-nlink"}));
  EXPECT_EQ(RunFsck(true).Unrepaired(), 0u);
  EXPECT_TRUE(RunFsck(false).findings.empty());
  EXPECT_EQ(GetAttrOrFail(l_).nlink, 1u);
}

TEST_P(AdminTest, StrayRowsAreRemoved) {
  Corrupt("INSERT INTO symlinks (ino, target) VALUES (" + std::to_string(f_) +
          ", '/nowhere')");
  Corrupt("INSERT INTO orphans (ino, since_ns) VALUES (" + std::to_string(f_) +
          ", 0)");
  const FsckReport found = RunFsck(false);
  EXPECT_EQ(Checks(found), (std::multiset<std::string>{"symlink-target",
                                                       "orphan-record"}));
  EXPECT_EQ(RunFsck(true).Unrepaired(), 0u);
  EXPECT_TRUE(RunFsck(false).findings.empty());
  ASSERT_OK_AND_ASSIGN(std::string target, ns_->ReadLink(root_, l_));
  EXPECT_EQ(target, "/a/f");
}

TEST_P(AdminTest, MetadataOfMissingInodesAndStrayTagSetsAreRemoved) {
  Corrupt("INSERT INTO xattrs (ino, name, value) VALUES (777777, 'user.x', 'v')");
  Corrupt("INSERT INTO checksums (ino, type, value) VALUES (777777, 1, 'ab')");
  Corrupt("INSERT INTO inode_data (ino, bytes) VALUES (777777, 'abc')");
  Corrupt("INSERT INTO tags (origin, name, value) VALUES (888888, 'OSMTemplate', 'x')");
  // A tag set that a directory sees is left alone.
  ASSERT_OK(ns_->WriteTag(root_, a_, "sGroup", "kept"));
  const FsckReport found = RunFsck(false);
  EXPECT_EQ(Checks(found),
            (std::multiset<std::string>{"metadata-of-missing-inode",
                                        "metadata-of-missing-inode",
                                        "metadata-of-missing-inode",
                                        "unreferenced-tag-set"}));
  EXPECT_EQ(RunFsck(true).Unrepaired(), 0u);
  EXPECT_TRUE(RunFsck(false).findings.empty());
  std::string error;
  EXPECT_EQ(raw_->QueryInts("SELECT count(*) FROM xattrs WHERE ino = 777777", &error),
            std::vector<int64_t>{0}) << error;
  ASSERT_OK_AND_ASSIGN(std::string v, ns_->ReadTag(root_, a_, "sGroup"));
  EXPECT_EQ(v, "kept");
}

TEST_P(AdminTest, UnrepairableProblemsAreOnlyReported) {
  // A cycle: b named inside c (and still in a) -> b has two names.
  Corrupt("INSERT INTO dirents (parent, name, child, type, cookie) VALUES (" +
          std::to_string(c_) + ", 'loop', " + std::to_string(b_) +
          ", 2, 999997)");
  Corrupt("DELETE FROM symlinks WHERE ino = " + std::to_string(l_));
  const FsckReport fixed = RunFsck(true);
  const std::multiset<std::string> checks = Checks(fixed);
  EXPECT_EQ(checks.count("directory-several-names"), 1u);
  EXPECT_EQ(checks.count("symlink-target"), 1u);
  for (const FsckFinding& f : fixed.findings) {
    if (f.check == "directory-several-names" || f.check == "symlink-target") {
      EXPECT_FALSE(f.repairable);
      EXPECT_FALSE(f.repaired);
    }
  }
  EXPECT_GE(fixed.Unrepaired(), 2u);
  // Nothing was made worse: the original names still resolve.
  EXPECT_OK(ns_->Resolve(root_, "/a/b/c"));
}

TEST_P(AdminTest, FindingsAreCappedPerCheck) {
  for (int i = 0; i < 5; ++i) {
    Corrupt("INSERT INTO dirents (parent, name, child, type, cookie) VALUES (" +
            std::to_string(a_) + ", 'g" + std::to_string(i) + "', " +
            std::to_string(900000 + i) + ", 1, " + std::to_string(900000 + i) +
            ")");
  }
  FsckOptions options;
  options.max_findings_per_check = 3;
  ASSERT_OK_AND_ASSIGN(FsckReport r, Fsck(*ns_, options));
  EXPECT_EQ(r.findings.size(), 3u);
  EXPECT_EQ(r.truncated, std::vector<std::string>{"entry-missing-inode"});
}

TEST_P(AdminTest, LiveNamespaceUnderWritersStaysClean) {
  // Writers create and remove files and directories while fsck --repair
  // runs over and over: every run must find nothing (detection reads one
  // snapshot per check), and every writer must finish.
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::atomic<int> finished{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < 400 && !stop; ++i) {
        const std::string name = "w" + std::to_string(w) + "_" + std::to_string(i);
        if (i % 3 == 0) {
          if (ns_->Mkdir(root_, a_, name, 0755).ok()) ++writes;
        } else if (ns_->Create(root_, a_, name, 0644).ok()) {
          ++writes;
          if (i % 2 == 0 && ns_->Unlink(root_, a_, name).ok()) ++writes;
        }
      }
      ++finished;
    });
  }
  int runs = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  // fsck runs over and over for as long as the writers write (at least 5
  // times), so the two always overlap whatever the machine's speed.
  while ((runs < 5 || finished.load() < 4) &&
         std::chrono::steady_clock::now() < deadline) {
    const FsckReport r = RunFsck(true);
    for (const FsckFinding& f : r.findings) {
      ADD_FAILURE() << "live run " << runs << ": " << f.check << ": " << f.detail;
    }
    ++runs;
  }
  stop = true;
  for (std::thread& t : writers) t.join();
  EXPECT_GT(writes.load(), 0);
  EXPECT_TRUE(RunFsck(false).findings.empty());
  ExpectDirNlinks(ns_->Root());
}

TEST_P(AdminTest, UsageCountsByTypeOwnerAndTree) {
  SetAttrRequest chown;
  chown.uid = 1000;
  ASSERT_OK(ns_->SetAttr(root_, f_, chown));
  SetAttrRequest grow;
  grow.size = 4096;
  ASSERT_OK(ns_->SetAttr(root_, f_, grow));
  const InodeId z = MkdirOrFail(ns_->Root(), "z");
  CreateOrFail(z, "small");
  ASSERT_OK_AND_ASSIGN(UsageReport u, Usage(*ns_, UsageOptions{}));
  EXPECT_EQ(u.files, 2u);
  EXPECT_EQ(u.directories, 5u);  // root, a, b, c, z
  EXPECT_EQ(u.symlinks, 1u);
  EXPECT_EQ(u.bytes, 4096u);
  ASSERT_FALSE(u.by_owner.empty());
  EXPECT_EQ(u.by_owner.front().key, "uid 1000");
  EXPECT_EQ(u.by_owner.front().bytes, 4096u);
  ASSERT_EQ(u.by_top_directory.size(), 2u);
  EXPECT_EQ(u.by_top_directory[0].key, "/a");
  // a, b, c, f (named twice: counted under each name), l.
  EXPECT_EQ(u.by_top_directory[0].files, 6u);
  EXPECT_EQ(u.by_top_directory[0].bytes, 8192u);
  EXPECT_EQ(u.by_top_directory[1].key, "/z");
  EXPECT_EQ(u.by_top_directory[1].files, 2u);
  ASSERT_FALSE(u.largest_directories.empty());
  EXPECT_EQ(u.largest_directories.front().key, "/a");
  EXPECT_EQ(u.largest_directories.front().files, 3u);  // b, f, l
}

INSTANTIATE_TEST_SUITE_P(Backends, AdminTest, ::testing::ValuesIn(DialectsWithPartitions()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace ns::testing
