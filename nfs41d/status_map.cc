#include "nfs41d/status_map.h"

namespace nfs41d {

nfsstat4 ToNfsStat(const ns::Status& s) {
  if (s.ok()) return NFS4_OK;
  if (s.IsNotFound()) return NFS4ERR_NOENT;
  if (s.IsExists()) return NFS4ERR_EXIST;
  if (s.IsNotDir()) return NFS4ERR_NOTDIR;
  if (s.IsIsDir()) return NFS4ERR_ISDIR;
  if (s.IsNotEmpty()) return NFS4ERR_NOTEMPTY;
  if (s.IsInvalid()) return NFS4ERR_INVAL;
  if (s.IsNameTooLong()) return NFS4ERR_NAMETOOLONG;
  if (s.IsAccessDenied()) return NFS4ERR_ACCESS;
  if (s.IsNotPermitted()) return NFS4ERR_PERM;
  if (s.IsStale()) return NFS4ERR_STALE;
  if (s.IsLoop()) return NFS4ERR_SYMLINK;
  if (s.IsTooManyLinks()) return NFS4ERR_MLINK;
  if (s.IsNotSupported()) return NFS4ERR_NOTSUPP;
  if (s.IsReadOnly()) return NFS4ERR_ROFS;
  // The client resends after NFS4ERR_DELAY with a new slot sequence id
  // (RFC 8881 §15.1.1.3), so the reply cache (§2.10.6) will not answer the
  // resend: DELAY is only right for an operation that did not happen.
  // libnamespace keeps to that: a write whose COMMIT lost its answer is
  // decided by its commit token first (docs/dba.md, "Replicas").
  if (s.IsUnavailable() || s.IsRetry()) return NFS4ERR_DELAY;
  if (s.IsNoSpace()) return NFS4ERR_NOSPC;
  // A value over a library limit (an xattr or tag value): the arguments
  // are at fault, not the file's size (NFS4ERR_FBIG). Too many ACEs come
  // as Invalid (ns::ValidateAcl) and are refused before that when
  // decoding (acl_attr.h).
  if (s.IsTooBig()) return NFS4ERR_INVAL;
  if (s.IsCorruption() || s.IsIOError()) return NFS4ERR_IO;
  return NFS4ERR_SERVERFAULT;
}

const char* NfsStatName(nfsstat4 s) {
  switch (s) {
#define C(x) \
  case x:    \
    return #x;
    C(NFS4_OK) C(NFS4ERR_PERM) C(NFS4ERR_NOENT) C(NFS4ERR_IO) C(NFS4ERR_NXIO)
    C(NFS4ERR_ACCESS) C(NFS4ERR_EXIST) C(NFS4ERR_XDEV) C(NFS4ERR_NOTDIR)
    C(NFS4ERR_ISDIR) C(NFS4ERR_INVAL) C(NFS4ERR_FBIG) C(NFS4ERR_NOSPC)
    C(NFS4ERR_ROFS) C(NFS4ERR_MLINK) C(NFS4ERR_NAMETOOLONG) C(NFS4ERR_NOTEMPTY)
    C(NFS4ERR_STALE) C(NFS4ERR_BADHANDLE) C(NFS4ERR_BAD_COOKIE)
    C(NFS4ERR_NOTSUPP) C(NFS4ERR_TOOSMALL) C(NFS4ERR_SERVERFAULT)
    C(NFS4ERR_BADTYPE) C(NFS4ERR_DELAY) C(NFS4ERR_NOT_SAME)
    C(NFS4ERR_NOFILEHANDLE) C(NFS4ERR_STALE_CLIENTID) C(NFS4ERR_BADXDR)
    C(NFS4ERR_BADOWNER) C(NFS4ERR_BADCHAR) C(NFS4ERR_BADNAME)
    C(NFS4ERR_OP_ILLEGAL) C(NFS4ERR_MINOR_VERS_MISMATCH) C(NFS4ERR_SYMLINK)
    C(NFS4ERR_ATTRNOTSUPP) C(NFS4ERR_CLID_INUSE) C(NFS4ERR_BADSESSION)
    C(NFS4ERR_BADSLOT) C(NFS4ERR_SEQ_MISORDERED) C(NFS4ERR_SEQUENCE_POS)
    C(NFS4ERR_OP_NOT_IN_SESSION) C(NFS4ERR_NOT_ONLY_OP)
    C(NFS4ERR_REP_TOO_BIG) C(NFS4ERR_REQ_TOO_BIG) C(NFS4ERR_TOO_MANY_OPS)
    C(NFS4ERR_SEQ_FALSE_RETRY) C(NFS4ERR_RETRY_UNCACHED_REP)
    C(NFS4ERR_CLIENTID_BUSY) C(NFS4ERR_BAD_STATEID)
    C(NFS4ERR_COMPLETE_ALREADY) C(NFS4ERR_REP_TOO_BIG_TO_CACHE)
    C(NFS4ERR_DENIED) C(NFS4ERR_EXPIRED) C(NFS4ERR_LOCKED) C(NFS4ERR_GRACE)
    C(NFS4ERR_SHARE_DENIED) C(NFS4ERR_STALE_STATEID) C(NFS4ERR_OLD_STATEID)
    C(NFS4ERR_LOCK_RANGE) C(NFS4ERR_NO_GRACE) C(NFS4ERR_LOCKS_HELD)
    C(NFS4ERR_OPENMODE) C(NFS4ERR_BAD_RANGE) C(NFS4ERR_WRONG_TYPE)
    C(NFS4ERR_RECLAIM_BAD) C(NFS4ERR_BAD_SEQID) C(NFS4ERR_ADMIN_REVOKED)
    C(NFS4ERR_LAYOUTUNAVAILABLE) C(NFS4ERR_LAYOUTTRYLATER)
    C(NFS4ERR_RECALLCONFLICT) C(NFS4ERR_BADIOMODE) C(NFS4ERR_BADLAYOUT)
    C(NFS4ERR_UNKNOWN_LAYOUTTYPE) C(NFS4ERR_NOMATCHING_LAYOUT)
#undef C
    default:
      return "NFS4ERR_?";
  }
}

}  // namespace nfs41d
