#pragma once

// Backend and Transaction: the seam between the POSIX logic (namespace.cc,
// written once) and a database dialect (sqlite_backend.cc,
// pg_backend.cc). A Backend hands out Transactions; a Transaction has one
// small typed method per table access the POSIX logic needs, so each dialect
// writes its best SQL for it (PostgreSQL joins and lateral subqueries,
// SQLite's rowid tricks) and the logic above never sees SQL.
//
// Private to libnamespace; tests include it to wrap a backend with faults.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "libnamespace/include/namespace/acl.h"
#include "libnamespace/include/namespace/metadata.h"
#include "libnamespace/include/namespace/client_records.h"
#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"

namespace ns {

// Row locks a transaction takes on an inode it reads. Locks are always taken
// in ascending inode order by the caller (LockInodes sorts), so two
// transactions never wait on each other in a cycle; the backend still
// retries if the database reports a deadlock.
enum class LockMode {
  kNone,
  // The caller adds or removes entries in this directory, or needs it to
  // exist until commit. Many transactions hold it at once (PostgreSQL FOR
  // KEY SHARE): concurrent creates in one directory do not wait on each
  // other. Conflicts only with kExclusive.
  kShared,
  // The caller updates or deletes this row (PostgreSQL FOR UPDATE).
  kExclusive,
};

// ACLs by (inode, change): an ACL change bumps the inode's change
// attribute, so an entry found under the change value just read is that
// inode's ACL in the same state. Filled only from transactions that read
// committed data (Backend::Read), so a rolled-back write can never leave
// an entry behind. Bounded: emptied when full. Thread-safe.
class AclCache {
 public:
  std::shared_ptr<const Acl> Get(InodeId ino, uint64_t change) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(ino);
    if (it == map_.end() || it->second.first != change) return nullptr;
    return it->second.second;
  }
  void Put(InodeId ino, uint64_t change, Acl acl) {
    auto p = std::make_shared<const Acl>(std::move(acl));
    std::lock_guard<std::mutex> lock(mu_);
    if (map_.size() >= kMaxEntries) map_.clear();
    map_[ino] = {change, std::move(p)};
  }

 private:
  static constexpr size_t kMaxEntries = 16384;
  std::mutex mu_;
  std::unordered_map<InodeId, std::pair<uint64_t, std::shared_ptr<const Acl>>>
      map_;  // guarded by mu_
};

// A directory entry as stored.
struct EntryRow {
  InodeId child = 0;
  FileType type = FileType::kRegular;
  uint64_t cookie = 0;
};

// The nfs_grace row.
struct GraceRow {
  int64_t current_epoch = 0;
  std::optional<int64_t> recovery_epoch;
  TimeNs started_ns = 0;
};
// A row of an ad-hoc query (Transaction::Query): each column as the
// database prints it, nullopt for NULL.
using SqlRow = std::vector<std::optional<std::string>>;
// A parameter of Transaction::QueryValues: a 64-bit integer or text.
using SqlValue = std::variant<int64_t, std::string>;

class Transaction {
 public:
  virtual ~Transaction() = default;

  // The inode's attributes, locked as asked. For a directory, nlink, mtime,
  // ctime and change include pending entry-change records (DirChanged).
  // Errors: Stale if there is no such inode.
  virtual Result<Attr> GetInode(InodeId ino, LockMode lock) = 0;

  // Directory `parent` and, if `name` exists in it, the child's attributes —
  // in one round trip (the hot path of LOOKUP and path walks). No locks.
  // Errors: Stale if parent does not exist.
  virtual Result<std::pair<Attr, std::optional<Attr>>> LookupWithParent(
      InodeId parent, std::string_view name) = 0;

  // Inserts a new inode from `attr` (attr.ino is ignored) and returns the id
  // the database assigned: never one used before.
  virtual Result<InodeId> InsertInode(const Attr& attr) = 0;

  // Writes mode, uid, gid, size, rdev, atime, mtime, ctime and parent from
  // `attr`; nlink too unless the inode is a directory (a directory's nlink
  // changes only through DirChanged). Sets change to its effective value + 1
  // (attr.change is ignored). For a directory the backend first folds
  // pending entry-change records into the row.
  // REQUIRES: the row is locked kExclusive in this transaction.
  virtual Status UpdateInode(const Attr& attr) = 0;

  // Deletes the inode row and its side rows: symlink target, orphan entry,
  // ACEs, xattrs, checksums, locations, inline bytes, its tag reference,
  // and the tag set it sees (own or inherited) unless another directory
  // still references it.
  virtual Status DeleteInode(InodeId ino) = 0;

