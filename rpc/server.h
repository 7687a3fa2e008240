#pragma once

// An ONC RPC v2 server over TCP (RFC 5531).
//
// Threads: one event-loop thread (accept, read, parse records, write what
// workers could not) and `worker_threads` workers that run handlers. Many
// calls may be in flight per connection; each reply is written as soon as its
// worker finishes, so replies leave in completion order, not arrival order
// (RFC 5531 matches them by xid).
//
// Use:
//   rpc::ServerOptions opts;
//   opts.port = 2049;
//   opts.worker_threads = 16;
//   opts.on_worker_start = [&](size_t i) { db[i] = OpenDb(); };
//   rpc::Server server(opts);
//   server.Register(rpc::Program(100003, 4, 4).WithNull().On(1, Compound));
//   if (rpc::Status s = server.Start(); !s.ok()) ...;
//   ...
//   server.Stop();
//
// Handlers see the connection a call came on (CallContext::connection) and
// may send calls back to the client on it (Connection::Call/CallAsync): the
// NFSv4.1 backchannel.
//
// Thread safety: Register and Connections from any thread; Start/Stop from
// the owner.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rpc/connection.h"
#include "rpc/event_loop.h"
#include "rpc/program.h"
#include "rpc/status.h"
#include "rpc/worker_pool.h"

namespace rpc {

struct ServerOptions {
  // Address to listen on; "" means every local address.
  std::string host = "127.0.0.1";
  // 0 picks a free port (tests); see Server::port().
  uint16_t port = 0;
  // Handler threads.
  size_t worker_threads = 8;
  // Run on each worker thread before it serves calls / before it exits; the
  // place to open and close per-worker resources (one database connection
  // per worker, found by CallContext::worker_index).
  WorkerPool::Hook on_worker_start;
  WorkerPool::Hook on_worker_stop;
  // Limits and connection hooks (on_close: unbind a closed connection from
  // its NFSv4.1 session).
  EndpointOptions endpoint{.name = "rpc-srv"};
};

class Server {
 public:
  explicit Server(ServerOptions options);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();  // Stop()

  // Adds a program (before or after Start). See Registry::Add.
  void Register(Program program) { registry_.Add(std::move(program)); }
  Registry& registry() { return registry_; }

  // Binds, listens and starts the threads. IoError if the address cannot be
  // bound.
  Status Start();
  // The bound port, valid after a successful Start.
  uint16_t port() const { return port_; }
  // Stops accepting, closes every connection (on_close runs for each),
  // discards queued calls, waits for running handlers, joins all threads.
  // Idempotent. REQUIRES: not called from a handler or hook (it joins the
  // threads that run them).
  void Stop();

  std::vector<std::shared_ptr<Connection>> Connections() const {
    return loop_.Connections();
  }
  LoopStats loop_stats() const { return loop_.stats(); }
  // The event-loop backend serving (EndpointOptions::backend resolved).
  Backend backend() const { return loop_.backend(); }

 private:
  ServerOptions options_;
  Registry registry_;
  WorkerPool pool_;
  EventLoop loop_;  // declared last: stopped first
  uint16_t port_ = 0;
};

}  // namespace rpc
