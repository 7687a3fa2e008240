// Conformance (conformance_test.cc): readdir.

#include "tests/conformance_fixture.h"

namespace ns::testing {
namespace {

// ---- readdir --------------------------------------------------------------------

TEST_P(ConformanceTest, ReadDirPagesCookiesVerifierAndAttrs) {
  InodeId d = MkdirOrFail(ns_->Root(), "d");
  {
    ASSERT_OK_AND_ASSIGN(DirPage empty, ns_->ReadDir(root_, d, ReadDirRequest{}));
    EXPECT_TRUE(empty.entries.empty());
    EXPECT_TRUE(empty.eof);
  }
  std::map<std::string, InodeId> made;
  for (int i = 0; i < 40; ++i) {
    const std::string name = "e" + std::to_string(i);
    Result<Attr> a = i % 10 == 3   ? ns_->Mkdir(root_, d, name, 0700)
                     : i % 10 == 5 ? ns_->Symlink(root_, d, name, "target")
                     : i % 10 == 7 ? ns_->Mknod(root_, d, name, FileType::kSocket, 0600)
                                   : ns_->Create(root_, d, name, 0600 + i);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    made[name] = a->ino;
  }
  std::vector<DirEntry> reference;
  for (uint32_t page : {1u, 7u, 1000u}) {
    SCOPED_TRACE("page size " + std::to_string(page));
    ASSERT_OK_AND_ASSIGN(std::vector<DirEntry> all, ListAll(*ns_, d, page));
    ASSERT_EQ(all.size(), made.size());
    std::set<std::string> seen;
    for (const DirEntry& e : all) {
      EXPECT_TRUE(seen.insert(e.name).second) << "repeated " << e.name;
      ASSERT_TRUE(made.count(e.name)) << "unknown " << e.name;
      EXPECT_EQ(e.ino, made[e.name]);
      EXPECT_EQ(e.type, LookupOrFail(d, e.name).type);
    }
    if (reference.empty()) {
      reference = all;
    } else {
      // The same cookies, whatever the page size.
      for (size_t i = 0; i < all.size(); ++i) {
        EXPECT_EQ(all[i].cookie, reference[i].cookie);
        EXPECT_EQ(all[i].name, reference[i].name);
      }
    }
  }
  // Page boundaries: a full page of exactly max_entries, eof only at the end.
  {
    ReadDirRequest req;
    req.max_entries = 7;
    ASSERT_OK_AND_ASSIGN(DirPage p, ns_->ReadDir(root_, d, req));
    EXPECT_EQ(p.entries.size(), 7u);
    EXPECT_FALSE(p.eof);
    req.max_entries = 1000;
    req.cookie = p.entries.back().cookie;
    req.verifier = p.verifier;
    ASSERT_OK_AND_ASSIGN(DirPage rest, ns_->ReadDir(root_, d, req));
    EXPECT_EQ(rest.entries.size(), made.size() - 7);
    EXPECT_TRUE(rest.eof);
    EXPECT_EQ(rest.verifier, p.verifier);
    EXPECT_EQ(rest.entries.front().cookie, reference[7].cookie);
    // Resuming after the last entry: nothing, eof.
    req.cookie = reference.back().cookie;
    ASSERT_OK_AND_ASSIGN(DirPage none, ns_->ReadDir(root_, d, req));
    EXPECT_TRUE(none.entries.empty());
    EXPECT_TRUE(none.eof);
    // A verifier that is not this directory's: NFS4ERR_NOT_SAME.
    req.cookie = reference[3].cookie;
    req.verifier = p.verifier ^ 0x5a5a5a5a5a5a5a5aull;
    EXPECT_STATUS(ns_->ReadDir(root_, d, req), Invalid);
  }
  // readdirplus: the attributes are GetAttr's.
  ASSERT_OK_AND_ASSIGN(std::vector<DirEntry> plus, ListAll(*ns_, d, 7, true));
  ASSERT_EQ(plus.size(), made.size());
  for (const DirEntry& e : plus) {
    ASSERT_TRUE(e.attr.has_value()) << e.name;
    Attr a = GetAttrOrFail(e.ino);
    EXPECT_EQ(e.attr->ino, a.ino);
    EXPECT_EQ(e.attr->type, a.type);
    EXPECT_EQ(e.attr->mode, a.mode);
    EXPECT_EQ(e.attr->nlink, a.nlink);
    EXPECT_EQ(e.attr->uid, a.uid);
    EXPECT_EQ(e.attr->size, a.size);
    EXPECT_EQ(e.attr->mtime, a.mtime);
    EXPECT_EQ(e.attr->change, a.change);
    EXPECT_EQ(e.attr->parent, a.parent);
  }
  InodeId f = made["e0"];
  EXPECT_STATUS(ns_->ReadDir(root_, f, ReadDirRequest{}), NotDir);
  EXPECT_STATUS(ns_->ReadDir(root_, 987654321, ReadDirRequest{}), Stale);
}

// Property: a listing resumed at any cookie handed out earlier, with random
// creates, removes and renames in between, neither repeats nor skips entries
// that existed throughout.
TEST_P(ConformanceTest, ReadDirResumesAtEveryCookieWhileTheDirectoryChanges) {
  std::mt19937_64 rng(0x5eed2024);
  constexpr int kInitial = 240;
  InodeId d = MkdirOrFail(ns_->Root(), "prop");
  struct Entry {
    bool stable = false;        // never removed while the test runs
    bool live = true;
    bool renamed = false;       // arrived by rename: its cookie may be old
    uint64_t born = 0;          // sequence number of its creation
    uint64_t cookie = 0;        // 0 until seen in a listing
  };
  std::map<std::string, Entry> entries;
  std::vector<std::string> removable;  // live, not stable
  uint64_t seq = 0;
  int serial = 0;

  for (int i = 0; i < kInitial; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "init%03d", i);
    ASSERT_OK(ns_->Create(root_, d, name, 0644));
    Entry e;
    e.stable = i % 2 == 0;
    e.born = ++seq;
    entries[name] = e;
    if (!e.stable) removable.push_back(name);
  }
  std::set<std::string> removed_now;  // removed during the current listing
  auto mutate = [&]() {
    const int what = static_cast<int>(rng() % 100);
    if (what < 45 || removable.empty()) {
      const std::string name = "new" + std::to_string(serial++);
      Status s = ns_->Create(root_, d, name, 0644).status();
      ASSERT_TRUE(s.ok()) << s.ToString();
      Entry e;
      e.born = ++seq;
      entries[name] = e;
      removable.push_back(name);
      return;
    }
    const size_t k = rng() % removable.size();
    const std::string victim = removable[k];
    removable.erase(removable.begin() + static_cast<ptrdiff_t>(k));
    entries[victim].live = false;
    removed_now.insert(victim);
    if (what < 80) {
      Status s = ns_->Unlink(root_, d, victim).status();
      ASSERT_TRUE(s.ok()) << victim << ": " << s.ToString();
    } else {
      const std::string name = "ren" + std::to_string(serial++);
      Status s = ns_->Rename(root_, d, victim, d, name).status();
      ASSERT_TRUE(s.ok()) << victim << ": " << s.ToString();
      Entry e;
      e.born = ++seq;
      e.renamed = true;
      entries[name] = e;
      removable.push_back(name);
    }
  };
  struct Handed {
    uint64_t cookie;
    uint64_t seq;  // creations up to this number happened before it was handed
  };
  std::vector<Handed> handed;
  uint64_t verifier = 0;
  int64_t checks = 0;  // (listing, entry) pairs whose presence was checked

