// NFSv4 ACLs: evaluation, mode interplay and inheritance (RFC 8881 §6),
// the nfs4_acl(5) text form, and the Namespace ACL calls.

#include "libnamespace/include/namespace/acl.h"

#include <cctype>
#include <charconv>
#include <string>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/src/access.h"
#include "libnamespace/src/backend.h"

namespace ns {
namespace {

constexpr uint32_t kInheritFlags = kAceFileInherit | kAceDirectoryInherit |
                                   kAceNoPropagateInherit | kAceInheritOnly;
// The access bits the mode's r, w and x stand for (§6.3.2, §6.4.1.1).
constexpr uint32_t kModeRead = kAceReadData;
constexpr uint32_t kModeWrite = kAceWriteData | kAceAppendData;
constexpr uint32_t kModeExec = kAceExecute;
constexpr uint32_t kModeBits = kModeRead | kModeWrite | kModeExec;
// What the owner may always do, whatever the ACL says: otherwise an owner
// could lock itself out of its own file for good.
constexpr uint32_t kOwnerImplicit = kAceReadAcl | kAceWriteAcl |
                                    kAceReadAttributes | kAceWriteAttributes |
                                    kAceSynchronize;
// What everyone may do without an ACL saying so (mode-only inodes).
constexpr uint32_t kEveryoneImplicit =
    kAceReadAttributes | kAceReadAcl | kAceSynchronize;

bool Effective(const Ace& ace) {
  return (ace.flags & kAceInheritOnly) == 0 &&
         (ace.type == kAceAllow || ace.type == kAceDeny);
}

bool Matches(const Ace& ace, const Credentials& cred, const Attr& a) {
  switch (ace.who) {
    case AceWho::kOwner: return cred.uid == a.uid;
    case AceWho::kGroup: return cred.InGroup(a.gid);
    case AceWho::kEveryone: return true;
    case AceWho::kUser: return cred.uid == ace.id;
    case AceWho::kNamedGroup: return cred.InGroup(ace.id);
  }
  return false;
}

uint32_t RwxToMask(uint32_t rwx) {
  uint32_t m = 0;
  if (rwx & 4) m |= kModeRead;
  if (rwx & 2) m |= kModeWrite;
  if (rwx & 1) m |= kModeExec;
  return m;
}

// The rwx bits the special principals in `whos` are allowed, in ACE order
// (the first ACE to mention a bit decides it).
uint32_t RwxFor(const Acl& acl, std::initializer_list<AceWho> whos) {
  uint32_t allowed = 0, denied = 0;
  for (const Ace& ace : acl) {
    if (!Effective(ace)) continue;
    bool applies = false;
    for (AceWho w : whos) applies = applies || ace.who == w;
    if (!applies) continue;
    const uint32_t undecided = ace.mask & ~(allowed | denied);
    (ace.type == kAceAllow ? allowed : denied) |= undecided;
  }
  uint32_t rwx = 0;
  if (allowed & kAceReadData) rwx |= 4;
  // Write needs both: a mode w bit means the file can be written and
  // appended to.
  if ((allowed & kModeWrite) == kModeWrite) rwx |= 2;
  if (allowed & kAceExecute) rwx |= 1;
  return rwx;
}

struct Letter {
  char c;
  uint32_t bit;
};
constexpr Letter kMaskLetters[] = {
    {'r', kAceReadData},        {'w', kAceWriteData},
    {'a', kAceAppendData},      {'x', kAceExecute},
    {'d', kAceDelete},          {'D', kAceDeleteChild},
    {'t', kAceReadAttributes},  {'T', kAceWriteAttributes},
    {'n', kAceReadNamedAttrs},  {'N', kAceWriteNamedAttrs},
    {'c', kAceReadAcl},         {'C', kAceWriteAcl},
    {'o', kAceWriteOwner},      {'y', kAceSynchronize},
};
constexpr Letter kFlagLetters[] = {
    {'f', kAceFileInherit},      {'d', kAceDirectoryInherit},
    {'n', kAceNoPropagateInherit}, {'i', kAceInheritOnly},
    {'S', kAceSuccessfulAccess}, {'F', kAceFailedAccess},
    {'g', kAceIdentifierGroup},  {'O', kAceInherited},
};

std::string Shown(std::string_view text) {
  return "'" + std::string(text.substr(0, 80)) + "'";
}

}  // namespace

Status ValidateAcl(const Acl& acl) {
  if (acl.size() > kMaxAces) {
    return Status::Invalid("acl", std::to_string(acl.size()) +
                                      " entries, at most " +
                                      std::to_string(kMaxAces));
  }
  for (size_t i = 0; i < acl.size(); ++i) {
    const Ace& ace = acl[i];
    const std::string ctx = "acl entry " + std::to_string(i + 1);
    if (ace.type > kAceAlarm) {
      return Status::Invalid(ctx, "unknown type " + std::to_string(ace.type));
    }
    if (ace.flags & ~kAceAllFlags) {
      return Status::Invalid(ctx, "unknown flag bits");
    }
    if (ace.mask & ~kAceAllMask) {
      return Status::Invalid(ctx, "unknown access mask bits");
    }
    if ((ace.flags & (kAceInheritOnly | kAceNoPropagateInherit)) &&
        !(ace.flags & (kAceFileInherit | kAceDirectoryInherit))) {
      return Status::Invalid(
          ctx, "inherit-only or no-propagate without file or directory inherit");
    }
    if (static_cast<uint8_t>(ace.who) > static_cast<uint8_t>(AceWho::kNamedGroup)) {
      return Status::Invalid(ctx, "unknown principal kind");
    }
    const bool special = ace.who == AceWho::kOwner ||
                         ace.who == AceWho::kGroup ||
                         ace.who == AceWho::kEveryone;
    if (special && ace.id != 0) {
      return Status::Invalid(ctx, "OWNER@, GROUP@ and EVERYONE@ take no id");
    }
    const bool group_flag = (ace.flags & kAceIdentifierGroup) != 0;
    if (ace.who == AceWho::kNamedGroup && !group_flag) {
      return Status::Invalid(ctx, "a group principal needs the g flag");
    }
    if ((ace.who == AceWho::kUser || ace.who == AceWho::kOwner ||
         ace.who == AceWho::kEveryone) &&
        group_flag) {
      return Status::Invalid(ctx, "the g flag on a user principal");
    }
  }
  return Status::Ok();
}

uint32_t ModeFromAcl(const Acl& acl) {
  // RFC 8881 §6.3.2: EVERYONE@ applies to the owner and the group too.
  const uint32_t u = RwxFor(acl, {AceWho::kOwner, AceWho::kEveryone});
  const uint32_t g = RwxFor(acl, {AceWho::kGroup, AceWho::kEveryone});
  const uint32_t o = RwxFor(acl, {AceWho::kEveryone});
  return (u << 6) | (g << 3) | o;
}

Acl AclAfterChmod(const Acl& acl, uint32_t mode) {
  const uint32_t u = (mode >> 6) & 7, g = (mode >> 3) & 7, o = mode & 7;
  Acl out;
  for (Ace ace : acl) {
    if (!Effective(ace)) {
      out.push_back(ace);
      continue;
    }
    const bool special = ace.who == AceWho::kOwner ||
                         ace.who == AceWho::kGroup ||
                         ace.who == AceWho::kEveryone;
    if (special) {
      // The appended ACEs below say what the mode says for these.
      ace.mask &= ~kModeBits;
    } else if (ace.type == kAceAllow) {
      // Named principals get no more than the group class (§6.4.1.1).
      ace.mask &= ~(kModeBits & ~RwxToMask(g));
    }
    if (ace.mask != 0) out.push_back(ace);
  }
  auto add = [&out](uint32_t type, AceWho who, uint32_t mask) {
    if (mask == 0) return;
    Ace ace;
    ace.type = type;
    ace.who = who;
    ace.mask = mask;
    if (who == AceWho::kGroup) ace.flags = kAceIdentifierGroup;
    out.push_back(ace);
  };
  add(kAceAllow, AceWho::kOwner, RwxToMask(u));
  add(kAceDeny, AceWho::kOwner, kModeBits & ~RwxToMask(u));
  add(kAceAllow, AceWho::kGroup, RwxToMask(g));
  add(kAceDeny, AceWho::kGroup, kModeBits & ~RwxToMask(g));
  add(kAceAllow, AceWho::kEveryone, RwxToMask(o));
  return out;
}

Acl InheritAcl(const Acl& parent, bool is_dir) {
  Acl out;
  for (Ace ace : parent) {
    const uint32_t f = ace.flags;
    if (is_dir) {
      if (f & kAceDirectoryInherit) {
        // Applies to the new directory and keeps propagating, unless
        // NO_PROPAGATE_INHERIT stops it at this level (§6.2.1.4).
        if (f & kAceNoPropagateInherit) {
          ace.flags &= ~kInheritFlags;
        } else {
          ace.flags &= ~kAceInheritOnly;
        }
      } else if ((f & kAceFileInherit) && !(f & kAceNoPropagateInherit)) {
        // Only for files further down: carried, but not effective here.
        ace.flags |= kAceInheritOnly;
      } else {
        continue;
      }
    } else {
      if (!(f & kAceFileInherit)) continue;
      ace.flags &= ~kInheritFlags;
    }
    ace.flags |= kAceInherited;
    out.push_back(ace);
  }
  return out;
}

uint32_t AccessFromMode(const Credentials& cred, const Attr& a, uint32_t mask) {
  const bool dir = a.type == FileType::kDirectory;
  if (cred.IsRoot()) {
    uint32_t granted = mask;
    // Root needs an x bit somewhere to execute a non-directory.
    if (!dir && (a.mode & 0111) == 0) granted &= ~kAceExecute;
    return granted;
  }
  uint32_t rwx;
  if (cred.uid == a.uid) {
    rwx = (a.mode >> 6) & 7;
  } else if (cred.InGroup(a.gid)) {
    rwx = (a.mode >> 3) & 7;
  } else {
    rwx = a.mode & 7;
  }
  uint32_t granted = kEveryoneImplicit;
  if (rwx & 4) granted |= kAceReadData | kAceReadNamedAttrs;
  if (rwx & 2) {
    granted |= kAceWriteData | kAceAppendData | kAceWriteNamedAttrs;
    if (dir) granted |= kAceDeleteChild;
  }
  if (rwx & 1) granted |= kAceExecute;
  if (cred.uid == a.uid) granted |= kOwnerImplicit;
  return mask & granted;
}

uint32_t AccessFromAcl(const Credentials& cred, const Attr& a, const Acl& acl,
                       uint32_t mask) {
  if (acl.empty()) return AccessFromMode(cred, a, mask);
  if (cred.IsRoot()) return AccessFromMode(cred, a, mask);
  uint32_t allowed = cred.uid == a.uid ? kOwnerImplicit : 0;
  uint32_t denied = 0;
  for (const Ace& ace : acl) {
    if (!Effective(ace) || !Matches(ace, cred, a)) continue;
    const uint32_t undecided = ace.mask & ~(allowed | denied);
    (ace.type == kAceAllow ? allowed : denied) |= undecided;
    if (((allowed | denied) & mask) == mask) break;  // all decided
  }
  return mask & allowed;
}

// --- text ---------------------------------------------------------------

Result<uint32_t> ParseMask(std::string_view letters) {
  uint32_t mask = 0;
  for (char c : letters) {
    bool found = false;
    for (const Letter& l : kMaskLetters) {
      if (l.c == c) {
        mask |= l.bit;
        found = true;
      }
    }
    if (!found) {
      return Status::Invalid("acl permissions " + Shown(letters),
                             std::string("unknown letter '") + c + "'");
    }
  }
  return mask;
}

std::string FormatMask(uint32_t mask) {
  std::string out;
  for (const Letter& l : kMaskLetters) {
    if (mask & l.bit) out += l.c;
  }
  return out;
}

Result<Ace> ParseAce(std::string_view text) {
  const std::string ctx = "acl entry " + Shown(text);
  std::string_view field[4];
  size_t start = 0;
  for (int i = 0; i < 4; ++i) {
    const size_t colon = text.find(':', start);
    if (i < 3 && colon == std::string_view::npos) {
      return Status::Invalid(ctx, "want type:flags:principal:permissions");
    }
    if (i == 3 && colon != std::string_view::npos) {
      return Status::Invalid(ctx, "too many ':'");
    }
    const size_t end = i < 3 ? colon : text.size();
    field[i] = text.substr(start, end - start);
    start = end + 1;
  }
  Ace ace;
  if (field[0].size() != 1) return Status::Invalid(ctx, "type must be A, D, U or L");
  switch (field[0][0]) {
    case 'A': ace.type = kAceAllow; break;
    case 'D': ace.type = kAceDeny; break;
    case 'U': ace.type = kAceAudit; break;
    case 'L': ace.type = kAceAlarm; break;
    default: return Status::Invalid(ctx, "type must be A, D, U or L");
  }
  for (char c : field[1]) {
    bool found = false;
    for (const Letter& l : kFlagLetters) {
      if (l.c == c) {
        ace.flags |= l.bit;
        found = true;
      }
    }
    if (!found) {
      return Status::Invalid(ctx, std::string("unknown flag '") + c + "'");
    }
  }
  const std::string_view who = field[2];
  const bool group = (ace.flags & kAceIdentifierGroup) != 0;
  if (who == "OWNER@") {
    ace.who = AceWho::kOwner;
  } else if (who == "GROUP@") {
    ace.who = AceWho::kGroup;
    ace.flags |= kAceIdentifierGroup;
  } else if (who == "EVERYONE@") {
    ace.who = AceWho::kEveryone;
  } else {
    uint32_t id = 0;
    const auto [p, ec] = std::from_chars(who.data(), who.data() + who.size(), id);
    if (who.empty() || ec != std::errc() || p != who.data() + who.size()) {
      return Status::Invalid(ctx, "unknown principal " + Shown(who) +
                                      " (OWNER@, GROUP@, EVERYONE@ or a "
                                      "numeric id)");
    }
    ace.who = group ? AceWho::kNamedGroup : AceWho::kUser;
    ace.id = id;
  }
  Result<uint32_t> mask = ParseMask(field[3]);
  if (!mask.ok()) return Status::Invalid(ctx, mask.status().ToString());
  ace.mask = *mask;
  NS_RETURN_IF_ERROR(ValidateAcl({ace}));
  return ace;
}

Result<Acl> ParseAcl(std::string_view text) {
  Acl acl;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
      continue;
    }
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && text[j] != ',' && text[j] != '#' &&
           !std::isspace(static_cast<unsigned char>(text[j]))) {
      ++j;
    }
    NS_ASSIGN_OR_RETURN(Ace ace, ParseAce(text.substr(i, j - i)));
    acl.push_back(ace);
    i = j;
  }
  NS_RETURN_IF_ERROR(ValidateAcl(acl));
  return acl;
}

