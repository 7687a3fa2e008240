// Every statement the PostgreSQL backend prepares, by name (the names are
// in pg_connection.h), and the session settings each connection applies.

#include "libnamespace/src/pg_statements.h"

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

namespace ns {
namespace pg_internal {
namespace {

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

}  // namespace

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

}  // namespace pg_internal

std::optional<std::string> PgStatementSql(std::string_view name) {
  for (const pg_internal::StatementDef& s : pg_internal::Statements()) {
    if (s.name == name) return s.sql;
  }
  return std::nullopt;
}

std::string_view PgSessionSettings() {
  return "SET enable_seqscan = off; SET jit = off; "
         "SET max_parallel_workers_per_gather = 0; ";
}

}  // namespace ns
