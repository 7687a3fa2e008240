// NFSv4 client records (client_records.h) on both dialects: the epochs and
// the reclaim rules of RFC 8881 §8.4.2.1 / §8.4.3, bad input, binary owners.

#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "libnamespace/include/namespace/client_records.h"
#include "tests/test_util.h"

namespace ns::testing {
namespace {

class ClientRecordsTest : public DialectTest {
 protected:
  void SetUp() override {
    DialectTest::SetUp();
    if (ns_) records_ = std::make_unique<ClientRecords>(ns_.get());
  }

  static ClientRecord Rec(const std::string& owner, uint64_t verifier = 7,
                          const std::string& principal = "sys:0") {
    ClientRecord r;
    r.owner = owner;
    r.principal = principal;
    r.verifier = verifier;
    r.clientid = 0x1234;
    r.confirmed_ns = 1'700'000'000'000'000'000;
    return r;
  }

  std::vector<std::string> Owners(const std::vector<ClientRecord>& rs) {
    std::vector<std::string> out;
    for (const ClientRecord& r : rs) out.push_back(r.owner);
    return out;
  }

  std::vector<std::string> Stored() {
    Result<std::vector<ClientRecord>> all = records_->List();
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    return all.ok() ? Owners(*all) : std::vector<std::string>{};
  }

  EpochStart Start() {
    Result<EpochStart> e = records_->StartEpoch();
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? *e : EpochStart{};
  }

