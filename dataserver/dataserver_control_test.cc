// dataserver tests (see dataserver_test.cc): the control loop against an
// in-test MDS stand-in serving NSCTL_PROG, in-process daemons, identity.

#include "dataserver/dataserver_test_util.h"

namespace dataserver {
namespace {

// ------------------------------------------------------------- control

// What the stand-in MDS saw and will answer.
class FakeMds {
 public:
  explicit FakeMds(uint16_t port = 0) {
    rpc::ServerOptions o;
    o.port = port;
    o.worker_threads = 2;
    server_ = std::make_unique<rpc::Server>(o);
    server_->Register(
        rpc::Program(NSCTL_PROG, NSCTL_V1, NSCTL_V1)
            .WithNull()
            .On(NSCTL_REGISTER,
                [this](const rpc::CallContext&, std::span<const uint8_t> a) {
                  return OnRegister(a);
                })
            .On(NSCTL_HEARTBEAT,
                [this](const rpc::CallContext&, std::span<const uint8_t> a) {
                  return OnHeartbeat(a);
                }));
    EXPECT_TRUE(server_->Start().ok());
  }
  ~FakeMds() { server_->Stop(); }
  uint16_t port() const { return server_->port(); }

  struct Registration {
    std::string uuid, advertise, listen;
    bool proof_ok = false;
  };
  struct Beat {
    uint64_t device_id = 0;
    bool proof_ok = false;
    std::vector<std::pair<uint64_t, int32_t>> done;
  };

  std::mutex mu;
  pnfs::Key key = TestKey();
  uint64_t next_device = 17;
  std::vector<Registration> registrations;
  std::vector<Beat> beats;
  std::vector<nsctl_work> work;       // delivered with the next heartbeat
  bool forget_device = false;         // next heartbeat: UNKNOWN_DEVICE
  int garbage_replies = 0;            // this many replies that do not decode
  int delay_replies = 0;              // then this many NSCTL_ERR_DELAY
  std::set<uint64_t> known_devices;

  size_t registration_count() {
    std::lock_guard l(mu);
    return registrations.size();
  }
  // The results reported for `work_id`, or nullopt.
  std::optional<int32_t> Reported(uint64_t work_id) {
    std::lock_guard l(mu);
    for (const Beat& b : beats) {
      for (auto [id, err] : b.done) {
        if (id == work_id) return err;
      }
    }
    return std::nullopt;
  }

 private:
  rpc::Reply OnRegister(std::span<const uint8_t> bytes) {
    rpc::XdrOwned<nsctl_register_args> a(xdr_nsctl_register_args);
    if (!a.DecodeAll(bytes)) return rpc::Reply::GarbageArgs();
    std::lock_guard l(mu);
    Registration r;
    r.uuid.assign(a->ds_uuid.ds_uuid_val, a->ds_uuid.ds_uuid_len);
    r.advertise = a->advertise;
    r.listen = a->listen;
    const pnfs::Proof want = pnfs::RegisterProof(
        key,
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(r.uuid.data()),
                                 r.uuid.size()),
        r.advertise, r.listen);
    r.proof_ok = pnfs::ProofMatches(
        want, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(a->proof),
                                       NSCTL_PROOF_LEN));
    registrations.push_back(r);
    nsctl_register_res res{};
    if (garbage_replies > 0) {
      --garbage_replies;
      return rpc::Reply::Success({0, 0, 0, 0, 0, 0, 0, 1});
    }
    if (delay_replies > 0) {
      --delay_replies;
      res.status = NSCTL_ERR_DELAY;
    } else if (!r.proof_ok) {
      res.status = NSCTL_ERR_AUTH;
    } else {
      res.status = NSCTL_OK;
      const uint64_t device = next_device++;
      known_devices.insert(device);
      res.nsctl_register_res_u.ok.device_id = device;
      res.nsctl_register_res_u.ok.heartbeat_seconds = 1;
      res.nsctl_register_res_u.ok.expire_seconds = 5;
    }
    return rpc::Reply::Success(*rpc::XdrEncode(xdr_nsctl_register_res, res));
  }

