#pragma once

// DirCache: directory entries (directory inode, name) -> (inode, generation)
// in front of Namespace::Lookup, so that LOOKUP of a recently seen name
// costs no database round trip (issue 4, issue 8 "stat"). It sits next to
// AttrCache and follows the same rules:
//
//   - This server's own changes: the COMPOUND loop forgets, after every op
//     that modifies state, every name of the directories AttrCache
//     forgets (current and saved filehandles before and after the op, and
//     CompoundState::touched). That covers REMOVE (current fh = directory),
//     RENAME (saved = source, current = target directory), LINK (current =
//     target directory), CREATE and OPEN-create (the directory is the
//     current fh before the op), except that CREATE and OPEN keep the
//     names of the directory they add to (adding a name makes no cached
//     name wrong). A lookup that raced with a forget of its directory is
//     not stored (epochs: see Put), so a stale positive entry never comes
//     back.
//   - Filled by LOOKUP, by READDIR with attributes (every name of the
//     page), and by this server's own CREATE and OPEN(create) (the name
//     and the new inode are known when the commit returns: `ls -l` or a
//     stat after a create costs no database round trip).
//   - Negative results (NOENT) are never cached: a name created later is
//     found at once, by this server or another door.
//   - Several doors on one database: an entry is used for at most `ttl`
//     after it was read (the attribute cache's TTL); a name another door
//     removed or replaced is seen within `ttl`.
//   - Bounded: at most `max_entries` names; whole directories are evicted,
//     least recently used first.
//
// Permission: an entry says what a name refers to, not who may look it up.
// LOOKUP checks search permission on the directory itself (from its cached
// attributes), as Namespace::Lookup would.
//
// Thread safety: every method may be called from any thread (sharded
// mutexes).

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "nfs41d/lru_map.h"

namespace nfs41d {

struct DirCacheOptions {
  // Names kept (all shards together); 0 disables the cache.
  size_t max_entries = 65536;
  // How long an entry is trusted (see above); 0 disables the cache.
  std::chrono::milliseconds ttl{2000};
};

class DirCache {
 public:
  explicit DirCache(DirCacheOptions options);

  bool enabled() const { return enabled_; }

  struct Child {
    ns::InodeId ino = 0;
    uint32_t generation = 0;  // as in FileHandle
  };
  // The entry `name` of `dir` if cached and fresh.
  std::optional<Child> Get(ns::InodeId dir, std::string_view name);
  // Stores a lookup's result. Ignored if `dir` was forgotten since `epoch`
  // (Epoch() taken before the lookup, or before the create's commit):
  // the result may predate a REMOVE or RENAME. Forgets of other
  // directories do not matter, so concurrent changes elsewhere do not keep
  // a busy server from caching.
  void Put(ns::InodeId dir, std::string_view name, Child child,
           uint64_t epoch);
  // Put for the names of one READDIR page, under one lock. Stops when the
  // directory's shard is full.
  struct Named {
    std::string_view name;
    Child child;
  };
  void PutMany(ns::InodeId dir, const std::vector<Named>& names,
               uint64_t epoch);
  uint64_t Epoch() const { return epoch_.load(std::memory_order_acquire); }
  // Forgets every name of directory `dir` (nothing if it is not one).
  void InvalidateDir(ns::InodeId dir);
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
    Child child;
    Clock::time_point read_at;
  };
  // A directory's cached names.
  using Dir = std::unordered_map<std::string, Entry>;
  using Dirs = LruMap<ns::InodeId, Dir>;
  // Directories share "last forgotten" epochs by hash: a collision only
  // makes a Put give up needlessly.
  static constexpr size_t kForgetSlots = 256;  // per shard
  struct Shard {
    mutable std::mutex mu;
    Dirs dirs;         // guarded by mu
    size_t names = 0;  // guarded by mu
    // The epoch of the last forget of the directories of each slot.
    std::array<uint64_t, kForgetSlots> forgotten{};  // guarded by mu
  };
  Shard& ShardOf(ns::InodeId dir) { return shards_[dir % kShards]; }
  static uint64_t& ForgottenLocked(Shard& s, ns::InodeId dir) {
    return s.forgotten[(dir / kShards) % kForgetSlots];
  }
  void EraseDirLocked(Shard& s, Dirs::iterator it);
  // The directory's entry, made most recent (created if missing).
  Dir& TouchDirLocked(Shard& s, ns::InodeId dir);
  // Stores one name; false if the shard is full and it was not kept.
  bool PutLocked(Shard& s, ns::InodeId dir, Dir& d, std::string_view name,
                 Child child, Clock::time_point now);

  const DirCacheOptions options_;
  const bool enabled_;
  const size_t per_shard_;
  std::array<Shard, kShards> shards_;
  // Bumped by every forget, under the shard's mutex; the new value goes to
  // the directory's slot in Shard::forgotten.
  std::atomic<uint64_t> epoch_{0};
  std::atomic<uint64_t> hits_{0}, misses_{0}, invalidations_{0},
      evictions_{0};
};

}  // namespace nfs41d
