// The SQLite backend's statements, connections and retry helpers, shared
// by its files (private to libnamespace; the design is described atop
// sqlite_backend.cc).

#ifndef NS_LIBNAMESPACE_SRC_SQLITE_CONNECTION_H_
#define NS_LIBNAMESPACE_SRC_SQLITE_CONNECTION_H_

#include <fmt/format.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"
#include "libnamespace/src/backend.h"
#include "libnamespace/src/sqlite_errors.h"

namespace ns {
namespace sqlite_internal {

using Clock = std::chrono::steady_clock;

// Most requests one group commit takes from the queue. Bounds the latency
// the first caller of a group sees and the size of the rollback when a
// group has to be re-run.
constexpr size_t kMaxGroup = 512;
// Commit delay: the longest a durable group's leader waits, its
// transaction run and open, for a caller it expects (one that wrote with
// the last groups) before it COMMITs. Two callers that each send their next
// write a network round trip after their answer otherwise never share an
// fdatasync: each arrives while the other's COMMIT syncs, and every group
// is one caller (nfs41d at 2 client threads: one fdatasync per op,
// docs/performance.md). About a loopback round trip plus a worker's
// hand-off on a loaded 2-core machine; far below a COMMIT's fdatasync.
constexpr auto kCommitDelay = std::chrono::microseconds(200);
// How long BUSY (another process holding the write lock) or a function's
// Retry is retried before the caller gets Unavailable.
constexpr auto kRetryDeadline = std::chrono::seconds(30);
// SQLite waits this long for another connection's lock before BUSY.
constexpr int kBusyTimeoutMs = 5000;
// Page cache per connection (negative: KiB). The writer touches the index
// pages of every hot directory; readers mostly the same few.
constexpr int kWriterCacheKiB = 64 * 1024;
constexpr int kReaderCacheKiB = 16 * 1024;
// Deleted inodes whose inline bytes are released in one statement
// (SqliteTransaction::DeleteInode): 256 rows of up to a page each, ~1 MiB.
constexpr int kInlineGoneBatch = 256;
// Reader connections when NamespaceOptions::pool_size is 0: one per CPU,
// within these bounds.
constexpr unsigned kMinReaders = 4;
constexpr unsigned kMaxDefaultReaders = 16;
// Inode numbers StatFs reports as the total: the ids are 63-bit, but a
// figure this size keeps df's columns readable.
constexpr uint64_t kFilesTotal = uint64_t{1} << 48;

// ---------------------------------------------------------------------------
// SQL. Every statement the backend runs, prepared once per connection.

enum class Sql : int {
  kBegin,
  kBeginImmediate,
  kCommit,
  kRollback,
  kSavepoint,
  kRelease,
  kRollbackTo,
  kGetInode,
  kLookupWithParent,
  kInsertInode,
  kUpdateInode,
  kDeleteInode,
  kDeleteSymlink,
  kDeleteOrphan,
  kLookupEntry,
  kInsertEntry,
  kDeleteEntry,
  kHasEntries,
  kListEntries,
  kListEntriesWithAttrs,
  kDirChanged,
  kInsertSymlink,
  kReadSymlink,
  kAddOrphan,
  kStats,
  kVerifier,
  kCountTables,
  kHasSchemaVersionTable,
  kMaxSchemaVersion,
  kInsertSchemaVersion,
  kGetAcl,
  kDeleteAcl,
  kInsertAce,
  kGetXattr,
  kListXattrs,
  kPutXattr,
  kDeleteXattr,
  kDeleteXattrs,
  kGetTagOrigin,
  kSetTagOrigin,
  kInheritTags,
  kListTags,
  kCopyTags,
  kPutTag,
  kDeleteTag,
  kReleaseTagRef,
  kReleaseTagSet,
  kCollectTags,
  kListChecksums,
  kPutChecksum,
  kDeleteChecksum,
  kDeleteChecksums,
  kListLocations,
  kAddLocation,
  kDeleteLocation,
  kDeleteLocations,
  kGetInlineData,
  kPutInlineData,
  kDeleteInlineData,
  kListInlineGone,
  kReleaseInlineGone,
  kClearInlineGone,
  kHasLayout,
  kGetGrace,
  kPutGrace,
  kGetClient,
  kListClients,
  kPutClient,
  kDeleteClient,
  kCount,  // not a statement: the number of them
};

// The number of inode columns NS_INODE_COLS (sqlite_statements.cc) lists,
// in the order ReadAttr expects them.
constexpr int kInodeCols = 16;

// Indexed by Sql (sqlite_statements.cc).
extern const std::array<const char*, static_cast<size_t>(Sql::kCount)> kSqlText;

constexpr int64_t ToDb(uint64_t v) { return static_cast<int64_t>(v); }

// ---------------------------------------------------------------------------
// Stmt: a borrowed cached statement, reset and unbound when it goes out of
// scope so the connection can hand it out again (and so no statement stays
// active across COMMIT or ROLLBACK).

class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* stmt) : stmt_(stmt) {}
  Stmt(Stmt&& other) noexcept
      : stmt_(std::exchange(other.stmt_, nullptr)), bind_rc_(other.bind_rc_) {}
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }

  // Binding failures are remembered and returned by Step(), so call sites
  // stay a flat list of binds.
  void Bind(int index, int64_t value) {
    Remember(sqlite3_bind_int64(stmt_, index, value));
  }
  // `value` must outlive the Stmt (SQLITE_STATIC: no copy). An empty view
  // may have a null data(), which SQLite would bind as NULL.
  void Bind(int index, std::string_view value) {
    Remember(sqlite3_bind_text64(stmt_, index,
                                 value.data() != nullptr ? value.data() : "",
                                 value.size(), SQLITE_STATIC, SQLITE_UTF8));
  }

  // Bytes, not text: xattr and tag values may hold anything.
  void BindBlob(int index, std::string_view value) {
    Remember(sqlite3_bind_blob64(stmt_, index,
                                 value.data() != nullptr ? value.data() : "",
                                 value.size(), SQLITE_STATIC));
  }
  void BindNull(int index) { Remember(sqlite3_bind_null(stmt_, index)); }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() {
    if (bind_rc_ != SQLITE_OK) return bind_rc_;
    return sqlite3_step(stmt_);
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  bool IsNull(int col) const {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
  }
  std::string Blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    if (p == nullptr || n <= 0) return {};
    return std::string(static_cast<const char*>(p), static_cast<size_t>(n));
  }
  // Valid until the next Step() or the end of the Stmt.
  std::string_view Text(int col) const {
    const auto* p =
        reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    if (p == nullptr) return {};
    return std::string_view(
        p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }

 private:
  void Remember(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

// ---------------------------------------------------------------------------
// Connection: one sqlite3 handle and its statement cache. Not thread-safe:
// the owner (the writing leader, or the Read() that borrowed it) is the only
// user.

class Connection {
 public:
  enum class Role { kWriter, kReader };

  // Opens `path` (already checked to exist unless `create`) and applies the
  // per-connection PRAGMAs for `role`. A durable writer syncs the WAL at
  // each COMMIT, or with `defer_sync` leaves that to the backend's syncer.
  static Result<std::unique_ptr<Connection>> Open(const std::string& path,
                                                  Role role, bool create,
                                                  bool durable,
                                                  bool defer_sync = false);

  ~Connection() {
    for (sqlite3_stmt* stmt : stmts_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() const { return db_; }
  const std::string& path() const { return path_; }
  // Whether a transaction is open. SQLite rolls back the whole transaction
  // by itself on some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM), so
  // this is checked after running code we do not control.
  bool InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

  // The cached statement for `sql`, prepared on first use (lazily, because
  // before the first migration the tables do not exist yet).
  Result<Stmt> Prepare(Sql sql) {
    sqlite3_stmt*& slot = stmts_[static_cast<size_t>(sql)];
    if (slot == nullptr) {
      const char* text = kSqlText[static_cast<size_t>(sql)];
      // PERSISTENT: these live as long as the connection; SQLite allocates
      // them where they do not fragment the lookaside memory.
      const int rc = sqlite3_prepare_v3(
          db_, text, -1, SQLITE_PREPARE_PERSISTENT, &slot, nullptr);
      if (rc != SQLITE_OK) {
        sqlite3_finalize(slot);
        slot = nullptr;
        return SqliteStatus(rc, db_, text);
      }
    }
    return Stmt(slot);
  }

  // Runs a statement that returns no rows (transaction control).
  Status Exec(Sql sql) {
    NS_ASSIGN_OR_RETURN(Stmt stmt, Prepare(sql));
    const int rc = stmt.Step();
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return Status::Ok();
    return SqliteStatus(rc, db_, kSqlText[static_cast<size_t>(sql)]);
  }

  // Inodes this connection listed in inode_data_gone since it last released
  // them (SqliteTransaction::DeleteInode). A hint for when to release: a
  // rolled-back savepoint leaves it high (an early batch), and rows listed
  // before a restart go with the first batch after it.
  int NoteInlineGone() { return ++inline_gone_; }
  void ForgetInlineGone() { inline_gone_ = 0; }

  // Runs a script of any number of statements (migrations, PRAGMAs).
  Status ExecScript(const std::string& sql, std::string_view ctx) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    sqlite3_free(err);  // sqlite3_errmsg still has the message
    return SqliteStatus(rc, db_, ctx);
  }

  // A PRAGMA whose one-row answer matters (journal_mode).
  Result<std::string> QueryText(const char* sql) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &raw, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(raw);
      return SqliteStatus(rc, db_, sql);
    }
    std::string answer;
    rc = sqlite3_step(raw);
    if (rc == SQLITE_ROW) {
      const auto* p = sqlite3_column_text(raw, 0);
      if (p != nullptr) answer = reinterpret_cast<const char*>(p);
      rc = SQLITE_DONE;
    }
    Status status = SqliteStatus(rc, db_, sql);
    sqlite3_finalize(raw);
    if (!status.ok()) return status;
    return answer;
  }

  // Puts the database in WAL mode (persistent in the file; a no-op when it
  // already is). WAL lets readers keep a snapshot while the writer commits,
  // and a commit costs one sequential append plus one fsync.
  Status EnableWal() {
    NS_ASSIGN_OR_RETURN(std::string mode,
                        QueryText("PRAGMA journal_mode = WAL"));
    if (mode == "wal") return Status::Ok();
    return Status::Unavailable(
        fmt::format("cannot put {} in WAL mode", path_),
        fmt::format("journal_mode stayed {:?}; is the file system local?",
                    mode));
  }

  // Rolls back whatever is open, ignoring errors: used on paths that are
  // already failing, where the first error is the one to report.
  void RollbackQuietly() {
    if (InTransaction()) (void)Exec(Sql::kRollback);
  }

 private:
  Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {
    stmts_.fill(nullptr);
  }

  sqlite3* db_;
  std::string path_;
  std::array<sqlite3_stmt*, static_cast<size_t>(Sql::kCount)> stmts_;
  int inline_gone_ = 0;
};

// ---------------------------------------------------------------------------
// Backoff between retries of a busy database: exponential with jitter, so
// that several processes retrying against each other spread out.

class Backoff {
 public:
  Backoff() : deadline_(Clock::now() + kRetryDeadline), rng_(Seed()) {}

  // Sleeps before the next attempt; false (without sleeping) once the
  // deadline has passed and the caller should give up.
  bool Wait() {
    if (Clock::now() >= deadline_) return false;
    std::uniform_int_distribution<int64_t> jitter(0, delay_.count() / 2);
    std::this_thread::sleep_for(delay_ +
                                std::chrono::microseconds(jitter(rng_)));
    delay_ = std::min(delay_ * 2, kMaxDelay);
    return true;
  }

 private:
  static constexpr auto kMaxDelay = std::chrono::microseconds(100'000);
  static uint32_t Seed() {
    return static_cast<uint32_t>(
        Clock::now().time_since_epoch().count() ^
        std::hash<std::thread::id>()(std::this_thread::get_id()));
  }

  Clock::time_point deadline_;
  std::chrono::microseconds delay_{1000};
  std::minstd_rand rng_;
};

// Unavailable: the database stayed busy for kRetryDeadline.
Status GaveUp(std::string_view what);

// What the exception being handled says. Call only inside a catch block.
std::string ExceptionText();

// Runs a caller's function, turning an escaping exception into IOError (no
// exception may cross into the group commit's leader or the core).
Status CallFn(const TxnFn& fn, Transaction& txn);

}  // namespace sqlite_internal
}  // namespace ns

#endif  // NS_LIBNAMESPACE_SRC_SQLITE_CONNECTION_H_
