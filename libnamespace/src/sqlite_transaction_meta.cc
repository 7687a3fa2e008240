// SqliteTransaction, part 2: ACLs, xattrs, tags, checksums, inline data,
// pNFS layouts and locations, grace and NFSv4 client records.

#include <fmt/format.h>
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"
#include "libnamespace/src/backend.h"
#include "libnamespace/src/sqlite_backend_internal.h"
#include "libnamespace/src/sqlite_errors.h"

namespace ns {
namespace sqlite_internal {

Result<Acl> SqliteTransaction::GetAcl(InodeId ino) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetAcl));
  stmt.Bind(1, ToDb(ino));
  Acl acl;
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    Ace ace;
    ace.type = static_cast<uint32_t>(stmt.Int(0));
    ace.flags = static_cast<uint32_t>(stmt.Int(1));
    ace.mask = static_cast<uint32_t>(stmt.Int(2));
    const int64_t kind = stmt.Int(3);
    if (kind < 0 || kind > static_cast<int64_t>(AceWho::kNamedGroup)) {
      return Status::Corruption(
          fmt::format("inode {}: ACE with bad who kind {}", ino, kind));
    }
    ace.who = static_cast<AceWho>(kind);
    ace.id = static_cast<uint32_t>(stmt.Int(4));
    acl.push_back(ace);
  }
  if (rc != SQLITE_DONE) return Fail(rc, "GetAcl");
  return acl;
}

Status SqliteTransaction::SetAcl(InodeId ino, const Acl& acl) {
  NS_RETURN_IF_ERROR(DeleteBy(Sql::kDeleteAcl, ino, "SetAcl"));
  for (size_t pos = 0; pos < acl.size(); ++pos) {
    const Ace& ace = acl[pos];
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kInsertAce));
    stmt.Bind(1, ToDb(ino));
    stmt.Bind(2, static_cast<int64_t>(pos));
    stmt.Bind(3, static_cast<int64_t>(ace.type));
    stmt.Bind(4, static_cast<int64_t>(ace.flags));
    stmt.Bind(5, static_cast<int64_t>(ace.mask));
    stmt.Bind(6, static_cast<int64_t>(ace.who));
    stmt.Bind(7, static_cast<int64_t>(ace.id));
    const int rc = stmt.Step();
    if (rc != SQLITE_DONE) return Fail(rc, "SetAcl");
  }
  return Status::Ok();
}

Result<std::optional<std::string>> SqliteTransaction::GetXattr(
    InodeId ino, std::string_view name) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetXattr));
  stmt.Bind(1, ToDb(ino));
  stmt.Bind(2, name);
  const int rc = stmt.Step();
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return Fail(rc, "GetXattr");
  return std::optional<std::string>(stmt.Blob(0));
}

Result<std::vector<XattrName>> SqliteTransaction::ListXattrs(InodeId ino) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kListXattrs));
  stmt.Bind(1, ToDb(ino));
  std::vector<XattrName> out;
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    out.push_back({std::string(stmt.Text(0)),
                   static_cast<uint64_t>(stmt.Int(1))});
  }
  if (rc != SQLITE_DONE) return Fail(rc, "ListXattrs");
  return out;
}

Status SqliteTransaction::PutXattr(InodeId ino, std::string_view name,
                                   std::string_view value) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kPutXattr));
  stmt.Bind(1, ToDb(ino));
  stmt.Bind(2, name);
  stmt.BindBlob(3, value);
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "PutXattr");
  return Status::Ok();
}

Result<bool> SqliteTransaction::DeleteXattr(InodeId ino,
                                            std::string_view name) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDeleteXattr));
  stmt.Bind(1, ToDb(ino));
  stmt.Bind(2, name);
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "DeleteXattr");
  return sqlite3_changes(conn_.db()) > 0;
}

Result<std::optional<InodeId>> SqliteTransaction::GetTagOrigin(InodeId ino) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetTagOrigin));
  stmt.Bind(1, ToDb(ino));
  const int rc = stmt.Step();
  if (rc == SQLITE_DONE) return std::optional<InodeId>();
  if (rc != SQLITE_ROW) return Fail(rc, "GetTagOrigin");
  return std::optional<InodeId>(static_cast<InodeId>(stmt.Int(0)));
}

