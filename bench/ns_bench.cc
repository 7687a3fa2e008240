// ns-bench: throughput and latency of the Namespace API on SQLite or
// PostgreSQL, one phase per operation, from N threads at once. It prints
// figures and never judges them: docs/performance.md says what each figure
// means, records the measured ones and compares them with the targets.
//
//   ns-bench --db URI [--threads N] [--ops N] [--layout shared|per-thread]
//            [--phases create,mkdir,lookup,getattr,rename,unlink,readdir]
//            [--phases metacost]   issue 3 §8: ACL and tag costs, run only
//                                  when named
//            [--dir-size N] [--json]
//   ns-bench --db sqlite:///path --raw    the raw SQLite ceiling for creates
//
// Phases run in the order above whatever order they are given in; lookup,
// getattr, rename and unlink work on the files that create made, so they
// bring create along. Every loop stops at its count or at --phase-seconds.

#include <dirent.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <latch>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include "bench/db_direct.h"
#include "libnamespace/include/namespace/namespace.h"

namespace nsbench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kPhaseOrder[] = {
    "create", "mkdir",  "lookup",  "getattr",
    "rename", "unlink", "readdir", "metacost"};

struct Config {
  std::string db;
  int threads = 1;
  uint64_t ops = 2000;
  uint64_t read_ops = 0;  // 0: same as ops
  std::string layout = "shared";
  std::vector<std::string> phases;
  uint64_t dir_size = 1000;
  std::string populate = "sql";
  int readdir_passes = 0;  // 0: enough passes to read about a million entries
  uint32_t page_size = 1024;
  double phase_seconds = 30;
  int pool_size = 0;  // 0: one connection per thread
  int pg_pid = 0;     // the postmaster, to measure the server's CPU
  bool json = false;
  bool raw = false;
  std::string label;
};

Clock::time_point Deadline(Clock::time_point start, double seconds) {
  return start + std::chrono::duration_cast<Clock::duration>(
                     std::chrono::duration<double>(seconds));
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

uint32_t ElapsedNs(Clock::time_point start) {
  const int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start)
          .count();
  return static_cast<uint32_t>(std::min<int64_t>(ns, UINT32_MAX));
}

// The p-quantile (0..1) of latencies in ns, returned in µs. Sorts `v`.
double PercentileUs(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size()));
  return v[std::min(i, v.size() - 1)] / 1000.0;
}

// CPU seconds this process has used, all threads together.
double OwnCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

