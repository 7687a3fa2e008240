#include "nfs41d/data/data_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <cstdio>
#include <limits>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "nfs41d/lru_map.h"

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

ns::Status SyncPath(const std::string& path, int flags) {
  Fd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (fd.get() < 0 || ::fsync(fd.get()) != 0) {
    return PosixError("sync " + path, errno);
  }
  return ns::Status::Ok();
}

constexpr uint64_t kMaxOffset = std::numeric_limits<int64_t>::max();

// Stripe and data files kept open between calls (LocalDataStore's cache).
// 64 stays far below the usual 1,024 descriptors a daemon gets, next to its
// sockets; a file streamed by a client stays open for its whole transfer.
constexpr size_t kMaxOpenFiles = 64;

// One data file's descriptor, shared by the calls using it: closed when the
// cache has dropped it and the last caller is done.
struct OpenFile {
  explicit OpenFile(int f) : fd(f) {}
  ~OpenFile() {
    ::close(fd);
    if (direct_fd >= 0) ::close(direct_fd);
  }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  const int fd;
  // Writers of this file take turns here. The kernel serializes buffered
  // writes of one inode anyway (ext4 takes the inode's rwsem), but its
  // waiters spin on the rwsem while its holder copies: with 4-8 WRITEs of
  // one stripe file in flight that spinning took ~40% of a data server's
  // CPU on 2 cores (docs/performance.md, pNFS throughput). A waiter here
  // sleeps and leaves the core to the writer.
  std::mutex write_mu;
  // The same inode opened with O_DIRECT (LocalDataStoreOptions), made at
  // the first direct write; kNoDirect when the file system refused it.
  // Guarded by write_mu.
  int direct_fd = -1;
};
constexpr int kNoDirect = -2;

// O_DIRECT alignment of offsets, lengths and memory: 4 KiB covers the
// 512 B and 4 KiB logical blocks of common disks; a device wanting more
// answers EINVAL, and Write then keeps that file buffered.
// aligned_alloc needs sizes in multiples of it: direct lengths are.
constexpr size_t kDirectAlign = 4096;
// Largest direct write (one buffer per writing thread); longer ones are
// buffered. Twice a data server's 1 MiB I/O size.
constexpr size_t kMaxDirectWrite = 2u << 20;

