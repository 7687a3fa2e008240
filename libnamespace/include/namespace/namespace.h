#pragma once

// Namespace: the whole of libnamespace that a server, a tool or a migrator
// sees. POSIX operations on inode ids, each with the caller's credentials,
// mapped straight onto the SQL tables of the chosen backend.
//
// Thread safety: a Namespace is safe to use from many threads at once; each
// call runs in its own database transaction (on a pooled connection for
// PostgreSQL; on the shared group-commit writer or a reader connection for
// SQLite). Transient database conflicts (serialization failures, deadlocks,
// SQLITE_BUSY) are retried inside the library and never returned.
//
// Errors (see status.h), common to every method:
//   Stale        an inode id argument does not exist
//   Unavailable  the database cannot be reached (after reconnect attempts)
//   IOError      any other database failure
// Name arguments are single components: not empty, not "." or "..", no '/'
// or NUL, at most 255 bytes (Invalid / NameTooLong otherwise).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <vector>

#include "libnamespace/include/namespace/acl.h"
#include "libnamespace/include/namespace/metadata.h"
#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"

namespace ns {

class Backend;

struct NamespaceOptions {
  // Connections for PostgreSQL (one per concurrent call); reader connections
  // for SQLite. 0 picks a default from the number of CPUs (PostgreSQL: at
  // least 8).
  int pool_size = 0;
  // SQLite: PRAGMA synchronous=FULL so every acknowledged change survives a
  // power loss. false trades durability for speed (tests only).
  bool durable = true;
  // SQLite, durable: Write() returns once its transaction is committed
  // (visible to every reader) but before it is on disk; one syncer thread
  // fdatasyncs the WAL behind the writer, covering every commit made
  // meanwhile, so that the next group's SQL runs during this one's sync.
  // The caller learns when a change is durable through TakeCommitTicket()
  // and WhenDurable(), and must not acknowledge it before (nfs41d holds
  // the reply). Other backends and non-durable SQLite ignore it.
  bool defer_sync = false;
  // Refuse to open a database whose schema is older than this build (the
  // operator runs `nsadmin upgrade`). Tools that upgrade set this false.
  bool require_current_schema = true;
  // Create the schema if the database is empty (tests, first start of the
  // embedded default). A database with an older schema is never touched.
  bool create_if_missing = false;
};

class Namespace {
 public:
  // Opens the namespace at `uri`:
  //   sqlite:///absolute/path/ns.db   sqlite:relative/path.db
  //   postgresql://user@host:port/db  (any libpq URI; postgres:// too)
  // Errors: Invalid (unknown scheme), Unavailable, SchemaTooOld (run
  // `nsadmin upgrade`), SchemaTooNew, NotFound (no schema and
  // !create_if_missing: run `nsadmin init`), Corruption (not a database).
  static Result<std::unique_ptr<Namespace>> Open(
      const std::string& uri, const NamespaceOptions& options = {});

  // For tests and wrappers: a namespace over a backend built elsewhere.
  explicit Namespace(std::unique_ptr<Backend> backend);
  ~Namespace();
  Namespace(const Namespace&) = delete;
  Namespace& operator=(const Namespace&) = delete;

  InodeId Root() const { return kRootInode; }

  // The entry `name` in directory `parent`. Errors: NotFound, NotDir,
  // AccessDenied (no search permission on parent).
  Result<Attr> Lookup(const Credentials& cred, InodeId parent,
                      std::string_view name);

  Result<Attr> GetAttr(const Credentials& cred, InodeId ino);

  // Changes what `req` sets; returns the new attributes. Rules: only the
  // owner or root changes mode and times (to anything but "now"); only root
  // changes uid; the owner may change gid to a group it belongs to; a
  // non-root chown/chgrp or write clears setuid/setgid; size applies to
  // regular files only (IsDir / Invalid otherwise). Errors: NotPermitted,
  // AccessDenied, IsDir, Invalid.
  Result<Attr> SetAttr(const Credentials& cred, InodeId ino,
                       const SetAttrRequest& req);

