#include "dataserver/daemon.h"

#include <unistd.h>

#include <filesystem>

#include "dataserver/identity.h"
#include "rpc/log.h"

namespace dataserver {

std::string HostPort(const std::string& host, uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {}

Daemon::~Daemon() { Stop(); }

std::string Daemon::Start() {
  const std::string& dir = options_.data_dir;
  if (dir.empty()) return "no data directory";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return "data directory " + dir + ": " + ec.message();
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return "data directory " + dir + ": not writable";
  }
  const std::string key_file =
      options_.key_file.empty() ? dir + "/pnfs.key" : options_.key_file;
  std::string err;
  std::optional<pnfs::Key> key = LoadKey(key_file, &err);
  if (!key) return err;
  std::optional<std::string> uuid = LoadOrCreateUuid(dir, &err);
  if (!uuid) return err;
  uuid_ = *uuid;

  DataServerOptions so = options_.server;
  so.host = options_.host;
  so.port = options_.port;
  so.data_dir = dir;
  so.key = *key;
  so.worker_threads = options_.worker_threads;
  // Each data server is a server of its own to clients (RFC 8881 §2.10.5).
  so.state.server_owner = "dataserver:" + uuid_;
  so.metrics_extra = [this](std::string* out) {
    auto put = [out](const char* name, const char* help, const char* type,
                     uint64_t v) {
      *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " +
              name + " " + type + "\n" + name + " " + std::to_string(v) +
              "\n";
    };
    const ControlClient* c = control_view_.load();  // null until it starts
    put("dataserver_registered", "1 while registered with the MDS.", "gauge",
        c && c->registered() ? 1 : 0);
    put("dataserver_registrations_total", "Successful NSCTL_REGISTERs.",
        "counter", c ? c->registrations() : 0);
    put("dataserver_heartbeats_total", "Heartbeats the MDS answered.",
        "counter", c ? c->heartbeats() : 0);
    put("dataserver_work_done_total", "REMOVE/TRUNCATE work carried out.",
        "counter", c ? c->work_done() : 0);
  };
  server_ = std::make_unique<DataServer>(so);
  if (std::string e = server_->Start(); !e.empty()) {
    server_.reset();
    return e;
  }
  listen_ = HostPort(options_.host, server_->port());
  advertise_ = options_.advertise.empty() ? listen_ : options_.advertise;

  ControlOptions co;
  co.mds_host = options_.mds_host;
  co.mds_port = options_.mds_port;
  co.uuid = uuid_;
  co.listen = listen_;
  co.advertise = advertise_;
  co.key = *key;
  co.store = server_.get();
  co.data_dir = dir;
  co.initial_backoff = options_.initial_backoff;
  co.max_backoff = options_.max_backoff;
  co.call_timeout = options_.call_timeout;
  control_ = std::make_unique<ControlClient>(co);
  control_view_.store(control_.get());
  control_->Start();
  rpc::log::Info("dataserver {}: listening on {}, advertising {}, MDS {}", uuid_,
                 listen_, advertise_,
                 HostPort(options_.mds_host, options_.mds_port));
  return "";
}

void Daemon::Stop() {
  if (control_) control_->Stop();
  if (server_) server_->Stop();
}

}  // namespace dataserver
