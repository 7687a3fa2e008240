// pnfs-bench: sequential write then read of one big file over NFSv4.1 on
// the in-tree client's pNFS data path (nfs41client/pnfs_io.h): straight to
// the data servers when the server hands out a file layout, through the
// server itself when it does not (nfs41d alone, NFS-Ganesha). The same
// client code either way, so the figures compare the servers.
//
//   pnfs-bench --server 127.0.0.1:2049 [--size 1G] [--io-size 1M]
//              [--inflight 4] [--expect-ds N] [--drop-caches] [--label L]
//              [--cpu-pids PID,PID,...]
//
// write  OPEN (create) a new file in the export's root, LAYOUTGET, WRITEs
//        of --io-size UNSTABLE4 with --inflight per server outstanding,
//        COMMIT to every server written, LAYOUTCOMMIT, LAYOUTRETURN,
//        CLOSE: the clock stops when the bytes are durable.
// read   after `sync` and, with --drop-caches, `echo 3 >
//        /proc/sys/vm/drop_caches` (the servers' page cache; root only),
//        a new client and session, OPEN, LAYOUTGET (READ), READs likewise,
//        LAYOUTRETURN, CLOSE. The bytes are compared with what was
//        written (after the clock stops) and a checksum of each printed.
// Then the file is removed.
//
// The data: a 64 MiB random pattern, each io_size piece taken from it at
// an offset that depends on the piece's number, so misplaced pieces do not
// compare equal. Output: one line `label write_MBps=.. read_MBps=.. commit_s=..
// ds_bytes=.. mds_bytes=.. checksum=..` (MB = 10^6 bytes). Exit status 1
// on any error or a byte that differs. With --cpu-pids, a second line
// `label cpu write: self=U+S pid:comm=U+S ... all=U+S idle=I` and one for
// the read: CPU seconds (user+system) each process (this one, then the
// servers named) and the whole machine (/proc/stat; softirq counted as
// system) spent in that phase's clock: where the two cores go per GiB.

#include <malloc.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "nfs41client/client.h"
#include "nfs41client/pnfs_io.h"

namespace {

using nfs41client::Client;
using nfs41client::Compound;
using nfs41client::Fh;
using nfs41client::PnfsFile;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string server = "127.0.0.1:2049";
  uint64_t size = 1ull << 30;
  uint32_t io_size = 1u << 20;
  uint32_t inflight = 4;
  uint32_t expect_ds = 0;
  bool drop_caches = false;
  bool no_layout = false;
  std::string label = "run";
  std::vector<int> cpu_pids;
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "pnfs-bench: %s\n", what.c_str());
  std::exit(1);
}

std::string Name(nfsstat4 s) {
  return "nfsstat4 " + std::to_string(static_cast<int>(s));
}

// A fresh client and session on `server`, RECLAIM_COMPLETE sent (nothing
// to reclaim), with requests big enough for io_size READ/WRITE.
std::unique_ptr<Client> Connect(const Options& o) {
  std::string host = o.server;
  uint16_t port = 2049;
  if (size_t colon = host.rfind(':'); colon != std::string::npos) {
    port = static_cast<uint16_t>(std::stoi(host.substr(colon + 1)));
    host = host.substr(0, colon);
  }
  nfs41client::ClientOptions co = nfs41client::DataServerClientOptions();
  co.max_request_size = o.io_size + (64u << 10);
  co.max_response_size = o.io_size + (64u << 10);
  co.back_channel = true;  // the MDS recalls layouts on this connection
  co.owner = "pnfs-bench-" + std::to_string(getpid()) + "-" +
             std::to_string(Clock::now().time_since_epoch().count());
  auto c = Client::Connect(host, port, co);
  if (!c.ok()) Die("connect " + o.server + ": " + c.status().ToString());
  if (nfsstat4 s = (*c)->EstablishSession(); s != NFS4_OK) {
    Die("session: " + Name(s));
  }
  Compound rc;
  rc.ReclaimComplete();
  (void)(*c)->Call(rc);
  return std::move(c).value();
}