// The calling thread's 4 KiB-aligned staging buffer of at least `n` bytes
// (the RPC layer's buffers are not aligned).
uint8_t* AlignedScratch(size_t n) {
  struct Freer {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<uint8_t, Freer> buf;
  thread_local size_t size = 0;
  if (size < n) {
    buf.reset(static_cast<uint8_t*>(std::aligned_alloc(kDirectAlign, n)));
    size = buf ? n : 0;
  }
  return buf.get();
}

class LocalDataStore final : public DataStore {
 public:
  LocalDataStore(std::string dir, LocalDataStoreOptions options)
      : dir_(std::move(dir)), options_(options) {}

  ns::Result<size_t> Read(ns::InodeId ino, uint64_t offset,
                          std::span<uint8_t> out) override {
    if (offset >= kMaxOffset || out.empty()) return size_t{0};
    ns::Result<std::shared_ptr<OpenFile>> f = Acquire(ino, false);
    if (!f.ok()) return f.status();
    if (*f == nullptr) return size_t{0};  // never written
    const int fd = (*f)->fd;
    size_t done = 0;
    // pread may return short counts; stop at end of file (0).
    for (int i = 0; i < 1024 && done < out.size(); ++i) {
      ssize_t n = ::pread(fd, out.data() + done, out.size() - done,
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
    ns::Result<std::shared_ptr<OpenFile>> f = Acquire(ino, true);
    if (!f.ok()) return f.status();
    OpenFile& file = **f;
    {
      std::lock_guard turn(file.write_mu);
      const int direct = DirectFd(file, offset, data.size());
      std::span<const uint8_t> src = data;
      if (direct >= 0 &&
          reinterpret_cast<uintptr_t>(data.data()) % kDirectAlign != 0) {
        uint8_t* staged = AlignedScratch(data.size());
        if (staged == nullptr) return PosixError("write " + Name(ino), ENOMEM);
        std::memcpy(staged, data.data(), data.size());
        src = {staged, data.size()};
      }
      // EINVAL from a direct write: the file system or device wants another
      // alignment than 4 KiB; this file is written through the cache from
      // now on (nothing was written: the kernel checks before it starts).
      ns::Status s = PwriteAll(direct >= 0 ? direct : file.fd, src, offset, ino);
      if (!s.ok() && direct >= 0 && s.IsInvalid()) {
        ::close(file.direct_fd);
        file.direct_fd = kNoDirect;
        s = PwriteAll(file.fd, data, offset, ino);
      }
      if (!s.ok()) return s;
    }
    return SyncFd(file.fd, ino, stability);
  }

  ns::Status Truncate(ns::InodeId ino, uint64_t size) override {
    if (size > kMaxOffset) {
      return ns::Status::Invalid("truncate " + Name(ino), "size too large");
    }
    // A cached descriptor stays right: truncation keeps the inode.
    if (size == 0) {
      if (::truncate(Path(ino).c_str(), 0) == 0 || errno == ENOENT) {
        return ns::Status::Ok();
      }
      return PosixError("truncate " + Name(ino), errno);
    }
    ns::Result<std::shared_ptr<OpenFile>> f = Acquire(ino, true);
    if (!f.ok()) return f.status();
    if (::ftruncate((*f)->fd, static_cast<off_t>(size)) != 0) {
      return PosixError("truncate " + Name(ino), errno);
    }
    return ns::Status::Ok();
  }

  ns::Status Remove(ns::InodeId ino) override {
    if (::unlink(Path(ino).c_str()) != 0 && errno != ENOENT) {
      return PosixError("remove " + Name(ino), errno);
    }
    // After the unlink: a descriptor opened before it (by a call racing
    // this one) is dropped here or never cached (Acquire checks the
    // epoch), so no later write goes to the removed inode.
    Forget(ino);
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
    // Any descriptor of the inode syncs all of its dirty pages.
    ns::Result<std::shared_ptr<OpenFile>> f = Acquire(ino, false);
    if (!f.ok()) return f.status();
    if (*f == nullptr) return ns::Status::Ok();
    return SyncFd((*f)->fd, ino, stability);
  }

  void StartWriteback(ns::InodeId ino, uint64_t offset,
                      uint64_t length) override {
    if (length == 0) return;
    ns::Result<std::shared_ptr<OpenFile>> f = Acquire(ino, false);
    if (!f.ok() || *f == nullptr) return;
    (void)::sync_file_range((*f)->fd, static_cast<off64_t>(offset),
                            static_cast<off64_t>(length),
                            SYNC_FILE_RANGE_WRITE);
  }

 private:
  static std::string Name(ns::InodeId ino) {
    return "data of inode " + std::to_string(ino);
  }
  std::string Path(ns::InodeId ino) const {
    return dir_ + "/" + LocalDataPath(ino);
  }

  // pwrite of all of `data` at `offset` (short counts continue).
  ns::Status PwriteAll(int fd, std::span<const uint8_t> data, uint64_t offset,
                       ns::InodeId ino) {
    size_t done = 0;
    for (int i = 0; i < 1024 && done < data.size(); ++i) {
      ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done,
                           static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return PosixError("write " + Name(ino), errno);
      }
      done += static_cast<size_t>(n);
    }
    if (done < data.size()) return PosixError("write " + Name(ino), EIO);
    return ns::Status::Ok();
  }

  // The O_DIRECT descriptor for a write of `length` bytes at `offset`, or
  // -1 when this write goes through the page cache (options, alignment,
  // size, a file system without O_DIRECT). REQUIRES: file.write_mu held.
  int DirectFd(OpenFile& file, uint64_t offset, size_t length) {
    if (options_.direct_write_min == 0 || length < options_.direct_write_min ||
        length > kMaxDirectWrite || offset % kDirectAlign != 0 ||
        length % kDirectAlign != 0 || file.direct_fd == kNoDirect) {
      return -1;
    }
    if (file.direct_fd < 0) {
      // Through /proc: the very inode `file.fd` names, even if its name
      // was removed or reused since.
      const std::string self = "/proc/self/fd/" + std::to_string(file.fd);
      file.direct_fd = ::open(self.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
      if (file.direct_fd < 0) file.direct_fd = kNoDirect;
    }
    return file.direct_fd >= 0 ? file.direct_fd : -1;
  }

  ns::Status SyncFd(int fd, ns::InodeId ino, Stability stability) {
    int rc = 0;
    if (stability == Stability::kDataSync) rc = ::fdatasync(fd);
    if (stability == Stability::kFileSync) rc = ::fsync(fd);
    if (rc != 0) return PosixError("sync " + Name(ino), errno);
    return ns::Status::Ok();
  }

  // `ino`'s data file, open read-write, from the cache or opened now (and
  // cached); created (with its fan-out directories) when `create`.
  // nullptr when it does not exist and !create. The open runs outside the
  // lock (creating a leaf directory fsyncs); a Remove meanwhile bumps the
  // epoch, and then the descriptor serves this call only.
  ns::Result<std::shared_ptr<OpenFile>> Acquire(ns::InodeId ino, bool create) {
    uint64_t epoch;
    {
      std::lock_guard lock(cache_mu_);
      auto it = open_.Find(ino);
      if (it != open_.end()) {
        open_.Touch(it);
        return it->second.value;
      }
      epoch = epoch_;
    }
    int fd = -1;
    if (create) {
      ns::Result<int> opened = OpenForWrite(ino);
      if (!opened.ok()) return opened.status();
      fd = *opened;
    } else {
      fd = ::open(Path(ino).c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) {
        if (errno == ENOENT) return std::shared_ptr<OpenFile>();
        return PosixError("open " + Name(ino), errno);
      }
    }
    auto file = std::make_shared<OpenFile>(fd);
    std::lock_guard lock(cache_mu_);
    if (epoch != epoch_) return file;
    auto it = open_.Find(ino);
    if (it != open_.end()) return it->second.value;  // another caller won
    // Eviction drops only the cache's reference: a caller still using the
    // evicted descriptor keeps it open.
    open_.InsertOrAssign(ino, file, kMaxOpenFiles,
                         [](ns::InodeId, std::shared_ptr<OpenFile>&) {});
    return file;
  }

  // Drops `ino`'s descriptor from the cache (closed once its users finish).
  void Forget(ns::InodeId ino) {
    std::lock_guard lock(cache_mu_);
    ++epoch_;
    open_.Erase(ino);
  }

  // An fd open for writing, creating the fan-out directories on first use.
  ns::Result<int> OpenForWrite(ns::InodeId ino) {
    const std::string path = Path(ino);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
      const std::filesystem::path leaf =
          std::filesystem::path(path).parent_path();
      std::error_code ec;
      std::filesystem::create_directories(leaf, ec);
      if (ec) return PosixError("mkdir for " + Name(ino), ec.value());
      // A new leaf (one per 256 inodes) is made durable in its parents at
      // once, so a later fsync of a file in it is enough on a journaling
      // filesystem (ext4, XFS persist a new file's name with its fsync).
      for (const auto& d : {leaf.parent_path(), std::filesystem::path(dir_)}) {
        ns::Status st = SyncPath(d.string(), O_RDONLY | O_DIRECTORY);
        if (!st.ok()) return st;
      }
      fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
    if (fd < 0) return PosixError("open " + Name(ino), errno);
    return fd;
  }

  const std::string dir_;
  const LocalDataStoreOptions options_;
  std::mutex cache_mu_;
  // At most kMaxOpenFiles, least recently used evicted; guarded by cache_mu_.
  LruMap<ns::InodeId, std::shared_ptr<OpenFile>> open_;
  uint64_t epoch_ = 0;  // Forget calls so far; guarded by cache_mu_
};

}  // namespace

std::string LocalDataPath(ns::InodeId ino) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%02x/%02x/%016llx",
                static_cast<unsigned>((ino >> 16) & 0xff),
                static_cast<unsigned>((ino >> 8) & 0xff),
                static_cast<unsigned long long>(ino));
  return buf;
}

