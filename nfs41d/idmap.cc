#include "nfs41d/idmap.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

// nfsidmap.h has no extern "C" of its own.
extern "C" {
#include <nfsidmap.h>
}

#include <charconv>
#include <fstream>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace nfs41d {

std::optional<uint32_t> ParseNumericId(std::string_view v) {
  if (auto at = v.find('@'); at != std::string_view::npos) v = v.substr(0, at);
  if (v.empty()) return std::nullopt;
  uint32_t id = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), id);
  if (ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
  return id;
}

namespace {

// "name@domain" with our domain (or no domain) -> "name".
std::optional<std::string> LocalPart(std::string_view s,
                                     const std::string& domain) {
  size_t at = s.find('@');
  if (at == std::string_view::npos) return std::string(s);
  if (at == 0) return std::nullopt;
  std::string_view d = s.substr(at + 1);
  if (!domain.empty() && d != domain) return std::nullopt;
  return std::string(s.substr(0, at));
}

std::optional<uint32_t> LookupUser(const std::string& name) {
  std::vector<char> buf(16384);
  passwd pw{}, *res = nullptr;
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &res) != 0 ||
      !res) {
    return std::nullopt;
  }
  return res->pw_uid;
}

std::optional<uint32_t> LookupGroup(const std::string& name) {
  std::vector<char> buf(16384);
  group gr{}, *res = nullptr;
  if (getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &res) != 0 ||
      !res) {
    return std::nullopt;
  }
  return res->gr_gid;
}

class NumericMapper : public IdMapper {
 public:
  explicit NumericMapper(std::string domain) : domain_(std::move(domain)) {}
  std::string UidToOwner(uint32_t uid) const override {
    return std::to_string(uid);
  }
  std::string GidToGroup(uint32_t gid) const override {
    return std::to_string(gid);
  }
  bool OwnersFromMemory() const override { return true; }
  std::optional<uint32_t> OwnerToUid(std::string_view s) const override {
    if (auto id = ParseNumericId(s)) return id;
    auto name = LocalPart(s, domain_);
    return name ? LookupUser(*name) : std::nullopt;
  }
  std::optional<uint32_t> GroupToGid(std::string_view s) const override {
    if (auto id = ParseNumericId(s)) return id;
    auto name = LocalPart(s, domain_);
    return name ? LookupGroup(*name) : std::nullopt;
  }

 private:
  std::string domain_;
};

// libnfsidmap behind a mutex (its plugins keep global state), with the
// answers cached: GETATTR and READDIR ask for the same few owners all the
// time. The cache is bounded and dropped with the mapper (SIGHUP reload).
class NfsIdMapper : public IdMapper {
 public:
  explicit NfsIdMapper(std::string domain) : domain_(std::move(domain)) {}

  std::string UidToOwner(uint32_t uid) const override {
    return ToName(uid, &uid_names_, [&](char* buf, size_t n) {
      return nfs4_uid_to_name(uid, const_cast<char*>(domain_.c_str()), buf, n);
    });
  }
  std::string GidToGroup(uint32_t gid) const override {
    return ToName(gid, &gid_names_, [&](char* buf, size_t n) {
      return nfs4_gid_to_name(gid, const_cast<char*>(domain_.c_str()), buf, n);
    });
  }
  std::optional<uint32_t> OwnerToUid(std::string_view s) const override {
    if (auto id = ParseNumericId(s); id && s.find('@') == std::string::npos) {
      return id;
    }
    std::string name(s);
    std::lock_guard<std::mutex> l(mu_);
    uid_t uid;
    if (nfs4_name_to_uid(name.data(), &uid) != 0) return std::nullopt;
    return uid;
  }
  std::optional<uint32_t> GroupToGid(std::string_view s) const override {
    if (auto id = ParseNumericId(s); id && s.find('@') == std::string::npos) {
      return id;
    }
    std::string name(s);
    std::lock_guard<std::mutex> l(mu_);
    gid_t gid;
    if (nfs4_name_to_gid(name.data(), &gid) != 0) return std::nullopt;
    return gid;
  }

 private:
  template <typename Fn>
  std::string ToName(uint32_t id,
                     std::unordered_map<uint32_t, std::string>* cache,
                     Fn&& lookup) const {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = cache->find(id); it != cache->end()) return it->second;
    char buf[512];
    std::string out = lookup(buf, sizeof buf) == 0 ? std::string(buf)
                                                   : std::to_string(id);
    if (cache->size() > 10000) cache->clear();
    cache->emplace(id, out);
    return out;
  }

  std::string domain_;
  mutable std::mutex mu_;
  mutable std::unordered_map<uint32_t, std::string> uid_names_;
  mutable std::unordered_map<uint32_t, std::string> gid_names_;
};

}  // namespace

std::unique_ptr<IdMapper> MakeIdMapper(const IdMapOptions& o,
                                       const std::string& data_dir,
                                       std::string* error) {
  if (o.mode == "numeric") {
    return std::make_unique<NumericMapper>(o.domain);
  }
  if (o.mode != "nfsidmap") {
    *error = "idmap: '" + o.mode + "' is not one of numeric, nfsidmap";
    return nullptr;
  }
  std::string conf = o.conf_file;
  if (conf.empty()) {
    if (o.domain.empty()) {
      *error = "idmap = \"nfsidmap\" needs idmap_domain (or idmap_conf)";
      return nullptr;
    }
    conf = data_dir + "/idmapd.conf";
    std::ofstream f(conf, std::ios::trunc);
    f << "# Written by nfs41d from its config; edits are overwritten.\n"
         "[General]\nDomain = "
      << o.domain << "\n[Translation]\nMethod = nsswitch\n";
    if (!f.good()) {
      *error = "idmap: cannot write " + conf;
      return nullptr;
    }
  }
  if (nfs4_init_name_mapping(conf.data()) != 0) {
    *error = "idmap: libnfsidmap cannot initialise from " + conf;
    return nullptr;
  }
  std::string domain = o.domain;
  if (domain.empty()) {
    char buf[512];
    if (nfs4_get_default_domain(nullptr, buf, sizeof buf) != 0) {
      *error = "idmap: no NFSv4 domain in " + conf;
      return nullptr;
    }
    domain = buf;
  }
  return std::make_unique<NfsIdMapper>(domain);
}

}  // namespace nfs41d
