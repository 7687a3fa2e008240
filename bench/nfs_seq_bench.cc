// nfs-seq-bench: server time per NULL COMPOUND (SEQUENCE alone) and per
// GETATTR of a cached inode (issue 4 item 12), for docs/performance.md.
//
// Method: starts the nfs41d binary as a child process on a free loopback
// port with a fresh data directory (embedded SQLite), sends N COMPOUNDs of
// each kind one after another from one client, and divides the CPU time
// the server process used meanwhile (utime + stime from /proc/PID/stat:
// every server thread -- event loop, workers, background flusher) by N.
// That is all the server spends per request: RPC decode, COMPOUND loop,
// reply encode and the socket system calls. Wall time per call (the
// round trip as the client sees it) is printed next to it, and the time
// inside the op handlers themselves, from the server's own Prometheus
// histogram sums (nfs41d_op_duration_seconds_sum / _count, --metrics):
// the difference is the RPC layer, the thread hand-off and the kernel.
//
// --floor also measures, in the same minute, what a bare echo server costs
// per request on this machine: a child process that does what nfs41d's
// event loop does for one inline call and nothing else (epoll_wait, read,
// sendmsg of the same bytes back), driven the same way (one connection,
// one request at a time, TCP_NODELAY). Its CPU per request is the floor
// set by the kernel's loopback TCP, epoll and wake-ups: what nfs41d
// spends above it is its own work.
//
// SEQUENCE alone is measured twice: through the in-tree client, and from a
// one-thread blocking client on its own connection (RawSequenceClient),
// driven exactly like the echo server of --floor, so that the difference
// to the floor is nfs41d's alone (see RawSequenceClient for why the
// in-tree client costs the server more kernel time).
//
// --event-loop epoll|io_uring sets nfs41d's event_loop (rpc/event_loop.h)
// for a comparison of the two backends on one binary.
//
// --no-inline starts nfs41d with inline_compounds = false (every COMPOUND
// on a worker, as before the event-loop fast path), for a before/after
// comparison on one binary in the same minute.
//
// Not a test: the figures depend on the machine.

#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <map>
#include <utility>
#include <optional>
#include <vector>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "nfs41client/client.h"
#include "rpc/net.h"

namespace {

using nfs41client::Bits;
using nfs41client::Client;
using nfs41client::Compound;

// utime and stime of `pid` in seconds.
struct Cpu {
  double user = 0, sys = 0;
};
Cpu CpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(f, line);
  // Fields after the command name, which is in parentheses and may hold
  // spaces: state is field 3, utime 14, stime 15.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return {-1, -1};
  std::istringstream in(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  const double tck = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {static_cast<double>(utime) / tck, static_cast<double>(stime) / tck};
}

// Time on a CPU of every thread of `pid`, in nanoseconds: the scheduler's
// own account (/proc/PID/task/TID/schedstat, first field), exact where
// utime and stime are sampled at each clock tick and split between user and
// kernel by what the tick happened to interrupt. Threads that exited in
// between are not counted (nfs41d's stay up). -1 if unreadable.
double CpuNs(pid_t pid) {
  const std::filesystem::path tasks =
      "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  double total = 0;
  for (const auto& t : std::filesystem::directory_iterator(tasks, ec)) {
    std::ifstream f(t.path() / "schedstat");
    unsigned long long ns = 0;
    if (f >> ns) total += static_cast<double>(ns);
  }
  return ec ? -1 : total;
}

// GET /metrics from 127.0.0.1:`port`; "" on failure.
std::string FetchMetrics(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req =
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, n);
    }
  }
  close(fd);
  return out;
}

// Seconds spent in and calls of each op, from the duration histogram.
struct OpTimes {
  std::map<std::string, double> sum;
  std::map<std::string, double> count;
};
OpTimes ParseOpTimes(const std::string& text) {
  OpTimes t;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    for (const std::string kind : {"sum", "count"}) {
      const std::string prefix =
          "nfs41d_op_duration_seconds_" + kind + "{op=\"";
      if (line.rfind(prefix, 0) != 0) continue;
      const size_t q = line.find('"', prefix.size());
      const size_t sp = line.rfind(' ');
      if (q == std::string::npos || sp == std::string::npos) continue;
      const std::string op = line.substr(prefix.size(), q - prefix.size());
      (kind == "sum" ? t.sum : t.count)[op] = std::stod(line.substr(sp + 1));
    }
  }
  return t;
}

