#include "nfs41d/config.h"

#include <charconv>
#include <optional>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>
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

namespace {

std::string ParseError(const std::string& name, const toml::parse_error& e) {
  std::ostringstream os;
  os << name;
  if (e.source().begin.line > 0) {
    os << ":" << e.source().begin.line << ":" << e.source().begin.column;
  }
  os << ": " << e.description();
  return os.str();
}

// A list of strings, or nullopt.
std::optional<std::vector<std::string>> StringList(const toml::node& n) {
  const toml::array* a = n.as_array();
  if (!a) return std::nullopt;
  std::vector<std::string> out;
  for (const toml::node& e : *a) {
    auto v = e.value<std::string>();
    if (!v) return std::nullopt;
    out.push_back(*v);
  }
  return out;
}

std::string ParseExport(const toml::table& t, const std::string& where,
                        ExportConfig* e) {
  bool has_path = false;
  for (auto&& [key, node] : t) {
    std::string k(key.str());
    auto bad = [&](const std::string& want) {
      return where + ": '" + k + "' must be " + want;
    };
    if (k == "path") {
      auto v = node.value<std::string>();
      if (!v || v->empty() || (*v)[0] != '/') {
        return bad("an absolute path in the namespace");
      }
      e->path = *v;
      has_path = true;
    } else if (k == "clients") {
      auto v = StringList(node);
      if (!v || v->empty()) return bad("a non-empty list of networks");
      for (const std::string& c : *v) {
        std::string err;
        if (!Cidr::Parse(c, &err)) return where + ": clients: " + err;
      }
      e->clients = *v;
    } else if (k == "access") {
      auto v = node.value<std::string>();
      if (!v || (*v != "rw" && *v != "ro")) return bad("\"rw\" or \"ro\"");
      e->read_only = *v == "ro";
    } else if (k == "squash") {
      auto v = node.value<std::string>();
      if (v && *v == "none") {
        e->squash = Squash::kNone;
      } else if (v && *v == "root") {
        e->squash = Squash::kRoot;
      } else if (v && *v == "all") {
        e->squash = Squash::kAll;
      } else {
        return bad("\"none\", \"root\" or \"all\"");
      }
    } else if (k == "anonuid" || k == "anongid") {
      auto v = node.value<int64_t>();
      if (!v || *v < 0 || *v > 0xfffffffe) return bad("an id in 0..4294967294");
      (k == "anonuid" ? e->anonuid : e->anongid) = static_cast<uint32_t>(*v);
    } else if (k == "sec") {
      auto v = StringList(node);
      if (!v || v->empty()) return bad("a non-empty list of flavors");
      for (const std::string& f : *v) {
        if (f != "sys" && f != "none") {
          return where + ": sec: '" + f +
                 "' is not supported (\"sys\" or \"none\"; krb5 later)";
        }
      }
      e->sec = *v;
    } else if (k == "id") {
      auto v = node.value<int64_t>();
      if (!v || *v < 1 || *v >= 0xffffffff) return bad("an integer in 1..4294967294");
      e->id = static_cast<uint32_t>(*v);
    } else {
      return where + ": unknown key '" + k + "'";
    }
  }
  if (!has_path) return where + ": 'path' is missing";
  return "";
}

}  // namespace