  // Creates a regular file, with what `options` sets in the same
  // transaction. Errors: Exists, NotDir, AccessDenied. `parent_after`, if
  // given, receives the parent's attributes as the commit left them where
  // the backend has them (UnlinkResult::parent_after), else nullopt.
  Result<Attr> Create(const Credentials& cred, InodeId parent,
                      std::string_view name, uint32_t mode,
                      const CreateOptions& options = {},
                      std::optional<Attr>* parent_after = nullptr);
  Result<Attr> Mkdir(const Credentials& cred, InodeId parent,
                     std::string_view name, uint32_t mode,
                     std::optional<Attr>* parent_after = nullptr);
  // Fifos, sockets, block and char devices. Errors: Invalid (type is a
  // regular file, directory or symlink), NotPermitted (devices need root).
  Result<Attr> Mknod(const Credentials& cred, InodeId parent,
                     std::string_view name, FileType type, uint32_t mode,
                     uint32_t rdev_major = 0, uint32_t rdev_minor = 0);
  // `target` is stored as given (1..4096 bytes, no NUL).
  Result<Attr> Symlink(const Credentials& cred, InodeId parent,
                       std::string_view name, std::string_view target);
  // Errors: Invalid (not a symlink).
  Result<std::string> ReadLink(const Credentials& cred, InodeId ino);

  // A new name for `ino`. Errors: IsDir/NotPermitted (directories cannot be
  // linked), Exists, TooManyLinks.
  Result<Attr> Link(const Credentials& cred, InodeId ino, InodeId new_parent,
                    std::string_view new_name);

  // Removes a non-directory name, or with options.directories any name (an
  // empty directory as Rmdir does). Errors: NotFound, IsDir (without
  // options.directories), NotEmpty.
  Result<UnlinkResult> Unlink(const Credentials& cred, InodeId parent,
                              std::string_view name,
                              const UnlinkOptions& options = {});
  // Errors: NotFound, NotDir, NotEmpty, Invalid (the root).
  Status Rmdir(const Credentials& cred, InodeId parent, std::string_view name);

  // POSIX rename(2): replaces an existing non-directory, or an empty
  // directory with a directory; renaming onto the same inode is a no-op.
  // Errors: NotFound, Invalid (a directory into its own subtree), NotEmpty,
  // IsDir (directory onto non-directory: EISDIR is what rename(2) reports
  // for a file onto a directory), NotDir (directory onto a file).
  Result<RenameResult> Rename(const Credentials& cred, InodeId src_parent,
                              std::string_view src_name, InodeId dst_parent,
                              std::string_view dst_name,
                              const UnlinkOptions& options = {});

  // One page of a directory listing, in cookie order, "." and ".." not
  // included. Resuming at any cookie handed out earlier neither repeats nor
  // skips entries that existed throughout, whatever changed in between; a
  // page costs the same whatever the directory's size. Errors: NotDir,
  // Invalid (verifier does not match: NFS4ERR_NOT_SAME), AccessDenied.
  Result<DirPage> ReadDir(const Credentials& cred, InodeId dir,
                          const ReadDirRequest& req);

  // Resolves an absolute path ("/a/b/c") from the root, following symlinks
  // in every component but the last, and the last too if `follow_last`.
  // Errors: NotFound, NotDir, Loop, NameTooLong (component > 255 or path >
  // 4096), Invalid (relative path or NUL).
  Result<Attr> Resolve(const Credentials& cred, std::string_view path,
                       bool follow_last = true);

  Result<FsStats> StatFs(const Credentials& cred);

  // Deletes an inode kept by UnlinkOptions::retain_if_last once its last
  // user is gone. Errors: Invalid (the inode still has links).
  Status ReleaseOrphan(InodeId ino);

  // Inodes kept by UnlinkOptions::retain_if_last and not released yet, in
  // id order: ids greater than `after`, at most `limit` (1..100000) of
  // them. A server that crashed with such files open finds them here after
  // its restart and releases the ones no client reclaimed (ReleaseOrphan);
  // a running server's own open ones are in the list too, so it skips
  // what it has open. Errors: Invalid (limit).
  Result<std::vector<InodeId>> ListOrphans(InodeId after = 0,
                                           uint32_t limit = 1024);

  // --- Access and NFSv4 ACLs (acl.h; implemented in src/acl.cc) ---------
  //
  // Every operation above checks access in one place (src/access.h): with
  // the inode's ACL when it has one, with the mode bits otherwise.

  // Which rights of `mask` (kAce* bits) the caller holds on `ino`: the
  // answer of NFSv4 ACCESS and of a permission check (RFC 8881 §6.2.1,
  // §18.1). Never an error for lack of rights: those bits are just absent.
  Result<uint32_t> Access(const Credentials& cred, InodeId ino, uint32_t mask);

