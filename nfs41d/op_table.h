#pragma once

// The COMPOUND dispatch table (see compound.h): one entry per operation
// number with its handler and the flags the loop applies its generic rules
// from. nfs41d (the pNFS metadata server) has the full table; the pNFS data
// server (dataserver/) builds its own from BaseOpTable() with the few
// operations a data server serves (RFC 8881 §13.6) and runs it through the
// same loop by setting ServerContext::ops.

#include <array>
#include <cstdint>

#include "nfs41d/proto/nfs4_prot.h"

namespace nfs41d {

struct CompoundState;

// The argument of handlers of operations without arguments.
struct NoArgs {};

using OpFn = nfsstat4 (*)(CompoundState&, const nfs_argop4&, nfs_resop4&);

enum OpFlag : uint32_t {
  // NFS4ERR_NOFILEHANDLE unless there is a current filehandle (§16.2.3).
  kNeedsFh = 1u << 0,
  // May be the first op of a COMPOUND without SEQUENCE, and then must be the
  // only op (§2.6.3.1.1.1: EXCHANGE_ID, CREATE_SESSION, DESTROY_SESSION,
  // DESTROY_CLIENTID, BIND_CONN_TO_SESSION).
  kSessionless = 1u << 1,
  // Must be the only op of its COMPOUND: never preceded by SEQUENCE
  // (BIND_CONN_TO_SESSION, §18.34.3).
  kOnlyOp = 1u << 2,
  // Changes the namespace or client state.
  kModifiesState = 1u << 3,
  // Non-idempotent: a retry must find the reply in the slot cache.
  kCacheThis = 1u << 4,
  // An NFSv4.0 operation that NFSv4.1 MUST NOT implement (§18.x): NOTSUPP.
  kNotInV41 = 1u << 5,
  // Changes the file system: NFS4ERR_ROFS on a read-only export or the
  // pseudo fs (RFC 8881 §7.3, exports.h).
  kModifiesFs = 1u << 6,
  // Refused with NFS4ERR_GRACE during the grace period (RFC 8881
  // §8.4.2.1): it could remove or rename a file whose open or delegation a
  // client is yet to reclaim. OPEN and LOCK decide themselves through
  // StateManager::CheckClaim (reclaims are allowed).
  kGraceBlocked = 1u << 7,
};

struct OpDesc {
  const char* name = nullptr;  // null: not an operation (OP_ILLEGAL)
  OpFn fn = nullptr;           // null: not implemented (NFS4ERR_NOTSUPP)
  uint32_t flags = 0;
};

using ArgU = decltype(nfs_argop4::nfs_argop4_u);
using ResU = decltype(nfs_resop4::nfs_resop4_u);

// Turns a typed handler, nfsstat4 Op(CompoundState&, const X4args&, X4res&),
// into an OpFn: `&Adapt<&ArgU::opx, &ResU::opx, OpX>`.
template <auto ArgM, auto ResM, auto Fn>
nfsstat4 Adapt(CompoundState& s, const nfs_argop4& a, nfs_resop4& r) {
  return Fn(s, a.nfs_argop4_u.*ArgM, r.nfs_resop4_u.*ResM);
}
// The same for a handler without arguments (it takes NoArgs).
template <auto ResM, auto Fn>
nfsstat4 AdaptNoArgs(CompoundState& s, const nfs_argop4&, nfs_resop4& r) {
  return Fn(s, NoArgs{}, r.nfs_resop4_u.*ResM);
}

inline constexpr uint32_t kFirstOp = OP_ACCESS;           // 3
inline constexpr uint32_t kLastOp = OP_RECLAIM_COMPLETE;  // 58

using OpTable = std::array<OpDesc, kLastOp + 1>;

// Every NFSv4.1 operation's name and the flags that hold whoever serves
// it (kNotInV41, kNeedsFh, kModifiesFs), and no handler: a table to add
// handlers to. An op left without one answers NFS4ERR_NOTSUPP.
OpTable BaseOpTable();

}  // namespace nfs41d
