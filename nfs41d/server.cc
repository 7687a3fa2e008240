#include "nfs41d/server.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "nfs41d/ops.h"

#include "rpc/log.h"

namespace nfs41d {

Nfs41Server::Nfs41Server(ServerOptions options)
    : options_(std::move(options)) {}

Nfs41Server::~Nfs41Server() { Stop(); }

std::string Nfs41Server::Start() {
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) {
    return "cannot create data directory " + options_.data_dir + ": " +
           ec.message();
  }
  std::string err;
  auto secret = LoadOrCreateSecret(options_.data_dir + "/fh.key", &err);
  if (!secret) return err;
  fh_ = std::make_unique<FhCodec>(*secret);

  std::string uri = options_.db_uri;
  ns::NamespaceOptions nopts;
  nopts.durable = options_.durable;
  // Replies wait for their commit's sync (HoldUntilDurable) instead of
  // workers waiting in Write().
  nopts.defer_sync = true;
  // PostgreSQL: one connection per worker, plus the flusher, reaper and
  // pNFS threads that also call the namespace, so that a worker never
  // waits for a connection while others wait for their commits. SQLite
  // keeps its default readers (one per CPU, at least 4): its reads are
  // CPU-bound, and more connections would each warm their own page cache.
  if (uri.rfind("postgres", 0) == 0) {
    nopts.pool_size = static_cast<int>(options_.worker_threads) + 4;
  }
  if (uri.empty()) {
    uri = "sqlite://" +
          std::filesystem::absolute(options_.data_dir + "/namespace.db")
              .string();
    nopts.create_if_missing = true;  // the embedded default
  }
  auto opened = ns::Namespace::Open(uri, nopts);
  if (!opened.ok()) {
    return "cannot open namespace " + uri + ": " +
           opened.status().ToString();
  }
  ns_ = std::move(opened).value();
  records_ = std::make_unique<ns::ClientRecords>(ns_.get());
  // A READ or WRITE of max_io bytes (fattr4 maxread/maxwrite) must fit a
  // session with its COMPOUND around it (RFC 8881 §18.36.3), as on the
  // data servers (dataserver/ds_server.cc).
  constexpr uint32_t kIoHeadroom = 64u << 10;
  options_.state.max_request_size =
      std::max(options_.state.max_request_size, ctx_.max_io + kIoHeadroom);
  options_.state.max_response_size =
      std::max(options_.state.max_response_size, ctx_.max_io + kIoHeadroom);
  state_ = std::make_unique<state::StateManager>(options_.state,
                                                 records_.get());
  if (ns::Status s = state_->StartEpoch(); !s.ok()) {
    return "cannot read the NFSv4 client records of " + uri + ": " +
           s.ToString();
  }
  auto store = data::OpenLocalDataStore(options_.data_dir + "/data");
  if (!store.ok()) {
    return "cannot open data store: " + store.status().ToString();
  }
  data_ = std::move(store).value();

  std::vector<ExportConfig> ex = options_.exports;
  if (ex.empty()) ex.push_back(DefaultExport());
  std::shared_ptr<const ExportTable> table =
      ExportTable::Build(ex, *ns_, &err);
  if (!table) return "exports: " + err;
  exports_.Set(std::move(table));
  idmap_ = MakeIdMapper(options_.idmap, options_.data_dir, &err);
  if (!idmap_) return err;
  attrs_ = std::make_unique<AttrCache>(options_.attr_cache);
  dirs_ = std::make_unique<DirCache>(DirCacheOptions{
      options_.attr_cache.max_entries, options_.attr_cache.ttl});
  readdirs_ = std::make_unique<ReaddirCache>(
      ReaddirCacheOptions{options_.readdir_cache_bytes, options_.attr_cache.ttl},
      attrs_.get());

