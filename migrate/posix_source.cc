// posix:/path — walks a local tree depth first, names sorted bytewise in
// every directory so the walk is the same on every run (resume counts
// entries). Memory: the sorted name lists of the directories on the current
// path, nothing else; no file descriptors are held across levels.

#include <acl/libacl.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "migrate/posix_acl.h"
#include "migrate/source.h"

namespace nsmigrate {
namespace {

ns::TimeNs ToNs(const struct statx_timestamp& t) {
  return static_cast<ns::TimeNs>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

ns::Status Errno(const std::string& where, int err) {
  if (err == ENOENT) return ns::Status::NotFound(where, std::strerror(err));
  if (err == EACCES || err == EPERM) {
    return ns::Status::AccessDenied(where, std::strerror(err));
  }
  return ns::Status::IOError(where, std::strerror(err));
}

class PosixSource final : public Source {
 public:
  PosixSource(std::string root, SkipLog* skips)
      : root_(std::move(root)), uri_("posix:" + root_), skips_(skips) {}

  ns::Result<std::optional<Entry>> Next() override {
    if (!started_) {
      started_ = true;
      NS_ASSIGN_OR_RETURN(Entry e, Stat(root_, "/"));
      if (e.type != ns::FileType::kDirectory) {
        return ns::Status::NotDir(uri_, "the source must be a directory");
      }
      NS_RETURN_IF_ERROR(Push(root_, "/"));
      ++returned_;
      return std::optional<Entry>(std::move(e));
    }
    // Bounded by the entries of the tree: every iteration consumes a name
    // or pops a level.
    while (!stack_.empty()) {
      Level& top = stack_.back();
      if (top.next == top.names.size()) {
        stack_.pop_back();
        continue;
      }
      const std::string name = std::move(top.names[top.next++]);
      const std::string src =
          top.src_path == "/" ? "/" + name : top.src_path + "/" + name;
      const std::string path =
          top.path == "/" ? "/" + name : top.path + "/" + name;
      if (ns::Status s = ns::ValidateName(name); !s.ok()) {
        Skip(src, s.ToString() + " (and everything below it)");
        continue;
      }
      if (path.size() > ns::kMaxPathBytes) {
        Skip(src, "path longer than 4096 bytes");
        continue;
      }
      ns::Result<Entry> e = Stat(src, path);
      if (!e.ok()) {
        if (e.status().IsNotFound()) {
          Skip(src, "vanished while reading");  // a live tree changes
          continue;
        }
        return e.status();
      }
      if (e->type == ns::FileType::kDirectory) {
        NS_RETURN_IF_ERROR(Push(src, path));
      }
      ++returned_;
      return std::optional<Entry>(std::move(*e));
    }
    return std::optional<Entry>();
  }

  SourcePos Position() const override { return {returned_, returned_}; }

  ns::Status Seek(const SourcePos& pos) override {
    // The walk is deterministic: walk again, quietly, up to the position.
    quiet_ = true;
    for (uint64_t i = returned_; i < pos.line; ++i) {
      ns::Result<std::optional<Entry>> e = Next();
      if (!e.ok()) {
        quiet_ = false;
        return e.status();
      }
      if (!*e) {
        quiet_ = false;
        return ns::Status::Invalid(
            uri_,
            fmt::format(
                "the tree has fewer than {} entries now: it changed since the "
                "interrupted run",
                pos.line));
      }
    }
    quiet_ = false;
    return ns::Status::Ok();
  }

  const std::string& Uri() const override { return uri_; }

 private:
  struct Level {
    std::string src_path;  // on the local file system
    std::string path;      // in the namespace
    std::vector<std::string> names;
    size_t next = 0;
  };

  void Skip(const std::string& where, const std::string& why) {
    if (!quiet_ && skips_) skips_->Skip(where, why);
  }

  ns::Status Push(const std::string& src, const std::string& path) {
    DIR* d = ::opendir(src.c_str());
    if (!d) return Errno("opendir " + src, errno);
    Level level{src, path, {}, 0};
    errno = 0;
    while (struct dirent* de = ::readdir(d)) {
      const std::string_view n(de->d_name);
      if (n != "." && n != "..") level.names.emplace_back(n);
    }
    const int err = errno;
    ::closedir(d);
    if (err != 0) return Errno("readdir " + src, err);
    std::sort(level.names.begin(), level.names.end());
    stack_.push_back(std::move(level));
    return ns::Status::Ok();
  }

  ns::Result<Entry> Stat(const std::string& src, const std::string& path) {
    struct statx st {};
    if (::statx(AT_FDCWD, src.c_str(), AT_SYMLINK_NOFOLLOW,
                STATX_BASIC_STATS | STATX_BTIME, &st) != 0) {
      return Errno("stat " + src, errno);
    }
    Entry e;
    e.path = path;
    switch (st.stx_mode & S_IFMT) {
      case S_IFREG:
        e.type = ns::FileType::kRegular;
        break;
      case S_IFDIR:
        e.type = ns::FileType::kDirectory;
        break;
      case S_IFLNK:
        e.type = ns::FileType::kSymlink;
        break;
      case S_IFBLK:
        e.type = ns::FileType::kBlockDevice;
        break;
      case S_IFCHR:
        e.type = ns::FileType::kCharDevice;
        break;
      case S_IFIFO:
        e.type = ns::FileType::kFifo;
        break;
      case S_IFSOCK:
        e.type = ns::FileType::kSocket;
        break;
      default:
        return ns::Status::NotSupported(src, "unknown file type");
    }
    e.mode = st.stx_mode & 07777;
    e.uid = st.stx_uid;
    e.gid = st.stx_gid;
    e.size = st.stx_size;
    e.atime = ToNs(st.stx_atime);
    e.mtime = ToNs(st.stx_mtime);
    e.ctime = ToNs(st.stx_ctime);
    e.btime = (st.stx_mask & STATX_BTIME) ? ToNs(st.stx_btime) : e.ctime;
    if (e.type == ns::FileType::kBlockDevice ||
        e.type == ns::FileType::kCharDevice) {
      e.rdev_major = st.stx_rdev_major;
      e.rdev_minor = st.stx_rdev_minor;
    }
    if (e.type != ns::FileType::kDirectory && st.stx_nlink > 1) {
      e.link_key = fmt::format("{}:{}:{}", st.stx_dev_major, st.stx_dev_minor,
                               st.stx_ino);
      e.nlink = st.stx_nlink;
    }
    if (e.type == ns::FileType::kSymlink) {
      std::string target(ns::kMaxPathBytes + 1, '\0');
      const ssize_t n = ::readlink(src.c_str(), target.data(), target.size());
      if (n < 0) return Errno("readlink " + src, errno);
      if (n == 0 || static_cast<size_t>(n) > ns::kMaxPathBytes) {
        return ns::Status::NotSupported(src,
                                        "symlink target of 0 or more "
                                        "than 4096 bytes");
      }
      target.resize(static_cast<size_t>(n));
      e.target = std::move(target);
      e.size = e.target.size();
    }
    NS_RETURN_IF_ERROR(ReadXattrs(src, &e));
    if (e.type == ns::FileType::kRegular ||
        e.type == ns::FileType::kDirectory) {
      NS_ASSIGN_OR_RETURN(
          e.acl, ReadPosixAclAsNfs4(src, e.type == ns::FileType::kDirectory));
    }
    return e;
  }

  // Every attribute but the system.* ones: POSIX ACLs arrive as e.acl, and
  // the others (e.g. system.nfs4_acl) describe the file system, not the file.
  ns::Status ReadXattrs(const std::string& src, Entry* e) {
    ssize_t len = ::llistxattr(src.c_str(), nullptr, 0);
    if (len < 0) {
      if (errno == ENOTSUP) return ns::Status::Ok();
      return Errno("listxattr " + src, errno);
    }
    if (len == 0) return ns::Status::Ok();
    std::string names(static_cast<size_t>(len), '\0');
    len = ::llistxattr(src.c_str(), names.data(), names.size());
    if (len < 0) return Errno("listxattr " + src, errno);
    names.resize(static_cast<size_t>(len));
    for (size_t pos = 0; pos < names.size();) {
      const std::string name(names.c_str() + pos);
      pos += name.size() + 1;
      if (name.starts_with("system.")) continue;
      ssize_t vlen = ::lgetxattr(src.c_str(), name.c_str(), nullptr, 0);
      if (vlen < 0) return Errno("getxattr " + src + " " + name, errno);
      std::string value(static_cast<size_t>(vlen), '\0');
      vlen = ::lgetxattr(src.c_str(), name.c_str(), value.data(), value.size());
      if (vlen < 0) return Errno("getxattr " + src + " " + name, errno);
      value.resize(static_cast<size_t>(vlen));
      e->xattrs.emplace_back(name, std::move(value));
    }
    std::sort(e->xattrs.begin(), e->xattrs.end());
    return ns::Status::Ok();
  }

  std::string root_;
  std::string uri_;
  SkipLog* skips_;
  std::vector<Level> stack_;
  bool started_ = false;
  bool quiet_ = false;
  uint64_t returned_ = 0;
};

}  // namespace

ns::Result<std::unique_ptr<Source>> OpenPosixSource(const std::string& root,
                                                    SkipLog* skips) {
  if (root.empty() || root[0] != '/') {
    return ns::Status::Invalid("posix:" + root, "the path must be absolute");
  }
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  struct stat st {};
  if (::stat(r.c_str(), &st) != 0) return Errno("posix:" + r, errno);
  if (!S_ISDIR(st.st_mode)) {
    return ns::Status::NotDir("posix:" + r, "not a directory");
  }
  return std::unique_ptr<Source>(std::make_unique<PosixSource>(r, skips));
}

}  // namespace nsmigrate