// utime + stime (+ cutime + cstime with `children`) of a process from
// /proc/PID/stat, in clock ticks, and its parent's pid; false if it is gone.
bool ReadProcStat(const std::string& pid, bool children, uint64_t* ticks,
                  long* ppid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  // The command name may hold spaces and parentheses: fields start after
  // the last ')'. Field 3 is the state, 4 ppid, 14..17 the CPU times.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::vector<std::string> f;
  size_t i = close + 2;
  while (i < line.size()) {
    size_t j = line.find(' ', i);
    if (j == std::string::npos) j = line.size();
    f.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  if (f.size() < 15) return false;
  *ppid = std::stol(f[1]);
  *ticks = std::stoull(f[11]) + std::stoull(f[12]);
  if (children) *ticks += std::stoull(f[13]) + std::stoull(f[14]);
  return true;
}

// CPU seconds the PostgreSQL server has used: the postmaster, its live
// children (our connections' backends among them) and the children it has
// already reaped. 0 without --pg-pid.
double ServerCpuSeconds(int postmaster) {
  if (postmaster <= 0) return 0;
  uint64_t total = 0;
  uint64_t ticks = 0;
  long ppid = 0;
  if (ReadProcStat(std::to_string(postmaster), true, &ticks, &ppid)) {
    total += ticks;
  }
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return 0;
  while (const dirent* e = readdir(proc)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    if (ReadProcStat(e->d_name, false, &ticks, &ppid) && ppid == postmaster) {
      total += ticks;
    }
  }
  closedir(proc);
  return static_cast<double>(total) / sysconf(_SC_CLK_TCK);
}

// CPU used by both ends between Start() and Stop().
class CpuMeter {
 public:
  explicit CpuMeter(int pg_pid) : pg_pid_(pg_pid) {}
  void Start() {
    own_ = OwnCpuSeconds();
    server_ = ServerCpuSeconds(pg_pid_);
  }
  void Stop(double* own, double* server) const {
    *own = OwnCpuSeconds() - own_;
    *server = pg_pid_ > 0 ? ServerCpuSeconds(pg_pid_) - server_ : 0;
  }

 private:
  int pg_pid_;
  double own_ = 0;
  double server_ = 0;
};

std::string JsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// What one phase of single operations came to.
struct OpStats {
  std::string phase;
  uint64_t ops = 0;  // attempted, failed ones included
  uint64_t errors = 0;
  double seconds = 0;  // wall time from the common start to the last thread
  std::vector<uint32_t> latency_ns;
  std::string first_error;
  double client_cpu = 0;  // seconds: ns-bench, library and SQLite included
  double server_cpu = 0;  // seconds: the PostgreSQL server (with --pg-pid)
};

// What reading a whole directory, page by page, came to.
struct ReaddirStats {
  bool with_attrs = false;
  uint64_t dir_size = 0;
  uint64_t entries = 0;
  uint64_t passes = 0;
  uint64_t errors = 0;
  double seconds = 0;
  std::vector<uint32_t> page_ns;   // every page
  std::vector<uint32_t> first_ns;  // the first pages of each pass
  std::vector<uint32_t> last_ns;   // the last full pages of each pass
  std::string first_error;
  double client_cpu = 0;
  double server_cpu = 0;
};

// Pages at each end of a listing compared to show a page costs the same at
// the start and at the end of a big directory.
constexpr size_t kEndPages = 10;

// Prints results as aligned text or, with --json, one JSON object per line
// (config fields repeated in each, so lines from many runs can be merged).
class Reporter {
 public:
  Reporter(const Config& cfg, std::string backend)
      : cfg_(cfg), backend_(std::move(backend)) {}

  void Header() const {
    if (cfg_.json) return;
    fmt::print("ns-bench {} threads={} layout={} ops/thread={} durable{}\n",
               backend_, cfg_.threads, cfg_.layout, cfg_.ops,
               cfg_.label.empty() ? "" : " label=" + cfg_.label);
    fmt::print("{:<18} {:>9} {:>6} {:>8} {:>11} {:>9} {:>9} {:>15}\n", "phase",
               "ops", "errors", "seconds", "ops/s", "p50 µs", "p99 µs",
               "cpu µs/op c+s");
  }

  void Ops(OpStats& s) const {
    const double rate = s.seconds > 0 ? s.ops / s.seconds : 0;
    const double p50 = PercentileUs(s.latency_ns, 0.50);
    const double p99 = PercentileUs(s.latency_ns, 0.99);
    const double ops = std::max<double>(s.ops, 1);
    const double client_us = s.client_cpu * 1e6 / ops;
    const double server_us = s.server_cpu * 1e6 / ops;
    if (cfg_.json) {
      fmt::print(
          "{{{}, \"phase\": \"{}\", \"ops\": {}, \"errors\": {}, "
          "\"seconds\": {:.3f}, \"ops_per_s\": {:.1f}, \"p50_us\": {:.1f}, "
          "\"p99_us\": {:.1f}, \"client_cpu_us\": {:.1f}, "
          "\"server_cpu_us\": {:.1f}{}}}\n",
          Common(), s.phase, s.ops, s.errors, s.seconds, rate, p50, p99,
          client_us, server_us, ErrorField(s.first_error));
    } else {
      fmt::print(
          "{:<18} {:>9} {:>6} {:>8.3f} {:>11.1f} {:>9.1f} {:>9.1f} "
          "{:>7.1f}+{:<7.1f}\n",
          s.phase, s.ops, s.errors, s.seconds, rate, p50, p99, client_us,
          server_us);
    }
    std::fflush(stdout);
  }

  void Readdir(ReaddirStats& s) const {
    const std::string phase = s.with_attrs ? "readdirplus" : "readdir";
    const double rate = s.seconds > 0 ? s.entries / s.seconds : 0;
    const double p50 = PercentileUs(s.page_ns, 0.50);
    const double p99 = PercentileUs(s.page_ns, 0.99);
    const double first = PercentileUs(s.first_ns, 0.50);
    const double last = PercentileUs(s.last_ns, 0.50);
    const double entries = std::max<double>(s.entries, 1);
    const double client_ns = s.client_cpu * 1e9 / entries;
    const double server_ns = s.server_cpu * 1e9 / entries;
    if (cfg_.json) {
      fmt::print(
          "{{{}, \"phase\": \"{}\", \"dir_size\": {}, \"page_size\": {}, "
          "\"passes\": {}, \"entries\": {}, \"errors\": {}, "
          "\"seconds\": {:.3f}, \"entries_per_s\": {:.1f}, "
          "\"page_p50_us\": {:.1f}, \"page_p99_us\": {:.1f}, "
          "\"first_pages_us\": {:.1f}, \"last_pages_us\": {:.1f}, "
          "\"client_cpu_ns_per_entry\": {:.0f}, "
          "\"server_cpu_ns_per_entry\": {:.0f}{}}}\n",
          Common(), phase, s.dir_size, cfg_.page_size, s.passes, s.entries,
          s.errors, s.seconds, rate, p50, p99, first, last, client_ns,
          server_ns, ErrorField(s.first_error));
    } else {
      fmt::print(
          "{:<18} dir of {} entries, {} pass(es), {} errors: {:.1f} "
          "entries/s\n{:<18} µs per page of {}: p50 {:.1f} p99 {:.1f}; "
          "first {} pages {:.1f}, last {} full pages {:.1f}; "
          "cpu ns/entry {:.0f}+{:.0f}\n",
          phase, s.dir_size, s.passes, s.errors, rate, "", cfg_.page_size, p50,
          p99, kEndPages, first, kEndPages, last, client_ns, server_ns);
    }
    std::fflush(stdout);
  }

  void Populate(uint64_t entries, double seconds, bool reused) const {
    const double rate = seconds > 0 ? entries / seconds : 0;
    if (cfg_.json) {
      fmt::print(
          "{{{}, \"phase\": \"populate\", \"method\": \"{}\", "
          "\"dir_size\": {}, \"reused\": {}, \"seconds\": {:.3f}, "
          "\"entries_per_s\": {:.1f}}}\n",
          Common(), cfg_.populate, entries, reused ? "true" : "false", seconds,
          rate);
    } else if (reused) {
      fmt::print("{:<18} dir of {} entries exists from an earlier run\n",
                 "populate", entries);
    } else {
      fmt::print("{:<18} {} entries by {} in {:.1f} s ({:.0f} entries/s)\n",
                 "populate", entries, cfg_.populate, seconds, rate);
    }
    std::fflush(stdout);
  }

 private:
  std::string Common() const {
    return fmt::format(
        "\"label\": \"{}\", \"backend\": \"{}\", \"threads\": {}, "
        "\"layout\": \"{}\"",
        JsonEscape(cfg_.label), backend_, cfg_.threads, cfg_.layout);
  }
  static std::string ErrorField(const std::string& e) {
    return e.empty() ? "" : ", \"first_error\": \"" + JsonEscape(e) + "\"";
  }

  const Config& cfg_;
  std::string backend_;
};

// Runs op(thread, i) for i in [0, counts[thread]) on all threads at once,
// each thread stopping early at the deadline. `done`, if given, receives
// how many ops each thread ran.
using OpFn = std::function<ns::Status(int thread, uint64_t i)>;

OpStats RunParallel(std::string_view phase, const std::vector<uint64_t>& counts,
                    double max_seconds, CpuMeter& cpu, const OpFn& op,
                    std::vector<uint64_t>* done = nullptr) {
  const int threads = static_cast<int>(counts.size());
  struct PerThread {
    std::vector<uint32_t> latency_ns;
    uint64_t ops = 0;
    uint64_t errors = 0;
    std::string first_error;
  };
  std::vector<PerThread> per(threads);
  std::latch ready(threads);
  std::latch go(1);
  Clock::time_point deadline;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      PerThread& me = per[t];
      me.latency_ns.reserve(counts[t]);
      ready.count_down();
      go.wait();  // `deadline` is written before go opens
      for (uint64_t i = 0; i < counts[t]; ++i) {
        const auto t0 = Clock::now();
        if (t0 >= deadline) break;
        ns::Status s = op(t, i);
        me.latency_ns.push_back(ElapsedNs(t0));
        ++me.ops;
        if (!s.ok()) {
          if (me.errors++ == 0) me.first_error = s.ToString();
        }
      }
    });
  }
  ready.wait();
  cpu.Start();
  const auto start = Clock::now();
  deadline = Deadline(start, max_seconds);
  go.count_down();
  for (auto& th : pool) th.join();

  OpStats out;
  out.phase = phase;
  out.seconds = SecondsSince(start);
  cpu.Stop(&out.client_cpu, &out.server_cpu);
  if (done) done->assign(threads, 0);
  for (int t = 0; t < threads; ++t) {
    out.ops += per[t].ops;
    out.errors += per[t].errors;
    if (out.first_error.empty()) out.first_error = per[t].first_error;
    out.latency_ns.insert(out.latency_ns.end(), per[t].latency_ns.begin(),
                          per[t].latency_ns.end());
    if (done) (*done)[t] = per[t].ops;
  }
  return out;
}

