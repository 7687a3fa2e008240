// pNFS end to end on loopback: nfs41d (in-process) as the metadata server
// and three real `dataserver` processes. The in-tree client writes a file
// through its layout (straight to the data servers, striped), reads it back
// and checks every byte, checks the bytes sit on the data servers' disks and
// not in the MDS's store, reads it through the MDS (the fallback path a
// client takes when it cannot reach a data server), and then kills one data
// server: the MDS answers NFS4ERR_DELAY for the bytes it holds, recalls the
// layout once the data server is declared down, stops handing out layouts,
// and serves everything again once the data server is back. Then `nsadmin
// pnfs-check` against planted dark data and a deleted stripe, and
// CB_NOTIFY_DEVICEID when a data server moves or comes back.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
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
#include "rpc/net.h"
#include "rpc/xdr_codec.h"

namespace {

using nfs41client::Client;
using nfs41client::Compound;
using nfs41client::Fh;
using nfs41d::NfsStatName;

constexpr uint64_t kAll = ~uint64_t{0};
constexpr uint64_t kUnit = 65536;

#define ASSERT_NFS(expr, want) \
  ASSERT_STREQ(NfsStatName(expr), NfsStatName(want))
#define EXPECT_NFS(expr, want) \
  EXPECT_STREQ(NfsStatName(expr), NfsStatName(want))

// "h1.h2.h3.h4.p1.p2" -> host, port.
bool ParseUaddr(const std::string& u, std::string* host, uint16_t* port) {
  const size_t p2 = u.rfind('.');
  if (p2 == std::string::npos) return false;
  const size_t p1 = u.rfind('.', p2 - 1);
  if (p1 == std::string::npos) return false;
  *host = u.substr(0, p1);
  *port = static_cast<uint16_t>(std::stoi(u.substr(p1 + 1, p2 - p1 - 1)) * 256 +
                                std::stoi(u.substr(p2 + 1)));
  return true;
}

class DataServerProcess {
 public:
  DataServerProcess(std::string dir, uint16_t port, uint16_t mds_port)
      : dir_(std::move(dir)), port_(port), mds_port_(mds_port) {}
  ~DataServerProcess() { Kill(); }

  // `advertise`: what clients are told (empty: the listen address).
  void Start(const std::string& advertise = "") {
    const std::string listen = "127.0.0.1:" + std::to_string(port_);
    const std::string mds = "127.0.0.1:" + std::to_string(mds_port_);
    std::vector<const char*> argv = {"dataserver", "--listen", listen.c_str(),
                                     "--mds", mds.c_str(), "--data-dir",
                                     dir_.c_str(), "--log-level", "warning"};
    if (!advertise.empty()) {
      argv.push_back("--advertise");
      argv.push_back(advertise.c_str());
    }
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      execv(DATASERVER_BINARY, const_cast<char* const*>(argv.data()));
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
    o.pnfs.stripe_unit = stripe_unit_;
    if (max_request_ != 0) {
      o.state.max_request_size = o.state.max_response_size = max_request_;
    }
    o.pnfs.heartbeat_seconds = heartbeat_seconds_;
    o.pnfs.expire_seconds = 3 * heartbeat_seconds_;
    mds_ = std::make_unique<nfs41d::Nfs41Server>(o);
    ASSERT_EQ(mds_->Start(), "");
    for (int i = 0; i < 3; ++i) {
      const std::string dir = root_ + "/ds" + std::to_string(i);
      std::filesystem::create_directories(dir);
      // The operator copies the MDS's key to each data server.
      std::filesystem::copy_file(o.data_dir + "/pnfs.key", dir + "/pnfs.key");
      ds_.push_back(
          std::make_unique<DataServerProcess>(
              dir, rpc::FreeLoopbackPort().value(), mds_->port()));
      ds_.back()->Start();
    }
    ASSERT_TRUE(WaitUp(3)) << "three data servers register";
    nfs41client::ClientOptions co;
    if (max_request_ != 0) co.max_request_size = co.max_response_size = max_request_;
    auto c = Client::Connect("127.0.0.1", mds_->port(), co);
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

  struct Layout {
    nfsstat4 status = NFS4_OK;
    stateid4 stateid{};
    uint64_t device = 0;
    uint64_t unit = 0;
    Fh fh;
  };
  Layout LayoutGet(const Fh& fh, const stateid4& sid) {
    nfs_argop4 op{};
    op.argop = OP_LAYOUTGET;
    LAYOUTGET4args& a = op.nfs_argop4_u.oplayoutget;
    a.loga_layout_type = LAYOUT4_NFSV4_1_FILES;
    a.loga_iomode = LAYOUTIOMODE4_RW;
    a.loga_length = kAll;
    a.loga_stateid = sid;
    a.loga_maxcount = 4096;
    Compound cp;
    cp.PutFh(fh).Op(op);
    auto r = client_->Call(cp);
    Layout l;
    if (!r.ok()) {
      l.status = NFS4ERR_IO;
      return l;
    }
    l.status = r->status();
    if (l.status != NFS4_OK) return l;
    const auto& ok =
        r->op(2).nfs_resop4_u.oplayoutget.LAYOUTGET4res_u.logr_resok4;
    l.stateid = ok.logr_stateid;
    const layout4& lo = ok.logr_layout.logr_layout_val[0];
    rpc::XdrOwned<nfsv4_1_file_layout4> fl(xdr_nfsv4_1_file_layout4);
    EXPECT_TRUE(fl.DecodeAll(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(lo.lo_content.loc_body.loc_body_val),
        lo.lo_content.loc_body.loc_body_len)));
    l.device = *nfs41d::DeviceFromBytes(
        reinterpret_cast<const uint8_t*>(fl.get().nfl_deviceid));
    l.unit = fl.get().nfl_util & ~uint32_t{NFL4_UFLG_MASK};
    EXPECT_EQ(fl.get().nfl_util & NFL4_UFLG_DENSE, 0u) << "sparse";
    const nfs_fh4& f = fl.get().nfl_fh_list.nfl_fh_list_val[0];
    l.fh.assign(f.nfs_fh4_val, f.nfs_fh4_val + f.nfs_fh4_len);
    return l;
  }