Status SqliteTransaction::SetTagOrigin(InodeId ino, InodeId origin) {
  return Exec2(Sql::kSetTagOrigin, ino, origin, "SetTagOrigin");
}

Status SqliteTransaction::InheritTags(InodeId child, InodeId parent) {
  return Exec2(Sql::kInheritTags, child, parent, "InheritTags");
}

Result<std::vector<Tag>> SqliteTransaction::ListTags(InodeId origin) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kListTags));
  stmt.Bind(1, ToDb(origin));
  std::vector<Tag> out;
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    Tag t;
    t.name = std::string(stmt.Text(0));
    t.value = stmt.Blob(1);
    out.push_back(std::move(t));
  }
  if (rc != SQLITE_DONE) return Fail(rc, "ListTags");
  return out;
}

Status SqliteTransaction::CopyTags(InodeId from, InodeId to) {
  return Exec2(Sql::kCopyTags, from, to, "CopyTags");
}

Status SqliteTransaction::PutTag(InodeId origin, std::string_view name,
                                 std::string_view value) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kPutTag));
  stmt.Bind(1, ToDb(origin));
  stmt.Bind(2, name);
  stmt.BindBlob(3, value);
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "PutTag");
  return Status::Ok();
}

Result<bool> SqliteTransaction::DeleteTag(InodeId origin,
                                          std::string_view name) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDeleteTag));
  stmt.Bind(1, ToDb(origin));
  stmt.Bind(2, name);
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "DeleteTag");
  return sqlite3_changes(conn_.db()) > 0;
}

Result<uint64_t> SqliteTransaction::CollectTags() {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kCollectTags));
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "CollectTags");
  return static_cast<uint64_t>(sqlite3_changes(conn_.db()));
}

Result<std::vector<Checksum>> SqliteTransaction::ListChecksums(InodeId ino) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kListChecksums));
  stmt.Bind(1, ToDb(ino));
  std::vector<Checksum> out;
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    Checksum c;
    c.type = static_cast<ChecksumType>(stmt.Int(0));
    c.value = std::string(stmt.Text(1));
    out.push_back(std::move(c));
  }
  if (rc != SQLITE_DONE) return Fail(rc, "ListChecksums");
  return out;
}

Status SqliteTransaction::PutChecksum(InodeId ino, const Checksum& c) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kPutChecksum));
  stmt.Bind(1, ToDb(ino));
  stmt.Bind(2, static_cast<int64_t>(c.type));
  stmt.Bind(3, c.value);
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "PutChecksum");
  return Status::Ok();
}

Result<bool> SqliteTransaction::DeleteChecksum(InodeId ino, ChecksumType type) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDeleteChecksum));
  stmt.Bind(1, ToDb(ino));
  stmt.Bind(2, static_cast<int64_t>(type));
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "DeleteChecksum");
  return sqlite3_changes(conn_.db()) > 0;
}

Result<std::optional<std::string>> SqliteTransaction::GetInlineData(
    InodeId ino) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetInlineData));
  stmt.Bind(1, ToDb(ino));
  const int rc = stmt.Step();
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return Fail(rc, "GetInlineData");
  return std::optional<std::string>(stmt.Blob(0));
}

Status SqliteTransaction::PutInlineData(InodeId ino, std::string_view bytes) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kPutInlineData));
  stmt.Bind(1, ToDb(ino));
  stmt.BindBlob(2, bytes);
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "PutInlineData");
  return Status::Ok();
}

Result<bool> SqliteTransaction::DeleteInlineData(InodeId ino) {
  NS_RETURN_IF_ERROR(DeleteBy(Sql::kDeleteInlineData, ino, "DeleteInlineData"));
  return sqlite3_changes(conn_.db()) > 0;
}

Result<bool> SqliteTransaction::HasLayout(InodeId ino) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kHasLayout));
  stmt.Bind(1, ToDb(ino));
  const int rc = stmt.Step();
  if (rc == SQLITE_DONE) return false;
  if (rc != SQLITE_ROW) return Fail(rc, "HasLayout");
  return true;
}

