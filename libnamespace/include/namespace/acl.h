#pragma once

// NFSv4 ACLs (RFC 8881 §6): the access control entry as the protocol
// carries it (nfsace4, §6.2.1), the access mask bits that Namespace::Access
// answers with, and the textual form of nfs4_getfacl/nfs4_setfacl.
//
// Plain values and pure functions: thread-safe, no I/O.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"

namespace ns {

// acetype4 (RFC 8881 §6.2.1.1).
inline constexpr uint32_t kAceAllow = 0;  // ACE4_ACCESS_ALLOWED_ACE_TYPE
inline constexpr uint32_t kAceDeny = 1;   // ACE4_ACCESS_DENIED_ACE_TYPE
inline constexpr uint32_t kAceAudit = 2;  // ACE4_SYSTEM_AUDIT_ACE_TYPE
inline constexpr uint32_t kAceAlarm = 3;  // ACE4_SYSTEM_ALARM_ACE_TYPE

// aceflag4 (§6.2.1.4).
inline constexpr uint32_t kAceFileInherit = 0x1;
inline constexpr uint32_t kAceDirectoryInherit = 0x2;
inline constexpr uint32_t kAceNoPropagateInherit = 0x4;
inline constexpr uint32_t kAceInheritOnly = 0x8;
inline constexpr uint32_t kAceSuccessfulAccess = 0x10;
inline constexpr uint32_t kAceFailedAccess = 0x20;
inline constexpr uint32_t kAceIdentifierGroup = 0x40;
inline constexpr uint32_t kAceInherited = 0x80;
inline constexpr uint32_t kAceAllFlags = 0xff;

// acemask4 (§6.2.1.3). Directory names share bits with file names.
inline constexpr uint32_t kAceReadData = 0x1;
inline constexpr uint32_t kAceListDirectory = 0x1;
inline constexpr uint32_t kAceWriteData = 0x2;
inline constexpr uint32_t kAceAddFile = 0x2;
inline constexpr uint32_t kAceAppendData = 0x4;
inline constexpr uint32_t kAceAddSubdirectory = 0x4;
inline constexpr uint32_t kAceReadNamedAttrs = 0x8;
inline constexpr uint32_t kAceWriteNamedAttrs = 0x10;
inline constexpr uint32_t kAceExecute = 0x20;
inline constexpr uint32_t kAceDeleteChild = 0x40;
inline constexpr uint32_t kAceReadAttributes = 0x80;
inline constexpr uint32_t kAceWriteAttributes = 0x100;
inline constexpr uint32_t kAceDelete = 0x10000;
inline constexpr uint32_t kAceReadAcl = 0x20000;
inline constexpr uint32_t kAceWriteAcl = 0x40000;
inline constexpr uint32_t kAceWriteOwner = 0x80000;
inline constexpr uint32_t kAceSynchronize = 0x100000;
inline constexpr uint32_t kAceAllMask = 0x1f01ff;

// Whom an ACE names (the `who` of nfsace4, §6.2.1.5), with ids rather than
// "user@domain" strings: the NFS layer maps names to ids.
enum class AceWho : uint8_t {
  kOwner = 0,     // "OWNER@": the file's owner
  kGroup = 1,     // "GROUP@": the file's group (carries IDENTIFIER_GROUP)
  kEveryone = 2,  // "EVERYONE@": everyone, the owner and group included
  kUser = 3,      // a uid
  kNamedGroup = 4,  // a gid (carries IDENTIFIER_GROUP)
};

struct Ace {
  uint32_t type = kAceAllow;
  uint32_t flags = 0;
  uint32_t mask = 0;
  AceWho who = AceWho::kEveryone;
  uint32_t id = 0;  // uid for kUser, gid for kNamedGroup, else 0

