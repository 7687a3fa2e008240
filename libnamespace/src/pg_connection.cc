// The PostgreSQL backend's connection pool and row conversion.

#include "libnamespace/src/pg_connection.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ns {
namespace pg_internal {

std::unique_ptr<PgConn> ConnPool::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !idle_.empty() || open_ < max_; });
  if (!idle_.empty()) {
    std::unique_ptr<PgConn> c = std::move(idle_.back());
    idle_.pop_back();
    return c;
  }
  ++open_;
  lock.unlock();
  try {
    return std::make_unique<PgConn>(uri_);
  } catch (...) {
    lock.lock();
    --open_;
    cv_.notify_one();
    throw;
  }
}

void ConnPool::Release(std::unique_ptr<PgConn> c, bool broken) {
  if (broken || !c->conn.is_open()) {
    c.reset();  // disconnect outside the lock
    std::lock_guard<std::mutex> lock(mu_);
    --open_;
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(std::move(c));
  }
  cv_.notify_one();
}

void ConnPool::DropIdle() {
  std::vector<std::unique_ptr<PgConn>> dead;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dead.swap(idle_);
    open_ -= static_cast<int>(dead.size());
  }
  cv_.notify_all();
}

// The URI for messages: scheme, user, host, port and database only, so a
// password (in the userinfo or as ?password=) never reaches a log.
std::string SafeUri(const std::string& uri) {
  const size_t scheme_end = uri.find("://");
  if (scheme_end == std::string::npos) return "(unparsable URI)";
  const std::string scheme = uri.substr(0, scheme_end);
  std::string rest = uri.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find('?'));
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  const std::string db =
      slash == std::string::npos ? "" : rest.substr(slash + 1);
  std::string user;
  const size_t at = authority.rfind('@');
  if (at != std::string::npos) {
    user = authority.substr(0, at);
    user = user.substr(0, user.find(':'));
    authority = authority.substr(at + 1);
  }
  std::string out = scheme + "://";
  if (!user.empty()) out += user + "@";
  out += authority.empty() ? "(local socket)" : authority;
  out += "/" + db;
  return out;
}

// Reads the 16 raw attribute columns starting at `base` and adds the
// pending entry changes in the 3 columns at `deltas` (see DeltasOf; NULL
// when the statement found no delta row): the effective attributes the
// Transaction interface promises.
Attr RowToAttr(const pqxx::row& r, int base, int deltas) {
  // One iterator walks the 16 columns: row[i] would copy the result's
  // shared pointer for every field, which showed in readdir profiles.
  pqxx::const_row_iterator col = r.begin() + base;
  Attr a;
  a.ino = Next<InodeId>(col);
  a.type = static_cast<FileType>(Next<int>(col));
  const auto mode = Next<uint32_t>(col);
  a.mode = mode & 07777;
  a.has_acl = (mode & kModeHasAclBit) != 0;
  a.nlink = Next<uint32_t>(col);
  a.uid = Next<uint32_t>(col);
  a.gid = Next<uint32_t>(col);
  a.size = Next<uint64_t>(col);
  a.rdev_major = Next<uint32_t>(col);
  a.rdev_minor = Next<uint32_t>(col);
  a.atime = Next<TimeNs>(col);
  a.mtime = Next<TimeNs>(col);
  a.ctime = Next<TimeNs>(col);
  a.btime = Next<TimeNs>(col);
  a.change = Next<uint64_t>(col);
  a.generation = Next<uint32_t>(col);
  a.parent = Next<InodeId>(col);
  const int64_t changes = r[deltas].is_null() ? 0 : Get<int64_t>(r[deltas]);
  if (changes > 0) {
    a.nlink = static_cast<uint32_t>(static_cast<int64_t>(a.nlink) +
                                    Get<int64_t>(r[deltas + 1]));
    a.change += static_cast<uint64_t>(changes);
    const TimeNs t = Get<int64_t>(r[deltas + 2]);
    a.mtime = std::max(a.mtime, t);
    a.ctime = std::max(a.ctime, t);
  }
  return a;
}

}  // namespace pg_internal
}  // namespace ns
