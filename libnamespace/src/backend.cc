// The backend registry: which Backend a URI's scheme selects.

#include "libnamespace/src/backend.h"

#include <chrono>
#include <map>
#include <mutex>

namespace ns {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, BackendFactory> factories;
};

Registry& GetRegistry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    reg->factories["sqlite"] = OpenSqliteBackend;
    reg->factories["postgresql"] = OpenPostgresBackend;
    reg->factories["postgres"] = OpenPostgresBackend;
    return reg;
  }();
  return *r;
}

}  // namespace

void RegisterBackend(const std::string& scheme, BackendFactory factory) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.factories[scheme] = std::move(factory);
}

Result<std::unique_ptr<Backend>> OpenBackend(const std::string& uri,
                                             const NamespaceOptions& options) {
  size_t colon = uri.find(':');
  if (colon == std::string::npos || colon == 0) {
    return Status::Invalid("database URI '" + uri + "'",
                           "expected sqlite:///path/ns.db or "
                           "postgresql://user@host/db");
  }
  std::string scheme = uri.substr(0, colon);
  BackendFactory factory;
  {
    Registry& r = GetRegistry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.factories.find(scheme);
    if (it == r.factories.end()) {
      return Status::Invalid("database URI '" + uri + "'",
                             "unknown scheme '" + scheme +
                                 "' (known: sqlite, postgresql)");
    }
    factory = it->second;
  }
  return factory(uri, options);
}

TimeNs NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace ns
