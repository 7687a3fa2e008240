// The SQLite backend: the embedded default namespace store.
//
// Design (see docs/ARCHITECTURE.md for the whole picture):
//
// - One writer connection, used only by one writer thread. SQLite allows
//   one writer per database at a time anyway; owning it in one thread lets
//   concurrent Write() calls share a transaction instead of queueing on the
//   file lock.
// - Group commit: Write() enqueues its function and blocks. The writer
//   thread takes everything queued (up to kMaxGroup), runs
//     BEGIN IMMEDIATE
//       SAVEPOINT w; fn_1; RELEASE w   (or ROLLBACK TO w; RELEASE w)
//       ...
//       SAVEPOINT w; fn_n; RELEASE w
//     COMMIT
//   and then answers every caller. In WAL mode with synchronous=FULL the
//   COMMIT costs one fsync of the WAL, so n callers pay for one fsync; the
//   savepoints keep one caller's failure from undoing the others' work.
// - Readers: a pool of connections (opened lazily, at most pool size), each
//   lent to one Read() at a time. WAL lets them read a consistent snapshot
//   while the writer commits, so reads never wait for writes.
// - Every connection is opened SQLITE_OPEN_NOMUTEX: it is only ever used by
//   one thread at a time (the writer thread, or the Read() that borrowed
//   it), so SQLite's own per-connection mutex would be pure overhead.
// - Prepared statements are cached per connection, keyed by the Sql enum.
// - Other processes (nsh, nsadmin) may open the same file: busy_timeout
//   makes SQLite wait for their locks, and what still comes back BUSY is
//   retried here with backoff for up to kRetryDeadline. Retry never reaches
//   a caller.
// - No exception leaves this file: a caller's function that throws fails
//   with IOError, and std::bad_alloc anywhere becomes IOError too.

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
namespace {

using Clock = std::chrono::steady_clock;

// Most requests one group commit takes from the queue. Bounds the latency
// the first caller of a group sees and the size of the rollback when a
// group has to be re-run.
constexpr size_t kMaxGroup = 512;
// How long BUSY (another process holding the write lock) or a function's
// Retry is retried before the caller gets Unavailable.
constexpr auto kRetryDeadline = std::chrono::seconds(30);
// SQLite waits this long for another connection's lock before BUSY.
constexpr int kBusyTimeoutMs = 5000;
// Page cache per connection (negative: KiB). The writer touches the index
// pages of every hot directory; readers mostly the same few.
constexpr int kWriterCacheKiB = 64 * 1024;
constexpr int kReaderCacheKiB = 16 * 1024;
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
  kHasLayout,
  kGetGrace,
  kPutGrace,
  kGetClient,
  kListClients,
  kPutClient,
  kDeleteClient,
  kCount,  // not a statement: the number of them
};

// The 16 inode columns in the order ReadAttr expects them.
#define NS_INODE_COLS(t)                                                       \
  t "ino, " t "type, " t "mode, " t "nlink, " t "uid, " t "gid, " t "size, " t \
    "rdev_major, " t "rdev_minor, " t "atime_ns, " t "mtime_ns, " t            \
    "ctime_ns, " t "btime_ns, " t "change, " t "generation, " t "parent"
constexpr int kInodeCols = 16;

// Indexed by Sql.
constexpr std::array<const char*, static_cast<size_t>(Sql::kCount)> kSqlText =
    {
        "BEGIN",
        "BEGIN IMMEDIATE",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT w",
        "RELEASE w",
        "ROLLBACK TO w",
        // kGetInode
        "SELECT " NS_INODE_COLS("") " FROM inodes WHERE ino = ?1",
        // kLookupWithParent: the parent's row, the entry and the child's row
        // in one statement: LOOKUP's whole database work.
        "SELECT " NS_INODE_COLS("p.") ", d.child, " NS_INODE_COLS("c.")
        " FROM inodes AS p"
        " LEFT JOIN dirents AS d ON d.parent = p.ino AND d.name = ?2"
        " LEFT JOIN inodes AS c ON c.ino = d.child"
        " WHERE p.ino = ?1",
        // kInsertInode
        "INSERT INTO inodes (type, mode, nlink, uid, gid, size, rdev_major,"
        " rdev_minor, atime_ns, mtime_ns, ctime_ns, btime_ns, change,"
        " generation, parent)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
        " ?15)",
        // kUpdateInode: a directory's nlink belongs to DirChanged.
        "UPDATE inodes SET mode = ?1, uid = ?2, gid = ?3, size = ?4,"
        " rdev_major = ?5, rdev_minor = ?6, atime_ns = ?7, mtime_ns = ?8,"
        " ctime_ns = ?9, parent = ?10,"
        " nlink = CASE WHEN type = 2 THEN nlink ELSE ?11 END,"
        " change = change + 1"
        " WHERE ino = ?12",
        "DELETE FROM inodes WHERE ino = ?1",
        "DELETE FROM symlinks WHERE ino = ?1",
        "DELETE FROM orphans WHERE ino = ?1",
        // kLookupEntry
        "SELECT child, type, cookie FROM dirents"
        " WHERE parent = ?1 AND name = ?2",
        // kInsertEntry: the cookie is the AUTOINCREMENT rowid.
        "INSERT INTO dirents (parent, name, child, type)"
        " VALUES (?1, ?2, ?3, ?4)",
        "DELETE FROM dirents WHERE parent = ?1 AND name = ?2",
        "SELECT 1 FROM dirents WHERE parent = ?1 LIMIT 1",
        // kListEntries: a range scan of dirents_parent_cookie.
        "SELECT cookie, name, child, type FROM dirents"
        " WHERE parent = ?1 AND cookie > ?2 ORDER BY cookie LIMIT ?3",
        // kListEntriesWithAttrs: LEFT JOIN so that an entry whose inode is
        // missing is reported as corruption rather than silently skipped.
        "SELECT d.cookie, d.name, d.child, d.type, " NS_INODE_COLS("i.")
        " FROM dirents AS d LEFT JOIN inodes AS i ON i.ino = d.child"
        " WHERE d.parent = ?1 AND d.cookie > ?2 ORDER BY d.cookie LIMIT ?3",
        // kDirChanged: one writer, so the row is updated in place (no
        // counterpart of PostgreSQL's dir_deltas is needed).
        "UPDATE inodes SET mtime_ns = ?1, ctime_ns = ?2, change = change + 1,"
        " nlink = nlink + ?3 WHERE ino = ?4",
        "INSERT INTO symlinks (ino, target) VALUES (?1, ?2)",
        "SELECT target FROM symlinks WHERE ino = ?1",
        // kAddOrphan: adding twice keeps the first time.
        "INSERT INTO orphans (ino, since_ns) VALUES (?1, ?2)"
        " ON CONFLICT (ino) DO NOTHING",
        // kStats: total() rather than sum(): sum() fails on int64 overflow.
        "SELECT count(*), total(CASE WHEN type = 1 THEN size ELSE 0 END)"
        " FROM inodes",
        "SELECT verifier FROM fs_info WHERE id = 1",
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        "SELECT count(*) FROM sqlite_master"
        " WHERE type = 'table' AND name = 'schema_version'",
        "SELECT max(version) FROM schema_version",
        "INSERT INTO schema_version (version, name, applied_ns)"
        " VALUES (?1, ?2, ?3)",
        // --- metadata (version 3) ---
        "SELECT type, flags, mask, who_kind, who_id FROM aces"
        " WHERE ino = ?1 ORDER BY pos",
        "DELETE FROM aces WHERE ino = ?1",
        "INSERT INTO aces (ino, pos, type, flags, mask, who_kind, who_id)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        "SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2",
        "SELECT name, length(value) FROM xattrs WHERE ino = ?1 ORDER BY name",
        "INSERT INTO xattrs (ino, name, value) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (ino, name) DO UPDATE SET value = excluded.value",
        "DELETE FROM xattrs WHERE ino = ?1 AND name = ?2",
        "DELETE FROM xattrs WHERE ino = ?1",
        "SELECT origin FROM dir_tags WHERE ino = ?1",
        "INSERT INTO dir_tags (ino, origin) VALUES (?1, ?2)"
        " ON CONFLICT (ino) DO UPDATE SET origin = excluded.origin",
        // kInheritTags: nothing to read first; no row when the parent has
        // no tags.
        "INSERT INTO dir_tags (ino, origin)"
        " SELECT ?1, origin FROM dir_tags WHERE ino = ?2",
        "SELECT name, value FROM tags WHERE origin = ?1 ORDER BY name",
        "INSERT OR REPLACE INTO tags (origin, name, value)"
        " SELECT ?2, name, value FROM tags WHERE origin = ?1",
        "INSERT INTO tags (origin, name, value) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (origin, name) DO UPDATE SET value = excluded.value",
        "DELETE FROM tags WHERE origin = ?1 AND name = ?2",
        // kReleaseTagRef, kReleaseTagSet: run by DeleteInode, set first.
        // The set the directory sees (its own, or one whose owner is gone)
        // goes when no other directory references it.
        "DELETE FROM dir_tags WHERE ino = ?1",
        "DELETE FROM tags"
        " WHERE origin = (SELECT origin FROM dir_tags WHERE ino = ?1)"
        " AND NOT EXISTS (SELECT 1 FROM dir_tags AS r"
        " WHERE r.origin = tags.origin AND r.ino <> ?1)",
        "DELETE FROM tags WHERE origin NOT IN (SELECT origin FROM dir_tags)",
        "SELECT type, value FROM checksums WHERE ino = ?1 ORDER BY type",
        "INSERT INTO checksums (ino, type, value) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (ino, type) DO UPDATE SET value = excluded.value",
        "DELETE FROM checksums WHERE ino = ?1 AND type = ?2",
        "DELETE FROM checksums WHERE ino = ?1",
        "SELECT type, location, added_ns FROM locations WHERE ino = ?1"
        " ORDER BY type, location",
        "INSERT INTO locations (ino, type, location, added_ns)"
        " VALUES (?1, ?2, ?3, ?4)",
        "DELETE FROM locations WHERE ino = ?1 AND type = ?2 AND location = ?3",
        "DELETE FROM locations WHERE ino = ?1",
        "SELECT bytes FROM inode_data WHERE ino = ?1",
        "INSERT INTO inode_data (ino, bytes) VALUES (?1, ?2)"
        " ON CONFLICT (ino) DO UPDATE SET bytes = excluded.bytes",
        "DELETE FROM inode_data WHERE ino = ?1",
        "SELECT 1 FROM pnfs_layouts WHERE ino = ?1",
        // kGetGrace
        "SELECT current_epoch, recovery_epoch, started_ns FROM nfs_grace"
        " WHERE id = 1",
        // kPutGrace
        "UPDATE nfs_grace SET current_epoch = ?1, recovery_epoch = ?2,"
        " started_ns = ?3 WHERE id = 1",
        // kGetClient
        "SELECT owner, principal, verifier, clientid, confirmed_ns,"
        " confirmed_epoch, reclaim_epoch FROM nfs_clients WHERE owner = ?1",
        // kListClients
        "SELECT owner, principal, verifier, clientid, confirmed_ns,"
        " confirmed_epoch, reclaim_epoch FROM nfs_clients ORDER BY owner",
        // kPutClient
        "INSERT OR REPLACE INTO nfs_clients (owner, principal, verifier,"
        " clientid, confirmed_ns, confirmed_epoch, reclaim_epoch)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        // kDeleteClient
        "DELETE FROM nfs_clients WHERE owner = ?1",
};

