// SqliteTransaction, part 1: inodes, directory entries, symlinks, orphans,
// the topology lock and statfs. Each method is one cached statement on the
// connection the transaction runs on (the writer's or a reader's).

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
namespace {

bool IsFileType(int64_t v) {
  return v >= static_cast<int>(FileType::kRegular) &&
         v <= static_cast<int>(FileType::kSocket);
}

// The type column of a dirents row.
Result<FileType> EntryType(int64_t v, InodeId parent, std::string_view name) {
  if (!IsFileType(v)) {
    return Status::Corruption(fmt::format(
        "entry {:?} in directory {}: bad file type {}", name, parent, v));
  }
  return static_cast<FileType>(v);
}

// Reads the kInodeCols columns from `col` on. REQUIRES: the row is not NULL
// there (callers of LEFT JOINs check first).
Result<Attr> ReadAttr(const Stmt& stmt, int col) {
  Attr a;
  a.ino = static_cast<InodeId>(stmt.Int(col));
  const int64_t type = stmt.Int(col + 1);
  if (!IsFileType(type)) {
    return Status::Corruption(
        fmt::format("inode {}: bad file type {}", a.ino, type));
  }
  a.type = static_cast<FileType>(type);
  const auto mode = static_cast<uint32_t>(stmt.Int(col + 2));
  a.mode = mode & 07777;
  a.has_acl = (mode & kModeHasAclBit) != 0;
  a.nlink = static_cast<uint32_t>(stmt.Int(col + 3));
  a.uid = static_cast<uint32_t>(stmt.Int(col + 4));
  a.gid = static_cast<uint32_t>(stmt.Int(col + 5));
  a.size = static_cast<uint64_t>(stmt.Int(col + 6));
  a.rdev_major = static_cast<uint32_t>(stmt.Int(col + 7));
  a.rdev_minor = static_cast<uint32_t>(stmt.Int(col + 8));
  a.atime = stmt.Int(col + 9);
  a.mtime = stmt.Int(col + 10);
  a.ctime = stmt.Int(col + 11);
  a.btime = stmt.Int(col + 12);
  a.change = static_cast<uint64_t>(stmt.Int(col + 13));
  a.generation = static_cast<uint32_t>(stmt.Int(col + 14));
  a.parent = static_cast<InodeId>(stmt.Int(col + 15));
  return a;
}

}  // namespace

Result<Attr> SqliteTransaction::GetInode(InodeId ino, LockMode /*lock*/) {
  // No row locks: the one writer already excludes every other writer.
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kGetInode));
  stmt.Bind(1, ToDb(ino));
  const int rc = stmt.Step();
  if (rc == SQLITE_DONE) return Status::Stale(fmt::format("inode {}", ino));
  if (rc != SQLITE_ROW) return Fail(rc, "GetInode");
  return ReadAttr(stmt, 0);
}

Result<std::pair<Attr, std::optional<Attr>>>
SqliteTransaction::LookupWithParent(InodeId parent, std::string_view name) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kLookupWithParent));
  stmt.Bind(1, ToDb(parent));
  stmt.Bind(2, name);
  const int rc = stmt.Step();
  if (rc == SQLITE_DONE) {
    return Status::Stale(fmt::format("inode {}", parent));
  }
  if (rc != SQLITE_ROW) return Fail(rc, "LookupWithParent");
  NS_ASSIGN_OR_RETURN(Attr dir, ReadAttr(stmt, 0));
  constexpr int kChildCol = kInodeCols;  // d.child
  constexpr int kChildAttrCol = kInodeCols + 1;
  if (stmt.IsNull(kChildCol)) {
    return std::make_pair(std::move(dir), std::optional<Attr>());
  }
  if (stmt.IsNull(kChildAttrCol)) {
    return Status::Corruption(
        fmt::format("entry {:?} in directory {} names missing inode {}", name,
                    parent, stmt.Int(kChildCol)));
  }
  NS_ASSIGN_OR_RETURN(Attr child, ReadAttr(stmt, kChildAttrCol));
  return std::make_pair(std::move(dir),
                        std::optional<Attr>(std::move(child)));
}

