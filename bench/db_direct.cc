#include "bench/db_direct.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <string_view>

#include <fmt/core.h>
#include <pqxx/pqxx>

namespace nsbench {
namespace {

using Clock = std::chrono::steady_clock;

ns::TimeNs WallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// --- SQLite: a connection and statements that finalize themselves --------

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using SqliteHandle = std::unique_ptr<sqlite3, SqliteCloser>;
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

ns::Status SqliteError(sqlite3* db, std::string_view what) {
  return ns::Status::IOError(what, sqlite3_errmsg(db));
}

ns::Result<SqliteHandle> OpenSqlite(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
  SqliteHandle db(raw);
  if (rc != SQLITE_OK) {
    return ns::Status::IOError("open " + path,
                               raw ? sqlite3_errmsg(raw) : "out of memory");
  }
  // The library may be mid-commit on its own connection: wait, do not fail.
  sqlite3_busy_timeout(db.get(), 10000);
  return db;
}

ns::Status Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    ns::Status s = ns::Status::IOError(sql, err ? err : "?");
    sqlite3_free(err);
    return s;
  }
  return ns::Status::Ok();
}

ns::Result<Stmt> Prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw,
                         nullptr) != SQLITE_OK) {
    return SqliteError(db, sql);
  }
  return Stmt(raw);
}

// Runs a bound statement that returns no rows and resets it for reuse.
ns::Status Step(sqlite3* db, sqlite3_stmt* s, std::string_view what) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return SqliteError(db, what);
  return ns::Status::Ok();
}

// The statements of one create, shared by the bulk fill and the raw loop so
// both write what the library writes.
struct CreateStmts {
  Stmt insert_inode;   // ?1 type, ?2 mode, ?3 nlink, ?4 time, ?5 parent
  Stmt insert_dirent;  // ?1 parent, ?2 name, ?3 child, ?4 type
  Stmt touch_dir;      // ?1 ino, ?2 time, ?3 change delta, ?4 nlink delta
};

ns::Result<CreateStmts> PrepareCreate(sqlite3* db) {
  CreateStmts c;
  NS_ASSIGN_OR_RETURN(
      c.insert_inode,
      Prepare(db,
              "INSERT INTO inodes (type, mode, nlink, uid, gid, atime_ns, "
              "mtime_ns, ctime_ns, btime_ns, parent) "
              "VALUES (?1, ?2, ?3, 0, 0, ?4, ?4, ?4, ?4, ?5)"));
  NS_ASSIGN_OR_RETURN(c.insert_dirent,
                      Prepare(db,
                              "INSERT INTO dirents (parent, name, child, type) "
                              "VALUES (?1, ?2, ?3, ?4)"));
  NS_ASSIGN_OR_RETURN(
      c.touch_dir,
      Prepare(db,
              "UPDATE inodes SET mtime_ns = ?2, ctime_ns = ?2, "
              "change = change + ?3, nlink = nlink + ?4 WHERE ino = ?1"));
  return c;
}

// Inserts the inode and its entry; returns the new inode id.
ns::Result<ns::InodeId> InsertNode(sqlite3* db, CreateStmts& c,
                                   ns::InodeId parent, std::string_view name,
                                   ns::FileType type, ns::TimeNs now) {
  const bool dir = type == ns::FileType::kDirectory;
  sqlite3_bind_int(c.insert_inode.get(), 1, static_cast<int>(type));
  sqlite3_bind_int(c.insert_inode.get(), 2, dir ? 0755 : 0644);
  sqlite3_bind_int(c.insert_inode.get(), 3, dir ? 2 : 1);
  sqlite3_bind_int64(c.insert_inode.get(), 4, now);
  sqlite3_bind_int64(c.insert_inode.get(), 5,
                     dir ? static_cast<sqlite3_int64>(parent) : 0);
  NS_RETURN_IF_ERROR(Step(db, c.insert_inode.get(), "insert inode"));
  const sqlite3_int64 ino = sqlite3_last_insert_rowid(db);
  sqlite3_bind_int64(c.insert_dirent.get(), 1,
                     static_cast<sqlite3_int64>(parent));
  sqlite3_bind_text(c.insert_dirent.get(), 2, name.data(),
                    static_cast<int>(name.size()), SQLITE_STATIC);
  sqlite3_bind_int64(c.insert_dirent.get(), 3, ino);
  sqlite3_bind_int(c.insert_dirent.get(), 4, static_cast<int>(type));
  NS_RETURN_IF_ERROR(Step(db, c.insert_dirent.get(), "insert dirent"));
  return static_cast<ns::InodeId>(ino);
}