  // The inode's ACL; an inode without one answers the ACL equivalent to its
  // mode (OWNER@, GROUP@, EVERYONE@ ALLOW ACEs), as RFC 8881 §6.4.2 asks.
  // Errors: AccessDenied (no READ_ACL).
  Result<Acl> GetAcl(const Credentials& cred, InodeId ino);

  // Replaces the ACL and derives the mode's rwx bits from it (§6.4.1.2);
  // setuid, setgid and sticky stay. An empty `acl` removes the ACL, leaving
  // the mode as it is. Errors: Invalid (ValidateAcl), NotPermitted (no
  // WRITE_ACL: by default only the owner and root).
  Result<Attr> SetAcl(const Credentials& cred, InodeId ino, const Acl& acl);

  // --- Extended attributes (src/xattr.cc) -------------------------------
  // Names: 1..255 bytes, no NUL. Values: at most 64 KiB; names plus values
  // of one inode at most kMaxXattrTotalBytes. Reading needs
  // READ_NAMED_ATTRS, changing WRITE_NAMED_ATTRS (the r and w bits).
  // Changing bumps the inode's ctime and change.

  // Errors: NotFound (no such xattr), AccessDenied.
  Result<std::string> GetXattr(const Credentials& cred, InodeId ino,
                               std::string_view name);
  // Errors: Exists (kCreate and the name is taken), NotFound (kReplace and
  // it is not), NameTooLong, Invalid (empty name or NUL), TooBig (value over
  // 64 KiB), NoSpace (over the per-inode total), AccessDenied. A refused
  // set changes nothing.
  Status SetXattr(const Credentials& cred, InodeId ino, std::string_view name,
                  std::string_view value, XattrMode mode = XattrMode::kEither);
  // In name order. Errors: AccessDenied.
  Result<std::vector<XattrName>> ListXattrs(const Credentials& cred,
                                            InodeId ino);
  // Errors: NotFound, AccessDenied.
  Status RemoveXattr(const Credentials& cred, InodeId ino,
                     std::string_view name);

  // --- Directory tags (src/tags.cc), dCache Chimera semantics -----------
  //
  // A directory sees a set of tags (name -> value). mkdir gives the new
  // directory a reference to its parent's set (one row, nothing copied, no
  // shared counter). Writing or removing a tag on a directory that sees an
  // inherited set first copies the set to the directory (copy-on-write):
  // parent and siblings keep theirs. A directory that owns its set changes
  // it in place, and the directories that still reference it (those made
  // under it since) see the change, as in Chimera. Removing a directory
  // drops its reference; a set nobody references any more is deleted with
  // its last referrer, or by CollectTags. Names as file names (ValidateName)
  // but any bytes up to 64 KiB as values. Reading needs search (x) on the
  // directory; changing needs the owner or root. Errors common to all:
  // NotDir, AccessDenied, NotPermitted.

  // All tags the directory sees, in name order.
  Result<std::vector<Tag>> ListTags(const Credentials& cred, InodeId dir);
  // Errors: NotFound.
  Result<std::string> ReadTag(const Credentials& cred, InodeId dir,
                              std::string_view name);
  // Errors: Invalid / NameTooLong (name), TooBig (value).
  Status WriteTag(const Credentials& cred, InodeId dir, std::string_view name,
                  std::string_view value);
  // Errors: NotFound.
  Status RemoveTag(const Credentials& cred, InodeId dir, std::string_view name);
  // Writes the tag on `dir` and every directory below it, in one
  // transaction; returns how many directories were changed. Root only
  // (NotPermitted). At most `max_dirs` directories (Invalid beyond, nothing
  // changed).
  Result<uint64_t> PushTag(const Credentials& cred, InodeId dir,
                           std::string_view name, std::string_view value,
                           uint64_t max_dirs = 1'000'000);
  // Deletes tag sets that no directory references any more (left behind
  // when two directories sharing a set are removed concurrently); returns
  // how many sets went. For nsadmin and tests.
  Result<uint64_t> CollectTags();

  // --- Checksums and storage locations (src/checksums.cc) ---------------
  // Regular files only (Invalid otherwise). Reading needs READ_ATTRIBUTES
  // (everyone); changing needs the owner or root (NotPermitted).