  // LAYOUTCOMMIT of writes up to byte `last` through layout `sid`.
  void LayoutCommit(const Fh& fh, const stateid4& sid, uint64_t last) {
    ASSERT_NFS(nfs41client::LayoutCommit(*client_, fh, sid, last), NFS4_OK);
  }

  struct DeviceInfo {
    std::vector<std::string> uaddrs;  // in stripe order
    uint32_t notification = 0;        // gdir_notification word 0
  };
  // GETDEVICEINFO of `device`, asking for the notifications `notify`.
  DeviceInfo GetDeviceInfo(uint64_t device, uint32_t notify = 0) {
    nfs_argop4 op{};
    op.argop = OP_GETDEVICEINFO;
    GETDEVICEINFO4args& a = op.nfs_argop4_u.opgetdeviceinfo;
    const auto id = nfs41d::DeviceIdBytes(device);
    std::memcpy(a.gdia_device_id, id.data(), id.size());
    a.gdia_layout_type = LAYOUT4_NFSV4_1_FILES;
    a.gdia_maxcount = 4096;
    a.gdia_notify_types.bitmap4_len = notify ? 1 : 0;
    a.gdia_notify_types.bitmap4_val = &notify;
    Compound cp;
    cp.Op(op);
    auto r = client_->Call(cp);
    DeviceInfo out;
    EXPECT_TRUE(r.ok() && r->status() == NFS4_OK);
    if (!r.ok() || r->status() != NFS4_OK) return out;
    const GETDEVICEINFO4resok& ok =
        r->op(1).nfs_resop4_u.opgetdeviceinfo.GETDEVICEINFO4res_u.gdir_resok4;
    if (ok.gdir_notification.bitmap4_len > 0) {
      out.notification = ok.gdir_notification.bitmap4_val[0];
    }
    const device_addr4& da = ok.gdir_device_addr;
    rpc::XdrOwned<nfsv4_1_file_layout_ds_addr4> d(
        xdr_nfsv4_1_file_layout_ds_addr4);
    EXPECT_TRUE(d.DecodeAll(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(da.da_addr_body.da_addr_body_val),
        da.da_addr_body.da_addr_body_len)));
    const auto& list = d.get().nflda_multipath_ds_list;
    for (u_int i = 0; i < list.nflda_multipath_ds_list_len; ++i) {
      out.uaddrs.push_back(
          list.nflda_multipath_ds_list_val[i].multipath_list4_val[0].na_r_addr);
    }
    return out;
  }

