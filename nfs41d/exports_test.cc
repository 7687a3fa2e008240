// Operating nfs41d, through the real TCP server and nfs41client: exports
// (pseudo fs, client networks, ro, squashing, security flavors, reload),
// owners (numeric and libnfsidmap), Prometheus metrics, the attribute cache
// (backend round trips counted), hostile COMPOUND lengths.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "libnamespace/src/backend.h"
#include "nfs41client/client.h"
#include "nfs41d/config.h"
#include "nfs41d/server.h"
#include "nfs41d/status_map.h"

namespace nfs41d {
namespace {

using nfs41client::Bits;
using nfs41client::Client;
using nfs41client::Compound;
using nfs41client::Fh;

#define EXPECT_NFS(expr, want) \
  EXPECT_STREQ(NfsStatName(expr), NfsStatName(want))
#define ASSERT_NFS(expr, want) \
  ASSERT_STREQ(NfsStatName(expr), NfsStatName(want))

std::atomic<int> g_counter{0};

// Backend round trips, counted by a wrapper registered as "counting:".
std::atomic<uint64_t> g_backend_reads{0}, g_backend_writes{0};
// Milliseconds every write transaction waits first (a slow database).
std::atomic<int> g_backend_write_delay_ms{0};
class CountingBackend : public ns::BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  ns::Status Read(const ns::TxnFn& fn) override {
    g_backend_reads.fetch_add(1);
    return BackendWrapper::Read(fn);
  }
  ns::Status Write(const ns::TxnFn& fn) override {
    g_backend_writes.fetch_add(1);
    if (int ms = g_backend_write_delay_ms.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    }
    return BackendWrapper::Write(fn);
  }
};
void RegisterCounting() {
  static bool done = [] {
    ns::RegisterBackend("counting", [](const std::string& uri,
                                       const ns::NamespaceOptions& o)
                                        -> ns::Result<std::unique_ptr<ns::Backend>> {
      auto inner = ns::OpenSqliteBackend(uri.substr(strlen("counting:")), o);
      if (!inner.ok()) return inner.status();
      return std::unique_ptr<ns::Backend>(
          std::make_unique<CountingBackend>(std::move(inner).value()));
    });
    return true;
  }();
  (void)done;
}

class OpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("nfs41d-ops-" + std::to_string(getpid()) + "-" +
            std::to_string(g_counter++));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    db_ = "sqlite://" + dir_ + "/namespace.db";
  }
  void TearDown() override {
    clients_.clear();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Directories made before the server starts (export paths must exist).
  void MakeDirs(std::initializer_list<const char*> paths) {
    ns::NamespaceOptions no;
    no.create_if_missing = true;
    no.durable = false;
    auto n = ns::Namespace::Open(db_, no);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    for (const char* p : paths) {
      std::string path(p);
      size_t slash = path.rfind('/');
      auto parent = (*n)->Resolve(ns::Credentials::Root(),
                                  slash == 0 ? "/" : path.substr(0, slash));
      ASSERT_TRUE(parent.ok()) << p;
      auto r = (*n)->Mkdir(ns::Credentials::Root(), parent->ino,
                           path.substr(slash + 1), 0777);
      ASSERT_TRUE(r.ok()) << p << ": " << r.status().ToString();
    }
  }

  std::string Start(ServerOptions o) {
    o.port = 0;
    o.data_dir = dir_;
    // Without MakeDirs the server creates its embedded database (db_).
    if (o.db_uri.empty() && std::filesystem::exists(dir_ + "/namespace.db")) {
      o.db_uri = db_;
    }
    o.worker_threads = 2;
    o.durable = false;
    server_ = std::make_unique<Nfs41Server>(o);
    return server_->Start();
  }

  Client* Connect(const std::string& from = "127.0.0.1",
                  rpc::Credential cred = rpc::Credential::Sys(
                      {.stamp = 0, .machine_name = "t", .uid = 0, .gid = 0,
                       .gids = {}})) {
    nfs41client::ClientOptions o;
    o.local_host = from;
    o.cred = cred;
    auto c = Client::Connect("127.0.0.1", server_->port(), o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return nullptr;
    EXPECT_NFS((*c)->EstablishSession(), NFS4_OK);
    clients_.push_back(std::move(c).value());
    return clients_.back().get();
  }

  static rpc::Credential Sys(uint32_t uid, uint32_t gid) {
    return rpc::Credential::Sys(
        {.stamp = 0, .machine_name = "t", .uid = uid, .gid = gid, .gids = {}});
  }

  // Names in a directory reached by `path` from the root.
  static std::vector<std::string> Names(Client* c, const std::string& path) {
    auto fh = c->LookupPath(path);
    EXPECT_NFS(fh.status, NFS4_OK) << path;
    auto n = c->ReadDirNames(fh.value);
    EXPECT_NFS(n.status, NFS4_OK) << path;
    std::sort(n.value.begin(), n.value.end());
    return n.value;
  }

  static nfsstat4 Status(Client* c, const Compound& cp) {
    auto r = c->Call(cp);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->status() : NFS4ERR_IO;
  }

  std::string dir_, db_;
  std::unique_ptr<Nfs41Server> server_;
  std::vector<std::unique_ptr<Client>> clients_;
};

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

// -------------------------------------------------------- attribute cache

class AttrCacheTest : public OpsTest {
 protected:
  void StartCounting(AttrCacheOptions co) {
    RegisterCounting();
    MakeDirs({"/d"});
    ServerOptions o;
    o.db_uri = "counting:" + db_;
    o.attr_cache = co;
    ASSERT_EQ(Start(o), "");
  }
  static uint64_t Reads() { return g_backend_reads.load(); }
};

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

class DirCacheTest : public AttrCacheTest {
 protected:
  virtual std::chrono::milliseconds Ttl() const {
    return std::chrono::seconds(60);
  }
  void SetUp() override {
    AttrCacheTest::SetUp();
    StartCounting(AttrCacheOptions{.max_entries = 1024, .ttl = Ttl()});
    c_ = Connect();
    ASSERT_NE(c_, nullptr);
    auto d = c_->LookupPath("/d");
    ASSERT_NFS(d.status, NFS4_OK);
    d_ = d.value;
    root_ = c_->RootFh().value;
  }
  // PUTFH dir, LOOKUP name, GETFH: the status and the handle.
  std::pair<nfsstat4, Fh> Look(const Fh& dir, const std::string& name) {
    Compound cp;
    cp.PutFh(dir).Lookup(name).GetFh();
    auto r = c_->Call(cp);
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return {NFS4ERR_IO, Fh{}};
    return {r->status(), r->LastFh().value_or(Fh{})};
  }
  Fh MakeFile(const Fh& dir, const std::string& name) {
    auto f = c_->Create(dir, NF4DIR, name, 0755);
    EXPECT_NFS(f.status, NFS4_OK) << name;
    return f.value;
  }
  // Another door on the same database (its changes reach this server only
  // through the database) and /d's inode; null if it cannot open.
  std::pair<std::unique_ptr<ns::Namespace>, ns::InodeId> OtherDoor() {
    ns::NamespaceOptions no;
    no.durable = false;
    auto other = ns::Namespace::Open(db_, no);
    EXPECT_TRUE(other.ok());
    if (!other.ok()) return {nullptr, 0};
    auto dir = (*other)->Resolve(ns::Credentials::Root(), "/d");
    EXPECT_TRUE(dir.ok());
    if (!dir.ok()) return {nullptr, 0};
    return {std::move(other).value(), dir->ino};
  }
  Client* c_ = nullptr;
  Fh d_, root_;
};

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
// (no lookup before it); an existing name it does not know (made by
// another door) is still opened, or NFS4ERR_EXIST for GUARDED4.
TEST_F(DirCacheTest, OpenCreateOfANewNameReadsOnlyTheChangeInfo) {
  constexpr uint32_t kBoth = OPEN4_SHARE_ACCESS_BOTH;
  ASSERT_NFS(c_->GetAttr(d_, Bits({FATTR4_TYPE})).status, NFS4_OK);
  uint64_t reads = Reads(), writes = g_backend_writes.load();
  auto f = c_->OpenFile(d_, "new", kBoth);
  ASSERT_NFS(f.status, NFS4_OK);
  EXPECT_EQ(g_backend_writes.load(), writes + 1);
  EXPECT_EQ(Reads(), reads + 1) << "only change_info4's read of the directory";
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

class DirCacheShortTtlTest : public DirCacheTest {
 protected:
  std::chrono::milliseconds Ttl() const override {
    return std::chrono::milliseconds(300);
  }
};

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
}  // namespace nfs41d