  // One listing from `start`, mutating between pages. Checks it and records
  // every cookie handed out.
  auto list_from = [&](uint64_t start, uint64_t start_seq, uint32_t page_size,
                       bool record) {
    std::map<std::string, Entry> at_start = entries;
    removed_now.clear();
    std::set<std::string> listed;
    ReadDirRequest req;
    req.cookie = start;
    req.verifier = start == 0 ? 0 : verifier;
    req.max_entries = page_size;
    for (int pages = 0;; ++pages) {
      ASSERT_LT(pages, 20000) << "the listing does not come to an end";
      Result<DirPage> page = ns_->ReadDir(root_, d, req);
      ASSERT_TRUE(page.ok()) << "cookie " << req.cookie << ": " << page.status().ToString();
      if (start == 0 && pages == 0) verifier = page->verifier;
      EXPECT_EQ(page->verifier, verifier);
      ASSERT_LE(page->entries.size(), page_size);
      ASSERT_TRUE(!page->entries.empty() || page->eof);
      for (const DirEntry& e : page->entries) {
        ASSERT_GT(e.cookie, req.cookie) << "cookies must ascend";
        req.cookie = e.cookie;
        auto it = entries.find(e.name);
        ASSERT_NE(it, entries.end()) << "a name never created: " << e.name;
        EXPECT_TRUE(listed.insert(e.name).second) << "repeated: " << e.name;
        if (it->second.cookie == 0) {
          it->second.cookie = e.cookie;
        } else {
          EXPECT_EQ(it->second.cookie, e.cookie) << e.name << " changed its cookie";
        }
        if (record) handed.push_back({e.cookie, seq});
      }
      req.verifier = page->verifier;
      if (page->eof) break;
      // Change the directory between some pages: rarely enough that a
      // listing in pages of one entry still outruns the creates.
      if (rng() % 4 == 0) {
        mutate();
        if (HasFatalFailure()) return;
      }
    }
    // Every entry that existed throughout and lies after `start` was listed.
    for (const auto& [name, e0] : at_start) {
      if (!e0.live || removed_now.count(name)) continue;
      const Entry& e = entries[name];
      bool after_start;
      if (e.cookie != 0) {
        after_start = e.cookie > start;
      } else if (!e.renamed && e.born > start_seq) {
        after_start = true;  // created after `start` was handed out
      } else {
        continue;  // cookie unknown and may lie before `start`
      }
      ++checks;
      if (after_start) {
        EXPECT_TRUE(listed.count(name)) << "skipped " << name << " resuming at " << start;
      } else {
        EXPECT_FALSE(listed.count(name)) << "listed " << name << " before " << start;
      }
    }
  };

