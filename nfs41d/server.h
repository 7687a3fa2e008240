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
#include <vector>

#include "libnamespace/include/namespace/client_records.h"
#include "libnamespace/include/namespace/namespace.h"
#include "nfs41d/attr_cache.h"
#include "nfs41d/callback.h"
#include "nfs41d/compound.h"
#include "nfs41d/exports.h"
#include "nfs41d/idmap.h"
#include "nfs41d/metrics.h"
#include "nfs41d/fh.h"
#include "nfs41d/data/pnfs_data_store.h"
#include "nfs41d/pnfs_mds.h"
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
  // Threads that run COMPOUNDs. On PostgreSQL a worker waits for its op's
  // durable commit, and the shared WAL flush can group only what waiting
  // workers hand it: with 8 workers, 16 busy clients got groups of at most
  // 8 commits. 32 keeps groups as wide as 32 concurrent mutating
  // COMPOUNDs; an idle worker costs a stack and nothing else. (On SQLite a
  // worker waits for its group's COMMIT only; the reply waits for the
  // sync.) PostgreSQL's connection pool is sized to match (server.cc).
  size_t worker_threads = 32;
  // SQLite durability (tests turn it off).
  bool durable = true;
  state::StateOptions state;
  // How often the in-memory size/mtime of files being written go to the
  // database (see ops_io.cc).
  std::chrono::milliseconds flush_interval{500};
  // Regular files up to this many bytes keep them in the namespace
  // database (ops_io.cc, "Small files"); 0: never. At most
  // ns::kMaxInlineBytes.
  uint64_t inline_max = 4096;
  // [[export]] entries; empty: DefaultExport() ("/" rw to loopback).
  std::vector<ExportConfig> exports;
  IdMapOptions idmap;
  // Also sizes the directory cache (dir_cache.h): same entries and TTL.
  AttrCacheOptions attr_cache;
  // Encoded READDIR replies (readdir_cache.h), with attr_cache's TTL;
  // 0: none.
  size_t readdir_cache_bytes = size_t{64} << 20;
  // COMPOUNDs that need nothing but memory are served on the RPC event-loop
  // thread (compound.h, "Inline COMPOUNDs"); false: always on a worker.
  bool inline_compounds = true;
  // The RPC event loop's kernel interface (rpc/event_loop.h): auto picks
  // io_uring when usable, else epoll; epoll forces it ("event_loop").
  rpc::Backend event_loop = rpc::Backend::kAuto;
  // Prometheus /metrics listener; empty host: none.
  std::string metrics_host;
  uint16_t metrics_port = 0;
  // pNFS metadata server: the key shared with data servers, stripe
  // defaults, heartbeat and expiry (pnfs_mds.h, docs/pnfs.md).
  PnfsOptions pnfs;
};

class Nfs41Server {
 public:
  explicit Nfs41Server(ServerOptions options);
  ~Nfs41Server();  // Stop()
  Nfs41Server(const Nfs41Server&) = delete;
  Nfs41Server& operator=(const Nfs41Server&) = delete;

  // Creates the data directory and secret if missing, opens the namespace
  // (creating an embedded SQLite one if missing), begins a new server epoch
  // in its client records (a grace period if clients may reclaim, RFC 8881
  // §8.4.2.1), binds and serves. Returns a message for the operator on
  // failure, "" on success.
  std::string Start();
  // Stops serving and joins every thread. Idempotent.
  void Stop();

  // Builds a new export table from `exports` (empty: the default) and swaps
  // it in; COMPOUNDs already running finish under the old one. On error
  // (logged and returned) the current table stays. REQUIRES: Start()
  // succeeded.
  std::string ReloadExports(const std::vector<ExportConfig>& exports);

  uint16_t port() const { return rpc_ ? rpc_->port() : 0; }
  uint16_t metrics_port() const { return metrics_server_ ? metrics_server_->port() : 0; }
  Metrics& metrics() { return metrics_; }
  AttrCache& attr_cache() { return *attrs_; }
  DirCache& dir_cache() { return *dirs_; }
  ReaddirCache& readdir_cache() { return *readdirs_; }
  std::shared_ptr<const ExportTable> exports() const { return exports_.Get(); }
  // Asks a client to return state (CB_RECALL_ANY, RFC 8881 §20.6) over its
  // back channel; blocks until the client answers or the callback timeout.
  // REQUIRES: not called on the RPC event-loop thread.
  CbResult RecallAny(clientid4 clientid, uint32_t objects_to_keep,
                     uint32_t type_mask) {
    return nfs41d::RecallAny(*state_, clientid, objects_to_keep, type_mask);
  }
  state::StateManager& state() { return *state_; }
  ns::Namespace& ns() { return *ns_; }
  const FhCodec& fh_codec() const { return *fh_; }
  // The MDS's local store (files without a pNFS layout).
  data::DataStore& data() { return *data_; }
  const ServerContext& context() const { return ctx_; }
  PnfsMds& pnfs() { return *pnfs_; }

 private:
  ServerOptions options_;
  std::unique_ptr<ns::Namespace> ns_;
  std::unique_ptr<FhCodec> fh_;
  std::unique_ptr<ns::ClientRecords> records_;
  std::unique_ptr<state::StateManager> state_;
  std::unique_ptr<data::DataStore> data_;
  ExportsHandle exports_;
  std::unique_ptr<IdMapper> idmap_;
  std::unique_ptr<AttrCache> attrs_;
  std::unique_ptr<DirCache> dirs_;
  std::unique_ptr<ReaddirCache> readdirs_;
  Metrics metrics_;
  std::unique_ptr<MetricsServer> metrics_server_;
  ServerContext ctx_;
  std::unique_ptr<PnfsMds> pnfs_;
  std::unique_ptr<data::DataStore> pnfs_data_;  // wraps data_
  std::unique_ptr<rpc::Server> rpc_;

  // The flusher thread (FlushDirtyFiles every flush_interval).
  std::mutex flusher_mu_;
  std::condition_variable flusher_cv_;
  bool flusher_stop_ = false;  // guarded by flusher_mu_
  std::thread flusher_;
};

}  // namespace nfs41d
