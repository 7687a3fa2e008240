// Protocol tests of the pNFS metadata server (pnfs_mds.h, ops_pnfs.cc)
// through the real TCP server, with fake data servers that speak only the
// control protocol (pnfs/nsctl.x) with their own RPC client: registration
// and its proofs, heartbeats and the work queue, expiry, GETDEVICEINFO,
// GETDEVICELIST, LAYOUTGET, LAYOUTCOMMIT, LAYOUTRETURN, CB_LAYOUTRECALL.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "nfs41client/client.h"
#include "nfs41d/pnfs_mds.h"
#include "nfs41d/server.h"
#include "nfs41d/status_map.h"
#include "pnfs/auth.h"
#include "pnfs/nsctl.h"
#include "rpc/client.h"
#include "rpc/xdr_codec.h"

namespace nfs41d {
namespace {

using nfs41client::Client;
using nfs41client::Compound;
using nfs41client::Fh;

#define EXPECT_NFS(expr, want) \
  EXPECT_STREQ(NfsStatName(expr), NfsStatName(want))
#define ASSERT_NFS(expr, want) \
  ASSERT_STREQ(NfsStatName(expr), NfsStatName(want))

constexpr uint64_t kAll = ~uint64_t{0};

// A data server as far as the control protocol goes.
class FakeDs {
 public:
  FakeDs(uint16_t mds_port, pnfs::Key key, std::vector<uint8_t> uuid,
         std::string advertise, std::string listen)
      : key_(key),
        uuid_(std::move(uuid)),
        advertise_(std::move(advertise)),
        listen_(std::move(listen)) {
    auto c = rpc::Client::Connect("127.0.0.1", mds_port);
    EXPECT_TRUE(c.ok());
    if (c.ok()) rpc_ = std::move(c).value();
  }

  // NSCTL_REGISTER; on NSCTL_OK remembers the device id.
  nsctl_status Register(bool good_proof = true) {
    nsctl_register_args a{};
    a.ds_uuid.ds_uuid_len = static_cast<u_int>(uuid_.size());
    a.ds_uuid.ds_uuid_val = reinterpret_cast<char*>(uuid_.data());
    a.advertise = advertise_.data();
    a.listen = listen_.data();
    a.bytes_total = 1000;
    a.bytes_free = 600;
    pnfs::Proof p = pnfs::RegisterProof(key_, uuid_, advertise_, listen_);
    if (!good_proof) p[0] ^= 1;
    std::memcpy(a.proof, p.data(), p.size());
    rpc::XdrEncoder enc;
    EXPECT_TRUE(enc.Encode(xdr_nsctl_register_args, a));
    auto r = rpc_->Call(NSCTL_PROG, NSCTL_V1, NSCTL_REGISTER, enc.Take());
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return NSCTL_ERR_SERVERFAULT;
    rpc::XdrOwned<nsctl_register_res> res(xdr_nsctl_register_res);
    EXPECT_TRUE(res.DecodeAll(r->results()));
    if (res.get().status == NSCTL_OK) {
      id_ = res.get().nsctl_register_res_u.ok.device_id;
      heartbeat_seconds_ = res.get().nsctl_register_res_u.ok.heartbeat_seconds;
    }
    return res.get().status;
  }

  // NSCTL_HEARTBEAT reporting `done` as finished (error 0).
  nsctl_status Heartbeat(const std::vector<uint64_t>& done,
                         std::vector<nsctl_work>* work = nullptr,
                         bool good_proof = true) {
    nsctl_heartbeat_args a{};
    a.device_id = id_;
    a.ds_uuid.ds_uuid_len = static_cast<u_int>(uuid_.size());
    a.ds_uuid.ds_uuid_val = reinterpret_cast<char*>(uuid_.data());
    std::vector<nsctl_done> d(done.size());
    for (size_t i = 0; i < done.size(); ++i) d[i].work_id = done[i];
    a.done.done_len = static_cast<u_int>(d.size());
    a.done.done_val = d.data();
    pnfs::Proof p = pnfs::HeartbeatProof(key_, id_, uuid_);
    if (!good_proof) p[5] ^= 1;
    std::memcpy(a.proof, p.data(), p.size());
    rpc::XdrEncoder enc;
    EXPECT_TRUE(enc.Encode(xdr_nsctl_heartbeat_args, a));
    auto r = rpc_->Call(NSCTL_PROG, NSCTL_V1, NSCTL_HEARTBEAT, enc.Take());
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return NSCTL_ERR_SERVERFAULT;
    rpc::XdrOwned<nsctl_heartbeat_res> res(xdr_nsctl_heartbeat_res);
    EXPECT_TRUE(res.DecodeAll(r->results()));
    if (work && res.get().status == NSCTL_OK) {
      const auto& w = res.get().nsctl_heartbeat_res_u.work;
      work->assign(w.work_val, w.work_val + w.work_len);
    }
    return res.get().status;
  }

