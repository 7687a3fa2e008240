// The PostgreSQL backend's connections, statement names and row
// conversion, shared by its files (private to libnamespace; the design is
// described atop pg_backend.cc).

#ifndef NS_LIBNAMESPACE_SRC_PG_CONNECTION_H_
#define NS_LIBNAMESPACE_SRC_PG_CONNECTION_H_

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
#include "libnamespace/src/pg_errors.h"
#include "libnamespace/src/pg_statements.h"

namespace ns {
namespace pg_internal {

using Clock = std::chrono::steady_clock;

// Advisory lock keys (pg_advisory_xact_lock takes one bigint). Fixed so
// that every process on the database agrees; the ASCII spells what they
// guard, which makes them recognisable in pg_locks.
constexpr int64_t kTopologyLockKey = 0x6e732d746f706f31;  // "ns-topo1"
constexpr int64_t kSchemaLockKey = 0x6e732d736368656d;    // "ns-schem"

// Serialization failures and deadlocks are retried this often before the
// caller sees Unavailable (a caller never sees Retry).
constexpr int kMaxConflictRetries = 1000;
// How long an operation keeps trying to reach a server that went away
// (restart, failover) before Unavailable reaches the caller.
constexpr auto kUnavailableBudget = std::chrono::seconds(20);
// The folding thread wakes this often, and folds at most this many
// directories before looking again.
constexpr auto kFoldInterval = std::chrono::milliseconds(50);
constexpr int kFoldBatch = 256;
// The folding thread deletes expired commit tokens this often.
constexpr auto kTokenExpiryInterval = std::chrono::seconds(10);
// Inode numbers reserved from inode_ino_seq per round trip (see InoCache).
constexpr int kInoBatch = 64;
// Above this many inodes (pg_class.reltuples), Stats estimates from a
// sample instead of counting every row.
constexpr double kExactStatsRows = 1e6;
// Rows the Stats sample aims to read when estimating.
constexpr double kStatsSampleRows = 50000;

// Statement names, shared by the table (pg_statements.cc) and the call
// sites.
constexpr char kGet[] = "get";
constexpr char kGetKeyShare[] = "get_ks";
constexpr char kGetUpdate[] = "get_upd";
constexpr char kLookupWithParent[] = "lookup_wp";
constexpr char kNextInos[] = "next_inos";
constexpr char kInsertInode[] = "ins_inode";
constexpr char kUpdateInode[] = "upd_inode";
constexpr char kDeleteInode[] = "del_inode";
constexpr char kLookupEntry[] = "lookup_ent";
constexpr char kInsertEntry[] = "ins_ent";
constexpr char kDeleteEntry[] = "del_ent";
constexpr char kHasEntries[] = "has_ent";
constexpr char kList[] = "list";
constexpr char kListAttrs[] = "list_attrs";
constexpr char kDirChanged[] = "dir_changed";
constexpr char kInsertSymlink[] = "ins_symlink";
constexpr char kReadSymlink[] = "read_symlink";
constexpr char kAddOrphan[] = "add_orphan";
constexpr char kRemoveOrphan[] = "rm_orphan";
constexpr char kLockTopology[] = "lock_topo";
constexpr char kFoldList[] = "fold_list";
constexpr char kFold[] = "fold";
constexpr char kVerifier[] = "verifier";
constexpr char kStatsMeta[] = "stats_meta";
constexpr char kStatsExact[] = "stats_exact";
constexpr char kStatsSample[] = "stats_sample";
constexpr char kGetAcl[] = "get_acl";
constexpr char kDeleteAcl[] = "del_acl";
constexpr char kInsertAces[] = "ins_aces";
constexpr char kGetXattr[] = "get_xattr";
constexpr char kListXattrs[] = "list_xattrs";
constexpr char kPutXattr[] = "put_xattr";
constexpr char kDeleteXattr[] = "del_xattr";
constexpr char kGetTagOrigin[] = "get_tag_origin";
constexpr char kSetTagOrigin[] = "set_tag_origin";
constexpr char kInheritTags[] = "inherit_tags";
constexpr char kListTags[] = "list_tags";
constexpr char kCopyTags[] = "copy_tags";
constexpr char kPutTag[] = "put_tag";
constexpr char kDeleteTag[] = "del_tag";
constexpr char kCollectTags[] = "collect_tags";
constexpr char kListChecksums[] = "list_cksums";
constexpr char kPutChecksum[] = "put_cksum";
constexpr char kDeleteChecksum[] = "del_cksum";
constexpr char kListLocations[] = "list_locs";
constexpr char kAddLocation[] = "add_loc";
constexpr char kDeleteLocation[] = "del_loc";
constexpr char kGetInlineData[] = "get_inline";
constexpr char kPutInlineData[] = "put_inline";
constexpr char kDeleteInlineData[] = "del_inline";
constexpr char kHasLayout[] = "has_layout";
constexpr char kGetGrace[] = "get_grace";
constexpr char kGetGraceUpdate[] = "get_grace_upd";
constexpr char kPutGrace[] = "put_grace";
constexpr char kGetClient[] = "get_client";
constexpr char kListClients[] = "list_clients";
constexpr char kPutClient[] = "put_client";
constexpr char kDeleteClient[] = "del_client";

struct StatementDef {
  std::string name;
  std::string sql;
};

// Every statement, registered by name on each connection
// (pg_statements.cc).
const std::vector<StatementDef>& Statements();

// --- Connections -----------------------------------------------------------

// One server connection with every statement registered.
struct PgConn {
  explicit PgConn(const std::string& uri) : conn(uri), quiet(conn) {
    // libpqxx 6 silently reconnects a broken connection on its next use.
    // Inside a transaction that would run the remaining statements in
    // autocommit on a new session and commit half of it; the pool replaces
    // broken connections instead. (Deprecated in libpqxx 6 for removal in
    // 7, where reconnection is gone altogether.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    conn.inhibit_reactivation(true);
#pragma GCC diagnostic pop
    for (const StatementDef& s : Statements()) conn.prepare(s.name, s.sql);
    // Every statement here is an index probe, and the plans are cached
    // per connection. dir_deltas is a queue whose size swings between
    // empty and thousands of rows between autovacuum runs; a generic plan
    // made while it was empty would seq-scan it on every lookup until the
    // next ANALYZE. Disabling seq scans pins the index plans; jit stays
    // off because a disabled seq scan (where one is unavoidable) inflates
    // costs past the JIT thresholds. A readdir page is a bounded index
    // range scan; a parallel plan for it starts worker processes per page
    // and made the cost per page grow with the directory, so no parallel
    // workers either.
    Txn().exec(std::string(PgSessionSettings()));
  }

