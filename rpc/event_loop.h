#pragma once

// The event loop shared by Server and Client.
//
// One thread waits (io_uring or epoll, see Backend) for: listening sockets
// (accept), connections (readable: parse records, answer CALLs a program's
// inline handler takes (program.h) and hand the rest to the worker pool,
// route REPLYs to waiters; writable: flush queued replies), an eventfd
// (wake-ups for posted tasks and timers). Workers write their replies
// directly when the socket takes them and leave the rest to the loop
// (POLLOUT), so a reply costs no thread hop in the common case.
//
// Backpressure, per connection: while `max_inflight_per_connection` calls are
// being served, or `max_output_bytes_per_connection` reply bytes wait to be
// written (a client that does not read its replies), the loop stops reading
// from that connection, so TCP flow control pushes back on the client. The
// exception is a connection with our own outgoing calls pending (callbacks on
// the backchannel): it keeps being read, up to a hard cap of queued calls, so
// that their REPLYs can arrive even when every worker waits for one.
//
// Backends: with io_uring (kernel 5.19+; rpc/uring.h) a connection's
// receive is armed in the ring and an inline reply is sent by the same
// io_uring_enter that waits for the next request: one syscall per request
// answered on the loop thread, against three with epoll (epoll_wait, read,
// sendmsg). Replies from workers are written directly either way (sendmsg
// under the connection's lock); one sent by the ring holds later ones back
// until it is done, so records never interleave.
//
// Most users want Server or Client; this header is for them and for tests.
//
// Thread safety: Listen before Start; Adopt, Post and the timer methods from
// any thread; Stop from the owner.

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "rpc/connection.h"
#include "rpc/program.h"
#include "rpc/status.h"
#include "rpc/worker_pool.h"

struct io_uring_cqe;

namespace rpc {

class Uring;  // rpc/uring.h

// Which kernel interface the loop waits with. kAuto: io_uring when this
// kernel and process allow it (not disabled by sysctl or seccomp, every
// needed opcode present), else epoll; Start logs the choice.
enum class Backend { kAuto, kEpoll, kIoUring };
// "auto", "epoll", "io_uring" (config files and flags).
std::optional<Backend> ParseBackend(std::string_view text);
const char* BackendName(Backend backend);

// Knobs shared by Server and Client (defaults suit an NFS server).
struct EndpointOptions {
  // Names threads ("name-loop", "name-N") and prefixes logs.
  std::string name = "rpc";
  // Largest record accepted from a peer; a larger one is a protocol violation
  // and closes that connection (with a warning). It must exceed the largest
  // request a session negotiates (NFSv4.1 ca_maxrequestsize plus RPC
  // header); nfs41d checks the per-session limit itself.
  size_t max_record_size = 4u << 20;
  // Calls served concurrently per connection before reading pauses.
  size_t max_inflight_per_connection = 64;
  // Unwritten reply bytes per connection before reading pauses.
  size_t max_output_bytes_per_connection = 16u << 20;
  // Accepted connections beyond this are closed at once (with a warning).
  size_t max_connections = 4096;
  // kIoUring fails Start when io_uring is unusable; kAuto falls back.
  Backend backend = Backend::kAuto;
  // Run on the event-loop thread when a connection is accepted (on_open;
  // not for Adopt, whose caller already holds the connection), and once
  // when any connection closes, for whatever reason (on_close). Must not
  // block; must not call Connection::Call (its reply would be delivered by
  // this same thread).
  std::function<void(const std::shared_ptr<Connection>&)> on_open = nullptr;
  std::function<void(const std::shared_ptr<Connection>&)> on_close = nullptr;
};

// What the loop thread did since Start (read from any thread). busy_ns
// is the time from each wait's return (epoll_wait, io_uring_enter) to the
// next wait: the loop's own work (reads, inline handlers, replies written,
// hand-offs), not the time it slept. With every call answered inline,
// busy_ns / calls is the server time per call (docs/performance.md, issue 4
// item 12).
struct LoopStats {
  uint64_t busy_ns = 0;
  uint64_t wakeups = 0;
  uint64_t calls = 0;         // call records received
  uint64_t inline_calls = 0;  // of them, answered on the loop thread
};

class EventLoop {
 public:
  // `registry` and `pool` must outlive the loop.
  EventLoop(EndpointOptions options, const Registry* registry,
            WorkerPool* pool);
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  ~EventLoop();  // Stop()

  // Binds and listens on host:port (port 0: any free port). Returns the
  // bound port. REQUIRES: before Start.
  Result<uint16_t> Listen(const std::string& host, uint16_t port);
  // Starts the loop thread.
  Status Start();
  // Closes listeners and every connection (on-close hooks run), stops and
  // joins the loop thread. The worker pool is the owner's to stop. Idempotent.
  void Stop();

  // Takes ownership of a connected socket and serves it.
  Result<std::shared_ptr<Connection>> Adopt(int fd, std::string peer);