#undef NS_INODE_COLS

// Catches a statement added to Sql without its text (std::array would
// silently fill the gap with nullptr).
constexpr bool AllSqlPresent() {
  for (const char* text : kSqlText) {
    if (text == nullptr) return false;
  }
  return true;
}
static_assert(AllSqlPresent(), "kSqlText must have one entry per Sql value");

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
// the owner (writer thread, or the Read() that borrowed it) is the only
// user.

class Connection {
 public:
  enum class Role { kWriter, kReader };

  // Opens `path` (already checked to exist unless `create`) and applies the
  // per-connection PRAGMAs for `role`.
  static Result<std::unique_ptr<Connection>> Open(const std::string& path,
                                                  Role role, bool create,
                                                  bool durable);

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
};

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path,
                                                     Role role, bool create,
                                                     bool durable) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (create) flags |= SQLITE_OPEN_CREATE;
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status status = SqliteStatus(rc, db, "open");
    if (create && (rc & 0xff) == SQLITE_CANTOPEN) {
      // "No database here" would mislead when we were asked to make one.
      status = Status::Unavailable(fmt::format("cannot create {}", path),
                                   sqlite3_errmsg(db));
    }
    sqlite3_close_v2(db);  // a handle is returned even on failure
    return status;
  }
  std::unique_ptr<Connection> conn(new Connection(db, path));
  sqlite3_extended_result_codes(db, 1);
  // Wait for other processes' locks inside SQLite before reporting BUSY.
  sqlite3_busy_timeout(db, kBusyTimeoutMs);

  // Force a read of the file header now: SQLite opens lazily, and a file
  // that is not a database must fail here (Corruption), not at first use.
  NS_RETURN_IF_ERROR(conn->QueryText("PRAGMA schema_version").status());

  const int cache_kib =
      role == Role::kWriter ? kWriterCacheKiB : kReaderCacheKiB;
  std::string pragmas = fmt::format(
      "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{};", cache_kib);
  if (role == Role::kWriter) {
    // FULL: in WAL mode, one fsync of the WAL per COMMIT, i.e. per group.
    pragmas +=
        durable ? "PRAGMA synchronous = FULL;" : "PRAGMA synchronous = OFF;";
  } else {
    // A Read() function that tries to write fails instead of taking the
    // write lock behind the writer thread's back.
    pragmas += "PRAGMA query_only = ON;";
  }
  NS_RETURN_IF_ERROR(conn->ExecScript(pragmas, "configure connection"));
  return conn;
}

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

Status GaveUp(std::string_view what) {
  return Status::Unavailable(
      fmt::format("{}: database stayed busy", what),
      fmt::format(
          "gave up after {} s; another process may hold the write "
          "lock",
          std::chrono::duration_cast<std::chrono::seconds>(kRetryDeadline)
              .count()));
}

// What the exception being handled says. Call only inside a catch block.
std::string ExceptionText() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

// Runs a caller's function, turning an escaping exception into IOError (no
// exception may cross into the writer thread's loop or the core).
Status CallFn(const TxnFn& fn, Transaction& txn) {
  try {
    return fn(txn);
  } catch (...) {
    return Status::IOError("exception in transaction function",
                           ExceptionText());
  }
}

// ---------------------------------------------------------------------------
// The Transaction: each method is one cached statement on the connection the
// transaction runs on (the writer's or a reader's).

bool IsFileType(int64_t v) {
  return v >= static_cast<int>(FileType::kRegular) &&
         v <= static_cast<int>(FileType::kSocket);
}

// The type column of a dirents row.
Result<FileType> EntryType(int64_t v, InodeId parent, std::string_view name) {
  if (!IsFileType(v)) {
    return Status::Corruption(fmt::format(
        "entry {:?} in directory {}: bad file type {}", name, parent, v));
  }
  return static_cast<FileType>(v);
}

// Reads the kInodeCols columns from `col` on. REQUIRES: the row is not NULL
// there (callers of LEFT JOINs check first).
Result<Attr> ReadAttr(const Stmt& stmt, int col) {
  Attr a;
  a.ino = static_cast<InodeId>(stmt.Int(col));
  const int64_t type = stmt.Int(col + 1);
  if (!IsFileType(type)) {
    return Status::Corruption(
        fmt::format("inode {}: bad file type {}", a.ino, type));
  }
  a.type = static_cast<FileType>(type);
  const auto mode = static_cast<uint32_t>(stmt.Int(col + 2));
  a.mode = mode & 07777;
  a.has_acl = (mode & kModeHasAclBit) != 0;
  a.nlink = static_cast<uint32_t>(stmt.Int(col + 3));
  a.uid = static_cast<uint32_t>(stmt.Int(col + 4));
  a.gid = static_cast<uint32_t>(stmt.Int(col + 5));
  a.size = static_cast<uint64_t>(stmt.Int(col + 6));
  a.rdev_major = static_cast<uint32_t>(stmt.Int(col + 7));
  a.rdev_minor = static_cast<uint32_t>(stmt.Int(col + 8));
  a.atime = stmt.Int(col + 9);
  a.mtime = stmt.Int(col + 10);
  a.ctime = stmt.Int(col + 11);
  a.btime = stmt.Int(col + 12);
  a.change = static_cast<uint64_t>(stmt.Int(col + 13));
  a.generation = static_cast<uint32_t>(stmt.Int(col + 14));
  a.parent = static_cast<InodeId>(stmt.Int(col + 15));
  return a;
}

