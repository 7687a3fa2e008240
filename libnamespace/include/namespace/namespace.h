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
#include <memory>
#include <string>
#include <string_view>

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

  // Creates a regular file. Errors: Exists, NotDir, AccessDenied.
  Result<Attr> Create(const Credentials& cred, InodeId parent,
                      std::string_view name, uint32_t mode);
  Result<Attr> Mkdir(const Credentials& cred, InodeId parent,
                     std::string_view name, uint32_t mode);
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

  // Removes a non-directory name. Errors: NotFound, IsDir.
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
