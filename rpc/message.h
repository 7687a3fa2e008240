#pragma once

// ONC RPC v2 message headers (RFC 5531 §9). What a server does per call
// (decode a call header and an AUTH_SYS body, build a reply header) reads
// and writes the XDR words in place, without an allocation; the rest uses
// libtirpc's XDR routines.
//
// A CALL is: xid, msg_type CALL, rpcvers, prog, vers, proc, a credential and
// a verifier (each an opaque_auth: flavor + up to 400 bytes), then the
// procedure's arguments. A REPLY is: xid, msg_type REPLY, then either
// MSG_ACCEPTED (verifier, accept_stat, and results or a version range) or
// MSG_DENIED (RPC_MISMATCH with a version range, or AUTH_ERROR with an
// auth_stat).
//
// These are pure functions over bytes: no sockets, so they are unit-tested
// and fuzzed directly (see rpc/fuzz.h).

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rpc/status.h"
#include "rpc/xdr_codec.h"

namespace rpc {

inline constexpr uint32_t kRpcVersion = 2;

// msg_type
inline constexpr uint32_t kCall = 0;
inline constexpr uint32_t kReply = 1;

// Authentication flavors (RFC 5531 §8.2, IANA registry).
inline constexpr uint32_t kAuthNone = 0;
inline constexpr uint32_t kAuthSys = 1;
inline constexpr uint32_t kAuthShort = 2;
inline constexpr uint32_t kAuthDh = 3;
inline constexpr uint32_t kRpcsecGss = 6;

// Largest opaque_auth body (RFC 5531 §8.2).
inline constexpr size_t kMaxAuthBytes = 400;
// authsys_parms bounds (RFC 5531 Appendix A).
inline constexpr size_t kMaxMachineName = 255;
inline constexpr size_t kMaxAuthSysGids = 16;

// accept_stat (RFC 5531 §9).
inline constexpr uint32_t kSuccess = 0;
inline constexpr uint32_t kProgUnavail = 1;
inline constexpr uint32_t kProgMismatch = 2;
inline constexpr uint32_t kProcUnavail = 3;
inline constexpr uint32_t kGarbageArgs = 4;
inline constexpr uint32_t kSystemErr = 5;

// auth_stat (RFC 5531 §9); libtirpc's enum auth_stat has the same values.
inline constexpr uint32_t kAuthOk = 0;
inline constexpr uint32_t kAuthBadCred = 1;
inline constexpr uint32_t kAuthRejectedCred = 2;
inline constexpr uint32_t kAuthBadVerf = 3;
inline constexpr uint32_t kAuthRejectedVerf = 4;
inline constexpr uint32_t kAuthTooWeak = 5;

// AUTH_SYS credential body (RFC 5531 Appendix A, authsys_parms).
struct AuthSysParms {
  uint32_t stamp = 0;
  std::string machine_name;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> gids;  // at most kMaxAuthSysGids

