// End-to-end: the stock Linux NFSv4.1 client, in a Debian 12 kernel under
// qemu (software emulation), mounts nfs41d and runs a shell session
// (session.sh) against it, once per backend.
//
// Per test: guest_assets.sh prepares the guest (cached in the build tree),
// a fresh namespace is created, nfs41d is started on a free port of
// 127.0.0.1, qemu boots the guest (its user-mode network shows the host's
// loopback as 10.0.2.2), and the serial console is read line by line. The
// guest prints markers ("E2E BEGIN step" / "E2E END step PASS|FAIL", ...);
// every planned step must pass, and a failed one is reported with its
// output. Timings (boot, mount, each step) are printed for every run.
//
// Processes: nfs41d and qemu are children of this process, stopped by their
// pid (SIGTERM, then SIGKILL) when the test ends however it ends, and they
// get SIGKILL from the kernel if this process dies first (PR_SET_PDEATHSIG).
// Every wait is bounded: the guest by E2E_TIMEOUT seconds (default 1500),
// each step inside it by E2E_STEP_TIMEOUT (default 300).
//
// Environment knobs: E2E_STEPS=a,b (run only these steps), E2E_TIMEOUT,
// E2E_STEP_TIMEOUT, E2E_QUIET=1 (do not echo the console as it arrives).

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <string>

#include "libnamespace/include/namespace/namespace.h"
#include "tests/e2e/e2e_driver.h"
#include "tests/test_util.h"

namespace ns::testing {
namespace {

using namespace e2e;  // NOLINT: the driver's small vocabulary

class E2eTest : public ::testing::TestWithParam<std::string> {};

TEST_P(E2eTest, ShellSessionOverNfs41) {
  const std::string dialect = GetParam();
  const auto t_start = Clock::now();
  const std::string scratch = ScratchDir();
  ASSERT_FALSE(scratch.empty());
  const std::string tag = scratch + "/" + dialect;

  // 1. The guest's kernel and initramfs (downloaded once per build tree).
  Ran assets = PrepareGuestAssets(tag + "-assets.log");
  ASSERT_EQ(assets.status, 0) << "guest_assets.sh failed:\n" << assets.output;
  const auto t_assets = Clock::now();

  // 2. A fresh namespace, created through the library (nfs41d opens only
  // existing ones when given --db).
  const std::string uri = FreshUri(dialect);
  ASSERT_FALSE(uri.empty());
  {
    auto created = Namespace::Open(uri, TestOptions());
    ASSERT_TRUE(created.ok()) << "create " << uri << ": "
                              << created.status().ToString();
    // The bigdir step lists /bigdir: 10,000 files "f<N>", size = length of
    // the name, odd N owned by 1000:1000. Made here because creating them
    // through the emulated client costs ~30 ms each.
    Namespace& ns = **created;
    const Credentials root = Credentials::Root();
    auto dir = ns.Mkdir(root, ns.Root(), "bigdir", 0755);
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    for (int i = 0; i < 10000; ++i) {
      const std::string name = "f" + std::to_string(i);
      auto f = ns.Create(root, dir->ino, name, 0644);
      ASSERT_TRUE(f.ok()) << name << ": " << f.status().ToString();
      SetAttrRequest req;
      req.size = name.size();
      if (i % 2 == 1) req.uid = req.gid = 1000;
      auto set = ns.SetAttr(root, f->ino, req);
      ASSERT_TRUE(set.ok()) << name << ": " << set.status().ToString();
    }
  }
  const auto t_namespace = Clock::now();

  // 3. nfs41d on a free port.
  Child server;
  const std::string server_log = tag + "-nfs41d.log";
  std::string error;
  const int port = StartOnFreePort(
      &server,
      [&](int p) -> std::vector<std::string> {
        return {NFS41D_BINARY, "--listen", "127.0.0.1:" + std::to_string(p),
                "--db", uri, "--data-dir", tag + "-data"};
      },
      server_log, &error);
  ASSERT_GT(port, 0) << "nfs41d: " << error;
  const auto t_server = Clock::now();

  // 4. Boot the guest and read its console until it powers off.
  GuestOptions g;
  g.label = dialect;
  g.port = port;
  GuestReport guest = RunGuest(g);

  // 5. nfs41d must have survived the session and must stop cleanly.
  int st = 0;
  const bool server_died = server.Exited(&st);
  const int server_status = server.Stop(std::chrono::seconds(10));
  const std::string server_tail = Tail(ReadFile(server_log), 3000);
  EXPECT_FALSE(server_died) << "nfs41d exited during the session ("
                            << DescribeStatus(st) << "):\n" << server_tail;
  EXPECT_TRUE(WIFEXITED(server_status) && WEXITSTATUS(server_status) == 0)
      << "nfs41d did not stop cleanly on SIGTERM ("
      << DescribeStatus(server_status) << "):\n" << server_tail;

  // 6. Timings, whatever happened.
  Timings t("e2e timings (" + dialect + ", nfs41d on 127.0.0.1:" +
            std::to_string(port) + ")");
  t.Row("guest assets", Seconds(t_assets - t_start),
        "guest_assets.sh (cached after the first run)");
  t.Row("namespace", Seconds(t_namespace - t_assets),
        dialect == "postgresql" ? "throwaway cluster, schema, /bigdir"
                                : "schema, /bigdir (10,000 files)");
  t.Row("nfs41d start", Seconds(t_server - t_namespace));
  t.Guest(guest);
  t.Row("test total", Seconds(guest.end - t_start));
  t.PrintAndSave(dialect);

  // 7. The verdict.
  ExpectGuestPassed(guest, server_tail);
}

INSTANTIATE_TEST_SUITE_P(Backends, E2eTest, ::testing::ValuesIn(Dialects()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace ns::testing
