// dataserver tests over real TCP on 127.0.0.1: the NFSv4.1 data path
// (in-process DataServer, driven by nfs41client), the daemon binary
// (restart, verifier, flags), and the control loop against an in-test MDS
// stand-in serving NSCTL_PROG.
//
// Files, linked in this order: this one (the data path),
// dataserver_daemon_test.cc (the binary), dataserver_control_test.cc (the
// control loop, in-process daemons, identity); shared parts in
// dataserver_test_util.h.

#include "dataserver/dataserver_test_util.h"

namespace dataserver {
namespace {

// ------------------------------------------------------------ data path

class DataPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    DataServerOptions o;
    o.data_dir = dir_;
    o.key = TestKey();
    o.worker_threads = 2;
    o.state.server_owner = "dataserver:test";
    ds_ = std::make_unique<DataServer>(o);
    ASSERT_EQ(ds_->Start(), "");
    client_ = Connect(ds_->port());
    ASSERT_NE(client_, nullptr);
  }
  void TearDown() override {
    client_.reset();
    ds_->Stop();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  std::unique_ptr<DataServer> ds_;
  std::unique_ptr<nfs41client::Client> client_;
  const stateid4 anon_{};
};

// Writeback hints: adjacent ranges of a file merge, the queue is bounded
// (a hint may be dropped, never the WRITE waiting), and the thread drains
// it.
TEST(WritebackQueueTest, MergesBoundsAndDrains) {
  const std::string dir = MakeTempDir();
  auto store = nfs41d::data::OpenLocalDataStore(dir);
  ASSERT_TRUE(store.ok());
  const std::vector<uint8_t> bytes(8192, 1);
  ASSERT_TRUE((*store)->Write(3, 0, bytes, nfs41d::data::Stability::kUnstable).ok());
  WritebackQueue q(store->get());
  q.Add(3, 0, 4096);
  q.Add(3, 4096, 4096);  // adjacent: merged
  EXPECT_EQ(q.pending(), 1u);
  q.Add(4, 0, 10);  // another file (never written: nothing to do)
  EXPECT_EQ(q.pending(), 2u);
  for (uint64_t i = 0; i < 2 * WritebackQueue::kMaxPending; ++i) {
    q.Add(5, i * 100, 10);  // gaps: never merged
  }
  EXPECT_EQ(q.pending(), WritebackQueue::kMaxPending);
  q.Start();
  EXPECT_TRUE(WaitFor([&] { return q.pending() == 0; }, 10s));
  q.Stop();
  q.Add(3, 0, 1);  // after Stop: ignored
  EXPECT_EQ(q.pending(), 0u);
  std::filesystem::remove_all(dir);
}

TEST_F(DataPathTest, ExchangeIdAnswersDataServerRoleOnly) {
  nfs41client::ClientOptions co;
  co.back_channel = true;  // asks for one; a data server declines it
  auto c = nfs41client::Client::Connect("127.0.0.1", ds_->port(), co);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ((*c)->ExchangeId(EXCHGID4_FLAG_USE_PNFS_DS |
                             EXCHGID4_FLAG_USE_NON_PNFS),
            NFS4_OK);
  const uint32_t f = (*c)->exchange_flags();
  EXPECT_TRUE(f & EXCHGID4_FLAG_USE_PNFS_DS);
  EXPECT_FALSE(f & EXCHGID4_FLAG_USE_NON_PNFS);
  EXPECT_FALSE(f & EXCHGID4_FLAG_USE_PNFS_MDS);
  ASSERT_EQ((*c)->CreateSession(), NFS4_OK);
  // No back channel, and SEQUENCE does not complain about it.
  nfs41client::Compound cp;
  cp.PutFh(Handle(TestKey(), 5)).GetAttr(nfs41client::Bits({FATTR4_SIZE}));
  auto r = (*c)->Call(cp);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status(), NFS4_OK);
  EXPECT_EQ((*c)->last_status_flags() &
                (SEQ4_STATUS_CB_PATH_DOWN | SEQ4_STATUS_CB_PATH_DOWN_SESSION),
            0u);
  EXPECT_EQ((*c)->DestroySession(), NFS4_OK);
  EXPECT_EQ((*c)->DestroyClientId(), NFS4_OK);
}

