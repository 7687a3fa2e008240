// Hash partitions on PostgreSQL (issue 9 item 1; partitions.h): a
// populated namespace repartitioned 1 -> 4 -> 8 -> 1 keeps every row of
// every table, reads the same through the API and stays fsck-clean; bad
// input (SQLite, a bad count, live sessions) is refused and changes
// nothing; ext_id stays unique on the partitioned layout; `partitions`
// statistics add up.

#include <chrono>
#include <filesystem>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "libnamespace/include/namespace/admin.h"
#include "libnamespace/include/namespace/partitions.h"
#include "libnamespace/include/namespace/schema.h"
#include "libnamespace/include/namespace/pnfs.h"
#include "tests/test_util.h"

namespace ns::testing {
namespace {

class PartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uri_ = FreshUri("postgresql");
    ASSERT_FALSE(uri_.empty());
    Reopen();
    if (HasFatalFailure()) return;
    std::string error;
    raw_ = RawDb::Open(uri_, &error);
    ASSERT_NE(raw_, nullptr) << error;
  }

  void Reopen() {
    ns_.reset();
    auto ns = Namespace::Open(uri_, TestOptions());
    ASSERT_TRUE(ns.ok()) << ns.status().ToString();
    ns_ = std::move(ns).value();
  }

  // Waits until the namespace's background folder has moved every pending
  // directory delta (dir_deltas, the hot directory's nlink/time updates)
  // into its inode row: before that, raw inode rows change under a dump
  // without anything being lost or altered.
  void WaitForFolds() {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      std::string error;
      const std::vector<std::string> rows =
          raw_->QueryRows("SELECT count(*) FROM dir_deltas", &error);
      ASSERT_TRUE(error.empty()) << error;
      if (rows == std::vector<std::string>{"0"}) return;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "directory deltas not folded: " << rows.front();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  // Every row of every partitioned table and of the small tables beside
  // them, in a fixed order: equal before and after iff nothing was lost.
  std::vector<std::string> Dump() {
    std::vector<std::string> out;
    for (const char* sql :
         {"SELECT * FROM inodes ORDER BY ino",
          "SELECT * FROM dirents ORDER BY parent, name",
          "SELECT * FROM symlinks ORDER BY ino",
          "SELECT * FROM aces ORDER BY ino, pos",
          "SELECT * FROM xattrs ORDER BY ino, name",
          "SELECT * FROM checksums ORDER BY ino, type",
          "SELECT * FROM locations ORDER BY ino, type, location",
          "SELECT * FROM dir_tags ORDER BY ino"}) {
      std::string error;
      std::vector<std::string> rows = raw_->QueryRows(sql, &error);
      EXPECT_TRUE(error.empty()) << sql << ": " << error;
      out.push_back(std::string("-- ") + sql);
      out.insert(out.end(), rows.begin(), rows.end());
    }
    return out;
  }

  // A tree with something in every partitioned table: 5 directories of
  // 60 files, a hard link, a symlink, xattrs, an ACL, checksums, locations.
  void Populate() {
    const Credentials root = Credentials::Root();
    for (int d = 0; d < 5; ++d) {
      ASSERT_OK_AND_ASSIGN(Attr dir, ns_->Mkdir(root, ns_->Root(),
                                                "d" + std::to_string(d), 0755));
      for (int f = 0; f < 60; ++f) {
        ASSERT_OK_AND_ASSIGN(
            Attr a, ns_->Create(root, dir.ino, "f" + std::to_string(f), 0644));
        if (f % 10 == 0) {
          ASSERT_OK(
              ns_->SetXattr(root, a.ino, "user.k", "v" + std::to_string(f)));
          ASSERT_OK(ns_->SetChecksum(
              root, a.ino, Checksum{ChecksumType::kAdler32, "0a0b0c0d"}));
          ASSERT_OK(ns_->AddLocation(root, a.ino, LocationType::kExternal,
                                     "s3://b/" + std::to_string(a.ino)));
        }
        if (f == 7) {
          Acl acl = {Ace{kAceAllow, 0, 0x1, AceWho::kUser, 1000},
                     Ace{kAceAllow, 0, 0x1, AceWho::kOwner, 0}};
          ASSERT_OK(ns_->SetAcl(root, a.ino, acl).status());
          ASSERT_OK(
              ns_->Link(root, a.ino, ns_->Root(), "hard" + std::to_string(d)));
        }
      }
      ASSERT_OK(ns_->Symlink(root, dir.ino, "up", "..").status());
    }
  }

  void ExpectLayout(uint32_t count) {
    auto layout = ReadPartitionLayout(uri_);
    ASSERT_TRUE(layout.ok()) << layout.status().ToString();
    ASSERT_EQ(layout->size(), PartitionedTables().size());
    for (const TableLayout& l : *layout) {
      EXPECT_EQ(l.count, count) << l.table;
      EXPECT_EQ(l.key.empty(), count == 1) << l.table;
    }
  }

  void ExpectFsckClean() {
    auto report = Fsck(*ns_);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->findings.empty())
        << report->findings.front().check << ": "
        << report->findings.front().detail;
  }

