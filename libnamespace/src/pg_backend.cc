// The PostgreSQL backend: Backend and Transaction over libpqxx 6.
//
// Shape:
//   - ConnPool hands out connections (made lazily, at most pool_size), each
//     with every statement of Statements() registered by name. libpqxx 6
//     sends the PREPARE on a statement's first use on a connection, so
//     statements naming tables that a migration has yet to create cost
//     nothing until the schema exists.
//   - Read runs fn on the connection's pqxx::nontransaction: every
//     statement is its own snapshot and one round trip, with no
//     BEGIN/COMMIT.
//   - Write runs fn in one READ COMMITTED transaction that PgTxn opens and
//     ends itself (on the same nontransaction), because on a loopback
//     connection the context switches of each round trip are most of a
//     write's CPU time (measured with perf): BEGIN travels with the first
//     statement, and statements whose result the caller does not need
//     (DirChanged, InsertInode with an inode number reserved in advance,
//     ...) travel with the next statement or with COMMIT. A create is three
//     round trips instead of six. A Write that changed anything also
//     inserts a commit token with its COMMIT, so that a COMMIT cut off by
//     a lost connection is looked up on whichever server is primary now
//     instead of reported as "outcome unknown" (pg_commit_token.h).
//   - RunOnConnection retries serialization failures and deadlocks (Retry)
//     with jittered backoff, and rides out a lost or restarting server
//     (Unavailable) on fresh connections for up to kUnavailableBudget.
//   - The hot directory: DirChanged appends to dir_deltas instead of
//     updating the directory row, so concurrent creates in one directory
//     only share a FOR KEY SHARE lock on it. Readers add the pending deltas
//     in the same statement; a background thread folds them into the row.
//   - Every exception is caught here and translated by PgStatus
//     (pg_errors.h); none reaches the core.

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "libnamespace/src/backend.h"
#include "libnamespace/src/pg_backend_internal.h"
#include "libnamespace/src/pg_commit_token.h"
#include "libnamespace/src/pg_connection.h"
#include "libnamespace/src/pg_errors.h"
#include "libnamespace/src/pg_statements.h"

