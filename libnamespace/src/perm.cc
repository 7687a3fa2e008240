#include "libnamespace/src/perm.h"

#include <sys/stat.h>

#include <string>

#include "libnamespace/include/namespace/acl.h"

namespace ns {
namespace {

bool IsOwner(const Credentials& cred, const Attr& a) {
  return cred.IsRoot() || cred.uid == a.uid;
}

}  // namespace

Status CheckAccess(const Credentials& cred, const Attr& a, uint32_t want,
                   std::string_view ctx) {
  if (cred.IsRoot()) {
    // Root needs an x bit somewhere to execute a non-directory.
    if ((want & kMayExec) && a.type != FileType::kDirectory &&
        (a.mode & 0111) == 0) {
      return Status::AccessDenied(ctx);
    }
    return Status::Ok();
  }
  uint32_t bits;
  if (cred.uid == a.uid) {
    bits = (a.mode >> 6) & 7;
  } else if (cred.InGroup(a.gid)) {
    bits = (a.mode >> 3) & 7;
  } else {
    bits = a.mode & 7;
  }
  if ((bits & want) != want) return Status::AccessDenied(ctx);
  return Status::Ok();
}

Status CheckSticky(const Credentials& cred, const Attr& dir,
                   const Attr& victim, std::string_view ctx) {
  if ((dir.mode & S_ISVTX) == 0 || cred.IsRoot() || cred.uid == dir.uid ||
      cred.uid == victim.uid) {
    return Status::Ok();
  }
  return Status::NotPermitted(ctx, "sticky directory");
}

Status CheckSetAttr(const Credentials& cred, const Attr& a,
                    const SetAttrRequest& req, uint32_t granted,
                    std::string_view ctx) {
  if (req.mode && !IsOwner(cred, a) && !(granted & kAceWriteAcl)) {
    return Status::NotPermitted(ctx, "only the owner may change the mode");
  }
  if (req.uid && *req.uid != a.uid && !cred.IsRoot()) {
    return Status::NotPermitted(ctx, "only root may change the owner");
  }
  if (req.gid && *req.gid != a.gid && !cred.IsRoot() &&
      !(cred.uid == a.uid && cred.InGroup(*req.gid))) {
    return Status::NotPermitted(
        ctx, "the owner may only change the group to one of its own");
  }
  if (req.uid && !cred.IsRoot() && cred.uid != a.uid) {
    return Status::NotPermitted(ctx, "only root may change the owner");
  }
  if ((req.atime || req.mtime) && !IsOwner(cred, a) &&
      !(granted & kAceWriteAttributes)) {
    return Status::NotPermitted(ctx, "only the owner may set times");
  }
  if ((req.atime_now || req.mtime_now) && !IsOwner(cred, a) &&
      !(granted & (kAceWriteData | kAceWriteAttributes))) {
    return Status::AccessDenied(ctx);
  }
  if (req.size && !(granted & kAceWriteData)) return Status::AccessDenied(ctx);
  return Status::Ok();
}

uint32_t ModeAfterChmod(const Credentials& cred, const Attr& a,
                        uint32_t requested) {
  uint32_t mode = requested & 07777;
  if (!cred.IsRoot() && a.type != FileType::kDirectory &&
      !cred.InGroup(a.gid)) {
    mode &= ~static_cast<uint32_t>(S_ISGID);
  }
  return mode;
}

uint32_t ModeAfterChown(const Attr& a) {
  if (a.type == FileType::kDirectory) return a.mode;
  uint32_t mode = a.mode & ~static_cast<uint32_t>(S_ISUID);
  if (mode & S_IXGRP) mode &= ~static_cast<uint32_t>(S_ISGID);
  return mode;
}

uint32_t ModeAfterWrite(const Credentials& cred, const Attr& a) {
  if (cred.IsRoot()) return a.mode;
  uint32_t mode = a.mode & ~static_cast<uint32_t>(S_ISUID);
  if (mode & S_IXGRP) mode &= ~static_cast<uint32_t>(S_ISGID);
  return mode;
}

uint32_t GidForNewInode(const Credentials& cred, const Attr& parent) {
  return (parent.mode & S_ISGID) ? parent.gid : cred.gid;
}

uint32_t ModeForNewInode(const Credentials& cred, const Attr& parent,
                         FileType type, uint32_t gid, uint32_t requested) {
  uint32_t mode = requested & 07777;
  if (type == FileType::kDirectory) {
    if (parent.mode & S_ISGID) mode |= S_ISGID;
  } else if ((mode & S_ISGID) && !cred.IsRoot() && !cred.InGroup(gid)) {
    mode &= ~static_cast<uint32_t>(S_ISGID);
  }
  return mode;
}

}  // namespace ns