class Bench {
 public:
  Bench(const Config& cfg, ns::Namespace& fs, const DbTarget& db,
        const Reporter& out)
      : cfg_(cfg),
        fs_(fs),
        db_(db),
        out_(out),
        cred_(ns::Credentials::Root()),
        cpu_(cfg.pg_pid) {}

  // Makes this run's own directory under the root, and in it the shared
  // directory or one per thread.
  ns::Status Setup() {
    std::random_device rd;
    const std::string root_name =
        fmt::format("nsbench-{:08x}{:08x}", rd(), rd());
    auto top = fs_.Mkdir(cred_, ns::kRootInode, root_name, 0755);
    if (!top.ok()) return top.status();
    work_root_ = top->ino;
    dirs_.assign(cfg_.threads, 0);
    if (cfg_.layout == "shared") {
      auto d = fs_.Mkdir(cred_, work_root_, "shared", 0755);
      if (!d.ok()) return d.status();
      std::fill(dirs_.begin(), dirs_.end(), d->ino);
    } else {
      for (int t = 0; t < cfg_.threads; ++t) {
        auto d = fs_.Mkdir(cred_, work_root_, fmt::format("t{}", t), 0755);
        if (!d.ok()) return d.status();
        dirs_[t] = d->ino;
      }
    }
    files_.assign(cfg_.threads, {});
    for (auto& f : files_) f.assign(cfg_.ops, 0);
    created_.assign(cfg_.threads, 0);
    renamed_.assign(cfg_.threads, 0);
    rngs_.clear();
    for (int t = 0; t < cfg_.threads; ++t) rngs_.emplace_back(1000 + t);
    return ns::Status::Ok();
  }

