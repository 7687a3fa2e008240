// The SQLite backend's classes, shared by its files (private to
// libnamespace; the design is described atop sqlite_backend.cc):
//   sqlite_statements.cc        the SQL text of every statement
//   sqlite_connection.{h,cc}    Stmt, Connection, Backoff, exception helpers
//   sqlite_transaction.cc       SqliteTransaction: inodes, dirents, topology
//   sqlite_transaction_meta.cc  SqliteTransaction: ACLs, xattrs, tags,
//                               checksums, inline data, pNFS, client records
//   sqlite_writer.cc            the group commit, run by a leading caller
//   sqlite_syncer.cc            defer_sync: commit tickets, the WAL syncer
//   sqlite_wal_vfs.{h,cc}       the durable writer's VFS: one pwrite per
//                               commit's WAL frames
//   sqlite_backend.cc           SqliteBackend's entry points, readers, opening

#ifndef NS_LIBNAMESPACE_SRC_SQLITE_BACKEND_INTERNAL_H_
#define NS_LIBNAMESPACE_SRC_SQLITE_BACKEND_INTERNAL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"
#include "libnamespace/src/backend.h"
#include "libnamespace/src/sqlite_connection.h"
#include "libnamespace/src/sqlite_errors.h"

namespace ns {
namespace sqlite_internal {

// ---------------------------------------------------------------------------
// The Transaction: each method is one cached statement on the connection the
// transaction runs on (the writer's or a reader's).

class SqliteTransaction final : public Transaction {
 public:
  SqliteTransaction(Connection& conn, AclCache* cache, bool may_fill)
      : conn_(conn), acl_cache_(cache), may_fill_(may_fill) {}

  AclCache* acl_cache() override { return acl_cache_; }
  bool may_fill_acl_cache() const override { return may_fill_; }

  Result<Attr> GetInode(InodeId ino, LockMode /*lock*/) override;

  Result<std::pair<Attr, std::optional<Attr>>> LookupWithParent(
      InodeId parent, std::string_view name) override;

  Result<InodeId> InsertInode(const Attr& attr) override;

  Status UpdateInode(const Attr& attr) override;

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

  Status LockTopology() override;

  Result<std::vector<SqlRow>> Query(std::string_view sql,
                                    std::span<const int64_t> params) override;

  Result<std::vector<SqlRow>> QueryValues(
      std::string_view sql, std::span<const SqlValue> params) override;

  Result<FsStats> Stats() override;

  // --- metadata ---

  Result<Acl> GetAcl(InodeId ino) override;

  Status SetAcl(InodeId ino, const Acl& acl) override;

  Result<std::optional<std::string>> GetXattr(InodeId ino,
                                              std::string_view name) override;

  Result<std::vector<XattrName>> ListXattrs(InodeId ino) override;

  Status PutXattr(InodeId ino, std::string_view name,
                  std::string_view value) override;

  Result<bool> DeleteXattr(InodeId ino, std::string_view name) override;

  Result<std::optional<InodeId>> GetTagOrigin(InodeId ino) override;

  Status SetTagOrigin(InodeId ino, InodeId origin) override;

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

  Result<std::optional<std::string>> GetInlineData(InodeId ino) override;

  Status PutInlineData(InodeId ino, std::string_view bytes) override;

  Result<bool> DeleteInlineData(InodeId ino) override;

  Result<bool> HasLayout(InodeId ino) override;

  Result<std::vector<Location>> ListLocations(InodeId ino) override;

  Status AddLocation(InodeId ino, const Location& l) override;

  Result<bool> DeleteLocation(InodeId ino, LocationType type,
                              std::string_view location) override;

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

  Result<GraceRow> GetGrace() override;

  Status PutGrace(const GraceRow& row) override;

  Result<ClientRecord> GetClientRecord(std::string_view owner) override;

  Result<std::vector<ClientRecord>> ListClientRecords() override;

  Status PutClientRecord(const ClientRecord& rec) override;

  Status DeleteClientRecord(std::string_view owner) override;

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
        defer_sync_(options.durable && options.defer_sync),
        max_readers_(ReaderCount(options.pool_size)),
        writer_(std::move(writer)) {
    // Reserved up front so that a leader and ReleaseReader never allocate
    // (and so never throw) while requests are in flight.
    batch_.reserve(kMaxGroup);
    results_.reserve(kMaxGroup);
    readers_.reserve(static_cast<size_t>(max_readers_));
    idle_readers_.reserve(static_cast<size_t>(max_readers_));
    StartSyncer();
  }

  // Refuses new requests, then returns once everything queued before has
  // its answer and no leader runs (their callers are blocked on them, and
  // the leader uses writer_ and batch_).
  // The syncer then syncs what was committed and answers its waiters.
  ~SqliteBackend() override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      stopping_ = true;
      idle_cv_.wait(lock, [this] { return !leader_active_; });
    }
    StopSyncer();
  }

  std::string_view Dialect() const override { return "sqlite"; }

