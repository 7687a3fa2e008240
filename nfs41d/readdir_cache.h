#pragma once

// ReaddirCache: encoded READDIR replies (RFC 8881 §18.23), so that reading
// a directory again (`ls -l` twice, or two clients listing one directory)
// costs a copy instead of a database range scan and the encoding of every
// entry. It follows AttrCache's rules (attr_cache.h), on which it sits:
//
//   - Key: the directory, the cookie the page starts after, the requested
//     attribute mask, maxcount and dircount (they decide where the page
//     ends) and the export (fsid and mounted_on_fileid depend on it). A
//     request that differs in any of them is not served from the page.
//   - This server's own changes: a page lists the inodes it was made from
//     (the directory and every entry) and AttrCache's epoch before the
//     database read; it is served only while AttrCache::ChangedSince says
//     none of them was invalidated since. Every op that changes a
//     directory's entries invalidates the directory's attributes
//     (ChangeInfo: CREATE, OPEN(create), REMOVE, RENAME, LINK), and every
//     op or write-back that changes an inode's attributes invalidates that
//     inode (SETATTR, WRITE, CLOSE, ...), so a page never shows a name or
//     an attribute older than the change.
//   - Several doors on one database: a page is served for at most `ttl`
//     after it was read (AttrCache's TTL), as attributes are.
//   - What depends on the caller or changes without an invalidation is
//     never cached: replies with the acl (read with the caller's
//     credentials) or file system counts (files_*, space_avail/free/total).
//     The caller's permission to list the directory is checked on every
//     hit (ops_fs.cc).
//   - Bounded: at most `max_bytes` of pages, least recently used evicted
//     first.
//
// Thread safety: every method may be called from any thread (sharded
// mutexes).

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "libnamespace/include/namespace/types.h"
#include "nfs41d/attr_cache.h"
#include "nfs41d/lru_map.h"

namespace nfs41d {

struct ReaddirCacheOptions {
  // Bytes of pages kept (all shards together); 0 disables the cache.
  size_t max_bytes = size_t{64} << 20;
  // How long a page is trusted (AttrCache's TTL); 0 disables the cache.
  std::chrono::milliseconds ttl{2000};
};

class ReaddirCache {
 public:
  using Clock = std::chrono::steady_clock;

  struct Key {
    ns::InodeId dir = 0;
    uint64_t cookie = 0;
    std::array<uint32_t, 3> mask{};
    uint32_t maxcount = 0;
    uint32_t dircount = 0;
    uint32_t export_id = 0;
    bool operator==(const Key&) const = default;
  };

  // One encoded reply.
  struct Page {
    // READDIR4resok as XDR: cookieverf, the entries, eof.
    std::vector<uint8_t> resok;
    // The cookie verifier the reply carries.
    uint64_t verifier = 0;
    // The directory and every entry's inode.
    std::vector<ns::InodeId> inodes;
    // AttrCache::Epoch() before the database read.
    uint64_t epoch = 0;
    Clock::time_point read_at;
  };

  // `attrs` validates pages (and must outlive this cache); a disabled
  // AttrCache disables this cache too.
  ReaddirCache(ReaddirCacheOptions options, const AttrCache* attrs);

  bool enabled() const { return enabled_; }

  // The page for `key` if cached, younger than the TTL and made from
  // inodes none of which changed since; else null (a stale page is
  // dropped).
  std::shared_ptr<const Page> Get(const Key& key);
  // Stores a page just made. Ignored if one of its inodes already changed
  // since page.epoch, or if it alone is larger than a shard's budget.
  void Put(const Key& key, std::shared_ptr<const Page> page);
  void Clear();

  struct Stats {
    uint64_t hits = 0, misses = 0, stale = 0, evictions = 0;
    size_t pages = 0, bytes = 0;
  };
  Stats stats() const;

 private:
  static constexpr size_t kShards = 16;
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Entry {
    std::shared_ptr<const Page> page;
    size_t bytes = 0;
  };
  using Pages = LruMap<Key, Entry, KeyHash>;
  struct Shard {
    mutable std::mutex mu;
    Pages map;         // guarded by mu
    size_t bytes = 0;  // guarded by mu
  };
  // By the whole key, not the directory: one big directory's pages may
  // use the whole budget.
  Shard& ShardOf(const Key& k) { return shards_[KeyHash{}(k) % kShards]; }
  static size_t SizeOf(const Page& p);
  void EraseLocked(Shard& s, Pages::iterator it);

  const ReaddirCacheOptions options_;
  const AttrCache* const attrs_;
  const bool enabled_;
  const size_t per_shard_;
  std::array<Shard, kShards> shards_;
  std::atomic<uint64_t> hits_{0}, misses_{0}, stale_{0}, evictions_{0};
};

}  // namespace nfs41d