// Microseconds per call of `op` between two snapshots.
double HandlerUs(const OpTimes& a, const OpTimes& b, const std::string& op) {
  const double n = b.count.count(op) ? b.count.at(op) - (a.count.count(op) ? a.count.at(op) : 0) : 0;
  const double s = b.sum.count(op) ? b.sum.at(op) - (a.sum.count(op) ? a.sum.at(op) : 0) : 0;
  return n > 0 ? s * 1e6 / n : 0;
}

struct Figure {
  double sched_us = 0;   // server CPU per call, from schedstat (exact)
  double server_us = 0;  // server CPU per call, from utime + stime (ticks)
  double user_us = 0;    // of which in user space (the rest: the kernel's
                         // TCP, epoll and scheduling, on loopback also part
                         // of the client's receive path)
  double wall_us = 0;    // client round trip per call
  OpTimes before, after;  // the server's op histograms around the run
};

template <typename F>
Figure Measure(pid_t server, uint16_t metrics_port, int calls, F&& call) {
  for (int i = 0; i < calls / 10; ++i) call();  // warm up (caches, pages)
  Figure f;
  f.before = ParseOpTimes(FetchMetrics(metrics_port));
  const Cpu cpu0 = CpuSeconds(server);
  const double ns0 = CpuNs(server);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) call();
  const auto t1 = std::chrono::steady_clock::now();
  const double ns1 = CpuNs(server);
  const Cpu cpu1 = CpuSeconds(server);
  f.after = ParseOpTimes(FetchMetrics(metrics_port));
  f.sched_us = (ns1 - ns0) / 1e3 / calls;
  f.server_us =
      (cpu1.user + cpu1.sys - cpu0.user - cpu0.sys) * 1e6 / calls;
  f.user_us = (cpu1.user - cpu0.user) * 1e6 / calls;
  f.wall_us =
      std::chrono::duration<double, std::micro>(t1 - t0).count() / calls;
  return f;
}

// The echo server of --floor, in a child: serves one connection accepted
// on `listen_fd`, then exits. Requests are echoed back whole as they come.
[[noreturn]] void EchoServe(int listen_fd) {
  const int fd = accept(listen_fd, nullptr, nullptr);
  if (fd < 0) _exit(1);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  char buf[4096];
  for (;;) {
    epoll_event out[4];
    if (epoll_wait(ep, out, 4, -1) < 0) continue;
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) _exit(0);
    iovec iov{buf, static_cast<size_t>(n)};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) != n) _exit(1);
  }
}

// Server CPU and round trip per request of the echo server for `calls`
// requests of `bytes` bytes; nullopt if it could not be set up.
std::optional<Figure> EchoFloor(int calls, size_t bytes) {
  const int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      listen(lfd, 1) != 0 ||
      getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return std::nullopt;
  }
  const pid_t child = fork();
  if (child == 0) EchoServe(lfd);
  close(lfd);
  if (child < 0) return std::nullopt;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::optional<Figure> result;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::vector<char> req(bytes, 'x'), rep(bytes);
    bool ok = true;
    auto call = [&] {
      if (write(fd, req.data(), req.size()) !=
          static_cast<ssize_t>(req.size())) {
        ok = false;
        return;
      }
      for (size_t got = 0; got < rep.size();) {
        const ssize_t n = read(fd, rep.data() + got, rep.size() - got);
        if (n <= 0) {
          ok = false;
          return;
        }
        got += static_cast<size_t>(n);
      }
    };
    for (int i = 0; i < calls / 10 && ok; ++i) call();
    Figure f;
    const Cpu cpu0 = CpuSeconds(child);
    const double ns0 = CpuNs(child);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < calls && ok; ++i) call();
    const auto t1 = std::chrono::steady_clock::now();
    const double ns1 = CpuNs(child);
    const Cpu cpu1 = CpuSeconds(child);
    f.sched_us = (ns1 - ns0) / 1e3 / calls;
    f.server_us = (cpu1.user + cpu1.sys - cpu0.user - cpu0.sys) * 1e6 / calls;
    f.user_us = (cpu1.user - cpu0.user) * 1e6 / calls;
    f.wall_us =
        std::chrono::duration<double, std::micro>(t1 - t0).count() / calls;
    if (ok) result = f;
  }
  close(fd);  // the child exits at end of stream
  kill(child, SIGTERM);
  waitpid(child, nullptr, 0);
  return result;
}