  bool operator==(const AuthSysParms&) const = default;
};

// The caller's identity as the server authenticated it.
struct Credentials {
  uint32_t flavor = kAuthNone;
  // Set iff flavor == kAuthSys.
  std::optional<AuthSysParms> sys;
};

// An opaque_auth as received; `body` points into the record.
struct OpaqueAuthView {
  uint32_t flavor = kAuthNone;
  std::span<const uint8_t> body;
};

struct CallHeader {
  uint32_t xid = 0;
  uint32_t rpcvers = 0;
  uint32_t prog = 0;
  uint32_t vers = 0;
  uint32_t proc = 0;
  OpaqueAuthView cred;
  OpaqueAuthView verf;
  // Offset in the record of the procedure's first argument byte.
  size_t args_offset = 0;
};

// What a server must do with a received CALL, judged from its header.
struct CallHeaderDecode {
  enum class Outcome {
    kOk,           // header decoded: authenticate and dispatch it
    kDrop,         // not even the fixed header decodes: nothing to answer
    kRpcMismatch,  // rpcvers != 2: MSG_DENIED RPC_MISMATCH (2..2)
    kAuthError,    // credential or verifier malformed: MSG_DENIED AUTH_ERROR
  };
  Outcome outcome = Outcome::kDrop;
  uint32_t auth_stat = kAuthOk;  // for kAuthError
  CallHeader header;             // xid valid unless kDrop
  const char* reason = "";       // for logs, when not kOk
};

// The xid and msg_type of any RPC message; nullopt if under 8 bytes.
struct MessagePeek {
  uint32_t xid;
  uint32_t msg_type;
};
std::optional<MessagePeek> PeekMessage(std::span<const uint8_t> record);

// Decodes the header of a CALL record. Never fails hard: every input maps to
// an Outcome (this is what the fuzz test exercises).
CallHeaderDecode DecodeCallHeader(std::span<const uint8_t> record);

// Decodes an AUTH_SYS credential body; nullopt if it is malformed: over the
// RFC's bounds, truncated, or followed by extra bytes.
std::optional<AuthSysParms> DecodeAuthSys(std::span<const uint8_t> body);
// The same into `*out` (whose string and vector keep their capacity); false
// if malformed, and `*out` is then unspecified.
bool DecodeAuthSysInto(std::span<const uint8_t> body, AuthSysParms* out);
std::vector<uint8_t> EncodeAuthSys(const AuthSysParms& parms);

// The server's authentication step (RFC 5531 §8, §9): AUTH_NONE and AUTH_SYS
// are accepted (an AUTH_SYS body must decode); AUTH_SHORT is refused with
// AUTH_REJECTEDCRED, since this server never hands out shorthand verifiers
// and the client must fall back to its full credential (RFC 5531 §10);
// every other flavor (AUTH_DH, RPCSEC_GSS, unknown) is refused with
// AUTH_TOOWEAK. On refusal, `auth_stat` says why.
struct AuthCheck {
  uint32_t auth_stat = kAuthOk;
  Credentials creds;
  bool ok() const { return auth_stat == kAuthOk; }
};
AuthCheck Authenticate(const CallHeader& header);

// A credential to send with a call.
struct Credential {
  uint32_t flavor = kAuthNone;
  std::vector<uint8_t> body;  // encoded flavor body, <= kMaxAuthBytes

  static Credential None() { return {}; }
  static Credential Sys(const AuthSysParms& parms) {
    return {kAuthSys, EncodeAuthSys(parms)};
  }
};

// Appends a CALL header (verifier AUTH_NONE) to `enc`; the caller appends
// the arguments. InvalidArgument if the credential body is over 400 bytes.
Status EncodeCallHeader(XdrEncoder& enc, uint32_t xid, uint32_t prog,
                        uint32_t vers, uint32_t proc, const Credential& cred);

// A reply header, kept inline: every reply a server sends has one, so it
// costs no allocation. The longest (MSG_ACCEPTED PROG_MISMATCH with an
// AUTH_NONE verifier) is 8 XDR words.
struct ReplyHeader {
  std::array<uint8_t, 32> bytes{};
  uint8_t size = 0;
  std::span<const uint8_t> view() const { return {bytes.data(), size}; }
};

// Reply headers, with an AUTH_NONE verifier where one is sent.
// MSG_ACCEPTED with `accept_stat`; for kProgMismatch, `low`..`high`.
ReplyHeader AcceptedReplyHeader(uint32_t xid, uint32_t accept_stat,
                                uint32_t low = 0, uint32_t high = 0);
// MSG_DENIED RPC_MISMATCH with the supported RPC versions.
ReplyHeader RpcMismatchReplyHeader(uint32_t xid, uint32_t low, uint32_t high);
// MSG_DENIED AUTH_ERROR.
ReplyHeader AuthErrorReplyHeader(uint32_t xid, uint32_t auth_stat);
// The same as byte vectors.
std::vector<uint8_t> EncodeAcceptedReply(uint32_t xid, uint32_t accept_stat,
                                         uint32_t low = 0, uint32_t high = 0);
std::vector<uint8_t> EncodeRpcMismatchReply(uint32_t xid, uint32_t low,
                                            uint32_t high);
std::vector<uint8_t> EncodeAuthErrorReply(uint32_t xid, uint32_t auth_stat);

// Decodes a REPLY record. On MSG_ACCEPTED/SUCCESS returns the offset of the
// results in `record`; otherwise the Status says what the server answered
// (RpcMismatch, AuthError, NotExecuted) or that the reply is Malformed.
Result<size_t> DecodeReply(std::span<const uint8_t> record);

}  // namespace rpc
