#pragma once

// The one place where SQLite result codes become ns::Status (the SQLite
// counterpart of pg_errors.h). Every sqlite3_* call in sqlite_*.cc
// that can fail hands its result code here, so the mapping of "busy" to a
// retry or of a unique-constraint violation to EEXIST is decided once.

#include <string_view>

#include "libnamespace/include/namespace/status.h"

struct sqlite3;  // sqlite3.h: typedef struct sqlite3 sqlite3

namespace ns {

// Translates result code `rc` of a call on connection `db` (may be null when
// no connection exists) into a Status. `ctx` names what was being done
// ("InsertEntry", "open", ...) and ends up in the message together with
// sqlite3_errmsg(db) and, where it helps the operator, the database path.
//
//   SQLITE_OK, SQLITE_ROW, SQLITE_DONE      Ok
//   SQLITE_BUSY, SQLITE_LOCKED,
//   SQLITE_PROTOCOL                         Retry (transient lock conflict)
//   SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY  Exists
//   SQLITE_NOTADB                           Corruption ("not a namespace
//                                           database")
//   SQLITE_CORRUPT                          Corruption ("database file is
//                                           corrupt")
//   SQLITE_CANTOPEN                         NotFound if the file or a
//                                           directory on its path is
//                                           missing, else Unavailable
//   SQLITE_FULL                             IOError ("disk full")
//   anything else                           IOError
//
// `rc` may be a primary or an extended code; for a primary code the
// extended one is taken from `db`. Must be called on the thread that owns
// `db`, before any other call on it (sqlite3_errmsg is per connection).
Status SqliteStatus(int rc, sqlite3* db, std::string_view ctx);

}  // namespace ns
