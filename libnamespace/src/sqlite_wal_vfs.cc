// The WAL-buffering VFS (sqlite_wal_vfs.h says what and why).

#include "libnamespace/src/sqlite_wal_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace ns {
namespace sqlite_internal {

namespace {

sqlite3_vfs* g_base = nullptr;  // the default VFS we wrap; set once
sqlite3_vfs g_vfs{};
WalBufferCounters g_stats;

// What SQLite allocates for a WAL file opened through this VFS: this
// struct, then the wrapped VFS's own file at `real`.
struct WalFile {
  sqlite3_file base;  // first: SQLite sees a sqlite3_file*
  sqlite3_file* real;
  char* buf;  // kWalBufferBytes, or null (then every call passes through)
  sqlite3_int64 buf_off;
  size_t buf_len;
  // The last write was the header of a commit frame: the next one (its
  // page) ends the commit's frames.
  bool commit_page_next;
};

// A WAL frame header (https://www.sqlite.org/fileformat2.html#walformat)
// is 24 bytes; bytes 4-7 hold the database size in pages after a commit,
// and 0 in every other frame.
constexpr int kFrameHeaderBytes = 24;
bool IsCommitFrameHeader(const void* data, int amt) {
  if (amt != kFrameHeaderBytes) return false;
  const auto* b = static_cast<const unsigned char*>(data);
  return (b[4] | b[5] | b[6] | b[7]) != 0;
}

constexpr size_t kRealOffset =
    (sizeof(WalFile) + alignof(std::max_align_t) - 1) /
    alignof(std::max_align_t) * alignof(std::max_align_t);

// The unix VFS writes at most 128 KiB - 1 bytes per pwrite (it masks the
// length with 0x1ffff) and takes a write of exactly 128 KiB for a full
// disk, so a run is written in pieces below that.
constexpr size_t kMaxWrite = 124 * 1024;

WalFile* Self(sqlite3_file* f) { return reinterpret_cast<WalFile*>(f); }
const sqlite3_io_methods* Real(WalFile* w) { return w->real->pMethods; }

// Writes the buffered run; empties the buffer whatever happens (on an
// error SQLite abandons the transaction whose frames these were).
int Flush(WalFile* w) {
  int rc = SQLITE_OK;
  for (size_t done = 0; done < w->buf_len && rc == SQLITE_OK;) {
    const size_t n = std::min(w->buf_len - done, kMaxWrite);
    g_stats.writes_out.fetch_add(1, std::memory_order_relaxed);
    rc = Real(w)->xWrite(w->real, w->buf + done, static_cast<int>(n),
                         w->buf_off + static_cast<sqlite3_int64>(done));
    done += n;
  }
  w->buf_len = 0;
  return rc;
}

int WalClose(sqlite3_file* f) {
  WalFile* w = Self(f);
  const int flushed = Flush(w);
  const int rc = Real(w)->xClose(w->real);
  std::free(w->buf);
  w->buf = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}

int WalRead(sqlite3_file* f, void* out, int amt, sqlite3_int64 off) {
  WalFile* w = Self(f);
  const int rc = Flush(w);
  if (rc != SQLITE_OK) return rc;
  return Real(w)->xRead(w->real, out, amt, off);
}

int WalWrite(sqlite3_file* f, const void* data, int amt, sqlite3_int64 off) {
  WalFile* w = Self(f);
  const size_t n = static_cast<size_t>(amt);
  g_stats.writes_in.fetch_add(1, std::memory_order_relaxed);
  // The commit frame's page is the commit's last write: with
  // synchronous=NORMAL no xSync follows, and SQLite publishes the frames to
  // readers (the wal-index header) right after, so they are written now and
  // a failure fails this write, hence the COMMIT, before anyone sees them.
  const bool ends_commit = w->commit_page_next;
  w->commit_page_next = IsCommitFrameHeader(data, amt);
  if (w->buf != nullptr && w->buf_len > 0 &&
      off == w->buf_off + static_cast<sqlite3_int64>(w->buf_len) &&
      w->buf_len + n <= kWalBufferBytes) {
    std::memcpy(w->buf + w->buf_len, data, n);
    w->buf_len += n;
    return ends_commit ? Flush(w) : SQLITE_OK;
  }
  // Not the next byte of the run (a frame rewritten in place, a new WAL
  // header at offset 0) or no room: write the run in order first.
  const int rc = Flush(w);
  if (rc != SQLITE_OK) return rc;
  if (w->buf == nullptr || n > kWalBufferBytes) {
    g_stats.writes_out.fetch_add(1, std::memory_order_relaxed);
    return Real(w)->xWrite(w->real, data, amt, off);
  }
  std::memcpy(w->buf, data, n);
  w->buf_off = off;
  w->buf_len = n;
  return ends_commit ? Flush(w) : SQLITE_OK;
}

int WalTruncate(sqlite3_file* f, sqlite3_int64 size) {
  WalFile* w = Self(f);
  const int rc = Flush(w);
  if (rc != SQLITE_OK) return rc;
  return Real(w)->xTruncate(w->real, size);
}

int WalSync(sqlite3_file* f, int flags) {
  WalFile* w = Self(f);
  const int rc = Flush(w);
  if (rc != SQLITE_OK) return rc;
  return Real(w)->xSync(w->real, flags);
}

int WalFileSize(sqlite3_file* f, sqlite3_int64* size) {
  WalFile* w = Self(f);
  const int rc = Flush(w);
  if (rc != SQLITE_OK) return rc;
  return Real(w)->xFileSize(w->real, size);
}

int WalLock(sqlite3_file* f, int level) {
  WalFile* w = Self(f);
  return Real(w)->xLock(w->real, level);
}

int WalUnlock(sqlite3_file* f, int level) {
  WalFile* w = Self(f);
  return Real(w)->xUnlock(w->real, level);
}

int WalCheckReservedLock(sqlite3_file* f, int* out) {
  WalFile* w = Self(f);
  return Real(w)->xCheckReservedLock(w->real, out);
}

int WalFileControl(sqlite3_file* f, int op, void* arg) {
  WalFile* w = Self(f);
  // Some controls look at or change the file (SIZE_HINT, SYNC, PERSIST_WAL
  // callers that then stat it): let them see every byte written.
  const int rc = Flush(w);
  if (rc != SQLITE_OK) return rc;
  return Real(w)->xFileControl(w->real, op, arg);
}

int WalSectorSize(sqlite3_file* f) {
  WalFile* w = Self(f);
  return Real(w)->xSectorSize(w->real);
}

int WalDeviceCharacteristics(sqlite3_file* f) {
  WalFile* w = Self(f);
  return Real(w)->xDeviceCharacteristics(w->real);
}

// The shared-memory and mmap methods belong to the database file, never to
// a WAL; they are forwarded only so that the methods table is complete.
int WalShmMap(sqlite3_file* f, int page, int size, int extend,
              void volatile** out) {
  WalFile* w = Self(f);
  if (Real(w)->iVersion < 2) return SQLITE_IOERR_SHMMAP;
  return Real(w)->xShmMap(w->real, page, size, extend, out);
}

int WalShmLock(sqlite3_file* f, int offset, int n, int flags) {
  WalFile* w = Self(f);
  if (Real(w)->iVersion < 2) return SQLITE_IOERR_SHMLOCK;
  return Real(w)->xShmLock(w->real, offset, n, flags);
}

void WalShmBarrier(sqlite3_file* f) {
  WalFile* w = Self(f);
  if (Real(w)->iVersion >= 2) Real(w)->xShmBarrier(w->real);
}

int WalShmUnmap(sqlite3_file* f, int delete_flag) {
  WalFile* w = Self(f);
  if (Real(w)->iVersion < 2) return SQLITE_OK;
  return Real(w)->xShmUnmap(w->real, delete_flag);
}

int WalFetch(sqlite3_file* f, sqlite3_int64 off, int amt, void** out) {
  WalFile* w = Self(f);
  *out = nullptr;
  const int rc = Flush(w);
  if (rc != SQLITE_OK) return rc;
  if (Real(w)->iVersion < 3) return SQLITE_OK;  // no mapping: SQLite reads
  return Real(w)->xFetch(w->real, off, amt, out);
}

int WalUnfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  WalFile* w = Self(f);
  if (Real(w)->iVersion < 3) return SQLITE_OK;
  return Real(w)->xUnfetch(w->real, off, p);
}

const sqlite3_io_methods kWalMethods = {
    3,
    WalClose,
    WalRead,
    WalWrite,
    WalTruncate,
    WalSync,
    WalFileSize,
    WalLock,
    WalUnlock,
    WalCheckReservedLock,
    WalFileControl,
    WalSectorSize,
    WalDeviceCharacteristics,
    WalShmMap,
    WalShmLock,
    WalShmBarrier,
    WalShmUnmap,
    WalFetch,
    WalUnfetch,
};

int Open(sqlite3_vfs* /*vfs*/, sqlite3_filename name, sqlite3_file* file,
         int flags, int* out_flags) {
  if ((flags & SQLITE_OPEN_WAL) == 0) {
    // Database and journal files: the wrapped VFS's own file, in place (our
    // szOsFile is larger than its), so they cost nothing extra.
    return g_base->xOpen(g_base, name, file, flags, out_flags);
  }
  WalFile* w = Self(file);
  w->base.pMethods = nullptr;  // until opened: SQLite will not close it
  w->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) +
                                            kRealOffset);
  w->buf_off = 0;
  w->buf_len = 0;
  w->commit_page_next = false;
  const int rc = g_base->xOpen(g_base, name, w->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (w->real->pMethods != nullptr) w->real->pMethods->xClose(w->real);
    w->buf = nullptr;
    return rc;
  }
  // Without memory the file is still usable, unbuffered.
  w->buf = static_cast<char*>(std::malloc(kWalBufferBytes));
  w->base.pMethods = &kWalMethods;
  return SQLITE_OK;
}

}  // namespace

WalBufferCounters& WalBufferStats() { return g_stats; }

const char* WalBufferVfsName() {
  static std::once_flag once;
  static const char* name = nullptr;
  std::call_once(once, [] {
    sqlite3_vfs* base = sqlite3_vfs_find(nullptr);
    if (base == nullptr) return;
    g_base = base;
    g_vfs = *base;  // the wrapped VFS's functions take it and its pAppData
    g_vfs.pNext = nullptr;
    g_vfs.zName = "ns-walbuf";
    g_vfs.szOsFile = static_cast<int>(kRealOffset) + base->szOsFile;
    g_vfs.xOpen = Open;
    if (sqlite3_vfs_register(&g_vfs, /*makeDflt=*/0) == SQLITE_OK) {
      name = g_vfs.zName;
    }
  });
  return name;
}

}  // namespace sqlite_internal
}  // namespace ns
