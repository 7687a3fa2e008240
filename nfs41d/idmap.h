#pragma once

// Owners and groups as NFSv4 strings (RFC 8881 §5.9).
//
// - "numeric" (default): owner "1000", group "100" -- what the Linux client
//   expects with nfs4_disable_idmapping (its default for AUTH_SYS). Owners a
//   client sets may be numeric ("1000", also "1000@domain") or
//   "name@domain" with our domain (resolved through the system's user and
//   group databases).
// - "nfsidmap": "user@domain" through libnfsidmap (nfs4_uid_to_name,
//   nfs4_name_to_uid, ..., the same mapping as rpc.idmapd), with the domain
//   from the config (written into an idmapd.conf under the data directory)
//   or from an idmapd.conf given in the config. Ids without a name go out
//   numeric, as the Linux server does; numeric strings are accepted too.
//
// Unknown names are NFS4ERR_BADOWNER (nullopt here).
//
// Thread safety: every method may be called from any thread.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace nfs41d {

struct IdMapOptions {
  // "numeric" or "nfsidmap".
  std::string mode = "numeric";
  // NFSv4 domain ("example.org"). nfsidmap: required unless `conf_file`.
  std::string domain;
  // An idmapd.conf to use as it is (nfsidmap only).
  std::string conf_file;
};

class IdMapper {
 public:
  virtual ~IdMapper() = default;
  virtual std::string UidToOwner(uint32_t uid) const = 0;
  virtual std::string GidToGroup(uint32_t gid) const = 0;
  virtual std::optional<uint32_t> OwnerToUid(std::string_view s) const = 0;
  virtual std::optional<uint32_t> GroupToGid(std::string_view s) const = 0;
  // Whether UidToOwner and GidToGroup answer from memory, never from the
  // user database or a directory service: then owners may be encoded on
  // the RPC event-loop thread (inline COMPOUNDs, compound.h).
  virtual bool OwnersFromMemory() const { return false; }
};

// A mapper for `options`, or null with a message in *error. `data_dir`
// holds the generated idmapd.conf. libnfsidmap is process-wide: the last
// nfsidmap mapper made wins.
std::unique_ptr<IdMapper> MakeIdMapper(const IdMapOptions& options,
                                       const std::string& data_dir,
                                       std::string* error);

// "1000" or "1000@anything" -> 1000.
std::optional<uint32_t> ParseNumericId(std::string_view s);

}  // namespace nfs41d
