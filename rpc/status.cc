#include "rpc/status.h"

#include <fmt/format.h>

namespace rpc {

Status Status::IoError(std::string_view detail) {
  return Status(Rep{Code::kIoError, 0, 0, 0, std::string(detail)});
}
Status Status::Closed(std::string_view detail) {
  return Status(Rep{Code::kClosed, 0, 0, 0, std::string(detail)});
}
Status Status::Timeout(std::string_view detail) {
  return Status(Rep{Code::kTimeout, 0, 0, 0, std::string(detail)});
}
Status Status::InvalidArgument(std::string_view detail) {
  return Status(Rep{Code::kInvalidArgument, 0, 0, 0, std::string(detail)});
}
Status Status::Malformed(std::string_view detail) {
  return Status(Rep{Code::kMalformed, 0, 0, 0, std::string(detail)});
}
Status Status::RpcMismatch(uint32_t low, uint32_t high) {
  return Status(Rep{Code::kRpcMismatch, 0, low, high, {}});
}
Status Status::AuthError(uint32_t auth_stat) {
  return Status(Rep{Code::kAuthError, auth_stat, 0, 0, {}});
}
Status Status::NotExecuted(uint32_t accept_stat, uint32_t low, uint32_t high) {
  return Status(Rep{Code::kNotExecuted, accept_stat, low, high, {}});
}

namespace {

std::string_view AcceptStatName(uint32_t stat) {
  switch (stat) {
    case 1:
      return "PROG_UNAVAIL";
    case 2:
      return "PROG_MISMATCH";
    case 3:
      return "PROC_UNAVAIL";
    case 4:
      return "GARBAGE_ARGS";
    case 5:
      return "SYSTEM_ERR";
    default:
      return "accept_stat?";
  }
}

std::string_view AuthStatName(uint32_t stat) {
  switch (stat) {
    case 1:
      return "AUTH_BADCRED";
    case 2:
      return "AUTH_REJECTEDCRED";
    case 3:
      return "AUTH_BADVERF";
    case 4:
      return "AUTH_REJECTEDVERF";
    case 5:
      return "AUTH_TOOWEAK";
    case 6:
      return "AUTH_INVALIDRESP";
    case 7:
      return "AUTH_FAILED";
    default:
      return "auth_stat?";
  }
}

}  // namespace

std::string Status::ToString() const {
  if (!rep_) return "ok";
  switch (rep_->code) {
    case Code::kOk:
      return "ok";
    case Code::kIoError:
      return "I/O error: " + rep_->detail;
    case Code::kClosed:
      return "connection closed: " + rep_->detail;
    case Code::kTimeout:
      return "timeout: " + rep_->detail;
    case Code::kInvalidArgument:
      return "invalid argument: " + rep_->detail;
    case Code::kMalformed:
      return "malformed message: " + rep_->detail;
    case Code::kRpcMismatch:
      return fmt::format("RPC_MISMATCH (server supports {}..{})", rep_->low,
                         rep_->high);
    case Code::kAuthError:
      return fmt::format("AUTH_ERROR {}", AuthStatName(rep_->a));
    case Code::kNotExecuted:
      if (rep_->a == kProgMismatch) {
        return fmt::format("PROG_MISMATCH (server supports {}..{})", rep_->low,
                           rep_->high);
      }
      return std::string(AcceptStatName(rep_->a));
  }
  return "?";
}

}  // namespace rpc
