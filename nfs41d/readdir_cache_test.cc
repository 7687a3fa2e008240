// Operating nfs41d through the real TCP server and nfs41client, backend
// round trips counted: READDIR replies from the cache (readdir_cache.h)
// and the COMPOUNDs served inline from the caches.

#include "nfs41d/ops_test_fixture.h"

namespace nfs41d::testing_ops {
namespace {

// ------------------------------------------- READDIR replies (readdir_cache.h)

// A whole directory by READDIRs of `maxcount` bytes: name -> attributes,
// in cookie order, and each entry's cookie.
struct Listing {
  std::vector<std::pair<std::string, nfs41client::Attrs>> entries;
  std::vector<uint64_t> cookies;
  int calls = 0;
};
Listing ListDir(Client* c, const Fh& dir, const std::vector<uint32_t>& bits,
                uint32_t maxcount, uint64_t cookie = 0,
                const char* start_verf = nullptr) {
  Listing out;
  verifier4 verf{};
  if (start_verf) std::memcpy(verf, start_verf, NFS4_VERIFIER_SIZE);
  for (int guard = 0; guard < 10000; ++guard) {
    Compound cp;
    cp.PutFh(dir).ReadDir(cookie, verf, maxcount, maxcount, bits);
    auto r = c->Call(cp);
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return out;
    EXPECT_NFS(r->status(), NFS4_OK);
    if (r->status() != NFS4_OK) return out;
    ++out.calls;
    const READDIR4resok& ok =
        r->op(2).nfs_resop4_u.opreaddir.READDIR4res_u.resok4;
    std::memcpy(verf, ok.cookieverf, NFS4_VERIFIER_SIZE);
    for (const entry4* e = ok.reply.entries; e; e = e->nextentry) {
      nfs41client::Attrs a;
      EXPECT_TRUE(nfs41client::DecodeAttrs(e->attrs, &a));
      out.entries.emplace_back(
          std::string(e->name.utf8string_val, e->name.utf8string_len), a);
      out.cookies.push_back(e->cookie);
      cookie = e->cookie;
    }
    if (ok.reply.eof) return out;
    EXPECT_NE(ok.reply.entries, nullptr) << "no entries and no eof";
    if (!ok.reply.entries) return out;
  }
  ADD_FAILURE() << "READDIR did not end";
  return out;
}

std::vector<std::string> NamesOf(const Listing& l) {
  std::vector<std::string> n;
  for (const auto& e : l.entries) n.push_back(e.first);
  return n;
}

const nfs41client::Attrs* Find(const Listing& l, const std::string& name) {
  for (const auto& e : l.entries) {
    if (e.first == name) return &e.second;
  }
  return nullptr;
}

TEST_F(DirCacheTest, ReaddirRepliesComeFromTheCacheUntilTheDirectoryChanges) {
  const auto bits = Bits({FATTR4_TYPE, FATTR4_CHANGE, FATTR4_SIZE,
                          FATTR4_FILEID, FATTR4_MODE, FATTR4_NUMLINKS,
                          FATTR4_OWNER, FATTR4_OWNER_GROUP,
                          FATTR4_TIME_MODIFY});
  for (int i = 0; i < 40; ++i) MakeFile(d_, "e" + std::to_string(i));
  // Small pages: many READDIRs, each its own cached reply.
  Listing first = ListDir(c_, d_, bits, 1024);
  ASSERT_EQ(first.entries.size(), 40u);
  ASSERT_GT(first.calls, 3);
  const uint64_t before = Reads();
  const uint64_t hits = server_->readdir_cache().stats().hits;
  Listing again = ListDir(c_, d_, bits, 1024);
  EXPECT_EQ(Reads(), before) << "a repeated READDIR read the database";
  EXPECT_EQ(server_->readdir_cache().stats().hits - hits,
            static_cast<uint64_t>(again.calls));
  EXPECT_EQ(NamesOf(again), NamesOf(first));
  EXPECT_EQ(again.cookies, first.cookies);
  for (size_t i = 0; i < first.entries.size(); ++i) {
    EXPECT_EQ(again.entries[i].second.fileid, first.entries[i].second.fileid);
    EXPECT_EQ(again.entries[i].second.change, first.entries[i].second.change);
    EXPECT_EQ(again.entries[i].second.mode, first.entries[i].second.mode);
    EXPECT_EQ(again.entries[i].second.owner, first.entries[i].second.owner);
  }

  // Cookies from any page stay valid: resuming after the 11th entry (not
  // where a cached page starts) gives the rest, with the verifier.
  verifier4 verf{};
  {
    Compound cp;
    cp.PutFh(d_).ReadDir(0, verf, 1024, 1024, bits);
    auto r = c_->Call(cp);
    ASSERT_TRUE(r.ok());
    std::memcpy(verf, r->op(2).nfs_resop4_u.opreaddir.READDIR4res_u.resok4
                          .cookieverf, NFS4_VERIFIER_SIZE);
  }
  Listing rest = ListDir(c_, d_, bits, 1024, first.cookies[10], verf);
  const std::vector<std::string> all = NamesOf(first);
  const std::vector<std::string> tail(all.begin() + 11, all.end());
  EXPECT_EQ(NamesOf(rest), tail);

  // CREATE: the new name is listed.
  MakeFile(d_, "new");
  Listing created = ListDir(c_, d_, bits, 1024);
  EXPECT_EQ(created.entries.size(), 41u);
  EXPECT_NE(Find(created, "new"), nullptr) << "a cached page hid a CREATE";
  // REMOVE: the name is gone.
  ASSERT_NFS(c_->Remove(d_, "e5").status, NFS4_OK);
  Listing removed = ListDir(c_, d_, bits, 1024);
  EXPECT_EQ(removed.entries.size(), 40u);
  EXPECT_EQ(Find(removed, "e5"), nullptr) << "a cached page showed a REMOVE'd name";
  // RENAME within the directory.
  ASSERT_NFS(c_->Rename(d_, "e8", d_, "z8").status, NFS4_OK);
  Listing renamed = ListDir(c_, d_, bits, 1024);
  EXPECT_EQ(Find(renamed, "e8"), nullptr);
  EXPECT_NE(Find(renamed, "z8"), nullptr);
  // SETATTR of an entry (not of the directory): its new mode is listed.
  auto [st7, e7] = Look(d_, "e7");
  ASSERT_NFS(st7, NFS4_OK);
  ASSERT_NE(Find(renamed, "e7"), nullptr);
  ASSERT_NE(Find(renamed, "e7")->mode, 0711u);
  Compound sa;
  sa.PutFh(e7).SetMode(0711);
  ASSERT_NFS(Status(c_, sa), NFS4_OK);
  Listing chmodded = ListDir(c_, d_, bits, 1024);
  ASSERT_NE(Find(chmodded, "e7"), nullptr);
  EXPECT_EQ(Find(chmodded, "e7")->mode, 0711u)
      << "a cached page showed an entry's attributes from before SETATTR";
}

TEST_F(DirCacheTest, ReaddirWithAnotherMaskIsNotServedFromThisOnesReply) {
  for (int i = 0; i < 10; ++i) MakeFile(d_, "m" + std::to_string(i));
  const auto full = Bits({FATTR4_TYPE, FATTR4_FILEID, FATTR4_MODE,
                          FATTR4_OWNER, FATTR4_SIZE});
  const auto light = Bits({FATTR4_TYPE, FATTR4_FILEID});
  Listing a = ListDir(c_, d_, full, 8192);
  Listing b = ListDir(c_, d_, full, 8192);  // cached
  Listing c = ListDir(c_, d_, light, 8192);
  ASSERT_EQ(a.entries.size(), 10u);
  ASSERT_EQ(c.entries.size(), 10u);
  EXPECT_EQ(NamesOf(b), NamesOf(a));
  const std::vector<uint32_t> want_full = {FATTR4_TYPE, FATTR4_SIZE,
                                           FATTR4_FILEID, FATTR4_MODE,
                                           FATTR4_OWNER};
  const std::vector<uint32_t> want_light = {FATTR4_TYPE, FATTR4_FILEID};
  for (const auto& [name, attrs] : b.entries) EXPECT_EQ(attrs.present, want_full) << name;
  for (const auto& [name, attrs] : c.entries) EXPECT_EQ(attrs.present, want_light) << name;
  // A smaller maxcount ends pages elsewhere: not served from the big one.
  Listing small = ListDir(c_, d_, full, 512);
  EXPECT_GT(small.calls, 1);
  EXPECT_EQ(NamesOf(small), NamesOf(a));
}

// REMOVE of a directory is one namespace write (RFC 8881 §18.25: REMOVE
// takes any type), and a directory with entries stays.
TEST_F(DirCacheTest, RemoveOfADirectoryIsOneWrite) {
  MakeFile(d_, "sub");  // an empty directory
  Fh full = MakeFile(d_, "full");
  MakeFile(full, "inner");
  uint64_t writes = g_backend_writes.load();
  ASSERT_NFS(c_->Remove(d_, "sub").status, NFS4_OK);
  EXPECT_EQ(g_backend_writes.load(), writes + 1);
  EXPECT_NFS(Look(d_, "sub").first, NFS4ERR_NOENT);
  EXPECT_NFS(c_->Remove(d_, "full").status, NFS4ERR_NOTEMPTY);
  EXPECT_NFS(Look(d_, "full").first, NFS4_OK);
  ASSERT_NFS(c_->Remove(full, "inner").status, NFS4_OK);
  ASSERT_NFS(c_->Remove(d_, "full").status, NFS4_OK);
  EXPECT_NFS(c_->GetAttr(full, Bits({FATTR4_TYPE})).status, NFS4ERR_STALE);
}

// The Linux client's open(O_CREAT|O_EXCL) is an EXCLUSIVE4_1 OPEN: the file
// and its verifier (§18.16.3) cost one namespace write together.
TEST_F(DirCacheTest, ExclusiveCreateIsOneWrite) {
  constexpr uint32_t kBoth = OPEN4_SHARE_ACCESS_BOTH;
  Compound c;
  c.PutFh(d_).Open("ex", kBoth, 0, "o", true, EXCLUSIVE4_1, 0600, 42).GetFh();
  uint64_t writes = g_backend_writes.load();
  auto first = c_->Call(c);
  ASSERT_TRUE(first.ok());
  ASSERT_NFS(first->status(), NFS4_OK);
  EXPECT_EQ(g_backend_writes.load(), writes + 1);
  // The retry (same verifier) finds it and writes nothing.
  writes = g_backend_writes.load();
  auto again = c_->Call(c);
  ASSERT_TRUE(again.ok());
  ASSERT_NFS(again->status(), NFS4_OK);
  EXPECT_EQ(*first->LastFh(), *again->LastFh());
  EXPECT_EQ(g_backend_writes.load(), writes);
  Compound other;
  other.PutFh(d_).Open("ex", kBoth, 0, "o", true, EXCLUSIVE4_1, 0600, 43);
  EXPECT_NFS(Status(c_, other), NFS4ERR_EXIST);
  EXPECT_EQ(c_->GetAttr(*first->LastFh(), Bits({FATTR4_MODE})).value.mode,
            0600u);
}

// mdtest-hard's create (OPEN(create), WRITE FILE_SYNC4, CLOSE) then
// `ls -l`'s stat: the WRITE stores the row its commit returned and the
// CLOSE writes nothing, so the stat reads no database and shows the new
// size and change; a SETATTR through another COMPOUND is still seen.
TEST_F(DirCacheTest, StatAfterAWrittenCreateReadsNoDatabase) {
  const auto bits = Bits({FATTR4_TYPE, FATTR4_MODE, FATTR4_SIZE,
                          FATTR4_OWNER, FATTR4_TIME_MODIFY, FATTR4_CHANGE});
  ASSERT_NFS(c_->GetAttr(d_, Bits({FATTR4_TYPE})).status, NFS4_OK);
  const std::string payload(3901, 'x');
  auto f = c_->OpenFile(d_, "w", OPEN4_SHARE_ACCESS_BOTH);
  ASSERT_NFS(f.status, NFS4_OK);
  const uint64_t opened_change =
      c_->GetAttr(f.value.fh, Bits({FATTR4_CHANGE})).value.change;
  ASSERT_NFS(
      c_->WriteFile(f.value.fh, f.value.stateid, 0, payload, FILE_SYNC4).status,
      NFS4_OK);
  ASSERT_NFS(c_->CloseFile(f.value.fh, f.value.stateid).status, NFS4_OK);
  uint64_t before = Reads();
  Compound cp;
  cp.PutFh(d_).Lookup("w").GetAttr(bits);
  ASSERT_NFS(Status(c_, cp), NFS4_OK);
  auto cached = c_->GetAttr(f.value.fh, bits);
  ASSERT_NFS(cached.status, NFS4_OK);
  EXPECT_EQ(Reads(), before) << "stat after OPEN+WRITE+CLOSE read the database";
  EXPECT_EQ(cached.value.size, payload.size());
  EXPECT_NE(cached.value.change, opened_change);
  // What was cached is what the database holds.
  server_->attr_cache().Clear();
  auto stored = c_->GetAttr(f.value.fh, bits);
  ASSERT_NFS(stored.status, NFS4_OK);
  EXPECT_EQ(cached.value.size, stored.value.size);
  EXPECT_EQ(cached.value.change, stored.value.change);
  EXPECT_EQ(cached.value.mtime_sec, stored.value.mtime_sec);
  EXPECT_EQ(cached.value.mtime_nsec, stored.value.mtime_nsec);
  // A SETATTR of the size by another COMPOUND (anonymous stateid, no open)
  // is seen at once: no cached size survives it.
  ASSERT_EQ(c_->GetAttr(f.value.fh, bits).value.size, payload.size());
  Compound trunc;
  trunc.PutFh(f.value.fh).SetSize(stateid4{}, 10);
  ASSERT_NFS(Status(c_, trunc), NFS4_OK);
  EXPECT_EQ(c_->GetAttr(f.value.fh, bits).value.size, 10u);
  // Past the inline bound, UNSTABLE4: the CLOSE (or the flusher before
  // it) writes the size back and stores the row it committed.
  auto g = c_->OpenFile(d_, "w", OPEN4_SHARE_ACCESS_BOTH, 0, false);
  ASSERT_NFS(g.status, NFS4_OK);
  const std::string big(8000, 'y');
  ASSERT_NFS(c_->WriteFile(g.value.fh, g.value.stateid, 0, big).status,
             NFS4_OK);
  ASSERT_NFS(c_->CloseFile(g.value.fh, g.value.stateid).status, NFS4_OK);
  before = Reads();
  EXPECT_EQ(c_->GetAttr(g.value.fh, bits).value.size, big.size());
  EXPECT_EQ(Reads(), before) << "GETATTR after a written-back CLOSE read";
}

// OPEN(create) of a name this server does not know is the create alone
// (no lookup before it, and change_info4 from what the commit returned of
// the directory, which the cache then serves); an existing name it does
// not know (made by another door) is still opened, or NFS4ERR_EXIST for
// GUARDED4.
TEST_F(DirCacheTest, OpenCreateOfANewNameIsTheCreateAlone) {
  constexpr uint32_t kBoth = OPEN4_SHARE_ACCESS_BOTH;
  const auto change = Bits({FATTR4_CHANGE});
  const uint64_t change_before = c_->GetAttr(d_, change).value.change;
  uint64_t reads = Reads(), writes = g_backend_writes.load();
  auto f = c_->OpenFile(d_, "new", kBoth);
  ASSERT_NFS(f.status, NFS4_OK);
  EXPECT_EQ(g_backend_writes.load(), writes + 1);
  EXPECT_EQ(Reads(), reads) << "OPEN(create) read the database";
  const uint64_t change_after = c_->GetAttr(d_, change).value.change;
  EXPECT_GT(change_after, change_before);
  EXPECT_EQ(Reads(), reads) << "GETATTR of the directory after it read";
  ASSERT_NFS(c_->CloseFile(f.value.fh, f.value.stateid).status, NFS4_OK);
  {
    auto [other, dir] = OtherDoor();
    ASSERT_NE(other, nullptr);
    ASSERT_TRUE(other->Create(ns::Credentials::Root(), dir, "theirs", 0600).ok());
  }
  Compound guarded;
  guarded.PutFh(d_).Open("theirs", kBoth, 0, "o", true, GUARDED4);
  EXPECT_NFS(Status(c_, guarded), NFS4ERR_EXIST);
  server_->dir_cache().Clear();
  Compound unchecked;
  unchecked.PutFh(d_).Open("theirs", kBoth, 0, "o", true, UNCHECKED4).GetFh();
  auto r = c_->Call(unchecked);
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  auto [st_t, fh_t] = Look(d_, "theirs");
  ASSERT_NFS(st_t, NFS4_OK);
  EXPECT_EQ(*r->LastFh(), fh_t);
  EXPECT_EQ(c_->GetAttr(fh_t, Bits({FATTR4_MODE})).value.mode, 0600u)
      << "an existing file was created again";
  // Another user without write permission on the directory still opens
  // an existing file it may read, and cannot create a new one.
  Compound chmod;
  chmod.PutFh(d_).SetMode(0755);
  ASSERT_NFS(Status(c_, chmod), NFS4_OK);
  Compound mode;
  mode.PutFh(fh_t).SetMode(0644);
  ASSERT_NFS(Status(c_, mode), NFS4_OK);
  server_->dir_cache().Clear();
  Client* other = Connect("127.0.0.1", Sys(1234, 1234));
  Compound ro;
  ro.PutFh(d_).Open("theirs", OPEN4_SHARE_ACCESS_READ, 0, "u", true);
  EXPECT_NFS(Status(other, ro), NFS4_OK);
  Compound denied;
  denied.PutFh(d_).Open("nope", OPEN4_SHARE_ACCESS_READ, 0, "u", true);
  EXPECT_NFS(Status(other, denied), NFS4ERR_ACCESS);
}

// REMOVE and CREATE(NF4DIR) answer change_info4 from the directory row
// their commit returned and leave it in the attribute cache: no read for
// the answer, none for a GETATTR of the directory after, and the GETATTR
// shows the change.
TEST_F(DirCacheTest, RemoveAndMkdirTakeTheDirectoryFromTheirCommit) {
  MakeFile(d_, "gone");
  const auto bits = Bits({FATTR4_CHANGE, FATTR4_NUMLINKS});
  nfs41client::Attrs before = c_->GetAttr(d_, bits).value;
  const uint64_t reads = Reads();
  ASSERT_NFS(c_->Remove(d_, "gone").status, NFS4_OK);
  EXPECT_EQ(Reads(), reads) << "REMOVE read the database";
  nfs41client::Attrs after = c_->GetAttr(d_, bits).value;
  EXPECT_GT(after.change, before.change);
  ASSERT_NFS(c_->Mkdir(d_, "sub").status, NFS4_OK);
  EXPECT_EQ(Reads(), reads) << "CREATE(NF4DIR) read the database";
  nfs41client::Attrs made = c_->GetAttr(d_, bits).value;
  EXPECT_GT(made.change, after.change);
  EXPECT_EQ(made.numlinks, after.numlinks + 1);
  EXPECT_EQ(Reads(), reads) << "GETATTR of the directory read";
}

TEST_F(DirCacheShortTtlTest, AnotherDoorsCreateIsListedAfterTheTtl) {
  for (int i = 0; i < 5; ++i) MakeFile(d_, "t" + std::to_string(i));
  const auto bits = Bits({FATTR4_TYPE, FATTR4_FILEID, FATTR4_MODE});
  ASSERT_EQ(ListDir(c_, d_, bits, 8192).entries.size(), 5u);
  {
    auto [other, dir] = OtherDoor();
    ASSERT_NE(other, nullptr);
    ASSERT_TRUE(other->Create(ns::Credentials::Root(), dir, "theirs", 0644).ok());
  }
  // Within the TTL the cached reply may still be served; after it, never.
  std::this_thread::sleep_for(Ttl() + std::chrono::milliseconds(50));
  Listing after = ListDir(c_, d_, bits, 8192);
  EXPECT_EQ(after.entries.size(), 6u);
  EXPECT_NE(Find(after, "theirs"), nullptr);
}

TEST_F(DirCacheShortTtlTest, AnotherDoorsChangeIsSeenAfterTheTtl) {
  Fh w = MakeFile(d_, "w");
  ASSERT_EQ(Look(d_, "w").second, w);
  {
    auto [other, dir] = OtherDoor();
    ASSERT_NE(other, nullptr);
    ASSERT_TRUE(
        other->Rename(ns::Credentials::Root(), dir, "w", dir, "w-moved").ok());
  }
  nfsstat4 st = NFS4_OK;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    st = Look(d_, "w").first;
    if (st == NFS4ERR_NOENT) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NFS(st, NFS4ERR_NOENT);
}

// ------------------------------------------------------- inline COMPOUNDs

TEST_F(DirCacheTest, CachedCompoundsAreServedInlineWithTheSameSlotRules) {
  Metrics& m = server_->metrics();
  // SEQUENCE alone, on the event-loop thread.
  uint64_t inl = m.inline_compounds();
  auto seq = c_->CallOnSlot(Compound(), 2, 1, false);
  ASSERT_TRUE(seq.ok());
  EXPECT_NFS(seq->status(), NFS4_OK);
  ASSERT_EQ(seq->size(), 1u);
  EXPECT_EQ(seq->op(0).nfs_resop4_u.opsequence.SEQUENCE4res_u.sr_resok4
                .sr_sequenceid,
            1u);
  EXPECT_EQ(m.inline_compounds(), inl + 1);
  // Its retry: the cached reply; a misordered or old seqid: the errors.
  auto again = c_->CallOnSlot(Compound(), 2, 1, false);
  ASSERT_TRUE(again.ok());
  EXPECT_NFS(again->status(), NFS4_OK);
  EXPECT_NFS(c_->CallOnSlot(Compound(), 2, 5, false)->status(),
             NFS4ERR_SEQ_MISORDERED);
  EXPECT_NFS(c_->CallOnSlot(Compound(), 2, 0, false)->status(),
             NFS4ERR_SEQ_MISORDERED);
  Compound ga;
  ga.PutFh(d_).GetAttr(Bits({FATTR4_MODE}));
  // Another request with the retried seqid: a false retry (§2.10.6.1.3.1).
  EXPECT_NFS(c_->CallOnSlot(ga, 2, 1, false)->status(),
             NFS4ERR_SEQ_FALSE_RETRY);
  EXPECT_EQ(m.inline_compounds(), inl + 5);
  // PUTFH + GETATTR of a cached inode: inline, no database read.
  ASSERT_NFS(Status(c_, ga), NFS4_OK);  // cached now
  uint64_t reads = Reads();
  inl = m.inline_compounds();
  auto r = c_->CallOnSlot(ga, 2, 2, false);
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4_OK);
  EXPECT_EQ(m.inline_compounds(), inl + 1);
  EXPECT_EQ(Reads(), reads);
  // An op that needs the database sends the whole COMPOUND to a worker,
  // which continues the slot where the inline path left it.
  Compound mk;
  mk.PutFh(d_).Create(NF4DIR, "k", 0755);
  inl = m.inline_compounds();
  EXPECT_NFS(c_->CallOnSlot(mk, 2, 3, true)->status(), NFS4_OK);
  EXPECT_EQ(m.inline_compounds(), inl);
  // Its retry is answered from the slot (inline: SEQUENCE only needs the
  // slot cache), not a second CREATE.
  EXPECT_NFS(c_->CallOnSlot(mk, 2, 3, true)->status(), NFS4_OK);
  EXPECT_NFS(c_->CallOnSlot(mk, 2, 4, true)->status(), NFS4ERR_EXIST);
}

TEST_F(DirCacheTest, RetryOfARequestStillOnAWorkerGetsDelay) {
  // A slow database: the CREATE occupies slot 6 on a worker for a while.
  Compound mk;
  mk.PutFh(d_).Create(NF4DIR, "slow", 0755);
  g_backend_write_delay_ms = 600;
  std::thread slow([&] {
    auto r = c_->CallOnSlot(mk, 6, 1, true);
    EXPECT_TRUE(r.ok());
    if (r.ok()) {
      EXPECT_NFS(r->status(), NFS4_OK);
    }
  });
  // Meanwhile, on the event-loop thread, a retry of that slot and seqid.
  nfsstat4 seen = NFS4_OK;
  for (int i = 0; i < 50 && seen != NFS4ERR_DELAY; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto r = c_->CallOnSlot(Compound(), 6, 1, false);
    ASSERT_TRUE(r.ok());
    seen = r->status();
  }
  slow.join();
  g_backend_write_delay_ms = 0;
  EXPECT_NFS(seen, NFS4ERR_DELAY);
  // Once done, the retry gets the worker's cached reply.
  auto replay = c_->CallOnSlot(mk, 6, 1, true);
  ASSERT_TRUE(replay.ok());
  EXPECT_NFS(replay->status(), NFS4_OK);
}

TEST_F(DirCacheTest, InlineAndWorkerCompoundsInterleaveOnOneConnection) {
  // Four threads on one client (one connection): SEQUENCE alone and cached
  // GETATTRs (inline) between CREATEs (workers). Every reply is the right
  // one for its request.
  Metrics& m = server_->metrics();
  const uint64_t inl = m.inline_compounds();
  ASSERT_NFS(Status(c_, Compound().PutFh(d_).GetAttr(Bits({FATTR4_TYPE}))),
             NFS4_OK);
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        if (i % 5 == 0) {
          auto f = c_->Create(d_, NF4DIR, "t" + std::to_string(t) + "-" +
                                              std::to_string(i), 0755);
          if (f.status != NFS4_OK) ++bad;
        } else if (i % 2 == 0) {
          auto a = c_->GetAttr(d_, Bits({FATTR4_TYPE}));
          if (a.status != NFS4_OK || a.value.type != NF4DIR) ++bad;
        } else {
          auto r = c_->Call(Compound());
          if (!r.ok() || r->status() != NFS4_OK || r->size() != 1) ++bad;
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GE(m.inline_compounds(), inl + 40);
  auto names = c_->ReadDirNames(d_);
  ASSERT_NFS(names.status, NFS4_OK);
  EXPECT_EQ(names.value.size(), 20u);
}

TEST_F(DirCacheTest, InlineCompoundsKeepNothingFromTheLastOne) {
  // The inline path reuses buffers (the reply, the slot's cached reply) and
  // carries a handle verified in InlineCandidate into PUTFH: none of it may
  // reach the next COMPOUND on the connection.
  Metrics& m = server_->metrics();
  Compound ga;
  ga.PutFh(d_).GetAttr(Bits({FATTR4_TYPE}));
  ASSERT_NFS(Status(c_, ga), NFS4_OK);  // cached now
  uint64_t inl = m.inline_compounds();
  auto ok = c_->Call(ga);
  ASSERT_TRUE(ok.ok());
  EXPECT_NFS(ok->status(), NFS4_OK);
  EXPECT_EQ(ok->size(), 3u);
  EXPECT_EQ(m.inline_compounds(), inl + 1);
  // The next COMPOUND starts without a current filehandle.
  auto none = c_->Call(Compound().GetAttr(Bits({FATTR4_TYPE})));
  ASSERT_TRUE(none.ok());
  EXPECT_NFS(none->status(), NFS4ERR_NOFILEHANDLE);
  // A handle that differs from the one just verified only in its MAC is
  // refused, alone and after the good one in the same COMPOUND.
  Fh forged = d_;
  forged.back() ^= 1;
  auto bad = c_->Call(Compound().PutFh(forged).GetAttr(Bits({FATTR4_TYPE})));
  ASSERT_TRUE(bad.ok());
  EXPECT_NFS(bad->status(), NFS4ERR_BADHANDLE);
  auto both = c_->Call(Compound()
                           .PutFh(d_)
                           .GetAttr(Bits({FATTR4_TYPE}))
                           .PutFh(forged)
                           .GetAttr(Bits({FATTR4_TYPE})));
  ASSERT_TRUE(both.ok());
  EXPECT_NFS(both->status(), NFS4ERR_BADHANDLE);
  EXPECT_EQ(both->size(), 4u);  // SEQUENCE, PUTFH, GETATTR, PUTFH
  // Malformed requests between good ones: a SEQUENCE of an unknown session
  // (answered inline), one whose arguments are cut short (a worker's
  // BADXDR), one whose op count overruns the bytes (GARBAGE_ARGS).
  auto word = [](std::vector<uint8_t>* b, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b->push_back(static_cast<uint8_t>(v >> s));
  };
  std::vector<uint8_t> stranger;
  for (uint32_t v : {0u, 1u, 1u, uint32_t{OP_SEQUENCE}}) word(&stranger, v);
  stranger.insert(stranger.end(), NFS4_SESSIONID_SIZE, 0xee);
  for (uint32_t v : {1u, 0u, 0u, 0u}) word(&stranger, v);
  inl = m.inline_compounds();
  auto r1 = c_->CallRaw(stranger);
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  EXPECT_NFS(r1->status(), NFS4ERR_BADSESSION);
  EXPECT_EQ(r1->size(), 1u);
  EXPECT_EQ(m.inline_compounds(), inl + 1);
  std::vector<uint8_t> cut(stranger.begin(), stranger.begin() + 16 + 8);
  auto r2 = c_->CallRaw(cut);
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_NFS(r2->status(), NFS4ERR_BADXDR);
  std::vector<uint8_t> overrun;
  for (uint32_t v : {0u, 1u, 3u, uint32_t{OP_SEQUENCE}}) word(&overrun, v);
  EXPECT_TRUE(c_->CallRaw(overrun).status().IsGarbageArgs());
  // And the next COMPOUNDs are whole and right.
  for (int i = 0; i < 3; ++i) {
    auto again = c_->Call(ga);
    ASSERT_TRUE(again.ok());
    EXPECT_NFS(again->status(), NFS4_OK);
    EXPECT_EQ(again->size(), 3u);
  }
  auto a = c_->GetAttr(d_, Bits({FATTR4_TYPE}));
  ASSERT_NFS(a.status, NFS4_OK);
  EXPECT_EQ(a.value.type, NF4DIR);
  auto seq = c_->Call(Compound());
  ASSERT_TRUE(seq.ok());
  EXPECT_NFS(seq->status(), NFS4_OK);
  EXPECT_EQ(seq->size(), 1u);
}

}  // namespace
}  // namespace nfs41d::testing_ops
