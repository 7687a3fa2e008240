// The PostgreSQL backend's classes, shared by its files (private to
// libnamespace; the design is described atop pg_backend.cc):
//   pg_statements.cc        every prepared statement's SQL
//   pg_connection.{h,cc}    PgConn, ConnPool, InoCache, row conversion
//   pg_transaction.cc       PgTxn: BEGIN/COMMIT, inodes, dirents, topology,
//                           statfs, the Query escape hatch
//   pg_transaction_meta.cc  PgTxn: ACLs, xattrs, inline data, tags,
//                           checksums, pNFS locations, client records
//   pg_backend.cc           PgBackend: the retry loop, migrations, the
//                           commit-token lookup and the folding thread

#ifndef NS_LIBNAMESPACE_SRC_PG_BACKEND_INTERNAL_H_
#define NS_LIBNAMESPACE_SRC_PG_BACKEND_INTERNAL_H_

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
#include "libnamespace/src/pg_commit_token.h"
#include "libnamespace/src/pg_connection.h"
#include "libnamespace/src/pg_errors.h"
#include "libnamespace/src/pg_statements.h"

namespace ns {
namespace pg_internal {

// --- Transaction -----------------------------------------------------------

// A Transaction over one connection. For a Write it opens, commits and
// rolls back the transaction itself so that BEGIN, COMMIT and statements
// whose answer nobody waits for share round trips with other statements:
// `pending_` holds SQL (EXECUTE of a prepared statement, parameters as
// quoted literals) that goes out in front of the next statement, or in
// front of COMMIT. For a Read nothing is ever pending and each statement
// is a plain exec_prepared. Not thread-safe, like the connection.
//
// After a statement fails inside a transaction, PostgreSQL refuses every
// further statement and turns COMMIT into ROLLBACK; the first failure is
// therefore remembered and the runner reports it even if `fn` carries on
// and returns Ok, so no write is ever silently lost. A failure of deferred
// SQL surfaces at the statement it travelled with.
class PgTxn final : public Transaction {
 public:
  // `tokens`: whether COMMIT records a commit token (the database has
  // commit_tokens, schema version 6).
  PgTxn(pqxx::transaction_base& t, bool writable, InoCache* inos,
        AclCache* acl_cache, bool tokens = false)
      : t_(t),
        writable_(writable),
        tokens_(tokens),
        inos_(inos),
        acl_cache_(acl_cache) {
    if (writable_) pending_ = "BEGIN;";
  }

  AclCache* acl_cache() override { return acl_cache_; }
  bool may_fill_acl_cache() const override { return !writable_; }

  const Status& first_error() const { return first_error_; }
  // Whether the connection broke while COMMIT was under way.
  bool in_doubt() const { return in_doubt_; }
  // The commit token sent with the last COMMIT, if any (see
  // pg_commit_token.h): with it, an in-doubt COMMIT can be decided.
  std::optional<int64_t> token() const { return token_; }

  // Sends what is pending, the commit token (if anything was written) and
  // COMMIT, in one round trip. Errors: IOError "commit outcome unknown" if
  // the connection broke while COMMIT was under way (and something was
  // written: a transaction that changed nothing has nothing to lose, and
  // is then Ok); Retry if the token clashed (nothing committed); else as
  // PgStatus maps them.
  Status Commit();

  // Ends the transaction without applying it; best effort (a failure means
  // the connection is gone, which rolls back too).
  void Rollback();

  Result<Attr> GetInode(InodeId ino, LockMode lock) override;

  Result<std::pair<Attr, std::optional<Attr>>> LookupWithParent(
      InodeId parent, std::string_view name) override;

  Result<InodeId> InsertInode(const Attr& a) override;

  // Deferred: the caller holds the row FOR UPDATE, so it exists and the
  // statement cannot miss; its errors surface with the next statement.
  Status UpdateInode(const Attr& a) override;

  // Deferred like UpdateInode; every caller locks the inode first.
  Status DeleteInode(InodeId ino) override;

  Result<std::optional<EntryRow>> LookupEntry(InodeId parent,
                                              std::string_view name) override;

  Status InsertEntry(InodeId parent, std::string_view name, InodeId child,
                     FileType type) override;

  Status DeleteEntry(InodeId parent, std::string_view name) override;

