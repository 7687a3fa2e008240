// Byte-range locks: LOCK, LOCKT, LOCKU (RFC 8881 §18.10-§18.12, §9) on
// state::OpenStateTable. POSIX semantics (OPEN4_RESULT_LOCKTYPE_POSIX):
// a lock owner's ranges split, merge, upgrade and downgrade; the blocking
// lock types are served as non-blocking ones (the client polls, §9.6).
// Locks are advisory: READ and WRITE do not check them.

#include <limits>
#include <string>

#include "nfs41d/ops.h"
#include "nfs41d/ops_util.h"
#include "nfs41d/status_map.h"

namespace nfs41d {
namespace {

constexpr uint64_t kAll = std::numeric_limits<uint64_t>::max();

// [offset, offset+length) as an inclusive range; length all ones means to
// the end of file. §18.10.4: NFS4ERR_INVAL for a zero length or a range
// past 2^64-1. (NFS4ERR_BAD_RANGE is for servers that cannot lock the full
// 64-bit range; this one can.)
nfsstat4 Range(uint64_t offset, uint64_t length, uint64_t* end) {
  if (length == 0) return NFS4ERR_INVAL;
  if (length == kAll) {
    *end = kAll;
    return NFS4_OK;
  }
  if (length - 1 > kAll - offset) return NFS4ERR_INVAL;
  *end = offset + length - 1;
  return NFS4_OK;
}

nfsstat4 LockType(nfs_lock_type4 t, bool* write) {
  switch (t) {
    case READ_LT:
    case READW_LT:
      *write = false;
      return NFS4_OK;
    case WRITE_LT:
    case WRITEW_LT:
      *write = true;
      return NFS4_OK;
    default:
      return NFS4ERR_INVAL;
  }
}

void FillDenied(CompoundState& st, const state::LockDenied& d,
                LOCK4denied* out) {
  out->offset = d.offset;
  out->length = d.length;
  out->locktype = d.write ? WRITE_LT : READ_LT;
  out->owner.clientid = d.client;
  out->owner.owner.owner_len = static_cast<u_int>(d.owner.size());
  out->owner.owner.owner_val = st.arena.Copy(d.owner);
}

// The current filehandle must be a regular file (§18.10.4).
nfsstat4 LockableFile(CompoundState& st, ns::Attr* a) {
  if (nfsstat4 e = AttrOf(st, *st.current_fh, a); e) return e;
  if (a->type == ns::FileType::kDirectory) return NFS4ERR_ISDIR;
  if (a->type != ns::FileType::kRegular) return NFS4ERR_INVAL;
  return NFS4_OK;
}

}  // namespace

// RFC 8881 §18.10.
nfsstat4 OpLock(CompoundState& st, const LOCK4args& args, LOCK4res& res) {
  bool write;
  if (nfsstat4 e = LockType(args.locktype, &write); e) return e;
  uint64_t end;
  if (nfsstat4 e = Range(args.offset, args.length, &end); e) return e;
  // Reclaims only in a grace period, and nothing else during one (§8.4.2).
  if (args.reclaim != st.server.state->InGrace()) {
    return args.reclaim ? NFS4ERR_NO_GRACE : NFS4ERR_GRACE;
  }
  ns::Attr a;
  if (nfsstat4 e = LockableFile(st, &a); e) return e;
  state::OpenStateTable& opens = st.server.state->opens();
  const clientid4 client = ClientOf(st);
  state::LockDenied denied;
  stateid4 out{};
  nfsstat4 e;
  if (args.locker.new_lock_owner) {
    // open_to_lock_owner4; its seqids are ignored in NFSv4.1 (§18.10.3).
    const open_to_lock_owner4& o = args.locker.locker4_u.open_owner;
    stateid4 sid;
    if ((e = ResolveStateid(st, o.open_stateid, &sid))) return e;
    state::StateInfo info;
    if ((e = opens.Find(client, sid, &info))) return e;
    if (info.ino != a.ino || info.kind != state::StateInfo::Kind::kOpen) {
      return NFS4ERR_BAD_STATEID;
    }
    std::string owner(o.lock_owner.owner.owner_val,
                      o.lock_owner.owner.owner_len);
    e = opens.LockNew(client, sid, owner, write, args.offset, end, &out,
                      &denied);
  } else {
    stateid4 sid;
    if ((e = ResolveStateid(st, args.locker.locker4_u.lock_owner.lock_stateid,
                            &sid))) {
      return e;
    }
    state::StateInfo info;
    if ((e = opens.Find(client, sid, &info))) return e;
    if (info.ino != a.ino || info.kind != state::StateInfo::Kind::kLock) {
      return NFS4ERR_BAD_STATEID;
    }
    e = opens.LockExisting(client, sid, write, args.offset, end, &out,
                           &denied);
  }
  if (e == NFS4ERR_DENIED) {
    FillDenied(st, denied, &res.LOCK4res_u.denied);
    return e;
  }
  if (e) return e;
  res.LOCK4res_u.resok4.lock_stateid = out;
  st.current_stateid = out;
  return NFS4_OK;
}

// RFC 8881 §18.11. The owner's clientid is the session's (§18.11.3: the
// server ignores the one in lock_owner4 in NFSv4.1).
nfsstat4 OpLockT(CompoundState& st, const LOCKT4args& args, LOCKT4res& res) {
  bool write;
  if (nfsstat4 e = LockType(args.locktype, &write); e) return e;
  uint64_t end;
  if (nfsstat4 e = Range(args.offset, args.length, &end); e) return e;
  if (st.server.state->InGrace()) return NFS4ERR_GRACE;
  ns::Attr a;
  if (nfsstat4 e = LockableFile(st, &a); e) return e;
  std::string owner(args.owner.owner.owner_val, args.owner.owner.owner_len);
  state::LockDenied denied;
  nfsstat4 e = st.server.state->opens().TestLock(
      ClientOf(st), owner, a.ino, write, args.offset, end, &denied);
  if (e == NFS4ERR_DENIED) FillDenied(st, denied, &res.LOCKT4res_u.denied);
  return e;
}

// RFC 8881 §18.12.
nfsstat4 OpLockU(CompoundState& st, const LOCKU4args& args, LOCKU4res& res) {
  bool write;
  if (nfsstat4 e = LockType(args.locktype, &write); e) return e;
  uint64_t end;
  if (nfsstat4 e = Range(args.offset, args.length, &end); e) return e;
  stateid4 sid;
  if (nfsstat4 e = ResolveStateid(st, args.lock_stateid, &sid); e) return e;
  state::StateInfo info;
  state::OpenStateTable& opens = st.server.state->opens();
  if (nfsstat4 e = opens.Find(ClientOf(st), sid, &info); e) return e;
  if (info.ino != st.current_fh->ino ||
      info.kind != state::StateInfo::Kind::kLock) {
    return NFS4ERR_BAD_STATEID;
  }
  stateid4 out{};
  if (nfsstat4 e = opens.Unlock(ClientOf(st), sid, args.offset, end, &out);
      e) {
    return e;
  }
  res.LOCKU4res_u.lock_stateid = out;
  st.current_stateid = out;
  return NFS4_OK;
}

}  // namespace nfs41d