namespace ns {
namespace pg_internal {
namespace {

// What a Read or Write attempt ends with: fn's status unless a statement
// failed in a way that decides the attempt (the database's view wins over
// what fn made of it: a conflict or lost server means retry, and a failed
// statement in a Write means nothing will commit).
Status Outcome(const Status& fn_status, const Status& first_error) {
  if (first_error.IsRetry() || first_error.IsUnavailable()) return first_error;
  if (!fn_status.ok()) return fn_status;
  return first_error;
}

Status CallFn(const TxnFn& fn, PgTxn& txn) {
  try {
    return fn(txn);
  } catch (const std::exception& e) {
    return Status::IOError("transaction function threw", e.what());
  } catch (...) {
    return Status::IOError("transaction function threw", "unknown exception");
  }
}

}  // namespace

Status PgBackend::Connect() {
  try {
    pool_.Release(pool_.Acquire(), false);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Unavailable(
        "cannot connect to PostgreSQL at " + SafeUri(pool_.uri()),
        PgMessage(e));
  }
}

Status PgBackend::Write(const TxnFn& fn) {
  const Clock::time_point start = Clock::now();
  for (;;) {
    std::optional<int64_t> doubt;  // the token of an in-doubt COMMIT
    const Status s = RunOnConnection("pg write", [&](PgConn& c) -> Status {
      doubt.reset();
      pqxx::nontransaction* n = nullptr;
      const Status opened = PgGuard("pg write", [&] {
        n = &c.Txn();
        return Status::Ok();
      });
      if (!opened.ok()) return opened;
      PgTxn txn(*n, /*writable=*/true, &inos_, &acl_cache_,
                tokens_.load());
      const Status fs = Outcome(CallFn(fn, txn), txn.first_error());
      if (!fs.ok()) {
        txn.Rollback();
        return fs;
      }
      const Status cs = txn.Commit();
      if (txn.in_doubt()) doubt = txn.token();
      return cs;
    });
    if (!doubt) return s;
    NS_ASSIGN_OR_RETURN(const bool committed, TokenCommitted(*doubt, start));
    if (committed) return Status::Ok();
    if (Clock::now() - start >= kUnavailableBudget) {
      return Status::Unavailable(
          "pg write",
          "connection lost at COMMIT, which did not happen; no time left "
          "to run the transaction again");
    }
  }
}

Status PgBackend::Read(const TxnFn& fn) {
  return RunOnConnection("pg read", [&](PgConn& c) -> Status {
    pqxx::nontransaction* n = nullptr;
    const Status opened = PgGuard("pg read", [&] {
      n = &c.Txn();
      return Status::Ok();
    });
    if (!opened.ok()) return opened;
    PgTxn txn(*n, /*writable=*/false, &inos_, &acl_cache_);
    return Outcome(CallFn(fn, txn), txn.first_error());
  });
}

Result<int> PgBackend::SchemaVersion() {
  int version = 0;
  const Status s = RunOnConnection("pg schema version", [&](PgConn& c) {
    return PgGuard("pg schema version", [&]() -> Status {
      NS_ASSIGN_OR_RETURN(version, ReadVersion(c.Txn()));
      return Status::Ok();
    });
  });
  if (!s.ok()) return s;
  return version;
}

Status PgBackend::ApplyMigration(int version, std::string_view name,
                                 std::string_view sql) {
  const std::string ctx = "pg migration " + std::to_string(version);
  return RunOnConnection(ctx, [&](PgConn& c) {
    return PgGuard(ctx, [&]() -> Status {
      c.EndTxn();  // one transaction object per connection at a time
      pqxx::work w(c.conn);
      // Two upgraders at once (two daemons starting on an empty
      // database) queue here; the second then sees the version recorded
      // and does nothing.
      w.exec("SELECT pg_advisory_xact_lock(" +
             std::to_string(kSchemaLockKey) + ")");
      NS_ASSIGN_OR_RETURN(const int current, ReadVersion(w));
      if (current >= version) return Status::Ok();
      if (current != version - 1) {
        return Status::Invalid(
            ctx, "database is at version " + std::to_string(current));
      }
      w.exec(std::string(sql));
      w.exec_params(
          "INSERT INTO schema_version (version, name, applied_ns) "
          "VALUES ($1, $2, $3)",
          version, std::string(name), NowNs());
      w.commit();
      return Status::Ok();
    });
  });
}

Status PgBackend::Start() {
  uint64_t verifier = 0;
  NS_RETURN_IF_ERROR(RunOnConnection("pg start", [&](PgConn& c) {
    return PgGuard("pg read fs_info", [&]() -> Status {
      const pqxx::result r = c.Txn().exec_prepared(kVerifier);
      if (r.empty()) {
        return Status::Corruption("pg start", "fs_info has no row");
      }
      verifier = static_cast<uint64_t>(r[0][0].as<int64_t>());
      // Below schema version 6 (a tool opened an older database on
      // purpose) there is no commit_tokens table: COMMITs go without.
      tokens_ = c.Txn()
                    .exec("SELECT to_regclass('commit_tokens') IS NOT NULL")
                    [0][0]
                    .as<bool>();
      return Status::Ok();
    });
  }));
  verifier_.store(verifier);
  std::lock_guard<std::mutex> lock(fold_mu_);
  if (!folder_.joinable() && !stop_) {
    folder_ = std::thread([this] { FoldLoop(); });
  }
  return Status::Ok();
}

Result<bool> PgBackend::TokenCommitted(int64_t token, Clock::time_point start) {
  for (;;) {
    Result<bool> outcome = Status::Retry("pg commit token");
    const Status s = RunOnConnection("pg commit token", [&](PgConn& c) {
      return PgGuard("pg commit token", [&]() -> Status {
        outcome = FenceCommitToken(c.Txn(), token);
        // A Retry here means "still running", not a conflict for
        // RunOnConnection's loop; it is handled below.
        return outcome.ok() || outcome.status().IsRetry()
                   ? Status::Ok()
                   : outcome.status();
      });
    });
    if (!s.ok()) {
      return Status::Unavailable(
          "pg write",
          "commit outcome unknown: " + s.ToString() +
              "; the operation may or may not have happened");
    }
    if (outcome.ok()) return *outcome;
    if (Clock::now() - start >= kUnavailableBudget) {
      return Status::Unavailable(
          "pg write", "commit outcome unknown: " +
                          outcome.status().ToString() +
                          "; the operation may or may not have happened");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<int> PgBackend::ReadVersion(pqxx::transaction_base& t) {
  const pqxx::result r = t.exec(
      "SELECT to_regclass('schema_version') IS NOT NULL, "
      "(SELECT count(*) FROM pg_class c JOIN pg_namespace s "
      "ON s.oid = c.relnamespace WHERE s.nspname = current_schema() "
      "AND c.relkind IN ('r', 'p'))");
  if (!r[0][0].as<bool>()) {
    if (r[0][1].as<int64_t>() == 0) return 0;
    return Status::Corruption(
        "not a namespace database",
        "the schema has tables but no schema_version table");
  }
  const pqxx::result v =
      t.exec("SELECT coalesce(max(version), 0) FROM schema_version");
  const int version = v[0][0].as<int>();
  if (version == 0) {
    return Status::Corruption("not a namespace database",
                              "schema_version is empty");
  }
  return version;
}

Status PgBackend::RunOnConnection(std::string_view ctx,
                                  const std::function<Status(PgConn&)>& body) {
  const Clock::time_point start = Clock::now();
  int conflicts = 0;
  int outages = 0;
  for (;;) {
    Status s;
    std::unique_ptr<PgConn> c;
    try {
      c = pool_.Acquire();
    } catch (const std::exception& e) {
      s = Status::Unavailable(
          "cannot connect to PostgreSQL at " + SafeUri(pool_.uri()),
          PgMessage(e));
    }
    if (c != nullptr) {
      s = body(*c);
      const bool lost = s.IsUnavailable() || !c->conn.is_open();
      pool_.Release(std::move(c), lost);
      if (lost) {
        pool_.DropIdle();
        inos_.Clear();
      }
    }
    if (s.IsRetry()) {
      if (++conflicts >= kMaxConflictRetries) {
        return Status::Unavailable(ctx, "still conflicting after " +
                                            std::to_string(conflicts) +
                                            " attempts: " + s.ToString());
      }
      SleepConflict(conflicts);
      continue;
    }
    if (s.IsUnavailable()) {
      if (Clock::now() - start >= kUnavailableBudget) return s;
      SleepOutage(outages++);
      continue;
    }
    return s;
  }
}

void PgBackend::SleepConflict(int attempt) {
  const int64_t cap_us =
      std::min<int64_t>(50'000, int64_t{100} << std::min(attempt, 9));
  std::this_thread::sleep_for(std::chrono::microseconds(Jitter(cap_us)));
}

void PgBackend::SleepOutage(int attempt) {
  if (attempt == 0) return;
  const int64_t cap_ms =
      std::min<int64_t>(1000, int64_t{25} << std::min(attempt - 1, 6));
  std::this_thread::sleep_for(
      std::chrono::microseconds(Jitter(cap_ms * 1000)));
}

int64_t PgBackend::Jitter(int64_t cap) {
  std::lock_guard<std::mutex> lock(rng_mu_);
  return std::uniform_int_distribution<int64_t>(cap / 2, cap)(rng_);
}

void PgBackend::FoldLoop() {
  std::unique_ptr<PgConn> conn;
  Clock::time_point last_expiry = Clock::now();
  std::unique_lock<std::mutex> lock(fold_mu_);
  bool more = false;
  while (!stop_) {
    if (!more) {
      fold_cv_.wait_for(lock, kFoldInterval, [&] { return stop_.load(); });
      if (stop_) break;
    }
    lock.unlock();
    more = false;
    try {
      if (conn == nullptr || !conn->conn.is_open()) {
        conn.reset();
        conn = std::make_unique<PgConn>(pool_.uri());
      }
      pqxx::nontransaction& n = conn->Txn();
      const pqxx::result dirs = n.exec_prepared(kFoldList, kFoldBatch);
      for (const pqxx::row& row : dirs) {
        if (stop_.load()) break;
        n.exec_prepared(kFold, row[0].as<int64_t>());
      }
      more = dirs.size() == static_cast<size_t>(kFoldBatch);
      if (tokens_ && Clock::now() - last_expiry >= kTokenExpiryInterval) {
        last_expiry = Clock::now();
        (void)ExpireCommitTokens(n);
      }
    } catch (const std::exception&) {
      if (conn != nullptr && !conn->conn.is_open()) conn.reset();
    }
    lock.lock();
  }
}

namespace {

bool HasScheme(const std::string& uri, std::string_view scheme) {
  return uri.size() > scheme.size() &&
         std::string_view(uri).substr(0, scheme.size()) == scheme;
}

}  // namespace
}  // namespace pg_internal

Result<std::unique_ptr<Backend>> OpenPostgresBackend(
    const std::string& uri, const NamespaceOptions& options) {
  if (!pg_internal::HasScheme(uri, "postgresql://") &&
      !pg_internal::HasScheme(uri, "postgres://")) {
    return Status::Invalid("open PostgreSQL backend",
                           "expected a postgresql:// or postgres:// URI");
  }
  int pool_size = options.pool_size;
  if (pool_size <= 0) {
    // Enough for 8 concurrent callers even on a small machine: a caller
    // waiting for a connection costs more than an idle backend process.
    pool_size =
        std::max(8, 2 * static_cast<int>(std::thread::hardware_concurrency()));
  }
  auto backend = std::make_unique<pg_internal::PgBackend>(uri, pool_size);
  NS_RETURN_IF_ERROR(backend->Connect());
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace ns