  rpc::Reply OnHeartbeat(std::span<const uint8_t> bytes) {
    rpc::XdrOwned<nsctl_heartbeat_args> a(xdr_nsctl_heartbeat_args);
    if (!a.DecodeAll(bytes)) return rpc::Reply::GarbageArgs();
    std::lock_guard l(mu);
    Beat b;
    b.device_id = a->device_id;
    const pnfs::Proof want = pnfs::HeartbeatProof(
        key, a->device_id,
        std::span<const uint8_t>(
            reinterpret_cast<const uint8_t*>(a->ds_uuid.ds_uuid_val),
            a->ds_uuid.ds_uuid_len));
    b.proof_ok = pnfs::ProofMatches(
        want, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(a->proof),
                                       NSCTL_PROOF_LEN));
    for (u_int i = 0; i < a->done.done_len; ++i) {
      b.done.emplace_back(a->done.done_val[i].work_id,
                          a->done.done_val[i].error);
    }
    beats.push_back(b);
    nsctl_heartbeat_res res{};
    std::vector<nsctl_work> out;
    if (!b.proof_ok) {
      res.status = NSCTL_ERR_AUTH;
    } else if (forget_device || !known_devices.count(b.device_id)) {
      forget_device = false;
      known_devices.clear();
      res.status = NSCTL_ERR_UNKNOWN_DEVICE;
    } else {
      res.status = NSCTL_OK;
      out.swap(work);
      res.nsctl_heartbeat_res_u.work.work_len = static_cast<u_int>(out.size());
      res.nsctl_heartbeat_res_u.work.work_val = out.data();
    }
    return rpc::Reply::Success(*rpc::XdrEncode(xdr_nsctl_heartbeat_res, res));
  }

  std::unique_ptr<rpc::Server> server_;
};

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    DataServerOptions o;
    o.data_dir = dir_;
    o.key = TestKey();
    o.worker_threads = 2;
    ds_ = std::make_unique<DataServer>(o);
    ASSERT_EQ(ds_->Start(), "");
  }
  void TearDown() override {
    if (control_) control_->Stop();
    ds_->Stop();
    std::filesystem::remove_all(dir_);
  }
  void StartControl(uint16_t mds_port, pnfs::Key key = TestKey()) {
    ControlOptions co;
    co.mds_host = "127.0.0.1";
    co.mds_port = mds_port;
    co.uuid = "0f0e0d0c-0b0a-4908-8706-050403020100";
    co.listen = "127.0.0.1:" + std::to_string(ds_->port());
    co.advertise = "10.0.2.2:" + std::to_string(ds_->port());
    co.key = key;
    co.store = ds_.get();
    co.data_dir = dir_;
    co.initial_backoff = 50ms;
    co.max_backoff = 200ms;
    co.call_timeout = 2s;
    control_ = std::make_unique<ControlClient>(co);
    control_->Start();
  }
  std::string dir_;
  std::unique_ptr<DataServer> ds_;
  std::unique_ptr<ControlClient> control_;
};

TEST_F(ControlTest, RegistersWithAProofAndCarriesOutWork) {
  FakeMds mds;
  StartControl(mds.port());
  ASSERT_TRUE(WaitFor([&] { return control_->registered(); }, 5s));
  EXPECT_EQ(control_->device_id(), 17u);
  {
    std::lock_guard l(mds.mu);
    ASSERT_EQ(mds.registrations.size(), 1u);
    const FakeMds::Registration& r = mds.registrations[0];
    EXPECT_TRUE(r.proof_ok);
    EXPECT_EQ(r.uuid, "0f0e0d0c-0b0a-4908-8706-050403020100");
    EXPECT_EQ(r.listen, "127.0.0.1:" + std::to_string(ds_->port()));
    EXPECT_EQ(r.advertise, "10.0.2.2:" + std::to_string(ds_->port()));
  }
  // Two stripe files, written through NFS.
  auto c = Connect(ds_->port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->WriteFile(Handle(TestKey(), 7), stateid4{}, 0,
                           Pattern(10000, 1), FILE_SYNC4).ok());
  ASSERT_TRUE(c->WriteFile(Handle(TestKey(), 8), stateid4{}, 0,
                           Pattern(10000, 2), FILE_SYNC4).ok());
  ASSERT_TRUE(c->WriteFile(Handle(TestKey(), 11), stateid4{}, 0,
                           Pattern(10000, 3), FILE_SYNC4).ok());
  {
    std::lock_guard l(mds.mu);
    mds.work.push_back({.work_id = 100, .op = NSCTL_REMOVE, .fileid = 7, .size = 0});
    mds.work.push_back({.work_id = 101, .op = NSCTL_TRUNCATE, .fileid = 8, .size = 10});
    mds.work.push_back({.work_id = 102, .op = NSCTL_REMOVE, .fileid = 9, .size = 0});
    // Truncates never grow or make a stripe file: past its end it reads
    // as zeros anyway.
    mds.work.push_back({.work_id = 103, .op = NSCTL_TRUNCATE, .fileid = 10, .size = 5000});
    mds.work.push_back({.work_id = 104, .op = NSCTL_TRUNCATE, .fileid = 11, .size = 1u << 30});
    mds.work.push_back({.work_id = 105, .op = static_cast<nsctl_work_op>(9), .fileid = 11, .size = 0});
  }
  // Carried out, then reported in a later heartbeat.
  ASSERT_TRUE(WaitFor([&] { return mds.Reported(105).has_value(); }, 6s));
  EXPECT_EQ(mds.Reported(100), 0);
  EXPECT_EQ(mds.Reported(101), 0);
  EXPECT_EQ(mds.Reported(102), 0);  // absent: nothing to remove, no error
  EXPECT_EQ(mds.Reported(103), 0);
  EXPECT_EQ(mds.Reported(104), 0);
  EXPECT_EQ(mds.Reported(105), EOPNOTSUPP);  // kept by the MDS, not lost
  EXPECT_EQ(control_->work_done(), 5u);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/data/" +
                                       nfs41d::data::LocalDataPath(10)));
  EXPECT_EQ(std::filesystem::file_size(dir_ + "/data/" +
                                       nfs41d::data::LocalDataPath(11)),
            10000u);
  auto gone = c->ReadFile(Handle(TestKey(), 7), stateid4{}, 0, 100);
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone.value.data, "");
  EXPECT_TRUE(gone.value.eof);
  auto cut = c->ReadFile(Handle(TestKey(), 8), stateid4{}, 0, 100);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut.value.data, Pattern(10000, 2).substr(0, 10));
  std::lock_guard l(mds.mu);
  for (const FakeMds::Beat& b : mds.beats) {
    EXPECT_TRUE(b.proof_ok);
    EXPECT_EQ(b.device_id, 17u);
  }
  // Each result is reported once.
  size_t reports = 0;
  for (const FakeMds::Beat& b : mds.beats) reports += b.done.size();
  EXPECT_EQ(reports, 6u);
}

