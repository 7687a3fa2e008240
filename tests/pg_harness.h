#pragma once

// PgCluster: a real, throwaway PostgreSQL cluster for tests.
//
// Start() runs initdb in a fresh temporary directory (as the `postgres`
// system user when the test runs as root, since initdb refuses root), picks a
// free TCP port on 127.0.0.1 and starts the server with pg_ctl. Every
// database handed out by NewDatabaseUri() lives in that cluster. The
// destructor stops the server (pg_ctl -m immediate) and removes the
// directory; a small watchdog process does the same if the test process dies
// without running destructors (crash, SIGKILL), so no cluster outlives its
// test binary. Processes are only ever ended through pg_ctl or by pid.
//
// Failures are returned as testing::AssertionResult carrying the reason and
// the tail of the server log: a test that needs PostgreSQL FAILS when it
// cannot have it, it never skips.
//
// Thread safety: NewDatabaseUri() may be called from any thread; Restart(),
// Stop() and Start() from one thread at a time (tests call them while other
// threads run operations against the server, which is the point).

#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace ns::testing {

class PgCluster {
 public:
  // Creates and starts a cluster. On failure returns nullptr and sets *error.
  static std::unique_ptr<PgCluster> Create(std::string* error);

  // A streaming-replication standby of `primary` (pg_basebackup -R, hot
  // standby: read-only queries), started on its own free port. On failure
  // returns nullptr and sets *error.
  static std::unique_ptr<PgCluster> CreateStandby(PgCluster& primary,
                                                  std::string* error);

  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // CREATE DATABASE with a unique name; returns
  // postgresql://nstest@127.0.0.1:PORT/NAME. On failure records a gtest
  // failure with the reason and returns "".
  std::string NewDatabaseUri();

  // A URI for the maintenance database `postgres` of this cluster.
  std::string AdminUri() const;

  // pg_ctl -m fast stop, then start again on the same port. Clients lose
  // their connections (the server terminates them).
  ::testing::AssertionResult Restart();
  // pg_ctl -m fast stop.
  ::testing::AssertionResult Stop();
  // pg_ctl -w start with the cluster's options (same port).
  ::testing::AssertionResult Start();
  // pg_ctl -m immediate stop: the server dies as in a crash (no shutdown
  // checkpoint, clients cut off mid-statement).
  ::testing::AssertionResult Kill();
  // pg_ctl -w promote: a standby becomes a primary.
  ::testing::AssertionResult Promote();

  // postgresql://nstest@127.0.0.1:PORT/<database>.
  std::string UriFor(const std::string& database) const;

  int port() const { return port_; }
  const std::string& dir() const { return base_; }

 private:
  PgCluster() = default;
  // mkdtemp, watchdog, ownership: what every cluster directory needs.
  ::testing::AssertionResult MakeBase();
  // Picks free ports until Start() succeeds.
  ::testing::AssertionResult StartOnFreePort();
  ::testing::AssertionResult Init();
  // Runs argv (as postgres if we are root), output appended to cmd.log.
  // Returns the exit status, or -1 if it could not be run.
  int Run(const std::vector<std::string>& argv);
  std::string LogTail() const;
  void StartWatchdog();

  std::string bindir_;
  std::string base_;      // temporary directory: data/, sockets, logs
  std::string datadir_;
  int port_ = 0;
  bool as_postgres_ = false;  // run server tools through runuser
  bool running_ = false;
  int watchdog_fd_ = -1;  // write end of the watchdog's pipe
  int watchdog_pid_ = -1;
  std::mutex mu_;
  int next_db_ = 0;
};

// Picks a TCP port on 127.0.0.1 that nothing listens on right now (binds
// port 0 and closes the socket).
int FreeLocalPort();

}  // namespace ns::testing
