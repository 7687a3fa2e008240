// The SQL text of every statement the SQLite backend runs (Sql in
// sqlite_connection.h names them).

#include <array>
#include <cstddef>

#include "libnamespace/src/sqlite_connection.h"

namespace ns {
namespace sqlite_internal {

// The 16 inode columns in the order ReadAttr expects them.
#define NS_INODE_COLS(t)                                                       \
  t "ino, " t "type, " t "mode, " t "nlink, " t "uid, " t "gid, " t "size, " t \
    "rdev_major, " t "rdev_minor, " t "atime_ns, " t "mtime_ns, " t            \
    "ctime_ns, " t "btime_ns, " t "change, " t "generation, " t "parent"

// Indexed by Sql.
constexpr std::array<const char*, static_cast<size_t>(Sql::kCount)> kSqlText =
    {
        "BEGIN",
        "BEGIN IMMEDIATE",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT w",
        "RELEASE w",
        "ROLLBACK TO w",
        // kGetInode
        "SELECT " NS_INODE_COLS("") " FROM inodes WHERE ino = ?1",
        // kLookupWithParent: the parent's row, the entry and the child's row
        // in one statement: LOOKUP's whole database work.
        "SELECT " NS_INODE_COLS("p.") ", d.child, " NS_INODE_COLS("c.")
        " FROM inodes AS p"
        " LEFT JOIN dirents AS d ON d.parent = p.ino AND d.name = ?2"
        " LEFT JOIN inodes AS c ON c.ino = d.child"
        " WHERE p.ino = ?1",
        // kInsertInode
        "INSERT INTO inodes (type, mode, nlink, uid, gid, size, rdev_major,"
        " rdev_minor, atime_ns, mtime_ns, ctime_ns, btime_ns, change,"
        " generation, parent)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
        " ?15)",
        // kUpdateInode: a directory's nlink belongs to DirChanged.
        "UPDATE inodes SET mode = ?1, uid = ?2, gid = ?3, size = ?4,"
        " rdev_major = ?5, rdev_minor = ?6, atime_ns = ?7, mtime_ns = ?8,"
        " ctime_ns = ?9, parent = ?10,"
        " nlink = CASE WHEN type = 2 THEN nlink ELSE ?11 END,"
        " change = change + 1"
        " WHERE ino = ?12",
        "DELETE FROM inodes WHERE ino = ?1",
        "DELETE FROM symlinks WHERE ino = ?1",
        "DELETE FROM orphans WHERE ino = ?1",
        // kLookupEntry
        "SELECT child, type, cookie FROM dirents"
        " WHERE parent = ?1 AND name = ?2",
        // kInsertEntry: the cookie is the AUTOINCREMENT rowid.
        "INSERT INTO dirents (parent, name, child, type)"
        " VALUES (?1, ?2, ?3, ?4)",
        "DELETE FROM dirents WHERE parent = ?1 AND name = ?2",
        "SELECT 1 FROM dirents WHERE parent = ?1 LIMIT 1",
        // kListEntries: a range scan of dirents_parent_cookie.
        "SELECT cookie, name, child, type FROM dirents"
        " WHERE parent = ?1 AND cookie > ?2 ORDER BY cookie LIMIT ?3",
        // kListEntriesWithAttrs: LEFT JOIN so that an entry whose inode is
        // missing is reported as corruption rather than silently skipped.
        "SELECT d.cookie, d.name, d.child, d.type, " NS_INODE_COLS("i.")
        " FROM dirents AS d LEFT JOIN inodes AS i ON i.ino = d.child"
        " WHERE d.parent = ?1 AND d.cookie > ?2 ORDER BY d.cookie LIMIT ?3",
        // kDirChanged: one writer, so the row is updated in place (no
        // counterpart of PostgreSQL's dir_deltas is needed).
        "UPDATE inodes SET mtime_ns = ?1, ctime_ns = ?2, change = change + 1,"
        " nlink = nlink + ?3 WHERE ino = ?4 RETURNING " NS_INODE_COLS(""),
        "INSERT INTO symlinks (ino, target) VALUES (?1, ?2)",
        "SELECT target FROM symlinks WHERE ino = ?1",
        // kAddOrphan: adding twice keeps the first time.
        "INSERT INTO orphans (ino, since_ns) VALUES (?1, ?2)"
        " ON CONFLICT (ino) DO NOTHING",
        // kStats: total() rather than sum(): sum() fails on int64 overflow.
        "SELECT count(*), total(CASE WHEN type = 1 THEN size ELSE 0 END)"
        " FROM inodes",
        "SELECT verifier FROM fs_info WHERE id = 1",
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        "SELECT count(*) FROM sqlite_master"
        " WHERE type = 'table' AND name = 'schema_version'",
        "SELECT max(version) FROM schema_version",
        "INSERT INTO schema_version (version, name, applied_ns)"
        " VALUES (?1, ?2, ?3)",
        // --- metadata (version 3) ---
        "SELECT type, flags, mask, who_kind, who_id FROM aces"
        " WHERE ino = ?1 ORDER BY pos",
        "DELETE FROM aces WHERE ino = ?1",
        "INSERT INTO aces (ino, pos, type, flags, mask, who_kind, who_id)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        "SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2",
        "SELECT name, length(value) FROM xattrs WHERE ino = ?1 ORDER BY name",
        "INSERT INTO xattrs (ino, name, value) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (ino, name) DO UPDATE SET value = excluded.value",
        "DELETE FROM xattrs WHERE ino = ?1 AND name = ?2",
        "DELETE FROM xattrs WHERE ino = ?1",
        "SELECT origin FROM dir_tags WHERE ino = ?1",
        "INSERT INTO dir_tags (ino, origin) VALUES (?1, ?2)"
        " ON CONFLICT (ino) DO UPDATE SET origin = excluded.origin",
        // kInheritTags: nothing to read first; no row when the parent has
        // no tags.
        "INSERT INTO dir_tags (ino, origin)"
        " SELECT ?1, origin FROM dir_tags WHERE ino = ?2",
        "SELECT name, value FROM tags WHERE origin = ?1 ORDER BY name",
        "INSERT OR REPLACE INTO tags (origin, name, value)"
        " SELECT ?2, name, value FROM tags WHERE origin = ?1",
        "INSERT INTO tags (origin, name, value) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (origin, name) DO UPDATE SET value = excluded.value",
        "DELETE FROM tags WHERE origin = ?1 AND name = ?2",
        // kReleaseTagRef, kReleaseTagSet: run by DeleteInode, set first.
        // The set the directory sees (its own, or one whose owner is gone)
        // goes when no other directory references it.
        "DELETE FROM dir_tags WHERE ino = ?1",
        "DELETE FROM tags"
        " WHERE origin = (SELECT origin FROM dir_tags WHERE ino = ?1)"
        " AND NOT EXISTS (SELECT 1 FROM dir_tags AS r"
        " WHERE r.origin = tags.origin AND r.ino <> ?1)",
        "DELETE FROM tags WHERE origin NOT IN (SELECT origin FROM dir_tags)",
        "SELECT type, value FROM checksums WHERE ino = ?1 ORDER BY type",
        "INSERT INTO checksums (ino, type, value) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (ino, type) DO UPDATE SET value = excluded.value",
        "DELETE FROM checksums WHERE ino = ?1 AND type = ?2",
        "DELETE FROM checksums WHERE ino = ?1",
        "SELECT type, location, added_ns FROM locations WHERE ino = ?1"
        " ORDER BY type, location",
        "INSERT INTO locations (ino, type, location, added_ns)"
        " VALUES (?1, ?2, ?3, ?4)",
        "DELETE FROM locations WHERE ino = ?1 AND type = ?2 AND location = ?3",
        "DELETE FROM locations WHERE ino = ?1",
        // kGetInlineData: of an inode that exists (a deleted one's row may
        // wait in inode_data_gone for its batch).
        "SELECT d.bytes FROM inode_data AS d JOIN inodes AS i ON i.ino = d.ino"
        " WHERE d.ino = ?1",
        "INSERT INTO inode_data (ino, bytes) VALUES (?1, ?2)"
        " ON CONFLICT (ino) DO UPDATE SET bytes = excluded.bytes",
        "DELETE FROM inode_data WHERE ino = ?1",
        // kListInlineGone
        "INSERT INTO inode_data_gone (ino)"
        " SELECT ino FROM inode_data WHERE ino = ?1",
        // kReleaseInlineGone: in inode order (the list's rowid); never the
        // bytes of an inode that exists (ids are not reused, but a
        // migration may bring its own).
        "DELETE FROM inode_data WHERE ino IN (SELECT ino FROM inode_data_gone)"
        " AND NOT EXISTS (SELECT 1 FROM inodes i WHERE i.ino = inode_data.ino)",
        "DELETE FROM inode_data_gone",
        "SELECT 1 FROM pnfs_layouts WHERE ino = ?1",
        // kGetGrace
        "SELECT current_epoch, recovery_epoch, started_ns FROM nfs_grace"
        " WHERE id = 1",
        // kPutGrace
        "UPDATE nfs_grace SET current_epoch = ?1, recovery_epoch = ?2,"
        " started_ns = ?3 WHERE id = 1",
        // kGetClient
        "SELECT owner, principal, verifier, clientid, confirmed_ns,"
        " confirmed_epoch, reclaim_epoch FROM nfs_clients WHERE owner = ?1",
        // kListClients
        "SELECT owner, principal, verifier, clientid, confirmed_ns,"
        " confirmed_epoch, reclaim_epoch FROM nfs_clients ORDER BY owner",
        // kPutClient
        "INSERT OR REPLACE INTO nfs_clients (owner, principal, verifier,"
        " clientid, confirmed_ns, confirmed_epoch, reclaim_epoch)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        // kDeleteClient
        "DELETE FROM nfs_clients WHERE owner = ?1",
};

#undef NS_INODE_COLS

// Catches a statement added to Sql without its text (std::array would
// silently fill the gap with nullptr).
constexpr bool AllSqlPresent() {
  for (const char* text : kSqlText) {
    if (text == nullptr) return false;
  }
  return true;
}
static_assert(AllSqlPresent(), "kSqlText must have one entry per Sql value");

}  // namespace sqlite_internal
}  // namespace ns
