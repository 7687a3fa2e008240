#include "nfs41d/sequence_xdr.h"

#include <cstring>

namespace nfs41d {
namespace {

uint32_t GetBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | p[3];
}

}  // namespace

std::optional<SEQUENCE4args> DecodeSequenceArgs(std::span<const uint8_t> in) {
  if (in.size() < kSequenceArgsSize) return std::nullopt;
  SEQUENCE4args a;
  const uint8_t* p = in.data();
  std::memcpy(a.sa_sessionid, p, NFS4_SESSIONID_SIZE);
  p += NFS4_SESSIONID_SIZE;
  a.sa_sequenceid = GetBe32(p);
  a.sa_slotid = GetBe32(p + 4);
  a.sa_highest_slotid = GetBe32(p + 8);
  a.sa_cachethis = GetBe32(p + 12) != 0 ? TRUE : FALSE;
  return a;
}

void EncodeSequenceResult(rpc::XdrEncoder& out, const SEQUENCE4res& res) {
  out.PutUint32(OP_SEQUENCE);
  out.PutUint32(static_cast<uint32_t>(res.sr_status));
  if (res.sr_status != NFS4_OK) return;
  const SEQUENCE4resok& ok = res.SEQUENCE4res_u.sr_resok4;
  out.PutFixedOpaque(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(ok.sr_sessionid), NFS4_SESSIONID_SIZE));
  out.PutUint32(ok.sr_sequenceid);
  out.PutUint32(ok.sr_slotid);
  out.PutUint32(ok.sr_highest_slotid);
  out.PutUint32(ok.sr_target_highest_slotid);
  out.PutUint32(ok.sr_status_flags);
}

}  // namespace nfs41d
