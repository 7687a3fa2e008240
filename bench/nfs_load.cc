// nfs-load: an mdtest-like NFSv4.1 load generator on the in-tree client
// (nfs41client/). Any NFSv4.1 server will do: nfs41d, NFS-Ganesha, knfsd.
//
//   nfs-load --server 127.0.0.1:2049 --threads 2 --files 1000
//            --phases create,stat,readdir,rename,remove [--dirs]
//            [--shared-dir] [--size 3901] [--json] [--keep] [--top NAME]
//
// Each thread has its own client and session and works on its own files,
// in its own directory or in one shared directory, all under a fresh
// top directory in the export's root. Phases run one after another; all
// threads start a phase together and the phase ends when every thread has
// done its count or the time limit passed.
//
//   create   files: OPEN (create, GETFH), WRITE of --size bytes FILE_SYNC
//            when --size > 0, CLOSE; one latency per file covers all three.
//            --dirs: CREATE NF4DIR.
//   stat     PUTFH dir, LOOKUP name, GETATTR (what `ls -l` asks for).
//   readdir  the thread's directory (with --shared-dir every thread reads
//            the whole shared one), with the same attributes, over as many
//            READDIRs as it takes; ops are entries, latencies per READDIR.
//   rename   RENAME within the directory (f... -> r...).
//   remove   REMOVE of each name.
//
// --top NAME names the top directory; if it exists (an earlier run with
// --keep and the same --threads/--files/--shared-dir/--dirs left it), it is
// reused with its names, so e.g. `--phases readdir` reads the same 100,000
// entries again against a restarted server without creating them anew.
//
// Each session sends RECLAIM_COMPLETE; a server still in its grace period
// (NFS4ERR_GRACE to OPEN) is waited out, up to two minutes, before the run.
//
// Output: a line per phase (ops/s, p50, p99, errors) or, with --json, one
// line {"phases": {"create": {"ops": .., "ops_per_s": .., "p50_us": ..,
// "p99_us": .., ...}, ...}, ...}. Exit status 1 if any operation failed.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nfs41client/client.h"

namespace {

using nfs41client::Bits;
using nfs41client::Client;
using nfs41client::Compound;
using nfs41client::Fh;
using nfs41client::Reply;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string server = "127.0.0.1:2049";
  int threads = 1;
  int files = 1000;  // per thread
  std::string phases = "create,stat,readdir,rename,remove";
  bool dirs = false;         // directories instead of files
  bool shared_dir = false;   // one directory for all threads
  uint32_t size = 0;         // bytes written into each file
  double phase_seconds = 60;  // each phase stops at this
  uint32_t readdir_bytes = 65536;  // READDIR maxcount
  bool json = false;
  bool keep = false;  // leave the files and directories behind
  std::string top;    // top directory's name; "" = a fresh one per run
};

// What `ls -l` asks for.
const std::vector<uint32_t>& StatBits() {
  static const std::vector<uint32_t> bits =
      Bits({FATTR4_TYPE, FATTR4_CHANGE, FATTR4_SIZE, FATTR4_FILEID,
            FATTR4_MODE, FATTR4_NUMLINKS, FATTR4_OWNER, FATTR4_OWNER_GROUP,
            FATTR4_TIME_MODIFY});
  return bits;
}

// One thread's client, directory and files.
struct Worker {
  std::unique_ptr<Client> client;
  Fh dir;
  int created = 0;       // files made by the create phase (0..created-1)
  bool renamed = false;  // names are r... after the rename phase
  bool removed = false;
  std::vector<uint32_t> lat_us;  // this phase's latencies
  uint64_t ops = 0, errors = 0;
  std::string first_error;

  std::string Name(int t, int i) const {
    return std::string(renamed ? "r" : "f") + std::to_string(t) + "." +
           std::to_string(i);
  }
  void Error(const std::string& what) {
    if (errors++ == 0) first_error = what;
  }
};

std::string StatusText(const rpc::Result<Reply>& r) {
  if (!r.ok()) return r.status().ToString();
  return "nfsstat4 " + std::to_string(static_cast<int>(r->status()));
}

