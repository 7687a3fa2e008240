// Bad input gets a clear error and changes nothing (issue 2, item 9): bad
// names and paths, unknown ids, corrupt or missing SQLite files, an
// unreachable, stopped or restarted PostgreSQL.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "libnamespace/include/namespace/schema.h"
#include "tests/test_util.h"

namespace ns::testing {
namespace {

namespace fs = std::filesystem;
using BadInputTest = DialectTest;

struct BadName {
  std::string label;
  std::string name;
  bool too_long;  // NameTooLong, else Invalid
};

std::vector<BadName> BadNames() {
  return {
      {"slash", "a/b", false},
      {"only slash", "/", false},
      {"trailing slash", "dir/", false},
      {"NUL", std::string("a\0b", 3), false},
      {"trailing NUL", std::string("ab\0", 3), false},
      {"empty", "", false},
      {"dot", ".", false},
      {"dotdot", "..", false},
      {"256 bytes", std::string(256, 'n'), true},
      {"256 bytes of UTF-8", std::string(64, 'x') + [] {
         std::string s;
         for (int i = 0; i < 64; ++i) s += "\xE2\x9C\x93";  // 3 bytes each
         return s;
       }(), true},
      {"4097 bytes", std::string(4097, 'n'), true},
  };
}

TEST_P(BadInputTest, BadNamesAreRejectedAndChangeNothing) {
  InodeId d = MkdirOrFail(ns_->Root(), "d");
  InodeId f = CreateOrFail(d, "f");
  MkdirOrFail(d, "sub");
  ASSERT_OK(ns_->Symlink(root_, d, "l", "f"));
  ASSERT_OK_AND_ASSIGN(std::string before, Snapshot(*ns_));

  Namespace& ns = *ns_;
  const Credentials root = root_;
  const std::vector<std::pair<std::string, std::function<Status(const std::string&)>>> ops = {
      {"create", [&](const std::string& n) { return ns.Create(root, d, n, 0644).status(); }},
      {"mkdir", [&](const std::string& n) { return ns.Mkdir(root, d, n, 0755).status(); }},
      {"mknod", [&](const std::string& n) {
         return ns.Mknod(root, d, n, FileType::kFifo, 0644).status();
       }},
      {"symlink", [&](const std::string& n) { return ns.Symlink(root, d, n, "f").status(); }},
      {"link", [&](const std::string& n) { return ns.Link(root, f, d, n).status(); }},
      {"rename to", [&](const std::string& n) { return ns.Rename(root, d, "f", d, n).status(); }},
      {"rename dir to", [&](const std::string& n) {
         return ns.Rename(root, d, "sub", d, n).status();
       }},
      {"rename from", [&](const std::string& n) {
         return ns.Rename(root, d, n, d, "new").status();
       }},
      {"unlink", [&](const std::string& n) { return ns.Unlink(root, d, n).status(); }},
      {"rmdir", [&](const std::string& n) { return ns.Rmdir(root, d, n); }},
      {"lookup", [&](const std::string& n) { return ns.Lookup(root, d, n).status(); }},
  };
  for (const BadName& bad : BadNames()) {
    SCOPED_TRACE(bad.label);
    if (bad.too_long) {
      EXPECT_STATUS(ValidateName(bad.name), NameTooLong);
    } else {
      EXPECT_STATUS(ValidateName(bad.name), Invalid);
    }
    for (const auto& [what, op] : ops) {
      // LOOKUP of "." and ".." names the directory and its parent.
      if (what == "lookup" && (bad.name == "." || bad.name == "..")) continue;
      Status s = op(bad.name);
      if (bad.too_long) {
        EXPECT_TRUE(s.IsNameTooLong()) << what << ": " << (s.ok() ? "OK" : s.ToString());
      } else {
        EXPECT_TRUE(s.IsInvalid()) << what << ": " << (s.ok() ? "OK" : s.ToString());
      }
      EXPECT_FALSE(s.ToString().empty());
    }
  }
  ASSERT_OK_AND_ASSIGN(std::string after, Snapshot(*ns_));
  EXPECT_EQ(before, after);
}

TEST_P(BadInputTest, NamesOfExactly255BytesAndUnusualBytesWork) {
  InodeId d = MkdirOrFail(ns_->Root(), "d");
  const std::string n255(255, 'a');
  const std::string m255(255, 'b');
  std::string u255(0, 'x');
  while (u255.size() + 3 <= 252) u255 += "\xE2\x9C\x93";  // 252 bytes
  u255 += "xyz";
  ASSERT_EQ(u255.size(), 255u);
  EXPECT_OK(ValidateName(n255));
  ASSERT_OK_AND_ASSIGN(Attr f, ns_->Create(root_, d, n255, 0644));
  EXPECT_EQ(LookupOrFail(d, n255).ino, f.ino);
  ASSERT_OK(ns_->Rename(root_, d, n255, d, m255));
  ASSERT_OK(ns_->Link(root_, f.ino, d, n255));
  ASSERT_OK(ns_->Mkdir(root_, d, u255, 0755));
  ASSERT_OK(ns_->Symlink(root_, d, std::string(255, 's'), std::string(4096, 't')));
  // Any byte but '/' and NUL may appear in a name.
  const std::string odd[] = {"new\nline", "tab\there", " leading space",
                             "trailing space ", "-dash", "*?[glob]", "\\back",
                             "quote'\"", "...", ".hidden", "\x01\x1f"};
  for (const std::string& n : odd) {
    ASSERT_OK(ns_->Create(root_, d, n, 0644)) << n;
    EXPECT_OK(ns_->Lookup(root_, d, n)) << n;
  }
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(*ns_, d));
  std::set<std::string> want(std::begin(odd), std::end(odd));
  want.insert({n255, m255, u255, std::string(255, 's')});
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), want);
  ASSERT_OK_AND_ASSIGN(Attr deep, ns_->Resolve(root_, "/d/" + u255));
  EXPECT_EQ(deep.type, FileType::kDirectory);

  // Bytes that are not UTF-8: refused as Invalid or stored exactly, never an
  // I/O error (PostgreSQL's UTF8 text type would reject them).
  ASSERT_OK_AND_ASSIGN(std::string before, Snapshot(*ns_));
  const std::string latin1 = "caf\xE9";
  Status s = ns_->Create(root_, d, latin1, 0644).status();
  if (s.ok()) {
    ASSERT_OK_AND_ASSIGN(std::vector<std::string> now, ListNames(*ns_, d));
    EXPECT_EQ(std::count(now.begin(), now.end(), latin1), 1);
  } else {
    EXPECT_TRUE(s.IsInvalid()) << s.ToString();
    ASSERT_OK_AND_ASSIGN(std::string after, Snapshot(*ns_));
    EXPECT_EQ(before, after);
  }
}

