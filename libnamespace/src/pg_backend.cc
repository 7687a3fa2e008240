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
#include "libnamespace/src/pg_commit_token.h"
#include "libnamespace/src/pg_errors.h"
#include "libnamespace/src/pg_statements.h"

namespace ns {
namespace {

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

// --- SQL -------------------------------------------------------------------
//
// A statement that returns attributes returns the 16 raw inodes columns in
// Attr field order, then a directory's pending entry changes as three
// columns (count, nlink sum, latest time; see DeltasOf); RowToAttr adds the
// two up. Doing that sum in SQL (nlink + n, greatest(mtime, t), ...) made
// a lookup measurably slower: expressions in the select list are set up
// anew on every execution.

std::string RawCols(const std::string& i) {
  std::string out;
  for (const char* col :
       {"ino", "type", "mode", "nlink", "uid", "gid", "size", "rdev_major",
        "rdev_minor", "atime_ns", "mtime_ns", "ctime_ns", "btime_ns", "change",
        "generation", "parent"}) {
    if (!out.empty()) out += ", ";
    out += i + "." + col;
  }
  return out;
}

// A directory's pending entry changes as one row (c = changes, n = nlink
// delta, t = latest time; n and t NULL when there are none), computed
// inside the statement that reads the directory so row and deltas come
// from one snapshot. The `type = 2` test becomes a one-time filter: files
// never probe dir_deltas.
std::string DeltasOf(const std::string& i) {
  return "(SELECT count(*) AS c, sum(nlink_delta) AS n, max(time_ns) AS t "
         "FROM dir_deltas WHERE parent = " +
         i + ".ino AND " + i + ".type = 2)";
}

// A locking read returns, besides the attributes, whether the row it
// locked is the version its snapshot saw. In READ COMMITTED, when the row
// was updated after the statement's snapshot was taken (a fold, or a
// writer we waited for), PostgreSQL locks and returns the newest version
// while the deltas subquery still reflects the older snapshot; the two
// would then count the folded deltas twice. The scalar subquery reads the
// snapshot's version, so a differing xmin tells the caller to read again
// (with the lock now held, from a fresh snapshot).
//
// Column 20 carries the inode's ACEs ("type,flags,mask,kind,id;..." in
// order) when its mode has the ACL bit, else NULL: a create under a
// directory with an ACL needs them, and fetching them here saves that
// create a round trip. The one-time filter on mode keeps inodes without an
// ACL from probing aces.
std::string LockingGet(const std::string& clause) {
  return "SELECT " + RawCols("i") +
         ", d.c, d.n, d.t, "
         "i.xmin = (SELECT x.xmin FROM inodes x WHERE x.ino = $1), "
         "(SELECT string_agg(a.type || ',' || a.flags || ',' || a.mask || ',' "
         "|| a.who_kind || ',' || a.who_id, ';' ORDER BY a.pos) FROM aces a "
         "WHERE a.ino = i.ino AND i.mode >= 65536) "
         "FROM inodes i CROSS JOIN LATERAL " +
         DeltasOf("i") + " d WHERE i.ino = $1 " + clause;
}

// Statement names, shared by the table below and the call sites.
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

const std::vector<StatementDef>& Statements() {
  static const std::vector<StatementDef>* const defs = [] {
    auto* v = new std::vector<StatementDef>;
    v->push_back({kGet, "SELECT " + RawCols("i") +
                            ", d.c, d.n, d.t FROM inodes i "
                            "CROSS JOIN LATERAL " +
                            DeltasOf("i") + " d WHERE i.ino = $1"});
    v->push_back({kGetKeyShare, LockingGet("FOR KEY SHARE OF i")});
    v->push_back({kGetUpdate, LockingGet("FOR UPDATE OF i")});
    // Parent, entry and child in one statement; the deltas of both
    // directories in one aggregate over one index probe (= ANY), which
    // measured cheaper than a lateral subquery for each.
    v->push_back({kLookupWithParent,
                  "SELECT " + RawCols("p") + ", e.child, " + RawCols("c") +
                      ", d.* FROM inodes p "
                      "LEFT JOIN dirents e ON e.parent = p.ino AND e.name = $2 "
                      "LEFT JOIN inodes c ON c.ino = e.child "
                      "CROSS JOIN LATERAL (SELECT "
                      "count(*) FILTER (WHERE parent = p.ino), "
                      "sum(nlink_delta) FILTER (WHERE parent = p.ino), "
                      "max(time_ns) FILTER (WHERE parent = p.ino), "
                      "count(*) FILTER (WHERE parent = c.ino), "
                      "sum(nlink_delta) FILTER (WHERE parent = c.ino), "
                      "max(time_ns) FILTER (WHERE parent = c.ino) "
                      "FROM dir_deltas WHERE parent = ANY (ARRAY["
                      "CASE WHEN p.type = 2 THEN p.ino END, "
                      "CASE WHEN c.type = 2 THEN c.ino END])) d "
                      "WHERE p.ino = $1"});
    v->push_back({kNextInos,
                  "SELECT nextval('inode_ino_seq') "
                  "FROM generate_series(1, $1::int)"});
    v->push_back(
        {kInsertInode,
         "INSERT INTO inodes (ino, type, mode, nlink, uid, gid, size, "
         "rdev_major, rdev_minor, atime_ns, mtime_ns, ctime_ns, btime_ns, "
         "change, generation, parent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
         "$9, $10, $11, $12, $13, $14, $15, $16)"});
    // Folds the directory's pending deltas and writes the row in one
    // statement. The caller holds FOR UPDATE, which keeps DirChanged (it
    // needs FOR KEY SHARE) and the folder (it skips locked rows) away, so
    // the deltas deleted here are exactly those the caller's attributes
    // already include. For files the DELETE finds nothing.
    v->push_back(
        {kUpdateInode,
         "WITH d AS (DELETE FROM dir_deltas WHERE parent = $1 "
         "RETURNING nlink_delta), "
         "s AS (SELECT count(*) AS c, coalesce(sum(nlink_delta), 0) AS n "
         "FROM d) "
         "UPDATE inodes i SET mode = $2, uid = $3, gid = $4, size = $5, "
         "rdev_major = $6, rdev_minor = $7, atime_ns = $8, mtime_ns = $9, "
         "ctime_ns = $10, parent = $11, "
         "nlink = CASE WHEN i.type = 2 THEN i.nlink + s.n ELSE $12 END, "
         "change = i.change + s.c + 1 FROM s WHERE i.ino = $1"});
    // Every side row in one statement. The CTEs share one snapshot, so
    // the tag set test excludes the reference deleted beside it.
    v->push_back({kDeleteInode,
                  "WITH s AS (DELETE FROM symlinks WHERE ino = $1), "
                  "o AS (DELETE FROM orphans WHERE ino = $1), "
                  "d AS (DELETE FROM dir_deltas WHERE parent = $1), "
                  "a AS (DELETE FROM aces WHERE ino = $1), "
                  "x AS (DELETE FROM xattrs WHERE ino = $1), "
                  "k AS (DELETE FROM checksums WHERE ino = $1), "
                  "l AS (DELETE FROM locations WHERE ino = $1), "
                  "b AS (DELETE FROM inode_data WHERE ino = $1), "
                  "r AS (DELETE FROM dir_tags WHERE ino = $1), "
                  "t AS (DELETE FROM tags WHERE origin = "
                  "(SELECT origin FROM dir_tags WHERE ino = $1) AND NOT EXISTS "
                  "(SELECT 1 FROM dir_tags r WHERE r.origin = tags.origin "
                  "AND r.ino <> $1)) "
                  "DELETE FROM inodes WHERE ino = $1"});
    // --- metadata (version 3). Binary values travel as hex text. ---
    v->push_back({kGetAcl,
                  "SELECT type, flags, mask, who_kind, who_id FROM aces "
                  "WHERE ino = $1 ORDER BY pos"});
    v->push_back({kDeleteAcl, "DELETE FROM aces WHERE ino = $1"});
    // The whole ACL as five parallel arrays: one statement for any length.
    v->push_back({kInsertAces,
                  "INSERT INTO aces (ino, pos, type, flags, mask, who_kind, "
                  "who_id) SELECT $1, u.ord - 1, u.t, u.f, u.m, u.k, u.i FROM "
                  "unnest($2::int[], $3::int[], $4::int[], $5::int[], "
                  "$6::bigint[]) WITH ORDINALITY AS u(t, f, m, k, i, ord)"});
    v->push_back({kGetXattr,
                  "SELECT encode(value, 'hex') FROM xattrs "
                  "WHERE ino = $1 AND name = $2"});
    v->push_back({kListXattrs,
                  "SELECT name, length(value) FROM xattrs WHERE ino = $1 "
                  "ORDER BY name"});
    v->push_back({kPutXattr,
                  "INSERT INTO xattrs (ino, name, value) "
                  "VALUES ($1, $2, decode($3, 'hex')) "
                  "ON CONFLICT (ino, name) DO UPDATE SET value = excluded.value"});
    v->push_back({kDeleteXattr,
                  "DELETE FROM xattrs WHERE ino = $1 AND name = $2"});
    v->push_back({kGetTagOrigin, "SELECT origin FROM dir_tags WHERE ino = $1"});
    v->push_back({kSetTagOrigin,
                  "INSERT INTO dir_tags (ino, origin) VALUES ($1, $2) "
                  "ON CONFLICT (ino) DO UPDATE SET origin = excluded.origin"});
    v->push_back({kInheritTags,
                  "INSERT INTO dir_tags (ino, origin) "
                  "SELECT $1, origin FROM dir_tags WHERE ino = $2"});
    v->push_back({kListTags,
                  "SELECT name, encode(value, 'hex') FROM tags "
                  "WHERE origin = $1 ORDER BY name"});
    v->push_back({kCopyTags,
                  "INSERT INTO tags (origin, name, value) "
                  "SELECT $2, name, value FROM tags WHERE origin = $1 "
                  "ON CONFLICT (origin, name) DO UPDATE SET value = excluded.value"});
    v->push_back({kPutTag,
                  "INSERT INTO tags (origin, name, value) "
                  "VALUES ($1, $2, decode($3, 'hex')) "
                  "ON CONFLICT (origin, name) DO UPDATE SET value = excluded.value"});
    v->push_back({kDeleteTag,
                  "DELETE FROM tags WHERE origin = $1 AND name = $2"});
    v->push_back({kCollectTags,
                  "WITH gone AS (DELETE FROM tags t WHERE NOT EXISTS "
                  "(SELECT 1 FROM dir_tags r WHERE r.origin = t.origin) "
                  "RETURNING origin) SELECT count(DISTINCT origin) FROM gone"});
    // --- small files' bytes (version 8) ---
    v->push_back({kGetInlineData,
                  "SELECT encode(bytes, 'hex') FROM inode_data WHERE ino = $1"});
    v->push_back({kPutInlineData,
                  "INSERT INTO inode_data (ino, bytes) "
                  "VALUES ($1, decode($2, 'hex')) "
                  "ON CONFLICT (ino) DO UPDATE SET bytes = excluded.bytes"});
    v->push_back({kDeleteInlineData, "DELETE FROM inode_data WHERE ino = $1"});
    v->push_back({kHasLayout, "SELECT 1 FROM pnfs_layouts WHERE ino = $1"});
    v->push_back({kListChecksums,
                  "SELECT type, value FROM checksums WHERE ino = $1 "
                  "ORDER BY type"});
    v->push_back({kPutChecksum,
                  "INSERT INTO checksums (ino, type, value) VALUES ($1, $2, $3) "
                  "ON CONFLICT (ino, type) DO UPDATE SET value = excluded.value"});
    v->push_back({kDeleteChecksum,
                  "DELETE FROM checksums WHERE ino = $1 AND type = $2"});
    v->push_back({kListLocations,
                  "SELECT type, location, added_ns FROM locations "
                  "WHERE ino = $1 ORDER BY type, location"});
    v->push_back({kAddLocation,
                  "INSERT INTO locations (ino, type, location, added_ns) "
                  "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"});
    v->push_back({kDeleteLocation,
                  "DELETE FROM locations WHERE ino = $1 AND type = $2 "
                  "AND location = $3"});
    v->push_back({kLookupEntry,
                  "SELECT child, type, cookie FROM dirents "
                  "WHERE parent = $1 AND name = $2"});
    // ON CONFLICT DO NOTHING rather than catching unique_violation: the
    // transaction stays usable, and a concurrent insert of the same name
    // is still waited for and reported (no row inserted -> Exists).
    v->push_back({kInsertEntry,
                  "INSERT INTO dirents (parent, name, child, type, cookie) "
                  "VALUES ($1, $2, $3, $4, nextval('dirent_cookie_seq')) "
                  "ON CONFLICT (parent, name) DO NOTHING"});
    v->push_back(
        {kDeleteEntry, "DELETE FROM dirents WHERE parent = $1 AND name = $2"});
    v->push_back({kHasEntries,
                  "SELECT EXISTS (SELECT 1 FROM dirents WHERE parent = $1)"});
    v->push_back({kList,
                  "SELECT name, child, type, cookie FROM dirents "
                  "WHERE parent = $1 AND cookie > $2 ORDER BY cookie "
                  "LIMIT $3"});
    // One statement, one snapshot: the page is an index range scan on
    // dirents_parent_cookie joined to inodes, and each entry's pending
    // deltas a lateral aggregate whose `e.type = 2` test PostgreSQL turns
    // into a one-time filter, so files (most entries) never touch
    // dir_deltas and yield no delta row (NULL columns; RowToAttr reads
    // them as none). Measured on a page of 1,025 files: 1.8 ms, against
    // 3 to 10 ms for a CTE that collected the page's directories first and
    // joined their deltas back (materialise, aggregate, sort again).
    v->push_back(
        {kListAttrs,
         "SELECT e.name, e.child, e.type, e.cookie, " + RawCols("i") +
             ", d.c, d.n, d.t FROM dirents e "
             "LEFT JOIN inodes i ON i.ino = e.child "
             "LEFT JOIN LATERAL (SELECT count(*) AS c, sum(nlink_delta) AS n, "
             "max(time_ns) AS t FROM dir_deltas "
             "WHERE parent = e.child AND e.type = 2) d ON true "
             "WHERE e.parent = $1 AND e.cookie > $2 ORDER BY e.cookie "
             "LIMIT $3"});
    v->push_back({kDirChanged,
                  "INSERT INTO dir_deltas (parent, nlink_delta, time_ns) "
                  "VALUES ($1, $2, $3)"});
    v->push_back(
        {kInsertSymlink, "INSERT INTO symlinks (ino, target) VALUES ($1, $2)"});
    v->push_back({kReadSymlink, "SELECT target FROM symlinks WHERE ino = $1"});
    v->push_back({kAddOrphan,
                  "INSERT INTO orphans (ino, since_ns) VALUES ($1, $2) "
                  "ON CONFLICT (ino) DO NOTHING"});
    v->push_back({kRemoveOrphan, "DELETE FROM orphans WHERE ino = $1"});
    v->push_back({kLockTopology, "SELECT pg_advisory_xact_lock(" +
                                     std::to_string(kTopologyLockKey) + ")"});
    v->push_back(
        // Nothing on a standby (it cannot write; the primary folds and the
        // result replicates), without an error in its log every 50 ms.
        {kFoldList,
         "SELECT parent FROM dir_deltas WHERE NOT pg_is_in_recovery() "
         "GROUP BY parent LIMIT $1"});
    // Folds one directory's deltas into its row, atomically (one
    // statement). It locks the row FOR NO KEY UPDATE, which does not
    // conflict with the FOR KEY SHARE of concurrent creates, and SKIPs a
    // row someone holds FOR UPDATE: that transaction folds in UpdateInode
    // itself, and waiting on it while holding the delta rows this DELETE
    // took would deadlock with that fold. Deltas of an inode that no
    // longer exists are dropped.
    v->push_back(
        {kFold,
         "WITH l AS (SELECT ino FROM inodes WHERE ino = $1 "
         "FOR NO KEY UPDATE SKIP LOCKED), "
         "d AS (DELETE FROM dir_deltas WHERE parent = $1 AND "
         "(EXISTS (SELECT 1 FROM l) OR "
         "NOT EXISTS (SELECT 1 FROM inodes WHERE ino = $1)) "
         "RETURNING nlink_delta, time_ns), "
         "s AS (SELECT count(*) AS c, coalesce(sum(nlink_delta), 0) AS n, "
         "max(time_ns) AS t FROM d) "
         "UPDATE inodes i SET nlink = i.nlink + s.n, change = i.change + s.c, "
         "mtime_ns = greatest(i.mtime_ns, s.t), "
         "ctime_ns = greatest(i.ctime_ns, s.t) "
         "FROM s WHERE i.ino = $1 AND s.c > 0"});
    v->push_back({kVerifier, "SELECT verifier FROM fs_info WHERE id = 1"});
    // pg_relation_size rather than relpages: relpages stays 0 until the
    // first VACUUM/ANALYZE, e.g. right after a bulk load. Summed over the
    // partitions when inodes is partitioned (pg_partition_tree lists no
    // rows for a plain table; the parent has no storage of its own). One leaf
    // never analysed makes the sum unknown (-1), as for a plain table.
    v->push_back(
        {kStatsMeta,
         "SELECT CASE WHEN bool_or(c.reltuples < 0) THEN -1 "
         "ELSE sum(c.reltuples) END::float8, "
         "sum(pg_relation_size(c.oid))::int8 / "
         "current_setting('block_size')::int8, "
         "(SELECT last_value FROM inode_ino_seq) "
         "FROM pg_class c WHERE c.relkind = 'r' AND "
         "(c.oid = 'inodes'::regclass OR c.oid IN "
         "(SELECT relid FROM pg_partition_tree('inodes')))"});
    v->push_back({kStatsExact,
                  "SELECT count(*), coalesce(sum(size) FILTER "
                  "(WHERE type = 1), 0)::int8 FROM inodes"});
    v->push_back({kStatsSample,
                  "SELECT count(*), coalesce(sum(size) FILTER "
                  "(WHERE type = 1), 0)::float8 FROM inodes "
                  "TABLESAMPLE SYSTEM ($1::float4)"});
    // NFSv4 client records. Owners travel as hex text (decode/encode) so
    // they go through the same text parameters as everything else; a NULL
    // epoch travels as -1 (epochs start at 0).
    v->push_back({kGetGrace,
                  "SELECT current_epoch, recovery_epoch, started_ns "
                  "FROM nfs_grace WHERE id = 1"});
    v->push_back({kGetGraceUpdate,
                  "SELECT current_epoch, recovery_epoch, started_ns "
                  "FROM nfs_grace WHERE id = 1 FOR UPDATE"});
    v->push_back({kPutGrace,
                  "UPDATE nfs_grace SET current_epoch = $1, "
                  "recovery_epoch = NULLIF($2::int8, -1), started_ns = $3 "
                  "WHERE id = 1"});
    const std::string client_cols =
        "encode(owner, 'hex'), principal, verifier, clientid, confirmed_ns, "
        "confirmed_epoch, reclaim_epoch";
    v->push_back({kGetClient, "SELECT " + client_cols +
                                  " FROM nfs_clients "
                                  "WHERE owner = decode($1, 'hex')"});
    v->push_back({kListClients, "SELECT " + client_cols +
                                    " FROM nfs_clients ORDER BY owner"});
    v->push_back(
        {kPutClient,
         "INSERT INTO nfs_clients (owner, principal, verifier, clientid, "
         "confirmed_ns, confirmed_epoch, reclaim_epoch) VALUES "
         "(decode($1, 'hex'), $2, $3, $4, $5, $6, NULLIF($7::int8, -1)) "
         "ON CONFLICT (owner) DO UPDATE SET principal = EXCLUDED.principal, "
         "verifier = EXCLUDED.verifier, clientid = EXCLUDED.clientid, "
         "confirmed_ns = EXCLUDED.confirmed_ns, "
         "confirmed_epoch = EXCLUDED.confirmed_epoch, "
         "reclaim_epoch = EXCLUDED.reclaim_epoch"});
    v->push_back({kDeleteClient,
                  "DELETE FROM nfs_clients WHERE owner = decode($1, 'hex')"});
    v->push_back({kCommitTokenStatement, CommitTokenInsertSql()});
    return v;
  }();
  return *defs;
}

}  // namespace

std::optional<std::string> PgStatementSql(std::string_view name) {
  for (const StatementDef& s : Statements()) {
    if (s.name == name) return s.sql;
  }
  return std::nullopt;
}

std::string_view PgSessionSettings() {
  return "SET enable_seqscan = off; SET jit = off; "
         "SET max_parallel_workers_per_gather = 0; ";
}

namespace {

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
  std::unique_ptr<PgConn> Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !idle_.empty() || open_ < max_; });
    if (!idle_.empty()) {
      std::unique_ptr<PgConn> c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    ++open_;
    lock.unlock();
    try {
      return std::make_unique<PgConn>(uri_);
    } catch (...) {
      lock.lock();
      --open_;
      cv_.notify_one();
      throw;
    }
  }

  // Returns a connection; a broken one is closed and its slot freed.
  void Release(std::unique_ptr<PgConn> c, bool broken) {
    if (broken || !c->conn.is_open()) {
      c.reset();  // disconnect outside the lock
      std::lock_guard<std::mutex> lock(mu_);
      --open_;
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      idle_.push_back(std::move(c));
    }
    cv_.notify_one();
  }

  // Closes every idle connection. After one connection broke the server
  // most likely restarted, and the idle ones are dead too; dropping them
  // spares the next callers a failed round trip each.
  void DropIdle() {
    std::vector<std::unique_ptr<PgConn>> dead;
    {
      std::lock_guard<std::mutex> lock(mu_);
      dead.swap(idle_);
      open_ -= static_cast<int>(dead.size());
    }
    cv_.notify_all();
  }

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
std::string SafeUri(const std::string& uri) {
  const size_t scheme_end = uri.find("://");
  if (scheme_end == std::string::npos) return "(unparsable URI)";
  const std::string scheme = uri.substr(0, scheme_end);
  std::string rest = uri.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find('?'));
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  const std::string db =
      slash == std::string::npos ? "" : rest.substr(slash + 1);
  std::string user;
  const size_t at = authority.rfind('@');
  if (at != std::string::npos) {
    user = authority.substr(0, at);
    user = user.substr(0, user.find(':'));
    authority = authority.substr(at + 1);
  }
  std::string out = scheme + "://";
  if (!user.empty()) out += user + "@";
  out += authority.empty() ? "(local socket)" : authority;
  out += "/" + db;
  return out;
}

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
Attr RowToAttr(const pqxx::row& r, int base, int deltas) {
  // One iterator walks the 16 columns: row[i] would copy the result's
  // shared pointer for every field, which showed in readdir profiles.
  pqxx::const_row_iterator col = r.begin() + base;
  Attr a;
  a.ino = Next<InodeId>(col);
  a.type = static_cast<FileType>(Next<int>(col));
  const auto mode = Next<uint32_t>(col);
  a.mode = mode & 07777;
  a.has_acl = (mode & kModeHasAclBit) != 0;
  a.nlink = Next<uint32_t>(col);
  a.uid = Next<uint32_t>(col);
  a.gid = Next<uint32_t>(col);
  a.size = Next<uint64_t>(col);
  a.rdev_major = Next<uint32_t>(col);
  a.rdev_minor = Next<uint32_t>(col);
  a.atime = Next<TimeNs>(col);
  a.mtime = Next<TimeNs>(col);
  a.ctime = Next<TimeNs>(col);
  a.btime = Next<TimeNs>(col);
  a.change = Next<uint64_t>(col);
  a.generation = Next<uint32_t>(col);
  a.parent = Next<InodeId>(col);
  const int64_t changes = r[deltas].is_null() ? 0 : Get<int64_t>(r[deltas]);
  if (changes > 0) {
    a.nlink = static_cast<uint32_t>(static_cast<int64_t>(a.nlink) +
                                    Get<int64_t>(r[deltas + 1]));
    a.change += static_cast<uint64_t>(changes);
    const TimeNs t = Get<int64_t>(r[deltas + 2]);
    a.mtime = std::max(a.mtime, t);
    a.ctime = std::max(a.ctime, t);
  }
  return a;
}