TEST_F(ControlTest, HeartbeatsAtTheIntervalTheMdsGives) {
  FakeMds mds;  // heartbeat_seconds = 1
  StartControl(mds.port());
  ASSERT_TRUE(WaitFor([&] { return control_->registered(); }, 5s));
  std::this_thread::sleep_for(3500ms);
  // One right after registering, then one a second: about 4. Loose bounds
  // for a loaded machine; a spinning or stalled loop is far outside them.
  const uint64_t n = control_->heartbeats();
  EXPECT_GE(n, 2u);
  EXPECT_LE(n, 6u);
}

TEST_F(ControlTest, RegistersAgainAfterUnknownDevice) {
  FakeMds mds;
  StartControl(mds.port());
  ASSERT_TRUE(WaitFor([&] { return control_->registered(); }, 5s));
  {
    std::lock_guard l(mds.mu);
    mds.forget_device = true;
  }
  ASSERT_TRUE(WaitFor([&] { return mds.registration_count() >= 2; }, 5s));
  ASSERT_TRUE(WaitFor([&] { return control_->device_id() == 18u; }, 5s));
  const uint64_t beats = control_->heartbeats();
  ASSERT_TRUE(WaitFor([&] { return control_->heartbeats() > beats; }, 5s));
  std::lock_guard l(mds.mu);
  EXPECT_EQ(mds.beats.back().device_id, 18u);
  EXPECT_TRUE(mds.beats.back().proof_ok);
}

TEST_F(ControlTest, RetriesUntilTheMdsComesUp) {
  const uint16_t port = rpc::FreeLoopbackPort().value();
  StartControl(port);
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(control_->registered());
  FakeMds mds(port);
  ASSERT_TRUE(WaitFor([&] { return control_->registered(); }, 5s));
  EXPECT_EQ(mds.registration_count(), 1u);
}

TEST_F(ControlTest, SurvivesRepliesThatDoNotDecodeAndDelays) {
  FakeMds mds;
  {
    std::lock_guard l(mds.mu);
    mds.garbage_replies = 2;
    mds.delay_replies = 2;
  }
  StartControl(mds.port());
  ASSERT_TRUE(WaitFor([&] { return control_->registered(); }, 5s));
  EXPECT_EQ(mds.registration_count(), 5u);
}

TEST_F(ControlTest, AWrongKeyIsRefusedAndNeverRegisters) {
  FakeMds mds;
  pnfs::Key other = TestKey();
  other[31] ^= 0x80;
  StartControl(mds.port(), other);
  ASSERT_TRUE(WaitFor([&] { return mds.registration_count() >= 2; }, 5s));
  EXPECT_FALSE(control_->registered());
  std::lock_guard l(mds.mu);
  EXPECT_FALSE(mds.registrations[0].proof_ok);
}

