#include "nfs41d/config.h"

#include <charconv>
#include <cstdlib>
#include <sstream>
#include <toml++/toml.h>

namespace nfs41d {

std::string DefaultDataDir() {
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) {
    return std::string(x) + "/nfs41d";
  }
  if (const char* h = std::getenv("HOME"); h && *h) {
    return std::string(h) + "/.local/share/nfs41d";
  }
  return "nfs41d-data";
}

bool ParseHostPort(const std::string& s, std::string* host, uint16_t* port) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 == s.size()) return false;
  std::string h = s.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  }
  unsigned p = 0;
  const char* b = s.data() + colon + 1;
  const char* e = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(b, e, p);
  if (ec != std::errc() || ptr != e || p > 65535) return false;
  *host = h;
  *port = static_cast<uint16_t>(p);
  return true;
}

std::string LoadConfigFile(const std::string& path, Config* cfg) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << path;
    if (e.source().begin.line > 0) {
      os << ":" << e.source().begin.line << ":" << e.source().begin.column;
    }
    os << ": " << e.description();
    return os.str();
  }
  for (auto&& [key, node] : t) {
    std::string k(key.str());
    auto bad = [&](const char* want) {
      return path + ": '" + k + "' must be " + want;
    };
    if (k == "listen") {
      auto v = node.value<std::string>();
      if (!v || !ParseHostPort(*v, &cfg->server.host, &cfg->server.port)) {
        return bad("a \"HOST:PORT\" string");
      }
    } else if (k == "db") {
      auto v = node.value<std::string>();
      if (!v) return bad("a string (namespace URI)");
      cfg->server.db_uri = *v;
    } else if (k == "data_dir") {
      auto v = node.value<std::string>();
      if (!v || v->empty()) return bad("a directory path");
      cfg->server.data_dir = *v;
    } else if (k == "workers") {
      auto v = node.value<int64_t>();
      if (!v || *v < 1 || *v > 1024) return bad("an integer in 1..1024");
      cfg->server.worker_threads = static_cast<size_t>(*v);
    } else if (k == "lease_time") {
      auto v = node.value<int64_t>();
      if (!v || *v < 5 || *v > 3600) return bad("an integer in 5..3600");
      cfg->server.state.lease_seconds = static_cast<uint32_t>(*v);
    } else if (k == "grace_time") {
      auto v = node.value<int64_t>();
      if (!v || *v < 5 || *v > 3600) return bad("an integer in 5..3600");
      cfg->server.state.grace_seconds = static_cast<uint32_t>(*v);
    } else if (k == "log_level") {
      auto v = node.value<std::string>();
      if (!v || !rpc::log::ParseLevel(*v, &cfg->log_level)) {
        return bad("one of debug, info, warning, error");
      }
    } else {
      return path + ": unknown key '" + k + "'";
    }
  }
  return "";
}

}  // namespace nfs41d
