// Protocol tests of the data path through the real TCP server: OPEN,
// CLOSE, OPEN_DOWNGRADE, READ, WRITE, COMMIT, stateids, share
// reservations, TEST_STATEID/FREE_STATEID, LOCK/LOCKT/LOCKU.

#include "nfs41d/data_test_fixture.h"

namespace nfs41d {
namespace {

using namespace testing_data;  // NOLINT: the fixture and its helpers

// ------------------------------------------------------------ READ/WRITE

TEST_F(DataTest, OpenWriteReadCommitClose) {
  Client::Opened f = Open("f", kBoth);
  EXPECT_TRUE(f.rflags & OPEN4_RESULT_LOCKTYPE_POSIX);
  EXPECT_EQ(f.stateid.seqid, 1u);
  auto w = client_->WriteFile(f.fh, f.stateid, 0, "hello world");
  ASSERT_NFS(w.status, NFS4_OK);
  EXPECT_EQ(w.value.count, 11u);
  EXPECT_EQ(w.value.committed, UNSTABLE4);
  auto r = client_->ReadFile(f.fh, f.stateid, 6, 100);
  ASSERT_NFS(r.status, NFS4_OK);
  EXPECT_EQ(r.value.data, "world");
  EXPECT_TRUE(r.value.eof);
  r = client_->ReadFile(f.fh, f.stateid, 0, 5);
  EXPECT_EQ(r.value.data, "hello");
  EXPECT_FALSE(r.value.eof);
  r = client_->ReadFile(f.fh, f.stateid, 100, 5);
  EXPECT_EQ(r.value.data, "");
  EXPECT_TRUE(r.value.eof);
  auto v = client_->CommitFile(f.fh);
  ASSERT_NFS(v.status, NFS4_OK);
  EXPECT_EQ(v.value, w.value.verf);
  auto closed = client_->CloseFile(f.fh, f.stateid);
  ASSERT_NFS(closed.status, NFS4_OK);
  // §18.2.4: the special invalid stateid.
  EXPECT_EQ(closed.value.seqid, NFS4_UINT32_MAX);
  EXPECT_EQ(std::memcmp(closed.value.other, stateid4{}.other, 12), 0);
  // The stateid is gone; the data stays.
  EXPECT_NFS(client_->ReadFile(f.fh, f.stateid, 0, 5).status,
             NFS4ERR_BAD_STATEID);
  EXPECT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Attrs(f.fh).size, 11u);
  auto again = Open("f", kRead);
  EXPECT_EQ(client_->ReadFile(again.fh, again.stateid, 0, 100).value.data,
            "hello world");
}

TEST_F(DataTest, AttributesRightAfterEachWrite) {
  Client::Opened f = Open("f", kWrite);
  nfs41client::Attrs a0 = Attrs(f.fh);
  EXPECT_EQ(a0.size, 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 0, "abc").status, NFS4_OK);
  nfs41client::Attrs a1 = Attrs(f.fh);
  EXPECT_EQ(a1.size, 3u);
  EXPECT_NE(a1.change, a0.change);
  EXPECT_TRUE(a1.mtime_sec > a0.mtime_sec ||
              (a1.mtime_sec == a0.mtime_sec && a1.mtime_nsec > a0.mtime_nsec));
  // WRITE and GETATTR in one COMPOUND, as the Linux client sends them.
  Compound c;
  c.PutFh(f.fh).Write(f.stateid, 3, "defg").GetAttr(
      Bits({FATTR4_CHANGE, FATTR4_SIZE}));
  auto r = client_->Call(c);
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  nfs41client::Attrs a2;
  ASSERT_TRUE(nfs41client::DecodeAttrs(
      r->op(3).nfs_resop4_u.opgetattr.GETATTR4res_u.resok4.obj_attributes,
      &a2));
  EXPECT_EQ(a2.size, 7u);
  EXPECT_NE(a2.change, a1.change);
  // A write inside the file changes change but not size.
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 0, "X").status, NFS4_OK);
  nfs41client::Attrs a3 = Attrs(f.fh);
  EXPECT_EQ(a3.size, 7u);
  EXPECT_NE(a3.change, a2.change);
  // The flusher writes size back; the values stay what the client saw.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  nfs41client::Attrs a4 = Attrs(f.fh);
  EXPECT_EQ(a4.size, 7u);
  EXPECT_GT(a4.change, a3.change);  // a write-back never repeats a value
  ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
  nfs41client::Attrs a5 = Attrs(f.fh);
  EXPECT_EQ(a5.size, 7u);
  // No write since the flusher's write-back: the CLOSE writes nothing and
  // the contents, so the change attribute, are what a4 showed.
  EXPECT_EQ(a5.change, a4.change);
  // The database has it.
  auto db = server_->ns().Resolve(ns::Credentials::Root(), "/f");
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(db->size, 7u);
}

// tar x, cp -p, touch -d: an explicit mtime set while the file is open
// (after writes) must survive the write-back of size at CLOSE.
TEST_F(DataTest, ExplicitMtimeWhileOpenSurvivesClose) {
  Client::Opened f = Open("m", kWrite);
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 0, "12345").status, NFS4_OK);
  ASSERT_NFS(Run(Compound().PutFh(f.fh).SetMtime(1000)), NFS4_OK);
  nfs41client::Attrs a = Attrs(f.fh);
  EXPECT_EQ(a.mtime_sec, 1000);
  EXPECT_EQ(a.size, 5u);
  ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
  a = Attrs(f.fh);
  EXPECT_EQ(a.mtime_sec, 1000);
  EXPECT_EQ(a.size, 5u);
  // A write after the SETATTR moves mtime on again.
  Client::Opened g = Open("m", kWrite);
  ASSERT_NFS(client_->WriteFile(g.fh, g.stateid, 5, "6").status, NFS4_OK);
  EXPECT_GT(Attrs(g.fh).mtime_sec, 1000);
}