TEST_F(DataPathTest, WriteCommitReadRoundTrip) {
  const Fh fh = Handle(TestKey(), 42);
  const std::string data = Pattern(200000, 3);
  auto w = client_->WriteFile(fh, anon_, 0, data, UNSTABLE4);
  ASSERT_TRUE(w.ok()) << w.status;
  EXPECT_EQ(w.value.count, data.size());
  EXPECT_EQ(w.value.committed, UNSTABLE4);
  EXPECT_EQ(w.value.verf, ds_->write_verifier());
  auto c = client_->CommitFile(fh);
  ASSERT_TRUE(c.ok()) << c.status;
  EXPECT_EQ(c.value, ds_->write_verifier());

  auto r = client_->ReadFile(fh, anon_, 0, 300000);
  ASSERT_TRUE(r.ok()) << r.status;
  EXPECT_EQ(r.value.data, data);
  EXPECT_TRUE(r.value.eof);
  auto mid = client_->ReadFile(fh, anon_, 1000, 500);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(mid.value.data, data.substr(1000, 500));
  EXPECT_FALSE(mid.value.eof);
  auto past = client_->ReadFile(fh, anon_, 500000, 10);
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(past.value.data, "");
  EXPECT_TRUE(past.value.eof);

  // The stripe file is the file's logical bytes in the data store.
  EXPECT_TRUE(std::filesystem::exists(
      dir_ + "/data/" + nfs41d::data::LocalDataPath(42)));
}

TEST_F(DataPathTest, BindConnToSessionBindsTheForeChannelOnly) {
  ASSERT_TRUE(client_->Reconnect("127.0.0.1", ds_->port()).ok());
  channel_dir_from_server4 dir = CDFS4_BOTH;
  EXPECT_EQ(client_->BindConnToSession(CDFC4_BACK_OR_BOTH, &dir), NFS4_OK);
  EXPECT_EQ(dir, CDFS4_FORE);
  EXPECT_EQ(client_->BindConnToSession(CDFC4_FORE_OR_BOTH, &dir), NFS4_OK);
  EXPECT_EQ(dir, CDFS4_FORE);
  EXPECT_EQ(client_->BindConnToSession(CDFC4_BACK, &dir), NFS4ERR_INVAL);
  // The session works on the new connection.
  EXPECT_TRUE(client_->WriteFile(Handle(TestKey(), 40), anon_, 0, "x",
                                 UNSTABLE4).ok());
}

TEST_F(DataPathTest, ARetriedWriteIsAnsweredFromTheSlotNotDoneAgain) {
  // RFC 8881 §2.10.6.1: a retry (same slot, same sequence id) gets the
  // cached reply; the WRITE is not executed a second time.
  const Fh fh = Handle(TestKey(), 39);
  const uint32_t seq = client_->slot_seqid(0) + 1;
  nfs41client::Compound first;
  first.PutFh(fh).Write(anon_, 0, "AAAA", UNSTABLE4);
  auto r1 = client_->CallOnSlot(first, 0, seq, /*cache_this=*/true);
  ASSERT_TRUE(r1.ok());
  ASSERT_EQ(r1->status(), NFS4_OK);
  // Another slot overwrites the bytes.
  nfs41client::Compound other;
  other.PutFh(fh).Write(anon_, 0, "BBBB", UNSTABLE4);
  auto r2 = client_->CallOnSlot(other, 1, client_->slot_seqid(1) + 1, true);
  ASSERT_TRUE(r2.ok());
  ASSERT_EQ(r2->status(), NFS4_OK);
  auto r3 = client_->CallOnSlot(first, 0, seq, true);
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->status(), NFS4_OK);
  // (A fresh session: this client's slot table no longer matches.)
  auto reader = Connect(ds_->port());
  ASSERT_NE(reader, nullptr);
  auto data = reader->ReadFile(fh, anon_, 0, 4);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(data.value.data, "BBBB");
}