  Result<bool> HasEntries(InodeId dir) override;

  Result<std::vector<DirEntry>> ListEntries(InodeId dir, uint64_t after_cookie,
                                            uint32_t limit,
                                            bool with_attrs) override;

  Result<std::optional<Attr>> DirChanged(InodeId dir, int nlink_delta,
                                         TimeNs now) override;

  Status InsertSymlink(InodeId ino, std::string_view target) override;

  Result<std::string> ReadSymlink(InodeId ino) override;

  Status AddOrphan(InodeId ino, TimeNs now) override;

  Status RemoveOrphan(InodeId ino) override;

  // Deferred too: whatever the caller reads next goes out behind it, so
  // the lock is held before that read runs.
  Status LockTopology() override;

  Result<GraceRow> GetGrace() override;

  Status PutGrace(const GraceRow& row) override;

  Result<ClientRecord> GetClientRecord(std::string_view owner) override;

  Result<std::vector<ClientRecord>> ListClientRecords() override;

  Status PutClientRecord(const ClientRecord& rec) override;

  Status DeleteClientRecord(std::string_view owner) override;

  Result<FsStats> Stats() override;

  // --- metadata ---

  Result<Acl> GetAcl(InodeId ino) override;

  // Deferred: the caller holds the inode FOR UPDATE.
  Status SetAcl(InodeId ino, const Acl& acl) override;

  Result<std::optional<std::string>> GetXattr(InodeId ino,
                                              std::string_view name) override;

  Result<std::vector<XattrName>> ListXattrs(InodeId ino) override;

  Status PutXattr(InodeId ino, std::string_view name,
                  std::string_view value) override;

  Result<bool> DeleteXattr(InodeId ino, std::string_view name) override;

  Result<std::optional<std::string>> GetInlineData(InodeId ino) override;

  Status PutInlineData(InodeId ino, std::string_view bytes) override;

  Result<bool> DeleteInlineData(InodeId ino) override;

  Result<bool> HasLayout(InodeId ino) override;

  Result<std::optional<InodeId>> GetTagOrigin(InodeId ino) override;

  Status SetTagOrigin(InodeId ino, InodeId origin) override;

  // Deferred: rides with the create's next statement or its COMMIT, so a
  // mkdir under tags costs no extra round trip.
  Status InheritTags(InodeId child, InodeId parent) override;

  Result<std::vector<Tag>> ListTags(InodeId origin) override;

  Status CopyTags(InodeId from, InodeId to) override;

  Status PutTag(InodeId origin, std::string_view name,
                std::string_view value) override;

  Result<bool> DeleteTag(InodeId origin, std::string_view name) override;

  Result<uint64_t> CollectTags() override;

  Result<std::vector<Checksum>> ListChecksums(InodeId ino) override;

  Status PutChecksum(InodeId ino, const Checksum& c) override;

  Result<bool> DeleteChecksum(InodeId ino, ChecksumType type) override;

  Result<std::vector<Location>> ListLocations(InodeId ino) override;

  Status AddLocation(InodeId ino, const Location& l) override;

  Result<bool> DeleteLocation(InodeId ino, LocationType type,
                              std::string_view location) override;

 private:
  static int64_t StoredMode(const Attr& a) {
    return static_cast<int64_t>((a.mode & 07777) |
                                (a.has_acl ? kModeHasAclBit : 0));
  }

  // "type,flags,mask,kind,id;..." as LockingGet aggregates it; nullopt if
  // malformed (then GetAcl asks the table).
  static std::optional<Acl> ParseAceList(std::string_view text);

  static std::string ToHex(std::string_view v);

  static std::string FromHex(const pqxx::field& f);

  Result<Attr> PlainGet(InodeId ino) {
    const pqxx::result r = Exec(kGet, ino);
    if (r.empty()) return NoInode(ino);
    return RowToAttr(r[0], 0, 16);
  }

  static std::string HexOf(std::string_view bytes);

  static Result<ClientRecord> RowToClient(const pqxx::row& row);

  Result<std::vector<SqlRow>> Query(std::string_view sql,
                                    std::span<const int64_t> params) override;

  Result<std::vector<SqlRow>> QueryValues(
      std::string_view sql, std::span<const SqlValue> params) override;

