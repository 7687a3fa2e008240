#pragma once

// Hand-written XDR for SEQUENCE (RFC 8881 §18.46), the one op of every
// COMPOUND of a session. Its arguments and its successful result have a
// fixed layout (RFC 5662: sessionid4 is opaque[16], then uint32s and a
// bool), so the COMPOUND loop reads and writes them in place instead of
// through libtirpc's stream and the rpcgen routines (about 1,100
// instructions per SEQUENCE, a fifth of the inline path's user-space work:
// docs/performance.md, issue 4 item 12). They accept exactly what
// xdr_SEQUENCE4args accepts and produce the bytes xdr_nfs_resop4 produces;
// sequence_xdr_test.cc compares both on random and mutated inputs.
//
// Thread safety: pure functions.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "nfs41d/proto/nfs4_prot.h"
#include "rpc/xdr_codec.h"

namespace nfs41d {

// sa_sessionid, sa_sequenceid, sa_slotid, sa_highest_slotid, sa_cachethis.
inline constexpr size_t kSequenceArgsSize = NFS4_SESSIONID_SIZE + 4 * 4;

// SEQUENCE4args from the first kSequenceArgsSize bytes of `in` (the bytes
// after the op number); nullopt when `in` is shorter. Like libtirpc's
// xdr_bool, any non-zero sa_cachethis is TRUE.
std::optional<SEQUENCE4args> DecodeSequenceArgs(std::span<const uint8_t> in);

// Appends SEQUENCE's nfs_resop4: the op number, sr_status and, when it is
// NFS4_OK, SEQUENCE4resok.
void EncodeSequenceResult(rpc::XdrEncoder& out, const SEQUENCE4res& res);

}  // namespace nfs41d