// SEQUENCE alone driven the way --floor drives the echo server: one
// thread on its own connection writes the 124-byte request and blocks in
// read() for the reply, no RPC library in between. The in-tree client
// (Client::Call) hands each reply from its event-loop thread to the caller
// through a condition variable, so three threads ping-pong over the two
// CPUs; the server's sendmsg then pays for waking a thread on the other,
// idle CPU (an IPI: a hypercall on this PVM guest), which the echo
// server's one blocking client does not make it pay. Same client, same
// kernel path: the difference to the floor is the server's own.
class RawSequenceClient {
 public:
  // Uses `slot` of session `sid` from sequence id `seqid` + 1 on a new
  // connection to 127.0.0.1:`port`; the server binds the connection to
  // the session at its first SEQUENCE (SP4_NONE, RFC 8881 §2.10.3.1).
  static std::optional<RawSequenceClient> Connect(uint16_t port,
                                                  const sessionid4& sid,
                                                  uint32_t slot,
                                                  uint32_t seqid) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return std::nullopt;
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(fd);
      return std::nullopt;
    }
    return RawSequenceClient(fd, sid, slot, seqid);
  }
  RawSequenceClient(RawSequenceClient&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), req_(o.req_), seqid_(o.seqid_) {}
  RawSequenceClient(const RawSequenceClient&) = delete;
  ~RawSequenceClient() {
    if (fd_ >= 0) close(fd_);
  }

  // One SEQUENCE; false unless the reply is an accepted RPC reply whose
  // COMPOUND status is NFS4_OK.
  bool Call() {
    const uint32_t xid = ++xid_;
    Put(0, xid);
    Put(kSeqidAt, ++seqid_);
    if (write(fd_, req_.data(), req_.size()) !=
        static_cast<ssize_t>(req_.size())) {
      return false;
    }
    size_t got = 0, want = 4;
    while (got < want) {
      const ssize_t n = read(fd_, rep_.data() + got, rep_.size() - got);
      if (n <= 0) return false;
      got += static_cast<size_t>(n);
      if (want == 4 && got >= 4) {
        want = 4 + (Get(rep_.data()) & 0x7fffffffu);
        if (want > rep_.size()) return false;
      }
    }
    // xid, REPLY, MSG_ACCEPTED, verifier (flavor, length, body), SUCCESS,
    // then COMPOUND4res's status (RFC 5531 §9, RFC 8881 §16.2.2).
    const uint8_t* r = rep_.data() + 4;
    const size_t len = want - 4;
    if (len < 20 || Get(r) != xid || Get(r + 4) != 1 || Get(r + 8) != 0) {
      return false;
    }
    const size_t body = 20 + ((Get(r + 16) + 3) & ~3u);
    return len >= body + 8 && Get(r + body) == 0 && Get(r + body + 4) == 0;
  }

 private:
  // Offsets in the request after its record mark.
  static constexpr size_t kSessionAt = 72 + 12 + 4;  // RPC header, COMPOUND header, opnum
  static constexpr size_t kSeqidAt = kSessionAt + NFS4_SESSIONID_SIZE;

  RawSequenceClient(int fd, const sessionid4& sid, uint32_t slot,
                    uint32_t seqid)
      : fd_(fd), seqid_(seqid) {
    Put(-4, 0x80000000u | 120);  // record mark: one last fragment
    // xid, CALL, RPC version 2, NFS4_PROGRAM, version 4, COMPOUND.
    const uint32_t head[] = {0, 0, 2, NFS4_PROGRAM, NFS_V4, NFSPROC4_COMPOUND};
    for (size_t i = 0; i < 6; ++i) Put(4 * i, head[i]);
    // AUTH_SYS: stamp, machine name "nfs41client", uid 0, gid 0, no groups
    // (what Client sends); verifier AUTH_NONE.
    Put(24, AUTH_SYS);
    Put(28, 32);
    Put(32, 0);
    Put(36, 11);
    std::memcpy(req_.data() + 4 + 40, "nfs41client", 11);
    Put(52, 0);
    Put(56, 0);
    Put(60, 0);
    Put(64, AUTH_NONE);
    Put(68, 0);
    // COMPOUND: empty tag, minor version 1, one op: SEQUENCE.
    Put(72, 0);
    Put(76, 1);
    Put(80, 1);
    Put(84, OP_SEQUENCE);
    std::memcpy(req_.data() + 4 + kSessionAt, sid, NFS4_SESSIONID_SIZE);
    Put(kSeqidAt + 4, slot);
    Put(kSeqidAt + 8, slot);  // highest slot id in use
    Put(kSeqidAt + 12, 0);    // sa_cachethis
  }
  static uint32_t Get(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
           (uint32_t{p[2]} << 8) | p[3];
  }
  // Big-endian `v` at `at` bytes after the record mark.
  void Put(ptrdiff_t at, uint32_t v) {
    uint8_t* p = req_.data() + 4 + at;
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
  }

  int fd_;
  std::array<uint8_t, 124> req_{};
  std::array<uint8_t, 512> rep_{};
  uint32_t seqid_;
  uint32_t xid_ = 0x5e9b0000;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nfs-seq-bench: nfs41d server time per SEQUENCE and cached GETATTR"};
  std::string binary;
  int calls = 100000;
  bool no_inline = false;
  std::string only;
  bool floor = false;
  app.add_option("--nfs41d", binary, "the nfs41d binary")->required();
  app.add_flag("--no-inline", no_inline,
               "serve every COMPOUND on a worker (inline_compounds = false)");
  app.add_option("--calls", calls, "COMPOUNDs of each kind")
      ->check(CLI::Range(100, 100000000));
  app.add_option("--only", only,
                 "run one kind: seq (SEQUENCE alone) or getattr (for a "
                 "profiler attached to the server)")
      ->check(CLI::IsMember({"seq", "getattr"}));
  std::string event_loop;
  app.add_option("--event-loop", event_loop,
                 "nfs41d's event_loop setting (auto, epoll, io_uring); "
                 "unset: the binary's default")
      ->check(CLI::IsMember({"auto", "epoll", "io_uring"}));
  app.add_flag("--floor", floor,
               "also measure a bare epoll echo server (the machine's floor)");
  CLI11_PARSE(app, argc, argv);

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      ("nfs-seq-bench-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string config = (dir / "nfs41d.toml").string();
  {
    std::ofstream cf(config);
    cf << "inline_compounds = " << (no_inline ? "false" : "true") << "\n";
    if (!event_loop.empty()) cf << "event_loop = \"" << event_loop << "\"\n";
  }
  auto free_port = [] {
    rpc::Result<uint16_t> p = rpc::FreeLoopbackPort();
    if (!p.ok()) {
      std::fprintf(stderr, "nfs-seq-bench: no free port on 127.0.0.1: %s\n",
                   p.status().ToString().c_str());
      std::exit(1);
    }
    return *p;
  };
  const uint16_t port = free_port();
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  uint16_t metrics_port = free_port();
  while (metrics_port == port) metrics_port = free_port();
  const std::string metrics = "127.0.0.1:" + std::to_string(metrics_port);
  const pid_t pid = fork();
  if (pid == 0) {
    execl(binary.c_str(), binary.c_str(), "--listen", listen.c_str(),
          "--data-dir", dir.c_str(), "--log-level", "warning", "--metrics",
          metrics.c_str(), "--config", config.c_str(),
          static_cast<char*>(nullptr));
    std::perror("exec nfs41d");
    _exit(127);
  }
  auto stop = [&](int rc) {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    std::filesystem::remove_all(dir);
    return rc;
  };
  std::unique_ptr<Client> c;
  for (int i = 0; i < 400 && !c; ++i) {
    auto r = Client::Connect("127.0.0.1", port);
    if (r.ok()) {
      c = std::move(r).value();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (!c || c->EstablishSession() != NFS4_OK) {
    std::fprintf(stderr, "nfs-seq-bench: nfs41d did not come up on %s\n",
                 listen.c_str());
    return stop(1);
  }
  auto root = c->RootFh();
  if (!root.ok()) return stop(1);

  bool failed = false;
  const Compound seq;  // SEQUENCE is added in front: SEQUENCE alone
  Figure s, g, raw;
  if (only != "getattr") {
    s = Measure(pid, metrics_port, calls, [&] {
      auto r = c->Call(seq);
      failed = failed || !r.ok() || r->status() != NFS4_OK;
    });
    // The session's last slot, which Client (lowest free slot first, one
    // call at a time here) never uses.
    const uint32_t slot = c->slot_count() - 1;
    std::optional<RawSequenceClient> rc = RawSequenceClient::Connect(
        port, c->session_id(), slot, c->slot_seqid(slot));
    if (!rc) {
      std::fprintf(stderr, "nfs-seq-bench: cannot connect to %s\n",
                   listen.c_str());
      return stop(1);
    }
    raw = Measure(pid, metrics_port, calls, [&] {
      failed = failed || !rc->Call();
    });
  }
  // What a Linux client asks for when it revalidates an inode.
  Compound ga;
  ga.PutFh(root.value).GetAttr(Bits({
      FATTR4_TYPE, FATTR4_CHANGE, FATTR4_SIZE, FATTR4_FSID, FATTR4_FILEID,
      FATTR4_MODE, FATTR4_NUMLINKS, FATTR4_OWNER, FATTR4_OWNER_GROUP,
      FATTR4_SPACE_USED, FATTR4_TIME_ACCESS, FATTR4_TIME_METADATA,
      FATTR4_TIME_MODIFY, FATTR4_MOUNTED_ON_FILEID}));
  if (only != "seq") {
    g = Measure(pid, metrics_port, calls, [&] {
      auto r = c->Call(ga);
      failed = failed || !r.ok() || r->status() != NFS4_OK;
    });
  }
  if (failed) {
    std::fprintf(stderr, "nfs-seq-bench: a COMPOUND failed\n");
    return stop(1);
  }
  std::printf("inline COMPOUNDs          %s\n", no_inline ? "off" : "on");
  std::printf("nfs41d event loop         %s\n",
              event_loop.empty() ? "(binary's default)" : event_loop.c_str());
  std::printf("calls per kind            %d\n", calls);
  std::printf("SEQUENCE alone            %.2f us server CPU (%.2f user), "
              "%.2f us round trip, %.2f us CPU by schedstat\n",
              s.server_us, s.user_us, s.wall_us, s.sched_us);
  std::printf("SEQUENCE alone, 1-thread  %.2f us server CPU (%.2f user), "
              "%.2f us round trip, %.2f us CPU by schedstat\n",
              raw.server_us, raw.user_us, raw.wall_us, raw.sched_us);
  std::printf("SEQUENCE+PUTFH+GETATTR    %.2f us server CPU (%.2f user), "
              "%.2f us round trip, %.2f us CPU by schedstat\n",
              g.server_us, g.user_us, g.wall_us, g.sched_us);
  std::printf("inside the op handlers     SEQUENCE %.2f us; PUTFH %.2f us, "
              "GETATTR %.2f us (second run)\n",
              HandlerUs(s.before, s.after, "SEQUENCE"),
              HandlerUs(g.before, g.after, "PUTFH"),
              HandlerUs(g.before, g.after, "GETATTR"));
  if (floor) {
    // The size of the SEQUENCE request record with its mark (RPC header
    // with AUTH_SYS "nfs41client" 72, COMPOUND header 12, SEQUENCE 36).
    std::optional<Figure> e = EchoFloor(calls, 124);
    if (!e) {
      std::fprintf(stderr, "nfs-seq-bench: the echo server failed\n");
      return stop(1);
    }
    std::printf("echo server (floor)       %.2f us server CPU (%.2f user), "
                "%.2f us round trip, %.2f us CPU by schedstat\n",
                e->server_us, e->user_us, e->wall_us, e->sched_us);
  }
  if (only != "getattr") {
    std::printf("target: SEQUENCE under 20 us of server time: %s with the "
                "in-tree client, %s with the 1-thread client\n",
                s.sched_us < 20 ? "met" : "NOT met",
                raw.sched_us < 20 ? "met" : "NOT met");
  }
  return stop(0);
}
