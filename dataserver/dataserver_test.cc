// dataserver tests over real TCP on 127.0.0.1: the NFSv4.1 data path
// (in-process DataServer, driven by nfs41client), the daemon binary
// (restart, verifier, flags), and the control loop against an in-test MDS
// stand-in serving NSCTL_PROG.

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "dataserver/control.h"
#include "dataserver/daemon.h"
#include "dataserver/ds_server.h"
#include "dataserver/identity.h"
#include "nfs41client/client.h"
#include "nfs41d/fh.h"
#include "pnfs/auth.h"
#include "pnfs/nsctl.h"
#include "rpc/server.h"
#include "rpc/xdr_codec.h"

namespace dataserver {
namespace {

using namespace std::chrono_literals;
using nfs41client::Fh;

pnfs::Key TestKey() {
  pnfs::Key k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i * 7 + 1);
  return k;
}

std::string MakeTempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "dstest.XXXXXX").string();
  char* p = ::mkdtemp(tmpl.data());
  EXPECT_NE(p, nullptr);
  return tmpl;
}

void WriteKeyFile(const std::string& path, const pnfs::Key& key) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(key.data()), key.size());
}

Fh Handle(const pnfs::Key& key, uint64_t ino) {
  nfs41d::FhCodec codec(key);
  return codec.Encode({.ino = ino, .generation = 0, .export_id = 0});
}

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + seed) & 0xff);
  return s;
}

uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds t) {
  const auto end = std::chrono::steady_clock::now() + t;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

std::unique_ptr<nfs41client::Client> Connect(uint16_t port,
                                             bool back_channel = false) {
  nfs41client::ClientOptions co;
  co.back_channel = back_channel;
  auto c = nfs41client::Client::Connect("127.0.0.1", port, co);
  if (!c.ok()) {
    ADD_FAILURE() << "connect: " << c.status().ToString();
    return nullptr;
  }
  EXPECT_EQ((*c)->EstablishSession(), NFS4_OK);
  return std::move(c).value();
}

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

// ---------------------------------------------------------- the binary

struct Proc {
  pid_t pid = -1;
  std::string log;  // stderr file
};

Proc Spawn(const std::vector<std::string>& args, const std::string& log) {
  Proc p;
  p.log = log;
  p.pid = ::fork();
  if (p.pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    ::dup2(fd, 1);
    std::vector<char*> argv;
    std::string bin = DATASERVER_BINARY;
    argv.push_back(bin.data());
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  return p;
}

// Exit status (or 128+signal); -1 on timeout (the process is then killed).
int Wait(const Proc& p, std::chrono::milliseconds timeout = 10s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  int st = 0;
  while (std::chrono::steady_clock::now() < end) {
    pid_t r = ::waitpid(p.pid, &st, WNOHANG);
    if (r == p.pid) {
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    std::this_thread::sleep_for(20ms);
  }
  ::kill(p.pid, SIGKILL);
  ::waitpid(p.pid, &st, 0);
  return -1;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::unique_ptr<nfs41client::Client> ConnectWhenUp(uint16_t port) {
  std::unique_ptr<nfs41client::Client> c;
  WaitFor(
      [&] {
        nfs41client::ClientOptions co;
        co.back_channel = false;
        auto r = nfs41client::Client::Connect("127.0.0.1", port, co);
        if (!r.ok()) return false;
        c = std::move(r).value();
        return true;
      },
      10s);
  if (c) {
    EXPECT_EQ(c->EstablishSession(), NFS4_OK);
  }
  return c;
}

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    WriteKeyFile(dir_ + "/pnfs.key", TestKey());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::vector<std::string> Args(uint16_t port, uint16_t mds_port) {
    return {"--listen", "127.0.0.1:" + std::to_string(port), "--mds",
            "127.0.0.1:" + std::to_string(mds_port), "--data-dir", dir_,
            "--workers", "2"};
  }
  std::string dir_;
};

TEST_F(DaemonTest, CommittedDataSurvivesSigkillAndTheVerifierChanges) {
  const uint16_t port = FreePort();
  const uint16_t no_mds = FreePort();  // nothing listens: it keeps retrying
  Proc p = Spawn(Args(port, no_mds), dir_ + "/log1");
  const Fh fh = Handle(TestKey(), 77);
  const std::string data = Pattern(300000, 9);
  std::array<uint8_t, NFS4_VERIFIER_SIZE> verf1{};
  {
    auto c = ConnectWhenUp(port);
    ASSERT_NE(c, nullptr) << ReadAll(p.log);
    auto w = c->WriteFile(fh, stateid4{}, 4096, data, UNSTABLE4);
    ASSERT_TRUE(w.ok());
    verf1 = w.value.verf;
    auto cm = c->CommitFile(fh);
    ASSERT_TRUE(cm.ok());
    EXPECT_EQ(cm.value, verf1);
  }
  ::kill(p.pid, SIGKILL);
  EXPECT_EQ(Wait(p), 128 + SIGKILL);
  const std::string uuid1 = ReadAll(dir_ + "/ds.uuid");
  EXPECT_EQ(uuid1.size(), 37u);

  Proc q = Spawn(Args(port, no_mds), dir_ + "/log2");
  {
    auto c = ConnectWhenUp(port);
    ASSERT_NE(c, nullptr) << ReadAll(q.log);
    auto r = c->ReadFile(fh, stateid4{}, 4096, 400000);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value.data, data);
    auto hole = c->ReadFile(fh, stateid4{}, 0, 4096);
    ASSERT_TRUE(hole.ok());
    EXPECT_EQ(hole.value.data, std::string(4096, '\0'));
    auto w = c->WriteFile(fh, stateid4{}, 0, "new", UNSTABLE4);
    ASSERT_TRUE(w.ok());
    EXPECT_NE(w.value.verf, verf1);  // clients resend uncommitted writes
  }
  EXPECT_EQ(ReadAll(dir_ + "/ds.uuid"), uuid1);  // the same data server
  // It logs that the MDS is unreachable, and SIGTERM stops it cleanly and
  // at once, though it is between registration attempts.
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(q.pid, SIGTERM);
  EXPECT_EQ(Wait(q), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  const std::string log = ReadAll(q.log);
  EXPECT_NE(log.find("unreachable"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped"), std::string::npos) << log;
}

TEST_F(DaemonTest, BadArgumentsExitNonZeroWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::string port = "127.0.0.1:" + std::to_string(FreePort());
  const std::vector<Case> cases = {
      {{"--listen", port, "--mds", port, "--data-dir", dir_, "--bogus"},
       "bogus"},
      {{"--listen", port, "--mds", port}, "--data-dir"},
      {{"--listen", "nonsense", "--mds", port, "--data-dir", dir_}, "--listen"},
      {{"--listen", port, "--mds", "x", "--data-dir", dir_}, "--mds"},
      {{"--listen", "0.0.0.0:2049", "--mds", port, "--data-dir", dir_},
       "--advertise"},
      {{"--listen", port, "--mds", port, "--data-dir", dir_, "--key-file",
        dir_ + "/missing.key"},
       "missing.key"},
      {{"--listen", port, "--mds", port, "--data-dir", dir_, "--log-level",
        "loud"},
       "--log-level"},
      {{"--listen", port, "--mds", port, "--data-dir", "/proc/nope"},
       "/proc/nope"},
  };
  for (const Case& c : cases) {
    Proc p = Spawn(c.args, dir_ + "/log");
    const int rc = Wait(p);
    const std::string log = ReadAll(p.log);
    EXPECT_GT(rc, 0) << c.message << ": " << log;
    EXPECT_NE(log.find(c.message), std::string::npos)
        << "want '" << c.message << "' in: " << log;
  }
  // A key of the wrong size.
  std::ofstream(dir_ + "/short.key") << "short";
  Proc p = Spawn({"--listen", port, "--mds", port, "--data-dir", dir_,
                  "--key-file", dir_ + "/short.key"},
                 dir_ + "/log");
  EXPECT_EQ(Wait(p), 1);
  EXPECT_NE(ReadAll(p.log).find("32 bytes"), std::string::npos);
}

// ------------------------------------------------------------- control

// What the stand-in MDS saw and will answer.
class FakeMds {
 public:
  explicit FakeMds(uint16_t port = 0) {
    rpc::ServerOptions o;
    o.port = port;
    o.worker_threads = 2;
    server_ = std::make_unique<rpc::Server>(o);
    server_->Register(
        rpc::Program(NSCTL_PROG, NSCTL_V1, NSCTL_V1)
            .WithNull()
            .On(NSCTL_REGISTER,
                [this](const rpc::CallContext&, std::span<const uint8_t> a) {
                  return OnRegister(a);
                })
            .On(NSCTL_HEARTBEAT,
                [this](const rpc::CallContext&, std::span<const uint8_t> a) {
                  return OnHeartbeat(a);
                }));
    EXPECT_TRUE(server_->Start().ok());
  }
  ~FakeMds() { server_->Stop(); }
  uint16_t port() const { return server_->port(); }

  struct Registration {
    std::string uuid, advertise, listen;
    bool proof_ok = false;
  };
  struct Beat {
    uint64_t device_id = 0;
    bool proof_ok = false;
    std::vector<std::pair<uint64_t, int32_t>> done;
  };

  std::mutex mu;
  pnfs::Key key = TestKey();
  uint64_t next_device = 17;
  std::vector<Registration> registrations;
  std::vector<Beat> beats;
  std::vector<nsctl_work> work;       // delivered with the next heartbeat
  bool forget_device = false;         // next heartbeat: UNKNOWN_DEVICE
  int garbage_replies = 0;            // this many replies that do not decode
  int delay_replies = 0;              // then this many NSCTL_ERR_DELAY
  std::set<uint64_t> known_devices;

  size_t registration_count() {
    std::lock_guard l(mu);
    return registrations.size();
  }
  // The results reported for `work_id`, or nullopt.
  std::optional<int32_t> Reported(uint64_t work_id) {
    std::lock_guard l(mu);
    for (const Beat& b : beats) {
      for (auto [id, err] : b.done) {
        if (id == work_id) return err;
      }
    }
    return std::nullopt;
  }

 private:
  rpc::Reply OnRegister(std::span<const uint8_t> bytes) {
    rpc::XdrOwned<nsctl_register_args> a(xdr_nsctl_register_args);
    if (!a.DecodeAll(bytes)) return rpc::Reply::GarbageArgs();
    std::lock_guard l(mu);
    Registration r;
    r.uuid.assign(a->ds_uuid.ds_uuid_val, a->ds_uuid.ds_uuid_len);
    r.advertise = a->advertise;
    r.listen = a->listen;
    const pnfs::Proof want = pnfs::RegisterProof(
        key,
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(r.uuid.data()),
                                 r.uuid.size()),
        r.advertise, r.listen);
    r.proof_ok = pnfs::ProofMatches(
        want, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(a->proof),
                                       NSCTL_PROOF_LEN));
    registrations.push_back(r);
    nsctl_register_res res{};
    if (garbage_replies > 0) {
      --garbage_replies;
      return rpc::Reply::Success({0, 0, 0, 0, 0, 0, 0, 1});
    }
    if (delay_replies > 0) {
      --delay_replies;
      res.status = NSCTL_ERR_DELAY;
    } else if (!r.proof_ok) {
      res.status = NSCTL_ERR_AUTH;
    } else {
      res.status = NSCTL_OK;
      const uint64_t device = next_device++;
      known_devices.insert(device);
      res.nsctl_register_res_u.ok.device_id = device;
      res.nsctl_register_res_u.ok.heartbeat_seconds = 1;
      res.nsctl_register_res_u.ok.expire_seconds = 5;
    }
    return rpc::Reply::Success(*rpc::XdrEncode(xdr_nsctl_register_res, res));
  }

  rpc::Reply OnHeartbeat(std::span<const uint8_t> bytes) {
    rpc::XdrOwned<nsctl_heartbeat_args> a(xdr_nsctl_heartbeat_args);
    if (!a.DecodeAll(bytes)) return rpc::Reply::GarbageArgs();
    std::lock_guard l(mu);
    Beat b;
    b.device_id = a->device_id;
    const pnfs::Proof want = pnfs::HeartbeatProof(
        key, a->device_id,
        std::span<const uint8_t>(
            reinterpret_cast<const uint8_t*>(a->ds_uuid.ds_uuid_val),
            a->ds_uuid.ds_uuid_len));
    b.proof_ok = pnfs::ProofMatches(
        want, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(a->proof),
                                       NSCTL_PROOF_LEN));
    for (u_int i = 0; i < a->done.done_len; ++i) {
      b.done.emplace_back(a->done.done_val[i].work_id,
                          a->done.done_val[i].error);
    }
    beats.push_back(b);
    nsctl_heartbeat_res res{};
    std::vector<nsctl_work> out;
    if (!b.proof_ok) {
      res.status = NSCTL_ERR_AUTH;
    } else if (forget_device || !known_devices.count(b.device_id)) {
      forget_device = false;
      known_devices.clear();
      res.status = NSCTL_ERR_UNKNOWN_DEVICE;
    } else {
      res.status = NSCTL_OK;
      out.swap(work);
      res.nsctl_heartbeat_res_u.work.work_len = static_cast<u_int>(out.size());
      res.nsctl_heartbeat_res_u.work.work_val = out.data();
    }
    return rpc::Reply::Success(*rpc::XdrEncode(xdr_nsctl_heartbeat_res, res));
  }

  std::unique_ptr<rpc::Server> server_;
};

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    DataServerOptions o;
    o.data_dir = dir_;
    o.key = TestKey();
    o.worker_threads = 2;
    ds_ = std::make_unique<DataServer>(o);
    ASSERT_EQ(ds_->Start(), "");
  }
  void TearDown() override {
    if (control_) control_->Stop();
    ds_->Stop();
    std::filesystem::remove_all(dir_);
  }
  void StartControl(uint16_t mds_port, pnfs::Key key = TestKey()) {
    ControlOptions co;
    co.mds_host = "127.0.0.1";
    co.mds_port = mds_port;
    co.uuid = "0f0e0d0c-0b0a-4908-8706-050403020100";
    co.listen = "127.0.0.1:" + std::to_string(ds_->port());
    co.advertise = "10.0.2.2:" + std::to_string(ds_->port());
    co.key = key;
    co.store = ds_.get();
    co.data_dir = dir_;
    co.initial_backoff = 50ms;
    co.max_backoff = 200ms;
    co.call_timeout = 2s;
    control_ = std::make_unique<ControlClient>(co);
    control_->Start();
  }
  std::string dir_;
  std::unique_ptr<DataServer> ds_;
  std::unique_ptr<ControlClient> control_;
};