  bool operator==(const Ace&) const = default;
};

// Ordered: evaluation walks the ACEs first to last (§6.2.1).
using Acl = std::vector<Ace>;

// At most this many ACEs per inode (Invalid beyond).
inline constexpr size_t kMaxAces = 1024;

// Ok, or Invalid naming the first problem: unknown type, flags or mask bits,
// INHERIT_ONLY / NO_PROPAGATE without an inherit flag, an id on a special
// who, IDENTIFIER_GROUP inconsistent with the who, more than kMaxAces.
Status ValidateAcl(const Acl& acl);

// The mode's rwx bits (0777) that the ACL grants OWNER@, GROUP@ and
// EVERYONE@ (RFC 8881 §6.3.2): a bit is set when READ_DATA / WRITE_DATA /
// EXECUTE is allowed before it is denied. INHERIT_ONLY ACEs are skipped.
uint32_t ModeFromAcl(const Acl& acl);

// The ACL after chmod to `mode` (RFC 8881 §6.4.1.1): ALLOW/DENY ACEs for
// OWNER@, GROUP@ and EVERYONE@ lose their read/write/execute bits (and go
// when nothing remains), named ALLOW ACEs lose what the group bits do not
// allow, and ACEs expressing `mode` exactly are appended. Inherit-only ACEs
// are kept as they are.
Acl AclAfterChmod(const Acl& acl, uint32_t mode);

// The ACL a new object inherits from its directory's `parent` ACL (RFC 8881
// §6.4.3): for a file the FILE_INHERIT ACEs; for a directory the
// DIRECTORY_INHERIT ACEs (inherit flags kept unless NO_PROPAGATE_INHERIT)
// and the FILE_INHERIT-only ones as INHERIT_ONLY (dropped with
// NO_PROPAGATE_INHERIT). Inherited ACEs carry kAceInherited.
Acl InheritAcl(const Acl& parent, bool is_dir);

// The rights of `mask` that `cred` holds on an inode with attributes `a`
// and ACL `acl` (RFC 8881 §6.2.1: ACEs in order, the first to mention a bit
// decides it, bits no ACE mentions are denied). The owner always holds
// READ_ACL, WRITE_ACL, READ_ATTRIBUTES, WRITE_ATTRIBUTES and SYNCHRONIZE;
// root holds everything but EXECUTE on a file nobody may execute.
// With an empty `acl` the mode bits decide (see AccessFromMode).
uint32_t AccessFromAcl(const Credentials& cred, const Attr& a, const Acl& acl,
                       uint32_t mask);

// The same from the mode bits alone: r grants READ_DATA/LIST_DIRECTORY and
// READ_NAMED_ATTRS; w grants WRITE_DATA/ADD_FILE, APPEND_DATA/
// ADD_SUBDIRECTORY, WRITE_NAMED_ATTRS and, on a directory, DELETE_CHILD;
// x grants EXECUTE. Everyone holds READ_ATTRIBUTES, READ_ACL and
// SYNCHRONIZE; the owner and root hold WRITE_ATTRIBUTES and WRITE_ACL; root
// holds WRITE_OWNER. DELETE is never granted by mode bits (deletion is the
// directory's DELETE_CHILD).
uint32_t AccessFromMode(const Credentials& cred, const Attr& a, uint32_t mask);

// --- Text form (nfs4_acl(5)) ------------------------------------------------
//
//   type:flags:principal:permissions
//   type        A (allow), D (deny), U (audit), L (alarm)
//   flags       f file-inherit, d directory-inherit, n no-propagate,
//               i inherit-only, S successful-access, F failed-access,
//               g group (the principal is a group), O inherited
//   principal   OWNER@, GROUP@, EVERYONE@, a numeric uid, or with g a gid
//   permissions r read-data/list, w write-data/add-file, a append/add-subdir,
//               x execute, d delete, D delete-child, t read-attrs,
//               T write-attrs, n read-named-attrs, N write-named-attrs,
//               c read-acl, C write-acl, o write-owner, y synchronize
//
// Parses one ACE ("A::OWNER@:rwatTnNcCy", "D:g:1000:w"). Errors: Invalid
// naming the field at fault; principals other than the three specials and
// numeric ids (names are resolved by the caller) are Invalid too.
Result<Ace> ParseAce(std::string_view text);
// Several ACEs separated by commas, newlines or whitespace; '#' starts a
// comment to the end of the line (nfs4_setfacl -S files).
Result<Acl> ParseAcl(std::string_view text);
std::string FormatAce(const Ace& ace);
// The letters of `mask` in the canonical order "rwaxdDtTnNcCoy".
std::string FormatMask(uint32_t mask);
// Parses permission letters; Invalid on an unknown one.
Result<uint32_t> ParseMask(std::string_view letters);

}  // namespace ns