  // The connection's one nontransaction, kept open for its lifetime: Read
  // and Write both run on it (Write sends its own BEGIN/COMMIT), and making
  // one per call costs a system call (libpqxx polls for notifications) and
  // allocations on the hot path.
  pqxx::nontransaction& Txn() {
    if (!txn) txn.emplace(conn);
    return *txn;
  }
  // Closes it, for code that needs a pqxx::work instead.
  void EndTxn() { txn.reset(); }

  pqxx::connection conn;
  // libpqxx's default handler prints every server notice to stderr; a
  // library must not write to its host's stderr.
  pqxx::quiet_errorhandler quiet;
  std::optional<pqxx::nontransaction> txn;  // see Txn()
};

// At most `max` connections, made on demand; callers beyond that wait.
// Idle connections are reused last-in first-out so the busiest ones stay
// warm (statements already prepared on the server).
class ConnPool {
 public:
  ConnPool(std::string uri, int max) : uri_(std::move(uri)), max_(max) {}

  // An idle connection, or a new one. Throws what pqxx::connection throws
  // when the server cannot be reached.
  std::unique_ptr<PgConn> Acquire();

  // Returns a connection; a broken one is closed and its slot freed.
  void Release(std::unique_ptr<PgConn> c, bool broken);

  // Closes every idle connection. After one connection broke the server
  // most likely restarted, and the idle ones are dead too; dropping them
  // spares the next callers a failed round trip each.
  void DropIdle();

  const std::string& uri() const { return uri_; }

 private:
  const std::string uri_;
  const int max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<PgConn>> idle_;  // guarded by mu_
  int open_ = 0;  // idle + lent out + being made; guarded by mu_
};

// Inode numbers taken from inode_ino_seq ahead of need, shared by all
// connections. With a number in hand, InsertInode needs no answer from the
// server and travels with the next statement (see PgTxn::Defer). Numbers
// reserved but never used leave gaps, which the sequence already allows.
class InoCache {
 public:
  std::optional<InodeId> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return std::nullopt;
    const InodeId ino = free_.back();
    free_.pop_back();
    return ino;
  }
  void Add(std::vector<InodeId> inos) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.insert(free_.end(), inos.begin(), inos.end());
    // Hand out the smallest first: numbers then grow with time, as a
    // reader of the table would expect.
    std::sort(free_.begin(), free_.end(), std::greater<InodeId>());
  }
  // Forgets every reserved number. After a lost connection the server may
  // have crashed or been replaced by a promoted standby that never saw the
  // reservation (nextval's WAL record is only durable with a later
  // commit), and would hand the same numbers out again.
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    free_.clear();
  }

 private:
  std::mutex mu_;
  std::vector<InodeId> free_;  // descending; guarded by mu_
};

// The URI for messages: scheme, user, host, port and database only, so a
// password (in the userinfo or as ?password=) never reaches a log.
std::string SafeUri(const std::string& uri);

// --- Row conversion --------------------------------------------------------

// Every integer column is bigint or int, sent as decimal text.
// std::from_chars parses it several times faster than field::as<>, which
// matters for readdir pages (20 columns per entry). NULL (empty text) and
// anything that is not a whole decimal number throw, as as<> would.
template <typename T>
T Get(const pqxx::field& f) {
  const char* begin = f.c_str();
  const char* end = begin + f.size();
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(begin, end, v);
  if (f.is_null() || ec != std::errc() || ptr != end) {
    throw pqxx::conversion_error("column " + std::string(f.name()) +
                                 ": not an integer: '" + f.c_str() + "'");
  }
  return static_cast<T>(v);
}

// The column under `col` as a T, moving `col` to the next column.
template <typename T>
T Next(pqxx::const_row_iterator& col) {
  const T v = Get<T>(*col);
  ++col;
  return v;
}

// Reads the 16 raw attribute columns starting at `base` and adds the
// pending entry changes in the 3 columns at `deltas` (see DeltasOf; NULL
// when the statement found no delta row): the effective attributes the
// Transaction interface promises.
Attr RowToAttr(const pqxx::row& r, int base, int deltas);

inline std::string Text(const pqxx::field& f) {
  return std::string(f.c_str(), f.size());
}

inline int TypeCode(FileType t) { return static_cast<int>(t); }

}  // namespace pg_internal
}  // namespace ns

#endif  // NS_LIBNAMESPACE_SRC_PG_CONNECTION_H_
