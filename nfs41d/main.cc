// nfs41d: the NFSv4.1 metadata server.
//
//   nfs41d [--config FILE] [--listen HOST:PORT] [--db URI] [--data-dir DIR]
//          [--metrics HOST:PORT] [--log-level LEVEL]
//
// With no arguments it serves an embedded SQLite namespace (created if
// missing) under the default data directory on 127.0.0.1:2049, "/" exported
// read-write to loopback. SIGTERM or SIGINT stop it cleanly. SIGHUP re-reads
// the config file's exports and swaps them in; a config that does not parse
// or whose exports do not resolve is logged and the running exports stay
// (other keys -- listen, db, ... -- need a restart).

#include <malloc.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <string>

#include "nfs41d/config.h"
#include "nfs41d/server.h"
#include "rpc/log.h"

int main(int argc, char** argv) {
  // READ/WRITE buffers (up to max_io, 1 MiB) and READDIR pages with
  // attributes are allocated and freed within one COMPOUND. With glibc's
  // dynamic defaults, blocks that size are mmap()ed and munmap()ed, or the
  // heap is trimmed, so every request faults its memory in again; fixed
  // thresholds keep it in the heap for the next request, as ns-bench does
  // (docs/performance.md). Set before any thread starts.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  CLI::App app{"nfs41d: NFSv4.1 metadata server over a namespace database"};
  std::string config_file, listen, db, data_dir, log_level;
  app.add_option("--config", config_file, "TOML configuration file");
  app.add_option("--listen", listen, "HOST:PORT to listen on");
  app.add_option("--db", db, "namespace URI (sqlite:///path, postgresql://...)");
  app.add_option("--data-dir", data_dir, "data directory (secret, embedded db, file data)");
  app.add_option("--log-level", log_level, "debug, info, warning, error");
  std::string metrics;
  app.add_option("--metrics", metrics, "HOST:PORT for Prometheus /metrics");
  std::string pnfs_key;
  app.add_option("--pnfs-key", pnfs_key,
                 "key shared with pNFS data servers (default DATA_DIR/pnfs.key)");
  std::string event_loop;
  app.add_option("--event-loop", event_loop,
                 "auto, epoll or io_uring (the RPC event loop's backend)");
  CLI11_PARSE(app, argc, argv);

  nfs41d::Config cfg;
  cfg.server.data_dir = nfs41d::DefaultDataDir();
  if (!config_file.empty()) {
    if (std::string e = nfs41d::LoadConfigFile(config_file, &cfg); !e.empty()) {
      std::fprintf(stderr, "nfs41d: %s\n", e.c_str());
      return 2;
    }
  }
  if (!listen.empty() &&
      !nfs41d::ParseHostPort(listen, &cfg.server.host, &cfg.server.port)) {
    std::fprintf(stderr, "nfs41d: --listen: expected HOST:PORT, got '%s'\n",
                 listen.c_str());
    return 2;
  }
  if (!metrics.empty() && !nfs41d::ParseHostPort(metrics, &cfg.server.metrics_host,
                                                 &cfg.server.metrics_port)) {
    std::fprintf(stderr, "nfs41d: --metrics: expected HOST:PORT, got '%s'\n",
                 metrics.c_str());
    return 2;
  }
  if (!db.empty()) cfg.server.db_uri = db;
  if (!data_dir.empty()) cfg.server.data_dir = data_dir;
  if (!pnfs_key.empty()) cfg.server.pnfs.key_file = pnfs_key;
  if (!event_loop.empty()) {
    std::optional<rpc::Backend> b = rpc::ParseBackend(event_loop);
    if (!b) {
      std::fprintf(stderr,
                   "nfs41d: --event-loop: expected auto, epoll or io_uring, "
                   "got '%s'\n",
                   event_loop.c_str());
      return 2;
    }
    cfg.server.event_loop = *b;
  }
  if (!log_level.empty() && !rpc::log::ParseLevel(log_level, &cfg.log_level)) {
    std::fprintf(stderr, "nfs41d: --log-level: unknown level '%s'\n",
                 log_level.c_str());
    return 2;
  }
  rpc::log::SetLevel(cfg.log_level);

  // Block the signals we handle in every thread (the server's threads
  // inherit the mask); wait for them here.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  nfs41d::Nfs41Server server(cfg.server);
  if (std::string e = server.Start(); !e.empty()) {
    rpc::log::Error("nfs41d: {}", e);
    return 1;
  }
  int sig = 0;
  for (;;) {
    sigwait(&sigs, &sig);
    if (sig != SIGHUP) break;
    if (config_file.empty()) {
      rpc::log::Warning("nfs41d: SIGHUP: no --config file to reload");
      continue;
    }
    rpc::log::Info("nfs41d: SIGHUP: reloading exports from {}", config_file);
    nfs41d::Config fresh;
    if (std::string e = nfs41d::LoadConfigFile(config_file, &fresh);
        !e.empty()) {
      server.metrics().ReloadDone(false);
      rpc::log::Error("nfs41d: reload: {} (keeping the current exports)", e);
      continue;
    }
    server.ReloadExports(fresh.server.exports);  // logs the outcome
  }
  rpc::log::Info("nfs41d: signal {}: stopping", sig);
  server.Stop();
  rpc::log::Info("nfs41d: stopped");
  return 0;
}