struct PhaseResult {
  std::string name;
  uint64_t ops = 0, errors = 0, calls = 0;
  double seconds = 0;
  double p50_us = 0, p99_us = 0;
  std::string first_error;
};

class Load {
 public:
  explicit Load(Options o) : o_(std::move(o)), payload_(o_.size, 'x') {}

  // Connects every worker and makes the directories; "" or an error.
  std::string Setup() {
    std::string host = o_.server;
    uint16_t port = 2049;
    if (size_t colon = host.rfind(':'); colon != std::string::npos) {
      port = static_cast<uint16_t>(std::stoi(host.substr(colon + 1)));
      host = host.substr(0, colon);
    }
    workers_.resize(o_.threads);
    for (int t = 0; t < o_.threads; ++t) {
      nfs41client::ClientOptions co;
      co.owner = "nfs-load-" + std::to_string(getpid()) + "-" + std::to_string(t);
      auto c = Client::Connect(host, port, co);
      if (!c.ok()) return "connect: " + c.status().ToString();
      workers_[t].client = std::move(*c);
      if (nfsstat4 s = workers_[t].client->EstablishSession(); s != NFS4_OK) {
        return "session: nfsstat4 " + std::to_string(static_cast<int>(s));
      }
      // Nothing to reclaim: tell the server, so it need not hold our OPENs
      // back for the grace period.
      Compound rc;
      rc.ReclaimComplete();
      (void)workers_[t].client->Call(rc);
    }
    Client& c0 = *workers_[0].client;
    auto root = c0.RootFh();
    if (!root.ok()) return "root: " + root.error;
    root_ = root.value;
    top_name_ = !o_.top.empty()
                    ? o_.top
                    : "nfs-load-" + std::to_string(getpid()) + "-" +
                          std::to_string(std::chrono::system_clock::now()
                                             .time_since_epoch()
                                             .count() %
                                         1000000000);
    if (!o_.top.empty()) {
      if (auto old = c0.LookupPath("/" + top_name_); old.ok()) return Reuse(old.value);
    }
    auto top = c0.Mkdir(root_, top_name_, 0777);
    if (!top.ok()) {
      return "mkdir " + top_name_ + ": nfsstat4 " +
             std::to_string(static_cast<int>(top.status)) + " " + top.error;
    }
    top_ = top.value;
    // A server still in its grace period refuses OPENs (NFS4ERR_GRACE):
    // wait it out, up to two minutes, with a probe file.
    if (!o_.dirs) {
      for (int attempt = 0;; ++attempt) {
        auto p = c0.OpenFile(top_, "probe", OPEN4_SHARE_ACCESS_BOTH);
        if (p.ok()) {
          (void)c0.CloseFile(p.value.fh, p.value.stateid);
          (void)c0.Remove(top_, "probe");
          break;
        }
        if (p.status != NFS4ERR_GRACE || attempt >= 120) {
          return "probe open: nfsstat4 " + std::to_string(static_cast<int>(p.status));
        }
        std::this_thread::sleep_for(std::chrono::seconds(1));
      }
    }
    Fh shared;
    if (o_.shared_dir) {
      auto d = c0.Mkdir(top_, "shared", 0777);
      if (!d.ok()) return "mkdir shared: " + d.error;
      shared = d.value;
    }
    for (int t = 0; t < o_.threads; ++t) {
      if (o_.shared_dir) {
        workers_[t].dir = shared;
        continue;
      }
      auto d = c0.Mkdir(top_, "t" + std::to_string(t), 0777);
      if (!d.ok()) return "mkdir t: " + d.error;
      workers_[t].dir = d.value;
    }
    return "";
  }

