#pragma once

// DataServer: the NFSv4.1 side of a pNFS data server (RFC 8881 §13.6): the
// data path only. It runs nfs41d's COMPOUND loop and session machinery with
// its own operation table (ds_ops.h): EXCHANGE_ID (answering
// EXCHGID4_FLAG_USE_PNFS_DS), CREATE_SESSION, SEQUENCE, DESTROY_SESSION,
// DESTROY_CLIENTID, BIND_CONN_TO_SESSION, RECLAIM_COMPLETE, PUTFH, READ,
// WRITE, COMMIT, GETATTR; every other operation is NFS4ERR_NOTSUPP.
//
// Filehandles are the MDS's, signed with the pNFS key (docs/pnfs.md): the
// inode id in a handle names the stripe file, kept at the file's logical
// offsets (sparse) in a data::DataStore under <data_dir>/data.
//
// Thread safety: Start/Stop from the owning thread; everything else is
// served by the RPC worker pool.

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>

#include "dataserver/control.h"
#include "nfs41d/compound.h"
#include "nfs41d/data/data_store.h"
#include "nfs41d/fh.h"
#include "nfs41d/metrics.h"
#include "nfs41d/state/state_manager.h"
#include "pnfs/auth.h"
#include "rpc/server.h"

namespace dataserver {

struct DataServerOptions {
  // Address to listen on; port 0 picks a free one (tests).
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  // Stripe files live under <data_dir>/data.
  std::string data_dir;
  // The key shared with the MDS: filehandles are checked with it.
  pnfs::Key key{};
  size_t worker_threads = 8;
  // WRITEs at least this long (4 KiB-aligned) bypass the page cache
  // (nfs41d::data::LocalDataStoreOptions::direct_write_min); 0: never.
  size_t direct_write_min = 64u << 10;
  // Sessions: slots, sizes, lease (see DataServerOptions() below).
  // server_owner must differ from the MDS's
  // and from every other data server's (RFC 8881 §2.10.5: equal owners
  // would tell the client the servers are one and may share sessions);
  // the daemon uses "dataserver:<uuid>".
  nfs41d::state::StateOptions state;
  // Prometheus /metrics listener (nfs41d/metrics.h: per-op counts,
  // latencies and errors, connections, sessions); empty host: none.
  std::string metrics_host;
  uint16_t metrics_port = 0;
  // More gauges for the exposition (the daemon adds the control client's).
  std::function<void(std::string*)> metrics_extra;

  // A long lease: the Linux client renews a data server's lease at the
  // MDS's period (it does not ask the data server, fs/nfs/filelayout), so
  // a shorter lease here would expire clients that are fine. A data server
  // keeps no locking state, so a long lease costs only a little memory.
  DataServerOptions() { state.lease_seconds = 300; }
};

// The writeback hints of UNSTABLE4 WRITEs (DataStore::StartWriteback),
// carried out by one thread of its own: sync_file_range(SYNC_FILE_RANGE_WRITE)
// submits the range's I/O itself and sleeps while the device's queue is
// full, which on the WRITE's worker would hold its reply back (the client
// keeps only a few WRITEs in flight per data server). Adjacent ranges of
// one file are merged; when kMaxPending ranges wait, a new one is dropped
// (a hint: the COMMIT's fsync writes whatever is left, RFC 8881 §18.3.3).
// Every kSyncEvery bytes of one file it also fdatasyncs it, so a device's
// volatile cache (where O_DIRECT WRITEs land) drains before the COMMIT.
//
// Thread safety: Add from any thread; Start/Stop from the owner.
class WritebackQueue {
 public:
  static constexpr size_t kMaxPending = 256;
  // A file's data is synced (fdatasync) after this many bytes of hints.
  static constexpr uint64_t kSyncEvery = 64u << 20;

  explicit WritebackQueue(nfs41d::data::DataStore* store) : store_(store) {}
  ~WritebackQueue() { Stop(); }
  WritebackQueue(const WritebackQueue&) = delete;
  WritebackQueue& operator=(const WritebackQueue&) = delete;

  void Start();
  // Joins the thread; ranges still queued are dropped. Idempotent.
  void Stop();
  // Queues [offset, offset + length) of `ino`; never waits for I/O.
  void Add(ns::InodeId ino, uint64_t offset, uint64_t length);
  // Ranges queued or being written now (tests).
  size_t pending() const;

 private:
  struct Range {
    ns::InodeId ino;
    uint64_t offset;
    uint64_t length;
  };
  void Run();

