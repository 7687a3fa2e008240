// Protocol tests: the real server over TCP on 127.0.0.1:0 with a temporary
// SQLite namespace, driven by nfs41client.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>

#include "nfs41client/client.h"
#include "nfs41d/server.h"
#include "nfs41d/status_map.h"

namespace nfs41d {
namespace {

using nfs41client::Bits;
using nfs41client::Client;
using nfs41client::Compound;
using nfs41client::Fh;

std::atomic<int> g_dir_counter{0};

class Nfs41Test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("nfs41d-test-" + std::to_string(getpid()) + "-" +
            std::to_string(g_dir_counter++));
    std::filesystem::remove_all(dir_);
    ServerOptions o;
    o.port = 0;
    o.data_dir = dir_;
    o.worker_threads = 2;
    o.durable = false;
    o.state.max_operations = 16;
    server_ = std::make_unique<Nfs41Server>(o);
    ASSERT_EQ(server_->Start(), "");
    client_ = Connect();
    ASSERT_TRUE(client_);
    ASSERT_EQ(client_->EstablishSession(), NFS4_OK);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<Client> Connect(nfs41client::ClientOptions o = {}) {
    auto c = Client::Connect("127.0.0.1", server_->port(), o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  Fh Root() {
    auto r = client_->RootFh();
    EXPECT_EQ(r.status, NFS4_OK);
    return r.value;
  }

  std::string dir_;
  std::unique_ptr<Nfs41Server> server_;
  std::unique_ptr<Client> client_;
};

#define EXPECT_NFS(expr, want) \
  EXPECT_STREQ(NfsStatName(expr), NfsStatName(want))

TEST_F(Nfs41Test, SessionSetup) {
  // nfs41d is a pNFS metadata server (RFC 8881 §13.1, docs/pnfs.md).
  EXPECT_EQ(client_->exchange_flags() & EXCHGID4_FLAG_MASK_PNFS,
            EXCHGID4_FLAG_USE_PNFS_MDS);
  EXPECT_FALSE(client_->exchange_flags() & EXCHGID4_FLAG_CONFIRMED_R);
  EXPECT_GE(client_->slot_count(), 16u);
  EXPECT_EQ(server_->state().client_count(), 1u);
  EXPECT_EQ(server_->state().session_count(), 1u);
  // EXCHANGE_ID again, same owner and verifier: the confirmed record.
  clientid4 id = client_->client_id();
  EXPECT_NFS(client_->ExchangeId(), NFS4_OK);
  EXPECT_EQ(client_->client_id(), id);
  EXPECT_TRUE(client_->exchange_flags() & EXCHGID4_FLAG_CONFIRMED_R);
}

TEST_F(Nfs41Test, SixtyFourSlotsWhenAsked) {
  nfs41client::ClientOptions o;
  o.slots = 64;
  auto c = Connect(o);
  ASSERT_EQ(c->EstablishSession(), NFS4_OK);
  EXPECT_EQ(c->slot_count(), 64u);
}

TEST_F(Nfs41Test, SequenceAlone) {
  auto r = client_->Call(Compound());
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4_OK);
  ASSERT_EQ(r->size(), 1u);
  const SEQUENCE4resok& ok =
      r->op(0).nfs_resop4_u.opsequence.SEQUENCE4res_u.sr_resok4;
  EXPECT_EQ(ok.sr_sequenceid, 1u);
  EXPECT_EQ(ok.sr_highest_slotid, client_->slot_count() - 1);
}

TEST_F(Nfs41Test, SlotReplayReturnsCachedReply) {
  Compound c;
  c.PutRootFh().Create(NF4DIR, "once", 0755).GetFh();
  auto first = client_->CallOnSlot(c, 3, 1, true);
  ASSERT_TRUE(first.ok());
  EXPECT_NFS(first->status(), NFS4_OK);
  // The same request again: the cached reply, not a second CREATE (EXIST).
  auto again = client_->CallOnSlot(c, 3, 1, true);
  ASSERT_TRUE(again.ok());
  EXPECT_NFS(again->status(), NFS4_OK);
  ASSERT_EQ(again->size(), 4u);
  EXPECT_EQ(*first->LastFh(), *again->LastFh());
  // A new request on the slot executes.
  auto next = client_->CallOnSlot(c, 3, 2, true);
  ASSERT_TRUE(next.ok());
  EXPECT_NFS(next->status(), NFS4ERR_EXIST);
}

TEST_F(Nfs41Test, MisorderedAndFalseRetryAndBadSlot) {
  Compound c;
  c.PutRootFh();
  auto r = client_->CallOnSlot(c, 0, 5, false);
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4ERR_SEQ_MISORDERED);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->op(0).resop, OP_SEQUENCE);

