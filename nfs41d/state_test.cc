// Restart, grace and reclaim (RFC 8881 §8.4.2, §8.4.3, §18.51) and the
// backchannel (§2.10.3.1, §18.33, §18.34, §18.36, §20): StateManager unit
// tests on a SQLite namespace, then the real server over TCP driven by
// nfs41client, restarted on the same database.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "libnamespace/include/namespace/client_records.h"
#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/src/backend.h"  // BackendWrapper: fault injection
#include "nfs41client/client.h"
#include "nfs41d/config.h"
#include "nfs41d/data/data_store.h"
#include "nfs41d/server.h"
#include "nfs41d/state/state_manager.h"
#include "nfs41d/status_map.h"

namespace nfs41d {
namespace {

using nfs41client::Bits;
using nfs41client::Client;
using nfs41client::Compound;
using nfs41client::Fh;
using std::chrono::milliseconds;

#define EXPECT_NFS(expr, want) \
  EXPECT_STREQ(NfsStatName(expr), NfsStatName(want))
#define ASSERT_NFS(expr, want) \
  ASSERT_STREQ(NfsStatName(expr), NfsStatName(want))

std::atomic<int> g_counter{0};

std::string TempDir(const char* what) {
  std::string d = std::filesystem::temp_directory_path() /
                  (std::string(what) + "-" + std::to_string(getpid()) + "-" +
                   std::to_string(g_counter++));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

// Polls `pred` every 20 ms for at most `limit`.
template <typename Pred>
bool Eventually(Pred pred, milliseconds limit = milliseconds(5000)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return pred();
}

// ------------------------------------------------ StateManager, no sockets

TEST(GraceConfigTest, GraceTimeKey) {
  const std::string dir = TempDir("nfs41d-cfg");
  const std::string path = dir + "/nfs41d.toml";
  Config cfg;
  {
    std::ofstream(path) << "grace_time = 45\n";
  }
  EXPECT_EQ(LoadConfigFile(path, &cfg), "");
  EXPECT_EQ(cfg.server.state.grace_seconds, 45u);
  {
    std::ofstream(path) << "grace_time = 1\n";
  }
  EXPECT_NE(LoadConfigFile(path, &cfg).find("5..3600"), std::string::npos);
  EXPECT_EQ(cfg.server.state.grace_seconds, 45u) << "a bad value changes nothing";
  std::filesystem::remove_all(dir);
}

class StateManagerGraceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("nfs41d-sm");
    ns::NamespaceOptions o;
    o.create_if_missing = true;
    o.durable = false;
    auto n = ns::Namespace::Open("sqlite://" + dir_ + "/ns.db", o);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ns_ = std::move(n).value();
    records_ = std::make_unique<ns::ClientRecords>(ns_.get());
  }
  void TearDown() override {
    records_.reset();
    ns_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<state::StateManager> NewServer(uint32_t grace = 30) {
    state::StateOptions o;
    o.grace_seconds = grace;
    auto sm = std::make_unique<state::StateManager>(o, records_.get());
    ns::Status s = sm->StartEpoch();
    EXPECT_TRUE(s.ok()) << s.ToString();
    return sm;
  }

  // EXCHANGE_ID + CREATE_SESSION; returns the client id (0 on failure).
  clientid4 Establish(state::StateManager& sm, const std::string& owner,
                      uint8_t verifier = 1,
                      const std::string& principal = "sys:0") {
    EXCHANGE_ID4args ea{};
    std::memset(ea.eia_clientowner.co_verifier, verifier, NFS4_VERIFIER_SIZE);
    ea.eia_clientowner.co_ownerid.co_ownerid_len =
        static_cast<u_int>(owner.size());
    ea.eia_clientowner.co_ownerid.co_ownerid_val =
        const_cast<char*>(owner.data());
    state::ExchangeIdResult r;
    EXPECT_NFS(sm.ExchangeId(ea, principal, &r), NFS4_OK);
    CREATE_SESSION4args ca{};
    ca.csa_clientid = r.clientid;
    ca.csa_sequence = r.sequenceid;
    ca.csa_fore_chan_attrs.ca_maxrequestsize = 1 << 16;
    ca.csa_fore_chan_attrs.ca_maxresponsesize = 1 << 16;
    ca.csa_fore_chan_attrs.ca_maxoperations = 8;
    ca.csa_fore_chan_attrs.ca_maxrequests = 4;
    ca.csa_back_chan_attrs = ca.csa_fore_chan_attrs;
    CREATE_SESSION4resok ok{};
    nfsstat4 s = sm.CreateSession(ca, principal, 1, &ok);
    EXPECT_NFS(s, NFS4_OK);
    return s == NFS4_OK ? r.clientid : 0;
  }

  // Establish + RECLAIM_COMPLETE: a client that may hold state.
  clientid4 EstablishWithState(state::StateManager& sm,
                               const std::string& owner) {
    const clientid4 id = Establish(sm, owner);
    auto c = sm.FindClient(id);
    EXPECT_TRUE(c);
    if (c) {
      EXPECT_NFS(sm.ReclaimComplete(*c), NFS4_OK);
    }
    return id;
  }

  std::string dir_;
  std::unique_ptr<ns::Namespace> ns_;
  std::unique_ptr<ns::ClientRecords> records_;
};

// SEQUENCE binds its connection inside BeginRequest (§2.10.3.1, SP4_NONE),
// under the slot's lock: only a request that starts on the slot binds; a
// misordered one, a bad slot or a retry answered from the cache does not.
TEST(SessionTest, BeginRequestBindsTheConnectionOnlyForANewRequest) {
  channel_attrs4 fore{};
  fore.ca_maxrequests = 2;
  channel_attrs4 back{};
  state::Session s(state::SessionId{}, nullptr, fore, back, 0, 0);
  std::vector<uint8_t> replay;
  nfsstat4 err = NFS4_OK;
  using Begin = state::Session::Begin;
  EXPECT_EQ(s.BeginRequest(5, 1, 7, &replay, &err, 11), Begin::kError);
  EXPECT_EQ(err, NFS4ERR_BADSLOT);
  EXPECT_EQ(s.BeginRequest(0, 3, 7, &replay, &err, 11), Begin::kError);
  EXPECT_EQ(err, NFS4ERR_SEQ_MISORDERED);
  EXPECT_FALSE(s.IsBound(11)) << "refused requests bind nothing";
  ASSERT_EQ(s.BeginRequest(0, 1, 7, &replay, &err, 11), Begin::kNew);
  EXPECT_TRUE(s.IsBound(11));
  const std::vector<uint8_t> reply = {1, 2, 3, 4};
  s.EndRequest(0, reply);
  // The retry comes on another connection: replayed, not bound.
  ASSERT_EQ(s.BeginRequest(0, 1, 7, &replay, &err, 12), Begin::kReplay);
  EXPECT_EQ(replay, reply);
  EXPECT_FALSE(s.IsBound(12));
  ASSERT_EQ(s.BeginRequest(1, 1, 8, &replay, &err), Begin::kNew);
  EXPECT_FALSE(s.IsBound(0)) << "0 is no connection";
  EXPECT_TRUE(s.IsBound(11));
}

TEST(StateManagerNoRecordsTest, NeverInGrace) {
  state::StateManager sm(state::StateOptions{});
  ASSERT_TRUE(sm.StartEpoch().ok());
  EXPECT_FALSE(sm.InGrace());
  EXPECT_EQ(sm.epoch(), 0);
  state::Client c;
  EXPECT_NFS(sm.CheckClaim(c, /*reclaim=*/false), NFS4_OK);
  EXPECT_NFS(sm.CheckClaim(c, /*reclaim=*/true), NFS4ERR_NO_GRACE);
}

TEST_F(StateManagerGraceTest, ClaimRulesAcrossARestart) {
  auto sm1 = NewServer();
  EXPECT_FALSE(sm1->InGrace()) << "first start: nobody to wait for";
  const clientid4 a1 = Establish(*sm1, "host-a");
  for (const char* o : {"host-b", "host-c"}) EstablishWithState(*sm1, o);
  Establish(*sm1, "host-idle");  // never RECLAIM_COMPLETE: held no state
  ASSERT_NE(a1, 0u);
  EXPECT_NFS(sm1->CheckClaim(*sm1->FindClient(a1), false), NFS4_OK);
  EXPECT_NFS(sm1->CheckClaim(*sm1->FindClient(a1), true), NFS4ERR_NO_GRACE);
  EXPECT_NFS(sm1->ReclaimComplete(*sm1->FindClient(a1)), NFS4_OK);
  EXPECT_NFS(sm1->ReclaimComplete(*sm1->FindClient(a1)),
             NFS4ERR_COMPLETE_ALREADY);
  sm1.reset();  // "crash"

  auto sm2 = NewServer();
  EXPECT_GT(sm2->epoch(), 1);
  ASSERT_TRUE(sm2->InGrace());
  EXPECT_EQ(sm2->reclaim_pending(), 3u);
  // The old client id means nothing to the new start (§8.4.2).
  EXPECT_EQ(sm2->FindClient(a1), nullptr);
  CREATE_SESSION4args ca{};
  ca.csa_clientid = a1;
  CREATE_SESSION4resok ok{};
  EXPECT_NFS(sm2->CreateSession(ca, "sys:0", 1, &ok), NFS4ERR_STALE_CLIENTID);

  const clientid4 a2 = Establish(*sm2, "host-a");
  ASSERT_NE(a2, a1);
  auto a = sm2->FindClient(a2);
  EXPECT_TRUE(sm2->MayReclaim(*a));
  EXPECT_NFS(sm2->CheckClaim(*a, true), NFS4_OK);
  EXPECT_NFS(sm2->CheckClaim(*a, false), NFS4ERR_GRACE);
  // Rebooted (new verifier): its old state is gone, nothing to reclaim and
  // nothing to wait for (§8.4.2.1).
  auto rebooted = sm2->FindClient(Establish(*sm2, "host-b", /*verifier=*/9));
  EXPECT_NFS(sm2->CheckClaim(*rebooted, true), NFS4ERR_NO_GRACE);
  EXPECT_EQ(sm2->reclaim_pending(), 2u);
  // Another principal cannot take the owner whose state waits for
  // reclaim (§18.35.5 case 3, client collision).
  {
    const std::string owner = "host-c";
    EXCHANGE_ID4args ea{};
    std::memset(ea.eia_clientowner.co_verifier, 1, NFS4_VERIFIER_SIZE);
    ea.eia_clientowner.co_ownerid.co_ownerid_len = 6;
    ea.eia_clientowner.co_ownerid.co_ownerid_val =
        const_cast<char*>(owner.data());
    state::ExchangeIdResult r;
    EXPECT_NFS(sm2->ExchangeId(ea, "sys:666", &r), NFS4ERR_CLID_INUSE);
  }
  // Never-stateful, unknown: no reclaim (§8.4.3).
  auto idle = sm2->FindClient(Establish(*sm2, "host-idle"));
  EXPECT_NFS(sm2->CheckClaim(*idle, true), NFS4ERR_NO_GRACE);
  auto stranger = sm2->FindClient(Establish(*sm2, "host-new"));
  EXPECT_NFS(sm2->CheckClaim(*stranger, true), NFS4ERR_NO_GRACE);
  EXPECT_NFS(sm2->CheckClaim(*stranger, false), NFS4ERR_GRACE);

  // a completes: no more reclaims for it (§18.51.3); host-c still pending.
  EXPECT_NFS(sm2->ReclaimComplete(*a), NFS4_OK);
  EXPECT_NFS(sm2->CheckClaim(*a, true), NFS4ERR_NO_GRACE);
  EXPECT_TRUE(sm2->InGrace());
  EXPECT_EQ(sm2->reclaim_pending(), 1u);
  sm2.reset();  // restart during grace

  auto sm3 = NewServer();
  EXPECT_TRUE(sm3->InGrace()) << "an interrupted grace waits again";
  auto c = sm3->FindClient(Establish(*sm3, "host-c"));
  ASSERT_TRUE(c);
  EXPECT_NFS(sm3->CheckClaim(*c, true), NFS4_OK);
  auto a3 = sm3->FindClient(Establish(*sm3, "host-a"));
  EXPECT_NFS(sm3->CheckClaim(*a3, true), NFS4_OK);
  EXPECT_NFS(sm3->ReclaimComplete(*c), NFS4_OK);
  EXPECT_NFS(sm3->ReclaimComplete(*a3), NFS4_OK);
  EXPECT_FALSE(sm3->InGrace()) << "every reclaimable client completed";
  EXPECT_NFS(sm3->CheckClaim(*c, false), NFS4_OK);
}

TEST_F(StateManagerGraceTest, GraceEndsByTime) {
  auto sm1 = NewServer();
  EstablishWithState(*sm1, "x");
  sm1.reset();
  auto sm2 = NewServer(/*grace=*/1);
  ASSERT_TRUE(sm2->InGrace());
  EXPECT_TRUE(Eventually([&] { return !sm2->InGrace(); }, milliseconds(4000)));
  sm2.reset();
  // x let a whole grace period pass: it may never reclaim again (§8.4.3),
  // so the next start has nobody to wait for.
  auto sm3 = NewServer();
  EXPECT_FALSE(sm3->InGrace());
}

TEST_F(StateManagerGraceTest, DestroyedClientIsForgotten) {
  auto sm1 = NewServer();
  const clientid4 id = EstablishWithState(*sm1, "gone");
  auto sessions = sm1->SessionsOf(*sm1->FindClient(id));
  ASSERT_EQ(sessions.size(), 1u);
  sessionid4 sid;
  std::memcpy(sid, sessions[0]->id().data(), NFS4_SESSIONID_SIZE);
  ASSERT_NFS(sm1->DestroySession(sid), NFS4_OK);
  ASSERT_NFS(sm1->DestroyClientId(id), NFS4_OK);
  EXPECT_TRUE(records_->Get("gone").status().IsNotFound());
  sm1.reset();
  auto sm2 = NewServer();
  EXPECT_FALSE(sm2->InGrace());
}

TEST_F(StateManagerGraceTest, ClientGivingUpDuringGraceIsNotWaitedFor) {
  auto sm1 = NewServer();
  EstablishWithState(*sm1, "quits");
  EstablishWithState(*sm1, "lapses");
  EstablishWithState(*sm1, "stays-away");
  sm1.reset();
  auto sm2 = NewServer();
  ASSERT_EQ(sm2->reclaim_pending(), 3u);
  const clientid4 q = Establish(*sm2, "quits");
  sessionid4 sid;
  std::memcpy(sid, sm2->SessionsOf(*sm2->FindClient(q))[0]->id().data(),
              NFS4_SESSIONID_SIZE);
  ASSERT_NFS(sm2->DestroySession(sid), NFS4_OK);
  ASSERT_NFS(sm2->DestroyClientId(q), NFS4_OK);
  EXPECT_EQ(sm2->reclaim_pending(), 2u);
  Establish(*sm2, "lapses");
  EXPECT_EQ(sm2->ReapExpired(state::Clock::now() + std::chrono::hours(1)),
            1u);
  EXPECT_EQ(sm2->reclaim_pending(), 1u);
  EXPECT_TRUE(sm2->InGrace()) << "stays-away may still come";
}

TEST_F(StateManagerGraceTest, ExpiredClientIsForgotten) {
  auto sm1 = NewServer();
  EstablishWithState(*sm1, "lapsed");
  ASSERT_TRUE(records_->Get("lapsed").ok());
  EXPECT_EQ(sm1->ReapExpired(state::Clock::now() + std::chrono::hours(1)),
            1u);
  EXPECT_TRUE(records_->Get("lapsed").status().IsNotFound());
}

// The database fails to write: the client is told to retry
// (NFS4ERR_DELAY) and nothing changed; once it works again, the retry
// succeeds.
class FlakyBackend : public ns::BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  ns::Status Write(const ns::TxnFn& fn) override {
    if (fail_writes.load()) return ns::Status::Unavailable("test", "down");
    return BackendWrapper::Write(fn);
  }
  std::atomic<bool> fail_writes{false};
};

TEST(StateManagerFaultTest, DatabaseFailureMeansDelayAndNoChange) {
  const std::string dir = TempDir("nfs41d-flaky");
  const std::string uri = "sqlite://" + dir + "/ns.db";
  ns::NamespaceOptions o;
  o.create_if_missing = true;
  o.durable = false;
  ASSERT_TRUE(ns::Namespace::Open(uri, o).ok());
  auto be = ns::OpenBackend(uri, o);
  ASSERT_TRUE(be.ok()) << be.status().ToString();
  auto flaky = std::make_unique<FlakyBackend>(std::move(be).value());
  ASSERT_TRUE(flaky->Start().ok());
  FlakyBackend* fault = flaky.get();
  ns::Namespace n(std::move(flaky));
  ns::ClientRecords records(&n);
  state::StateManager sm(state::StateOptions{}, &records);
  ASSERT_TRUE(sm.StartEpoch().ok());

  const std::string owner = "flaky-client";
  EXCHANGE_ID4args ea{};
  ea.eia_clientowner.co_ownerid.co_ownerid_len =
      static_cast<u_int>(owner.size());
  ea.eia_clientowner.co_ownerid.co_ownerid_val =
      const_cast<char*>(owner.data());
  state::ExchangeIdResult r;
  ASSERT_NFS(sm.ExchangeId(ea, "sys:0", &r), NFS4_OK);
  CREATE_SESSION4args ca{};
  ca.csa_clientid = r.clientid;
  ca.csa_sequence = r.sequenceid;
  ca.csa_fore_chan_attrs.ca_maxrequestsize = 1 << 16;
  ca.csa_fore_chan_attrs.ca_maxresponsesize = 1 << 16;
  ca.csa_fore_chan_attrs.ca_maxoperations = 8;
  ca.csa_fore_chan_attrs.ca_maxrequests = 4;
  CREATE_SESSION4resok ok{};

  fault->fail_writes = true;
  EXPECT_NFS(sm.CreateSession(ca, "sys:0", 1, &ok), NFS4ERR_DELAY);
  EXPECT_EQ(sm.session_count(), 0u);
  EXPECT_FALSE(sm.FindClient(r.clientid)->confirmed());
  fault->fail_writes = false;
  ASSERT_NFS(sm.CreateSession(ca, "sys:0", 1, &ok), NFS4_OK)
      << "the same CREATE_SESSION, retried";
  EXPECT_TRUE(sm.FindClient(r.clientid)->confirmed());
  EXPECT_TRUE(records.Get(owner).ok());

  auto c = sm.FindClient(r.clientid);
  fault->fail_writes = true;
  EXPECT_NFS(sm.ReclaimComplete(*c), NFS4ERR_DELAY);
  EXPECT_FALSE(c->reclaim_complete());
  fault->fail_writes = false;
  EXPECT_NFS(sm.ReclaimComplete(*c), NFS4_OK);
  auto rec = records.Get(owner);
  ASSERT_TRUE(rec.ok());
  EXPECT_TRUE(rec->reclaim_epoch.has_value());
  std::filesystem::remove_all(dir);
}

// ----------------------------------------------------- over TCP: fixture

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("nfs41d-state");
    StartServer();
  }
  void TearDown() override {
    clients_.clear();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartServer(uint32_t grace = 30) {
    ServerOptions o;
    o.port = port_;  // 0 the first time; the same port after a restart
    o.data_dir = dir_;
    o.worker_threads = 2;
    o.durable = false;
    o.state.max_operations = 16;
    o.state.grace_seconds = grace;
    o.state.callback_timeout = milliseconds(3000);
    server_ = std::make_unique<Nfs41Server>(o);
    ASSERT_EQ(server_->Start(), "");
    port_ = server_->port();
  }
  void Restart(uint32_t grace = 30) {
    server_->Stop();
    server_.reset();
    StartServer(grace);
  }

  Client* NewClient(nfs41client::ClientOptions o = {}) {
    auto c = Client::Connect("127.0.0.1", port_, o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (!c.ok()) return nullptr;
    clients_.push_back(std::move(c).value());
    return clients_.back().get();
  }
  Client* Established(nfs41client::ClientOptions o = {}) {
    Client* c = NewClient(o);
    if (c == nullptr) return nullptr;
    EXPECT_NFS(c->EstablishSession(), NFS4_OK);
    return c;
  }
  nfsstat4 ReclaimComplete(Client* c) {
    Compound rc;
    rc.ReclaimComplete();
    auto r = c->Call(rc);
    return r.ok() ? r->status() : NFS4ERR_IO;
  }
  nfsstat4 Sequence(Client* c) {
    auto r = c->Call(Compound());
    return r.ok() ? r->status() : NFS4ERR_IO;
  }
  // REMOVE of a name that does not exist in the root: NOENT normally,
  // GRACE during the grace period.
  nfsstat4 Remove(Client* c, const std::string& name) {
    Compound cp;
    cp.PutRootFh().Remove(name);
    auto r = c->Call(cp);
    return r.ok() ? r->status() : NFS4ERR_IO;
  }
  nfsstat4 Rename(Client* c, const std::string& from, const std::string& to) {
    Compound cp;
    cp.PutRootFh().SaveFh().PutRootFh().Rename(from, to);
    auto r = c->Call(cp);
    return r.ok() ? r->status() : NFS4ERR_IO;
  }

  std::string dir_;
  uint16_t port_ = 0;
  std::unique_ptr<Nfs41Server> server_;
  std::vector<std::unique_ptr<Client>> clients_;
};

// ------------------------------------------------------------ backchannel

TEST_F(ServerTest, ProbeArrivesAndPathIsUp) {
  Client* c = Established();
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->WaitForCallbacks(
      [](const nfs41client::CallbackStats& s) { return s.cb_null >= 1; },
      milliseconds(5000)))
      << "no CB_NULL probe after CREATE_SESSION with a back channel";
  EXPECT_EQ(c->callback_stats().last_cb_program, 0x40000000u);
  EXPECT_TRUE(Eventually([&] {
    return Sequence(c) == NFS4_OK && c->last_status_flags() == 0;
  })) << "flags " << c->last_status_flags();
}