// UNSTABLE4 writes do not cost a database transaction each: the size is in
// memory (and in GETATTR) until COMMIT.
TEST_F(DataTest, UnstableWritesReachTheDatabaseAtCommit) {
  client_.reset();
  server_.reset();
  flush_interval_ = std::chrono::hours(1);
  StartServer();
  client_ = Connect();
  ASSERT_EQ(client_->EstablishSession(), NFS4_OK);
  Client::Opened f = Open("f", kWrite);
  for (int i = 0; i < 20; ++i) {
    ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, i * 4096,
                                  std::string(4096, 'a' + i))
                   .status,
               NFS4_OK);
  }
  EXPECT_EQ(Attrs(f.fh).size, 20u * 4096);
  auto db = server_->ns().Resolve(ns::Credentials::Root(), "/f");
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(db->size, 0u);  // not yet written back
  ASSERT_NFS(client_->CommitFile(f.fh).status, NFS4_OK);
  db = server_->ns().Resolve(ns::Credentials::Root(), "/f");
  EXPECT_EQ(db->size, 20u * 4096);
  // A clean stop writes back what is still dirty.
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 20 * 4096, "tail").status,
             NFS4_OK);
  server_->Stop();
  db = server_->ns().Resolve(ns::Credentials::Root(), "/f");
  EXPECT_EQ(db->size, 20u * 4096 + 4);
}

TEST_F(DataTest, StableWritesAndVerifier) {
  Client::Opened f = Open("f", kWrite);
  auto w1 = client_->WriteFile(f.fh, f.stateid, 0, "a", FILE_SYNC4);
  ASSERT_NFS(w1.status, NFS4_OK);
  EXPECT_EQ(w1.value.committed, FILE_SYNC4);
  auto w2 = client_->WriteFile(f.fh, f.stateid, 1, "b", DATA_SYNC4);
  EXPECT_EQ(w2.value.committed, DATA_SYNC4);
  EXPECT_EQ(w1.value.verf, w2.value.verf);
  // A stable write puts the size in the database at once.
  auto ino = server_->ns().Resolve(ns::Credentials::Root(), "/f");
  ASSERT_TRUE(ino.ok());
  EXPECT_EQ(ino->size, 2u);
}

TEST_F(DataTest, WriteVerifierChangesAcrossRestart) {
  Client::Opened f = Open("f", kWrite);
  auto w1 = client_->WriteFile(f.fh, f.stateid, 0, "persist");
  ASSERT_NFS(w1.status, NFS4_OK);
  ASSERT_NFS(client_->CommitFile(f.fh).status, NFS4_OK);
  client_.reset();
  server_.reset();
  StartServer();
  client_ = Connect();
  ASSERT_EQ(client_->EstablishSession(), NFS4_OK);
  // The old stateid is from an earlier instance.
  EXPECT_NFS(client_->ReadFile(f.fh, f.stateid, 0, 10).status,
             NFS4ERR_STALE_STATEID);
  // Data and size survived; the verifier did not.
  auto r = client_->ReadFile(f.fh, Anonymous(), 0, 100);
  ASSERT_NFS(r.status, NFS4_OK);
  EXPECT_EQ(r.value.data, "persist");
  Client::Opened g = Open("f", kWrite);
  auto w2 = client_->WriteFile(g.fh, g.stateid, 0, "P");
  ASSERT_NFS(w2.status, NFS4_OK);
  EXPECT_NE(w1.value.verf, w2.value.verf);
}

// The CLOSE after a FILE_SYNC4 WRITE writes nothing (its size and mtime
// are in the database since the WRITE's reply, §18.32.3): both survive a
// restart.
TEST_F(DataTest, FileSyncWriteAndCloseSurviveRestart) {
  Client::Opened f = Open("f", kWrite);
  ASSERT_NFS(
      client_->WriteFile(f.fh, f.stateid, 0, std::string(3901, 'x'), FILE_SYNC4)
          .status,
      NFS4_OK);
  ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
  nfs41client::Attrs before = Attrs(f.fh);
  EXPECT_EQ(before.size, 3901u);
  client_.reset();
  server_.reset();
  StartServer();
  client_ = Connect();
  ASSERT_EQ(client_->EstablishSession(), NFS4_OK);
  nfs41client::Attrs after = Attrs(f.fh);
  EXPECT_EQ(after.size, 3901u);
  EXPECT_EQ(after.mtime_sec, before.mtime_sec);
  EXPECT_EQ(after.mtime_nsec, before.mtime_nsec);
  EXPECT_EQ(after.change, before.change);
  auto r = client_->ReadFile(f.fh, Anonymous(), 3899, 10);
  EXPECT_EQ(r.value.data, "xx");
}

// RFC 8881 §5.8.1.4: the change attribute differs whenever the contents
// did, also when a FILE_SYNC4 WRITE's write-back made the CLOSE free and
// the file is written again after a new OPEN.
TEST_F(DataTest, ChangeNeverRepeatsAcrossFileSyncReopen) {
  std::set<uint64_t> seen;
  uint64_t last = 0;
  auto note = [&](const Fh& fh, bool new_contents) {
    uint64_t c = Attrs(fh).change;
    if (new_contents) {
      EXPECT_TRUE(seen.insert(c).second) << "change " << c << " repeated";
    } else {
      EXPECT_EQ(c, last) << "change moved without a change";
    }
    last = c;
  };
  Client::Opened f = Open("f", kWrite);
  note(f.fh, true);
  // FILE_SYNC4 then CLOSE, then an UNSTABLE4 write after a new OPEN: the
  // case where a count of writes restarting at the OPEN would repeat the
  // value the FILE_SYNC4 WRITE showed.
  const stable_how4 hows[] = {FILE_SYNC4, UNSTABLE4, FILE_SYNC4, FILE_SYNC4,
                              UNSTABLE4, UNSTABLE4};
  for (size_t i = 0; i < std::size(hows); ++i) {
    ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 0, std::to_string(i),
                                  hows[i]).status,
               NFS4_OK);
    note(f.fh, true);
    ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
    // Written back by the CLOSE (a new value) or before it (the same).
    uint64_t c = Attrs(f.fh).change;
    if (c != last) {
      EXPECT_TRUE(seen.insert(c).second) << c << " repeated";
    }
    last = c;
    auto again = client_->OpenFile(Root(), "f", kWrite, 0, false);
    ASSERT_NFS(again.status, NFS4_OK);
    f = again.value;
    note(f.fh, false);
  }
}

