// nsadmin fsck: every invariant of docs/schema.md checked with one SQL
// statement each (read-only, one snapshot per statement), and the safe
// repairs, each in its own short Write that re-checks under row locks.
//
// Why the re-check: detection runs on a live namespace, and between a
// statement and the repair a client may have fixed, changed or removed what
// was found. A repair that acts on the inode's state at detection time could
// undo a client's change; so a repair locks the rows, compares the inode's
// change counter (every change of nlink, parent or entries bumps it) or
// re-reads the rows, and gives up ("changed meanwhile") when they differ.

#include <algorithm>
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "libnamespace/include/namespace/admin.h"
#include "libnamespace/src/backend.h"

namespace ns {
namespace {

constexpr std::string_view kLostFound = "lost+found";

int64_t Int(const std::optional<std::string>& v) {
  int64_t out = 0;
  if (v) std::from_chars(v->data(), v->data() + v->size(), out);
  return out;
}

std::string Quoted(const std::optional<std::string>& v) {
  if (!v) return "NULL";
  std::string q = "'";
  for (char c : v->substr(0, 64)) q += (c == '\0') ? '?' : c;
  if (v->size() > 64) q += "...";
  return q + "'";
}

// One run of the checks over one namespace.
class Checker {
 public:
  Checker(Namespace& ns, const FsckOptions& options)
      : ns_(ns),
        backend_(ns.backend()),
        options_(options),
        pg_(backend_.Dialect() == "postgresql") {}

  Result<FsckReport> Run() {
    NS_ASSIGN_OR_RETURN(auto counts,
                        Select("SELECT (SELECT count(*) FROM inodes), "
                               "(SELECT count(*) FROM dirents)",
                               {}));
    if (!counts.empty()) {
      report_.inodes = static_cast<uint64_t>(Int(counts[0][0]));
      report_.entries = static_cast<uint64_t>(Int(counts[0][1]));
    }
    NS_RETURN_IF_ERROR(EntryMissingInode());
    NS_RETURN_IF_ERROR(EntryInNonDirectory());
    NS_RETURN_IF_ERROR(EntryTypeMismatch());
    NS_RETURN_IF_ERROR(UnreferencedInode());
    NS_RETURN_IF_ERROR(DirectorySeveralNames());
    NS_RETURN_IF_ERROR(DirectoryParent());
    NS_RETURN_IF_ERROR(FileNlink());
    NS_RETURN_IF_ERROR(DirectoryNlink());
    NS_RETURN_IF_ERROR(UnreachableDirectory());
    NS_RETURN_IF_ERROR(SymlinkTarget());
    NS_RETURN_IF_ERROR(OrphanRecord());
    NS_RETURN_IF_ERROR(MetadataOfMissingInode());
    NS_RETURN_IF_ERROR(UnreferencedTagSet());
    NS_RETURN_IF_ERROR(PnfsLayoutOfMissingInode());
    return std::move(report_);
  }

 private:
  // Runs a detection statement; `sql` ends in "LIMIT $1" where it returns
  // findings, and $1 is one more than the cap so truncation shows.
  Result<std::vector<SqlRow>> Select(const std::string& sql,
                                     std::vector<int64_t> params) {
    std::vector<SqlRow> rows;
    NS_RETURN_IF_ERROR(backend_.Read([&](Transaction& t) -> Status {
      NS_ASSIGN_OR_RETURN(rows, t.Query(sql, params));
      return Status::Ok();
    }));
    return rows;
  }

  Result<std::vector<SqlRow>> Find(const std::string& check,
                                   const std::string& sql) {
    const int64_t cap = options_.max_findings_per_check;
    NS_ASSIGN_OR_RETURN(auto rows, Select(sql, {cap + 1}));
    if (rows.size() > static_cast<size_t>(cap)) {
      rows.resize(static_cast<size_t>(cap));
      report_.truncated.push_back(check);
    }
    return rows;
  }