TEST_F(ServerTest, RecallAnyArrivesWithCbSequence) {
  Client* c = Established();
  ASSERT_TRUE(c);
  CbResult r = server_->RecallAny(c->client_id(), 3,
                                  1u << RCA4_TYPE_MASK_RDATA_DLG);
  EXPECT_NFS(r.status, NFS4_OK) << r.error;
  ASSERT_EQ(r.op_status.size(), 2u);
  EXPECT_NFS(r.op_status[0], NFS4_OK);
  EXPECT_NFS(r.op_status[1], NFS4_OK);
  // A second one on the same slot carries the next sequence id.
  r = server_->RecallAny(c->client_id(), 0, 1u << RCA4_TYPE_MASK_FILE_LAYOUT);
  EXPECT_NFS(r.status, NFS4_OK) << r.error;
  nfs41client::CallbackStats s = c->callback_stats();
  EXPECT_EQ(s.cb_compound, 2u);
  EXPECT_EQ(s.cb_sequence_ok, 2u);
  EXPECT_EQ(s.cb_sequence_bad, 0u);
  EXPECT_EQ(s.cb_recall_any, 2u);
  EXPECT_EQ(s.last_objects_to_keep, 0u);
  EXPECT_EQ(s.last_type_mask, 1u << RCA4_TYPE_MASK_FILE_LAYOUT);
  auto client = server_->state().FindClient(c->client_id());
  ASSERT_TRUE(client);
  auto sessions = server_->state().SessionsOf(*client);
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0]->callbacks_answered(), 2u);
  // Unknown client ids are stale.
  EXPECT_NFS(server_->RecallAny(0x12345678ull, 0, 1).status,
             NFS4ERR_STALE_CLIENTID);
}

