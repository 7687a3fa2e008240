#pragma once

// AttrCache: inode attributes in front of the Namespace, so that GETATTR,
// ACCESS and the checks other ops make on a cached inode cost no database
// round trip (issue 4; docs/DESIGN.md "Caches").
//
// Correctness:
//   - This server's own changes: the COMPOUND loop invalidates, after every
//     op that modifies state, the inodes of the current and saved
//     filehandles before and after the op, plus whatever the op reported in
//     CompoundState::touched (the object REMOVE or RENAME unlinked or moved).
//     A read that raced with an invalidation of its inode is not stored
//     (epochs: see Put), so a stale value cannot come back after the
//     change. CREATE and OPEN(create) store the new inode's attributes as
//     their commit returned them (compound.cc, CompoundState::created); an
//     inline WRITE and a size write-back store the row they committed,
//     and the COMPOUND loop then leaves the inode (CompoundState::reread).
//   - Several doors on one database: an entry is used for at most `ttl`
//     after it was read; then it is read again. Another door's change is
//     seen within `ttl` (as an NFS client's own attribute cache does);
//     ttl = 0 turns the cache off.
//   - Bounded: at most `max_entries`, least recently used evicted first.
//
// Layering: ops call Get()/Put() instead of Namespace::GetAttr. Anything
// that overlays attributes not yet in the database (open files' dirty size
// and mtime) sits above this cache and applies its overlay to what Get()
// returns; it never Put()s overlaid values.
//
// Thread safety: every method may be called from any thread (sharded
// mutexes).

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>

#include "libnamespace/include/namespace/namespace.h"
#include "nfs41d/lru_map.h"

namespace nfs41d {

struct AttrCacheOptions {
  // Entries kept (all shards together); 0 disables the cache.
  size_t max_entries = 65536;
  // How long an entry is trusted (see above); 0 disables the cache.
  std::chrono::milliseconds ttl{2000};
};

class AttrCache {
 public:
  explicit AttrCache(AttrCacheOptions options);

  bool enabled() const { return enabled_; }

  // The attributes of `ino`: cached, or read with Namespace::GetAttr (which
  // checks no permission, so one entry serves every caller) and cached.
  ns::Result<ns::Attr> Get(ns::Namespace& ns, const ns::Credentials& cred,
                           ns::InodeId ino);
  // The cached attributes of `ino` if fresh; never reads the namespace
  // (the event-loop thread's inline COMPOUNDs, LOOKUP's permission check).
  std::optional<ns::Attr> Peek(ns::InodeId ino);
  // Stores attributes just read from the namespace (LOOKUP, READDIR) or
  // returned by a commit (a create, an inline WRITE, a write-back).
  // Ignored if `attr.ino` was invalidated since `epoch` (Epoch() taken
  // before the read or the commit): the value may predate a change.
  // Invalidations of other inodes do not matter. An entry with a higher
  // change counter (same generation) is kept: a read that started before
  // a commit may finish after the committer stored what it wrote, and the
  // counter grows with every change of the row.
  // Returns true if the cache now holds `attr` or newer: the caller may
  // then skip invalidating the inode (CompoundState::reread).
  bool Put(const ns::Attr& attr, uint64_t epoch);
  // A change of `attr.ino` that this server just committed, with `attr` the
  // row as the commit left it: invalidates the inode (so that reads begun
  // before, and ReaddirCache pages, are not used) and then stores `attr`
  // unless the inode was invalidated after `epoch` (Epoch() taken before
  // the commit: another change may have come after ours) or a newer row is
  // held. Returns true if the cache now holds `attr` or newer.
  bool Replace(const ns::Attr& attr, uint64_t epoch);
  uint64_t Epoch() const { return epoch_.load(std::memory_order_acquire); }
  // True if any of `inos` was invalidated after `epoch` (Epoch() taken
  // before a read of them): what was read may predate a change. Inodes
  // share slots by hash, so it may also say true needlessly. Used by
  // ReaddirCache (readdir_cache.h) to validate a page.
  bool ChangedSince(std::span<const ns::InodeId> inos, uint64_t epoch) const;
  void Invalidate(ns::InodeId ino);
  void Clear();

  struct Stats {
    uint64_t hits = 0, misses = 0, invalidations = 0, evictions = 0;
    size_t entries = 0;
  };
  Stats stats() const;

 private:
  static constexpr size_t kShards = 16;
  using Clock = std::chrono::steady_clock;
  struct Entry {
    ns::Attr attr;
    Clock::time_point read_at;
  };
  // Inodes share "last invalidated" epochs by hash: a collision only
  // makes a Put give up needlessly.
  static constexpr size_t kInvalidatedSlots = 256;  // per shard
  struct Shard {
    mutable std::mutex mu;
    LruMap<ns::InodeId, Entry> map;  // guarded by mu
    // The epoch of the last invalidation of the inodes of each slot.
    std::array<uint64_t, kInvalidatedSlots> invalidated{};  // guarded by mu
  };
  Shard& ShardOf(ns::InodeId ino) { return shards_[ino % kShards]; }
  static uint64_t& InvalidatedLocked(Shard& s, ns::InodeId ino) {
    return s.invalidated[(ino / kShards) % kInvalidatedSlots];
  }
  bool PutLocked(Shard& s, const ns::Attr& attr, uint64_t epoch);
  void InvalidateLocked(Shard& s, ns::InodeId ino);
  // Records an invalidation of `ino` (its slot's epoch) and returns that
  // epoch, leaving the entry (InvalidateLocked also erases it).
  uint64_t MarkInvalidatedLocked(Shard& s, ns::InodeId ino);
  // A fresh entry (a hit, moved to the LRU front); drops a stale one.
  std::optional<ns::Attr> FindLocked(Shard& s, ns::InodeId ino);
  const Shard& ShardOf(ns::InodeId ino) const { return shards_[ino % kShards]; }

  const AttrCacheOptions options_;
  const bool enabled_;
  const size_t per_shard_;
  std::array<Shard, kShards> shards_;
  // Bumped by every invalidation, under the shard's mutex; the new value
  // goes to the inode's slot in Shard::invalidated.
  std::atomic<uint64_t> epoch_{0};
  std::atomic<uint64_t> hits_{0}, misses_{0}, invalidations_{0},
      evictions_{0};
};

}  // namespace nfs41d
