// A SQLite VFS for the durable writer connection that writes a commit's WAL
// frames with one pwrite instead of two per page (private to libnamespace).
//
// SQLite writes each WAL frame as two writes (the 24-byte frame header, then
// the page) at consecutive offsets, then syncs the WAL once per COMMIT
// (synchronous=FULL). A mkdir touches about five pages, so a group of one
// cost ~10 pwrite64 calls plus the fdatasync (docs/performance.md, "nfs41d vs
// NFS-Ganesha", 2026-11-24 03:00). This VFS wraps the default one and, for
// files opened as a WAL only, keeps consecutive writes in a buffer and
// writes them with one pwrite before anything that may observe the file:
// the page of a commit frame (the commit's last write), xSync, xRead,
// xTruncate, xFileSize, xFileControl, xClose, a write that is not the next
// byte, or a full buffer.
//
// Why this is safe: SQLite makes frames visible to other connections (the
// wal-index header) only after it has written the commit frame, which
// flushes, and the writer itself reads a frame back only through xRead,
// which flushes too. A write error is reported by the call that flushed
// (the commit frame's page, or xSync), so SQLite fails that COMMIT as it
// would fail the write. It is meant for WAL files written by one
// connection (Connection::Open uses it for the durable writer only).

#ifndef NS_LIBNAMESPACE_SRC_SQLITE_WAL_VFS_H_
#define NS_LIBNAMESPACE_SRC_SQLITE_WAL_VFS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace ns {
namespace sqlite_internal {

// The registered VFS's name, registering it (not as the default) on first
// call; nullptr if SQLite could not register it (then use the default VFS).
// Thread-safe.
const char* WalBufferVfsName();

// Largest run of WAL bytes kept before it is written. A commit of more
// frames than fit is written in several pwrites.
constexpr size_t kWalBufferBytes = 256 * 1024;

// Process-wide counts of WAL writes SQLite asked for and of the writes
// this VFS made of them (relaxed; for tests and profiling).
struct WalBufferCounters {
  std::atomic<uint64_t> writes_in{0};
  std::atomic<uint64_t> writes_out{0};
};
WalBufferCounters& WalBufferStats();

}  // namespace sqlite_internal
}  // namespace ns

#endif  // NS_LIBNAMESPACE_SRC_SQLITE_WAL_VFS_H_
