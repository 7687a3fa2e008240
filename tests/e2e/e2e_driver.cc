// The end-to-end driver (e2e_driver.h).

#include "tests/e2e/e2e_driver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "tests/pg_harness.h"  // FreeLocalPort

extern char** environ;

namespace ns::testing::e2e {

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

std::string DescribeStatus(int st) {
  if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("signal ") + strsignal(WTERMSIG(st));
  return "status " + std::to_string(st);
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

std::string HttpGet(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  std::string resp;
  const std::string req = "GET " + path + " HTTP/1.0\r\n\r\n";
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(req.size())) {
    char buf[8192];
    for (int i = 0; i < 4096; ++i) {  // bounded: 32 MiB
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      resp.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  const size_t body = resp.find("\r\n\r\n");
  if (resp.rfind("HTTP/1.", 0) != 0 || resp.find(" 200 ") > resp.find('\n') ||
      body == std::string::npos) {
    return "";
  }
  return resp.substr(body + 4);
}

// ---- Child -------------------------------------------------------------------

bool Child::Start(const std::vector<std::string>& argv,
                  const std::string& out_path, std::string* error,
                  bool stdin_pipe) {
  std::vector<std::string> strs = argv;
  std::vector<char*> ptrs;
  for (auto& s : strs) ptrs.push_back(s.data());
  ptrs.push_back(nullptr);
  int out = -1;
  int pipefd[2] = {-1, -1};
  int infd[2] = {-1, -1};
  if (stdin_pipe && ::pipe2(infd, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  auto close_in = [&] {
    if (infd[0] >= 0) ::close(infd[0]);
    if (infd[1] >= 0) ::close(infd[1]);
  };
  if (out_path.empty()) {
    if (::pipe2(pipefd, O_CLOEXEC) != 0) {
      *error = std::string("pipe: ") + std::strerror(errno);
      close_in();
      return false;
    }
    out = pipefd[1];
  } else {
    out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                 0644);
    if (out < 0) {
      *error = "open " + out_path + ": " + std::strerror(errno);
      close_in();
      return false;
    }
  }
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // parent already gone
    if (infd[0] >= 0) {
      ::dup2(infd[0], 0);
    } else {
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
    }
    ::dup2(out, 1);
    ::dup2(out, 2);
    // gtest may block signals; start clean.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(ptrs[0], ptrs.data(), environ);
    ::_exit(127);
  }
  ::close(out);
  if (infd[0] >= 0) ::close(infd[0]);
  if (pid < 0) {
    if (pipefd[0] >= 0) ::close(pipefd[0]);
    if (infd[1] >= 0) ::close(infd[1]);
    *error = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  pid_ = pid;
  out_fd_ = pipefd[0];
  in_fd_ = infd[1];
  return true;
}

bool Child::Exited(int* status) {
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

int Child::Stop(std::chrono::milliseconds grace) {
  int st = 0;
  if (Exited(&st)) return st;
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + grace;
  while (Clock::now() < deadline) {
    if (Exited(&st)) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return KillAndWait();
}

void Child::Kill() {
  if (pid_ > 0) ::kill(pid_, SIGKILL);
}

int Child::KillAndWait() {
  int st = 0;
  if (Exited(&st)) return st;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &st, 0);
  pid_ = -1;
  status_ = st;
  return st;
}

bool Child::WriteInput(const std::string& text) {
  if (in_fd_ < 0) return false;
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(in_fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

Child::~Child() {
  if (pid_ > 0) Stop(std::chrono::seconds(5));
  if (out_fd_ >= 0) ::close(out_fd_);
  if (in_fd_ >= 0) ::close(in_fd_);
}

// ---- commands and servers ------------------------------------------------------

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

int StartOnFreePort(Child* child,
                    const std::function<std::vector<std::string>(int)>& argv,
                    const std::string& log, std::string* error) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int candidate = FreeLocalPort();
    if (candidate <= 0) {
      *error = "no free port";
      return -1;
    }
    if (!child->Start(argv(candidate), log, error)) return -1;
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    int st = 0;
    while (Clock::now() < deadline && !child->Exited(&st)) {
      if (CanConnect(candidate)) return candidate;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    child->Stop(std::chrono::seconds(5));
  }
  *error = "did not start:\n" + Tail(ReadFile(log), 3000);
  return -1;
}

Ran PrepareGuestAssets(const std::string& log) {
  return RunCommand({"/bin/bash", E2E_SOURCE_DIR "/guest_assets.sh",
                     E2E_CACHE_DIR},
                    log, std::chrono::seconds(1200));
}

// ---- the guest -------------------------------------------------------------------

void GuestReport::Line(const std::string& line, Clock::time_point now) {
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

GuestReport RunGuest(const GuestOptions& options) {
  std::vector<std::string> qemu = {
      "/usr/bin/qemu-system-x86_64", "-machine", "pc", "-accel", "tcg",
      "-cpu", "max", "-smp", "1", "-m", "1024", "-display", "none",
      "-nodefaults", "-no-user-config", "-no-reboot", "-serial", "stdio",
      "-netdev", "user,id=n0,ipv6=off", "-device", "virtio-net-pci,netdev=n0",
      "-kernel", E2E_CACHE_DIR "/vmlinuz", "-initrd",
      E2E_CACHE_DIR "/initrd.img", "-append",
      // no_timer_check: on a loaded host the emulated CPU is too slow for
      // the kernel's IO-APIC timer check, which then panics ("IO-APIC +
      // timer doesn't work!"); the emulated timer is fine.
      "console=ttyS0 quiet loglevel=3 panic=-1 no_timer_check rdinit=/init "
      "E2E_PORT=" + std::to_string(options.port)};
  std::string steps = options.steps;
  if (const char* s = std::getenv("E2E_STEPS");
      steps.empty() && s != nullptr && *s != '\0') {
    steps = s;
  }
  if (!steps.empty()) qemu.back() += " E2E_STEPS=" + steps;
  if (const char* s = std::getenv("E2E_STEP_TIMEOUT"); s != nullptr && *s) {
    qemu.back() += std::string(" E2E_STEP_TIMEOUT=") + s;
  }
  const bool quiet = EnvInt("E2E_QUIET", 0) != 0;
  const auto timeout = std::chrono::seconds(EnvInt("E2E_TIMEOUT", 1500));
  GuestReport guest;
  Child vm;
  guest.start = Clock::now();
  {
    std::string error;
    if (!vm.Start(qemu, "", &error, /*stdin_pipe=*/true)) {
      guest.all_output = "cannot start qemu: " + error;
      guest.end = Clock::now();
      return guest;
    }
  }
  const auto deadline = guest.start + timeout;
  std::string partial;
  auto emit = [&](std::string line, Clock::time_point now) {
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) {
      line.pop_back();
    }
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%7.2f| ", Seconds(now - guest.start));
    guest.all_output += stamp + line + "\n";
    if (!quiet) {
      std::printf("[%s] %s%s\n", options.label.c_str(), stamp, line.c_str());
      std::fflush(stdout);
    }
    guest.Line(line, now);
    // The console may carry kernel messages before the marker on the
    // same line: look for it anywhere.
    static constexpr char kHost[] = "E2E HOST ";
    if (size_t at = line.find(kHost); at != std::string::npos) {
      const std::string request = line.substr(at + sizeof kHost - 1);
      std::string reply = options.on_host_request
                              ? options.on_host_request(request)
                              : std::string("fail no host actions");
      guest.all_output += "host: " + request + " -> " + reply + "\n";
      if (!quiet) {
        std::printf("[%s] host: %s -> %s\n", options.label.c_str(),
                    request.c_str(), reply.c_str());
      }
      vm.WriteInput(reply + "\n");
    }
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
  guest.end = Clock::now();
  return guest;
}

// ---- timings and verdict ------------------------------------------------------------

void Timings::Row(const std::string& what, double secs,
                  const std::string& note) {
  char line[200];
  std::snprintf(line, sizeof line, "  %-22s %8.1f s  %s\n", what.c_str(), secs,
                note.c_str());
  out_ << line;
}

void Timings::Guest(const GuestReport& g) {
  if (g.booted) Row("boot", Seconds(*g.booted - g.start), "qemu start to init");
  if (g.booted && g.mounted) {
    Row("mount", Seconds(*g.mounted - *g.booted), "modules, network, mount");
  }
  for (const std::string& name : g.plan) {
    auto it = g.steps.find(name);
    if (it == g.steps.end()) {
      Row(name, 0, "did not run");
    } else if (!it->second.ended) {
      Row(name, Seconds(g.end - it->second.begin), "DID NOT FINISH");
    } else {
      Row(name, Seconds(it->second.end - it->second.begin),
          it->second.passed ? "pass" : "FAIL");
    }
  }
  Row("guest total", Seconds(g.end - g.start), "qemu start to exit");
}

void Timings::PrintAndSave(const std::string& name) {
  std::printf("%s", out_.str().c_str());
  std::fflush(stdout);
  // ctest shows a passing test's output only with -V.
  std::ofstream(std::string(E2E_TIMINGS_DIR) + "/timings-" + name + ".txt")
      << out_.str();
}

void ExpectGuestPassed(const GuestReport& g, const std::string& server_tail) {
  const std::string console_tail = Tail(g.all_output, 6000);
  if (g.timed_out && !g.mounted) {
    ADD_FAILURE() << "guest timed out before mounting\n" << console_tail;
    return;
  }
  if (!g.booted) {
    ADD_FAILURE() << "guest never reached init (" << DescribeStatus(g.qemu_status)
                  << ")\n" << console_tail;
    return;
  }
  if (!g.mounted) {
    ADD_FAILURE() << "the guest could not mount nfs41d\n" << console_tail
                  << "\nnfs41d log:\n" << server_tail;
    return;
  }
  if (g.plan.empty()) {
    ADD_FAILURE() << "the guest announced no steps\n" << console_tail;
    return;
  }
  for (const std::string& name : g.plan) {
    auto it = g.steps.find(name);
    if (it == g.steps.end()) {
      ADD_FAILURE() << "step " << name << " never ran";
      continue;
    }
    const StepResult& s = it->second;
    EXPECT_TRUE(s.ended && s.passed)
        << "step " << name
        << (s.ended ? " FAILED" : " did not finish (guest timed out or crashed)")
        << "; its output:\n" << s.output;
  }
  EXPECT_FALSE(g.timed_out) << "guest killed after E2E_TIMEOUT\n"
                            << console_tail;
  EXPECT_TRUE(g.done) << "the session did not finish (no E2E DONE)\n"
                      << console_tail;
  EXPECT_TRUE(WIFEXITED(g.qemu_status) && WEXITSTATUS(g.qemu_status) == 0)
      << "qemu: " << DescribeStatus(g.qemu_status);
}

}  // namespace ns::testing::e2e