  // Pass 1: the whole directory in small pages of varying size.
  {
    std::uniform_int_distribution<uint32_t> size(1, 20);
    list_from(0, 0, size(rng), true);
    if (HasFatalFailure()) return;
    for (const auto& [name, e] : entries) {
      if (e.stable) {
        EXPECT_NE(e.cookie, 0u) << "stable entry never listed: " << name;
      }
    }
  }
  // Pass 2: resume at every cookie handed out in pass 1, in random order,
  // after more changes.
  std::vector<Handed> todo = handed;
  std::shuffle(todo.begin(), todo.end(), rng);
  const uint32_t sizes[] = {1, 7, 1000, 13, 64};
  size_t i = 0;
  for (const Handed& h : todo) {
    mutate();
    if (HasFatalFailure()) return;
    const uint32_t page_size = i % 25 == 0 ? 1 : sizes[1 + rng() % 4];
    ++i;
    list_from(h.cookie, h.seq, page_size, false);
    if (HasFatalFailure()) return;
  }
  // And the stable entries still carry the cookies they had at the start.
  ASSERT_OK_AND_ASSIGN(std::vector<DirEntry> final_list, ListAll(*ns_, d, 1000));
  size_t stable_seen = 0;
  for (const DirEntry& e : final_list) {
    const Entry& known = entries[e.name];
    EXPECT_TRUE(known.live) << "removed entry still listed: " << e.name;
    if (known.stable) {
      ++stable_seen;
      EXPECT_EQ(e.cookie, known.cookie);
    }
  }
  EXPECT_EQ(stable_seen, static_cast<size_t>(kInitial / 2));
  // The property was checked many times over, not vacuously.
  EXPECT_GT(handed.size(), static_cast<size_t>(kInitial));
  EXPECT_GT(checks, 20 * kInitial);
  size_t live = 0;
  for (const auto& [name, e] : entries) live += e.live;
  EXPECT_EQ(final_list.size(), live);
}

}  // namespace
}  // namespace ns::testing
