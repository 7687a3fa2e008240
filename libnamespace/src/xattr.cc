// Extended attributes (user metadata): Namespace::GetXattr and friends.
// Limits and errors follow RFC 8276 (NFSv4 extended attributes) and
// Linux's xattr(7): names up to 255 bytes, values up to 64 KiB.

#include <string>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/src/access.h"
#include "libnamespace/src/backend.h"

namespace ns {
namespace {

std::string Ctx(std::string_view op, InodeId ino, std::string_view name) {
  return std::string(op) + " inode " + std::to_string(ino) + " xattr '" +
         std::string(name.substr(0, 64)) + (name.size() > 64 ? "...'" : "'");
}

Status ValidateXattrName(std::string_view name, const std::string& ctx) {
  if (name.empty()) return Status::Invalid(ctx, "empty name");
  if (name.size() > kMaxXattrNameBytes) {
    return Status::NameTooLong(ctx, std::to_string(name.size()) +
                                        " bytes, at most 255");
  }
  if (name.find('\0') != std::string_view::npos) {
    return Status::Invalid(ctx, "name contains NUL");
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> Namespace::GetXattr(const Credentials& cred, InodeId ino,
                                        std::string_view name) {
  const std::string ctx = Ctx("getxattr", ino, name);
  NS_RETURN_IF_ERROR(CheckInodeId(ino));
  NS_RETURN_IF_ERROR(ValidateXattrName(name, ctx));
  std::string out;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kNone));
    NS_RETURN_IF_ERROR(RequireAccess(t, cred, a, kAceReadNamedAttrs, ctx));
    NS_ASSIGN_OR_RETURN(auto v, t.GetXattr(ino, name));
    if (!v) return Status::NotFound(ctx, "no such attribute");
    out = std::move(*v);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Status Namespace::SetXattr(const Credentials& cred, InodeId ino,
                           std::string_view name, std::string_view value,
                           XattrMode mode) {
  const std::string ctx = Ctx("setxattr", ino, name);
  NS_RETURN_IF_ERROR(CheckInodeId(ino));
  NS_RETURN_IF_ERROR(ValidateXattrName(name, ctx));
  if (value.size() > kMaxXattrValueBytes) {
    return Status::TooBig(ctx, "value of " + std::to_string(value.size()) +
                                   " bytes, at most 65536");
  }
  return backend_->Write([&](Transaction& t) -> Status {
    // The exclusive lock serializes writers of one inode, so the total
    // below cannot be overtaken by a concurrent set.
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kExclusive));
    NS_RETURN_IF_ERROR(RequireAccess(t, cred, a, kAceWriteNamedAttrs, ctx));
    NS_ASSIGN_OR_RETURN(std::vector<XattrName> all, t.ListXattrs(ino));
    uint64_t total = name.size() + value.size();
    bool exists = false;
    for (const XattrName& x : all) {
      if (x.name == name) {
        exists = true;
        continue;  // replaced
      }
      total += x.name.size() + x.size;
    }
    if (exists && mode == XattrMode::kCreate) {
      return Status::Exists(ctx, "attribute exists");
    }
    if (!exists && mode == XattrMode::kReplace) {
      return Status::NotFound(ctx, "no such attribute");
    }
    if (total > kMaxXattrTotalBytes) {
      return Status::NoSpace(ctx, "the inode's attributes would take " +
                                      std::to_string(total) +
                                      " bytes, at most " +
                                      std::to_string(kMaxXattrTotalBytes));
    }
    NS_RETURN_IF_ERROR(t.PutXattr(ino, name, value));
    a.ctime = NowNs();
    return t.UpdateInode(a);
  });
}

Result<std::vector<XattrName>> Namespace::ListXattrs(const Credentials& cred,
                                                     InodeId ino) {
  const std::string ctx = "listxattr inode " + std::to_string(ino);
  NS_RETURN_IF_ERROR(CheckInodeId(ino));
  std::vector<XattrName> out;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kNone));
    NS_RETURN_IF_ERROR(RequireAccess(t, cred, a, kAceReadNamedAttrs, ctx));
    NS_ASSIGN_OR_RETURN(out, t.ListXattrs(ino));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Status Namespace::RemoveXattr(const Credentials& cred, InodeId ino,
                              std::string_view name) {
  const std::string ctx = Ctx("removexattr", ino, name);
  NS_RETURN_IF_ERROR(CheckInodeId(ino));
  NS_RETURN_IF_ERROR(ValidateXattrName(name, ctx));
  return backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, LockMode::kExclusive));
    NS_RETURN_IF_ERROR(RequireAccess(t, cred, a, kAceWriteNamedAttrs, ctx));
    NS_ASSIGN_OR_RETURN(bool gone, t.DeleteXattr(ino, name));
    if (!gone) return Status::NotFound(ctx, "no such attribute");
    a.ctime = NowNs();
    return t.UpdateInode(a);
  });
}

}  // namespace ns