ns::Status TouchDir(sqlite3* db, CreateStmts& c, ns::InodeId dir,
                    ns::TimeNs now, int64_t changes, int nlink_delta) {
  sqlite3_bind_int64(c.touch_dir.get(), 1, static_cast<sqlite3_int64>(dir));
  sqlite3_bind_int64(c.touch_dir.get(), 2, now);
  sqlite3_bind_int64(c.touch_dir.get(), 3, changes);
  sqlite3_bind_int(c.touch_dir.get(), 4, nlink_delta);
  return Step(db, c.touch_dir.get(), "update directory");
}

ns::Result<ns::InodeId> PopulateSqlite(const std::string& path,
                                       const std::string& dir_name,
                                       uint64_t entries) {
  NS_ASSIGN_OR_RETURN(SqliteHandle db, OpenSqlite(path));
  // A big page cache keeps the two indexes of dirents in memory while a
  // million rows go in; durability of the fill itself does not matter (it
  // is set-up, and it is one transaction either way).
  NS_RETURN_IF_ERROR(Exec(db.get(),
                          "PRAGMA cache_size = -262144; "
                          "PRAGMA synchronous = NORMAL;"));
  NS_ASSIGN_OR_RETURN(CreateStmts c, PrepareCreate(db.get()));
  NS_RETURN_IF_ERROR(Exec(db.get(), "BEGIN IMMEDIATE"));
  auto fill = [&]() -> ns::Result<ns::InodeId> {
    const ns::TimeNs now = WallNs();
    NS_ASSIGN_OR_RETURN(ns::InodeId dir,
                        InsertNode(db.get(), c, ns::kRootInode, dir_name,
                                   ns::FileType::kDirectory, now));
    NS_RETURN_IF_ERROR(TouchDir(db.get(), c, ns::kRootInode, now, 1, 1));
    std::string name;
    for (uint64_t i = 1; i <= entries; ++i) {
      name = fmt::format("e{}", i);
      NS_ASSIGN_OR_RETURN(
          ns::InodeId ino,
          InsertNode(db.get(), c, dir, name, ns::FileType::kRegular, now));
      (void)ino;
    }
    NS_RETURN_IF_ERROR(
        TouchDir(db.get(), c, dir, now, static_cast<int64_t>(entries), 0));
    return dir;
  };
  ns::Result<ns::InodeId> dir = fill();
  if (!dir.ok()) {
    (void)Exec(db.get(), "ROLLBACK");
    return dir;
  }
  NS_RETURN_IF_ERROR(Exec(db.get(), "COMMIT"));
  // Fresh statistics, as a long-running database would have.
  NS_RETURN_IF_ERROR(Exec(db.get(), "ANALYZE"));
  return dir;
}

// --- PostgreSQL ------------------------------------------------------------

ns::Result<ns::InodeId> PopulatePostgres(const std::string& uri,
                                         const std::string& dir_name,
                                         uint64_t entries) {
  try {
    pqxx::connection conn(uri);
    pqxx::work w(conn);
    const ns::TimeNs now = WallNs();
    const int64_t n = static_cast<int64_t>(entries);
    const int64_t dir =
        w.exec("SELECT nextval('inode_ino_seq')")[0][0].as<int64_t>();
    w.exec(fmt::format(
        "INSERT INTO inodes (ino, type, mode, nlink, uid, gid, atime_ns, "
        "mtime_ns, ctime_ns, btime_ns, change, parent) "
        "VALUES ({0}, 2, 493, 2, 0, 0, {1}, {1}, {1}, {1}, {2}, 1)",
        dir, now, 1 + n));
    w.exec(
        fmt::format("INSERT INTO dirents (parent, name, child, type, cookie) "
                    "VALUES (1, {}, {}, 2, nextval('dirent_cookie_seq'))",
                    w.quote(dir_name), dir));
    // The root gains a subdirectory: recorded the way the library records
    // it, as a delta, not by updating the root row.
    w.exec(
        fmt::format("INSERT INTO dir_deltas (parent, nlink_delta, time_ns) "
                    "VALUES (1, 1, {})",
                    now));
    // Reserve n ids of each sequence in one step instead of n nextval()
    // calls: ids base+1..base+n are ours. Sessions that cached ids earlier
    // (CACHE 32) hold ids below base, so nothing collides. Not atomic with
    // other nextval callers: run while the namespace is otherwise idle.
    const int64_t ino_base = w.exec(fmt::format(
        "SELECT setval('inode_ino_seq', nextval('inode_ino_seq') "
        "+ {}) - {}",
        n, n))[0][0]
                                 .as<int64_t>();
    const int64_t cookie_base =
        w.exec(fmt::format("SELECT setval('dirent_cookie_seq', "
                           "nextval('dirent_cookie_seq') + {}) - {}",
                           n, n))[0][0]
            .as<int64_t>();
    w.exec(fmt::format(
        "INSERT INTO inodes (ino, type, mode, nlink, uid, gid, atime_ns, "
        "mtime_ns, ctime_ns, btime_ns) "
        "SELECT {0} + g, 1, 420, 1, 0, 0, {1}, {1}, {1}, {1} "
        "FROM generate_series(1, {2}) g",
        ino_base, now, n));
    w.exec(
        fmt::format("INSERT INTO dirents (parent, name, child, type, cookie) "
                    "SELECT {0}, 'e' || g, {1} + g, 1, {2} + g "
                    "FROM generate_series(1, {3}) g",
                    dir, ino_base, cookie_base, n));
    w.commit();
    // What autovacuum would do to a directory that has been there a while,
    // done now so the measurement does not pay for it: statistics, hint
    // bits and the visibility map set (pages all-visible).
    pqxx::nontransaction a(conn);
    a.exec("VACUUM (ANALYZE) inodes, dirents");
    return static_cast<ns::InodeId>(dir);
  } catch (const std::exception& e) {
    return ns::Status::IOError("postgresql populate " + dir_name, e.what());
  }
}

}  // namespace