std::string Text(const pqxx::field& f) {
  return std::string(f.c_str(), f.size());
}

int TypeCode(FileType t) { return static_cast<int>(t); }

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
  Status Commit() {
    // Nothing ran and nothing is queued: there is no transaction.
    if (!begin_sent_ && pending_ == "BEGIN;") return Status::Ok();
    // A connection the server closed while this transaction sat idle
    // (a restart terminates idle sessions) shows up here without sending
    // anything; then COMMIT was certainly never seen and the whole
    // transaction can be retried.
    const Status alive = PgGuard("pg commit", [&] {
      t_.conn().get_notifs();
      return t_.conn().is_open()
                 ? Status::Ok()
                 : Status::Unavailable("pg commit", "connection lost");
    });
    if (!alive.ok()) return alive;
    token_.reset();
    const bool with_token = tokens_ && wrote_;
    if (with_token) {
      // Once per connection: a round trip before COMMIT, nothing after.
      const Status prepared = PgGuard("pg commit", [&] {
        t_.conn().prepare_now(kCommitTokenStatement);
        return Status::Ok();
      });
      if (!prepared.ok()) {
        Rollback();
        return prepared;
      }
    }
    std::string sql;
    sql.swap(pending_);
    if (with_token) {
      token_ = NewCommitToken();
      AppendExecute(sql, kCommitTokenStatement, *token_);
      sql += ';';
    }
    sql += "COMMIT";
    begin_sent_ = true;
    try {
      (void)RunPgCommitHook(CommitPoint::kBeforeSend, t_.conn());
      t_.exec(sql);
      begin_sent_ = false;
      if (RunPgCommitHook(CommitPoint::kAfterAnswer, t_.conn())) {
        t_.conn().disconnect();
        throw pqxx::broken_connection("answer to COMMIT dropped by a test");
      }
      return Status::Ok();
    } catch (const std::exception& e) {
      if (!t_.conn().is_open()) {
        begin_sent_ = false;
        if (!wrote_) return Status::Ok();
        in_doubt_ = true;
        return Status::IOError(
            "pg commit",
            "commit outcome unknown: connection lost during COMMIT: " +
                PgMessage(e));
      }
      const auto* sql_error = dynamic_cast<const pqxx::sql_error*>(&e);
      const Status s =
          sql_error != nullptr && IsCommitTokenClash(*sql_error)
              ? Status::Retry("pg commit", "commit token clash")
              : PgStatus(e, "pg commit");
      Rollback();
      return s;
    }
  }

  // Ends the transaction without applying it; best effort (a failure means
  // the connection is gone, which rolls back too).
  void Rollback() {
    pending_.clear();
    if (!begin_sent_) return;
    begin_sent_ = false;
    try {
      t_.exec("ROLLBACK");
    } catch (const std::exception&) {
    }
  }

  Result<Attr> GetInode(InodeId ino, LockMode lock) override {
    return Run("pg get inode", [&]() -> Result<Attr> {
      // Row locks only mean something inside a Write; in a Read each
      // statement commits on its own, and a lock would only dirty the row.
      if (!writable_ || lock == LockMode::kNone) return PlainGet(ino);
      const pqxx::result r =
          Exec(lock == LockMode::kShared ? kGetKeyShare : kGetUpdate, ino);
      if (r.empty()) return NoInode(ino);
      if (!r[0][19].as<bool>()) return PlainGet(ino);
      Attr a = RowToAttr(r[0], 0, 16);
      // The row is locked now, so its ACL cannot change before commit
      // (SetAcl holds FOR UPDATE): keep the ACEs for GetAcl.
      if (a.has_acl && !r[0][20].is_null()) {
        std::optional<Acl> acl = ParseAceList(r[0][20].c_str());
        if (acl) prefetched_acl_[ino] = std::move(*acl);
      }
      return a;
    });
  }

  Result<std::pair<Attr, std::optional<Attr>>> LookupWithParent(
      InodeId parent, std::string_view name) override {
    using Pair = std::pair<Attr, std::optional<Attr>>;
    return Run("pg lookup", [&]() -> Result<Pair> {
      const pqxx::result r = Exec(kLookupWithParent, parent, std::string(name));
      if (r.empty()) return NoInode(parent);
      Pair out{RowToAttr(r[0], 0, 33), std::nullopt};
      if (!r[0][16].is_null()) {
        if (r[0][17].is_null()) {
          return Status::Corruption(
              "pg lookup", "entry " + std::string(name) + " in " +
                               std::to_string(parent) +
                               " names missing inode " + r[0][16].c_str());
        }
        out.second = RowToAttr(r[0], 17, 36);
      }
      return out;
    });
  }

  Result<InodeId> InsertInode(const Attr& a) override {
    return RunWrite("pg insert inode", [&]() -> Result<InodeId> {
      std::optional<InodeId> ino = inos_->Take();
      if (!ino) {
        const pqxx::result r = Exec(kNextInos, kInoBatch);
        std::vector<InodeId> got;
        got.reserve(r.size());
        for (const pqxx::row& row : r) got.push_back(Get<InodeId>(row[0]));
        ino = got.front();
        got.erase(got.begin());
        inos_->Add(std::move(got));
      }
      Defer(kInsertInode, *ino, TypeCode(a.type), StoredMode(a), a.nlink, a.uid, a.gid,
            a.size, a.rdev_major, a.rdev_minor, a.atime, a.mtime, a.ctime,
            a.btime, std::max<uint64_t>(a.change, 1), a.generation, a.parent);
      return *ino;
    });
  }

  // Deferred: the caller holds the row FOR UPDATE, so it exists and the
  // statement cannot miss; its errors surface with the next statement.
  Status UpdateInode(const Attr& a) override {
    return RunWrite("pg update inode", [&]() -> Status {
      Defer(kUpdateInode, a.ino, StoredMode(a), a.uid, a.gid, a.size, a.rdev_major,
            a.rdev_minor, a.atime, a.mtime, a.ctime, a.parent, a.nlink);
      return Status::Ok();
    });
  }

  // Deferred like UpdateInode; every caller locks the inode first.
  Status DeleteInode(InodeId ino) override {
    return RunWrite("pg delete inode", [&]() -> Status {
      Defer(kDeleteInode, ino);
      return Status::Ok();
    });
  }

  Result<std::optional<EntryRow>> LookupEntry(InodeId parent,
                                              std::string_view name) override {
    using Out = std::optional<EntryRow>;
    return Run("pg lookup entry", [&]() -> Result<Out> {
      const pqxx::result r = Exec(kLookupEntry, parent, std::string(name));
      if (r.empty()) return Out();
      EntryRow e;
      e.child = Get<InodeId>(r[0][0]);
      e.type = static_cast<FileType>(Get<int>(r[0][1]));
      e.cookie = Get<uint64_t>(r[0][2]);
      return Out(e);
    });
  }

  Status InsertEntry(InodeId parent, std::string_view name, InodeId child,
                     FileType type) override {
    return RunWrite("pg insert entry", [&]() -> Status {
      const pqxx::result r =
          Exec(kInsertEntry, parent, std::string(name), child, TypeCode(type));
      if (r.affected_rows() == 0) {
        return Status::Exists("pg insert entry", std::string(name));
      }
      return Status::Ok();
    });
  }

  Status DeleteEntry(InodeId parent, std::string_view name) override {
    return RunWrite("pg delete entry", [&]() -> Status {
      const pqxx::result r = Exec(kDeleteEntry, parent, std::string(name));
      if (r.affected_rows() == 0) {
        return Status::NotFound("pg delete entry", std::string(name));
      }
      return Status::Ok();
    });
  }

  Result<bool> HasEntries(InodeId dir) override {
    return Run("pg has entries", [&]() -> Result<bool> {
      return Exec(kHasEntries, dir)[0][0].as<bool>();
    });
  }

  Result<std::vector<DirEntry>> ListEntries(InodeId dir, uint64_t after_cookie,
                                            uint32_t limit,
                                            bool with_attrs) override {
    using Out = std::vector<DirEntry>;
    return Run("pg list entries", [&]() -> Result<Out> {
      // Cookies are bigint: nothing lies beyond the largest one.
      if (after_cookie >
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Out();
      }
      const pqxx::result r =
          Exec(with_attrs ? kListAttrs : kList, dir, after_cookie, limit);
      Out out;
      out.reserve(r.size());
      for (const pqxx::row& row : r) {
        DirEntry e;
        e.name = Text(row[0]);
        e.ino = Get<InodeId>(row[1]);
        e.type = static_cast<FileType>(Get<int>(row[2]));
        e.cookie = Get<uint64_t>(row[3]);
        if (with_attrs) {
          if (row[4].is_null()) {
            return Status::Corruption(
                "pg list entries",
                "entry " + e.name + " in " + std::to_string(dir) +
                    " names missing inode " + std::to_string(e.ino));
          }
          e.attr = RowToAttr(row, 4, 20);
        }
        out.push_back(std::move(e));
      }
      return out;
    });
  }

  Status DirChanged(InodeId dir, int nlink_delta, TimeNs now) override {
    return RunWrite("pg dir changed", [&]() -> Status {
      Defer(kDirChanged, dir, nlink_delta, now);
      return Status::Ok();
    });
  }

  Status InsertSymlink(InodeId ino, std::string_view target) override {
    return RunWrite("pg insert symlink", [&]() -> Status {
      Defer(kInsertSymlink, ino, std::string(target));
      return Status::Ok();
    });
  }

  Result<std::string> ReadSymlink(InodeId ino) override {
    return Run("pg read symlink", [&]() -> Result<std::string> {
      const pqxx::result r = Exec(kReadSymlink, ino);
      if (r.empty()) {
        return Status::Corruption("pg read symlink",
                                  "no target for inode " + std::to_string(ino));
      }
      return Text(r[0][0]);
    });
  }

  Status AddOrphan(InodeId ino, TimeNs now) override {
    return RunWrite("pg add orphan", [&]() -> Status {
      Defer(kAddOrphan, ino, now);
      return Status::Ok();
    });
  }

  Status RemoveOrphan(InodeId ino) override {
    return RunWrite("pg remove orphan", [&]() -> Status {
      Defer(kRemoveOrphan, ino);
      return Status::Ok();
    });
  }

  // Deferred too: whatever the caller reads next goes out behind it, so
  // the lock is held before that read runs.
  Status LockTopology() override {
    return RunWrite("pg lock topology", [&]() -> Status {
      Defer(kLockTopology);
      return Status::Ok();
    });
  }

  Result<GraceRow> GetGrace() override {
    return Run("pg get grace", [&]() -> Result<GraceRow> {
      const pqxx::result r = Exec(writable_ ? kGetGraceUpdate : kGetGrace);
      if (r.empty()) {
        return Status::Corruption("pg get grace",
                                  "the nfs_grace row is missing");
      }
      GraceRow row;
      row.current_epoch = r[0][0].as<int64_t>();
      if (!r[0][1].is_null()) row.recovery_epoch = r[0][1].as<int64_t>();
      row.started_ns = r[0][2].as<int64_t>();
      return row;
    });
  }

  Status PutGrace(const GraceRow& row) override {
    return RunWrite("pg put grace", [&]() -> Status {
      Defer(kPutGrace, row.current_epoch,
            row.recovery_epoch ? *row.recovery_epoch : int64_t{-1},
            row.started_ns);
      return Status::Ok();
    });
  }

  Result<ClientRecord> GetClientRecord(std::string_view owner) override {
    return Run("pg get client", [&]() -> Result<ClientRecord> {
      const pqxx::result r = Exec(kGetClient, HexOf(owner));
      if (r.empty()) return Status::NotFound("client record");
      return RowToClient(r[0]);
    });
  }

  Result<std::vector<ClientRecord>> ListClientRecords() override {
    return Run("pg list clients",
               [&]() -> Result<std::vector<ClientRecord>> {
                 const pqxx::result r = Exec(kListClients);
                 std::vector<ClientRecord> out;
                 out.reserve(r.size());
                 for (const pqxx::row& row : r) {
                   NS_ASSIGN_OR_RETURN(ClientRecord c, RowToClient(row));
                   out.push_back(std::move(c));
                 }
                 return out;
               });
  }

  Status PutClientRecord(const ClientRecord& rec) override {
    return RunWrite("pg put client", [&]() -> Status {
      Defer(kPutClient, HexOf(rec.owner), rec.principal,
            static_cast<int64_t>(rec.verifier),
            static_cast<int64_t>(rec.clientid), rec.confirmed_ns,
            rec.confirmed_epoch,
            rec.reclaim_epoch ? *rec.reclaim_epoch : int64_t{-1});
      return Status::Ok();
    });
  }

  Status DeleteClientRecord(std::string_view owner) override {
    return RunWrite("pg delete client", [&]() -> Status {
      Defer(kDeleteClient, HexOf(owner));
      return Status::Ok();
    });
  }

  Result<FsStats> Stats() override {
    return Run("pg stats", [&]() -> Result<FsStats> {
      const pqxx::result meta = Exec(kStatsMeta);
      const double reltuples = meta[0][0].as<double>();
      const int64_t pages = meta[0][1].as<int64_t>();
      const int64_t last_ino = meta[0][2].as<int64_t>();
      FsStats st;
      st.files_free =
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max() - last_ino);
      // reltuples is -1 until the first VACUUM/ANALYZE; then the table's
      // size on disk decides (8192 pages of 8 kB hold some 400,000 inode
      // rows at fillfactor 80).
      const bool small =
          reltuples >= 0 ? reltuples < kExactStatsRows : pages < 8192;
      if (small) {
        // A full scan: with enable_seqscan off (see PgConn) the planner
        // still takes the seq scan, having nothing else to offer.
        const pqxx::result r = Exec(kStatsExact);
        st.files = Get<uint64_t>(r[0][0]);
        st.bytes = Get<uint64_t>(r[0][1]);
        return st;
      }
      // Big table: count from the planner's statistics, and scale the
      // byte total of a block sample of about kStatsSampleRows rows.
      const double percent =
          reltuples > 0
              ? std::clamp(100.0 * kStatsSampleRows / reltuples, 0.001, 100.0)
              : 1.0;
      const pqxx::result r = Exec(kStatsSample, percent);
      const double sample_rows = r[0][0].as<double>();
      const double sample_bytes = r[0][1].as<double>();
      const double files =
          reltuples > 0 ? reltuples : sample_rows * 100.0 / percent;
      st.files = static_cast<uint64_t>(files);
      st.bytes = sample_rows > 0
                     ? static_cast<uint64_t>(sample_bytes * files / sample_rows)
                     : 0;
      return st;
    });
  }

  // --- metadata ---

  Result<Acl> GetAcl(InodeId ino) override {
    if (auto it = prefetched_acl_.find(ino); it != prefetched_acl_.end()) {
      return it->second;
    }
    return Run("pg get acl", [&]() -> Result<Acl> {
      const pqxx::result r = Exec(kGetAcl, ino);
      Acl acl;
      for (const pqxx::row& row : r) {
        Ace ace;
        ace.type = Get<uint32_t>(row[0]);
        ace.flags = Get<uint32_t>(row[1]);
        ace.mask = Get<uint32_t>(row[2]);
        const int kind = Get<int>(row[3]);
        if (kind < 0 || kind > static_cast<int>(AceWho::kNamedGroup)) {
          return Status::Corruption("pg get acl",
                                    "bad who kind on inode " +
                                        std::to_string(ino));
        }
        ace.who = static_cast<AceWho>(kind);
        ace.id = Get<uint32_t>(row[4]);
        acl.push_back(ace);
      }
      return acl;
    });
  }

  // Deferred: the caller holds the inode FOR UPDATE.
  Status SetAcl(InodeId ino, const Acl& acl) override {
    prefetched_acl_.erase(ino);
    return RunWrite("pg set acl", [&]() -> Status {
      Defer(kDeleteAcl, ino);
      if (acl.empty()) return Status::Ok();
      std::string t = "{", f = "{", m = "{", k = "{", i = "{";
      for (size_t n = 0; n < acl.size(); ++n) {
        const char* sep = n == 0 ? "" : ",";
        t += sep + std::to_string(acl[n].type);
        f += sep + std::to_string(acl[n].flags);
        m += sep + std::to_string(acl[n].mask);
        k += sep + std::to_string(static_cast<int>(acl[n].who));
        i += sep + std::to_string(acl[n].id);
      }
      Defer(kInsertAces, ino, t + "}", f + "}", m + "}", k + "}", i + "}");
      return Status::Ok();
    });
  }

  Result<std::optional<std::string>> GetXattr(InodeId ino,
                                              std::string_view name) override {
    using Out = std::optional<std::string>;
    return Run("pg get xattr", [&]() -> Result<Out> {
      const pqxx::result r = Exec(kGetXattr, ino, std::string(name));
      if (r.empty()) return Out();
      return Out(FromHex(r[0][0]));
    });
  }

  Result<std::vector<XattrName>> ListXattrs(InodeId ino) override {
    using Out = std::vector<XattrName>;
    return Run("pg list xattrs", [&]() -> Result<Out> {
      const pqxx::result r = Exec(kListXattrs, ino);
      Out out;
      for (const pqxx::row& row : r) {
        out.push_back({Text(row[0]), Get<uint64_t>(row[1])});
      }
      return out;
    });
  }

  Status PutXattr(InodeId ino, std::string_view name,
                  std::string_view value) override {
    return RunWrite("pg put xattr", [&]() -> Status {
      Defer(kPutXattr, ino, std::string(name), ToHex(value));
      return Status::Ok();
    });
  }

  Result<bool> DeleteXattr(InodeId ino, std::string_view name) override {
    return RunWrite("pg delete xattr", [&]() -> Result<bool> {
      return Exec(kDeleteXattr, ino, std::string(name)).affected_rows() > 0;
    });
  }

  Result<std::optional<std::string>> GetInlineData(InodeId ino) override {
    using Out = std::optional<std::string>;
    return Run("pg get inline data", [&]() -> Result<Out> {
      const pqxx::result r = Exec(kGetInlineData, ino);
      if (r.empty()) return Out();
      return Out(FromHex(r[0][0]));
    });
  }

  Status PutInlineData(InodeId ino, std::string_view bytes) override {
    return RunWrite("pg put inline data", [&]() -> Status {
      Defer(kPutInlineData, ino, ToHex(bytes));
      return Status::Ok();
    });
  }

  Result<bool> DeleteInlineData(InodeId ino) override {
    return RunWrite("pg delete inline data", [&]() -> Result<bool> {
      return Exec(kDeleteInlineData, ino).affected_rows() > 0;
    });
  }

  Result<bool> HasLayout(InodeId ino) override {
    return Run("pg has layout", [&]() -> Result<bool> {
      return !Exec(kHasLayout, ino).empty();
    });
  }

  Result<std::optional<InodeId>> GetTagOrigin(InodeId ino) override {
    using Out = std::optional<InodeId>;
    return Run("pg get tag origin", [&]() -> Result<Out> {
      const pqxx::result r = Exec(kGetTagOrigin, ino);
      if (r.empty()) return Out();
      return Out(Get<InodeId>(r[0][0]));
    });
  }

  Status SetTagOrigin(InodeId ino, InodeId origin) override {
    return RunWrite("pg set tag origin", [&]() -> Status {
      Defer(kSetTagOrigin, ino, origin);
      return Status::Ok();
    });
  }

  // Deferred: rides with the create's next statement or its COMMIT, so a
  // mkdir under tags costs no extra round trip.
  Status InheritTags(InodeId child, InodeId parent) override {
    return RunWrite("pg inherit tags", [&]() -> Status {
      Defer(kInheritTags, child, parent);
      return Status::Ok();
    });
  }

  Result<std::vector<Tag>> ListTags(InodeId origin) override {
    using Out = std::vector<Tag>;
    return Run("pg list tags", [&]() -> Result<Out> {
      const pqxx::result r = Exec(kListTags, origin);
      Out out;
      for (const pqxx::row& row : r) {
        Tag t;
        t.name = Text(row[0]);
        t.value = FromHex(row[1]);
        out.push_back(std::move(t));
      }
      return out;
    });
  }

  Status CopyTags(InodeId from, InodeId to) override {
    return RunWrite("pg copy tags", [&]() -> Status {
      Defer(kCopyTags, from, to);
      return Status::Ok();
    });
  }

  Status PutTag(InodeId origin, std::string_view name,
                std::string_view value) override {
    return RunWrite("pg put tag", [&]() -> Status {
      Defer(kPutTag, origin, std::string(name), ToHex(value));
      return Status::Ok();
    });
  }

  Result<bool> DeleteTag(InodeId origin, std::string_view name) override {
    return RunWrite("pg delete tag", [&]() -> Result<bool> {
      return Exec(kDeleteTag, origin, std::string(name)).affected_rows() > 0;
    });
  }

  Result<uint64_t> CollectTags() override {
    return RunWrite("pg collect tags", [&]() -> Result<uint64_t> {
      return Get<uint64_t>(Exec(kCollectTags)[0][0]);
    });
  }

  Result<std::vector<Checksum>> ListChecksums(InodeId ino) override {
    using Out = std::vector<Checksum>;
    return Run("pg list checksums", [&]() -> Result<Out> {
      const pqxx::result r = Exec(kListChecksums, ino);
      Out out;
      for (const pqxx::row& row : r) {
        out.push_back({static_cast<ChecksumType>(Get<int>(row[0])),
                       Text(row[1])});
      }
      return out;
    });
  }

  Status PutChecksum(InodeId ino, const Checksum& c) override {
    return RunWrite("pg put checksum", [&]() -> Status {
      Defer(kPutChecksum, ino, static_cast<int>(c.type), c.value);
      return Status::Ok();
    });
  }

  Result<bool> DeleteChecksum(InodeId ino, ChecksumType type) override {
    return RunWrite("pg delete checksum", [&]() -> Result<bool> {
      return Exec(kDeleteChecksum, ino, static_cast<int>(type))
                 .affected_rows() > 0;
    });
  }

  Result<std::vector<Location>> ListLocations(InodeId ino) override {
    using Out = std::vector<Location>;
    return Run("pg list locations", [&]() -> Result<Out> {
      const pqxx::result r = Exec(kListLocations, ino);
      Out out;
      for (const pqxx::row& row : r) {
        out.push_back({static_cast<LocationType>(Get<int>(row[0])),
                       Text(row[1]), Get<int64_t>(row[2])});
      }
      return out;
    });
  }

  Status AddLocation(InodeId ino, const Location& l) override {
    return RunWrite("pg add location", [&]() -> Status {
      const pqxx::result r =
          Exec(kAddLocation, ino, static_cast<int>(l.type), l.location,
               l.added_ns);
      if (r.affected_rows() == 0) {
        return Status::Exists("pg add location", l.location);
      }
      return Status::Ok();
    });
  }

  Result<bool> DeleteLocation(InodeId ino, LocationType type,
                              std::string_view location) override {
    return RunWrite("pg delete location", [&]() -> Result<bool> {
      return Exec(kDeleteLocation, ino, static_cast<int>(type),
                  std::string(location))
                 .affected_rows() > 0;
    });
  }

 private:
  static int64_t StoredMode(const Attr& a) {
    return static_cast<int64_t>((a.mode & 07777) |
                                (a.has_acl ? kModeHasAclBit : 0));
  }

  // "type,flags,mask,kind,id;..." as LockingGet aggregates it; nullopt if
  // malformed (then GetAcl asks the table).
  static std::optional<Acl> ParseAceList(std::string_view text) {
    Acl acl;
    while (!text.empty()) {
      const size_t semi = text.find(';');
      std::string_view one = text.substr(0, semi);
      text = semi == std::string_view::npos ? std::string_view()
                                            : text.substr(semi + 1);
      int64_t v[5];
      for (int k = 0; k < 5; ++k) {
        const size_t comma = one.find(',');
        if ((k < 4) == (comma == std::string_view::npos)) return std::nullopt;
        const std::string_view num = one.substr(0, comma);
        const auto [p, ec] =
            std::from_chars(num.data(), num.data() + num.size(), v[k]);
        if (ec != std::errc() || p != num.data() + num.size()) {
          return std::nullopt;
        }
        one = k < 4 ? one.substr(comma + 1) : std::string_view();
      }
      if (v[3] < 0 || v[3] > static_cast<int64_t>(AceWho::kNamedGroup)) {
        return std::nullopt;
      }
      acl.push_back(Ace{static_cast<uint32_t>(v[0]), static_cast<uint32_t>(v[1]),
                        static_cast<uint32_t>(v[2]), static_cast<AceWho>(v[3]),
                        static_cast<uint32_t>(v[4])});
    }
    return acl;
  }

  static std::string ToHex(std::string_view v) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(v.size() * 2);
    for (unsigned char c : v) {
      out += kDigits[c >> 4];
      out += kDigits[c & 15];
    }
    return out;
  }

  static std::string FromHex(const pqxx::field& f) {
    const char* p = f.c_str();
    const size_t n = f.size() / 2;
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return c - 'A' + 10;
    };
    std::string out(n, '\0');
    for (size_t i = 0; i < n; ++i) {
      out[i] = static_cast<char>((nibble(p[2 * i]) << 4) | nibble(p[2 * i + 1]));
    }
    return out;
  }

  Result<Attr> PlainGet(InodeId ino) {
    const pqxx::result r = Exec(kGet, ino);
    if (r.empty()) return NoInode(ino);
    return RowToAttr(r[0], 0, 16);
  }

  static std::string HexOf(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
      out += kDigits[c >> 4];
      out += kDigits[c & 15];
    }
    return out;
  }

  static Result<ClientRecord> RowToClient(const pqxx::row& row) {
    const std::string hex = Text(row[0]);
    if (hex.size() % 2 != 0) {
      return Status::Corruption("pg client record", "odd hex owner");
    }
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    ClientRecord r;
    r.owner.reserve(hex.size() / 2);
    for (size_t i = 0; i < hex.size(); i += 2) {
      const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
      if (hi < 0 || lo < 0) {
        return Status::Corruption("pg client record", "bad hex owner");
      }
      r.owner += static_cast<char>(hi * 16 + lo);
    }
    r.principal = Text(row[1]);
    r.verifier = static_cast<uint64_t>(row[2].as<int64_t>());
    r.clientid = static_cast<uint64_t>(row[3].as<int64_t>());
    r.confirmed_ns = row[4].as<int64_t>();
    r.confirmed_epoch = row[5].as<int64_t>();
    if (!row[6].is_null()) r.reclaim_epoch = row[6].as<int64_t>();
    return r;
  }

  Result<std::vector<SqlRow>> Query(std::string_view sql,
                                    std::span<const int64_t> params) override {
    return RunQuery(sql, [&](pqxx::transaction_base& t) {
      return t.exec_params(
          std::string(sql),
          pqxx::prepare::make_dynamic_params(params.begin(), params.end()));
    });
  }

  Result<std::vector<SqlRow>> QueryValues(
      std::string_view sql, std::span<const SqlValue> params) override {
    // Every parameter as text: PostgreSQL types each from the statement.
    std::vector<std::string> text;
    text.reserve(params.size());
    for (const SqlValue& v : params) {
      if (const int64_t* i = std::get_if<int64_t>(&v)) {
        text.push_back(std::to_string(*i));
      } else {
        text.push_back(std::get<std::string>(v));
      }
    }
    return RunQuery(sql, [&](pqxx::transaction_base& t) {
      return t.exec_params(
          std::string(sql),
          pqxx::prepare::make_dynamic_params(text.begin(), text.end()));
    });
  }

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
  Status Connect() {
    try {
      pool_.Release(pool_.Acquire(), false);
      return Status::Ok();
    } catch (const std::exception& e) {
      return Status::Unavailable(
          "cannot connect to PostgreSQL at " + SafeUri(pool_.uri()),
          PgMessage(e));
    }
  }

  std::string_view Dialect() const override { return "postgresql"; }

  // A connection that breaks while COMMIT is under way (a server crash,
  // a failover) leaves the outcome unknown. The commit token decides it on
  // whichever server answers now (TokenCommitted): committed means done
  // (fn's results stand); not committed means it never will, and fn runs
  // again as after any lost connection. So a caller sees success, or
  // Unavailable (NFS4ERR_DELAY) only for an operation that certainly did
  // not happen, except when no server answers within the time budget.
  Status Write(const TxnFn& fn) override {
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

  Status Read(const TxnFn& fn) override {
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

  uint64_t CookieVerifier() override { return verifier_.load(); }

  Result<int> SchemaVersion() override {
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

  Status ApplyMigration(int version, std::string_view name,
                        std::string_view sql) override {
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

  Status Start() override {
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

 private:
  // Whether the write that sent `token` with its COMMIT committed, asked
  // on fresh connections (RunOnConnection finds the server that is
  // primary now) until one answers; `start` is when the write began.
  // While the original transaction still holds its token (its server has
  // not yet noticed the lost client), asks again until kUnavailableBudget
  // from `start` runs out. Errors: Unavailable "commit outcome unknown"
  // when no answer came in time (the one case where a caller cannot know).
  Result<bool> TokenCommitted(int64_t token, Clock::time_point start) {
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

  // The schema version as SchemaVersion() defines it.
  static Result<int> ReadVersion(pqxx::transaction_base& t) {
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

  // Runs `body` on a pooled connection until it ends with something other
  // than Retry (at most kMaxConflictRetries times) or Unavailable (for at
  // most kUnavailableBudget). `body` must not throw.
  Status RunOnConnection(std::string_view ctx,
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

  // Jittered exponential backoff, 100 us doubling to 50 ms: conflicts
  // clear in about one transaction's time, and jitter keeps the losers of
  // one conflict from colliding again in lockstep.
  void SleepConflict(int attempt) {
    const int64_t cap_us =
        std::min<int64_t>(50'000, int64_t{100} << std::min(attempt, 9));
    std::this_thread::sleep_for(std::chrono::microseconds(Jitter(cap_us)));
  }

  // The first retry after a lost connection is immediate (a pooled
  // connection that died in a restart says nothing about the server now);
  // then 25 ms doubling to 1 s, jittered.
  void SleepOutage(int attempt) {
    if (attempt == 0) return;
    const int64_t cap_ms =
        std::min<int64_t>(1000, int64_t{25} << std::min(attempt - 1, 6));
    std::this_thread::sleep_for(
        std::chrono::microseconds(Jitter(cap_ms * 1000)));
  }

  // Uniform in [cap/2, cap].
  int64_t Jitter(int64_t cap) {
    std::lock_guard<std::mutex> lock(rng_mu_);
    return std::uniform_int_distribution<int64_t>(cap / 2, cap)(rng_);
  }

  // The folding thread: every kFoldInterval, folds the pending deltas of up
  // to kFoldBatch directories, each in its own autocommit statement so no
  // lock is held longer than one fold. Errors are ignored (the next round
  // tries again); a broken connection is replaced next round. It has its
  // own connection so that a busy pool never delays folding. Every
  // kTokenExpiryInterval it also deletes old commit tokens, which bounds
  // that table to a few minutes of writes.
  void FoldLoop() {
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

bool HasScheme(const std::string& uri, std::string_view scheme) {
  return uri.size() > scheme.size() &&
         std::string_view(uri).substr(0, scheme.size()) == scheme;
}

}  // namespace

Result<std::unique_ptr<Backend>> OpenPostgresBackend(
    const std::string& uri, const NamespaceOptions& options) {
  if (!HasScheme(uri, "postgresql://") && !HasScheme(uri, "postgres://")) {
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
  auto backend = std::make_unique<PgBackend>(uri, pool_size);
  NS_RETURN_IF_ERROR(backend->Connect());
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace ns