  uint64_t id() const { return id_; }
  void set_id(uint64_t id) { id_ = id; }
  uint32_t heartbeat_seconds() const { return heartbeat_seconds_; }

 private:
  pnfs::Key key_;
  std::vector<uint8_t> uuid_;
  std::string advertise_, listen_;
  std::unique_ptr<rpc::Client> rpc_;
  uint64_t id_ = 0;
  uint32_t heartbeat_seconds_ = 0;
};

// LAYOUTGET's results, decoded.
struct Got {
  nfsstat4 status = NFS4_OK;
  stateid4 stateid{};
  uint64_t device = 0;
  uint32_t util = 0;
  std::vector<Fh> fhs;
  layoutiomode4 iomode = LAYOUTIOMODE4_READ;
};

class PnfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("nfs41d-pnfs-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    server_ = std::make_unique<Nfs41Server>(Options());
    ASSERT_EQ(server_->Start(), "");
    std::ifstream kf(dir_ + "/pnfs.key", std::ios::binary);
    kf.read(reinterpret_cast<char*>(key_.data()), key_.size());
    ASSERT_EQ(kf.gcount(), static_cast<std::streamsize>(key_.size()))
        << "the MDS creates <data_dir>/pnfs.key";
    auto c = Client::Connect("127.0.0.1", server_->port());
    ASSERT_TRUE(c.ok());
    client_ = std::move(c).value();
    ASSERT_EQ(client_->EstablishSession(), NFS4_OK);
  }
  void TearDown() override {
    client_.reset();
    ds_.clear();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  ServerOptions Options() const {
    ServerOptions o;
    o.port = 0;
    o.data_dir = dir_;
    o.worker_threads = 4;
    o.durable = false;
    o.state.callback_timeout = std::chrono::milliseconds(3000);
    o.pnfs.stripe_unit = 65536;
    o.pnfs.heartbeat_seconds = 1;
    o.pnfs.expire_seconds = expire_seconds_;
    return o;
  }

  FakeDs& AddDs(uint8_t n, const std::string& advertise = "") {
    const std::string listen = "127.0.0.1:" + std::to_string(20000 + n);
    ds_.push_back(std::make_unique<FakeDs>(
        server_->port(), key_, std::vector<uint8_t>{0xd5, n},
        advertise.empty() ? listen : advertise, listen));
    EXPECT_EQ(ds_.back()->Register(), NSCTL_OK);
    return *ds_.back();
  }

  Fh Root() { return client_->RootFh().value; }

  Client::Opened Open(const std::string& name, Fh dir = {}) {
    if (dir.empty()) dir = Root();
    auto r = client_->OpenFile(dir, name, OPEN4_SHARE_ACCESS_BOTH);
    EXPECT_NFS(r.status, NFS4_OK);
    return r.value;
  }

  Got LayoutGet(const Fh& fh, const stateid4& sid,
                layoutiomode4 iomode = LAYOUTIOMODE4_RW,
                uint32_t maxcount = 4096, Client* c = nullptr) {
    nfs_argop4 op{};
    op.argop = OP_LAYOUTGET;
    LAYOUTGET4args& a = op.nfs_argop4_u.oplayoutget;
    a.loga_layout_type = LAYOUT4_NFSV4_1_FILES;
    a.loga_iomode = iomode;
    a.loga_offset = 0;
    a.loga_length = kAll;
    a.loga_minlength = 0;
    a.loga_stateid = sid;
    a.loga_maxcount = maxcount;
    Compound cp;
    cp.PutFh(fh).Op(op);
    auto r = (c ? c : client_.get())->Call(cp);
    Got g;
    if (!r.ok()) {
      g.status = NFS4ERR_IO;
      return g;
    }
    g.status = r->status();
    if (g.status != NFS4_OK) return g;
    const LAYOUTGET4resok& ok =
        r->op(2).nfs_resop4_u.oplayoutget.LAYOUTGET4res_u.logr_resok4;
    g.stateid = ok.logr_stateid;
    EXPECT_EQ(ok.logr_layout.logr_layout_len, 1u);
    const layout4& lo = ok.logr_layout.logr_layout_val[0];
    EXPECT_EQ(lo.lo_offset, 0u);
    EXPECT_EQ(lo.lo_length, kAll);
    EXPECT_EQ(lo.lo_content.loc_type, LAYOUT4_NFSV4_1_FILES);
    g.iomode = lo.lo_iomode;
    rpc::XdrOwned<nfsv4_1_file_layout4> fl(xdr_nfsv4_1_file_layout4);
    EXPECT_TRUE(fl.DecodeAll(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(lo.lo_content.loc_body.loc_body_val),
        lo.lo_content.loc_body.loc_body_len)));
    g.device = *DeviceFromBytes(
        reinterpret_cast<const uint8_t*>(fl.get().nfl_deviceid));
    g.util = fl.get().nfl_util;
    EXPECT_EQ(fl.get().nfl_first_stripe_index, 0u);
    for (u_int i = 0; i < fl.get().nfl_fh_list.nfl_fh_list_len; ++i) {
      const nfs_fh4& f = fl.get().nfl_fh_list.nfl_fh_list_val[i];
      g.fhs.emplace_back(f.nfs_fh4_val, f.nfs_fh4_val + f.nfs_fh4_len);
    }
    return g;
  }

