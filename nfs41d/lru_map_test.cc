// LruMap (lru_map.h): recency order, touch on hit, eviction order and what
// the eviction callback sees, erase anywhere in the order, re-insert of a
// present key, capacity 1, and that values stay in place through other
// entries' inserts and evictions (DirCache holds one across evictions).

#include "nfs41d/lru_map.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace nfs41d {
namespace {

using Map = LruMap<uint64_t, std::string>;

// The keys, most recently used first. Touching the oldest entry size()
// times reads the order and leaves it as it was.
std::vector<uint64_t> Order(Map& m) {
  std::vector<uint64_t> keys;
  for (size_t i = 0; i < m.size(); ++i) {
    auto it = m.Oldest();
    keys.insert(keys.begin(), it->first);
    m.Touch(it);
  }
  return keys;
}

Map Filled(std::initializer_list<uint64_t> keys) {
  Map m;
  for (uint64_t k : keys) m.InsertOrAssign(k, "v" + std::to_string(k));
  return m;
}

TEST(LruMapTest, NewEntriesGoFirstAndFindDoesNotTouch) {
  Map m = Filled({1, 2, 3});
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{3, 2, 1}));
  auto it = m.Find(1);
  ASSERT_NE(it, m.end());
  EXPECT_EQ(it->second.value, "v1");
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{3, 2, 1}));
  EXPECT_EQ(m.Find(4), m.end());
  EXPECT_EQ(m.Oldest()->first, 1u);
}

TEST(LruMapTest, TouchMakesAnEntryTheMostRecent) {
  Map m = Filled({1, 2, 3});
  m.Touch(m.Find(1));
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{1, 3, 2}));
  EXPECT_EQ(m.Oldest()->first, 2u);
  m.Touch(m.Find(1));  // already first
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{1, 3, 2}));
  m.Touch(m.Find(3));  // from the middle
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{3, 1, 2}));
}

TEST(LruMapTest, EvictsTheLeastRecentlyUsedFirst) {
  Map m;
  std::vector<std::pair<uint64_t, std::string>> evicted;
  auto note = [&](const uint64_t& k, std::string& v) {
    evicted.emplace_back(k, v);
  };
  for (uint64_t k = 1; k <= 3; ++k) m.InsertOrAssign(k, "v", 3, note);
  EXPECT_TRUE(evicted.empty());
  m.Touch(m.Find(1));  // a hit saves 1: 2 goes first
  m.InsertOrAssign(4, "v4", 3, note);
  m.InsertOrAssign(5, "v5", 3, note);
  EXPECT_EQ(evicted, (std::vector<std::pair<uint64_t, std::string>>{
                         {2, "v"}, {3, "v"}}));
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{5, 4, 1}));
  EXPECT_EQ(m.size(), 3u);
}

TEST(LruMapTest, EvictionCallbackSeesEachEvictedEntryOnce) {
  Map m;
  std::map<uint64_t, int> seen;
  auto note = [&](const uint64_t& k, std::string& v) {
    EXPECT_EQ(v, "v" + std::to_string(k));  // still whole when reported
    ++seen[k];
  };
  constexpr uint64_t kKeys = 1000;
  constexpr size_t kCapacity = 16;
  for (uint64_t k = 0; k < kKeys; ++k) {
    m.InsertOrAssign(k, "v" + std::to_string(k), kCapacity, note);
    ASSERT_LE(m.size(), kCapacity);
  }
  ASSERT_EQ(seen.size(), kKeys - kCapacity);
  for (const auto& [k, n] : seen) {
    EXPECT_LT(k, kKeys - kCapacity) << "a key still held was reported";
    EXPECT_EQ(n, 1) << "key " << k;
  }
  for (uint64_t k = kKeys - kCapacity; k < kKeys; ++k) {
    EXPECT_NE(m.Find(k), m.end()) << k;
  }
}

TEST(LruMapTest, ReinsertOfAPresentKeyAssignsTouchesAndEvictsNothing) {
  Map m = Filled({1, 2, 3});
  int evictions = 0;
  auto count = [&](const uint64_t&, std::string&) { ++evictions; };
  auto [it, added] = m.InsertOrAssign(1, "new", 3, count);
  EXPECT_FALSE(added);
  EXPECT_EQ(it->first, 1u);
  EXPECT_EQ(it->second.value, "new");
  EXPECT_EQ(evictions, 0);
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{1, 3, 2}));
  EXPECT_EQ(m.Find(1)->second.value, "new");
  auto [it2, added2] = m.InsertOrAssign(2, "two");  // unbounded form
  EXPECT_FALSE(added2);
  EXPECT_EQ(it2->second.value, "two");
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{2, 1, 3}));
}

