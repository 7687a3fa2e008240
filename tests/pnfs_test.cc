// pNFS end to end on loopback: nfs41d (in-process) as the metadata server
// and three real `dataserver` processes. The in-tree client writes a file
// through its layout (straight to the data servers, striped), reads it back
// and checks every byte, checks the bytes sit on the data servers' disks and
// not in the MDS's store, reads it through the MDS (the fallback path a
// client takes when it cannot reach a data server), and then kills one data
// server: the MDS answers NFS4ERR_DELAY for the bytes it holds, recalls the
// layout once the data server is declared down, stops handing out layouts,
// and serves everything again once the data server is back.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "nfs41client/client.h"
#include "nfs41client/pnfs_io.h"
#include "nfs41d/data/data_store.h"
#include "nfs41d/pnfs_mds.h"
#include "nfs41d/server.h"
#include "nfs41d/status_map.h"
#include "rpc/xdr_codec.h"

namespace {

using nfs41client::Client;
using nfs41client::Compound;
using nfs41client::Fh;
using nfs41d::NfsStatName;

constexpr uint64_t kUnit = 65536;

#define ASSERT_NFS(expr, want) \
  ASSERT_STREQ(NfsStatName(expr), NfsStatName(want))
#define EXPECT_NFS(expr, want) \
  EXPECT_STREQ(NfsStatName(expr), NfsStatName(want))

uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

class DataServerProcess {
 public:
  DataServerProcess(std::string dir, uint16_t port, uint16_t mds_port)
      : dir_(std::move(dir)), port_(port), mds_port_(mds_port) {}
  ~DataServerProcess() { Kill(); }