  template <typename ExecFn>
  Result<std::vector<SqlRow>> RunQuery(std::string_view sql, ExecFn exec) {
    (void)sql;
    return Run("pg query", [&]() -> Result<std::vector<SqlRow>> {
      if (writable_) {
        // SQL through the escape hatch may change rows: COMMIT then
        // records a token like any other write.
        wrote_ = true;
        if (!pending_.empty()) {
          std::string queued;
          queued.swap(pending_);
          begin_sent_ = true;
          t_.exec(queued);
        }
      }
      const pqxx::result r = exec(t_);
      std::vector<SqlRow> rows;
      rows.reserve(r.size());
      for (const pqxx::row& row : r) {
        SqlRow out;
        for (const pqxx::field& f : row) {
          if (f.is_null()) {
            out.emplace_back(std::nullopt);
          } else {
            out.emplace_back(std::string(f.c_str(), f.size()));
          }
        }
        rows.push_back(std::move(out));
      }
      return rows;
    });
  }

  static Status NoInode(InodeId ino) {
    return Status::Stale("pg", "no inode " + std::to_string(ino));
  }

  // SQL literals for EXECUTE parameters. Numbers print as themselves;
  // text goes through the connection's escaping (PQescapeStringConn).
  template <typename T>
  void AppendLiteral(std::string& sql, const T& v) {
    if constexpr (std::is_same_v<T, std::string>) {
      sql += t_.quote(v);
    } else {
      static_assert(std::is_arithmetic_v<T>, "numbers and strings only");
      sql += std::to_string(v);
    }
  }

  template <typename... Args>
  void AppendExecute(std::string& sql, const std::string& stmt,
                     const Args&... args) {
    sql += "EXECUTE ";
    sql += stmt;
    if constexpr (sizeof...(Args) > 0) {
      sql += '(';
      bool first = true;
      ((sql += first ? "" : ", ", first = false, AppendLiteral(sql, args)),
       ...);
      sql += ')';
    }
  }

  // Runs a prepared statement: directly when nothing is pending, else as
  // EXECUTE behind the pending SQL in one simple query (whose result is
  // that of its last statement). prepare_now makes sure the server knows
  // the statement before a plain-SQL EXECUTE names it (libpqxx otherwise
  // prepares on first exec_prepared only).
  template <typename... Args>
  pqxx::result Exec(const std::string& stmt, const Args&... args) {
    if (pending_.empty()) return t_.exec_prepared(stmt, args...);
    t_.conn().prepare_now(stmt);
    std::string sql;
    sql.swap(pending_);
    AppendExecute(sql, stmt, args...);
    begin_sent_ = true;  // pending SQL in a Write always starts with BEGIN
    return t_.exec(sql);
  }

  // Queues a statement whose result is not needed; it goes out with the
  // next Exec or with COMMIT.
  template <typename... Args>
  void Defer(const std::string& stmt, const Args&... args) {
    t_.conn().prepare_now(stmt);
    AppendExecute(pending_, stmt, args...);
    pending_ += ';';
  }

  // Runs one method's work, turning exceptions into a Status and
  // remembering the first of them (see the class comment).
  template <typename Fn>
  auto Run(std::string_view ctx, Fn&& fn) -> decltype(fn()) {
    try {
      return fn();
    } catch (const std::exception& e) {
      return Remember(PgStatus(e, ctx));
    } catch (...) {
      return Remember(Status::IOError(ctx, "unknown exception"));
    }
  }

  // Like Run, for methods that change rows: refused in a Read, where each
  // statement would commit on its own and the change could not be undone.
  template <typename Fn>
  auto RunWrite(std::string_view ctx, Fn&& fn) -> decltype(fn()) {
    if (!writable_) {
      return Status::Invalid(ctx, "write inside Backend::Read");
    }
    wrote_ = true;
    return Run(ctx, std::forward<Fn>(fn));
  }

  Status Remember(Status s) {
    if (first_error_.ok()) first_error_ = s;
    return s;
  }