namespace {

// Names the layout in use; absent in a store made before it (version 1:
// the low byte, then the second byte, so that each of the first 65,536
// inodes made its own leaf directory, one mkdir per created file).
constexpr char kLayoutFile[] = "LAYOUT";
constexpr std::string_view kLayoutV2 = "2\n";

bool IsHex(std::string_view s, size_t n) {
  return s.size() == n &&
         s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// Moves every data file of `leaf` (a leaf directory of either layout) to
// where LocalDataPath puts it. Files already there stay. Returns how many
// moved.
ns::Result<size_t> MoveLeaf(const std::string& dir,
                            const std::filesystem::path& leaf) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(leaf, ec)) {
    names.push_back(e.path().filename().string());
  }
  if (ec) return PosixError("list " + leaf.string(), ec.value());
  const std::string rel = leaf.parent_path().filename().string() + "/" +
                          leaf.filename().string() + "/";
  size_t moved = 0;
  for (const std::string& name : names) {
    if (!IsHex(name, 16)) continue;  // not ours: left alone
    const ns::InodeId ino = std::stoull(name, nullptr, 16);
    const std::string want = LocalDataPath(ino);
    if (rel + name == want) continue;
    const std::filesystem::path to = dir + "/" + want;
    std::filesystem::create_directories(to.parent_path(), ec);
    if (ec) return PosixError("mkdir " + to.parent_path().string(), ec.value());
    if (::rename((leaf / name).c_str(), to.c_str()) != 0) {
      return PosixError("move " + (leaf / name).string(), errno);
    }
    ++moved;
  }
  ::rmdir(leaf.c_str());  // fails (and stays) if files are left: fine
  return moved;
}

