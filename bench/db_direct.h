#pragma once

// Direct SQL on the namespace tables, bypassing libnamespace, for the two
// things the benchmark cannot do fast enough (or at all) through the API:
//
//  - filling a directory with up to millions of entries before readdir is
//    measured (through the API that would take minutes on PostgreSQL at a
//    few thousand durable creates per second);
//  - the raw SQLite ceiling: the same rows a create writes, inserted in a
//    plain loop with nothing of the library around them.
//
// Both write exactly the rows docs/schema.md describes, so the library reads
// the result as if it had made it. Not thread-safe; run while no other
// writer is busy (the sequences are reserved in bulk, see PopulatePostgres).

#include <cstdint>
#include <string>
#include <vector>

#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"

namespace nsbench {

// Which database a URI names, and the file path for SQLite.
struct DbTarget {
  enum class Kind { kSqlite, kPostgres };
  Kind kind = Kind::kSqlite;
  std::string uri;
  std::string sqlite_path;  // kSqlite only
};
ns::Result<DbTarget> ParseDbTarget(const std::string& uri);

// Creates directory `dir_name` in the root and `entries` regular files in
// it named e1..eN, all in one transaction: the directory exists if and only
// if it is complete, so a later run can reuse it. Returns the directory's
// inode. SQLite: prepared inserts in one big transaction. PostgreSQL:
// INSERT ... SELECT FROM generate_series with ids reserved by setval.
ns::Result<ns::InodeId> PopulateDirectory(const DbTarget& db,
                                          const std::string& dir_name,
                                          uint64_t entries);

// One measured run of raw SQLite creates.
struct RawResult {
  std::string mode;  // "raw_create_txn" or "raw_create_onetxn"
  uint64_t ops = 0;
  double seconds = 0;
  std::vector<uint32_t> latency_ns;  // per create (the loop's own cost)
};

// The SQLite ceiling for creates in directory `parent`: per create, insert
// the inode, insert the dirent, update the directory row (SQLite's
// counterpart of PostgreSQL's dir_deltas insert). `one_txn` false: one
// durable transaction (synchronous=FULL, WAL) per create; true: all of them
// in one transaction, the commit included in the time. Stops after `ops`
// creates or `max_seconds`, whichever comes first.
ns::Result<RawResult> RawSqliteCreates(const DbTarget& db, ns::InodeId parent,
                                       uint64_t ops, double max_seconds,
                                       bool one_txn);

}  // namespace nsbench
