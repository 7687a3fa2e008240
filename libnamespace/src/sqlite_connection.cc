// The SQLite backend's connections (Connection::Open) and the helpers its
// retry loops and exception barriers share.

#include "libnamespace/src/sqlite_connection.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include "libnamespace/src/sqlite_errors.h"
#include "libnamespace/src/sqlite_wal_vfs.h"

namespace ns {
namespace sqlite_internal {

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path,
                                                     Role role, bool create,
                                                     bool durable,
                                                     bool defer_sync) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (create) flags |= SQLITE_OPEN_CREATE;
  // The durable writer writes each commit's WAL frames with one pwrite
  // (sqlite_wal_vfs.h); it needs the COMMIT's sync, so never without it.
  const char* vfs =
      role == Role::kWriter && durable ? WalBufferVfsName() : nullptr;
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, vfs);
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
    // NORMAL (deferred): no sync at COMMIT; the backend's syncer fdatasyncs
    // the WAL, and SQLite still syncs before each checkpoint and when the
    // WAL is reused, so the database stays consistent either way.
    pragmas += !durable     ? "PRAGMA synchronous = OFF;"
               : defer_sync ? "PRAGMA synchronous = NORMAL;"
                            : "PRAGMA synchronous = FULL;";
    // Freed pages are not zeroed (Debian's SQLite zeroes them by default):
    // a released batch of inline bytes then frees whole pages without
    // writing them to the WAL again. A removed file's bytes stay in free
    // pages until reused, as they stay in free blocks of a local file
    // system.
    pragmas += "PRAGMA secure_delete = OFF;";
  } else {
    // A Read() function that tries to write fails instead of taking the
    // write lock behind the writer connection's back.
    pragmas += "PRAGMA query_only = ON;";
  }
  NS_RETURN_IF_ERROR(conn->ExecScript(pragmas, "configure connection"));
  return conn;
}

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
// exception may cross into the group commit's leader or the core).
Status CallFn(const TxnFn& fn, Transaction& txn) {
  try {
    return fn(txn);
  } catch (...) {
    return Status::IOError("exception in transaction function",
                           ExceptionText());
  }
}

}  // namespace sqlite_internal
}  // namespace ns