  auto ok = client_->CallOnSlot(c, 0, 1, false);
  ASSERT_TRUE(ok.ok());
  EXPECT_NFS(ok->status(), NFS4_OK);
  Compound other;
  other.PutRootFh().GetFh();
  auto fr = client_->CallOnSlot(other, 0, 1, false);
  ASSERT_TRUE(fr.ok());
  EXPECT_NFS(fr->status(), NFS4ERR_SEQ_FALSE_RETRY);
  auto old = client_->CallOnSlot(c, 0, 0, false);
  ASSERT_TRUE(old.ok());
  EXPECT_NFS(old->status(), NFS4ERR_SEQ_MISORDERED);

  auto bad = client_->CallOnSlot(c, 100000, 1, false);
  ASSERT_TRUE(bad.ok());
  EXPECT_NFS(bad->status(), NFS4ERR_BADSLOT);
}

TEST_F(Nfs41Test, UndefinedOperationIsIllegal) {
  for (uint32_t opnum : {0u, 1u, 2u, 59u, 9999u, uint32_t{OP_ILLEGAL}}) {
    Compound c;
    c.PutRootFh().RawOp(opnum).GetFh();
    auto r = client_->Call(c);
    ASSERT_TRUE(r.ok());
    EXPECT_NFS(r->status(), NFS4ERR_OP_ILLEGAL);
    ASSERT_EQ(r->size(), 3u) << opnum;
    EXPECT_EQ(r->op(2).resop, OP_ILLEGAL);
    EXPECT_NFS(r->op_status(2), NFS4ERR_OP_ILLEGAL);
  }
  // Alone, without SEQUENCE.
  Compound c;
  c.RawOp(12345);
  auto r = client_->CallNoSession(c);
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4ERR_OP_ILLEGAL);
  EXPECT_EQ(r->op(0).resop, OP_ILLEGAL);
}

TEST_F(Nfs41Test, MinorVersionMismatch) {
  for (uint32_t minor : {0u, 2u, 7u}) {
    Compound c("tag-kept");
    c.PutRootFh().GetFh();
    auto r = client_->CallNoSession(c, minor);
    ASSERT_TRUE(r.ok());
    EXPECT_NFS(r->status(), NFS4ERR_MINOR_VERS_MISMATCH);
    EXPECT_EQ(r->size(), 0u);
    EXPECT_EQ(std::string(r->get().tag.utf8string_val,
                          r->get().tag.utf8string_len),
              "tag-kept");
  }
}

TEST_F(Nfs41Test, SequenceRules) {
  Compound c;
  c.PutRootFh().GetFh();
  auto r = client_->CallNoSession(c);
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4ERR_OP_NOT_IN_SESSION);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->op(0).resop, OP_PUTROOTFH);

  // SEQUENCE in second position.
  nfs_argop4 seq{};
  seq.argop = OP_SEQUENCE;
  std::memcpy(seq.nfs_argop4_u.opsequence.sa_sessionid,
              client_->session_id(), NFS4_SESSIONID_SIZE);
  seq.nfs_argop4_u.opsequence.sa_sequenceid = 1;
  Compound two;
  two.PutRootFh().Op(seq);
  auto r2 = client_->Call(two);
  ASSERT_TRUE(r2.ok());
  EXPECT_NFS(r2->status(), NFS4ERR_SEQUENCE_POS);
  EXPECT_EQ(r2->size(), 3u);

  // A session-less op first, but not alone.
  Compound eid;
  nfs_argop4 ex{};
  ex.argop = OP_DESTROY_CLIENTID;
  eid.Op(ex).PutRootFh();
  auto r3 = client_->CallNoSession(eid);
  ASSERT_TRUE(r3.ok());
  EXPECT_NFS(r3->status(), NFS4ERR_NOT_ONLY_OP);

  // Ops that need a filehandle.
  Compound nofh;
  nofh.GetAttr(Bits({FATTR4_TYPE}));
  auto r4 = client_->Call(nofh);
  ASSERT_TRUE(r4.ok());
  EXPECT_NFS(r4->status(), NFS4ERR_NOFILEHANDLE);

  // NFSv4.0-only operations.
  Compound v40;
  v40.RawOp(OP_RENEW, std::vector<uint8_t>(8, 0));
  auto r5 = client_->Call(v40);
  ASSERT_TRUE(r5.ok());
  EXPECT_NFS(r5->status(), NFS4ERR_NOTSUPP);
}