  Status Write(const TxnFn& fn) override;

  Status Read(const TxnFn& fn) override;

  uint64_t CookieVerifier() override;

  Result<int> SchemaVersion() override;

  Status ApplyMigration(int version, std::string_view name,
                        std::string_view sql) override;

  Status Start() override;

  uint64_t TakeCommitTicket() override;
  uint64_t LatestCommitTicket() override;
  void WhenDurable(uint64_t ticket,
                   std::function<void(bool durable)> fn) override;

  // fdatasyncs of the WAL by the syncer so far (tests).
  uint64_t SyncsDone() {
    std::lock_guard<std::mutex> lock(sync_mu_);
    return syncs_done_;
  }
  // Tests: the syncer calls `fn` on the WAL's descriptor instead of
  // fdatasync (to hold a sync back, or fail it: -1 with errno set).
  void SetSyncForTest(std::function<int(int fd)> fn) {
    std::lock_guard<std::mutex> lock(sync_mu_);
    sync_for_test_ = std::move(fn);
  }

  // Callers queued for a leader, not yet taken into a group (tests wait on
  // it before destroying the backend under them).
  size_t QueuedCallers() {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.size();
  }
  // COMMITs of groups so far (tests: how well callers were grouped).
  uint64_t GroupsCommitted() {
    std::lock_guard<std::mutex> lock(mu_);
    return groups_committed_;
  }

 private:
  // Request::state: what a queued caller is waiting for.
  static constexpr int kWaiting = 0;
  static constexpr int kAnswered = 1;  // `status` is its answer
  static constexpr int kLead = 2;      // it is the leader now
  static constexpr int kSleeping = 3;  // waiting, asleep on the futex

  // One Write() or ApplyMigration(). Lives on the caller's stack; whoever
  // answers it (the leader) touches nothing but `state`'s address (a futex
  // wake, harmless once the caller has returned, as for sem_post) after
  // storing kAnswered, since the caller may return at once.
  struct Request {
    // A transaction to run in a group commit...
    const TxnFn* fn = nullptr;
    // ...or, when set, work that needs the writer connection to itself
    // (a migration: its own transaction, DDL).
    std::function<Status(Connection&)> job;
    Status status;
    // defer_sync: the commit that answered it (set before `state`).
    uint64_t ticket = 0;
    // Waited on with a bare futex (Await/Signal): no allocation, no mutex
    // round trip, and no spin. An answer comes after a COMMIT: with its
    // fdatasync (hundreds of µs) spinning never catches it, and without
    // (defer_sync) a pause-loop spin of up to 3,000 rounds saved no switches
    // and cost CPU; the sched_yield spin of std::atomic::wait cost nfs41d
    // 12 % of its CPU at 16 client threads (docs/performance.md, "nfs41d vs
    // NFS-Ganesha", 2026-11-24 03:00). The follower marks itself kSleeping
    // before it sleeps, so the answer costs a futex wake only if it did.
    std::atomic<int> state{kWaiting};
  };

  // Blocks until `r`'s state is kAnswered or kLead; returns it.
  static int Await(Request* r) noexcept;
  // Stores kAnswered or kLead and wakes the caller if it sleeps. After the
  // exchange only the futex wake touches `r`'s address (see Request).
  static void Signal(Request* r, int state) noexcept;

  static int ReaderCount(int pool_size) {
    if (pool_size > 0) return pool_size;
    const unsigned cpus = std::thread::hardware_concurrency();
    return static_cast<int>(std::clamp(cpus, kMinReaders, kMaxDefaultReaders));
  }

  static void Complete(Request* request, Status status) noexcept {
    request->status = std::move(status);
    Signal(request, kAnswered);
  }

  // Whether this thread is running transaction functions as this backend's
  // leader (a Write from one of them would wait for itself).
  bool LeadingHere() const;

  // Queues `request` and returns its answer, leading (below) if no one
  // does. Errors: Unavailable once the destructor has begun.
  Status Submit(Request* request);

  // --- the leader: a caller running the group commit on its own thread ---

  // Runs jobs and groups from the queue until `own` is answered, then hands
  // leadership to the first queued caller (or ends it). REQUIRES: this
  // thread was made leader; `own` is queued or answered.
  void Lead(Request* own) noexcept;

  void RunJob(Request* request);

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
  void RunGroup();

  static void FailAll(std::vector<Request*>& requests, const Status& status);

  // Moves more transaction requests from the queue into `requests` (up to
  // kMaxGroup; stops at a job). Returns whether it took any.
  bool TakeMore(std::vector<Request*>& requests);

  // One attempt at running `requests` in one transaction. Requests that
  // arrive while the group runs join it before the COMMIT: callers
  // answered by the previous COMMIT come back while this group's functions
  // run, and letting them in makes groups as large as the number of busy
  // callers instead of half of it (two cohorts taking turns), at no cost in
  // latency for anyone but the group's first caller.
  GroupOutcome CommitGroup(std::vector<Request*>& requests,
                           std::vector<Status>& results);