  // An earlier run's top directory: its directories, and the names its
  // create phase made (taken to be all of them).
  std::string Reuse(const Fh& top) {
    Client& c0 = *workers_[0].client;
    top_ = top;
    for (int t = 0; t < o_.threads; ++t) {
      std::string sub = o_.shared_dir ? "shared" : "t" + std::to_string(t);
      auto d = c0.LookupPath("/" + top_name_ + "/" + sub);
      if (!d.ok()) {
        return "reuse " + top_name_ + "/" + sub + ": nfsstat4 " +
               std::to_string(static_cast<int>(d.status)) + " " + d.error;
      }
      workers_[t].dir = d.value;
      workers_[t].created = o_.files;
    }
    return "";
  }

  // Removes what is left (best effort, bounded by the create count).
  void Cleanup() {
    Client& c0 = *workers_[0].client;
    for (int t = 0; t < o_.threads; ++t) {
      Worker& w = workers_[t];
      if (!w.removed) {
        for (int i = 0; i < w.created; ++i) (void)c0.Remove(w.dir, w.Name(t, i));
      }
      if (!o_.shared_dir) (void)c0.Remove(top_, "t" + std::to_string(t));
    }
    if (o_.shared_dir) (void)c0.Remove(top_, "shared");
    (void)c0.Remove(root_, top_name_);
    for (Worker& w : workers_) {
      (void)w.client->DestroySession();
      (void)w.client->DestroyClientId();
    }
  }

  PhaseResult Run(const std::string& phase) {
    std::barrier start(o_.threads + 1);
    std::vector<std::thread> threads;
    for (int t = 0; t < o_.threads; ++t) {
      Worker& w = workers_[t];
      w.lat_us.clear();
      w.ops = w.errors = 0;
      w.first_error.clear();
      threads.emplace_back([this, &start, &phase, t] {
        start.arrive_and_wait();
        RunThread(phase, t);
      });
    }
    start.arrive_and_wait();
    Clock::time_point t0 = Clock::now();
    for (std::thread& th : threads) th.join();
    PhaseResult r;
    r.name = phase;
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    std::vector<uint32_t> all;
    for (Worker& w : workers_) {
      r.ops += w.ops;
      r.errors += w.errors;
      if (r.first_error.empty()) r.first_error = w.first_error;
      all.insert(all.end(), w.lat_us.begin(), w.lat_us.end());
    }
    r.calls = all.size();
    if (!all.empty()) {
      auto pct = [&](double p) {
        size_t k = std::min(all.size() - 1,
                            static_cast<size_t>(p * static_cast<double>(all.size())));
        std::nth_element(all.begin(), all.begin() + static_cast<ptrdiff_t>(k), all.end());
        return static_cast<double>(all[k]);
      };
      r.p50_us = pct(0.50);
      r.p99_us = pct(0.99);
    }
    if (phase == "rename") {
      for (Worker& w : workers_) w.renamed = true;
    }
    if (phase == "remove") {
      for (Worker& w : workers_) w.removed = true;
    }
    return r;
  }