  // `advertise`: the address given to clients, when not the listen one.
  void Start(const std::string& advertise = "") {
    const std::string listen = "127.0.0.1:" + std::to_string(port_);
    const std::string adv = advertise.empty() ? listen : advertise;
    const std::string mds = "127.0.0.1:" + std::to_string(mds_port_);
    pid_ = fork();
    if (pid_ == 0) {
      execl(DATASERVER_BINARY, "dataserver", "--listen", listen.c_str(),
            "--advertise", adv.c_str(), "--mds", mds.c_str(), "--data-dir",
            dir_.c_str(), "--log-level", "warning",
            static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  // SIGKILL by pid: a crash, not a clean stop.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  const std::string& dir() const { return dir_; }
  uint16_t port() const { return port_; }

 private:
  std::string dir_;
  uint16_t port_;
  uint16_t mds_port_;
  pid_t pid_ = -1;
};

class PnfsEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("pnfs-e2e-" + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    nfs41d::ServerOptions o;
    o.port = 0;
    o.data_dir = root_ + "/mds";
    o.worker_threads = 4;
    o.durable = false;
    o.state.callback_timeout = std::chrono::milliseconds(3000);
    o.pnfs.stripe_unit = kUnit;
    o.pnfs.heartbeat_seconds = 1;
    o.pnfs.expire_seconds = 3;
    mds_ = std::make_unique<nfs41d::Nfs41Server>(o);
    ASSERT_EQ(mds_->Start(), "");
    for (int i = 0; i < 3; ++i) {
      const std::string dir = root_ + "/ds" + std::to_string(i);
      std::filesystem::create_directories(dir);
      // The operator copies the MDS's key to each data server.
      std::filesystem::copy_file(o.data_dir + "/pnfs.key", dir + "/pnfs.key");
      ds_.push_back(
          std::make_unique<DataServerProcess>(dir, FreePort(), mds_->port()));
      ds_.back()->Start();
    }
    ASSERT_TRUE(WaitUp(3)) << "three data servers register";
    auto c = Client::Connect("127.0.0.1", mds_->port());
    ASSERT_TRUE(c.ok());
    client_ = std::move(c).value();
    ASSERT_EQ(client_->EstablishSession(), NFS4_OK);
  }
  void TearDown() override {
    client_.reset();
    ds_.clear();
    mds_.reset();
    std::filesystem::remove_all(root_);
  }

  bool WaitUp(size_t n, std::chrono::seconds limit = std::chrono::seconds(30)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      auto up = mds_->pnfs().registry().ListDataServers(true);
      if (up.ok() && up->size() == n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  Fh Root() { return client_->RootFh().value; }

  // LAYOUTGET (RW, whole file) with the checks every layout here passes:
  // sparse (nfl_util without NFL4_UFLG_DENSE, docs/pnfs.md), one handle.
  nfs41client::NfsResult<nfs41client::FileLayout> LayoutGet(
      const Fh& fh, const stateid4& sid) {
    auto l = nfs41client::LayoutGet(*client_, fh, sid, LAYOUTIOMODE4_RW);
    if (l.ok()) {
      EXPECT_FALSE(l.value.dense()) << "sparse";
      EXPECT_EQ(l.value.fhs.size(), 1u);
    }
    return l;
  }
  static uint64_t DeviceOf(const nfs41client::FileLayout& l) {
    return *nfs41d::DeviceFromBytes(l.device_id.data());
  }

  // The data servers of the layout's device in stripe order, connected.
  std::vector<std::unique_ptr<Client>> ConnectDevice(
      const nfs41client::FileLayout& l) {
    auto d = nfs41client::GetDeviceInfo(*client_, l.device_id);
    std::vector<std::unique_ptr<Client>> out;
    EXPECT_NFS(d.status, NFS4_OK);
    if (!d.ok()) return out;
    EXPECT_EQ(d.value.stripe_indices.size(), d.value.data_servers.size());
    for (uint32_t i : d.value.stripe_indices) {
      std::string host;
      uint16_t port = 0;
      EXPECT_TRUE(nfs41client::ParseUniversalAddress(
          d.value.data_servers.at(i).at(0).uaddr, &host, &port));
      auto c = Client::Connect(host, port);
      EXPECT_TRUE(c.ok());
      if (!c.ok()) return {};
      EXPECT_EQ((*c)->EstablishSession(), NFS4_OK);
      EXPECT_TRUE((*c)->exchange_flags() & EXCHGID4_FLAG_USE_PNFS_DS);
      out.push_back(std::move(c).value());
    }
    return out;
  }

  // Reads [0, size) through the MDS in 256 KiB READs.
  nfsstat4 ReadThroughMds(const Fh& fh, const stateid4& sid, uint64_t size,
                          std::string* out) {
    out->clear();
    while (out->size() < size) {
      auto r = client_->ReadFile(fh, sid, out->size(), 256 * 1024);
      if (r.status != NFS4_OK) return r.status;
      if (r.value.data.empty()) break;
      *out += r.value.data;
    }
    return NFS4_OK;
  }

  std::string root_;
  std::unique_ptr<nfs41d::Nfs41Server> mds_;
  std::vector<std::unique_ptr<DataServerProcess>> ds_;
  std::unique_ptr<Client> client_;
};

TEST_F(PnfsEndToEnd, StripedWriteReadFallbackAndDataServerLoss) {
  // 9 stripe units and a bit: every data server holds three or four.
  std::string bytes(9 * kUnit + 12345, '\0');
  std::mt19937_64 rng(42);
  for (char& c : bytes) c = static_cast<char>(rng());

  auto opened = client_->OpenFile(Root(), "striped", OPEN4_SHARE_ACCESS_BOTH);
  ASSERT_NFS(opened.status, NFS4_OK);
  const Fh fh = opened.value.fh;
  const stateid4 open_sid = opened.value.stateid;
  // Write through the layout with the client library: unit k to data
  // server k mod 3 at its logical offset (RFC 8881 §13.4.2, sparse),
  // UNSTABLE4, then COMMIT to each and LAYOUTCOMMIT (the MDS learns the
  // size).
  nfs41client::PnfsOptions po;
  po.io_size = 40000;  // pieces smaller than a unit, several per unit
  auto file = nfs41client::PnfsFile::Open(*client_, fh, open_sid,
                                          LAYOUTIOMODE4_RW, po);
  ASSERT_NFS(file.status, NFS4_OK);
  ASSERT_TRUE(file.value->has_layout());
  const nfs41client::FileLayout lf = *file.value->layout();
  ASSERT_EQ(lf.unit(), kUnit);
  EXPECT_FALSE(lf.dense()) << "sparse";
  const Fh ds_fh = lf.fhs.at(0);
  ASSERT_NFS(file.value->Write(0, std::span<const uint8_t>(
                                      reinterpret_cast<const uint8_t*>(
                                          bytes.data()),
                                      bytes.size())),
             NFS4_OK);
  ASSERT_NFS(file.value->Commit(), NFS4_OK);
  auto attrs = client_->GetAttr(fh, nfs41client::Bits({FATTR4_SIZE,
                                                       FATTR4_FILEID}));
  ASSERT_EQ(attrs.value.size, bytes.size());
  const ns::InodeId ino = attrs.value.fileid;

  // Read back through the layout: every byte, none through the MDS.
  std::string back(bytes.size() + 100, '\0');
  auto n = file.value->Read(
      0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(back.data()),
                            back.size()));
  ASSERT_NFS(n.status, NFS4_OK);
  ASSERT_EQ(n.value, bytes.size()) << "short at the MDS's size";
  back.resize(n.value);
  EXPECT_TRUE(back == bytes) << "bytes read through the layout differ";
  EXPECT_EQ(file.value->stats().ds_bytes, 2 * bytes.size());
  EXPECT_EQ(file.value->stats().mds_bytes, 0u);
  EXPECT_EQ(file.value->stats().fallbacks, 0u);
  std::vector<std::unique_ptr<Client>> dss = ConnectDevice(lf);
  ASSERT_EQ(dss.size(), 3u);

  // The data server process at each stripe index of the device.
  auto dev = mds_->pnfs().registry().GetDevice(DeviceOf(lf));
  ASSERT_TRUE(dev.ok());
  ASSERT_EQ(dev->data_servers.size(), 3u);
  std::vector<DataServerProcess*> at(3, nullptr);
  for (int k = 0; k < 3; ++k) {
    auto d = mds_->pnfs().registry().GetDataServer(dev->data_servers[k]);
    ASSERT_TRUE(d.ok());
    for (auto& p : ds_) {
      if (d->listen == "127.0.0.1:" + std::to_string(p->port())) at[k] = p.get();
    }
    ASSERT_NE(at[k], nullptr);
  }
  // On the data servers' disks (their stores keep logical offsets), and not
  // in the MDS's store.
  for (int i = 0; i < 3; ++i) {
    auto store = nfs41d::data::OpenLocalDataStore(at[i]->dir() + "/data");
    ASSERT_TRUE(store.ok());
    for (uint64_t off = 0; off < bytes.size(); off += kUnit) {
      if (static_cast<int>((off / kUnit) % 3) != i) continue;
      const size_t len = std::min<size_t>(kUnit, bytes.size() - off);
      std::string got(len, '\0');
      auto n = (*store)->Read(ino, off,
                              std::span<uint8_t>(
                                  reinterpret_cast<uint8_t*>(got.data()), len));
      ASSERT_TRUE(n.ok());
      EXPECT_EQ(*n, len);
      EXPECT_TRUE(got == bytes.substr(off, len))
          << "data server " << i << " unit " << off / kUnit;
    }
  }
  auto mds_used = mds_->data().SpaceUsed(ino);
  ASSERT_TRUE(mds_used.ok());
  EXPECT_EQ(*mds_used, 0u) << "no bytes in the MDS's own store";

  // Through the MDS (the fallback path): the same bytes.
  std::string via_mds;
  ASSERT_NFS(ReadThroughMds(fh, open_sid, bytes.size(), &via_mds), NFS4_OK);
  EXPECT_TRUE(via_mds == bytes) << "bytes read through the MDS differ";
  // A write through the MDS lands on the data servers too.
  ASSERT_NFS(client_->WriteFile(fh, open_sid, kUnit + 10, "MDS-WRITE").status,
             NFS4_OK);
  bytes.replace(kUnit + 10, 9, "MDS-WRITE");
  auto r1 = dss[1]->ReadFile(ds_fh, open_sid, kUnit + 10, 9);
  ASSERT_NFS(r1.status, NFS4_OK);
  EXPECT_EQ(r1.value.data, "MDS-WRITE");

  // Kill the data server of stripe index 1 (SIGKILL).
  DataServerProcess* dead = at[1];
  dead->Kill();
  // Bytes on the live data servers still come through the MDS...
  auto live = client_->ReadFile(fh, open_sid, 0, kUnit);
  ASSERT_NFS(live.status, NFS4_OK);
  EXPECT_TRUE(live.value.data == bytes.substr(0, kUnit));
  // ...those on the dead one are NFS4ERR_DELAY (retry later), never wrong
  // bytes.
  EXPECT_NFS(client_->ReadFile(fh, open_sid, kUnit, 100).status,
             NFS4ERR_DELAY);
  // Once it is declared down the layout is recalled and no new one given.
  ASSERT_TRUE(client_->WaitForCallbacks(
      [](const nfs41client::CallbackStats& s) { return s.cb_layoutrecall > 0; },
      std::chrono::seconds(15)));
  nfs41client::CallbackStats cs = client_->callback_stats();
  EXPECT_NFS(nfs41client::LayoutReturn(*client_, fh,
                                       cs.last_layoutrecall_stateid),
             NFS4_OK);
  EXPECT_NFS(LayoutGet(fh, open_sid).status, NFS4ERR_LAYOUTUNAVAILABLE);

  // It restarts on the same data directory: same id, nothing lost.
  dead->Start();
  ASSERT_TRUE(WaitUp(3));
  std::string after;
  ASSERT_NFS(ReadThroughMds(fh, open_sid, bytes.size(), &after), NFS4_OK);
  EXPECT_TRUE(after == bytes) << "committed bytes survive the restart";
  EXPECT_NFS(LayoutGet(fh, open_sid).status, NFS4_OK);

  // Removing the file removes its stripes from every data server.
  ASSERT_NFS(client_->CloseFile(fh, open_sid).status, NFS4_OK);
  ASSERT_NFS(client_->Remove(Root(), "striped").status, NFS4_OK);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool gone = false;
  while (!gone && std::chrono::steady_clock::now() < end) {
    gone = true;
    for (int i = 0; i < 3; ++i) {
      auto store = nfs41d::data::OpenLocalDataStore(ds_[i]->dir() + "/data");
      ASSERT_TRUE(store.ok());
      auto used = (*store)->SpaceUsed(ino);
      if (!used.ok() || *used != 0) gone = false;
    }
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(gone) << "stripes removed through the work queue";
  // The data servers report the work done in their next heartbeat; then
  // the rows go.
  bool empty = false;
  while (!empty && std::chrono::steady_clock::now() < end) {
    auto work = mds_->pnfs().registry().ListWork();
    ASSERT_TRUE(work.ok());
    empty = work->empty();
    if (!empty) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(empty) << "done work is deleted";
}

TEST_F(PnfsEndToEnd, ShrinkRecallsTheLayoutAndTheDataServersCutTheFile) {
  std::string bytes(3 * kUnit, '\0');
  std::mt19937_64 rng(7);
  for (char& c : bytes) c = static_cast<char>(rng());
  auto opened = client_->OpenFile(Root(), "shrunk", OPEN4_SHARE_ACCESS_BOTH);
  ASSERT_NFS(opened.status, NFS4_OK);
  const Fh fh = opened.value.fh;
  const stateid4 sid = opened.value.stateid;
  auto l = LayoutGet(fh, sid);
  ASSERT_NFS(l.status, NFS4_OK);
  std::vector<std::unique_ptr<Client>> dss = ConnectDevice(l.value);
  ASSERT_EQ(dss.size(), 3u);
  for (uint64_t k = 0; k < 3; ++k) {
    ASSERT_NFS(dss[k]->WriteFile(l.value.fhs[0], sid, k * kUnit,
                                 bytes.substr(k * kUnit, kUnit), FILE_SYNC4)
                   .status,
               NFS4_OK);
  }
  ASSERT_NFS(nfs41client::LayoutCommit(*client_, fh, l.value.stateid,
                                       bytes.size() - 1),
             NFS4_OK);
  const ns::InodeId ino =
      client_->GetAttr(fh, nfs41client::Bits({FATTR4_FILEID})).value.fileid;

  // Shrink to 100 bytes: the layout is recalled first (the caller's too).
  Compound cp;
  cp.PutFh(fh).SetSize(sid, 100);
  auto r = client_->Call(cp);
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  EXPECT_GE(client_->callback_stats().cb_layoutrecall, 1u);
  // The client returns it; a new layout comes once every data server cut
  // its stripe file (their next heartbeat).
  EXPECT_NFS(nfs41client::LayoutReturn(
                 *client_, fh,
                 client_->callback_stats().last_layoutrecall_stateid),
             NFS4_OK);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  nfs41client::NfsResult<nfs41client::FileLayout> again;
  do {
    again = LayoutGet(fh, sid);
    if (again.status == NFS4_OK) break;
    EXPECT_NFS(again.status, NFS4ERR_LAYOUTTRYLATER);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < end);
  ASSERT_NFS(again.status, NFS4_OK);
  // On every data server's disk nothing is left past byte 100.
  for (auto& p : ds_) {
    auto store = nfs41d::data::OpenLocalDataStore(p->dir() + "/data");
    ASSERT_TRUE(store.ok());
    std::string buf(kUnit, '\0');
    for (uint64_t k = 1; k < 3; ++k) {
      auto n = (*store)->Read(ino, k * kUnit,
                              std::span<uint8_t>(
                                  reinterpret_cast<uint8_t*>(buf.data()),
                                  buf.size()));
      ASSERT_TRUE(n.ok());
      EXPECT_EQ(*n, 0u) << "stripe unit " << k << " was cut";
    }
  }
  // Through the MDS: exactly the first 100 bytes.
  std::string via_mds;
  ASSERT_NFS(ReadThroughMds(fh, sid, 100, &via_mds), NFS4_OK);
  EXPECT_TRUE(via_mds == bytes.substr(0, 100));
  // Writing again through the new layout (to the data server of unit 2)
  // is not cut by anything queued.
  ASSERT_NFS(dss[2]->WriteFile(again.value.fhs[0], sid, 2 * kUnit, "after",
                               FILE_SYNC4)
                 .status,
             NFS4_OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  auto back = dss[2]->ReadFile(again.value.fhs[0], sid, 2 * kUnit, 5);
  ASSERT_NFS(back.status, NFS4_OK);
  EXPECT_EQ(back.value.data, "after") << "no late truncate cut new bytes";
}


// A data server the client cannot reach (it advertises an address where
// nothing listens; the MDS reaches it at its listen address): the client
// library sends that server's stripe units through the MDS (RFC 8881
// §13.8), the bytes land on that data server all the same, and a read
// gets every byte back.
TEST_F(PnfsEndToEnd, UnreachableDataServerFallsBackToTheMds) {
  DataServerProcess* hidden = ds_[1].get();
  hidden->Kill();
  hidden->Start("127.0.0.1:" + std::to_string(FreePort()));
  // Registered again with the new address (same uuid, same device).
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool moved = false;
  while (!moved && std::chrono::steady_clock::now() < end) {
    auto list = mds_->pnfs().registry().ListDataServers(true);
    ASSERT_TRUE(list.ok());
    for (const auto& d : *list) {
      if (d.listen == "127.0.0.1:" + std::to_string(hidden->port()) &&
          d.advertise != d.listen) {
        moved = true;
      }
    }
    if (!moved) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(moved);
  ASSERT_TRUE(WaitUp(3));

  std::string bytes(6 * kUnit + 777, '\0');
  std::mt19937_64 rng(11);
  for (char& c : bytes) c = static_cast<char>(rng());
  auto opened = client_->OpenFile(Root(), "fallback", OPEN4_SHARE_ACCESS_BOTH);
  ASSERT_NFS(opened.status, NFS4_OK);
  const Fh fh = opened.value.fh;
  const auto span = std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  {
    auto w = nfs41client::PnfsFile::Open(*client_, fh, opened.value.stateid,
                                         LAYOUTIOMODE4_RW);
    ASSERT_NFS(w.status, NFS4_OK);
    ASSERT_TRUE(w.value->has_layout());
    ASSERT_NFS(w.value->Write(0, span), NFS4_OK);
    ASSERT_NFS(w.value->Commit(), NFS4_OK);
    const nfs41client::PnfsStats st = w.value->stats();
    EXPECT_EQ(st.fallbacks, 1u) << "one data server given up, once";
    EXPECT_GT(st.mds_bytes, 0u);
    EXPECT_GT(st.ds_bytes, 0u);
    EXPECT_EQ(st.mds_bytes + st.ds_bytes, bytes.size());
    EXPECT_NFS(w.value->Return(), NFS4_OK);
  }
  auto attrs = client_->GetAttr(fh, nfs41client::Bits({FATTR4_SIZE,
                                                       FATTR4_FILEID}));
  ASSERT_EQ(attrs.value.size, bytes.size());
  // The units that went through the MDS are on the hidden data server.
  auto store = nfs41d::data::OpenLocalDataStore(hidden->dir() + "/data");
  ASSERT_TRUE(store.ok());
  auto used = (*store)->SpaceUsed(attrs.value.fileid);
  ASSERT_TRUE(used.ok());
  EXPECT_GT(*used, 0u) << "the MDS wrote them to the data server";

  auto r = nfs41client::PnfsFile::Open(*client_, fh, opened.value.stateid,
                                       LAYOUTIOMODE4_READ);
  ASSERT_NFS(r.status, NFS4_OK);
  std::string back(bytes.size(), '\0');
  auto n = r.value->Read(
      0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(back.data()),
                            back.size()));
  ASSERT_NFS(n.status, NFS4_OK);
  ASSERT_EQ(n.value, bytes.size());
  EXPECT_TRUE(back == bytes) << "bytes read with the fallback differ";
  EXPECT_GT(r.value->stats().mds_bytes, 0u);
  EXPECT_GT(r.value->stats().ds_bytes, 0u);
}

}  // namespace