  std::unique_ptr<ClientRecords> records_;
};

TEST_P(ClientRecordsTest, FirstStartHasNoGraceAndEpochsIncrease) {
  EpochStart e1 = Start();
  EXPECT_EQ(e1.epoch, 1);
  EXPECT_FALSE(e1.recovery_epoch);
  EXPECT_TRUE(e1.reclaimable.empty());
  EpochStart e2 = Start();
  EXPECT_EQ(e2.epoch, 2);
  EXPECT_FALSE(e2.recovery_epoch);
}

TEST_P(ClientRecordsTest, ConfirmedRecordRoundTripsAllFields) {
  Start();
  ClientRecord r = Rec("owner-a", 0xfedcba9876543210ull, "sys:1000");
  r.clientid = 0xffffffff00000001ull;  // above int64 max: stored as bits
  ASSERT_OK(records_->Confirm(r, 1));
  ASSERT_OK_AND_ASSIGN(ClientRecord got, records_->Get("owner-a"));
  EXPECT_EQ(got.owner, "owner-a");
  EXPECT_EQ(got.principal, "sys:1000");
  EXPECT_EQ(got.verifier, 0xfedcba9876543210ull);
  EXPECT_EQ(got.clientid, 0xffffffff00000001ull);
  EXPECT_EQ(got.confirmed_ns, r.confirmed_ns);
  EXPECT_EQ(got.confirmed_epoch, 1);
  EXPECT_FALSE(got.reclaim_epoch);
  ASSERT_OK(records_->ReclaimComplete("owner-a", 1));
  ASSERT_OK_AND_ASSIGN(ClientRecord done, records_->Get("owner-a"));
  ASSERT_TRUE(done.reclaim_epoch);
  EXPECT_EQ(*done.reclaim_epoch, 1);
}

TEST_P(ClientRecordsTest, OwnersAreBytes) {
  Start();
  const std::string nul("a\0b", 3);
  const std::string high("\xff\x80\x00\x01", 4);
  const std::string big(kMaxClientOwnerBytes, '\xee');
  for (const std::string& o : {nul, high, big}) ASSERT_OK(records_->Confirm(Rec(o), 1));
  ASSERT_OK(records_->Confirm(Rec("a"), 1));  // a prefix of nul: distinct
  EXPECT_EQ(Stored().size(), 4u);
  ASSERT_OK_AND_ASSIGN(ClientRecord got, records_->Get(high));
  EXPECT_EQ(got.owner, high);
  ASSERT_OK_AND_ASSIGN(ClientRecord got_nul, records_->Get(nul));
  EXPECT_EQ(got_nul.owner, nul);
  ASSERT_OK(records_->Remove(nul));
  EXPECT_STATUS(records_->Get(nul), NotFound);
  EXPECT_OK(records_->Get("a"));
}

TEST_P(ClientRecordsTest, BadInputIsInvalidAndChangesNothing) {
  Start();
  ASSERT_OK(records_->Confirm(Rec("keep"), 1));
  EXPECT_STATUS(records_->Confirm(Rec(""), 1), Invalid);
  EXPECT_STATUS(records_->Confirm(Rec(std::string(kMaxClientOwnerBytes + 1, 'x')), 1),
                Invalid);
  EXPECT_STATUS(records_->Confirm(Rec("p", 1, ""), 1), Invalid);
  EXPECT_STATUS(records_->Confirm(Rec("p"), 0), Invalid);
  EXPECT_STATUS(records_->ReclaimComplete("", 1), Invalid);
  EXPECT_STATUS(records_->ReclaimComplete("keep", -3), Invalid);
  EXPECT_STATUS(records_->ReclaimComplete("missing", 1), NotFound);
  EXPECT_STATUS(records_->Remove(""), Invalid);
  EXPECT_STATUS(records_->EndGrace(0), Invalid);
  EXPECT_STATUS(records_->Get(""), Invalid);
  EXPECT_OK(records_->Remove("missing"));
  EXPECT_EQ(Stored(), std::vector<std::string>{"keep"});
  ASSERT_OK_AND_ASSIGN(ClientRecord k, records_->Get("keep"));
  EXPECT_FALSE(k.reclaim_epoch);
}

// Only clients that completed reclaim (and so may hold state) can reclaim
// after a restart; the others' records go.
TEST_P(ClientRecordsTest, OnlyCompletedClientsMayReclaimAfterRestart) {
  EXPECT_EQ(Start().epoch, 1);
  ASSERT_OK(records_->Confirm(Rec("done"), 1));
  ASSERT_OK(records_->Confirm(Rec("idle"), 1));
  ASSERT_OK(records_->ReclaimComplete("done", 1));
  EpochStart e2 = Start();
  EXPECT_EQ(e2.epoch, 2);
  ASSERT_TRUE(e2.recovery_epoch);
  EXPECT_EQ(*e2.recovery_epoch, 1);
  EXPECT_EQ(Owners(e2.reclaimable), std::vector<std::string>{"done"});
  EXPECT_EQ(Stored(), std::vector<std::string>{"done"});
}

// §8.4.3: a server that restarts during its grace period must still let
// the clients it was waiting for reclaim.
TEST_P(ClientRecordsTest, RestartDuringGraceKeepsEveryoneEligible) {
  Start();
  for (const char* o : {"a", "b"}) {
    ASSERT_OK(records_->Confirm(Rec(o), 1));
    ASSERT_OK(records_->ReclaimComplete(o, 1));
  }
  EpochStart e2 = Start();
  EXPECT_EQ(Owners(e2.reclaimable), (std::vector<std::string>{"a", "b"}));
  // a reconnects (same verifier: eligibility kept until it completes) and
  // completes; b has not come back yet when the server restarts again.
  ASSERT_OK(records_->Confirm(Rec("a"), 2));
  ASSERT_OK_AND_ASSIGN(ClientRecord a, records_->Get("a"));
  ASSERT_TRUE(a.reclaim_epoch);
  EXPECT_EQ(*a.reclaim_epoch, 1);
  ASSERT_OK(records_->ReclaimComplete("a", 2));
  EpochStart e3 = Start();
  EXPECT_EQ(e3.epoch, 3);
  ASSERT_TRUE(e3.recovery_epoch);
  EXPECT_EQ(*e3.recovery_epoch, 1) << "an interrupted grace does not move it";
  EXPECT_EQ(Owners(e3.reclaimable), (std::vector<std::string>{"a", "b"}));
}

// §8.4.3: a client that let a whole grace period pass (a partition) may
// never reclaim afterwards: others may have taken conflicting locks.
TEST_P(ClientRecordsTest, ClientMissingAWholeGraceLosesReclaim) {
  Start();
  for (const char* o : {"away", "here"}) {
    ASSERT_OK(records_->Confirm(Rec(o), 1));
    ASSERT_OK(records_->ReclaimComplete(o, 1));
  }
  EpochStart e2 = Start();
  ASSERT_EQ(e2.reclaimable.size(), 2u);
  ASSERT_OK(records_->Confirm(Rec("here"), 2));
  ASSERT_OK(records_->ReclaimComplete("here", 2));
  ASSERT_OK(records_->Confirm(Rec("new"), 2));  // no RECLAIM_COMPLETE yet
  ASSERT_OK(records_->EndGrace(2));
  EXPECT_EQ(Stored(), (std::vector<std::string>{"here", "new"}));
  ASSERT_OK(records_->ReclaimComplete("new", 2));
  EpochStart e3 = Start();
  ASSERT_TRUE(e3.recovery_epoch);
  EXPECT_EQ(*e3.recovery_epoch, 2);
  EXPECT_EQ(Owners(e3.reclaimable), (std::vector<std::string>{"here", "new"}));
}

TEST_P(ClientRecordsTest, RebootedClientOrOtherPrincipalLosesReclaim) {
  Start();
  for (const char* o : {"reboot", "thief", "same"}) {
    ASSERT_OK(records_->Confirm(Rec(o, 1), 1));
    ASSERT_OK(records_->ReclaimComplete(o, 1));
  }
  Start();
  ASSERT_OK(records_->Confirm(Rec("reboot", 2), 2));            // new verifier
  ASSERT_OK(records_->Confirm(Rec("thief", 1, "sys:666"), 2));  // other principal
  ASSERT_OK(records_->Confirm(Rec("same", 1), 2));
  ASSERT_OK_AND_ASSIGN(ClientRecord r, records_->Get("reboot"));
  EXPECT_FALSE(r.reclaim_epoch);
  EXPECT_EQ(r.verifier, 2u);
  ASSERT_OK_AND_ASSIGN(ClientRecord t, records_->Get("thief"));
  EXPECT_FALSE(t.reclaim_epoch);
  EXPECT_EQ(t.principal, "sys:666");
  ASSERT_OK_AND_ASSIGN(ClientRecord s, records_->Get("same"));
  ASSERT_TRUE(s.reclaim_epoch);
  EXPECT_EQ(*s.reclaim_epoch, 1);
}

TEST_P(ClientRecordsTest, RemoveOfAnOlderClientIdKeepsTheNewRecord) {
  Start();
  ClientRecord r = Rec("o");
  r.clientid = 100;
  ASSERT_OK(records_->Confirm(r, 1));
  r.clientid = 200;  // the owner confirmed again under a new client id
  ASSERT_OK(records_->Confirm(r, 1));
  ASSERT_OK(records_->Remove("o", 100));
  ASSERT_OK_AND_ASSIGN(ClientRecord kept, records_->Get("o"));
  EXPECT_EQ(kept.clientid, 200u);
  ASSERT_OK(records_->Remove("o", 200));
  EXPECT_STATUS(records_->Get("o"), NotFound);
  ASSERT_OK(records_->Remove("o", 200));  // gone already: still Ok
}

TEST_P(ClientRecordsTest, EndGraceOfAnOlderEpochIsANoOp) {
  Start();
  ASSERT_OK(records_->Confirm(Rec("a"), 1));
  ASSERT_OK(records_->ReclaimComplete("a", 1));
  EpochStart e2 = Start();
  ASSERT_EQ(e2.reclaimable.size(), 1u);
  ASSERT_OK(records_->EndGrace(1));  // a stale server: must not end grace 2
  EXPECT_EQ(Stored(), std::vector<std::string>{"a"});
  EpochStart e3 = Start();
  EXPECT_EQ(Owners(e3.reclaimable), std::vector<std::string>{"a"});
  // Ending the current grace twice is harmless.
  ASSERT_OK(records_->EndGrace(3));
  ASSERT_OK(records_->EndGrace(3));
  EXPECT_TRUE(Stored().empty());
  EpochStart e4 = Start();
  EXPECT_FALSE(e4.recovery_epoch);
}

TEST_P(ClientRecordsTest, RecordsSurviveReopen) {
  Start();
  ASSERT_OK(records_->Confirm(Rec("persist"), 1));
  ASSERT_OK(records_->ReclaimComplete("persist", 1));
  records_.reset();
  ns_.reset();
  ASSERT_OK_AND_ASSIGN(ns_, Namespace::Open(uri_));
  records_ = std::make_unique<ClientRecords>(ns_.get());
  EpochStart e = Start();
  EXPECT_EQ(e.epoch, 2);
  EXPECT_EQ(Owners(e.reclaimable), std::vector<std::string>{"persist"});
}

// Several servers (doors) on one database start at once: every start gets
// an epoch of its own (the nfs_grace row serializes them).
TEST_P(ClientRecordsTest, ConcurrentStartsGetDistinctEpochs) {
  constexpr int kDoors = 4, kStarts = 5;
  std::vector<std::unique_ptr<Namespace>> doors;
  for (int i = 0; i < kDoors; ++i) {
    ASSERT_OK_AND_ASSIGN(auto n, Namespace::Open(uri_, TestOptions()));
    doors.push_back(std::move(n));
  }
  std::mutex mu;
  std::set<int64_t> epochs;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int i = 0; i < kDoors; ++i) {
    threads.emplace_back([&, i] {
      ClientRecords r(doors[i].get());
      for (int k = 0; k < kStarts; ++k) {
        Result<EpochStart> e = r.StartEpoch();
        std::lock_guard lock(mu);
        if (e.ok()) {
          epochs.insert(e->epoch);
        } else {
          errors.push_back(e.status().ToString());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(epochs.size(), size_t{kDoors * kStarts});
  EXPECT_EQ(*epochs.begin(), 1);
  EXPECT_EQ(*epochs.rbegin(), kDoors * kStarts);
}

INSTANTIATE_TEST_SUITE_P(Backends, ClientRecordsTest, ::testing::ValuesIn(Dialects()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace ns::testing
