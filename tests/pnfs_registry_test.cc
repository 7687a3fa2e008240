// The pNFS registry (pnfs.h, schema 005) on both dialects: stable ids per
// uuid, heartbeats and their work, expiry, devices, layouts, and the work
// the database queues itself when a file with a layout is removed or
// shrunk.

#include <string>
#include <vector>

#include "libnamespace/include/namespace/admin.h"
#include "libnamespace/include/namespace/pnfs.h"
#include "tests/test_util.h"

namespace ns::testing {
namespace {

class PnfsRegistryTest : public DialectTest {
 protected:
  void SetUp() override {
    DialectTest::SetUp();
    if (ns_) reg_ = std::make_unique<PnfsRegistry>(ns_.get());
  }

  DataServer Reg(const std::string& uuid, const std::string& addr,
                 TimeNs now = 1000) {
    Result<DataServer> d = reg_->Register(uuid, addr, addr, 100, 50, now);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : DataServer{};
  }

  std::unique_ptr<PnfsRegistry> reg_;
};

TEST_P(PnfsRegistryTest, RegisterGivesAStableIdPerUuid) {
  DataServer a = Reg("aa01", "127.0.0.1:1000");
  DataServer b = Reg("bb02", "127.0.0.1:1001");
  EXPECT_NE(a.id, b.id);
  ASSERT_OK_AND_ASSIGN(
      DataServer a2,
      reg_->Register("aa01", "10.0.2.2:2000", "127.0.0.1:3000", 7, 3, 5000));
  EXPECT_EQ(a2.id, a.id);
  EXPECT_EQ(a2.advertise, "10.0.2.2:2000");
  EXPECT_EQ(a2.listen, "127.0.0.1:3000");
  EXPECT_EQ(a2.bytes_total, 7u);
  EXPECT_EQ(a2.bytes_free, 3u);
  EXPECT_EQ(a2.heartbeat_ns, 5000);
  EXPECT_EQ(a2.state, DataServerState::kUp);
  ASSERT_OK_AND_ASSIGN(auto all, reg_->ListDataServers());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].uuid, "aa01");
  EXPECT_EQ(all[1].uuid, "bb02");
}

TEST_P(PnfsRegistryTest, BadInputIsInvalid) {
  EXPECT_TRUE(reg_->Register("", "a:1", "a:1", 0, 0, 1).status().IsInvalid());
  EXPECT_TRUE(
      reg_->Register("XYZ", "a:1", "a:1", 0, 0, 1).status().IsInvalid());
  EXPECT_TRUE(reg_->Register(std::string(129, 'a'), "a:1", "a:1", 0, 0, 1)
                  .status()
                  .IsInvalid());
  EXPECT_TRUE(reg_->Register("ab", "", "a:1", 0, 0, 1).status().IsInvalid());
  EXPECT_TRUE(reg_->Register("ab", "a:1", std::string(256, 'x'), 0, 0, 1)
                  .status()
                  .IsInvalid());
  EXPECT_TRUE(reg_->DeviceFor({}).status().IsInvalid());
  const std::vector<uint64_t> twice = {1, 1};
  EXPECT_TRUE(reg_->DeviceFor(twice).status().IsInvalid());
  ASSERT_OK_AND_ASSIGN(auto all, reg_->ListDataServers());
  EXPECT_TRUE(all.empty());
}

TEST_P(PnfsRegistryTest, HeartbeatOfUnknownOrWrongUuidIsNotFound) {
  DataServer a = Reg("aa01", "h:1");
  EXPECT_TRUE(
      reg_->Heartbeat(a.id + 100, "aa01", 0, 0, {}, 10, 2000).status()
          .IsNotFound());
  EXPECT_TRUE(
      reg_->Heartbeat(a.id, "bb02", 0, 0, {}, 10, 2000).status().IsNotFound());
  ASSERT_OK_AND_ASSIGN(auto w, reg_->Heartbeat(a.id, "aa01", 9, 8, {}, 10, 2000));
  EXPECT_TRUE(w.empty());
  ASSERT_OK_AND_ASSIGN(DataServer got, reg_->GetDataServer(a.id));
  EXPECT_EQ(got.heartbeat_ns, 2000);
  EXPECT_EQ(got.bytes_total, 9u);
  EXPECT_TRUE(reg_->GetDataServer(a.id + 100).status().IsNotFound());
}