TEST_P(BadInputTest, BadSymlinkTargetsAreRejected) {
  ASSERT_OK_AND_ASSIGN(std::string before, Snapshot(*ns_));
  // symlink(2) answers ENOENT for an empty target; EINVAL would do too.
  Status empty = ns_->Symlink(root_, ns_->Root(), "l", "").status();
  EXPECT_TRUE(empty.IsNotFound() || empty.IsInvalid())
      << (empty.ok() ? std::string("OK") : empty.ToString());
  EXPECT_STATUS(ns_->Symlink(root_, ns_->Root(), "l", std::string("a\0b", 3)), Invalid);
  EXPECT_STATUS(ns_->Symlink(root_, ns_->Root(), "l", std::string(4097, 't')), NameTooLong);
  ASSERT_OK_AND_ASSIGN(std::string after, Snapshot(*ns_));
  EXPECT_EQ(before, after);
}

TEST_P(BadInputTest, LongRelativeAndMalformedPaths) {
  std::string x4096;
  while (x4096.size() < 4096) x4096 += "/x";
  ASSERT_EQ(x4096.size(), 4096u);
  EXPECT_STATUS(ns_->Resolve(root_, x4096), NotFound);  // long, but allowed
  EXPECT_STATUS(ns_->Resolve(root_, x4096 + "x"), NameTooLong);
  EXPECT_STATUS(ns_->Resolve(root_, std::string(100000, '/')), NameTooLong);
  EXPECT_STATUS(ns_->Resolve(root_, "/" + std::string(255, 'n')), NotFound);
  EXPECT_STATUS(ns_->Resolve(root_, "/" + std::string(256, 'n')), NameTooLong);
  EXPECT_STATUS(ns_->Resolve(root_, "x"), Invalid);
  EXPECT_STATUS(ns_->Resolve(root_, "./x"), Invalid);
  EXPECT_STATUS(ns_->Resolve(root_, "x/y"), Invalid);
  EXPECT_STATUS(ns_->Resolve(root_, ""), Invalid);
  EXPECT_STATUS(ns_->Resolve(root_, std::string("/a\0b", 4)), Invalid);

  // A real path of 4016 bytes resolves; the limit counts the whole path.
  InodeId dir = ns_->Root();
  std::string path;
  for (int i = 0; i < 16; ++i) {
    const std::string name = std::string(249, 'a' + i) + "X";
    dir = MkdirOrFail(dir, name);
    ASSERT_NE(dir, 0u);
    path += "/" + name;
  }
  ASSERT_EQ(path.size(), 4016u);
  ASSERT_OK_AND_ASSIGN(Attr deepest, ns_->Resolve(root_, path));
  EXPECT_EQ(deepest.ino, dir);
  EXPECT_STATUS(ns_->Resolve(root_, path + "/" + std::string(79, 'z')), NotFound);
  EXPECT_STATUS(ns_->Resolve(root_, path + "/" + std::string(80, 'z')), NameTooLong);
}