TEST_F(DaemonTest, TheDaemonRegistersWithItsUuidAndAddresses) {
  FakeMds mds;
  const uint16_t port = rpc::FreeLoopbackPort().value();
  std::vector<std::string> args = Args(port, mds.port());
  args.push_back("--advertise");
  args.push_back("192.0.2.1:2049");
  Proc p = Spawn(args, dir_ + "/log");
  ASSERT_TRUE(WaitFor([&] { return mds.registration_count() >= 1; }, 10s))
      << ReadAll(p.log);
  std::string uuid = ReadAll(dir_ + "/ds.uuid");
  uuid.pop_back();  // newline
  {
    std::lock_guard l(mds.mu);
    const FakeMds::Registration& r = mds.registrations[0];
    EXPECT_TRUE(r.proof_ok);
    EXPECT_EQ(r.uuid, uuid);
    EXPECT_EQ(r.advertise, "192.0.2.1:2049");
    EXPECT_EQ(r.listen, "127.0.0.1:" + std::to_string(port));
  }
  ::kill(p.pid, SIGTERM);
  EXPECT_EQ(Wait(p), 0);
}

TEST(InProcessDaemons, ThreeDataServersRegisterAsThreeDevices) {
  FakeMds mds;
  std::vector<std::string> dirs;
  std::vector<std::unique_ptr<Daemon>> ds;
  for (int i = 0; i < 3; ++i) {
    dirs.push_back(MakeTempDir());
    WriteKeyFile(dirs.back() + "/pnfs.key", TestKey());
    DaemonOptions o;
    o.data_dir = dirs.back();
    o.mds_port = mds.port();
    o.worker_threads = 2;
    o.initial_backoff = 50ms;
    ds.push_back(std::make_unique<Daemon>(o));
    ASSERT_EQ(ds.back()->Start(), "");
  }
  for (auto& d : ds) {
    ASSERT_TRUE(WaitFor([&] { return d->control().registered(); }, 5s));
  }
  EXPECT_NE(ds[0]->uuid(), ds[1]->uuid());
  EXPECT_NE(ds[1]->uuid(), ds[2]->uuid());
  EXPECT_NE(ds[0]->control().device_id(), ds[1]->control().device_id());
  {
    std::lock_guard l(mds.mu);
    ASSERT_EQ(mds.registrations.size(), 3u);
    for (const FakeMds::Registration& r : mds.registrations) {
      EXPECT_TRUE(r.proof_ok);
      EXPECT_EQ(r.listen, r.advertise);
    }
  }
  // Each serves its own stripes.
  for (int i = 0; i < 3; ++i) {
    auto c = Connect(ds[i]->port());
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->WriteFile(Handle(TestKey(), 1), stateid4{}, i * 100,
                             "stripe" + std::to_string(i), FILE_SYNC4).ok());
  }
  for (int i = 0; i < 3; ++i) {
    ds[i]->Stop();
    EXPECT_EQ(std::filesystem::file_size(dirs[i] + "/data/" +
                                         nfs41d::data::LocalDataPath(1)),
              i * 100 + 7u);
    std::filesystem::remove_all(dirs[i]);
  }
}