TEST_F(Nfs41Test, TooManyOpsAndGarbage) {
  Compound c;
  for (int i = 0; i < 20; ++i) c.PutRootFh();
  auto r = client_->Call(c);
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4ERR_TOO_MANY_OPS);
  EXPECT_EQ(r->size(), 1u);

  auto g = client_->CallRaw({1, 2, 3});
  EXPECT_TRUE(g.status().IsGarbageArgs()) << g.status().ToString();
  // Truncated arguments of an op: BADXDR for that op.
  Compound t;
  t.PutRootFh().RawOp(OP_LOOKUP, std::vector<uint8_t>{0, 0, 0, 9});
  auto b = client_->Call(t);
  ASSERT_TRUE(b.ok());
  EXPECT_NFS(b->status(), NFS4ERR_BADXDR);
}

TEST_F(Nfs41Test, PutRootFhGetAttr) {
  Compound c;
  c.PutRootFh().GetAttr(Bits({FATTR4_SUPPORTED_ATTRS, FATTR4_TYPE,
                              FATTR4_FH_EXPIRE_TYPE, FATTR4_CHANGE,
                              FATTR4_SIZE, FATTR4_FSID, FATTR4_LEASE_TIME,
                              FATTR4_FILEHANDLE, FATTR4_FILEID, FATTR4_MODE,
                              FATTR4_NUMLINKS, FATTR4_OWNER,
                              FATTR4_OWNER_GROUP, FATTR4_SPACE_USED,
                              FATTR4_TIME_MODIFY, FATTR4_MOUNTED_ON_FILEID,
                              FATTR4_FILES_TOTAL, FATTR4_SPACE_TOTAL,
                              FATTR4_MAXNAME, FATTR4_ARCHIVE}))
      .GetFh();
  auto r = client_->Call(c);
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4_OK);
  nfs41client::Attrs a;
  ASSERT_TRUE(nfs41client::DecodeAttrs(
      r->op(2).nfs_resop4_u.opgetattr.GETATTR4res_u.resok4.obj_attributes,
      &a));
  EXPECT_EQ(a.type, uint32_t{NF4DIR});
  EXPECT_EQ(a.fileid, 1u);
  EXPECT_EQ(a.lease_time, 90u);
  EXPECT_EQ(a.owner, "0");
  EXPECT_EQ(a.filehandle, *r->LastFh());
  EXPECT_FALSE(std::count(a.present.begin(), a.present.end(),
                          uint32_t{FATTR4_ARCHIVE}));  // not supported: omitted
  ASSERT_GE(a.supported.size(), 2u);
  EXPECT_TRUE(a.supported[0] & (1u << FATTR4_TYPE));
  EXPECT_TRUE(a.supported[1] & (1u << (FATTR4_MODE - 32)));
}