class SqliteTransaction final : public Transaction {
 public:
  SqliteTransaction(Connection& conn, AclCache* cache, bool may_fill)
      : conn_(conn), acl_cache_(cache), may_fill_(may_fill) {}

  AclCache* acl_cache() override { return acl_cache_; }
  bool may_fill_acl_cache() const override { return may_fill_; }

  Result<Attr> GetInode(InodeId ino, LockMode /*lock*/) override {
    // No row locks: the one writer already excludes every other writer.
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetInode));
    stmt.Bind(1, ToDb(ino));
    const int rc = stmt.Step();
    if (rc == SQLITE_DONE) return Status::Stale(fmt::format("inode {}", ino));
    if (rc != SQLITE_ROW) return Fail(rc, "GetInode");
    return ReadAttr(stmt, 0);
  }

  Result<std::pair<Attr, std::optional<Attr>>> LookupWithParent(
      InodeId parent, std::string_view name) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kLookupWithParent));
    stmt.Bind(1, ToDb(parent));
    stmt.Bind(2, name);
    const int rc = stmt.Step();
    if (rc == SQLITE_DONE) {
      return Status::Stale(fmt::format("inode {}", parent));
    }
    if (rc != SQLITE_ROW) return Fail(rc, "LookupWithParent");
    NS_ASSIGN_OR_RETURN(Attr dir, ReadAttr(stmt, 0));
    constexpr int kChildCol = kInodeCols;  // d.child
    constexpr int kChildAttrCol = kInodeCols + 1;
    if (stmt.IsNull(kChildCol)) {
      return std::make_pair(std::move(dir), std::optional<Attr>());
    }
    if (stmt.IsNull(kChildAttrCol)) {
      return Status::Corruption(
          fmt::format("entry {:?} in directory {} names missing inode {}", name,
                      parent, stmt.Int(kChildCol)));
    }
    NS_ASSIGN_OR_RETURN(Attr child, ReadAttr(stmt, kChildAttrCol));
    return std::make_pair(std::move(dir),
                          std::optional<Attr>(std::move(child)));
  }

  Result<InodeId> InsertInode(const Attr& attr) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kInsertInode));
    stmt.Bind(1, static_cast<int64_t>(attr.type));
    stmt.Bind(2, StoredMode(attr));
    stmt.Bind(3, attr.nlink);
    stmt.Bind(4, attr.uid);
    stmt.Bind(5, attr.gid);
    stmt.Bind(6, ToDb(attr.size));
    stmt.Bind(7, attr.rdev_major);
    stmt.Bind(8, attr.rdev_minor);
    stmt.Bind(9, attr.atime);
    stmt.Bind(10, attr.mtime);
    stmt.Bind(11, attr.ctime);
    stmt.Bind(12, attr.btime);
    // A new inode starts at change 1 (the column default) unless the caller
    // carries one over (a migrated namespace).
    stmt.Bind(13, ToDb(attr.change == 0 ? 1 : attr.change));
    stmt.Bind(14, attr.generation);
    stmt.Bind(15, ToDb(attr.parent));
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "InsertInode");
    return static_cast<InodeId>(sqlite3_last_insert_rowid(conn_.db()));
  }

  Status UpdateInode(const Attr& attr) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kUpdateInode));
    stmt.Bind(1, StoredMode(attr));
    stmt.Bind(2, attr.uid);
    stmt.Bind(3, attr.gid);
    stmt.Bind(4, ToDb(attr.size));
    stmt.Bind(5, attr.rdev_major);
    stmt.Bind(6, attr.rdev_minor);
    stmt.Bind(7, attr.atime);
    stmt.Bind(8, attr.mtime);
    stmt.Bind(9, attr.ctime);
    stmt.Bind(10, ToDb(attr.parent));
    stmt.Bind(11, attr.nlink);
    stmt.Bind(12, ToDb(attr.ino));
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "UpdateInode");
    if (sqlite3_changes(conn_.db()) == 0) {
      return Status::Stale(fmt::format("inode {}", attr.ino));
    }
    return Status::Ok();
  }

  Status DeleteInode(InodeId ino) override {
    NS_RETURN_IF_ERROR(DeleteBy(Sql::kDeleteInode, ino, "DeleteInode"));
    if (sqlite3_changes(conn_.db()) == 0) {
      return Status::Stale(fmt::format("inode {}", ino));
    }
    for (Sql side : {Sql::kDeleteSymlink, Sql::kDeleteOrphan, Sql::kDeleteAcl,
                     Sql::kDeleteXattrs, Sql::kDeleteChecksums,
                     Sql::kDeleteLocations, Sql::kDeleteInlineData,
                     Sql::kReleaseTagSet, Sql::kReleaseTagRef}) {
      NS_RETURN_IF_ERROR(DeleteBy(side, ino, "DeleteInode"));
    }
    return Status::Ok();
  }

  Result<std::optional<EntryRow>> LookupEntry(InodeId parent,
                                              std::string_view name) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kLookupEntry));
    stmt.Bind(1, ToDb(parent));
    stmt.Bind(2, name);
    const int rc = stmt.Step();
    if (rc == SQLITE_DONE) return std::optional<EntryRow>();
    if (rc != SQLITE_ROW) return Fail(rc, "LookupEntry");
    EntryRow row;
    row.child = static_cast<InodeId>(stmt.Int(0));
    NS_ASSIGN_OR_RETURN(row.type, EntryType(stmt.Int(1), parent, name));
    row.cookie = static_cast<uint64_t>(stmt.Int(2));
    return std::optional<EntryRow>(row);
  }

  Status InsertEntry(InodeId parent, std::string_view name, InodeId child,
                     FileType type) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kInsertEntry));
    stmt.Bind(1, ToDb(parent));
    stmt.Bind(2, name);
    stmt.Bind(3, ToDb(child));
    stmt.Bind(4, static_cast<int64_t>(type));
    const int rc = stmt.Step();
    if (rc == SQLITE_DONE) return Status::Ok();
    // UNIQUE (parent, name) becomes Exists here.
    return Fail(rc, "InsertEntry");
  }

  Status DeleteEntry(InodeId parent, std::string_view name) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDeleteEntry));
    stmt.Bind(1, ToDb(parent));
    stmt.Bind(2, name);
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "DeleteEntry");
    if (sqlite3_changes(conn_.db()) == 0) {
      return Status::NotFound(
          fmt::format("no entry {:?} in directory {}", name, parent));
    }
    return Status::Ok();
  }

  Result<bool> HasEntries(InodeId dir) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kHasEntries));
    stmt.Bind(1, ToDb(dir));
    const int rc = stmt.Step();
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return Fail(rc, "HasEntries");
  }

  Result<std::vector<DirEntry>> ListEntries(InodeId dir, uint64_t after_cookie,
                                            uint32_t limit,
                                            bool with_attrs) override {
    std::vector<DirEntry> entries;
    // Cookies are positive int64 rowids: nothing lies beyond INT64_MAX (and
    // the cast below would otherwise wrap to a negative bound).
    if (limit == 0 ||
        after_cookie >=
            static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return entries;
    }
    NS_ASSIGN_OR_RETURN(Stmt stmt,
                        conn_.Prepare(with_attrs ? Sql::kListEntriesWithAttrs
                                                 : Sql::kListEntries));
    stmt.Bind(1, ToDb(dir));
    stmt.Bind(2, ToDb(after_cookie));
    stmt.Bind(3, static_cast<int64_t>(limit));
    entries.reserve(std::min<uint32_t>(limit, 1024));
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      DirEntry e;
      e.cookie = static_cast<uint64_t>(stmt.Int(0));
      e.name = std::string(stmt.Text(1));
      e.ino = static_cast<InodeId>(stmt.Int(2));
      NS_ASSIGN_OR_RETURN(e.type, EntryType(stmt.Int(3), dir, e.name));
      if (with_attrs) {
        constexpr int kAttrCol = 4;
        if (stmt.IsNull(kAttrCol)) {
          return Status::Corruption(
              fmt::format("entry {:?} in directory {} names missing inode {}",
                          e.name, dir, e.ino));
        }
        NS_ASSIGN_OR_RETURN(e.attr, ReadAttr(stmt, kAttrCol));
      }
      entries.push_back(std::move(e));
    }
    if (rc != SQLITE_DONE) return Fail(rc, "ListEntries");
    return entries;
  }

  Status DirChanged(InodeId dir, int nlink_delta, TimeNs now) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDirChanged));
    stmt.Bind(1, now);
    stmt.Bind(2, now);
    stmt.Bind(3, static_cast<int64_t>(nlink_delta));
    stmt.Bind(4, ToDb(dir));
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "DirChanged");
    if (sqlite3_changes(conn_.db()) == 0) {
      return Status::Stale(fmt::format("inode {}", dir));
    }
    return Status::Ok();
  }

  Status InsertSymlink(InodeId ino, std::string_view target) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kInsertSymlink));
    stmt.Bind(1, ToDb(ino));
    stmt.Bind(2, target);
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "InsertSymlink");
    return Status::Ok();
  }

  Result<std::string> ReadSymlink(InodeId ino) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kReadSymlink));
    stmt.Bind(1, ToDb(ino));
    const int rc = stmt.Step();
    if (rc == SQLITE_DONE) {
      return Status::Corruption(
          fmt::format("symlink {} has no target row", ino));
    }
    if (rc != SQLITE_ROW) return Fail(rc, "ReadSymlink");
    return std::string(stmt.Text(0));
  }

  Status AddOrphan(InodeId ino, TimeNs now) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kAddOrphan));
    stmt.Bind(1, ToDb(ino));
    stmt.Bind(2, now);
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "AddOrphan");
    return Status::Ok();
  }

  Status RemoveOrphan(InodeId ino) override {
    // Removing an inode that is not on the list is not an error: the
    // caller's goal (not listed) holds.
    return DeleteBy(Sql::kDeleteOrphan, ino, "RemoveOrphan");
  }

  Status LockTopology() override {
    // One writer at a time: two renames can never interleave.
    return Status::Ok();
  }

  Result<std::vector<SqlRow>> Query(std::string_view sql,
                                    std::span<const int64_t> params) override {
    std::vector<SqlValue> values(params.begin(), params.end());
    return QueryValues(sql, values);
  }

  Result<std::vector<SqlRow>> QueryValues(
      std::string_view sql, std::span<const SqlValue> params) override {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(conn_.db(), sql.data(),
                                static_cast<int>(sql.size()), &raw, nullptr);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(
        raw, &sqlite3_finalize);
    if (rc != SQLITE_OK) return Fail(rc, "Query");
    // "$N" is a named parameter to SQLite, numbered by first appearance;
    // bind by name so the SQL may use them in any order.
    for (size_t i = 0; i < params.size(); ++i) {
      const std::string name = "$" + std::to_string(i + 1);
      const int index = sqlite3_bind_parameter_index(raw, name.c_str());
      if (index == 0) continue;
      if (const int64_t* v = std::get_if<int64_t>(&params[i])) {
        rc = sqlite3_bind_int64(raw, index, *v);
      } else {
        const std::string& text = std::get<std::string>(params[i]);
        rc = sqlite3_bind_text(raw, index, text.data(),
                               static_cast<int>(text.size()),
                               SQLITE_TRANSIENT);
      }
      if (rc != SQLITE_OK) return Fail(rc, "Query");
    }
    std::vector<SqlRow> rows;
    while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
      SqlRow row;
      const int n = sqlite3_column_count(raw);
      for (int c = 0; c < n; ++c) {
        const auto* text = sqlite3_column_text(raw, c);
        if (text == nullptr) {
          row.emplace_back(std::nullopt);
        } else {
          row.emplace_back(std::string(reinterpret_cast<const char*>(text),
                                       sqlite3_column_bytes(raw, c)));
        }
      }
      rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) return Fail(rc, "Query");
    return rows;
  }

  Result<FsStats> Stats() override {
    FsStats stats;
    {
      NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kStats));
      const int rc = stmt.Step();
      if (rc != SQLITE_ROW) return Fail(rc, "Stats");
      stats.files = static_cast<uint64_t>(stmt.Int(0));
      const double bytes = stmt.Double(1);
      stats.bytes = bytes > 0 ? static_cast<uint64_t>(bytes) : 0;
    }
    stats.files_free =
        stats.files < kFilesTotal ? kFilesTotal - stats.files : 0;
    // The namespace grows on the file system holding the database.
    struct statvfs vfs;
    if (statvfs(DirectoryOf(conn_.path()).c_str(), &vfs) == 0) {
      stats.bytes_total = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
      stats.bytes_free = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    }
    return stats;
  }

  // --- metadata ---

  Result<Acl> GetAcl(InodeId ino) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetAcl));
    stmt.Bind(1, ToDb(ino));
    Acl acl;
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      Ace ace;
      ace.type = static_cast<uint32_t>(stmt.Int(0));
      ace.flags = static_cast<uint32_t>(stmt.Int(1));
      ace.mask = static_cast<uint32_t>(stmt.Int(2));
      const int64_t kind = stmt.Int(3);
      if (kind < 0 || kind > static_cast<int64_t>(AceWho::kNamedGroup)) {
        return Status::Corruption(
            fmt::format("inode {}: ACE with bad who kind {}", ino, kind));
      }
      ace.who = static_cast<AceWho>(kind);
      ace.id = static_cast<uint32_t>(stmt.Int(4));
      acl.push_back(ace);
    }
    if (rc != SQLITE_DONE) return Fail(rc, "GetAcl");
    return acl;
  }

  Status SetAcl(InodeId ino, const Acl& acl) override {
    NS_RETURN_IF_ERROR(DeleteBy(Sql::kDeleteAcl, ino, "SetAcl"));
    for (size_t pos = 0; pos < acl.size(); ++pos) {
      const Ace& ace = acl[pos];
      NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kInsertAce));
      stmt.Bind(1, ToDb(ino));
      stmt.Bind(2, static_cast<int64_t>(pos));
      stmt.Bind(3, static_cast<int64_t>(ace.type));
      stmt.Bind(4, static_cast<int64_t>(ace.flags));
      stmt.Bind(5, static_cast<int64_t>(ace.mask));
      stmt.Bind(6, static_cast<int64_t>(ace.who));
      stmt.Bind(7, static_cast<int64_t>(ace.id));
      const int rc = stmt.Step();
      if (rc != SQLITE_DONE) return Fail(rc, "SetAcl");
    }
    return Status::Ok();
  }

  Result<std::optional<std::string>> GetXattr(InodeId ino,
                                              std::string_view name) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetXattr));
    stmt.Bind(1, ToDb(ino));
    stmt.Bind(2, name);
    const int rc = stmt.Step();
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    if (rc != SQLITE_ROW) return Fail(rc, "GetXattr");
    return std::optional<std::string>(stmt.Blob(0));
  }

  Result<std::vector<XattrName>> ListXattrs(InodeId ino) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kListXattrs));
    stmt.Bind(1, ToDb(ino));
    std::vector<XattrName> out;
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      out.push_back({std::string(stmt.Text(0)),
                     static_cast<uint64_t>(stmt.Int(1))});
    }
    if (rc != SQLITE_DONE) return Fail(rc, "ListXattrs");
    return out;
  }

  Status PutXattr(InodeId ino, std::string_view name,
                  std::string_view value) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kPutXattr));
    stmt.Bind(1, ToDb(ino));
    stmt.Bind(2, name);
    stmt.BindBlob(3, value);
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "PutXattr");
    return Status::Ok();
  }

  Result<bool> DeleteXattr(InodeId ino, std::string_view name) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDeleteXattr));
    stmt.Bind(1, ToDb(ino));
    stmt.Bind(2, name);
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "DeleteXattr");
    return sqlite3_changes(conn_.db()) > 0;
  }

  Result<std::optional<InodeId>> GetTagOrigin(InodeId ino) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetTagOrigin));
    stmt.Bind(1, ToDb(ino));
    const int rc = stmt.Step();
    if (rc == SQLITE_DONE) return std::optional<InodeId>();
    if (rc != SQLITE_ROW) return Fail(rc, "GetTagOrigin");
    return std::optional<InodeId>(static_cast<InodeId>(stmt.Int(0)));
  }

  Status SetTagOrigin(InodeId ino, InodeId origin) override {
    return Exec2(Sql::kSetTagOrigin, ino, origin, "SetTagOrigin");
  }

  Status InheritTags(InodeId child, InodeId parent) override {
    return Exec2(Sql::kInheritTags, child, parent, "InheritTags");
  }

  Result<std::vector<Tag>> ListTags(InodeId origin) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kListTags));
    stmt.Bind(1, ToDb(origin));
    std::vector<Tag> out;
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      Tag t;
      t.name = std::string(stmt.Text(0));
      t.value = stmt.Blob(1);
      out.push_back(std::move(t));
    }
    if (rc != SQLITE_DONE) return Fail(rc, "ListTags");
    return out;
  }

  Status CopyTags(InodeId from, InodeId to) override {
    return Exec2(Sql::kCopyTags, from, to, "CopyTags");
  }

  Status PutTag(InodeId origin, std::string_view name,
                std::string_view value) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kPutTag));
    stmt.Bind(1, ToDb(origin));
    stmt.Bind(2, name);
    stmt.BindBlob(3, value);
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "PutTag");
    return Status::Ok();
  }

  Result<bool> DeleteTag(InodeId origin, std::string_view name) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDeleteTag));
    stmt.Bind(1, ToDb(origin));
    stmt.Bind(2, name);
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "DeleteTag");
    return sqlite3_changes(conn_.db()) > 0;
  }

  Result<uint64_t> CollectTags() override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kCollectTags));
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "CollectTags");
    return static_cast<uint64_t>(sqlite3_changes(conn_.db()));
  }

  Result<std::vector<Checksum>> ListChecksums(InodeId ino) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kListChecksums));
    stmt.Bind(1, ToDb(ino));
    std::vector<Checksum> out;
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      Checksum c;
      c.type = static_cast<ChecksumType>(stmt.Int(0));
      c.value = std::string(stmt.Text(1));
      out.push_back(std::move(c));
    }
    if (rc != SQLITE_DONE) return Fail(rc, "ListChecksums");
    return out;
  }

  Status PutChecksum(InodeId ino, const Checksum& c) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kPutChecksum));
    stmt.Bind(1, ToDb(ino));
    stmt.Bind(2, static_cast<int64_t>(c.type));
    stmt.Bind(3, c.value);
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "PutChecksum");
    return Status::Ok();
  }

  Result<bool> DeleteChecksum(InodeId ino, ChecksumType type) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDeleteChecksum));
    stmt.Bind(1, ToDb(ino));
    stmt.Bind(2, static_cast<int64_t>(type));
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "DeleteChecksum");
    return sqlite3_changes(conn_.db()) > 0;
  }

  Result<std::optional<std::string>> GetInlineData(InodeId ino) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetInlineData));
    stmt.Bind(1, ToDb(ino));
    const int rc = stmt.Step();
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    if (rc != SQLITE_ROW) return Fail(rc, "GetInlineData");
    return std::optional<std::string>(stmt.Blob(0));
  }

  Status PutInlineData(InodeId ino, std::string_view bytes) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kPutInlineData));
    stmt.Bind(1, ToDb(ino));
    stmt.BindBlob(2, bytes);
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "PutInlineData");
    return Status::Ok();
  }

  Result<bool> DeleteInlineData(InodeId ino) override {
    NS_RETURN_IF_ERROR(DeleteBy(Sql::kDeleteInlineData, ino, "DeleteInlineData"));
    return sqlite3_changes(conn_.db()) > 0;
  }

  Result<bool> HasLayout(InodeId ino) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kHasLayout));
    stmt.Bind(1, ToDb(ino));
    const int rc = stmt.Step();
    if (rc == SQLITE_DONE) return false;
    if (rc != SQLITE_ROW) return Fail(rc, "HasLayout");
    return true;
  }

  Result<std::vector<Location>> ListLocations(InodeId ino) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kListLocations));
    stmt.Bind(1, ToDb(ino));
    std::vector<Location> out;
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      Location l;
      l.type = static_cast<LocationType>(stmt.Int(0));
      l.location = std::string(stmt.Text(1));
      l.added_ns = stmt.Int(2);
      out.push_back(std::move(l));
    }
    if (rc != SQLITE_DONE) return Fail(rc, "ListLocations");
    return out;
  }

  Status AddLocation(InodeId ino, const Location& l) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kAddLocation));
    stmt.Bind(1, ToDb(ino));
    stmt.Bind(2, static_cast<int64_t>(l.type));
    stmt.Bind(3, l.location);
    stmt.Bind(4, l.added_ns);
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "AddLocation");  // UNIQUE: Exists
    return Status::Ok();
  }

  Result<bool> DeleteLocation(InodeId ino, LocationType type,
                              std::string_view location) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDeleteLocation));
    stmt.Bind(1, ToDb(ino));
    stmt.Bind(2, static_cast<int64_t>(type));
    stmt.Bind(3, location);
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "DeleteLocation");
    return sqlite3_changes(conn_.db()) > 0;
  }

 private:
  static int64_t StoredMode(const Attr& a) {
    return static_cast<int64_t>((a.mode & 07777) |
                                (a.has_acl ? kModeHasAclBit : 0));
  }

  Status Exec2(Sql sql, InodeId a, InodeId b, std::string_view ctx) {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(sql));
    stmt.Bind(1, ToDb(a));
    stmt.Bind(2, ToDb(b));
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, ctx);
    return Status::Ok();
  }

 public:
  // --- NFSv4 client records (schema version 4) ---

  Result<GraceRow> GetGrace() override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetGrace));
    const int rc = stmt.Step();
    if (rc == SQLITE_DONE) {
      return Status::Corruption("GetGrace", "the nfs_grace row is missing");
    }
    if (rc != SQLITE_ROW) return Fail(rc, "GetGrace");
    GraceRow row;
    row.current_epoch = stmt.Int(0);
    if (!stmt.IsNull(1)) row.recovery_epoch = stmt.Int(1);
    row.started_ns = stmt.Int(2);
    return row;
  }

  Status PutGrace(const GraceRow& row) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kPutGrace));
    stmt.Bind(1, row.current_epoch);
    if (row.recovery_epoch) {
      stmt.Bind(2, *row.recovery_epoch);
    } else {
      stmt.BindNull(2);
    }
    stmt.Bind(3, row.started_ns);
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "PutGrace");
    if (sqlite3_changes(conn_.db()) != 1) {
      return Status::Corruption("PutGrace", "the nfs_grace row is missing");
    }
    return Status::Ok();
  }

  Result<ClientRecord> GetClientRecord(std::string_view owner) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetClient));
    stmt.BindBlob(1, owner);
    const int rc = stmt.Step();
    if (rc == SQLITE_DONE) return Status::NotFound("client record");
    if (rc != SQLITE_ROW) return Fail(rc, "GetClientRecord");
    return ReadClient(stmt);
  }

  Result<std::vector<ClientRecord>> ListClientRecords() override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kListClients));
    std::vector<ClientRecord> out;
    for (;;) {
      const int rc = stmt.Step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return Fail(rc, "ListClientRecords");
      out.push_back(ReadClient(stmt));
    }
    return out;
  }

  Status PutClientRecord(const ClientRecord& rec) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kPutClient));
    stmt.BindBlob(1, rec.owner);
    stmt.Bind(2, std::string_view(rec.principal));
    stmt.Bind(3, ToDb(rec.verifier));
    stmt.Bind(4, ToDb(rec.clientid));
    stmt.Bind(5, rec.confirmed_ns);
    stmt.Bind(6, rec.confirmed_epoch);
    if (rec.reclaim_epoch) {
      stmt.Bind(7, *rec.reclaim_epoch);
    } else {
      stmt.BindNull(7);
    }
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "PutClientRecord");
    return Status::Ok();
  }

  Status DeleteClientRecord(std::string_view owner) override {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDeleteClient));
    stmt.BindBlob(1, owner);
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "DeleteClientRecord");
    return Status::Ok();
  }

 private:
  static ClientRecord ReadClient(const Stmt& stmt) {
    ClientRecord r;
    r.owner = std::string(stmt.Blob(0));
    r.principal = std::string(stmt.Text(1));
    r.verifier = static_cast<uint64_t>(stmt.Int(2));
    r.clientid = static_cast<uint64_t>(stmt.Int(3));
    r.confirmed_ns = stmt.Int(4);
    r.confirmed_epoch = stmt.Int(5);
    if (!stmt.IsNull(6)) r.reclaim_epoch = stmt.Int(6);
    return r;
  }

  static std::string DirectoryOf(const std::string& path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
  }

  Status Fail(int rc, std::string_view ctx) {
    return SqliteStatus(rc, conn_.db(), ctx);
  }

  Status DeleteBy(Sql sql, InodeId ino, std::string_view ctx) {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(sql));
    stmt.Bind(1, ToDb(ino));
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, ctx);
    return Status::Ok();
  }

  Connection& conn_;
  AclCache* const acl_cache_;
  const bool may_fill_;
};