  // GETDEVICEINFO: the universal addresses in stripe order, or the status.
  nfsstat4 DeviceInfo(uint64_t device, std::vector<std::string>* addrs,
                      uint32_t maxcount = 4096, uint32_t* mincount = nullptr) {
    nfs_argop4 op{};
    op.argop = OP_GETDEVICEINFO;
    GETDEVICEINFO4args& a = op.nfs_argop4_u.opgetdeviceinfo;
    const auto id = DeviceIdBytes(device);
    std::memcpy(a.gdia_device_id, id.data(), id.size());
    a.gdia_layout_type = LAYOUT4_NFSV4_1_FILES;
    a.gdia_maxcount = maxcount;
    Compound cp;
    cp.Op(op);
    auto r = client_->Call(cp);
    if (!r.ok()) return NFS4ERR_IO;
    const GETDEVICEINFO4res& res = r->op(1).nfs_resop4_u.opgetdeviceinfo;
    if (res.gdir_status == NFS4ERR_TOOSMALL && mincount) {
      *mincount = res.GETDEVICEINFO4res_u.gdir_mincount;
    }
    if (res.gdir_status != NFS4_OK) return res.gdir_status;
    const device_addr4& da = res.GETDEVICEINFO4res_u.gdir_resok4.gdir_device_addr;
    EXPECT_EQ(da.da_layout_type, LAYOUT4_NFSV4_1_FILES);
    rpc::XdrOwned<nfsv4_1_file_layout_ds_addr4> d(
        xdr_nfsv4_1_file_layout_ds_addr4);
    EXPECT_TRUE(d.DecodeAll(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(da.da_addr_body.da_addr_body_val),
        da.da_addr_body.da_addr_body_len)));
    const auto& idx = d.get().nflda_stripe_indices;
    const auto& list = d.get().nflda_multipath_ds_list;
    EXPECT_EQ(idx.nflda_stripe_indices_len, list.nflda_multipath_ds_list_len);
    addrs->clear();
    for (u_int i = 0; i < idx.nflda_stripe_indices_len; ++i) {
      EXPECT_EQ(idx.nflda_stripe_indices_val[i], i);
      const multipath_list4& m = list.nflda_multipath_ds_list_val[i];
      EXPECT_EQ(m.multipath_list4_len, 1u);
      EXPECT_STREQ(m.multipath_list4_val[0].na_r_netid, "tcp");
      addrs->push_back(m.multipath_list4_val[0].na_r_addr);
    }
    return NFS4_OK;
  }

  nfsstat4 LayoutCommit(const Fh& fh, const stateid4& sid,
                        std::optional<uint64_t> last_write,
                        std::optional<int64_t> mtime_sec, uint64_t* new_size,
                        bool* changed) {
    nfs_argop4 op{};
    op.argop = OP_LAYOUTCOMMIT;
    LAYOUTCOMMIT4args& a = op.nfs_argop4_u.oplayoutcommit;
    a.loca_offset = 0;
    a.loca_length = kAll;
    a.loca_stateid = sid;
    if (last_write) {
      a.loca_last_write_offset.no_newoffset = TRUE;
      a.loca_last_write_offset.newoffset4_u.no_offset = *last_write;
    }
    if (mtime_sec) {
      a.loca_time_modify.nt_timechanged = TRUE;
      a.loca_time_modify.newtime4_u.nt_time.seconds = *mtime_sec;
    }
    a.loca_layoutupdate.lou_type = LAYOUT4_NFSV4_1_FILES;
    Compound cp;
    cp.PutFh(fh).Op(op);
    auto r = client_->Call(cp);
    if (!r.ok()) return NFS4ERR_IO;
    if (r->status() == NFS4_OK) {
      const auto& ok =
          r->op(2).nfs_resop4_u.oplayoutcommit.LAYOUTCOMMIT4res_u.locr_resok4;
      *changed = ok.locr_newsize.ns_sizechanged;
      if (*changed) *new_size = ok.locr_newsize.newsize4_u.ns_size;
    }
    return r->status();
  }