Result<std::vector<Location>> SqliteTransaction::ListLocations(InodeId ino) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kListLocations));
  stmt.Bind(1, ToDb(ino));
  std::vector<Location> out;
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    Location l;
    l.type = static_cast<LocationType>(stmt.Int(0));
    l.location = std::string(stmt.Text(1));
    l.added_ns = stmt.Int(2);
    out.push_back(std::move(l));
  }
  if (rc != SQLITE_DONE) return Fail(rc, "ListLocations");
  return out;
}

Status SqliteTransaction::AddLocation(InodeId ino, const Location& l) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kAddLocation));
  stmt.Bind(1, ToDb(ino));
  stmt.Bind(2, static_cast<int64_t>(l.type));
  stmt.Bind(3, l.location);
  stmt.Bind(4, l.added_ns);
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "AddLocation");  // UNIQUE: Exists
  return Status::Ok();
}

Result<bool> SqliteTransaction::DeleteLocation(InodeId ino, LocationType type,
                                               std::string_view location) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDeleteLocation));
  stmt.Bind(1, ToDb(ino));
  stmt.Bind(2, static_cast<int64_t>(type));
  stmt.Bind(3, location);
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "DeleteLocation");
  return sqlite3_changes(conn_.db()) > 0;
}

Result<GraceRow> SqliteTransaction::GetGrace() {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetGrace));
  const int rc = stmt.Step();
  if (rc == SQLITE_DONE) {
    return Status::Corruption("GetGrace", "the nfs_grace row is missing");
  }
  if (rc != SQLITE_ROW) return Fail(rc, "GetGrace");
  GraceRow row;
  row.current_epoch = stmt.Int(0);
  if (!stmt.IsNull(1)) row.recovery_epoch = stmt.Int(1);
  row.started_ns = stmt.Int(2);
  return row;
}

Status SqliteTransaction::PutGrace(const GraceRow& row) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kPutGrace));
  stmt.Bind(1, row.current_epoch);
  if (row.recovery_epoch) {
    stmt.Bind(2, *row.recovery_epoch);
  } else {
    stmt.BindNull(2);
  }
  stmt.Bind(3, row.started_ns);
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "PutGrace");
  if (sqlite3_changes(conn_.db()) != 1) {
    return Status::Corruption("PutGrace", "the nfs_grace row is missing");
  }
  return Status::Ok();
}

Result<ClientRecord> SqliteTransaction::GetClientRecord(
    std::string_view owner) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetClient));
  stmt.BindBlob(1, owner);
  const int rc = stmt.Step();
  if (rc == SQLITE_DONE) return Status::NotFound("client record");
  if (rc != SQLITE_ROW) return Fail(rc, "GetClientRecord");
  return ReadClient(stmt);
}

Result<std::vector<ClientRecord>> SqliteTransaction::ListClientRecords() {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kListClients));
  std::vector<ClientRecord> out;
  for (;;) {
    const int rc = stmt.Step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return Fail(rc, "ListClientRecords");
    out.push_back(ReadClient(stmt));
  }
  return out;
}

Status SqliteTransaction::PutClientRecord(const ClientRecord& rec) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kPutClient));
  stmt.BindBlob(1, rec.owner);
  stmt.Bind(2, std::string_view(rec.principal));
  stmt.Bind(3, ToDb(rec.verifier));
  stmt.Bind(4, ToDb(rec.clientid));
  stmt.Bind(5, rec.confirmed_ns);
  stmt.Bind(6, rec.confirmed_epoch);
  if (rec.reclaim_epoch) {
    stmt.Bind(7, *rec.reclaim_epoch);
  } else {
    stmt.BindNull(7);
  }
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "PutClientRecord");
  return Status::Ok();
}

Status SqliteTransaction::DeleteClientRecord(std::string_view owner) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDeleteClient));
  stmt.BindBlob(1, owner);
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "DeleteClientRecord");
  return Status::Ok();
}

}  // namespace sqlite_internal
}  // namespace ns
