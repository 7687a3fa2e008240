// End-to-end pNFS: the stock Linux NFSv4.1 client (Debian 12 kernel under
// qemu, its files layout driver nfs_layout_nfsv41_files) against nfs41d as
// the metadata server and two real `dataserver` processes (ctest e2e_pnfs,
// SQLite only: the database plays no part in what is tested here).
//
// The data servers listen on free 127.0.0.1 ports and advertise
// 10.0.2.2:PORT (`--advertise`, docs/pnfs.md): the guest reaches the host's
// loopback only through that address, so the layout the client follows
// must carry the advertised address, not the listening one.
//
// The guest's steps (session.sh, pnfs_*): the mount's layout driver is
// LAYOUT_NFSV4_1_FILES; a 64 MiB file written with LAYOUTGET and
// GETDEVICEINFO counted and no WRITE to the MDS; the host checks that the
// bytes sit in the data servers' --data-dir and not in the MDS's data
// store; small files (one FILE_SYNC4 WRITE each) and the big one's md5
// after a remount, read with no READ to the MDS; a LAYOUTGET of the
// client's own (an RW layout while it holds a READ one); then the
// fallback (see KillDataServer): the read completes through the MDS, and
// a new file is written through it onto the data servers. After the
// session the files are gone, and so must their stripe files be (the
// removal queue, carried by the heartbeats).
//
// Host actions the guest asks for ("E2E HOST <request>", answered on the
// console): `disks` and `mds-store` (where the bytes are), `mds-ops`
// (nfs41d's operation counts) and `kill-ds`.

#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "tests/pg_harness.h"  // FreeLocalPort
#include "tests/e2e/e2e_driver.h"
#include "tests/test_util.h"

namespace ns::testing {
namespace {

using namespace e2e;  // NOLINT: the driver's small vocabulary

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kFileBytes = 64 * kMiB;  // session.sh's PNFS_MIB
constexpr int kDataServers = 2;

// Bytes of data (not holes) in the regular files under `dir`: stripe files
// are sparse, and st_blocks would count what a file system preallocates.
uint64_t DataBytes(const std::string& dir) {
  namespace fs = std::filesystem;
  uint64_t sum = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    // SEEK_DATA/SEEK_HOLE walk: bounded by the file's extents.
    off_t pos = 0;
    for (;;) {
      const off_t data = ::lseek(fd, pos, SEEK_DATA);
      if (data < 0) break;  // ENXIO: no data after pos
      const off_t hole = ::lseek(fd, data, SEEK_HOLE);
      if (hole <= data) break;
      sum += static_cast<uint64_t>(hole - data);
      pos = hole;
    }
    ::close(fd);
  }
  return sum;
}

// Whether nfs41d's log says "... registered (..., listen `listen`)".
bool Registered(const std::string& log, const std::string& listen) {
  return ReadFile(log).find("listen " + listen + ")") != std::string::npos;
}

class PnfsE2e : public ::testing::Test {
 protected:
  struct Ds {
    Child proc;
    int port = 0;            // where it listens
    std::string advertise;   // what clients are told
    std::string dir, log;
    int starts = 0;
  };