  nfsstat4 LayoutReturnFile(const Fh& fh, const stateid4& sid) {
    nfs_argop4 op{};
    op.argop = OP_LAYOUTRETURN;
    LAYOUTRETURN4args& a = op.nfs_argop4_u.oplayoutreturn;
    a.lora_layout_type = LAYOUT4_NFSV4_1_FILES;
    a.lora_iomode = LAYOUTIOMODE4_ANY;
    a.lora_layoutreturn.lr_returntype = LAYOUTRETURN4_FILE;
    a.lora_layoutreturn.layoutreturn4_u.lr_layout.lrf_offset = 0;
    a.lora_layoutreturn.layoutreturn4_u.lr_layout.lrf_length = kAll;
    a.lora_layoutreturn.layoutreturn4_u.lr_layout.lrf_stateid = sid;
    Compound cp;
    cp.PutFh(fh).Op(op);
    auto r = client_->Call(cp);
    return r.ok() ? r->status() : NFS4ERR_IO;
  }

  // The raw fs_layout_types values of `fh`.
  std::vector<uint32_t> LayoutTypes(const Fh& fh) {
    Compound cp;
    cp.PutFh(fh).GetAttr(nfs41client::Bits({FATTR4_FS_LAYOUT_TYPES}));
    auto r = client_->Call(cp);
    EXPECT_TRUE(r.ok() && r->status() == NFS4_OK);
    std::vector<uint32_t> out;
    if (!r.ok() || r->status() != NFS4_OK) return out;
    const fattr4& f =
        r->op(2).nfs_resop4_u.opgetattr.GETATTR4res_u.resok4.obj_attributes;
    const auto* p = reinterpret_cast<const uint8_t*>(f.attr_vals.attrlist4_val);
    auto u32 = [&](size_t off) {
      return (uint32_t{p[off]} << 24) | (uint32_t{p[off + 1]} << 16) |
             (uint32_t{p[off + 2]} << 8) | p[off + 3];
    };
    EXPECT_GE(f.attr_vals.attrlist4_len, 4u);
    const uint32_t n = u32(0);
    EXPECT_EQ(f.attr_vals.attrlist4_len, 4u + 4u * n);
    for (uint32_t i = 0; i < n; ++i) out.push_back(u32(4 + 4 * i));
    return out;
  }

  std::string dir_;
  uint32_t expire_seconds_ = 600;
  pnfs::Key key_{};
  std::unique_ptr<Nfs41Server> server_;
  std::unique_ptr<Client> client_;
  std::vector<std::unique_ptr<FakeDs>> ds_;
};

TEST_F(PnfsTest, WithoutDataServersThereAreNoLayouts) {
  EXPECT_TRUE(client_->exchange_flags() & EXCHGID4_FLAG_USE_PNFS_MDS);
  EXPECT_FALSE(client_->exchange_flags() & EXCHGID4_FLAG_USE_NON_PNFS);
  EXPECT_TRUE(LayoutTypes(Root()).empty());
  Client::Opened f = Open("f");
  EXPECT_NFS(LayoutGet(f.fh, f.stateid).status, NFS4ERR_LAYOUTUNAVAILABLE);
  // I/O through the MDS as before.
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 0, "hello").status, NFS4_OK);
  EXPECT_EQ(client_->ReadFile(f.fh, f.stateid, 0, 10).value.data, "hello");
}

TEST_F(PnfsTest, RegistrationNeedsTheKeyAndGivesAStableId) {
  FakeDs bad(server_->port(), key_, {1, 2, 3}, "127.0.0.1:1", "127.0.0.1:1");
  EXPECT_EQ(bad.Register(/*good_proof=*/false), NSCTL_ERR_AUTH);
  pnfs::Key other = key_;
  other[3] ^= 0x40;
  FakeDs stranger(server_->port(), other, {1, 2, 3}, "127.0.0.1:1",
                  "127.0.0.1:1");
  EXPECT_EQ(stranger.Register(), NSCTL_ERR_AUTH);
  FakeDs noport(server_->port(), key_, {1, 2, 3}, "127.0.0.1", "127.0.0.1:1");
  EXPECT_EQ(noport.Register(), NSCTL_ERR_INVAL);
  auto none = server_->pnfs().registry().ListDataServers();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty()) << "refused registrations leave no row";

  FakeDs& a = AddDs(1);
  EXPECT_EQ(a.heartbeat_seconds(), 1u);
  const uint64_t id = a.id();
  EXPECT_NE(id, 0u);
  ASSERT_EQ(a.Register(), NSCTL_OK);
  EXPECT_EQ(a.id(), id) << "the same uuid keeps its id";
  FakeDs& b = AddDs(2);
  EXPECT_NE(b.id(), id);
  EXPECT_EQ(LayoutTypes(Root()), std::vector<uint32_t>{LAYOUT4_NFSV4_1_FILES});

  EXPECT_EQ(a.Heartbeat({}), NSCTL_OK);
  EXPECT_EQ(a.Heartbeat({}, nullptr, /*good_proof=*/false), NSCTL_ERR_AUTH);
  FakeDs ghost(server_->port(), key_, {0xd5, 9}, "127.0.0.1:9",
               "127.0.0.1:9");
  ghost.set_id(12345);
  EXPECT_EQ(ghost.Heartbeat({}), NSCTL_ERR_UNKNOWN_DEVICE);
}