  // Records a finding; runs `repair` (a Write) when repairs are on.
  // `repair` returns true if it fixed it, false if the state changed since
  // detection (then nothing was written).
  template <typename RepairFn>
  Status Add(const std::string& check, InodeId ino, std::string detail,
             RepairFn&& repair) {
    FsckFinding f{check, ino, std::move(detail), true, false};
    if (options_.repair) {
      bool fixed = false;
      NS_RETURN_IF_ERROR(backend_.Write([&](Transaction& t) -> Status {
        fixed = false;
        NS_ASSIGN_OR_RETURN(fixed, repair(t));
        return Status::Ok();
      }));
      f.repaired = fixed;
      if (!fixed) f.detail += " (changed meanwhile; not repaired)";
    }
    report_.findings.push_back(std::move(f));
    return Status::Ok();
  }

  // A finding repaired by one guarded DELETE: `sql` takes the id as $1,
  // re-checks the fault itself (so a row fixed meanwhile stays) and returns
  // the rows it deleted.
  Status AddDelete(const std::string& check, InodeId id, std::string detail,
                   std::string sql) {
    return Add(check, id, std::move(detail),
               [&](Transaction& t) -> Result<bool> {
                 const int64_t one[] = {static_cast<int64_t>(id)};
                 NS_ASSIGN_OR_RETURN(auto gone, t.Query(sql, one));
                 return !gone.empty();
               });
  }

  void AddReportOnly(const std::string& check, InodeId ino,
                     std::string detail) {
    report_.findings.push_back({check, ino, std::move(detail), false, false});
  }

  // A directory's effective link count and change counter as SQL over
  // inodes `i`: PostgreSQL keeps pending entry changes in dir_deltas.
  std::string EffNlink() const {
    return pg_ ? "(i.nlink + coalesce((SELECT sum(d.nlink_delta) FROM "
                 "dir_deltas d WHERE d.parent = i.ino), 0))"
               : "i.nlink";
  }
  std::string EffChange() const {
    return pg_ ? "(i.change + (SELECT count(*) FROM dir_deltas d "
                 "WHERE d.parent = i.ino))"
               : "i.change";
  }

  // Removes entry (parent, name) if it still names `child`; tells the
  // directory (when it exists and is one) that an entry went.
  static Result<bool> RemoveEntry(Transaction& t, InodeId parent,
                                  const std::string& name, InodeId child) {
    auto dir = t.GetInode(parent, LockMode::kShared);
    if (!dir.ok() && !dir.status().IsStale()) return dir.status();
    NS_ASSIGN_OR_RETURN(auto entry, t.LookupEntry(parent, name));
    if (!entry || entry->child != child) return false;
    NS_RETURN_IF_ERROR(t.DeleteEntry(parent, name));
    if (dir.ok() && dir->type == FileType::kDirectory) {
      const int delta = entry->type == FileType::kDirectory ? -1 : 0;
      NS_RETURN_IF_ERROR(t.DirChanged(parent, delta, NowNs()).status());
    }
    return true;
  }

  Status EntryMissingInode() {
    const std::string check = "entry-missing-inode";
    NS_ASSIGN_OR_RETURN(
        auto rows,
        Find(check,
             "SELECT e.parent, e.name, e.child FROM dirents e WHERE NOT "
             "EXISTS (SELECT 1 FROM inodes i WHERE i.ino = e.child) "
             "ORDER BY e.parent, e.name LIMIT $1"));
    for (const SqlRow& r : rows) {
      const InodeId parent = Int(r[0]), child = Int(r[2]);
      const std::string name = r[1].value_or("");
      NS_RETURN_IF_ERROR(Add(
          check, parent,
          fmt::format("entry {} in directory {} names missing inode {}",
                      Quoted(r[1]), parent, child),
          [&](Transaction& t) -> Result<bool> {
            auto c = t.GetInode(child, LockMode::kNone);
            if (c.ok()) return false;  // created meanwhile? leave it
            if (!c.status().IsStale()) return c.status();
            return RemoveEntry(t, parent, name, child);
          }));
    }
    return Status::Ok();
  }

