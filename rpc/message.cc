#include "rpc/message.h"

#include <rpc/rpc.h>

#include <cstring>

namespace rpc {
namespace {

// Decodes an opaque_auth (RFC 5531 §8.2) without copying: flavor with
// xdr_enum semantics (an unsigned int on the wire), then the body as an
// opaque<400> view. nullopt if truncated or over the bound.
std::optional<OpaqueAuthView> DecodeOpaqueAuth(XdrDecoder& dec) {
  std::optional<uint32_t> flavor = dec.GetUint32();
  if (!flavor) return std::nullopt;
  std::optional<std::span<const uint8_t>> body = dec.GetOpaque(kMaxAuthBytes);
  if (!body) return std::nullopt;
  return OpaqueAuthView{*flavor, *body};
}

void PutNullVerifier(XdrEncoder& enc) {
  uint32_t flavor = kAuthNone, len = 0;
  xdr_uint32_t(enc.xdr(), &flavor);
  xdr_uint32_t(enc.xdr(), &len);
}

void Put(XdrEncoder& enc, uint32_t v) { xdr_uint32_t(enc.xdr(), &v); }

}  // namespace

std::optional<MessagePeek> PeekMessage(std::span<const uint8_t> record) {
  XdrDecoder dec(record);
  MessagePeek peek{};
  if (!xdr_uint32_t(dec.xdr(), &peek.xid)) return std::nullopt;
  enum_t mtype;
  if (!xdr_enum(dec.xdr(), &mtype)) return std::nullopt;
  peek.msg_type = static_cast<uint32_t>(mtype);
  return peek;
}

CallHeaderDecode DecodeCallHeader(std::span<const uint8_t> record) {
  CallHeaderDecode out;
  CallHeader& h = out.header;
  XdrDecoder dec(record);
  XDR* x = dec.xdr();
  enum_t mtype;
  if (!xdr_uint32_t(x, &h.xid) || !xdr_enum(x, &mtype)) {
    out.reason = "record shorter than an RPC message header";
    return out;
  }
  if (static_cast<uint32_t>(mtype) != kCall) {
    out.reason = "not a CALL";
    return out;
  }
  if (!xdr_uint32_t(x, &h.rpcvers)) {
    out.reason = "truncated call header (rpcvers)";
    return out;
  }
  // RFC 5531 §9: the version check comes first; a different RPC version may
  // lay out the rest of the header differently, so it is not decoded.
  if (h.rpcvers != kRpcVersion) {
    out.outcome = CallHeaderDecode::Outcome::kRpcMismatch;
    out.reason = "RPC version is not 2";
    return out;
  }
  if (!xdr_uint32_t(x, &h.prog) || !xdr_uint32_t(x, &h.vers) ||
      !xdr_uint32_t(x, &h.proc)) {
    out.reason = "truncated call header (prog, vers, proc)";
    return out;
  }
  std::optional<OpaqueAuthView> cred = DecodeOpaqueAuth(dec);
  if (!cred) {
    out.outcome = CallHeaderDecode::Outcome::kAuthError;
    out.auth_stat = kAuthBadCred;
    out.reason = "credential truncated or over 400 bytes";
    return out;
  }
  h.cred = *cred;
  std::optional<OpaqueAuthView> verf = DecodeOpaqueAuth(dec);
  if (!verf) {
    out.outcome = CallHeaderDecode::Outcome::kAuthError;
    out.auth_stat = kAuthBadVerf;
    out.reason = "verifier truncated or over 400 bytes";
    return out;
  }
  h.verf = *verf;
  h.args_offset = dec.position();
  out.outcome = CallHeaderDecode::Outcome::kOk;
  return out;
}

std::optional<AuthSysParms> DecodeAuthSys(std::span<const uint8_t> body) {
  XdrDecoder dec(body);
  XDR* x = dec.xdr();
  AuthSysParms p;
  if (!xdr_uint32_t(x, &p.stamp)) return std::nullopt;
  std::optional<std::span<const uint8_t>> name = dec.GetOpaque(kMaxMachineName);
  if (!name) return std::nullopt;
  p.machine_name.assign(reinterpret_cast<const char*>(name->data()),
                        name->size());
  uint32_t ngids;
  if (!xdr_uint32_t(x, &p.uid) || !xdr_uint32_t(x, &p.gid) ||
      !xdr_uint32_t(x, &ngids) || ngids > kMaxAuthSysGids) {
    return std::nullopt;
  }
  p.gids.resize(ngids);
  for (uint32_t& g : p.gids) {
    if (!xdr_uint32_t(x, &g)) return std::nullopt;
  }
  // A well-formed body is exactly an authsys_parms: trailing bytes mean the
  // client encoded something else.
  if (dec.remaining() != 0) return std::nullopt;
  return p;
}

std::vector<uint8_t> EncodeAuthSys(const AuthSysParms& parms) {
  XdrEncoder enc(64 + parms.machine_name.size() + 4 * parms.gids.size());
  enc.PutUint32(parms.stamp);
  enc.PutString(parms.machine_name);
  enc.PutUint32(parms.uid);
  enc.PutUint32(parms.gid);
  enc.PutUint32(static_cast<uint32_t>(parms.gids.size()));
  for (uint32_t g : parms.gids) enc.PutUint32(g);
  return enc.Take();
}

AuthCheck Authenticate(const CallHeader& header) {
  AuthCheck out;
  out.creds.flavor = header.cred.flavor;
  switch (header.cred.flavor) {
    case kAuthNone:
      return out;
    case kAuthSys: {
      std::optional<AuthSysParms> sys = DecodeAuthSys(header.cred.body);
      if (!sys) {
        out.auth_stat = kAuthBadCred;
        return out;
      }
      out.creds.sys = std::move(*sys);
      return out;
    }
    case kAuthShort:
      out.auth_stat = kAuthRejectedCred;
      return out;
    default:
      out.auth_stat = kAuthTooWeak;
      return out;
  }
}

Status EncodeCallHeader(XdrEncoder& enc, uint32_t xid, uint32_t prog,
                        uint32_t vers, uint32_t proc, const Credential& cred) {
  if (cred.body.size() > kMaxAuthBytes) {
    return Status::InvalidArgument("credential body over 400 bytes");
  }
  Put(enc, xid);
  Put(enc, kCall);
  Put(enc, kRpcVersion);
  Put(enc, prog);
  Put(enc, vers);
  Put(enc, proc);
  Put(enc, cred.flavor);
  enc.PutOpaque(cred.body);
  PutNullVerifier(enc);
  return Status::Ok();
}

std::vector<uint8_t> EncodeAcceptedReply(uint32_t xid, uint32_t accept_stat,
                                         uint32_t low, uint32_t high) {
  XdrEncoder enc(32);
  Put(enc, xid);
  Put(enc, kReply);
  Put(enc, 0);  // MSG_ACCEPTED
  PutNullVerifier(enc);
  Put(enc, accept_stat);
  if (accept_stat == kProgMismatch) {
    Put(enc, low);
    Put(enc, high);
  }
  return enc.Take();
}

std::vector<uint8_t> EncodeRpcMismatchReply(uint32_t xid, uint32_t low,
                                            uint32_t high) {
  XdrEncoder enc(32);
  Put(enc, xid);
  Put(enc, kReply);
  Put(enc, 1);  // MSG_DENIED
  Put(enc, 0);  // RPC_MISMATCH
  Put(enc, low);
  Put(enc, high);
  return enc.Take();
}

std::vector<uint8_t> EncodeAuthErrorReply(uint32_t xid, uint32_t auth_stat) {
  XdrEncoder enc(32);
  Put(enc, xid);
  Put(enc, kReply);
  Put(enc, 1);  // MSG_DENIED
  Put(enc, 1);  // AUTH_ERROR
  Put(enc, auth_stat);
  return enc.Take();
}

Result<size_t> DecodeReply(std::span<const uint8_t> record) {
  XdrDecoder dec(record);
  XDR* x = dec.xdr();
  uint32_t xid, mtype, reply_stat;
  if (!xdr_uint32_t(x, &xid) || !xdr_uint32_t(x, &mtype) || mtype != kReply ||
      !xdr_uint32_t(x, &reply_stat)) {
    return Status::Malformed("truncated reply header");
  }
  if (reply_stat == 0) {  // MSG_ACCEPTED
    // The server's verifier: AUTH_NONE from this library; any flavor is
    // skipped since only RPCSEC_GSS would need checking.
    if (!DecodeOpaqueAuth(dec)) {
      return Status::Malformed("reply verifier truncated");
    }
    uint32_t stat;
    if (!xdr_uint32_t(x, &stat)) return Status::Malformed("no accept_stat");
    if (stat == kSuccess) return dec.position();
    if (stat == kProgMismatch) {
      uint32_t low, high;
      if (!xdr_uint32_t(x, &low) || !xdr_uint32_t(x, &high)) {
        return Status::Malformed("truncated PROG_MISMATCH");
      }
      return Status::NotExecuted(stat, low, high);
    }
    return Status::NotExecuted(stat);
  }
  if (reply_stat == 1) {  // MSG_DENIED
    uint32_t reject_stat;
    if (!xdr_uint32_t(x, &reject_stat)) {
      return Status::Malformed("no reject_stat");
    }
    if (reject_stat == 0) {  // RPC_MISMATCH
      uint32_t low, high;
      if (!xdr_uint32_t(x, &low) || !xdr_uint32_t(x, &high)) {
        return Status::Malformed("truncated RPC_MISMATCH");
      }
      return Status::RpcMismatch(low, high);
    }
    if (reject_stat == 1) {  // AUTH_ERROR
      uint32_t auth_stat;
      if (!xdr_uint32_t(x, &auth_stat)) {
        return Status::Malformed("truncated AUTH_ERROR");
      }
      return Status::AuthError(auth_stat);
    }
    return Status::Malformed("unknown reject_stat");
  }
  return Status::Malformed("unknown reply_stat");
}

}  // namespace rpc