TEST_F(PnfsTest, LayoutGetAndDeviceInfoDescribeTheStripes) {
  AddDs(1, "10.0.2.2:2049");
  AddDs(2);
  AddDs(3);
  Client::Opened f = Open("striped");
  Got g = LayoutGet(f.fh, f.stateid);
  ASSERT_NFS(g.status, NFS4_OK);
  EXPECT_EQ(g.iomode, LAYOUTIOMODE4_RW);
  EXPECT_EQ(g.util, 65536u) << "the configured stripe unit, no flags (sparse)";
  ASSERT_EQ(g.fhs.size(), 1u) << "one handle for every data server";
  EXPECT_NE(g.fhs[0], f.fh) << "DS handles differ from MDS handles";
  std::optional<FileHandle> dsfh = FhCodec(key_).Decode(g.fhs[0]);
  ASSERT_TRUE(dsfh) << "signed with the pNFS key";
  EXPECT_EQ(dsfh->export_id, 0u);
  auto attrs = client_->GetAttr(f.fh, nfs41client::Bits({FATTR4_FILEID}));
  EXPECT_EQ(dsfh->ino, attrs.value.fileid);
  EXPECT_FALSE(server_->fh_codec().Decode(g.fhs[0]))
      << "the MDS's own key does not accept it";

  std::vector<std::string> addrs;
  ASSERT_NFS(DeviceInfo(g.device, &addrs), NFS4_OK);
  ASSERT_EQ(addrs.size(), 3u);
  std::set<std::string> want = {"10.0.2.2.8.1", "127.0.0.1.78.34",
                                "127.0.0.1.78.35"};
  EXPECT_EQ(std::set<std::string>(addrs.begin(), addrs.end()), want)
      << "advertised addresses as h1.h2.h3.h4.p1.p2";
  uint32_t mincount = 0;
  EXPECT_NFS(DeviceInfo(g.device, &addrs, 16, &mincount), NFS4ERR_TOOSMALL);
  EXPECT_GT(mincount, 16u);
  EXPECT_NFS(DeviceInfo(g.device + 1000, &addrs), NFS4ERR_NOENT);

  // A second LAYOUTGET with the layout stateid: same layout, seqid + 1.
  Got again = LayoutGet(f.fh, g.stateid, LAYOUTIOMODE4_READ);
  ASSERT_NFS(again.status, NFS4_OK);
  EXPECT_EQ(again.device, g.device);
  EXPECT_EQ(0, std::memcmp(again.stateid.other, g.stateid.other, 12));
  EXPECT_EQ(again.stateid.seqid, g.stateid.seqid + 1);
  EXPECT_NFS(LayoutGet(f.fh, g.stateid).status, NFS4ERR_OLD_STATEID);
  EXPECT_NFS(LayoutGet(f.fh, g.stateid, LAYOUTIOMODE4_RW, 20).status,
             NFS4ERR_OLD_STATEID);
  EXPECT_NFS(LayoutGet(f.fh, again.stateid, LAYOUTIOMODE4_RW, 20).status,
             NFS4ERR_TOOSMALL);
  stateid4 bogus = g.stateid;
  bogus.other[11] ^= 0x5a;
  EXPECT_NFS(LayoutGet(f.fh, bogus).status, NFS4ERR_BAD_STATEID);
  EXPECT_NFS(LayoutGet(Root(), f.stateid).status, NFS4ERR_ISDIR);

  // GETDEVICELIST lists the device.
  nfs_argop4 op{};
  op.argop = OP_GETDEVICELIST;
  op.nfs_argop4_u.opgetdevicelist.gdla_layout_type = LAYOUT4_NFSV4_1_FILES;
  op.nfs_argop4_u.opgetdevicelist.gdla_maxdevices = 10;
  Compound cp;
  cp.PutRootFh().Op(op);
  auto r = client_->Call(cp);
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  const auto& ok =
      r->op(2).nfs_resop4_u.opgetdevicelist.GETDEVICELIST4res_u.gdlr_resok4;
  ASSERT_EQ(ok.gdlr_deviceid_list.gdlr_deviceid_list_len, 1u);
  EXPECT_EQ(*DeviceFromBytes(reinterpret_cast<const uint8_t*>(
                ok.gdlr_deviceid_list.gdlr_deviceid_list_val[0])),
            g.device);
  EXPECT_TRUE(ok.gdlr_eof);
}

