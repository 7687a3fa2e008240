#pragma once

// Value types and limits of the per-inode metadata beside the POSIX
// attributes: extended attributes (user metadata), directory tags,
// checksums and storage locations. The operations are Namespace methods
// (namespace.h); this header holds what they take and return.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "libnamespace/include/namespace/status.h"

namespace ns {

// --- extended attributes (RFC 8276 semantics) ---
inline constexpr size_t kMaxXattrNameBytes = 255;
inline constexpr size_t kMaxXattrValueBytes = 64 * 1024;
// Names plus values of one inode's xattrs together.
inline constexpr size_t kMaxXattrTotalBytes = 1024 * 1024;

enum class XattrMode {
  kEither,       // create or replace (RFC 8276 SETXATTR4_EITHER)
  kCreate,       // Exists if the name is taken (SETXATTR4_CREATE)
  kReplace,      // NotFound if it is not (SETXATTR4_REPLACE)
};

struct XattrName {
  std::string name;
  uint64_t size = 0;  // bytes of the value
};

// --- directory tags (dCache Chimera semantics, see Namespace::WriteTag) ---
inline constexpr size_t kMaxTagNameBytes = 255;
inline constexpr size_t kMaxTagValueBytes = 64 * 1024;

struct Tag {
  std::string name;
  std::string value;
  // Whether the directory owns this value (it wrote a tag itself) or sees
  // the set of the ancestor it inherited from by reference.
  bool own = false;
};

// --- checksums ---
enum class ChecksumType : uint8_t {
  kAdler32 = 1,
  kMd5 = 2,
  kSha1 = 3,
  kSha256 = 4,
  kSha512 = 5,
};

struct Checksum {
  ChecksumType type = ChecksumType::kAdler32;
  std::string value;  // lower-case hex, as many digits as the type has bytes*2
};

// "adler32", "md5", "sha1", "sha256", "sha512" and back.
std::string_view ChecksumTypeName(ChecksumType t);
// Errors: Invalid (unknown type name).
Result<ChecksumType> ParseChecksumType(std::string_view name);
// Hex digits a value of the type has (8 for adler32, 64 for sha256, ...).
size_t ChecksumHexDigits(ChecksumType t);
// Computes a checksum of `data` (used by tools and tests to make values).
std::string ComputeChecksum(ChecksumType t, std::string_view data);

// --- storage locations ---
enum class LocationType : uint8_t {
  kStripe = 1,    // a data server stripe: "ds://<deviceid>/<index>/<handle>"
  kExternal = 2,  // anywhere else: a URI ("s3://bucket/key", "osm://...")
};
inline constexpr size_t kMaxLocationBytes = 4096;

struct Location {
  LocationType type = LocationType::kExternal;
  std::string location;
  int64_t added_ns = 0;
};

}  // namespace ns