TEST_F(DataTest, SparseWriteAtOneGiB) {
  Client::Opened f = Open("sparse", kBoth);
  const uint64_t off = 1ull << 30;
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, off, std::string(4096, 'z'))
                 .status,
             NFS4_OK);
  nfs41client::Attrs a = Attrs(f.fh);
  EXPECT_EQ(a.size, off + 4096);
  EXPECT_LT(a.space_used, 1u << 20);
  EXPECT_GE(a.space_used, 4096u);
  auto r = client_->ReadFile(f.fh, f.stateid, 12345, 8);
  EXPECT_EQ(r.value.data, std::string(8, '\0'));
  r = client_->ReadFile(f.fh, f.stateid, off + 4094, 10);
  EXPECT_EQ(r.value.data, "zz");
  EXPECT_TRUE(r.value.eof);
}

TEST_F(DataTest, TruncateThroughSetattr) {
  Client::Opened f = Open("t", kBoth);
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 0, std::string(100, 'x'))
                 .status,
             NFS4_OK);
  EXPECT_NFS(Run(Compound().PutFh(f.fh).SetSize(f.stateid, 10)), NFS4_OK);
  EXPECT_EQ(Attrs(f.fh).size, 10u);
  EXPECT_EQ(client_->ReadFile(f.fh, f.stateid, 0, 1000).value.data,
            std::string(10, 'x'));
  // Growing: zeros after the old end.
  EXPECT_NFS(Run(Compound().PutFh(f.fh).SetSize(Anonymous(), 20)), NFS4_OK);
  EXPECT_EQ(client_->ReadFile(f.fh, f.stateid, 0, 1000).value.data,
            std::string(10, 'x') + std::string(10, '\0'));
  // A read-only open cannot truncate.
  Client::Opened ro = Open("t", kRead, 0, nullptr, "reader");
  EXPECT_NFS(Run(Compound().PutFh(f.fh).SetSize(ro.stateid, 0)),
             NFS4ERR_OPENMODE);
  EXPECT_EQ(Attrs(f.fh).size, 20u);
  // OPEN with UNCHECKED4 and size 0 truncates an existing file.
  Compound c;
  c.PutRootFh().Open("t", kWrite, 0, "trunc", true, UNCHECKED4, 0644, 0,
                     uint64_t{0});
  EXPECT_NFS(Run(c), NFS4_OK);
  EXPECT_EQ(Attrs(f.fh).size, 0u);
}

TEST_F(DataTest, ReadWriteErrors) {
  Client::Opened f = Open("f", kRead);
  // A write needs an open for writing.
  EXPECT_NFS(client_->WriteFile(f.fh, f.stateid, 0, "x").status,
             NFS4ERR_OPENMODE);
  // Not a regular file.
  auto d = client_->Mkdir(Root(), "d");
  ASSERT_NFS(d.status, NFS4_OK);
  EXPECT_NFS(client_->ReadFile(d.value, Anonymous(), 0, 10).status,
             NFS4ERR_ISDIR);
  EXPECT_NFS(Run(Compound().PutFh(d.value).Commit()), NFS4ERR_ISDIR);
  // A stateid for another file.
  Client::Opened g = Open("g", kBoth);
  EXPECT_NFS(client_->ReadFile(f.fh, g.stateid, 0, 10).status,
             NFS4ERR_BAD_STATEID);
  // Offset + length past 2^63.
  EXPECT_NFS(
      client_->WriteFile(g.fh, g.stateid, (1ull << 63) - 1, "xy").status,
      NFS4ERR_FBIG);
  // No filehandle.
  EXPECT_NFS(Run(Compound().Read(Anonymous(), 0, 1)), NFS4ERR_NOFILEHANDLE);
  // Invalid special stateid.
  stateid4 invalid{};
  invalid.seqid = NFS4_UINT32_MAX;
  EXPECT_NFS(client_->ReadFile(g.fh, invalid, 0, 10).status,
             NFS4ERR_BAD_STATEID);
}

TEST_F(DataTest, AnonymousIoChecksModeBits) {
  Client::Opened f = Open("f", kWrite);
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 0, "secret").status, NFS4_OK);
  ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
  ASSERT_NFS(Run(Compound().PutFh(f.fh).SetMode(0600)), NFS4_OK);
  auto user = Second(1000);
  EXPECT_NFS(user->ReadFile(f.fh, Anonymous(), 0, 10).status, NFS4ERR_ACCESS);
  EXPECT_NFS(user->WriteFile(f.fh, Anonymous(), 0, "x").status,
             NFS4ERR_ACCESS);
  // OPEN checks the mode bits too.
  EXPECT_NFS(user->OpenFile(Root(), "f", kRead, 0, false).status,
             NFS4ERR_ACCESS);
  // Root reads it with the anonymous stateid; nothing changed.
  EXPECT_EQ(client_->ReadFile(f.fh, Anonymous(), 0, 10).value.data, "secret");
  // An anonymous write by root works without any open.
  ASSERT_NFS(client_->WriteFile(f.fh, Anonymous(), 6, "!").status, NFS4_OK);
  EXPECT_EQ(Attrs(f.fh).size, 7u);
}

// ------------------------------------------------------------- stateids

