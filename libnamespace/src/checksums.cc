// Checksums and storage locations of regular files (namespace.h), and the
// checksum type names and computations of metadata.h.

#include <openssl/evp.h>
#include <zlib.h>

#include <cctype>
#include <string>

#include "libnamespace/include/namespace/metadata.h"
#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/src/access.h"
#include "libnamespace/src/backend.h"

namespace ns {
namespace {

struct TypeInfo {
  ChecksumType type;
  std::string_view name;
  size_t bytes;
};
constexpr TypeInfo kTypes[] = {
    {ChecksumType::kAdler32, "adler32", 4}, {ChecksumType::kMd5, "md5", 16},
    {ChecksumType::kSha1, "sha1", 20},      {ChecksumType::kSha256, "sha256", 32},
    {ChecksumType::kSha512, "sha512", 64},
};

const TypeInfo* InfoOf(ChecksumType t) {
  for (const TypeInfo& i : kTypes) {
    if (i.type == t) return &i;
  }
  return nullptr;
}

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}

// The inode, locked as asked, if it is a regular file.
Result<Attr> RegularFile(Transaction& t, InodeId ino, LockMode lock,
                         const std::string& ctx) {
  NS_ASSIGN_OR_RETURN(Attr a, t.GetInode(ino, lock));
  if (a.type != FileType::kRegular) {
    return Status::Invalid(ctx, "not a regular file");
  }
  return a;
}

Status RequireOwner(const Credentials& cred, const Attr& a,
                    const std::string& ctx) {
  if (!cred.IsRoot() && cred.uid != a.uid) {
    return Status::NotPermitted(ctx, "only the owner or root");
  }
  return Status::Ok();
}

}  // namespace

std::string_view ChecksumTypeName(ChecksumType t) {
  const TypeInfo* i = InfoOf(t);
  return i ? i->name : std::string_view("unknown");
}

Result<ChecksumType> ParseChecksumType(std::string_view name) {
  for (const TypeInfo& i : kTypes) {
    if (i.name == name) return i.type;
  }
  return Status::Invalid("checksum type '" + std::string(name.substr(0, 32)) +
                             "'",
                         "unknown (adler32, md5, sha1, sha256, sha512)");
}

size_t ChecksumHexDigits(ChecksumType t) {
  const TypeInfo* i = InfoOf(t);
  return i ? i->bytes * 2 : 0;
}

std::string ComputeChecksum(ChecksumType t, std::string_view data) {
  if (t == ChecksumType::kAdler32) {
    uLong a = adler32(0L, Z_NULL, 0);
    a = adler32_z(a, reinterpret_cast<const Bytef*>(data.data()), data.size());
    const unsigned char b[4] = {
        static_cast<unsigned char>(a >> 24), static_cast<unsigned char>(a >> 16),
        static_cast<unsigned char>(a >> 8), static_cast<unsigned char>(a)};
    return Hex(b, 4);
  }
  const EVP_MD* md = nullptr;
  switch (t) {
    case ChecksumType::kMd5: md = EVP_md5(); break;
    case ChecksumType::kSha1: md = EVP_sha1(); break;
    case ChecksumType::kSha256: md = EVP_sha256(); break;
    case ChecksumType::kSha512: md = EVP_sha512(); break;
    default: return {};
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), out, &n, md, nullptr) != 1) return {};
  return Hex(out, n);
}

