#pragma once

// DataStore: the contents of regular files, by inode number. nfs41d's READ,
// WRITE, COMMIT and truncate go through this interface only, so that the
// pNFS work can put data servers behind it later.
//
// LocalDataStore keeps each file as one sparse file under a directory
// (--data-dir/data), fanned out by bits 8-23 of the inode number
// (data/<(ino>>16)&0xff>/<(ino>>8)&0xff>/<ino in hex>): consecutive inodes
// share a leaf directory, so creating files costs one mkdir per 256 of
// them, and no directory holds more than 1/65536 of the files once there
// are more than 2^24. The file LAYOUT says so ("2"); a store without it
// (made before, fanned out by the low 16 bits, one mkdir per file) is moved
// to this layout when it is opened (OpenLocalDataStore). A file that was
// never written has no data file: it reads as zeros up to the size the
// namespace records.
//
// LocalDataStore keeps up to 64 data files open (least recently used
// dropped first): a client streaming a file costs no open/close per call.
// Remove drops the file's descriptor, so nothing is written through one
// that names a removed file; truncation keeps the inode, and the
// descriptor with it. Nothing of the cache outlives the process.
//
// Errors are ns::Status values, translated from errno in one place:
// ENOSPC/EDQUOT -> NoSpace, EFBIG/EINVAL -> Invalid, anything else ->
// IOError (with the errno text as detail).
//
// Thread safety: every method may be called from any thread at once; writes
// to disjoint ranges of one file do not interfere (pwrite).

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"

namespace nfs41d::data {

// How durable a write must be before it returns (NFSv4 stable_how4).
enum class Stability {
  kUnstable,  // in the page cache; Sync() makes it durable
  kDataSync,  // fdatasync
  kFileSync,  // fsync
};

class DataStore {
 public:
  virtual ~DataStore() = default;

  // Reads up to out.size() bytes at `offset`. Returns the bytes read: fewer
  // than asked at the end of the stored data (the caller zero-fills up to
  // the namespace size), 0 for a file with no data.
  virtual ns::Result<size_t> Read(ns::InodeId ino, uint64_t offset,
                                  std::span<uint8_t> out) = 0;
  // Writes all of `data` at `offset`, creating the file if missing; a gap
  // before `offset` stays a hole. Errors: NoSpace, Invalid (offset too
  // large), IOError.
  virtual ns::Status Write(ns::InodeId ino, uint64_t offset,
                           std::span<const uint8_t> data,
                           Stability stability) = 0;
  // Sets the stored length to `size` (holes when growing). A file with no
  // data and size 0 stays absent.
  virtual ns::Status Truncate(ns::InodeId ino, uint64_t size) = 0;
  // Deletes the file's data; Ok if there was none.
  virtual ns::Status Remove(ns::InodeId ino) = 0;
  // Bytes of storage the file occupies (st_blocks * 512); 0 with no data.
  virtual ns::Result<uint64_t> SpaceUsed(ns::InodeId ino) = 0;
  // Makes earlier unstable writes durable (COMMIT). Ok with no data.
  virtual ns::Status Sync(ns::InodeId ino, Stability stability) = 0;
  // A hint after an unstable write of [offset, offset + length): start
  // writing that range to disk now, without waiting, so that a later Sync
  // finds little left to do. Promises nothing (only Sync does); may block
  // while the device's queue is full, so callers on a latency path hand
  // it to another thread. The default does nothing.
  virtual void StartWriteback(ns::InodeId ino, uint64_t offset,
                              uint64_t length) {
    (void)ino, (void)offset, (void)length;
  }
};

struct LocalDataStoreOptions {
  // Writes at least this long, at offsets and of lengths that are multiples
  // of 4 KiB, go around the page cache (O_DIRECT, from a 4 KiB-aligned copy
  // of the data): the device takes the bytes straight from that buffer, so
  // the kernel neither copies them into pages nor allocates, charges,
  // writes back and frees those pages, the larger part of a buffered
  // write's CPU. Durability is the same as buffered: the device may still
  // hold the bytes in its cache, so only Sync (fdatasync/fsync) makes them
  // stable. The bytes are not cached for a later Read. 0: never (nfs41d,
  // whose clients read back what they wrote); data servers stream 1 MiB
  // WRITEs. File systems refusing O_DIRECT (tmpfs) get buffered writes.
  size_t direct_write_min = 0;
};

// Opens (creating if missing) a store under `dir`, first moving the files
// of a store in the old layout (renames; a crash halfway is finished by
// the next open). Errors: IOError naming the directory, Invalid for a
// LAYOUT file this version does not know.
ns::Result<std::unique_ptr<DataStore>> OpenLocalDataStore(
    const std::string& dir, LocalDataStoreOptions options = {});

// The path of `ino`'s data relative to the store's directory.
std::string LocalDataPath(ns::InodeId ino);

}  // namespace nfs41d::data
