#include "dataserver/ds_server.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

#include "dataserver/ds_ops.h"
#include "rpc/log.h"

namespace dataserver {
namespace {

constexpr size_t kMaxDirsSynced = 1u << 20;
// Data PrefetchStripe keeps requested ahead of a reader: twice what a
// client has in flight on one data server (4 x 1 MiB by default) so the
// disk never waits for the next READ to arrive.
constexpr uint64_t kPrefetchAhead = 8u << 20;
// Stripe files whose prefetch position is remembered; beyond that the map
// is cleared (forgetting costs one wider prefetch).
constexpr size_t kMaxPrefetched = 4096;
// Data extents PrefetchStripe looks at per READ (bounds its syscalls on a
// file made of many small extents).
constexpr int kMaxPrefetchExtents = 16;

int64_t ToNs(const timespec& t) {
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// fsyncs a directory; false (errno set) on failure.
bool SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  errno = err;
  return ok;
}

std::string StripePath(const DsContext& ctx, ns::InodeId ino) {
  return ctx.store_dir + "/" + nfs41d::data::LocalDataPath(ino);
}

std::string Parent(const std::string& path) {
  return path.substr(0, path.rfind('/'));
}

ns::Status IoError(const std::string& what, const std::string& path, int err) {
  rpc::log::Error("dataserver: {} {}: {}", what, path, std::strerror(err));
  return ns::Status::IOError(what + " " + path, std::strerror(err));
}

}  // namespace

ns::Status StatStripe(DsContext& ctx, ns::InodeId ino, StripeStat* out) {
  *out = StripeStat{};
  struct stat sb;
  const std::string path = StripePath(ctx, ino);
  if (::stat(path.c_str(), &sb) != 0) {
    if (errno == ENOENT) return ns::Status::Ok();
    return IoError("stat", path, errno);
  }
  out->exists = true;
  out->size = static_cast<uint64_t>(sb.st_size);
  out->space_used = static_cast<uint64_t>(sb.st_blocks) * 512;
  out->mtime_ns = ToNs(sb.st_mtim);
  out->ctime_ns = ToNs(sb.st_ctim);
  return ns::Status::Ok();
}

ns::Status SyncStripeDirs(DsContext& ctx, ns::InodeId ino) {
  {
    std::lock_guard lock(ctx.dirs_mu);
    if (ctx.dirs_synced.count(ino)) return ns::Status::Ok();
  }
  // data/xx/yy/<ino>: sync yy (the entry), xx (yy's entry), data (xx's).
  std::string dir = StripePath(ctx, ino);
  for (int i = 0; i < 3; ++i) {
    dir = Parent(dir);
    if (!SyncDir(dir)) {
      if (errno == ENOENT) return ns::Status::Ok();  // nothing stored
      return IoError("fsync", dir, errno);
    }
  }
  std::lock_guard lock(ctx.dirs_mu);
  // Bounded memory: forgetting only costs a few directory fsyncs again.
  if (ctx.dirs_synced.size() >= kMaxDirsSynced) ctx.dirs_synced.clear();
  ctx.dirs_synced.insert(ino);
  return ns::Status::Ok();
}

void StartStripeWriteback(DsContext& ctx, ns::InodeId ino, uint64_t offset,
                          uint64_t length) {
  if (length == 0) return;
  if (ctx.writeback) {
    ctx.writeback->Add(ino, offset, length);
  } else {
    ctx.data->StartWriteback(ino, offset, length);
  }
}

void WritebackQueue::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void WritebackQueue::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WritebackQueue::Add(ns::InodeId ino, uint64_t offset, uint64_t length) {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    // WRITEs of a streamed file arrive in order, a few out of turn: the
    // last queued range of the file usually ends where this one starts.
    if (!queue_.empty()) {
      Range& last = queue_.back();
      if (last.ino == ino && last.offset + last.length == offset) {
        last.length += length;
        return;
      }
    }
    if (queue_.size() >= kMaxPending) return;
    queue_.push_back({ino, offset, length});
  }
  cv_.notify_one();
}

size_t WritebackQueue::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size() + busy_;
}