TEST_F(Nfs41Test, NamespaceRoundTrips) {
  Fh root = Root();
  auto d = client_->Mkdir(root, "dir", 0750);
  ASSERT_EQ(d.status, NFS4_OK);
  EXPECT_NFS(client_->Mkdir(root, "dir").status, NFS4ERR_EXIST);
  auto l = client_->Create(d.value, NF4LNK, "link", 0777, "/target/path");
  ASSERT_EQ(l.status, NFS4_OK);
  ASSERT_EQ(client_->Create(d.value, NF4FIFO, "fifo", 0600).status, NFS4_OK);
  ASSERT_EQ(client_->Create(d.value, NF4SOCK, "sock", 0600).status, NFS4_OK);
  EXPECT_NFS(client_->Create(d.value, NF4REG, "reg", 0600).status,
             NFS4ERR_BADTYPE);
  EXPECT_NFS(client_->Create(d.value, NF4DIR, "..", 0700).status,
             NFS4ERR_BADNAME);
  EXPECT_NFS(client_->Create(d.value, NF4DIR, "", 0700).status,
             NFS4ERR_INVAL);
  EXPECT_NFS(client_->Create(d.value, NF4DIR, std::string(256, 'x'), 0700)
                 .status,
             NFS4ERR_NAMETOOLONG);

  auto found = client_->LookupPath("/dir/link");
  ASSERT_EQ(found.status, NFS4_OK);
  EXPECT_EQ(found.value, l.value);
  auto attrs = client_->GetAttr(d.value, Bits({FATTR4_TYPE, FATTR4_MODE,
                                               FATTR4_NUMLINKS}));
  ASSERT_EQ(attrs.status, NFS4_OK);
  EXPECT_EQ(attrs.value.type, uint32_t{NF4DIR});
  EXPECT_EQ(attrs.value.mode, 0750u);

  Compound rl;
  rl.PutFh(l.value).ReadLink();
  auto rr = client_->Call(rl);
  ASSERT_TRUE(rr.ok());
  ASSERT_EQ(rr->status(), NFS4_OK);
  const linktext4& t =
      rr->op(2).nfs_resop4_u.opreadlink.READLINK4res_u.resok4.link;
  EXPECT_EQ(std::string(t.utf8string_val, t.utf8string_len), "/target/path");

  auto names = client_->ReadDirNames(d.value);
  ASSERT_EQ(names.status, NFS4_OK);
  std::sort(names.value.begin(), names.value.end());
  EXPECT_EQ(names.value, (std::vector<std::string>{"fifo", "link", "sock"}));

  ASSERT_EQ(client_->Rename(d.value, "fifo", root, "moved").status, NFS4_OK);
  EXPECT_NFS(client_->LookupPath("/dir/fifo").status, NFS4ERR_NOENT);
  EXPECT_EQ(client_->LookupPath("/moved").status, NFS4_OK);
  EXPECT_NFS(client_->Remove(root, "dir").status, NFS4ERR_NOTEMPTY);
  for (const char* n : {"link", "sock"}) {
    EXPECT_EQ(client_->Remove(d.value, n).status, NFS4_OK) << n;
  }
  EXPECT_EQ(client_->Remove(root, "dir").status, NFS4_OK);
  EXPECT_EQ(client_->Remove(root, "moved").status, NFS4_OK);
  auto empty = client_->ReadDirNames(root);
  ASSERT_EQ(empty.status, NFS4_OK);
  EXPECT_TRUE(empty.value.empty());

  // LOOKUPP, SAVEFH/RESTOREFH, LINK of a non-directory, SETATTR, ACCESS.
  auto sub = client_->Mkdir(root, "sub");
  ASSERT_EQ(sub.status, NFS4_OK);
  auto dev = client_->Create(sub.value, NF4FIFO, "p", 0644);
  ASSERT_EQ(dev.status, NFS4_OK);
  Compound lp;
  lp.PutFh(sub.value).Lookupp().GetFh();
  auto lpr = client_->Call(lp);
  ASSERT_TRUE(lpr.ok());
  ASSERT_EQ(lpr->status(), NFS4_OK);
  EXPECT_EQ(*lpr->LastFh(), root);
  Compound ln;
  ln.PutFh(dev.value).SaveFh().PutFh(root).Link("p2");
  auto lnr = client_->Call(ln);
  ASSERT_TRUE(lnr.ok());
  EXPECT_NFS(lnr->status(), NFS4_OK);
  auto nl = client_->GetAttr(dev.value, Bits({FATTR4_NUMLINKS}));
  EXPECT_EQ(nl.value.numlinks, 2u);
  Compound sa;
  sa.PutFh(dev.value).SetMode(0600).GetAttr(Bits({FATTR4_MODE}));
  auto sar = client_->Call(sa);
  ASSERT_TRUE(sar.ok());
  EXPECT_NFS(sar->status(), NFS4_OK);
  EXPECT_EQ(client_->GetAttr(dev.value, Bits({FATTR4_MODE})).value.mode,
            0600u);
  Compound ac;
  ac.PutFh(sub.value).Access(ACCESS4_READ | ACCESS4_LOOKUP | ACCESS4_MODIFY);
  auto acr = client_->Call(ac);
  ASSERT_TRUE(acr.ok());
  ASSERT_EQ(acr->status(), NFS4_OK);
  EXPECT_EQ(acr->op(2).nfs_resop4_u.opaccess.ACCESS4res_u.resok4.access,
            uint32_t{ACCESS4_READ | ACCESS4_LOOKUP | ACCESS4_MODIFY});
  Compound si;
  si.PutRootFh().SecInfoNoName().GetFh();
  auto sir = client_->Call(si);
  ASSERT_TRUE(sir.ok());
  EXPECT_NFS(sir->status(), NFS4ERR_NOFILEHANDLE);  // SECINFO consumed it
  EXPECT_NFS(sir->op_status(2), NFS4_OK);
}

