#include "nfs41d/data/data_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <cstdio>
#include <limits>

namespace nfs41d::data {
namespace {

// The one place where errno becomes a Status.
ns::Status PosixError(std::string_view ctx, int err) {
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return ns::Status::NoSpace(ctx, std::strerror(err));
    case EFBIG:
    case EINVAL:
      return ns::Status::Invalid(ctx, std::strerror(err));
    default:
      return ns::Status::IOError(ctx, std::strerror(err));
  }
}

// Closes on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

constexpr uint64_t kMaxOffset = std::numeric_limits<int64_t>::max();

class LocalDataStore final : public DataStore {
 public:
  explicit LocalDataStore(std::string dir) : dir_(std::move(dir)) {}

  ns::Result<size_t> Read(ns::InodeId ino, uint64_t offset,
                          std::span<uint8_t> out) override {
    if (offset >= kMaxOffset || out.empty()) return size_t{0};
    Fd fd(::open(Path(ino).c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      if (errno == ENOENT) return size_t{0};
      return PosixError("read " + Name(ino), errno);
    }
    size_t done = 0;
    // pread may return short counts; stop at end of file (0).
    for (int i = 0; i < 1024 && done < out.size(); ++i) {
      ssize_t n = ::pread(fd.get(), out.data() + done, out.size() - done,
                          static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return PosixError("read " + Name(ino), errno);
      }
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }

  ns::Status Write(ns::InodeId ino, uint64_t offset,
                   std::span<const uint8_t> data,
                   Stability stability) override {
    if (offset > kMaxOffset || data.size() > kMaxOffset - offset) {
      return ns::Status::Invalid("write " + Name(ino), "offset too large");
    }
    ns::Result<int> opened = OpenForWrite(ino);
    if (!opened.ok()) return opened.status();
    Fd fd(*opened);
    size_t done = 0;
    for (int i = 0; i < 1024 && done < data.size(); ++i) {
      ssize_t n = ::pwrite(fd.get(), data.data() + done, data.size() - done,
                           static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return PosixError("write " + Name(ino), errno);
      }
      done += static_cast<size_t>(n);
    }
    if (done < data.size()) return PosixError("write " + Name(ino), EIO);
    return SyncFd(fd.get(), ino, stability);
  }

  ns::Status Truncate(ns::InodeId ino, uint64_t size) override {
    if (size > kMaxOffset) {
      return ns::Status::Invalid("truncate " + Name(ino), "size too large");
    }
    if (size == 0) {
      if (::truncate(Path(ino).c_str(), 0) == 0 || errno == ENOENT) {
        return ns::Status::Ok();
      }
      return PosixError("truncate " + Name(ino), errno);
    }
    ns::Result<int> opened = OpenForWrite(ino);
    if (!opened.ok()) return opened.status();
    Fd fd(*opened);
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
      return PosixError("truncate " + Name(ino), errno);
    }
    return ns::Status::Ok();
  }

  ns::Status Remove(ns::InodeId ino) override {
    if (::unlink(Path(ino).c_str()) != 0 && errno != ENOENT) {
      return PosixError("remove " + Name(ino), errno);
    }
    return ns::Status::Ok();
  }

  ns::Result<uint64_t> SpaceUsed(ns::InodeId ino) override {
    struct stat sb;
    if (::stat(Path(ino).c_str(), &sb) != 0) {
      if (errno == ENOENT) return uint64_t{0};
      return PosixError("stat " + Name(ino), errno);
    }
    return static_cast<uint64_t>(sb.st_blocks) * 512;
  }

  ns::Status Sync(ns::InodeId ino, Stability stability) override {
    if (stability == Stability::kUnstable) return ns::Status::Ok();
    Fd fd(::open(Path(ino).c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      if (errno == ENOENT) return ns::Status::Ok();
      return PosixError("sync " + Name(ino), errno);
    }
    return SyncFd(fd.get(), ino, stability);
  }

 private:
  static std::string Name(ns::InodeId ino) {
    return "data of inode " + std::to_string(ino);
  }
  std::string Path(ns::InodeId ino) const {
    return dir_ + "/" + LocalDataPath(ino);
  }

  ns::Status SyncFd(int fd, ns::InodeId ino, Stability stability) {
    int rc = 0;
    if (stability == Stability::kDataSync) rc = ::fdatasync(fd);
    if (stability == Stability::kFileSync) rc = ::fsync(fd);
    if (rc != 0) return PosixError("sync " + Name(ino), errno);
    return ns::Status::Ok();
  }

  // An fd open for writing, creating the fan-out directories on first use.
  ns::Result<int> OpenForWrite(ns::InodeId ino) {
    const std::string path = Path(ino);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
      std::error_code ec;
      std::filesystem::create_directories(
          std::filesystem::path(path).parent_path(), ec);
      if (ec) return PosixError("mkdir for " + Name(ino), ec.value());
      fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
    if (fd < 0) return PosixError("open " + Name(ino), errno);
    return fd;
  }

  const std::string dir_;
};

}  // namespace

std::string LocalDataPath(ns::InodeId ino) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%02x/%02x/%016llx",
                static_cast<unsigned>(ino & 0xff),
                static_cast<unsigned>((ino >> 8) & 0xff),
                static_cast<unsigned long long>(ino));
  return buf;
}

ns::Result<std::unique_ptr<DataStore>> OpenLocalDataStore(
    const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return PosixError("data directory " + dir, ec.value());
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return PosixError("data directory " + dir, errno);
  }
  return std::unique_ptr<DataStore>(new LocalDataStore(dir));
}

}  // namespace nfs41d::data