  // Returns the number of failed operations.
  uint64_t Run(std::string_view phase) {
    if (phase == "create") return Create();
    if (phase == "mkdir") return MkdirPhase();
    if (phase == "lookup") return LookupPhase();
    if (phase == "getattr") return GetAttrPhase();
    if (phase == "rename") return RenamePhase();
    if (phase == "unlink") return UnlinkPhase();
    if (phase == "readdir") return ReaddirPhase();
    if (phase == "metacost") return MetaCostPhase();
    return 1;
  }

 private:
  static std::string FileName(int t, uint64_t i) {
    return fmt::format("f{}_{}", t, i);
  }
  static std::string RenamedName(int t, uint64_t i) {
    return fmt::format("r{}_{}", t, i);
  }

  uint64_t Report(OpStats s) {
    const uint64_t errors = s.errors;
    out_.Ops(s);
    return errors;
  }

  uint64_t ReadOps() const { return cfg_.read_ops ? cfg_.read_ops : cfg_.ops; }

  // Issue 3 §8: what an ACL and inherited tags add. Creates and lookups
  // by a non-root user under a directory with a 10-entry ACL (nine entries
  // for other users ahead of the one that applies, the worst realistic
  // walk) against one with mode bits only; mkdir under a directory with
  // 5 tags against one without. Each pair runs twice, in both orders, and
  // the ratio is of mean time per operation.
  uint64_t MetaCostPhase() {
    const ns::Credentials user{4242, 4242, {}};
    auto mk = [&](const std::string& name) -> ns::InodeId {
      auto d = fs_.Mkdir(cred_, work_root_, name, 0777);
      return d.ok() ? d->ino : 0;
    };
    uint64_t errors = 0;
    std::string acl_text;
    for (int i = 0; i < 9; ++i) acl_text += fmt::format("A::{}:rwax,", 5000 + i);
    acl_text += "A::EVERYONE@:rwaxtncy";
    auto acl = ns::ParseAcl(acl_text);
    struct Pair {
      std::string what;
      std::string base, with;
      double base_s = 0, with_s = 0;
      uint64_t base_ops = 0, with_ops = 0;
      double base_cpu = 0, with_cpu = 0;  // client + server seconds
      std::vector<uint32_t> base_ns{}, with_ns{};
    };
    std::vector<Pair> pairs = {{"create", "create-plain", "create-acl10"},
                               {"lookup", "lookup-plain", "lookup-acl10"},
                               {"mkdir", "mkdir-plain", "mkdir-tags5"}};
    for (int round = 0; round < 2; ++round) {
      const ns::InodeId plain = mk(fmt::format("plain{}", round));
      const ns::InodeId acl_dir = mk(fmt::format("acl{}", round));
      const ns::InodeId tag_dir = mk(fmt::format("tags{}", round));
      if (plain == 0 || acl_dir == 0 || tag_dir == 0 || !acl.ok() ||
          !fs_.SetAcl(cred_, acl_dir, *acl).ok()) {
        fmt::print(stderr, "ns-bench: metacost setup failed\n");
        return 1;
      }
      for (int k = 0; k < 5; ++k) {
        if (!fs_.WriteTag(cred_, tag_dir, fmt::format("tag{}", k),
                          "StoreName exp:raw@osm")
                 .ok()) {
          return 1;
        }
      }
      std::vector<uint64_t> counts(cfg_.threads, cfg_.ops);
      // Files each create phase made, per directory and thread: lookups
      // pick among those (a phase may stop at its deadline).
      std::map<ns::InodeId, std::vector<uint64_t>> made;
      auto create_in = [&](ns::InodeId dir, const char* phase) {
        return RunParallel(phase, counts, cfg_.phase_seconds, cpu_,
                           [&, dir](int t, uint64_t i) -> ns::Status {
                             return fs_.Create(user, dir, FileName(t, i), 0644)
                                 .status();
                           },
                           &made[dir]);
      };
      auto lookup_in = [&](ns::InodeId dir, const char* phase) {
        std::vector<uint64_t> reads(cfg_.threads, ReadOps());
        const std::vector<uint64_t>& have = made[dir];
        for (int t = 0; t < cfg_.threads; ++t) {
          if (have.size() <= static_cast<size_t>(t) || have[t] == 0) reads[t] = 0;
        }
        return RunParallel(phase, reads, cfg_.phase_seconds, cpu_,
                           [&, dir](int t, uint64_t) -> ns::Status {
                             const uint64_t j = rngs_[t]() % have[t];
                             return fs_.Lookup(user, dir, FileName(t, j))
                                 .status();
                           });
      };
      auto mkdir_in = [&](ns::InodeId dir, const char* phase) {
        return RunParallel(phase, counts, cfg_.phase_seconds, cpu_,
                           [&, dir](int t, uint64_t i) -> ns::Status {
                             return fs_.Mkdir(cred_, dir,
                                              fmt::format("d{}_{}", t, i), 0755)
                                 .status();
                           });
      };
      auto add = [&](Pair& p, bool with, OpStats st) {
        (with ? p.with_s : p.base_s) += st.seconds;
        (with ? p.with_ops : p.base_ops) += st.ops;
        (with ? p.with_cpu : p.base_cpu) += st.client_cpu + st.server_cpu;
        auto& lat = with ? p.with_ns : p.base_ns;
        lat.insert(lat.end(), st.latency_ns.begin(), st.latency_ns.end());
        errors += Report(std::move(st));
      };
      const bool acl_first = round == 1;
      for (int k = 0; k < 2; ++k) {
        const bool with = (k == 0) == acl_first;
        add(pairs[0], with, create_in(with ? acl_dir : plain,
                                      with ? "create-acl10" : "create-plain"));
      }
      for (int k = 0; k < 2; ++k) {
        const bool with = (k == 0) == acl_first;
        add(pairs[1], with, lookup_in(with ? acl_dir : plain,
                                      with ? "lookup-acl10" : "lookup-plain"));
      }
      for (int k = 0; k < 2; ++k) {
        const bool with = (k == 0) == acl_first;
        add(pairs[2], with, mkdir_in(with ? tag_dir : plain,
                                     with ? "mkdir-tags5" : "mkdir-plain"));
      }
    }
    // Three views, because a loaded machine skews means: mean wall time
    // per op, the median latency, and CPU (ns-bench + server) per op.
    for (Pair& p : pairs) {
      const double base_us = p.base_ops ? 1e6 * p.base_s / p.base_ops : 0;
      const double with_us = p.with_ops ? 1e6 * p.with_s / p.with_ops : 0;
      const double ratio = base_us > 0 ? with_us / base_us : 0;
      const double base_p50 = PercentileUs(p.base_ns, 0.5);
      const double with_p50 = PercentileUs(p.with_ns, 0.5);
      const double p50_ratio = base_p50 > 0 ? with_p50 / base_p50 : 0;
      const double base_cpu = p.base_ops ? 1e6 * p.base_cpu / p.base_ops : 0;
      const double with_cpu = p.with_ops ? 1e6 * p.with_cpu / p.with_ops : 0;
      const double cpu_ratio = base_cpu > 0 ? with_cpu / base_cpu : 0;
      if (cfg_.json) {
        fmt::print("{{\"label\": \"{}\", \"phase\": \"cost-{}\", "
                   "\"base\": \"{}\", \"base_us\": {:.1f}, \"with\": \"{}\", "
                   "\"with_us\": {:.1f}, \"ratio\": {:.3f}, "
                   "\"p50_ratio\": {:.3f}, \"cpu_ratio\": {:.3f}}}\n",
                   JsonEscape(cfg_.label), p.what, p.base, base_us, p.with,
                   with_us, ratio, p50_ratio, cpu_ratio);
      } else {
        fmt::print("cost {:<7} {:<13} {:8.1f} us/op  {:<13} {:8.1f} us/op  "
                   "ratio {:.2f}  p50 ratio {:.2f}  cpu ratio {:.2f} "
                   "(target <= 1.30)\n",
                   p.what, p.base, base_us, p.with, with_us, ratio, p50_ratio,
                   cpu_ratio);
      }
    }
    return errors;
  }

