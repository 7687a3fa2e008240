#include "migrate/dump.h"

#include <fmt/core.h>
#include <grp.h>
#include <pwd.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <unordered_map>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"

namespace nsmigrate {
namespace {

namespace od = simdjson::ondemand;

ns::Status LineError(uint64_t lineno, std::string_view what) {
  return ns::Status::Invalid(fmt::format("dump line {}", lineno), what);
}

ns::Status JsonError(uint64_t lineno, std::string_view field,
                     simdjson::error_code err) {
  return LineError(lineno, fmt::format("field '{}': {}", field,
                                       simdjson::error_message(err)));
}

// Checks what a stored path must be: absolute, normalized, every component a
// name the library accepts, at most PATH_MAX bytes.
ns::Status ValidatePath(std::string_view path, uint64_t lineno) {
  if (path.empty() || path[0] != '/') {
    return LineError(lineno, fmt::format("path '{}' is not absolute", path));
  }
  if (path.size() > ns::kMaxPathBytes) {
    return LineError(lineno, fmt::format("path of {} bytes, at most {}",
                                         path.size(), ns::kMaxPathBytes));
  }
  if (path == "/") return ns::Status::Ok();
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view comp = path.substr(pos, end - pos);
    if (comp.empty()) {
      return LineError(lineno,
                       fmt::format("path '{}' has an empty component", path));
    }
    if (ns::Status s = ns::ValidateName(comp); !s.ok()) {
      return LineError(lineno,
                       fmt::format("path '{}': {}", path, s.ToString()));
    }
    pos = end + 1;
  }
  return ns::Status::Ok();
}

ns::Result<ns::FileType> ParseType(std::string_view t, uint64_t lineno) {
  if (t.size() == 1) {
    switch (t[0]) {
      case 'f':
        return ns::FileType::kRegular;
      case 'd':
        return ns::FileType::kDirectory;
      case 'l':
        return ns::FileType::kSymlink;
      case 'b':
        return ns::FileType::kBlockDevice;
      case 'c':
        return ns::FileType::kCharDevice;
      case 'p':
        return ns::FileType::kFifo;
      case 's':
        return ns::FileType::kSocket;
      default:
        break;
    }
  }
  return LineError(lineno, fmt::format("unknown type '{}' (f d l b c p s)", t));
}

ns::Result<uint32_t> ParseMode(std::string_view m, uint64_t lineno) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(m.data(), m.data() + m.size(), v, 8);
  if (m.empty() || ec != std::errc() || p != m.data() + m.size() || v > 07777) {
    return LineError(lineno, fmt::format("mode '{}' is not octal 0..07777", m));
  }
  return v;
}

// The helpers below read one JSON value of the expected kind or name the
// field in the error.
template <typename T>
ns::Status GetU(od::value v, std::string_view field, uint64_t lineno,
                uint64_t max, T* out) {
  uint64_t u = 0;
  if (auto err = v.get_uint64().get(u)) return JsonError(lineno, field, err);
  if (u > max) {
    return LineError(lineno,
                     fmt::format("field '{}': {} is out of range", field, u));
  }
  *out = static_cast<T>(u);
  return ns::Status::Ok();
}

ns::Status GetI64(od::value v, std::string_view field, uint64_t lineno,
                  int64_t* out) {
  if (auto err = v.get_int64().get(*out)) return JsonError(lineno, field, err);
  return ns::Status::Ok();
}

ns::Status GetStr(od::value v, std::string_view field, uint64_t lineno,
                  std::string* out) {
  std::string_view s;
  if (auto err = v.get_string().get(s)) return JsonError(lineno, field, err);
  out->assign(s);
  return ns::Status::Ok();
}