TEST_F(PnfsTest, DirectoryTagsChooseStripeUnitAndCount) {
  AddDs(1);
  AddDs(2);
  AddDs(3);
  auto d = client_->Mkdir(Root(), "wide");
  ASSERT_NFS(d.status, NFS4_OK);
  std::optional<FileHandle> dfh = server_->fh_codec().Decode(d.value);
  ASSERT_TRUE(dfh);
  ns::Credentials root = ns::Credentials::Root();
  ASSERT_TRUE(server_->ns().WriteTag(root, dfh->ino, "pnfs.stripe_unit",
                                     "131072").ok());
  ASSERT_TRUE(server_->ns().WriteTag(root, dfh->ino, "pnfs.stripe_count",
                                     "2").ok());
  Client::Opened f = Open("f", d.value);
  Got g = LayoutGet(f.fh, f.stateid);
  ASSERT_NFS(g.status, NFS4_OK);
  EXPECT_EQ(g.util, 131072u);
  std::vector<std::string> addrs;
  ASSERT_NFS(DeviceInfo(g.device, &addrs), NFS4_OK);
  EXPECT_EQ(addrs.size(), 2u);
}

TEST_F(PnfsTest, LayoutCommitSetsSizeAndMtimeAndReturnEndsTheLayout) {
  AddDs(1);
  Client::Opened f = Open("f");
  Got g = LayoutGet(f.fh, f.stateid);
  ASSERT_NFS(g.status, NFS4_OK);
  uint64_t size = 0;
  bool changed = false;
  ASSERT_NFS(LayoutCommit(f.fh, g.stateid, 99999, 1700000000, &size, &changed),
             NFS4_OK);
  EXPECT_TRUE(changed);
  EXPECT_EQ(size, 100000u);
  auto a = client_->GetAttr(
      f.fh, nfs41client::Bits({FATTR4_SIZE, FATTR4_TIME_MODIFY}));
  EXPECT_EQ(a.value.size, 100000u);
  EXPECT_EQ(a.value.mtime_sec, 1700000000);
  // A smaller last offset never shrinks the file.
  ASSERT_NFS(LayoutCommit(f.fh, g.stateid, 10, std::nullopt, &size, &changed),
             NFS4_OK);
  EXPECT_FALSE(changed);
  EXPECT_EQ(client_->GetAttr(f.fh, nfs41client::Bits({FATTR4_SIZE}))
                .value.size,
            100000u);
  // The size is in the database after CLOSE too.
  ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
  auto ino = server_->fh_codec().Decode(f.fh);
  auto db = server_->ns().GetAttr(ns::Credentials::Root(), ino->ino);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(db->size, 100000u);
  // An open stateid is not a layout stateid.
  EXPECT_NFS(LayoutCommit(f.fh, f.stateid, 5, std::nullopt, &size, &changed),
             NFS4ERR_BAD_STATEID);

  ASSERT_NFS(LayoutReturnFile(f.fh, g.stateid), NFS4_OK);
  EXPECT_TRUE(server_->pnfs().LayoutsOf(ino->ino).empty());
  EXPECT_NFS(LayoutCommit(f.fh, g.stateid, 5, std::nullopt, &size, &changed),
             NFS4ERR_BAD_STATEID)
      << "the layout is gone";
  // Returning it again is harmless.
  EXPECT_NFS(LayoutReturnFile(f.fh, g.stateid), NFS4_OK);
}

TEST_F(PnfsTest, FileWithBytesInTheMdsGetsNoLayout) {
  AddDs(1);
  Client::Opened f = Open("local");
  ASSERT_NFS(client_->WriteFile(f.fh, f.stateid, 0, "in the MDS").status,
             NFS4_OK);
  EXPECT_NFS(LayoutGet(f.fh, f.stateid).status, NFS4ERR_LAYOUTUNAVAILABLE);
}

