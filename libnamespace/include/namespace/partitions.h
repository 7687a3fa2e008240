#pragma once

// PostgreSQL hash partitioning of the big tables (`nsadmin init
// --partitions N`, `nsadmin partition --count N`, `nsadmin partitions`).
//
// Partitioning is a layout choice over the same logical schema: the tables
// keep their names and columns, so the library's SQL and the numbered
// migrations in schema/ are the same on a partitioned database. The layout
// is recorded by PostgreSQL itself (pg_partitioned_table, pg_inherits);
// ReadPartitionLayout reads it back.
//
// Each table is partitioned on the column every hot statement names in its
// WHERE clause, so a statement's partition is known from its parameters
// and PostgreSQL prunes the others, at plan time for custom plans and at
// executor start-up ("Subplans Removed") for the generic plans of prepared
// statements:
//   inodes    (ino)      getattr, lookup's child, create, unlink, setattr
//   dirents   (parent)   lookup, readdir pages, create, unlink: one
//                        directory's entries all live in one partition
//   symlinks, aces, xattrs, checksums, locations (ino)
// The small tables (dir_deltas, orphans, tags, fs_info, client records)
// stay plain.
//
// SQLite has no partitioning: every function here returns NotSupported
// for a sqlite: URI.

#include <cstdint>
#include <string>
#include <vector>

#include "libnamespace/include/namespace/status.h"

namespace ns {

// The partitioned tables and their partition keys, in the order above.
struct PartitionedTableDef {
  std::string table;
  std::string key;
};
const std::vector<PartitionedTableDef>& PartitionedTables();

// Partition counts accepted (1 means plain, unpartitioned tables).
inline constexpr uint32_t kMaxPartitions = 1024;

struct RepartitionOptions {
  // Hash partitions per table; 1 turns the tables back into plain ones.
  uint32_t count = 1;
  // Refuse when other sessions are connected to the database (nfs41d
  // doors, nsh): the copy holds ACCESS EXCLUSIVE locks on every big table
  // until it commits, so their operations would stall for its duration and
  // statements already planned against the old tables would fail. `force`
  // skips the check (the locks still keep the copy consistent).
  bool force = false;
  // How long to wait for each table lock before giving up (0: forever).
  uint32_t lock_timeout_ms = 10000;
};

// Rebuilds every table of PartitionedTables() with `count` hash partitions
// in ONE transaction: new tables, INSERT ... SELECT of every row, drop the
// old ones, rename, recreate primary keys, indexes and foreign keys,
// ANALYZE. Readers and writers of the namespace are stopped (see
// RepartitionOptions::force) for as long as the copy takes; an interrupted
// run leaves the old layout untouched. Errors: NotSupported (SQLite),
// Invalid (count out of 1..kMaxPartitions; schema not initialised),
// NotPermitted (other sessions connected, naming them), errors of the
// database (a lock not granted within lock_timeout_ms: "canceling
// statement due to lock timeout").
Status Repartition(const std::string& uri, const RepartitionOptions& options);

// `nsadmin init --partitions N`: InitSchema, then Repartition to `count`.
// SQLite and a bad count are refused before anything is created
// (NotSupported, Invalid).
Status InitPartitionedSchema(const std::string& uri, uint32_t count);

// How one table is laid out now.
struct TableLayout {
  std::string table;
  std::string key;     // partition key ("" when plain)
  uint32_t count = 1;  // partitions (1: plain table)
};
// Errors: NotSupported (SQLite), errors of the database.
Result<std::vector<TableLayout>> ReadPartitionLayout(const std::string& uri);

// One partition (or a plain table) as `nsadmin partitions` shows it.
struct PartitionStat {
  std::string table;      // the logical table ("dirents")
  std::string partition;  // the partition ("dirents_p3"), or the table
  // Live rows: pg_stat_user_tables.n_live_tup (statistics collector, may
  // lag by a few seconds), or count(*) when asked for exact counts.
  int64_t rows = 0;
  int64_t dead_rows = 0;    // n_dead_tup
  int64_t total_bytes = 0;  // heap + TOAST + indexes
  int64_t index_bytes = 0;  // all indexes of the partition
  // Estimated bytes of its indexes beyond what their rows need: pages in
  // the index minus pages the entries would fill at the default B-tree
  // leaf fillfactor (90%), the entry width taken from pg_stats. An
  // estimate (no index is read); 0 until the partition has been analysed.
  int64_t index_bloat_bytes = 0;
  // Latest autovacuum or manual VACUUM, "" if never.
  std::string last_vacuum;
};
// Every partition of every table of PartitionedTables(), in table then
// partition order. `exact` counts rows with count(*) (a full scan of each
// partition; fine for thousands, slow for hundreds of millions).
Result<std::vector<PartitionStat>> PartitionStats(const std::string& uri,
                                                  bool exact = false);

}  // namespace ns