// {"k": "v", ...} with `decode` applied to each value (base64 for xattrs).
ns::Status GetMap(od::value v, std::string_view field, uint64_t lineno,
                  bool base64, KeyValues* out) {
  od::object obj;
  if (auto err = v.get_object().get(obj)) return JsonError(lineno, field, err);
  for (auto kv : obj) {
    std::string_view key, val;
    if (auto err = kv.unescaped_key().get(key)) {
      return JsonError(lineno, field, err);
    }
    std::string k(key);
    if (auto err = kv.value().get_string().get(val)) {
      return JsonError(lineno, fmt::format("{}.{}", field, k), err);
    }
    if (base64) {
      ns::Result<std::string> d = Base64Decode(val);
      if (!d.ok()) {
        return LineError(lineno,
                         fmt::format("field '{}.{}': not base64", field, k));
      }
      out->emplace_back(std::move(k), std::move(*d));
    } else {
      out->emplace_back(std::move(k), std::string(val));
    }
  }
  return ns::Status::Ok();
}

ns::Status GetAcl(od::value v, uint64_t lineno, std::vector<Ace>* out) {
  od::array arr;
  if (auto err = v.get_array().get(arr)) return JsonError(lineno, "acl", err);
  for (auto item : arr) {
    od::object obj;
    if (auto err = item.get_object().get(obj)) {
      return JsonError(lineno, "acl[]", err);
    }
    Ace ace;
    bool have_who = false;
    for (auto kv : obj) {
      std::string_view key;
      if (auto err = kv.unescaped_key().get(key)) {
        return JsonError(lineno, "acl[]", err);
      }
      od::value val;
      if (auto err = kv.value().get(val)) return JsonError(lineno, key, err);
      if (key == "type") {
        NS_RETURN_IF_ERROR(GetU(val, "acl[].type", lineno, 3, &ace.type));
      } else if (key == "flags") {
        NS_RETURN_IF_ERROR(
            GetU(val, "acl[].flags", lineno, UINT32_MAX, &ace.flags));
      } else if (key == "mask") {
        NS_RETURN_IF_ERROR(
            GetU(val, "acl[].mask", lineno, UINT32_MAX, &ace.mask));
      } else if (key == "who") {
        NS_RETURN_IF_ERROR(GetStr(val, "acl[].who", lineno, &ace.who));
        have_who = !ace.who.empty();
      } else {
        return LineError(lineno, fmt::format("unknown field 'acl[].{}'", key));
      }
    }
    if (!have_who) return LineError(lineno, "acl entry without 'who'");
    out->push_back(std::move(ace));
  }
  return ns::Status::Ok();
}