TEST_F(DataPathTest, OneMebibyteInOneWriteAndOneRead) {
  // What a client sized by the MDS's maxread/maxwrite (1 MiB) sends.
  nfs41client::ClientOptions co;
  co.back_channel = false;
  co.max_request_size = 2u << 20;
  co.max_response_size = 2u << 20;
  auto c = nfs41client::Client::Connect("127.0.0.1", ds_->port(), co);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ((*c)->EstablishSession(), NFS4_OK);
  const Fh fh = Handle(TestKey(), 41);
  const std::string data = Pattern(1u << 20, 5);
  auto w = (*c)->WriteFile(fh, anon_, 0, data, UNSTABLE4);
  ASSERT_TRUE(w.ok()) << w.status;
  EXPECT_EQ(w.value.count, data.size());
  auto r = (*c)->ReadFile(fh, anon_, 0, 1u << 20);
  ASSERT_TRUE(r.ok()) << r.status;
  EXPECT_EQ(r.value.data.size(), data.size());
  EXPECT_TRUE(r.value.data == data);
}

TEST_F(DataPathTest, AReadLargerThanTheSessionAllowsIsShortNotAnError) {
  // client_ asked for 1 MiB responses: a 1 MiB READ cannot fit with its
  // headers, so it gets what fits and reads on.
  const Fh fh = Handle(TestKey(), 38);
  const std::string data = Pattern(1u << 20, 8);
  for (uint64_t off = 0; off < data.size(); off += 256u << 10) {
    ASSERT_TRUE(client_->WriteFile(fh, anon_, off, data.substr(off, 256u << 10),
                                   UNSTABLE4).ok());
  }
  auto r = client_->ReadFile(fh, anon_, 0, 1u << 20);
  ASSERT_TRUE(r.ok()) << r.status;
  EXPECT_GT(r.value.data.size(), 0u);
  EXPECT_LT(r.value.data.size(), data.size());
  EXPECT_FALSE(r.value.eof);
  EXPECT_EQ(r.value.data, data.substr(0, r.value.data.size()));
  auto rest = client_->ReadFile(fh, anon_, r.value.data.size(), 1u << 20);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(r.value.data + rest.value.data, data);
  EXPECT_TRUE(rest.value.eof);
}

TEST_F(DataPathTest, ConcurrentWritersOnManySlots) {
  // One session, 8 threads, each on its own slot: disjoint 64 KiB pieces of
  // one stripe file, then every byte back.
  const Fh fh = Handle(TestKey(), 37);
  constexpr int kThreads = 8, kPieces = 8;
  constexpr uint64_t kPiece = 64u << 10;
  const std::string data = Pattern(kThreads * kPieces * kPiece, 4);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int p = 0; p < kPieces; ++p) {
        const uint64_t off = (static_cast<uint64_t>(p) * kThreads + t) * kPiece;
        auto w = client_->WriteFile(fh, anon_, off, data.substr(off, kPiece),
                                    UNSTABLE4);
        if (!w.ok() || w.value.count != kPiece) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(client_->CommitFile(fh).ok());
  std::string back;
  while (back.size() < data.size()) {
    auto r = client_->ReadFile(fh, anon_, back.size(), 512u << 10);
    ASSERT_TRUE(r.ok());
    ASSERT_FALSE(r.value.data.empty());
    back += r.value.data;
  }
  EXPECT_TRUE(back == data);
}