TEST_F(ControlTest, RegistersWithAProofAndCarriesOutWork) {
  FakeMds mds;
  StartControl(mds.port());
  ASSERT_TRUE(WaitFor([&] { return control_->registered(); }, 5s));
  EXPECT_EQ(control_->device_id(), 17u);
  {
    std::lock_guard l(mds.mu);
    ASSERT_EQ(mds.registrations.size(), 1u);
    const FakeMds::Registration& r = mds.registrations[0];
    EXPECT_TRUE(r.proof_ok);
    EXPECT_EQ(r.uuid, "0f0e0d0c-0b0a-4908-8706-050403020100");
    EXPECT_EQ(r.listen, "127.0.0.1:" + std::to_string(ds_->port()));
    EXPECT_EQ(r.advertise, "10.0.2.2:" + std::to_string(ds_->port()));
  }
  // Two stripe files, written through NFS.
  auto c = Connect(ds_->port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->WriteFile(Handle(TestKey(), 7), stateid4{}, 0,
                           Pattern(10000, 1), FILE_SYNC4).ok());
  ASSERT_TRUE(c->WriteFile(Handle(TestKey(), 8), stateid4{}, 0,
                           Pattern(10000, 2), FILE_SYNC4).ok());
  ASSERT_TRUE(c->WriteFile(Handle(TestKey(), 11), stateid4{}, 0,
                           Pattern(10000, 3), FILE_SYNC4).ok());
  {
    std::lock_guard l(mds.mu);
    mds.work.push_back({.work_id = 100, .op = NSCTL_REMOVE, .fileid = 7, .size = 0});
    mds.work.push_back({.work_id = 101, .op = NSCTL_TRUNCATE, .fileid = 8, .size = 10});
    mds.work.push_back({.work_id = 102, .op = NSCTL_REMOVE, .fileid = 9, .size = 0});
    // Truncates never grow or make a stripe file: past its end it reads
    // as zeros anyway.
    mds.work.push_back({.work_id = 103, .op = NSCTL_TRUNCATE, .fileid = 10, .size = 5000});
    mds.work.push_back({.work_id = 104, .op = NSCTL_TRUNCATE, .fileid = 11, .size = 1u << 30});
    mds.work.push_back({.work_id = 105, .op = static_cast<nsctl_work_op>(9), .fileid = 11, .size = 0});
  }
  // Carried out, then reported in a later heartbeat.
  ASSERT_TRUE(WaitFor([&] { return mds.Reported(105).has_value(); }, 6s));
  EXPECT_EQ(mds.Reported(100), 0);
  EXPECT_EQ(mds.Reported(101), 0);
  EXPECT_EQ(mds.Reported(102), 0);  // absent: nothing to remove, no error
  EXPECT_EQ(mds.Reported(103), 0);
  EXPECT_EQ(mds.Reported(104), 0);
  EXPECT_EQ(mds.Reported(105), EOPNOTSUPP);  // kept by the MDS, not lost
  EXPECT_EQ(control_->work_done(), 5u);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/data/" +
                                       nfs41d::data::LocalDataPath(10)));
  EXPECT_EQ(std::filesystem::file_size(dir_ + "/data/" +
                                       nfs41d::data::LocalDataPath(11)),
            10000u);
  auto gone = c->ReadFile(Handle(TestKey(), 7), stateid4{}, 0, 100);
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone.value.data, "");
  EXPECT_TRUE(gone.value.eof);
  auto cut = c->ReadFile(Handle(TestKey(), 8), stateid4{}, 0, 100);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut.value.data, Pattern(10000, 2).substr(0, 10));
  std::lock_guard l(mds.mu);
  for (const FakeMds::Beat& b : mds.beats) {
    EXPECT_TRUE(b.proof_ok);
    EXPECT_EQ(b.device_id, 17u);
  }
  // Each result is reported once.
  size_t reports = 0;
  for (const FakeMds::Beat& b : mds.beats) reports += b.done.size();
  EXPECT_EQ(reports, 6u);
}

