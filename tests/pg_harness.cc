#include "tests/pg_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace ns::testing {
namespace {

namespace fs = std::filesystem;

// The newest /usr/lib/postgresql/<version>/bin that has initdb, or the
// directory named by $NSTEST_PG_BINDIR.
std::string FindPgBinDir() {
  if (const char* env = std::getenv("NSTEST_PG_BINDIR"); env && *env) {
    return env;
  }
  std::string best;
  double best_version = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    char* end = nullptr;
    double v = std::strtod(name.c_str(), &end);
    if (end == name.c_str()) continue;
    fs::path bin = entry.path() / "bin";
    if (!fs::exists(bin / "initdb", ec) || !fs::exists(bin / "pg_ctl", ec)) {
      continue;
    }
    if (v > best_version) {
      best_version = v;
      best = bin.string();
    }
  }
  return best;
}

std::string ReadTail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes) s = "..." + s.substr(s.size() - max_bytes);
  return s;
}

// argv / envp as C arrays built before fork(), so the child only calls
// async-signal-safe functions.
struct CArgs {
  explicit CArgs(const std::vector<std::string>& v) : strs(v) {
    for (auto& s : strs) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
  }
  std::vector<std::string> strs;
  std::vector<char*> ptrs;
};

std::vector<std::string> EnvWithCLocale() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with("LC_ALL=") || kv.starts_with("LANG=") ||
        kv.starts_with("PGDATA=") || kv.starts_with("PGPORT=")) {
      continue;
    }
    env.emplace_back(kv);
  }
  env.emplace_back("LC_ALL=C");
  env.emplace_back("LANG=C");
  return env;
}

}  // namespace

int FreeLocalPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
  }
  ::close(fd);
  return port;
}

std::unique_ptr<PgCluster> PgCluster::Create(std::string* error) {
  std::unique_ptr<PgCluster> c(new PgCluster());
  ::testing::AssertionResult r = c->Init();
  if (!r) {
    *error = r.message();
    return nullptr;
  }
  return c;
}

std::unique_ptr<PgCluster> PgCluster::CreateStandby(PgCluster& primary,
                                                    std::string* error) {
  std::unique_ptr<PgCluster> c(new PgCluster());
  ::testing::AssertionResult r = c->MakeBase();
  if (r) {
    // -R writes standby.signal and primary_conninfo; -X stream copies the
    // WAL made during the copy, so the standby starts consistent.
    const int rc = c->Run({c->bindir_ + "/pg_basebackup", "-h", "127.0.0.1",
                           "-p", std::to_string(primary.port_), "-U", "nstest",
                           "-D", c->datadir_, "-R", "-X", "stream",
                           "--no-sync", "-c", "fast"});
    if (rc != 0) {
      r = ::testing::AssertionFailure()
          << "pg_basebackup failed (exit " << rc << ")\n"
          << c->LogTail();
    } else {
      r = c->StartOnFreePort();
    }
  }
  if (!r) {
    *error = r.message();
    return nullptr;
  }
  return c;
}

::testing::AssertionResult PgCluster::MakeBase() {
  bindir_ = FindPgBinDir();
  if (bindir_.empty()) {
    return ::testing::AssertionFailure()
           << "PostgreSQL server binaries not found under "
              "/usr/lib/postgresql/*/bin (install postgresql, or set "
              "NSTEST_PG_BINDIR)";
  }
  char tmpl[] = "/tmp/nstest-pg-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    return ::testing::AssertionFailure()
           << "mkdtemp /tmp/nstest-pg-XXXXXX: " << std::strerror(errno);
  }
  base_ = tmpl;
  datadir_ = base_ + "/data";
  StartWatchdog();
  if (::geteuid() == 0) {
    // initdb refuses to run as root: the cluster belongs to `postgres`.
    struct passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      return ::testing::AssertionFailure()
             << "running as root but there is no `postgres` system user to "
                "own the throwaway cluster";
    }
    if (::chown(base_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return ::testing::AssertionFailure()
             << "chown " << base_ << " to postgres: " << std::strerror(errno);
    }
    as_postgres_ = true;
  }
  ::chmod(base_.c_str(), 0700);
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult PgCluster::Init() {
  ::testing::AssertionResult base = MakeBase();
  if (!base) return base;
  int rc = Run({bindir_ + "/initdb", "-D", datadir_, "-A", "trust", "-U",
                "nstest", "-E", "UTF8", "--locale=C", "--no-sync"});
  if (rc != 0) {
    return ::testing::AssertionFailure()
           << "initdb failed (exit " << rc << ") in " << base_ << "\n"
           << LogTail();
  }
  return StartOnFreePort();
}