TEST_F(DataTest, StateidSeqidsAndErrors) {
  Client::Opened a = Open("f", kRead, 0);
  // The same owner opens again: an upgrade, seqid 2.
  Client::Opened b = Open("f", kWrite, 0);
  EXPECT_EQ(std::memcmp(a.stateid.other, b.stateid.other, 12), 0);
  EXPECT_EQ(b.stateid.seqid, 2u);
  EXPECT_NFS(client_->WriteFile(b.fh, b.stateid, 0, "x").status, NFS4_OK);
  // The older seqid is OLD_STATEID, a future one BAD_STATEID, 0 the current.
  EXPECT_NFS(client_->ReadFile(a.fh, a.stateid, 0, 1).status,
             NFS4ERR_OLD_STATEID);
  stateid4 future = b.stateid;
  future.seqid = 9;
  EXPECT_NFS(client_->ReadFile(a.fh, future, 0, 1).status,
             NFS4ERR_BAD_STATEID);
  stateid4 zero = b.stateid;
  zero.seqid = 0;
  EXPECT_NFS(client_->ReadFile(a.fh, zero, 0, 1).status, NFS4_OK);
  // Unknown other: BAD; another instance's other: STALE.
  stateid4 unknown = b.stateid;
  unknown.other[11] ^= 0x55;
  EXPECT_NFS(client_->ReadFile(a.fh, unknown, 0, 1).status,
             NFS4ERR_BAD_STATEID);
  stateid4 stale = b.stateid;
  stale.other[0] ^= 0x55;
  EXPECT_NFS(client_->ReadFile(a.fh, stale, 0, 1).status,
             NFS4ERR_STALE_STATEID);
  // Another client may not use it.
  auto other = Second();
  EXPECT_NFS(other->ReadFile(a.fh, b.stateid, 0, 1).status,
             NFS4ERR_BAD_STATEID);
  // OPEN_DOWNGRADE to read: seqid 3; downgrading to what it lacks: INVAL.
  Compound dg;
  dg.PutFh(a.fh).OpenDowngrade(b.stateid, kRead, 0);
  auto r = client_->Call(dg, true);
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  stateid4 c =
      r->op(2).nfs_resop4_u.opopen_downgrade.OPEN_DOWNGRADE4res_u.resok4
          .open_stateid;
  EXPECT_EQ(c.seqid, 3u);
  EXPECT_NFS(client_->WriteFile(a.fh, c, 0, "x").status, NFS4ERR_OPENMODE);
  EXPECT_NFS(Run(Compound().PutFh(a.fh).OpenDowngrade(c, kWrite, 0)),
             NFS4ERR_INVAL);
  EXPECT_NFS(Run(Compound().PutFh(a.fh).OpenDowngrade(c, kRead,
                                                      OPEN4_SHARE_DENY_READ)),
             NFS4ERR_INVAL);
}

TEST_F(DataTest, CurrentStateidWithinOneCompound) {
  Fh root = Root();
  Compound c;
  c.PutFh(root)
      .Open("cur", kBoth, 0, "o", true)
      .Write(CurrentSid(), 0, "current")
      .Read(CurrentSid(), 0, 100)
      .Close(CurrentSid())
      .Read(CurrentSid(), 0, 100);  // the invalid stateid CLOSE returned
  auto r = client_->Call(c);
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4ERR_BAD_STATEID);
  ASSERT_EQ(r->size(), 7u);
  EXPECT_NFS(r->op_status(5), NFS4_OK);
  const READ4resok& rd = r->op(4).nfs_resop4_u.opread.READ4res_u.resok4;
  EXPECT_EQ(std::string(rd.data.data_val, rd.data.data_len), "current");
  // A new current filehandle clears the current stateid.
  Compound d;
  d.PutFh(root).Open("cur", kRead, 0, "o2").PutFh(root).Lookup("cur").Read(
      CurrentSid(), 0, 1);
  EXPECT_NFS(Run(d), NFS4ERR_BAD_STATEID);
}

TEST_F(DataTest, TestAndFreeStateid) {
  Client::Opened f = Open("f", kBoth);
  stateid4 bogus = f.stateid;
  bogus.other[11] ^= 1;
  Compound t;
  t.TestStateids({f.stateid, bogus, Anonymous()});
  auto r = client_->Call(t);
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  const TEST_STATEID4resok& ok =
      r->op(1).nfs_resop4_u.optest_stateid.TEST_STATEID4res_u.tsr_resok4;
  ASSERT_EQ(ok.tsr_status_codes.tsr_status_codes_len, 3u);
  EXPECT_NFS(ok.tsr_status_codes.tsr_status_codes_val[0], NFS4_OK);
  EXPECT_NFS(ok.tsr_status_codes.tsr_status_codes_val[1], NFS4ERR_BAD_STATEID);
  EXPECT_NFS(ok.tsr_status_codes.tsr_status_codes_val[2], NFS4ERR_BAD_STATEID);
  // An open stateid is freed by CLOSE only.
  EXPECT_NFS(Run(Compound().FreeStateid(f.stateid)), NFS4ERR_LOCKS_HELD);
  EXPECT_NFS(Run(Compound().FreeStateid(bogus)), NFS4ERR_BAD_STATEID);
  ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
  auto r2 = client_->Call(Compound().TestStateids({f.stateid}));
  EXPECT_NFS(r2->op(1)
                 .nfs_resop4_u.optest_stateid.TEST_STATEID4res_u.tsr_resok4
                 .tsr_status_codes.tsr_status_codes_val[0],
             NFS4ERR_BAD_STATEID);
}

// ------------------------------------------------------------------ OPEN

TEST_F(DataTest, OpenErrors) {
  Fh root = Root();
  EXPECT_NFS(client_->OpenFile(root, "missing", kRead, 0, false).status,
             NFS4ERR_NOENT);
  ASSERT_NFS(client_->Mkdir(root, "d").status, NFS4_OK);
  EXPECT_NFS(client_->OpenFile(root, "d", kRead, 0, false).status,
             NFS4ERR_ISDIR);
  ASSERT_NFS(client_->Create(root, NF4LNK, "l", 0777, "target").status,
             NFS4_OK);
  EXPECT_NFS(client_->OpenFile(root, "l", kRead, 0, false).status,
             NFS4ERR_SYMLINK);
  // No access bits, unknown bits.
  EXPECT_NFS(client_->OpenFile(root, "x", 0, 0, true).status, NFS4ERR_INVAL);
  EXPECT_NFS(client_->OpenFile(root, "x", kRead, 8, true).status,
             NFS4ERR_INVAL);
  EXPECT_NFS(client_->OpenFile(root, "..", kRead, 0, true).status,
             NFS4ERR_BADNAME);
  // No grace period: CLAIM_PREVIOUS is refused; delegations unsupported.
  Client::Opened f = Open("f", kRead);
  EXPECT_NFS(Run(Compound().PutFh(f.fh).OpenFh(kRead, 0, "o",
                                               CLAIM_PREVIOUS)),
             NFS4ERR_NO_GRACE);
  EXPECT_NFS(Run(Compound().PutFh(f.fh).OpenFh(kRead, 0, "o",
                                               CLAIM_DELEG_CUR_FH)),
             NFS4ERR_NOTSUPP);
  // CLAIM_FH opens the current filehandle.
  EXPECT_NFS(Run(Compound().PutFh(f.fh).OpenFh(kRead, 0, "o2")), NFS4_OK);
  // GUARDED4 on an existing name.
  Compound g;
  g.PutFh(root).Open("f", kRead, 0, "o", true, GUARDED4);
  EXPECT_NFS(Run(g), NFS4ERR_EXIST);
  // A failed OPEN leaves nothing behind.
  EXPECT_FALSE(client_->LookupPath("/x").ok());
}

