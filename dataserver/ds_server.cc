#include "dataserver/ds_server.h"

#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "dataserver/ds_ops.h"
#include "rpc/log.h"

namespace dataserver {

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
  auto store = nfs41d::data::OpenLocalDataStore(store_dir);
  if (!store.ok()) {
    return "cannot open the data store: " + store.status().ToString();
  }
  data_ = std::move(store).value();

  ctx_.fh = fh_.get();
  ctx_.state = state_.get();
  ctx_.data = data_.get();
  ctx_.ops = &DsOpTable();
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
  ro.endpoint.on_close = [sm](const std::shared_ptr<rpc::Connection>& c) {
    sm->ConnectionClosed(c->id());
  };
  rpc_ = std::make_unique<rpc::Server>(ro);
  rpc_->Register(nfs41d::MakeNfs4Program(&ctx_));
  if (rpc::Status s = rpc_->Start(); !s.ok()) {
    rpc_.reset();
    return "cannot listen on " + options_.host + ":" +
           std::to_string(options_.port) + ": " + s.ToString();
  }
  state_->StartReaper();
  rpc::log::Info("dataserver: serving {} on {}:{}", store_dir, options_.host,
                 port());
  return "";
}

void DataServer::Stop() {
  if (rpc_) rpc_->Stop();
  if (state_) state_->StopReaper();
}

}  // namespace dataserver