ns::Status GetLocations(od::value v, uint64_t lineno,
                        std::vector<Location>* out) {
  od::array arr;
  if (auto err = v.get_array().get(arr)) {
    return JsonError(lineno, "locations", err);
  }
  for (auto item : arr) {
    od::object obj;
    if (auto err = item.get_object().get(obj)) {
      return JsonError(lineno, "locations[]", err);
    }
    Location loc;
    for (auto kv : obj) {
      std::string_view key;
      if (auto err = kv.unescaped_key().get(key)) {
        return JsonError(lineno, "locations[]", err);
      }
      od::value val;
      if (auto err = kv.value().get(val)) return JsonError(lineno, key, err);
      if (key == "type") {
        NS_RETURN_IF_ERROR(GetStr(val, "locations[].type", lineno, &loc.type));
      } else if (key == "uri") {
        NS_RETURN_IF_ERROR(GetStr(val, "locations[].uri", lineno, &loc.uri));
      } else {
        return LineError(lineno,
                         fmt::format("unknown field 'locations[].{}'", key));
      }
    }
    if (loc.type.empty() || loc.uri.empty()) {
      return LineError(lineno, "location needs 'type' and 'uri'");
    }
    out->push_back(std::move(loc));
  }
  return ns::Status::Ok();
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

void AppendKey(std::string& out, std::string_view key) {
  out.push_back(',');
  out.push_back('"');
  out += key;
  out += "\":";
}

void AppendMap(std::string& out, std::string_view key, const KeyValues& kvs,
               bool base64) {
  if (kvs.empty()) return;
  AppendKey(out, key);
  out.push_back('{');
  for (size_t i = 0; i < kvs.size(); ++i) {
    if (i) out.push_back(',');
    AppendJsonString(out, kvs[i].first);
    out.push_back(':');
    AppendJsonString(out, base64 ? Base64Encode(kvs[i].second) : kvs[i].second);
  }
  out.push_back('}');
}

// Owner names (a source that knows names, not ids) resolved through the
// system's user and group databases, cached.
ns::Status ResolveId(bool group, std::string_view name, uint64_t lineno,
                     std::unordered_map<std::string, uint32_t>* cache,
                     uint32_t* out) {
  std::string n(name);
  if (auto it = cache->find(n); it != cache->end()) {
    *out = it->second;
    return ns::Status::Ok();
  }
  std::vector<char> buf(16384);
  if (group) {
    struct group g {};
    struct group* res = nullptr;
    if (getgrnam_r(n.c_str(), &g, buf.data(), buf.size(), &res) == 0 && res) {
      *out = res->gr_gid;
    } else {
      return LineError(lineno, fmt::format("unknown group '{}'", n));
    }
  } else {
    struct passwd p {};
    struct passwd* res = nullptr;
    if (getpwnam_r(n.c_str(), &p, buf.data(), buf.size(), &res) == 0 && res) {
      *out = res->pw_uid;
    } else {
      return LineError(lineno, fmt::format("unknown user '{}'", n));
    }
  }
  cache->emplace(std::move(n), *out);
  return ns::Status::Ok();
}

}  // namespace

struct DumpParser::Impl {
  od::parser parser;
  od::document doc;  // of the line in buf; objects read from it borrow it
  std::unordered_map<std::string, uint32_t> users, groups;
  std::string buf;  // the line with simdjson's padding after it

  // Parses `line` (a `what`: header or entry) into its top-level object.
  ns::Status Begin(std::string_view line, uint64_t lineno,
                   std::string_view what, od::object* obj) {
    buf.assign(line);
    buf.reserve(line.size() + simdjson::SIMDJSON_PADDING);
    if (auto err = parser.iterate(buf.data(), buf.size(), buf.capacity())
                       .get(doc)) {
      return JsonError(lineno, what, err);
    }
    if (auto err = doc.get_object().get(*obj)) {
      return JsonError(lineno, what, err);
    }
    return ns::Status::Ok();
  }
};

DumpParser::DumpParser() : impl_(std::make_unique<Impl>()) {}
DumpParser::~DumpParser() = default;

ns::Result<DumpHeader> DumpParser::ParseHeader(std::string_view line,
                                               uint64_t lineno) {
  od::object obj;
  NS_RETURN_IF_ERROR(impl_->Begin(line, lineno, "header", &obj));
  DumpHeader h;
  std::string format;
  for (auto kv : obj) {
    std::string_view key;
    if (auto err = kv.unescaped_key().get(key)) {
      return JsonError(lineno, "header", err);
    }
    od::value val;
    if (auto err = kv.value().get(val)) return JsonError(lineno, key, err);
    if (key == "format") {
      NS_RETURN_IF_ERROR(GetStr(val, "format", lineno, &format));
    } else if (key == "version") {
      NS_RETURN_IF_ERROR(GetU(val, "version", lineno, 1000, &h.version));
    } else if (key == "source") {
      NS_RETURN_IF_ERROR(GetStr(val, "source", lineno, &h.source));
    }  // other header fields are informational
  }
  if (format != "nsnfs-dump") {
    return LineError(lineno,
                     "not a dump: the first line must be the header "
                     "{\"format\":\"nsnfs-dump\",\"version\":1,...}");
  }
  if (h.version != kDumpVersion) {
    return LineError(lineno, fmt::format("dump version {}, this build reads {}",
                                         h.version, kDumpVersion));
  }
  return h;
}

