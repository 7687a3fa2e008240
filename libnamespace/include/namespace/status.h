#pragma once

// Status and Result<T>: how every libnamespace call reports failure.
//
// Errors are values. No exception crosses the public API: the backends catch
// everything their drivers throw and translate it in exactly one place each
// (libnamespace/src/pg_errors.cc, libnamespace/src/sqlite_errors.cc).
//
// A Status is cheap on success (no allocation). Callers test it with the
// predicates (IsNotFound(), ...) or map it to an errno with Errno(); there is
// deliberately no public enum to switch on, so new kinds of error can be added
// without breaking callers.

#include <cerrno>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ns {

class Status {
 public:
  // Success.
  Status() = default;

  static Status Ok() { return Status(); }
  // ENOENT: a name that does not exist in a directory, a path component.
  static Status NotFound(std::string_view ctx, std::string_view detail = {});
  // EEXIST: the name is already taken.
  static Status Exists(std::string_view ctx, std::string_view detail = {});
  // ENOTDIR: a directory was required.
  static Status NotDir(std::string_view ctx, std::string_view detail = {});
  // EISDIR: a non-directory was required.
  static Status IsDir(std::string_view ctx, std::string_view detail = {});
  // ENOTEMPTY: a directory that must be empty is not.
  static Status NotEmpty(std::string_view ctx, std::string_view detail = {});
  // EINVAL: a malformed argument (bad name, rename into own subtree, ...).
  static Status Invalid(std::string_view ctx, std::string_view detail = {});
  // ENAMETOOLONG: a name over 255 bytes or a path over 4096.
  static Status NameTooLong(std::string_view ctx, std::string_view detail = {});
  // EACCES: the caller's credentials do not allow it.
  static Status AccessDenied(std::string_view ctx, std::string_view detail = {});
  // EPERM: only the owner or root may do this.
  static Status NotPermitted(std::string_view ctx, std::string_view detail = {});
  // ESTALE: an inode id that does not (or no longer) exist.
  static Status Stale(std::string_view ctx, std::string_view detail = {});
  // ELOOP: too many symbolic links while resolving a path.
  static Status Loop(std::string_view ctx, std::string_view detail = {});
  // EMLINK: too many hard links.
  static Status TooManyLinks(std::string_view ctx, std::string_view detail = {});
  // EOPNOTSUPP: not supported by this namespace / backend.
  static Status NotSupported(std::string_view ctx, std::string_view detail = {});
  // EROFS: the database accepts no writes here (a PostgreSQL standby).
  static Status ReadOnly(std::string_view ctx, std::string_view detail = {});
  // E2BIG: a value over its size limit (an xattr value: NFS4ERR_XATTR2BIG).
  static Status TooBig(std::string_view ctx, std::string_view detail = {});
  // EIO: the database answered with something that cannot be right.
  static Status Corruption(std::string_view ctx, std::string_view detail = {});
  // EIO: any other failure of the database or the OS.
  static Status IOError(std::string_view ctx, std::string_view detail = {});
  // EAGAIN: the database is unreachable right now; the caller may retry later
  // (an NFS server answers NFS4ERR_DELAY).
  static Status Unavailable(std::string_view ctx, std::string_view detail = {});
  // The database's schema is older than this build: run `nsadmin upgrade`.
  static Status SchemaTooOld(std::string_view ctx, std::string_view detail = {});
  // The database's schema is newer than this build knows: upgrade the tools.
  static Status SchemaTooNew(std::string_view ctx, std::string_view detail = {});
  // ENOSPC / EDQUOT: no room left: for file data (the embedded data store
  // is full) or under a per-inode quota (an inode's xattrs in total).
  static Status NoSpace(std::string_view ctx, std::string_view detail = {});
  // A transient conflict (serialization failure, deadlock, busy). Used inside
  // the library to drive retries; never returned by Namespace.
  static Status Retry(std::string_view ctx, std::string_view detail = {});

  bool ok() const { return rep_ == nullptr; }
  bool IsNotFound() const { return code() == Code::kNotFound; }
  bool IsExists() const { return code() == Code::kExists; }
  bool IsNotDir() const { return code() == Code::kNotDir; }
  bool IsIsDir() const { return code() == Code::kIsDir; }
  bool IsNotEmpty() const { return code() == Code::kNotEmpty; }
  bool IsInvalid() const { return code() == Code::kInvalid; }
  bool IsNameTooLong() const { return code() == Code::kNameTooLong; }
  bool IsAccessDenied() const { return code() == Code::kAccessDenied; }
  bool IsNotPermitted() const { return code() == Code::kNotPermitted; }
  bool IsStale() const { return code() == Code::kStale; }
  bool IsLoop() const { return code() == Code::kLoop; }
  bool IsTooManyLinks() const { return code() == Code::kTooManyLinks; }
  bool IsNotSupported() const { return code() == Code::kNotSupported; }
  bool IsTooBig() const { return code() == Code::kTooBig; }
  bool IsNoSpace() const { return code() == Code::kNoSpace; }
  bool IsCorruption() const { return code() == Code::kCorruption; }
  bool IsIOError() const { return code() == Code::kIOError; }
  bool IsUnavailable() const { return code() == Code::kUnavailable; }
  bool IsReadOnly() const { return code() == Code::kReadOnly; }
  bool IsSchemaTooOld() const { return code() == Code::kSchemaTooOld; }
  bool IsSchemaTooNew() const { return code() == Code::kSchemaTooNew; }
  bool IsRetry() const { return code() == Code::kRetry; }

  // The errno a POSIX caller would see (0 on success).
  int Errno() const;
  // The strerror-like text for the error kind, e.g. "File exists".
  std::string_view Reason() const;
  // "context: reason (detail)" — for logs and tool messages.
  std::string ToString() const;
  // Just the context given at construction.
  std::string_view Context() const;

 private:
  enum class Code {
    kOk,
    kNotFound,
    kExists,
    kNotDir,
    kIsDir,
    kNotEmpty,
    kInvalid,
    kNameTooLong,
    kAccessDenied,
    kNotPermitted,
    kStale,
    kLoop,
    kTooManyLinks,
    kNotSupported,
    kReadOnly,
    kCorruption,
    kIOError,
    kUnavailable,
    kSchemaTooOld,
    kSchemaTooNew,
    kRetry,
    kTooBig,
    kNoSpace,
  };
  struct Rep {
    Code code;
    std::string ctx;
    std::string detail;
  };
  Status(Code code, std::string_view ctx, std::string_view detail);
  Code code() const { return rep_ ? rep_->code : Code::kOk; }

  // shared_ptr keeps copies cheap; a Status is immutable once made.
  std::shared_ptr<const Rep> rep_;
};

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                   // NOLINT
  Result(Status status) : v_(std::move(status)) {}            // NOLINT
  bool ok() const { return std::holds_alternative<T>(v_); }
  // REQUIRES: !ok(). On success returns Status::Ok().
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }
  // REQUIRES: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ns

// Early-return helpers for implementation code.
#define NS_RETURN_IF_ERROR(expr)           \
  do {                                     \
    ::ns::Status ns_status_ = (expr);      \
    if (!ns_status_.ok()) return ns_status_; \
  } while (0)

#define NS_CONCAT_INNER_(a, b) a##b
#define NS_CONCAT_(a, b) NS_CONCAT_INNER_(a, b)
#define NS_ASSIGN_OR_RETURN(lhs, expr) \
  NS_ASSIGN_OR_RETURN_IMPL_(NS_CONCAT_(ns_result_, __LINE__), lhs, expr)
#define NS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