TEST_F(ServerTest, FailedProbeIsPathDown) {
  nfs41client::ClientOptions o;
  o.answer_callbacks = false;  // asks for a back channel, never answers
  Client* c = Established(o);
  ASSERT_TRUE(c);
  EXPECT_TRUE(Eventually([&] {
    return Sequence(c) == NFS4_OK &&
           c->last_status_flags() == (SEQ4_STATUS_CB_PATH_DOWN |
                                      SEQ4_STATUS_CB_PATH_DOWN_SESSION);
  })) << "flags " << c->last_status_flags();
  CbResult r = server_->RecallAny(c->client_id(), 0, 1);
  EXPECT_NFS(r.status, NFS4ERR_CB_PATH_DOWN);
  EXPECT_FALSE(r.error.empty());
}

// More callbacks at once than back-channel slots: they queue for a slot,
// and every CB_SEQUENCE carries the right sequence id.
TEST_F(ServerTest, ConcurrentCallbacksShareTheSlotTable) {
  nfs41client::ClientOptions o;
  o.back_slots = 2;
  Client* c = Established(o);
  ASSERT_TRUE(c);
  constexpr int kThreads = 4, kEach = 10;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        CbResult r = server_->RecallAny(c->client_id(),
                                        static_cast<uint32_t>(t), 1);
        if (r.status == NFS4_OK) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
  nfs41client::CallbackStats s = c->callback_stats();
  EXPECT_EQ(s.cb_sequence_ok, uint64_t{kThreads * kEach});
  EXPECT_EQ(s.cb_sequence_bad, 0u);
  EXPECT_EQ(s.cb_recall_any, uint64_t{kThreads * kEach});
}