// ---------------------------------------------------------------------------
// The Backend.

class SqliteBackend final : public Backend {
 public:
  SqliteBackend(std::string path, const NamespaceOptions& options,
                std::unique_ptr<Connection> writer)
      : path_(std::move(path)),
        durable_(options.durable),
        max_readers_(ReaderCount(options.pool_size)),
        writer_(std::move(writer)) {
    // Reserved up front so that the writer loop and ReleaseReader never
    // allocate (and so never throw) while requests are in flight.
    batch_.reserve(kMaxGroup);
    results_.reserve(kMaxGroup);
    readers_.reserve(static_cast<size_t>(max_readers_));
    idle_readers_.reserve(static_cast<size_t>(max_readers_));
  }

  // Finishes queued writes, then stops the writer thread.
  ~SqliteBackend() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (writer_thread_.joinable()) writer_thread_.join();
  }

  // Starts the writer thread. Errors: Unavailable (no thread).
  Status StartWriter() {
    try {
      writer_thread_ = std::thread([this] { WriterLoop(); });
      writer_id_ = writer_thread_.get_id();
      return Status::Ok();
    } catch (...) {
      return Status::Unavailable("cannot start the SQLite writer thread",
                                 ExceptionText());
    }
  }

  std::string_view Dialect() const override { return "sqlite"; }

  Status Write(const TxnFn& fn) override {
    if (std::this_thread::get_id() == writer_id_) {
      // A Write inside a Write would wait for the writer thread, which is
      // running the outer function: a deadlock.
      return Status::Invalid("Write() called inside a Write() transaction");
    }
    try {
      Request request;
      request.fn = &fn;
      std::future<Status> done = request.done.get_future();
      NS_RETURN_IF_ERROR(Enqueue(&request));
      return done.get();
    } catch (...) {
      return Status::IOError("sqlite Write", ExceptionText());
    }
  }

  Status Read(const TxnFn& fn) override {
    try {
      return WithReader([&fn, this](Connection& conn) {
        NS_RETURN_IF_ERROR(conn.Exec(Sql::kBegin));
        SqliteTransaction txn(conn, &acl_cache_, /*may_fill=*/true);
        Status status = CallFn(fn, txn);
        // Nothing to keep from a read-only transaction: COMMIT and ROLLBACK
        // both just end the snapshot.
        if (conn.InTransaction()) {
          Status end = conn.Exec(Sql::kCommit);
          if (!end.ok()) {
            conn.RollbackQuietly();
            if (status.ok()) status = end;
          }
        }
        return status;
      });
    } catch (...) {
      return Status::IOError("sqlite Read", ExceptionText());
    }
  }

  uint64_t CookieVerifier() override {
    if (!verifier_loaded_.load(std::memory_order_acquire)) {
      // Start() normally loaded it; if it was skipped, try now (0 if that
      // fails: this method has no way to report an error).
      (void)LoadVerifier();
    }
    return verifier_.load(std::memory_order_relaxed);
  }

  Result<int> SchemaVersion() override {
    try {
      int version = 0;
      Status status = WithReader([&](Connection& conn) -> Status {
        NS_RETURN_IF_ERROR(conn.Exec(Sql::kBegin));
        Result<int> v = ReadSchemaVersion(conn);
        conn.RollbackQuietly();
        if (!v.ok()) return v.status();
        version = *v;
        return Status::Ok();
      });
      if (!status.ok()) return status;
      return version;
    } catch (...) {
      return Status::IOError("sqlite SchemaVersion", ExceptionText());
    }
  }

  Status ApplyMigration(int version, std::string_view name,
                        std::string_view sql) override {
    if (std::this_thread::get_id() == writer_id_) {
      return Status::Invalid("ApplyMigration() called inside a transaction");
    }
    try {
      const std::string script(sql);
      const std::string label = fmt::format("migration {} ({})", version, name);
      Request request;
      request.job = [&](Connection& conn) {
        return RunMigration(conn, version, name, script, label);
      };
      std::future<Status> done = request.done.get_future();
      NS_RETURN_IF_ERROR(Enqueue(&request));
      return done.get();
    } catch (...) {
      return Status::IOError("sqlite ApplyMigration", ExceptionText());
    }
  }

  Status Start() override {
    try {
      return LoadVerifier();
    } catch (...) {
      return Status::IOError("sqlite Start", ExceptionText());
    }
  }

 private:
  // One Write() or ApplyMigration() waiting for the writer thread. Lives on
  // the caller's stack; the writer thread must not touch it after setting
  // `done` (the caller returns at once).
  struct Request {
    // A transaction to run in a group commit...
    const TxnFn* fn = nullptr;
    // ...or, when set, work that needs the writer connection to itself
    // (a migration: its own transaction, DDL).
    std::function<Status(Connection&)> job;
    std::promise<Status> done;
  };

  static int ReaderCount(int pool_size) {
    if (pool_size > 0) return pool_size;
    const unsigned cpus = std::thread::hardware_concurrency();
    return static_cast<int>(std::clamp(cpus, kMinReaders, kMaxDefaultReaders));
  }

  static void Complete(Request* request, Status status) {
    try {
      request->done.set_value(std::move(status));
    } catch (...) {
      // set_value only throws if already satisfied: nothing left to tell.
    }
  }

  Status Enqueue(Request* request) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        return Status::Unavailable("the SQLite backend is shutting down");
      }
      queue_.push_back(request);
    }
    cv_.notify_one();
    return Status::Ok();
  }

  // --- the writer thread ---

  void WriterLoop() {
    // Named so that `top -H` and profilers show where commits happen.
    pthread_setname_np(pthread_self(), "sqlite-writer");
    while (true) {
      Request* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        // Stop only once everything queued before the destructor ran is
        // done: those callers are blocked waiting for an answer.
        if (queue_.empty()) return;
        if (queue_.front()->job) {
          job = queue_.front();
          queue_.pop_front();
        } else {
          while (!queue_.empty() && batch_.size() < kMaxGroup &&
                 !queue_.front()->job) {
            batch_.push_back(queue_.front());  // capacity reserved: no throw
            queue_.pop_front();
          }
        }
      }
      if (job != nullptr) {
        RunJob(job);
      } else {
        RunGroup();
      }
      batch_.clear();
    }
  }

  void RunJob(Request* request) {
    Status status;
    try {
      status = request->job(*writer_);
    } catch (...) {
      writer_->RollbackQuietly();
      status = Status::IOError("sqlite writer job", ExceptionText());
    }
    Complete(request, std::move(status));
  }

  // What one attempt at committing a group came to.
  struct GroupOutcome {
    // Ok: committed, and results[i] is request i's answer.
    // Otherwise nothing was committed.
    Status status;
    // Set when request `culprit` made SQLite abandon the whole transaction
    // (disk full, I/O error): it gets `status`, the others run again.
    std::optional<size_t> culprit;
  };

  // Runs batch_ as group commits until every request has its answer.
  //
  // Invariant that makes the catch below safe: a request leaves `pending`
  // in the same step that completes it, and nothing between completing a
  // request and removing it can throw. FailAll in the catch therefore never
  // touches a request whose caller has already returned.
  void RunGroup() {
    std::vector<Request*>& pending = batch_;
    std::vector<Status>& results = results_;
    try {
      Backoff backoff;
      while (!pending.empty()) {
        results.assign(pending.size(), Status::Ok());  // capacity reserved
        GroupOutcome outcome = CommitGroup(pending, results);
        if (outcome.status.ok()) {
          // Answer everyone whose function did not ask to be re-run; keep
          // the others (in place: no allocation) for the next round.
          size_t kept = 0;
          for (size_t i = 0; i < pending.size(); ++i) {
            if (results[i].IsRetry()) {
              pending[kept++] = pending[i];
            } else {
              Complete(pending[i], std::move(results[i]));
            }
          }
          pending.resize(kept);
          if (!pending.empty() && !backoff.Wait()) {
            FailAll(pending, GaveUp("sqlite Write"));
          }
        } else if (outcome.culprit.has_value() && !outcome.status.IsRetry()) {
          // SQLite abandoned the transaction because of one function's
          // statement: that caller gets the error, the rest run again in a
          // new transaction (their functions are re-runnable).
          const size_t culprit = *outcome.culprit;
          Complete(pending[culprit], std::move(outcome.status));
          pending.erase(pending.begin() + static_cast<ptrdiff_t>(culprit));
        } else if (outcome.status.IsRetry()) {
          // BEGIN or COMMIT met another process's lock: run the whole
          // group again.
          if (!backoff.Wait()) FailAll(pending, GaveUp("sqlite Write"));
        } else {
          // BEGIN or COMMIT failed for good (disk full, I/O error): nothing
          // was committed for anyone.
          FailAll(pending, outcome.status);
        }
      }
    } catch (...) {
      writer_->RollbackQuietly();
      FailAll(pending, Status::IOError("sqlite group commit", ExceptionText()));
    }
  }

  static void FailAll(std::vector<Request*>& requests, const Status& status) {
    for (Request* r : requests) Complete(r, status);
    requests.clear();
  }

  // Moves more transaction requests from the queue into `requests` (up to
  // kMaxGroup; stops at a job). Returns whether it took any.
  bool TakeMore(std::vector<Request*>& requests) {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t before = requests.size();
    while (!queue_.empty() && requests.size() < kMaxGroup &&
           !queue_.front()->job) {
      requests.push_back(queue_.front());  // capacity reserved: no throw
      queue_.pop_front();
    }
    return requests.size() > before;
  }

  // One attempt at running `requests` in one transaction. Requests that
  // arrive while the group runs join it before the COMMIT: callers
  // answered by the previous COMMIT come back while this group's functions
  // run, and letting them in makes groups as large as the number of busy
  // callers instead of half of it (two cohorts taking turns), at no cost in
  // latency for anyone but the group's first caller.
  GroupOutcome CommitGroup(std::vector<Request*>& requests,
                           std::vector<Status>& results) {
    Connection& conn = *writer_;
    // IMMEDIATE: take the write lock now, so that a conflict with another
    // process shows up here (and is retried) rather than halfway through.
    Status status = conn.Exec(Sql::kBeginImmediate);
    if (!status.ok()) {
      conn.RollbackQuietly();
      return {std::move(status), std::nullopt};
    }
    SqliteTransaction txn(conn, &acl_cache_, /*may_fill=*/false);
    for (size_t i = 0;; ++i) {
      if (i == requests.size()) {
        if (!TakeMore(requests)) break;
        results.resize(requests.size());  // capacity reserved: no throw
      }
      status = conn.Exec(Sql::kSavepoint);
      if (!status.ok()) {
        conn.RollbackQuietly();
        return {std::move(status), std::nullopt};
      }
      Status result = CallFn(*requests[i]->fn, txn);
      if (!conn.InTransaction()) {
        // The transaction is gone with everything earlier functions did.
        if (result.ok()) {
          result = Status::IOError("sqlite Write",
                                   "transaction ended inside the function");
        }
        return {std::move(result), i};
      }
      if (result.ok()) {
        status = conn.Exec(Sql::kRelease);
      } else {
        status = conn.Exec(Sql::kRollbackTo);
        if (status.ok()) status = conn.Exec(Sql::kRelease);
      }
      if (!status.ok()) {
        const bool lost = !conn.InTransaction();
        conn.RollbackQuietly();
        if (lost) return {std::move(status), i};
        return {std::move(status), std::nullopt};
      }
      results[i] = std::move(result);
    }
    // One COMMIT, one WAL fsync, for the whole group.
    status = conn.Exec(Sql::kCommit);
    if (!status.ok()) {
      conn.RollbackQuietly();
      return {std::move(status), std::nullopt};
    }
    return {Status::Ok(), std::nullopt};
  }

  // Runs on the writer thread with the connection to itself.
  // Retries the whole migration while another process holds a lock.
  static Status RunMigration(Connection& conn, int version,
                             std::string_view name, const std::string& script,
                             const std::string& label) {
    Backoff backoff;
    while (true) {
      Status status = TryMigration(conn, version, name, script, label);
      if (!status.IsRetry()) return status;
      if (!backoff.Wait()) return GaveUp(label);
    }
  }

  static Status TryMigration(Connection& conn, int version,
                             std::string_view name, const std::string& script,
                             const std::string& label) {
    // The first migration is the first write to a new database: switch it
    // to WAL now (cannot be done inside a transaction).
    NS_RETURN_IF_ERROR(conn.EnableWal());
    Status status = conn.Exec(Sql::kBeginImmediate);
    if (status.ok()) status = conn.ExecScript(script, label);
    if (status.ok() && !conn.InTransaction()) {
      // Whatever the script did before its own COMMIT is applied: tell the
      // operator rather than pretend it was atomic.
      return Status::Corruption(
          fmt::format("{} ended the transaction itself", label),
          "migration scripts must not contain BEGIN, COMMIT or ROLLBACK; "
          "check the database with `nsadmin fsck`");
    }
    if (status.ok()) {
      // Recorded in the same transaction: the version row and the tables it
      // describes appear together or not at all.
      Result<Stmt> stmt = conn.Prepare(Sql::kInsertSchemaVersion);
      if (stmt.ok()) {
        stmt->Bind(1, static_cast<int64_t>(version));
        stmt->Bind(2, name);
        stmt->Bind(3, NowNs());
        status = SqliteStatus(stmt->Step(), conn.db(), label);
      } else {
        status = stmt.status();
      }
    }
    if (status.ok()) status = conn.Exec(Sql::kCommit);
    if (!status.ok()) conn.RollbackQuietly();
    return status;
  }

  // --- readers ---

  // Runs `fn` on a borrowed reader connection, retrying (with backoff) while
  // it reports Retry.
  Status WithReader(const std::function<Status(Connection&)>& fn) {
    Backoff backoff;
    while (true) {
      Result<Connection*> acquired = AcquireReader();
      if (!acquired.ok()) {
        // Opening a reader reads the file header, which another process
        // may have locked for a moment.
        if (!acquired.status().IsRetry()) return acquired.status();
        if (!backoff.Wait()) return GaveUp("sqlite Read");
        continue;
      }
      Connection* conn = *acquired;
      Status status;
      try {
        status = fn(*conn);
      } catch (...) {
        conn->RollbackQuietly();
        ReleaseReader(conn);
        throw;
      }
      conn->RollbackQuietly();  // never lend out a connection mid-transaction
      ReleaseReader(conn);
      if (!status.IsRetry()) return status;
      if (!backoff.Wait()) return GaveUp("sqlite Read");
    }
  }

  Result<Connection*> AcquireReader() {
    std::unique_lock<std::mutex> lock(readers_mu_);
    readers_cv_.wait(lock, [this] {
      return !idle_readers_.empty() || opened_readers_ < max_readers_;
    });
    if (!idle_readers_.empty()) {
      Connection* conn = idle_readers_.back();
      idle_readers_.pop_back();
      return conn;
    }
    // Open a new one outside the lock (it reads the file); reserve its slot
    // first so concurrent callers do not overshoot the pool size.
    ++opened_readers_;
    lock.unlock();
    Result<std::unique_ptr<Connection>> opened = Connection::Open(
        path_, Connection::Role::kReader, /*create=*/false, durable_);
    lock.lock();
    if (!opened.ok()) {
      --opened_readers_;
      readers_cv_.notify_one();
      return opened.status();
    }
    Connection* conn = opened->get();
    readers_.push_back(std::move(opened).value());  // capacity reserved
    return conn;
  }

  void ReleaseReader(Connection* conn) {
    {
      std::lock_guard<std::mutex> lock(readers_mu_);
      // Capacity reserved in the constructor: cannot throw.
      idle_readers_.push_back(conn);
    }
    readers_cv_.notify_one();
  }

  // --- schema and fs_info ---

  // REQUIRES: a transaction is open on `conn` (one snapshot for the checks).
  Result<int> ReadSchemaVersion(Connection& conn) {
    auto count = [&conn](Sql sql) -> Result<int64_t> {
      NS_ASSIGN_OR_RETURN(Stmt stmt, conn.Prepare(sql));
      const int rc = stmt.Step();
      if (rc != SQLITE_ROW) return SqliteStatus(rc, conn.db(), "SchemaVersion");
      return stmt.Int(0);
    };
    NS_ASSIGN_OR_RETURN(int64_t has_table, count(Sql::kHasSchemaVersionTable));
    if (has_table == 0) {
      NS_ASSIGN_OR_RETURN(int64_t tables, count(Sql::kCountTables));
      if (tables == 0) return 0;
      return Status::Corruption(
          fmt::format("{} is not a namespace database", path_),
          "it has tables but no schema_version table");
    }
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn.Prepare(Sql::kMaxSchemaVersion));
    const int rc = stmt.Step();
    if (rc != SQLITE_ROW) return SqliteStatus(rc, conn.db(), "SchemaVersion");
    if (stmt.IsNull(0)) {
      // Migrations add their row in their own transaction, so an empty
      // table means someone else made it.
      return Status::Corruption(
          fmt::format("{} is not a namespace database", path_),
          "its schema_version table is empty");
    }
    const int64_t v = stmt.Int(0);
    if (v < 0 || v > std::numeric_limits<int>::max()) {
      return Status::Corruption(
          fmt::format("{}: bad schema version {}", path_, v));
    }
    return static_cast<int>(v);
  }

  Status LoadVerifier() {
    uint64_t verifier = 0;
    NS_RETURN_IF_ERROR(WithReader([&verifier](Connection& conn) -> Status {
      NS_ASSIGN_OR_RETURN(Stmt stmt, conn.Prepare(Sql::kVerifier));
      const int rc = stmt.Step();
      if (rc == SQLITE_DONE) {
        return Status::Corruption("fs_info has no row",
                                  "the namespace was not initialised fully");
      }
      if (rc != SQLITE_ROW) return SqliteStatus(rc, conn.db(), "Start");
      verifier = static_cast<uint64_t>(stmt.Int(0));
      return Status::Ok();
    }));
    verifier_.store(verifier, std::memory_order_relaxed);
    verifier_loaded_.store(true, std::memory_order_release);
    return Status::Ok();
  }

  const std::string path_;
  const bool durable_;
  AclCache acl_cache_;
  const int max_readers_;

  // Used only by the writer thread once it runs (and before, by Open).
  std::unique_ptr<Connection> writer_;
  // The group being committed and its functions' results; writer thread
  // only.
  std::vector<Request*> batch_;
  std::vector<Status> results_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request*> queue_;  // guarded by mu_
  bool stopping_ = false;       // guarded by mu_
  std::thread writer_thread_;
  std::thread::id writer_id_;  // set before the backend is handed out

  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<Connection>> readers_;  // guarded by readers_mu_
  std::vector<Connection*> idle_readers_;             // guarded by readers_mu_
  int opened_readers_ = 0;                            // guarded by readers_mu_

  std::atomic<uint64_t> verifier_{0};
  std::atomic<bool> verifier_loaded_{false};
};