  pqxx::transaction_base& t_;
  const bool writable_;
  const bool tokens_;
  InoCache* const inos_;
  AclCache* const acl_cache_;
  // ACEs read along with a locking GetInode (see LockingGet).
  std::unordered_map<InodeId, Acl> prefetched_acl_;
  std::string pending_;      // SQL not yet sent, each statement ';'-ended
  bool begin_sent_ = false;  // a transaction is open on the server
  bool wrote_ = false;       // a method that changes rows ran
  std::optional<int64_t> token_;
  bool in_doubt_ = false;
  Status first_error_;
};

// --- Backend ---------------------------------------------------------------

class PgBackend final : public Backend {
 public:
  PgBackend(const std::string& uri, int pool_size)
      : pool_(uri, pool_size), rng_(std::random_device{}()) {}

  ~PgBackend() override {
    {
      std::lock_guard<std::mutex> lock(fold_mu_);
      stop_ = true;
    }
    fold_cv_.notify_all();
    if (folder_.joinable()) folder_.join();
  }

  // Makes the first connection, so a wrong URI or a server that is down
  // is reported by Open rather than by the first operation.
  Status Connect();

  std::string_view Dialect() const override { return "postgresql"; }

  // A connection that breaks while COMMIT is under way (a server crash,
  // a failover) leaves the outcome unknown. The commit token decides it on
  // whichever server answers now (TokenCommitted): committed means done
  // (fn's results stand); not committed means it never will, and fn runs
  // again as after any lost connection. So a caller sees success, or
  // Unavailable (NFS4ERR_DELAY) only for an operation that certainly did
  // not happen, except when no server answers within the time budget.
  Status Write(const TxnFn& fn) override;

  Status Read(const TxnFn& fn) override;

  uint64_t CookieVerifier() override { return verifier_.load(); }

  Result<int> SchemaVersion() override;

  Status ApplyMigration(int version, std::string_view name,
                        std::string_view sql) override;

  Status Start() override;

 private:
  // Whether the write that sent `token` with its COMMIT committed, asked
  // on fresh connections (RunOnConnection finds the server that is
  // primary now) until one answers; `start` is when the write began.
  // While the original transaction still holds its token (its server has
  // not yet noticed the lost client), asks again until kUnavailableBudget
  // from `start` runs out. Errors: Unavailable "commit outcome unknown"
  // when no answer came in time (the one case where a caller cannot know).
  Result<bool> TokenCommitted(int64_t token, Clock::time_point start);

  // The schema version as SchemaVersion() defines it.
  static Result<int> ReadVersion(pqxx::transaction_base& t);

  // Runs `body` on a pooled connection until it ends with something other
  // than Retry (at most kMaxConflictRetries times) or Unavailable (for at
  // most kUnavailableBudget). `body` must not throw.
  Status RunOnConnection(std::string_view ctx,
                         const std::function<Status(PgConn&)>& body);

  // Jittered exponential backoff, 100 us doubling to 50 ms: conflicts
  // clear in about one transaction's time, and jitter keeps the losers of
  // one conflict from colliding again in lockstep.
  void SleepConflict(int attempt);

  // The first retry after a lost connection is immediate (a pooled
  // connection that died in a restart says nothing about the server now);
  // then 25 ms doubling to 1 s, jittered.
  void SleepOutage(int attempt);

  // Uniform in [cap/2, cap].
  int64_t Jitter(int64_t cap);

  // The folding thread: every kFoldInterval, folds the pending deltas of up
  // to kFoldBatch directories, each in its own autocommit statement so no
  // lock is held longer than one fold. Errors are ignored (the next round
  // tries again); a broken connection is replaced next round. It has its
  // own connection so that a busy pool never delays folding. Every
  // kTokenExpiryInterval it also deletes old commit tokens, which bounds
  // that table to a few minutes of writes.
  void FoldLoop();

  ConnPool pool_;
  InoCache inos_;
  AclCache acl_cache_;
  std::atomic<uint64_t> verifier_{0};
  std::atomic<bool> tokens_{false};  // commit_tokens exists (see Start)

  std::mutex rng_mu_;
  std::mt19937_64 rng_;  // guarded by rng_mu_

  std::mutex fold_mu_;
  std::condition_variable fold_cv_;
  std::atomic<bool> stop_{false};  // written under fold_mu_
  std::thread folder_;             // guarded by fold_mu_
};

}  // namespace pg_internal
}  // namespace ns

#endif  // NS_LIBNAMESPACE_SRC_PG_BACKEND_INTERNAL_H_