  Status Repart(uint32_t count, bool force = false) {
    RepartitionOptions o;
    o.count = count;
    o.force = force;
    return Repartition(uri_, o);
  }

  std::string uri_;
  std::unique_ptr<Namespace> ns_;
  std::unique_ptr<RawDb> raw_;
};

TEST_F(PartitionTest, RepartitionKeepsEverything) {
  Populate();
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_OK_AND_ASSIGN(const std::string snap, Snapshot(*ns_));
  WaitForFolds();
  ASSERT_FALSE(HasFatalFailure());
  ns_.reset();  // see BadInputChangesNothing
  const std::vector<std::string> dump = Dump();
  ExpectLayout(1);
  raw_.reset();  // its connection would count as a live session

  for (uint32_t count : {4u, 8u, 1u}) {
    SCOPED_TRACE("count " + std::to_string(count));
    ASSERT_OK(Repart(count));
    ExpectLayout(count);
    std::string error;
    raw_ = RawDb::Open(uri_, &error);
    ASSERT_NE(raw_, nullptr) << error;
    EXPECT_EQ(Dump(), dump);
    raw_.reset();
    Reopen();
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_OK_AND_ASSIGN(const std::string again, Snapshot(*ns_));
    EXPECT_EQ(again, snap);
    ExpectFsckClean();
    ns_.reset();
  }
}