// ---------------------------------------------------------------------------
// Opening.

constexpr std::string_view kScheme = "sqlite:";

// The file name in a sqlite: URI. Accepted:
//   sqlite:///abs/path.db   sqlite:/abs/path.db   sqlite:relative/path.db
// The path is taken literally (no %-decoding).
Result<std::string> ParseUri(const std::string& uri) {
  auto invalid = [&uri](std::string_view why) {
    return Status::Invalid(
        fmt::format("bad SQLite URI {:?}: {}", uri, why),
        "expected sqlite:///absolute/path.db or sqlite:relative/path.db");
  };
  if (uri.compare(0, kScheme.size(), kScheme) != 0) {
    return invalid("it does not start with sqlite:");
  }
  std::string path = uri.substr(kScheme.size());
  if (path.compare(0, 2, "//") == 0) {
    // sqlite://AUTHORITY/path: only an empty authority makes sense.
    path.erase(0, 2);
    if (path.empty()) return invalid("no file name");
    if (path[0] != '/') {
      return invalid("a host is not allowed (use three slashes)");
    }
  }
  if (path.empty()) return invalid("no file name");
  if (path.find('\0') != std::string::npos) return invalid("NUL in the path");
  if (path.find_first_of("?#") != std::string::npos) {
    return invalid("query strings and fragments are not supported");
  }
  if (path.back() == '/') return invalid("the path names a directory");
  if (path == ":memory:" || path.compare(0, 5, "file:") == 0) {
    // In-memory databases are per connection (readers would see nothing);
    // SQLite's own file: URIs would bypass the checks here.
    return invalid("in-memory and file: names are not supported");
  }
  return path;
}

