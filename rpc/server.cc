#include "rpc/server.h"

#include "rpc/log.h"

namespace rpc {

Server::Server(ServerOptions options)
    : options_(std::move(options)),
      pool_(options_.worker_threads, options_.endpoint.name,
            options_.on_worker_start, options_.on_worker_stop),
      loop_(options_.endpoint, &registry_, &pool_) {}

Server::~Server() { Stop(); }

Status Server::Start() {
  Result<uint16_t> port = loop_.Listen(options_.host, options_.port);
  if (!port.ok()) return port.status();
  port_ = *port;
  pool_.Start();
  Status st = loop_.Start();
  if (!st.ok()) {
    pool_.Stop();
    return st;
  }
  log::Info("rpc: {} listening on {}:{} with {} workers",
            options_.endpoint.name, options_.host.empty() ? "*" : options_.host,
            port_, pool_.size());
  return Status::Ok();
}

void Server::Stop() {
  // Loop first: no new calls reach the pool and every connection is closed
  // (so workers still running write nowhere); then the workers.
  loop_.Stop();
  pool_.Stop();
}

}  // namespace rpc