ns::Result<Entry> DumpParser::ParseEntry(std::string_view line,
                                         uint64_t lineno) {
  od::object obj;
  NS_RETURN_IF_ERROR(impl_->Begin(line, lineno, "entry", &obj));
  Entry e;
  enum : uint32_t {
    kPath = 1,
    kType = 2,
    kMode = 4,
    kUid = 8,
    kGid = 16,
    kMtime = 32,
  };
  uint32_t seen = 0;
  std::string scratch;
  for (auto kv : obj) {
    std::string_view key;
    if (auto err = kv.unescaped_key().get(key)) {
      return JsonError(lineno, "entry", err);
    }
    od::value val;
    if (auto err = kv.value().get(val)) return JsonError(lineno, key, err);
    // Dispatch on the first letter first: most keys are rejected or taken
    // after one comparison.
    if (key == "path") {
      NS_RETURN_IF_ERROR(GetStr(val, key, lineno, &e.path));
      seen |= kPath;
    } else if (key == "type") {
      NS_RETURN_IF_ERROR(GetStr(val, key, lineno, &scratch));
      NS_ASSIGN_OR_RETURN(e.type, ParseType(scratch, lineno));
      seen |= kType;
    } else if (key == "mode") {
      NS_RETURN_IF_ERROR(GetStr(val, key, lineno, &scratch));
      NS_ASSIGN_OR_RETURN(e.mode, ParseMode(scratch, lineno));
      seen |= kMode;
    } else if (key == "uid") {
      NS_RETURN_IF_ERROR(GetU(val, key, lineno, UINT32_MAX - 1, &e.uid));
      seen |= kUid;
    } else if (key == "gid") {
      NS_RETURN_IF_ERROR(GetU(val, key, lineno, UINT32_MAX - 1, &e.gid));
      seen |= kGid;
    } else if (key == "user") {
      NS_RETURN_IF_ERROR(GetStr(val, key, lineno, &scratch));
      NS_RETURN_IF_ERROR(
          ResolveId(false, scratch, lineno, &impl_->users, &e.uid));
      seen |= kUid;
    } else if (key == "group") {
      NS_RETURN_IF_ERROR(GetStr(val, key, lineno, &scratch));
      NS_RETURN_IF_ERROR(
          ResolveId(true, scratch, lineno, &impl_->groups, &e.gid));
      seen |= kGid;
    } else if (key == "size") {
      NS_RETURN_IF_ERROR(GetU(val, key, lineno, INT64_MAX, &e.size));
    } else if (key == "atime") {
      NS_RETURN_IF_ERROR(GetI64(val, key, lineno, &e.atime));
    } else if (key == "mtime") {
      NS_RETURN_IF_ERROR(GetI64(val, key, lineno, &e.mtime));
      seen |= kMtime;
    } else if (key == "ctime") {
      NS_RETURN_IF_ERROR(GetI64(val, key, lineno, &e.ctime));
    } else if (key == "btime") {
      NS_RETURN_IF_ERROR(GetI64(val, key, lineno, &e.btime));
    } else if (key == "nlink") {
      NS_RETURN_IF_ERROR(GetU(val, key, lineno, ns::kMaxLinks, &e.nlink));
    } else if (key == "ino") {
      NS_RETURN_IF_ERROR(GetStr(val, key, lineno, &e.link_key));
    } else if (key == "target") {
      NS_RETURN_IF_ERROR(GetStr(val, key, lineno, &e.target));
    } else if (key == "ext_id") {
      NS_RETURN_IF_ERROR(GetStr(val, key, lineno, &e.ext_id));
    } else if (key == "rdev") {
      od::array arr;
      if (auto err = val.get_array().get(arr)) {
        return JsonError(lineno, key, err);
      }
      std::array<uint32_t, 2> rdev{};
      size_t n = 0;
      for (auto x : arr) {
        od::value xv;
        if (auto err = x.get(xv)) return JsonError(lineno, key, err);
        if (n >= 2) return LineError(lineno, "rdev is [major, minor]");
        NS_RETURN_IF_ERROR(GetU(xv, key, lineno, UINT32_MAX, &rdev[n++]));
      }
      if (n != 2) return LineError(lineno, "rdev is [major, minor]");
      e.rdev_major = rdev[0];
      e.rdev_minor = rdev[1];
    } else if (key == "checksums") {
      NS_RETURN_IF_ERROR(GetMap(val, key, lineno, false, &e.checksums));
    } else if (key == "xattrs") {
      NS_RETURN_IF_ERROR(GetMap(val, key, lineno, true, &e.xattrs));
    } else if (key == "tags") {
      NS_RETURN_IF_ERROR(GetMap(val, key, lineno, false, &e.tags));
    } else if (key == "acl") {
      NS_RETURN_IF_ERROR(GetAcl(val, lineno, &e.acl));
    } else if (key == "locations") {
      NS_RETURN_IF_ERROR(GetLocations(val, lineno, &e.locations));
    } else {
      return LineError(lineno, fmt::format("unknown field '{}'", key));
    }
  }
  // At the end of the input current_location() is out of bounds.
  if (impl_->doc.current_location().error() != simdjson::OUT_OF_BOUNDS) {
    return LineError(lineno, "text after the JSON object");
  }
  constexpr uint32_t kRequired = kPath | kType | kMode | kUid | kGid | kMtime;
  if ((seen & kRequired) != kRequired) {
    return LineError(lineno,
                     "an entry needs path, type, mode, uid, gid and mtime");
  }
  NS_RETURN_IF_ERROR(ValidatePath(e.path, lineno));
  // Unset times default to mtime: most sources know only that one.
  if (e.atime == 0) e.atime = e.mtime;
  if (e.ctime == 0) e.ctime = e.mtime;
  if (e.btime == 0) e.btime = e.ctime;
  if (e.type == ns::FileType::kSymlink) {
    if (e.target.empty() || e.target.size() > ns::kMaxPathBytes) {
      return LineError(lineno, "a symlink needs a target of 1..4096 bytes");
    }
    e.size = e.target.size();
  } else if (!e.target.empty()) {
    return LineError(lineno, "only symlinks have a target");
  }
  if (e.type == ns::FileType::kDirectory && !e.link_key.empty()) {
    return LineError(lineno, "a directory cannot be hard-linked ('ino')");
  }
  if (e.link_key.empty()) e.nlink = 1;
  if (e.nlink == 0) return LineError(lineno, "nlink 0");
  return e;
}