Result<std::unique_ptr<Backend>> OpenSqliteBackendImpl(
    const std::string& uri, const NamespaceOptions& options) {
  if (sqlite3_threadsafe() == 0) {
    return Status::Unavailable("the SQLite library was built without threads",
                               "the backend needs SQLITE_THREADSAFE >= 1");
  }
  NS_ASSIGN_OR_RETURN(std::string path, ParseUri(uri));
  // A relative name gets "./" so that SQLite (built with SQLITE_USE_URI)
  // never reads it as a URI of its own.
  if (path[0] != '/') path = "./" + path;

  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if ((err == ENOENT || err == ENOTDIR) && !options.create_if_missing) {
      // Checked here for the message; the open below also omits
      // SQLITE_OPEN_CREATE, so no file appears even if one is removed
      // between the two.
      return Status::NotFound(fmt::format("no namespace database at {}", path),
                              fmt::format("run `nsadmin init --db {}`", uri));
    }
    if (err != ENOENT) {
      return Status::Unavailable(fmt::format("cannot open {}", path),
                                 std::strerror(err));
    }
  } else if (S_ISDIR(st.st_mode)) {
    return Status::Invalid(fmt::format("{} is a directory", path),
                           "name the database file inside it");
  }

  NS_ASSIGN_OR_RETURN(
      std::unique_ptr<Connection> writer,
      Connection::Open(path, Connection::Role::kWriter,
                       options.create_if_missing, options.durable));
  if (sqlite3_db_readonly(writer->db(), "main") == 1) {
    // SQLite silently falls back to read-only for a write-protected file;
    // every Write() would then fail with a less helpful message.
    return Status::Unavailable(fmt::format("{} is read-only", path),
                               "the namespace needs write access to the "
                               "file and its directory");
  }
  // Only a database that already holds a namespace is put in WAL mode
  // here. An empty file stays untouched until the first migration (a refused
  // open must not write to it), and someone else's database is never
  // converted (SchemaVersion() reports it as Corruption).
  NS_ASSIGN_OR_RETURN(std::string ours,
                      writer->QueryText("SELECT EXISTS (SELECT 1 FROM "
                                        "sqlite_master WHERE type = 'table' "
                                        "AND name = 'schema_version')"));
  if (ours == "1") NS_RETURN_IF_ERROR(writer->EnableWal());

  auto backend =
      std::make_unique<SqliteBackend>(path, options, std::move(writer));
  NS_RETURN_IF_ERROR(backend->StartWriter());
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace

Result<std::unique_ptr<Backend>> OpenSqliteBackend(
    const std::string& uri, const NamespaceOptions& options) {
  try {
    Result<std::unique_ptr<Backend>> backend =
        OpenSqliteBackendImpl(uri, options);
    if (!backend.ok() && backend.status().IsRetry()) {
      // Another process kept the file locked beyond busy_timeout. Retry is
      // internal to the library; to the caller the database is busy.
      return Status::Unavailable(fmt::format("cannot open {}", uri),
                                 backend.status().ToString());
    }
    return backend;
  } catch (...) {
    return Status::IOError(fmt::format("cannot open {}", uri), ExceptionText());
  }
}

}  // namespace ns