Result<InodeId> SqliteTransaction::InsertInode(const Attr& attr) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kInsertInode));
  stmt.Bind(1, static_cast<int64_t>(attr.type));
  stmt.Bind(2, StoredMode(attr));
  stmt.Bind(3, attr.nlink);
  stmt.Bind(4, attr.uid);
  stmt.Bind(5, attr.gid);
  stmt.Bind(6, ToDb(attr.size));
  stmt.Bind(7, attr.rdev_major);
  stmt.Bind(8, attr.rdev_minor);
  stmt.Bind(9, attr.atime);
  stmt.Bind(10, attr.mtime);
  stmt.Bind(11, attr.ctime);
  stmt.Bind(12, attr.btime);
  // A new inode starts at change 1 (the column default) unless the caller
  // carries one over (a migrated namespace).
  stmt.Bind(13, ToDb(attr.change == 0 ? 1 : attr.change));
  stmt.Bind(14, attr.generation);
  stmt.Bind(15, ToDb(attr.parent));
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "InsertInode");
  return static_cast<InodeId>(sqlite3_last_insert_rowid(conn_.db()));
}

Status SqliteTransaction::UpdateInode(const Attr& attr) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kUpdateInode));
  stmt.Bind(1, StoredMode(attr));
  stmt.Bind(2, attr.uid);
  stmt.Bind(3, attr.gid);
  stmt.Bind(4, ToDb(attr.size));
  stmt.Bind(5, attr.rdev_major);
  stmt.Bind(6, attr.rdev_minor);
  stmt.Bind(7, attr.atime);
  stmt.Bind(8, attr.mtime);
  stmt.Bind(9, attr.ctime);
  stmt.Bind(10, ToDb(attr.parent));
  stmt.Bind(11, attr.nlink);
  stmt.Bind(12, ToDb(attr.ino));
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "UpdateInode");
  if (sqlite3_changes(conn_.db()) == 0) {
    return Status::Stale(fmt::format("inode {}", attr.ino));
  }
  return Status::Ok();
}

Status SqliteTransaction::DeleteInode(InodeId ino) {
  NS_RETURN_IF_ERROR(DeleteBy(Sql::kDeleteInode, ino, "DeleteInode"));
  if (sqlite3_changes(conn_.db()) == 0) {
    return Status::Stale(fmt::format("inode {}", ino));
  }
  for (Sql side : {Sql::kDeleteSymlink, Sql::kDeleteOrphan, Sql::kDeleteAcl,
                   Sql::kDeleteXattrs, Sql::kDeleteChecksums,
                   Sql::kDeleteLocations, Sql::kReleaseTagSet,
                   Sql::kReleaseTagRef}) {
    NS_RETURN_IF_ERROR(DeleteBy(side, ino, "DeleteInode"));
  }
  // Inline bytes are listed and go in sorted batches (schema version 9):
  // deleting a page-sized row alone costs ~3 WAL pages (the B-tree
  // rebalances its neighbours) and a batch of neighbours next to none.
  NS_RETURN_IF_ERROR(DeleteBy(Sql::kListInlineGone, ino, "DeleteInode"));
  if (sqlite3_changes(conn_.db()) > 0 &&
      conn_.NoteInlineGone() >= kInlineGoneBatch) {
    NS_RETURN_IF_ERROR(conn_.Exec(Sql::kReleaseInlineGone));
    NS_RETURN_IF_ERROR(conn_.Exec(Sql::kClearInlineGone));
    conn_.ForgetInlineGone();
  }
  return Status::Ok();
}

Result<std::optional<EntryRow>> SqliteTransaction::LookupEntry(
    InodeId parent, std::string_view name) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kLookupEntry));
  stmt.Bind(1, ToDb(parent));
  stmt.Bind(2, name);
  const int rc = stmt.Step();
  if (rc == SQLITE_DONE) return std::optional<EntryRow>();
  if (rc != SQLITE_ROW) return Fail(rc, "LookupEntry");
  EntryRow row;
  row.child = static_cast<InodeId>(stmt.Int(0));
  NS_ASSIGN_OR_RETURN(row.type, EntryType(stmt.Int(1), parent, name));
  row.cookie = static_cast<uint64_t>(stmt.Int(2));
  return std::optional<EntryRow>(row);
}