TEST_F(PartitionTest, WritesWorkOnPartitions) {
  ns_.reset();
  raw_.reset();
  ASSERT_OK(Repart(4));
  Reopen();
  ASSERT_FALSE(HasFatalFailure());
  const Credentials root = Credentials::Root();
  ASSERT_OK_AND_ASSIGN(Attr d, ns_->Mkdir(root, ns_->Root(), "d", 0755));
  for (int i = 0; i < 50; ++i) {
    ASSERT_OK(ns_->Create(root, d.ino, "f" + std::to_string(i), 0644).status());
  }
  EXPECT_STATUS(ns_->Create(root, d.ino, "f3", 0644), Exists);
  ASSERT_OK(ns_->Unlink(root, d.ino, "f3").status());
  ASSERT_OK(ns_->Rename(root, d.ino, "f4", ns_->Root(), "g").status());
  ASSERT_OK_AND_ASSIGN(auto names, ListNames(*ns_, d.ino));
  EXPECT_EQ(names.size(), 48u);
  ExpectFsckClean();

  // The rows really are spread: every dirents partition of a table with
  // 50 parents' worth of inodes has some inodes rows.
  std::string error;
  raw_ = RawDb::Open(uri_, &error);
  ASSERT_NE(raw_, nullptr) << error;
  const std::vector<int64_t> per_partition = raw_->QueryInts(
      "SELECT count(*) FROM inodes GROUP BY tableoid ORDER BY 1", &error);
  EXPECT_TRUE(error.empty()) << error;
  EXPECT_EQ(per_partition.size(), 4u);

  // ext_id stays unique across partitions (the trigger-kept side table).
  ASSERT_OK_AND_ASSIGN(Attr a, ns_->Lookup(root, d.ino, "f1"));
  ASSERT_OK_AND_ASSIGN(Attr b, ns_->Lookup(root, d.ino, "f2"));
  ASSERT_TRUE(raw_->Exec(
      "UPDATE inodes SET ext_id = 'X1' WHERE ino = " + std::to_string(a.ino),
      &error))
      << error;
  EXPECT_FALSE(raw_->Exec(
      "UPDATE inodes SET ext_id = 'X1' WHERE ino = " + std::to_string(b.ino),
      &error));
  EXPECT_NE(error.find("duplicate"), std::string::npos) << error;
  // Moving the id from a to b, and deleting a, keep the side table exact.
  ASSERT_TRUE(raw_->Exec(
      "UPDATE inodes SET ext_id = NULL WHERE ino = " + std::to_string(a.ino) +
          "; UPDATE inodes SET ext_id = 'X1' WHERE ino = " +
          std::to_string(b.ino),
      &error))
      << error;
  EXPECT_EQ(raw_->QueryInts("SELECT ino FROM inode_ext_ids", &error),
            std::vector<int64_t>{static_cast<int64_t>(b.ino)});
  ASSERT_OK(ns_->Unlink(root, d.ino, "f2").status());
  EXPECT_TRUE(raw_->QueryInts("SELECT ino FROM inode_ext_ids", &error).empty());

  // The pNFS work-queue triggers (schema 005) survive the rebuild and fire
  // on the partitions.
  {
    PnfsRegistry reg(ns_.get());
    ASSERT_OK_AND_ASSIGN(DataServer ds,
                         reg.Register("ab", "h:1", "h:1", 0, 0, 1));
    const std::vector<uint64_t> one = {ds.id};
    ASSERT_OK_AND_ASSIGN(PnfsDevice dev, reg.DeviceFor(one));
    ASSERT_OK_AND_ASSIGN(Attr f5, ns_->Lookup(root, d.ino, "f5"));
    ASSERT_OK(reg.SetLayoutIfAbsent({f5.ino, dev.id, 4096}).status());
    ASSERT_OK(ns_->Unlink(root, d.ino, "f5").status());
    ASSERT_OK_AND_ASSIGN(auto work, reg.WorkForFile(f5.ino));
    EXPECT_EQ(work.size(), 1u) << "the removal was queued";
  }

  // Statistics: one line per partition, exact rows adding up.
  raw_.reset();
  ns_.reset();
  auto stats = PartitionStats(uri_, /*exact=*/true);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->size(), 4 * PartitionedTables().size());
  int64_t inodes = 0;
  for (const PartitionStat& s : *stats) {
    if (s.table == "inodes") inodes += s.rows;
    EXPECT_GT(s.total_bytes, 0) << s.partition;
    EXPECT_EQ(s.partition.rfind(s.table + "_p", 0), 0u) << s.partition;
  }
  EXPECT_EQ(inodes, 1 + 1 + 50 - 3);  // root, d, files less three unlinked
}

TEST_F(PartitionTest, BadInputChangesNothing) {
  Populate();
  ASSERT_FALSE(HasFatalFailure());
  // Closed first: its background thread folds directory changes into
  // inodes rows, which would change the dump by itself.
  ns_.reset();
  const std::vector<std::string> dump = Dump();
  // raw_ is connected: refused, naming it.
  Status s = Repart(4);
  EXPECT_STATUS(s, NotPermitted);
  EXPECT_NE(s.ToString().find("other session"), std::string::npos)
      << s.ToString();
  // --force skips the check, but a session holding a lock still stops
  // the rebuild at the lock timeout, before anything changed.
  {
    pqxx::connection holder(uri_);
    pqxx::work w(holder);
    w.exec("LOCK TABLE xattrs IN ACCESS SHARE MODE");
    RepartitionOptions o;
    o.count = 4;
    o.force = true;
    o.lock_timeout_ms = 300;
    const Status locked = Repartition(uri_, o);
    EXPECT_FALSE(locked.ok());
    EXPECT_NE(locked.ToString().find("lock timeout"), std::string::npos)
        << locked.ToString();
  }
  EXPECT_STATUS(Repart(0, true), Invalid);
  EXPECT_STATUS(Repart(kMaxPartitions + 1, true), Invalid);
  ExpectLayout(1);
  EXPECT_EQ(Dump(), dump);

  const std::string sqlite = FreshUri("sqlite");
  EXPECT_STATUS(InitPartitionedSchema(sqlite, 4), NotSupported);
  EXPECT_FALSE(std::filesystem::exists(SqlitePath(sqlite)))
      << "the refused init created the database";
  RepartitionOptions o;
  o.count = 4;
  EXPECT_STATUS(Repartition(sqlite, o), NotSupported);

  const std::string empty = FreshUri("postgresql");
  EXPECT_STATUS(InitPartitionedSchema(empty, 0), Invalid);
  auto state = ReadSchemaState(empty);
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_EQ(state->version, 0);
  EXPECT_STATUS(Repartition(empty, o), Invalid);
}

