#pragma once

// nfs41d's configuration: a TOML file (--config) whose values command-line
// flags override. Keys (all optional):
//
//   listen     = "127.0.0.1:2049"   # HOST:PORT
//   db         = "sqlite:///var/lib/nfs41d/namespace.db"  # or postgresql://
//   data_dir   = "/var/lib/nfs41d"  # secret, embedded namespace, file data
//   workers    = 32
//   lease_time = 90                 # seconds
//   grace_time = 90                 # seconds of reclaim after a restart
//                                   # (default: lease_time)
//   log_level  = "info"             # debug | info | warning | error
//   metrics    = "127.0.0.1:9149"   # Prometheus /metrics (off if unset)
//   idmap      = "numeric"          # or "nfsidmap" (RFC 8881 §5.9)
//   idmap_domain = "example.org"    # nfsidmap: the NFSv4 domain
//   idmap_conf = "/etc/idmapd.conf" # nfsidmap: use this file instead
//   attr_cache_entries = 65536      # attribute cache size (0: off)
//   attr_cache_ttl_ms  = 2000       # trust a cached entry this long
//   readdir_cache_mb = 64           # encoded READDIR replies (0: off)
//   inline_max = 4096               # small files' bytes in the database
//                                   # (0: off; at most 65536)
//
//   [[export]]                      # any number; none: "/" rw to loopback
//   path    = "/data"               # a directory in the namespace
//   clients = ["10.0.0.0/8", "2001:db8::/32"]  # default: loopback only
//   access  = "rw"                  # or "ro"
//   squash  = "root"                # "none" | "root" | "all"
//   anonuid = 65534                 # the squashed identity
//   anongid = 65534
//   sec     = ["sys"]               # "sys", "none"
//   id      = 7                     # filehandle export id (default: hash of path)
//
// See nfs41d/nfs41d.example.toml. Checks that need the namespace (a path
// that is not a directory) happen when the server starts or reloads.

#include <optional>
#include <string>

#include "nfs41d/server.h"
#include "rpc/log.h"

namespace nfs41d {

struct Config {
  ServerOptions server;
  rpc::log::Level log_level = rpc::log::Level::kInfo;
};

// Parses a TOML document (`name` for messages) into `cfg`, over its
// current values. Returns "" or a message naming the key and the problem.
std::string ParseConfig(const std::string& text, const std::string& name,
                        Config* cfg);

// Default data directory: $XDG_DATA_HOME/nfs41d, ~/.local/share/nfs41d, or
// ./nfs41d-data.
std::string DefaultDataDir();

// Parses "HOST:PORT" ("[::1]:2049" for IPv6). False if malformed.
bool ParseHostPort(const std::string& s, std::string* host, uint16_t* port);

// Reads `path` into `cfg` (over its current values). Returns "" or a message
// naming the file, line and problem.
std::string LoadConfigFile(const std::string& path, Config* cfg);

}  // namespace nfs41d
