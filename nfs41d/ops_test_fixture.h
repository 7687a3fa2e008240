// The fixtures shared by nfs41d's operating tests (exports_test.cc,
// cache_test.cc, readdir_cache_test.cc): the real TCP server and
// nfs41client, with backend round trips counted. In a named namespace, not
// an anonymous one, so that a fixture used by TEST_F in two translation
// units is one class (gtest requires one fixture class per test suite).

#ifndef NFS41D_OPS_TEST_FIXTURE_H_
#define NFS41D_OPS_TEST_FIXTURE_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "libnamespace/src/backend.h"
#include "nfs41client/client.h"
#include "nfs41d/config.h"
#include "nfs41d/server.h"
#include "nfs41d/status_map.h"

namespace nfs41d::testing_ops {

using nfs41client::Bits;
using nfs41client::Client;
using nfs41client::Compound;
using nfs41client::Fh;

#define EXPECT_NFS(expr, want) \
  EXPECT_STREQ(NfsStatName(expr), NfsStatName(want))
#define ASSERT_NFS(expr, want) \
  ASSERT_STREQ(NfsStatName(expr), NfsStatName(want))

inline std::atomic<int> g_counter{0};

// Backend round trips, counted by a wrapper registered as "counting:".
inline std::atomic<uint64_t> g_backend_reads{0}, g_backend_writes{0};
// Milliseconds every write transaction waits first (a slow database).
inline std::atomic<int> g_backend_write_delay_ms{0};
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
inline void RegisterCounting() {
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

class DirCacheShortTtlTest : public DirCacheTest {
 protected:
  std::chrono::milliseconds Ttl() const override {
    return std::chrono::milliseconds(300);
  }
};

}  // namespace nfs41d::testing_ops

#endif  // NFS41D_OPS_TEST_FIXTURE_H_
