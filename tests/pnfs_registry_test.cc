// The pNFS registry (pnfs.h, schemas 005 and 006) on both dialects: stable
// ids per uuid, heartbeats and their work, expiry, devices, layouts, the
// work the database queues itself when a file with a layout is removed or
// shrunk, and inventories with the dark-data / missing-stripe check.

#include <chrono>
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

TEST_P(PnfsRegistryTest, InventoryFindsDarkAndMissingStripes) {
  DataServer a = Reg("aa01", "h:1");
  DataServer b = Reg("bb02", "h:2");
  const std::vector<uint64_t> ab = {a.id, b.id};
  ASSERT_OK_AND_ASSIGN(PnfsDevice d, reg_->DeviceFor(ab));
  // 10000 bytes in 4096-byte units: stripe 0 (a) and stripe 1 (b) hold
  // bytes. `small` (100 bytes) has bytes on stripe 0 only.
  const InodeId f = CreateOrFail(kRootInode, "f");
  const InodeId small = CreateOrFail(kRootInode, "small");
  ASSERT_OK(reg_->SetLayoutIfAbsent({f, d.id, 4096}).status());
  ASSERT_OK(reg_->SetLayoutIfAbsent({small, d.id, 4096}).status());
  SetAttrRequest size;
  size.size = 10000;
  ASSERT_OK(ns_->SetAttr(root_, f, size).status());
  size.size = 100;
  ASSERT_OK(ns_->SetAttr(root_, small, size).status());
  // Inventories begin after the files were written (wall clock, as the
  // MDS stamps them).
  const TimeNs t = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count() +
                   1000000000;

  ASSERT_OK_AND_ASSIGN(uint64_t wa, reg_->RequestInventory(a.id, t));
  ASSERT_OK_AND_ASSIGN(auto queued, reg_->ListWork());
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].op, PnfsWorkOp::kInventory);
  EXPECT_EQ(queued[0].id, wa);
  EXPECT_TRUE(reg_->RequestInventory(999, t).status().IsNotFound());
  // `small` twice: counted once.
  const std::vector<PnfsStripe> page0 = {{f, 4096, t - 5},
                                         {small, 100, t - 5},
                                         {424242, 7, t - 5},
                                         {small, 100, t - 5}};
  const std::vector<PnfsStripe> page1 = {{555555, 9, t + 5}};
  EXPECT_TRUE(reg_->InventoryPage(a.id, "bb02", wa, 0, t, false, page0, t)
                  .IsNotFound())
      << "another data server's uuid";
  EXPECT_TRUE(reg_->InventoryPage(a.id, "aa01", wa + 1, 0, t, false, page0, t)
                  .IsInvalid())
      << "not the request in force";
  ASSERT_OK(reg_->InventoryPage(a.id, "aa01", wa, 0, t, false, page0, t));
  EXPECT_TRUE(reg_->InventoryPage(a.id, "aa01", wa, 2, t, true, page1, t)
                  .IsInvalid())
      << "a page out of order";
  ASSERT_OK(reg_->InventoryPage(a.id, "aa01", wa, 1, t, true, page1, t));
  ASSERT_OK_AND_ASSIGN(uint64_t wb, reg_->RequestInventory(b.id, t));
  ASSERT_OK(reg_->InventoryPage(b.id, "bb02", wb, 0, t, true, {}, t));
  // The data servers report the inventory work done.
  const std::vector<uint64_t> done_a = {wa}, done_b = {wb};
  ASSERT_OK(reg_->Heartbeat(a.id, "aa01", 100, 50, done_a, 10, t).status());
  ASSERT_OK(reg_->Heartbeat(b.id, "bb02", 100, 50, done_b, 10, t).status());

  ASSERT_OK_AND_ASSIGN(PnfsCheckReport r, PnfsCheck(*reg_, {}, t));
  ASSERT_EQ(r.inventoried.size(), 2u);
  EXPECT_EQ(r.inventoried[0].files, 4u) << "3 + 1 stripe files on a";
  EXPECT_TRUE(r.not_inventoried.empty());
  ASSERT_EQ(r.dark.size(), 2u);
  EXPECT_EQ(r.dark[0].fileid, 424242u);
  EXPECT_EQ(r.dark[0].data_server, a.id);
  EXPECT_TRUE(r.dark[0].before_inventory);
  EXPECT_EQ(r.dark[1].fileid, 555555u);
  EXPECT_FALSE(r.dark[1].before_inventory);
  ASSERT_EQ(r.missing.size(), 1u) << "small needs nothing on b";
  EXPECT_EQ(r.missing[0].ino, f);
  EXPECT_EQ(r.missing[0].data_server, b.id);
  EXPECT_EQ(r.missing[0].index, 1u);
  ASSERT_OK_AND_ASSIGN(auto still, reg_->ListWork());
  EXPECT_TRUE(still.empty()) << "no repair without --repair";

  PnfsCheckOptions repair;
  repair.repair = true;
  ASSERT_OK_AND_ASSIGN(PnfsCheckReport fixed, PnfsCheck(*reg_, repair, t));
  EXPECT_EQ(fixed.removals_queued, 1u) << "only the one older than the scan";
  ASSERT_OK_AND_ASSIGN(auto rm, reg_->ListWork());
  ASSERT_EQ(rm.size(), 1u);
  EXPECT_EQ(rm[0].op, PnfsWorkOp::kRemove);
  EXPECT_EQ(rm[0].fileid, 424242u);
  EXPECT_EQ(rm[0].data_server, a.id);
  ASSERT_OK_AND_ASSIGN(PnfsCheckReport again, PnfsCheck(*reg_, repair, t));
  ASSERT_EQ(again.dark.size(), 1u) << "a queued removal is not dark";
  EXPECT_EQ(again.removals_queued, 0u);
  // A layout made since the report keeps its stripe file.
  ASSERT_OK_AND_ASSIGN(bool q, reg_->QueueDarkRemoval(a.id, f, t));
  EXPECT_FALSE(q);

  // A new request: b has no complete inventory, so nothing of it is
  // reported missing.
  ASSERT_OK(reg_->RequestInventory(b.id, t).status());
  ASSERT_OK_AND_ASSIGN(PnfsCheckReport partial, PnfsCheck(*reg_, {}, t));
  ASSERT_EQ(partial.not_inventoried.size(), 1u);
  EXPECT_EQ(partial.not_inventoried[0].id, b.id);
  EXPECT_TRUE(partial.missing.empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, PnfsRegistryTest,
                         ::testing::ValuesIn(Dialects()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ns::testing
