// Concurrency (issue 2, items 6, 7 and 10): 8 threads x 1,000 mixed
// creates, mkdirs, links, renames, unlinks and rmdirs, in one shared
// directory and across per-thread plus shared directories; afterwards every
// invariant of the tree holds, checked through the API and in the stored
// rows, and no caller ever saw a retryable or I/O error. Plus the hot
// directory: concurrent creates in one directory all succeed and its change
// attribute counts every one of them.

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest-spi.h>

#include "tests/test_util.h"

namespace ns::testing {
namespace {

constexpr int kThreads = 8;
constexpr int kOpsPerThread = 1000;
constexpr int kFileNames = 48;  // per directory: collisions are the point
constexpr int kDirNames = 12;

enum class Layout { kShared, kSpread };

class ConcurrencyTest : public DialectTest {
 protected:
  void SetUp() override {
    uri_ = FreshUri(GetParam());
    ASSERT_FALSE(uri_.empty());
    NamespaceOptions opts = TestOptions();
    opts.pool_size = kThreads;
    Result<std::unique_ptr<Namespace>> ns = Namespace::Open(uri_, opts);
    ASSERT_TRUE(ns.ok()) << ns.status().ToString();
    ns_ = std::move(ns).value();
  }

  // What the successful operations say happened, summed over all threads.
  struct Outcome {
    int64_t inodes_delta = 0;
    int64_t entries_delta = 0;
    std::map<std::string, int64_t> ok;          // op -> successes
    std::map<std::string, int64_t> expected;    // "op: reason" -> count
    std::map<std::string, int64_t> unexpected;  // "op: reason" -> count
    std::map<std::string, std::string> example;  // "op: reason" -> a status
  };

  void RunMixed(Layout layout, Outcome* out);
  void CheckTree(int64_t initial_inodes, int64_t initial_entries, const Outcome& o);
  void CheckRows(int64_t inodes, int64_t entries);