TEST_F(DataPathTest, AnyStateidIsAccepted) {
  // §13.9.1: the MDS's open/lock/layout stateids mean nothing here.
  stateid4 sid{};
  sid.seqid = 7;
  std::memset(sid.other, 0x5a, sizeof sid.other);
  const Fh fh = Handle(TestKey(), 43);
  auto w = client_->WriteFile(fh, sid, 0, "abc", FILE_SYNC4);
  ASSERT_TRUE(w.ok()) << w.status;
  auto r = client_->ReadFile(fh, sid, 0, 3);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value.data, "abc");
}

TEST_F(DataPathTest, StableWritesAnswerDataSync) {
  // The file's size and mtime live on the MDS: a data server can make its
  // bytes stable, never the file's metadata, so FILE_SYNC4 is answered
  // DATA_SYNC4 and the client sends LAYOUTCOMMIT (ds_ops.cc says why).
  const Fh fh = Handle(TestKey(), 4711);
  auto file_sync = client_->WriteFile(fh, anon_, 0, "file", FILE_SYNC4);
  ASSERT_TRUE(file_sync.ok()) << file_sync.status;
  EXPECT_EQ(file_sync.value.committed, DATA_SYNC4);
  auto data_sync = client_->WriteFile(fh, anon_, 4, "data", DATA_SYNC4);
  ASSERT_TRUE(data_sync.ok()) << data_sync.status;
  EXPECT_EQ(data_sync.value.committed, DATA_SYNC4);
  auto unstable = client_->WriteFile(fh, anon_, 8, "more", UNSTABLE4);
  ASSERT_TRUE(unstable.ok()) << unstable.status;
  EXPECT_EQ(unstable.value.committed, UNSTABLE4);
  auto r = client_->ReadFile(fh, anon_, 0, 12);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value.data, "filedatamore");
}

TEST_F(DataPathTest, StripesAreSparseAtLogicalOffsets) {
  const Fh fh = Handle(TestKey(), 44);
  const uint64_t off = 8u << 20;
  auto w = client_->WriteFile(fh, anon_, off, "tail", DATA_SYNC4);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.value.committed, DATA_SYNC4);
  auto r = client_->ReadFile(fh, anon_, 4096, 4096);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value.data, std::string(4096, '\0'));
  EXPECT_FALSE(r.value.eof);
  auto a = client_->GetAttr(fh, nfs41client::Bits({FATTR4_TYPE, FATTR4_SIZE,
                                                    FATTR4_SPACE_USED,
                                                    FATTR4_FILEID}));
  ASSERT_TRUE(a.ok()) << a.status << " " << a.error;
  EXPECT_EQ(a.value.type, static_cast<uint32_t>(NF4REG));
  EXPECT_EQ(a.value.size, off + 4);
  EXPECT_EQ(a.value.fileid, 44u);
  EXPECT_LT(a.value.space_used, 1u << 20);  // a hole, not 8 MiB of zeros
}