  Status EntryInNonDirectory() {
    const std::string check = "entry-in-non-directory";
    NS_ASSIGN_OR_RETURN(
        auto rows,
        Find(check,
             "SELECT e.parent, e.name, e.child FROM dirents e "
             "LEFT JOIN inodes p ON p.ino = e.parent "
             "WHERE p.ino IS NULL OR p.type <> 2 "
             "ORDER BY e.parent, e.name LIMIT $1"));
    for (const SqlRow& r : rows) {
      const InodeId parent = Int(r[0]), child = Int(r[2]);
      const std::string name = r[1].value_or("");
      NS_RETURN_IF_ERROR(Add(
          check, parent,
          fmt::format("entry {} (inode {}) is in {}, which is not a directory",
                      Quoted(r[1]), child, parent),
          [&](Transaction& t) -> Result<bool> {
            auto p = t.GetInode(parent, LockMode::kNone);
            if (p.ok() && p->type == FileType::kDirectory) return false;
            if (!p.ok() && !p.status().IsStale()) return p.status();
            return RemoveEntry(t, parent, name, child);
          }));
    }
    return Status::Ok();
  }

  Status EntryTypeMismatch() {
    const std::string check = "entry-type-mismatch";
    NS_ASSIGN_OR_RETURN(
        auto rows,
        Find(check,
             "SELECT e.parent, e.name, e.child, e.type, i.type FROM dirents e "
             "JOIN inodes i ON i.ino = e.child WHERE e.type <> i.type "
             "ORDER BY e.parent, e.name LIMIT $1"));
    for (const SqlRow& r : rows) {
      const InodeId parent = Int(r[0]), child = Int(r[2]);
      const std::string name = r[1].value_or("");
      const auto type = static_cast<FileType>(Int(r[4]));
      NS_RETURN_IF_ERROR(Add(
          check, parent,
          fmt::format("entry {} in {} says type {}, inode {} is type {}",
                      Quoted(r[1]), parent, Int(r[3]), child, Int(r[4])),
          [&](Transaction& t) -> Result<bool> {
            NS_ASSIGN_OR_RETURN(Attr dir,
                                t.GetInode(parent, LockMode::kShared));
            NS_ASSIGN_OR_RETURN(auto entry, t.LookupEntry(parent, name));
            if (!entry || entry->child != child) return false;
            NS_ASSIGN_OR_RETURN(Attr c, t.GetInode(child, LockMode::kNone));
            if (c.type != type || entry->type == type) return false;
            // A new entry row (and cookie): readdir never shows the name
            // twice, since the old row goes in the same transaction.
            NS_RETURN_IF_ERROR(t.DeleteEntry(parent, name));
            NS_RETURN_IF_ERROR(t.InsertEntry(parent, name, child, type));
            const int delta = (type == FileType::kDirectory) -
                              (entry->type == FileType::kDirectory);
            NS_RETURN_IF_ERROR(t.DirChanged(dir.ino, delta, NowNs()).status());
            return true;
          }));
    }
    return Status::Ok();
  }

  // The /lost+found directory (made on first need, root-only like
  // e2fsck's).
  Result<InodeId> LostFound() {
    if (lost_found_) return *lost_found_;
    const Credentials root = Credentials::Root();
    auto made = ns_.Mkdir(root, kRootInode, kLostFound, 0700);
    if (made.ok()) {
      lost_found_ = made->ino;
    } else if (made.status().IsExists()) {
      NS_ASSIGN_OR_RETURN(Attr a, ns_.Lookup(root, kRootInode, kLostFound));
      if (a.type != FileType::kDirectory) {
        return Status::Invalid("fsck", "/lost+found is not a directory");
      }
      lost_found_ = a.ino;
    } else {
      return made.status();
    }
    return *lost_found_;
  }

