// Operating nfs41d, through the real TCP server and nfs41client: exports
// (pseudo fs, client networks, ro, squashing, security flavors, reload),
// owners (numeric and libnfsidmap), Prometheus metrics, hostile COMPOUND
// lengths. The caches are in cache_test.cc and readdir_cache_test.cc.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "nfs41d/ops_test_fixture.h"

namespace nfs41d::testing_ops {
namespace {

ExportConfig Ex(const char* path, std::vector<std::string> clients = {"127.0.0.1/32"}) {
  ExportConfig e;
  e.path = path;
  e.clients = std::move(clients);
  return e;
}

// ---------------------------------------------------------------- exports

class ExportsTest : public OpsTest {
 protected:
  void StartThree() {
    MakeDirs({"/pub", "/home", "/home/alice", "/secret", "/hidden"});
    ServerOptions o;
    ExportConfig pub = Ex("/pub", {"127.0.0.0/8"});
    pub.read_only = true;
    ExportConfig alice = Ex("/home/alice");
    alice.squash = Squash::kRoot;
    alice.anonuid = alice.anongid = 4000;
    ExportConfig secret = Ex("/secret", {"127.0.0.2/32", "::1/128"});
    secret.squash = Squash::kAll;
    secret.anonuid = 5000;
    secret.anongid = 5001;
    o.exports = {pub, alice, secret};
    ASSERT_EQ(Start(o), "");
  }
};

TEST_F(ExportsTest, PseudoRootShowsOnlyWhatTheClientMayMount) {
  StartThree();
  Client* c1 = Connect("127.0.0.1");
  Client* c2 = Connect("127.0.0.2");
  ASSERT_TRUE(c1 && c2);
  // "/hidden" is not exported: never visible. "/secret" only to 127.0.0.2.
  EXPECT_EQ(Names(c1, "/"), (std::vector<std::string>{"home", "pub"}));
  EXPECT_EQ(Names(c1, "/home"), (std::vector<std::string>{"alice"}));
  EXPECT_EQ(Names(c2, "/"), (std::vector<std::string>{"pub", "secret"}));

  // The pseudo root: a read-only directory of its own fs.
  auto root = c1->RootFh();
  ASSERT_EQ(root.status, NFS4_OK);
  auto ra = c1->GetAttr(root.value, Bits({FATTR4_TYPE, FATTR4_MODE,
                                          FATTR4_FSID, FATTR4_FILEID}));
  ASSERT_EQ(ra.status, NFS4_OK);
  EXPECT_EQ(ra.value.type, NF4DIR);
  EXPECT_EQ(ra.value.mode, 0555u);
  EXPECT_EQ(ra.value.fsid_minor, kPseudoExportId);
  EXPECT_EQ(ra.value.fileid, 1u);  // small fileids in the pseudo fs

  // LOOKUP crosses into the export: another fsid, mounted_on_fileid is the
  // junction's, LOOKUPP comes back to the pseudo directory.
  auto alice = c1->LookupPath("/home/alice");
  ASSERT_EQ(alice.status, NFS4_OK);
  auto aa = c1->GetAttr(alice.value, Bits({FATTR4_FSID, FATTR4_FILEID,
                                           FATTR4_MOUNTED_ON_FILEID}));
  ASSERT_EQ(aa.status, NFS4_OK);
  EXPECT_NE(aa.value.fsid_minor, kPseudoExportId);
  // READDIR of the pseudo directory reports the junction the same way.
  {
    auto homefh = c1->LookupPath("/home");
    verifier4 zero{};
    Compound rd;
    rd.PutFh(homefh.value).ReadDir(0, zero, 4096, 8192,
                                   Bits({FATTR4_FSID, FATTR4_MOUNTED_ON_FILEID}));
    auto r = c1->Call(rd);
    ASSERT_TRUE(r.ok());
    ASSERT_NFS(r->status(), NFS4_OK);
    const entry4* e =
        r->op(2).nfs_resop4_u.opreaddir.READDIR4res_u.resok4.reply.entries;
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(std::string(e->name.utf8string_val, e->name.utf8string_len),
              "alice");
    nfs41client::Attrs ea;
    ASSERT_TRUE(nfs41client::DecodeAttrs(e->attrs, &ea));
    EXPECT_EQ(ea.mounted_on_fileid, aa.value.mounted_on_fileid);
    EXPECT_EQ(ea.fsid_minor, aa.value.fsid_minor);
    EXPECT_EQ(e->nextentry, nullptr);
  }
  Compound up;
  up.PutFh(alice.value).Lookupp().GetAttr(Bits({FATTR4_FSID})).GetFh();
  auto ur = c1->Call(up);
  ASSERT_TRUE(ur.ok());
  ASSERT_NFS(ur->status(), NFS4_OK);
  auto home = c1->LookupPath("/home");
  EXPECT_EQ(*ur->LastFh(), home.value);

  // Outside the export's networks: ACCESS, by name and by handle.
  EXPECT_NFS(c1->LookupPath("/secret").status, NFS4ERR_ACCESS);
  auto secret = c2->LookupPath("/secret");
  ASSERT_EQ(secret.status, NFS4_OK);
  EXPECT_NFS(c1->GetAttr(secret.value, Bits({FATTR4_TYPE})).status,
             NFS4ERR_ACCESS);
  EXPECT_NFS(c2->GetAttr(alice.value, Bits({FATTR4_TYPE})).status,
             NFS4ERR_ACCESS);
  // The pseudo fs does not reveal it either.
  EXPECT_NFS(c1->LookupPath("/hidden").status, NFS4ERR_NOENT);

  // Nothing changes the pseudo fs.
  Compound mk;
  mk.PutRootFh().Create(NF4DIR, "x", 0755);
  EXPECT_NFS(Status(c1, mk), NFS4ERR_ROFS);
  Compound rm;
  rm.PutRootFh().Remove("pub");
  EXPECT_NFS(Status(c1, rm), NFS4ERR_ROFS);
}

TEST_F(ExportsTest, ReadOnlyExportAnswersRofs) {
  StartThree();
  Client* c = Connect();
  auto pub = c->LookupPath("/pub");
  ASSERT_EQ(pub.status, NFS4_OK);
  Compound mk;
  mk.PutFh(pub.value).Create(NF4DIR, "d", 0755);
  EXPECT_NFS(Status(c, mk), NFS4ERR_ROFS);
  Compound sa;
  sa.PutFh(pub.value).SetMode(0700);
  EXPECT_NFS(Status(c, sa), NFS4ERR_ROFS);
  Compound rm;
  rm.PutFh(pub.value).Remove("nothing");
  EXPECT_NFS(Status(c, rm), NFS4ERR_ROFS);
  // Reading works.
  EXPECT_EQ(c->GetAttr(pub.value, Bits({FATTR4_TYPE})).status, NFS4_OK);
  EXPECT_EQ(c->ReadDirNames(pub.value).status, NFS4_OK);
}

TEST_F(ExportsTest, RootAndAllSquash) {
  StartThree();
  // root_squash: uid 0 creates as 4000:4000.
  Client* root = Connect("127.0.0.1", Sys(0, 0));
  auto alice = root->LookupPath("/home/alice");
  ASSERT_EQ(alice.status, NFS4_OK);
  auto d = root->Mkdir(alice.value, "by-root");
  ASSERT_EQ(d.status, NFS4_OK);
  auto da = root->GetAttr(d.value, Bits({FATTR4_OWNER, FATTR4_OWNER_GROUP}));
  EXPECT_EQ(da.value.owner, "4000");
  EXPECT_EQ(da.value.owner_group, "4000");
  // A non-root user keeps its identity.
  Client* user = Connect("127.0.0.1", Sys(1000, 100));
  auto u = user->Mkdir(alice.value, "by-1000");
  ASSERT_EQ(u.status, NFS4_OK);
  EXPECT_EQ(user->GetAttr(u.value, Bits({FATTR4_OWNER})).value.owner, "1000");
  // Squashed root cannot chown (the namespace sees uid 4000).
  Compound ch;
  ch.PutFh(u.value).SetOwner("0");
  EXPECT_NFS(Status(root, ch), NFS4ERR_PERM);

  // all_squash: everyone is 5000:5001.
  Client* c2 = Connect("127.0.0.2", Sys(1000, 100));
  auto secret = c2->LookupPath("/secret");
  ASSERT_EQ(secret.status, NFS4_OK);
  auto s = c2->Mkdir(secret.value, "x");
  ASSERT_EQ(s.status, NFS4_OK);
  auto sa = c2->GetAttr(s.value, Bits({FATTR4_OWNER, FATTR4_OWNER_GROUP}));
  EXPECT_EQ(sa.value.owner, "5000");
  EXPECT_EQ(sa.value.owner_group, "5001");
}

TEST_F(ExportsTest, FlavorNotAcceptedIsWrongsecButSecinfoAnswers) {
  StartThree();
  Client* sys = Connect();
  auto pub = sys->LookupPath("/pub");
  ASSERT_EQ(pub.status, NFS4_OK);
  Client* none = Connect("127.0.0.1", rpc::Credential::None());
  ASSERT_TRUE(none);
  // §2.6.3.1: PUTFH then an op: WRONGSEC.
  Compound g;
  g.PutFh(pub.value).GetAttr(Bits({FATTR4_TYPE}));
  EXPECT_NFS(Status(none, g), NFS4ERR_WRONGSEC);
  // PUTFH then SECINFO_NO_NAME: the flavors the export takes (AUTH_SYS).
  Compound si;
  si.PutFh(pub.value).SecInfoNoName();
  auto r = none->Call(si);
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  const SECINFO4resok& ok =
      r->op(2).nfs_resop4_u.opsecinfo_no_name.SECINFO4res_u.resok4;
  ASSERT_EQ(ok.SECINFO4resok_len, 1u);
  EXPECT_EQ(ok.SECINFO4resok_val[0].flavor, uint32_t{AUTH_SYS});
  // The pseudo fs takes any flavor; LOOKUP into the export is WRONGSEC.
  Compound l;
  l.PutRootFh().Lookup("pub").GetFh();
  EXPECT_NFS(Status(none, l), NFS4ERR_WRONGSEC);
  Compound pr;
  pr.PutRootFh().GetAttr(Bits({FATTR4_TYPE}));
  EXPECT_NFS(Status(none, pr), NFS4_OK);
}

TEST_F(ExportsTest, ReloadSwapsAtomicallyAndBadOnesChangeNothing) {
  StartThree();
  Client* c = Connect();
  auto pub = c->LookupPath("/pub");
  auto alice = c->LookupPath("/home/alice");
  ASSERT_EQ(pub.status, NFS4_OK);
  // A bad new table (path missing): refused, the old one serves on.
  std::vector<ExportConfig> bad = {Ex("/pub"), Ex("/no/such/dir")};
  std::string err = server_->ReloadExports(bad);
  EXPECT_NE(err.find("/no/such/dir"), std::string::npos) << err;
  EXPECT_EQ(c->GetAttr(alice.value, Bits({FATTR4_TYPE})).status, NFS4_OK);
  // /pub made rw and the only export: it becomes the root, alice's
  // handles are stale, pub's (same id: same path) work and write.
  EXPECT_EQ(server_->ReloadExports({Ex("/pub")}), "");
  EXPECT_NFS(c->GetAttr(alice.value, Bits({FATTR4_TYPE})).status,
             NFS4ERR_STALE);
  EXPECT_EQ(c->Mkdir(pub.value, "now-rw").status, NFS4_OK);
  EXPECT_EQ(Names(c, "/"), (std::vector<std::string>{"pub"}));
  EXPECT_EQ(server_->metrics().op_count(OP_PUTFH) > 0, true);
}

TEST_F(ExportsTest, SingleExportAtSlashIsTheRoot) {
  MakeDirs({"/a"});
  ServerOptions o;
  ExportConfig e = Ex("/", {"127.0.0.2/32"});
  e.squash = Squash::kNone;
  o.exports = {e};
  ASSERT_EQ(Start(o), "");
  Client* c2 = Connect("127.0.0.2");
  EXPECT_EQ(Names(c2, "/"), (std::vector<std::string>{"a"}));
  auto root = c2->RootFh();
  auto ra = c2->GetAttr(root.value, Bits({FATTR4_FSID}));
  EXPECT_NE(ra.value.fsid_minor, kPseudoExportId);
  Client* c1 = Connect("127.0.0.1");
  EXPECT_NFS(c1->RootFh().status, NFS4ERR_ACCESS);
}

TEST_F(ExportsTest, BadExportsStopTheServerWithAMessage) {
  MakeDirs({"/d"});
  {
    ServerOptions o;
    o.exports = {Ex("/missing")};
    std::string e = Start(o);
    EXPECT_NE(e.find("/missing"), std::string::npos) << e;
  }
  server_.reset();
  {
    // A file is not a directory.
    ns::NamespaceOptions no;
    no.durable = false;
    auto n = ns::Namespace::Open(db_, no);
    ASSERT_TRUE(n.ok());
    ASSERT_TRUE((*n)->Create(ns::Credentials::Root(), 1, "f", 0644).ok());
  }
  ServerOptions o;
  o.exports = {Ex("/f")};
  std::string e = Start(o);
  EXPECT_NE(e.find("not a directory"), std::string::npos) << e;
  server_.reset();
  o.exports = {Ex("/d"), Ex("/d/")};
  e = Start(o);
  EXPECT_NE(e.find("twice"), std::string::npos) << e;
}

// ----------------------------------------------------------------- owners

TEST_F(OpsTest, NumericOwnersBothWays) {
  ASSERT_EQ(Start(ServerOptions{}), "");
  Client* c = Connect();
  auto d = c->Mkdir(c->RootFh().value, "o");
  ASSERT_EQ(d.status, NFS4_OK);
  Compound s;
  s.PutFh(d.value).SetOwner("1234", "567");
  EXPECT_NFS(Status(c, s), NFS4_OK);
  auto a = c->GetAttr(d.value, Bits({FATTR4_OWNER, FATTR4_OWNER_GROUP}));
  EXPECT_EQ(a.value.owner, "1234");
  EXPECT_EQ(a.value.owner_group, "567");
  // user@domain: resolved through the user database; unknown: BADOWNER.
  Compound n;
  n.PutFh(d.value).SetOwner("root@any.domain", "root@any.domain");
  EXPECT_NFS(Status(c, n), NFS4_OK);
  EXPECT_EQ(c->GetAttr(d.value, Bits({FATTR4_OWNER})).value.owner, "0");
  Compound u;
  u.PutFh(d.value).SetOwner("no-such-user-xyz@x");
  EXPECT_NFS(Status(c, u), NFS4ERR_BADOWNER);
  Compound g;
  g.PutFh(d.value).SetOwner("", "no-such-group-xyz");
  EXPECT_NFS(Status(c, g), NFS4ERR_BADOWNER);
}

TEST_F(OpsTest, NfsidmapOwners) {
  ServerOptions o;
  o.idmap.mode = "nfsidmap";
  o.idmap.domain = "test.example";
  ASSERT_EQ(Start(o), "");
  Client* c = Connect();
  auto d = c->Mkdir(c->RootFh().value, "o");
  ASSERT_EQ(d.status, NFS4_OK);
  auto a = c->GetAttr(d.value, Bits({FATTR4_OWNER, FATTR4_OWNER_GROUP}));
  EXPECT_EQ(a.value.owner, "root@test.example");
  EXPECT_EQ(a.value.owner_group, "root@test.example");
  // daemon is uid/gid 1 on Debian.
  Compound s;
  s.PutFh(d.value).SetOwner("daemon@test.example", "daemon@test.example");
  EXPECT_NFS(Status(c, s), NFS4_OK);
  a = c->GetAttr(d.value, Bits({FATTR4_OWNER, FATTR4_OWNER_GROUP}));
  EXPECT_EQ(a.value.owner, "daemon@test.example");
  // Numeric strings are still accepted; ids without a name go out numeric.
  Compound n;
  n.PutFh(d.value).SetOwner("54321");
  EXPECT_NFS(Status(c, n), NFS4_OK);
  EXPECT_EQ(c->GetAttr(d.value, Bits({FATTR4_OWNER})).value.owner, "54321");
  Compound u;
  u.PutFh(d.value).SetOwner("no-such-user-xyz@test.example");
  EXPECT_NFS(Status(c, u), NFS4ERR_BADOWNER);
  Compound w;
  w.PutFh(d.value).SetOwner("root@other.domain");
  EXPECT_NFS(Status(c, w), NFS4ERR_BADOWNER);
}

// ---------------------------------------------------------------- metrics

std::string HttpGet(uint16_t port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  [[maybe_unused]] ssize_t w = send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (int i = 0; i < 10000; ++i) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

TEST_F(OpsTest, PrometheusMetrics) {
  ServerOptions o;
  o.metrics_host = "127.0.0.1";
  o.metrics_port = 0;
  ASSERT_EQ(Start(o), "");
  ASSERT_NE(server_->metrics_port(), 0);
  Client* c = Connect();
  auto root = c->RootFh();
  for (int i = 0; i < 5; ++i) c->GetAttr(root.value, Bits({FATTR4_TYPE}));
  Compound l;
  l.PutRootFh().Lookup("missing");
  EXPECT_NFS(Status(c, l), NFS4ERR_NOENT);

  std::string m = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_EQ(m.rfind("HTTP/1.1 200 OK", 0), 0u) << m.substr(0, 200);
  EXPECT_NE(m.find("nfs41d_ops_total{op=\"GETATTR\"} 5"), std::string::npos);
  EXPECT_NE(m.find("nfs41d_op_errors_total{op=\"LOOKUP\",status=\"NFS4ERR_NOENT\"} 1"),
            std::string::npos);
  EXPECT_NE(m.find("nfs41d_op_duration_seconds_bucket{op=\"GETATTR\",le=\"+Inf\"} 5"),
            std::string::npos);
  EXPECT_NE(m.find("nfs41d_sessions 1"), std::string::npos);
  EXPECT_NE(m.find("nfs41d_clients 1"), std::string::npos);
  EXPECT_NE(m.find("nfs41d_rpc_connections 1"), std::string::npos);
  // EXCHANGE_ID, CREATE_SESSION, RECLAIM_COMPLETE, PUTROOTFH+GETFH, 5
  // GETATTRs and the LOOKUP at least: the loop counts every call it read.
  const size_t at = m.find("\nnfs41d_rpc_calls_total ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_GE(std::stoull(m.substr(at + 24)), 9u);
  EXPECT_NE(m.find("\nnfs41d_rpc_loop_busy_seconds_total 0."), std::string::npos);
  EXPECT_EQ(server_->metrics().op_count(OP_GETATTR), 5u);
  EXPECT_EQ(HttpGet(server_->metrics_port(), "/other").rfind("HTTP/1.1 404", 0), 0u);
}

// -------------------------------------------------------- hostile lengths

TEST_F(OpsTest, HostileCompoundLengthsAreRefusedWithoutHarm) {
  ASSERT_EQ(Start(ServerOptions{}), "");
  Client* c = Connect();
  auto word = [](std::vector<uint8_t>* b, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b->push_back(static_cast<uint8_t>(v >> s));
  };
  // tag "", minorversion 1, 0xFFFFFFF0 ops: GARBAGE_ARGS.
  std::vector<uint8_t> huge;
  word(&huge, 0);
  word(&huge, 1);
  word(&huge, 0xFFFFFFF0u);
  word(&huge, OP_PUTROOTFH);
  auto g = c->CallRaw(huge);
  EXPECT_TRUE(g.status().IsGarbageArgs()) << g.status().ToString();
  // A tag claiming 4 GB.
  std::vector<uint8_t> tag;
  word(&tag, 0xFFFFFFF0u);
  word(&tag, 1);
  EXPECT_TRUE(c->CallRaw(tag).status().IsGarbageArgs());
  // An op whose own length fields are huge: BADXDR for that op.
  for (uint32_t op : {OP_LOOKUP, OP_GETATTR, OP_PUTFH, OP_SETATTR}) {
    std::vector<uint8_t> args;
    if (op == OP_SETATTR) {
      for (int i = 0; i < 4; ++i) word(&args, 0);  // stateid
    }
    word(&args, 0xFFFFFFF0u);
    word(&args, 0x41414141);
    Compound t;
    t.PutRootFh().RawOp(op, args);
    auto r = c->Call(t);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_NFS(r->status(), NFS4ERR_BADXDR) << OpName(op);
  }
  // And the server still serves.
  EXPECT_EQ(c->RootFh().status, NFS4_OK);
}

}  // namespace
}  // namespace nfs41d::testing_ops