TEST_P(PnfsRegistryTest, ExpiryMarksSilentServersDownOnceAndHeartbeatRevives) {
  DataServer a = Reg("aa01", "h:1", 1000);
  DataServer b = Reg("bb02", "h:2", 5000);
  ASSERT_OK_AND_ASSIGN(auto down, reg_->ExpireSilent(3000));
  ASSERT_EQ(down.size(), 1u);
  EXPECT_EQ(down[0].id, a.id);
  ASSERT_OK_AND_ASSIGN(auto again, reg_->ExpireSilent(3000));
  EXPECT_TRUE(again.empty());
  ASSERT_OK_AND_ASSIGN(auto up, reg_->ListDataServers(/*only_up=*/true));
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(up[0].id, b.id);
  ASSERT_OK(reg_->Heartbeat(a.id, "aa01", 0, 0, {}, 10, 6000).status());
  ASSERT_OK_AND_ASSIGN(auto up2, reg_->ListDataServers(true));
  EXPECT_EQ(up2.size(), 2u);
}

TEST_P(PnfsRegistryTest, HeartbeatHandsOutWorkAndDeletesOnlyItsOwnDoneRows) {
  DataServer a = Reg("aa01", "h:1");
  DataServer b = Reg("bb02", "h:2");
  ASSERT_OK_AND_ASSIGN(uint64_t w1,
                       reg_->QueueWork(a.id, PnfsWorkOp::kRemove, 42, 0, 1));
  ASSERT_OK_AND_ASSIGN(uint64_t w2,
                       reg_->QueueWork(a.id, PnfsWorkOp::kTruncate, 43, 17, 2));
  ASSERT_OK_AND_ASSIGN(uint64_t w3,
                       reg_->QueueWork(b.id, PnfsWorkOp::kRemove, 44, 0, 3));
  ASSERT_OK_AND_ASSIGN(auto first, reg_->Heartbeat(a.id, "aa01", 0, 0, {}, 1, 10));
  ASSERT_EQ(first.size(), 1u);  // bounded by max_work
  EXPECT_EQ(first[0].id, w1);
  ASSERT_OK_AND_ASSIGN(auto both, reg_->Heartbeat(a.id, "aa01", 0, 0, {}, 10, 10));
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[1].id, w2);
  EXPECT_EQ(both[1].op, PnfsWorkOp::kTruncate);
  EXPECT_EQ(both[1].fileid, 43u);
  EXPECT_EQ(both[1].size, 17u);
  // a reports w1 and (wrongly) b's w3 as done: only w1 goes.
  const std::vector<uint64_t> done = {w1, w3};
  ASSERT_OK_AND_ASSIGN(auto rest, reg_->Heartbeat(a.id, "aa01", 0, 0, done, 10, 11));
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].id, w2);
  ASSERT_OK_AND_ASSIGN(auto all, reg_->ListWork());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].id, w3);
}

TEST_P(PnfsRegistryTest, DevicesAreStablePerOrderedList) {
  DataServer a = Reg("aa01", "h:1");
  DataServer b = Reg("bb02", "h:2");
  const std::vector<uint64_t> ab = {a.id, b.id};
  const std::vector<uint64_t> ba = {b.id, a.id};
  ASSERT_OK_AND_ASSIGN(PnfsDevice d1, reg_->DeviceFor(ab));
  ASSERT_OK_AND_ASSIGN(PnfsDevice d2, reg_->DeviceFor(ab));
  ASSERT_OK_AND_ASSIGN(PnfsDevice d3, reg_->DeviceFor(ba));
  EXPECT_EQ(d1.id, d2.id);
  EXPECT_NE(d1.id, d3.id);
  ASSERT_OK_AND_ASSIGN(PnfsDevice got, reg_->GetDevice(d3.id));
  EXPECT_EQ(got.data_servers, ba);
  ASSERT_OK_AND_ASSIGN(auto all, reg_->ListDevices());
  EXPECT_EQ(all.size(), 2u);
  EXPECT_TRUE(reg_->GetDevice(d3.id + 100).status().IsNotFound());
}