  // Currently open connections.
  std::vector<std::shared_ptr<Connection>> Connections() const;
  bool InLoopThread() const;

  const EndpointOptions& options() const { return options_; }
  LoopStats stats() const;
  // kEpoll or kIoUring: the backend serving (decided at construction).
  Backend backend() const {
    return uring_ ? Backend::kIoUring : Backend::kEpoll;
  }

 private:
  friend class Connection;

  struct Listener {
    int fd = -1;
    bool paused = false;
  };

  void Run();
  void RunEpoll();
  void RunUring();
  // The work after each wake-up common to both backends: posted tasks,
  // timers, accept pauses, statistics. Returns the new "now".
  std::chrono::steady_clock::time_point AfterWake(
      std::chrono::steady_clock::time_point woke);
  void PauseListener(size_t index);
  // --- io_uring backend, loop thread ---
  // The notices, then every completion the main ring holds.
  void HandleCompletions();
  void HandleCqe(const io_uring_cqe& cqe);
  void ReapNotices();
  // One poll of the listeners' epoll descriptor (see the constructor).
  void ArmListeners();
  void ArmWake();
  void PrepRecv(Connection* c);
  void PrepPollOut(Connection* c);
  void PrepSend(Connection* c);
  void HoldOp(Connection* c);
  void ReleaseOp(Connection* c);
  void DrainRing();
  void Wake();
  void Post(std::function<void()> fn);
  void RunPosted();
  void AcceptReady(size_t index);
  std::shared_ptr<Connection> Register(int fd, std::string peer, Status* error);
  std::shared_ptr<Connection> Lookup(uint64_t id) const;
  void Finalize(uint64_t id);
  // `now`: a recent steady_clock reading (the loop reads the clock once per
  // wake-up and passes it on).
  int NextTimeoutMs(std::chrono::steady_clock::time_point now);
  void ExpireTimers(std::chrono::steady_clock::time_point now);
  void AddTimer(std::chrono::steady_clock::time_point deadline, uint64_t id,
                uint32_t xid);
  void CancelTimer(std::chrono::steady_clock::time_point deadline, uint64_t id,
                   uint32_t xid);
  void SetInterest(int fd, uint64_t id, uint32_t events);
  void Unregister(int fd);
  void CloseAll();

  const EndpointOptions options_;
  const Registry* const registry_;
  WorkerPool* const pool_;

  int epfd_ = -1;  // epoll backend
  int wakefd_ = -1;
  std::unique_ptr<Uring> uring_;  // io_uring backend
  std::string uring_error_;       // why not, when it was wanted
  uint64_t wake_value_ = 0;       // io_uring: the armed eventfd read's target
  size_t ring_ops_ = 0;           // io_uring: requests holding a connection
  // io_uring: connections waiting for their ring send to finish; while
  // any do, finished sends signal the eventfd (rpc/uring.h).
  std::unordered_set<Connection*> notice_waiters_;
  std::vector<Listener> listeners_;  // loop thread after Start
  std::vector<uint8_t> scratch_;     // loop thread: read buffer
  std::thread thread_;
  std::atomic<std::thread::id> loop_thread_id_{};
  std::atomic<bool> stopping_{false};
  // Written by the loop thread only; relaxed, read by stats().
  std::atomic<uint64_t> busy_ns_{0}, wakeups_{0}, calls_{0},
      inline_calls_{0};
  bool started_ = false;
  std::chrono::steady_clock::time_point listeners_resume_at_{};

  mutable std::mutex conns_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<Connection>> conns_;
  bool closed_for_new_ = false;  // guarded by conns_mu_

  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;  // guarded by posted_mu_
  // Whether posted_ may be non-empty: RunPosted skips the lock when not
  // (it runs at every wake-up; tasks are rare). Set under posted_mu_
  // before Post's Wake(), so a task is never missed.
  std::atomic<bool> has_posted_{false};

  std::mutex timers_mu_;
  // deadline -> (connection id, xid) of an outgoing call.
  std::multimap<std::chrono::steady_clock::time_point,
                std::pair<uint64_t, uint32_t>>
      timers_;  // guarded by timers_mu_
  // timers_'s earliest deadline (steady_clock ticks), kNoTimer when empty;
  // written under timers_mu_. ExpireTimers and NextTimeoutMs run at every
  // wake-up and take timers_mu_ only when it says a timer exists: two lock
  // pairs less per request when no outgoing call is pending. A stale read
  // on the loop thread is harmless: AddTimer from another thread stores
  // before its Wake(), so the loop either sees the deadline or is woken.
  static constexpr int64_t kNoTimer = std::numeric_limits<int64_t>::max();
  std::atomic<int64_t> earliest_timer_{kNoTimer};
  void NoteEarliestLocked();  // REQUIRES: timers_mu_ held
};

}  // namespace rpc
