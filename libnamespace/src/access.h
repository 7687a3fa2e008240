#pragma once

// The one place where every operation's access check is made: with the
// inode's NFSv4 ACL when it has one (read inside the operation's
// transaction), with the mode bits otherwise (RFC 8881 §6.2.1, §6.3).
// Private to libnamespace.

#include <cstdint>
#include <string>
#include <string_view>

#include "libnamespace/include/namespace/acl.h"
#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"
#include "libnamespace/src/backend.h"

namespace ns {

// The inode's ACEs, or an empty ACL when it has none (no query then).
Result<Acl> AclOf(Transaction& t, const Attr& a);

// The rights of `mask` (kAce* bits) that `cred` holds on `a`.
Result<uint32_t> Granted(Transaction& t, const Credentials& cred,
                         const Attr& a, uint32_t mask);

// Ok if `cred` holds every right in `mask` on `a`; else AccessDenied
// naming `ctx`.
Status RequireAccess(Transaction& t, const Credentials& cred, const Attr& a,
                     uint32_t mask, std::string_view ctx);

// May `cred` remove `victim` from directory `dir` (RFC 8881 §6.2.1.3.2)?
// Needs EXECUTE on dir, and DELETE_CHILD on dir or DELETE on the victim;
// the sticky bit then limits removal to the owners of dir or victim (and
// root). Errors: AccessDenied, NotPermitted (sticky).
Status RequireDelete(Transaction& t, const Credentials& cred, const Attr& dir,
                     const Attr& victim, std::string_view ctx);

// Stale for ids that cannot exist (0, or beyond int64 where they are
// stored), so no query runs for them.
inline Status CheckInodeId(InodeId ino) {
  if (ino == 0 || ino > static_cast<InodeId>(INT64_MAX)) {
    return Status::Stale("inode " + std::to_string(ino), "no such inode");
  }
  return Status::Ok();
}

}  // namespace ns
