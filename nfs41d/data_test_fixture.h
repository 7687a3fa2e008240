// The fixture of the data-path protocol tests (data_test.cc,
// durable_data_test.cc): the real TCP server with a temporary SQLite
// namespace, driven by the in-tree client. In a named namespace, not an
// anonymous one, so that both files share one definition.

#ifndef NFS41D_DATA_TEST_FIXTURE_H_
#define NFS41D_DATA_TEST_FIXTURE_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <thread>

#include "nfs41client/client.h"
#include "nfs41d/data/data_store.h"
#include "nfs41d/server.h"
#include "nfs41d/status_map.h"

namespace nfs41d::testing_data {

using nfs41client::Bits;
using nfs41client::Client;
using nfs41client::Compound;
using nfs41client::Fh;

constexpr uint32_t kRead = OPEN4_SHARE_ACCESS_READ;
constexpr uint32_t kWrite = OPEN4_SHARE_ACCESS_WRITE;
constexpr uint32_t kBoth = OPEN4_SHARE_ACCESS_BOTH;
constexpr uint64_t kToEof = ~uint64_t{0};

#define EXPECT_NFS(expr, want) \
  EXPECT_STREQ(NfsStatName(expr), NfsStatName(want))
#define ASSERT_NFS(expr, want) \
  ASSERT_STREQ(NfsStatName(expr), NfsStatName(want))

inline stateid4 Anonymous() { return stateid4{}; }
inline stateid4 CurrentSid() {
  stateid4 s{};
  s.seqid = 1;
  return s;
}

class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("nfs41d-data-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    StartServer();
    client_ = Connect();
    ASSERT_TRUE(client_);
    ASSERT_EQ(client_->EstablishSession(), NFS4_OK);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  void StartServer() {
    ServerOptions o;
    o.port = 0;
    o.data_dir = dir_;
    o.worker_threads = 2;
    o.durable = durable_;
    o.state.max_operations = 16;
    o.flush_interval = flush_interval_;
    o.inline_max = inline_max_;
    server_ = std::make_unique<Nfs41Server>(o);
    ASSERT_EQ(server_->Start(), "");
  }
  void Restart() {
    client_.reset();
    server_.reset();
    StartServer();
    client_ = Connect();
    ASSERT_EQ(client_->EstablishSession(), NFS4_OK);
  }
  std::unique_ptr<Client> Connect(uint32_t uid = 0) {
    nfs41client::ClientOptions o;
    o.cred = rpc::Credential::Sys(
        {.stamp = 0, .machine_name = "t", .uid = uid, .gid = uid, .gids = {}});
    auto c = Client::Connect("127.0.0.1", server_->port(), o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  std::unique_ptr<Client> Second(uint32_t uid = 0) {
    auto c = Connect(uid);
    EXPECT_EQ(c->EstablishSession(), NFS4_OK);
    return c;
  }
  Fh Root() {
    auto r = client_->RootFh();
    EXPECT_EQ(r.status, NFS4_OK);
    return r.value;
  }
  Client::Opened Open(const std::string& name, uint32_t access,
                      uint32_t deny = 0, Client* c = nullptr,
                      const std::string& owner = "owner") {
    if (!c) c = client_.get();
    auto r = c->OpenFile(Root(), name, access, deny, true, owner);
    EXPECT_NFS(r.status, NFS4_OK);
    return r.value;
  }
  nfs41client::Attrs Attrs(const Fh& fh, Client* c = nullptr) {
    if (!c) c = client_.get();
    auto a = c->GetAttr(fh, Bits({FATTR4_CHANGE, FATTR4_SIZE,
                                  FATTR4_SPACE_USED, FATTR4_TIME_MODIFY}));
    EXPECT_NFS(a.status, NFS4_OK);
    return a.value;
  }
  // The status of a COMPOUND's last op.
  nfsstat4 Run(const Compound& c, Client* cl = nullptr) {
    auto r = (cl ? cl : client_.get())->Call(c);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->status() : NFS4ERR_IO;
  }

  std::string dir_;
  std::chrono::milliseconds flush_interval_{50};
  // These tests are about the data store: small files stay out of the
  // database (InlineDataTest, in durable_data_test.cc, has them there).
  uint64_t inline_max_ = 0;
  bool durable_ = false;  // SQLite synchronous (DurableDataTest)
  std::unique_ptr<Nfs41Server> server_;
  std::unique_ptr<Client> client_;
};

}  // namespace nfs41d::testing_data

#endif  // NFS41D_DATA_TEST_FIXTURE_H_
