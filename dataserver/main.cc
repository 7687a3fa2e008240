// dataserver: a pNFS data server (NFSv4.1 file layout, RFC 8881 §13).
//
//   dataserver --listen HOST:PORT [--advertise HOST:PORT] --mds HOST:PORT
//              --data-dir DIR [--key-file FILE] [--log-level LEVEL]
//              [--workers N] [--metrics HOST:PORT]
//
// Serves the data path over NFSv4.1 on --listen, keeps stripe files under
// --data-dir, registers with the MDS at --mds (retrying while it is
// unreachable) and heartbeats. --key-file (default <data-dir>/pnfs.key) is
// the MDS's pNFS key and must exist. SIGTERM or SIGINT stop it cleanly.
// Exit status: 0 after a clean stop, 1 if it cannot start, 2 for bad
// arguments (CLI11's own codes for unknown flags).

#include <malloc.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "dataserver/daemon.h"
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

}  // namespace

int main(int argc, char** argv) {
  // READ/WRITE buffers (up to 1 MiB plus headers) are allocated and freed
  // per request on every worker: keep them in the heap rather than a fresh
  // mmap (and its page faults) each time, and keep freed memory for the
  // next request (docs/performance.md, pNFS throughput).
  mallopt(M_MMAP_THRESHOLD, 8 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
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
  std::string metrics;
  app.add_option("--metrics", metrics, "HOST:PORT for Prometheus /metrics");
  app.add_option("--workers", workers, "request worker threads")
      ->check(CLI::Range(1, 1024));
  CLI11_PARSE(app, argc, argv);

  rpc::log::Level level = rpc::log::Level::kInfo;
  if (!log_level.empty() && !rpc::log::ParseLevel(log_level, &level)) {
    return Usage("--log-level", "unknown level '" + log_level + "'");
  }
  rpc::log::SetLevel(level);

  dataserver::DaemonOptions o;
  if (!nfs41d::ParseHostPort(listen, &o.host, &o.port)) {
    return Usage("--listen", "expected HOST:PORT, got '" + listen + "'");
  }
  if (!nfs41d::ParseHostPort(mds, &o.mds_host, &o.mds_port) ||
      o.mds_port == 0) {
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
  } else if (IsWildcard(o.host)) {
    return Usage("--advertise",
                 "required when --listen is a wildcard address (clients "
                 "cannot connect to " + o.host + ")");
  }
  if (!metrics.empty() &&
      !nfs41d::ParseHostPort(metrics, &o.server.metrics_host,
                             &o.server.metrics_port)) {
    return Usage("--metrics", "expected HOST:PORT, got '" + metrics + "'");
  }
  o.advertise = advertise;
  o.data_dir = data_dir;
  o.key_file = key_file;
  o.worker_threads = workers;

  // Signals are taken by sigwait below; every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  dataserver::Daemon daemon(o);
  if (std::string e = daemon.Start(); !e.empty()) {
    std::fprintf(stderr, "dataserver: %s\n", e.c_str());
    return 1;
  }

  int sig = 0;
  sigwait(&sigs, &sig);
  rpc::log::Info("dataserver: signal {}: stopping", sig);
  daemon.Stop();
  rpc::log::Info("dataserver: stopped");
  return 0;
}
