// Operating nfs41d's caches through the real TCP server and nfs41client,
// backend round trips counted: the attribute cache and the directory
// cache (LOOKUP). READDIR replies and inline COMPOUNDs are in
// readdir_cache_test.cc.

#include "nfs41d/ops_test_fixture.h"

namespace nfs41d::testing_ops {
namespace {

// -------------------------------------------------------- attribute cache

TEST_F(AttrCacheTest, CachedGetattrCostsNoDatabaseRoundTrip) {
  StartCounting(AttrCacheOptions{.max_entries = 1024,
                                 .ttl = std::chrono::seconds(60)});
  Client* c = Connect();
  auto d = c->LookupPath("/d");
  ASSERT_EQ(d.status, NFS4_OK);
  const auto bits = Bits({FATTR4_TYPE, FATTR4_MODE, FATTR4_CHANGE,
                          FATTR4_SIZE, FATTR4_OWNER});
  // The counter sees round trips: a GETATTR of an inode not cached (the
  // CREATE cached it: forgotten here).
  auto fresh = c->Mkdir(d.value, "fresh");
  ASSERT_EQ(fresh.status, NFS4_OK);
  server_->attr_cache().Clear();
  uint64_t miss = Reads();
  ASSERT_EQ(c->GetAttr(fresh.value, bits).status, NFS4_OK);
  EXPECT_GT(Reads(), miss);
  ASSERT_EQ(c->GetAttr(d.value, bits).status, NFS4_OK);
  uint64_t before = Reads();
  for (int i = 0; i < 20; ++i) {
    auto a = c->GetAttr(d.value, bits);
    ASSERT_EQ(a.status, NFS4_OK);
    EXPECT_EQ(a.value.mode, 0777u);
  }
  EXPECT_EQ(Reads(), before) << "GETATTR of a cached inode read the database";
  // ACCESS of a cached inode without an ACL: the mode bits decide, no
  // database read either (only an inode with an ACL costs one).
  for (int i = 0; i < 5; ++i) {
    EXPECT_NFS(Status(c, Compound().PutFh(d.value).Access(ACCESS4_READ)),
               NFS4_OK);
  }
  EXPECT_EQ(Reads(), before) << "ACCESS of a cached inode read the database";

  // A change through this server is seen at once (invalidated by inode).
  Compound s;
  s.PutFh(d.value).SetMode(0750);
  EXPECT_NFS(Status(c, s), NFS4_OK);
  EXPECT_EQ(c->GetAttr(d.value, bits).value.mode, 0750u);
  // The parent's change attribute after a CREATE in it.
  auto root = c->RootFh().value;
  uint64_t ch1 = c->GetAttr(d.value, bits).value.change;
  ASSERT_EQ(c->Mkdir(d.value, "sub").status, NFS4_OK);
  EXPECT_NE(c->GetAttr(d.value, bits).value.change, ch1);
  // REMOVE forgets the removed inode: its handle is stale, not cached.
  auto sub = c->LookupPath("/d/sub");
  ASSERT_EQ(c->GetAttr(sub.value, bits).status, NFS4_OK);
  ASSERT_EQ(c->Remove(d.value, "sub").status, NFS4_OK);
  EXPECT_NFS(c->GetAttr(sub.value, bits).status, NFS4ERR_STALE);
  // RENAME moves a directory: LOOKUPP from it finds the new parent.
  ASSERT_EQ(c->Mkdir(d.value, "m").status, NFS4_OK);
  auto m = c->LookupPath("/d/m");
  ASSERT_EQ(c->GetAttr(m.value, bits).status, NFS4_OK);
  ASSERT_EQ(c->Rename(d.value, "m", root, "m2").status, NFS4_OK);
  Compound up;
  up.PutFh(m.value).Lookupp().GetFh();
  auto ur = c->Call(up);
  ASSERT_TRUE(ur.ok());
  ASSERT_NFS(ur->status(), NFS4_OK);
  EXPECT_EQ(*ur->LastFh(), root);
}

TEST_F(AttrCacheTest, AnotherDoorsChangeIsSeenAfterTheTtl) {
  StartCounting(AttrCacheOptions{.max_entries = 1024,
                                 .ttl = std::chrono::milliseconds(300)});
  Client* c = Connect();
  auto d = c->LookupPath("/d");
  ASSERT_EQ(c->GetAttr(d.value, Bits({FATTR4_MODE})).value.mode, 0777u);
  {
    // Another door on the same database.
    ns::NamespaceOptions no;
    no.durable = false;
    auto other = ns::Namespace::Open(db_, no);
    ASSERT_TRUE(other.ok());
    auto a = (*other)->Resolve(ns::Credentials::Root(), "/d");
    ns::SetAttrRequest r;
    r.mode = 0700;
    ASSERT_TRUE((*other)->SetAttr(ns::Credentials::Root(), a->ino, r).ok());
  }
  // Within the TTL the cached value may still answer; after it, never.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  uint32_t mode = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    mode = c->GetAttr(d.value, Bits({FATTR4_MODE})).value.mode;
    if (mode == 0700u) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(mode, 0700u);
}

// RFC 8881 §18.32.3: a FILE_SYNC4 WRITE puts the size and mtime on stable
// storage before its reply; the CLOSE after it has nothing left to write.
TEST_F(AttrCacheTest, CloseAfterFileSyncWriteCostsNoTransaction) {
  StartCounting(AttrCacheOptions{});
  Client* c = Connect();
  auto d = c->LookupPath("/d");
  ASSERT_EQ(d.status, NFS4_OK);
  auto f = c->OpenFile(d.value, "f", OPEN4_SHARE_ACCESS_BOTH);
  ASSERT_NFS(f.status, NFS4_OK);
  uint64_t before = g_backend_writes.load();
  ASSERT_NFS(c->WriteFile(f.value.fh, f.value.stateid, 0, "data", FILE_SYNC4)
                 .status,
             NFS4_OK);
  EXPECT_EQ(g_backend_writes.load(), before + 1)
      << "a FILE_SYNC4 WRITE writes size and mtime in one transaction";
  before = g_backend_writes.load();
  ASSERT_NFS(c->CloseFile(f.value.fh, f.value.stateid).status, NFS4_OK);
  EXPECT_EQ(g_backend_writes.load(), before)
      << "CLOSE wrote attributes a FILE_SYNC4 WRITE had already written";
  // An UNSTABLE4 write since: the CLOSE writes size and mtime back.
  auto g = c->OpenFile(d.value, "f", OPEN4_SHARE_ACCESS_BOTH, 0, false);
  ASSERT_NFS(g.status, NFS4_OK);
  before = g_backend_writes.load();
  ASSERT_NFS(c->WriteFile(g.value.fh, g.value.stateid, 4, "more").status,
             NFS4_OK);
  ASSERT_NFS(c->CloseFile(g.value.fh, g.value.stateid).status, NFS4_OK);
  // By the CLOSE, or by the flusher if it came first.
  EXPECT_GE(g_backend_writes.load(), before + 1);
  EXPECT_EQ(c->GetAttr(g.value.fh, Bits({FATTR4_SIZE})).value.size, 8u);
}

TEST_F(AttrCacheTest, BoundedByLru) {
  AttrCache cache(AttrCacheOptions{.max_entries = 32,
                                   .ttl = std::chrono::seconds(60)});
  for (ns::InodeId i = 1; i <= 1000; ++i) {
    ns::Attr a;
    a.ino = i;
    cache.Put(a, cache.Epoch());
  }
  EXPECT_LE(cache.stats().entries, 32u);
  EXPECT_GE(cache.stats().evictions, 1000u - 32u);
  // A value read before an invalidation of its inode is not stored after
  // it; invalidations of other inodes do not stop it.
  AttrCache fresh(AttrCacheOptions{});
  uint64_t e = fresh.Epoch();
  fresh.Invalidate(5001);
  ns::Attr a;
  a.ino = 5001;
  fresh.Put(a, e);
  EXPECT_EQ(fresh.stats().entries, 0u);
  e = fresh.Epoch();
  fresh.Invalidate(5000);
  fresh.Invalidate(5002);
  fresh.Put(a, e);
  EXPECT_EQ(fresh.stats().entries, 1u);
  // Clear() forgets every slot.
  e = fresh.Epoch();
  fresh.Clear();
  fresh.Put(a, e);
  EXPECT_EQ(fresh.stats().entries, 0u);
}

// A value read before a commit that finishes after the committer stored
// the row it wrote is older: it does not replace the newer entry. A
// commit's put after a change by another path (an invalidation since its
// epoch) gives up and says so, so its COMPOUND forgets the inode.
TEST_F(AttrCacheTest, OlderChangeNeverReplacesANewerEntry) {
  AttrCache cache(AttrCacheOptions{});
  ns::Attr old_row, new_row;
  old_row.ino = new_row.ino = 7001;
  old_row.size = 0;
  old_row.change = 3;
  new_row.size = 3901;
  new_row.change = 4;
  const uint64_t e = cache.Epoch();
  EXPECT_TRUE(cache.Put(new_row, e));
  EXPECT_TRUE(cache.Put(old_row, e));
  ASSERT_TRUE(cache.Peek(7001).has_value());
  EXPECT_EQ(cache.Peek(7001)->size, 3901u);
  EXPECT_EQ(cache.Peek(7001)->change, 4u);
  // Another generation (the inode number reused) always replaces.
  ns::Attr reborn = old_row;
  reborn.generation = 1;
  EXPECT_TRUE(cache.Put(reborn, e));
  EXPECT_EQ(cache.Peek(7001)->generation, 1u);
  // A racing SETATTR's invalidation after the epoch: the put gives up.
  const uint64_t before_commit = cache.Epoch();
  cache.Invalidate(7001);
  EXPECT_FALSE(cache.Put(new_row, before_commit));
  EXPECT_FALSE(cache.Peek(7001).has_value());
}

// What a commit returned of a directory it changed: stored, and the
// directory counts as invalidated for what was read before (READDIR pages,
// reads in flight); given up after another change since the commit began;
// never over a newer row.
TEST_F(AttrCacheTest, ReplaceStoresTheCommittedRowAndInvalidatesTheRest) {
  AttrCache cache(AttrCacheOptions{});
  ns::Attr dir;
  dir.ino = 7002;
  dir.type = ns::FileType::kDirectory;
  dir.change = 5;
  const uint64_t page_read = cache.Epoch();
  const uint64_t commit_began = cache.Epoch();
  EXPECT_TRUE(cache.Replace(dir, commit_began));
  ASSERT_TRUE(cache.Peek(7002).has_value());
  EXPECT_EQ(cache.Peek(7002)->change, 5u);
  const ns::InodeId inos[] = {7002};
  EXPECT_TRUE(cache.ChangedSince(inos, page_read));
  // A read that began before the commit does not store its older row.
  ns::Attr stale = dir;
  stale.change = 4;
  EXPECT_FALSE(cache.Put(stale, page_read));
  EXPECT_EQ(cache.Peek(7002)->change, 5u);
  // An older commit's row does not replace a newer one.
  EXPECT_TRUE(cache.Replace(stale, cache.Epoch()));
  EXPECT_EQ(cache.Peek(7002)->change, 5u);
  // Another change since this commit began: nothing stored.
  const uint64_t began = cache.Epoch();
  cache.Invalidate(7002);
  ns::Attr later = dir;
  later.change = 7;
  EXPECT_FALSE(cache.Replace(later, began));
  EXPECT_FALSE(cache.Peek(7002).has_value());
}

// The same epoch rule for names: a lookup (or a create) whose directory
// was forgotten after its epoch is not stored.
TEST(DirCacheUnitTest, PutAfterAForgetOfItsDirectoryIsIgnored) {
  DirCache cache(DirCacheOptions{});
  const DirCache::Child c{77, 0};
  uint64_t e = cache.Epoch();
  cache.InvalidateDir(10);
  cache.Put(10, "n", c, e);
  EXPECT_FALSE(cache.Get(10, "n"));
  cache.PutMany(10, {{"m", c}}, e);
  EXPECT_FALSE(cache.Get(10, "m"));
  e = cache.Epoch();
  cache.InvalidateDir(11);  // another directory: no matter
  cache.Put(10, "n", c, e);
  cache.PutMany(10, {{"m", c}, {"o", c}}, e);
  ASSERT_TRUE(cache.Get(10, "n"));
  EXPECT_EQ(cache.Get(10, "m")->ino, 77u);
  EXPECT_TRUE(cache.Get(10, "o"));
  e = cache.Epoch();
  cache.Clear();
  cache.Put(10, "n", c, e);
  EXPECT_FALSE(cache.Get(10, "n"));
}

// ------------------------------------------ directory cache (LOOKUP)

TEST_F(DirCacheTest, LookupHitsCostNoDatabaseRoundTrip) {
  Fh x = MakeFile(d_, "x");
  auto [st, fh] = Look(d_, "x");  // fills the caches
  ASSERT_NFS(st, NFS4_OK);
  EXPECT_EQ(fh, x);
  // The first hit reads the directory's attributes (search permission)
  // unless cached: a stat workload never asks for them.
  ASSERT_EQ(Look(d_, "x").second, x);
  ASSERT_NFS(c_->GetAttr(x, Bits({FATTR4_TYPE})).status, NFS4_OK);
  const uint64_t before = Reads();
  const uint64_t hits = server_->dir_cache().stats().hits;
  const auto bits = Bits({FATTR4_TYPE, FATTR4_MODE, FATTR4_SIZE,
                          FATTR4_OWNER, FATTR4_TIME_MODIFY});
  for (int i = 0; i < 20; ++i) {
    Compound cp;
    cp.PutFh(d_).Lookup("x").GetFh().GetAttr(bits);
    auto r = c_->Call(cp);
    ASSERT_TRUE(r.ok());
    ASSERT_NFS(r->status(), NFS4_OK);
    EXPECT_EQ(*r->LastFh(), x);
  }
  EXPECT_EQ(Reads(), before) << "LOOKUP of a cached name read the database";
  EXPECT_GE(server_->dir_cache().stats().hits, hits + 20);
  // A name never looked up, and a name that does not exist, still cost a
  // round trip each time (no negative entries).
  ASSERT_NFS(Look(d_, "nope").first, NFS4ERR_NOENT);
  uint64_t after_miss = Reads();
  ASSERT_NFS(Look(d_, "nope").first, NFS4ERR_NOENT);
  EXPECT_GT(Reads(), after_miss);
}

// A stale positive entry is never served after this server's own change.
TEST_F(DirCacheTest, RemoveRenameLinkThroughTheServerAreSeenAtOnce) {
  // REMOVE.
  MakeFile(d_, "gone");
  ASSERT_NFS(Look(d_, "gone").first, NFS4_OK);
  ASSERT_NFS(c_->Remove(d_, "gone").status, NFS4_OK);
  EXPECT_NFS(Look(d_, "gone").first, NFS4ERR_NOENT);
  // RENAME to another directory: the source name is gone, the target new.
  Fh y = MakeFile(d_, "y");
  ASSERT_NFS(Look(d_, "y").first, NFS4_OK);
  ASSERT_NFS(Look(root_, "y2").first, NFS4ERR_NOENT);
  ASSERT_NFS(c_->Rename(d_, "y", root_, "y2").status, NFS4_OK);
  EXPECT_NFS(Look(d_, "y").first, NFS4ERR_NOENT);
  auto [st_y2, fh_y2] = Look(root_, "y2");
  EXPECT_NFS(st_y2, NFS4_OK);
  EXPECT_EQ(fh_y2, y);
  // RENAME over a cached name: the name now means the renamed object.
  Fh a = MakeFile(d_, "a");
  MakeFile(d_, "b");  // an empty directory: a directory may replace it
  ASSERT_NFS(Look(d_, "a").first, NFS4_OK);
  auto [st_b, old_b] = Look(d_, "b");
  ASSERT_NFS(st_b, NFS4_OK);
  Compound ren;  // same directory: SAVEFH and current are both d
  ren.PutFh(d_).SaveFh().PutFh(d_).Rename("a", "b");
  ASSERT_NFS(Status(c_, ren), NFS4_OK);
  auto [st_b2, new_b] = Look(d_, "b");
  EXPECT_NFS(st_b2, NFS4_OK);
  EXPECT_EQ(new_b, a);
  EXPECT_NE(new_b, old_b);
  EXPECT_NFS(Look(d_, "a").first, NFS4ERR_NOENT);
  // LINK: a new name for a file.
  auto f = c_->OpenFile(d_, "f", OPEN4_SHARE_ACCESS_BOTH);
  ASSERT_NFS(f.status, NFS4_OK);
  ASSERT_NFS(c_->CloseFile(f.value.fh, f.value.stateid).status, NFS4_OK);
  ASSERT_NFS(Look(d_, "l").first, NFS4ERR_NOENT);
  Compound link;
  link.PutFh(f.value.fh).SaveFh().PutFh(d_).Link("l");
  ASSERT_NFS(Status(c_, link), NFS4_OK);
  auto [st_l, fh_l] = Look(d_, "l");
  EXPECT_NFS(st_l, NFS4_OK);
  EXPECT_EQ(fh_l, f.value.fh);
  // Removed and created again: the new object, not the cached old one.
  Fh z1 = MakeFile(d_, "z");
  ASSERT_EQ(Look(d_, "z").second, z1);
  ASSERT_NFS(c_->Remove(d_, "z").status, NFS4_OK);
  Fh z2 = MakeFile(d_, "z");
  EXPECT_NE(z1, z2);
  EXPECT_EQ(Look(d_, "z").second, z2);
  // Search permission is checked on a hit too.
  ASSERT_NFS(Look(d_, "z").first, NFS4_OK);
  Compound chmod;
  chmod.PutFh(d_).SetMode(0700);
  ASSERT_NFS(Status(c_, chmod), NFS4_OK);
  Client* other = Connect("127.0.0.1", Sys(1234, 1234));
  Compound cp;
  cp.PutFh(d_).Lookup("z");
  EXPECT_NFS(Status(other, cp), NFS4ERR_ACCESS);
}

// CREATE, OPEN(create) and READDIR with attributes fill the caches, so
// that `ls -l` or a stat after them costs no database round trip; the
// server's own REMOVE and RENAME still win over what they filled.
TEST_F(DirCacheTest, CreateOpenAndReaddirFillTheCaches) {
  const auto bits = Bits({FATTR4_TYPE, FATTR4_MODE, FATTR4_SIZE,
                          FATTR4_OWNER, FATTR4_TIME_MODIFY, FATTR4_CHANGE});
  Fh made = MakeFile(d_, "made");
  auto f = c_->OpenFile(d_, "opened", OPEN4_SHARE_ACCESS_BOTH);
  ASSERT_NFS(f.status, NFS4_OK);
  ASSERT_NFS(c_->CloseFile(f.value.fh, f.value.stateid).status, NFS4_OK);
  // Names another door made are known only to the database.
  {
    auto [other, dir] = OtherDoor();
    ASSERT_NE(other, nullptr);
    for (const char* n : {"r1", "r2", "r3"}) {
      ASSERT_TRUE(other->Create(ns::Credentials::Root(), dir, n, 0644).ok());
    }
  }
  // The directory's own attributes (search permission) once.
  ASSERT_NFS(c_->GetAttr(d_, Bits({FATTR4_TYPE})).status, NFS4_OK);
  uint64_t before = Reads();
  // CREATE: name and attributes.
  Compound cp;
  cp.PutFh(d_).Lookup("made").GetFh().GetAttr(bits);
  auto r = c_->Call(cp);
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  EXPECT_EQ(*r->LastFh(), made);
  // What the cache serves is what the database holds.
  auto cached = c_->GetAttr(made, bits);
  ASSERT_NFS(cached.status, NFS4_OK);
  EXPECT_EQ(Reads(), before) << "stat after CREATE read the database";
  server_->attr_cache().Clear();
  auto stored = c_->GetAttr(made, bits);
  ASSERT_NFS(stored.status, NFS4_OK);
  EXPECT_EQ(cached.value.type, stored.value.type);
  EXPECT_EQ(cached.value.mode, stored.value.mode);
  EXPECT_EQ(cached.value.size, stored.value.size);
  EXPECT_EQ(cached.value.owner, stored.value.owner);
  EXPECT_EQ(cached.value.change, stored.value.change);
  EXPECT_EQ(cached.value.mtime_sec, stored.value.mtime_sec);
  EXPECT_EQ(cached.value.mtime_nsec, stored.value.mtime_nsec);
  ASSERT_NFS(c_->GetAttr(d_, Bits({FATTR4_TYPE})).status, NFS4_OK);
  // OPEN(create): the name (its attributes went with the CLOSE).
  before = Reads();
  auto [st_o, fh_o] = Look(d_, "opened");
  ASSERT_NFS(st_o, NFS4_OK);
  EXPECT_EQ(fh_o, f.value.fh);
  EXPECT_EQ(Reads(), before) << "LOOKUP after OPEN(create) read the database";
  // r2 is unknown until a READDIR with attributes lists it.
  before = Reads();
  ASSERT_NFS(Look(d_, "r2").first, NFS4_OK);
  EXPECT_GT(Reads(), before);
  server_->dir_cache().Clear();
  server_->attr_cache().Clear();
  ASSERT_NFS(c_->GetAttr(d_, Bits({FATTR4_TYPE})).status, NFS4_OK);
  Compound rd;
  verifier4 zero{};
  rd.PutFh(d_).ReadDir(0, zero, 8192, 32768, bits);
  ASSERT_NFS(Status(c_, rd), NFS4_OK);
  before = Reads();
  for (const char* n : {"r1", "r3", "made", "opened"}) {
    Compound st;
    st.PutFh(d_).Lookup(n).GetAttr(bits);
    ASSERT_NFS(Status(c_, st), NFS4_OK) << n;
  }
  EXPECT_EQ(Reads(), before) << "stat after READDIR read the database";
  // This server's REMOVE and RENAME of filled names are seen at once.
  ASSERT_NFS(c_->Remove(d_, "r1").status, NFS4_OK);
  EXPECT_NFS(Look(d_, "r1").first, NFS4ERR_NOENT);
  ASSERT_NFS(c_->Rename(d_, "made", d_, "made2").status, NFS4_OK);
  EXPECT_NFS(Look(d_, "made").first, NFS4ERR_NOENT);
  EXPECT_EQ(Look(d_, "made2").second, made);
  ASSERT_NFS(c_->Remove(d_, "made2").status, NFS4_OK);
  EXPECT_NFS(Look(d_, "made2").first, NFS4ERR_NOENT);
  EXPECT_NFS(c_->GetAttr(made, bits).status, NFS4ERR_STALE);
}

}  // namespace
}  // namespace nfs41d::testing_ops
