#pragma once

// The end-to-end driver shared by e2e_test.cc (nfs41d alone, per backend)
// and pnfs_e2e_test.cc (nfs41d + data servers): child processes stopped by
// pid, the guest booted under qemu and its console read line by line, the
// markers session.sh prints, host actions the guest asks for, timings and
// the verdict on the guest's steps.
//
// Processes: every Child dies with this process (PR_SET_PDEATHSIG) and is
// stopped by its pid (SIGTERM, then SIGKILL) when its object goes. Every
// wait is bounded.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace ns::testing::e2e {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d);
// The integer in environment variable `name`, or `fallback` if unset.
int EnvInt(const char* name, int fallback);
std::string ReadFile(const std::string& path);
// The last `max_bytes` of `s`, marked as cut when it is.
std::string Tail(const std::string& s, size_t max_bytes);
// "exit 1", "signal Killed", ... for a wait status.
std::string DescribeStatus(int st);
// True if something accepts TCP connections on 127.0.0.1:port.
bool CanConnect(int port);
// The body of GET `path` from 127.0.0.1:port (HTTP/1.0, 5 s bound), or ""
// on any failure.
std::string HttpGet(int port, const std::string& path);

// A child process, fork/exec'ed with its stdout and stderr going to a file
// (or a pipe the caller reads), killed by the kernel if we die first.
// Stopped by its pid in the destructor if still running.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  // Starts argv[0] (a path) with `out_path` as stdout/stderr, or, if
  // out_path is empty, a pipe readable through out_fd(). `stdin_pipe`:
  // its stdin is a pipe written by WriteInput() (else /dev/null).
  bool Start(const std::vector<std::string>& argv, const std::string& out_path,
             std::string* error, bool stdin_pipe = false);
  // Reaps the child if it has exited; true (and the wait status) if so.
  bool Exited(int* status);
  // SIGTERM, then SIGKILL after `grace`; returns the wait status.
  int Stop(std::chrono::milliseconds grace);
  // SIGKILL, without waiting.
  void Kill();
  // SIGKILL and reap (bounded by the kernel: SIGKILL cannot be caught).
  int KillAndWait();
  // Writes `text` to its stdin pipe; false if there is none or it failed.
  bool WriteInput(const std::string& text);

  int out_fd() const { return out_fd_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  int out_fd_ = -1;
  int in_fd_ = -1;
};

// Runs a command to completion (bounded), returning its exit status and
// combined output (written to `log` on the way).
struct Ran {
  int status = -1;
  std::string output;
};
Ran RunCommand(const std::vector<std::string>& argv, const std::string& log,
               std::chrono::seconds timeout);

// Starts a server on a free 127.0.0.1 port: `argv(port)` is its command
// line. Another process may take the port between our probe and its bind,
// so it tries a few ports. Returns the port it accepts connections on, or
// -1 (the server stopped, *error says why).
int StartOnFreePort(Child* child,
                    const std::function<std::vector<std::string>(int)>& argv,
                    const std::string& log, std::string* error);

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
  Clock::time_point start, end;  // qemu started, exited

  void Line(const std::string& line, Clock::time_point now);
};

struct GuestOptions {
  std::string label;      // prefix of echoed console lines ("sqlite")
  int port = 0;           // nfs41d's port (E2E_PORT)
  // Steps to run (E2E_STEPS); empty: $E2E_STEPS, else session.sh's default.
  std::string steps;
  // A line "E2E HOST <request>" from the guest: the host does it and the
  // returned text goes back on the guest's console input (session.sh's
  // host_do reads it). Unset: every request is answered "fail".
  std::function<std::string(const std::string& request)> on_host_request;
};

// Boots the guest (guest_assets.sh must have run), reads its console until
// it powers off or E2E_TIMEOUT (default 1500 s) passes.
GuestReport RunGuest(const GuestOptions& options);

// Prepares the guest (guest_assets.sh, cached in the build tree).
Ran PrepareGuestAssets(const std::string& log);

// A timing table, printed and written to timings-<name>.txt (scripts/test.sh
// prints those after the suite so every run shows where the time went).
class Timings {
 public:
  explicit Timings(std::string title) { out_ << title << ":\n"; }
  void Row(const std::string& what, double secs, const std::string& note = "");
  // Boot, mount and one row per planned step.
  void Guest(const GuestReport& g);
  void PrintAndSave(const std::string& name);

 private:
  std::ostringstream out_;
};

// The verdict on the guest: booted, mounted, every planned step passed,
// finished in time, qemu exited 0. `server_tail`: shown when mounting failed.
void ExpectGuestPassed(const GuestReport& g, const std::string& server_tail);

}  // namespace ns::testing::e2e
