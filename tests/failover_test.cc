// Replicas and failover (issue 9, item 5) on real PostgreSQL servers: a
// primary and a streaming-replication standby made by the test harness.
//
//  - A door on the standby reads everything (directory attributes included:
//    dir_deltas replicate) and refuses writes with ReadOnly (EROFS, which
//    nfs41d answers as NFS4ERR_ROFS).
//  - Under load, the primary dies (pg_ctl -m immediate: a crash) and the
//    standby is promoted. Writers on a multi-host URI ride it out: they see
//    nothing but success or Unavailable (NFS4ERR_DELAY), and a create
//    retried after Unavailable (as the Linux client retries after
//    NFS4ERR_DELAY) never finds its own name taken. A commit in flight at
//    the crash is decided by its commit token on the new primary. Every
//    acknowledged create is on the new primary and nothing else is
//    (synchronous replication: see SetUp).
//  - A COMMIT whose answer is lost, simulated on one server: the answer
//    dropped after the commit (the token is found: success, fn ran once),
//    or the backend terminated right before it (the token is fenced: fn
//    runs again, success, applied once); and the fence itself, both ways
//    and against a transaction still in progress.

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/src/pg_commit_token.h"
#include "tests/test_util.h"

namespace ns::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string DatabaseOf(const std::string& uri) {
  return uri.substr(uri.rfind('/') + 1);
}

// Waits until `fn` returns true or `limit` passes.
template <typename Fn>
bool WaitFor(Fn&& fn, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (fn()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// A throwaway cluster, one namespace database in it, and its directory /d.
class OnePrimary : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    primary_ = PgCluster::Create(&error);
    ASSERT_NE(primary_, nullptr) << error;
    primary_uri_ = primary_->NewDatabaseUri();
    ASSERT_FALSE(primary_uri_.empty());
    auto opened = Namespace::Open(primary_uri_, TestOptions());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    ns_ = std::move(*opened);
    ASSERT_OK_AND_ASSIGN(Attr d, ns_->Mkdir(root_, kRootInode, "d", 0755));
    dir_ = d.ino;
  }

  std::unique_ptr<PgCluster> primary_;
  std::string primary_uri_;
  std::unique_ptr<Namespace> ns_;  // on primary_uri_
  InodeId dir_ = 0;
  const Credentials root_ = Credentials::Root();
};

class FailoverTest : public OnePrimary {
 protected:
  void SetUp() override {
    OnePrimary::SetUp();
    if (HasFatalFailure()) return;
    ns_.reset();  // each test opens the doors it needs
    std::string error;
    standby_ = PgCluster::CreateStandby(*primary_, &error);
    ASSERT_NE(standby_, nullptr) << error;
    standby_uri_ = standby_->UriFor(DatabaseOf(primary_uri_));
    // Synchronous replication from now on: a commit is acknowledged only
    // once the standby has it, so a failover loses nothing acknowledged.
    try {
      pqxx::connection c(primary_->AdminUri());
      pqxx::nontransaction n(c);
      n.exec("ALTER SYSTEM SET synchronous_standby_names = '*'");
      n.exec("SELECT pg_reload_conf()");
      // The harness starts servers with synchronous_commit=off on the
      // command line, which ALTER SYSTEM cannot override; a per-database
      // setting can (it applies when a session starts).
      n.exec("ALTER DATABASE " + n.quote_name(DatabaseOf(primary_uri_)) +
             " SET synchronous_commit = on");
    } catch (const std::exception& e) {
      FAIL() << "configuring synchronous replication: " << e.what();
    }
    ASSERT_TRUE(WaitFor(
        [&] {
          try {
            pqxx::connection c(primary_->AdminUri());
            pqxx::nontransaction n(c);
            return n.exec("SELECT 1 FROM pg_stat_replication "
                          "WHERE sync_state = 'sync'")
                       .size() == 1;
          } catch (const std::exception&) {
            return false;
          }
        },
        std::chrono::seconds(30)))
        << "the standby never became a synchronous standby";
  }

  std::unique_ptr<PgCluster> standby_;
  std::string standby_uri_;
};

