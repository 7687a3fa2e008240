#pragma once

// LruMap<K, V, Hash>: a hash map that keeps its entries in recency order,
// the mechanics the caches share (AttrCache, DirCache, ReaddirCache and
// LocalDataStore's descriptor cache). It only links and unlinks; what makes
// an entry stale, what a budget counts (entries, names, bytes) and when to
// evict stay with each cache, which knows why.
//
// Layout: a std::unordered_map holds each key and value; a std::list of
// pointers to the map's entries keeps the order, most recently used first.
// This is the layout the caches had (map + list of keys): a hit (Find,
// then Touch) is one hash lookup and a splice, no allocation, no virtual
// call (GETATTR takes it on every request), and the splice touches only
// small, dense list nodes, not the neighbours' values. An insert
// allocates a map node and a list node, as before.
//
// Iterators are the map's: valid until the next insert (which may rehash)
// or the erase of their own entry. References to values stay valid until
// their entry is erased.
//
// Thread safety: none; each cache keeps its own locks.

#include <algorithm>
#include <cstddef>
#include <functional>
#include <limits>
#include <list>
#include <unordered_map>
#include <utility>

namespace nfs41d {

template <typename K, typename V, typename Hash = std::hash<K>>
class LruMap {
 public:
  struct Slot;
  // Pointers to the map's entries, front = most recently used.
  using Order = std::list<std::pair<const K, Slot>*>;
  struct Slot {
    V value;
    typename Order::iterator lru;  // this entry's place in order_
  };
  using Map = std::unordered_map<K, Slot, Hash>;
  // it->first is the key, it->second.value the value.
  using iterator = typename Map::iterator;

  LruMap() = default;
  // order_ points into index_'s nodes: moving keeps them, copying would not.
  LruMap(const LruMap&) = delete;
  LruMap& operator=(const LruMap&) = delete;
  LruMap(LruMap&&) = default;
  LruMap& operator=(LruMap&&) = default;

  size_t size() const { return index_.size(); }
  bool empty() const { return index_.empty(); }
  iterator end() { return index_.end(); }

  // The entry of `key`, or end(); its recency is unchanged (a caller that
  // may find it stale decides first, then Touch or Erase).
  iterator Find(const K& key) { return index_.find(key); }
  // Makes `it` the most recently used entry. REQUIRES: it != end().
  void Touch(iterator it) {
    order_.splice(order_.begin(), order_, it->second.lru);
  }
  // The least recently used entry (the next to evict). REQUIRES: !empty().
  iterator Oldest() { return index_.find(order_.back()->first); }

  // Sets `key`'s value and makes it the most recently used entry. Returns
  // the entry and whether it is new.
  std::pair<iterator, bool> InsertOrAssign(const K& key, V value) {
    return InsertOrAssign(key, std::move(value),
                          std::numeric_limits<size_t>::max(),
                          [](const K&, V&) {});
  }
  // The same with a bound on the number of entries: a new key first
  // evicts the least recently used entries until fewer than `capacity`
  // remain (capacity 0 acts as 1), calling on_evict(const K&, V&) on each
  // just before it is destroyed (to count it, account its bytes, close
  // what it holds). Assigning to a present key evicts nothing.
  template <typename OnEvict>
  std::pair<iterator, bool> InsertOrAssign(const K& key, V value,
                                           size_t capacity,
                                           OnEvict&& on_evict) {
    iterator at = index_.find(key);
    if (at != index_.end()) {
      at->second.value = std::move(value);
      Touch(at);
      return {at, false};
    }
    // Evict before adding, as the caches did: the nodes just freed are
    // the ones the new entry reuses, still in the CPU's cache.
    while (!empty() && size() >= std::max<size_t>(capacity, 1)) {
      std::pair<const K, Slot>& oldest = *order_.back();
      on_evict(oldest.first, oldest.second.value);
      const K evicted = oldest.first;  // a copy: erase frees the node's
      order_.pop_back();
      index_.erase(evicted);
    }
    at = index_.try_emplace(key, std::move(value), order_.end()).first;
    order_.push_front(&*at);
    at->second.lru = order_.begin();
    return {at, true};
  }

  // Removes `it`. REQUIRES: it != end().
  void Erase(iterator it) {
    order_.erase(it->second.lru);
    index_.erase(it);
  }
  // Removes `key`'s entry; false if there is none.
  bool Erase(const K& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    Erase(it);
    return true;
  }
  void Clear() {
    order_.clear();
    index_.clear();
  }

 private:
  Map index_;
  Order order_;
};

}  // namespace nfs41d
