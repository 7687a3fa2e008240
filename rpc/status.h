#pragma once

// Status and Result<T>: how the rpc library reports failure to its callers.
//
// Errors are values; nothing in rpc/ throws across its API. A Status is cheap
// on success (no allocation). Callers test it with predicates; the ONC RPC
// protocol's own codes (accept_stat, auth_stat, mismatch ranges) are exposed
// through accessors because callers such as an NFS client must act on them
// (RFC 5531 §9: an AUTH_ERROR means "retry with other credentials", a
// PROG_MISMATCH carries the versions the server does support).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace rpc {

class Status {
 public:
  // Success.
  Status() = default;
  static Status Ok() { return Status(); }

  // A socket or system call failed (connect refused, reset, ...).
  static Status IoError(std::string_view detail);
  // The connection was closed (by either side, or by Stop()) before the
  // operation could complete. A call may or may not have been executed.
  static Status Closed(std::string_view detail);
  // No reply arrived within the caller's deadline. The call may or may not
  // have been executed.
  static Status Timeout(std::string_view detail);
  // A caller's argument was unusable (message too large, bad address, ...).
  static Status InvalidArgument(std::string_view detail);
  // The peer sent bytes that are not a valid ONC RPC message.
  static Status Malformed(std::string_view detail);

  // The server rejected the call (RFC 5531 §9, MSG_DENIED): RPC version
  // mismatch with the versions it supports.
  static Status RpcMismatch(uint32_t low, uint32_t high);
  // The server rejected the call's credentials; `auth_stat` is RFC 5531's
  // auth_stat (AUTH_BADCRED, AUTH_REJECTEDCRED, AUTH_TOOWEAK, ...).
  static Status AuthError(uint32_t auth_stat);
  // The server accepted the call but did not run it (RFC 5531 §9,
  // MSG_ACCEPTED with accept_stat != SUCCESS). `low`/`high` are meaningful
  // for PROG_MISMATCH only.
  static Status NotExecuted(uint32_t accept_stat, uint32_t low = 0,
                            uint32_t high = 0);

  bool ok() const { return rep_ == nullptr; }
  bool IsIoError() const { return code() == Code::kIoError; }
  bool IsClosed() const { return code() == Code::kClosed; }
  bool IsTimeout() const { return code() == Code::kTimeout; }
  bool IsInvalidArgument() const { return code() == Code::kInvalidArgument; }
  bool IsMalformed() const { return code() == Code::kMalformed; }
  bool IsRpcMismatch() const { return code() == Code::kRpcMismatch; }
  bool IsAuthError() const { return code() == Code::kAuthError; }
  bool IsProgUnavail() const { return IsAccept(kProgUnavail); }
  bool IsProgMismatch() const { return IsAccept(kProgMismatch); }
  bool IsProcUnavail() const { return IsAccept(kProcUnavail); }
  bool IsGarbageArgs() const { return IsAccept(kGarbageArgs); }
  bool IsSystemErr() const { return IsAccept(kSystemErr); }

  // RFC 5531 auth_stat of an AuthError, else 0 (AUTH_OK).
  uint32_t auth_stat() const { return IsAuthError() ? rep_->a : 0; }
  // RFC 5531 accept_stat of a NotExecuted, else 0 (SUCCESS).
  uint32_t accept_stat() const {
    return code() == Code::kNotExecuted ? rep_->a : 0;
  }
  // Version range of an RpcMismatch or a PROG_MISMATCH, else 0.
  uint32_t mismatch_low() const { return rep_ ? rep_->low : 0; }
  uint32_t mismatch_high() const { return rep_ ? rep_->high : 0; }

  // For logs: "timeout: no reply to xid 0x1234 within 1000 ms".
  std::string ToString() const;

 private:
  // accept_stat values (RFC 5531 §9), repeated here so that this header
  // does not need libtirpc.
  static constexpr uint32_t kProgUnavail = 1;
  static constexpr uint32_t kProgMismatch = 2;
  static constexpr uint32_t kProcUnavail = 3;
  static constexpr uint32_t kGarbageArgs = 4;
  static constexpr uint32_t kSystemErr = 5;

  enum class Code {
    kOk,
    kIoError,
    kClosed,
    kTimeout,
    kInvalidArgument,
    kMalformed,
    kRpcMismatch,
    kAuthError,
    kNotExecuted,
  };
  struct Rep {
    Code code;
    uint32_t a = 0;  // auth_stat or accept_stat
    uint32_t low = 0;
    uint32_t high = 0;
    std::string detail;
  };
  explicit Status(Rep rep)
      : rep_(std::make_shared<const Rep>(std::move(rep))) {}
  Code code() const { return rep_ ? rep_->code : Code::kOk; }
  bool IsAccept(uint32_t stat) const {
    return code() == Code::kNotExecuted && rep_->a == stat;
  }

  // shared_ptr keeps copies cheap; a Status is immutable once made.
  std::shared_ptr<const Rep> rep_;
};

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit
  bool ok() const { return std::holds_alternative<T>(v_); }
  // Status::Ok() when ok().
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }
  // REQUIRES: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace rpc