TEST_F(ControlTest, HeartbeatsAtTheIntervalTheMdsGives) {
  FakeMds mds;  // heartbeat_seconds = 1
  StartControl(mds.port());
  ASSERT_TRUE(WaitFor([&] { return control_->registered(); }, 5s));
  std::this_thread::sleep_for(3500ms);
  // One right after registering, then one a second: about 4. Loose bounds
  // for a loaded machine; a spinning or stalled loop is far outside them.
  const uint64_t n = control_->heartbeats();
  EXPECT_GE(n, 2u);
  EXPECT_LE(n, 6u);
}

TEST_F(ControlTest, RegistersAgainAfterUnknownDevice) {
  FakeMds mds;
  StartControl(mds.port());
  ASSERT_TRUE(WaitFor([&] { return control_->registered(); }, 5s));
  {
    std::lock_guard l(mds.mu);
    mds.forget_device = true;
  }
  ASSERT_TRUE(WaitFor([&] { return mds.registration_count() >= 2; }, 5s));
  ASSERT_TRUE(WaitFor([&] { return control_->device_id() == 18u; }, 5s));
  const uint64_t beats = control_->heartbeats();
  ASSERT_TRUE(WaitFor([&] { return control_->heartbeats() > beats; }, 5s));
  std::lock_guard l(mds.mu);
  EXPECT_EQ(mds.beats.back().device_id, 18u);
  EXPECT_TRUE(mds.beats.back().proof_ok);
}