  std::vector<InodeId> thread_dirs_;
  InodeId shared_ = 0;
};

std::string Reason(const Status& s) { return std::string(s.Reason()); }

void ConcurrencyTest::RunMixed(Layout layout, Outcome* out) {
  std::vector<Outcome> per(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Outcome& o = per[t];
      std::mt19937_64 rng(1000 + t);
      const Credentials root = Credentials::Root();
      auto pick_dir = [&]() -> InodeId {
        if (layout == Layout::kShared) return shared_;
        const int r = static_cast<int>(rng() % 100);
        if (r < 60) return thread_dirs_[t];
        if (r < 85) return shared_;
        return thread_dirs_[rng() % kThreads];
      };
      auto file = [&] { return "f" + std::to_string(rng() % kFileNames); };
      auto dir = [&] { return "d" + std::to_string(rng() % kDirNames); };
      // Records an outcome; `allowed` are the errors the random choice of
      // names makes legitimate.
      auto note = [&](const std::string& op, const Status& s,
                      std::initializer_list<bool (Status::*)() const> allowed) {
        if (s.ok()) {
          ++o.ok[op];
          return;
        }
        for (auto pred : allowed) {
          if ((s.*pred)()) {
            ++o.expected[op + ": " + Reason(s)];
            return;
          }
        }
        const std::string key = op + ": " + Reason(s);
        if (o.unexpected[key]++ == 0) o.example[key] = s.ToString();
      };
      auto removed = [&](const UnlinkResult& u) {
        --o.entries_delta;
        if (u.nlink_left == 0) --o.inodes_delta;
      };
      for (int i = 0; i < kOpsPerThread; ++i) {
        const int r = static_cast<int>(rng() % 100);
        const InodeId d = pick_dir();
        if (r < 33) {
          Result<Attr> a = ns_->Create(root, d, file(), 0644);
          if (a.ok()) ++o.inodes_delta, ++o.entries_delta;
          note("create", a.status(), {&Status::IsExists});
        } else if (r < 40) {
          Result<Attr> a = ns_->Mkdir(root, d, dir(), 0755);
          if (a.ok()) ++o.inodes_delta, ++o.entries_delta;
          note("mkdir", a.status(), {&Status::IsExists});
        } else if (r < 48) {
          Result<Attr> src = ns_->Lookup(root, d, file());
          if (!src.ok()) {
            note("link lookup", src.status(), {&Status::IsNotFound});
            continue;
          }
          Result<Attr> a = ns_->Link(root, src->ino, pick_dir(), file());
          if (a.ok()) ++o.entries_delta;
          // Stale: the inode lost its last name after the lookup.
          note("link", a.status(), {&Status::IsExists, &Status::IsStale});
        } else if (r < 72) {
          Result<RenameResult> rr = ns_->Rename(root, d, file(), pick_dir(), file());
          if (rr.ok() && rr->replaced) removed(*rr->replaced);
          note("rename", rr.status(), {&Status::IsNotFound});
        } else if (r < 80) {
          Result<RenameResult> rr = ns_->Rename(root, d, dir(), pick_dir(), dir());
          if (rr.ok() && rr->replaced) removed(*rr->replaced);
          note("rename dir", rr.status(), {&Status::IsNotFound});
        } else if (r < 94) {
          Result<UnlinkResult> u = ns_->Unlink(root, d, file());
          if (u.ok()) removed(*u);
          note("unlink", u.status(), {&Status::IsNotFound});
        } else {
          Status s = ns_->Rmdir(root, d, dir());
          if (s.ok()) --o.entries_delta, --o.inodes_delta;
          note("rmdir", s, {&Status::IsNotFound});
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (const Outcome& o : per) {
    out->inodes_delta += o.inodes_delta;
    out->entries_delta += o.entries_delta;
    for (const auto& [k, v] : o.ok) out->ok[k] += v;
    for (const auto& [k, v] : o.expected) out->expected[k] += v;
    for (const auto& [k, v] : o.unexpected) out->unexpected[k] += v;
    for (const auto& [k, v] : o.example) out->example.emplace(k, v);
  }
}

void ConcurrencyTest::CheckTree(int64_t initial_inodes, int64_t initial_entries,
                                const Outcome& o) {
  std::map<InodeId, int64_t> refs;
  std::map<InodeId, Attr> attrs;
  int64_t entries = 0;
  std::vector<InodeId> todo = {ns_->Root()};
  refs[ns_->Root()] = 1;
  attrs[ns_->Root()] = GetAttrOrFail(ns_->Root());
  while (!todo.empty()) {
    const InodeId dir = todo.back();
    todo.pop_back();
    Result<std::vector<DirEntry>> list = ListAll(*ns_, dir, 97, true);
    ASSERT_TRUE(list.ok()) << list.status().ToString();
    std::set<std::string> names;
    uint32_t subdirs = 0;
    for (const DirEntry& e : *list) {
      ++entries;
      EXPECT_TRUE(names.insert(e.name).second) << "duplicate name " << e.name << " in " << dir;
      Result<Attr> a = ns_->GetAttr(Credentials::Root(), e.ino);
      ASSERT_TRUE(a.ok()) << "entry " << e.name << " in " << dir << " names a missing inode "
                          << e.ino << ": " << a.status().ToString();
      EXPECT_EQ(a->type, e.type) << e.name;
      if (e.attr) {
        EXPECT_EQ(e.attr->ino, e.ino);
        EXPECT_EQ(e.attr->nlink, a->nlink) << "readdirplus nlink of " << e.name;
      }
      ++refs[e.ino];
      attrs[e.ino] = *a;
      if (a->type == FileType::kDirectory) {
        ++subdirs;
        EXPECT_EQ(a->parent, dir) << "'..' of directory " << e.name;
        todo.push_back(e.ino);
      }
    }
    EXPECT_EQ(GetAttrOrFail(dir).nlink, 2 + subdirs) << "nlink of directory " << dir;
  }
  for (const auto& [ino, n] : refs) {
    const Attr& a = attrs[ino];
    if (a.type == FileType::kDirectory) {
      EXPECT_EQ(n, 1) << "directory " << ino << " has several names";
    } else {
      EXPECT_EQ(static_cast<int64_t>(a.nlink), n) << "nlink of inode " << ino;
    }
  }
  // Conservation: what the successful operations reported adds up.
  EXPECT_EQ(entries, initial_entries + o.entries_delta) << "lost or duplicate entries";
  EXPECT_EQ(static_cast<int64_t>(refs.size()), initial_inodes + o.inodes_delta)
      << "lost or leaked inodes";
  Result<FsStats> st = ns_->StatFs(Credentials::Root());
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(static_cast<int64_t>(st->files), static_cast<int64_t>(refs.size()));
  CheckRows(static_cast<int64_t>(refs.size()), entries);
}

void ConcurrencyTest::CheckRows(int64_t inodes, int64_t entries) {
  std::string error;
  std::unique_ptr<RawDb> db = RawDb::Open(uri_, &error);
  ASSERT_TRUE(db) << error;
  auto count = [&](const std::string& sql) -> int64_t {
    std::vector<int64_t> v = db->QueryInts(sql, &error);
    EXPECT_EQ(error, "") << sql;
    EXPECT_EQ(v.size(), 1u) << sql;
    return v.empty() ? -1 : v[0];
  };
  EXPECT_EQ(count("SELECT count(*) FROM inodes"), inodes);
  EXPECT_EQ(count("SELECT count(*) FROM dirents"), entries);
  EXPECT_EQ(count("SELECT count(*) FROM inodes i WHERE i.ino <> 1 AND NOT EXISTS "
                  "(SELECT 1 FROM dirents d WHERE d.child = i.ino) AND NOT EXISTS "
                  "(SELECT 1 FROM orphans o WHERE o.ino = i.ino)"),
            0)
      << "orphan inodes: no entry names them and they are not on the orphan list";
  EXPECT_EQ(count("SELECT count(*) FROM orphans"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM dirents d WHERE NOT EXISTS "
                  "(SELECT 1 FROM inodes i WHERE i.ino = d.child)"),
            0)
      << "entries naming missing inodes";
  EXPECT_EQ(count("SELECT count(*) FROM dirents d WHERE NOT EXISTS "
                  "(SELECT 1 FROM inodes i WHERE i.ino = d.parent AND i.type = 2)"),
            0)
      << "entries in a missing directory";
  EXPECT_EQ(count("SELECT count(*) FROM inodes i WHERE i.type <> 2 AND i.nlink <> "
                  "(SELECT count(*) FROM dirents d WHERE d.child = i.ino)"),
            0)
      << "stored nlink of a non-directory differs from its entries";
  EXPECT_EQ(count("SELECT count(*) FROM (SELECT parent, cookie FROM dirents "
                  "GROUP BY parent, cookie HAVING count(*) > 1) x"),
            0)
      << "two entries of one directory share a cookie";
  EXPECT_EQ(count("SELECT count(*) FROM inodes i WHERE i.type = 3 AND NOT EXISTS "
                  "(SELECT 1 FROM symlinks s WHERE s.ino = i.ino)"),
            0);
  EXPECT_EQ(count("SELECT count(*) FROM symlinks s WHERE NOT EXISTS "
                  "(SELECT 1 FROM inodes i WHERE i.ino = s.ino)"),
            0);
}

std::string Describe(const std::map<std::string, int64_t>& m,
                     const std::map<std::string, std::string>& examples = {}) {
  std::string s;
  for (const auto& [k, v] : m) {
    s += "  " + k + " x" + std::to_string(v);
    if (auto it = examples.find(k); it != examples.end()) s += ", e.g. " + it->second;
    s += "\n";
  }
  return s;
}

TEST_P(ConcurrencyTest, MixedOperationsInOneSharedDirectory) {
  ASSERT_OK_AND_ASSIGN(Attr s, ns_->Mkdir(root_, ns_->Root(), "shared", 0755));
  shared_ = s.ino;
  Outcome o;
  RunMixed(Layout::kShared, &o);
  EXPECT_TRUE(o.unexpected.empty()) << "errors that must never reach a caller:\n"
                                    << Describe(o.unexpected, o.example);
  // The mix did real work of every kind.
  for (const char* op : {"create", "mkdir", "link", "rename", "rename dir", "unlink", "rmdir"}) {
    EXPECT_GT(o.ok[op], 10) << op << "\nok:\n" << Describe(o.ok) << "expected errors:\n"
                            << Describe(o.expected);
  }
  CheckTree(/*inodes=*/2, /*entries=*/1, o);
}

TEST_P(ConcurrencyTest, MixedOperationsAcrossPerThreadAndSharedDirectories) {
  ASSERT_OK_AND_ASSIGN(Attr s, ns_->Mkdir(root_, ns_->Root(), "shared", 0755));
  shared_ = s.ino;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_OK_AND_ASSIGN(Attr d, ns_->Mkdir(root_, ns_->Root(), "t" + std::to_string(t), 0755));
    thread_dirs_.push_back(d.ino);
  }
  Outcome o;
  RunMixed(Layout::kSpread, &o);
  EXPECT_TRUE(o.unexpected.empty()) << "errors that must never reach a caller:\n"
                                    << Describe(o.unexpected, o.example);
  for (const char* op : {"create", "mkdir", "link", "rename", "rename dir", "unlink", "rmdir"}) {
    EXPECT_GT(o.ok[op], 10) << op;
  }
  CheckTree(/*inodes=*/2 + kThreads, /*entries=*/1 + kThreads, o);
}

TEST_P(ConcurrencyTest, HotDirectoryCountsEveryEntryChange) {
  ASSERT_OK_AND_ASSIGN(Attr hot, ns_->Mkdir(root_, ns_->Root(), "hot", 0755));
  constexpr int kCreates = 250;
  constexpr int kMkdirs = 5;
  std::atomic<int> failed{0};
  std::mutex mu;
  std::string first_error;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const Credentials root = Credentials::Root();
      for (int i = 0; i < kCreates + kMkdirs; ++i) {
        const std::string name = "t" + std::to_string(t) + "_" + std::to_string(i);
        Status s = i % 50 == 49 ? ns_->Mkdir(root, hot.ino, name, 0755).status()
                                : ns_->Create(root, hot.ino, name, 0644).status();
        if (!s.ok()) {
          failed.fetch_add(1);
          std::lock_guard<std::mutex> lock(mu);
          if (first_error.empty()) first_error = name + ": " + s.ToString();
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  ASSERT_EQ(failed.load(), 0) << first_error;
  const uint64_t changes = kThreads * (kCreates + kMkdirs);
  Attr after = GetAttrOrFail(hot.ino);
  EXPECT_EQ(after.change, hot.change + changes)
      << "the hot directory's change attribute must count every entry change";
  EXPECT_EQ(after.nlink, 2u + kThreads * kMkdirs);
  EXPECT_GT(after.mtime, hot.mtime);
  EXPECT_GT(after.ctime, hot.ctime);
  EXPECT_EQ(after.btime, hot.btime);
  ASSERT_OK_AND_ASSIGN(std::vector<DirEntry> all, ListAll(*ns_, hot.ino, 500, true));
  EXPECT_EQ(all.size(), changes);
  // A change of the directory's own attributes folds what was recorded apart
  // from its row, without counting anything twice.
  SetAttrRequest req;
  req.mode = 0700;
  ASSERT_OK_AND_ASSIGN(Attr chmod, ns_->SetAttr(root_, hot.ino, req));
  EXPECT_EQ(chmod.change, hot.change + changes + 1);
  EXPECT_EQ(chmod.nlink, 2u + kThreads * kMkdirs);
  EXPECT_EQ(chmod.mode, 0700u);
  // Background folding (if any) does not move the figures either.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  Attr later = GetAttrOrFail(hot.ino);
  EXPECT_EQ(later.change, chmod.change);
  EXPECT_EQ(later.nlink, chmod.nlink);
  EXPECT_EQ(later.mtime, chmod.mtime);
  // And the next entry change counts one.
  ASSERT_OK(ns_->Unlink(root_, hot.ino, "t0_0"));
  EXPECT_EQ(GetAttrOrFail(hot.ino).change, chmod.change + 1);
  ExpectDirNlinks(ns_->Root());
}

// The checker above must be able to fail: damage the stored rows behind the
// library's back and watch it notice.
TEST_P(ConcurrencyTest, InvariantCheckDetectsDamage) {
  ASSERT_OK_AND_ASSIGN(Attr x, ns_->Mkdir(root_, ns_->Root(), "x", 0755));
  ASSERT_OK(ns_->Create(root_, x.ino, "a", 0644));
  ASSERT_OK_AND_ASSIGN(Attr b, ns_->Create(root_, x.ino, "b", 0644));
  ASSERT_OK(ns_->Link(root_, b.ino, ns_->Root(), "b2"));
  const Outcome none;
  CheckTree(/*inodes=*/4, /*entries=*/4, none);  // intact: no failure
  ASSERT_FALSE(HasFailure());

  auto failures_of = [&](const char* damage_sql) {
    std::string error;
    std::unique_ptr<RawDb> db = RawDb::Open(uri_, &error);
    EXPECT_TRUE(db) << error;
    if (db) {
      EXPECT_TRUE(db->Exec(damage_sql, &error)) << error;
    }
    ::testing::TestPartResultArray results;
    {
      ::testing::ScopedFakeTestPartResultReporter intercept(
          ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD,
          &results);
      CheckTree(4, 4, none);
    }
    std::string all;
    for (int i = 0; i < results.size(); ++i) {
      all += results.GetTestPartResult(i).message();
      all += "\n";
    }
    return all;
  };
  const std::string lost_entry = failures_of("DELETE FROM dirents WHERE name = 'a'");
  EXPECT_NE(lost_entry.find("orphan inodes"), std::string::npos) << lost_entry;
  EXPECT_NE(lost_entry.find("lost or duplicate entries"), std::string::npos) << lost_entry;
  const std::string bad_nlink = failures_of(
      "UPDATE inodes SET nlink = 5 WHERE ino = (SELECT child FROM dirents WHERE name = 'b2')");
  EXPECT_NE(bad_nlink.find("nlink of inode"), std::string::npos) << bad_nlink;
}

INSTANTIATE_TEST_SUITE_P(Backends, ConcurrencyTest, ::testing::ValuesIn(DialectsWithPartitions()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace ns::testing
