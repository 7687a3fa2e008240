// Applying the versioned migrations of schema/ to a database.

#include "libnamespace/include/namespace/schema.h"

#include <string>

#include "libnamespace/src/backend.h"
#include "libnamespace/src/schema_check.h"
#include "schema/migrations.h"

namespace ns {
namespace {

const std::vector<Migration>& MigrationsFor(std::string_view dialect) {
  return dialect == "sqlite" ? Migrations_sqlite() : Migrations_postgresql();
}

// Applies versions (from, to] in order, each in its own transaction, so an
// interrupted upgrade leaves the database at the last version that finished.
Status ApplyRange(Backend& backend, int from, int to) {
  const auto& migrations = MigrationsFor(backend.Dialect());
  for (int v = from + 1; v <= to; ++v) {
    const Migration& m = migrations.at(v - 1);
    Status s = backend.ApplyMigration(m.version, m.name, m.sql);
    if (!s.ok()) {
      return Status::IOError("applying schema version " + std::to_string(v) +
                                 " (" + std::string(m.name) + ")",
                             s.ToString());
    }
  }
  return Status::Ok();
}

Result<int> ResolveTarget(int target) {
  if (target == 0) return LatestSchemaVersion();
  if (target < 1 || target > LatestSchemaVersion()) {
    return Status::Invalid("schema version " + std::to_string(target),
                           "this build knows versions 1.." +
                               std::to_string(LatestSchemaVersion()));
  }
  return target;
}

}  // namespace

int LatestSchemaVersion() {
  // Both dialects move in lockstep; schema_sql_test checks they agree.
  return static_cast<int>(Migrations_sqlite().size());
}

Result<SchemaState> ReadSchemaState(const std::string& uri) {
  NS_ASSIGN_OR_RETURN(auto backend, OpenBackend(uri, NamespaceOptions{}));
  NS_ASSIGN_OR_RETURN(int v, backend->SchemaVersion());
  return SchemaState{v, LatestSchemaVersion()};
}

Status InitSchema(const std::string& uri, int target) {
  NS_ASSIGN_OR_RETURN(int to, ResolveTarget(target));
  NamespaceOptions opts;
  opts.create_if_missing = true;
  NS_ASSIGN_OR_RETURN(auto backend, OpenBackend(uri, opts));
  NS_ASSIGN_OR_RETURN(int v, backend->SchemaVersion());
  if (v != 0) {
    return Status::Exists("namespace at " + uri,
                          "already initialised at schema version " +
                              std::to_string(v));
  }
  return ApplyRange(*backend, 0, to);
}

Result<int> UpgradeSchema(const std::string& uri, int target) {
  NS_ASSIGN_OR_RETURN(int to, ResolveTarget(target));
  NS_ASSIGN_OR_RETURN(auto backend, OpenBackend(uri, NamespaceOptions{}));
  NS_ASSIGN_OR_RETURN(int v, backend->SchemaVersion());
  if (v == 0) {
    return Status::NotFound("namespace at " + uri,
                            "the database is empty: run `nsadmin init`");
  }
  NS_RETURN_IF_ERROR(CheckNotTooNew(uri, v));
  if (to < v) {
    return Status::Invalid("upgrade to schema version " + std::to_string(to),
                           "the database is already at version " +
                               std::to_string(v) +
                               "; migrations are forward-only");
  }
  NS_RETURN_IF_ERROR(ApplyRange(*backend, v, to));
  return v;
}

Status CheckNotTooNew(const std::string& uri, int version) {
  if (version <= LatestSchemaVersion()) return Status::Ok();
  return Status::SchemaTooNew(
      "namespace at " + uri,
      "its schema version " + std::to_string(version) +
          " is newer than this build knows (" +
          std::to_string(LatestSchemaVersion()) +
          "): use the tools of the release that upgraded it");
}

Result<std::unique_ptr<Backend>> OpenAtCurrentSchema(
    const std::string& uri, const NamespaceOptions& options) {
  NS_ASSIGN_OR_RETURN(auto backend, OpenBackend(uri, options));
  NS_ASSIGN_OR_RETURN(int v, backend->SchemaVersion());
  if (v == 0) {
    if (!options.create_if_missing) {
      return Status::NotFound("namespace at " + uri,
                              "the database has no schema: run `nsadmin "
                              "init --db " + uri + "`");
    }
    NS_RETURN_IF_ERROR(ApplyRange(*backend, 0, LatestSchemaVersion()));
    v = LatestSchemaVersion();
  }
  NS_RETURN_IF_ERROR(CheckNotTooNew(uri, v));
  if (v < LatestSchemaVersion() && options.require_current_schema) {
    return Status::SchemaTooOld(
        "namespace at " + uri,
        "schema version " + std::to_string(v) + ", this build needs " +
            std::to_string(LatestSchemaVersion()) + ": run `nsadmin upgrade --db " +
            uri + "`");
  }
  NS_RETURN_IF_ERROR(backend->Start());
  return backend;
}

}  // namespace ns
