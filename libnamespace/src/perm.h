#pragma once

// POSIX permission rules from the caller's credentials: mode bits, the
// sticky bit, setgid directories, who may chmod/chown/set times. One place,
// so every operation applies the same rules (the ACL issue extends
// CheckAccess with NFSv4 ACLs).

#include <cstdint>
#include <string_view>

#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"

namespace ns {

inline constexpr uint32_t kMayRead = 4;
inline constexpr uint32_t kMayWrite = 2;
inline constexpr uint32_t kMayExec = 1;

// Ok if `cred` holds every right in `want` (kMay* bits) on `a`; else
// AccessDenied naming `ctx`. Root may read and write anything, and execute
// (search) a directory or a file with any x bit.
Status CheckAccess(const Credentials& cred, const Attr& a, uint32_t want,
                   std::string_view ctx);

// In a sticky directory only the owner of the entry, the owner of the
// directory or root may remove or rename the entry.
Status CheckSticky(const Credentials& cred, const Attr& dir,
                   const Attr& victim, std::string_view ctx);

// Who may change what: mode by the owner, root or a holder of WRITE_ACL;
// explicit times by the owner, root or a holder of WRITE_ATTRIBUTES; uid by
// root only; gid by root, or the owner to one of its groups; times set to
// "now" by those or anyone with WRITE_DATA; size by anyone with WRITE_DATA.
// `granted`: the rights the caller holds on `a` among kAceWriteAcl,
// kAceWriteAttributes and kAceWriteData (from the access check, ACL or
// mode).
Status CheckSetAttr(const Credentials& cred, const Attr& a,
                    const SetAttrRequest& req, uint32_t granted,
                    std::string_view ctx);

// The mode after chmod(requested): a non-root caller outside the file's
// group cannot set setgid on a file (POSIX chmod(2)).
uint32_t ModeAfterChmod(const Credentials& cred, const Attr& a,
                        uint32_t requested);
// After a chown/chgrp of a non-directory, setuid is cleared, and setgid when
// the group may execute (else it marks mandatory locking and stays).
uint32_t ModeAfterChown(const Attr& a);
// A write (or truncate) by anyone but root clears setuid and setgid.
uint32_t ModeAfterWrite(const Credentials& cred, const Attr& a);

// A new inode's group: the parent's when the parent is setgid, else the
// caller's.
uint32_t GidForNewInode(const Credentials& cred, const Attr& parent);
// A new inode's mode: `requested` & 07777, plus setgid for a directory made
// in a setgid directory; setgid dropped from a file whose group the caller
// is not in.
uint32_t ModeForNewInode(const Credentials& cred, const Attr& parent,
                         FileType type, uint32_t gid, uint32_t requested);

}  // namespace ns