ns::Result<DbTarget> ParseDbTarget(const std::string& uri) {
  DbTarget t;
  t.uri = uri;
  if (uri.starts_with("postgresql://") || uri.starts_with("postgres://")) {
    t.kind = DbTarget::Kind::kPostgres;
    return t;
  }
  if (uri.starts_with("sqlite:")) {
    t.kind = DbTarget::Kind::kSqlite;
    std::string rest = uri.substr(7);
    // sqlite:///abs/path -> /abs/path; sqlite:rel/path -> rel/path.
    if (rest.starts_with("//")) rest = rest.substr(2);
    if (const size_t q = rest.find('?'); q != std::string::npos) {
      rest.resize(q);
    }
    if (rest.empty()) return ns::Status::Invalid(uri, "no file path");
    t.sqlite_path = rest;
    return t;
  }
  return ns::Status::Invalid(uri, "not a sqlite: or postgresql:// URI");
}

ns::Result<ns::InodeId> PopulateDirectory(const DbTarget& db,
                                          const std::string& dir_name,
                                          uint64_t entries) {
  if (db.kind == DbTarget::Kind::kSqlite) {
    return PopulateSqlite(db.sqlite_path, dir_name, entries);
  }
  return PopulatePostgres(db.uri, dir_name, entries);
}

ns::Result<RawResult> RawSqliteCreates(const DbTarget& db, ns::InodeId parent,
                                       uint64_t ops, double max_seconds,
                                       bool one_txn) {
  if (db.kind != DbTarget::Kind::kSqlite) {
    return ns::Status::Invalid("raw mode",
                               "SQLite only; PostgreSQL's ceiling is pgbench");
  }
  NS_ASSIGN_OR_RETURN(SqliteHandle h, OpenSqlite(db.sqlite_path));
  sqlite3* conn = h.get();
  // What NamespaceOptions{durable = true} sets: in WAL mode, FULL syncs the
  // WAL at every commit.
  NS_RETURN_IF_ERROR(Exec(conn,
                          "PRAGMA journal_mode = WAL; "
                          "PRAGMA synchronous = FULL;"));
  NS_ASSIGN_OR_RETURN(CreateStmts c, PrepareCreate(conn));
  NS_ASSIGN_OR_RETURN(Stmt begin, Prepare(conn, "BEGIN IMMEDIATE"));
  NS_ASSIGN_OR_RETURN(Stmt commit, Prepare(conn, "COMMIT"));

  RawResult r;
  r.mode = one_txn ? "raw_create_onetxn" : "raw_create_txn";
  r.latency_ns.reserve(ops);
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(max_seconds));
  const std::string prefix = fmt::format("raw{}_", one_txn ? "b" : "t");
  std::string name;
  if (one_txn) NS_RETURN_IF_ERROR(Step(conn, begin.get(), "begin"));
  for (uint64_t i = 0; i < ops; ++i) {
    const auto t0 = Clock::now();
    if (t0 >= deadline) break;
    name = prefix + std::to_string(i);
    if (!one_txn) NS_RETURN_IF_ERROR(Step(conn, begin.get(), "begin"));
    const ns::TimeNs now = WallNs();
    NS_ASSIGN_OR_RETURN(
        ns::InodeId ino,
        InsertNode(conn, c, parent, name, ns::FileType::kRegular, now));
    (void)ino;
    NS_RETURN_IF_ERROR(TouchDir(conn, c, parent, now, 1, 0));
    if (!one_txn) NS_RETURN_IF_ERROR(Step(conn, commit.get(), "commit"));
    const int64_t ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0)
            .count();
    r.latency_ns.push_back(
        static_cast<uint32_t>(std::min<int64_t>(ns, UINT32_MAX)));
    ++r.ops;
  }
  if (one_txn) NS_RETURN_IF_ERROR(Step(conn, commit.get(), "commit"));
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

}  // namespace nsbench
