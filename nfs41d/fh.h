#pragma once

// NFSv4 filehandles (RFC 8881 §4): what the server hands a client to name an
// object. Ours are persistent (FH4_PERSISTENT): they hold the inode id, its
// generation and the export id, followed by a MAC (HMAC-SHA256, truncated to
// 16 bytes) keyed by a server secret, so a client cannot make one up or
// alter one.
//
// Layout (33 bytes): version(1) | export_id(4) | ino(8) | generation(4) | mac(16)
//
// Thread safety: a FhCodec is immutable after construction; use it from any
// thread.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "libnamespace/include/namespace/types.h"

namespace nfs41d {

struct FileHandle {
  ns::InodeId ino = 0;
  uint32_t generation = 0;
  uint32_t export_id = 0;
  bool operator==(const FileHandle&) const = default;
};

inline constexpr size_t kFhSecretBytes = 32;
inline constexpr size_t kFhBytes = 33;

class FhCodec {
 public:
  explicit FhCodec(std::array<uint8_t, kFhSecretBytes> secret);

  std::vector<uint8_t> Encode(const FileHandle& fh) const;
  // nullopt when the bytes are not a handle this server made (wrong size,
  // version, or MAC): NFS4ERR_BADHANDLE. Each thread remembers the last
  // handles it verified (a small direct-mapped table of exact bytes), so a
  // handle a client sends again costs a 33-byte compare instead of an
  // HMAC; only bytes that verified are remembered.
  std::optional<FileHandle> Decode(std::span<const uint8_t> bytes) const;

 private:
  std::array<uint8_t, 16> Mac(std::span<const uint8_t> body) const;
  // Identifies the key for the per-thread memo of verified handles
  // (fh.cc): unique per codec constructed, shared by its copies.
  uint64_t serial_ = 0;
  // HMAC-SHA256 with the key's inner and outer pads already hashed, so a
  // MAC costs two digest-context copies and two short updates instead of
  // OpenSSL 3's one-shot HMAC() (a digest fetch and a context allocation
  // per call: 4.5 us of PUTFH's time, docs/performance.md). Shared by
  // copies of the codec; read-only after construction.
  struct Keyed;
  std::shared_ptr<const Keyed> keyed_;
};

// Reads the server secret from `path`, or creates it (mode 0600, random
// bytes) if missing. Returns an error message on failure.
std::optional<std::array<uint8_t, kFhSecretBytes>> LoadOrCreateSecret(
    const std::string& path, std::string* error);

}  // namespace nfs41d