std::string FormatHeader(const DumpHeader& h) {
  std::string out =
      fmt::format("{{\"format\":\"nsnfs-dump\",\"version\":{}", h.version);
  out += ",\"source\":";
  AppendJsonString(out, h.source);
  out.push_back('}');
  return out;
}

std::string FormatEntry(const Entry& e) {
  std::string out;
  out.reserve(160 + e.path.size());
  out += "{\"path\":";
  AppendJsonString(out, e.path);
  out += fmt::format(
      ",\"type\":\"{}\",\"mode\":\"{:04o}\",\"uid\":{},\"gid\":{},\"size\":{},"
      "\"atime\":{},\"mtime\":{},\"ctime\":{},\"btime\":{}",
      TypeLetter(e.type), e.mode, e.uid, e.gid, e.size, e.atime, e.mtime,
      e.ctime, e.btime);
  if (e.type == ns::FileType::kBlockDevice ||
      e.type == ns::FileType::kCharDevice) {
    out += fmt::format(",\"rdev\":[{},{}]", e.rdev_major, e.rdev_minor);
  }
  if (!e.link_key.empty()) {
    AppendKey(out, "ino");
    AppendJsonString(out, e.link_key);
    out += fmt::format(",\"nlink\":{}", e.nlink);
  }
  if (!e.target.empty()) {
    AppendKey(out, "target");
    AppendJsonString(out, e.target);
  }
  if (!e.ext_id.empty()) {
    AppendKey(out, "ext_id");
    AppendJsonString(out, e.ext_id);
  }
  AppendMap(out, "checksums", e.checksums, false);
  AppendMap(out, "xattrs", e.xattrs, true);
  if (!e.acl.empty()) {
    AppendKey(out, "acl");
    out.push_back('[');
    for (size_t i = 0; i < e.acl.size(); ++i) {
      const Ace& a = e.acl[i];
      if (i) out.push_back(',');
      out +=
          fmt::format("{{\"type\":{},\"flags\":{},\"mask\":{},\"who\":", a.type,
                      a.flags, a.mask);
      AppendJsonString(out, a.who);
      out.push_back('}');
    }
    out.push_back(']');
  }
  AppendMap(out, "tags", e.tags, false);
  if (!e.locations.empty()) {
    AppendKey(out, "locations");
    out.push_back('[');
    for (size_t i = 0; i < e.locations.size(); ++i) {
      if (i) out.push_back(',');
      out += "{\"type\":";
      AppendJsonString(out, e.locations[i].type);
      out += ",\"uri\":";
      AppendJsonString(out, e.locations[i].uri);
      out.push_back('}');
    }
    out.push_back(']');
  }
  out.push_back('}');
  return out;
}

