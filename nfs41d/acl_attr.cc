#include "nfs41d/acl_attr.h"

#include <optional>
#include <string>
#include <string_view>

namespace nfs41d {
namespace {

// The special whos the library has (§6.2.1.5). The others RFC 8881 lists
// (INTERACTIVE@, NETWORK@, DIALUP@, BATCH@, ANONYMOUS@, AUTHENTICATED@,
// SERVICE@) have no meaning for AUTH_SYS callers and no place in ns::Ace.
constexpr std::string_view kOwnerWho = "OWNER@";
constexpr std::string_view kGroupWho = "GROUP@";
constexpr std::string_view kEveryoneWho = "EVERYONE@";

std::string WhoOf(const ns::Ace& ace, const IdMapper* idmap) {
  switch (ace.who) {
    case ns::AceWho::kOwner: return std::string(kOwnerWho);
    case ns::AceWho::kGroup: return std::string(kGroupWho);
    case ns::AceWho::kEveryone: return std::string(kEveryoneWho);
    case ns::AceWho::kUser:
      return idmap ? idmap->UidToOwner(ace.id) : std::to_string(ace.id);
    case ns::AceWho::kNamedGroup:
      return idmap ? idmap->GidToGroup(ace.id) : std::to_string(ace.id);
  }
  return std::to_string(ace.id);
}

uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | p[3];
}

}  // namespace

void EncodeAcl(rpc::XdrEncoder& e, const ns::Acl& acl, const IdMapper* idmap) {
  e.PutUint32(static_cast<uint32_t>(acl.size()));
  for (const ns::Ace& ace : acl) {
    e.PutUint32(ace.type);
    e.PutUint32(ace.flags);
    e.PutUint32(ace.mask);
    e.PutString(WhoOf(ace, idmap));
  }
}

nfsstat4 DecodeAcl(const char* p_in, size_t n, size_t* used, ns::Acl* out,
                   const IdMapper* idmap) {
  const auto* p = reinterpret_cast<const uint8_t*>(p_in);
  size_t off = 0;
  auto u32 = [&](uint32_t* v) {
    if (n - off < 4) return false;
    *v = Be32(p + off);
    off += 4;
    return true;
  };
  uint32_t count;
  if (!u32(&count)) return NFS4ERR_BADXDR;
  // Each nfsace4 takes at least 16 bytes (an empty who): a count beyond
  // that is malformed, and checking it first bounds the allocation.
  if (count > (n - off) / 16) return NFS4ERR_BADXDR;
  if (count > ns::kMaxAces) return NFS4ERR_INVAL;
  ns::Acl acl;
  acl.reserve(count);
  nfsstat4 first_error = NFS4_OK;  // decode everything before judging
  for (uint32_t i = 0; i < count; ++i) {
    ns::Ace ace;
    uint32_t len;
    if (!u32(&ace.type) || !u32(&ace.flags) || !u32(&ace.mask) || !u32(&len)) {
      return NFS4ERR_BADXDR;
    }
    if (len > NFS4_OPAQUE_LIMIT) return NFS4ERR_BADXDR;
    const size_t padded = (size_t{len} + 3) & ~size_t{3};
    if (n - off < padded) return NFS4ERR_BADXDR;
    std::string_view who(reinterpret_cast<const char*>(p + off), len);
    off += padded;
    if (first_error != NFS4_OK) continue;
    if (ace.type == ns::kAceAudit || ace.type == ns::kAceAlarm) {
      first_error = NFS4ERR_ATTRNOTSUPP;
      continue;
    }
    const bool group = (ace.flags & ns::kAceIdentifierGroup) != 0;
    if (who == kOwnerWho) {
      ace.who = ns::AceWho::kOwner;
    } else if (who == kGroupWho) {
      ace.who = ns::AceWho::kGroup;
    } else if (who == kEveryoneWho) {
      ace.who = ns::AceWho::kEveryone;
    } else if (!who.empty() && who.back() == '@') {
      first_error = NFS4ERR_BADOWNER;  // another special who
      continue;
    } else {
      // §6.2.1.5: IDENTIFIER_GROUP says whether `who` is a group.
      std::optional<uint32_t> id =
          !idmap  ? ParseNumericId(who)
          : group ? idmap->GroupToGid(who)
                  : idmap->OwnerToUid(who);
      if (!id) {
        first_error = NFS4ERR_BADOWNER;
        continue;
      }
      ace.who = group ? ns::AceWho::kNamedGroup : ns::AceWho::kUser;
      ace.id = *id;
    }
    acl.push_back(ace);
  }
  if (first_error != NFS4_OK) return first_error;
  *used = off;
  *out = std::move(acl);
  return NFS4_OK;
}

}  // namespace nfs41d