TEST_F(Nfs41Test, LargeDirectoryAcrossManyReadDirs) {
  Fh root = Root();
  auto d = client_->Mkdir(root, "big");
  ASSERT_EQ(d.status, NFS4_OK);
  std::vector<std::string> want;
  for (int i = 0; i < 120; ++i) {
    std::string n = "entry-" + std::to_string(i);
    ASSERT_EQ(client_->Create(d.value, NF4FIFO, n, 0644).status, NFS4_OK);
    want.push_back(n);
  }
  auto names = client_->ReadDirNames(d.value, 600);
  ASSERT_EQ(names.status, NFS4_OK) << names.error;
  std::sort(names.value.begin(), names.value.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(names.value, want);
  // Too small for one entry.
  verifier4 v{};
  Compound c;
  c.PutFh(d.value).ReadDir(0, v, 10, 30, Bits({FATTR4_TYPE}));
  auto r = client_->Call(c);
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4ERR_TOOSMALL);
  // Reserved cookies.
  Compound c2;
  c2.PutFh(d.value).ReadDir(1, v, 1000, 1000, Bits({FATTR4_TYPE}));
  auto r2 = client_->Call(c2);
  ASSERT_TRUE(r2.ok());
  EXPECT_NFS(r2->status(), NFS4ERR_BAD_COOKIE);
}

TEST_F(Nfs41Test, ForgedAndStaleFilehandles) {
  Fh root = Root();
  Fh forged = root;
  forged[5] ^= 0x40;  // another inode, same MAC: refused
  Compound c;
  c.PutFh(forged).GetAttr(Bits({FATTR4_TYPE}));
  auto r = client_->Call(c);
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4ERR_BADHANDLE);
  Compound junk;
  junk.PutFh(Fh{1, 2, 3, 4});
  auto rj = client_->Call(junk);
  ASSERT_TRUE(rj.ok());
  EXPECT_NFS(rj->status(), NFS4ERR_BADHANDLE);

  auto d = client_->Mkdir(root, "gone");
  ASSERT_EQ(d.status, NFS4_OK);
  ASSERT_EQ(client_->Remove(root, "gone").status, NFS4_OK);
  EXPECT_NFS(client_->GetAttr(d.value, Bits({FATTR4_TYPE})).status,
             NFS4ERR_STALE);
}

TEST_F(Nfs41Test, DestroySessionAndClientId) {
  EXPECT_NFS(client_->DestroyClientId(), NFS4ERR_CLIENTID_BUSY);
  EXPECT_NFS(client_->DestroySession(), NFS4_OK);
  auto r = client_->CallOnSlot(Compound(), 0, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4ERR_BADSESSION);
  EXPECT_NFS(client_->DestroySession(), NFS4ERR_BADSESSION);
  EXPECT_NFS(client_->DestroyClientId(), NFS4_OK);
  EXPECT_NFS(client_->DestroyClientId(), NFS4ERR_STALE_CLIENTID);
  EXPECT_EQ(server_->state().client_count(), 0u);
}