  // Starts data server `i` on a free port; `advertise` empty: 10.0.2.2 and
  // the port it listens on. Waits (bounded) until nfs41d logged its
  // registration from that port.
  std::string StartDs(int i, const std::string& advertise) {
    Ds& d = ds_[i];
    d.dir = tag_ + "-ds" + std::to_string(i);
    d.log = d.dir + "-" + std::to_string(++d.starts) + ".log";
    std::string error;
    d.port = StartOnFreePort(
        &d.proc,
        [&](int p) -> std::vector<std::string> {
          d.advertise =
              advertise.empty() ? "10.0.2.2:" + std::to_string(p) : advertise;
          return {DATASERVER_BINARY, "--listen",
                  "127.0.0.1:" + std::to_string(p), "--advertise", d.advertise,
                  "--mds", "127.0.0.1:" + std::to_string(mds_port_),
                  "--data-dir", d.dir, "--key-file", key_};
        },
        d.log, &error);
    if (d.port < 0) return "dataserver " + std::to_string(i) + ": " + error;
    const std::string listen = "127.0.0.1:" + std::to_string(d.port);
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (!Registered(mds_log_, listen)) {
      int st = 0;
      if (d.proc.Exited(&st)) {
        return "dataserver " + std::to_string(i) + " exited (" +
               DescribeStatus(st) + "):\n" + Tail(ReadFile(d.log), 2000);
      }
      if (Clock::now() > deadline) {
        return "dataserver " + std::to_string(i) +
               " did not register within 30 s:\n" +
               Tail(ReadFile(d.log), 2000);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return "";
  }

  // `disks`: the 64 MiB the guest wrote are in the data servers' stripe
  // files (sparse, at logical offsets), split evenly between both (stripe
  // count 0 = every data server), and the MDS's own data store holds none
  // of them.
  std::string CheckDisks() {
    std::string report;
    uint64_t total = 0;
    bool ok = true;
    for (int i = 0; i < kDataServers; ++i) {
      const uint64_t b = DataBytes(ds_[i].dir);
      total += b;
      report += " ds" + std::to_string(i) + "=" + std::to_string(b);
      // Half of the 1 MiB stripe units each, plus ds.uuid.
      ok = ok && b >= kFileBytes / kDataServers &&
           b <= kFileBytes / kDataServers + 4096;
    }
    const std::string mds = MdsStore();
    report += " " + mds.substr(mds.find(' ') + 1);
    ok = ok && total >= kFileBytes && mds.rfind("ok", 0) == 0;
    disks_checked_ = ok;
    return (ok ? "ok" : "fail") + report;
  }

  // `mds-store`: nfs41d's own data store holds no file's bytes (under
  // 1 MiB: its keys and nothing else).
  std::string MdsStore() {
    const uint64_t mds = DataBytes(tag_ + "-data");
    return (mds < kMiB ? "ok" : "fail") + std::string(" mds=") +
           std::to_string(mds);
  }

  // `kill-ds`: the fallback. The guest's reader has read the first part of
  // the file through the layout and waits. Data server 0 gets SIGKILL,
  // mid-read, and comes back at once on the same --data-dir but another
  // listening port, while still advertising the address where nothing
  // listens now. So the client cannot reach it (connection refused) and
  // the MDS can, at the address the data server registered: the case
  // I/O through the MDS exists for (the MDS serves READ and WRITE of every
  // file, layout or not; the Linux files layout driver, on a connection
  // error, marks the device unavailable, returns the layout and resends
  // the I/O to the MDS: filelayout_async_handle_error). Left dead,
  // the data server's stripe units could be read by nobody, and restarted
  // where the client can reach it, the client would just reconnect, so
  // neither would show the fallback.
  std::string KillDataServer() {
    Ds& d = ds_[0];
    const int st = d.proc.KillAndWait();
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
      return "fail data server 0 was not running (" + DescribeStatus(st) + ")";
    }
    const std::string old_advertise = d.advertise;
    if (std::string e = StartDs(0, old_advertise); !e.empty()) {
      ADD_FAILURE() << e;
      return "fail restart";
    }
    killed_ = true;
    return "ok data server 0 killed, back on 127.0.0.1:" +
           std::to_string(d.port) + ", advertising " + old_advertise;
  }

  // `mds-ops`: nfs41d's own count of the operations that tell which server
  // moved the bytes, from its /metrics ("ok READ=n WRITE=n ...").
  std::string MdsOps() {
    const std::string text = HttpGet(metrics_port_, "/metrics");
    if (text.empty()) return "fail no /metrics from nfs41d";
    std::string out = "ok";
    for (const char* op : {"READ", "WRITE", "COMMIT", "LAYOUTGET",
                           "GETDEVICEINFO", "LAYOUTCOMMIT", "LAYOUTRETURN"}) {
      const std::string key = std::string("nfs41d_ops_total{op=\"") + op + "\"} ";
      const size_t at = text.find(key);
      const std::string n =
          at == std::string::npos
              ? "0"  // never counted: the metric is left out
              : text.substr(at + key.size(),
                            text.find('\n', at) - at - key.size());
      out += std::string(" ") + op + "=" + n;
    }
    return out;
  }

  std::string tag_, key_, mds_log_;
  int mds_port_ = 0;
  int metrics_port_ = 0;
  Ds ds_[kDataServers];
  bool disks_checked_ = false;
  bool killed_ = false;
};

TEST_F(PnfsE2e, LinuxFilesLayoutClient) {
  const auto t_start = Clock::now();
  const std::string scratch = ScratchDir();
  ASSERT_FALSE(scratch.empty());
  tag_ = scratch + "/pnfs";
  key_ = tag_ + "-pnfs.key";
  mds_log_ = tag_ + "-nfs41d.log";

  Ran assets = PrepareGuestAssets(tag_ + "-assets.log");
  ASSERT_EQ(assets.status, 0) << "guest_assets.sh failed:\n" << assets.output;
  const auto t_assets = Clock::now();

  const std::string uri = FreshUri("sqlite");
  ASSERT_FALSE(uri.empty());
  {
    auto created = Namespace::Open(uri, TestOptions());
    ASSERT_TRUE(created.ok()) << created.status().ToString();
  }

  // nfs41d creates the pNFS key; the data servers read it.
  Child mds;
  std::string error;
  mds_port_ = StartOnFreePort(
      &mds,
      [&](int p) -> std::vector<std::string> {
        metrics_port_ = FreeLocalPort();
        return {NFS41D_BINARY, "--listen", "127.0.0.1:" + std::to_string(p),
                "--db", uri, "--data-dir", tag_ + "-data", "--pnfs-key",
                key_, "--metrics",
                "127.0.0.1:" + std::to_string(metrics_port_)};
      },
      mds_log_, &error);
  ASSERT_GT(mds_port_, 0) << "nfs41d: " << error;
  for (int i = 0; i < kDataServers; ++i) {
    std::string e = StartDs(i, "");
    ASSERT_TRUE(e.empty()) << e << "\nnfs41d log:\n"
                           << Tail(ReadFile(mds_log_), 2000);
  }
  const auto t_servers = Clock::now();

  GuestOptions g;
  g.label = "pnfs";
  g.port = mds_port_;
  g.steps = "pnfs_layout,pnfs_write,pnfs_remount,pnfs_fallback";
  g.on_host_request = [this](const std::string& request) -> std::string {
    if (request == "disks") return CheckDisks();
    if (request == "mds-ops") return MdsOps();
    if (request == "mds-store") return MdsStore();
    if (request == "kill-ds") return KillDataServer();
    return "fail unknown request '" + request + "'";
  };
  GuestReport guest = RunGuest(g);

  // The session removed the file: the MDS queues the removal of its stripe
  // files and hands it to each data server with a heartbeat (every 5 s).
  bool stripes_removed = false;
  const auto removal_deadline = Clock::now() + std::chrono::seconds(30);
  while (guest.done && Clock::now() < removal_deadline) {
    if (DataBytes(ds_[0].dir) + DataBytes(ds_[1].dir) < kMiB) {
      stripes_removed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  const auto t_removed = Clock::now();

  // Every server survived the session and stops cleanly.
  const std::string mds_tail = Tail(ReadFile(mds_log_), 4000);
  int st = 0;
  EXPECT_FALSE(mds.Exited(&st)) << "nfs41d exited during the session ("
                                << DescribeStatus(st) << "):\n" << mds_tail;
  for (int i = 0; i < kDataServers; ++i) {
    const std::string tail = Tail(ReadFile(ds_[i].log), 2000);
    EXPECT_FALSE(ds_[i].proc.Exited(&st))
        << "dataserver " << i << " exited (" << DescribeStatus(st) << "):\n"
        << tail;
    st = ds_[i].proc.Stop(std::chrono::seconds(10));
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
        << "dataserver " << i << " did not stop cleanly ("
        << DescribeStatus(st) << "):\n" << tail;
  }
  st = mds.Stop(std::chrono::seconds(10));
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
      << "nfs41d did not stop cleanly (" << DescribeStatus(st) << "):\n"
      << mds_tail;

  Timings t("e2e timings (pnfs, nfs41d on 127.0.0.1:" +
            std::to_string(mds_port_) + ", 2 data servers)");
  t.Row("guest assets", Seconds(t_assets - t_start),
        "guest_assets.sh (cached after the first run)");
  t.Row("servers", Seconds(t_servers - t_assets),
        "namespace, nfs41d, data servers registered");
  t.Guest(guest);
  t.Row("stripes removed", Seconds(t_removed - guest.end),
        stripes_removed ? "removal queue done" : "NOT DONE");
  t.Row("test total", Seconds(t_removed - t_start));
  t.PrintAndSave("pnfs");

  // What the servers complained about (log lines at warning or error
  // level), for whoever reads this run: a kill and a fallback leave some.
  for (const std::string& log : {mds_log_, ds_[0].log, ds_[1].log}) {
    std::istringstream in(ReadFile(log));
    for (std::string line; std::getline(in, line);) {
      if (line.find("Z W ") != std::string::npos ||
          line.find("Z E ") != std::string::npos) {
        std::printf("%s: %s\n", log.substr(log.rfind('/') + 1).c_str(),
                    line.c_str());
      }
    }
  }

  ExpectGuestPassed(guest, mds_tail);
  EXPECT_TRUE(disks_checked_) << "the bytes were not where they belong (see "
                                 "the pnfs_write step's output)";
  EXPECT_TRUE(killed_) << "the fallback step never asked to kill a data server";
  EXPECT_TRUE(!guest.done || stripes_removed)
      << "stripe files left after the file was removed: ds0="
      << DataBytes(ds_[0].dir) << " ds1=" << DataBytes(ds_[1].dir);
}

}  // namespace
}  // namespace ns::testing