TEST_F(ServerTest, NoBackChannelIsReportedAndBindFixesIt) {
  nfs41client::ClientOptions o;
  o.back_channel = false;
  Client* c = Established(o);
  ASSERT_TRUE(c);
  ASSERT_NFS(Sequence(c), NFS4_OK);
  EXPECT_EQ(c->last_status_flags() & (SEQ4_STATUS_CB_PATH_DOWN |
                                      SEQ4_STATUS_CB_PATH_DOWN_SESSION),
            uint32_t{SEQ4_STATUS_CB_PATH_DOWN |
                     SEQ4_STATUS_CB_PATH_DOWN_SESSION});
  CbResult r = server_->RecallAny(c->client_id(), 0, 1);
  EXPECT_NFS(r.status, NFS4ERR_CB_PATH_DOWN);
  EXPECT_EQ(c->callback_stats().cb_compound, 0u);

  // BIND_CONN_TO_SESSION asking for the back channel gets it (§18.34).
  channel_dir_from_server4 dir{};
  ASSERT_NFS(c->BindConnToSession(CDFC4_BACK_OR_BOTH, &dir), NFS4_OK);
  EXPECT_EQ(dir, CDFS4_BOTH);
  EXPECT_TRUE(c->WaitForCallbacks(
      [](const nfs41client::CallbackStats& s) { return s.cb_null >= 1; },
      milliseconds(5000)));
  EXPECT_TRUE(Eventually([&] {
    return Sequence(c) == NFS4_OK && c->last_status_flags() == 0;
  }));
  r = server_->RecallAny(c->client_id(), 1, 1);
  EXPECT_NFS(r.status, NFS4_OK) << r.error;
  EXPECT_EQ(c->callback_stats().cb_recall_any, 1u);
}