TEST_F(Nfs41Test, ClientRebootReplacesRecord) {
  nfs41client::ClientOptions o;
  o.owner = "same-owner";
  o.verifier = 1;
  auto a = Connect(o);
  ASSERT_EQ(a->EstablishSession(), NFS4_OK);
  o.verifier = 2;  // rebooted
  auto b = Connect(o);
  ASSERT_EQ(b->ExchangeId(), NFS4_OK);
  EXPECT_NE(b->client_id(), a->client_id());
  EXPECT_FALSE(b->exchange_flags() & EXCHGID4_FLAG_CONFIRMED_R);
  // The old session lives until the new record is confirmed.
  EXPECT_EQ(a->Call(Compound())->status(), NFS4_OK);
  ASSERT_EQ(b->CreateSession(), NFS4_OK);
  EXPECT_NFS(a->Call(Compound())->status(), NFS4ERR_BADSESSION);
  EXPECT_EQ(b->Call(Compound())->status(), NFS4_OK);

  // Update of a record that does not exist.
  nfs41client::ClientOptions n;
  n.owner = "nobody-yet";
  auto c = Connect(n);
  EXPECT_NFS(c->ExchangeId(EXCHGID4_FLAG_UPD_CONFIRMED_REC_A), NFS4ERR_NOENT);
  // Another principal on a confirmed owner with a live session.
  nfs41client::ClientOptions p = o;
  p.cred = rpc::Credential::Sys(
      {.stamp = 0, .machine_name = "x", .uid = 1000, .gid = 1000, .gids = {}});
  auto d = Connect(p);
  EXPECT_NFS(d->ExchangeId(), NFS4ERR_CLID_INUSE);
}

TEST_F(Nfs41Test, CreateSessionReplayCache) {
  auto e = Connect();
  ASSERT_EQ(e->ExchangeId(), NFS4_OK);
  ASSERT_EQ(e->CreateSession(), NFS4_OK);
  std::vector<uint8_t> first(e->session_id(),
                             e->session_id() + NFS4_SESSIONID_SIZE);
  size_t sessions = server_->state().session_count();
  // The same sequence id again: the cached reply, no new session.
  e->set_create_session_seq(e->create_session_seq() - 1);
  ASSERT_EQ(e->CreateSession(), NFS4_OK);
  EXPECT_EQ(std::vector<uint8_t>(e->session_id(),
                                 e->session_id() + NFS4_SESSIONID_SIZE),
            first);
  EXPECT_EQ(server_->state().session_count(), sessions);
  e->set_create_session_seq(e->create_session_seq() + 5);
  EXPECT_NFS(e->CreateSession(), NFS4ERR_SEQ_MISORDERED);
  // An unknown client id.
  auto f = Connect();
  EXPECT_NFS(f->CreateSession(), NFS4ERR_STALE_CLIENTID);
}

TEST_F(Nfs41Test, SessionSizeLimits) {
  nfs41client::ClientOptions o;
  o.max_request_size = 600;
  o.max_response_size = 400;
  auto c = Connect(o);
  ASSERT_EQ(c->EstablishSession(), NFS4_OK);
  Compound big;
  big.PutRootFh();
  for (int i = 0; i < 4; ++i) big.Lookup(std::string(200, 'a' + i));
  auto r = c->Call(big);
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4ERR_REQ_TOO_BIG);
  EXPECT_EQ(r->size(), 1u);

  Fh root = Root();
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(client_->Create(root, NF4FIFO, "f" + std::to_string(i), 0644)
                  .status,
              NFS4_OK);
  }
  verifier4 v{};
  Compound rd;
  rd.PutRootFh().ReadDir(0, v, 8192, 8192, Bits({FATTR4_TYPE, FATTR4_MODE}));
  auto rr = c->Call(rd);
  ASSERT_TRUE(rr.ok());
  EXPECT_NFS(rr->status(), NFS4ERR_REP_TOO_BIG);
  ASSERT_EQ(rr->size(), 3u);
  EXPECT_EQ(rr->op(2).resop, OP_READDIR);
}