TEST_F(DataPathTest, GetAttrOfStripeFile) {
  const Fh fh = Handle(TestKey(), 45);
  const std::vector<uint32_t> bits = nfs41client::Bits(
      {FATTR4_SUPPORTED_ATTRS, FATTR4_TYPE, FATTR4_CHANGE, FATTR4_SIZE,
       FATTR4_FILEID, FATTR4_SPACE_USED, FATTR4_TIME_MODIFY});
  // Never written: an empty regular file.
  auto a0 = client_->GetAttr(fh, bits);
  ASSERT_TRUE(a0.ok()) << a0.status << " " << a0.error;
  EXPECT_EQ(a0.value.size, 0u);
  ASSERT_TRUE(client_->WriteFile(fh, anon_, 0, Pattern(5000, 1), UNSTABLE4).ok());
  auto a1 = client_->GetAttr(fh, bits);
  ASSERT_TRUE(a1.ok());
  EXPECT_EQ(a1.value.size, 5000u);
  EXPECT_GT(a1.value.space_used, 0u);
  EXPECT_GT(a1.value.mtime_sec, 0);
  EXPECT_NE(a1.value.change, a0.value.change);
  std::this_thread::sleep_for(30ms);  // past the file system's time tick
  ASSERT_TRUE(client_->WriteFile(fh, anon_, 9000, "x", UNSTABLE4).ok());
  auto a2 = client_->GetAttr(fh, bits);
  ASSERT_TRUE(a2.ok());
  EXPECT_EQ(a2.value.size, 9001u);
  EXPECT_NE(a2.value.change, a1.value.change);
  // What is supported is what a data server has: no owner, no mode.
  bool has_owner = false, has_size = false;
  for (size_t w = 0; w < a2.value.supported.size(); ++w) {
    for (int b = 0; b < 32; ++b) {
      if (!(a2.value.supported[w] >> b & 1)) continue;
      has_owner |= w * 32 + b == FATTR4_OWNER;
      has_size |= w * 32 + b == FATTR4_SIZE;
    }
  }
  EXPECT_TRUE(has_size);
  EXPECT_FALSE(has_owner);
}

TEST_F(DataPathTest, HandlesNotSignedWithThePnfsKeyAreBad) {
  auto putfh_status = [&](const Fh& fh) {
    nfs41client::Compound cp;
    cp.PutFh(fh);
    auto r = client_->Call(cp);
    EXPECT_TRUE(r.ok());
    return r.ok() && r->size() >= 2 ? r->op_status(1) : NFS4ERR_IO;
  };
  EXPECT_EQ(putfh_status(Handle(TestKey(), 42)), NFS4_OK);
  // The MDS's own handles: same format, its private fh.key.
  pnfs::Key mds_key = TestKey();
  mds_key[0] ^= 1;
  EXPECT_EQ(putfh_status(Handle(mds_key, 42)), NFS4ERR_BADHANDLE);
  // A forged one: a valid handle with its inode changed.
  Fh forged = Handle(TestKey(), 42);
  forged[12] ^= 0x01;
  EXPECT_EQ(putfh_status(forged), NFS4ERR_BADHANDLE);
  EXPECT_EQ(putfh_status(Fh(33, 0xab)), NFS4ERR_BADHANDLE);
  EXPECT_EQ(putfh_status(Fh(5, 1)), NFS4ERR_BADHANDLE);
  EXPECT_EQ(putfh_status(Fh{}), NFS4ERR_BADHANDLE);

  // And nothing is read or written through a refused handle.
  nfs41client::Compound cp;
  cp.PutFh(forged).Write(anon_, 0, "nope");
  auto r = client_->Call(cp);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status(), NFS4ERR_BADHANDLE);
  EXPECT_EQ(r->size(), 2u);  // SEQUENCE, PUTFH: processing stopped
}

TEST_F(DataPathTest, EverythingElseIsNotSupported) {
  const Fh fh = Handle(TestKey(), 42);
  auto second_status = [&](const std::function<void(nfs41client::Compound&)>& add) {
    nfs41client::Compound cp;
    cp.PutFh(fh);
    add(cp);
    auto r = client_->Call(cp);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r->size(), 3u);
    return r.ok() && r->size() == 3 ? r->op_status(2) : NFS4ERR_IO;
  };
  EXPECT_EQ(second_status([](auto& c) { c.Lookup("x"); }), NFS4ERR_NOTSUPP);
  EXPECT_EQ(second_status([](auto& c) {
              c.Open("x", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE, "o",
                     true);
            }),
            NFS4ERR_NOTSUPP);
  EXPECT_EQ(second_status([](auto& c) { c.Remove("x"); }), NFS4ERR_NOTSUPP);
  EXPECT_EQ(second_status([](auto& c) { c.SetMode(0600); }), NFS4ERR_NOTSUPP);
  EXPECT_EQ(second_status([](auto& c) {
              const verifier4 v{};
              c.ReadDir(0, v, 1024, 4096, {});
            }),
            NFS4ERR_NOTSUPP);
  EXPECT_EQ(second_status([](auto& c) { c.PutRootFh(); }), NFS4ERR_NOTSUPP);
  // NFSv4.0-only and undefined operations keep their generic answers.
  EXPECT_EQ(second_status([](auto& c) { c.RawOp(OP_RENEW, std::vector<uint8_t>(8)); }),
            NFS4ERR_NOTSUPP);
  EXPECT_EQ(second_status([](auto& c) { c.RawOp(999); }), NFS4ERR_OP_ILLEGAL);
}

