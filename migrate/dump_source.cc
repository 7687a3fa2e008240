// dump:FILE — reads the canonical dump with large read(2)s and parses one
// line at a time; memory is the read buffer plus the longest line.

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "migrate/source.h"

namespace nsmigrate {
namespace {

constexpr size_t kReadSize = 1 << 20;

class DumpSource final : public Source {
 public:
  DumpSource(int fd, std::string path, uint64_t size)
      : fd_(fd), path_(std::move(path)), uri_("dump:" + path_), size_(size) {}
  ~DumpSource() override { ::close(fd_); }

  ns::Status ReadHeader() {
    NS_ASSIGN_OR_RETURN(std::optional<std::string_view> line, NextLine());
    if (!line) {
      return ns::Status::Invalid(uri_, "empty file: no dump header line");
    }
    NS_ASSIGN_OR_RETURN(DumpHeader h, parser_.ParseHeader(*line, line_));
    (void)h;
    return ns::Status::Ok();
  }

  ns::Result<std::optional<Entry>> Next() override {
    while (true) {
      NS_ASSIGN_OR_RETURN(std::optional<std::string_view> line, NextLine());
      if (!line) return std::optional<Entry>();
      if (line->empty()) {
        return ns::Status::Invalid(fmt::format("dump line {}", line_),
                                   "empty line");
      }
      NS_ASSIGN_OR_RETURN(Entry e, parser_.ParseEntry(*line, line_));
      return std::optional<Entry>(std::move(e));
    }
  }

  SourcePos Position() const override { return SourcePos{consumed_, line_}; }

  ns::Status Seek(const SourcePos& pos) override {
    if (pos.offset > size_) {
      return ns::Status::Invalid(uri_, fmt::format("checkpoint offset {} is "
                                                   "past the end ({} bytes): "
                                                   "not the same dump",
                                                   pos.offset, size_));
    }
    if (::lseek(fd_, static_cast<off_t>(pos.offset), SEEK_SET) < 0) {
      return ns::Status::IOError(uri_, std::strerror(errno));
    }
    buf_.clear();
    start_ = 0;
    eof_ = false;
    consumed_ = pos.offset;
    line_ = pos.line;
    return ns::Status::Ok();
  }

  std::optional<double> Fraction() const override {
    if (size_ == 0) return std::nullopt;
    return static_cast<double>(consumed_) / static_cast<double>(size_);
  }

  const std::string& Uri() const override { return uri_; }

 private:
  // The next line without its '\n' (valid until the next call), nullopt at
  // the end of the file. A last line without '\n' is still a line.
  ns::Result<std::optional<std::string_view>> NextLine() {
    while (true) {
      const size_t nl = buf_.find('\n', scan_from_);
      if (nl != std::string::npos) {
        std::string_view line(buf_.data() + start_, nl - start_);
        consumed_ += nl + 1 - start_;
        start_ = nl + 1;
        scan_from_ = start_;
        ++line_;
        return std::optional<std::string_view>(line);
      }
      if (eof_) {
        if (start_ == buf_.size()) return std::optional<std::string_view>();
        std::string_view line(buf_.data() + start_, buf_.size() - start_);
        consumed_ += buf_.size() - start_;
        start_ = buf_.size();
        scan_from_ = start_;
        ++line_;
        return std::optional<std::string_view>(line);
      }
      // Keep the unfinished line, read more after it.
      buf_.erase(0, start_);
      start_ = 0;
      scan_from_ = buf_.size();
      const size_t old = buf_.size();
      buf_.resize(old + kReadSize);
      ssize_t n;
      do {
        n = ::read(fd_, buf_.data() + old, kReadSize);
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        return ns::Status::IOError(uri_, std::strerror(errno));
      }
      buf_.resize(old + static_cast<size_t>(n));
      if (n == 0) eof_ = true;
    }
  }

  int fd_;
  std::string path_;
  std::string uri_;
  uint64_t size_;
  DumpParser parser_;
  std::string buf_;
  size_t start_ = 0;      // start of the next line in buf_
  size_t scan_from_ = 0;  // where to look for '\n'
  bool eof_ = false;
  uint64_t consumed_ = 0;  // file offset of buf_[start_]
  uint64_t line_ = 0;      // lines returned so far
};

}  // namespace

ns::Result<std::unique_ptr<Source>> OpenDumpSource(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT)
      return ns::Status::NotFound("dump:" + path, std::strerror(err));
    return ns::Status::Unavailable("dump:" + path, std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return ns::Status::Invalid("dump:" + path, "not a regular file");
  }
  auto src =
      std::make_unique<DumpSource>(fd, path, static_cast<uint64_t>(st.st_size));
  NS_RETURN_IF_ERROR(src->ReadHeader());
  return std::unique_ptr<Source>(std::move(src));
}

void SkipLog::Skip(std::string_view where, std::string_view why) {
  ++count_;
  if (out_) fmt::print(out_, "skipped: {}: {}\n", where, why);
}

ns::Result<ns::FileType> FileTypeOfMode(uint32_t mode, std::string_view what) {
  switch (mode & 0170000) {
    case 0040000: return ns::FileType::kDirectory;
    case 0100000: return ns::FileType::kRegular;
    case 0120000: return ns::FileType::kSymlink;
    case 0060000: return ns::FileType::kBlockDevice;
    case 0020000: return ns::FileType::kCharDevice;
    case 0010000: return ns::FileType::kFifo;
    case 0140000: return ns::FileType::kSocket;
  }
  return ns::Status::Invalid(std::string(what), fmt::format("{:o}", mode));
}

std::string RedactUri(const std::string& uri) {
  const size_t scheme = uri.find("://");
  const size_t at = uri.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) {
    return uri;
  }
  const size_t colon = uri.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return uri;
  return uri.substr(0, colon) + ":***" + uri.substr(at);
}

ns::Result<std::unique_ptr<Source>> OpenSource(const std::string& uri,
                                               const SourceOptions& options) {
  if (uri.starts_with("dump:")) return OpenDumpSource(uri.substr(5));
  if (uri.starts_with("posix:")) {
    return OpenPosixSource(uri.substr(6), options.skips);
  }
  if (uri.starts_with("chimera:")) return OpenChimeraSource(uri);
  if (uri.starts_with("dpm:")) return OpenDpmSource(uri);
  if (uri.starts_with("sqlite:") || uri.starts_with("postgresql://") ||
      uri.starts_with("postgres://")) {
    return OpenNamespaceSource(uri);
  }
  return ns::Status::Invalid(uri,
                             "unknown source (dump:FILE, posix:/path, "
                             "chimera:postgresql://..., dpm:mysql://..., "
                             "sqlite:..., "
                             "postgresql://...)");
}

}  // namespace nsmigrate
