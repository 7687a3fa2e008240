#include "nfs41d/attrs.h"

#include <charconv>
#include <cstring>
#include <initializer_list>
#include <string>

#include "nfs41d/acl_attr.h"
#include "nfs41d/proto/attr_reader.h"
#include "rpc/xdr_codec.h"

namespace nfs41d {
namespace {

constexpr std::initializer_list<uint32_t> kSupported = {
    FATTR4_SUPPORTED_ATTRS, FATTR4_TYPE, FATTR4_FH_EXPIRE_TYPE,
    FATTR4_CHANGE, FATTR4_SIZE, FATTR4_LINK_SUPPORT, FATTR4_SYMLINK_SUPPORT,
    FATTR4_NAMED_ATTR, FATTR4_FSID, FATTR4_UNIQUE_HANDLES, FATTR4_LEASE_TIME,
    FATTR4_RDATTR_ERROR, FATTR4_CANSETTIME, FATTR4_CASE_INSENSITIVE,
    FATTR4_CASE_PRESERVING, FATTR4_CHOWN_RESTRICTED, FATTR4_FILEHANDLE,
    FATTR4_FILEID, FATTR4_FILES_AVAIL, FATTR4_FILES_FREE, FATTR4_FILES_TOTAL,
    FATTR4_HOMOGENEOUS, FATTR4_MAXFILESIZE, FATTR4_MAXLINK, FATTR4_MAXNAME,
    FATTR4_MAXREAD, FATTR4_MAXWRITE, FATTR4_MODE, FATTR4_NO_TRUNC,
    FATTR4_NUMLINKS, FATTR4_OWNER, FATTR4_OWNER_GROUP, FATTR4_RAWDEV,
    FATTR4_SPACE_AVAIL, FATTR4_SPACE_FREE, FATTR4_SPACE_TOTAL,
    FATTR4_SPACE_USED, FATTR4_TIME_ACCESS, FATTR4_TIME_ACCESS_SET,
    FATTR4_TIME_CREATE, FATTR4_TIME_DELTA, FATTR4_TIME_METADATA,
    FATTR4_TIME_MODIFY, FATTR4_TIME_MODIFY_SET, FATTR4_MOUNTED_ON_FILEID,
    FATTR4_SUPPATTR_EXCLCREAT,
    FATTR4_ACL, FATTR4_ACLSUPPORT, FATTR4_FS_LAYOUT_TYPES,
    FATTR4_LAYOUT_BLKSIZE};

constexpr std::initializer_list<uint32_t> kSettable = {
    FATTR4_SIZE, FATTR4_MODE, FATTR4_OWNER, FATTR4_OWNER_GROUP,
    FATTR4_TIME_ACCESS_SET, FATTR4_TIME_MODIFY_SET,
    FATTR4_ACL};

// Writable in RFC 8881 but not offered: NFS4ERR_ATTRNOTSUPP rather than
// NFS4ERR_INVAL.
constexpr std::initializer_list<uint32_t> kWritableUnsupported = {
    FATTR4_ARCHIVE, FATTR4_HIDDEN, FATTR4_MIMETYPE,
    FATTR4_SYSTEM, FATTR4_TIME_BACKUP, FATTR4_TIME_CREATE,
    FATTR4_MODE_SET_MASKED, FATTR4_RETENTION_SET, FATTR4_RETENTEVT_SET,
    FATTR4_RETENTION_HOLD, FATTR4_LAYOUT_HINT};

// Identifies this namespace as one file system (fsid major) and the export
// (minor).
constexpr uint64_t kFsidMajor = 0x4e534653;  // "NSFS"

nfs_ftype4 FType(ns::FileType t) {
  switch (t) {
    case ns::FileType::kRegular: return NF4REG;
    case ns::FileType::kDirectory: return NF4DIR;
    case ns::FileType::kSymlink: return NF4LNK;
    case ns::FileType::kBlockDevice: return NF4BLK;
    case ns::FileType::kCharDevice: return NF4CHR;
    case ns::FileType::kFifo: return NF4FIFO;
    case ns::FileType::kSocket: return NF4SOCK;
  }
  return NF4REG;
}

using Reader = nfs4::AttrReader;


nfsstat4 ReadSetTime(Reader& r, std::optional<ns::TimeNs>* t, bool* now) {
  uint32_t how;
  if (!r.U32(&how)) return NFS4ERR_BADXDR;
  if (how == SET_TO_SERVER_TIME4) {
    *now = true;
    return NFS4_OK;
  }
  if (how != SET_TO_CLIENT_TIME4) return NFS4ERR_BADXDR;
  uint64_t sec;
  uint32_t nsec;
  if (!r.U64(&sec) || !r.U32(&nsec)) return NFS4ERR_BADXDR;
  if (nsec >= 1000000000u) return NFS4ERR_INVAL;
  *t = static_cast<int64_t>(sec) * 1000000000 + nsec;
  return NFS4_OK;
}

}  // namespace

AttrBits AttrBits::From(const bitmap4& b) {
  AttrBits r;
  for (u_int i = 0; i < b.bitmap4_len && i < 3; ++i) r.w[i] = b.bitmap4_val[i];
  return r;
}

bitmap4 AttrBits::ToBitmap(Arena& arena) const {
  uint32_t n = 3;
  while (n > 0 && w[n - 1] == 0) --n;
  bitmap4 b{};
  b.bitmap4_len = n;
  b.bitmap4_val = arena.New<uint32_t>(n);
  for (uint32_t i = 0; i < n; ++i) b.bitmap4_val[i] = w[i];
  return b;
}

AttrBits SupportedAttrs() {
  // Built once: every encoded entry of a READDIR asks for it.
  static const AttrBits bits = [] {
    AttrBits b;
    for (uint32_t a : kSupported) b.Set(a);
    return b;
  }();
  return bits;
}

AttrBits SettableAttrs() {
  AttrBits b;
  for (uint32_t a : kSettable) b.Set(a);
  return b;
}

nfstime4 ToNfsTime(ns::TimeNs t) {
  int64_t sec = t / 1000000000;
  int64_t nsec = t % 1000000000;
  if (nsec < 0) {
    nsec += 1000000000;
    sec -= 1;
  }
  nfstime4 r{};
  r.seconds = sec;
  r.nseconds = static_cast<uint32_t>(nsec);
  return r;
}

bool NeedsStatFs(const AttrBits& req) {
  for (uint32_t a : {FATTR4_FILES_AVAIL, FATTR4_FILES_FREE, FATTR4_FILES_TOTAL,
                     FATTR4_SPACE_AVAIL, FATTR4_SPACE_FREE,
                     FATTR4_SPACE_TOTAL}) {
    if (req.Has(a)) return true;
  }
  return false;
}

bool NeedsFullAttr(const AttrBits& req) {
  AttrBits light;
  for (uint32_t a : {FATTR4_TYPE, FATTR4_FILEID, FATTR4_MOUNTED_ON_FILEID,
                     FATTR4_RDATTR_ERROR}) {
    light.Set(a);
  }
  AttrBits s = req & SupportedAttrs();
  for (int i = 0; i < 3; ++i) {
    if (s.w[i] & ~light.w[i]) return true;
  }
  return false;
}

namespace {

// Appends the XDR of the ACL (acl_attr.h encodes into an XdrEncoder).
void PutAcl(rpc::XdrEncoder& e, const ns::Acl& acl, const IdMapper* idmap) {
  EncodeAcl(e, acl, idmap);
}
void PutAcl(XdrOut& e, const ns::Acl& acl, const IdMapper* idmap) {
  rpc::XdrEncoder t(256);
  EncodeAcl(t, acl, idmap);
  e.Fixed(t.data(), t.size());
}

void PutU32(rpc::XdrEncoder& e, uint32_t v) { e.PutUint32(v); }
void PutU32(XdrOut& e, uint32_t v) { e.U32(v); }
void PutU64(rpc::XdrEncoder& e, uint64_t v) { e.PutUint64(v); }
void PutU64(XdrOut& e, uint64_t v) { e.U64(v); }
void PutStr(rpc::XdrEncoder& e, std::string_view s) { e.PutString(s); }
void PutStr(XdrOut& e, std::string_view s) { e.Str(s); }
void PutOpaqueBytes(rpc::XdrEncoder& e, const std::vector<uint8_t>& b) {
  e.PutOpaque(b);
}
void PutOpaqueBytes(XdrOut& e, const std::vector<uint8_t>& b) {
  e.U32(static_cast<uint32_t>(b.size()));
  e.Fixed(b.data(), b.size());
}

template <typename E>
void PutBitsTo(E& e, const AttrBits& b) {
  uint32_t n = 3;
  while (n > 0 && b.w[n - 1] == 0) --n;
  PutU32(e, n);
  for (uint32_t i = 0; i < n; ++i) PutU32(e, b.w[i]);
}

template <typename E>
void PutTimeTo(E& e, ns::TimeNs t) {
  nfstime4 nt = ToNfsTime(t);
  PutU64(e, static_cast<uint64_t>(nt.seconds));
  PutU32(e, nt.nseconds);
}

// owner / owner_group (§5.9): through the memo when there is one.
template <typename E>
void PutOwner(E& e, const AttrSource& src, bool group, uint32_t id) {
  if (!src.idmap) {
    char buf[16];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, id);
    PutStr(e, std::string_view(buf, static_cast<size_t>(end - buf)));
    return;
  }
  if (OwnerMemo* m = src.owners) {
    std::optional<uint32_t>& last = group ? m->gid : m->uid;
    std::string& str = group ? m->group : m->owner;
    if (last != id) {
      str = group ? src.idmap->GidToGroup(id) : src.idmap->UidToOwner(id);
      last = id;
    }
    PutStr(e, str);
    return;
  }
  PutStr(e, group ? src.idmap->GidToGroup(id) : src.idmap->UidToOwner(id));
}

// What a reply carries of `req_in` for `src` (its attrmask): the supported
// attributes, less the file system counts without `stats`, the acl when
// the caller did not read it (Namespace::GetAcl needs the caller's
// READ_ACL: left out like an unsupported one), and the write-only ones.
AttrBits SentAttrs(const AttrBits& req_in, const AttrSource& src) {
  AttrBits req = req_in & SupportedAttrs();
  auto drop = [&req](uint32_t a) { req.w[a / 32] &= ~(1u << (a % 32)); };
  if (!src.stats) {
    for (uint32_t a : {FATTR4_FILES_AVAIL, FATTR4_FILES_FREE,
                       FATTR4_FILES_TOTAL, FATTR4_SPACE_AVAIL,
                       FATTR4_SPACE_FREE, FATTR4_SPACE_TOTAL}) {
      drop(a);
    }
  }
  if (!src.acl) drop(FATTR4_ACL);
  drop(FATTR4_TIME_ACCESS_SET);
  drop(FATTR4_TIME_MODIFY_SET);
  return req;
}

// The values of `req` (from SentAttrs) for `src` into `e`, in bit order
// (§5: values follow the bitmap's order).
template <typename E>
void EncodeValues(const AttrBits& req, const AttrSource& src, E& e) {
  const ns::Attr& a = *src.attr;
  for (uint32_t w = 0; w < 3; ++w) {
    for (uint32_t bits = req.w[w]; bits != 0; bits &= bits - 1) {
      const uint32_t n = w * 32 + static_cast<uint32_t>(__builtin_ctz(bits));
      switch (n) {
        case FATTR4_SUPPORTED_ATTRS: PutBitsTo(e, SupportedAttrs()); break;
        case FATTR4_TYPE: PutU32(e, FType(a.type)); break;
        case FATTR4_FH_EXPIRE_TYPE: PutU32(e, FH4_PERSISTENT); break;
        case FATTR4_CHANGE: PutU64(e, NfsChange(a.change, src.writes)); break;
        case FATTR4_SIZE: PutU64(e, a.size); break;
        case FATTR4_LINK_SUPPORT: PutU32(e, 1); break;
        case FATTR4_SYMLINK_SUPPORT: PutU32(e, 1); break;
        case FATTR4_NAMED_ATTR: PutU32(e, 0); break;
        case FATTR4_FSID:
          PutU64(e, kFsidMajor);
          PutU64(e, src.fsid_minor.value_or(src.fh.export_id));
          break;
        case FATTR4_UNIQUE_HANDLES: PutU32(e, 1); break;
        case FATTR4_LEASE_TIME: PutU32(e, src.lease_seconds); break;
        case FATTR4_RDATTR_ERROR: PutU32(e, src.rdattr_error); break;
        case FATTR4_CANSETTIME: PutU32(e, 1); break;
        case FATTR4_CASE_INSENSITIVE: PutU32(e, 0); break;
        case FATTR4_CASE_PRESERVING: PutU32(e, 1); break;
        case FATTR4_CHOWN_RESTRICTED: PutU32(e, 1); break;
        case FATTR4_FILEHANDLE: PutOpaqueBytes(e, src.codec->Encode(src.fh)); break;
        case FATTR4_FILEID: PutU64(e, a.ino); break;
        case FATTR4_FILES_AVAIL: PutU64(e, src.stats->files_free); break;
        case FATTR4_FILES_FREE: PutU64(e, src.stats->files_free); break;
        case FATTR4_FILES_TOTAL:
          PutU64(e, src.stats->files + src.stats->files_free);
          break;
        case FATTR4_HOMOGENEOUS: PutU32(e, 1); break;
        case FATTR4_MAXFILESIZE: PutU64(e, NFS4_INT64_MAX); break;
        case FATTR4_MAXLINK: PutU32(e, ns::kMaxLinks); break;
        case FATTR4_MAXNAME: PutU32(e, ns::kMaxNameBytes); break;
        case FATTR4_MAXREAD: PutU64(e, src.max_io); break;
        case FATTR4_MAXWRITE: PutU64(e, src.max_io); break;
        case FATTR4_MODE: PutU32(e, a.mode & 07777); break;
        case FATTR4_NO_TRUNC: PutU32(e, 1); break;
        case FATTR4_NUMLINKS: PutU32(e, a.nlink); break;
        case FATTR4_OWNER: PutOwner(e, src, false, a.uid); break;
        case FATTR4_OWNER_GROUP: PutOwner(e, src, true, a.gid); break;
        case FATTR4_RAWDEV:
          PutU32(e, a.rdev_major);
          PutU32(e, a.rdev_minor);
          break;
        case FATTR4_SPACE_AVAIL: PutU64(e, src.stats->bytes_free); break;
        case FATTR4_SPACE_FREE: PutU64(e, src.stats->bytes_free); break;
        case FATTR4_SPACE_TOTAL: PutU64(e, src.stats->bytes_total); break;
        case FATTR4_SPACE_USED:
          PutU64(e, src.space_used.value_or((a.size + 511) & ~uint64_t{511}));
          break;
        case FATTR4_TIME_ACCESS: PutTimeTo(e, a.atime); break;
        case FATTR4_TIME_CREATE: PutTimeTo(e, a.btime); break;
        case FATTR4_TIME_DELTA: PutTimeTo(e, 1); break;
        case FATTR4_TIME_METADATA: PutTimeTo(e, a.ctime); break;
        case FATTR4_TIME_MODIFY: PutTimeTo(e, a.mtime); break;
        case FATTR4_FS_LAYOUT_TYPES:
          // §5.12.2: the layout types of this file system (none without
          // data servers: the client then never asks for a layout).
          PutU32(e, src.pnfs_files ? 1 : 0);
          if (src.pnfs_files) PutU32(e, LAYOUT4_NFSV4_1_FILES);
          break;
        case FATTR4_LAYOUT_BLKSIZE:
          // §5.12.4: the preferred I/O unit; the stripe unit, else max_io.
          PutU32(e, src.layout_blksize ? src.layout_blksize : src.max_io);
          break;
        case FATTR4_MOUNTED_ON_FILEID:
          PutU64(e, src.mounted_on_fileid.value_or(a.ino));
          break;
        case FATTR4_SUPPATTR_EXCLCREAT: {
          AttrBits x;
          for (uint32_t s : {FATTR4_SIZE, FATTR4_MODE, FATTR4_OWNER,
                             FATTR4_OWNER_GROUP}) {
            x.Set(s);
          }
          PutBitsTo(e, x);
          break;
        }
        case FATTR4_ACL: PutAcl(e, *src.acl, src.idmap); break;
        case FATTR4_ACLSUPPORT: PutU32(e, kAclSupport); break;
        default: break;  // not in SentAttrs
      }
    }
  }
}

}  // namespace

