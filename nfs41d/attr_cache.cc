#include "nfs41d/attr_cache.h"

#include <algorithm>

namespace nfs41d {

AttrCache::AttrCache(AttrCacheOptions options)
    : options_(options),
      enabled_(options.max_entries > 0 && options.ttl.count() > 0),
      per_shard_(std::max<size_t>(1, options.max_entries / kShards)) {}

std::optional<ns::Attr> AttrCache::FindLocked(Shard& s, ns::InodeId ino) {
  auto it = s.map.Find(ino);
  if (it == s.map.end()) return std::nullopt;
  if (Clock::now() - it->second.value.read_at >= options_.ttl) {
    s.map.Erase(it);
    return std::nullopt;
  }
  s.map.Touch(it);
  hits_.fetch_add(1, std::memory_order_relaxed);
  return it->second.value.attr;
}

ns::Result<ns::Attr> AttrCache::Get(ns::Namespace& ns,
                                    const ns::Credentials& cred,
                                    ns::InodeId ino) {
  if (!enabled_) return ns.GetAttr(cred, ino);
  Shard& s = ShardOf(ino);
  uint64_t epoch;
  {
    std::lock_guard<std::mutex> l(s.mu);
    if (std::optional<ns::Attr> a = FindLocked(s, ino)) return *a;
    epoch = Epoch();
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  ns::Result<ns::Attr> r = ns.GetAttr(cred, ino);
  if (r.ok()) Put(*r, epoch);
  return r;
}

std::optional<ns::Attr> AttrCache::Peek(ns::InodeId ino) {
  if (!enabled_) return std::nullopt;
  Shard& s = ShardOf(ino);
  std::lock_guard<std::mutex> l(s.mu);
  return FindLocked(s, ino);
}

bool AttrCache::Put(const ns::Attr& attr, uint64_t epoch) {
  if (!enabled_) return false;
  Shard& s = ShardOf(attr.ino);
  std::lock_guard<std::mutex> l(s.mu);
  return PutLocked(s, attr, epoch);
}

bool AttrCache::Replace(const ns::Attr& attr, uint64_t epoch) {
  if (!enabled_) return false;
  Shard& s = ShardOf(attr.ino);
  std::lock_guard<std::mutex> l(s.mu);
  // Checked before our own invalidation, which must not count against us.
  const bool others = InvalidatedLocked(s, attr.ino) > epoch;
  const uint64_t ours = MarkInvalidatedLocked(s, attr.ino);
  if (others) {
    s.map.Erase(attr.ino);
    return false;
  }
  return PutLocked(s, attr, ours);  // keeps a newer row if one is held
}

bool AttrCache::PutLocked(Shard& s, const ns::Attr& attr, uint64_t epoch) {
  // An invalidation of this inode after `epoch`: the value may predate its
  // change. One before `epoch` came after its change was committed, so a
  // read after `epoch` already saw it.
  if (InvalidatedLocked(s, attr.ino) > epoch) return false;
  auto it = s.map.Find(attr.ino);
  if (it != s.map.end()) {
    ns::Attr& held = it->second.value.attr;
    // A newer row is there already (stored by the commit that made it):
    // this value was read before that commit and is older.
    if (held.generation == attr.generation && held.change > attr.change) {
      return true;
    }
    held = attr;
    it->second.value.read_at = Clock::now();
    s.map.Touch(it);
    return true;
  }
  s.map.InsertOrAssign(attr.ino, Entry{attr, Clock::now()}, per_shard_,
                       [this](ns::InodeId, Entry&) {
                         evictions_.fetch_add(1, std::memory_order_relaxed);
                       });
  return true;
}

void AttrCache::Invalidate(ns::InodeId ino) {
  if (!enabled_) return;
  Shard& s = ShardOf(ino);
  std::lock_guard<std::mutex> l(s.mu);
  InvalidateLocked(s, ino);
}

void AttrCache::InvalidateLocked(Shard& s, ns::InodeId ino) {
  MarkInvalidatedLocked(s, ino);
  s.map.Erase(ino);
}

uint64_t AttrCache::MarkInvalidatedLocked(Shard& s, ns::InodeId ino) {
  const uint64_t e = epoch_.fetch_add(1, std::memory_order_acq_rel) + 1;
  InvalidatedLocked(s, ino) = e;
  invalidations_.fetch_add(1, std::memory_order_relaxed);
  return e;
}

bool AttrCache::ChangedSince(std::span<const ns::InodeId> inos,
                             uint64_t epoch) const {
  if (!enabled_) return true;
  // One lock per shard, not per inode: a page holds hundreds of them.
  for (size_t k = 0; k < kShards; ++k) {
    const Shard& s = shards_[k];
    std::lock_guard<std::mutex> l(s.mu);
    for (ns::InodeId ino : inos) {
      if (ino % kShards == k &&
          s.invalidated[(ino / kShards) % kInvalidatedSlots] > epoch) {
        return true;
      }
    }
  }
  return false;
}

void AttrCache::Clear() {
  for (Shard& s : shards_) {
    std::lock_guard<std::mutex> l(s.mu);
    s.invalidated.fill(epoch_.fetch_add(1, std::memory_order_acq_rel) + 1);
    s.map.Clear();
  }
}

AttrCache::Stats AttrCache::stats() const {
  Stats st;
  st.hits = hits_.load(std::memory_order_relaxed);
  st.misses = misses_.load(std::memory_order_relaxed);
  st.invalidations = invalidations_.load(std::memory_order_relaxed);
  st.evictions = evictions_.load(std::memory_order_relaxed);
  for (const Shard& s : shards_) {
    std::lock_guard<std::mutex> l(s.mu);
    st.entries += s.map.size();
  }
  return st;
}

}  // namespace nfs41d