Result<std::vector<Checksum>> Namespace::GetChecksums(const Credentials& cred,
                                                      InodeId ino) {
  const std::string ctx = "checksum inode " + std::to_string(ino);
  NS_RETURN_IF_ERROR(CheckInodeId(ino));
  std::vector<Checksum> out;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, RegularFile(t, ino, LockMode::kNone, ctx));
    NS_RETURN_IF_ERROR(RequireAccess(t, cred, a, kAceReadAttributes, ctx));
    NS_ASSIGN_OR_RETURN(out, t.ListChecksums(ino));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Status Namespace::SetChecksum(const Credentials& cred, InodeId ino,
                              const Checksum& checksum) {
  const std::string ctx = "set checksum inode " + std::to_string(ino);
  NS_RETURN_IF_ERROR(CheckInodeId(ino));
  const size_t digits = ChecksumHexDigits(checksum.type);
  if (digits == 0) return Status::Invalid(ctx, "unknown checksum type");
  if (checksum.value.size() != digits) {
    return Status::Invalid(ctx, std::string(ChecksumTypeName(checksum.type)) +
                                    " takes " + std::to_string(digits) +
                                    " hex digits, not " +
                                    std::to_string(checksum.value.size()));
  }
  Checksum c = checksum;
  for (char& ch : c.value) {
    if (!std::isxdigit(static_cast<unsigned char>(ch))) {
      return Status::Invalid(ctx, "value is not hexadecimal");
    }
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  return backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, RegularFile(t, ino, LockMode::kExclusive, ctx));
    NS_RETURN_IF_ERROR(RequireOwner(cred, a, ctx));
    return t.PutChecksum(ino, c);
  });
}

Status Namespace::RemoveChecksum(const Credentials& cred, InodeId ino,
                                 ChecksumType type) {
  const std::string ctx = "remove checksum inode " + std::to_string(ino);
  NS_RETURN_IF_ERROR(CheckInodeId(ino));
  return backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, RegularFile(t, ino, LockMode::kExclusive, ctx));
    NS_RETURN_IF_ERROR(RequireOwner(cred, a, ctx));
    NS_ASSIGN_OR_RETURN(bool gone, t.DeleteChecksum(ino, type));
    if (!gone) return Status::NotFound(ctx, "no checksum of that type");
    return Status::Ok();
  });
}

Result<std::vector<Location>> Namespace::GetLocations(const Credentials& cred,
                                                      InodeId ino) {
  const std::string ctx = "locations inode " + std::to_string(ino);
  NS_RETURN_IF_ERROR(CheckInodeId(ino));
  std::vector<Location> out;
  Status s = backend_->Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, RegularFile(t, ino, LockMode::kNone, ctx));
    NS_RETURN_IF_ERROR(RequireAccess(t, cred, a, kAceReadAttributes, ctx));
    NS_ASSIGN_OR_RETURN(out, t.ListLocations(ino));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

namespace {
Status ValidateLocation(LocationType type, std::string_view location,
                        const std::string& ctx) {
  if (type != LocationType::kStripe && type != LocationType::kExternal) {
    return Status::Invalid(ctx, "unknown location type");
  }
  if (location.empty()) return Status::Invalid(ctx, "empty location");
  if (location.size() > kMaxLocationBytes) {
    return Status::Invalid(ctx, "location over 4096 bytes");
  }
  if (location.find('\0') != std::string_view::npos) {
    return Status::Invalid(ctx, "location contains NUL");
  }
  return Status::Ok();
}
}  // namespace

Status Namespace::AddLocation(const Credentials& cred, InodeId ino,
                              LocationType type, std::string_view location) {
  const std::string ctx = "add location inode " + std::to_string(ino);
  NS_RETURN_IF_ERROR(CheckInodeId(ino));
  NS_RETURN_IF_ERROR(ValidateLocation(type, location, ctx));
  return backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, RegularFile(t, ino, LockMode::kExclusive, ctx));
    NS_RETURN_IF_ERROR(RequireOwner(cred, a, ctx));
    Location l{type, std::string(location), NowNs()};
    Status added = t.AddLocation(ino, l);
    if (added.IsExists()) return Status::Exists(ctx, "already listed");
    return added;
  });
}

Status Namespace::RemoveLocation(const Credentials& cred, InodeId ino,
                                 LocationType type, std::string_view location) {
  const std::string ctx = "remove location inode " + std::to_string(ino);
  NS_RETURN_IF_ERROR(CheckInodeId(ino));
  NS_RETURN_IF_ERROR(ValidateLocation(type, location, ctx));
  return backend_->Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(Attr a, RegularFile(t, ino, LockMode::kExclusive, ctx));
    NS_RETURN_IF_ERROR(RequireOwner(cred, a, ctx));
    NS_ASSIGN_OR_RETURN(bool gone, t.DeleteLocation(ino, type, location));
    if (!gone) return Status::NotFound(ctx, "no such location");
    return Status::Ok();
  });
}

}  // namespace ns