TEST_F(DataTest, OpenCreateChangeInfo) {
  Fh root = Root();
  auto before = client_->GetAttr(root, Bits({FATTR4_CHANGE}));
  auto r = client_->Call(Compound().PutFh(root).Open("ci", kRead, 0, "o",
                                                     true));
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  const OPEN4resok& ok = r->op(2).nfs_resop4_u.opopen.OPEN4res_u.resok4;
  EXPECT_EQ(ok.cinfo.before, before.value.change);
  EXPECT_NE(ok.cinfo.after, ok.cinfo.before);
  auto after = client_->GetAttr(root, Bits({FATTR4_CHANGE}));
  EXPECT_EQ(ok.cinfo.after, after.value.change);
  EXPECT_TRUE(ok.rflags & OPEN4_RESULT_PRESERVE_UNLINKED);
}

TEST_F(DataTest, OtherClientSeesWritesAtOnce) {
  auto b = Second();
  Client::Opened fa = Open("shared", kBoth);
  auto fb = b->OpenFile(Root(), "shared", kRead, 0, false);
  ASSERT_NFS(fb.status, NFS4_OK);
  ASSERT_NFS(client_->WriteFile(fa.fh, fa.stateid, 0, "from A").status,
             NFS4_OK);
  EXPECT_EQ(Attrs(fa.fh, b.get()).size, 6u);
  auto r = b->ReadFile(fb.value.fh, fb.value.stateid, 0, 100);
  ASSERT_NFS(r.status, NFS4_OK);
  EXPECT_EQ(r.value.data, "from A");
  EXPECT_TRUE(r.value.eof);
}

TEST_F(DataTest, DelegationWantsGetNoneExt) {
  Compound c;
  c.PutRootFh().Open("w", kRead | OPEN4_SHARE_ACCESS_WANT_NO_DELEG, 0, "o",
                     true);
  auto r = client_->Call(c);
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  const OPEN4resok& ok = r->op(2).nfs_resop4_u.opopen.OPEN4res_u.resok4;
  EXPECT_EQ(ok.delegation.delegation_type, OPEN_DELEGATE_NONE_EXT);
  EXPECT_EQ(ok.delegation.open_delegation4_u.od_whynone.ond_why,
            WND4_NOT_WANTED);
  auto plain = client_->Call(
      Compound().PutRootFh().Open("w", kRead, 0, "o2", false));
  EXPECT_EQ(plain->op(2)
                .nfs_resop4_u.opopen.OPEN4res_u.resok4.delegation
                .delegation_type,
            OPEN_DELEGATE_NONE);
}

TEST_F(DataTest, Exclusive41RetrySucceedsOtherVerifierFails) {
  Fh root = Root();
  Compound c;
  c.PutFh(root).Open("ex", kBoth, 0, "o", true, EXCLUSIVE4_1, 0600, 42).GetFh();
  auto first = client_->Call(c);
  ASSERT_TRUE(first.ok());
  ASSERT_NFS(first->status(), NFS4_OK);
  // The retry (same verifier) succeeds with the same file.
  auto again = client_->Call(c);
  ASSERT_TRUE(again.ok());
  ASSERT_NFS(again->status(), NFS4_OK);
  EXPECT_EQ(*first->LastFh(), *again->LastFh());
  // Another verifier: EXIST.
  Compound other;
  other.PutFh(root).Open("ex", kBoth, 0, "o", true, EXCLUSIVE4_1, 0600, 43);
  EXPECT_NFS(Run(other), NFS4ERR_EXIST);
  // The mode came with the create.
  auto a = client_->GetAttr(*first->LastFh(), Bits({FATTR4_MODE}));
  EXPECT_EQ(a.value.mode, 0600u);
  // NFSv4.0-style EXCLUSIVE4 works the same way.
  Compound e4;
  e4.PutFh(root).Open("ex4", kBoth, 0, "o", true, EXCLUSIVE4, 0, 7).GetFh();
  auto e1 = client_->Call(e4);
  ASSERT_NFS(e1->status(), NFS4_OK);
  auto e2 = client_->Call(e4);
  ASSERT_NFS(e2->status(), NFS4_OK);
  EXPECT_EQ(*e1->LastFh(), *e2->LastFh());
  // suppattr_exclcreat is offered.
  auto s = client_->GetAttr(root, Bits({FATTR4_SUPPATTR_EXCLCREAT}));
  EXPECT_NFS(s.status, NFS4_OK);
}

// --------------------------------------------------- share reservations

