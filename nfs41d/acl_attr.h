#pragma once

// The `acl` and `aclsupport` attributes (RFC 8881 §6.2.1, §5.8.2.1): the
// fattr4_acl wire form (nfsace4<>) of a libnamespace ACL and back.
//
// The library's ACEs name principals by id (ns::AceWho + id); the wire
// names them by string (§6.2.1.5): the special whos "OWNER@", "GROUP@",
// "EVERYONE@", else a user or (with ACE4_IDENTIFIER_GROUP) a group as
// numeric strings or user@domain through the IdMapper (§5.9).
//
// Pure functions: thread-safe, no I/O.

#include <cstddef>
#include <cstdint>

#include "libnamespace/include/namespace/acl.h"
#include "nfs41d/idmap.h"
#include "nfs41d/proto/nfs4_prot.h"
#include "rpc/xdr_codec.h"

namespace nfs41d {

// aclsupport (§6.2.1.1): the ACE types the library stores and enforces.
// AUDIT and ALARM ACEs are stored but nothing acts on them, so they are not
// claimed (§6.2.1: a client should only set types the server supports).
inline constexpr uint32_t kAclSupport =
    ACL4_SUPPORT_ALLOW_ACL | ACL4_SUPPORT_DENY_ACL;

// Appends fattr4_acl: the count, then per ACE type, flag, mask, who.
// `idmap` null: named users and groups as numeric strings.
void EncodeAcl(rpc::XdrEncoder& e, const ns::Acl& acl, const IdMapper* idmap);

// Decodes fattr4_acl from `p` (at most `n` bytes); *used is what it took.
// Errors:
//   NFS4ERR_BADXDR       truncated, or a count the bytes cannot hold
//   NFS4ERR_INVAL        more than ns::kMaxAces entries (the library's
//                        limit; no RFC error fits better)
//   NFS4ERR_ATTRNOTSUPP  an AUDIT or ALARM ACE, which aclsupport does not
//                        claim (§6.2.1: reject what cannot be enforced)
//   NFS4ERR_BADOWNER     a who that is neither special, numeric nor known
//                        to `idmap`, or a special who the library lacks
//                        (INTERACTIVE@, NETWORK@, ...)
// Other checks (flag and mask bits) are ns::ValidateAcl's, at SetAcl.
nfsstat4 DecodeAcl(const char* p, size_t n, size_t* used, ns::Acl* out,
                   const IdMapper* idmap);

}  // namespace nfs41d
