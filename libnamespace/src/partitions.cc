// Hash partitioning of the big tables on PostgreSQL (partitions.h).
//
// Repartition rebuilds rather than ALTERs: PostgreSQL cannot turn a plain
// table into a partitioned one, nor change a hash modulus in place, and
// one procedure for 1 -> N, N -> M and N -> 1 keeps a single path to test.
// Everything runs in one transaction (DDL is transactional in PostgreSQL),
// so a failure at any step leaves the old layout as it was.

#include "libnamespace/include/namespace/partitions.h"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "libnamespace/include/namespace/schema.h"
#include "libnamespace/src/backend.h"

namespace ns {
namespace {

// The side table that keeps inodes.ext_id unique once inodes is
// partitioned: a unique index on a partitioned table must contain the
// partition key (ino), and a per-partition one would let two partitions
// hold the same external id. Triggers mirror every non-NULL ext_id into
// this plain table, whose primary key then refuses a duplicate (SQLSTATE
// 23505, as the unique index did) under any concurrency. The WHEN clauses
// keep inodes without an external id (everything not migrated) from
// calling the function at all.
constexpr char kExtIdTable[] = "inode_ext_ids";
const char* const kExtIdSetup[] = {
    "CREATE TABLE inode_ext_ids (ext_id text PRIMARY KEY, ino bigint NOT NULL)",
    "INSERT INTO inode_ext_ids (ext_id, ino) "
    "SELECT ext_id, ino FROM inodes WHERE ext_id IS NOT NULL",
    "CREATE INDEX inodes_ext_id ON inodes (ext_id) WHERE ext_id IS NOT NULL",
    "CREATE OR REPLACE FUNCTION inode_ext_ids_sync() RETURNS trigger "
    "LANGUAGE plpgsql AS $f$ BEGIN "
    "IF TG_OP <> 'INSERT' AND OLD.ext_id IS NOT NULL THEN "
    "DELETE FROM inode_ext_ids WHERE ext_id = OLD.ext_id AND ino = OLD.ino; "
    "END IF; "
    "IF TG_OP <> 'DELETE' AND NEW.ext_id IS NOT NULL THEN "
    "INSERT INTO inode_ext_ids (ext_id, ino) VALUES (NEW.ext_id, NEW.ino); "
    "END IF; RETURN NULL; END $f$",
    "CREATE TRIGGER inodes_ext_id_ins AFTER INSERT ON inodes FOR EACH ROW "
    "WHEN (NEW.ext_id IS NOT NULL) EXECUTE FUNCTION inode_ext_ids_sync()",
    "CREATE TRIGGER inodes_ext_id_upd AFTER UPDATE OF ext_id ON inodes "
    "FOR EACH ROW WHEN (OLD.ext_id IS DISTINCT FROM NEW.ext_id) "
    "EXECUTE FUNCTION inode_ext_ids_sync()",
    "CREATE TRIGGER inodes_ext_id_del AFTER DELETE ON inodes FOR EACH ROW "
    "WHEN (OLD.ext_id IS NOT NULL) EXECUTE FUNCTION inode_ext_ids_sync()",
};
// The plain layout's unique index (schema/postgresql/001_core.sql).
const char* const kExtIdPlain[] = {
    "CREATE UNIQUE INDEX inodes_ext_id ON inodes (ext_id) "
    "WHERE ext_id IS NOT NULL",
    "DROP FUNCTION IF EXISTS inode_ext_ids_sync()",
};

// A string as an SQL literal; only ever given our own table names and
// catalog output, but quoting costs nothing.
std::string Literal(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::string TableArray() {
  std::string out = "ARRAY[";
  for (const PartitionedTableDef& t : PartitionedTables()) {
    if (out.size() > 6) out += ", ";
    out += Literal(t.table);
  }
  return out + "]";
}

std::string Col(const SqlRow& row, size_t i) {
  return i < row.size() && row[i] ? *row[i] : std::string();
}

int64_t IntCol(const SqlRow& row, size_t i) {
  const std::string s = Col(row, i);
  if (s.empty()) return 0;
  try {
    return std::stoll(s);
  } catch (...) {
    return 0;
  }
}

// The backend of `uri` if it is PostgreSQL with a schema; else why not.
Result<std::unique_ptr<Backend>> OpenPartitionable(const std::string& uri,
                                                   const char* what) {
  const Status sqlite =
      Status::NotSupported(what,
                           "partitions are a PostgreSQL layout; SQLite has no "
                           "partitioning (use a postgresql:// database)");
  // By scheme first: opening a SQLite file that does not exist yet fails
  // with a message about the file, not about what was asked.
  if (uri.rfind("sqlite:", 0) == 0) return sqlite;
  NS_ASSIGN_OR_RETURN(auto backend, OpenBackend(uri, NamespaceOptions{}));
  if (backend->Dialect() != "postgresql") return sqlite;
  return backend;
}

Status CheckCount(uint32_t count) {
  if (count < 1 || count > kMaxPartitions) {
    return Status::Invalid(
        "partition count " + std::to_string(count),
        "must be 1 (plain tables) to " + std::to_string(kMaxPartitions));
  }
  return Status::Ok();
}

// Rebuilds one table with `count` partitions (see Repartition).
Status RebuildTable(Transaction& t, const PartitionedTableDef& def,
                    uint32_t count) {
  auto q = [&](const std::string& sql) { return t.Query(sql, {}); };
  const std::string& T = def.table;
  const std::string reg = Literal(T) + "::regclass";
  // Storage parameters (inodes' fillfactor) live on the leaves: a
  // partitioned table has no storage of its own and refuses them.
  NS_ASSIGN_OR_RETURN(
      auto opts,
      q("SELECT coalesce(array_to_string(c.reloptions, ', '), '') "
        "FROM pg_class c WHERE c.relkind = 'r' AND (c.oid = " +
        reg + " OR c.oid IN (SELECT relid FROM pg_partition_tree(" + reg +
        "))) "
        "ORDER BY c.relname LIMIT 1"));
  const std::string with = opts.empty() || Col(opts[0], 0).empty()
                               ? ""
                               : " WITH (" + Col(opts[0], 0) + ")";
  // Primary keys and unique constraints, then the other indexes, as the
  // catalog prints them, to be made again once the rows are in (building
  // an index once is cheaper than maintaining it row by row).
  NS_ASSIGN_OR_RETURN(
      auto constraints,
      q("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = " +
        reg +
        " AND contype IN ('p', 'u', 'x') "
        "ORDER BY conname"));
  NS_ASSIGN_OR_RETURN(
      auto indexes,
      q("SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = " +
        reg +
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint k "
        "WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid) "
        "ORDER BY c.relname"));

  // Triggers of our own (schema 005's pNFS work-queue triggers on inodes),
  // as the catalog prints them: DROP TABLE takes them along, so they are
  // made again on the new table (on a partitioned one PostgreSQL clones
  // them to every partition). The ext_id triggers are made below.
  NS_ASSIGN_OR_RETURN(
      auto triggers,
      q("SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE "
        "tgrelid = " +
        reg + " AND NOT tgisinternal ORDER BY tgname"));

  const std::string fresh = T + "_repart";
  std::string create = "CREATE TABLE " + fresh + " (LIKE " + T +
                       " INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                       "INCLUDING STORAGE INCLUDING COMMENTS)";
  create += count > 1 ? " PARTITION BY HASH (" + def.key + ")" : with;
  NS_RETURN_IF_ERROR(q(create).status());
  for (uint32_t i = 0; count > 1 && i < count; ++i) {
    NS_RETURN_IF_ERROR(q("CREATE TABLE " + fresh + "_p" + std::to_string(i) +
                         " PARTITION OF " + fresh +
                         " FOR VALUES WITH (MODULUS " + std::to_string(count) +
                         ", REMAINDER " + std::to_string(i) + ")" + with)
                           .status());
  }
  NS_RETURN_IF_ERROR(
      q("INSERT INTO " + fresh + " SELECT * FROM " + T).status());
  // Drops the old partitions, indexes and triggers with it.
  NS_RETURN_IF_ERROR(q("DROP TABLE " + T).status());
  NS_RETURN_IF_ERROR(q("ALTER TABLE " + fresh + " RENAME TO " + T).status());
  for (uint32_t i = 0; count > 1 && i < count; ++i) {
    const std::string p = "_p" + std::to_string(i);
    NS_RETURN_IF_ERROR(
        q("ALTER TABLE " + fresh + p + " RENAME TO " + T + p).status());
  }
  for (const SqlRow& c : constraints) {
    NS_RETURN_IF_ERROR(
        q("ALTER TABLE " + T + " ADD CONSTRAINT " + Col(c, 0) + " " + Col(c, 1))
            .status());
  }
  for (const SqlRow& ix : indexes) {
    // The ext_id index changes kind with the layout; made below.
    if (T == "inodes" && Col(ix, 0) == "inodes_ext_id") continue;
    std::string sql = Col(ix, 1);
    // The definition of a partitioned table's index reads "ON ONLY t",
    // which would make an empty, invalid parent index; recurse instead.
    const std::string only = " ON ONLY ";
    if (size_t at = sql.find(only); at != std::string::npos) {
      sql.replace(at, only.size(), " ON ");
    }
    NS_RETURN_IF_ERROR(q(sql).status());
  }
  for (const SqlRow& tr : triggers) {
    if (T == "inodes" && Col(tr, 0).rfind("inodes_ext_id", 0) == 0) continue;
    NS_RETURN_IF_ERROR(q(Col(tr, 1)).status());
  }
  if (T == "inodes") {
    NS_RETURN_IF_ERROR(
        q(std::string("DROP TABLE IF EXISTS ") + kExtIdTable).status());
    if (count > 1) {
      for (const char* sql : kExtIdSetup) NS_RETURN_IF_ERROR(q(sql).status());
    } else {
      for (const char* sql : kExtIdPlain) NS_RETURN_IF_ERROR(q(sql).status());
    }
  }
  // Fresh statistics now, or the planner sees empty tables until
  // autovacuum's next round.
  return q("ANALYZE " + T).status();
}

}  // namespace

const std::vector<PartitionedTableDef>& PartitionedTables() {
  static const std::vector<PartitionedTableDef> defs = {
      {"inodes", "ino"},    {"dirents", "parent"}, {"symlinks", "ino"},
      {"aces", "ino"},      {"xattrs", "ino"},     {"checksums", "ino"},
      {"locations", "ino"},
  };
  return defs;
}

Status Repartition(const std::string& uri, const RepartitionOptions& options) {
  NS_ASSIGN_OR_RETURN(auto backend, OpenPartitionable(uri, "repartition"));
  NS_RETURN_IF_ERROR(CheckCount(options.count));
  NS_ASSIGN_OR_RETURN(int version, backend->SchemaVersion());
  if (version == 0) {
    return Status::Invalid("repartition",
                           "the database has no schema: run `nsadmin init`");
  }
  if (version > LatestSchemaVersion()) {
    return Status::SchemaTooNew("repartition",
                                "the database is newer than this build");
  }
  return backend->Write([&](Transaction& t) -> Status {
    auto q = [&](const std::string& sql) { return t.Query(sql, {}); };
    // The library's connections disable sequential scans (pg_connection.h);
    // a full copy wants exactly those. More memory makes the index builds
    // sort in memory.
    NS_RETURN_IF_ERROR(q("SET LOCAL enable_seqscan = on").status());
    NS_RETURN_IF_ERROR(q("SET LOCAL maintenance_work_mem = '256MB'").status());
    NS_RETURN_IF_ERROR(
        q("SET LOCAL lock_timeout = " + std::to_string(options.lock_timeout_ms))
            .status());
    if (!options.force) {
      // A client that just disconnected (the caller's own namespace,
      // closed a moment ago) stays in pg_stat_activity until its server
      // process has exited: look again for up to two seconds before
      // calling a session live. The activity snapshot is per transaction,
      // hence pg_stat_clear_snapshot() before each look.
      std::vector<SqlRow> others;
      for (int attempt = 0; attempt < 20; ++attempt) {
        if (attempt > 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        NS_RETURN_IF_ERROR(q("SELECT pg_stat_clear_snapshot()").status());
        NS_ASSIGN_OR_RETURN(
            others,
            q("SELECT pid, coalesce(nullif(application_name, ''), '?'), "
              "coalesce(client_addr::text, 'local') FROM pg_stat_activity "
              "WHERE datname = current_database() AND pid <> pg_backend_pid() "
              "AND backend_type = 'client backend' ORDER BY pid"));
        if (others.empty()) break;
      }
      if (!others.empty()) {
        std::string who;
        for (const SqlRow& r : others) {
          if (!who.empty()) who += ", ";
          who += "pid " + Col(r, 0) + " (" + Col(r, 1) + " from " + Col(r, 2) +
                 ")";
        }
        return Status::NotPermitted(
            "repartition",
            std::to_string(others.size()) +
                " other session(s) use this database: " + who +
                "; stop nfs41d and other clients first (nothing was changed)");
      }
    }
    std::string tables;
    for (const PartitionedTableDef& d : PartitionedTables()) {
      tables += (tables.empty() ? "" : ", ") + d.table;
    }
    // All locks up front, in one statement, so a writer that slipped in
    // after the check waits instead of meeting half-rebuilt tables.
    NS_RETURN_IF_ERROR(
        q("LOCK TABLE " + tables + " IN ACCESS EXCLUSIVE MODE").status());
    // Foreign keys from or to these tables (none in schema versions 1-4;
    // later migrations may add some) are dropped before the rebuild and
    // made again after it, against the new tables.
    NS_ASSIGN_OR_RETURN(
        auto fks,
        q("SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
          "FROM pg_constraint WHERE contype = 'f' AND conparentid = 0 AND "
          "(conrelid = ANY (" +
          TableArray() +
          "::regclass[]) OR "
          "confrelid = ANY (" +
          TableArray() + "::regclass[]))"));
    for (const SqlRow& fk : fks) {
      NS_RETURN_IF_ERROR(
          q("ALTER TABLE " + Col(fk, 0) + " DROP CONSTRAINT " + Col(fk, 1))
              .status());
    }
    for (const PartitionedTableDef& d : PartitionedTables()) {
      NS_RETURN_IF_ERROR(RebuildTable(t, d, options.count));
    }
    for (const SqlRow& fk : fks) {
      NS_RETURN_IF_ERROR(q("ALTER TABLE " + Col(fk, 0) + " ADD CONSTRAINT " +
                           Col(fk, 1) + " " + Col(fk, 2))
                             .status());
    }
    return Status::Ok();
  });
}

Status InitPartitionedSchema(const std::string& uri, uint32_t count) {
  {
    // Refuse SQLite and a bad count before anything is created.
    NS_ASSIGN_OR_RETURN(auto backend,
                        OpenPartitionable(uri, "init --partitions"));
    NS_RETURN_IF_ERROR(CheckCount(count));
  }
  NS_RETURN_IF_ERROR(InitSchema(uri));
  if (count == 1) return Status::Ok();
  RepartitionOptions options;
  options.count = count;
  return Repartition(uri, options);
}

Result<std::vector<TableLayout>> ReadPartitionLayout(const std::string& uri) {
  NS_ASSIGN_OR_RETURN(auto backend, OpenPartitionable(uri, "partitions"));
  std::vector<TableLayout> out;
  NS_RETURN_IF_ERROR(backend->Read([&](Transaction& t) -> Status {
    out.clear();
    for (const PartitionedTableDef& d : PartitionedTables()) {
      NS_ASSIGN_OR_RETURN(
          auto rows,
          t.Query("SELECT coalesce(a.attname::text, ''), "
                  "(SELECT count(*) FROM pg_inherits WHERE inhparent = c.oid) "
                  "FROM pg_class c LEFT JOIN pg_partitioned_table p "
                  "ON p.partrelid = c.oid LEFT JOIN pg_attribute a "
                  "ON a.attrelid = c.oid AND a.attnum = p.partattrs[0] "
                  "WHERE c.oid = to_regclass(" +
                      Literal(d.table) + ")",
                  {}));
      if (rows.empty()) {
        return Status::Invalid("partitions",
                               "no table " + d.table + ": run `nsadmin init`");
      }
      TableLayout l;
      l.table = d.table;
      l.key = Col(rows[0], 0);
      l.count = l.key.empty() ? 1 : static_cast<uint32_t>(IntCol(rows[0], 1));
      out.push_back(l);
    }
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<PartitionStat>> PartitionStats(const std::string& uri,
                                                  bool exact) {
  NS_ASSIGN_OR_RETURN(auto backend, OpenPartitionable(uri, "partitions"));
  // Rows: the statistics collector's live count, or count(*) through
  // query_to_xml, which runs a statement built per partition without a
  // function of our own in the database.
  const std::string rows =
      exact ? "(xpath('/row/n/text()', query_to_xml(format("
              "'SELECT count(*) AS n FROM ONLY %s', c.oid::regclass), "
              "false, true, '')))[1]::text::int8"
            : "coalesce(s.n_live_tup, 0)";
  // Index bloat estimate per B-tree index: its pages minus the pages its
  // entries need (reltuples entries of an 8-byte header plus the indexed
  // columns' average width from pg_stats, MAXALIGNed, plus a 4-byte line
  // pointer; leaf pages 90% full, page header and special space 40 bytes;
  // one metapage).
  const std::string bloat =
      "(SELECT coalesce(sum(greatest(0, ic.relpages - 1 - ceil("
      "ic.reltuples * (((8 + w.width + 7) / 8) * 8 + 4) / "
      "((current_setting('block_size')::int - 40) * 0.9)))), 0)::int8 "
      "* current_setting('block_size')::int8 "
      "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
      "JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree' "
      "CROSS JOIN LATERAL (SELECT coalesce(sum(st.avg_width), 0)::int AS width "
      "FROM pg_attribute a JOIN pg_stats st ON st.schemaname = n.nspname "
      "AND st.tablename = c.relname AND st.attname = a.attname "
      "AND NOT st.inherited WHERE a.attrelid = c.oid "
      "AND a.attnum = ANY (i.indkey)) w "
      "WHERE i.indrelid = c.oid AND ic.reltuples > 0 AND w.width > 0)";
  const std::string sql =
      "SELECT tb.name, c.relname, " + rows +
      ", coalesce(s.n_dead_tup, 0), pg_total_relation_size(c.oid), "
      "pg_indexes_size(c.oid), " +
      bloat +
      ", coalesce(greatest(s.last_autovacuum, s.last_vacuum)::text, '') "
      "FROM unnest(" +
      TableArray() +
      ") WITH ORDINALITY AS tb(name, ord) "
      "JOIN pg_class c ON c.relkind = 'r' AND (c.oid = tb.name::regclass "
      "OR c.oid IN (SELECT relid FROM pg_partition_tree(tb.name::regclass))) "
      "JOIN pg_namespace n ON n.oid = c.relnamespace "
      "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
      "ORDER BY tb.ord, length(c.relname), c.relname";
  std::vector<PartitionStat> out;
  NS_RETURN_IF_ERROR(backend->Read([&](Transaction& t) -> Status {
    out.clear();
    NS_ASSIGN_OR_RETURN(auto result, t.Query(sql, {}));
    for (const SqlRow& r : result) {
      PartitionStat s;
      s.table = Col(r, 0);
      s.partition = Col(r, 1);
      s.rows = IntCol(r, 2);
      s.dead_rows = IntCol(r, 3);
      s.total_bytes = IntCol(r, 4);
      s.index_bytes = IntCol(r, 5);
      s.index_bloat_bytes = IntCol(r, 6);
      s.last_vacuum = Col(r, 7);
      out.push_back(std::move(s));
    }
    return Status::Ok();
  }));
  return out;
}

}  // namespace ns