void WritebackQueue::Run() {
  // Bytes handed over since this thread last synced, and for which file.
  ns::InodeId last_ino = 0;
  uint64_t unsynced = 0;
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const Range r = queue_.front();
    queue_.pop_front();
    ++busy_;
    lock.unlock();
    store_->StartWriteback(r.ino, r.offset, r.length);
    // O_DIRECT WRITEs leave nothing to write back, but the device may
    // hold them in a volatile cache (a VM's disk: the host's page cache)
    // that the COMMIT's fsync must then flush all at once. A data sync
    // every kSyncEvery bytes of a file lets the device drain while the
    // client still sends; it promises nothing (COMMIT still syncs).
    unsynced = r.ino == last_ino ? unsynced + r.length : r.length;
    last_ino = r.ino;
    if (unsynced >= kSyncEvery) {
      (void)store_->Sync(r.ino, nfs41d::data::Stability::kDataSync);
      unsynced = 0;
    }
    lock.lock();
    --busy_;
  }
}

void PrefetchStripe(DsContext& ctx, ns::InodeId ino, uint64_t end,
                    uint64_t length) {
  // Steady state: ask for as much as this READ consumed, from where the
  // last request stopped. A first READ, or one that jumped outside the
  // window (the reader seeked), asks for the whole window from `end`.
  uint64_t pos = end;
  uint64_t budget = kPrefetchAhead;
  {
    std::lock_guard lock(ctx.prefetch_mu);
    auto it = ctx.prefetched.find(ino);
    if (it != ctx.prefetched.end() && it->second >= end &&
        it->second - end <= 2 * kPrefetchAhead) {
      pos = it->second;
      budget = std::min(length, kPrefetchAhead);
    }
  }
  const int fd = ::open(StripePath(ctx, ino).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  for (int i = 0; i < kMaxPrefetchExtents && budget > 0; ++i) {
    const off_t data = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) break;  // ENXIO: no data past pos
    const off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole <= data) break;
    const uint64_t n = std::min<uint64_t>(budget, static_cast<uint64_t>(hole - data));
    (void)::posix_fadvise(fd, data, static_cast<off_t>(n), POSIX_FADV_WILLNEED);
    budget -= n;
    pos = static_cast<uint64_t>(data) + n;
  }
  ::close(fd);
  std::lock_guard lock(ctx.prefetch_mu);
  if (ctx.prefetched.size() >= kMaxPrefetched) ctx.prefetched.clear();
  uint64_t& mark = ctx.prefetched[ino];
  // Concurrent READs of one file race here; the furthest position wins.
  if (mark < pos || mark > pos + 2 * kPrefetchAhead) mark = pos;
}

ns::Status DataServer::RemoveStripe(uint64_t fileid) {
  StripeStat ss;
  if (ns::Status s = StatStripe(ctx_, fileid, &ss); !s.ok()) return s;
  if (!ss.exists) return ns::Status::Ok();  // never stored here, or done
  if (ns::Status s = data_->Remove(fileid); !s.ok()) return s;
  {
    std::lock_guard lock(ctx_.dirs_mu);
    ctx_.dirs_synced.erase(fileid);
  }
  {
    std::lock_guard lock(ctx_.prefetch_mu);
    ctx_.prefetched.erase(fileid);
  }
  const std::string dir = Parent(StripePath(ctx_, fileid));
  if (!SyncDir(dir)) return IoError("fsync", dir, errno);
  return ns::Status::Ok();
}

ns::Status DataServer::TruncateStripe(uint64_t fileid, uint64_t size) {
  StripeStat ss;
  if (ns::Status s = StatStripe(ctx_, fileid, &ss); !s.ok()) return s;
  if (!ss.exists || ss.size <= size) return ns::Status::Ok();
  if (ns::Status s = data_->Truncate(fileid, size); !s.ok()) return s;
  return data_->Sync(fileid, nfs41d::data::Stability::kFileSync);
}

DataServer::DataServer(DataServerOptions options)
    : options_(std::move(options)) {}

DataServer::~DataServer() { Stop(); }