  // Commit delay (PostgreSQL's commit_delay, made adaptive): before the
  // COMMIT of a durable group smaller than the callers recently seen
  // writing, waits until `deadline` for one more to queue (REQUIRES:
  // leader). Returns whether the queue holds a request now. See
  // kCommitDelay.
  bool WaitForMore(size_t group_size, Clock::time_point deadline);
  // After a COMMIT of `group_size` requests: learns how many callers write
  // together (the group plus those that queued during its COMMIT).
  void NoteCommitted(size_t group_size);

  // --- the syncer (defer_sync): one thread that fdatasyncs the WAL ---

  // After a COMMIT (leader): the commit's ticket; wakes the syncer.
  uint64_t NoteCommitForSync();
  // Remembers `ticket` for this thread's TakeCommitTicket.
  void NoteTicket(uint64_t ticket);
  void StartSyncer();
  void RunSyncer();
  // Makes what the WAL holds durable: "" or what failed.
  std::string SyncWal();
  void StopSyncer();
  // Blocks until `ticket` is durable (migrations, which must be on disk
  // before the namespace is used).
  Status WaitDurable(uint64_t ticket);
  // What Write() answers once a sync has failed.
  Status SyncFailed();
  bool SyncHasFailed() const {
    return sync_failed_.load(std::memory_order_acquire);
  }

  // Runs on the leader's thread with the connection to itself.
  // Retries the whole migration while another process holds a lock.
  static Status RunMigration(Connection& conn, int version,
                             std::string_view name, const std::string& script,
                             const std::string& label);

  static Status TryMigration(Connection& conn, int version,
                             std::string_view name, const std::string& script,
                             const std::string& label);

  // --- readers ---

  // Runs `fn` on a borrowed reader connection, retrying (with backoff) while
  // it reports Retry.
  Status WithReader(const std::function<Status(Connection&)>& fn);

  Result<Connection*> AcquireReader();

  void ReleaseReader(Connection* conn);

  // --- schema and fs_info ---

  // REQUIRES: a transaction is open on `conn` (one snapshot for the checks).
  Result<int> ReadSchemaVersion(Connection& conn);

  Status LoadVerifier();

  const std::string path_;
  const bool durable_;
  const bool defer_sync_;
  AclCache acl_cache_;
  const int max_readers_;

  // Used only by the leader (and before the backend is handed out, by
  // Open): leaders follow one another through mu_, so one thread at a time.
  std::unique_ptr<Connection> writer_;
  // The group being committed and its functions' results; leader only.
  std::vector<Request*> batch_;
  std::vector<Status> results_;

  std::mutex mu_;
  std::condition_variable idle_cv_;  // the destructor waits for !leader_active_
  // Requests not yet taken by a leader. Invariant: not empty => a leader
  // is active (it takes them, or hands over to their first one).
  std::deque<Request*> queue_;  // guarded by mu_
  bool leader_active_ = false;  // guarded by mu_
  bool stopping_ = false;       // guarded by mu_
  // A leader sleeps in WaitForMore: Submit wakes it.
  bool leader_waiting_ = false;  // guarded by mu_
  std::condition_variable more_cv_;
  // Callers seen writing together lately (WaitForMore's target); decays
  // by one per group so that a caller that stopped is forgotten soon.
  size_t writers_seen_ = 1;         // guarded by mu_
  uint64_t groups_committed_ = 0;  // guarded by mu_

  // The syncer. Tickets count commits: committed_ is the latest, durable_to_
  // the latest known on disk.
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;  // commits to sync, or stopping
  std::thread syncer_;
  uint64_t committed_ = 0;     // guarded by sync_mu_
  uint64_t durable_to_ = 0;    // guarded by sync_mu_
  // Set once, under sync_mu_ with sync_error_; read with or without it.
  std::atomic<bool> sync_failed_{false};
  std::string sync_error_;     // guarded by sync_mu_
  bool sync_stopping_ = false;  // guarded by sync_mu_
  uint64_t syncs_done_ = 0;    // guarded by sync_mu_
  // WhenDurable callbacks waiting for their ticket; guarded by sync_mu_.
  std::vector<std::pair<uint64_t, std::function<void(bool)>>> sync_waiters_;
  int wal_fd_ = -1;  // opened by the syncer on its first sync; syncer only
  std::function<int(int)> sync_for_test_;  // guarded by sync_mu_

  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<Connection>> readers_;  // guarded by readers_mu_
  std::vector<Connection*> idle_readers_;             // guarded by readers_mu_
  int opened_readers_ = 0;                            // guarded by readers_mu_

  std::atomic<uint64_t> verifier_{0};
  std::atomic<bool> verifier_loaded_{false};
};

}  // namespace sqlite_internal
}  // namespace ns

#endif  // NS_LIBNAMESPACE_SRC_SQLITE_BACKEND_INTERNAL_H_
