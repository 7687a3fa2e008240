#pragma once

// Plain value types of the Namespace API: ids, credentials, attributes,
// directory entries. No behaviour lives here.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ns {

// A 64-bit inode number. Never reused: the database hands them out from a
// monotonically increasing sequence.
using InodeId = uint64_t;

// The root directory of every namespace.
inline constexpr InodeId kRootInode = 1;

// Nanoseconds since the Unix epoch (UTC). int64 covers years 1678..2262.
using TimeNs = int64_t;

// Limits enforced on every name and path (POSIX NAME_MAX / PATH_MAX).
inline constexpr size_t kMaxNameBytes = 255;
inline constexpr size_t kMaxPathBytes = 4096;
// Symlinks followed while resolving one path before ELOOP (Linux's limit).
inline constexpr int kMaxSymlinkFollows = 40;
// Hard links per inode before EMLINK.
inline constexpr uint32_t kMaxLinks = 65000;
// The most bytes of one file kept in the database (Namespace::WriteInline):
// a bound on what a server may configure, so that a file larger than this
// never needs a look for inline bytes.
inline constexpr uint64_t kMaxInlineBytes = 65536;

// The caller of an operation. The NFS layer maps wire credentials into this
// (root squash, all squash) before calling; the library only checks it.
struct Credentials {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary groups, without gid

  static Credentials Root() { return Credentials{}; }
  bool IsRoot() const { return uid == 0; }
  bool InGroup(uint32_t g) const;
};

// Stored as a small integer in the inodes table (see docs/schema.md).
enum class FileType : uint8_t {
  kRegular = 1,
  kDirectory = 2,
  kSymlink = 3,
  kBlockDevice = 4,
  kCharDevice = 5,
  kFifo = 6,
  kSocket = 7,
};

// One letter as `ls -l` shows it: '-', 'd', 'l', 'b', 'c', 'p', 's'.
char FileTypeLetter(FileType t);

// The attributes of one inode, as getattr returns them. For a directory,
// nlink, mtime, ctime and change already include entry changes made by
// concurrent creates that the backend records apart from the row (see
// docs/ARCHITECTURE.md, "the hot directory").
struct Attr {
  InodeId ino = 0;
  FileType type = FileType::kRegular;
  uint32_t mode = 0;  // permission bits only (07777); the type is in `type`
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint32_t rdev_major = 0;  // block and char devices
  uint32_t rdev_minor = 0;
  TimeNs atime = 0;
  TimeNs mtime = 0;
  TimeNs ctime = 0;
  TimeNs btime = 0;  // birth (creation) time, never changes
  // NFSv4 `change` attribute: increases by at least one on every change of
  // the inode's data, attributes or (for a directory) entries.
  uint64_t change = 0;
  // Part of a filehandle next to `ino`. Ids are never reused, so it stays 0
  // today; migrated namespaces whose source reused ids carry theirs here.
  uint32_t generation = 0;
  // For a directory, the inode of its parent (the root is its own parent).
  // 0 for other types: a file may have many parents.
  InodeId parent = 0;
  // The inode has an NFSv4 ACL (RFC 8881 §6): access checks use it, and
  // `mode` is derived from it (Namespace::GetAcl reads it).
  bool has_acl = false;

  bool operator==(const Attr&) const = default;
};

// What SetAttr changes; unset fields stay as they are. Any change sets ctime
// and bumps `change`. A size change also sets mtime unless mtime is given.
struct SetAttrRequest {
  std::optional<uint32_t> mode;  // permission bits (07777)
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint64_t> size;   // regular files only
  std::optional<TimeNs> atime;
  std::optional<TimeNs> mtime;
  bool atime_now = false;  // set atime to the server's clock (NFS SET_TO_SERVER_TIME4)
  bool mtime_now = false;
};

// One directory entry as readdir returns it.
struct DirEntry {
  std::string name;
  InodeId ino = 0;
  FileType type = FileType::kRegular;
  // Resume a listing after this entry by passing this cookie. Cookies are
  // 64-bit, > 2 (0 means "from the start"; 1 and 2 are reserved by NFSv4),
  // and an entry keeps its cookie for as long as it exists under its name.
  uint64_t cookie = 0;
  std::optional<Attr> attr;  // filled when ReadDirRequest::with_attrs
};

struct ReadDirRequest {
  uint64_t cookie = 0;        // 0 = from the start
  uint64_t verifier = 0;      // 0 with cookie 0; else the verifier of an earlier page
  uint32_t max_entries = 1024;  // at most 65536 per page are returned
  bool with_attrs = false;    // fill DirEntry::attr (readdirplus)
};

struct DirPage {
  std::vector<DirEntry> entries;  // in cookie order
  bool eof = false;               // no entries after the last one
  uint64_t verifier = 0;          // cookie verifier (NFSv4 cookieverf4)
};

// What Unlink did.
struct UnlinkResult {
  InodeId ino = 0;
  uint32_t nlink_left = 0;  // links that remain to the inode
  // true when the last link went but the inode was kept because the caller
  // asked (UnlinkOptions::retain_if_last), e.g. the file is open over NFS.
  bool retained = false;
  // What the name referred to (a directory only with
  // UnlinkOptions::directories; it is then gone, nlink_left 0).
  FileType type = FileType::kRegular;
  // The parent directory's attributes as this commit left them, where the
  // backend has them exactly (SQLite's one writer); nullopt where it has
  // not (PostgreSQL folds concurrent entry changes into the row later). A
  // server answers the change_info4 of its REMOVE, and refreshes its
  // attribute cache, from it instead of reading the directory again.
  std::optional<Attr> parent_after;
};

struct UnlinkOptions {
  // When the last link goes, keep the inode (nlink 0) on the orphan list
  // instead of deleting it; ReleaseOrphan() deletes it later.
  bool retain_if_last = false;
  // Also remove an empty directory at the name, in the same transaction
  // (NotEmpty if it has entries): NFSv4's REMOVE takes any type (RFC 8881
  // §18.25), and one call costs one commit instead of a failed Unlink
  // followed by Rmdir.
  bool directories = false;
};

// What Create sets besides name and mode, in the same transaction.
struct CreateOptions {
  // The new file's atime instead of the server's clock: NFSv4 keeps an
  // exclusive create's verifier there until the client sets its times
  // (RFC 8881 §18.16.3), so a retried create finds it with no second commit.
  std::optional<TimeNs> atime;
};

struct RenameResult {
  // The inode that the rename replaced at the target name, if any.
  std::optional<UnlinkResult> replaced;
};

// statfs(2)-like figures for the whole namespace.
struct FsStats {
  uint64_t files = 0;      // inodes in use
  uint64_t bytes = 0;      // sum of regular file sizes
  uint64_t files_free = 0; // inode numbers still available
  uint64_t bytes_total = 0;
  uint64_t bytes_free = 0;
  uint32_t name_max = kMaxNameBytes;
};

}  // namespace ns