TEST_F(PnfsTest, RemovalQueuesWorkForEveryDataServerUntilDone) {
  FakeDs& a = AddDs(1);
  FakeDs& b = AddDs(2);
  Client::Opened f = Open("doomed");
  Got g = LayoutGet(f.fh, f.stateid);
  ASSERT_NFS(g.status, NFS4_OK);
  const ns::InodeId ino = server_->fh_codec().Decode(f.fh)->ino;
  ASSERT_NFS(client_->CloseFile(f.fh, f.stateid).status, NFS4_OK);
  ASSERT_NFS(client_->Remove(Root(), "doomed").status, NFS4_OK);
  for (FakeDs* ds : {&a, &b}) {
    std::vector<nsctl_work> w;
    ASSERT_EQ(ds->Heartbeat({}, &w), NSCTL_OK);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].op, NSCTL_REMOVE);
    EXPECT_EQ(w[0].fileid, ino);
    // Not done yet: handed out again.
    std::vector<nsctl_work> again;
    ASSERT_EQ(ds->Heartbeat({}, &again), NSCTL_OK);
    ASSERT_EQ(again.size(), 1u);
    ASSERT_EQ(ds->Heartbeat({w[0].work_id}, &again), NSCTL_OK);
    EXPECT_TRUE(again.empty());
  }
  auto left = server_->pnfs().registry().ListWork();
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
  // The client holding a layout on the removed file was told.
  EXPECT_TRUE(client_->WaitForCallbacks(
      [](const nfs41client::CallbackStats& s) { return s.cb_layoutrecall > 0; },
      std::chrono::seconds(5)));
}

TEST_F(PnfsTest, TruncateRecallsLayoutsAndQueuesTruncate) {
  FakeDs& a = AddDs(1);
  Client::Opened f = Open("t");
  Got g = LayoutGet(f.fh, f.stateid);
  ASSERT_NFS(g.status, NFS4_OK);
  uint64_t size = 0;
  bool changed = false;
  ASSERT_NFS(LayoutCommit(f.fh, g.stateid, 999, std::nullopt, &size, &changed),
             NFS4_OK);
  // Another client truncates.
  auto connected = Client::Connect("127.0.0.1", server_->port());
  ASSERT_TRUE(connected.ok());
  std::unique_ptr<Client> c2 = std::move(connected).value();
  ASSERT_EQ(c2->EstablishSession(), NFS4_OK);
  auto o2 = c2->OpenFile(Root(), "t", OPEN4_SHARE_ACCESS_BOTH, 0, false,
                            "other");
  ASSERT_NFS(o2.status, NFS4_OK);
  Compound cp;
  cp.PutFh(o2.value.fh).SetSize(o2.value.stateid, 10);
  auto r = c2->Call(cp);
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  ASSERT_TRUE(client_->WaitForCallbacks(
      [](const nfs41client::CallbackStats& s) { return s.cb_layoutrecall > 0; },
      std::chrono::seconds(5)));
  nfs41client::CallbackStats cs = client_->callback_stats();
  EXPECT_EQ(cs.last_layoutrecall_type, LAYOUTRECALL4_FILE);
  EXPECT_EQ(cs.last_layoutrecall_fh, f.fh);
  EXPECT_EQ(0, std::memcmp(cs.last_layoutrecall_stateid.other,
                           g.stateid.other, 12));
  EXPECT_GT(cs.last_layoutrecall_stateid.seqid, g.stateid.seqid);
  // The client returns the recalled layout.
  EXPECT_NFS(LayoutReturnFile(f.fh, cs.last_layoutrecall_stateid), NFS4_OK);

  std::vector<nsctl_work> w;
  ASSERT_EQ(a.Heartbeat({}, &w), NSCTL_OK);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].op, NSCTL_TRUNCATE);
  EXPECT_EQ(w[0].size, 10u);
  // While the data servers have not truncated, no new layout.
  EXPECT_NFS(LayoutGet(o2.value.fh, o2.value.stateid, LAYOUTIOMODE4_RW, 4096,
                       c2.get())
                 .status,
             NFS4ERR_LAYOUTTRYLATER);
  // Writes through the MDS wait for the truncate too.
  EXPECT_NFS(c2->WriteFile(o2.value.fh, o2.value.stateid, 0, "x").status,
             NFS4ERR_DELAY);
  ASSERT_EQ(a.Heartbeat({w[0].work_id}, &w), NSCTL_OK);
  EXPECT_NFS(c2->WriteFile(o2.value.fh, o2.value.stateid, 0, "x").status,
             NFS4ERR_DELAY)
      << "the fake data server is not reachable for the MDS";
  EXPECT_NFS(LayoutGet(o2.value.fh, o2.value.stateid, LAYOUTIOMODE4_RW, 4096,
                       c2.get())
                 .status,
             NFS4_OK);
}

