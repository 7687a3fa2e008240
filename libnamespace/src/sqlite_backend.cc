// The SQLite backend: the embedded default namespace store.
//
// Design (see docs/ARCHITECTURE.md for the whole picture):
//
// - One writer connection, used by one thread at a time: the leader.
//   SQLite allows one writer per database at a time anyway; owning it in
//   one place lets concurrent Write() calls share a transaction instead of
//   queueing on the file lock.
// - Group commit: Write() enqueues its function. If no caller leads, it
//   becomes the leader and, on its own thread, takes everything queued (up
//   to kMaxGroup; later arrivals join before the COMMIT), runs
//     BEGIN IMMEDIATE
//       SAVEPOINT w; fn_1; RELEASE w   (or ROLLBACK TO w; RELEASE w)
//       ...
//       SAVEPOINT w; fn_n; RELEASE w
//     COMMIT
//   and answers every caller in it; it goes on until its own request is
//   answered, then makes the first still-queued caller leader (waking just
//   that one) and returns. The others (followers) sleep until answered or
//   made leader. In WAL mode with synchronous=FULL the COMMIT costs one
//   fsync of the WAL, so n callers pay for one fsync; the savepoints keep
//   one caller's failure from undoing the others' work. A dedicated writer
//   thread would cost each write two hand-offs (wake the writer, be woken
//   by it); here the leader's own write costs none, and a follower's one.
// - Commit delay: a durable group smaller than the number of callers seen
//   writing together lately waits (kCommitDelay at most, its transaction
//   open) for one more before it COMMITs, so that callers who each come
//   back a round trip after their answer share fsyncs instead of taking
//   turns (sqlite_writer.cc, WaitForMore).
// - The durable writer opens the WAL through the ns-walbuf VFS
//   (sqlite_wal_vfs.h): a commit's frames reach the file in one pwrite.
// - Deferred durability (NamespaceOptions::defer_sync): the writer runs
//   synchronous=NORMAL, so a COMMIT writes the WAL but does not sync it,
//   and each COMMIT gets the next commit ticket. A syncer thread
//   (sqlite_syncer.cc, RunSyncer) fdatasyncs the WAL whenever commits are
//   waiting, one sync for every commit made before it started, then runs
//   the WhenDurable callbacks those commits unblock, in ticket order. The
//   leader is free again as soon as its COMMIT returns: the next group's
//   SQL overlaps this one's sync, and no caller sleeps through an fsync.
// - Readers: a pool of connections (opened lazily, at most pool size), each
//   lent to one Read() at a time. WAL lets them read a consistent snapshot
//   while the writer commits, so reads never wait for writes.
// - Every connection is opened SQLITE_OPEN_NOMUTEX: it is only ever used by
//   one thread at a time (the leader, or the Read() that borrowed it), so
//   SQLite's own per-connection mutex would be pure overhead.
// - Prepared statements are cached per connection, keyed by the Sql enum.
// - Other processes (nsh, nsadmin) may open the same file: busy_timeout
//   makes SQLite wait for their locks, and what still comes back BUSY is
//   retried here with backoff for up to kRetryDeadline. Retry never reaches
//   a caller.
// - No exception leaves this file: a caller's function that throws fails
//   with IOError, and std::bad_alloc anywhere becomes IOError too.

#include <fmt/format.h>
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
#include "libnamespace/src/sqlite_backend_internal.h"
#include "libnamespace/src/sqlite_errors.h"

namespace ns {
namespace sqlite_internal {

Status SqliteBackend::Write(const TxnFn& fn) {
  if (LeadingHere()) {
    // A Write inside a Write would wait for the leader, which is this
    // thread running the outer function: a deadlock.
    return Status::Invalid("Write() called inside a Write() transaction");
  }
  try {
    Request request;
    request.fn = &fn;
    Status status = Submit(&request);
    NoteTicket(request.ticket);
    return status;
  } catch (...) {
    return Status::IOError("sqlite Write", ExceptionText());
  }
}

Status SqliteBackend::Read(const TxnFn& fn) {
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

uint64_t SqliteBackend::CookieVerifier() {
  if (!verifier_loaded_.load(std::memory_order_acquire)) {
    // Start() normally loaded it; if it was skipped, try now (0 if that
    // fails: this method has no way to report an error).
    (void)LoadVerifier();
  }
  return verifier_.load(std::memory_order_relaxed);
}

Result<int> SqliteBackend::SchemaVersion() {
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

Status SqliteBackend::ApplyMigration(int version, std::string_view name,
                                     std::string_view sql) {
  if (LeadingHere()) {
    return Status::Invalid("ApplyMigration() called inside a transaction");
  }
  try {
    const std::string script(sql);
    const std::string label = fmt::format("migration {} ({})", version, name);
    Request request;
    request.job = [&](Connection& conn) {
      return RunMigration(conn, version, name, script, label);
    };
    NS_RETURN_IF_ERROR(Submit(&request));
    return WaitDurable(request.ticket);
  } catch (...) {
    return Status::IOError("sqlite ApplyMigration", ExceptionText());
  }
}

Status SqliteBackend::Start() {
  try {
    return LoadVerifier();
  } catch (...) {
    return Status::IOError("sqlite Start", ExceptionText());
  }
}

Status SqliteBackend::WithReader(const std::function<Status(Connection&)>& fn) {
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

Result<Connection*> SqliteBackend::AcquireReader() {
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

void SqliteBackend::ReleaseReader(Connection* conn) {
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    // Capacity reserved in the constructor: cannot throw.
    idle_readers_.push_back(conn);
  }
  readers_cv_.notify_one();
}

Result<int> SqliteBackend::ReadSchemaVersion(Connection& conn) {
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

Status SqliteBackend::LoadVerifier() {
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

namespace {

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
                       options.create_if_missing, options.durable,
                       options.durable && options.defer_sync));
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

  return std::unique_ptr<Backend>(
      std::make_unique<SqliteBackend>(path, options, std::move(writer)));
}

}  // namespace
}  // namespace sqlite_internal

Result<std::unique_ptr<Backend>> OpenSqliteBackend(
    const std::string& uri, const NamespaceOptions& options) {
  try {
    Result<std::unique_ptr<Backend>> backend =
        sqlite_internal::OpenSqliteBackendImpl(uri, options);
    if (!backend.ok() && backend.status().IsRetry()) {
      // Another process kept the file locked beyond busy_timeout. Retry is
      // internal to the library; to the caller the database is busy.
      return Status::Unavailable(fmt::format("cannot open {}", uri),
                                 backend.status().ToString());
    }
    return backend;
  } catch (...) {
    return Status::IOError(fmt::format("cannot open {}", uri),
                           sqlite_internal::ExceptionText());
  }
}

}  // namespace ns