TEST_F(DataTest, ShareReservationsBetweenClients) {
  auto b = Second();
  Client::Opened a = Open("s", kBoth, OPEN4_SHARE_DENY_WRITE);
  // B may read but not write.
  EXPECT_NFS(b->OpenFile(Root(), "s", kWrite, 0, false).status,
             NFS4ERR_SHARE_DENIED);
  auto br = b->OpenFile(Root(), "s", kRead, 0, false);
  ASSERT_NFS(br.status, NFS4_OK);
  // B cannot deny READ while A reads.
  EXPECT_NFS(b->OpenFile(Root(), "s", kRead, OPEN4_SHARE_DENY_READ, false,
                         "other")
                 .status,
             NFS4ERR_SHARE_DENIED);
  // Anonymous writes are refused while a deny-write open exists.
  EXPECT_NFS(b->WriteFile(a.fh, Anonymous(), 0, "x").status, NFS4ERR_LOCKED);
  // An upgrade by A to deny READ conflicts with B's read open.
  EXPECT_NFS(client_->OpenFile(Root(), "s", kRead, OPEN4_SHARE_DENY_READ,
                               false)
                 .status,
             NFS4ERR_SHARE_DENIED);
  // A downgrades to deny nothing: B can open for write now.
  EXPECT_NFS(Run(Compound().PutFh(a.fh).OpenDowngrade(a.stateid, kBoth, 0)),
             NFS4_OK);
  auto bw = b->OpenFile(Root(), "s", kWrite, 0, false);
  EXPECT_NFS(bw.status, NFS4_OK);
  EXPECT_NFS(b->WriteFile(bw.value.fh, bw.value.stateid, 0, "B").status,
             NFS4_OK);
  // A's CLOSE (seqid 0: whatever the current one is) lifts its
  // reservations.
  stateid4 latest = a.stateid;
  latest.seqid = 0;
  ASSERT_NFS(client_->CloseFile(a.fh, latest).status, NFS4_OK);
  EXPECT_NFS(b->OpenFile(Root(), "s", kRead, OPEN4_SHARE_DENY_WRITE, false,
                         "third")
                 .status,
             NFS4ERR_SHARE_DENIED);  // B's own write open (another owner)
}

// ------------------------------------------------ unlinked while open

TEST_F(DataTest, OpenUnlinkReadClose) {
  Client::Opened f = Open("u", kBoth);
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 0, "still here").status,
             NFS4_OK);
  ASSERT_NFS(client_->CommitFile(f.fh).status, NFS4_OK);
  ASSERT_NFS(client_->Remove(Root(), "u").status, NFS4_OK);
  EXPECT_NFS(client_->LookupPath("/u").status, NFS4ERR_NOENT);
  // Open: the data is still there, and writable.
  EXPECT_EQ(client_->ReadFile(f.fh, f.stateid, 0, 100).value.data,
            "still here");
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 10, "!").status, NFS4_OK);
  EXPECT_EQ(Attrs(f.fh).size, 11u);
  auto ino = client_->GetAttr(f.fh, Bits({FATTR4_FILEID}));
  ASSERT_NFS(ino.status, NFS4_OK);
  const std::string data_file =
      dir_ + "/data/" + data::LocalDataPath(ino.value.fileid);
  EXPECT_TRUE(std::filesystem::exists(data_file));
  // The last CLOSE releases the inode and its data.
  ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
  EXPECT_NFS(client_->GetAttr(f.fh, Bits({FATTR4_SIZE})).status,
             NFS4ERR_STALE);
  EXPECT_FALSE(std::filesystem::exists(data_file));
}

TEST_F(DataTest, RenameOverOpenFileKeepsItsData) {
  Client::Opened victim = Open("victim", kBoth);
  ASSERT_NFS(client_->WriteFile(victim.fh, victim.stateid, 0, "old").status,
             NFS4_OK);
  Client::Opened n = Open("new", kWrite, 0, nullptr, "o2");
  ASSERT_NFS(client_->CloseFile(n.fh, n.stateid).status, NFS4_OK);
  ASSERT_NFS(client_->Rename(Root(), "new", Root(), "victim").status, NFS4_OK);
  EXPECT_EQ(client_->ReadFile(victim.fh, victim.stateid, 0, 10).value.data,
            "old");
  ASSERT_NFS(client_->CloseFile(victim.fh, victim.stateid).status, NFS4_OK);
  EXPECT_NFS(client_->GetAttr(victim.fh, Bits({FATTR4_SIZE})).status,
             NFS4ERR_STALE);
  // Removing a file nobody has open deletes its data at once.
  Client::Opened g = Open("g", kWrite);
  ASSERT_NFS(client_->WriteFile(g.fh, g.stateid, 0, "gone").status, NFS4_OK);
  ASSERT_NFS(client_->CloseFile(g.fh, g.stateid).status, NFS4_OK);
  auto ino = client_->GetAttr(g.fh, Bits({FATTR4_FILEID}));
  const std::string data_file =
      dir_ + "/data/" + data::LocalDataPath(ino.value.fileid);
  EXPECT_TRUE(std::filesystem::exists(data_file));
  ASSERT_NFS(client_->Remove(Root(), "g").status, NFS4_OK);
  EXPECT_FALSE(std::filesystem::exists(data_file));
}

TEST_F(DataTest, ExpiredClientStateIsReleased) {
  auto b = Second();
  auto bo = b->OpenFile(Root(), "e", kBoth, OPEN4_SHARE_DENY_BOTH, true);
  ASSERT_NFS(bo.status, NFS4_OK);
  ASSERT_NFS(b->WriteFile(bo.value.fh, bo.value.stateid, 0, "orphan").status,
             NFS4_OK);
  auto id = b->GetAttr(bo.value.fh, Bits({FATTR4_FILEID}));
  ASSERT_NFS(id.status, NFS4_OK);
  const ns::InodeId ino = id.value.fileid;
  ASSERT_NFS(client_->Remove(Root(), "e").status, NFS4_OK);
  EXPECT_TRUE(server_->state().opens().IsOpen(ino));
  // Leases run out (the reaper's view of a far future): both clients go.
  size_t removed = server_->state().ReapExpired(
      state::Clock::now() + std::chrono::hours(1));
  EXPECT_EQ(removed, 2u);
  EXPECT_FALSE(server_->state().opens().IsOpen(ino));
  EXPECT_EQ(server_->state().opens().stateid_count(), 0u);
  // The orphan goes with B's state (the flusher releases it): its inode
  // first, then its data file, so wait for both (bounded; the machine may
  // be loaded).
  const std::string data = dir_ + "/data/" + data::LocalDataPath(ino);
  bool gone = false, data_gone = false;
  for (int i = 0; i < 1000 && !(gone && data_gone); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    gone = server_->ns().GetAttr(ns::Credentials::Root(), ino).status()
               .IsStale();
    data_gone = !std::filesystem::exists(data);
  }
  EXPECT_TRUE(gone) << "the orphan inode is released";
  EXPECT_TRUE(data_gone) << "its data file is removed";
}

// ----------------------------------------------------------------- locks

struct LockResult {
  nfsstat4 status = NFS4_OK;
  stateid4 sid{};
  LOCK4denied denied{};
  std::string denied_owner;
};

