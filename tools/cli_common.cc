#include "tools/cli_common.h"

#include <charconv>
#include <cstdlib>

namespace ns::tools {
namespace {

std::optional<uint32_t> ParseId(std::string_view s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) {
    return std::nullopt;
  }
  return v;
}

}  // namespace

Result<Credentials> ParseCredentials(const std::string& text) {
  auto bad = [&] {
    return Status::Invalid("--as '" + text + "'",
                           "expected UID:GID[,GID...], e.g. 1000:1000,27");
  };
  size_t colon = text.find(':');
  if (colon == std::string::npos) return bad();
  auto uid = ParseId(std::string_view(text).substr(0, colon));
  if (!uid) return bad();
  Credentials c;
  c.uid = *uid;
  std::string_view rest = std::string_view(text).substr(colon + 1);
  bool first = true;
  while (true) {
    size_t comma = rest.find(',');
    auto id = ParseId(rest.substr(0, comma));
    if (!id) return bad();
    if (first) {
      c.gid = *id;
      first = false;
    } else {
      c.groups.push_back(*id);
    }
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return c;
}

Result<std::string> DatabaseUri(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("NS_DB"); env && *env) return std::string(env);
  return Status::Invalid("no database",
                         "give --db URI (e.g. sqlite:///var/lib/nsnfs/ns.db) "
                         "or set NS_DB");
}

std::string RedactUri(const std::string& uri) {
  // scheme://user:password@host/...: hide what sits between ':' and '@'.
  size_t scheme_end = uri.find("://");
  size_t at = uri.find('@');
  if (scheme_end == std::string::npos || at == std::string::npos) return uri;
  size_t colon = uri.find(':', scheme_end + 3);
  if (colon == std::string::npos || colon > at) return uri;
  return uri.substr(0, colon + 1) + "***" + uri.substr(at);
}

}  // namespace ns::tools