// §12.7.4: layouts are not reclaimed, so after a restart the MDS cannot
// recall the layouts clients held; until the grace period ends a shrink of
// a file with a layout waits (NFS4ERR_GRACE) for every client to notice
// the restart and stop writing through them. Growing it does not wait.
TEST_F(PnfsTest, ShrinkOfAFileWithALayoutWaitsOutTheGracePeriod) {
  AddDs(1);
  Client::Opened f = Open("g");
  Got g = LayoutGet(f.fh, f.stateid);
  ASSERT_NFS(g.status, NFS4_OK);
  uint64_t size = 0;
  bool changed = false;
  ASSERT_NFS(LayoutCommit(f.fh, g.stateid, 999, std::nullopt, &size, &changed),
             NFS4_OK);
  Compound rc;
  rc.ReclaimComplete();
  ASSERT_TRUE(client_->Call(rc).ok());

  // Restart: the client's record makes a grace period.
  client_.reset();
  server_->Stop();
  server_.reset();
  ServerOptions o = Options();
  o.state.grace_seconds = 30;
  server_ = std::make_unique<Nfs41Server>(o);
  ASSERT_EQ(server_->Start(), "");
  ASSERT_TRUE(server_->state().InGrace());
  auto c = Client::Connect("127.0.0.1", server_->port());
  ASSERT_TRUE(c.ok());
  client_ = std::move(c).value();
  ASSERT_EQ(client_->EstablishSession(), NFS4_OK);
  const stateid4 anonymous{};
  Compound shrink;
  shrink.PutFh(f.fh).SetSize(anonymous, 10);
  auto r = client_->Call(shrink);
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4ERR_GRACE);
  Compound grow;
  grow.PutFh(f.fh).SetSize(anonymous, 5000);
  r = client_->Call(grow);
  ASSERT_TRUE(r.ok());
  EXPECT_NFS(r->status(), NFS4_OK);
}

class PnfsExpiryTest : public PnfsTest {
 protected:
  void SetUp() override {
    expire_seconds_ = 2;
    PnfsTest::SetUp();
  }
};

TEST_F(PnfsExpiryTest, SilentDataServerGoesDownAndItsLayoutsAreRecalled) {
  FakeDs& a = AddDs(1);
  Client::Opened f = Open("f");
  Got g = LayoutGet(f.fh, f.stateid);
  ASSERT_NFS(g.status, NFS4_OK);
  // expire_seconds = 2 and no heartbeats: the expiry thread notices.
  ASSERT_TRUE(client_->WaitForCallbacks(
      [](const nfs41client::CallbackStats& s) { return s.cb_layoutrecall > 0; },
      std::chrono::seconds(10)));
  auto d = server_->pnfs().registry().GetDataServer(a.id());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->state, ns::DataServerState::kDown);
  // The client saw the recall before the server saw its answer: wait for
  // the server to record it.
  const ns::InodeId ino = server_->fh_codec().Decode(f.fh)->ino;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  bool recorded = false;
  while (!recorded && std::chrono::steady_clock::now() < until) {
    auto ls = server_->pnfs().LayoutsOf(ino);
    recorded = ls.size() == 1 && ls[0].recalled_ns != 0;
    if (!recorded) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(recorded);
  // Until the client returns the recalled layout: RECALLCONFLICT.
  EXPECT_NFS(LayoutGet(f.fh, f.stateid).status, NFS4ERR_RECALLCONFLICT);
  nfs41client::CallbackStats cs = client_->callback_stats();
  ASSERT_NFS(LayoutReturnFile(f.fh, cs.last_layoutrecall_stateid), NFS4_OK);
  EXPECT_NFS(LayoutGet(f.fh, f.stateid).status, NFS4ERR_LAYOUTUNAVAILABLE);
  // It comes back: layouts again.
  ASSERT_EQ(a.Heartbeat({}), NSCTL_OK);
  EXPECT_NFS(LayoutGet(f.fh, f.stateid).status, NFS4_OK);
}

TEST_F(PnfsTest, RecalledLayoutNotReturnedIsRevoked) {
  AddDs(1);
  Client::Opened f = Open("f");
  Got g = LayoutGet(f.fh, f.stateid);
  ASSERT_NFS(g.status, NFS4_OK);
  const ns::InodeId ino = server_->fh_codec().Decode(f.fh)->ino;
  EXPECT_EQ(server_->pnfs().RecallFile(ino), 1u);
  EXPECT_NFS(LayoutGet(f.fh, f.stateid).status, NFS4ERR_RECALLCONFLICT);
  EXPECT_EQ(server_->pnfs().ForgetGoneClients(std::chrono::hours(1)), 0u)
      << "within the timeout the layout stays";
  EXPECT_EQ(server_->pnfs().ForgetGoneClients(std::chrono::nanoseconds(-1)),
            1u);
  EXPECT_TRUE(server_->pnfs().LayoutsOf(ino).empty());
  uint64_t size = 0;
  bool changed = false;
  EXPECT_NFS(LayoutCommit(f.fh, g.stateid, 5, std::nullopt, &size, &changed),
             NFS4ERR_BAD_STATEID)
      << "a revoked layout's stateid is gone";
  EXPECT_NFS(LayoutGet(f.fh, f.stateid).status, NFS4_OK);
}

}  // namespace
}  // namespace nfs41d