LockResult DoLock(Client& c, const Fh& fh, const Compound& op) {
  LockResult out;
  auto r = c.Call(op, true);
  if (!r.ok()) {
    out.status = NFS4ERR_IO;
    return out;
  }
  out.status = r->status();
  const LOCK4res& res = r->op(r->size() - 1).nfs_resop4_u.oplock;
  if (out.status == NFS4_OK) out.sid = res.LOCK4res_u.resok4.lock_stateid;
  if (out.status == NFS4ERR_DENIED) {
    out.denied = res.LOCK4res_u.denied;
    out.denied_owner.assign(res.LOCK4res_u.denied.owner.owner.owner_val,
                            res.LOCK4res_u.denied.owner.owner.owner_len);
    out.denied.owner.owner.owner_val = nullptr;
  }
  (void)fh;
  return out;
}

LockResult LockNew(Client& c, const Fh& fh, nfs_lock_type4 t, uint64_t off,
                   uint64_t len, const stateid4& open, const std::string& lo) {
  Compound op;
  op.PutFh(fh).LockNew(t, off, len, open, lo);
  return DoLock(c, fh, op);
}
LockResult LockMore(Client& c, const Fh& fh, nfs_lock_type4 t, uint64_t off,
                    uint64_t len, const stateid4& lock) {
  Compound op;
  op.PutFh(fh).LockExisting(t, off, len, lock);
  return DoLock(c, fh, op);
}
nfsstat4 LockTest(Client& c, const Fh& fh, nfs_lock_type4 t, uint64_t off,
                  uint64_t len, const std::string& lo) {
  auto r = c.Call(Compound().PutFh(fh).LockT(t, off, len, lo));
  return r.ok() ? r->status() : NFS4ERR_IO;
}
nfsstat4 Unlock(Client& c, const Fh& fh, uint64_t off, uint64_t len,
                stateid4* lock) {
  auto r = c.Call(Compound().PutFh(fh).LockU(WRITE_LT, off, len, *lock), true);
  if (!r.ok()) return NFS4ERR_IO;
  if (r->status() == NFS4_OK) {
    *lock = r->op(2).nfs_resop4_u.oplocku.LOCKU4res_u.lock_stateid;
  }
  return r->status();
}

TEST_F(DataTest, LocksConflictBetweenClients) {
  auto b = Second();
  Client::Opened fa = Open("l", kBoth);
  auto fb = b->OpenFile(Root(), "l", kBoth, 0, false);
  ASSERT_NFS(fb.status, NFS4_OK);
  LockResult la = LockNew(*client_, fa.fh, WRITE_LT, 100, 50, fa.stateid, "A");
  ASSERT_NFS(la.status, NFS4_OK);
  EXPECT_EQ(la.sid.seqid, 1u);
  EXPECT_NE(std::memcmp(la.sid.other, fa.stateid.other, 12), 0);
  // B's read lock overlapping A's write lock: DENIED with A's lock.
  LockResult lb = LockNew(*b, fb.value.fh, READ_LT, 120, 1, fb.value.stateid,
                          "B");
  ASSERT_NFS(lb.status, NFS4ERR_DENIED);
  EXPECT_EQ(lb.denied.offset, 100u);
  EXPECT_EQ(lb.denied.length, 50u);
  EXPECT_EQ(lb.denied.locktype, WRITE_LT);
  EXPECT_EQ(lb.denied.owner.clientid, client_->client_id());
  EXPECT_EQ(lb.denied_owner, "A");
  // Blocking types are answered the same way (no waiting).
  EXPECT_NFS(LockNew(*b, fb.value.fh, WRITEW_LT, 0, kToEof, fb.value.stateid,
                     "B")
                 .status,
             NFS4ERR_DENIED);
  EXPECT_NFS(LockTest(*b, fb.value.fh, READ_LT, 149, 1, "B"), NFS4ERR_DENIED);
  // Outside the range: fine.
  lb = LockNew(*b, fb.value.fh, WRITE_LT, 150, kToEof, fb.value.stateid, "B");
  ASSERT_NFS(lb.status, NFS4_OK);
  EXPECT_NFS(LockTest(*b, fb.value.fh, READ_LT, 0, 100, "B"), NFS4_OK);
  // A's own lock never conflicts with itself (LOCKT as A).
  EXPECT_NFS(LockTest(*client_, fa.fh, WRITE_LT, 100, 50, "A"), NFS4_OK);
  EXPECT_NFS(LockTest(*client_, fa.fh, READ_LT, 1000, 1, "A"),
             NFS4ERR_DENIED);
  // A unlocks: B gets the range.
  ASSERT_NFS(Unlock(*client_, fa.fh, 100, 50, &la.sid), NFS4_OK);
  EXPECT_EQ(la.sid.seqid, 2u);
  EXPECT_NFS(LockMore(*b, fb.value.fh, WRITE_LT, 0, 150, lb.sid).status,
             NFS4_OK);
  // I/O with a lock stateid works.
  EXPECT_NFS(client_->WriteFile(fa.fh, la.sid, 0, "x").status, NFS4_OK);
}