TEST_P(BadInputTest, UnknownIdsAreStaleAndChangeNothing) {
  InodeId d = MkdirOrFail(ns_->Root(), "d");
  InodeId f = CreateOrFail(d, "f");
  InodeId gone = CreateOrFail(d, "gone");
  ASSERT_OK(ns_->Unlink(root_, d, "gone"));
  ASSERT_OK_AND_ASSIGN(std::string before, Snapshot(*ns_));

  const InodeId unknown[] = {0, gone, 987654321, 1ull << 62, (1ull << 63) + 5,
                             UINT64_MAX};
  Namespace& ns = *ns_;
  const Credentials root = root_;
  for (InodeId id : unknown) {
    SCOPED_TRACE("ino " + std::to_string(id));
    SetAttrRequest mode;
    mode.mode = 0600;
    EXPECT_STATUS(ns.GetAttr(root, id), Stale);
    EXPECT_STATUS(ns.Lookup(root, id, "f"), Stale);
    EXPECT_STATUS(ns.SetAttr(root, id, mode), Stale);
    EXPECT_STATUS(ns.Create(root, id, "x", 0644), Stale);
    EXPECT_STATUS(ns.Mkdir(root, id, "x", 0755), Stale);
    EXPECT_STATUS(ns.Mknod(root, id, "x", FileType::kFifo, 0644), Stale);
    EXPECT_STATUS(ns.Symlink(root, id, "x", "y"), Stale);
    EXPECT_STATUS(ns.ReadLink(root, id), Stale);
    EXPECT_STATUS(ns.Link(root, id, d, "x"), Stale);
    EXPECT_STATUS(ns.Link(root, f, id, "x"), Stale);
    EXPECT_STATUS(ns.Unlink(root, id, "f"), Stale);
    EXPECT_STATUS(ns.Rmdir(root, id, "f"), Stale);
    EXPECT_STATUS(ns.Rename(root, id, "f", d, "g"), Stale);
    EXPECT_STATUS(ns.Rename(root, d, "f", id, "g"), Stale);
    EXPECT_STATUS(ns.ReadDir(root, id, ReadDirRequest{}), Stale);
    EXPECT_STATUS(ns.ReleaseOrphan(id), Stale);
  }
  ASSERT_OK_AND_ASSIGN(std::string after, Snapshot(*ns_));
  EXPECT_EQ(before, after);
}

