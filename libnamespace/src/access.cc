#include "libnamespace/src/access.h"

#include "libnamespace/src/perm.h"

namespace ns {

Result<Acl> AclOf(Transaction& t, const Attr& a) {
  if (!a.has_acl) return Acl{};
  AclCache* cache = t.acl_cache();
  if (cache != nullptr) {
    if (auto hit = cache->Get(a.ino, a.change)) return *hit;
  }
  NS_ASSIGN_OR_RETURN(Acl acl, t.GetAcl(a.ino));
  if (cache != nullptr && t.may_fill_acl_cache()) {
    cache->Put(a.ino, a.change, acl);
  }
  return acl;
}

Result<uint32_t> Granted(Transaction& t, const Credentials& cred,
                         const Attr& a, uint32_t mask) {
  if (!a.has_acl) return AccessFromMode(cred, a, mask);
  NS_ASSIGN_OR_RETURN(Acl acl, AclOf(t, a));
  return AccessFromAcl(cred, a, acl, mask);
}

Status RequireAccess(Transaction& t, const Credentials& cred, const Attr& a,
                     uint32_t mask, std::string_view ctx) {
  NS_ASSIGN_OR_RETURN(uint32_t granted, Granted(t, cred, a, mask));
  if ((granted & mask) != mask) return Status::AccessDenied(ctx);
  return Status::Ok();
}

Status RequireDelete(Transaction& t, const Credentials& cred, const Attr& dir,
                     const Attr& victim, std::string_view ctx) {
  NS_ASSIGN_OR_RETURN(uint32_t on_dir,
                      Granted(t, cred, dir, kAceExecute | kAceDeleteChild));
  if ((on_dir & kAceExecute) == 0) return Status::AccessDenied(ctx);
  if ((on_dir & kAceDeleteChild) == 0) {
    // Only an ACL grants DELETE on the object itself.
    NS_ASSIGN_OR_RETURN(uint32_t on_victim,
                        Granted(t, cred, victim, kAceDelete));
    if ((on_victim & kAceDelete) == 0) return Status::AccessDenied(ctx);
  }
  return CheckSticky(cred, dir, victim, ctx);
}

}  // namespace ns