void EncodeAttrs(const AttrBits& req, const AttrSource& src, Arena& arena,
                 fattr4* out) {
  rpc::XdrEncoder e(256);
  const AttrBits sent = SentAttrs(req, src);
  EncodeValues(sent, src, e);
  out->attrmask = sent.ToBitmap(arena);
  out->attr_vals.attrlist4_len = static_cast<u_int>(e.size());
  out->attr_vals.attrlist4_val = arena.Bytes(e.size());
  std::memcpy(out->attr_vals.attrlist4_val, e.data(), e.size());
}

void EncodeFattr(const AttrBits& req, const AttrSource& src, XdrOut& out) {
  const AttrBits sent = SentAttrs(req, src);
  PutBitsTo(out, sent);
  const size_t len_at = out.size();
  out.U32(0);  // attrlist4's length, known after the values
  EncodeValues(sent, src, out);
  out.PatchU32(len_at, static_cast<uint32_t>(out.size() - len_at - 4));
}

nfsstat4 DecodeSetAttrs(const fattr4& in, DecodedSetAttrs* out,
                        const IdMapper* idmap) {
  AttrBits req;
  for (u_int i = 0; i < in.attrmask.bitmap4_len; ++i) {
    if (in.attrmask.bitmap4_val[i] == 0) continue;
    if (i >= 3) return NFS4ERR_ATTRNOTSUPP;
    req.w[i] = in.attrmask.bitmap4_val[i];
  }
  AttrBits settable = SettableAttrs();
  for (uint32_t n = 0; n < 96; ++n) {
    if (!req.Has(n) || settable.Has(n)) continue;
    for (uint32_t w : kWritableUnsupported) {
      if (w == n) return NFS4ERR_ATTRNOTSUPP;
    }
    return SupportedAttrs().Has(n) ? NFS4ERR_INVAL : NFS4ERR_ATTRNOTSUPP;
  }
  Reader r(in.attr_vals.attrlist4_val, in.attr_vals.attrlist4_len);
  ns::SetAttrRequest& q = out->req;
  for (uint32_t n = 0; n < 96; ++n) {
    if (!req.Has(n)) continue;
    switch (n) {
      case FATTR4_SIZE: {
        uint64_t v;
        if (!r.U64(&v)) return NFS4ERR_BADXDR;
        q.size = v;
        break;
      }
      case FATTR4_MODE: {
        uint32_t v;
        if (!r.U32(&v)) return NFS4ERR_BADXDR;
        q.mode = v & 07777;
        break;
      }
      case FATTR4_OWNER:
      case FATTR4_OWNER_GROUP: {
        std::string s;
        if (!r.Opaque(&s, NFS4_OPAQUE_LIMIT)) return NFS4ERR_BADXDR;
        // §5.9: numeric strings or user@domain, through the mapper.
        std::optional<uint32_t> id =
            !idmap ? ParseNumericId(s)
            : n == FATTR4_OWNER ? idmap->OwnerToUid(s)
                                : idmap->GroupToGid(s);
        if (!id) return NFS4ERR_BADOWNER;
        (n == FATTR4_OWNER ? q.uid : q.gid) = *id;
        break;
      }
      case FATTR4_ACL: {
        ns::Acl acl;
        size_t used = 0;
        if (nfsstat4 st = DecodeAcl(r.rest(), r.left(), &used, &acl, idmap);
            st) {
          return st;
        }
        if (!r.Skip(used)) return NFS4ERR_BADXDR;
        out->acl = std::move(acl);
        break;
      }
      case FATTR4_TIME_ACCESS_SET:
        if (nfsstat4 st = ReadSetTime(r, &q.atime, &q.atime_now); st) {
          return st;
        }
        break;
      case FATTR4_TIME_MODIFY_SET:
        if (nfsstat4 st = ReadSetTime(r, &q.mtime, &q.mtime_now); st) {
          return st;
        }
        break;
    }
  }
  if (!r.Done()) return NFS4ERR_BADXDR;
  out->set = req;
  return NFS4_OK;
}

}  // namespace nfs41d
