#include "nfs41d/compound.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <exception>
#include <cstring>
#include <string_view>

#include "nfs41d/export_ops.h"
#include "nfs41d/op_table.h"
#include "nfs41d/ops.h"
#include "nfs41d/ops_util.h"
#include "nfs41d/sequence_xdr.h"
#include "nfs41d/status_map.h"
#include "rpc/connection.h"
#include "rpc/log.h"
#include "rpc/xdr_codec.h"

namespace nfs41d {

// ------------------------------------------------------------------ Arena

char* Arena::Bytes(size_t n) {
  blocks_.push_back(std::make_unique<char[]>(n == 0 ? 1 : n));
  return blocks_.back().get();
}

char* Arena::Uninitialized(size_t n) {
  blocks_.push_back(std::make_unique_for_overwrite<char[]>(n == 0 ? 1 : n));
  return blocks_.back().get();
}

char* Arena::Copy(std::string_view s) {
  char* p = Bytes(s.size());
  std::memcpy(p, s.data(), s.size());
  return p;
}

// ------------------------------------------------------- the dispatch table

OpTable BaseOpTable() {
  OpTable t{};
  // Names of every operation, implemented or not.
#define NAME(op) t[op].name = #op + 3;
  NAME(OP_ACCESS) NAME(OP_CLOSE) NAME(OP_COMMIT) NAME(OP_CREATE)
  NAME(OP_DELEGPURGE) NAME(OP_DELEGRETURN) NAME(OP_GETATTR) NAME(OP_GETFH)
  NAME(OP_LINK) NAME(OP_LOCK) NAME(OP_LOCKT) NAME(OP_LOCKU) NAME(OP_LOOKUP)
  NAME(OP_LOOKUPP) NAME(OP_NVERIFY) NAME(OP_OPEN) NAME(OP_OPENATTR)
  NAME(OP_OPEN_CONFIRM) NAME(OP_OPEN_DOWNGRADE) NAME(OP_PUTFH)
  NAME(OP_PUTPUBFH) NAME(OP_PUTROOTFH) NAME(OP_READ) NAME(OP_READDIR)
  NAME(OP_READLINK) NAME(OP_REMOVE) NAME(OP_RENAME) NAME(OP_RENEW)
  NAME(OP_RESTOREFH) NAME(OP_SAVEFH) NAME(OP_SECINFO) NAME(OP_SETATTR)
  NAME(OP_SETCLIENTID) NAME(OP_SETCLIENTID_CONFIRM) NAME(OP_VERIFY)
  NAME(OP_WRITE) NAME(OP_RELEASE_LOCKOWNER) NAME(OP_BACKCHANNEL_CTL)
  NAME(OP_BIND_CONN_TO_SESSION) NAME(OP_EXCHANGE_ID) NAME(OP_CREATE_SESSION)
  NAME(OP_DESTROY_SESSION) NAME(OP_FREE_STATEID) NAME(OP_GET_DIR_DELEGATION)
  NAME(OP_GETDEVICEINFO) NAME(OP_GETDEVICELIST) NAME(OP_LAYOUTCOMMIT)
  NAME(OP_LAYOUTGET) NAME(OP_LAYOUTRETURN) NAME(OP_SECINFO_NO_NAME)
  NAME(OP_SEQUENCE) NAME(OP_SET_SSV) NAME(OP_TEST_STATEID)
  NAME(OP_WANT_DELEGATION) NAME(OP_DESTROY_CLIENTID)
  NAME(OP_RECLAIM_COMPLETE)
#undef NAME

  // NFSv4.0-only operations (§18.x: "MUST NOT be implemented" in 4.1).
  for (uint32_t op : {OP_OPEN_CONFIRM, OP_RENEW, OP_SETCLIENTID,
                      OP_SETCLIENTID_CONFIRM, OP_RELEASE_LOCKOWNER}) {
    t[op].flags |= kNotInV41;
  }
  // Operations that need a current filehandle, implemented or not, so that
  // the rule is applied the same way once they are.
  for (uint32_t op :
       {OP_ACCESS, OP_CLOSE, OP_COMMIT, OP_CREATE, OP_DELEGRETURN, OP_GETATTR,
        OP_GETFH, OP_LINK, OP_LOCK, OP_LOCKT, OP_LOCKU, OP_LOOKUP, OP_LOOKUPP,
        OP_NVERIFY, OP_OPEN, OP_OPENATTR, OP_OPEN_DOWNGRADE, OP_READ,
        OP_READDIR, OP_READLINK, OP_REMOVE, OP_RENAME, OP_SAVEFH,
        OP_SECINFO, OP_SETATTR, OP_VERIFY, OP_WRITE, OP_GET_DIR_DELEGATION,
        OP_LAYOUTCOMMIT, OP_LAYOUTGET, OP_LAYOUTRETURN, OP_SECINFO_NO_NAME,
        OP_WANT_DELEGATION}) {
    t[op].flags |= kNeedsFh;
  }

  // Operations that change the file system (OPEN decides by its arguments:
  // see ExportWritable in export_ops.h).
  for (uint32_t op : {OP_CREATE, OP_REMOVE, OP_RENAME, OP_LINK, OP_SETATTR,
                      OP_WRITE, OP_LAYOUTCOMMIT}) {
    t[op].flags |= kModifiesFs;
  }
  return t;
}

namespace {

OpTable BuildTable() {
  OpTable t = BaseOpTable();
#define OP(op, handler, am, rm, fl) \
  t[op].fn = &Adapt<&ArgU::am, &ResU::rm, handler>;  \
  t[op].flags |= (fl);
#define OP0(op, handler, rm, fl) \
  t[op].fn = &AdaptNoArgs<&ResU::rm, handler>;  \
  t[op].flags |= (fl);
  // Sessions and client state.
  OP(OP_EXCHANGE_ID, OpExchangeId, opexchange_id, opexchange_id,
     kSessionless | kModifiesState | kCacheThis)
  OP(OP_CREATE_SESSION, OpCreateSession, opcreate_session, opcreate_session,
     kSessionless | kModifiesState | kCacheThis)
  OP(OP_DESTROY_SESSION, OpDestroySession, opdestroy_session,
     opdestroy_session, kSessionless | kModifiesState | kCacheThis)
  OP(OP_DESTROY_CLIENTID, OpDestroyClientId, opdestroy_clientid,
     opdestroy_clientid, kSessionless | kModifiesState | kCacheThis)
  OP(OP_BIND_CONN_TO_SESSION, OpBindConnToSession, opbind_conn_to_session,
     opbind_conn_to_session, kSessionless | kOnlyOp | kModifiesState)
  OP(OP_BACKCHANNEL_CTL, OpBackchannelCtl, opbackchannel_ctl,
     opbackchannel_ctl, kModifiesState | kCacheThis)
  OP(OP_SEQUENCE, OpSequence, opsequence, opsequence, kModifiesState)
  OP(OP_RECLAIM_COMPLETE, OpReclaimComplete, opreclaim_complete,
     opreclaim_complete, kModifiesState | kCacheThis)
  OP(OP_TEST_STATEID, OpTestStateid, optest_stateid, optest_stateid, 0)
  OP(OP_FREE_STATEID, OpFreeStateid, opfree_stateid, opfree_stateid,
     kModifiesState | kCacheThis)
  // Filehandles.
  OP0(OP_PUTROOTFH, OpPutRootFh, opputrootfh, 0)
  OP0(OP_PUTPUBFH, OpPutPubFh, opputpubfh, 0)
  OP(OP_PUTFH, OpPutFh, opputfh, opputfh, 0)
  OP0(OP_GETFH, OpGetFh, opgetfh, 0)
  OP0(OP_SAVEFH, OpSaveFh, opsavefh, 0)
  OP0(OP_RESTOREFH, OpRestoreFh, oprestorefh, 0)
  // Metadata.
  OP(OP_LOOKUP, OpLookup, oplookup, oplookup, 0)
  OP0(OP_LOOKUPP, OpLookupp, oplookupp, 0)
  OP(OP_GETATTR, OpGetAttr, opgetattr, opgetattr, 0)
  OP(OP_ACCESS, OpAccess, opaccess, opaccess, 0)
  OP(OP_READDIR, OpReadDir, opreaddir, opreaddir, 0)
  OP0(OP_READLINK, OpReadLink, opreadlink, 0)
  OP(OP_CREATE, OpCreate, opcreate, opcreate, kModifiesState | kCacheThis)
  OP(OP_REMOVE, OpRemove, opremove, opremove,
     kModifiesState | kCacheThis | kGraceBlocked)
  OP(OP_RENAME, OpRename, oprename, oprename,
     kModifiesState | kCacheThis | kGraceBlocked)
  OP(OP_LINK, OpLink, oplink, oplink, kModifiesState | kCacheThis)
  OP(OP_SETATTR, OpSetAttr, opsetattr, opsetattr, kModifiesState | kCacheThis)
  OP(OP_VERIFY, OpVerify, opverify, opverify, 0)
  OP(OP_NVERIFY, OpNverify, opnverify, opnverify, 0)
  OP(OP_SECINFO, OpSecInfo, opsecinfo, opsecinfo, 0)
  OP(OP_SECINFO_NO_NAME, OpSecInfoNoName, opsecinfo_no_name,
     opsecinfo_no_name, 0)
  // Open state and data (ops_open.cc, ops_io.cc, ops_lock.cc).
  OP(OP_OPEN, OpOpen, opopen, opopen, kModifiesState | kCacheThis)
  OP(OP_OPEN_DOWNGRADE, OpOpenDowngrade, opopen_downgrade, opopen_downgrade,
     kModifiesState | kCacheThis)
  OP(OP_CLOSE, OpClose, opclose, opclose, kModifiesState | kCacheThis)
  OP(OP_READ, OpRead, opread, opread, 0)
  OP(OP_WRITE, OpWrite, opwrite, opwrite, kModifiesState | kCacheThis)
  OP(OP_COMMIT, OpCommit, opcommit, opcommit, kModifiesState)
  OP(OP_LOCK, OpLock, oplock, oplock, kModifiesState | kCacheThis)
  OP(OP_LOCKT, OpLockT, oplockt, oplockt, 0)
  OP(OP_LOCKU, OpLockU, oplocku, oplocku, kModifiesState | kCacheThis)
  // pNFS (ops_pnfs.cc).
  OP(OP_GETDEVICEINFO, OpGetDeviceInfo, opgetdeviceinfo, opgetdeviceinfo, 0)
  OP(OP_GETDEVICELIST, OpGetDeviceList, opgetdevicelist, opgetdevicelist, 0)
  OP(OP_LAYOUTGET, OpLayoutGet, oplayoutget, oplayoutget,
     kModifiesState | kCacheThis)
  OP(OP_LAYOUTCOMMIT, OpLayoutCommit, oplayoutcommit, oplayoutcommit,
     kModifiesState | kCacheThis)
  OP(OP_LAYOUTRETURN, OpLayoutReturn, oplayoutreturn, oplayoutreturn,
     kModifiesState | kCacheThis)
#undef OP
#undef OP0
  return t;
}

const OpTable& Table() {
  static const OpTable table = BuildTable();
  return table;
}

const OpDesc* FindOp(const OpTable& table, uint32_t opnum) {
  if (opnum < kFirstOp || opnum > kLastOp) return nullptr;
  const OpDesc& d = table[opnum];
  return d.name ? &d : nullptr;
}

// Every arm of nfs_resop4 starts with its nfsstat4 (the discriminant of a
// resN union, or the first member of a status-only struct), so the loop can
// store the status without knowing the op's result type.
void SetStatus(nfs_resop4& res, nfsstat4 status) {
  std::memcpy(&res.nfs_resop4_u, &status, sizeof status);
}

// Appends the result of an op that failed before (or without) its handler.
void PutErrorResult(rpc::XdrEncoder& enc, uint32_t opnum, nfsstat4 status) {
  nfs_resop4 res{};
  res.resop = static_cast<nfs_opnum4>(opnum);
  SetStatus(res, status);
  enc.Encode(xdr_nfs_resop4, res);  // status-only arms: cannot fail
}

// The same as bytes.
std::vector<uint8_t> ErrorResult(uint32_t opnum, nfsstat4 status) {
  rpc::XdrEncoder enc(16);
  PutErrorResult(enc, opnum, status);
  return enc.Take();
}

// The rules that depend on an op's position and the table's flags.
nfsstat4 PositionRules(const CompoundState& st, uint32_t opnum,
                       const OpDesc& d) {
  if (st.op_index == 0) {
    if (opnum == OP_SEQUENCE) return NFS4_OK;
    if (!(d.flags & kSessionless)) return NFS4ERR_OP_NOT_IN_SESSION;
    if (st.op_count > 1) return NFS4ERR_NOT_ONLY_OP;
    return NFS4_OK;
  }
  if (opnum == OP_SEQUENCE) return NFS4ERR_SEQUENCE_POS;
  if (d.flags & kOnlyOp) return NFS4ERR_NOT_ONLY_OP;
  return NFS4_OK;
}

uint64_t HashBytes(std::span<const uint8_t> b) {
  // FNV-1a style, for false-retry detection only (RFC 8881 §2.10.6.1.3),
  // not security. It runs over every request, 1 MiB WRITEs included:
  // 64-bit words in four independent lanes (so the multiplies overlap)
  // instead of a byte at a time, which cost a data server a sixth of its
  // CPU (docs/performance.md, pNFS throughput).
  constexpr uint64_t kPrime = 1099511628211ull;
  uint64_t h[4] = {1469598103934665603ull, 0x9e3779b97f4a7c15ull,
                   0xbf58476d1ce4e5b9ull, 0x94d049bb133111ebull};
  const uint8_t* p = b.data();
  size_t n = b.size();
  for (; n >= 32; p += 32, n -= 32) {
    for (int lane = 0; lane < 4; ++lane) {
      uint64_t w;
      std::memcpy(&w, p + 8 * lane, 8);
      h[lane] = (h[lane] ^ w) * kPrime;
    }
  }
  uint64_t r = h[0] ^ (h[1] * 3) ^ (h[2] * 5) ^ (h[3] * 7) ^ b.size();
  for (; n > 0; ++p, --n) r = (r ^ *p) * kPrime;
  return r;
}

size_t Padded(size_t n) { return (n + 3) & ~size_t{3}; }

// WRITE4args (RFC 8881 §18.32.1: stateid4, offset4, stable_how4, opaque
// data<>) with `data` pointing into the request instead of a copy: libtirpc
// would calloc and copy up to 1 MiB per WRITE. The caller must clear
// `data` before the arguments are freed (InPlaceWrite below).
bool DecodeWriteInPlace(XDR* x, WRITE4args* a) {
  u_int len = 0;
  if (!xdr_stateid4(x, &a->stateid) || !xdr_offset4(x, &a->offset) ||
      !xdr_stable_how4(x, &a->stable) || !xdr_u_int(x, &len)) {
    return false;
  }
  if (len > ~u_int{0} - 3) return false;
  int32_t* p = XDR_INLINE(x, static_cast<u_int>(Padded(len)));
  if (p == nullptr) return false;
  a->data.data_len = len;
  a->data.data_val = reinterpret_cast<char*>(p);
  return true;
}

// Detaches an in-place WRITE's data from its arguments before they are
// freed (declared after them, so it runs first).
struct InPlaceWrite {
  nfs_argop4* arg = nullptr;
  ~InPlaceWrite() {
    if (arg) arg->nfs_argop4_u.opwrite.data = {0, nullptr};
  }
};

// Declared after the XdrOwned it names, so that it runs first: drops an
// argument filled in by hand (fixed-size, nothing allocated) instead of
// letting xdr_free walk it (~330 instructions per SEQUENCE).
struct ForgetOnExit {
  rpc::XdrOwned<nfs_argop4>* arg = nullptr;
  ~ForgetOnExit() {
    if (arg) arg->Forget();
  }
};

// The attribute and directory caches forget what a modifying op may have
// changed: the current and saved filehandles' inodes before and after it,
// and what the op reported (CompoundState::touched). For the directory
// cache these are the directories whose names REMOVE, RENAME (both sides)
// and LINK change (dir_cache.h). CREATE and OPEN only add a name (OPEN
// never replaces one, RFC 8881 §18.16.3): their directory keeps its cached
// names, and what they created is stored (CompoundState::created).
void InvalidateAfter(CompoundState& st, uint32_t op,
                     const std::array<ns::InodeId, 2>& before) {
  AttrCache* c = st.server.attrs;
  DirCache* d = st.server.dirs;
  std::optional<CompoundState::Created> made = std::move(st.created);
  st.created.reset();
  const bool adds_names = op == OP_CREATE || op == OP_OPEN;
  const ns::InodeId added_to = adds_names ? before[0] : 0;
  // Nothing is cached about a new inode but what a concurrent reader
  // found after the commit: true, so it stays.
  const ns::InodeId fresh = made ? made->attr.ino : 0;
  const std::vector<ns::InodeId>& reread = st.reread;
  auto forget = [c, d, added_to, fresh, &reread](ns::InodeId ino) {
    if (ino == 0 || ino == fresh) return;
    if (c && std::find(reread.begin(), reread.end(), ino) == reread.end()) {
      c->Invalidate(ino);
    }
    if (d && ino != added_to) d->InvalidateDir(ino);
  };
  for (ns::InodeId ino : before) forget(ino);
  if (st.current_fh) forget(st.current_fh->ino);
  if (st.saved_fh) forget(st.saved_fh->ino);
  for (ns::InodeId ino : st.touched) forget(ino);
  st.touched.clear();
  st.reread.clear();
  st.dir_after.reset();
  if (made) {
    if (d) {
      d->Put(made->dir, made->name, {made->attr.ino, made->attr.generation},
             made->dir_epoch);
    }
    if (c && made->attr_final) c->Put(made->attr, made->attr_epoch);
  }
}

// Writes `v` big-endian (an XDR unsigned int) at `p`.
void PutBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

std::vector<uint8_t> EncodeReply(nfsstat4 status, std::span<const uint8_t> tag,
                                 uint32_t nres,
                                 std::span<const uint8_t> ops) {
  rpc::XdrEncoder enc(16 + tag.size() + ops.size());
  enc.PutUint32(static_cast<uint32_t>(status));
  enc.PutOpaque(tag);
  enc.PutUint32(nres);
  enc.PutFixedOpaque(ops);
  return enc.Take();
}

}  // namespace

const char* OpName(uint32_t opnum) {
  if (opnum == OP_ILLEGAL) return "ILLEGAL";
  const OpDesc* d = FindOp(Table(), opnum);
  return d ? d->name : "?";
}

nfsstat4 CheckSessionLimits(const CompoundState& st,
                            const state::Session& session) {
  if (st.request_size > session.fore().ca_maxrequestsize) {
    return NFS4ERR_REQ_TOO_BIG;
  }
  if (st.op_count > session.fore().ca_maxoperations) {
    return NFS4ERR_TOO_MANY_OPS;
  }
  return NFS4_OK;
}

std::optional<std::vector<uint8_t>> RunCompound(
    CompoundState& st, std::span<const uint8_t> args) {
  rpc::XdrDecoder dec(args);
  // The tag (utf8str_cs) is only echoed back (§16.2.3): a view into the
  // request; no UTF-8 check applies to it, as xdr_utf8str_cs makes none.
  std::optional<std::span<const uint8_t>> tag_view =
      dec.GetOpaque(UINT32_MAX);
  if (!tag_view) return std::nullopt;
  const std::span<const uint8_t> tag = *tag_view;
  std::optional<uint32_t> minor = dec.GetUint32();
  std::optional<uint32_t> count = dec.GetUint32();
  if (!minor || !count) return std::nullopt;

  // §16.2.3: a minor version we do not serve gets no results at all.
  if (*minor != 1) {
    return EncodeReply(NFS4ERR_MINOR_VERS_MISMATCH, tag, 0, {});
  }
  // Every op takes at least its 4-byte number.
  if (*count > dec.remaining() / 4) return std::nullopt;
  st.op_count = *count;
  const OpTable& table = st.server.ops ? *st.server.ops : Table();

  const size_t header_size = 12 + Padded(tag.size());
  // The reply is encoded into one buffer as the ops run; its status and
  // result count are written in at the end. (One encoder per op, a vector
  // per result and copies for the reply and the slot cache cost ~20
  // allocations per COMPOUND: docs/performance.md, issue 4 item 12.)
  rpc::XdrEncoder out(256 + header_size);
  out.PutUint32(0);  // status
  out.PutOpaque(tag);
  out.PutUint32(0);  // result count
  // End of SEQUENCE's result in `out` when it succeeded (for the slot
  // cache); 0 otherwise.
  size_t seq_end = 0;
  // When the last result must be replaced by an error (REP_TOO_BIG, or it
  // did not encode), `out` is cut at `cut` and `cut_op`'s error result
  // appended: an encoder cannot rewind.
  size_t cut = 0;
  uint32_t cut_op = OP_ILLEGAL;
  uint32_t nres = 0;
  uint32_t second_op = OP_ILLEGAL;
  nfsstat4 status = NFS4_OK;
  // Per-op latency for the metrics: each op's end is the next one's start
  // (one clock read per op, none without metrics).
  Metrics* const metrics = st.server.metrics;
  auto op_start = metrics ? std::chrono::steady_clock::now()
                          : std::chrono::steady_clock::time_point{};

  for (uint32_t i = 0; i < *count; ++i) {
    st.op_index = i;
    st.arena.Clear();
    const size_t pos = dec.position();
    const size_t result_at = out.size();
    std::optional<uint32_t> opnum = dec.GetUint32();
    if (!opnum) {  // cannot happen given the count check; be safe
      status = NFS4ERR_BADXDR;
      PutErrorResult(out, OP_ILLEGAL, status);
      ++nres;
      break;
    }
    if (i == 1) second_op = *opnum;
    const OpDesc* d = FindOp(table, *opnum);
    if (d == nullptr) {
      // §15.2, §18.54: an undefined operation is answered as OP_ILLEGAL.
      status = NFS4ERR_OP_ILLEGAL;
      PutErrorResult(out, OP_ILLEGAL, status);
    } else {
      rpc::XdrOwned<nfs_argop4> arg(xdr_nfs_argop4);
      InPlaceWrite in_place;
      bool decoded;
      // SEQUENCE4args filled in by hand: nothing for xdr_free to walk.
      ForgetOnExit by_hand;
      if (*opnum == OP_SEQUENCE) {
        // Fixed layout: read in place (sequence_xdr.h).
        std::optional<SEQUENCE4args> seq = DecodeSequenceArgs(dec.rest());
        decoded = seq.has_value();
        if (decoded) {
          arg.get().argop = OP_SEQUENCE;
          arg.get().nfs_argop4_u.opsequence = *seq;
          by_hand.arg = &arg;
          xdr_setpos(dec.xdr(),
                     static_cast<u_int>(dec.position() + kSequenceArgsSize));
        }
      } else if (*opnum == OP_WRITE) {
        arg.get().argop = OP_WRITE;
        decoded =
            DecodeWriteInPlace(dec.xdr(), &arg.get().nfs_argop4_u.opwrite);
        if (arg.get().nfs_argop4_u.opwrite.data.data_val) {
          in_place.arg = &arg.get();
        }
      } else {
        xdr_setpos(dec.xdr(), static_cast<u_int>(pos));
        decoded = dec.Decode(xdr_nfs_argop4, &arg.get());
      }
      if (!decoded) {
        status = NFS4ERR_BADXDR;
      } else {
        status = PositionRules(st, *opnum, *d);
      }
      if (status == NFS4_OK && (d->flags & kNotInV41)) {
        status = NFS4ERR_NOTSUPP;
      }
      if (status == NFS4_OK && (d->flags & kNeedsFh) && !st.current_fh) {
        status = NFS4ERR_NOFILEHANDLE;
      }
      if (status == NFS4_OK && d->fn == nullptr) status = NFS4ERR_NOTSUPP;
      // The next op's number, for the security negotiation rules.
      st.next_op = OP_ILLEGAL;
      if (i + 1 < *count && dec.remaining() >= 4) {
        const uint8_t* p = args.data() + dec.position();
        st.next_op = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
                     (uint32_t{p[2]} << 8) | p[3];
      }
      // Exports: the current filehandle's export admits this client and
      // this op (export_ops.h).
      if (status == NFS4_OK && (d->flags & kNeedsFh)) {
        status = ExportRules(st, *opnum, (d->flags & kModifiesFs) != 0);
      }
      if (status == NFS4_OK && (d->flags & kGraceBlocked) &&
          st.server.state->InGrace()) {
        status = NFS4ERR_GRACE;
      }
      if (status != NFS4_OK) {
        PutErrorResult(out, *opnum, status);
      } else {
        if (*opnum == OP_SEQUENCE) {
          st.request_hash = HashBytes(args.subspan(dec.position()));
        }
        nfs_resop4 res{};
        res.resop = static_cast<nfs_opnum4>(*opnum);
        const std::array<ns::InodeId, 2> fhs_before = {
            st.current_fh ? st.current_fh->ino : 0,
            st.saved_fh ? st.saved_fh->ino : 0};
        try {
          // A pseudo fs directory is served by export_ops.cc.
          std::optional<nfsstat4> pseudo =
              (d->flags & kNeedsFh) ? RunPseudoOp(st, *opnum, arg.get(), res)
                                    : std::nullopt;
          status = pseudo ? *pseudo : d->fn(st, arg.get(), res);
        } catch (const std::exception& e) {
          // Handlers return errors as values; this is a server fault
          // (e.g. out of memory). The slot must still be released below.
          rpc::log::Error("{} failed: {}", d->name, e.what());
          res = nfs_resop4{};
          res.resop = static_cast<nfs_opnum4>(*opnum);
          status = NFS4ERR_SERVERFAULT;
        }
        SetStatus(res, status);
        if (d->flags & kModifiesState) {
          InvalidateAfter(st, *opnum, fhs_before);
        }
        if (st.replay) return std::move(*st.replay);  // SEQUENCE retry
        if (status == NFS4_OK && !st.raw_result.empty()) {
          out.PutFixedOpaque(st.raw_result);  // encoded by the op itself
        } else if (*opnum == OP_SEQUENCE) {
          EncodeSequenceResult(out, res.nfs_resop4_u.opsequence);
        } else if (!out.Encode(xdr_nfs_resop4, res)) {
          rpc::log::Error("cannot encode the result of {}", d->name);
          status = NFS4ERR_SERVERFAULT;
          cut = result_at;
          cut_op = *opnum;
        }
        st.raw_result.clear();
      }
    }
    // §2.10.6.4, §18.46.3: the reply must fit the session's limits.
    if (st.session && cut == 0) {
      const channel_attrs4& fore = st.session->fore();
      const size_t total = out.size();
      nfsstat4 limit = NFS4_OK;
      if (total > fore.ca_maxresponsesize) {
        limit = NFS4ERR_REP_TOO_BIG;
      } else if (st.cache_this && total > fore.ca_maxresponsesize_cached) {
        limit = NFS4ERR_REP_TOO_BIG_TO_CACHE;
      }
      if (limit != NFS4_OK && i > 0) {
        status = limit;
        cut = result_at;
        cut_op = d ? *opnum : uint32_t{OP_ILLEGAL};
      }
    }
    if (metrics) {
      const auto now = std::chrono::steady_clock::now();
      metrics->OpDone(d ? *opnum : 0, status,
                      static_cast<uint64_t>(
                          std::chrono::duration_cast<std::chrono::nanoseconds>(
                              now - op_start)
                              .count()));
      op_start = now;
    }
    if (i == 0 && *opnum == OP_SEQUENCE && status == NFS4_OK) {
      seq_end = out.size();
    }
    ++nres;
    if (status != NFS4_OK) {
      // Protocol chatter: errors are normal answers (NOENT on LOOKUP ...).
      rpc::log::Debug("COMPOUND op {}/{} {}: {}", i + 1, *count,
                      d ? d->name : "ILLEGAL", NfsStatName(status));
      break;
    }
  }
  st.arena.Clear();
  if (metrics) metrics->CompoundDone();

  std::vector<uint8_t> reply = out.Take();
  if (cut != 0) {
    reply.resize(cut);
    std::vector<uint8_t> e = ErrorResult(cut_op, status);
    reply.insert(reply.end(), e.begin(), e.end());
  }
  PutBe32(reply.data(), static_cast<uint32_t>(status));
  PutBe32(reply.data() + header_size - 4, nres);
  if (st.session && seq_end != 0) {
    // Keep the reply in the slot (§2.10.6.1.3). A reply the client did not
    // ask to cache and that is too large to cache is replaced by SEQUENCE's
    // result and NFS4ERR_RETRY_UNCACHED_REP.
    if (st.cache_this ||
        reply.size() <= st.session->fore().ca_maxresponsesize_cached ||
        *count == 1) {
      st.session->EndRequest(st.slot, reply);
    } else {
      std::vector<uint8_t> two(reply.begin() + header_size,
                               reply.begin() + seq_end);
      std::vector<uint8_t> e =
          ErrorResult(second_op, NFS4ERR_RETRY_UNCACHED_REP);
      two.insert(two.end(), e.begin(), e.end());
      st.session->EndRequest(
          st.slot,
          EncodeReply(NFS4ERR_RETRY_UNCACHED_REP, tag, 2, two));
    }
  }
  return reply;
}

bool InlineCandidate(CompoundState& st, std::span<const uint8_t> args) {
  // Only the metadata server's table; never while a grace period may end
  // (InGrace() would record its end in the database).
  if (st.server.ops != nullptr || st.server.state->GraceMayBeOn()) {
    return false;
  }
  rpc::XdrDecoder dec(args);
  if (!dec.GetOpaque(UINT32_MAX)) return false;  // the tag
  std::optional<uint32_t> minor = dec.GetUint32();
  std::optional<uint32_t> count = dec.GetUint32();
  // A handful of ops: what a stat or a revalidation sends.
  constexpr uint32_t kMaxInlineOps = 8;
  if (!minor || *minor != 1 || !count || *count == 0 ||
      *count > kMaxInlineOps) {
    return false;
  }
  // SEQUENCE's arguments are fixed-size (RFC 8881 §18.46.1: sessionid4,
  // three uint32s and a bool): skipped without decoding, since RunCompound
  // decodes and checks them anyway. SEQUENCE alone needs nothing more.
  std::optional<uint32_t> first = dec.GetUint32();
  if (!first || *first != OP_SEQUENCE || dec.remaining() < kSequenceArgsSize) {
    return false;
  }
  if (*count == 1) return true;
  xdr_setpos(dec.xdr(), static_cast<u_int>(dec.position() + kSequenceArgsSize));
  std::optional<FileHandle> current;
  for (uint32_t i = 1; i < *count; ++i) {
    rpc::XdrOwned<nfs_argop4> op(xdr_nfs_argop4);
    if (!dec.Decode(xdr_nfs_argop4, &op.get())) return false;
    if (!InlineOp(st, op.get(), &current)) return false;
  }
  return true;
}

namespace {

// The COMPOUND's state from its RPC call: credentials, connection, peer.
void InitState(CompoundState& st, const rpc::CallContext& call) {
  st.call = &call;
  st.connection_id = call.connection ? call.connection->id() : 0;
  st.request_size = call.record_size;
  if (call.cred.sys) {
    const rpc::AuthSysParms& p = *call.cred.sys;
    st.cred.uid = p.uid;
    st.cred.gid = p.gid;
    st.cred.groups = p.gids;
    // Written in place ("sys:" and at most 10 digits fit the string's
    // own buffer): no temporaries per COMPOUND, which std::to_string and
    // operator+ cost ~250 instructions (docs/performance.md, issue 4).
    char buf[16] = {'s', 'y', 's', ':'};
    char* end = std::to_chars(buf + 4, buf + sizeof buf, p.uid).ptr;
    st.principal.assign(buf, static_cast<size_t>(end - buf));
  } else {
    // AUTH_NONE: the anonymous user (RFC 8881 §2.2.1.1.1.1).
    st.cred.uid = 65534;
    st.cred.gid = 65534;
    st.principal = "none";
  }
  // Exports squash from the credentials as authenticated.
  st.rpc_cred = st.cred;
  st.flavor = call.cred.flavor;
  if (call.connection) st.peer = &call.connection->peer_address();
}

rpc::Reply Serve(CompoundState& st, const rpc::CallContext& call,
                 std::span<const uint8_t> args) {
  std::optional<std::vector<uint8_t>> reply = RunCompound(st, args);
  if (!reply) {
    rpc::log::Warning("{}: COMPOUND arguments do not decode",
                      call.connection ? call.connection->peer()
                                      : std::string("-"));
    return rpc::Reply::GarbageArgs();
  }
  return rpc::Reply::Success(std::move(*reply));
}

}  // namespace

void HoldUntilDurable(ns::Namespace& ns, uint64_t ticket, rpc::Reply& reply) {
  if (ticket == 0) return;
  reply.SendAfter([&ns, ticket](std::function<void()> send) {
    ns.WhenDurable(ticket, [send = std::move(send)](bool durable) {
      if (durable) {
        send();
      } else {
        rpc::log::Error(
            "a reply was not sent: the change it acknowledges could not be "
            "made durable (see the namespace's error; restart nfs41d)");
      }
    });
  });
}

rpc::Program MakeNfs4Program(ServerContext* ctx) {
  rpc::Program p(NFS4_PROGRAM, NFS_V4, NFS_V4);
  p.WithNull().On(
      NFSPROC4_COMPOUND,
      [ctx](const rpc::CallContext& call, std::span<const uint8_t> args) {
        CompoundState st(*ctx);
        InitState(st, call);
        // A data server's table has no namespace.
        if (ctx->ns == nullptr) return Serve(st, call, args);
        ctx->ns->TakeCommitTicket();  // an earlier caller's on this thread
        rpc::Reply reply = Serve(st, call, args);
        uint64_t ticket = ctx->ns->TakeCommitTicket();
        // A slot's replayed reply was made by an earlier run whose commit
        // may still be on its way to disk.
        if (st.replay) ticket = std::max(ticket, ctx->ns->LatestCommitTicket());
        HoldUntilDurable(*ctx->ns, ticket, reply);
        return reply;
      });
  if (ctx->inline_compounds) {
    p.OnInline(NFSPROC4_COMPOUND,
               [ctx](const rpc::CallContext& call,
                     std::span<const uint8_t> args) -> std::optional<rpc::Reply> {
                 CompoundState st(*ctx);
                 InitState(st, call);
                 st.cache_only = true;
                 if (!InlineCandidate(st, args)) return std::nullopt;
                 if (ctx->metrics) ctx->metrics->InlineCompoundDone();
                 return Serve(st, call, args);
               });
  }
  return p;
}

}  // namespace nfs41d
