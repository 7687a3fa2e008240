// OPEN, OPEN_DOWNGRADE, CLOSE (RFC 8881 §18.16, §18.18, §18.2): share
// reservations and open stateids on state::OpenStateTable, files created
// through the Namespace. No delegations are granted.

#include <cstring>
#include <string>

#include "nfs41d/export_ops.h"
#include "nfs41d/ops.h"
#include "nfs41d/ops_util.h"
#include "nfs41d/pnfs_mds.h"
#include "nfs41d/status_map.h"

namespace nfs41d {
namespace {

constexpr uint32_t kAccessBits = OPEN4_SHARE_ACCESS_BOTH;
constexpr uint32_t kWantBits = OPEN4_SHARE_ACCESS_WANT_DELEG_MASK |
                               OPEN4_SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL |
                               OPEN4_SHARE_ACCESS_WANT_PUSH_DELEG_WHEN_UNCONTENDED;

// share_access / share_deny as OPEN and OPEN_DOWNGRADE take them:
// NFS4ERR_INVAL for no access, unknown bits (§18.16.3).
nfsstat4 CheckShare(uint32_t access, uint32_t deny) {
  if ((access & kAccessBits) == 0) return NFS4ERR_INVAL;
  if (access & ~(kAccessBits | kWantBits)) return NFS4ERR_INVAL;
  if (deny & ~OPEN4_SHARE_DENY_BOTH) return NFS4ERR_INVAL;
  return NFS4_OK;
}

// The verifier of an exclusive create, kept in the new file's atime until
// the client sets its real times (the usual place, §18.16.3): 63 bits of
// the 8 bytes, so the time stays positive.
ns::TimeNs VerifierTime(const verifier4 v) {
  uint64_t x = 0;
  for (int i = 0; i < NFS4_VERIFIER_SIZE; ++i) {
    x = (x << 8) | static_cast<uint8_t>(v[i]);
  }
  return static_cast<ns::TimeNs>(x & 0x7fffffffffffffffull);
}

nfsstat4 TypeStatus(const ns::Attr& a) {
  switch (a.type) {
    case ns::FileType::kRegular: return NFS4_OK;
    case ns::FileType::kDirectory: return NFS4ERR_ISDIR;
    case ns::FileType::kSymlink: return NFS4ERR_SYMLINK;
    default: return NFS4ERR_WRONG_TYPE;
  }
}

// Attributes given with a create: mode at creation, owner/group/times
// after it (as CREATE does). Returns what was set.
AttrBits ApplyCreateAttrs(CompoundState& st, const DecodedSetAttrs& d,
                          ns::InodeId ino) {
  AttrBits applied;
  if (d.req.mode) applied.Set(FATTR4_MODE);
  ns::SetAttrRequest rest = d.req;
  rest.mode.reset();
  rest.size.reset();  // a new file is empty whatever was asked
  if (d.req.size && *d.req.size == 0) applied.Set(FATTR4_SIZE);
  if (rest.uid || rest.gid || rest.atime || rest.mtime || rest.atime_now ||
      rest.mtime_now || d.acl) {
    // Not the attributes the create returned any more.
    if (st.created) st.created->attr_final = false;
  }
  if (rest.uid || rest.gid || rest.atime || rest.mtime || rest.atime_now ||
      rest.mtime_now) {
    if (st.server.ns->SetAttr(st.cred, ino, rest).ok()) {
      for (uint32_t a : {FATTR4_OWNER, FATTR4_OWNER_GROUP,
                         FATTR4_TIME_ACCESS_SET, FATTR4_TIME_MODIFY_SET}) {
        if (d.set.Has(a)) applied.Set(a);
      }
    }
  }
  if (d.acl && st.server.ns->SetAcl(st.cred, ino, *d.acl).ok()) {
    applied.Set(FATTR4_ACL);
  }
  return applied;
}

// OPEN4_CREATE under CLAIM_NULL (§18.16.3): finds or creates `name` in
// `dir`. *created says whether this call made the file; *truncate whether
// an UNCHECKED4 create of an existing file asked for size 0.
nfsstat4 OpenCreate(CompoundState& st, const createhow4& how,
                    const FileHandle& dir, const std::string& name,
                    ns::Attr* file, bool* created, bool* truncate,
                    AttrBits* attrset) {
  DecodedSetAttrs d;
  const bool exclusive = how.mode == EXCLUSIVE4 || how.mode == EXCLUSIVE4_1;
  std::optional<ns::TimeNs> verf;
  switch (how.mode) {
    case UNCHECKED4:
    case GUARDED4:
      if (nfsstat4 e = DecodeSetAttrs(how.createhow4_u.createattrs, &d,
                                      st.server.idmap);
          e) {
        return e;
      }
      break;
    case EXCLUSIVE4:
      verf = VerifierTime(how.createhow4_u.createverf);
      break;
    case EXCLUSIVE4_1:
      if (nfsstat4 e = DecodeSetAttrs(how.createhow4_u.ch_createboth.cva_attrs,
                                      &d, st.server.idmap);
          e) {
        return e;
      }
      // §18.16.3: times cannot come with an exclusive create (the
      // verifier lives there); only suppattr_exclcreat attributes.
      if (d.set.Has(FATTR4_TIME_ACCESS_SET) ||
          d.set.Has(FATTR4_TIME_MODIFY_SET) || d.set.Has(FATTR4_ACL)) {
        return NFS4ERR_INVAL;
      }
      verf = VerifierTime(how.createhow4_u.ch_createboth.cva_verf);
      break;
    default:
      return NFS4ERR_INVAL;
  }
  ns::Namespace& fs = *st.server.ns;
  const uint32_t mode = d.req.mode.value_or(0644);
  // An exclusive create's verifier goes in with the file (one commit).
  ns::CreateOptions co;
  co.atime = verf;
  // Creates the file; on success fills the results and the caches.
  auto create = [&]() -> ns::Result<ns::Attr> {
    const CacheEpochs epochs = CacheEpochsNow(st);
    std::optional<ns::Attr> dir_after;
    ns::Result<ns::Attr> made =
        fs.Create(st.cred, dir.ino, name, mode, co, &dir_after);
    if (!made.ok()) return made;
    *file = *made;
    *created = true;
    NoteCreated(st, dir.ino, name, *made, epochs);
    NoteDirAfter(st, std::move(dir_after), epochs.attrs);
    *attrset = ApplyCreateAttrs(st, d, made->ino);
    return made;
  };
  // Two tries: a concurrent create of the same name between our lookup
  // and our create (or a REMOVE between our failed create and our lookup)
  // makes the second try find it (or create it).
  for (int attempt = 0; attempt < 2; ++attempt) {
    // A name this server does not know (the usual OPEN4_CREATE: a new
    // file) is created at once, and the create's failure says whether it
    // exists, which §18.16.3 then decides on (UNCHECKED4 opens it,
    // GUARDED4 fails, EXCLUSIVE4* compare the verifier): one transaction
    // instead of a lookup and then the create. A
    // name in the directory cache exists (or did): looked up first, so
    // that opening an existing file never waits for a failed commit.
    std::optional<ns::Status> create_failed;
    const bool known = st.server.dirs && st.server.dirs->Get(dir.ino, name);
    if (!known) {
      ns::Result<ns::Attr> made = create();
      if (made.ok()) return NFS4_OK;
      // Exists: opened below (or NFS4ERR_EXIST). AccessDenied: the caller
      // may not add names here but may still open an existing file.
      if (!made.status().IsExists() && !made.status().IsAccessDenied()) {
        if (made.status().IsNotDir()) return NotDirStatus(st, dir);
        return ToNfsStat(made.status());
      }
      create_failed = made.status();
    }
    ns::Result<ns::Attr> found = fs.Lookup(st.cred, dir.ino, name);
    if (found.ok()) {
      if (how.mode == GUARDED4) return NFS4ERR_EXIST;
      if (exclusive) {
        // A retry of our own exclusive create succeeds (§18.16.3).
        if (found->type != ns::FileType::kRegular || found->atime != *verf) {
          return NFS4ERR_EXIST;
        }
        *file = *found;
        *created = true;  // the same create: no access check
        return NFS4_OK;
      }
      *file = *found;
      *truncate = d.req.size && *d.req.size == 0;
      if (*truncate) attrset->Set(FATTR4_SIZE);
      return NFS4_OK;
    }
    if (!found.status().IsNotFound()) {
      if (found.status().IsNotDir()) return NotDirStatus(st, dir);
      return ToNfsStat(found.status());
    }
    if (create_failed) {
      // Not there: a denied create stands; one that found the name lost
      // it to a concurrent REMOVE or RENAME since: try again.
      if (create_failed->IsAccessDenied()) return ToNfsStat(*create_failed);
      continue;
    }
    ns::Result<ns::Attr> made = create();
    if (!made.ok()) {
      if (made.status().IsExists()) continue;
      return ToNfsStat(made.status());
    }
    return NFS4_OK;
  }
  return NFS4ERR_DELAY;  // the name came and went twice: let the client retry
}

void SetDelegationNone(uint32_t share_access, open_delegation4* d) {
  const uint32_t want = share_access & OPEN4_SHARE_ACCESS_WANT_DELEG_MASK;
  if (want == OPEN4_SHARE_ACCESS_WANT_NO_PREFERENCE) {
    d->delegation_type = OPEN_DELEGATE_NONE;
    return;
  }
  // §18.16.3: a client that states a want learns why it got none.
  d->delegation_type = OPEN_DELEGATE_NONE_EXT;
  open_none_delegation4& n = d->open_delegation4_u.od_whynone;
  switch (want) {
    case OPEN4_SHARE_ACCESS_WANT_NO_DELEG:
      n.ond_why = WND4_NOT_WANTED;
      break;
    case OPEN4_SHARE_ACCESS_WANT_CANCEL:
      n.ond_why = WND4_CANCELLED;
      break;
    default:
      // No delegations at all on this server.
      n.ond_why = WND4_RESOURCE;
      n.open_none_delegation4_u.ond_server_will_signal_avail = FALSE;
      break;
  }
}

}  // namespace

// RFC 8881 §18.16.
nfsstat4 OpOpen(CompoundState& st, const OPEN4args& args, OPEN4res& res) {
  if (nfsstat4 e = CheckShare(args.share_access, args.share_deny); e) return e;
  const uint32_t access = args.share_access & kAccessBits;
  const open_claim_type4 claim = args.claim.claim;
  switch (claim) {
    case CLAIM_NULL:
    case CLAIM_FH:
    case CLAIM_PREVIOUS:
      // §8.4.2.1, §8.4.3, §18.51.3: only reclaims while the server is in
      // its grace period, and only by clients that may reclaim.
      if (nfsstat4 e = st.server.state->CheckClaim(
              *st.session->client(), claim == CLAIM_PREVIOUS);
          e) {
        return e;
      }
      break;
    case CLAIM_DELEGATE_CUR:
    case CLAIM_DELEGATE_PREV:
    case CLAIM_DELEG_CUR_FH:
    case CLAIM_DELEG_PREV_FH:
      return NFS4ERR_NOTSUPP;  // no delegations are ever granted
    default:
      return NFS4ERR_INVAL;
  }
  const bool create = args.openhow.opentype == OPEN4_CREATE;
  if (create && claim != CLAIM_NULL) return NFS4ERR_INVAL;
  // A read-only export (or the pseudo fs) refuses what would write:
  // creating, or opening for write (RFC 8881 §18.16.4, NFS4ERR_ROFS).
  if ((create || (access & OPEN4_SHARE_ACCESS_WRITE) != 0) &&
      !ExportWritable(st)) {
    return NFS4ERR_ROFS;
  }

  ns::Attr file;
  bool created = false, truncate = false;
  AttrBits attrset;
  change_info4 cinfo{};
  if (claim == CLAIM_NULL) {
    std::string name;
    if (nfsstat4 e = CheckName(args.claim.open_claim4_u.file, &name); e) {
      return e;
    }
    const FileHandle dir = *st.current_fh;
    ns::Attr before;
    if (nfsstat4 e = AttrOf(st, dir, &before); e) return e;
    if (before.type != ns::FileType::kDirectory) return NotDirStatus(st, dir);
    if (create) {
      if (nfsstat4 e = OpenCreate(st, args.openhow.openflag4_u.how, dir, name,
                                  &file, &created, &truncate, &attrset);
          e) {
        return e;
      }
    } else {
      ns::Result<ns::Attr> r = st.server.ns->Lookup(st.cred, dir.ino, name);
      if (!r.ok()) return ToNfsStat(r.status());
      file = *r;
    }
    if (created) {
      cinfo = ChangeInfo(before.change, st, dir);
    } else {
      // No name was added: the directory is as it was (§18.16.4 asks only
      // for before and after), and what the cache holds of it stays.
      cinfo.atomic = TRUE;
      cinfo.before = cinfo.after = NfsChange(before.change, 0);
      st.reread.push_back(dir.ino);
    }
    // A file's first LAYOUTGET stripes it as its directory's tags say, and
    // files do not record their directory (Attr::parent is 0).
    if (st.server.pnfs) st.server.pnfs->NoteDirectory(file.ino, dir.ino);
  } else {
    // CLAIM_FH, CLAIM_PREVIOUS: the current filehandle is the file.
    if (nfsstat4 e = AttrOf(st, *st.current_fh, &file); e) return e;
    cinfo.atomic = TRUE;
    cinfo.before = cinfo.after = NfsChange(file.change, 0);
  }
  if (nfsstat4 e = TypeStatus(file); e) return e;
  // Mode bits or the ACL (§18.16.3: the server checks access at OPEN;
  // §6.2.1). The creator may open its new file whatever mode it gave it
  // (POSIX O_CREAT).
  if (!created) {
    const uint32_t rights = FileRights(st, file);
    if (((access & OPEN4_SHARE_ACCESS_READ) && !(rights & 4)) ||
        ((access & OPEN4_SHARE_ACCESS_WRITE) && !(rights & 2))) {
      return NFS4ERR_ACCESS;
    }
  }
  if (truncate && !(access & OPEN4_SHARE_ACCESS_WRITE)) return NFS4ERR_INVAL;

  std::string owner(args.owner.owner.owner_val, args.owner.owner.owner_len);
  stateid4 sid{};
  if (nfsstat4 e = st.server.state->opens().Open(
          ClientOf(st), owner, file.ino, access, args.share_deny, file.size,
          &sid);
      e) {
    return e;
  }
  if (truncate) {
    if (nfsstat4 e = PrepareTruncate(st, sid, file, 0); e) return e;
    ns::SetAttrRequest q;
    q.size = 0;
    ns::Result<ns::Attr> r = st.server.ns->SetAttr(st.cred, file.ino, q);
    if (!r.ok()) return ToNfsStat(r.status());
    FinishTruncate(st, file.ino, 0);
  }

  OPEN4resok& ok = res.OPEN4res_u.resok4;
  ok.stateid = sid;
  ok.cinfo = cinfo;
  // POSIX byte-range locks; an unlinked open file keeps its data until the
  // last close (§18.16.3).
  ok.rflags = OPEN4_RESULT_LOCKTYPE_POSIX | OPEN4_RESULT_PRESERVE_UNLINKED;
  ok.attrset = attrset.ToBitmap(st.arena);
  SetDelegationNone(args.share_access, &ok.delegation);
  st.current_fh = MakeFh(st, file);
  st.current_stateid = sid;
  return NFS4_OK;
}

// RFC 8881 §18.18.
nfsstat4 OpOpenDowngrade(CompoundState& st, const OPEN_DOWNGRADE4args& args,
                         OPEN_DOWNGRADE4res& res) {
  if (nfsstat4 e = CheckShare(args.share_access, args.share_deny); e) return e;
  stateid4 sid;
  if (nfsstat4 e = ResolveStateid(st, args.open_stateid, &sid); e) return e;
  state::StateInfo info;
  if (nfsstat4 e = st.server.state->opens().Find(ClientOf(st), sid, &info);
      e) {
    return e;
  }
  if (info.ino != st.current_fh->ino) return NFS4ERR_BAD_STATEID;
  stateid4 out{};
  if (nfsstat4 e = st.server.state->opens().Downgrade(
          ClientOf(st), sid, args.share_access & kAccessBits, args.share_deny,
          &out);
      e) {
    return e;
  }
  res.OPEN_DOWNGRADE4res_u.resok4.open_stateid = out;
  st.current_stateid = out;
  return NFS4_OK;
}

// RFC 8881 §18.2.
nfsstat4 OpClose(CompoundState& st, const CLOSE4args& args, CLOSE4res& res) {
  stateid4 sid;
  if (nfsstat4 e = ResolveStateid(st, args.open_stateid, &sid); e) return e;
  state::StateInfo info;
  state::OpenStateTable& opens = st.server.state->opens();
  if (nfsstat4 e = opens.Find(ClientOf(st), sid, &info); e) return e;
  if (info.ino != st.current_fh->ino ||
      info.kind != state::StateInfo::Kind::kOpen) {
    return NFS4ERR_BAD_STATEID;
  }
  std::optional<state::FileRelease> release;
  if (nfsstat4 e = opens.Close(ClientOf(st), sid, &release); e) return e;
  // A CLOSE that wrote nothing back (or stored what it wrote in the
  // attribute cache) leaves the file's cached attributes true: the stat
  // that follows a create needs no database read.
  if (!release || ReleaseFile(st.server, *release)) {
    st.reread.push_back(info.ino);
  }
  // §18.2.4: the stateid CLOSE returns is of no use; NFSv4.1 servers
  // SHOULD return the special invalid stateid (§8.2.3).
  stateid4 invalid{};
  invalid.seqid = NFS4_UINT32_MAX;
  res.CLOSE4res_u.open_stateid = invalid;
  st.current_stateid = invalid;
  return NFS4_OK;
}

}  // namespace nfs41d