  ctx_.ns = ns_.get();
  ctx_.fh = fh_.get();
  ctx_.state = state_.get();
  ctx_.data = data_.get();
  ctx_.inline_max = std::min(options_.inline_max, ns::kMaxInlineBytes);
  {
    // New at every start (RFC 8881 §18.32.3): the start time in ns and
    // random bits, so two starts within one clock tick still differ.
    std::random_device rd;
    uint64_t v = static_cast<uint64_t>(
                     std::chrono::system_clock::now().time_since_epoch()
                         .count()) ^
                 (uint64_t{rd()} << 32) ^ rd();
    std::memcpy(ctx_.write_verifier.data(), &v, sizeof v);
  }
  ctx_.exports = &exports_;
  ctx_.idmap = idmap_.get();
  ctx_.attrs = attrs_->enabled() ? attrs_.get() : nullptr;
  ctx_.dirs = dirs_->enabled() ? dirs_.get() : nullptr;
  ctx_.readdirs = readdirs_->enabled() ? readdirs_.get() : nullptr;
  ctx_.inline_compounds = options_.inline_compounds;
  ctx_.metrics = &metrics_;
  {
    const std::string key_file = options_.pnfs.key_file.empty()
                                     ? options_.data_dir + "/pnfs.key"
                                     : options_.pnfs.key_file;
    auto pkey = LoadOrCreateSecret(key_file, &err);
    if (!pkey) return "pnfs key: " + err;
    pnfs_ = std::make_unique<PnfsMds>(options_.pnfs, *pkey, ns_.get(),
                                      state_.get());
    ctx_.pnfs = pnfs_.get();
    // READ/WRITE/COMMIT of files with a layout go to the data servers.
    PnfsMds* mds = pnfs_.get();
    pnfs_data_ = std::make_unique<data::PnfsDataStore>(
        data_.get(), ns_.get(), &pnfs_->ds_fh(),
        [mds] { return mds->AnyRegistered(); },
        [mds] { mds->WakeDataServers(); });
    ctx_.data = pnfs_data_.get();
  }
  metrics_.extra = [this](std::string* out) {
    auto gauge = [out](const char* name, const char* help, const char* type,
                       uint64_t v) {
      *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " +
              name + " " + type + "\n" + name + " " + std::to_string(v) +
              "\n";
    };
    gauge("nfs41d_sessions", "Current NFSv4.1 sessions.", "gauge",
          state_->session_count());
    gauge("nfs41d_clients", "Current NFSv4.1 clients.", "gauge",
          state_->client_count());
    if (rpc_) {
      rpc::LoopStats l = rpc_->loop_stats();
      *out += "# HELP nfs41d_rpc_loop_busy_seconds_total Time the RPC event "
              "loop spent working (reading, inline COMPOUNDs, writing "
              "replies), not waiting.\n# TYPE nfs41d_rpc_loop_busy_seconds_total "
              "counter\nnfs41d_rpc_loop_busy_seconds_total " +
              std::to_string(static_cast<double>(l.busy_ns) * 1e-9) + "\n";
      gauge("nfs41d_rpc_loop_wakeups_total",
            "Times the RPC event loop woke up with work.", "counter",
            l.wakeups);
      gauge("nfs41d_rpc_calls_total", "RPC call records received.",
            "counter", l.calls);
    }
    AttrCache::Stats c = attrs_->stats();
    gauge("nfs41d_attr_cache_hits_total", "Attribute cache hits.", "counter",
          c.hits);
    gauge("nfs41d_attr_cache_misses_total", "Attribute cache misses.",
          "counter", c.misses);
    gauge("nfs41d_attr_cache_invalidations_total",
          "Attribute cache invalidations.", "counter", c.invalidations);
    gauge("nfs41d_attr_cache_evictions_total", "Attribute cache evictions.",
          "counter", c.evictions);
    gauge("nfs41d_attr_cache_entries", "Attribute cache entries.", "gauge",
          c.entries);
    DirCache::Stats d = dirs_->stats();
    gauge("nfs41d_dir_cache_hits_total", "Directory cache (LOOKUP) hits.",
          "counter", d.hits);
    gauge("nfs41d_dir_cache_misses_total", "Directory cache (LOOKUP) misses.",
          "counter", d.misses);
    gauge("nfs41d_dir_cache_entries", "Directory cache names.", "gauge",
          d.entries);
    ReaddirCache::Stats rd = readdirs_->stats();
    gauge("nfs41d_readdir_cache_hits_total", "READDIR replies from the cache.",
          "counter", rd.hits);
    gauge("nfs41d_readdir_cache_stale_total",
          "Cached READDIR replies dropped as changed or expired.", "counter",
          rd.stale);
    gauge("nfs41d_readdir_cache_bytes", "Bytes of cached READDIR replies.",
          "gauge", rd.bytes);
  };

