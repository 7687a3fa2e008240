// dataserver: a pNFS data server (NFSv4.1 file layout, RFC 8881 §13).
//
//   dataserver --listen HOST:PORT [--advertise HOST:PORT] --mds HOST:PORT
//              --data-dir DIR [--key-file FILE] [--log-level LEVEL]
//              [--workers N]
//
// Serves the data path over NFSv4.1 on --listen, keeps stripe files under
// --data-dir, registers with the MDS at --mds (retrying while it is
// unreachable) and heartbeats. --key-file (default <data-dir>/pnfs.key) is
// the MDS's pNFS key and must exist. SIGTERM or SIGINT stop it cleanly.
// Exit status: 0 after a clean stop, 1 if it cannot start, 2 for bad
// arguments (CLI11's own codes for unknown flags).

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <string>

#include "dataserver/control.h"
#include "dataserver/ds_server.h"
#include "dataserver/identity.h"
#include "nfs41d/config.h"
#include "rpc/log.h"

namespace {

int Usage(const char* flag, const std::string& what) {
  std::fprintf(stderr, "dataserver: %s: %s\n", flag, what.c_str());
  return 2;
}

bool IsWildcard(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
}

std::string HostPort(const std::string& host, uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dataserver: pNFS data server (NFSv4.1 file layout)"};
  std::string listen, advertise, mds, data_dir, key_file, log_level;
  size_t workers = 8;
  app.add_option("--listen", listen, "HOST:PORT to serve NFSv4.1 on")
      ->required();
  app.add_option("--advertise", advertise,
                 "HOST:PORT clients are told (default: --listen)");
  app.add_option("--mds", mds, "HOST:PORT of the metadata server (nfs41d)")
      ->required();
  app.add_option("--data-dir", data_dir, "directory of stripe files and identity")
      ->required();
  app.add_option("--key-file", key_file,
                 "the MDS's pNFS key (default: <data-dir>/pnfs.key)");
  app.add_option("--log-level", log_level, "debug, info, warning, error");
  app.add_option("--workers", workers, "request worker threads")
      ->check(CLI::Range(1, 1024));
  CLI11_PARSE(app, argc, argv);

  rpc::log::Level level = rpc::log::Level::kInfo;
  if (!log_level.empty() && !rpc::log::ParseLevel(log_level, &level)) {
    return Usage("--log-level", "unknown level '" + log_level + "'");
  }
  rpc::log::SetLevel(level);

  dataserver::DataServerOptions so;
  if (!nfs41d::ParseHostPort(listen, &so.host, &so.port)) {
    return Usage("--listen", "expected HOST:PORT, got '" + listen + "'");
  }
  std::string mds_host;
  uint16_t mds_port = 0;
  if (!nfs41d::ParseHostPort(mds, &mds_host, &mds_port) || mds_port == 0) {
    return Usage("--mds", "expected HOST:PORT, got '" + mds + "'");
  }
  if (!advertise.empty()) {
    std::string h;
    uint16_t p = 0;
    if (!nfs41d::ParseHostPort(advertise, &h, &p) || p == 0 || IsWildcard(h)) {
      return Usage("--advertise",
                   "expected HOST:PORT clients can reach, got '" + advertise +
                       "'");
    }
  } else if (IsWildcard(so.host)) {
    return Usage("--advertise",
                 "required when --listen is a wildcard address (clients "
                 "cannot connect to " + so.host + ")");
  }

  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec || ::access(data_dir.c_str(), W_OK | X_OK) != 0) {
    std::fprintf(stderr, "dataserver: --data-dir %s: not a writable directory%s%s\n",
                 data_dir.c_str(), ec ? ": " : "", ec ? ec.message().c_str() : "");
    return 1;
  }
  if (key_file.empty()) key_file = data_dir + "/pnfs.key";
  std::string err;
  std::optional<pnfs::Key> key = dataserver::LoadKey(key_file, &err);
  if (!key) {
    std::fprintf(stderr, "dataserver: %s\n", err.c_str());
    return 1;
  }
  std::optional<std::string> uuid =
      dataserver::LoadOrCreateUuid(data_dir, &err);
  if (!uuid) {
    std::fprintf(stderr, "dataserver: %s\n", err.c_str());
    return 1;
  }

  // Signals are taken by sigwait below; every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  so.data_dir = data_dir;
  so.key = *key;
  so.worker_threads = workers;
  so.state.server_owner = "dataserver:" + *uuid;
  dataserver::DataServer server(so);
  if (std::string e = server.Start(); !e.empty()) {
    rpc::log::Error("dataserver: {}", e);
    return 1;
  }
  // Port 0 (tests): the addresses name the port actually bound.
  const std::string listen_addr = HostPort(so.host, server.port());
  dataserver::ControlOptions co;
  co.mds_host = mds_host;
  co.mds_port = mds_port;
  co.uuid = *uuid;
  co.listen = listen_addr;
  co.advertise = advertise.empty() ? listen_addr : advertise;
  co.key = *key;
  co.store = &server;
  co.data_dir = data_dir;
  dataserver::ControlClient control(co);
  control.Start();
  rpc::log::Info("dataserver {}: listening on {}, advertising {}, MDS {}",
                 *uuid, listen_addr, co.advertise, mds);

  int sig = 0;
  sigwait(&sigs, &sig);
  rpc::log::Info("dataserver: signal {}: stopping", sig);
  control.Stop();
  server.Stop();
  rpc::log::Info("dataserver: stopped");
  return 0;
}