  // The entry `name` in `parent`, or nullopt.
  virtual Result<std::optional<EntryRow>> LookupEntry(InodeId parent,
                                                      std::string_view name) = 0;

  // Adds an entry with a fresh cookie (larger than every cookie handed out
  // before in this namespace). Errors: Exists if the name is taken —
  // including by a concurrent transaction that commits first.
  virtual Status InsertEntry(InodeId parent, std::string_view name,
                             InodeId child, FileType type) = 0;

  // Errors: NotFound if there is no such entry.
  virtual Status DeleteEntry(InodeId parent, std::string_view name) = 0;

  // Whether the directory has any entry.
  virtual Result<bool> HasEntries(InodeId dir) = 0;

  // Up to `limit` entries of `dir` with cookie > `after_cookie`, in cookie
  // order; with attributes when `with_attrs`. Cost independent of the
  // directory's size (an index range scan).
  virtual Result<std::vector<DirEntry>> ListEntries(InodeId dir,
                                                    uint64_t after_cookie,
                                                    uint32_t limit,
                                                    bool with_attrs) = 0;

  // Records that an entry of `dir` changed: mtime = ctime = now, change + 1,
  // nlink + nlink_delta. A backend may record this apart from the row
  // (PostgreSQL appends to dir_deltas) so that concurrent creates in one
  // directory never wait on its row lock. Returns the directory's
  // attributes as this change leaves them where the backend has them
  // exactly (SQLite, one writer: the updated row), nullopt where it has not
  // (PostgreSQL: other transactions' records may commit in between).
  // REQUIRES: `dir` locked kShared or kExclusive.
  virtual Result<std::optional<Attr>> DirChanged(InodeId dir, int nlink_delta,
                                                 TimeNs now) = 0;

  virtual Status InsertSymlink(InodeId ino, std::string_view target) = 0;
  // Errors: Corruption if the symlink has no target row.
  virtual Result<std::string> ReadSymlink(InodeId ino) = 0;

  // The orphan list: inodes with no name kept alive for an open file.
  virtual Status AddOrphan(InodeId ino, TimeNs now) = 0;
  virtual Status RemoveOrphan(InodeId ino) = 0;

  // Serializes directory renames that change a directory's parent, so two
  // of them cannot together make a cycle (the ancestry check of one would
  // not see the other's move). Held until commit. PostgreSQL: a
  // transaction-level advisory lock; SQLite: nothing (one writer).
  virtual Status LockTopology() = 0;

  virtual Result<FsStats> Stats() = 0;

  // --- NFSv4 client records (client_records.h; tables nfs_grace and
  // nfs_clients). Owners are compared as bytes.

  // The one nfs_grace row, locked against concurrent writers in a Write
  // (PostgreSQL FOR UPDATE). Errors: Corruption if the row is missing.
  virtual Result<GraceRow> GetGrace() = 0;
  virtual Status PutGrace(const GraceRow& row) = 0;
  // Errors: NotFound.
  virtual Result<ClientRecord> GetClientRecord(std::string_view owner) = 0;
  // Every record, ordered by owner bytes.
  virtual Result<std::vector<ClientRecord>> ListClientRecords() = 0;
  // Inserts or replaces the record of rec.owner.
  virtual Status PutClientRecord(const ClientRecord& rec) = 0;
  // Deleting a missing record is Ok.
  virtual Status DeleteClientRecord(std::string_view owner) = 0;
  // The escape hatch for administration (fsck, usage statistics), never
  // for the POSIX hot path: runs one SQL statement written for the
  // backend's Dialect(), with $1, $2, ... bound to `params` as 64-bit
  // integers, and returns all its rows (the caller bounds them with
  // LIMIT). In a Read it must not change anything. Errors as the typed
  // methods (a syntax error is Internal: it is our SQL).
  virtual Result<std::vector<SqlRow>> Query(
      std::string_view sql, std::span<const int64_t> params) = 0;
  // As Query, with text parameters too: for the small pNFS tables
  // (pnfs.h), whose rows carry addresses and uuids. Not for the POSIX hot
  // path. PostgreSQL sends every parameter as text and lets the statement
  // give it its type. A backend without it answers NotSupported.
  virtual Result<std::vector<SqlRow>> QueryValues(
      std::string_view sql, std::span<const SqlValue> params) {
    (void)sql;
    (void)params;
    return Status::NotSupported("QueryValues", "not implemented by this backend");
  }
  // The backend's ACL cache (nullptr: none), and whether this transaction
  // may fill it (Reads only; see AclCache).
  virtual AclCache* acl_cache() { return nullptr; }
  virtual bool may_fill_acl_cache() const { return false; }