 private:
  void RunThread(const std::string& phase, int t) {
    Worker& w = workers_[t];
    Clock::time_point deadline =
        Clock::now() + std::chrono::microseconds(
                           static_cast<int64_t>(o_.phase_seconds * 1e6));
    if (phase == "readdir") {
      ReadDir(w, deadline);
      return;
    }
    int count = phase == "create" ? o_.files : w.created;
    for (int i = 0; i < count && Clock::now() < deadline; ++i) {
      Clock::time_point a = Clock::now();
      bool ok;
      if (phase == "create") {
        ok = Create(w, t, i);
        if (ok) w.created = i + 1;
      } else if (phase == "stat") {
        ok = Stat(w, t, i);
      } else if (phase == "rename") {
        ok = Rename(w, t, i);
      } else {
        ok = Remove(w, t, i);
      }
      w.lat_us.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - a)
              .count()));
      if (ok) ++w.ops;
      if (phase == "create" && !ok) break;  // later names would not exist
    }
  }

  bool Create(Worker& w, int t, int i) {
    Client& c = *w.client;
    std::string name = w.Name(t, i);
    if (o_.dirs) {
      auto r = c.Mkdir(w.dir, name, 0755);
      if (!r.ok()) w.Error("mkdir " + name + ": " + std::to_string(r.status) + " " + r.error);
      return r.ok();
    }
    auto o = c.OpenFile(w.dir, name, OPEN4_SHARE_ACCESS_BOTH, 0, true,
                        "owner-" + std::to_string(t));
    if (!o.ok()) {
      w.Error("open " + name + ": " + std::to_string(o.status) + " " + o.error);
      return false;
    }
    bool ok = true;
    if (o_.size > 0) {
      auto wr = c.WriteFile(o.value.fh, o.value.stateid, 0, payload_, FILE_SYNC4);
      if (!wr.ok() || wr.value.count != o_.size) {
        w.Error("write " + name + ": " + std::to_string(wr.status) + " " + wr.error);
        ok = false;
      } else if (wr.value.committed != FILE_SYNC4) {
        // The server may answer less stable than asked: commit then.
        auto cm = c.CommitFile(o.value.fh);
        if (!cm.ok()) {
          w.Error("commit " + name + ": " + std::to_string(cm.status));
          ok = false;
        }
      }
    }
    auto cl = c.CloseFile(o.value.fh, o.value.stateid);
    if (!cl.ok()) {
      w.Error("close " + name + ": " + std::to_string(cl.status) + " " + cl.error);
      ok = false;
    }
    return ok;
  }

  bool Stat(Worker& w, int t, int i) {
    Compound cp;
    cp.PutFh(w.dir).Lookup(w.Name(t, i)).GetAttr(StatBits());
    auto r = w.client->Call(cp);
    if (!r.ok() || r->status() != NFS4_OK) {
      w.Error("stat " + w.Name(t, i) + ": " + StatusText(r));
      return false;
    }
    return true;
  }

  bool Rename(Worker& w, int t, int i) {
    std::string from = w.Name(t, i);
    std::string to = "r" + from.substr(1);
    auto r = w.client->Rename(w.dir, from, w.dir, to);
    if (!r.ok()) w.Error("rename " + from + ": " + std::to_string(r.status) + " " + r.error);
    return r.ok();
  }

  bool Remove(Worker& w, int t, int i) {
    auto r = w.client->Remove(w.dir, w.Name(t, i));
    if (!r.ok()) w.Error("remove " + w.Name(t, i) + ": " + std::to_string(r.status) + " " + r.error);
    return r.ok();
  }

  // The whole directory with attributes; ops are entries.
  void ReadDir(Worker& w, Clock::time_point deadline) {
    uint64_t cookie = 0;
    verifier4 verf{};
    for (;;) {
      if (Clock::now() >= deadline) return;
      Compound cp;
      cp.PutFh(w.dir).ReadDir(cookie, verf, o_.readdir_bytes, o_.readdir_bytes,
                              StatBits());
      Clock::time_point a = Clock::now();
      auto r = w.client->Call(cp);
      w.lat_us.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - a)
              .count()));
      if (!r.ok() || r->status() != NFS4_OK) {
        w.Error("readdir: " + StatusText(r));
        return;
      }
      const READDIR4resok& ok = r->op(2).nfs_resop4_u.opreaddir.READDIR4res_u.resok4;
      std::memcpy(verf, ok.cookieverf, NFS4_VERIFIER_SIZE);
      for (const entry4* e = ok.reply.entries; e; e = e->nextentry) {
        ++w.ops;
        cookie = e->cookie;
      }
      if (ok.reply.eof) return;
      if (!ok.reply.entries) {
        w.Error("readdir: no entries and no eof");
        return;
      }
    }
  }

  Options o_;
  std::vector<Worker> workers_;
  Fh root_, top_;
  std::string top_name_;
  const std::string payload_;  // what each file gets
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"nfs-load: mdtest-like NFSv4.1 load generator"};
  app.add_option("--server", o.server, "HOST:PORT of the NFSv4.1 server");
  app.add_option("--threads", o.threads, "threads, each with its own session")
      ->check(CLI::Range(1, 256));
  app.add_option("--files", o.files, "files (or directories) per thread")
      ->check(CLI::Range(1, 10000000));
  app.add_option("--phases", o.phases,
                 "comma-separated: create,stat,readdir,rename,remove");
  app.add_flag("--dirs", o.dirs, "directories (CREATE NF4DIR) instead of files");
  app.add_flag("--shared-dir", o.shared_dir, "one directory for all threads");
  app.add_option("--size", o.size, "bytes written (FILE_SYNC) into each file");
  app.add_option("--phase-seconds", o.phase_seconds, "time limit of each phase");
  app.add_option("--readdir-bytes", o.readdir_bytes, "READDIR maxcount");
  app.add_flag("--json", o.json, "one JSON line with every phase");
  app.add_flag("--keep", o.keep, "leave what was made (no cleanup at the end)");
  app.add_option("--top", o.top,
                 "top directory's name; an existing one (from --keep) is reused");
  CLI11_PARSE(app, argc, argv);
  if (o.dirs && o.size > 0) {
    std::fprintf(stderr, "nfs-load: --size needs files, not --dirs\n");
    return 2;
  }
  std::vector<std::string> phases;
  for (size_t p = 0; p <= o.phases.size();) {
    size_t comma = std::min(o.phases.find(',', p), o.phases.size());
    std::string ph = o.phases.substr(p, comma - p);
    if (ph != "create" && ph != "stat" && ph != "readdir" && ph != "rename" &&
        ph != "remove") {
      std::fprintf(stderr, "nfs-load: unknown phase '%s'\n", ph.c_str());
      return 2;
    }
    phases.push_back(ph);
    p = comma + 1;
  }

  Load load(o);
  if (std::string e = load.Setup(); !e.empty()) {
    std::fprintf(stderr, "nfs-load: %s\n", e.c_str());
    return 1;
  }
  std::vector<PhaseResult> results;
  uint64_t errors = 0;
  for (const std::string& ph : phases) {
    PhaseResult r = load.Run(ph);
    errors += r.errors;
    if (r.errors > 0) {
      std::fprintf(stderr, "nfs-load: %s: %llu errors, first: %s\n", ph.c_str(),
                   static_cast<unsigned long long>(r.errors), r.first_error.c_str());
    }
    if (!o.json) {
      std::printf("%-8s %9llu ops %8.2f s %10.0f ops/s  p50 %7.0f us  p99 %7.0f us  errors %llu\n",
                  ph.c_str(), static_cast<unsigned long long>(r.ops), r.seconds,
                  r.seconds > 0 ? static_cast<double>(r.ops) / r.seconds : 0,
                  r.p50_us, r.p99_us, static_cast<unsigned long long>(r.errors));
      std::fflush(stdout);
    }
    results.push_back(std::move(r));
  }
  if (!o.keep) load.Cleanup();
  if (o.json) {
    std::string out = "{\"server\": \"" + o.server + "\", \"threads\": " +
                      std::to_string(o.threads) + ", \"files\": " +
                      std::to_string(o.files) + ", \"dirs\": " +
                      (o.dirs ? "true" : "false") + ", \"shared_dir\": " +
                      (o.shared_dir ? "true" : "false") + ", \"size\": " +
                      std::to_string(o.size) + ", \"phases\": {";
    for (size_t i = 0; i < results.size(); ++i) {
      const PhaseResult& r = results[i];
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    "%s\"%s\": {\"ops\": %llu, \"errors\": %llu, \"calls\": %llu, "
                    "\"seconds\": %.3f, \"ops_per_s\": %.1f, \"p50_us\": %.0f, "
                    "\"p99_us\": %.0f}",
                    i ? ", " : "", r.name.c_str(),
                    static_cast<unsigned long long>(r.ops),
                    static_cast<unsigned long long>(r.errors),
                    static_cast<unsigned long long>(r.calls), r.seconds,
                    r.seconds > 0 ? static_cast<double>(r.ops) / r.seconds : 0,
                    r.p50_us, r.p99_us);
      out += buf;
    }
    out += "}}";
    std::printf("%s\n", out.c_str());
  }
  return errors == 0 ? 0 : 1;
}
