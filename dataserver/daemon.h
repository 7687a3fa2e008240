#pragma once

// Daemon: a whole data server -- the key and identity from the data
// directory (identity.h), the NFSv4.1 data path (DataServer) and the
// control client (ControlClient) -- started the way main.cc starts it, so
// tests (this folder's, and pNFS tests with nfs41d as the MDS) can run
// several data servers in one process.
//
//   dataserver::DaemonOptions o;
//   o.data_dir = dir;                 // holds pnfs.key (the MDS's key)
//   o.mds_host = "127.0.0.1"; o.mds_port = mds_port;
//   dataserver::Daemon ds(o);
//   if (std::string e = ds.Start(); !e.empty()) ...;
//   ... ds.port(), ds.control().registered() ...
//
// Thread safety: Start/Stop from the owning thread.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "dataserver/control.h"
#include "dataserver/ds_server.h"

namespace dataserver {

struct DaemonOptions {
  // Where to listen; port 0 picks a free one (the addresses sent to the MDS
  // then carry the port bound).
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  // "host:port" clients are told; empty: the listen address.
  std::string advertise;
  std::string mds_host = "127.0.0.1";
  uint16_t mds_port = 0;
  // Stripe files, ds.uuid, and by default the key.
  std::string data_dir;
  // The MDS's pNFS key; empty: <data_dir>/pnfs.key. Must exist.
  std::string key_file;
  size_t worker_threads = 8;
  // Session options (lease, slots, sizes) and the metrics listener;
  // server_owner is set from the uuid.
  DataServerOptions server;
  // Retry delays and call deadline of the control client.
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  std::chrono::milliseconds call_timeout{10000};
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options);
  ~Daemon();  // Stop()
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Creates the data directory if missing, reads the key (it must exist),
  // reads or creates ds.uuid, serves, and starts registering with the MDS
  // (in the background: the MDS may be down). Returns a message for the
  // operator on failure, "" on success.
  std::string Start();
  // Stops the control client, then the server. Idempotent.
  void Stop();

  uint16_t port() const { return server_ ? server_->port() : 0; }
  const std::string& uuid() const { return uuid_; }
  // "host:port" as sent to the MDS. REQUIRES: Start() succeeded.
  const std::string& listen_address() const { return listen_; }
  const std::string& advertise_address() const { return advertise_; }
  DataServer& server() { return *server_; }
  ControlClient& control() { return *control_; }

 private:
  DaemonOptions options_;
  std::string uuid_;
  std::string listen_;
  std::string advertise_;
  std::unique_ptr<DataServer> server_;
  std::unique_ptr<ControlClient> control_;
  // control_ for the metrics thread, which may render while Start() runs.
  std::atomic<const ControlClient*> control_view_{nullptr};
};

// "host:port", with brackets for an IPv6 host.
std::string HostPort(const std::string& host, uint16_t port);

}  // namespace dataserver