TEST_F(ServerTest, BackchannelCtlChangesProgramAndSecurity) {
  Client* c = Established();
  ASSERT_TRUE(c);
  ASSERT_NFS(c->BackchannelCtl(0x40000123, /*sys=*/true), NFS4_OK);
  CbResult r = server_->RecallAny(c->client_id(), 2, 1);
  EXPECT_NFS(r.status, NFS4_OK) << r.error;
  EXPECT_EQ(c->callback_stats().last_cb_program, 0x40000123u);
  EXPECT_EQ(c->callback_stats().cb_recall_any, 1u);

  // Only RPCSEC_GSS: nothing the server can call back with (§18.33.3).
  nfs_argop4 op{};
  op.argop = OP_BACKCHANNEL_CTL;
  callback_sec_parms4 gss{};
  gss.cb_secflavor = RPCSEC_GSS;
  op.nfs_argop4_u.opbackchannel_ctl.bca_cb_program = 0x40000999;
  op.nfs_argop4_u.opbackchannel_ctl.bca_sec_parms.bca_sec_parms_len = 1;
  op.nfs_argop4_u.opbackchannel_ctl.bca_sec_parms.bca_sec_parms_val = &gss;
  Compound cp;
  cp.Op(op);
  auto rep = c->Call(cp);
  ASSERT_TRUE(rep.ok());
  EXPECT_NFS(rep->status(), NFS4ERR_INVAL);
  // Unchanged: callbacks still reach the program set before.
  r = server_->RecallAny(c->client_id(), 2, 1);
  EXPECT_NFS(r.status, NFS4_OK) << r.error;
  EXPECT_EQ(c->callback_stats().last_cb_program, 0x40000123u);
}

TEST_F(ServerTest, ClosedBackConnectionIsPathDown) {
  Client* c = Established();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->WaitForCallbacks(
      [](const nfs41client::CallbackStats& s) { return s.cb_null >= 1; },
      milliseconds(5000)));
  // The client moves to a new connection that serves the fore channel
  // only; the old one (the back channel) goes away.
  ASSERT_TRUE(c->Reconnect("127.0.0.1", port_).ok());
  ASSERT_NFS(c->BindConnToSession(CDFC4_FORE), NFS4_OK);
  EXPECT_TRUE(Eventually([&] {
    return Sequence(c) == NFS4_OK &&
           (c->last_status_flags() & SEQ4_STATUS_CB_PATH_DOWN);
  })) << "flags " << c->last_status_flags();
  EXPECT_NFS(server_->RecallAny(c->client_id(), 0, 1).status,
             NFS4ERR_CB_PATH_DOWN);
  // Binding the new connection for the back channel only brings it back.
  const uint64_t probes = c->callback_stats().cb_null;
  channel_dir_from_server4 dir{};
  ASSERT_NFS(c->BindConnToSession(CDFC4_BACK, &dir), NFS4_OK);
  EXPECT_EQ(dir, CDFS4_BACK);
  EXPECT_TRUE(c->WaitForCallbacks(
      [&](const nfs41client::CallbackStats& s) { return s.cb_null > probes; },
      milliseconds(5000)));
  CbResult r = server_->RecallAny(c->client_id(), 0, 1);
  EXPECT_NFS(r.status, NFS4_OK) << r.error;
  EXPECT_TRUE(Eventually([&] {
    return Sequence(c) == NFS4_OK && c->last_status_flags() == 0;
  })) << "flags " << c->last_status_flags();
}

// ------------------------------------------------- restart, grace, reclaim

