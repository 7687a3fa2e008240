#pragma once

// MariaDbServer: a real, throwaway MariaDB server for tests (the DPM/LFC
// fixtures of ns-migrate), in the manner of PgCluster (pg_harness.h).
//
// Create() runs mariadb-install-db into a fresh temporary directory and
// starts mariadbd on a free TCP port of 127.0.0.1, as the unprivileged
// `mysql` system user when the test runs as root (mariadbd --user=mysql
// drops root itself), else as the caller. Grant tables are skipped: the
// server is reachable only from this host, for the life of one test binary,
// and any user name connects without a password. The destructor stops the
// server (SIGTERM to its pid, SIGKILL after 30 s) and removes the directory;
// a watchdog process does the same if the test process dies first.
//
// A test that needs MariaDB FAILS when it cannot have it (Create returns
// nullptr and the reason with the tail of the server's log), never skips.
//
// Thread safety: none; one thread drives a server.

#include <memory>
#include <string>

namespace ns::testing {

class MariaDbServer {
 public:
  static std::unique_ptr<MariaDbServer> Create(std::string* error);
  ~MariaDbServer();
  MariaDbServer(const MariaDbServer&) = delete;
  MariaDbServer& operator=(const MariaDbServer&) = delete;

  // "mysql://root@127.0.0.1:PORT/<database>".
  std::string UriFor(const std::string& database) const;
  int port() const { return port_; }
  const std::string& dir() const { return base_; }

 private:
  MariaDbServer() = default;
  bool Init(std::string* error);
  bool WaitReady(std::string* error);
  std::string LogTail() const;
  void StartWatchdog();

  std::string base_;
  int port_ = 0;
  int pid_ = -1;          // mariadbd
  int watchdog_fd_ = -1;  // write end of the watchdog's pipe
  int watchdog_pid_ = -1;
};

}  // namespace ns::testing