TEST(InProcessDaemons, AFileStripedOverThreeDataServersReadsBackWhole) {
  // What a files-layout client does with a sparse layout (RFC 8881
  // §13.4.2, no NFL4_UFLG_DENSE): stripe unit i goes to data server
  // i % 3 at its logical offset; COMMIT to each; read back unit by unit.
  FakeMds mds;
  std::vector<std::string> dirs;
  std::vector<std::unique_ptr<Daemon>> ds;
  std::vector<std::unique_ptr<nfs41client::Client>> cl;
  for (int i = 0; i < 3; ++i) {
    dirs.push_back(MakeTempDir());
    WriteKeyFile(dirs.back() + "/pnfs.key", TestKey());
    DaemonOptions o;
    o.data_dir = dirs.back();
    o.mds_port = mds.port();
    o.worker_threads = 2;
    ds.push_back(std::make_unique<Daemon>(o));
    ASSERT_EQ(ds.back()->Start(), "");
    cl.push_back(Connect(ds.back()->port()));
    ASSERT_NE(cl.back(), nullptr);
  }
  const uint64_t unit = 64u << 10;
  const std::string file = Pattern(20 * unit + 123, 11);
  const Fh fh = Handle(TestKey(), 4242);
  for (uint64_t off = 0, i = 0; off < file.size(); off += unit, ++i) {
    auto w = cl[i % 3]->WriteFile(fh, stateid4{}, off, file.substr(off, unit),
                                  UNSTABLE4);
    ASSERT_TRUE(w.ok()) << i;
  }
  for (auto& c : cl) ASSERT_TRUE(c->CommitFile(fh).ok());
  std::string back;
  for (uint64_t off = 0, i = 0; off < file.size(); off += unit, ++i) {
    auto r = cl[i % 3]->ReadFile(fh, stateid4{}, off, unit);
    ASSERT_TRUE(r.ok()) << i;
    back += r.value.data;
  }
  EXPECT_EQ(back.size(), file.size());
  EXPECT_TRUE(back == file);
  // Each stripe file is sparse: a third of the bytes, holes for the rest.
  for (int i = 0; i < 3; ++i) {
    auto a = cl[i]->GetAttr(fh, nfs41client::Bits({FATTR4_SIZE, FATTR4_SPACE_USED}));
    ASSERT_TRUE(a.ok());
    EXPECT_LT(a.value.space_used, a.value.size * 2 / 3) << i;
    // A read in another server's unit: zeros, and not the end.
    auto hole = cl[i]->ReadFile(fh, stateid4{}, ((i + 1) % 3) * unit, 16);
    ASSERT_TRUE(hole.ok());
    EXPECT_EQ(hole.value.data, std::string(16, '\0')) << i;
  }
  cl.clear();
  for (int i = 0; i < 3; ++i) {
    ds[i]->Stop();
    std::filesystem::remove_all(dirs[i]);
  }
}

std::string HttpGet(uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)::write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, n);
  ::close(fd);
  return out;
}

TEST(InProcessDaemons, MetricsShowOpsAndTheControlLoop) {
  FakeMds mds;
  const std::string dir = MakeTempDir();
  WriteKeyFile(dir + "/pnfs.key", TestKey());
  DaemonOptions o;
  o.data_dir = dir;
  o.mds_port = mds.port();
  o.worker_threads = 2;
  o.server.metrics_host = "127.0.0.1";
  Daemon d(o);
  ASSERT_EQ(d.Start(), "");
  ASSERT_NE(d.server().metrics_port(), 0);
  ASSERT_TRUE(WaitFor([&] { return d.control().heartbeats() >= 1; }, 5s));
  auto c = Connect(d.port());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->WriteFile(Handle(TestKey(), 3), stateid4{}, 0, "m", UNSTABLE4).ok());
  nfs41client::Compound bad;
  bad.PutFh(Fh(33, 0));
  ASSERT_TRUE(c->Call(bad).ok());
  const std::string m = HttpGet(d.server().metrics_port(), "/metrics");
  EXPECT_NE(m.find("nfs41d_ops_total{op=\"WRITE\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("status=\"NFS4ERR_BADHANDLE\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("dataserver_registered 1"), std::string::npos) << m;
  EXPECT_NE(m.find("dataserver_sessions 1"), std::string::npos) << m;
  EXPECT_NE(m.find("dataserver_heartbeats_total"), std::string::npos) << m;
  c.reset();
  d.Stop();
  std::filesystem::remove_all(dir);
}

TEST(InProcessDaemons, StartFailsWithoutTheKey) {
  const std::string dir = MakeTempDir();
  DaemonOptions o;
  o.data_dir = dir;
  o.mds_port = 1;
  Daemon d(o);
  const std::string e = d.Start();
  EXPECT_NE(e.find("pnfs.key"), std::string::npos) << e;
  std::filesystem::remove_all(dir);
}

TEST(Identity, UuidIsCreatedOnceAndKeyMustExist) {
  const std::string dir = MakeTempDir();
  std::string err;
  auto u1 = LoadOrCreateUuid(dir, &err);
  ASSERT_TRUE(u1) << err;
  EXPECT_EQ(u1->size(), 36u);
  EXPECT_EQ((*u1)[14], '4');
  auto u2 = LoadOrCreateUuid(dir, &err);
  ASSERT_TRUE(u2);
  EXPECT_EQ(*u1, *u2);
  EXPECT_FALSE(LoadKey(dir + "/none", &err));
  EXPECT_NE(err.find("none"), std::string::npos);
  WriteKeyFile(dir + "/k", TestKey());
  auto k = LoadKey(dir + "/k", &err);
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, TestKey());
  std::ofstream(dir + "/ds.uuid") << "garbage\n";
  EXPECT_FALSE(LoadOrCreateUuid(dir, &err));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dataserver