  rpc::ServerOptions ro;
  ro.host = options_.host;
  ro.port = options_.port;
  ro.worker_threads = options_.worker_threads;
  // A record may be as large as the largest request a session negotiates
  // plus the RPC header.
  ro.endpoint.max_record_size = options_.state.max_request_size + 4096;
  ro.endpoint.name = "nfs41d";
  ro.endpoint.backend = options_.event_loop;
  state::StateManager* sm = state_.get();
  Metrics* m = &metrics_;
  ro.endpoint.on_open = [m](const std::shared_ptr<rpc::Connection>&) {
    m->ConnectionOpened();
  };
  ro.endpoint.on_close = [sm, m](const std::shared_ptr<rpc::Connection>& c) {
    m->ConnectionClosed();
    sm->ConnectionClosed(c->id());
  };
  rpc_ = std::make_unique<rpc::Server>(ro);
  rpc_->Register(MakeNfs4Program(&ctx_));
  // Data servers register and heartbeat on the NFS port (docs/pnfs.md).
  // Data servers act on what a reply tells them (a file's bytes to remove
  // or cut): each reply waits until everything committed before it is on
  // disk, not only its own changes.
  ns::Namespace* nsp = ns_.get();
  rpc_->Register(pnfs_->MakeNsctlProgram().Finally(
      [nsp](const rpc::CallContext&, rpc::Reply& reply) {
        nsp->TakeCommitTicket();  // this call's: the latest covers it
        HoldUntilDurable(*nsp, nsp->LatestCommitTicket(), reply);
      }));
  if (std::string e = StartRpcAndMetrics(
          rpc_, options_.host, options_.port, metrics_server_, &metrics_,
          options_.metrics_host, options_.metrics_port, "nfs41d");
      !e.empty()) {
    return e;
  }
  state_->StartReaper();
  pnfs_->Start();
  flusher_stop_ = false;
  flusher_ = std::thread([this] {
    std::unique_lock lock(flusher_mu_);
    bool orphans_done = !ctx_.data;
    while (!flusher_stop_) {
      flusher_cv_.wait_for(lock, options_.flush_interval);
      if (flusher_stop_) break;
      lock.unlock();
      FlushDirtyFiles(ctx_);
      if (!orphans_done) orphans_done = ReleaseCrashOrphans(ctx_);
      lock.lock();
    }
  });
  rpc::log::Info("nfs41d serving {} on {}:{}", uri, options_.host, port());
  return "";
}

std::string Nfs41Server::ReloadExports(
    const std::vector<ExportConfig>& exports) {
  std::vector<ExportConfig> ex = exports;
  if (ex.empty()) ex.push_back(DefaultExport());
  std::string err;
  std::shared_ptr<const ExportTable> table =
      ExportTable::Build(ex, *ns_, &err);
  if (!table) {
    metrics_.ReloadDone(false);
    rpc::log::Error("nfs41d: reload: exports: {} (keeping the current ones)",
                    err);
    return "exports: " + err;
  }
  exports_.Set(std::move(table));
  metrics_.ReloadDone(true);
  rpc::log::Info("nfs41d: reload: {} export(s)", ex.size());
  return "";
}

void Nfs41Server::Stop() {
  if (metrics_server_) metrics_server_->Stop();
  if (rpc_) rpc_->Stop();
  if (state_) state_->StopReaper();
  if (pnfs_) pnfs_->Stop();
  {
    std::lock_guard lock(flusher_mu_);
    flusher_stop_ = true;
  }
  flusher_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  // A clean stop leaves the database with every size the clients wrote.
  // (Only if Start got as far as wiring the context: a start refused for
  // bad exports has nothing to flush.)
  if (ctx_.state && ctx_.ns && ctx_.data) FlushDirtyFiles(ctx_);
  // Held replies and data removals (syncer callbacks) run now, while the
  // data stores they use still exist.
  if (ns_) ns_->AwaitDurable(ns_->LatestCommitTicket());
}

}  // namespace nfs41d