Status SqliteTransaction::InsertEntry(InodeId parent, std::string_view name,
                                      InodeId child, FileType type) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kInsertEntry));
  stmt.Bind(1, ToDb(parent));
  stmt.Bind(2, name);
  stmt.Bind(3, ToDb(child));
  stmt.Bind(4, static_cast<int64_t>(type));
  const int rc = stmt.Step();
  if (rc == SQLITE_DONE) return Status::Ok();
  // UNIQUE (parent, name) becomes Exists here.
  return Fail(rc, "InsertEntry");
}

Status SqliteTransaction::DeleteEntry(InodeId parent, std::string_view name) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDeleteEntry));
  stmt.Bind(1, ToDb(parent));
  stmt.Bind(2, name);
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "DeleteEntry");
  if (sqlite3_changes(conn_.db()) == 0) {
    return Status::NotFound(
        fmt::format("no entry {:?} in directory {}", name, parent));
  }
  return Status::Ok();
}

Result<bool> SqliteTransaction::HasEntries(InodeId dir) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kHasEntries));
  stmt.Bind(1, ToDb(dir));
  const int rc = stmt.Step();
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Fail(rc, "HasEntries");
}

Result<std::vector<DirEntry>> SqliteTransaction::ListEntries(
    InodeId dir, uint64_t after_cookie, uint32_t limit, bool with_attrs) {
  std::vector<DirEntry> entries;
  // Cookies are positive int64 rowids: nothing lies beyond INT64_MAX (and
  // the cast below would otherwise wrap to a negative bound).
  if (limit == 0 ||
      after_cookie >=
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return entries;
  }
  NS_ASSIGN_OR_RETURN(Stmt stmt,
                      conn_.Prepare(with_attrs ? Sql::kListEntriesWithAttrs
                                               : Sql::kListEntries));
  stmt.Bind(1, ToDb(dir));
  stmt.Bind(2, ToDb(after_cookie));
  stmt.Bind(3, static_cast<int64_t>(limit));
  entries.reserve(std::min<uint32_t>(limit, 1024));
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    DirEntry e;
    e.cookie = static_cast<uint64_t>(stmt.Int(0));
    e.name = std::string(stmt.Text(1));
    e.ino = static_cast<InodeId>(stmt.Int(2));
    NS_ASSIGN_OR_RETURN(e.type, EntryType(stmt.Int(3), dir, e.name));
    if (with_attrs) {
      constexpr int kAttrCol = 4;
      if (stmt.IsNull(kAttrCol)) {
        return Status::Corruption(
            fmt::format("entry {:?} in directory {} names missing inode {}",
                        e.name, dir, e.ino));
      }
      NS_ASSIGN_OR_RETURN(e.attr, ReadAttr(stmt, kAttrCol));
    }
    entries.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return Fail(rc, "ListEntries");
  return entries;
}

Result<std::optional<Attr>> SqliteTransaction::DirChanged(InodeId dir,
                                                          int nlink_delta,
                                                          TimeNs now) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kDirChanged));
  stmt.Bind(1, now);
  stmt.Bind(2, now);
  stmt.Bind(3, static_cast<int64_t>(nlink_delta));
  stmt.Bind(4, ToDb(dir));
  int rc = stmt.Step();
  if (rc == SQLITE_DONE) return Status::Stale(fmt::format("inode {}", dir));
  if (rc != SQLITE_ROW) return Fail(rc, "DirChanged");
  // The one writer: the row as updated is the row as committed.
  NS_ASSIGN_OR_RETURN(Attr after, ReadAttr(stmt, 0));
  rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "DirChanged");
  return std::optional<Attr>(after);
}