// Brings a store to layout 2 once: renames (atomic, so a crash halfway
// leaves every file readable in one place or the other, and the next open
// finishes), makes the renames durable (syncfs, only if there were any),
// then writes LAYOUT.
// Errors: IOError, Invalid for a LAYOUT this version does not know.
ns::Status UpgradeLayout(const std::string& dir) {
  const std::string marker = dir + "/" + kLayoutFile;
  if (std::FILE* f = std::fopen(marker.c_str(), "re")) {
    char buf[16] = {};
    const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    if (std::string_view(buf, n) == kLayoutV2) return ns::Status::Ok();
    return ns::Status::Invalid("data directory " + dir,
                               "unknown layout in " + marker);
  }
  std::vector<std::filesystem::path> leaves;
  std::error_code ec;
  for (const auto& top : std::filesystem::directory_iterator(dir, ec)) {
    if (!top.is_directory(ec) || !IsHex(top.path().filename().string(), 2)) {
      continue;
    }
    for (const auto& leaf : std::filesystem::directory_iterator(top, ec)) {
      if (leaf.is_directory(ec) && IsHex(leaf.path().filename().string(), 2)) {
        leaves.push_back(leaf.path());
      }
    }
    if (ec) break;
  }
  if (ec) return PosixError("list " + dir, ec.value());
  size_t moved = 0;
  for (const auto& leaf : leaves) {
    ns::Result<size_t> n = MoveLeaf(dir, leaf);
    if (!n.ok()) return n.status();
    moved += *n;
  }
  if (moved > 0) {
    Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.get() < 0 || ::syncfs(d.get()) != 0) {
      return PosixError("sync " + dir, errno);
    }
  }
  const std::string tmp = marker + ".tmp";
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) return PosixError("create " + tmp, errno);
    const ssize_t n = ::write(fd.get(), kLayoutV2.data(), kLayoutV2.size());
    if (n != static_cast<ssize_t>(kLayoutV2.size())) {
      return PosixError("write " + tmp, n < 0 ? errno : EIO);
    }
  }
  NS_RETURN_IF_ERROR(SyncPath(tmp, O_RDONLY));
  if (::rename(tmp.c_str(), marker.c_str()) != 0) {
    return PosixError("rename " + tmp, errno);
  }
  return SyncPath(dir, O_RDONLY | O_DIRECTORY);
}

}  // namespace

ns::Result<std::unique_ptr<DataStore>> OpenLocalDataStore(
    const std::string& dir, LocalDataStoreOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return PosixError("data directory " + dir, ec.value());
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return PosixError("data directory " + dir, errno);
  }
  try {
    NS_RETURN_IF_ERROR(UpgradeLayout(dir));
  } catch (const std::filesystem::filesystem_error& e) {
    // directory_iterator's increment throws; a bad tree must not crash.
    return PosixError("upgrade of data directory " + dir, e.code().value());
  }
  return std::unique_ptr<DataStore>(new LocalDataStore(dir, options));
}

}  // namespace nfs41d::data
