#include "libnamespace/include/namespace/status.h"

namespace ns {

Status::Status(Code code, std::string_view ctx, std::string_view detail)
    : rep_(std::make_shared<const Rep>(
          Rep{code, std::string(ctx), std::string(detail)})) {}

#define NS_STATUS_FACTORY(Name, code)                                   \
  Status Status::Name(std::string_view ctx, std::string_view detail) {  \
    return Status(Code::code, ctx, detail);                             \
  }
NS_STATUS_FACTORY(NotFound, kNotFound)
NS_STATUS_FACTORY(Exists, kExists)
NS_STATUS_FACTORY(NotDir, kNotDir)
NS_STATUS_FACTORY(IsDir, kIsDir)
NS_STATUS_FACTORY(NotEmpty, kNotEmpty)
NS_STATUS_FACTORY(Invalid, kInvalid)
NS_STATUS_FACTORY(NameTooLong, kNameTooLong)
NS_STATUS_FACTORY(AccessDenied, kAccessDenied)
NS_STATUS_FACTORY(NotPermitted, kNotPermitted)
NS_STATUS_FACTORY(Stale, kStale)
NS_STATUS_FACTORY(Loop, kLoop)
NS_STATUS_FACTORY(TooManyLinks, kTooManyLinks)
NS_STATUS_FACTORY(NotSupported, kNotSupported)
NS_STATUS_FACTORY(TooBig, kTooBig)
NS_STATUS_FACTORY(Corruption, kCorruption)
NS_STATUS_FACTORY(IOError, kIOError)
NS_STATUS_FACTORY(Unavailable, kUnavailable)
NS_STATUS_FACTORY(ReadOnly, kReadOnly)
NS_STATUS_FACTORY(SchemaTooOld, kSchemaTooOld)
NS_STATUS_FACTORY(SchemaTooNew, kSchemaTooNew)
NS_STATUS_FACTORY(Retry, kRetry)
NS_STATUS_FACTORY(NoSpace, kNoSpace)
#undef NS_STATUS_FACTORY

int Status::Errno() const {
  switch (code()) {
    case Code::kOk: return 0;
    case Code::kNotFound: return ENOENT;
    case Code::kExists: return EEXIST;
    case Code::kNotDir: return ENOTDIR;
    case Code::kIsDir: return EISDIR;
    case Code::kNotEmpty: return ENOTEMPTY;
    case Code::kInvalid: return EINVAL;
    case Code::kNameTooLong: return ENAMETOOLONG;
    case Code::kAccessDenied: return EACCES;
    case Code::kNotPermitted: return EPERM;
    case Code::kStale: return ESTALE;
    case Code::kLoop: return ELOOP;
    case Code::kTooManyLinks: return EMLINK;
    case Code::kNotSupported: return EOPNOTSUPP;
    case Code::kReadOnly: return EROFS;
    case Code::kTooBig: return E2BIG;
    case Code::kUnavailable:
    case Code::kRetry: return EAGAIN;
    case Code::kNoSpace: return ENOSPC;
    case Code::kCorruption:
    case Code::kIOError:
    case Code::kSchemaTooOld:
    case Code::kSchemaTooNew: return EIO;
  }
  return EIO;
}

std::string_view Status::Reason() const {
  switch (code()) {
    case Code::kOk: return "OK";
    case Code::kNotFound: return "No such file or directory";
    case Code::kExists: return "File exists";
    case Code::kNotDir: return "Not a directory";
    case Code::kIsDir: return "Is a directory";
    case Code::kNotEmpty: return "Directory not empty";
    case Code::kInvalid: return "Invalid argument";
    case Code::kNameTooLong: return "File name too long";
    case Code::kAccessDenied: return "Permission denied";
    case Code::kNotPermitted: return "Operation not permitted";
    case Code::kStale: return "Stale file handle";
    case Code::kLoop: return "Too many levels of symbolic links";
    case Code::kTooManyLinks: return "Too many links";
    case Code::kNotSupported: return "Operation not supported";
    case Code::kReadOnly: return "Read-only file system";
    case Code::kTooBig: return "Argument list too long";
    case Code::kCorruption: return "Database corrupt";
    case Code::kIOError: return "Input/output error";
    case Code::kUnavailable: return "Database unavailable";
    case Code::kSchemaTooOld: return "Database schema too old";
    case Code::kSchemaTooNew: return "Database schema too new";
    case Code::kRetry: return "Transient conflict";
    case Code::kNoSpace: return "No space left on device";
  }
  return "Unknown error";
}

std::string_view Status::Context() const {
  return rep_ ? std::string_view(rep_->ctx) : std::string_view();
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s;
  if (!rep_->ctx.empty()) {
    s += rep_->ctx;
    s += ": ";
  }
  s += Reason();
  if (!rep_->detail.empty()) {
    s += " (";
    s += rep_->detail;
    s += ")";
  }
  return s;
}

}  // namespace ns