std::string DataServer::Start() {
  fh_ = std::make_unique<nfs41d::FhCodec>(options_.key);
  // A READ or WRITE of max_io bytes must fit the session with its COMPOUND
  // around it (RFC 8881 §18.36.3): clients size their I/O by the MDS, which
  // offers max_io too, so the data server's channel limits leave headroom.
  constexpr uint32_t kHeadroom = 64u << 10;
  options_.state.max_request_size =
      std::max(options_.state.max_request_size, ctx_.max_io + kHeadroom);
  options_.state.max_response_size =
      std::max(options_.state.max_response_size, ctx_.max_io + kHeadroom);
  // No client records: a data server keeps no locking state, so it has no
  // grace period and nothing to reclaim after a restart (RFC 8881 §13.9:
  // that state lives on the MDS).
  state_ = std::make_unique<nfs41d::state::StateManager>(options_.state);
  const std::string store_dir = options_.data_dir + "/data";
  // Stripe units arrive as whole, aligned 1 MiB WRITEs: written around the
  // page cache they cost the kernel no copy and no page management
  // (docs/performance.md, pNFS throughput).
  nfs41d::data::LocalDataStoreOptions store_options;
  store_options.direct_write_min = options_.direct_write_min;
  auto store = nfs41d::data::OpenLocalDataStore(store_dir, store_options);
  if (!store.ok()) {
    return "cannot open the data store: " + store.status().ToString();
  }
  data_ = std::move(store).value();
  writeback_ = std::make_unique<WritebackQueue>(data_.get());
  writeback_->Start();
  ctx_.writeback = writeback_.get();

  ctx_.fh = fh_.get();
  ctx_.state = state_.get();
  ctx_.data = data_.get();
  ctx_.ops = &DsOpTable();
  ctx_.metrics = &metrics_;
  metrics_.extra = [this](std::string* out) {
    auto gauge = [out](const char* name, const char* help, uint64_t v) {
      *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " +
              name + " gauge\n" + name + " " + std::to_string(v) + "\n";
    };
    gauge("dataserver_sessions", "Current NFSv4.1 sessions.",
          state_->session_count());
    gauge("dataserver_clients", "Current NFSv4.1 clients.",
          state_->client_count());
    if (options_.metrics_extra) options_.metrics_extra(out);
  };
  ctx_.store_dir = store_dir;
  // New at every start (RFC 8881 §18.32.3): random bytes, so clients see a
  // restart and resend what they had not committed.
  if (RAND_bytes(ctx_.write_verifier.data(),
                 static_cast<int>(ctx_.write_verifier.size())) != 1) {
    std::random_device rd;
    uint64_t v = static_cast<uint64_t>(
                     std::chrono::system_clock::now().time_since_epoch()
                         .count()) ^
                 (uint64_t{rd()} << 32) ^ rd();
    std::memcpy(ctx_.write_verifier.data(), &v, sizeof v);
  }

  rpc::ServerOptions ro;
  ro.host = options_.host;
  ro.port = options_.port;
  ro.worker_threads = options_.worker_threads;
  ro.endpoint.max_record_size = options_.state.max_request_size + 4096;
  ro.endpoint.name = "dataserver";
  nfs41d::state::StateManager* sm = state_.get();
  nfs41d::Metrics* m = &metrics_;
  ro.endpoint.on_open = [m](const std::shared_ptr<rpc::Connection>&) {
    m->ConnectionOpened();
  };
  ro.endpoint.on_close = [sm, m](const std::shared_ptr<rpc::Connection>& c) {
    m->ConnectionClosed();
    sm->ConnectionClosed(c->id());
  };
  rpc_ = std::make_unique<rpc::Server>(ro);
  rpc_->Register(nfs41d::MakeNfs4Program(&ctx_));
  if (std::string e = nfs41d::StartRpcAndMetrics(
          rpc_, options_.host, options_.port, metrics_server_, &metrics_,
          options_.metrics_host, options_.metrics_port, "dataserver:");
      !e.empty()) {
    return e;
  }
  state_->StartReaper();
  rpc::log::Info("dataserver: serving {} on {}:{}", store_dir, options_.host,
                 port());
  return "";
}

void DataServer::Stop() {
  if (metrics_server_) metrics_server_->Stop();
  if (rpc_) rpc_->Stop();
  // After the workers: none adds a range any more.
  if (writeback_) writeback_->Stop();
  if (state_) state_->StopReaper();
}

}  // namespace dataserver
