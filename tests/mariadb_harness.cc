#include "tests/mariadb_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/pg_harness.h"  // FreeLocalPort

extern char** environ;

namespace ns::testing {
namespace {

std::string Tail(const std::string& path, size_t max) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max ? "..." + s.substr(s.size() - max) : s;
}

// Forks and execs argv with stdout/stderr appended to `log`; returns the
// pid (the child only makes async-signal-safe calls).
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<std::string> strs = argv;
  std::vector<char*> ptrs;
  for (auto& s : strs) ptrs.push_back(s.data());
  ptrs.push_back(nullptr);
  const int logfd =
      ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    if (logfd >= 0) {
      ::dup2(logfd, 1);
      ::dup2(logfd, 2);
    }
    ::execve(ptrs[0], ptrs.data(), environ);
    ::_exit(127);
  }
  if (logfd >= 0) ::close(logfd);
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool CanConnect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok =
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

std::unique_ptr<MariaDbServer> MariaDbServer::Create(std::string* error) {
  std::unique_ptr<MariaDbServer> s(new MariaDbServer());
  if (!s->Init(error)) return nullptr;
  return s;
}

bool MariaDbServer::Init(std::string* error) {
  for (const char* bin :
       {"/usr/bin/mariadb-install-db", "/usr/sbin/mariadbd"}) {
    if (!std::filesystem::exists(bin)) {
      *error = std::string(bin) + " not found (install mariadb-server)";
      return false;
    }
  }
  char tmpl[] = "/tmp/nstest-mariadb-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    *error = std::string("mkdtemp: ") + std::strerror(errno);
    return false;
  }
  base_ = tmpl;
  ::chmod(base_.c_str(), 0755);
  std::vector<std::string> user;
  if (::geteuid() == 0) {
    // The server must not run as root: it belongs to `mysql`.
    struct passwd* pw = ::getpwnam("mysql");
    if (pw == nullptr) {
      *error = "running as root but there is no `mysql` system user";
      return false;
    }
    if (::chown(base_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      *error = std::string("chown to mysql: ") + std::strerror(errno);
      return false;
    }
    user = {"--user=mysql"};
  }
  const std::string log = base_ + "/server.log";
  std::vector<std::string> install = {
      "/usr/bin/mariadb-install-db",
      "--no-defaults",
      "--datadir=" + base_ + "/data",
      "--auth-root-authentication-method=normal",
      "--skip-test-db",
      "--skip-name-resolve"};
  install.insert(install.end(), user.begin(), user.end());
  if (const int rc = WaitExit(Spawn(install, log)); rc != 0) {
    *error = "mariadb-install-db failed (exit " + std::to_string(rc) + ")\n" +
             LogTail();
    return false;
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = FreeLocalPort();
    std::vector<std::string> argv = {"/usr/sbin/mariadbd",
                                     "--no-defaults",
                                     "--datadir=" + base_ + "/data",
                                     "--socket=" + base_ + "/mariadb.sock",
                                     "--pid-file=" + base_ + "/mariadbd.pid",
                                     "--bind-address=127.0.0.1",
                                     "--port=" + std::to_string(port_),
                                     "--skip-grant-tables",
                                     "--skip-name-resolve",
                                     "--skip-log-bin",
                                     "--innodb-buffer-pool-size=32M",
                                     "--innodb-flush-log-at-trx-commit=0",
                                     "--log-error=" + base_ + "/error.log"};
    argv.insert(argv.end(), user.begin(), user.end());
    pid_ = Spawn(argv, log);
    if (pid_ < 0) {
      *error = std::string("fork: ") + std::strerror(errno);
      return false;
    }
    StartWatchdog();
    if (WaitReady(error)) return true;
  }
  return false;
}

bool MariaDbServer::WaitReady(std::string* error) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  // Bounded by the deadline.
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;  // exited (maybe the port was taken): the caller retries
      *error = "mariadbd exited at start\n" + LogTail();
      return false;
    }
    if (CanConnect(port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  *error = "mariadbd did not accept connections within 60 s\n" + LogTail();
  return false;
}

void MariaDbServer::StartWatchdog() {
  if (watchdog_fd_ >= 0) {  // a retry: the earlier server is gone
    ::close(watchdog_fd_);
    WaitExit(watchdog_pid_);
  }
  // Stops the server and removes the directory should this process die
  // without running the destructor (which writes "done" first).
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return;
  std::vector<std::string> strs = {
      "/bin/sh",
      "-c",
      "read x; [ \"$x\" = done ] && exit 0; kill -9 \"$1\"; sleep 1; "
      "rm -rf \"$2\"",
      "nstest-mariadb-watchdog",
      std::to_string(pid_),
      base_};
  std::vector<char*> ptrs;
  for (auto& s : strs) ptrs.push_back(s.data());
  ptrs.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    ::dup2(fds[0], 0);
    const int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    ::execve("/bin/sh", ptrs.data(), environ);
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

MariaDbServer::~MariaDbServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(30);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        WaitExit(pid_);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (watchdog_fd_ >= 0) {
    const char done[] = "done\n";
    ssize_t n = ::write(watchdog_fd_, done, sizeof done - 1);
    (void)n;
    ::close(watchdog_fd_);
    WaitExit(watchdog_pid_);
  }
  std::error_code ec;
  if (!base_.empty()) std::filesystem::remove_all(base_, ec);
}

std::string MariaDbServer::UriFor(const std::string& database) const {
  return "mysql://root@127.0.0.1:" + std::to_string(port_) + "/" + database;
}

std::string MariaDbServer::LogTail() const {
  return "--- " + base_ + "/server.log ---\n" +
         Tail(base_ + "/server.log", 2000) + "\n--- " + base_ +
         "/error.log ---\n" + Tail(base_ + "/error.log", 2000);
}

}  // namespace ns::testing