TEST_F(Nfs41Test, UncachedRepliesOnRetry) {
  nfs41client::ClientOptions o;
  o.max_response_size_cached = 300;
  auto c = Connect(o);
  ASSERT_EQ(c->EstablishSession(), NFS4_OK);
  Fh root = Root();
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(client_->Create(root, NF4FIFO, "u" + std::to_string(i), 0644)
                  .status,
              NFS4_OK);
  }
  verifier4 v{};
  Compound rd;
  rd.PutRootFh().ReadDir(0, v, 8192, 8192, Bits({FATTR4_TYPE}));
  // Asked to cache a reply larger than the cache holds.
  auto big = c->CallOnSlot(rd, 0, 1, true);
  ASSERT_TRUE(big.ok());
  EXPECT_NFS(big->status(), NFS4ERR_REP_TOO_BIG_TO_CACHE);
  // Not asked to cache: served, and a retry learns it was not kept.
  auto ok = c->CallOnSlot(rd, 1, 1, false);
  ASSERT_TRUE(ok.ok());
  EXPECT_NFS(ok->status(), NFS4_OK);
  auto retry = c->CallOnSlot(rd, 1, 1, false);
  ASSERT_TRUE(retry.ok());
  EXPECT_NFS(retry->status(), NFS4ERR_RETRY_UNCACHED_REP);
  ASSERT_EQ(retry->size(), 2u);
  EXPECT_NFS(retry->op_status(0), NFS4_OK);
  EXPECT_EQ(retry->op(1).resop, OP_PUTROOTFH);
}

TEST_F(Nfs41Test, LeaseExpiryRemovesClient) {
  ASSERT_EQ(client_->Call(Compound())->status(), NFS4_OK);
  EXPECT_EQ(server_->state().ReapExpired(state::Clock::now()), 0u);
  EXPECT_EQ(server_->state().ReapExpired(state::Clock::now() +
                                         std::chrono::seconds(91)),
            1u);
  EXPECT_EQ(server_->state().client_count(), 0u);
  EXPECT_NFS(client_->Call(Compound())->status(), NFS4ERR_BADSESSION);
}

TEST_F(Nfs41Test, VerifyAndNverify) {
  Compound get;
  get.PutRootFh().GetAttr(Bits({FATTR4_TYPE, FATTR4_FILEID}));
  auto g = client_->Call(get);
  ASSERT_TRUE(g.ok());
  ASSERT_EQ(g->status(), NFS4_OK);
  const fattr4& f =
      g->op(2).nfs_resop4_u.opgetattr.GETATTR4res_u.resok4.obj_attributes;
  nfs_argop4 v{};
  v.argop = OP_VERIFY;
  v.nfs_argop4_u.opverify.obj_attributes = f;
  nfs_argop4 nv{};
  nv.argop = OP_NVERIFY;
  nv.nfs_argop4_u.opnverify.obj_attributes = f;
  Compound c1;
  c1.PutRootFh().Op(v);
  EXPECT_NFS(client_->Call(c1)->status(), NFS4_OK);
  Compound c2;
  c2.PutRootFh().Op(nv);
  EXPECT_NFS(client_->Call(c2)->status(), NFS4ERR_SAME);
  auto d = client_->Mkdir(Root(), "other");
  ASSERT_EQ(d.status, NFS4_OK);
  Compound c3;
  c3.PutFh(d.value).Op(v);
  EXPECT_NFS(client_->Call(c3)->status(), NFS4ERR_NOT_SAME);
  Compound c4;
  c4.PutFh(d.value).Op(nv);
  EXPECT_NFS(client_->Call(c4)->status(), NFS4_OK);
}

TEST_F(Nfs41Test, ReclaimCompleteAndStateids) {
  Compound rc;
  rc.ReclaimComplete();
  EXPECT_NFS(client_->Call(rc)->status(), NFS4_OK);
  EXPECT_NFS(client_->Call(rc)->status(), NFS4ERR_COMPLETE_ALREADY);
  nfs_argop4 fs{};
  fs.argop = OP_FREE_STATEID;
  Compound f;
  f.Op(fs);
  EXPECT_NFS(client_->Call(f)->status(), NFS4ERR_BAD_STATEID);
}

}  // namespace
}  // namespace nfs41d