TEST_F(FailoverTest, StandbyDoorReadsAndRefusesWrites) {
  auto primary = Namespace::Open(primary_uri_, TestOptions());
  ASSERT_TRUE(primary.ok()) << primary.status().ToString();
  ASSERT_OK((*primary)->Create(root_, dir_, "f", 0644));
  ASSERT_OK((*primary)->Mkdir(root_, dir_, "sub", 0755));

  NamespaceOptions options;  // no create_if_missing: a standby is never made
  auto standby = Namespace::Open(standby_uri_, options);
  ASSERT_TRUE(standby.ok()) << standby.status().ToString();
  Namespace& door = **standby;
  // Synchronous replication: committed on the primary = on the standby
  // (replay may trail the flush by a moment).
  ASSERT_TRUE(WaitFor([&] { return door.Lookup(root_, dir_, "sub").ok(); },
                      std::chrono::seconds(10)));
  ASSERT_OK_AND_ASSIGN(Attr f, door.Lookup(root_, dir_, "f"));
  EXPECT_EQ(f.type, FileType::kRegular);
  // The directory's pending entry changes replicate too: nlink counts sub.
  ASSERT_OK_AND_ASSIGN(Attr d, door.GetAttr(root_, dir_));
  EXPECT_EQ(d.nlink, 3u);
  ASSERT_OK_AND_ASSIGN(std::vector<DirEntry> all, ListAll(door, dir_));
  EXPECT_EQ(all.size(), 2u);

  EXPECT_STATUS(door.Create(root_, dir_, "g", 0644), ReadOnly);
  EXPECT_STATUS(door.Mkdir(root_, dir_, "g", 0755), ReadOnly);
  EXPECT_STATUS(door.Unlink(root_, dir_, "f"), ReadOnly);
  SetAttrRequest chmod;
  chmod.mode = 0600;
  EXPECT_STATUS(door.SetAttr(root_, f.ino, chmod), ReadOnly);
  // Nothing changed on the primary.
  EXPECT_STATUS((*primary)->Lookup(root_, dir_, "g"), NotFound);
  EXPECT_OK((*primary)->Lookup(root_, dir_, "f"));
}

TEST_F(FailoverTest, WritersRideOutPromotionAndLoseNothingAcknowledged) {
  const std::string multi =
      "postgresql://nstest@127.0.0.1:" + std::to_string(primary_->port()) +
      ",127.0.0.1:" + std::to_string(standby_->port()) + "/" +
      DatabaseOf(primary_uri_) + "?target_session_attrs=read-write";
  NamespaceOptions options = TestOptions();
  options.pool_size = 4;
  auto opened = Namespace::Open(multi, options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Namespace& ns = **opened;

  constexpr int kThreads = 4;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::set<std::string> acknowledged;
  std::map<std::string, int> errors;  // kind -> count
  int unavailable = 0;  // Unavailable answers that a retry then got past
  std::vector<std::string> examples;
  std::atomic<int> after_promotion{0};
  std::atomic<bool> promoted{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      // Bounded: at most 100,000 creates per thread, and `stop`.
      for (int i = 0; i < 100000 && !stop; ++i) {
        const std::string name = "t" + std::to_string(t) + "_" + std::to_string(i);
        // Unavailable is NFS4ERR_DELAY: the client waits and sends the same
        // request again (RFC 8881 §15.1.1.3), at most a few times here.
        Result<Attr> r = ns.Create(root_, dir_, name, 0644);
        int delays = 0;
        while (!r.ok() && r.status().IsUnavailable() && delays < 5) {
          ++delays;
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          r = ns.Create(root_, dir_, name, 0644);
        }
        std::lock_guard<std::mutex> lock(mu);
        unavailable += delays;
        if (r.ok()) {
          acknowledged.insert(name);
          if (promoted) ++after_promotion;
          continue;
        }
        const Status& s = r.status();
        // Exists after a delay: the delayed create had happened after all,
        // which a user would see as EEXIST.
        const std::string kind =
            s.IsUnavailable()              ? "still unavailable"
            : s.IsExists() && delays > 0 ? "exists after delay"
                                         : "other";
        ++errors[kind];
        if (examples.size() < 10) examples.push_back(name + ": " + s.ToString());
      }
    });
  }
  // Load on the primary, then a crash, then the promotion.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const size_t before_crash = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return acknowledged.size();
  }();
  ASSERT_TRUE(primary_->Kill());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(standby_->Promote());
  promoted = true;
  // Writers go on against the new primary.
  WaitFor([&] { return after_promotion.load() >= 200; }, std::chrono::seconds(30));
  stop = true;
  for (std::thread& w : writers) w.join();

  EXPECT_GT(before_crash, 0u);
  EXPECT_GE(after_promotion.load(), 200) << "writes did not resume";
  // Nothing but success, or a delay that a retry got past: no error of any
  // kind reached a caller (a commit in flight at the crash included).
  int failed = 0;
  for (const auto& [kind, n] : errors) {
    failed += n;
    EXPECT_EQ(n, 0) << kind;
  }
  std::cerr << "acknowledged " << acknowledged.size() << " (" << before_crash
            << " before the crash, " << after_promotion.load()
            << " after the promotion); delayed and retried " << unavailable
            << ", failed " << failed << "\n";
  for (const std::string& e : examples) std::cerr << "  " << e << "\n";

  // Every acknowledged create is on the new primary, exactly once.
  auto fresh = Namespace::Open(standby_uri_, NamespaceOptions{});
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(**fresh, dir_));
  const std::set<std::string> present(names.begin(), names.end());
  EXPECT_EQ(present.size(), names.size());
  size_t lost = 0;
  for (const std::string& a : acknowledged) {
    if (present.count(a) == 0 && ++lost <= 5) ADD_FAILURE() << "lost " << a;
  }
  EXPECT_EQ(lost, 0u);
  // And nothing a caller was not told about: with no failed create, every
  // name present was acknowledged.
  if (failed == 0) {
    size_t unacknowledged = 0;
    for (const std::string& p : present) {
      if (acknowledged.count(p) == 0 && ++unacknowledged <= 5) {
        ADD_FAILURE() << "present but never acknowledged: " << p;
      }
    }
    EXPECT_EQ(unacknowledged, 0u);
  }
  // In-doubt commits decided "not committed" leave a fenced token.
  std::string error;
  std::unique_ptr<RawDb> raw = RawDb::Open(standby_uri_, &error);
  ASSERT_NE(raw, nullptr) << error;
  std::vector<int64_t> fenced = raw->QueryInts(
      "SELECT count(*) FROM commit_tokens WHERE fenced", &error);
  ASSERT_EQ(error, "");
  std::cerr << "in-doubt commits found not committed (fenced tokens): "
            << fenced.at(0) << "\n";
  ASSERT_OK_AND_ASSIGN(Attr d, (*fresh)->GetAttr(root_, dir_));
  EXPECT_EQ(d.nlink, 2u);
}

