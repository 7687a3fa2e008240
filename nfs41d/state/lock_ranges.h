#pragma once

// LockRanges: the byte-range locks held on one file (RFC 8881 §9), as a set
// of [start, end] ranges (inclusive, end = UINT64_MAX for "to EOF"), each
// held by one lock owner as a read (shared) or write (exclusive) lock.
//
// POSIX semantics for one owner: locking a range replaces whatever the
// owner held there (upgrade, downgrade), splitting its older ranges;
// unlocking a sub-range splits; adjacent or overlapping ranges of the same
// owner and type merge into one.
//
// Thread safety: none; the owner (OpenStateTable) holds its mutex.

#include <cstdint>
#include <optional>
#include <vector>

namespace nfs41d::state {

struct LockRange {
  uint64_t owner = 0;  // lock-owner id (OpenStateTable's numbering)
  bool write = false;
  uint64_t start = 0;
  uint64_t end = 0;  // inclusive
  bool operator==(const LockRange&) const = default;
};

class LockRanges {
 public:
  // A lock of another owner that conflicts with `owner` taking a lock of
  // type `write` on [start, end]: any overlapping write lock, or any
  // overlapping lock when `write`. REQUIRES: start <= end.
  std::optional<LockRange> Conflict(uint64_t owner, bool write,
                                    uint64_t start, uint64_t end) const;
  // Takes the lock (the caller checked Conflict first).
  void Lock(uint64_t owner, bool write, uint64_t start, uint64_t end);
  // Releases [start, end] of `owner`'s locks; unlocking what is not locked
  // is not an error.
  void Unlock(uint64_t owner, uint64_t start, uint64_t end);
  void RemoveOwner(uint64_t owner);
  bool HasOwner(uint64_t owner) const;
  bool empty() const { return ranges_.empty(); }
  // Sorted by (start, owner).
  const std::vector<LockRange>& ranges() const { return ranges_; }

 private:
  void Normalize();
  std::vector<LockRange> ranges_;
};

}  // namespace nfs41d::state