TEST_F(ControlTest, RetriesUntilTheMdsComesUp) {
  const uint16_t port = FreePort();
  StartControl(port);
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(control_->registered());
  FakeMds mds(port);
  ASSERT_TRUE(WaitFor([&] { return control_->registered(); }, 5s));
  EXPECT_EQ(mds.registration_count(), 1u);
}

TEST_F(ControlTest, SurvivesRepliesThatDoNotDecodeAndDelays) {
  FakeMds mds;
  {
    std::lock_guard l(mds.mu);
    mds.garbage_replies = 2;
    mds.delay_replies = 2;
  }
  StartControl(mds.port());
  ASSERT_TRUE(WaitFor([&] { return control_->registered(); }, 5s));
  EXPECT_EQ(mds.registration_count(), 5u);
}

TEST_F(ControlTest, AWrongKeyIsRefusedAndNeverRegisters) {
  FakeMds mds;
  pnfs::Key other = TestKey();
  other[31] ^= 0x80;
  StartControl(mds.port(), other);
  ASSERT_TRUE(WaitFor([&] { return mds.registration_count() >= 2; }, 5s));
  EXPECT_FALSE(control_->registered());
  std::lock_guard l(mds.mu);
  EXPECT_FALSE(mds.registrations[0].proof_ok);
}