INSTANTIATE_TEST_SUITE_P(Backends, BadInputTest, ::testing::ValuesIn(Dialects()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// ---- SQLite files -----------------------------------------------------------

std::vector<std::string> DirListing(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

// A private directory holding only the file under test.
std::string PrivateDir() {
  static int n = 0;
  const std::string dir = ScratchDir() + "/case" + std::to_string(n++);
  fs::create_directories(dir);
  return dir;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

void ExpectCorruptFileRefused(const std::string& bytes) {
  const std::string dir = PrivateDir();
  const std::string path = dir + "/ns.db";
  const std::string uri = "sqlite://" + path;
  WriteFile(path, bytes);
  ASSERT_EQ(ReadFileBytes(path), bytes);

  Result<std::unique_ptr<Namespace>> r = Namespace::Open(uri, TestOptions());
  EXPECT_STATUS(r, Corruption);
  if (!r.ok()) {
    EXPECT_NE(r.status().ToString().find(path), std::string::npos)
        << "the error should name the file: " << r.status().ToString();
  }
  EXPECT_STATUS(Namespace::Open(uri), Corruption);
  EXPECT_STATUS(ReadSchemaState(uri), Corruption);
  EXPECT_FALSE(InitSchema(uri).ok());
  EXPECT_FALSE(UpgradeSchema(uri).ok());
  EXPECT_TRUE(ReadFileBytes(path) == bytes) << "the corrupt file was modified";
  EXPECT_EQ(DirListing(dir), std::vector<std::string>{"ns.db"})
      << "files were created next to the corrupt database";
}

TEST(SqliteBadFileTest, RandomBytesAreCorruptionAndTheFileIsUntouched) {
  ExpectCorruptFileRefused(RandomBytes(64 * 1024, 1));
}

TEST(SqliteBadFileTest, GarbageAfterAValidHeaderIsCorruption) {
  std::string bytes = RandomBytes(16 * 4096, 2);
  const char header[] = "SQLite format 3";  // 16 bytes with the NUL
  std::copy(header, header + sizeof header, bytes.begin());
  ExpectCorruptFileRefused(bytes);
}

TEST(SqliteBadFileTest, TextFileIsCorruption) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "this is not a database, line " + std::to_string(i) + "\n";
  ExpectCorruptFileRefused(text);
}

TEST(SqliteBadFileTest, ForeignSqliteDatabaseIsRefusedUntouched) {
  const std::string dir = PrivateDir();
  const std::string path = dir + "/other.db";
  {
    // A SQLite database of some other program.
    WriteFile(path, "");
    std::string error;
    std::unique_ptr<RawDb> db = RawDb::Open("sqlite://" + path, &error);
    ASSERT_TRUE(db) << error;
    ASSERT_TRUE(db->Exec("CREATE TABLE inodes_of_another_app (x INTEGER); "
                         "INSERT INTO inodes_of_another_app VALUES (42);",
                         &error))
        << error;
  }
  const std::string bytes = ReadFileBytes(path);
  ASSERT_FALSE(bytes.empty());
  EXPECT_STATUS(Namespace::Open("sqlite://" + path, TestOptions()), Corruption);
  EXPECT_STATUS(ReadSchemaState("sqlite://" + path), Corruption);
  EXPECT_FALSE(InitSchema("sqlite://" + path).ok());
  EXPECT_TRUE(ReadFileBytes(path) == bytes) << "the foreign database was modified";
}

TEST(SqliteBadFileTest, MissingFileIsNotFoundAndNotCreated) {
  const std::string dir = PrivateDir();
  const std::string path = dir + "/missing.db";
  const std::string uri = "sqlite://" + path;
  EXPECT_STATUS(Namespace::Open(uri), NotFound);
  EXPECT_STATUS(UpgradeSchema(uri), NotFound);
  EXPECT_TRUE(DirListing(dir).empty()) << "a refused open left files behind";
  // A missing directory is not created either, whatever the options.
  const std::string nodir = dir + "/no/such/dir/ns.db";
  Result<std::unique_ptr<Namespace>> r = Namespace::Open("sqlite://" + nodir, TestOptions());
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(fs::exists(dir + "/no"));
}

TEST(SqliteBadFileTest, UnknownSchemeIsInvalid) {
  EXPECT_STATUS(Namespace::Open("mysql://host/db"), Invalid);
  EXPECT_STATUS(Namespace::Open("/just/a/path.db"), Invalid);
  EXPECT_STATUS(Namespace::Open(""), Invalid);
}

// ---- PostgreSQL availability ---------------------------------------------------

PgCluster* RequirePg() {
  std::string error;
  PgCluster* pg = SharedPg(&error);
  if (pg == nullptr) ADD_FAILURE() << error;
  return pg;
}

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

TEST(PgAvailabilityTest, UnreachableServerIsUnavailablePromptly) {
  const int port = FreeLocalPort();  // nothing listens there
  ASSERT_GT(port, 0);
  const std::string uri = "postgresql://nstest@127.0.0.1:" + std::to_string(port) + "/nstest";
  auto start = Clock::now();
  EXPECT_STATUS(Namespace::Open(uri, TestOptions()), Unavailable);
  EXPECT_LT(SecondsSince(start), 15.0) << "took too long to give up";
  start = Clock::now();
  EXPECT_STATUS(ReadSchemaState(uri), Unavailable);
  EXPECT_STATUS(InitSchema(uri), Unavailable);
  EXPECT_LT(SecondsSince(start), 30.0);
}

TEST(PgAvailabilityTest, MissingDatabaseIsNotAnIOError) {
  PgCluster* pg = RequirePg();
  ASSERT_NE(pg, nullptr);
  const std::string uri = "postgresql://nstest@127.0.0.1:" + std::to_string(pg->port()) +
                          "/no_such_database";
  Result<std::unique_ptr<Namespace>> r = Namespace::Open(uri, TestOptions());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsNotFound() || r.status().IsUnavailable()) << r.status().ToString();
}

TEST(PgAvailabilityTest, RestartBetweenOperationsIsInvisible) {
  PgCluster* pg = RequirePg();
  ASSERT_NE(pg, nullptr);
  const std::string uri = pg->NewDatabaseUri();
  ASSERT_FALSE(uri.empty());
  NamespaceOptions opts = TestOptions();
  opts.pool_size = 4;
  ASSERT_OK_AND_ASSIGN(auto ns, Namespace::Open(uri, opts));
  const Credentials root = Credentials::Root();
  std::set<std::string> made;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // Use several pooled connections so all of them go stale.
    for (int i = 0; i < 8; ++i) {
      const std::string name = "r" + std::to_string(round) + "_" + std::to_string(i);
      ASSERT_OK(ns->Create(root, ns->Root(), name, 0644));
      made.insert(name);
    }
    ASSERT_TRUE(pg->Restart());
    // The first operation after the restart already succeeds.
    ASSERT_OK(ns->GetAttr(root, ns->Root()));
    ASSERT_OK(ns->Lookup(root, ns->Root(), "r0_0"));
    ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(*ns, ns->Root()));
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), made);
  }
}

