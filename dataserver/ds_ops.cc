#include "dataserver/ds_ops.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>

#include "dataserver/ds_server.h"
#include "nfs41d/attrs.h"
#include "nfs41d/ops.h"
#include "nfs41d/status_map.h"
#include "rpc/log.h"
#include "rpc/xdr_codec.h"

namespace dataserver {

using nfs41d::CompoundState;

namespace {

constexpr uint64_t kMaxOffset = std::numeric_limits<int64_t>::max();

DsContext& Ctx(CompoundState& st) { return static_cast<DsContext&>(st.server); }

// ------------------------------------------------------------- sessions

// RFC 8881 §18.35, §13.1: a data server answers with the data server role
// only. What the client asked for (USE_NON_PNFS, USE_PNFS_MDS) is not
// echoed: this server cannot be used as an MDS or a plain NFS server, and
// the client learns so from eir_flags (§18.35.3: the server sets the roles
// it has).
nfsstat4 DsExchangeId(CompoundState& st, const EXCHANGE_ID4args& args,
                      EXCHANGE_ID4res& res) {
  nfsstat4 s = nfs41d::OpExchangeId(st, args, res);
  if (s != NFS4_OK) return s;
  EXCHANGE_ID4resok& ok = res.EXCHANGE_ID4res_u.eir_resok4;
  ok.eir_flags = (ok.eir_flags & EXCHGID4_FLAG_CONFIRMED_R) |
                 EXCHGID4_FLAG_USE_PNFS_DS;
  if (ok.eir_server_impl_id.eir_server_impl_id_len == 1) {
    static const char kName[] = "dataserver 0.1";
    nfs_impl_id4& impl = ok.eir_server_impl_id.eir_server_impl_id_val[0];
    impl.nii_name.utf8string_len = sizeof kName - 1;
    impl.nii_name.utf8string_val = st.arena.Copy(kName);
  }
  return NFS4_OK;
}

// RFC 8881 §18.36.3: the server may decline the back channel. A data server
// sends no callbacks (CB_LAYOUTRECALL and the rest come from the MDS), so
// it never takes one; the client sees CONN_BACK_CHAN clear in csr_flags.
nfsstat4 DsCreateSession(CompoundState& st, const CREATE_SESSION4args& args,
                         CREATE_SESSION4res& res) {
  CREATE_SESSION4args a = args;
  a.csa_flags &= ~CREATE_SESSION4_FLAG_CONN_BACK_CHAN;
  return nfs41d::OpCreateSession(st, a, res);
}

// RFC 8881 §18.46.3: SEQ4_STATUS_CB_PATH_DOWN(_SESSION) say callbacks
// cannot reach the client; with no back channel by design that would only
// send the client into needless recovery (BIND_CONN_TO_SESSION, new
// sessions).
nfsstat4 DsSequence(CompoundState& st, const SEQUENCE4args& args,
                    SEQUENCE4res& res) {
  nfsstat4 s = nfs41d::OpSequence(st, args, res);
  if (s == NFS4_OK) {
    res.SEQUENCE4res_u.sr_resok4.sr_status_flags &=
        ~(SEQ4_STATUS_CB_PATH_DOWN | SEQ4_STATUS_CB_PATH_DOWN_SESSION);
  }
  return s;
}

// RFC 8881 §18.34: the fore channel only ("or both" lets the server pick);
// a request for the back channel alone cannot be granted here.
nfsstat4 DsBindConnToSession(CompoundState& st,
                             const BIND_CONN_TO_SESSION4args& args,
                             BIND_CONN_TO_SESSION4res& res) {
  if (args.bctsa_dir == CDFC4_BACK) return NFS4ERR_INVAL;
  BIND_CONN_TO_SESSION4args a = args;
  if (a.bctsa_dir == CDFC4_BACK_OR_BOTH) a.bctsa_dir = CDFC4_FORE_OR_BOTH;
  return nfs41d::OpBindConnToSession(st, a, res);
}

// Stripe-file helpers report ns::Status; ops answer nfsstat4.
nfsstat4 ToNfs(const ns::Status& s) {
  return s.ok() ? NFS4_OK : nfs41d::ToNfsStat(s);
}

// ------------------------------------------------------------- data path

// PUTFH (RFC 8881 §18.19) on a data server: only handles the MDS signed
// with the pNFS key (docs/pnfs.md). Anything else, including the MDS's own
// handles (keyed by its private fh.key), is NFS4ERR_BADHANDLE.
nfsstat4 DsPutFh(CompoundState& st, const PUTFH4args& args, PUTFH4res&) {
  std::optional<nfs41d::FileHandle> fh = st.server.fh->Decode(
      std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(args.object.nfs_fh4_val),
          args.object.nfs_fh4_len));
  if (!fh) return NFS4ERR_BADHANDLE;
  st.current_fh = *fh;
  return NFS4_OK;
}

// READ (RFC 8881 §18.22) of the stripe file at the file's logical offsets.
// Holes read as zeros; a read at or past the stripe file's end is short
// with eof set: the client then treats the rest as zeros (the file's real
// size is the MDS's, §13.10). The stateid is not checked (§13.9.1). A
// full read asks the kernel for the stripe file's next data
// (PrefetchStripe): sparse stripe files defeat its own readahead.
nfsstat4 DsRead(CompoundState& st, const READ4args& args, READ4res& res) {
  const ns::InodeId ino = st.current_fh->ino;
  READ4resok& ok = res.READ4res_u.resok4;
  uint64_t count = std::min<uint64_t>(args.count, st.server.max_io);
  // §18.22.3: a server may return fewer bytes than asked. A reply over the
  // session's ca_maxresponsesize would be NFS4ERR_REP_TOO_BIG instead, so
  // a client that asks for its whole response size (1 MiB against a 1 MiB
  // session) gets a short read and continues, as after any short read.
  if (st.session) {
    constexpr uint64_t kReplyHeadroom = 4096;  // COMPOUND, SEQUENCE, PUTFH
    const uint64_t max = st.session->fore().ca_maxresponsesize;
    const uint64_t fit = max > 2 * kReplyHeadroom ? max - kReplyHeadroom : max / 2;
    count = std::min(count, fit);
  }
  if (count == 0 || args.offset >= kMaxOffset) {
    StripeStat ss;
    if (nfsstat4 e = ToNfs(StatStripe(Ctx(st), ino, &ss)); e) return e;
    ok.eof = args.offset >= ss.size;
    ok.data.data_len = 0;
    ok.data.data_val = st.arena.Bytes(0);
    return NFS4_OK;
  }
  // Only the bytes read are sent: no need to zero the buffer first.
  char* buf = st.arena.Uninitialized(count);
  ns::Result<size_t> r = st.server.data->Read(
      ino, args.offset,
      std::span<uint8_t>(reinterpret_cast<uint8_t*>(buf), count));
  if (!r.ok()) {
    rpc::log::Error("dataserver: {}", r.status().ToString());
    return nfs41d::ToNfsStat(r.status());
  }
  ok.eof = *r < count;
  ok.data.data_len = static_cast<u_int>(*r);
  ok.data.data_val = buf;
  if (!ok.eof) PrefetchStripe(Ctx(st), ino, args.offset + *r, *r);
  return NFS4_OK;
}

// WRITE (RFC 8881 §18.32) into the stripe file. UNSTABLE4 stays in the page
// cache until COMMIT; DATA_SYNC4 / FILE_SYNC4 are on disk (with the file's
// directory entry) before the reply, which says DATA_SYNC4 for both: the
// file's metadata (size, mtime) is not here but on the MDS, which learns it
// from the client's LAYOUTCOMMIT (§12.5.4, §18.42). A data server answering
// FILE_SYNC4 claims that metadata is stable too, and the Linux files layout
// client then sends no LAYOUTCOMMIT at all (filelayout_set_layoutcommit):
// a small file, written in one FILE_SYNC4 WRITE at close, kept size 0 on
// the MDS. After DATA_SYNC4 it sends LAYOUTCOMMIT and no COMMIT. The
// verifier is this run's. An UNSTABLE4 WRITE starts the range's writeback
// at once (StartStripeWriteback): a client streaming a big file then finds
// its COMMIT nearly free instead of waiting for the whole file's flush.
// Whole aligned WRITEs skip the page cache (O_DIRECT, DataServerOptions::
// direct_write_min); that changes no promise above: only the fsync of
// COMMIT or of a stable WRITE makes bytes durable.
nfsstat4 DsWrite(CompoundState& st, const WRITE4args& args, WRITE4res& res) {
  const ns::InodeId ino = st.current_fh->ino;
  const uint64_t len = args.data.data_len;
  if (args.offset > kMaxOffset || len > kMaxOffset - args.offset) {
    return NFS4ERR_FBIG;
  }
  nfs41d::data::Stability stab;
  switch (args.stable) {
    case UNSTABLE4: stab = nfs41d::data::Stability::kUnstable; break;
    case DATA_SYNC4: stab = nfs41d::data::Stability::kDataSync; break;
    case FILE_SYNC4: stab = nfs41d::data::Stability::kFileSync; break;
    default: return NFS4ERR_INVAL;
  }
  if (len > 0) {
    ns::Status s = st.server.data->Write(
        ino, args.offset,
        std::span<const uint8_t>(
            reinterpret_cast<const uint8_t*>(args.data.data_val), len),
        stab);
    if (!s.ok()) {
      rpc::log::Error("dataserver: {}", s.ToString());
      return nfs41d::ToNfsStat(s);
    }
    if (args.stable != UNSTABLE4) {
      if (nfsstat4 e = ToNfs(SyncStripeDirs(Ctx(st), ino)); e) return e;
    } else {
      StartStripeWriteback(Ctx(st), ino, args.offset, len);
    }
  }
  WRITE4resok& ok = res.WRITE4res_u.resok4;
  ok.count = static_cast<count4>(len);
  ok.committed = args.stable == UNSTABLE4 ? UNSTABLE4 : DATA_SYNC4;
  std::memcpy(ok.writeverf, st.server.write_verifier.data(),
              NFS4_VERIFIER_SIZE);
  return NFS4_OK;
}

// COMMIT (RFC 8881 §18.3): the whole stripe file is synced whatever the
// range (a range sync is not cheaper on a local file system), then its
// directory entries.
nfsstat4 DsCommit(CompoundState& st, const COMMIT4args& args,
                  COMMIT4res& res) {
  if (args.count != 0 &&
      args.offset > std::numeric_limits<uint64_t>::max() - args.count) {
    return NFS4ERR_INVAL;
  }
  const ns::InodeId ino = st.current_fh->ino;
  if (ns::Status s = st.server.data->Sync(ino, nfs41d::data::Stability::kFileSync);
      !s.ok()) {
    rpc::log::Error("dataserver: {}", s.ToString());
    return nfs41d::ToNfsStat(s);
  }
  if (nfsstat4 e = ToNfs(SyncStripeDirs(Ctx(st), ino)); e) return e;
  std::memcpy(res.COMMIT4res_u.resok4.writeverf,
              st.server.write_verifier.data(), NFS4_VERIFIER_SIZE);
  return NFS4_OK;
}

// ---------------------------------------------------------------- GETATTR

// The attributes a data server answers (RFC 8881 §5.6: every REQUIRED one,
// and of the RECOMMENDED ones what a stripe file has). A stripe file is a
// regular file named by the handle; its size, space and times are the
// stripe file's own (the file's are the MDS's, §13.10).
nfs41d::AttrBits DsSupportedAttrs() {
  nfs41d::AttrBits b;
  for (uint32_t a :
       {FATTR4_SUPPORTED_ATTRS, FATTR4_TYPE, FATTR4_FH_EXPIRE_TYPE,
        FATTR4_CHANGE, FATTR4_SIZE, FATTR4_LINK_SUPPORT,
        FATTR4_SYMLINK_SUPPORT, FATTR4_NAMED_ATTR, FATTR4_FSID,
        FATTR4_UNIQUE_HANDLES, FATTR4_LEASE_TIME, FATTR4_RDATTR_ERROR,
        FATTR4_FILEHANDLE, FATTR4_FILEID, FATTR4_SPACE_USED,
        FATTR4_TIME_METADATA, FATTR4_TIME_MODIFY,
        FATTR4_SUPPATTR_EXCLCREAT}) {
    b.Set(a);
  }
  return b;
}

void PutBits(rpc::XdrEncoder& e, const nfs41d::AttrBits& b) {
  uint32_t n = 3;
  while (n > 0 && b.w[n - 1] == 0) --n;
  e.PutUint32(n);
  for (uint32_t i = 0; i < n; ++i) e.PutUint32(b.w[i]);
}

void PutTime(rpc::XdrEncoder& e, int64_t ns) {
  int64_t sec = ns / 1000000000;
  int64_t nsec = ns % 1000000000;
  if (nsec < 0) {
    nsec += 1000000000;
    --sec;
  }
  e.PutUint64(static_cast<uint64_t>(sec));
  e.PutUint32(static_cast<uint32_t>(nsec));
}

nfsstat4 DsGetAttr(CompoundState& st, const GETATTR4args& args,
                   GETATTR4res& res) {
  const nfs41d::FileHandle& fh = *st.current_fh;
  StripeStat ss;
  if (nfsstat4 e = ToNfs(StatStripe(Ctx(st), fh.ino, &ss)); e) return e;
  const nfs41d::AttrBits req =
      nfs41d::AttrBits::From(args.attr_request) & DsSupportedAttrs();
  rpc::XdrEncoder e(256);
  // Values in attribute-number order (§3.3.7 fattr4).
  for (uint32_t a = 0; a < 96; ++a) {
    if (!req.Has(a)) continue;
    switch (a) {
      case FATTR4_SUPPORTED_ATTRS: PutBits(e, DsSupportedAttrs()); break;
      case FATTR4_TYPE: e.PutUint32(NF4REG); break;
      case FATTR4_FH_EXPIRE_TYPE: e.PutUint32(FH4_PERSISTENT); break;
      // ctime in ns changes with every write and truncate of the stripe
      // file (to the file system's timestamp granularity).
      case FATTR4_CHANGE: e.PutUint64(static_cast<uint64_t>(ss.ctime_ns)); break;
      case FATTR4_SIZE: e.PutUint64(ss.size); break;
      case FATTR4_LINK_SUPPORT: e.PutUint32(0); break;
      case FATTR4_SYMLINK_SUPPORT: e.PutUint32(0); break;
      case FATTR4_NAMED_ATTR: e.PutUint32(0); break;
      case FATTR4_FSID:  // one file system: the stripe files
        e.PutUint64(0);
        e.PutUint64(0);
        break;
      case FATTR4_UNIQUE_HANDLES: e.PutUint32(1); break;
      case FATTR4_LEASE_TIME:
        e.PutUint32(st.server.state->options().lease_seconds);
        break;
      case FATTR4_RDATTR_ERROR: e.PutUint32(NFS4_OK); break;
      case FATTR4_FILEHANDLE: e.PutOpaque(st.server.fh->Encode(fh)); break;
      case FATTR4_FILEID: e.PutUint64(fh.ino); break;
      case FATTR4_SPACE_USED: e.PutUint64(ss.space_used); break;
      case FATTR4_TIME_METADATA: PutTime(e, ss.ctime_ns); break;
      case FATTR4_TIME_MODIFY: PutTime(e, ss.mtime_ns); break;
      case FATTR4_SUPPATTR_EXCLCREAT: PutBits(e, nfs41d::AttrBits{}); break;
      default: break;
    }
  }
  fattr4& out = res.GETATTR4res_u.resok4.obj_attributes;
  out.attrmask = req.ToBitmap(st.arena);
  const std::vector<uint8_t> vals = e.Take();
  out.attr_vals.attrlist4_len = static_cast<u_int>(vals.size());
  out.attr_vals.attrlist4_val = st.arena.Bytes(vals.size());
  std::memcpy(out.attr_vals.attrlist4_val, vals.data(), vals.size());
  return NFS4_OK;
}

nfs41d::OpTable BuildDsTable() {
  using namespace nfs41d;
  OpTable t = BaseOpTable();
#define OP(op, handler, am, rm, fl)                  \
  t[op].fn = &Adapt<&ArgU::am, &ResU::rm, handler>; \
  t[op].flags |= (fl);
  OP(OP_EXCHANGE_ID, DsExchangeId, opexchange_id, opexchange_id,
     kSessionless | kModifiesState | kCacheThis)
  OP(OP_CREATE_SESSION, DsCreateSession, opcreate_session, opcreate_session,
     kSessionless | kModifiesState | kCacheThis)
  OP(OP_DESTROY_SESSION, OpDestroySession, opdestroy_session,
     opdestroy_session, kSessionless | kModifiesState | kCacheThis)
  OP(OP_DESTROY_CLIENTID, OpDestroyClientId, opdestroy_clientid,
     opdestroy_clientid, kSessionless | kModifiesState | kCacheThis)
  OP(OP_BIND_CONN_TO_SESSION, DsBindConnToSession, opbind_conn_to_session,
     opbind_conn_to_session, kSessionless | kOnlyOp | kModifiesState)
  OP(OP_SEQUENCE, DsSequence, opsequence, opsequence, kModifiesState)
  OP(OP_RECLAIM_COMPLETE, OpReclaimComplete, opreclaim_complete,
     opreclaim_complete, kModifiesState | kCacheThis)
  OP(OP_PUTFH, DsPutFh, opputfh, opputfh, 0)
  OP(OP_GETATTR, DsGetAttr, opgetattr, opgetattr, 0)
  OP(OP_READ, DsRead, opread, opread, 0)
  OP(OP_WRITE, DsWrite, opwrite, opwrite, kModifiesState | kCacheThis)
  OP(OP_COMMIT, DsCommit, opcommit, opcommit, kModifiesState)
#undef OP
  return t;
}

}  // namespace

const nfs41d::OpTable& DsOpTable() {
  static const nfs41d::OpTable table = BuildDsTable();
  return table;
}

}  // namespace dataserver