TEST_F(ServerTest, RestartGraceAndReclaim) {
  nfs41client::ClientOptions oa, ob;
  oa.owner = "client-a";
  ob.owner = "client-b";
  Client* a = Established(oa);
  Client* b = Established(ob);
  ASSERT_TRUE(a && b);
  ASSERT_NFS(ReclaimComplete(a), NFS4_OK);
  ASSERT_NFS(ReclaimComplete(b), NFS4_OK);
  EXPECT_NFS(Remove(a, "nothing"), NFS4ERR_NOENT) << "no grace before";
  const clientid4 old_id = a->client_id();

  Restart();
  ASSERT_TRUE(server_->state().InGrace());
  EXPECT_EQ(server_->state().reclaim_pending(), 2u);

  // The client learns of the restart: its session and client id are gone.
  ASSERT_TRUE(a->Reconnect("127.0.0.1", port_).ok());
  EXPECT_NFS(Sequence(a), NFS4ERR_BADSESSION);
  EXPECT_NFS(a->CreateSession(), NFS4ERR_STALE_CLIENTID);
  // It re-does EXCHANGE_ID and CREATE_SESSION and may reclaim.
  ASSERT_NFS(a->EstablishSession(), NFS4_OK);
  EXPECT_NE(a->client_id(), old_id);
  auto ca = server_->state().FindClient(a->client_id());
  ASSERT_TRUE(ca);
  EXPECT_NFS(server_->state().CheckClaim(*ca, true), NFS4_OK);
  EXPECT_NFS(server_->state().CheckClaim(*ca, false), NFS4ERR_GRACE);
  // State-changing operations that could conflict with reclaims wait.
  EXPECT_NFS(Remove(a, "nothing"), NFS4ERR_GRACE);
  EXPECT_NFS(Rename(a, "x", "y"), NFS4ERR_GRACE);

  // A client the database does not know may not reclaim.
  nfs41client::ClientOptions on;
  on.owner = "client-new";
  Client* n = Established(on);
  ASSERT_TRUE(n);
  auto cn = server_->state().FindClient(n->client_id());
  ASSERT_TRUE(cn);
  EXPECT_NFS(server_->state().CheckClaim(*cn, true), NFS4ERR_NO_GRACE);
  EXPECT_NFS(ReclaimComplete(n), NFS4_OK);

  ASSERT_NFS(ReclaimComplete(a), NFS4_OK);
  EXPECT_NFS(ReclaimComplete(a), NFS4ERR_COMPLETE_ALREADY);
  EXPECT_NFS(server_->state().CheckClaim(*ca, true), NFS4ERR_NO_GRACE);
  EXPECT_TRUE(server_->state().InGrace()) << "b has not reclaimed yet";

  // b comes back and completes: grace ends early (§18.51.3).
  ASSERT_TRUE(b->Reconnect("127.0.0.1", port_).ok());
  EXPECT_NFS(Sequence(b), NFS4ERR_BADSESSION);
  ASSERT_NFS(b->EstablishSession(), NFS4_OK);
  ASSERT_NFS(ReclaimComplete(b), NFS4_OK);
  EXPECT_FALSE(server_->state().InGrace());
  EXPECT_NFS(Remove(a, "nothing"), NFS4ERR_NOENT);
  EXPECT_NFS(server_->state().CheckClaim(*ca, false), NFS4_OK);
  EXPECT_NFS(server_->state().CheckClaim(*cn, true), NFS4ERR_NO_GRACE);
}

// OPEN through the CheckClaim hook: CLAIM_PREVIOUS by a client that may
// reclaim, nothing new during grace, no reclaim by others or after
// RECLAIM_COMPLETE.
TEST_F(ServerTest, OpenReclaimInGrace) {
  nfs41client::ClientOptions oa, on;
  oa.owner = "client-open";
  on.owner = "client-unknown";
  Client* a = Established(oa);
  ASSERT_TRUE(a);
  ASSERT_NFS(ReclaimComplete(a), NFS4_OK);
  auto root = a->RootFh();
  ASSERT_NFS(root.status, NFS4_OK);
  auto held = a->OpenFile(root.value, "held", OPEN4_SHARE_ACCESS_BOTH);
  ASSERT_NFS(held.status, NFS4_OK);
  Restart();

  ASSERT_TRUE(a->Reconnect("127.0.0.1", port_).ok());
  ASSERT_NFS(a->EstablishSession(), NFS4_OK);
  auto reclaim_open = [&](Client* c) {
    Compound cp;
    cp.PutFh(held.value.fh)
        .OpenFh(OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE, "owner",
                CLAIM_PREVIOUS);
    auto r = c->Call(cp);
    return r.ok() ? r->status() : NFS4ERR_IO;
  };
  auto new_open = [&](Client* c) {
    Compound cp;
    cp.PutRootFh().Open("held", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE,
                        "other-owner");
    auto r = c->Call(cp);
    return r.ok() ? r->status() : NFS4ERR_IO;
  };
  EXPECT_NFS(new_open(a), NFS4ERR_GRACE);
  EXPECT_NFS(reclaim_open(a), NFS4_OK);
  Client* n = Established(on);
  ASSERT_TRUE(n);
  EXPECT_NFS(reclaim_open(n), NFS4ERR_NO_GRACE);
  EXPECT_NFS(new_open(n), NFS4ERR_GRACE);
  ASSERT_NFS(ReclaimComplete(a), NFS4_OK);
  EXPECT_FALSE(server_->state().InGrace()) << "a was the only one to wait for";
  EXPECT_NFS(reclaim_open(a), NFS4ERR_NO_GRACE);
  EXPECT_NFS(new_open(n), NFS4_OK);
}

TEST_F(ServerTest, GraceTimesOutAndAbsentClientLosesReclaim) {
  nfs41client::ClientOptions oa;
  oa.owner = "client-away";
  Client* a = Established(oa);
  ASSERT_TRUE(a);
  ASSERT_NFS(ReclaimComplete(a), NFS4_OK);
  Restart(/*grace=*/1);
  Client* other = Established();
  ASSERT_TRUE(other);
  EXPECT_NFS(Remove(other, "nothing"), NFS4ERR_GRACE);
  // Nobody reclaims; the grace period ends by itself.
  EXPECT_TRUE(Eventually(
      [&] { return Remove(other, "nothing") == NFS4ERR_NOENT; },
      milliseconds(5000)));
  EXPECT_FALSE(server_->state().InGrace());
  // client-away comes back after a further restart: it let a whole grace
  // period pass, so it is not waited for and may not reclaim (§8.4.3).
  Restart();
  EXPECT_FALSE(server_->state().InGrace());
  ASSERT_TRUE(a->Reconnect("127.0.0.1", port_).ok());
  ASSERT_NFS(a->EstablishSession(), NFS4_OK);
  auto ca = server_->state().FindClient(a->client_id());
  ASSERT_TRUE(ca);
  EXPECT_NFS(server_->state().CheckClaim(*ca, true), NFS4ERR_NO_GRACE);
}

