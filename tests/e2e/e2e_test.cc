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

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "tests/test_util.h"

extern char** environ;

namespace ns::testing {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Tail(const std::string& s, size_t max_bytes) {
  return s.size() <= max_bytes ? s : "...\n" + s.substr(s.size() - max_bytes);
}

// A child process, fork/exec'ed with its stdout and stderr going to a file
// (or a pipe the caller reads), killed by the kernel if we die first.
// Stopped by its pid in the destructor if still running.
class Child {
 public:
  // Starts argv[0] (a path) with `out_path` as stdout/stderr, or, if
  // out_path is empty, a pipe readable through out_fd().
  bool Start(const std::vector<std::string>& argv, const std::string& out_path,
             std::string* error) {
    std::vector<std::string> strs = argv;
    std::vector<char*> ptrs;
    for (auto& s : strs) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
    int out = -1;
    int pipefd[2] = {-1, -1};
    if (out_path.empty()) {
      if (::pipe2(pipefd, O_CLOEXEC) != 0) {
        *error = std::string("pipe: ") + std::strerror(errno);
        return false;
      }
      out = pipefd[1];
    } else {
      out = ::open(out_path.c_str(),
                   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (out < 0) {
        *error = "open " + out_path + ": " + std::strerror(errno);
        return false;
      }
    }
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls from here on.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);  // parent already gone
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
      ::dup2(out, 1);
      ::dup2(out, 2);
      // We block stop signals nowhere, but gtest may have; start clean.
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execve(ptrs[0], ptrs.data(), environ);
      ::_exit(127);
    }
    ::close(out);
    if (pid < 0) {
      if (pipefd[0] >= 0) ::close(pipefd[0]);
      *error = std::string("fork: ") + std::strerror(errno);
      return false;
    }
    pid_ = pid;
    out_fd_ = pipefd[0];
    return true;
  }

