#pragma once

// POSIX draft ACLs (libacl) turned into NFSv4 ACEs, the representation the
// dump and the namespace use.

#include <string>
#include <vector>

#include "libnamespace/include/namespace/status.h"
#include "migrate/dump.h"

namespace nsmigrate {

// NFSv4 ACE bits used here (RFC 8881 §6.2.1).
inline constexpr uint32_t kAceAllow = 0, kAceDeny = 1;
inline constexpr uint32_t kAceFileInherit = 0x1, kAceDirectoryInherit = 0x2,
                          kAceInheritOnly = 0x8, kAceIdentifierGroup = 0x40;
inline constexpr uint32_t kAceReadData = 0x1, kAceWriteData = 0x2,
                          kAceAppendData = 0x4, kAceExecute = 0x20,
                          kAceDeleteChild = 0x40, kAceReadAttributes = 0x80,
                          kAceWriteAttributes = 0x100, kAceReadAcl = 0x20000,
                          kAceWriteAcl = 0x40000, kAceWriteOwner = 0x80000,
                          kAceSynchronize = 0x100000;

// The extended POSIX ACL of `path` (access ACL, and for a directory its
// default ACL as inherit-only ACEs) as NFSv4 ACEs, in the order of the
// usual mapping (draft-ietf-nfsv4-acl-mapping, as Linux nfsd does it):
// owner allow/deny, named users allow/deny, all group allows then all group
// denies, everyone allow. The mask is applied to named users and groups.
// Empty when the file has only the three entries the mode bits express.
ns::Result<std::vector<Ace>> ReadPosixAclAsNfs4(const std::string& path,
                                                bool is_dir);

// The same mapping from a textual POSIX ACL ("u::rwx,u:1000:r-x,g::r-x,
// m::r-x,o::---"), for tests and sources that store ACLs as text.
ns::Result<std::vector<Ace>> PosixAclTextToNfs4(const std::string& text,
                                                bool is_dir, bool is_default);

}  // namespace nsmigrate
