#include "nfs41d/exports.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <charconv>
#include <cstring>
#include <set>

namespace nfs41d {
namespace {

uint32_t Fnv32(std::string_view s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

// "/a//b/" -> "/a/b"; empty if not absolute or it has "." / ".." parts.
std::string NormalizePath(std::string_view p) {
  if (p.empty() || p[0] != '/') return "";
  std::string out;
  size_t i = 0;
  while (i < p.size()) {
    while (i < p.size() && p[i] == '/') ++i;
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    std::string_view c = p.substr(i, j - i);
    if (c == "." || c == "..") return "";
    if (!c.empty()) {
      out += '/';
      out += c;
    }
    i = j;
  }
  return out.empty() ? "/" : out;
}

// True if `inner` is `outer` or below it.
bool Under(const std::string& inner, const std::string& outer) {
  if (outer == "/") return true;
  return inner == outer ||
         (inner.size() > outer.size() && inner.compare(0, outer.size(), outer) == 0 &&
          inner[outer.size()] == '/');
}

std::string Parent(const std::string& p) {
  size_t s = p.rfind('/');
  return s == 0 ? "/" : p.substr(0, s);
}

}  // namespace

// ------------------------------------------------------------------- Cidr

std::optional<Cidr> Cidr::Parse(std::string_view s, std::string* error) {
  Cidr c;
  std::string addr(s);
  int max_prefix;
  std::optional<int> prefix;
  if (size_t slash = s.find('/'); slash != std::string_view::npos) {
    addr = std::string(s.substr(0, slash));
    std::string_view ps = s.substr(slash + 1);
    int p = -1;
    auto [ptr, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), p);
    if (ps.empty() || ec != std::errc() || ptr != ps.data() + ps.size()) {
      *error = "'" + std::string(s) + "': bad prefix length";
      return std::nullopt;
    }
    prefix = p;
  }
  if (inet_pton(AF_INET, addr.c_str(), c.addr.data()) == 1) {
    c.family = AF_INET;
    max_prefix = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), c.addr.data()) == 1) {
    c.family = AF_INET6;
    max_prefix = 128;
  } else {
    *error = "'" + std::string(s) + "' is not an IPv4 or IPv6 network";
    return std::nullopt;
  }
  c.prefix = prefix.value_or(max_prefix);
  if (c.prefix < 0 || c.prefix > max_prefix) {
    *error = "'" + std::string(s) + "': prefix length must be 0.." +
             std::to_string(max_prefix);
    return std::nullopt;
  }
  // Host bits set ("10.1.2.3/8") are a typo more often than intended.
  for (int bit = c.prefix; bit < max_prefix; ++bit) {
    if (c.addr[bit / 8] & (0x80 >> (bit % 8))) {
      *error = "'" + std::string(s) + "' has host bits set";
      return std::nullopt;
    }
  }
  return c;
}

bool Cidr::Contains(const sockaddr_storage& peer) const {
  const uint8_t* a = nullptr;
  uint8_t mapped[4];
  if (peer.ss_family == AF_INET) {
    if (family != AF_INET) return false;
    a = reinterpret_cast<const uint8_t*>(
        &reinterpret_cast<const sockaddr_in&>(peer).sin_addr);
  } else if (peer.ss_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr;
    if (family == AF_INET6) {
      a = a6.s6_addr;
    } else if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      std::memcpy(mapped, a6.s6_addr + 12, 4);
      a = mapped;
    } else {
      return false;
    }
  } else {
    return false;
  }
  int full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(a, addr.data(), full) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (addr[full] & mask);
}

// ----------------------------------------------------------------- Export

ExportConfig DefaultExport() {
  ExportConfig e;
  e.path = "/";
  e.squash = Squash::kNone;
  e.sec = {"sys", "none"};
  e.id = 0u;
  return e;
}

bool Export::AllowsPeer(const sockaddr_storage* peer) const {
  if (peer == nullptr) return true;
  for (const Cidr& c : clients) {
    if (c.Contains(*peer)) return true;
  }
  return false;
}

ns::Credentials Export::Squashed(const ns::Credentials& in) const {
  ns::Credentials out = in;
  switch (squash) {
    case Squash::kNone:
      break;
    case Squash::kRoot:
      if (out.uid == 0) out.uid = anonuid;
      if (out.gid == 0) out.gid = anongid;
      for (uint32_t& g : out.groups) {
        if (g == 0) g = anongid;
      }
      break;
    case Squash::kAll:
      out.uid = anonuid;
      out.gid = anongid;
      out.groups.clear();
      break;
  }
  return out;
}

// ------------------------------------------------------------ ExportTable

