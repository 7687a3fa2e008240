#include "nfs41d/readdir_cache.h"

namespace nfs41d {

ReaddirCache::ReaddirCache(ReaddirCacheOptions options, const AttrCache* attrs)
    : options_(options),
      attrs_(attrs),
      enabled_(attrs != nullptr && attrs->enabled() && options.max_bytes > 0 &&
               options.ttl.count() > 0),
      per_shard_(options.max_bytes / kShards) {}

size_t ReaddirCache::KeyHash::operator()(const Key& k) const {
  // Keys of one directory differ mostly in the cookie.
  uint64_t h = k.dir * 0x9e3779b97f4a7c15ull ^ k.cookie;
  h ^= (uint64_t{k.mask[0]} << 32 | k.mask[1]) * 0xff51afd7ed558ccdull;
  h ^= (uint64_t{k.mask[2]} << 32 | k.maxcount) * 0xc4ceb9fe1a85ec53ull;
  h ^= uint64_t{k.dircount} << 32 | k.export_id;
  return static_cast<size_t>(h ^ (h >> 29));
}

size_t ReaddirCache::SizeOf(const Page& p) {
  return sizeof(Page) + p.resok.capacity() +
         p.inodes.capacity() * sizeof(ns::InodeId) + 2 * sizeof(Key) + 64;
}

void ReaddirCache::EraseLocked(Shard& s, Pages::iterator it) {
  s.bytes -= it->second.value.bytes;
  s.map.Erase(it);
}

std::shared_ptr<const ReaddirCache::Page> ReaddirCache::Get(const Key& key) {
  if (!enabled_) return nullptr;
  Shard& s = ShardOf(key);
  std::shared_ptr<const Page> page;
  {
    std::lock_guard<std::mutex> l(s.mu);
    auto it = s.map.Find(key);
    if (it == s.map.end()) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    if (Clock::now() - it->second.value.page->read_at >= options_.ttl) {
      EraseLocked(s, it);
      stale_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    s.map.Touch(it);
    page = it->second.value.page;
  }
  // Outside the shard's lock: AttrCache takes its own.
  if (attrs_->ChangedSince(page->inodes, page->epoch)) {
    std::lock_guard<std::mutex> l(s.mu);
    auto it = s.map.Find(key);
    if (it != s.map.end() && it->second.value.page == page) EraseLocked(s, it);
    stale_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  return page;
}

void ReaddirCache::Put(const Key& key, std::shared_ptr<const Page> page) {
  if (!enabled_ || !page) return;
  const size_t bytes = SizeOf(*page);
  if (bytes > per_shard_) return;
  // A change that committed between the read and now: the page may
  // already be older than it.
  if (attrs_->ChangedSince(page->inodes, page->epoch)) return;
  Shard& s = ShardOf(key);
  std::lock_guard<std::mutex> l(s.mu);
  if (auto it = s.map.Find(key); it != s.map.end()) EraseLocked(s, it);
  // The budget counts bytes, not pages: evict until the new page fits.
  while (s.bytes + bytes > per_shard_ && !s.map.empty()) {
    EraseLocked(s, s.map.Oldest());
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  s.map.InsertOrAssign(key, Entry{std::move(page), bytes});
  s.bytes += bytes;
}

void ReaddirCache::Clear() {
  for (Shard& s : shards_) {
    std::lock_guard<std::mutex> l(s.mu);
    s.map.Clear();
    s.bytes = 0;
  }
}

ReaddirCache::Stats ReaddirCache::stats() const {
  Stats st;
  st.hits = hits_.load(std::memory_order_relaxed);
  st.misses = misses_.load(std::memory_order_relaxed);
  st.stale = stale_.load(std::memory_order_relaxed);
  st.evictions = evictions_.load(std::memory_order_relaxed);
  for (const Shard& s : shards_) {
    std::lock_guard<std::mutex> l(s.mu);
    st.pages += s.map.size();
    st.bytes += s.bytes;
  }
  return st;
}

}  // namespace nfs41d
