#include "nfs41d/dir_cache.h"

#include <algorithm>

namespace nfs41d {

DirCache::DirCache(DirCacheOptions options)
    : options_(options),
      enabled_(options.max_entries > 0 && options.ttl.count() > 0),
      per_shard_(std::max<size_t>(1, options.max_entries / kShards)) {}

std::optional<DirCache::Child> DirCache::Get(ns::InodeId dir,
                                             std::string_view name) {
  if (!enabled_) return std::nullopt;
  Shard& s = ShardOf(dir);
  std::lock_guard<std::mutex> l(s.mu);
  auto d = s.dirs.Find(dir);
  if (d != s.dirs.end()) {
    auto it = d->second.value.find(std::string(name));
    if (it != d->second.value.end()) {
      if (Clock::now() - it->second.read_at < options_.ttl) {
        s.dirs.Touch(d);
        hits_.fetch_add(1, std::memory_order_relaxed);
        return it->second.child;
      }
      d->second.value.erase(it);
      --s.names;
    }
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  return std::nullopt;
}

DirCache::Dir& DirCache::TouchDirLocked(Shard& s, ns::InodeId dir) {
  auto d = s.dirs.Find(dir);
  if (d == s.dirs.end()) {
    return s.dirs.InsertOrAssign(dir, Dir{}).first->second.value;
  }
  s.dirs.Touch(d);
  return d->second.value;
}

bool DirCache::PutLocked(Shard& s, ns::InodeId dir, Dir& d,
                         std::string_view name, Child child,
                         Clock::time_point now) {
  auto [it, added] = d.insert_or_assign(std::string(name), Entry{child, now});
  if (added) ++s.names;
  // Over budget: whole directories go, least recently used first, but never
  // the one being filled (a directory larger than a shard's budget keeps
  // only what it has).
  while (s.names > per_shard_ && s.dirs.Oldest()->first != dir) {
    EraseDirLocked(s, s.dirs.Oldest());
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  if (s.names > per_shard_ && added) {
    d.erase(it);
    --s.names;
    return false;
  }
  return true;
}

void DirCache::Put(ns::InodeId dir, std::string_view name, Child child,
                   uint64_t epoch) {
  if (!enabled_) return;
  Shard& s = ShardOf(dir);
  std::lock_guard<std::mutex> l(s.mu);
  // A forget of `dir` after `epoch`: the name may have changed since it
  // was read. A forget before `epoch` came after its change was
  // committed, so what was read after `epoch` already saw that change.
  if (ForgottenLocked(s, dir) > epoch) return;
  PutLocked(s, dir, TouchDirLocked(s, dir), name, child, Clock::now());
}

void DirCache::PutMany(ns::InodeId dir, const std::vector<Named>& names,
                       uint64_t epoch) {
  if (!enabled_ || names.empty()) return;
  Shard& s = ShardOf(dir);
  std::lock_guard<std::mutex> l(s.mu);
  if (ForgottenLocked(s, dir) > epoch) return;
  Dir& d = TouchDirLocked(s, dir);
  const Clock::time_point now = Clock::now();
  for (const Named& n : names) {
    if (!PutLocked(s, dir, d, n.name, n.child, now)) break;
  }
}

void DirCache::EraseDirLocked(Shard& s, Dirs::iterator it) {
  s.names -= it->second.value.size();
  s.dirs.Erase(it);
}

void DirCache::InvalidateDir(ns::InodeId dir) {
  if (!enabled_) return;
  Shard& s = ShardOf(dir);
  std::lock_guard<std::mutex> l(s.mu);
  ForgottenLocked(s, dir) = epoch_.fetch_add(1, std::memory_order_acq_rel) + 1;
  invalidations_.fetch_add(1, std::memory_order_relaxed);
  auto it = s.dirs.Find(dir);
  if (it != s.dirs.end()) EraseDirLocked(s, it);
}

void DirCache::Clear() {
  for (Shard& s : shards_) {
    std::lock_guard<std::mutex> l(s.mu);
    s.forgotten.fill(epoch_.fetch_add(1, std::memory_order_acq_rel) + 1);
    s.dirs.Clear();
    s.names = 0;
  }
}

DirCache::Stats DirCache::stats() const {
  Stats st;
  st.hits = hits_.load(std::memory_order_relaxed);
  st.misses = misses_.load(std::memory_order_relaxed);
  st.invalidations = invalidations_.load(std::memory_order_relaxed);
  st.evictions = evictions_.load(std::memory_order_relaxed);
  for (const Shard& s : shards_) {
    std::lock_guard<std::mutex> l(s.mu);
    st.entries += s.names;
  }
  return st;
}

}  // namespace nfs41d
