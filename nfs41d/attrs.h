#pragma once

// fattr4 (RFC 8881 §5): encoding the attributes of a Namespace inode, and
// decoding the ones a client sets (SETATTR, CREATE).
//
// Supported: the mandatory attributes (§5.6) and the recommended ones a
// Linux client asks for (§5.7); see SupportedAttrs().

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "libnamespace/include/namespace/acl.h"
#include "libnamespace/include/namespace/types.h"
#include "nfs41d/compound.h"
#include "nfs41d/fh.h"
#include "nfs41d/idmap.h"
#include "nfs41d/proto/nfs4_prot.h"

namespace nfs41d {

// An attribute bitmap of up to 96 attributes.
struct AttrBits {
  std::array<uint32_t, 3> w{};
  bool Has(uint32_t a) const { return a < 96 && (w[a / 32] >> (a % 32)) & 1; }
  void Set(uint32_t a) {
    if (a < 96) w[a / 32] |= 1u << (a % 32);
  }
  bool Empty() const { return !w[0] && !w[1] && !w[2]; }
  AttrBits operator&(const AttrBits& o) const {
    return {{w[0] & o.w[0], w[1] & o.w[1], w[2] & o.w[2]}};
  }
  // Bits beyond 96 in `b` are ignored (we support none of them).
  static AttrBits From(const bitmap4& b);
  // Into `arena`, trimmed of trailing zero words.
  bitmap4 ToBitmap(Arena& arena) const;
};

AttrBits SupportedAttrs();
// Attributes SETATTR can change.
AttrBits SettableAttrs();

// Appends XDR (RFC 4506: big-endian 4-byte units, zero padding) to a byte
// vector, with no encoder object per value: READDIR encodes its reply
// straight into one buffer with it (ops_fs.cc).
class XdrOut {
 public:
  explicit XdrOut(std::vector<uint8_t>* out) : out_(out) {}
  void U32(uint32_t v) {
    const uint8_t b[4] = {static_cast<uint8_t>(v >> 24),
                          static_cast<uint8_t>(v >> 16),
                          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    out_->insert(out_->end(), b, b + 4);
  }
  void U64(uint64_t v) {
    U32(static_cast<uint32_t>(v >> 32));
    U32(static_cast<uint32_t>(v));
  }
  // Fixed-length opaque: the bytes and zero padding, no length.
  void Fixed(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    out_->insert(out_->end(), b, b + n);
    out_->insert(out_->end(), (4 - n % 4) % 4, uint8_t{0});
  }
  // string<> / opaque<>: length, bytes, padding.
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    Fixed(s.data(), s.size());
  }
  size_t size() const { return out_->size(); }
  // Overwrites the 4 bytes at `at` (a length written before its value).
  void PatchU32(size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) {
      (*out_)[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
    }
  }

 private:
  std::vector<uint8_t>* out_;
};

// The owner and owner_group strings of the last uid and gid encoded: the
// entries of one directory mostly share them, so a READDIR page maps each
// once instead of making a string per entry.
struct OwnerMemo {
  std::optional<uint32_t> uid, gid;
  std::string owner, group;
};

// What encoding needs besides the inode's attributes.
struct AttrSource {
  const ns::Attr* attr = nullptr;
  FileHandle fh;
  const FhCodec* codec = nullptr;
  const ns::FsStats* stats = nullptr;  // needed for files_* / space_*
  uint32_t lease_seconds = 90;
  uint32_t max_io = 1u << 20;
  nfsstat4 rdattr_error = NFS4_OK;
  // Writes to the open file not yet in `attr->change` (see NfsChange).
  uint64_t writes = 0;
  // Bytes the data store uses for the file; unset: the size rounded up.
  std::optional<uint64_t> space_used;
  // owner / owner_group strings; null: numeric.
  const IdMapper* idmap = nullptr;
  // Set for an export's root: the fileid of the directory it is mounted on
  // (RFC 8881 §5.8.2.23); otherwise mounted_on_fileid is the fileid.
  std::optional<uint64_t> mounted_on_fileid;
  // fsid minor: the export id (default: the filehandle's).
  std::optional<uint32_t> fsid_minor;
  // pNFS (RFC 8881 §5.12): fs_layout_types lists LAYOUT4_NFSV4_1_FILES
  // when set (else it is empty); layout_blksize.
  bool pnfs_files = false;
  uint32_t layout_blksize = 0;
  // The acl attribute (Namespace::GetAcl, read with the caller's
  // credentials); null: acl is left out of the reply.
  const ns::Acl* acl = nullptr;
  // Strings of recent owners (READDIR); null: mapped for every value.
  OwnerMemo* owners = nullptr;
};

// The NFSv4 `change` attribute (RFC 8881 §5.8.1.4) from the database's
// change counter and the writes an open file took since it was opened,
// which are written back to the database later (ops_io.cc): the counter
// in the high 40 bits, the writes in the low 24. The value changes with
// every write, and a write-back (which bumps the counter) never makes it
// repeat an earlier value.
inline uint64_t NfsChange(uint64_t db_change, uint64_t writes) {
  return (db_change << 24) + (writes & 0xffffff);
}

// True if `req` asks for an attribute that needs Namespace::StatFs.
bool NeedsStatFs(const AttrBits& req);
// True if `req` asks for more than the id and type a directory entry has.
bool NeedsFullAttr(const AttrBits& req);

// Encodes the requested and supported attributes of `src` into `out`,
// memory from `arena`.
void EncodeAttrs(const AttrBits& req, const AttrSource& src, Arena& arena,
                 fattr4* out);
// The same attributes as EncodeAttrs, as the XDR of a fattr4 (bitmap4,
// then attrlist4) appended to `out`.
void EncodeFattr(const AttrBits& req, const AttrSource& src, XdrOut& out);

// What a client asked to set.
struct DecodedSetAttrs {
  ns::SetAttrRequest req;
  AttrBits set;  // the attributes given
  // The acl attribute, for Namespace::SetAcl (not part of SetAttr).
  std::optional<ns::Acl> acl;
};
// NFS4ERR_BADXDR (malformed values), NFS4ERR_ATTRNOTSUPP (an attribute we do
// not support setting), NFS4ERR_INVAL (a read-only attribute, a bad time),
// NFS4ERR_BADOWNER (an owner or group `idmap` does not know, also as an
// ACE's who; null: numeric ids only); for acl see DecodeAcl (acl_attr.h).
nfsstat4 DecodeSetAttrs(const fattr4& in, DecodedSetAttrs* out,
                        const IdMapper* idmap = nullptr);

// nfstime4 <-> nanoseconds.
nfstime4 ToNfsTime(ns::TimeNs t);

}  // namespace nfs41d