TEST_F(PartitionTest, StatsEstimateIndexBloat) {
  ns_.reset();
  raw_.reset();
  ASSERT_OK(Repart(4));
  std::string error;
  raw_ = RawDb::Open(uri_, &error);
  ASSERT_NE(raw_, nullptr) << error;
  // 20,000 xattrs of the root, all in one partition; 19,900 deleted: the
  // index keeps its pages, the statistics see 100 rows.
  ASSERT_TRUE(raw_->Exec(
      "INSERT INTO xattrs (ino, name, value) SELECT 1, 'user.' || "
      "lpad(g::text, 8, '0'), '\\x00' FROM generate_series(1, 20000) g",
      &error))
      << error;
  ASSERT_TRUE(
      raw_->Exec("DELETE FROM xattrs WHERE name > 'user.00000100'", &error))
      << error;
  ASSERT_TRUE(raw_->Exec("ANALYZE xattrs", &error)) << error;
  raw_.reset();
  auto stats = PartitionStats(uri_);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  int bloated = 0;
  for (const PartitionStat& s : *stats) {
    if (s.table != "xattrs") {
      EXPECT_EQ(s.index_bloat_bytes, 0) << s.partition;
      continue;
    }
    if (s.index_bloat_bytes > 0) {
      ++bloated;
      // 20,000 entries of ~24 bytes took some 60 pages; 100 need one.
      EXPECT_GT(s.index_bloat_bytes, 30 * 8192) << s.partition;
      EXPECT_LT(s.index_bloat_bytes, s.index_bytes) << s.partition;
    }
  }
  EXPECT_EQ(bloated, 1);
}

TEST_F(PartitionTest, InitWithPartitionsAndUpgradeAfterwards) {
  const std::string uri = FreshUri("postgresql");
  ASSERT_OK(InitPartitionedSchema(uri, 8));
  auto layout = ReadPartitionLayout(uri);
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  for (const TableLayout& l : *layout) EXPECT_EQ(l.count, 8u) << l.table;
  auto state = ReadSchemaState(uri);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->version, LatestSchemaVersion());
  // Nothing to apply, but the upgrade path reads a partitioned database.
  auto from = UpgradeSchema(uri);
  ASSERT_TRUE(from.ok()) << from.status().ToString();
  auto ns = Namespace::Open(uri, TestOptions());
  ASSERT_TRUE(ns.ok()) << ns.status().ToString();
  ASSERT_OK(
      (*ns)->Mkdir(Credentials::Root(), (*ns)->Root(), "x", 0755).status());
  ASSERT_OK_AND_ASSIGN(FsStats st, (*ns)->StatFs(Credentials::Root()));
  EXPECT_EQ(st.files, 2u);  // root and x, counted over the partitions

  // An older database partitioned first still takes the later migrations.
  const std::string old = FreshUri("postgresql");
  ASSERT_OK(InitSchema(old, 3));
  RepartitionOptions o;
  o.count = 4;
  ASSERT_OK(Repartition(old, o));
  from = UpgradeSchema(old);
  ASSERT_TRUE(from.ok()) << from.status().ToString();
  EXPECT_EQ(*from, 3);
  layout = ReadPartitionLayout(old);
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  for (const TableLayout& l : *layout) EXPECT_EQ(l.count, 4u) << l.table;
}

}  // namespace
}  // namespace ns::testing