Status SqliteTransaction::InsertSymlink(InodeId ino, std::string_view target) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kInsertSymlink));
  stmt.Bind(1, ToDb(ino));
  stmt.Bind(2, target);
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "InsertSymlink");
  return Status::Ok();
}

Result<std::string> SqliteTransaction::ReadSymlink(InodeId ino) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kReadSymlink));
  stmt.Bind(1, ToDb(ino));
  const int rc = stmt.Step();
  if (rc == SQLITE_DONE) {
    return Status::Corruption(
        fmt::format("symlink {} has no target row", ino));
  }
  if (rc != SQLITE_ROW) return Fail(rc, "ReadSymlink");
  return std::string(stmt.Text(0));
}

Status SqliteTransaction::AddOrphan(InodeId ino, TimeNs now) {
  NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kAddOrphan));
  stmt.Bind(1, ToDb(ino));
  stmt.Bind(2, now);
  const int rc = stmt.Step();
  if (rc != SQLITE_DONE) return Fail(rc, "AddOrphan");
  return Status::Ok();
}

Status SqliteTransaction::RemoveOrphan(InodeId ino) {
  // Removing an inode that is not on the list is not an error: the
  // caller's goal (not listed) holds.
  return DeleteBy(Sql::kDeleteOrphan, ino, "RemoveOrphan");
}

Status SqliteTransaction::LockTopology() {
  // One writer at a time: two renames can never interleave.
  return Status::Ok();
}

Result<std::vector<SqlRow>> SqliteTransaction::Query(
    std::string_view sql, std::span<const int64_t> params) {
  std::vector<SqlValue> values(params.begin(), params.end());
  return QueryValues(sql, values);
}

Result<std::vector<SqlRow>> SqliteTransaction::QueryValues(
    std::string_view sql, std::span<const SqlValue> params) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(conn_.db(), sql.data(),
                              static_cast<int>(sql.size()), &raw, nullptr);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(
      raw, &sqlite3_finalize);
  if (rc != SQLITE_OK) return Fail(rc, "Query");
  // "$N" is a named parameter to SQLite, numbered by first appearance;
  // bind by name so the SQL may use them in any order.
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string name = "$" + std::to_string(i + 1);
    const int index = sqlite3_bind_parameter_index(raw, name.c_str());
    if (index == 0) continue;
    if (const int64_t* v = std::get_if<int64_t>(&params[i])) {
      rc = sqlite3_bind_int64(raw, index, *v);
    } else {
      const std::string& text = std::get<std::string>(params[i]);
      rc = sqlite3_bind_text(raw, index, text.data(),
                             static_cast<int>(text.size()),
                             SQLITE_TRANSIENT);
    }
    if (rc != SQLITE_OK) return Fail(rc, "Query");
  }
  std::vector<SqlRow> rows;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    SqlRow row;
    const int n = sqlite3_column_count(raw);
    for (int c = 0; c < n; ++c) {
      const auto* text = sqlite3_column_text(raw, c);
      if (text == nullptr) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(reinterpret_cast<const char*>(text),
                                     sqlite3_column_bytes(raw, c)));
      }
    }
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return Fail(rc, "Query");
  return rows;
}

Result<FsStats> SqliteTransaction::Stats() {
  FsStats stats;
  {
    NS_ASSIGN_OR_RETURN(Stmt stmt, conn_.Prepare(Sql::kStats));
    const int rc = stmt.Step();
    if (rc != SQLITE_ROW) return Fail(rc, "Stats");
    stats.files = static_cast<uint64_t>(stmt.Int(0));
    const double bytes = stmt.Double(1);
    stats.bytes = bytes > 0 ? static_cast<uint64_t>(bytes) : 0;
  }
  stats.files_free =
      stats.files < kFilesTotal ? kFilesTotal - stats.files : 0;
  // The namespace grows on the file system holding the database.
  struct statvfs vfs;
  if (statvfs(DirectoryOf(conn_.path()).c_str(), &vfs) == 0) {
    stats.bytes_total = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
    stats.bytes_free = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  }
  return stats;
}

}  // namespace sqlite_internal
}  // namespace ns