  Status UnreferencedInode() {
    const std::string check = "unreferenced-inode";
    NS_ASSIGN_OR_RETURN(
        auto rows,
        Find(check,
             "SELECT i.ino, i.type, i.change FROM inodes i WHERE i.ino <> 1 "
             "AND NOT EXISTS (SELECT 1 FROM dirents e WHERE e.child = i.ino) "
             "AND NOT EXISTS (SELECT 1 FROM orphans o WHERE o.ino = i.ino) "
             "ORDER BY i.ino LIMIT $1"));
    for (const SqlRow& r : rows) {
      const InodeId ino = Int(r[0]);
      const auto type = static_cast<FileType>(Int(r[1]));
      const std::string name = fmt::format("#{}", ino);
      std::optional<InodeId> lf;
      if (options_.repair) {
        NS_ASSIGN_OR_RETURN(lf, LostFound());
      }
      NS_RETURN_IF_ERROR(Add(
          check, ino,
          fmt::format("inode {} (type {}) has no name and is not open", ino,
                      Int(r[1])),
          [&](Transaction& t) -> Result<bool> {
            // Locks in inode order: the directory (shared), the inode.
            const InodeId dir = *lf;
            std::optional<Attr> a;
            if (dir < ino) {
              NS_RETURN_IF_ERROR(t.GetInode(dir, LockMode::kShared).status());
            }
            NS_ASSIGN_OR_RETURN(a, t.GetInode(ino, LockMode::kExclusive));
            if (dir > ino) {
              NS_RETURN_IF_ERROR(t.GetInode(dir, LockMode::kShared).status());
            }
            const int64_t one[] = {static_cast<int64_t>(ino)};
            NS_ASSIGN_OR_RETURN(
                auto refs,
                t.Query("SELECT (SELECT count(*) FROM dirents WHERE child = $1)"
                        " + (SELECT count(*) FROM orphans WHERE ino = $1)",
                        one));
            if (refs.empty() || Int(refs[0][0]) != 0) return false;
            NS_RETURN_IF_ERROR(t.InsertEntry(dir, name, ino, type));
            const TimeNs now = NowNs();
            a->parent = dir;
            if (type != FileType::kDirectory) a->nlink = 1;
            a->ctime = now;
            NS_RETURN_IF_ERROR(t.UpdateInode(*a));
            NS_RETURN_IF_ERROR(
                t.DirChanged(dir, type == FileType::kDirectory ? 1 : 0, now)
                    .status());
            return true;
          }));
      if (options_.repair && report_.findings.back().repaired) {
        report_.findings.back().detail +=
            fmt::format(" -> /{}/{}", kLostFound, name);
      }
    }
    return Status::Ok();
  }

  Status DirectorySeveralNames() {
    const std::string check = "directory-several-names";
    NS_ASSIGN_OR_RETURN(
        auto rows, Find(check,
                        "SELECT child, count(*) FROM dirents WHERE type = 2 "
                        "GROUP BY child HAVING count(*) > 1 "
                        "ORDER BY child LIMIT $1"));
    for (const SqlRow& r : rows) {
      multi_named_.push_back(Int(r[0]));
      AddReportOnly(check, Int(r[0]),
                    fmt::format("directory {} has {} names; remove all but "
                                "one (nsh rm) and run fsck again",
                                Int(r[0]), Int(r[1])));
    }
    return Status::Ok();
  }

  Status DirectoryParent() {
    const std::string check = "directory-parent";
    NS_ASSIGN_OR_RETURN(
        auto rows,
        Find(check,
             "SELECT i.ino, i.parent, e.parent, i.change FROM inodes i "
             "JOIN dirents e ON e.child = i.ino WHERE i.type = 2 AND "
             "i.parent <> e.parent ORDER BY i.ino LIMIT $1"));
    for (const SqlRow& r : rows) {
      const InodeId ino = Int(r[0]);
      if (std::find(multi_named_.begin(), multi_named_.end(), ino) !=
          multi_named_.end()) {
        continue;  // reported above; which parent is right is unknown
      }
      const InodeId want = Int(r[2]);
      NS_RETURN_IF_ERROR(Add(
          check, ino,
          fmt::format("directory {} points to parent {} but is named in {}",
                      ino, Int(r[1]), want),
          [&](Transaction& t) -> Result<bool> {
            NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kExclusive));
            if (a.change != static_cast<uint64_t>(Int(r[3]))) return false;
            a.parent = want;
            NS_RETURN_IF_ERROR(t.UpdateInode(a));
            return true;
          }));
    }
    return Status::Ok();
  }

