#pragma once

// nfs41d's configuration: a TOML file (--config) whose values command-line
// flags override. Keys (all optional):
//
//   listen     = "127.0.0.1:2049"   # HOST:PORT
//   db         = "sqlite:///var/lib/nfs41d/namespace.db"  # or postgresql://
//   data_dir   = "/var/lib/nfs41d"  # secret, embedded namespace, file data
//   workers    = 8
//   lease_time = 90                 # seconds
//   log_level  = "info"             # debug | info | warning | error
//
// Exports (issue 4 item 7) come later.

#include <optional>
#include <string>

#include "nfs41d/server.h"
#include "rpc/log.h"

namespace nfs41d {

struct Config {
  ServerOptions server;
  rpc::log::Level log_level = rpc::log::Level::kInfo;
};

// Default data directory: $XDG_DATA_HOME/nfs41d, ~/.local/share/nfs41d, or
// ./nfs41d-data.
std::string DefaultDataDir();

// Parses "HOST:PORT" ("[::1]:2049" for IPv6). False if malformed.
bool ParseHostPort(const std::string& s, std::string* host, uint16_t* port);

// Reads `path` into `cfg` (over its current values). Returns "" or a message
// naming the file, line and problem.
std::string LoadConfigFile(const std::string& path, Config* cfg);

}  // namespace nfs41d