  // In type order.
  Result<std::vector<Checksum>> GetChecksums(const Credentials& cred,
                                             InodeId ino);
  // Replaces a checksum of the same type. Errors: Invalid (value not hex
  // of the type's length).
  Status SetChecksum(const Credentials& cred, InodeId ino,
                     const Checksum& checksum);
  // Errors: NotFound.
  Status RemoveChecksum(const Credentials& cred, InodeId ino,
                        ChecksumType type);
  // In (type, location) order.
  Result<std::vector<Location>> GetLocations(const Credentials& cred,
                                             InodeId ino);
  // Errors: Exists (already listed), Invalid (empty, NUL, over 4096 bytes).
  Status AddLocation(const Credentials& cred, InodeId ino, LocationType type,
                     std::string_view location);
  // Errors: NotFound.
  Status RemoveLocation(const Credentials& cred, InodeId ino,
                        LocationType type, std::string_view location);

  // --- Small files' bytes in the database (src/inline_data.cc, schema 8) -
  //
  // A regular file's bytes may live in the database ("inline") instead of
  // a data store, written in the same transaction as the size, mtime and
  // change they go with: a small durable write is one commit, with no file
  // to create and fsync. The caller (nfs41d) chooses which files and keeps
  // their bytes in one place; the library keeps the rules: a file with a
  // pNFS layout is never inline, a file becomes inline only while empty,
  // and inline bytes never exceed kMaxInlineBytes. Bytes past the stored
  // ones, up to the file's size, read as zeros. SetAttr of the size cuts
  // them (and drops them at 0); DeleteInode drops them with the file. No
  // access check: the caller checked the open or the mode, as it does for
  // its data store.

  // The inline bytes of `ino`, or nullopt (not inline: its bytes, if any,
  // are in a data store). Errors: Stale.
  Result<std::optional<std::string>> ReadInline(InodeId ino);
  // Writes `data` (not empty) at `offset` into the inline bytes of `ino`
  // (zeros fill a gap), and in the same transaction sets size to
  // max(size, offset + data.size()), mtime and ctime to `mtime`, change + 1,
  // and clears setuid/setgid for a non-root `cred` (as SetAttr does for a
  // write). Returns the new attributes. A file that is not inline becomes
  // inline only if its size is 0 and it has no pNFS layout.
  // Errors: NotFound (not inline and not empty, or a layout: its bytes
  // belong in the data store), TooBig (the size would pass `limit`, itself
  // at most kMaxInlineBytes), Invalid (not a regular file, empty data).
  Result<Attr> WriteInline(const Credentials& cred, InodeId ino,
                           uint64_t offset, std::string_view data, TimeNs mtime,
                           uint64_t limit = kMaxInlineBytes);
  // Ends inline storage of `ino` once the caller has made `bytes` (what
  // ReadInline returned) durable in its data store: deletes the row if it
  // still holds exactly `bytes`. Size, times and change stay (the contents
  // did not change). Ok if the file is not inline. Errors: Unavailable (the
  // bytes changed since they were read: read and move them again).
  Status DropInline(InodeId ino, std::string_view bytes);

  // Deferred durability (NamespaceOptions::defer_sync); each is 0 or runs
  // fn(true) at once when the backend commits durably before returning.
  // The latest commit of this thread's calls since its last call that may
  // not be on disk yet, or 0; resets it.
  uint64_t TakeCommitTicket();
  // The latest commit of anyone's that may not be on disk yet, or 0.
  uint64_t LatestCommitTicket();
  // Runs fn(true) once every commit up to `ticket` is on disk (at once, on
  // this thread, if it already is), or fn(false) if it never will be (the
  // WAL could not be synced; the backend then refuses writes). Later calls
  // run on the backend's syncer thread, in ticket order: `fn` must not
  // block.
  void WhenDurable(uint64_t ticket, std::function<void(bool durable)> fn);
  // Blocks until `ticket` is on disk (and every WhenDurable callback for
  // it or earlier has run); false if it never will be.
  bool AwaitDurable(uint64_t ticket);

  // The backend, for admin tools and tests.
  Backend& backend() { return *backend_; }

 private:
  class Ops;
  std::unique_ptr<Backend> backend_;
};

// Checks one name component; Ok or Invalid / NameTooLong with a message
// naming the problem.
Status ValidateName(std::string_view name);

}  // namespace ns