  // --- metadata (schema version 3) ---
  // None of these checks that the inode exists; callers read it first.
  // Writers hold the inode kExclusive, which serializes changes per inode.
  // The inodes.mode bit that says an ACL exists is written by the caller
  // (Attr::has_acl through UpdateInode).

  // The ACEs of `ino` in order (empty: none).
  virtual Result<Acl> GetAcl(InodeId ino) = 0;
  // Replaces them (empty: deletes them).
  virtual Status SetAcl(InodeId ino, const Acl& acl) = 0;

  virtual Result<std::optional<std::string>> GetXattr(InodeId ino,
                                                      std::string_view name) = 0;
  // In name order, with value sizes.
  virtual Result<std::vector<XattrName>> ListXattrs(InodeId ino) = 0;
  // Inserts or replaces.
  virtual Status PutXattr(InodeId ino, std::string_view name,
                          std::string_view value) = 0;
  // Whether there was one.
  virtual Result<bool> DeleteXattr(InodeId ino, std::string_view name) = 0;

  // The inode whose tag set directory `ino` sees, or nullopt (no tags).
  virtual Result<std::optional<InodeId>> GetTagOrigin(InodeId ino) = 0;
  // Points `ino` at `origin`'s set (inserts or replaces the reference).
  virtual Status SetTagOrigin(InodeId ino, InodeId origin) = 0;
  // New directory `child` sees what `parent` sees: one row copied by the
  // database when `parent` has tags, nothing otherwise; no read needed.
  virtual Status InheritTags(InodeId child, InodeId parent) = 0;
  // The set owned by `origin`, in name order (Tag::own left false).
  virtual Result<std::vector<Tag>> ListTags(InodeId origin) = 0;
  // Copies the set of `from` into a new set owned by `to`.
  virtual Status CopyTags(InodeId from, InodeId to) = 0;
  virtual Status PutTag(InodeId origin, std::string_view name,
                        std::string_view value) = 0;
  virtual Result<bool> DeleteTag(InodeId origin, std::string_view name) = 0;
  // Deletes sets nobody references; returns how many.
  virtual Result<uint64_t> CollectTags() = 0;

  // In type order.
  virtual Result<std::vector<Checksum>> ListChecksums(InodeId ino) = 0;
  virtual Status PutChecksum(InodeId ino, const Checksum& c) = 0;
  virtual Result<bool> DeleteChecksum(InodeId ino, ChecksumType type) = 0;
  virtual Result<std::vector<Location>> ListLocations(InodeId ino) = 0;
  // Errors: Exists.
  virtual Status AddLocation(InodeId ino, const Location& l) = 0;
  virtual Result<bool> DeleteLocation(InodeId ino, LocationType type,
                                      std::string_view location) = 0;

  // --- small files' bytes (schema version 8, table inode_data) ---
  // A regular file's bytes kept in the database (Namespace::WriteInline),
  // or nullopt: its bytes, if any, are in a data store. Like the metadata
  // above, no check that the inode exists; writers hold it kExclusive.
  virtual Result<std::optional<std::string>> GetInlineData(InodeId ino) = 0;
  // Inserts or replaces.
  virtual Status PutInlineData(InodeId ino, std::string_view bytes) = 0;
  // Whether there was a row.
  virtual Result<bool> DeleteInlineData(InodeId ino) = 0;
  // Whether the file has a pNFS layout (schema 5's pnfs_layouts): asked by
  // the first inline write of every new file, so a typed, prepared probe.
  virtual Result<bool> HasLayout(InodeId ino) = 0;
};

// inodes.mode carries this bit when the inode has ACEs (docs/schema.md):
// access checks on inodes without an ACL then never probe the aces table.
inline constexpr uint32_t kModeHasAclBit = 0x10000;

// A function run inside one transaction. It may run more than once (the
// backend retries on transient conflicts), so it must have no effect outside
// the transaction besides what it returns through captured variables that it
// resets on entry.
using TxnFn = std::function<Status(Transaction&)>;

class Backend {
 public:
  virtual ~Backend() = default;

  // "sqlite" or "postgresql": selects the migrations in schema/.
  virtual std::string_view Dialect() const = 0;

  // Runs `fn` in a read-write transaction and commits durably (SQLite: maybe
  // together with other callers' transactions in one group commit; with
  // defer_sync the commit is durable once its ticket is, below). On a
  // transient conflict the transaction is rolled back and `fn` runs again;
  // Retry never reaches the caller. If `fn` returns an error the
  // transaction is rolled back and that error returned.
  virtual Status Write(const TxnFn& fn) = 0;