TEST_F(DataPathTest, MalformedRequestsGetErrorsAndTheServerKeepsServing) {
  // A COMPOUND whose header does not decode: GARBAGE_ARGS.
  auto bad = client_->CallRaw({0xff, 0xff, 0xff, 0xff, 1, 2});
  EXPECT_FALSE(bad.ok());
  // WRITE with its data cut short: NFS4ERR_BADXDR for that op.
  nfs41client::Compound cp;
  cp.PutFh(Handle(TestKey(), 46))
      .RawOp(OP_WRITE, std::vector<uint8_t>{0, 0, 0, 1, 0, 0, 0});
  auto r = client_->Call(cp);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status(), NFS4ERR_BADXDR);
  // An invalid stable_how.
  WRITE4args wa{};
  wa.stable = static_cast<stable_how4>(7);
  nfs_argop4 op{};
  op.argop = OP_WRITE;
  op.nfs_argop4_u.opwrite = wa;
  nfs41client::Compound cp2;
  cp2.PutFh(Handle(TestKey(), 46)).Op(op);
  auto r2 = client_->Call(cp2);
  ASSERT_TRUE(r2.ok());
  EXPECT_NE(r2->status(), NFS4_OK);
  // Still serving, on the same connection and session.
  auto w = client_->WriteFile(Handle(TestKey(), 46), anon_, 0, "ok", UNSTABLE4);
  EXPECT_TRUE(w.ok());
}

TEST_F(DataPathTest, RandomBytesNeverStopTheServer) {
  std::mt19937 rng(20261123);
  const std::vector<uint32_t> ops = {OP_PUTFH, OP_READ, OP_WRITE, OP_COMMIT,
                                     OP_GETATTR, OP_EXCHANGE_ID,
                                     OP_CREATE_SESSION, OP_SEQUENCE,
                                     OP_BIND_CONN_TO_SESSION, OP_LOOKUP, 0,
                                     77};
  auto random_bytes = [&](size_t max) {
    std::vector<uint8_t> b(rng() % (max + 1));
    for (uint8_t& x : b) x = static_cast<uint8_t>(rng());
    return b;
  };
  for (int i = 0; i < 300; ++i) {
    nfs41client::Compound cp;
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int j = 0; j < n; ++j) {
      cp.RawOp(ops[rng() % ops.size()], random_bytes(48));
    }
    if (i % 2) {
      (void)client_->Call(cp);  // after SEQUENCE
    } else {
      (void)client_->CallNoSession(cp);
    }
    if (i % 10 == 0) (void)client_->CallRaw(random_bytes(64));
  }
  // The same session still works.
  const Fh fh = Handle(TestKey(), 47);
  ASSERT_TRUE(client_->WriteFile(fh, anon_, 0, "alive", UNSTABLE4).ok());
  auto r = client_->ReadFile(fh, anon_, 0, 5);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value.data, "alive");
}

TEST_F(DataPathTest, NoOpNeedsAFilehandleItDoesNotHave) {
  nfs41client::Compound cp;
  cp.Read(anon_, 0, 10);
  auto r = client_->Call(cp);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status(), NFS4ERR_NOFILEHANDLE);
}

}  // namespace
}  // namespace dataserver