std::string FormatAce(const Ace& ace) {
  std::string out;
  out += "ADUL"[ace.type & 3];
  out += ':';
  for (const Letter& l : kFlagLetters) {
    if (ace.flags & l.bit) out += l.c;
  }
  out += ':';
  switch (ace.who) {
    case AceWho::kOwner: out += "OWNER@"; break;
    case AceWho::kGroup: out += "GROUP@"; break;
    case AceWho::kEveryone: out += "EVERYONE@"; break;
    default: out += std::to_string(ace.id); break;
  }
  out += ':';
  out += FormatMask(ace.mask);
  return out;
}

// --- Namespace ------------------------------------------------------------

Result<uint32_t> Namespace::Access(const Credentials& cred, InodeId ino,
                                   uint32_t mask) {
  if (ino == 0 || ino > static_cast<InodeId>(INT64_MAX)) {
    return Status::Stale("inode " + std::to_string(ino), "no such inode");
  }
  uint32_t out = 0;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kNone));
    NS_ASSIGN_OR_RETURN(out, Granted(t, cred, a, mask & kAceAllMask));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<Acl> Namespace::GetAcl(const Credentials& cred, InodeId ino) {
  if (ino == 0 || ino > static_cast<InodeId>(INT64_MAX)) {
    return Status::Stale("inode " + std::to_string(ino), "no such inode");
  }
  Acl out;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kNone));
    NS_RETURN_IF_ERROR(RequireAccess(t, cred, a, kAceReadAcl,
                                     "getacl inode " + std::to_string(ino)));
    NS_ASSIGN_OR_RETURN(out, AclOf(t, a));
    // No ACL: the one the mode stands for (RFC 8881 §6.4.2).
    if (out.empty()) out = AclAfterChmod({}, a.mode);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<Attr> Namespace::SetAcl(const Credentials& cred, InodeId ino,
                               const Acl& acl) {
  const std::string ctx = "setacl inode " + std::to_string(ino);
  if (ino == 0 || ino > static_cast<InodeId>(INT64_MAX)) {
    return Status::Stale(ctx, "no such inode");
  }
  NS_RETURN_IF_ERROR(ValidateAcl(acl));
  Attr out;
  Status s = backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kExclusive));
    NS_ASSIGN_OR_RETURN(uint32_t granted, Granted(t, cred, a, kAceWriteAcl));
    if (!(granted & kAceWriteAcl)) {
      return Status::NotPermitted(ctx, "no WRITE_ACL permission");
    }
    if (acl.empty() && !a.has_acl) {
      out = a;
      return Status::Ok();
    }
    NS_RETURN_IF_ERROR(t.SetAcl(ino, acl));
    if (!acl.empty()) {
      // §6.4.1.2: the mode follows the ACL; setuid, setgid, sticky stay.
      a.mode = (a.mode & 07000) | ModeFromAcl(acl);
    }
    a.has_acl = !acl.empty();
    a.ctime = NowNs();
    NS_RETURN_IF_ERROR(t.UpdateInode(a));
    NS_ASSIGN_OR_RETURN(out, t.GetInode(ino, LockMode::kNone));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace ns