std::string ParseConfig(const std::string& text, const std::string& name,
                        Config* cfg) {
  toml::table t;
  try {
    t = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    return ParseError(name, e);
  }
  const std::string path = name;
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
    } else if (k == "metrics") {
      auto v = node.value<std::string>();
      std::string host;
      uint16_t port;
      if (!v || !ParseHostPort(*v, &host, &port)) {
        return bad("a \"HOST:PORT\" string");
      }
      cfg->server.metrics_host = host;
      cfg->server.metrics_port = port;
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
    } else if (k == "idmap") {
      auto v = node.value<std::string>();
      if (!v || (*v != "numeric" && *v != "nfsidmap")) {
        return bad("\"numeric\" or \"nfsidmap\"");
      }
      cfg->server.idmap.mode = *v;
    } else if (k == "idmap_domain") {
      auto v = node.value<std::string>();
      if (!v || v->empty() || v->find('@') != std::string::npos) {
        return bad("a domain name");
      }
      cfg->server.idmap.domain = *v;
    } else if (k == "idmap_conf") {
      auto v = node.value<std::string>();
      if (!v || v->empty()) return bad("a file path");
      cfg->server.idmap.conf_file = *v;
    } else if (k == "attr_cache_entries") {
      auto v = node.value<int64_t>();
      if (!v || *v < 0 || *v > (int64_t{1} << 26)) {
        return bad("an integer in 0..67108864");
      }
      cfg->server.attr_cache.max_entries = static_cast<size_t>(*v);
    } else if (k == "attr_cache_ttl_ms") {
      auto v = node.value<int64_t>();
      if (!v || *v < 0 || *v > 3600000) return bad("an integer in 0..3600000");
      cfg->server.attr_cache.ttl = std::chrono::milliseconds(*v);
    } else if (k == "readdir_cache_mb") {
      auto v = node.value<int64_t>();
      if (!v || *v < 0 || *v > 65536) return bad("an integer in 0..65536");
      cfg->server.readdir_cache_bytes = static_cast<size_t>(*v) << 20;
    } else if (k == "inline_max") {
      auto v = node.value<int64_t>();
      if (!v || *v < 0 || *v > static_cast<int64_t>(ns::kMaxInlineBytes)) {
        return bad("an integer in 0..65536");
      }
      cfg->server.inline_max = static_cast<uint64_t>(*v);
    } else if (k == "inline_compounds") {
      // value<bool>() would also take an integer.
      if (!node.is_boolean()) return bad("true or false");
      cfg->server.inline_compounds = *node.value<bool>();
    } else if (k == "event_loop") {
      auto v = node.value<std::string>();
      std::optional<rpc::Backend> b =
          v ? rpc::ParseBackend(*v) : std::nullopt;
      if (!b) return bad("\"auto\", \"epoll\" or \"io_uring\"");
      cfg->server.event_loop = *b;
    } else if (k == "pnfs_key_file") {
      auto v = node.value<std::string>();
      if (!v || v->empty()) return bad("a file path");
      cfg->server.pnfs.key_file = *v;
    } else if (k == "pnfs_stripe_unit") {
      auto v = node.value<int64_t>();
      if (!v || *v < 4096 || *v > (int64_t{1} << 30) || *v % 4096 != 0) {
        return bad("a multiple of 4096 in 4096..1073741824");
      }
      cfg->server.pnfs.stripe_unit = static_cast<uint64_t>(*v);
    } else if (k == "pnfs_stripe_count") {
      auto v = node.value<int64_t>();
      if (!v || *v < 0 || *v > 1024) return bad("an integer in 0..1024");
      cfg->server.pnfs.stripe_count = static_cast<uint32_t>(*v);
    } else if (k == "pnfs_heartbeat_seconds" || k == "pnfs_expire_seconds") {
      auto v = node.value<int64_t>();
      if (!v || *v < 1 || *v > 3600) return bad("an integer in 1..3600");
      (k == "pnfs_heartbeat_seconds" ? cfg->server.pnfs.heartbeat_seconds
                                     : cfg->server.pnfs.expire_seconds) =
          static_cast<uint32_t>(*v);
    } else if (k == "export") {
      const toml::array* a = node.as_array();
      if (!a || !a->is_array_of_tables()) {
        return bad("an array of tables ([[export]])");
      }
      cfg->server.exports.clear();
      std::set<std::string> seen;
      for (size_t i = 0; i < a->size(); ++i) {
        ExportConfig e;
        std::string where = path + ": export " + std::to_string(i + 1);
        if (std::string err = ParseExport(*a->get(i)->as_table(), where, &e);
            !err.empty()) {
          return err;
        }
        // Same path spelled differently ("/a/" and "/a") is caught when the
        // table is built; this catches the plain duplicate early.
        if (!seen.insert(e.path).second) {
          return where + ": path " + e.path + " is exported twice";
        }
        cfg->server.exports.push_back(std::move(e));
      }
    } else {
      return path + ": unknown key '" + k + "'";
    }
  }
  return "";
}

std::string LoadConfigFile(const std::string& path, Config* cfg) {
  std::ifstream f(path);
  if (!f) return path + ": cannot read";
  std::stringstream ss;
  ss << f.rdbuf();
  return ParseConfig(ss.str(), path, cfg);
}

}  // namespace nfs41d