TEST_F(DataTest, LockSplitMergeUpgradeDowngrade) {
  auto b = Second();
  Client::Opened fa = Open("l", kBoth);
  auto fb = b->OpenFile(Root(), "l", kBoth, 0, false);
  ASSERT_NFS(fb.status, NFS4_OK);
  const Fh fh = fa.fh;
  LockResult la = LockNew(*client_, fh, READ_LT, 0, 100, fa.stateid, "A");
  ASSERT_NFS(la.status, NFS4_OK);
  // Merge: adjacent read locks make one range [0, 200).
  LockResult m = LockMore(*client_, fh, READ_LT, 100, 100, la.sid);
  ASSERT_NFS(m.status, NFS4_OK);
  EXPECT_EQ(m.sid.seqid, 2u);
  EXPECT_NFS(LockTest(*b, fh, WRITE_LT, 199, 1, "B"), NFS4ERR_DENIED);
  EXPECT_NFS(LockTest(*b, fh, READ_LT, 0, 200, "B"), NFS4_OK);
  // Split: unlock the middle.
  stateid4 sid = m.sid;
  ASSERT_NFS(Unlock(*client_, fh, 50, 100, &sid), NFS4_OK);
  EXPECT_NFS(LockTest(*b, fh, WRITE_LT, 50, 100, "B"), NFS4_OK);
  EXPECT_NFS(LockTest(*b, fh, WRITE_LT, 49, 1, "B"), NFS4ERR_DENIED);
  EXPECT_NFS(LockTest(*b, fh, WRITE_LT, 150, 1, "B"), NFS4ERR_DENIED);
  // Upgrade [0, 50) to a write lock: B cannot even read-lock it now.
  LockResult up = LockMore(*client_, fh, WRITE_LT, 0, 50, sid);
  ASSERT_NFS(up.status, NFS4_OK);
  EXPECT_NFS(LockTest(*b, fh, READ_LT, 10, 1, "B"), NFS4ERR_DENIED);
  EXPECT_NFS(LockTest(*b, fh, READ_LT, 160, 1, "B"), NFS4_OK);
  // B read-locks [150, 160): an upgrade of A there is denied.
  LockResult lb = LockNew(*b, fh, READ_LT, 150, 10, fb.value.stateid, "B");
  ASSERT_NFS(lb.status, NFS4_OK);
  LockResult denied = LockMore(*client_, fh, WRITE_LT, 150, 10, up.sid);
  EXPECT_NFS(denied.status, NFS4ERR_DENIED);
  EXPECT_EQ(denied.denied_owner, "B");
  // Downgrade A's write lock back to read: B can read-lock it.
  LockResult down = LockMore(*client_, fh, READ_LT, 0, 50, up.sid);
  ASSERT_NFS(down.status, NFS4_OK);
  EXPECT_NFS(LockTest(*b, fh, READ_LT, 10, 1, "B"), NFS4_OK);
  EXPECT_NFS(LockTest(*b, fh, WRITE_LT, 10, 1, "B"), NFS4ERR_DENIED);
  // The old seqid of the lock stateid is OLD_STATEID.
  EXPECT_NFS(LockMore(*client_, fh, READ_LT, 0, 1, la.sid).status,
             NFS4ERR_OLD_STATEID);
}

TEST_F(DataTest, LockErrorsAndRelease) {
  Client::Opened ro = Open("l", kRead);
  const Fh fh = ro.fh;
  // A write lock needs an open for writing.
  EXPECT_NFS(LockNew(*client_, fh, WRITE_LT, 0, 1, ro.stateid, "A").status,
             NFS4ERR_OPENMODE);
  // Zero length, a range past 2^64: INVAL.
  EXPECT_NFS(LockNew(*client_, fh, READ_LT, 0, 0, ro.stateid, "A").status,
             NFS4ERR_INVAL);
  EXPECT_NFS(
      LockNew(*client_, fh, READ_LT, kToEof - 5, 10, ro.stateid, "A").status,
      NFS4ERR_INVAL);
  EXPECT_NFS(LockTest(*client_, fh, READ_LT, 1, 0, "A"), NFS4ERR_INVAL);
  // A lock stateid where an open stateid belongs, and the reverse.
  LockResult l = LockNew(*client_, fh, READ_LT, 0, kToEof, ro.stateid, "A");
  ASSERT_NFS(l.status, NFS4_OK);
  EXPECT_NFS(LockNew(*client_, fh, READ_LT, 0, 1, l.sid, "A2").status,
             NFS4ERR_BAD_STATEID);
  EXPECT_NFS(LockMore(*client_, fh, READ_LT, 0, 1, ro.stateid).status,
             NFS4ERR_BAD_STATEID);
  // A lock on a directory.
  EXPECT_NFS(LockNew(*client_, Root(), READ_LT, 0, 1, ro.stateid, "A").status,
             NFS4ERR_ISDIR);
  // CLOSE and FREE_STATEID while locks are held: LOCKS_HELD.
  EXPECT_NFS(client_->CloseFile(fh, ro.stateid).status, NFS4ERR_LOCKS_HELD);
  EXPECT_NFS(Run(Compound().FreeStateid(l.sid)), NFS4ERR_LOCKS_HELD);
  stateid4 sid = l.sid;
  ASSERT_NFS(Unlock(*client_, fh, 0, kToEof, &sid), NFS4_OK);
  // Unlocked: the lock stateid can be freed, and then is gone.
  EXPECT_NFS(Run(Compound().FreeStateid(sid)), NFS4_OK);
  EXPECT_NFS(Unlock(*client_, fh, 0, 1, &sid), NFS4ERR_BAD_STATEID);
  // A new lock, then CLOSE after LOCKU takes the lock stateid with it.
  LockResult l2 = LockNew(*client_, fh, READ_LT, 5, 5, ro.stateid, "A");
  ASSERT_NFS(l2.status, NFS4_OK);
  stateid4 sid2 = l2.sid;
  ASSERT_NFS(Unlock(*client_, fh, 0, kToEof, &sid2), NFS4_OK);
  ASSERT_NFS(client_->CloseFile(fh, ro.stateid).status, NFS4_OK);
  EXPECT_NFS(Unlock(*client_, fh, 0, 1, &sid2), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(server_->state().opens().stateid_count(), 0u);
}

TEST_F(DataTest, LocksGoWithAnExpiredClient) {
  auto b = Second();
  auto fb = b->OpenFile(Root(), "l", kBoth, 0, true);
  ASSERT_NFS(fb.status, NFS4_OK);
  ASSERT_NFS(LockNew(*b, fb.value.fh, WRITE_LT, 0, kToEof, fb.value.stateid,
                     "B")
                 .status,
             NFS4_OK);
  EXPECT_NFS(LockTest(*client_, fb.value.fh, READ_LT, 0, 1, "A"),
             NFS4ERR_DENIED);
  // Only B's lease lapses: keep A's fresh by the reaper's clock.
  server_->state().ReapExpired(state::Clock::now() +
                               std::chrono::seconds(91));
  auto fresh = Second();
  EXPECT_NFS(LockTest(*fresh, fb.value.fh, WRITE_LT, 0, kToEof, "C"),
             NFS4_OK);
}

// ------------------------------------------------- small files inline

}  // namespace
}  // namespace nfs41d