TEST_F(DaemonTest, TheDaemonRegistersWithItsUuidAndAddresses) {
  FakeMds mds;
  const uint16_t port = FreePort();
  std::vector<std::string> args = Args(port, mds.port());
  args.push_back("--advertise");
  args.push_back("192.0.2.1:2049");
  Proc p = Spawn(args, dir_ + "/log");
  ASSERT_TRUE(WaitFor([&] { return mds.registration_count() >= 1; }, 10s))
      << ReadAll(p.log);
  std::string uuid = ReadAll(dir_ + "/ds.uuid");
  uuid.pop_back();  // newline
  {
    std::lock_guard l(mds.mu);
    const FakeMds::Registration& r = mds.registrations[0];
    EXPECT_TRUE(r.proof_ok);
    EXPECT_EQ(r.uuid, uuid);
    EXPECT_EQ(r.advertise, "192.0.2.1:2049");
    EXPECT_EQ(r.listen, "127.0.0.1:" + std::to_string(port));
  }
  ::kill(p.pid, SIGTERM);
  EXPECT_EQ(Wait(p), 0);
}

TEST(InProcessDaemons, ThreeDataServersRegisterAsThreeDevices) {
  FakeMds mds;
  std::vector<std::string> dirs;
  std::vector<std::unique_ptr<Daemon>> ds;
  for (int i = 0; i < 3; ++i) {
    dirs.push_back(MakeTempDir());
    WriteKeyFile(dirs.back() + "/pnfs.key", TestKey());
    DaemonOptions o;
    o.data_dir = dirs.back();
    o.mds_port = mds.port();
    o.worker_threads = 2;
    o.initial_backoff = 50ms;
    ds.push_back(std::make_unique<Daemon>(o));
    ASSERT_EQ(ds.back()->Start(), "");
  }
  for (auto& d : ds) {
    ASSERT_TRUE(WaitFor([&] { return d->control().registered(); }, 5s));
  }
  EXPECT_NE(ds[0]->uuid(), ds[1]->uuid());
  EXPECT_NE(ds[1]->uuid(), ds[2]->uuid());
  EXPECT_NE(ds[0]->control().device_id(), ds[1]->control().device_id());
  {
    std::lock_guard l(mds.mu);
    ASSERT_EQ(mds.registrations.size(), 3u);
    for (const FakeMds::Registration& r : mds.registrations) {
      EXPECT_TRUE(r.proof_ok);
      EXPECT_EQ(r.listen, r.advertise);
    }
  }
  // Each serves its own stripes.
  for (int i = 0; i < 3; ++i) {
    auto c = Connect(ds[i]->port());
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->WriteFile(Handle(TestKey(), 1), stateid4{}, i * 100,
                             "stripe" + std::to_string(i), FILE_SYNC4).ok());
  }
  for (int i = 0; i < 3; ++i) {
    ds[i]->Stop();
    EXPECT_EQ(std::filesystem::file_size(dirs[i] + "/data/" +
                                         nfs41d::data::LocalDataPath(1)),
              i * 100 + 7u);
    std::filesystem::remove_all(dirs[i]);
  }
}