// A COMMIT whose answer is lost, on one server, through the test hook of
// pg_commit_token.h.
class LostCommitTest : public OnePrimary {
 protected:
  void TearDown() override { SetPgCommitHookForTesting(nullptr); }

  // Makes the next COMMIT lose its answer in the way `point` says, and
  // counts the COMMITs sent (each is one run of the transaction).
  //  kAfterAnswer: the server committed, the answer is dropped.
  //  kBeforeSend: the server process is terminated (pg_terminate_backend
  //  from another connection) just before the COMMIT goes out.
  void LoseNextCommit(CommitPoint point) {
    commits_ = 0;
    armed_ = true;
    const std::string uri = primary_uri_;
    SetPgCommitHookForTesting(
        [this, point, uri](CommitPoint at, pqxx::connection_base& c) {
          if (at == CommitPoint::kBeforeSend) ++commits_;
          if (at != point || !armed_) return false;
          armed_ = false;
          if (at == CommitPoint::kAfterAnswer) return true;
          pqxx::connection killer(uri);
          pqxx::nontransaction n(killer);
          const int pid = c.backendpid();
          n.exec_params("SELECT pg_terminate_backend($1)", pid);
          // Bounded: the backend is gone within a few seconds at most.
          for (int i = 0; i < 100; ++i) {
            if (n.exec_params("SELECT 1 FROM pg_stat_activity WHERE pid = $1",
                              pid)
                    .empty()) {
              break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
          return false;
        });
  }

  // Runs `op` (returning Status or Result) with its COMMIT lost as
  // LoseNextCommit(point) says; expects success after `runs` COMMITs.
  template <typename Op>
  void RunWithLostCommit(CommitPoint point, int runs, Op op) {
    LoseNextCommit(point);
    ASSERT_OK(op());
    EXPECT_FALSE(armed_) << "the hook never fired";
    EXPECT_EQ(commits_, runs);
  }

  int64_t Count(const std::string& sql) {
    std::string error;
    std::unique_ptr<RawDb> raw = RawDb::Open(primary_uri_, &error);
    if (raw == nullptr) {
      ADD_FAILURE() << error;
      return -1;
    }
    std::vector<int64_t> v = raw->QueryInts(sql, &error);
    EXPECT_EQ(error, "");
    return v.empty() ? -1 : v[0];
  }

  std::atomic<int> commits_{0};
  std::atomic<bool> armed_{false};
};

TEST_F(LostCommitTest, AnswerLostAfterCommitIsSuccessAndRunsOnce) {
  // The token is found: no second run (which would fail: Exists, NotFound).
  constexpr CommitPoint kLost = CommitPoint::kAfterAnswer;
  RunWithLostCommit(kLost, 1,
                    [&] { return ns_->Create(root_, dir_, "f", 0644); });
  RunWithLostCommit(kLost, 1,
                    [&] { return ns_->Rename(root_, dir_, "f", dir_, "g"); });
  RunWithLostCommit(kLost, 1, [&] { return ns_->Unlink(root_, dir_, "g"); });
  EXPECT_STATUS(ns_->Lookup(root_, dir_, "g"), NotFound);
  EXPECT_EQ(Count("SELECT count(*) FROM commit_tokens WHERE fenced"), 0);
}

TEST_F(LostCommitTest, BackendKilledAtCommitRunsAgainAndAppliesOnce) {
  // The token is absent: it is fenced and the operation runs again.
  constexpr CommitPoint kKilled = CommitPoint::kBeforeSend;
  RunWithLostCommit(kKilled, 2,
                    [&] { return ns_->Create(root_, dir_, "f", 0644); });
  RunWithLostCommit(kKilled, 2,
                    [&] { return ns_->Rename(root_, dir_, "f", dir_, "g"); });
  RunWithLostCommit(kKilled, 2,
                    [&] { return ns_->Mkdir(root_, dir_, "sub", 0755); });
  RunWithLostCommit(kKilled, 2, [&] { return ns_->Unlink(root_, dir_, "g"); });
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(*ns_, dir_));
  EXPECT_EQ(names, std::vector<std::string>{"sub"});
  ASSERT_OK_AND_ASSIGN(Attr d, ns_->GetAttr(root_, dir_));
  EXPECT_EQ(d.nlink, 3u);
  EXPECT_EQ(Count("SELECT count(*) FROM commit_tokens WHERE fenced"), 4);
}

TEST_F(LostCommitTest, FenceDecidesBothWaysAndWaitsForARunningCommit) {
  pqxx::connection a(primary_uri_), b(primary_uri_);
  pqxx::nontransaction fence(b);
  // Committed: the writer's row is there.
  const int64_t done = NewCommitToken();
  {
    pqxx::work w(a);
    w.exec_params(CommitTokenInsertSql(), done);
    w.commit();
  }
  ASSERT_OK_AND_ASSIGN(bool committed, FenceCommitToken(fence, done));
  EXPECT_TRUE(committed);
  // Not committed: the fence takes the token, and the writer, should its
  // COMMIT still arrive, fails on it and commits nothing.
  const int64_t lost = NewCommitToken();
  ASSERT_OK_AND_ASSIGN(committed, FenceCommitToken(fence, lost));
  EXPECT_FALSE(committed);
  ASSERT_OK_AND_ASSIGN(committed, FenceCommitToken(fence, lost));
  EXPECT_FALSE(committed) << "asking again must give the same answer";
  {
    pqxx::work w(a);
    try {
      w.exec_params(CommitTokenInsertSql(), lost);
      ADD_FAILURE() << "a fenced token was inserted";
    } catch (const pqxx::sql_error& e) {
      EXPECT_TRUE(IsCommitTokenClash(e)) << e.what();
    }
  }
  // Running: the fence waits for the writer's COMMIT and sees it.
  const int64_t running = NewCommitToken();
  pqxx::work w(a);
  w.exec_params(CommitTokenInsertSql(), running);
  std::thread committer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    w.commit();
  });
  Result<bool> waited = FenceCommitToken(fence, running);
  committer.join();
  ASSERT_TRUE(waited.ok()) << waited.status().ToString();
  EXPECT_TRUE(*waited);
}

TEST_F(LostCommitTest, OldTokensExpire) {
  ns_.reset();  // its folding thread would expire the rows itself
  std::string error;
  std::unique_ptr<RawDb> raw = RawDb::Open(primary_uri_, &error);
  ASSERT_NE(raw, nullptr) << error;
  ASSERT_TRUE(raw->Exec("DELETE FROM commit_tokens", &error)) << error;
  ASSERT_TRUE(raw->Exec("INSERT INTO commit_tokens (token, created_at) VALUES "
                        "(1, now() - interval '10 minutes'), (2, now())",
                        &error))
      << error;
  pqxx::connection c(primary_uri_);
  pqxx::nontransaction n(c);
  EXPECT_EQ(ExpireCommitTokens(n), 1);
  EXPECT_EQ(Count("SELECT token FROM commit_tokens"), 2);
}

}  // namespace
}  // namespace ns::testing