  nfs41d::data::DataStore* const store_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Range> queue_;  // guarded by mu_
  size_t busy_ = 0;          // ranges taken, not yet done; guarded by mu_
  bool stop_ = false;        // guarded by mu_
  std::thread thread_;
};

// What the data server's operations share (ds_ops.cc): nfs41d's
// ServerContext (state, codec, data store, verifier, the op table) and what
// only a data server needs.
struct DsContext : nfs41d::ServerContext {
  // The data store's directory (stripe file paths for stat: size, times).
  std::string store_dir;
  // Stripe files whose directory entries are known to be on stable storage
  // (SyncStripeDirs).
  std::mutex dirs_mu;
  std::set<ns::InodeId> dirs_synced;  // guarded by dirs_mu
  // Per stripe file, how far PrefetchStripe has asked the kernel to read
  // (a file offset): each READ then asks only for what it consumed.
  std::mutex prefetch_mu;
  std::unordered_map<ns::InodeId, uint64_t> prefetched;  // guarded by prefetch_mu
  // Where StartStripeWriteback hands its ranges (set by Start).
  WritebackQueue* writeback = nullptr;
};

// --- stripe files (ds_server.cc), for the ops and the MDS's work

// What stat says of a stripe file; all zero when it does not exist (never
// written, or removed): it reads as zeros, as a hole would.
struct StripeStat {
  bool exists = false;
  uint64_t size = 0;
  uint64_t space_used = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
};
// IOError (logged) if stat fails for another reason than absence.
ns::Status StatStripe(DsContext& ctx, ns::InodeId ino, StripeStat* out);
// A committed stripe file must still be there after a crash, not only its
// bytes: fsync of the file does not make its directory entry (or the
// fan-out directories the store made for it) durable. This fsyncs them,
// once per stripe file per run (RemoveStripe forgets it). Ok if the file
// does not exist.
ns::Status SyncStripeDirs(DsContext& ctx, ns::InodeId ino);
// After an UNSTABLE4 WRITE of [offset, offset + length): has the page
// cache's writeback of that range started (sync_file_range(
// SYNC_FILE_RANGE_WRITE), on the WritebackQueue's thread, so the WRITE's
// reply never waits for the device), so the disk works while the client
// still sends and the COMMIT's fsync finds little left to write.
// Durability is unchanged: only COMMIT promises it (RFC 8881 §18.3.3). A
// hint: failures are ignored (COMMIT reports real I/O errors).
void StartStripeWriteback(DsContext& ctx, ns::InodeId ino, uint64_t offset,
                          uint64_t length);
// After a READ that ended at `end` having read `length` bytes: asks the
// kernel (posix_fadvise WILLNEED) to read the stripe file's next data, so
// that a client reading the file in order finds it cached. Holes are
// skipped (SEEK_DATA/SEEK_HOLE): with a sparse layout (RFC 8881 §13.4.2)
// a stripe file is data and holes in turn, which defeats the kernel's own
// readahead (it sees every READ as random, the hole before it uncached).
// Keeps a fixed amount of data ahead of the reader. A hint: failures are
// ignored.
void PrefetchStripe(DsContext& ctx, ns::InodeId ino, uint64_t end,
                    uint64_t length);

class DataServer : public StripeStore {
 public:
  explicit DataServer(DataServerOptions options);
  ~DataServer();  // Stop()
  DataServer(const DataServer&) = delete;
  DataServer& operator=(const DataServer&) = delete;

  // Opens the data store (creating <data_dir>/data), picks a new write
  // verifier (RFC 8881 §18.32.3: new at every start, so clients resend
  // what they had not committed), binds and serves. Returns a message for
  // the operator on failure, "" on success.
  std::string Start();
  // Stops serving and joins every thread. Idempotent.
  void Stop();

  uint16_t port() const { return rpc_ ? rpc_->port() : 0; }
  uint16_t metrics_port() const {
    return metrics_server_ ? metrics_server_->port() : 0;
  }
  nfs41d::Metrics& metrics() { return metrics_; }
  // The data store, shared with the control client (REMOVE/TRUNCATE
  // work). REQUIRES: Start() succeeded.
  nfs41d::data::DataStore& data() { return *data_; }
  const std::array<uint8_t, NFS4_VERIFIER_SIZE>& write_verifier() const {
    return ctx_.write_verifier;
  }
  nfs41d::state::StateManager& state() { return *state_; }

  // StripeStore (the MDS's work, control.h). Both are durable before they
  // return: a result reported to the MDS deletes its queue row, so a crash
  // must not bring the bytes back. RemoveStripe: unlink, then fsync the
  // directory. TruncateStripe only shrinks: a stripe file that is absent
  // or not longer already reads as zeros past `size` (READ's eof), and
  // growing it would make stripe files on data servers that hold none of
  // the file's bytes. REQUIRES: Start() succeeded.
  ns::Status RemoveStripe(uint64_t fileid) override;
  ns::Status TruncateStripe(uint64_t fileid, uint64_t size) override;

 private:
  DataServerOptions options_;
  std::unique_ptr<nfs41d::FhCodec> fh_;
  std::unique_ptr<nfs41d::state::StateManager> state_;
  std::unique_ptr<nfs41d::data::DataStore> data_;
  std::unique_ptr<WritebackQueue> writeback_;
  DsContext ctx_;
  nfs41d::Metrics metrics_;
  std::unique_ptr<nfs41d::MetricsServer> metrics_server_;
  std::unique_ptr<rpc::Server> rpc_;
};

}  // namespace dataserver