// OPEN of `name` in the root; a server in its grace period is waited out
// (up to two minutes).
Client::Opened OpenWait(Client& c, const Fh& root, const std::string& name,
                        uint32_t access, bool create) {
  for (int attempt = 0;; ++attempt) {
    auto r = c.OpenFile(root, name, access, 0, create);
    if (r.ok()) return r.value;
    if (r.status != NFS4ERR_GRACE || attempt >= 120) {
      Die("open " + name + ": " + Name(r.status) + " " + r.error);
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

nfs41client::PnfsOptions PnfsOpts(const Options& o) {
  nfs41client::PnfsOptions p;
  p.io_size = o.io_size;
  p.inflight_per_server = o.inflight;
  p.use_layout = !o.no_layout;
  return p;
}

// FNV-1a over 64-bit words: cheap, order-sensitive.
uint64_t Checksum(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 1099511628211ull;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

double MBps(uint64_t bytes, Clock::duration d) {
  return static_cast<double>(bytes) / 1e6 /
         std::chrono::duration<double>(d).count();
}

void DropCaches(bool drop) {
  ::sync();
  if (!drop) return;
  std::ofstream f("/proc/sys/vm/drop_caches");
  f << "3\n";
  f.flush();
  if (!f) Die("--drop-caches: cannot write /proc/sys/vm/drop_caches (root?)");
}

// CPU seconds, user and system.
struct Cpu {
  double user = 0, sys = 0;
};

// Process `pid`'s CPU time (/proc/PID/stat fields 14-15, proc(5)); its
// name into *comm. Zero when the process is gone.
Cpu ProcessCpu(int pid, std::string* comm) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return {};
  // comm is in parentheses and may hold spaces: parse after the last ')'.
  const size_t open = line.find('('), close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos) return {};
  if (comm) *comm = line.substr(open + 1, close - open - 1);
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long ut = 0, st = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) ut = std::stoull(field);
    if (i == 15) st = std::stoull(field);
  }
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {static_cast<double>(ut) / hz, static_cast<double>(st) / hz};
}

// The machine's CPU time (/proc/stat's "cpu" line): user+nice, system
// (+irq+softirq: the loopback TCP copies run there), idle (+iowait).
struct MachineCpu {
  double user = 0, sys = 0, idle = 0;
};
MachineCpu ReadMachineCpu() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  unsigned long long v[8] = {};
  f >> cpu;
  for (auto& x : v) f >> x;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {static_cast<double>(v[0] + v[1]) / hz,
          static_cast<double>(v[2] + v[5] + v[6]) / hz,
          static_cast<double>(v[3] + v[4]) / hz};
}

// CPU use of this process, the --cpu-pids and the machine over one phase.
class CpuProbe {
 public:
  explicit CpuProbe(const std::vector<int>& pids) : pids_(pids) {}
  void Start() {
    self_ = ProcessCpu(getpid(), nullptr);
    start_.clear();
    comm_.assign(pids_.size(), "?");
    for (size_t i = 0; i < pids_.size(); ++i) {
      start_.push_back(ProcessCpu(pids_[i], &comm_[i]));
    }
    machine_ = ReadMachineCpu();
  }
  // "self=U+S 123:nfs41d=U+S ... all=U+S idle=I" since Start.
  std::string Since() const {
    auto fmt = [](double u, double s) {
      char b[64];
      std::snprintf(b, sizeof b, "%.2f+%.2f", u, s);
      return std::string(b);
    };
    const Cpu me = ProcessCpu(getpid(), nullptr);
    std::string out = "self=" + fmt(me.user - self_.user, me.sys - self_.sys);
    for (size_t i = 0; i < pids_.size(); ++i) {
      const Cpu c = ProcessCpu(pids_[i], nullptr);
      out += " " + std::to_string(pids_[i]) + ":" + comm_[i] + "=" +
             fmt(c.user - start_[i].user, c.sys - start_[i].sys);
    }
    const MachineCpu m = ReadMachineCpu();
    out += " all=" + fmt(m.user - machine_.user, m.sys - machine_.sys);
    char b[32];
    std::snprintf(b, sizeof b, " idle=%.2f", m.idle - machine_.idle);
    return out + b;
  }