::testing::AssertionResult PgCluster::StartOnFreePort() {
  ::testing::AssertionResult started = ::testing::AssertionFailure();
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = FreeLocalPort();
    if (port_ <= 0) {
      return ::testing::AssertionFailure()
             << "cannot pick a free port on 127.0.0.1: " << std::strerror(errno);
    }
    started = Start();
    if (started) break;  // else maybe someone took the port: try another
  }
  return started;
}

void PgCluster::StartWatchdog() {
  // If this process dies without running the destructor, the watchdog sees
  // EOF on its stdin and stops the server and removes the directory. On a
  // normal exit the destructor writes "done" first.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return;
  const std::string script =
      "read x; [ \"$x\" = done ] && exit 0; "
      "if [ \"$4\" = 1 ]; then runuser -u postgres -- \"$1/pg_ctl\" -D \"$2\" "
      "-m immediate stop; else \"$1/pg_ctl\" -D \"$2\" -m immediate stop; fi; "
      "rm -rf \"$3\"";
  CArgs args({"/bin/sh", "-c", script, "nstest-pg-watchdog", bindir_,
              datadir_, base_, ::geteuid() == 0 ? "1" : "0"});
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    ::dup2(fds[0], 0);
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    ::execve("/bin/sh", args.ptrs.data(), environ);
    ::_exit(127);
  }
  ::close(fds[0]);
  if (pid < 0) {
    ::close(fds[1]);
    return;
  }
  watchdog_fd_ = fds[1];
  watchdog_pid_ = pid;
}

int PgCluster::Run(const std::vector<std::string>& argv) {
  std::vector<std::string> full;
  if (as_postgres_) full = {"/usr/sbin/runuser", "-u", "postgres", "--"};
  if (as_postgres_ && !fs::exists("/usr/sbin/runuser")) full[0] = "runuser";
  full.insert(full.end(), argv.begin(), argv.end());
  CArgs args(full);
  CArgs env(EnvWithCLocale());
  const std::string log = base_ + "/cmd.log";
  int logfd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                     0644);
  if (logfd >= 0) {
    std::string line = "$";
    for (const auto& a : full) line += " " + a;
    line += "\n";
    ssize_t n = ::write(logfd, line.data(), line.size());
    (void)n;
  }
  const char* cwd = base_.c_str();
  pid_t pid = ::fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    if (logfd >= 0) {
      ::dup2(logfd, 1);
      ::dup2(logfd, 2);
    }
    if (::chdir(cwd) != 0) ::_exit(126);
    if (args.ptrs[0][0] == '/') {
      ::execve(args.ptrs[0], args.ptrs.data(), env.ptrs.data());
    } else {
      ::execvpe(args.ptrs[0], args.ptrs.data(), env.ptrs.data());
    }
    ::_exit(127);
  }
  if (logfd >= 0) ::close(logfd);
  if (pid < 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return -1;
}

std::string PgCluster::LogTail() const {
  return "--- " + base_ + "/cmd.log (tail) ---\n" +
         ReadTail(base_ + "/cmd.log", 2000) + "\n--- " + base_ +
         "/postgres.log (tail) ---\n" + ReadTail(base_ + "/postgres.log", 2000);
}