  uint64_t Create() {
    std::vector<uint64_t> counts(cfg_.threads, cfg_.ops);
    OpStats s = RunParallel(
        "create", counts, cfg_.phase_seconds, cpu_,
        [&](int t, uint64_t i) -> ns::Status {
          auto a = fs_.Create(cred_, dirs_[t], FileName(t, i), 0644);
          if (!a.ok()) return a.status();
          files_[t][i] = a->ino;
          return ns::Status::Ok();
        },
        &created_);
    return Report(std::move(s));
  }

  uint64_t MkdirPhase() {
    std::vector<uint64_t> counts(cfg_.threads, cfg_.ops);
    return Report(RunParallel(
        "mkdir", counts, cfg_.phase_seconds, cpu_,
        [&](int t, uint64_t i) -> ns::Status {
          return fs_.Mkdir(cred_, dirs_[t], fmt::format("d{}_{}", t, i), 0755)
              .status();
        }));
  }

  // Names looked up at random among the thread's own files, so successive
  // lookups do not walk the index in order.
  uint64_t LookupPhase() {
    std::vector<uint64_t> counts(cfg_.threads, 0);
    for (int t = 0; t < cfg_.threads; ++t) {
      if (created_[t] > 0) counts[t] = ReadOps();
    }
    return Report(RunParallel(
        "lookup", counts, cfg_.phase_seconds, cpu_,
        [&](int t, uint64_t) -> ns::Status {
          const uint64_t j = rngs_[t]() % created_[t];
          return fs_.Lookup(cred_, dirs_[t], FileName(t, j)).status();
        }));
  }

  uint64_t GetAttrPhase() {
    std::vector<uint64_t> counts(cfg_.threads, 0);
    for (int t = 0; t < cfg_.threads; ++t) {
      if (created_[t] > 0) counts[t] = ReadOps();
    }
    return Report(
        RunParallel("getattr", counts, cfg_.phase_seconds, cpu_,
                    [&](int t, uint64_t) -> ns::Status {
                      const uint64_t j = rngs_[t]() % created_[t];
                      return fs_.GetAttr(cred_, files_[t][j]).status();
                    }));
  }