TEST(PgAvailabilityTest, StoppedServerIsUnavailableAndRecovers) {
  PgCluster* pg = RequirePg();
  ASSERT_NE(pg, nullptr);
  const std::string uri = pg->NewDatabaseUri();
  ASSERT_FALSE(uri.empty());
  ASSERT_OK_AND_ASSIGN(auto ns, Namespace::Open(uri, TestOptions()));
  const Credentials root = Credentials::Root();
  ASSERT_OK(ns->Create(root, ns->Root(), "before", 0644));
  ASSERT_TRUE(pg->Stop());
  auto start = Clock::now();
  Result<Attr> down = ns->Create(root, ns->Root(), "during", 0644);
  const double took = SecondsSince(start);
  ASSERT_TRUE(pg->Start());
  EXPECT_STATUS(down, Unavailable);
  EXPECT_LT(took, 30.0) << "an operation on a stopped server must give up";
  EXPECT_OK(ns->Lookup(root, ns->Root(), "before"));
  EXPECT_STATUS(ns->Lookup(root, ns->Root(), "during"), NotFound);
  EXPECT_OK(ns->Create(root, ns->Root(), "after", 0644));
}

TEST(PgAvailabilityTest, RestartDuringOperationsFromSeveralThreads) {
  PgCluster* pg = RequirePg();
  ASSERT_NE(pg, nullptr);
  const std::string uri = pg->NewDatabaseUri();
  ASSERT_FALSE(uri.empty());
  NamespaceOptions opts = TestOptions();
  opts.pool_size = 8;
  ASSERT_OK_AND_ASSIGN(auto ns, Namespace::Open(uri, opts));
  const Credentials root = Credentials::Root();
  constexpr int kThreads = 6;
  std::vector<InodeId> dirs;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_OK_AND_ASSIGN(Attr d, ns->Mkdir(root, ns->Root(), "t" + std::to_string(t), 0755));
    dirs.push_back(d.ino);
  }
  std::atomic<bool> stop{false};
  std::atomic<int64_t> ops_done{0};
  std::mutex mu;
  std::vector<std::string> failures;             // op: status
  std::vector<std::set<std::string>> created(kThreads);  // create returned OK
  std::vector<std::set<std::string>> unsure(kThreads);   // create failed
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string name = "n" + std::to_string(i);
        Status s = ns->Create(root, dirs[t], name, 0644).status();
        if (s.ok()) {
          created[t].insert(name);
        } else {
          unsure[t].insert(name);
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back("create " + name + ": " + s.ToString());
        }
        Status l = ns->Lookup(root, dirs[t], name).status();
        if (s.ok() && !l.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back("lookup " + name + ": " + l.ToString());
        }
        if (i % 10 == 9) {
          ReadDirRequest req;
          req.max_entries = 5;
          Status r = ns->ReadDir(root, dirs[t], req).status();
          if (!r.ok()) {
            std::lock_guard<std::mutex> lock(mu);
            failures.push_back("readdir: " + r.ToString());
          }
        }
        ops_done.fetch_add(1);
      }
    });
  }
  auto wait_ops = [&](int64_t more) {
    const int64_t target = ops_done.load() + more;
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (ops_done.load() < target && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return ops_done.load() >= target;
  };
  bool progressed = wait_ops(200);
  ::testing::AssertionResult r1 = pg->Restart();
  progressed = wait_ops(200) && progressed;
  ::testing::AssertionResult r2 = pg->Restart();
  progressed = wait_ops(200) && progressed;
  stop = true;
  for (std::thread& th : threads) th.join();
  ASSERT_TRUE(r1);
  ASSERT_TRUE(r2);
  EXPECT_TRUE(progressed) << "operations stalled after a restart";

  std::string joined;
  for (size_t i = 0; i < failures.size() && i < 20; ++i) joined += failures[i] + "\n";
  EXPECT_TRUE(failures.empty()) << failures.size()
                                << " operations failed across restarts, e.g.:\n"
                                << joined;
  // Nothing lost: every acknowledged create is there; nothing else is.
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(*ns, dirs[t]));
    std::set<std::string> have(names.begin(), names.end());
    for (const std::string& n : created[t]) {
      EXPECT_TRUE(have.count(n)) << "lost t" << t << "/" << n;
    }
    for (const std::string& n : have) {
      EXPECT_TRUE(created[t].count(n) || unsure[t].count(n)) << "unexpected t" << t << "/" << n;
    }
    EXPECT_GT(created[t].size(), 10u);
  }
}

}  // namespace
}  // namespace ns::testing