  // Runs `fn` for reading only. SQLite: one transaction, one consistent
  // snapshot. PostgreSQL: each statement commits on its own (autocommit,
  // READ COMMITTED), so two statements in `fn` may see different states;
  // that saves the BEGIN/COMMIT round trips on the lookup hot path, and
  // every reader in namespace.cc reads one row or one page, or tolerates a
  // change between statements (it re-checks under Write when it matters).
  virtual Status Read(const TxnFn& fn) = 0;

  // The cookie verifier of this namespace (fs_info.verifier): cookies stay
  // valid across changes, so it only changes if the namespace is rebuilt.
  virtual uint64_t CookieVerifier() = 0;

  // --- schema management (used by schema.cc and nsadmin) ---
  // The highest version recorded in schema_version; 0 for an empty
  // database. Errors: Corruption (tables exist but no schema_version).
  virtual Result<int> SchemaVersion() = 0;
  // Runs a migration script and records `version` in schema_version, in one
  // transaction: either all of it applies or none.
  virtual Status ApplyMigration(int version, std::string_view name,
                                std::string_view sql) = 0;
  // Called once the schema is known to be current (loads fs_info, starts
  // background work such as folding dir_deltas).
  virtual Status Start() = 0;

  // --- deferred durability (NamespaceOptions::defer_sync) ---
  // A commit ticket names a point in the backend's commit order; it is
  // durable once every commit up to it is on stable storage. A backend
  // whose Write() returns only after a durable commit hands out 0, which
  // is always durable.
  //
  // The latest commit of this thread's Write()s since its last call that
  // may not be durable yet, or 0; resets it.
  virtual uint64_t TakeCommitTicket() { return 0; }
  // The latest commit of any thread if it may not be durable yet, else 0.
  virtual uint64_t LatestCommitTicket() { return 0; }
  // Runs fn(true) once `ticket` is durable: at once on this thread if it
  // is already (0 always is), else later on the backend's own thread;
  // fn(false) if it never will be (the log could not be synced). `fn`
  // must not block.
  virtual void WhenDurable(uint64_t /*ticket*/,
                           std::function<void(bool durable)> fn) {
    fn(true);
  }
};

// Blocks until `ticket` of `backend` is durable; false if it never will be.
bool AwaitDurable(Backend& backend, uint64_t ticket);

// Forwards every call to another backend, so a test double overrides only
// what it needs (fault injection) and a cache can sit in front.
class BackendWrapper : public Backend {
 public:
  explicit BackendWrapper(std::unique_ptr<Backend> target)
      : target_(std::move(target)) {}
  std::string_view Dialect() const override { return target_->Dialect(); }
  Status Write(const TxnFn& fn) override { return target_->Write(fn); }
  Status Read(const TxnFn& fn) override { return target_->Read(fn); }
  uint64_t CookieVerifier() override { return target_->CookieVerifier(); }
  Result<int> SchemaVersion() override { return target_->SchemaVersion(); }
  Status ApplyMigration(int version, std::string_view name,
                        std::string_view sql) override {
    return target_->ApplyMigration(version, name, sql);
  }
  Status Start() override { return target_->Start(); }
  uint64_t TakeCommitTicket() override { return target_->TakeCommitTicket(); }
  uint64_t LatestCommitTicket() override {
    return target_->LatestCommitTicket();
  }
  void WhenDurable(uint64_t ticket,
                   std::function<void(bool durable)> fn) override {
    target_->WhenDurable(ticket, std::move(fn));
  }
  Backend& target() { return *target_; }

 private:
  std::unique_ptr<Backend> target_;
};

// Creates the backend for a URI without touching the schema.
// sqlite:... and postgresql://... / postgres://... are registered.
// Errors: Invalid (unknown scheme or malformed URI), Unavailable.
Result<std::unique_ptr<Backend>> OpenBackend(const std::string& uri,
                                             const NamespaceOptions& options);

// Registry: a backend factory per URI scheme (the part before ':').
using BackendFactory = std::function<Result<std::unique_ptr<Backend>>(
    const std::string& uri, const NamespaceOptions& options)>;
void RegisterBackend(const std::string& scheme, BackendFactory factory);

// Defined by each backend's .cc; called by OpenBackend so the registrations
// survive static linking.
Result<std::unique_ptr<Backend>> OpenSqliteBackend(
    const std::string& uri, const NamespaceOptions& options);
Result<std::unique_ptr<Backend>> OpenPostgresBackend(
    const std::string& uri, const NamespaceOptions& options);

// Current wall clock in nanoseconds since the epoch.
TimeNs NowNs();

}  // namespace ns