 private:
  std::vector<int> pids_;
  std::vector<std::string> comm_;
  std::vector<Cpu> start_;
  Cpu self_;
  MachineCpu machine_;
};

}  // namespace

int main(int argc, char** argv) {
  // Every READ/WRITE allocates and frees buffers of about 1 MiB (XDR
  // encoding, records, decoded READ data): keep them in the heap instead
  // of a fresh mmap, and its page faults, per request (as the dataserver
  // does).
  mallopt(M_MMAP_THRESHOLD, 8 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  Options o;
  CLI::App app("pnfs-bench: write and read one big file over NFSv4.1/pNFS");
  app.add_option("--server", o.server, "HOST:PORT of the NFSv4.1 server (MDS)");
  app.add_option("--size", o.size, "file size in bytes")->check(CLI::Range(1ull, 1ull << 40));
  app.add_option("--io-size", o.io_size, "bytes per READ/WRITE")
      ->check(CLI::Range(4096u, 1u << 20));
  app.add_option("--inflight", o.inflight, "requests in flight per server")
      ->check(CLI::Range(1u, 64u));
  app.add_option("--expect-ds", o.expect_ds,
                 "wait (up to 60 s) until layouts stripe over this many data "
                 "servers; 0: take what comes");
  app.add_flag("--drop-caches", o.drop_caches,
               "echo 3 > /proc/sys/vm/drop_caches before reading (root)");
  app.add_flag("--no-layout", o.no_layout, "never ask for a layout");
  app.add_option("--label", o.label, "first word of the result line");
  app.add_option("--cpu-pids", o.cpu_pids,
                 "server pids whose CPU seconds per phase are printed on a "
                 "second line")
      ->delimiter(',');
  CLI11_PARSE(app, argc, argv);

  // The pattern (not timed): 64 MiB random plus one piece of slack.
  const size_t kPattern = 64u << 20;
  std::vector<uint8_t> pattern(kPattern + o.io_size);
  std::mt19937_64 rng(20261123);
  for (size_t i = 0; i + 8 <= pattern.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(&pattern[i], &v, 8);
  }
  // Not zeroed first: every byte is written below.
  std::unique_ptr<uint8_t[]> data = std::make_unique_for_overwrite<uint8_t[]>(o.size);
  for (uint64_t off = 0; off < o.size; off += o.io_size) {
    const uint64_t piece = off / o.io_size;
    const size_t from = (piece * 1000003u * 8) % kPattern;
    std::memcpy(&data[off], &pattern[from],
                std::min<uint64_t>(o.io_size, o.size - off));
  }
  const uint64_t sum_written = Checksum(data.get(), o.size);
  std::unique_ptr<uint8_t[]> back = std::make_unique_for_overwrite<uint8_t[]>(o.size);
  std::memset(back.get(), 0xee, o.size);  // fault the pages in now

  const std::string name =
      "pnfs-bench-" + std::to_string(getpid()) + "-" + o.label;
  uint64_t ds_bytes = 0, mds_bytes = 0, fallbacks = 0;
  size_t stripe = 0;

  CpuProbe write_cpu(o.cpu_pids), read_cpu(o.cpu_pids);
  std::string write_cpu_text, read_cpu_text;
  // --- write
  double write_mbps = 0;
  double commit_s = 0;  // of the write's time: COMMIT and LAYOUTCOMMIT
  {
    std::unique_ptr<Client> c = Connect(o);
    auto root = c->RootFh();
    if (!root.ok()) Die("root: " + Name(root.status));
    Client::Opened f{};
    std::unique_ptr<PnfsFile> pf;
    // Data servers register after nfs41d starts: wait until layouts cover
    // as many as asked for (a file already written through the MDS never
    // gets one, so each try is a new file).
    for (int attempt = 0;; ++attempt) {
      f = OpenWait(*c, root.value, name, OPEN4_SHARE_ACCESS_BOTH, true);
      auto p = PnfsFile::Open(*c, f.fh, f.stateid, LAYOUTIOMODE4_RW, PnfsOpts(o));
      if (!p.ok()) Die("layout: " + Name(p.status) + " " + p.error);
      pf = std::move(p.value);
      stripe = pf->has_layout() ? pf->device().stripe_indices.size() : 0;
      if (stripe == o.expect_ds) break;
      if (attempt >= 300) {
        Die("layouts stripe over " + std::to_string(stripe) +
            " data servers, not --expect-ds " + std::to_string(o.expect_ds));
      }
      (void)pf->Return();
      pf.reset();
      (void)c->CloseFile(f.fh, f.stateid);
      (void)c->Remove(root.value, name);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    write_cpu.Start();
    const auto t0 = Clock::now();
    if (nfsstat4 s = pf->Write(0, {data.get(), o.size}); s != NFS4_OK) Die("write: " + Name(s));
    const auto tw = Clock::now();
    if (nfsstat4 s = pf->Commit(); s != NFS4_OK) Die("commit: " + Name(s));
    const auto t1 = Clock::now();
    write_cpu_text = write_cpu.Since();
    write_mbps = MBps(o.size, t1 - t0);
    commit_s = std::chrono::duration<double>(t1 - tw).count();
    ds_bytes += pf->stats().ds_bytes;
    mds_bytes += pf->stats().mds_bytes;
    fallbacks += pf->stats().fallbacks;
    (void)pf->Return();
    (void)c->CloseFile(f.fh, f.stateid);
    auto a = c->GetAttr(f.fh, nfs41client::Bits({FATTR4_SIZE}));
    if (!a.ok() || a.value.size != o.size) {
      Die("size after write: " + std::to_string(a.value.size));
    }
  }

  DropCaches(o.drop_caches);

  // --- read, on a new client and session
  double read_mbps = 0;
  uint64_t sum_read = 0;
  {
    std::unique_ptr<Client> c = Connect(o);
    auto root = c->RootFh();
    if (!root.ok()) Die("root: " + Name(root.status));
    Client::Opened f = OpenWait(*c, root.value, name, OPEN4_SHARE_ACCESS_READ, false);
    read_cpu.Start();
    const auto t0 = Clock::now();
    auto p = PnfsFile::Open(*c, f.fh, f.stateid, LAYOUTIOMODE4_READ, PnfsOpts(o));
    if (!p.ok()) Die("layout: " + Name(p.status) + " " + p.error);
    auto n = p.value->Read(0, {back.get(), o.size});
    const auto t1 = Clock::now();
    read_cpu_text = read_cpu.Since();
    if (!n.ok()) Die("read: " + Name(n.status));
    if (n.value != o.size) Die("read " + std::to_string(n.value) + " bytes");
    read_mbps = MBps(o.size, t1 - t0);
    ds_bytes += p.value->stats().ds_bytes;
    mds_bytes += p.value->stats().mds_bytes;
    fallbacks += p.value->stats().fallbacks;
    (void)p.value->Return();
    (void)c->CloseFile(f.fh, f.stateid);
    sum_read = Checksum(back.get(), o.size);
    if (std::memcmp(back.get(), data.get(), o.size) != 0 ||
        sum_read != sum_written) {
      Die("the bytes read back differ from those written");
    }
    (void)c->Remove(root.value, name);
  }

  std::printf(
      "%s write_MBps=%.1f read_MBps=%.1f commit_s=%.2f stripe_count=%zu "
      "ds_bytes=%llu mds_bytes=%llu fallbacks=%llu checksum=%016llx "
      "dropped_caches=%d\n",
      o.label.c_str(), write_mbps, read_mbps, commit_s, stripe,
      static_cast<unsigned long long>(ds_bytes),
      static_cast<unsigned long long>(mds_bytes),
      static_cast<unsigned long long>(fallbacks),
      static_cast<unsigned long long>(sum_read), o.drop_caches ? 1 : 0);
  if (!o.cpu_pids.empty()) {
    std::printf("%s cpu write: %s\n%s cpu read: %s\n", o.label.c_str(),
                write_cpu_text.c_str(), o.label.c_str(), read_cpu_text.c_str());
  }
  return 0;
}
