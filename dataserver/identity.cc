#include "dataserver/identity.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace dataserver {
namespace {

bool IsUuidText(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<pnfs::Key> LoadKey(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot read the pNFS key " + path + ": " + std::strerror(errno) +
             " (copy the MDS's pnfs.key there, or name it with --key-file)";
    return std::nullopt;
  }
  pnfs::Key key{};
  uint8_t extra = 0;
  ssize_t n = ::read(fd, key.data(), key.size());
  ssize_t more = n == static_cast<ssize_t>(key.size()) ? ::read(fd, &extra, 1) : 0;
  ::close(fd);
  if (n != static_cast<ssize_t>(key.size()) || more != 0) {
    *error = "the pNFS key " + path + " must be exactly " +
             std::to_string(pnfs::kKeyBytes) + " bytes";
    return std::nullopt;
  }
  return key;
}

std::optional<std::string> LoadOrCreateUuid(const std::string& data_dir,
                                            std::string* error) {
  const std::string path = data_dir + "/ds.uuid";
  if (FILE* f = std::fopen(path.c_str(), "re")) {
    char buf[64] = {};
    size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    std::string s(buf, n);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    if (!IsUuidText(s)) {
      *error = path + " does not hold a uuid";
      return std::nullopt;
    }
    return s;
  } else if (errno != ENOENT) {
    *error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  uint8_t b[16];
  if (RAND_bytes(b, sizeof b) != 1) {
    *error = "cannot generate a uuid";
    return std::nullopt;
  }
  b[6] = (b[6] & 0x0f) | 0x40;  // version 4 (random), RFC 9562
  b[8] = (b[8] & 0x3f) | 0x80;  // variant
  char text[40];
  std::snprintf(text, sizeof text,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                "%02x%02x%02x%02x%02x%02x",
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
                b[10], b[11], b[12], b[13], b[14], b[15]);
  const std::string uuid(text);
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = "cannot create " + tmp + ": " + std::strerror(errno);
    return std::nullopt;
  }
  const std::string line = uuid + "\n";
  bool ok = ::write(fd, line.data(), line.size()) ==
                static_cast<ssize_t>(line.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot write " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  // The rename itself must survive a crash, or a restart would make a new
  // identity.
  if (int dfd = ::open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return uuid;
}

}  // namespace dataserver