  // Renames within the directory: the common case (editors, atomic
  // replace), and the one a shared directory makes contend.
  uint64_t RenamePhase() {
    return Report(RunParallel(
        "rename", created_, cfg_.phase_seconds, cpu_,
        [&](int t, uint64_t i) -> ns::Status {
          return fs_
              .Rename(cred_, dirs_[t], FileName(t, i), dirs_[t],
                      RenamedName(t, i))
              .status();
        },
        &renamed_));
  }

  // Unlinks what rename renamed (or, without a rename phase, what create
  // made). Files a phase left out at its deadline stay behind in this run's
  // directory: they change nothing that later runs measure.
  uint64_t UnlinkPhase() {
    const bool after_rename = std::any_of(renamed_.begin(), renamed_.end(),
                                          [](uint64_t n) { return n > 0; });
    return Report(RunParallel(
        "unlink", after_rename ? renamed_ : created_, cfg_.phase_seconds, cpu_,
        [&](int t, uint64_t i) -> ns::Status {
          const std::string name =
              after_rename ? RenamedName(t, i) : FileName(t, i);
          return fs_.Unlink(cred_, dirs_[t], name).status();
        }));
  }

  // Finds or fills the directory of --dir-size entries.
  ns::Result<ns::InodeId> ReaddirDirectory() {
    const std::string name = fmt::format("readdir-{}", cfg_.dir_size);
    if (cfg_.populate == "sql") {
      // Filled in one transaction: if it exists it is complete.
      auto found = fs_.Lookup(cred_, ns::kRootInode, name);
      if (found.ok()) {
        out_.Populate(cfg_.dir_size, 0, true);
        return found->ino;
      }
      if (!found.status().IsNotFound()) return found.status();
      const auto start = Clock::now();
      auto dir = PopulateDirectory(db_, name, cfg_.dir_size);
      if (!dir.ok()) return dir.status();
      out_.Populate(cfg_.dir_size, SecondsSince(start), false);
      return *dir;
    }
    // Through the API, from every thread: in this run's own directory,
    // since an interrupted fill would leave it incomplete.
    auto d = fs_.Mkdir(cred_, work_root_, name, 0755);
    if (!d.ok()) return d.status();
    const ns::InodeId dir = d->ino;
    std::vector<uint64_t> counts(cfg_.threads, 0);
    for (uint64_t i = 0; i < cfg_.dir_size; ++i) ++counts[i % cfg_.threads];
    const auto start = Clock::now();
    // A generous bound: a fill that takes longer is not worth waiting for.
    OpStats s = RunParallel(
        "populate", counts, std::max(cfg_.phase_seconds, 600.0), cpu_,
        [&](int t, uint64_t i) -> ns::Status {
          const uint64_t n = i * cfg_.threads + t + 1;
          return fs_.Create(cred_, dir, fmt::format("e{}", n), 0644).status();
        });
    if (s.errors > 0 || s.ops < cfg_.dir_size) {
      return ns::Status::IOError(
          "populate through the API",
          fmt::format("{} of {} created, {} errors; first: {}", s.ops,
                      cfg_.dir_size, s.errors, s.first_error));
    }
    out_.Populate(cfg_.dir_size, SecondsSince(start), false);
    return dir;
  }

  // Reads the whole directory once in pages of --page-size. Appends each
  // page's time to `page_ns` and returns the entries read.
  ns::Result<uint64_t> ReadWhole(ns::InodeId dir, bool with_attrs,
                                 Clock::time_point deadline,
                                 std::vector<uint32_t>& page_ns) {
    ns::ReadDirRequest req;
    req.max_entries = cfg_.page_size;
    req.with_attrs = with_attrs;
    uint64_t entries = 0;
    // Bounded: a directory that never reports eof (a bug) stops here.
    const uint64_t max_pages = cfg_.dir_size / cfg_.page_size + 16;
    for (uint64_t p = 0; p < max_pages && Clock::now() < deadline; ++p) {
      const auto t0 = Clock::now();
      auto page = fs_.ReadDir(cred_, dir, req);
      page_ns.push_back(ElapsedNs(t0));
      if (!page.ok()) return page.status();
      entries += page->entries.size();
      if (page->eof || page->entries.empty()) return entries;
      req.cookie = page->entries.back().cookie;
      req.verifier = page->verifier;
    }
    return ns::Status::IOError(
        "readdir",
        fmt::format("no eof after {} entries (page or time limit)", entries));
  }