TEST_F(ServerTest, RestartDuringGraceWaitsForTheSameClients) {
  nfs41client::ClientOptions oa, ob;
  oa.owner = "client-a";
  ob.owner = "client-b";
  Client* a = Established(oa);
  Client* b = Established(ob);
  ASSERT_TRUE(a && b);
  ASSERT_NFS(ReclaimComplete(a), NFS4_OK);
  ASSERT_NFS(ReclaimComplete(b), NFS4_OK);
  Restart();
  ASSERT_TRUE(a->Reconnect("127.0.0.1", port_).ok());
  ASSERT_NFS(a->EstablishSession(), NFS4_OK);
  ASSERT_NFS(ReclaimComplete(a), NFS4_OK);
  EXPECT_EQ(server_->state().reclaim_pending(), 1u);
  Restart();  // during grace
  ASSERT_TRUE(server_->state().InGrace());
  EXPECT_EQ(server_->state().reclaim_pending(), 2u);
  ASSERT_TRUE(b->Reconnect("127.0.0.1", port_).ok());
  ASSERT_NFS(b->EstablishSession(), NFS4_OK);
  auto cb = server_->state().FindClient(b->client_id());
  ASSERT_TRUE(cb);
  EXPECT_NFS(server_->state().CheckClaim(*cb, true), NFS4_OK);
}

TEST_F(ServerTest, DestroyedClientIsNotWaitedFor) {
  Client* a = Established();
  ASSERT_TRUE(a);
  ASSERT_NFS(ReclaimComplete(a), NFS4_OK);
  ASSERT_NFS(a->DestroySession(), NFS4_OK);
  ASSERT_NFS(a->DestroyClientId(), NFS4_OK);
  Restart();
  EXPECT_FALSE(server_->state().InGrace());
}

// ------------------------------------------- orphans left by a restart

// A file unlinked while open keeps its inode and data until its last CLOSE
// (issue 4 item 8). If the server goes away first, the restarted server
// releases what nobody reclaimed once grace is over, and keeps an orphan a
// client reclaimed an open of (§8.4.2.1) until that open is closed.
TEST_F(ServerTest, OrphansOfARestartAreReleasedAfterGrace) {
  nfs41client::ClientOptions oa;
  oa.owner = "client-orphans";
  Client* a = Established(oa);
  ASSERT_TRUE(a);
  ASSERT_NFS(ReclaimComplete(a), NFS4_OK);
  auto root = a->RootFh();
  ASSERT_NFS(root.status, NFS4_OK);
  struct Kept {
    Client::Opened open;
    ns::InodeId ino = 0;
    std::string data_file;
  };
  auto keep = [&](const std::string& name) {
    Kept k;
    auto o = a->OpenFile(root.value, name, OPEN4_SHARE_ACCESS_BOTH);
    EXPECT_NFS(o.status, NFS4_OK);
    k.open = o.value;
    // Past inline_max, so that the bytes are in a data file to follow.
    EXPECT_NFS(a->WriteFile(k.open.fh, k.open.stateid, 0,
                            "still here" + std::string(5000, '.'), FILE_SYNC4)
                   .status,
               NFS4_OK);
    auto id = a->GetAttr(k.open.fh, Bits({FATTR4_FILEID}));
    EXPECT_NFS(id.status, NFS4_OK);
    k.ino = id.value.fileid;
    k.data_file = dir_ + "/data/" + data::LocalDataPath(k.ino);
    EXPECT_NFS(a->Remove(root.value, name).status, NFS4_OK);
    return k;
  };
  Kept lost = keep("lost");
  Kept reclaimed = keep("reclaimed");
  ASSERT_TRUE(std::filesystem::exists(lost.data_file));
  auto exists = [&](ns::InodeId ino) {
    return server_->ns().GetAttr(ns::Credentials::Root(), ino).ok();
  };

  Restart();  // the opens are not closed: as after a crash
  ASSERT_TRUE(server_->state().InGrace());
  // During grace nothing goes: a client may still reclaim these opens.
  std::this_thread::sleep_for(milliseconds(1200));  // > 2 flusher ticks
  EXPECT_TRUE(exists(lost.ino));
  EXPECT_TRUE(exists(reclaimed.ino));
  EXPECT_TRUE(std::filesystem::exists(lost.data_file));

  ASSERT_TRUE(a->Reconnect("127.0.0.1", port_).ok());
  ASSERT_NFS(a->EstablishSession(), NFS4_OK);
  Compound rc;
  rc.PutFh(reclaimed.open.fh)
      .OpenFh(OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE, "owner",
              CLAIM_PREVIOUS);
  auto r = a->Call(rc);
  ASSERT_TRUE(r.ok());
  ASSERT_NFS(r->status(), NFS4_OK);
  const stateid4 sid =
      r->op(2).nfs_resop4_u.opopen.OPEN4res_u.resok4.stateid;
  ASSERT_NFS(ReclaimComplete(a), NFS4_OK);
  EXPECT_FALSE(server_->state().InGrace());

  // Grace over: the orphan nobody reclaimed goes with its data.
  EXPECT_TRUE(Eventually([&] { return !exists(lost.ino); }));
  EXPECT_FALSE(std::filesystem::exists(lost.data_file));
  // The reclaimed one is still readable, and goes with its last CLOSE.
  EXPECT_TRUE(exists(reclaimed.ino));
  auto data = a->ReadFile(reclaimed.open.fh, sid, 0, 10);
  ASSERT_NFS(data.status, NFS4_OK);
  EXPECT_EQ(data.value.data, "still here");
  ASSERT_NFS(a->CloseFile(reclaimed.open.fh, sid).status, NFS4_OK);
  EXPECT_TRUE(Eventually([&] { return !exists(reclaimed.ino); }));
  EXPECT_FALSE(std::filesystem::exists(reclaimed.data_file));
}

