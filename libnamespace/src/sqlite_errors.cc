#include "libnamespace/src/sqlite_errors.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace ns {
namespace {

// The file the connection has open, for messages an operator acts on. Empty
// for a temporary or in-memory database, or without a connection.
std::string DbPath(sqlite3* db) {
  if (db == nullptr) return "the database";
  const char* path = sqlite3_db_filename(db, "main");
  if (path == nullptr || *path == '\0') return "the database";
  return path;
}

// "ctx: message" plus the OS error where SQLite recorded one: "disk I/O
// error" alone does not tell EIO from EACCES.
std::string Detail(int rc, sqlite3* db, std::string_view ctx) {
  std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const int sys = db != nullptr ? sqlite3_system_errno(db) : 0;
  const int primary = rc & 0xff;
  if (sys != 0 && (primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN ||
                   primary == SQLITE_FULL)) {
    msg += fmt::format(" ({})", std::strerror(sys));
  }
  if (ctx.empty()) return msg;
  return fmt::format("{}: {}", ctx, msg);
}

}  // namespace

Status SqliteStatus(int rc, sqlite3* db, std::string_view ctx) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) {
    return Status::Ok();
  }
  // sqlite3_step and friends return only the primary code unless extended
  // codes are enabled; the connection always remembers the extended one,
  // which is what tells a UNIQUE violation from a NOT NULL one.
  int code = rc;
  if (db != nullptr && code == (code & 0xff)) {
    const int extended = sqlite3_extended_errcode(db);
    if ((extended & 0xff) == code) code = extended;
  }
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    // A WAL lock that could not be taken after SQLite's own retries: as
    // transient as BUSY.
    case SQLITE_PROTOCOL:
      return Status::Retry(ctx, Detail(code, db, {}));
    case SQLITE_CONSTRAINT:
      if (code == SQLITE_CONSTRAINT_UNIQUE ||
          code == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status::Exists(ctx, Detail(code, db, {}));
      }
      // NOT NULL, CHECK, ...: a bug in the caller or a damaged schema,
      // nothing a POSIX caller could fix by choosing another name.
      return Status::IOError(ctx, Detail(code, db, {}));
    case SQLITE_NOTADB:
      return Status::Corruption(
          fmt::format("{} is not a namespace database", DbPath(db)),
          Detail(code, db, ctx));
    case SQLITE_CORRUPT:
      return Status::Corruption(
          fmt::format("{}: database file is corrupt", DbPath(db)),
          Detail(code, db, ctx));
    case SQLITE_CANTOPEN: {
      const int sys = db != nullptr ? sqlite3_system_errno(db) : 0;
      if (sys == ENOENT || sys == ENOTDIR) {
        return Status::NotFound(
            fmt::format("no namespace database at {}", DbPath(db)),
            Detail(code, db, ctx));
      }
      return Status::Unavailable(fmt::format("cannot open {}", DbPath(db)),
                                 Detail(code, db, ctx));
    }
    case SQLITE_FULL:
      return Status::IOError(
          "disk full",
          fmt::format("{} ({})", Detail(code, db, ctx), DbPath(db)));
    default:
      return Status::IOError(ctx, Detail(code, db, {}));
  }
}

}  // namespace ns