TEST(InProcessDaemons, AFileStripedOverThreeDataServersReadsBackWhole) {
  // What a files-layout client does with a sparse layout (RFC 8881
  // §13.4.2, no NFL4_UFLG_DENSE): stripe unit i goes to data server
  // i % 3 at its logical offset; COMMIT to each; read back unit by unit.
  FakeMds mds;
  std::vector<std::string> dirs;
  std::vector<std::unique_ptr<Daemon>> ds;
  std::vector<std::unique_ptr<nfs41client::Client>> cl;
  for (int i = 0; i < 3; ++i) {
    dirs.push_back(MakeTempDir());
    WriteKeyFile(dirs.back() + "/pnfs.key", TestKey());
    DaemonOptions o;
    o.data_dir = dirs.back();
    o.mds_port = mds.port();
    o.worker_threads = 2;
    ds.push_back(std::make_unique<Daemon>(o));
    ASSERT_EQ(ds.back()->Start(), "");
    cl.push_back(Connect(ds.back()->port()));
    ASSERT_NE(cl.back(), nullptr);
  }
  const uint64_t unit = 64u << 10;
  const std::string file = Pattern(20 * unit + 123, 11);
  const Fh fh = Handle(TestKey(), 4242);
  for (uint64_t off = 0, i = 0; off < file.size(); off += unit, ++i) {
    auto w = cl[i % 3]->WriteFile(fh, stateid4{}, off, file.substr(off, unit),
                                  UNSTABLE4);
    ASSERT_TRUE(w.ok()) << i;
  }
  for (auto& c : cl) ASSERT_TRUE(c->CommitFile(fh).ok());
  std::string back;
  for (uint64_t off = 0, i = 0; off < file.size(); off += unit, ++i) {
    auto r = cl[i % 3]->ReadFile(fh, stateid4{}, off, unit);
    ASSERT_TRUE(r.ok()) << i;
    back += r.value.data;
  }
  EXPECT_EQ(back.size(), file.size());
  EXPECT_TRUE(back == file);
  // Each stripe file is sparse: a third of the bytes, holes for the rest.
  for (int i = 0; i < 3; ++i) {
    auto a = cl[i]->GetAttr(fh, nfs41client::Bits({FATTR4_SIZE, FATTR4_SPACE_USED}));
    ASSERT_TRUE(a.ok());
    EXPECT_LT(a.value.space_used, a.value.size * 2 / 3) << i;
    // A read in another server's unit: zeros, and not the end.
    auto hole = cl[i]->ReadFile(fh, stateid4{}, ((i + 1) % 3) * unit, 16);
    ASSERT_TRUE(hole.ok());
    EXPECT_EQ(hole.value.data, std::string(16, '\0')) << i;
  }
  cl.clear();
  for (int i = 0; i < 3; ++i) {
    ds[i]->Stop();
    std::filesystem::remove_all(dirs[i]);
  }
}

std::string HttpGet(uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)::write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, n);
  ::close(fd);
  return out;
}

TEST(InProcessDaemons, MetricsShowOpsAndTheControlLoop) {
  FakeMds mds;
  const std::string dir = MakeTempDir();
  WriteKeyFile(dir + "/pnfs.key", TestKey());
  DaemonOptions o;
  o.data_dir = dir;
  o.mds_port = mds.port();
  o.worker_threads = 2;
  o.server.metrics_host = "127.0.0.1";
  Daemon d(o);
  ASSERT_EQ(d.Start(), "");
  ASSERT_NE(d.server().metrics_port(), 0);
  ASSERT_TRUE(WaitFor([&] { return d.control().heartbeats() >= 1; }, 5s));
  auto c = Connect(d.port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->WriteFile(Handle(TestKey(), 3), stateid4{}, 0, "m", UNSTABLE4).ok());
  nfs41client::Compound bad;
  bad.PutFh(Fh(33, 0));
  ASSERT_TRUE(c->Call(bad).ok());
  const std::string m = HttpGet(d.server().metrics_port(), "/metrics");
  EXPECT_NE(m.find("nfs41d_ops_total{op=\"WRITE\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("status=\"NFS4ERR_BADHANDLE\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("dataserver_registered 1"), std::string::npos) << m;
  EXPECT_NE(m.find("dataserver_sessions 1"), std::string::npos) << m;
  EXPECT_NE(m.find("dataserver_heartbeats_total"), std::string::npos) << m;
  c.reset();
  d.Stop();
  std::filesystem::remove_all(dir);
}

TEST(InProcessDaemons, StartFailsWithoutTheKey) {
  const std::string dir = MakeTempDir();
  DaemonOptions o;
  o.data_dir = dir;
  o.mds_port = 1;
  Daemon d(o);
  const std::string e = d.Start();
  EXPECT_NE(e.find("pnfs.key"), std::string::npos) << e;
  std::filesystem::remove_all(dir);
}

TEST(Identity, UuidIsCreatedOnceAndKeyMustExist) {
  const std::string dir = MakeTempDir();
  std::string err;
  auto u1 = LoadOrCreateUuid(dir, &err);
  ASSERT_TRUE(u1) << err;
  EXPECT_EQ(u1->size(), 36u);
  EXPECT_EQ((*u1)[14], '4');
  auto u2 = LoadOrCreateUuid(dir, &err);
  ASSERT_TRUE(u2);
  EXPECT_EQ(*u1, *u2);
  EXPECT_FALSE(LoadKey(dir + "/none", &err));
  EXPECT_NE(err.find("none"), std::string::npos);
  WriteKeyFile(dir + "/k", TestKey());
  auto k = LoadKey(dir + "/k", &err);
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, TestKey());
  std::ofstream(dir + "/ds.uuid") << "garbage\n";
  EXPECT_FALSE(LoadOrCreateUuid(dir, &err));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dataserver