  Status FileNlink() {
    const std::string check = "file-nlink";
    NS_ASSIGN_OR_RETURN(
        auto rows,
        Find(check,
             "SELECT i.ino, i.nlink, coalesce(c.n, 0), i.change FROM inodes i "
             "LEFT JOIN (SELECT child, count(*) AS n FROM dirents "
             "GROUP BY child) c ON c.child = i.ino "
             "WHERE i.type <> 2 AND i.nlink <> coalesce(c.n, 0) "
             "ORDER BY i.ino LIMIT $1"));
    for (const SqlRow& r : rows) {
      const InodeId ino = Int(r[0]);
      const int64_t want = Int(r[2]);
      NS_RETURN_IF_ERROR(Add(
          check, ino,
          fmt::format("inode {} has nlink {} but {} names", ino, Int(r[1]),
                      want),
          [&](Transaction& t) -> Result<bool> {
            NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kExclusive));
            if (a.change != static_cast<uint64_t>(Int(r[3]))) return false;
            a.nlink = static_cast<uint32_t>(want);
            NS_RETURN_IF_ERROR(t.UpdateInode(a));
            return true;
          }));
    }
    return Status::Ok();
  }

  Status DirectoryNlink() {
    const std::string check = "directory-nlink";
    NS_ASSIGN_OR_RETURN(
        auto rows,
        Find(check,
             "SELECT i.ino, " + EffNlink() + ", 2 + coalesce(c.n, 0), " +
                 EffChange() +
                 " FROM inodes i LEFT JOIN (SELECT parent, count(*) AS n "
                 "FROM dirents WHERE type = 2 GROUP BY parent) c "
                 "ON c.parent = i.ino WHERE i.type = 2 AND " +
                 EffNlink() + " <> 2 + coalesce(c.n, 0) ORDER BY i.ino LIMIT $1"));
    for (const SqlRow& r : rows) {
      const InodeId ino = Int(r[0]);
      const int64_t want = Int(r[2]);
      NS_RETURN_IF_ERROR(Add(
          check, ino,
          fmt::format("directory {} has nlink {} but {} (2 + subdirectories)",
                      ino, Int(r[1]), want),
          [&](Transaction& t) -> Result<bool> {
            NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kExclusive));
            if (a.change != static_cast<uint64_t>(Int(r[3]))) return false;
            // A directory's nlink moves only through DirChanged (it also
            // bumps mtime: the repair is visible, which is honest).
            NS_RETURN_IF_ERROR(
                t.DirChanged(
                     ino,
                     static_cast<int>(want - static_cast<int64_t>(a.nlink)),
                     NowNs())
                    .status());
            return true;
          }));
    }
    return Status::Ok();
  }

  Status UnreachableDirectory() {
    const std::string check = "unreachable-directory";
    // UNION (not UNION ALL) ends the recursion on a cycle. The walk goes by
    // the inode's type, not the entry's, so a wrong entry type (its own
    // finding) does not also make a subtree look unreachable.
    NS_ASSIGN_OR_RETURN(
        auto rows,
        Find(check,
             "WITH RECURSIVE r(ino) AS (SELECT CAST(1 AS bigint) UNION "
             "SELECT e.child FROM dirents e JOIN r ON e.parent = r.ino "
             "JOIN inodes c ON c.ino = e.child WHERE c.type = 2) "
             "SELECT i.ino FROM inodes i WHERE i.type = 2 AND NOT EXISTS "
             "(SELECT 1 FROM r WHERE r.ino = i.ino) AND EXISTS "
             "(SELECT 1 FROM dirents e WHERE e.child = i.ino) "
             "ORDER BY i.ino LIMIT $1"));
    for (const SqlRow& r : rows) {
      AddReportOnly(check, Int(r[0]),
                    fmt::format("directory {} is not reachable from / (it is "
                                "in or below a cycle of directories)",
                                Int(r[0])));
    }
    return Status::Ok();
  }

  Status SymlinkTarget() {
    const std::string check = "symlink-target";
    NS_ASSIGN_OR_RETURN(
        auto missing,
        Find(check,
             "SELECT i.ino FROM inodes i WHERE i.type = 3 AND NOT EXISTS "
             "(SELECT 1 FROM symlinks s WHERE s.ino = i.ino) "
             "ORDER BY i.ino LIMIT $1"));
    for (const SqlRow& r : missing) {
      AddReportOnly(check, Int(r[0]),
                    fmt::format("symlink {} has no target", Int(r[0])));
    }
    NS_ASSIGN_OR_RETURN(
        auto stray,
        Find(check,
             "SELECT s.ino FROM symlinks s LEFT JOIN inodes i ON i.ino = s.ino "
             "WHERE i.ino IS NULL OR i.type <> 3 ORDER BY s.ino LIMIT $1"));
    for (const SqlRow& r : stray) {
      const InodeId ino = Int(r[0]);
      NS_RETURN_IF_ERROR(AddDelete(
          check, ino,
          fmt::format("symlink target stored for {}, which is no symlink",
                      ino),
          "DELETE FROM symlinks WHERE ino = $1 AND NOT EXISTS (SELECT 1 FROM "
          "inodes WHERE ino = $1 AND type = 3) RETURNING ino"));
    }
    return Status::Ok();
  }

  Status OrphanRecord() {
    const std::string check = "orphan-record";
    NS_ASSIGN_OR_RETURN(
        auto rows,
        Find(check,
             "SELECT o.ino FROM orphans o WHERE NOT EXISTS (SELECT 1 FROM "
             "inodes i WHERE i.ino = o.ino) OR EXISTS (SELECT 1 FROM dirents "
             "e WHERE e.child = o.ino) ORDER BY o.ino LIMIT $1"));
    for (const SqlRow& r : rows) {
      const InodeId ino = Int(r[0]);
      NS_RETURN_IF_ERROR(Add(
          check, ino,
          fmt::format("open-file record of inode {}, which is missing or "
                      "still has a name",
                      ino),
          [&](Transaction& t) -> Result<bool> {
            auto a = t.GetInode(ino, LockMode::kExclusive);
            if (!a.ok() && !a.status().IsStale()) return a.status();
            const int64_t one[] = {static_cast<int64_t>(ino)};
            NS_ASSIGN_OR_RETURN(
                auto named,
                t.Query("SELECT count(*) FROM dirents WHERE child = $1", one));
            if (a.ok() && (named.empty() || Int(named[0][0]) == 0)) {
              return false;  // unlinked meanwhile: a real open file now
            }
            NS_RETURN_IF_ERROR(t.RemoveOrphan(ino));
            return true;
          }));
    }
    return Status::Ok();
  }

  // ACEs, xattrs, checksums, locations, inline bytes and tag references of
  // an inode that is gone (DeleteInode removes them with it; these are left by a bug or a
  // hand edit). Removed, table by table, once the inode is confirmed gone.
  // Inline bytes listed in inode_data_gone are waiting for their batch
  // (schema version 9), not left behind.
  Status MetadataOfMissingInode() {
    const std::string check = "metadata-of-missing-inode";
    // Each table with what else a left-behind row must satisfy.
    constexpr std::pair<const char*, const char*> kTables[] = {
        {"aces", ""},
        {"xattrs", ""},
        {"checksums", ""},
        {"locations", ""},
        {"inode_data",
         " AND NOT EXISTS (SELECT 1 FROM inode_data_gone g WHERE "
         "g.ino = t.ino)"},
        {"dir_tags", ""}};
    for (const auto& [table, listed] : kTables) {
      NS_ASSIGN_OR_RETURN(
          auto rows,
          Find(check, fmt::format("SELECT DISTINCT t.ino FROM {} t WHERE NOT "
                                  "EXISTS (SELECT 1 FROM inodes i WHERE "
                                  "i.ino = t.ino){} ORDER BY t.ino LIMIT $1",
                                  table, listed)));
      for (const SqlRow& r : rows) {
        const InodeId ino = Int(r[0]);
        NS_RETURN_IF_ERROR(AddDelete(
            check, ino,
            fmt::format("{} rows of inode {}, which does not exist", table,
                        ino),
            fmt::format("DELETE FROM {} WHERE ino = $1 AND NOT EXISTS "
                        "(SELECT 1 FROM inodes WHERE ino = $1) RETURNING ino",
                        table)));
      }
    }
    return Status::Ok();
  }

  // A tag set (rows of `tags` owned by an origin) that no directory sees:
  // what Namespace::CollectTags removes; reported and removed here too.
  Status UnreferencedTagSet() {
    const std::string check = "unreferenced-tag-set";
    NS_ASSIGN_OR_RETURN(
        auto rows,
        Find(check,
             "SELECT DISTINCT t.origin FROM tags t WHERE NOT EXISTS (SELECT 1 "
             "FROM dir_tags d WHERE d.origin = t.origin) ORDER BY t.origin "
             "LIMIT $1"));
    for (const SqlRow& r : rows) {
      const InodeId origin = Int(r[0]);
      NS_RETURN_IF_ERROR(AddDelete(
          check, origin,
          fmt::format("tag set of {} is seen by no directory", origin),
          "DELETE FROM tags WHERE origin = $1 AND NOT EXISTS (SELECT 1 FROM "
          "dir_tags WHERE origin = $1) RETURNING origin"));
    }
    return Status::Ok();
  }

  // A pNFS layout (schema 005) whose inode is gone: the trigger that queues
  // the stripes' removal with the inode's deletion did not run (a hand
  // edit, or rows restored apart). The repair does what the trigger does:
  // queue REMOVE on each data server of the layout's device, then drop the
  // layout, so the data servers lose the dark data.
  Status PnfsLayoutOfMissingInode() {
    const std::string check = "pnfs-layout-of-missing-inode";
    NS_ASSIGN_OR_RETURN(
        auto rows,
        Find(check,
             "SELECT l.ino FROM pnfs_layouts l WHERE NOT EXISTS (SELECT 1 "
             "FROM inodes i WHERE i.ino = l.ino) ORDER BY l.ino LIMIT $1"));
    for (const SqlRow& r : rows) {
      const InodeId ino = Int(r[0]);
      NS_RETURN_IF_ERROR(Add(
          check, ino,
          fmt::format("pNFS layout of inode {}, which does not exist: its "
                      "stripes are dark data on the data servers",
                      ino),
          [&](Transaction& t) -> Result<bool> {
            const int64_t one[] = {static_cast<int64_t>(ino)};
            NS_ASSIGN_OR_RETURN(
                auto gone,
                t.Query("DELETE FROM pnfs_layouts WHERE ino = $1 AND NOT "
                        "EXISTS (SELECT 1 FROM inodes WHERE ino = $1) "
                        "RETURNING device",
                        one));
            if (gone.empty()) return false;
            const int64_t q[] = {static_cast<int64_t>(ino), NowNs(),
                                 Int(gone[0][0])};
            NS_RETURN_IF_ERROR(
                t.Query("INSERT INTO pnfs_work (ds, op, fileid, size, "
                        "queued_ns) SELECT ds, 1, $1, 0, $2 FROM "
                        "pnfs_device_members WHERE device = $3",
                        q)
                    .status());
            return true;
          }));
    }
    return Status::Ok();
  }

  Namespace& ns_;
  Backend& backend_;
  const FsckOptions options_;
  const bool pg_;
  FsckReport report_;
  std::optional<InodeId> lost_found_;
  std::vector<InodeId> multi_named_;
};

}  // namespace

size_t FsckReport::Unrepaired() const {
  return static_cast<size_t>(
      std::count_if(findings.begin(), findings.end(),
                    [](const FsckFinding& f) { return !f.repaired; }));
}

const std::vector<std::string>& FsckCheckNames() {
  static const std::vector<std::string> names = {
      "entry-missing-inode",   "entry-in-non-directory",
      "entry-type-mismatch",   "unreferenced-inode",
      "directory-several-names", "directory-parent",
      "file-nlink",            "directory-nlink",
      "unreachable-directory", "symlink-target",
      "orphan-record",         "metadata-of-missing-inode",
      "unreferenced-tag-set",  "pnfs-layout-of-missing-inode"};
  return names;
}

Result<FsckReport> Fsck(Namespace& ns, const FsckOptions& options) {
  return Checker(ns, options).Run();
}

}  // namespace ns