TEST_F(ServerTest, OrphansAreReleasedAtStartWhenNobodyMayReclaim) {
  Client* a = Established();
  ASSERT_TRUE(a);
  ASSERT_NFS(ReclaimComplete(a), NFS4_OK);
  auto root = a->RootFh();
  ASSERT_NFS(root.status, NFS4_OK);
  auto o = a->OpenFile(root.value, "f", OPEN4_SHARE_ACCESS_BOTH);
  ASSERT_NFS(o.status, NFS4_OK);
  auto id = a->GetAttr(o.value.fh, Bits({FATTR4_FILEID}));
  ASSERT_NFS(id.status, NFS4_OK);
  ASSERT_NFS(a->Remove(root.value, "f").status, NFS4_OK);
  // The client goes away for good (its record too), then the server.
  ASSERT_NFS(a->DestroySession(), NFS4_OK);
  ASSERT_NFS(a->DestroyClientId(), NFS4_OK);
  Restart();
  EXPECT_FALSE(server_->state().InGrace());
  EXPECT_TRUE(Eventually([&] {
    return server_->ns()
        .GetAttr(ns::Credentials::Root(), id.value.fileid)
        .status()
        .IsStale();
  }));
  auto left = server_->ns().ListOrphans();
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
}

// ---------------------------------------------- LOCK reclaim after restart

// RFC 8881 §8.4.2.1, §18.10.3: a lock held before the restart is reclaimed
// (reclaim = TRUE) during grace; a new lock waits for the end of grace
// (NFS4ERR_GRACE); after RECLAIM_COMPLETE and the end of grace, reclaims are
// refused (NFS4ERR_NO_GRACE) and locks conflict as usual.
TEST_F(ServerTest, LockReclaimAcrossARestart) {
  nfs41client::ClientOptions oa, ob;
  oa.owner = "client-locker";
  ob.owner = "client-other";
  Client* a = Established(oa);
  Client* b = Established(ob);
  ASSERT_TRUE(a && b);
  ASSERT_NFS(ReclaimComplete(a), NFS4_OK);
  ASSERT_NFS(ReclaimComplete(b), NFS4_OK);
  auto root = a->RootFh();
  ASSERT_NFS(root.status, NFS4_OK);
  auto held = a->OpenFile(root.value, "locked", OPEN4_SHARE_ACCESS_BOTH);
  ASSERT_NFS(held.status, NFS4_OK);
  auto held_b = b->OpenFile(root.value, "locked", OPEN4_SHARE_ACCESS_BOTH, 0,
                            false, "owner-b");
  ASSERT_NFS(held_b.status, NFS4_OK);
  auto lock = [](Client* c, const Compound& op) {
    auto r = c->Call(op);
    return r.ok() ? r->status() : NFS4ERR_IO;
  };
  {
    Compound cp;
    cp.PutFh(held.value.fh)
        .LockNew(WRITE_LT, 0, 100, held.value.stateid, "lock-owner-a");
    ASSERT_NFS(lock(a, cp), NFS4_OK);
  }

  Restart();
  ASSERT_TRUE(server_->state().InGrace());
  ASSERT_TRUE(a->Reconnect("127.0.0.1", port_).ok());
  ASSERT_NFS(a->EstablishSession(), NFS4_OK);
  ASSERT_TRUE(b->Reconnect("127.0.0.1", port_).ok());
  ASSERT_NFS(b->EstablishSession(), NFS4_OK);
  // Both reclaim their opens (CLAIM_PREVIOUS).
  auto reclaim_open = [&](Client* c, const std::string& owner) {
    Compound cp;
    cp.PutFh(held.value.fh)
        .OpenFh(OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE, owner,
                CLAIM_PREVIOUS);
    auto r = c->Call(cp);
    stateid4 sid{};
    if (r.ok() && r->status() == NFS4_OK) {
      sid = r->op(2).nfs_resop4_u.opopen.OPEN4res_u.resok4.stateid;
    }
    return std::make_pair(r.ok() ? r->status() : NFS4ERR_IO, sid);
  };
  auto [sa, open_a] = reclaim_open(a, "owner");
  ASSERT_NFS(sa, NFS4_OK);
  auto [sb, open_b] = reclaim_open(b, "owner-b");
  ASSERT_NFS(sb, NFS4_OK);

  // A new (non-reclaim) LOCK during grace: NFS4ERR_GRACE.
  {
    Compound cp;
    cp.PutFh(held.value.fh)
        .LockNew(WRITE_LT, 200, 10, open_b, "lock-owner-b");
    EXPECT_NFS(lock(b, cp), NFS4ERR_GRACE);
  }
  // The reclaim of the lock held before: granted.
  {
    Compound cp;
    cp.PutFh(held.value.fh)
        .LockNew(WRITE_LT, 0, 100, open_a, "lock-owner-a", /*reclaim=*/true);
    EXPECT_NFS(lock(a, cp), NFS4_OK);
  }
  ASSERT_NFS(ReclaimComplete(a), NFS4_OK);
  // A client that completed may not reclaim any more (§18.51.3).
  {
    Compound cp;
    cp.PutFh(held.value.fh)
        .LockNew(WRITE_LT, 300, 10, open_a, "lock-owner-a2", true);
    EXPECT_NFS(lock(a, cp), NFS4ERR_NO_GRACE);
  }
  ASSERT_NFS(ReclaimComplete(b), NFS4_OK);
  EXPECT_FALSE(server_->state().InGrace());

  // After grace: the reclaimed lock conflicts with b's, others are granted.
  {
    Compound cp;
    cp.PutFh(held.value.fh)
        .LockNew(WRITE_LT, 50, 10, open_b, "lock-owner-b");
    EXPECT_NFS(lock(b, cp), NFS4ERR_DENIED);
  }
  {
    Compound cp;
    cp.PutFh(held.value.fh)
        .LockNew(WRITE_LT, 200, 10, open_b, "lock-owner-b");
    EXPECT_NFS(lock(b, cp), NFS4_OK);
  }
  {
    Compound cp;
    cp.PutFh(held.value.fh)
        .LockNew(WRITE_LT, 400, 10, open_a, "lock-owner-a3", true);
    EXPECT_NFS(lock(a, cp), NFS4ERR_NO_GRACE);
  }
}

}  // namespace
}  // namespace nfs41d
