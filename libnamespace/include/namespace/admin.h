#pragma once

// Administration of a namespace for operators and DBAs: the consistency
// check (`nsadmin fsck`) and usage statistics (`nsadmin stats`).
//
// Both run on a live namespace. Detection is a series of single read-only
// statements (each one consistent snapshot; PostgreSQL takes no row locks
// for them), so writers are never blocked. Each repair is its own short
// transaction that locks the rows it touches and checks the finding again
// under those locks (by the inode's change counter or by re-reading the
// rows), so a change made by a client between detection and repair is never
// undone; such a finding is reported as "changed meanwhile" instead.
//
// Thread safety: as Namespace (any thread); runs alongside other callers.

#include <cstdint>
#include <string>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"

namespace ns {

struct FsckOptions {
  // Fix what can be fixed safely (FsckFinding::repairable), each fix in its
  // own transaction. Unreferenced inodes go to /lost+found/#<ino>.
  bool repair = false;
  // Findings collected per check at most; a check that hits the limit says
  // so (FsckReport::truncated) and a second run finds the rest.
  uint32_t max_findings_per_check = 1000;
};

struct FsckFinding {
  // Which check found it (the names FsckCheckNames() lists).
  std::string check;
  // The inode concerned (for an entry: its directory), 0 for none.
  InodeId ino = 0;
  // What is wrong, for a human ("entry 'a' in 12 names missing inode 40").
  std::string detail;
  // Whether a safe repair exists; whether it was made in this run.
  bool repairable = false;
  bool repaired = false;
};

struct FsckReport {
  std::vector<FsckFinding> findings;
  // Checks that stopped at max_findings_per_check.
  std::vector<std::string> truncated;
  uint64_t inodes = 0;   // rows in the inode table when the run started
  uint64_t entries = 0;  // directory entries

  // Findings not repaired in this run.
  size_t Unrepaired() const;
};

// The checks, in the order they run (repairs of one prepare the next: an
// entry removed for a missing directory leaves its child unreferenced, which
// the next check then links into lost+found).
//   entry-missing-inode       entry naming no inode -> entry removed
//   entry-in-non-directory    entry whose directory is missing or not a
//                             directory -> entry removed
//   entry-type-mismatch       entry type differs from the inode's -> fixed
//   unreferenced-inode        inode with no entry and no open-file orphan
//                             record -> linked as /lost+found/#<ino>
//   directory-several-names   directory named by more than one entry
//                             (report only: which name is right is a
//                             human's call)
//   directory-parent          inode's parent pointer differs from the
//                             entry naming it -> fixed
//   file-nlink                link count differs from the entries -> fixed
//   directory-nlink           link count differs from 2 + subdirectories
//                             -> fixed
//   unreachable-directory     directory not reachable from the root: in or
//                             below a cycle (report only)
//   symlink-target            symlink without a target (report only), or a
//                             target row without a symlink -> row removed
//   orphan-record             open-file orphan record of a missing inode
//                             or of one that has names -> record removed
//   metadata-of-missing-inode ACEs, xattrs, checksums, locations or a tag
//                             reference of a missing inode -> rows removed
//   unreferenced-tag-set      a tag set no directory sees -> removed
const std::vector<std::string>& FsckCheckNames();

// Runs every check (and the repairs if asked). Errors: Unavailable etc.
// from the database; findings are not errors.
Result<FsckReport> Fsck(Namespace& ns, const FsckOptions& options = {});

struct UsageOptions {
  // Rows in each "top" list (owners, groups, top-level dirs, directories).
  uint32_t top = 10;
};

struct UsageLine {
  std::string key;  // "uid 1000", "/home", a path
  uint64_t files = 0;  // inodes of any type (entries for directories)
  uint64_t bytes = 0;  // sum of regular files' sizes
};

struct UsageReport {
  uint64_t files = 0, directories = 0, symlinks = 0, others = 0;
  uint64_t bytes = 0;  // all regular files
  std::vector<UsageLine> by_owner;   // most bytes first
  std::vector<UsageLine> by_group;   // most bytes first
  // Per directory in the root: everything below it (a hard-linked file
  // counts under each directory that names it).
  std::vector<UsageLine> by_top_directory;  // most bytes first
  // Directories with the most entries (files = entries).
  std::vector<UsageLine> largest_directories;
};

// Reads the whole namespace (full scans; on PostgreSQL the planner may use
// parallel workers). Errors from the database only.
Result<UsageReport> Usage(Namespace& ns, const UsageOptions& options = {});

}  // namespace ns