  ReaddirStats ReadPasses(ns::InodeId dir, bool with_attrs, uint64_t passes) {
    struct PerThread {
      ReaddirStats s;
    };
    std::vector<PerThread> per(cfg_.threads);
    std::latch ready(cfg_.threads);
    std::latch go(1);
    // --phase-seconds stops new passes; a pass under way finishes (within a
    // hard limit), or a big directory would never show its last pages.
    Clock::time_point deadline;
    Clock::time_point hard_deadline;
    std::vector<std::thread> pool;
    for (int t = 0; t < cfg_.threads; ++t) {
      pool.emplace_back([&, t] {
        ReaddirStats& me = per[t].s;
        std::vector<uint32_t> pages;
        ready.count_down();
        go.wait();
        for (uint64_t p = 0; p < passes && Clock::now() < deadline; ++p) {
          pages.clear();
          auto n = ReadWhole(dir, with_attrs, hard_deadline, pages);
          if (!n.ok()) {
            if (me.errors++ == 0) me.first_error = n.status().ToString();
            break;
          }
          ++me.passes;
          me.entries += *n;
          me.page_ns.insert(me.page_ns.end(), pages.begin(), pages.end());
          // The last page is usually partial: compare full pages only.
          const size_t full = (*n % cfg_.page_size == 0 || pages.size() == 1)
                                  ? pages.size()
                                  : pages.size() - 1;
          const size_t k = std::min(kEndPages, full);
          me.first_ns.insert(me.first_ns.end(), pages.begin(),
                             pages.begin() + k);
          me.last_ns.insert(me.last_ns.end(), pages.begin() + (full - k),
                            pages.begin() + full);
        }
      });
    }
    ready.wait();
    cpu_.Start();
    const auto start = Clock::now();
    deadline = Deadline(start, cfg_.phase_seconds);
    hard_deadline = Deadline(start, std::max(cfg_.phase_seconds, 600.0));
    go.count_down();
    for (auto& th : pool) th.join();

    ReaddirStats out;
    out.with_attrs = with_attrs;
    out.dir_size = cfg_.dir_size;
    out.seconds = SecondsSince(start);
    cpu_.Stop(&out.client_cpu, &out.server_cpu);
    for (auto& p : per) {
      out.entries += p.s.entries;
      out.passes += p.s.passes;
      out.errors += p.s.errors;
      if (out.first_error.empty()) out.first_error = p.s.first_error;
      auto append = [](std::vector<uint32_t>& to,
                       const std::vector<uint32_t>& from) {
        to.insert(to.end(), from.begin(), from.end());
      };
      append(out.page_ns, p.s.page_ns);
      append(out.first_ns, p.s.first_ns);
      append(out.last_ns, p.s.last_ns);
    }
    return out;
  }

  uint64_t ReaddirPhase() {
    auto dir = ReaddirDirectory();
    if (!dir.ok()) {
      fmt::print(stderr, "ns-bench: readdir: {}\n", dir.status().ToString());
      return 1;
    }
    uint64_t errors = 0;
    // Enough passes that a small directory is read about a million entries'
    // worth, so its figure is not one millisecond's noise.
    const uint64_t passes =
        cfg_.readdir_passes > 0
            ? static_cast<uint64_t>(cfg_.readdir_passes)
            : std::clamp<uint64_t>(
                  1000000 / std::max<uint64_t>(cfg_.dir_size, 1), 1, 1000);
    for (bool with_attrs : {false, true}) {
      // One untimed pass first: it checks the count and brings the rows
      // into the database's cache, as a directory being listed would be.
      std::vector<uint32_t> ignored;
      auto n =
          ReadWhole(*dir, with_attrs, Deadline(Clock::now(), 600), ignored);
      if (!n.ok()) {
        fmt::print(stderr, "ns-bench: readdir: {}\n", n.status().ToString());
        return errors + 1;
      }
      if (*n != cfg_.dir_size) {
        fmt::print(stderr,
                   "ns-bench: readdir: the directory lists {} entries, "
                   "expected {}\n",
                   *n, cfg_.dir_size);
        ++errors;
      }
      ReaddirStats s = ReadPasses(*dir, with_attrs, passes);
      errors += s.errors;
      out_.Readdir(s);
    }
    return errors;
  }

  const Config& cfg_;
  ns::Namespace& fs_;
  const DbTarget& db_;
  const Reporter& out_;
  const ns::Credentials cred_;
  CpuMeter cpu_;

  ns::InodeId work_root_ = 0;
  std::vector<ns::InodeId> dirs_;                // per thread
  std::vector<std::vector<ns::InodeId>> files_;  // per thread, by index
  std::vector<uint64_t> created_;                // per thread
  std::vector<uint64_t> renamed_;                // per thread
  std::vector<std::mt19937_64> rngs_;            // per thread
};

ns::Result<std::unique_ptr<ns::Namespace>> OpenNamespace(const Config& cfg) {
  ns::NamespaceOptions options;
  options.durable = true;
  options.create_if_missing = true;
  // One connection per thread: a smaller pool would measure the pool.
  options.pool_size = cfg.pool_size > 0 ? cfg.pool_size : cfg.threads;
  return ns::Namespace::Open(cfg.db, options);
}

// --raw: the SQLite ceiling for creates (PostgreSQL's is pgbench's).
int RunRaw(const Config& cfg, const DbTarget& db, const Reporter& out) {
  ns::InodeId parent = 0;
  {
    // The library makes the schema and the directory; then it closes, so
    // nothing but the loop touches the database while it runs.
    auto fs = OpenNamespace(cfg);
    if (!fs.ok()) {
      fmt::print(stderr, "ns-bench: {}\n", fs.status().ToString());
      return 1;
    }
    std::random_device rd;
    auto d = (*fs)->Mkdir(ns::Credentials::Root(), ns::kRootInode,
                          fmt::format("nsbench-raw-{:08x}", rd()), 0755);
    if (!d.ok()) {
      fmt::print(stderr, "ns-bench: {}\n", d.status().ToString());
      return 1;
    }
    parent = d->ino;
  }
  out.Header();
  CpuMeter cpu(0);
  for (bool one_txn : {false, true}) {
    cpu.Start();
    auto r = RawSqliteCreates(db, parent, cfg.ops, cfg.phase_seconds, one_txn);
    if (!r.ok()) {
      fmt::print(stderr, "ns-bench: raw: {}\n", r.status().ToString());
      return 1;
    }
    OpStats s;
    s.phase = r->mode;
    s.ops = r->ops;
    s.seconds = r->seconds;
    s.latency_ns = std::move(r->latency_ns);
    cpu.Stop(&s.client_cpu, &s.server_cpu);
    out.Ops(s);
  }
  return 0;
}