  // The data servers of `device` in stripe order, connected.
  std::vector<std::unique_ptr<Client>> ConnectDevice(uint64_t device) {
    std::vector<std::unique_ptr<Client>> out;
    for (const std::string& uaddr : GetDeviceInfo(device).uaddrs) {
      std::string host;
      uint16_t port = 0;
      EXPECT_TRUE(ParseUaddr(uaddr, &host, &port));
      auto c = Client::Connect(host, port);
      EXPECT_TRUE(c.ok());
      if (!c.ok()) return {};
      EXPECT_EQ((*c)->EstablishSession(), NFS4_OK);
      EXPECT_TRUE((*c)->exchange_flags() & EXCHGID4_FLAG_USE_PNFS_DS);
      out.push_back(std::move(c).value());
    }
    return out;
  }

  static std::string RandomBytes(size_t n, uint64_t seed) {
    std::string bytes(n, '\0');
    std::mt19937_64 rng(seed);
    for (char& c : bytes) c = static_cast<char>(rng());
    return bytes;
  }

  // Creates `name` open for reading and writing, and takes its first
  // layout (which gives the file its device and stripe unit).
  struct Opened {
    nfsstat4 status = NFS4_OK;  // of OPEN, else of LAYOUTGET
    Fh fh;
    stateid4 sid{};
    Layout layout;
  };
  Opened OpenWithLayout(const std::string& name) {
    Opened o;
    auto opened = client_->OpenFile(Root(), name, OPEN4_SHARE_ACCESS_BOTH);
    o.status = opened.status;
    if (o.status != NFS4_OK) return o;
    o.fh = opened.value.fh;
    o.sid = opened.value.stateid;
    o.layout = LayoutGet(o.fh, o.sid);
    o.status = o.layout.status;
    return o;
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

  // A file of `size` random bytes written through its layout (FILE_SYNC4,
  // each stripe unit to its data server) and committed.
  struct Striped {
    ns::InodeId ino = 0;
    uint64_t device = 0;
  };
  Striped WriteStriped(const std::string& name, size_t size, uint32_t seed) {
    const std::string bytes = RandomBytes(size, seed);
    Opened o = OpenWithLayout(name);
    EXPECT_NFS(o.status, NFS4_OK);
    std::vector<std::unique_ptr<Client>> dss = ConnectDevice(o.layout.device);
    EXPECT_FALSE(dss.empty());
    if (o.status != NFS4_OK || dss.empty()) return {};
    const Layout& l = o.layout;
    WriteUnits(dss, o.fh, l, bytes);
    auto a = client_->GetAttr(o.fh,
                              nfs41client::Bits({FATTR4_SIZE, FATTR4_FILEID}));
    EXPECT_EQ(a.value.size, size);
    return {a.value.fileid, l.device};
  }
  // `bytes` written through layout `l` of `fh` (FILE_SYNC4, each stripe
  // unit to its data server in `dss`), then LAYOUTCOMMIT.
  void WriteUnits(const std::vector<std::unique_ptr<Client>>& dss,
                  const Fh& fh, const Layout& l, const std::string& bytes) {
    for (uint64_t off = 0; off < bytes.size(); off += kUnit) {
      const size_t len = std::min<size_t>(kUnit, bytes.size() - off);
      EXPECT_NFS(dss[(off / kUnit) % dss.size()]
                     ->WriteFile(l.fh, l.stateid, off, bytes.substr(off, len),
                                 FILE_SYNC4)
                     .status,
                 NFS4_OK);
    }
    LayoutCommit(fh, l.stateid, bytes.size() - 1);
  }

  // LAYOUTRETURN (FILE) of the layout on `fh` the MDS last recalled.
  void ReturnRecalledLayout(const Fh& fh) {
    nfs_argop4 op{};
    op.argop = OP_LAYOUTRETURN;
    LAYOUTRETURN4args& a = op.nfs_argop4_u.oplayoutreturn;
    a.lora_layout_type = LAYOUT4_NFSV4_1_FILES;
    a.lora_iomode = LAYOUTIOMODE4_ANY;
    a.lora_layoutreturn.lr_returntype = LAYOUTRETURN4_FILE;
    a.lora_layoutreturn.layoutreturn4_u.lr_layout.lrf_length = kAll;
    a.lora_layoutreturn.layoutreturn4_u.lr_layout.lrf_stateid =
        client_->callback_stats().last_layoutrecall_stateid;
    Compound ret;
    ret.PutFh(fh).Op(op);
    auto rr = client_->Call(ret);
    ASSERT_TRUE(rr.ok());
    EXPECT_NFS(rr->status(), NFS4_OK);
  }

  // Bytes of stripe unit `k` of `ino` left on the data servers' disks.
  size_t BytesOnDisk(ns::InodeId ino, uint64_t k) {
    size_t total = 0;
    for (auto& p : ds_) {
      auto store = nfs41d::data::OpenLocalDataStore(p->dir() + "/data");
      EXPECT_TRUE(store.ok());
      if (!store.ok()) continue;
      std::string buf(kUnit, '\0');
      auto n = (*store)->Read(
          ino, k * kUnit,
          std::span<uint8_t>(reinterpret_cast<uint8_t*>(buf.data()),
                             buf.size()));
      EXPECT_TRUE(n.ok());
      if (n.ok()) total += *n;
    }
    return total;
  }

  // The registry id of a data server process (by its listen address).
  uint64_t IdOf(const DataServerProcess& p) {
    auto all = mds_->pnfs().registry().ListDataServers();
    if (!all.ok()) return 0;
    for (const ns::DataServer& d : *all) {
      if (d.listen == "127.0.0.1:" + std::to_string(p.port())) return d.id;
    }
    return 0;
  }
  DataServerProcess* ProcessOf(uint64_t id) {
    for (auto& p : ds_) {
      if (IdOf(*p) == id) return p.get();
    }
    return nullptr;
  }
  std::string StripePath(const DataServerProcess& p, ns::InodeId ino) {
    return p.dir() + "/data/" + nfs41d::data::LocalDataPath(ino);
  }

  // `nsadmin pnfs-check FLAGS` on the MDS's database: its output, and its
  // exit code in *code.
  std::string RunPnfsCheck(const std::string& flags, int* code) {
    const std::string cmd = std::string(NSADMIN_BINARY) + " --db sqlite://" +
                            root_ + "/mds/namespace.db pnfs-check " + flags +
                            " 2>&1";
    FILE* f = popen(cmd.c_str(), "r");
    std::string out;
    if (!f) return out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    const int status = pclose(f);
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
  }

  bool Eventually(const std::function<bool()>& pred,
                  std::chrono::seconds limit = std::chrono::seconds(15)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return pred();
  }
  // Set by a derived fixture's constructor, before SetUp.
  uint64_t stripe_unit_ = kUnit;
  uint32_t heartbeat_seconds_ = 1;  // the data servers'; expiry is 3x
  uint32_t max_request_ = 0;  // MDS session sizes (0: the defaults)

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
  Layout l = LayoutGet(fh, open_sid);
  ASSERT_NFS(l.status, NFS4_OK);
  ASSERT_EQ(l.unit, kUnit);
  std::vector<std::unique_ptr<Client>> dss = ConnectDevice(l.device);
  ASSERT_EQ(dss.size(), 3u);

  // Write through the layout: unit k to data server k mod 3 at its logical
  // offset (RFC 8881 §13.4.4, sparse), UNSTABLE4, then COMMIT each.
  for (uint64_t off = 0; off < bytes.size(); off += kUnit) {
    const size_t len = std::min<size_t>(kUnit, bytes.size() - off);
    auto w = dss[(off / kUnit) % 3]->WriteFile(l.fh, l.stateid, off,
                                               bytes.substr(off, len));
    ASSERT_NFS(w.status, NFS4_OK);
    ASSERT_EQ(w.value.count, len);
  }
  for (auto& d : dss) ASSERT_NFS(d->CommitFile(l.fh).status, NFS4_OK);
  // LAYOUTCOMMIT: the MDS learns the size.
  LayoutCommit(fh, l.stateid, bytes.size() - 1);
  auto attrs = client_->GetAttr(fh, nfs41client::Bits({FATTR4_SIZE,
                                                       FATTR4_FILEID}));
  ASSERT_EQ(attrs.value.size, bytes.size());
  const ns::InodeId ino = attrs.value.fileid;

  // Read back through the layout: every byte.
  std::string back;
  for (uint64_t off = 0; off < bytes.size(); off += kUnit) {
    const size_t len = std::min<size_t>(kUnit, bytes.size() - off);
    auto r = dss[(off / kUnit) % 3]->ReadFile(l.fh, l.stateid, off,
                                              static_cast<uint32_t>(len));
    ASSERT_NFS(r.status, NFS4_OK);
    back += r.value.data;
  }
  ASSERT_EQ(back.size(), bytes.size());
  EXPECT_TRUE(back == bytes) << "bytes read through the layout differ";

  // The data server process at each stripe index of the device.
  auto dev = mds_->pnfs().registry().GetDevice(l.device);
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
  auto r1 = dss[1]->ReadFile(l.fh, l.stateid, kUnit + 10, 9);
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
  {
    nfs_argop4 op{};
    op.argop = OP_LAYOUTRETURN;
    LAYOUTRETURN4args& a = op.nfs_argop4_u.oplayoutreturn;
    a.lora_layout_type = LAYOUT4_NFSV4_1_FILES;
    a.lora_iomode = LAYOUTIOMODE4_ANY;
    a.lora_layoutreturn.lr_returntype = LAYOUTRETURN4_FILE;
    a.lora_layoutreturn.layoutreturn4_u.lr_layout.lrf_length = kAll;
    a.lora_layoutreturn.layoutreturn4_u.lr_layout.lrf_stateid =
        cs.last_layoutrecall_stateid;
    Compound cp;
    cp.PutFh(fh).Op(op);
    auto r = client_->Call(cp);
    ASSERT_TRUE(r.ok());
    EXPECT_NFS(r->status(), NFS4_OK);
  }
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

// 1 MiB stripe units (nfs41d's default) and an MDS whose sessions take
// 1 MiB WRITEs: a WRITE through the MDS covering a whole stripe unit goes to
// its data server as one 1 MiB WRITE, which needs a data-server session
// whose request size holds 1 MiB plus the COMPOUND around it (RFC 8881
// §18.36.3: else NFS4ERR_REQ_TOO_BIG, which the MDS would turn into an
// endless NFS4ERR_DELAY).
class PnfsOneMiBUnits : public PnfsEndToEnd {
 protected:
  PnfsOneMiBUnits() {
    stripe_unit_ = 1u << 20;
    max_request_ = 2u << 20;
  }
};

TEST_F(PnfsOneMiBUnits, WholeStripeUnitsThroughTheMds) {
  constexpr uint32_t kMiB = 1u << 20;
  const std::string bytes = RandomBytes(3 * kMiB, 7);
  Opened o = OpenWithLayout("units");
  ASSERT_NFS(o.status, NFS4_OK);
  ASSERT_EQ(o.layout.unit, kMiB);
  for (uint64_t off = 0; off < bytes.size(); off += kMiB) {
    auto w = client_->WriteFile(o.fh, o.sid, off, bytes.substr(off, kMiB),
                                FILE_SYNC4);
    ASSERT_NFS(w.status, NFS4_OK) << "WRITE of unit " << off / kMiB;
    EXPECT_EQ(w.value.count, kMiB);
  }
  for (uint64_t off = 0; off < bytes.size(); off += kMiB) {
    auto r = client_->ReadFile(o.fh, o.sid, off, kMiB);
    ASSERT_NFS(r.status, NFS4_OK) << "READ of unit " << off / kMiB;
    EXPECT_EQ(r.value.data.size(), kMiB);
    EXPECT_TRUE(r.value.data == bytes.substr(off, kMiB))
        << "unit " << off / kMiB << " read through the MDS differs";
  }
  // Each unit on the data server of its stripe index (k mod 3).
  std::vector<std::unique_ptr<Client>> dss = ConnectDevice(o.layout.device);
  ASSERT_EQ(dss.size(), 3u);
  for (uint64_t off = 0; off < bytes.size(); off += kMiB) {
    auto r = dss[(off / kMiB) % 3]->ReadFile(o.layout.fh, o.layout.stateid,
                                             off, 4096);
    ASSERT_NFS(r.status, NFS4_OK);
    EXPECT_TRUE(r.value.data == bytes.substr(off, 4096))
        << "unit " << off / kMiB << " on its data server";
  }
}

TEST_F(PnfsEndToEnd, ShrinkRecallsTheLayoutAndTheDataServersCutTheFile) {
  const std::string bytes = RandomBytes(3 * kUnit, 7);
  Opened o = OpenWithLayout("shrunk");
  ASSERT_NFS(o.status, NFS4_OK);
  const Fh& fh = o.fh;
  const stateid4& sid = o.sid;
  const Layout& l = o.layout;
  std::vector<std::unique_ptr<Client>> dss = ConnectDevice(l.device);
  ASSERT_EQ(dss.size(), 3u);
  for (uint64_t k = 0; k < 3; ++k) {
    ASSERT_NFS(dss[k]->WriteFile(l.fh, l.stateid, k * kUnit,
                                 bytes.substr(k * kUnit, kUnit), FILE_SYNC4)
                   .status,
               NFS4_OK);
  }
  LayoutCommit(fh, l.stateid, bytes.size() - 1);
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
  // its stripe file (woken by the MDS, or at their next heartbeat).
  ReturnRecalledLayout(fh);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  Layout again;
  do {
    again = LayoutGet(fh, sid);
    if (again.status == NFS4_OK) break;
    EXPECT_NFS(again.status, NFS4ERR_LAYOUTTRYLATER);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < end);
  ASSERT_NFS(again.status, NFS4_OK);
  // On every data server's disk nothing is left past byte 100.
  for (uint64_t k = 1; k < 3; ++k) {
    EXPECT_EQ(BytesOnDisk(ino, k), 0u) << "stripe unit " << k << " was cut";
  }
  // Through the MDS: exactly the first 100 bytes.
  std::string via_mds;
  ASSERT_NFS(ReadThroughMds(fh, sid, 100, &via_mds), NFS4_OK);
  EXPECT_TRUE(via_mds == bytes.substr(0, 100));
  // Writing again through the new layout (to the data server of unit 2)
  // is not cut by anything queued.
  ASSERT_NFS(dss[2]->WriteFile(again.fh, again.stateid, 2 * kUnit, "after",
                               FILE_SYNC4)
                 .status,
             NFS4_OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  auto back = dss[2]->ReadFile(again.fh, again.stateid, 2 * kUnit, 5);
  ASSERT_NFS(back.status, NFS4_OK);
  EXPECT_EQ(back.value.data, "after") << "no late truncate cut new bytes";
}

class PnfsSlowHeartbeat : public PnfsEndToEnd {
 protected:
  PnfsSlowHeartbeat() { heartbeat_seconds_ = 60; }
};

// An O_TRUNC rewrite of a striped file (cp over an existing file): the
// truncate of the old stripes is queued for the data servers, and until
// they report it done LAYOUTGET says LAYOUTTRYLATER. The MDS wakes them
// (NSCTL_CB_WAKE, pnfs/nsctl.x) instead of letting the rewrite wait for
// their next heartbeat (60 s here); the file then holds the new bytes only.
TEST_F(PnfsSlowHeartbeat, OTruncRewriteOfAStripedFileDoesNotWaitForAHeartbeat) {
  const Striped old = WriteStriped("rewrite", 3 * kUnit, 21);
  ASSERT_NE(old.ino, 0u);
  // OPEN, UNCHECKED4 with size 0: what the Linux client sends for O_TRUNC.
  Compound cp;
  cp.PutFh(Root())
      .Open("rewrite", OPEN4_SHARE_ACCESS_BOTH, 0, "owner", true, UNCHECKED4,
            0644, 0, uint64_t{0})
      .GetFh();
  auto r = client_->Call(cp);
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  const stateid4 sid = r->op(2).nfs_resop4_u.opopen.OPEN4res_u.resok4.stateid;
  const nfs_fh4& got = r->op(3).nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
  const Fh fh(got.nfs_fh4_val, got.nfs_fh4_val + got.nfs_fh4_len);
  EXPECT_EQ(client_->GetAttr(fh, nfs41client::Bits({FATTR4_SIZE})).value.size,
            0u);
  ASSERT_GE(client_->callback_stats().cb_layoutrecall, 1u);
  ReturnRecalledLayout(fh);

  // Bounded: 50 tries 100 ms apart, far below one heartbeat period.
  constexpr int kMaxTryLater = 50;
  int try_later = 0;
  Layout l;
  for (;;) {
    l = LayoutGet(fh, sid);
    if (l.status != NFS4ERR_LAYOUTTRYLATER || try_later == kMaxTryLater) break;
    ++try_later;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NFS(l.status, NFS4_OK)
      << "still LAYOUTTRYLATER after " << try_later
      << " tries: the truncate waits for the data servers' heartbeat";
  for (uint64_t k = 0; k < 3; ++k) {
    EXPECT_EQ(BytesOnDisk(old.ino, k), 0u) << "old stripe unit " << k;
  }

  // The new, shorter content, through the new layout.
  const std::string fresh = RandomBytes(kUnit + 100, 22);
  std::vector<std::unique_ptr<Client>> dss = ConnectDevice(l.device);
  ASSERT_EQ(dss.size(), 3u);
  WriteUnits(dss, fh, l, fresh);
  EXPECT_EQ(client_->GetAttr(fh, nfs41client::Bits({FATTR4_SIZE})).value.size,
            fresh.size());
  std::string back;
  ASSERT_NFS(ReadThroughMds(fh, sid, 3 * kUnit, &back), NFS4_OK);
  EXPECT_EQ(back.size(), fresh.size()) << "nothing of the old file past it";
  EXPECT_TRUE(back == fresh) << "the new bytes only";
  EXPECT_EQ(BytesOnDisk(old.ino, 2), 0u) << "the old third unit is gone";
}

size_t CountLines(const std::string& out, const std::string& prefix) {
  size_t n = 0;
  for (size_t at = 0; at < out.size();) {
    const size_t end = out.find('\n', at);
    if (out.compare(at, prefix.size(), prefix) == 0) ++n;
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return n;
}

TEST_F(PnfsEndToEnd, PnfsCheckFindsDarkDataAndMissingStripesRepairsOnlyDark) {
  const Striped a = WriteStriped("a", 3 * kUnit + 100, 1);
  const Striped b = WriteStriped("b", 3 * kUnit + 100, 2);
  ASSERT_NE(a.ino, 0u);
  ASSERT_NE(b.ino, 0u);
  // A stray stripe file on the first data server (no inode has it).
  const ns::InodeId stray = 0xdeadbe;
  const std::string stray_path = StripePath(*ds_[0], stray);
  std::filesystem::create_directories(
      std::filesystem::path(stray_path).parent_path());
  std::ofstream(stray_path) << "bytes nobody references";
  // The stripe of b at index 1 is lost.
  auto dev = mds_->pnfs().registry().GetDevice(b.device);
  ASSERT_TRUE(dev.ok());
  ASSERT_EQ(dev->data_servers.size(), 3u);
  DataServerProcess* holder = ProcessOf(dev->data_servers[1]);
  ASSERT_NE(holder, nullptr);
  ASSERT_TRUE(std::filesystem::remove(StripePath(*holder, b.ino)));

  int code = -1;
  std::string out = RunPnfsCheck("--refresh --wait 30", &code);
  EXPECT_EQ(code, 4) << out;
  EXPECT_EQ(CountLines(out, "data server "), 3u) << out;
  EXPECT_EQ(out.find("): not inventoried"), std::string::npos) << out;
  ASSERT_EQ(CountLines(out, "dark: "), 1u) << out;
  EXPECT_NE(out.find("dark: data server " + std::to_string(IdOf(*ds_[0])) +
                     " (127.0.0.1:" + std::to_string(ds_[0]->port()) +
                     ") stripe file of inode " + std::to_string(stray) +
                     ": 23 bytes"),
            std::string::npos)
      << out;
  ASSERT_EQ(CountLines(out, "missing: "), 1u) << out;
  EXPECT_NE(out.find("missing: inode " + std::to_string(b.ino) +
                     " stripe 1 on data server " +
                     std::to_string(dev->data_servers[1])),
            std::string::npos)
      << out;

  // --repair queues the stray's removal; the data server does it at its
  // next heartbeat, and nothing else goes.
  out = RunPnfsCheck("--repair", &code);
  EXPECT_EQ(code, 4) << "the missing stripe is still there: " << out;
  EXPECT_NE(out.find("1 removal(s) queued"), std::string::npos) << out;
  EXPECT_TRUE(Eventually([&] { return !std::filesystem::exists(stray_path); }))
      << "the stray stripe file is removed";
  for (auto& p : ds_) {
    EXPECT_TRUE(std::filesystem::exists(StripePath(*p, a.ino)));
    EXPECT_EQ(std::filesystem::exists(StripePath(*p, b.ino)), p.get() != holder);
  }

  // A data server that is down is not inventoried, and none of its
  // stripes is reported missing.
  DataServerProcess* victim = ds_[0].get() == holder ? ds_[1].get() : ds_[0].get();
  const uint64_t victim_id = IdOf(*victim);
  victim->Kill();
  ASSERT_TRUE(WaitUp(2)) << "the killed data server is declared down";
  out = RunPnfsCheck("--refresh --wait 20", &code);
  EXPECT_EQ(code, 4) << out;
  EXPECT_NE(out.find("data server " + std::to_string(victim_id) + " (127.0.0.1:" +
                     std::to_string(victim->port()) +
                     "): not inventoried (down)"),
            std::string::npos)
      << out;
  EXPECT_EQ(CountLines(out, "dark: "), 0u) << out;
  EXPECT_EQ(CountLines(out, "missing: "), 1u) << "only b's lost stripe: " << out;
}

TEST_F(PnfsEndToEnd, CbNotifyDeviceIdWhenADataServerMovesOrComesBack) {
  const Striped f = WriteStriped("n", kUnit, 3);
  ASSERT_NE(f.device, 0u);
  const DeviceInfo info =
      GetDeviceInfo(f.device, (1u << NOTIFY_DEVICEID4_CHANGE) |
                                  (1u << NOTIFY_DEVICEID4_DELETE));
  EXPECT_EQ(info.notification, 1u << NOTIFY_DEVICEID4_CHANGE)
      << "CHANGE is offered, DELETE is not";
  auto dev = mds_->pnfs().registry().GetDevice(f.device);
  ASSERT_TRUE(dev.ok());
  const auto want_id = nfs41d::DeviceIdBytes(f.device);

  // The data server at stripe index 0 restarts advertising another address.
  DataServerProcess* mover = ProcessOf(dev->data_servers[0]);
  ASSERT_NE(mover, nullptr);
  mover->Kill();
  const std::string moved =
      "127.0.0.1:" + std::to_string(rpc::FreeLoopbackPort().value());
  mover->Start(moved);
  ASSERT_TRUE(client_->WaitForCallbacks(
      [](const auto& s) { return !s.device_changes.empty(); },
      std::chrono::seconds(15)));
  auto stats = client_->callback_stats();
  ASSERT_EQ(stats.device_changes.size(), 1u);
  EXPECT_EQ(stats.device_changes[0].type, NOTIFY_DEVICEID4_CHANGE);
  EXPECT_TRUE(stats.device_changes[0].device == want_id);
  EXPECT_TRUE(stats.device_changes[0].immediate) << "the old address is gone";
  std::string netid, uaddr;
  ASSERT_TRUE(nfs41d::UniversalAddress(moved, &netid, &uaddr));
  EXPECT_EQ(GetDeviceInfo(f.device).uaddrs.at(0), uaddr);

  // The data server at stripe index 1 goes down and comes back at the same
  // address: a change that is not immediate.
  DataServerProcess* back = ProcessOf(dev->data_servers[1]);
  ASSERT_NE(back, nullptr);
  back->Kill();
  ASSERT_TRUE(WaitUp(2)) << "declared down";
  back->Start();
  ASSERT_TRUE(client_->WaitForCallbacks(
      [](const auto& s) { return s.device_changes.size() >= 2; },
      std::chrono::seconds(15)));
  stats = client_->callback_stats();
  EXPECT_EQ(stats.device_changes.size(), 2u);
  EXPECT_EQ(stats.device_changes[1].type, NOTIFY_DEVICEID4_CHANGE);
  EXPECT_TRUE(stats.device_changes[1].device == want_id);
  EXPECT_FALSE(stats.device_changes[1].immediate);
}

// A data server the client cannot reach (it advertises an address where
// nothing listens; the MDS reaches it at its listen address): the client
// library sends that server's stripe units through the MDS (RFC 8881
// §13.8), the bytes land on that data server all the same, and a read
// gets every byte back.
TEST_F(PnfsEndToEnd, UnreachableDataServerFallsBackToTheMds) {
  DataServerProcess* hidden = ds_[1].get();
  hidden->Kill();
  hidden->Start("127.0.0.1:" + std::to_string(rpc::FreeLoopbackPort().value()));
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