std::pair<std::string_view, std::string_view> SplitPath(std::string_view path) {
  const size_t slash = path.rfind('/');
  std::string_view parent =
      slash == 0 ? path.substr(0, 1) : path.substr(0, slash);
  return {parent, path.substr(slash + 1)};
}

char TypeLetter(ns::FileType t) {
  return t == ns::FileType::kRegular ? 'f' : ns::FileTypeLetter(t);
}

std::string Base64Encode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (i < in.size()) {
    uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

ns::Result<std::string> Base64Decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return ns::Status::Invalid("base64", "length");
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else if (pad || (v[k] = val(c)) < 0) {
        return ns::Status::Invalid("base64", "bad character");
      }
    }
    const uint32_t x = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out.push_back(static_cast<char>(x >> 16));
    if (pad < 2) out.push_back(static_cast<char>((x >> 8) & 255));
    if (pad < 1) out.push_back(static_cast<char>(x & 255));
  }
  return out;
}

ns::LocationType LocationTypeOf(std::string_view type) {
  return type == "stripe" ? ns::LocationType::kStripe
                          : ns::LocationType::kExternal;
}

std::string_view LocationTypeName(ns::LocationType type) {
  return type == ns::LocationType::kStripe ? "stripe" : "external";
}

void NormalizeMetadata(Entry& e) {
  for (Location& l : e.locations) {
    l.type = std::string(LocationTypeName(LocationTypeOf(l.type)));
  }
  auto by_key = [](const auto& a, const auto& b) { return a < b; };
  std::sort(e.xattrs.begin(), e.xattrs.end(), by_key);
  std::sort(e.tags.begin(), e.tags.end(), by_key);
  // The namespace lists checksums by its type number, the same order as
  // their names here except adler32 first.
  std::sort(e.checksums.begin(), e.checksums.end(),
            [](const auto& a, const auto& b) {
              auto rank = [](const std::string& t) {
                ns::Result<ns::ChecksumType> r = ns::ParseChecksumType(t);
                return r.ok() ? static_cast<int>(*r) : 100;
              };
              return std::pair(rank(a.first), a.first) <
                     std::pair(rank(b.first), b.first);
            });
  std::sort(e.locations.begin(), e.locations.end(),
            [](const Location& a, const Location& b) {
              return std::pair(a.type, a.uri) < std::pair(b.type, b.uri);
            });
}

}  // namespace nsmigrate