int Main(int argc, char** argv) {
  Config cfg;
  CLI::App app{"ns-bench: operations per second of libnamespace"};
  app.add_option("--db", cfg.db,
                 "sqlite:///path/ns.db or postgresql://user@host:port/db")
      ->required();
  app.add_option("--threads", cfg.threads, "threads issuing operations")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--ops", cfg.ops,
                 "operations per thread in each phase (creates, mkdirs, ...)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000000}))
      ->capture_default_str();
  app.add_option("--read-ops", cfg.read_ops,
                 "lookups and getattrs per thread (default: --ops)");
  app.add_option("--layout", cfg.layout,
                 "shared: all threads in one directory; per-thread: one "
                 "directory each")
      ->check(CLI::IsMember({"shared", "per-thread"}))
      ->capture_default_str();
  app.add_option("--phases", cfg.phases,
                 "comma-separated: create,mkdir,lookup,getattr,rename,"
                 "unlink,readdir (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember({"metacost", "create", "mkdir", "lookup", "getattr", "rename",
                             "unlink", "readdir"}));
  app.add_option("--dir-size", cfg.dir_size,
                 "entries in the directory that readdir lists")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000000}))
      ->capture_default_str();
  app.add_option("--populate", cfg.populate,
                 "how the readdir directory is filled: sql (bulk SQL, reused "
                 "by later runs) or api (Create from every thread)")
      ->check(CLI::IsMember({"sql", "api"}))
      ->capture_default_str();
  app.add_option("--readdir-passes", cfg.readdir_passes,
                 "whole-directory reads per thread and mode (default: about "
                 "a million entries' worth)");
  app.add_option("--page-size", cfg.page_size, "readdir entries per page")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--phase-seconds", cfg.phase_seconds,
                 "time limit of each phase")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--pool-size", cfg.pool_size,
                 "database connections (default: --threads)");
  app.add_option("--pg-pid", cfg.pg_pid,
                 "pid of the PostgreSQL postmaster on this host: also report "
                 "the server's CPU per operation");
  app.add_option("--label", cfg.label, "a tag copied into every JSON line");
  app.add_flag("--json", cfg.json, "one JSON object per line");
  app.add_flag("--raw", cfg.raw,
               "SQLite only: the raw insert loop (one durable transaction "
               "per create, then all in one transaction), no library");
  CLI11_PARSE(app, argc, argv);

  auto db = ParseDbTarget(cfg.db);
  if (!db.ok()) {
    fmt::print(stderr, "ns-bench: {}\n", db.status().ToString());
    return 2;
  }
  const std::string backend =
      db->kind == DbTarget::Kind::kSqlite ? "sqlite" : "postgresql";
  Reporter out(cfg, backend);
  if (cfg.raw) return RunRaw(cfg, *db, out);

  std::vector<std::string> phases;
  const bool all = cfg.phases.empty();
  auto wanted = [&](std::string_view p) {
    // metacost (issue 3 §8) runs only when named.
    return (all && p != "metacost") ||
           std::find(cfg.phases.begin(), cfg.phases.end(), p) !=
               cfg.phases.end();
  };
  const bool need_files = wanted("lookup") || wanted("getattr") ||
                          wanted("rename") || wanted("unlink");
  for (std::string_view p : kPhaseOrder) {
    if (wanted(p) || (p == "create" && need_files)) phases.emplace_back(p);
  }

  auto fs = OpenNamespace(cfg);
  if (!fs.ok()) {
    fmt::print(stderr, "ns-bench: {}\n", fs.status().ToString());
    return 1;
  }
  Bench bench(cfg, **fs, *db, out);
  if (ns::Status s = bench.Setup(); !s.ok()) {
    fmt::print(stderr, "ns-bench: setup: {}\n", s.ToString());
    return 1;
  }
  out.Header();
  uint64_t errors = 0;
  for (const auto& p : phases) errors += bench.Run(p);
  if (errors > 0) {
    fmt::print(stderr, "ns-bench: {} operations failed\n", errors);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace nsbench

int main(int argc, char** argv) {
  // A readdir page with attributes allocates a few hundred KB (libpq's
  // result, the entries) and frees it a millisecond later. With glibc's
  // defaults that memory goes back to the kernel (munmap or trimming the
  // heap) and is faulted in again for the next page: measured, it doubled
  // the client's CPU per entry. Fixed thresholds keep it in the heap
  // (docs/performance.md).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  return nsbench::Main(argc, argv);
}