TEST(LruMapTest, EraseOfHeadMiddleAndTail) {
  Map m = Filled({1, 2, 3, 4, 5});  // order 5 4 3 2 1
  m.Erase(m.Find(5));               // head
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{4, 3, 2, 1}));
  EXPECT_TRUE(m.Erase(3));  // middle, by key
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{4, 2, 1}));
  m.Erase(m.Oldest());  // tail
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{4, 2}));
  EXPECT_EQ(m.Oldest()->first, 2u);
  EXPECT_FALSE(m.Erase(3));  // gone
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m.Find(5), m.end());
  EXPECT_EQ(m.Find(1), m.end());
  // An erased key comes back as a new entry.
  EXPECT_TRUE(m.InsertOrAssign(3, "again").second);
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{3, 4, 2}));
  m.Clear();
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.Find(4), m.end());
  m.InsertOrAssign(7, "after clear");
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{7}));
}

TEST(LruMapTest, CapacityOneKeepsOnlyTheLastKey) {
  Map m;
  std::vector<uint64_t> evicted;
  auto note = [&](const uint64_t& k, std::string&) { evicted.push_back(k); };
  m.InsertOrAssign(1, "a", 1, note);
  m.InsertOrAssign(1, "b", 1, note);  // present: assigned, nothing evicted
  EXPECT_TRUE(evicted.empty());
  m.InsertOrAssign(2, "c", 1, note);
  m.InsertOrAssign(3, "d", 1, note);
  EXPECT_EQ(evicted, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{3}));
  EXPECT_EQ(m.Find(3)->second.value, "d");
  // Capacity 0 acts as 1: the new entry is always kept.
  m.InsertOrAssign(4, "e", 0, note);
  EXPECT_EQ(evicted, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(Order(m), (std::vector<uint64_t>{4}));
}

TEST(LruMapTest, AMovedMapKeepsItsEntriesAndOrder) {
  Map m = Filled({1, 2, 3});
  m.Touch(m.Find(1));
  Map moved(std::move(m));
  EXPECT_EQ(Order(moved), (std::vector<uint64_t>{1, 3, 2}));
  EXPECT_TRUE(moved.Erase(3));
  EXPECT_EQ(moved.Oldest()->first, 2u);
  EXPECT_EQ(Order(moved), (std::vector<uint64_t>{1, 2}));
}

TEST(LruMapTest, ValuesStayPutThroughOtherEntriesInsertsAndEvictions) {
  Map m;
  auto none = [](const uint64_t&, std::string&) {};
  std::string* held =
      &m.InsertOrAssign(0, "held", 100, none).first->second.value;
  // Enough inserts to rehash the map several times, and evictions of all
  // the others (0 is touched each time), as DirCache holds a directory's
  // names while it evicts other directories.
  for (uint64_t k = 1; k < 1000; ++k) {
    m.InsertOrAssign(k, "x", 100, none);
    m.Touch(m.Find(0));
  }
  auto it = m.Find(0);
  ASSERT_NE(it, m.end());
  EXPECT_EQ(&it->second.value, held);
  EXPECT_EQ(*held, "held");
  EXPECT_EQ(m.size(), 100u);
  // 0 and the last 99 keys.
  EXPECT_EQ(Order(m).front(), 0u);
  EXPECT_EQ(m.Oldest()->first, 901u);
}

// A key with its own hash, as ReaddirCache's.
struct PairKey {
  uint32_t a = 0, b = 0;
  bool operator==(const PairKey&) const = default;
};
struct PairHash {
  size_t operator()(const PairKey& k) const { return k.a * 31 + k.b; }
};

TEST(LruMapTest, KeysWithTheirOwnHash) {
  LruMap<PairKey, int, PairHash> m;
  m.InsertOrAssign({1, 2}, 12);
  m.InsertOrAssign({2, 1}, 21);
  EXPECT_EQ(m.Find({1, 2})->second.value, 12);
  EXPECT_EQ(m.Find({2, 1})->second.value, 21);
  EXPECT_EQ(m.Find({1, 1}), m.end());
  EXPECT_EQ(m.Oldest()->second.value, 12);
}

}  // namespace
}  // namespace nfs41d