  // Reaps the child if it has exited; true (and the wait status) if so.
  bool Exited(int* status) {
    if (pid_ <= 0) {
      *status = status_;
      return true;
    }
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      status_ = st;
      *status = st;
      return true;
    }
    return false;
  }

  // SIGTERM, then SIGKILL after `grace`; returns the wait status.
  int Stop(std::chrono::milliseconds grace) {
    int st = 0;
    if (Exited(&st)) return st;
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + grace;
    while (Clock::now() < deadline) {
      if (Exited(&st)) return st;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    status_ = st;
    return st;
  }

  void Kill() {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
  }

  ~Child() {
    if (pid_ > 0) Stop(std::chrono::seconds(5));
    if (out_fd_ >= 0) ::close(out_fd_);
  }

  int out_fd() const { return out_fd_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  int out_fd_ = -1;
};

std::string DescribeStatus(int st) {
  if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("signal ") + strsignal(WTERMSIG(st));
  return "status " + std::to_string(st);
}

// Runs a command to completion (bounded), returning its exit status and
// combined output.
struct Ran {
  int status = -1;
  std::string output;
};
Ran RunCommand(const std::vector<std::string>& argv, const std::string& log,
               std::chrono::seconds timeout) {
  Ran r;
  Child c;
  std::string error;
  if (!c.Start(argv, log, &error)) {
    r.output = error;
    return r;
  }
  const auto deadline = Clock::now() + timeout;
  int st = 0;
  while (!c.Exited(&st)) {
    if (Clock::now() > deadline) {
      st = c.Stop(std::chrono::seconds(2));
      r.output = "timed out after " + std::to_string(timeout.count()) + " s\n";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  r.status = st;
  r.output += ReadFile(log);
  return r;
}

bool CanConnect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// What the guest said, split by the markers session.sh prints.
struct StepResult {
  bool ended = false;
  bool passed = false;
  Clock::time_point begin, end;
  std::string output;
};
struct GuestReport {
  std::optional<Clock::time_point> booted, mounted, done;
  std::vector<std::string> plan;
  std::map<std::string, StepResult> steps;
  std::string current;     // step between BEGIN and END
  std::string all_output;  // everything, with host timestamps
  bool timed_out = false;
  int qemu_status = 0;

  void Line(const std::string& line, Clock::time_point now) {
    std::istringstream in(line);
    std::string tag, what, name, verdict;
    in >> tag >> what;
    if (tag == "E2E") {
      if (what == "BOOTED") booted = now;
      if (what == "MOUNTED") mounted = now;
      if (what == "DONE") done = now;
      if (what == "PLAN") {
        while (in >> name) plan.push_back(name);
      }
      if (what == "BEGIN" && in >> name) {
        current = name;
        steps[name].begin = now;
        return;
      }
      if (what == "END" && in >> name >> verdict) {
        StepResult& s = steps[name];
        s.ended = true;
        s.passed = verdict == "PASS";
        s.end = now;
        current.clear();
        return;
      }
    }
    if (!current.empty()) steps[current].output += line + "\n";
  }
};

class E2eTest : public ::testing::TestWithParam<std::string> {};

TEST_P(E2eTest, ShellSessionOverNfs41) {
  const std::string dialect = GetParam();
  const auto t_start = Clock::now();
  const std::string scratch = ScratchDir();
  ASSERT_FALSE(scratch.empty());
  const std::string tag = scratch + "/" + dialect;

  // 1. The guest's kernel and initramfs (downloaded once per build tree).
  Ran assets = RunCommand({"/bin/bash", E2E_SOURCE_DIR "/guest_assets.sh",
                           E2E_CACHE_DIR},
                          tag + "-assets.log", std::chrono::seconds(1200));
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

  // 3. nfs41d on a free port; another process may take the port between
  // our probe and its bind, so try a few.
  Child server;
  int port = -1;
  const std::string server_log = tag + "-nfs41d.log";
  for (int attempt = 0; attempt < 3 && port < 0; ++attempt) {
    int candidate = FreeLocalPort();
    ASSERT_GT(candidate, 0);
    std::string error;
    ASSERT_TRUE(server.Start({NFS41D_BINARY, "--listen",
                              "127.0.0.1:" + std::to_string(candidate), "--db",
                              uri, "--data-dir", tag + "-data"},
                             server_log, &error))
        << error;
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    int st = 0;
    while (Clock::now() < deadline && !server.Exited(&st)) {
      if (CanConnect(candidate)) {
        port = candidate;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (port < 0) server.Stop(std::chrono::seconds(5));
  }
  ASSERT_GT(port, 0) << "nfs41d did not start:\n"
                     << Tail(ReadFile(server_log), 3000);
  const auto t_server = Clock::now();

  // 4. Boot the guest and read its console until it powers off.
  std::vector<std::string> qemu = {
      "/usr/bin/qemu-system-x86_64", "-machine", "pc", "-accel", "tcg",
      "-cpu", "max", "-smp", "1", "-m", "1024", "-display", "none",
      "-nodefaults", "-no-user-config", "-no-reboot", "-serial", "stdio",
      "-netdev", "user,id=n0,ipv6=off", "-device", "virtio-net-pci,netdev=n0",
      "-kernel", E2E_CACHE_DIR "/vmlinuz", "-initrd",
      E2E_CACHE_DIR "/initrd.img", "-append",
      "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init E2E_PORT=" +
          std::to_string(port)};
  if (const char* s = std::getenv("E2E_STEPS"); s != nullptr && *s != '\0') {
    qemu.back() += std::string(" E2E_STEPS=") + s;
  }
  if (const char* s = std::getenv("E2E_STEP_TIMEOUT"); s != nullptr && *s) {
    qemu.back() += std::string(" E2E_STEP_TIMEOUT=") + s;
  }
  const bool quiet = EnvInt("E2E_QUIET", 0) != 0;
  const auto timeout = std::chrono::seconds(EnvInt("E2E_TIMEOUT", 1500));
  GuestReport guest;
  Child vm;
  {
    std::string error;
    ASSERT_TRUE(vm.Start(qemu, "", &error)) << error;
  }
  const auto t_boot = Clock::now();
  const auto deadline = t_boot + timeout;
  std::string partial;
  auto emit = [&](std::string line, Clock::time_point now) {
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) {
      line.pop_back();
    }
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%7.2f| ", Seconds(now - t_boot));
    guest.all_output += stamp + line + "\n";
    if (!quiet) std::printf("[%s] %s%s\n", dialect.c_str(), stamp, line.c_str());
    guest.Line(line, now);
  };
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) {
      guest.timed_out = true;
      vm.Kill();
      break;
    }
    pollfd p{vm.out_fd(), POLLIN, 0};
    int wait_ms = static_cast<int>(std::min<int64_t>(
        1000, std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - now).count() + 1));
    int r = ::poll(&p, 1, wait_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(vm.out_fd(), buf, sizeof buf);
    if (n <= 0) break;  // qemu closed its output: it has exited
    partial.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = partial.find('\n')) != std::string::npos) {
      emit(partial.substr(0, nl), Clock::now());
      partial.erase(0, nl + 1);
    }
  }
  if (!partial.empty()) emit(partial, Clock::now());
  guest.qemu_status = vm.Stop(std::chrono::seconds(10));
  const auto t_end = Clock::now();

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
  std::ostringstream t;
  char line[160];
  auto row = [&](const std::string& what, double secs, const std::string& note) {
    std::snprintf(line, sizeof line, "  %-22s %8.1f s  %s\n", what.c_str(), secs,
                  note.c_str());
    t << line;
  };
  t << "e2e timings (" << dialect << ", nfs41d on 127.0.0.1:" << port << "):\n";
  row("guest assets", Seconds(t_assets - t_start), "guest_assets.sh (cached after the first run)");
  row("namespace", Seconds(t_namespace - t_assets),
      dialect == "postgresql" ? "throwaway cluster, schema, /bigdir"
                              : "schema, /bigdir (10,000 files)");
  row("nfs41d start", Seconds(t_server - t_namespace), "");
  if (guest.booted) row("boot", Seconds(*guest.booted - t_boot), "qemu start to init");
  if (guest.booted && guest.mounted) {
    row("mount", Seconds(*guest.mounted - *guest.booted), "modules, network, mount");
  }
  for (const std::string& name : guest.plan) {
    auto it = guest.steps.find(name);
    if (it == guest.steps.end()) {
      row(name, 0, "did not run");
    } else if (!it->second.ended) {
      row(name, Seconds(t_end - it->second.begin), "DID NOT FINISH");
    } else {
      row(name, Seconds(it->second.end - it->second.begin),
          it->second.passed ? "pass" : "FAIL");
    }
  }
  row("guest total", Seconds(t_end - t_boot), "qemu start to exit");
  row("test total", Seconds(t_end - t_start), "");
  std::printf("%s", t.str().c_str());
  std::fflush(stdout);
  // ctest shows a passing test's output only with -V; scripts/test.sh prints
  // these files after the suite so every run shows where the time went.
  std::ofstream(std::string(E2E_TIMINGS_DIR) + "/timings-" + dialect + ".txt")
      << t.str();

  // 7. The verdict.
  const std::string console_tail = Tail(guest.all_output, 6000);
  ASSERT_FALSE(guest.timed_out && !guest.mounted)
      << "guest timed out before mounting\n" << console_tail;
  ASSERT_TRUE(guest.booted) << "guest never reached init ("
                            << DescribeStatus(guest.qemu_status) << ")\n"
                            << console_tail;
  ASSERT_TRUE(guest.mounted) << "the guest could not mount nfs41d\n"
                             << console_tail << "\nnfs41d log:\n" << server_tail;
  ASSERT_FALSE(guest.plan.empty()) << "the guest announced no steps\n"
                                   << console_tail;
  for (const std::string& name : guest.plan) {
    auto it = guest.steps.find(name);
    if (it == guest.steps.end()) {
      ADD_FAILURE() << "step " << name << " never ran";
      continue;
    }
    const StepResult& s = it->second;
    EXPECT_TRUE(s.ended && s.passed)
        << "step " << name
        << (s.ended ? " FAILED" : " did not finish (guest timed out or crashed)")
        << "; its output:\n" << s.output;
  }
  EXPECT_FALSE(guest.timed_out) << "guest killed after " << timeout.count()
                                << " s\n" << console_tail;
  EXPECT_TRUE(guest.done) << "the session did not finish (no E2E DONE)\n"
                          << console_tail;
  EXPECT_TRUE(WIFEXITED(guest.qemu_status) &&
              WEXITSTATUS(guest.qemu_status) == 0)
      << "qemu: " << DescribeStatus(guest.qemu_status);
}

INSTANTIATE_TEST_SUITE_P(Backends, E2eTest, ::testing::ValuesIn(Dialects()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace ns::testing