std::shared_ptr<const ExportTable> ExportTable::Build(
    const std::vector<ExportConfig>& configs, ns::Namespace& ns,
    std::string* error) {
  auto t = std::make_shared<ExportTable>();
  t->built_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  if (configs.empty()) {
    *error = "no exports";
    return nullptr;
  }
  std::set<std::string> paths;
  for (size_t i = 0; i < configs.size(); ++i) {
    const ExportConfig& c = configs[i];
    const std::string where = "export " + std::to_string(i + 1) + " ('" +
                              c.path + "')";
    Export e;
    e.path = NormalizePath(c.path);
    if (e.path.empty()) {
      *error = where + ": path must be absolute, without '.' or '..'";
      return nullptr;
    }
    if (!paths.insert(e.path).second) {
      *error = where + ": path " + e.path + " is exported twice";
      return nullptr;
    }
    ns::Result<ns::Attr> a = ns.Resolve(ns::Credentials::Root(), e.path);
    if (!a.ok()) {
      *error = where + ": " + e.path + ": " + a.status().ToString();
      return nullptr;
    }
    if (a->type != ns::FileType::kDirectory) {
      *error = where + ": " + e.path + " is not a directory";
      return nullptr;
    }
    e.root = a->ino;
    e.root_generation = a->generation;
    e.mounted_on_fileid = a->ino;
    if (c.clients.empty()) {
      *error = where + ": clients is empty (nobody could mount it)";
      return nullptr;
    }
    for (const std::string& s : c.clients) {
      std::string err;
      std::optional<Cidr> n = Cidr::Parse(s, &err);
      if (!n) {
        *error = where + ": clients: " + err;
        return nullptr;
      }
      e.clients.push_back(*n);
    }
    e.read_only = c.read_only;
    e.squash = c.squash;
    e.anonuid = c.anonuid;
    e.anongid = c.anongid;
    e.allow_sys = e.allow_none = false;
    if (c.sec.empty()) {
      *error = where + ": sec is empty";
      return nullptr;
    }
    for (const std::string& s : c.sec) {
      if (s == "sys") {
        e.allow_sys = true;
      } else if (s == "none") {
        e.allow_none = true;
      } else {
        *error = where + ": sec: '" + s +
                 "' is not supported (\"sys\" or \"none\"; krb5 comes later)";
        return nullptr;
      }
    }
    if (c.id == kPseudoExportId) {
      *error = where + ": id " + std::to_string(*c.id) + " is reserved";
      return nullptr;
    }
    if (c.id) {
      e.id = *c.id;
    } else {
      // Derived from the path: stable across restarts and reordering.
      e.id = Fnv32(e.path);
      if (e.id == 0 || e.id == kPseudoExportId) e.id = 1;
    }
    if (t->by_id_.count(e.id)) {
      *error = where + ": export id " + std::to_string(e.id) +
               " is already used (set a distinct 'id')";
      return nullptr;
    }
    t->by_id_[e.id] = t->exports_.size();
    t->exports_.push_back(std::move(e));
  }
  for (size_t i = 0; i < t->exports_.size(); ++i) {
    t->by_root_[t->exports_[i].root] = i;
  }

  // Top-level exports: not inside another export.
  auto enclosing = [&](const Export& e) -> const Export* {
    const Export* best = nullptr;
    for (const Export& o : t->exports_) {
      if (&o == &e || !Under(e.path, o.path)) continue;
      if (!best || o.path.size() > best->path.size()) best = &o;
    }
    return best;
  };
  const Export* slash = nullptr;
  for (const Export& e : t->exports_) {
    if (e.path == "/") slash = &e;
  }
  if (slash) {
    t->root_export_ = slash;
  } else {
    // The pseudo fs: "/" and every ancestor of a top-level export.
    std::map<std::string, int> index;
    auto node = [&](const std::string& path, auto&& self) -> int {
      if (auto it = index.find(path); it != index.end()) return it->second;
      int parent = path == "/" ? -1 : self(Parent(path), self);
      PseudoNode n;
      n.path = path;
      n.name = path == "/" ? "" : path.substr(path.rfind('/') + 1);
      n.parent = parent;
      n.generation = Fnv32(path) | 1;
      int i = static_cast<int>(t->pseudo_.size());
      // Small fileids (unique within the pseudo fs's fsid) so that 32-bit
      // stat() callers on the client do not get EOVERFLOW.
      n.fileid = static_cast<uint64_t>(i + 1);
      t->pseudo_.push_back(std::move(n));
      if (parent >= 0) t->pseudo_[parent].children.push_back(i);
      index[path] = i;
      return i;
    };
    node("/", node);
    for (Export& e : t->exports_) {
      if (enclosing(e)) continue;
      int parent = node(Parent(e.path), node);
      PseudoNode& p = t->pseudo_[parent];
      p.junctions[e.path.substr(e.path.rfind('/') + 1)] = e.id;
      e.parent_pseudo = parent;
    }
    // Each junction as an object of the pseudo fs (mounted_on_fileid):
    // numbered after the pseudo directories.
    for (size_t i = 0; i < t->exports_.size(); ++i) {
      Export& e = t->exports_[i];
      if (e.parent_pseudo >= 0) {
        e.mounted_on_fileid = t->pseudo_.size() + 1 + i;
      }
    }
  }
  for (Export& e : t->exports_) {
    if (const Export* o = enclosing(e)) e.parent_export = o->id;
  }
  return t;
}

const Export* ExportTable::Find(uint32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &exports_[it->second];
}

const Export* ExportTable::FindByRoot(ns::InodeId ino) const {
  auto it = by_root_.find(ino);
  return it == by_root_.end() ? nullptr : &exports_[it->second];
}

int ExportTable::PseudoIndex(uint64_t ino, uint32_t generation) const {
  if (!(ino & kPseudoInoBit)) return -1;
  uint64_t i = (ino & ~kPseudoInoBit) - 1;
  if (i >= pseudo_.size() || pseudo_[i].generation != generation) return -1;
  return static_cast<int>(i);
}

bool ExportTable::PseudoVisible(int index,
                                const sockaddr_storage* peer) const {
  const PseudoNode& n = pseudo_[index];
  for (const auto& [name, id] : n.junctions) {
    if (const Export* e = Find(id); e && e->AllowsPeer(peer)) return true;
  }
  for (int c : n.children) {
    if (PseudoVisible(c, peer)) return true;
  }
  return false;
}

}  // namespace nfs41d
