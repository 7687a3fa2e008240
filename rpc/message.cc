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

// Big-endian XDR words and opaques read in place (RFC 4506 §4.1, §4.10).
class WordReader {
 public:
  explicit WordReader(std::span<const uint8_t> b) : b_(b) {}
  bool Get(uint32_t* v) {
    if (b_.size() - pos_ < 4) return false;
    const uint8_t* p = b_.data() + pos_;
    *v = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | p[3];
    pos_ += 4;
    return true;
  }
  // opaque<max>: length, bytes, zero padding to a multiple of 4.
  bool GetOpaque(uint32_t max, std::span<const uint8_t>* out) {
    uint32_t len = 0;
    if (!Get(&len) || len > max) return false;
    const size_t padded = (size_t{len} + 3) & ~size_t{3};
    if (b_.size() - pos_ < padded) return false;
    *out = b_.subspan(pos_, len);
    pos_ += padded;
    return true;
  }
  // opaque_auth (RFC 5531 §8.2): flavor, body<400>.
  bool GetAuth(OpaqueAuthView* out) {
    return Get(&out->flavor) && GetOpaque(kMaxAuthBytes, &out->body);
  }
  size_t position() const { return pos_; }

 private:
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
};

// Appends 32-bit words to a ReplyHeader.
struct HeaderWriter {
  ReplyHeader h;
  HeaderWriter& operator<<(uint32_t v) {
    uint8_t* p = h.bytes.data() + h.size;
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
    h.size += 4;
    return *this;
  }
};

std::vector<uint8_t> ToVector(const ReplyHeader& h) {
  return std::vector<uint8_t>(h.bytes.begin(), h.bytes.begin() + h.size);
}

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
  // Read straight from the record: the header is a run of 32-bit words and
  // two opaque_auths, and this runs for every call (through libtirpc's
  // stream it was ~800 instructions, docs/performance.md).
  CallHeaderDecode out;
  CallHeader& h = out.header;
  WordReader r(record);
  uint32_t mtype = 0;
  if (!r.Get(&h.xid) || !r.Get(&mtype)) {
    out.reason = "record shorter than an RPC message header";
    return out;
  }
  if (mtype != kCall) {
    out.reason = "not a CALL";
    return out;
  }
  if (!r.Get(&h.rpcvers)) {
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
  if (!r.Get(&h.prog) || !r.Get(&h.vers) || !r.Get(&h.proc)) {
    out.reason = "truncated call header (prog, vers, proc)";
    return out;
  }
  if (!r.GetAuth(&h.cred)) {
    out.outcome = CallHeaderDecode::Outcome::kAuthError;
    out.auth_stat = kAuthBadCred;
    out.reason = "credential truncated or over 400 bytes";
    return out;
  }
  if (!r.GetAuth(&h.verf)) {
    out.outcome = CallHeaderDecode::Outcome::kAuthError;
    out.auth_stat = kAuthBadVerf;
    out.reason = "verifier truncated or over 400 bytes";
    return out;
  }
  h.args_offset = r.position();
  out.outcome = CallHeaderDecode::Outcome::kOk;
  return out;
}

std::optional<AuthSysParms> DecodeAuthSys(std::span<const uint8_t> body) {
  AuthSysParms p;
  if (!DecodeAuthSysInto(body, &p)) return std::nullopt;
  return p;
}

bool DecodeAuthSysInto(std::span<const uint8_t> body, AuthSysParms* out) {
  WordReader r(body);
  std::span<const uint8_t> name;
  uint32_t ngids = 0;
  if (!r.Get(&out->stamp) || !r.GetOpaque(kMaxMachineName, &name) ||
      !r.Get(&out->uid) || !r.Get(&out->gid) || !r.Get(&ngids) ||
      ngids > kMaxAuthSysGids) {
    return false;
  }
  // assign() keeps the capacity of a reused AuthSysParms.
  out->machine_name.assign(reinterpret_cast<const char*>(name.data()),
                           name.size());
  out->gids.resize(ngids);
  for (uint32_t& g : out->gids) {
    if (!r.Get(&g)) return false;
  }
  // A well-formed body is exactly an authsys_parms: trailing bytes mean the
  // client encoded something else.
  return r.position() == body.size();
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
      if (!DecodeAuthSysInto(header.cred.body, &out.creds.sys.emplace())) {
        out.creds.sys.reset();
        out.auth_stat = kAuthBadCred;
      }
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

ReplyHeader AcceptedReplyHeader(uint32_t xid, uint32_t accept_stat,
                                uint32_t low, uint32_t high) {
  HeaderWriter w;
  // MSG_ACCEPTED, then an AUTH_NONE verifier (flavor, empty body).
  w << xid << kReply << 0 << kAuthNone << 0 << accept_stat;
  if (accept_stat == kProgMismatch) w << low << high;
  return w.h;
}

ReplyHeader RpcMismatchReplyHeader(uint32_t xid, uint32_t low,
                                   uint32_t high) {
  HeaderWriter w;
  w << xid << kReply << 1 /* MSG_DENIED */ << 0 /* RPC_MISMATCH */ << low
    << high;
  return w.h;
}

ReplyHeader AuthErrorReplyHeader(uint32_t xid, uint32_t auth_stat) {
  HeaderWriter w;
  w << xid << kReply << 1 /* MSG_DENIED */ << 1 /* AUTH_ERROR */ << auth_stat;
  return w.h;
}

std::vector<uint8_t> EncodeAcceptedReply(uint32_t xid, uint32_t accept_stat,
                                         uint32_t low, uint32_t high) {
  return ToVector(AcceptedReplyHeader(xid, accept_stat, low, high));
}

std::vector<uint8_t> EncodeRpcMismatchReply(uint32_t xid, uint32_t low,
                                            uint32_t high) {
  return ToVector(RpcMismatchReplyHeader(xid, low, high));
}

std::vector<uint8_t> EncodeAuthErrorReply(uint32_t xid, uint32_t auth_stat) {
  return ToVector(AuthErrorReplyHeader(xid, auth_stat));
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