TEST_P(PnfsRegistryTest, RemovalAndShrinkOfAFileWithALayoutQueueWork) {
  DataServer a = Reg("aa01", "h:1");
  DataServer b = Reg("bb02", "h:2");
  const std::vector<uint64_t> ab = {a.id, b.id};
  ASSERT_OK_AND_ASSIGN(PnfsDevice d, reg_->DeviceFor(ab));
  const InodeId f = CreateOrFail(kRootInode, "striped");
  const InodeId plain = CreateOrFail(kRootInode, "plain");
  ASSERT_OK_AND_ASSIGN(PnfsLayout l,
                       reg_->SetLayoutIfAbsent({f, d.id, 65536}));
  EXPECT_EQ(l.device, d.id);
  // A second LAYOUTGET keeps the first layout.
  ASSERT_OK_AND_ASSIGN(PnfsLayout l2, reg_->SetLayoutIfAbsent({f, 999, 4096}));
  EXPECT_EQ(l2.device, d.id);
  EXPECT_EQ(l2.stripe_unit, 65536u);
  EXPECT_TRUE(reg_->SetLayoutIfAbsent({f, d.id, 0}).status().IsInvalid());
  EXPECT_TRUE(
      reg_->SetLayoutIfAbsent({999999, d.id, 4096}).status().IsStale());

  SetAttrRequest grow;
  grow.size = 1000;
  ASSERT_OK(ns_->SetAttr(root_, f, grow).status());
  ASSERT_OK(ns_->SetAttr(root_, plain, grow).status());
  ASSERT_OK_AND_ASSIGN(auto none, reg_->ListWork());
  EXPECT_TRUE(none.empty()) << "growing queues nothing";

  SetAttrRequest shrink;
  shrink.size = 10;
  ASSERT_OK(ns_->SetAttr(root_, f, shrink).status());
  ASSERT_OK(ns_->SetAttr(root_, plain, shrink).status());
  ASSERT_OK_AND_ASSIGN(auto trunc, reg_->WorkForFile(f));
  ASSERT_EQ(trunc.size(), 2u);
  EXPECT_EQ(trunc[0].op, PnfsWorkOp::kTruncate);
  EXPECT_EQ(trunc[0].size, 10u);
  EXPECT_EQ(trunc[0].data_server, a.id);
  EXPECT_EQ(trunc[1].data_server, b.id);

  ASSERT_OK(ns_->Unlink(root_, kRootInode, "striped").status());
  ASSERT_OK(ns_->Unlink(root_, kRootInode, "plain").status());
  ASSERT_OK_AND_ASSIGN(auto all, reg_->WorkForFile(f));
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[2].op, PnfsWorkOp::kRemove);
  EXPECT_EQ(all[3].op, PnfsWorkOp::kRemove);
  EXPECT_GT(all[3].queued_ns, 0);
  ASSERT_OK_AND_ASSIGN(auto gone, reg_->GetLayout(f));
  EXPECT_FALSE(gone) << "the layout row goes with the inode";
  ASSERT_OK_AND_ASSIGN(auto total, reg_->ListWork());
  EXPECT_EQ(total.size(), 4u) << "the file without a layout queued nothing";
}

TEST_P(PnfsRegistryTest, FsckFindsALayoutOfAMissingInodeAndQueuesItsRemoval) {
  DataServer a = Reg("aa01", "h:1");
  DataServer b = Reg("bb02", "h:2");
  const std::vector<uint64_t> ab = {a.id, b.id};
  ASSERT_OK_AND_ASSIGN(PnfsDevice d, reg_->DeviceFor(ab));
  // A layout row whose inode is gone (a hand edit: the trigger never ran).
  std::string error;
  std::unique_ptr<RawDb> db = RawDb::Open(uri_, &error);
  ASSERT_TRUE(db) << error;
  ASSERT_TRUE(db->Exec("INSERT INTO pnfs_layouts (ino, device, stripe_unit) "
                       "VALUES (777777, " + std::to_string(d.id) + ", 4096)",
                       &error))
      << error;
  ASSERT_OK_AND_ASSIGN(FsckReport found, Fsck(*ns_));
  ASSERT_EQ(found.findings.size(), 1u);
  EXPECT_EQ(found.findings[0].check, "pnfs-layout-of-missing-inode");
  EXPECT_EQ(found.findings[0].ino, 777777u);
  ASSERT_OK_AND_ASSIGN(auto none, reg_->ListWork());
  EXPECT_TRUE(none.empty()) << "a check without repair changes nothing";
  FsckOptions repair;
  repair.repair = true;
  ASSERT_OK_AND_ASSIGN(FsckReport fixed, Fsck(*ns_, repair));
  ASSERT_EQ(fixed.findings.size(), 1u);
  EXPECT_TRUE(fixed.findings[0].repaired);
  ASSERT_OK_AND_ASSIGN(auto work, reg_->WorkForFile(777777));
  ASSERT_EQ(work.size(), 2u);
  EXPECT_EQ(work[0].op, PnfsWorkOp::kRemove);
  EXPECT_EQ(work[0].data_server, a.id);
  EXPECT_EQ(work[1].data_server, b.id);
  ASSERT_OK_AND_ASSIGN(FsckReport clean, Fsck(*ns_));
  EXPECT_TRUE(clean.findings.empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, PnfsRegistryTest,
                         ::testing::ValuesIn(Dialects()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ns::testing