::testing::AssertionResult PgCluster::Start() {
  const std::string opts =
      "-c listen_addresses=127.0.0.1 -p " + std::to_string(port_) + " -k " +
      base_ +
      " -c fsync=off -c max_connections=300 -c full_page_writes=off"
      " -c synchronous_commit=off";
  int rc = Run({bindir_ + "/pg_ctl", "-D", datadir_, "-l",
                base_ + "/postgres.log", "-w", "-t", "60", "-o", opts,
                "start"});
  if (rc != 0) {
    return ::testing::AssertionFailure()
           << "pg_ctl start failed (exit " << rc << ") on port " << port_
           << "\n"
           << LogTail();
  }
  running_ = true;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult PgCluster::Stop() {
  int rc = Run({bindir_ + "/pg_ctl", "-D", datadir_, "-w", "-t", "60", "-m",
                "fast", "stop"});
  if (rc != 0) {
    return ::testing::AssertionFailure()
           << "pg_ctl stop failed (exit " << rc << ")\n"
           << LogTail();
  }
  running_ = false;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult PgCluster::Kill() {
  int rc = Run({bindir_ + "/pg_ctl", "-D", datadir_, "-w", "-t", "60", "-m",
                "immediate", "stop"});
  if (rc != 0) {
    return ::testing::AssertionFailure()
           << "pg_ctl -m immediate stop failed (exit " << rc << ")\n"
           << LogTail();
  }
  running_ = false;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult PgCluster::Promote() {
  int rc = Run({bindir_ + "/pg_ctl", "-D", datadir_, "-w", "-t", "60",
                "promote"});
  if (rc != 0) {
    return ::testing::AssertionFailure()
           << "pg_ctl promote failed (exit " << rc << ")\n"
           << LogTail();
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult PgCluster::Restart() {
  ::testing::AssertionResult r = Stop();
  if (!r) return r;
  return Start();
}

PgCluster::~PgCluster() {
  if (!datadir_.empty() && fs::exists(datadir_ + "/postmaster.pid")) {
    int rc = Run({bindir_ + "/pg_ctl", "-D", datadir_, "-w", "-t", "30", "-m",
                  "immediate", "stop"});
    if (rc != 0) {
      // Last resort: the postmaster by the pid it recorded.
      std::ifstream pidfile(datadir_ + "/postmaster.pid");
      long pid = 0;
      if (pidfile >> pid && pid > 1) ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
  }
  if (!base_.empty()) {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }
  if (watchdog_fd_ >= 0) {
    ssize_t n = ::write(watchdog_fd_, "done\n", 5);
    (void)n;
    ::close(watchdog_fd_);
    if (watchdog_pid_ > 0) {
      int status;
      ::waitpid(watchdog_pid_, &status, 0);
    }
  }
}

std::string PgCluster::UriFor(const std::string& database) const {
  return "postgresql://nstest@127.0.0.1:" + std::to_string(port_) + "/" +
         database;
}

std::string PgCluster::AdminUri() const {
  return "postgresql://nstest@127.0.0.1:" + std::to_string(port_) +
         "/postgres";
}

std::string PgCluster::NewDatabaseUri() {
  std::string name;
  {
    std::lock_guard<std::mutex> lock(mu_);
    name = "nstest_" + std::to_string(::getpid()) + "_" +
           std::to_string(next_db_++);
  }
  try {
    std::lock_guard<std::mutex> lock(mu_);  // CREATE DATABASE one at a time
    pqxx::connection c(AdminUri());
    pqxx::nontransaction tx(c);
    tx.exec("CREATE DATABASE " + name);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "CREATE DATABASE " << name << " on port " << port_
                  << " failed: " << e.what() << "\n"
                  << LogTail();
    return {};
  }
  return "postgresql://nstest@127.0.0.1:" + std::to_string(port_) + "/" +
         name;
}

}  // namespace ns::testing
