#pragma once

// An ONC RPC v2 client over one TCP connection (RFC 5531), for the in-tree
// NFSv4.1 client library, tools and tests.
//
// Calls block the calling thread until their reply, timeout or the
// connection's end; any number of threads may call at once on one client
// (replies are matched by xid, in any order). The client also serves calls
// the server makes on the same connection -- the NFSv4.1 backchannel
// (RFC 8881 §2.10.3.1): register the callback program in backchannel() and
// its handlers run on the client's own small worker pool.
//
// Use:
//   rpc::ClientOptions opts;
//   opts.cred = rpc::Credential::Sys({.machine_name = "host", .uid = 1000,
//                                     .gid = 1000});
//   auto client = rpc::Client::Connect("127.0.0.1", 2049, opts);
//   if (!client.ok()) ...;
//   (*client)->backchannel().Add(rpc::Program(cb_prog, 1, 1).WithNull()...);
//   rpc::Result<rpc::ReplyBody> r = (*client)->Call(100003, 4, 1, args);
//
// Thread safety: every method may be called from any thread.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rpc/connection.h"
#include "rpc/event_loop.h"
#include "rpc/message.h"
#include "rpc/program.h"
#include "rpc/status.h"
#include "rpc/worker_pool.h"

namespace rpc {

struct ClientOptions {
  // Credential sent with Call(prog, vers, proc, args).
  Credential cred = Credential::None();
  std::chrono::milliseconds connect_timeout{10000};
  // Local address to bind before connecting; empty: the kernel's choice.
  std::string local_host;
  // Reply deadline of Call(prog, vers, proc, args).
  std::chrono::milliseconds call_timeout{30000};
  // Threads serving backchannel calls (and CallAsync completions).
  size_t backchannel_threads = 2;
  // Limits and hooks; on_close runs when the connection ends.
  EndpointOptions endpoint{.name = "rpc-cli"};
};

class Client {
 public:
  // Connects and starts serving the connection. IoError / Timeout if the
  // server cannot be reached.
  static Result<std::unique_ptr<Client>> Connect(const std::string& host,
                                                 uint16_t port,
                                                 ClientOptions options = {});
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();  // Close()

  // Calls with the client's default credential and timeout.
  Result<ReplyBody> Call(uint32_t prog, uint32_t vers, uint32_t proc,
                         std::vector<uint8_t> args);
  // Calls with explicit options.
  Result<ReplyBody> Call(const CallOptions& options,
                         std::vector<uint8_t> args) {
    return connection_->Call(options, std::move(args));
  }
  void CallAsync(const CallOptions& options, std::vector<uint8_t> args,
                 ReplyCallback done) {
    connection_->CallAsync(options, std::move(args), std::move(done));
  }

  // Programs this client answers when the server calls it on this
  // connection. Unregistered programs get PROG_UNAVAIL.
  Registry& backchannel() { return registry_; }

  const std::shared_ptr<Connection>& connection() const { return connection_; }
  bool IsOpen() const { return connection_->IsOpen(); }
  // Closes the connection (pending calls fail with Closed) and joins the
  // client's threads. Idempotent. REQUIRES: not called from a backchannel
  // handler or completion (use connection()->Close() there).
  void Close();

 private:
  explicit Client(ClientOptions options);

  ClientOptions options_;
  Registry registry_;
  WorkerPool pool_;
  EventLoop loop_;
  std::shared_ptr<Connection> connection_;
};

}  // namespace rpc
