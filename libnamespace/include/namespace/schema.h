#pragma once

// Schema management: the versioned table layout in schema/ applied to a
// database. Used by `nsadmin init|upgrade|version` and by Namespace::Open.
//
// Migrations are numbered and forward-only, one per version and dialect
// (schema/sqlite/NNN_name.sql, schema/postgresql/NNN_name.sql), compiled
// into the library. Each runs in one transaction together with the row it
// adds to schema_version: a database is always at exactly one version.

#include <string>

#include "libnamespace/include/namespace/status.h"

namespace ns {

// The newest schema version this build knows.
int LatestSchemaVersion();

struct SchemaState {
  int version = 0;  // 0: empty database, no schema yet
  int latest = 0;   // LatestSchemaVersion()
};

// Reads the version of the database at `uri`. Errors: Unavailable,
// Corruption (not a namespace database).
Result<SchemaState> ReadSchemaState(const std::string& uri);

// Creates the schema (up to `target`, default the latest) in an empty
// database. Errors: Exists (already initialised), Invalid (bad target).
Status InitSchema(const std::string& uri, int target = 0);

// Applies the missing migrations up to `target` (default the latest) and
// returns the version the database was at before. Errors: NotFound (empty
// database: run init), SchemaTooNew, Invalid (target older than current).
Result<int> UpgradeSchema(const std::string& uri, int target = 0);

}  // namespace ns
