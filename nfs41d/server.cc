#include "nfs41d/server.h"

#include <sys/stat.h>

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
  state_ = std::make_unique<state::StateManager>(options_.state);
  auto store = data::OpenLocalDataStore(options_.data_dir + "/data");
  if (!store.ok()) {
    return "cannot open data store: " + store.status().ToString();
  }
  data_ = std::move(store).value();

  ctx_.ns = ns_.get();
  ctx_.fh = fh_.get();
  ctx_.state = state_.get();
  ctx_.data = data_.get();
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

  rpc::ServerOptions ro;
  ro.host = options_.host;
  ro.port = options_.port;
  ro.worker_threads = options_.worker_threads;
  // A record may be as large as the largest request a session negotiates
  // plus the RPC header.
  ro.endpoint.max_record_size = options_.state.max_request_size + 4096;
  ro.endpoint.name = "nfs41d";
  state::StateManager* sm = state_.get();
  ro.endpoint.on_close = [sm](const std::shared_ptr<rpc::Connection>& c) {
    sm->ConnectionClosed(c->id());
  };
  rpc_ = std::make_unique<rpc::Server>(ro);
  rpc_->Register(MakeNfs4Program(&ctx_));
  if (rpc::Status s = rpc_->Start(); !s.ok()) {
    rpc_.reset();
    return "cannot listen on " + options_.host + ":" +
           std::to_string(options_.port) + ": " + s.ToString();
  }
  state_->StartReaper();
  flusher_stop_ = false;
  flusher_ = std::thread([this] {
    std::unique_lock lock(flusher_mu_);
    while (!flusher_stop_) {
      flusher_cv_.wait_for(lock, options_.flush_interval);
      if (flusher_stop_) break;
      lock.unlock();
      FlushDirtyFiles(ctx_);
      lock.lock();
    }
  });
  rpc::log::Info("nfs41d serving {} on {}:{}", uri, options_.host, port());
  return "";
}

void Nfs41Server::Stop() {
  if (rpc_) rpc_->Stop();
  if (state_) state_->StopReaper();
  {
    std::lock_guard lock(flusher_mu_);
    flusher_stop_ = true;
  }
  flusher_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  // A clean stop leaves the database with every size the clients wrote.
  if (state_ && ns_ && data_) FlushDirtyFiles(ctx_);
}

}  // namespace nfs41d
