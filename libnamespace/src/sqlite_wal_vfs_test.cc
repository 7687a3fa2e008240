// The WAL-buffering VFS (sqlite_wal_vfs.h): a commit's frames reach the
// file in one write, and whatever SQLite writes through it is what another
// connection (plain VFS) reads back, including transactions larger than the
// buffer that spill pages and rewrite frames in place.

#include "libnamespace/src/sqlite_wal_vfs.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "libnamespace/src/file_size_limit_test_util.h"

namespace ns {
namespace sqlite_internal {
namespace {

namespace fs = std::filesystem;

class WalVfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ns_walvfs_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/t.db";
    const char* vfs = WalBufferVfsName();
    ASSERT_NE(vfs, nullptr);
    ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &writer_,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
              SQLITE_OK);
    Exec(writer_,
         "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
         "PRAGMA wal_autocheckpoint = 0;"
         "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL);");
  }
  void TearDown() override {
    if (reader_ != nullptr) sqlite3_close_v2(reader_);
    if (writer_ != nullptr) sqlite3_close_v2(writer_);
    fs::remove_all(dir_);
  }

  static void Exec(sqlite3* db, const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    ASSERT_EQ(rc, SQLITE_OK) << sql << ": " << (err ? err : "");
    sqlite3_free(err);
  }
  static int64_t Int(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr),
              SQLITE_OK);
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW) << sql;
    const int64_t v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
  }
  static std::string Text(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr),
              SQLITE_OK);
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW) << sql;
    std::string v(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
    sqlite3_finalize(stmt);
    return v;
  }
  // A second connection through SQLite's default VFS: it reads the WAL
  // with its own file descriptor, so it sees only what reached the file.
  sqlite3* Reader() {
    if (reader_ == nullptr) {
      EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &reader_, SQLITE_OPEN_READONLY,
                                nullptr),
                SQLITE_OK);
    }
    return reader_;
  }

  std::string dir_;
  std::string path_;
  sqlite3* writer_ = nullptr;
  sqlite3* reader_ = nullptr;
};

TEST_F(WalVfsTest, ACommitsFramesReachTheFileInOneWrite) {
  WalBufferCounters& stats = WalBufferStats();
  const uint64_t in0 = stats.writes_in.load();
  const uint64_t out0 = stats.writes_out.load();
  // About 20 pages of 4 KiB (80 KiB): within the buffer.
  Exec(writer_,
       "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
       "WHERE i < 20) INSERT INTO t SELECT i, randomblob(3000) FROM n; "
       "COMMIT;");
  const uint64_t in = stats.writes_in.load() - in0;
  const uint64_t out = stats.writes_out.load() - out0;
  // SQLite writes a header and a page per frame.
  EXPECT_GE(in, 40u);
  EXPECT_EQ(out, 1u) << in << " writes asked for";
  EXPECT_EQ(Int(Reader(), "SELECT count(*) FROM t"), 20);
  EXPECT_EQ(Int(Reader(), "SELECT sum(length(v)) FROM t"), 20 * 3000);
  EXPECT_EQ(Text(Reader(), "PRAGMA integrity_check"), "ok");
}

TEST_F(WalVfsTest, TransactionsLargerThanTheBufferReadBackWhole) {
  // A small page cache makes SQLite spill frames before the COMMIT and then
  // rewrite some of them in place (and read others back): writes that are
  // not the next byte of the run, and reads between writes.
  Exec(writer_, "PRAGMA cache_size = 8;");
  Exec(writer_,
       "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
       "WHERE i < 1000) INSERT INTO t SELECT i, zeroblob(3000) FROM n; "
       "UPDATE t SET v = randomblob(3000) WHERE k % 3 = 0; "
       "UPDATE t SET v = randomblob(2000) WHERE k % 7 = 0; COMMIT;");
  const std::string expect = Text(
      writer_, "SELECT count(*) || ':' || sum(length(v)) || ':' || "
               "sum(hex(substr(v, 1, 4)) = '00000000') FROM t");
  EXPECT_EQ(Text(Reader(), "SELECT count(*) || ':' || sum(length(v)) || ':' || "
                           "sum(hex(substr(v, 1, 4)) = '00000000') FROM t"),
            expect);
  EXPECT_EQ(Text(Reader(), "PRAGMA integrity_check"), "ok");
  // More commits after a checkpoint restarted the WAL (a new header at
  // offset 0, frames overwritten from the start).
  sqlite3_close_v2(reader_);
  reader_ = nullptr;
  Exec(writer_, "PRAGMA wal_checkpoint(TRUNCATE);");
  for (int i = 0; i < 5; ++i) {
    Exec(writer_, "UPDATE t SET v = randomblob(100) WHERE k = " +
                      std::to_string(i * 10 + 1));
  }
  EXPECT_EQ(Int(Reader(), "SELECT sum(length(v) = 100) FROM t"), 5);
  EXPECT_EQ(Text(Reader(), "PRAGMA integrity_check"), "ok");
}

TEST_F(WalVfsTest, ClosedWriterLeavesEveryCommitInTheDatabase) {
  for (int i = 1; i <= 50; ++i) {
    Exec(writer_, "INSERT INTO t VALUES (" + std::to_string(i) +
                      ", randomblob(500))");
  }
  sqlite3_close_v2(writer_);
  writer_ = nullptr;
  EXPECT_EQ(Int(Reader(), "SELECT count(*) FROM t"), 50);
  EXPECT_EQ(Text(Reader(), "PRAGMA integrity_check"), "ok");
}

// A write that fails when the buffer is written (here: past RLIMIT_FSIZE,
// as a full disk would) fails that COMMIT; nothing of it is visible, the
// database stays whole, and the next COMMIT works.
TEST_F(WalVfsTest, AWriteErrorFailsTheCommitAndLeavesNothingBehind) {
  Exec(writer_, "INSERT INTO t VALUES (1, randomblob(100));");
  struct stat st {};
  ASSERT_EQ(::stat((path_ + "-wal").c_str(), &st), 0);
  int rc = SQLITE_OK;
  {
    FileSizeLimit limit(static_cast<uint64_t>(st.st_size) + 64 * 1024);
    ASSERT_TRUE(limit.ok());
    char* err = nullptr;
    rc = sqlite3_exec(
        writer_,
        "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM "
        "n WHERE i < 200) INSERT INTO t SELECT i + 1, randomblob(3000) FROM "
        "n; COMMIT;",
        nullptr, nullptr, &err);
    sqlite3_free(err);
  }
  EXPECT_NE(rc, SQLITE_OK);
  if (sqlite3_get_autocommit(writer_) == 0) Exec(writer_, "ROLLBACK;");
  EXPECT_EQ(Int(Reader(), "SELECT count(*) FROM t"), 1);
  EXPECT_EQ(Text(Reader(), "PRAGMA integrity_check"), "ok");
  Exec(writer_, "INSERT INTO t VALUES (2, randomblob(100));");
  EXPECT_EQ(Int(Reader(), "SELECT count(*) FROM t"), 2);
  EXPECT_EQ(Int(writer_, "SELECT count(*) FROM t"), 2);
}

}  // namespace
}  // namespace sqlite_internal
}  // namespace ns
