// dataserver tests (see dataserver_test.cc): the daemon binary (restart,
// verifier, flags).

#include "dataserver/dataserver_test_util.h"

namespace dataserver {
namespace {

TEST_F(DaemonTest, CommittedDataSurvivesSigkillAndTheVerifierChanges) {
  const uint16_t port = rpc::FreeLoopbackPort().value();
  // Nothing listens there: the data server keeps retrying its MDS.
  uint16_t no_mds = rpc::FreeLoopbackPort().value();
  while (no_mds == port) no_mds = rpc::FreeLoopbackPort().value();
  Proc p = Spawn(Args(port, no_mds), dir_ + "/log1");
  const Fh fh = Handle(TestKey(), 77);
  const std::string data = Pattern(300000, 9);
  const std::string big = Pattern(256 << 10, 11);
  std::array<uint8_t, NFS4_VERIFIER_SIZE> verf1{};
  {
    auto c = ConnectWhenUp(port);
    ASSERT_NE(c, nullptr) << ReadAll(p.log);
    auto w = c->WriteFile(fh, stateid4{}, 4096, data, UNSTABLE4);
    ASSERT_TRUE(w.ok());
    verf1 = w.value.verf;
    // 256 KiB at 1 MiB, aligned: written around the page cache
    // (direct_write_min), made durable by the same COMMIT.
    auto wd = c->WriteFile(fh, stateid4{}, 1 << 20, big, UNSTABLE4);
    ASSERT_TRUE(wd.ok());
    EXPECT_EQ(wd.value.verf, verf1);
    auto cm = c->CommitFile(fh);
    ASSERT_TRUE(cm.ok());
    EXPECT_EQ(cm.value, verf1);
  }
  ::kill(p.pid, SIGKILL);
  EXPECT_EQ(Wait(p), 128 + SIGKILL);
  const std::string uuid1 = ReadAll(dir_ + "/ds.uuid");
  EXPECT_EQ(uuid1.size(), 37u);

  Proc q = Spawn(Args(port, no_mds), dir_ + "/log2");
  {
    auto c = ConnectWhenUp(port);
    ASSERT_NE(c, nullptr) << ReadAll(q.log);
    // Up to the hole before the aligned part at 1 MiB.
    auto r = c->ReadFile(fh, stateid4{}, 4096, 400000);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r.value.data.size(), 400000u);
    EXPECT_TRUE(r.value.data.substr(0, data.size()) == data);
    EXPECT_EQ(r.value.data.find_first_not_of('\0', data.size()),
              std::string::npos);
    auto rd = c->ReadFile(fh, stateid4{}, 1 << 20, 256 << 10);
    ASSERT_TRUE(rd.ok());
    EXPECT_TRUE(rd.value.data == big);
    auto hole = c->ReadFile(fh, stateid4{}, 0, 4096);
    ASSERT_TRUE(hole.ok());
    EXPECT_EQ(hole.value.data, std::string(4096, '\0'));
    auto w = c->WriteFile(fh, stateid4{}, 0, "new", UNSTABLE4);
    ASSERT_TRUE(w.ok());
    EXPECT_NE(w.value.verf, verf1);  // clients resend uncommitted writes
  }
  EXPECT_EQ(ReadAll(dir_ + "/ds.uuid"), uuid1);  // the same data server
  // It logs that the MDS is unreachable, and SIGTERM stops it cleanly and
  // at once, though it is between registration attempts.
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(q.pid, SIGTERM);
  EXPECT_EQ(Wait(q), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  const std::string log = ReadAll(q.log);
  EXPECT_NE(log.find("unreachable"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped"), std::string::npos) << log;
}

TEST_F(DaemonTest, BadArgumentsExitNonZeroWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::string port =
      "127.0.0.1:" + std::to_string(rpc::FreeLoopbackPort().value());
  const std::vector<Case> cases = {
      {{"--listen", port, "--mds", port, "--data-dir", dir_, "--bogus"},
       "bogus"},
      {{"--listen", port, "--mds", port}, "--data-dir"},
      {{"--listen", "nonsense", "--mds", port, "--data-dir", dir_}, "--listen"},
      {{"--listen", port, "--mds", "x", "--data-dir", dir_}, "--mds"},
      {{"--listen", "0.0.0.0:2049", "--mds", port, "--data-dir", dir_},
       "--advertise"},
      {{"--listen", port, "--mds", port, "--data-dir", dir_, "--key-file",
        dir_ + "/missing.key"},
       "missing.key"},
      {{"--listen", port, "--mds", port, "--data-dir", dir_, "--log-level",
        "loud"},
       "--log-level"},
      {{"--listen", port, "--mds", port, "--data-dir", "/proc/nope"},
       "/proc/nope"},
  };
  for (const Case& c : cases) {
    Proc p = Spawn(c.args, dir_ + "/log");
    const int rc = Wait(p);
    const std::string log = ReadAll(p.log);
    EXPECT_GT(rc, 0) << c.message << ": " << log;
    EXPECT_NE(log.find(c.message), std::string::npos)
        << "want '" << c.message << "' in: " << log;
  }
  // A key of the wrong size.
  std::ofstream(dir_ + "/short.key") << "short";
  Proc p = Spawn({"--listen", port, "--mds", port, "--data-dir", dir_,
                  "--key-file", dir_ + "/short.key"},
                 dir_ + "/log");
  EXPECT_EQ(Wait(p), 1);
  EXPECT_NE(ReadAll(p.log).find("32 bytes"), std::string::npos);
}

}  // namespace
}  // namespace dataserver
