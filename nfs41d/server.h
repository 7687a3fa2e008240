#pragma once

// Nfs41Server: the NFSv4.1 metadata server as one object -- the Namespace,
// the filehandle codec, client/session state and the RPC server -- so that
// main.cc and the tests start it the same way.
//
// Thread safety: Start/Stop from the owning thread; everything else is
// served by the RPC worker pool.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "libnamespace/include/namespace/namespace.h"
#include "nfs41d/compound.h"
#include "nfs41d/fh.h"
#include "nfs41d/state/state_manager.h"
#include "rpc/server.h"

namespace nfs41d {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 2049;  // 0: any free port (tests)
  // Namespace URI; empty means sqlite://<data_dir>/namespace.db.
  std::string db_uri;
  // Server secret (fh.key), the embedded namespace and the embedded data
  // store (<data_dir>/data) live here.
  std::string data_dir;
  size_t worker_threads = 8;
  // SQLite durability (tests turn it off).
  bool durable = true;
  state::StateOptions state;
  // How often the in-memory size/mtime of files being written go to the
  // database (see ops_io.cc).
  std::chrono::milliseconds flush_interval{500};
};

class Nfs41Server {
 public:
  explicit Nfs41Server(ServerOptions options);
  ~Nfs41Server();  // Stop()
  Nfs41Server(const Nfs41Server&) = delete;
  Nfs41Server& operator=(const Nfs41Server&) = delete;

  // Creates the data directory and secret if missing, opens the namespace
  // (creating an embedded SQLite one if missing), binds and serves. Returns
  // a message for the operator on failure, "" on success.
  std::string Start();
  // Stops serving and joins every thread. Idempotent.
  void Stop();

  uint16_t port() const { return rpc_ ? rpc_->port() : 0; }
  state::StateManager& state() { return *state_; }
  ns::Namespace& ns() { return *ns_; }
  const FhCodec& fh_codec() const { return *fh_; }
  data::DataStore& data() { return *data_; }
  const ServerContext& context() const { return ctx_; }

 private:
  ServerOptions options_;
  std::unique_ptr<ns::Namespace> ns_;
  std::unique_ptr<FhCodec> fh_;
  std::unique_ptr<state::StateManager> state_;
  std::unique_ptr<data::DataStore> data_;
  ServerContext ctx_;
  std::unique_ptr<rpc::Server> rpc_;

  // The flusher thread (FlushDirtyFiles every flush_interval).
  std::mutex flusher_mu_;
  std::condition_variable flusher_cv_;
  bool flusher_stop_ = false;  // guarded by flusher_mu_
  std::thread flusher_;
};

}  // namespace nfs41d
