#include "nfs41d/attrs.h"

#include <charconv>
#include <cstring>
#include <initializer_list>
#include <string>

#include "nfs41d/acl_attr.h"
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

void PutBits(rpc::XdrEncoder& e, const AttrBits& b) {
  uint32_t n = 3;
  while (n > 0 && b.w[n - 1] == 0) --n;
  e.PutUint32(n);
  for (uint32_t i = 0; i < n; ++i) e.PutUint32(b.w[i]);
}

void PutTime(rpc::XdrEncoder& e, ns::TimeNs t) {
  nfstime4 nt = ToNfsTime(t);
  e.PutUint64(static_cast<uint64_t>(nt.seconds));
  e.PutUint32(nt.nseconds);
}

// A byte reader over attr_vals.
class Reader {
 public:
  Reader(const char* p, size_t n)
      : p_(reinterpret_cast<const uint8_t*>(p)), n_(n) {}
  bool U32(uint32_t* v) {
    if (n_ - off_ < 4) return false;
    *v = (uint32_t{p_[off_]} << 24) | (uint32_t{p_[off_ + 1]} << 16) |
         (uint32_t{p_[off_ + 2]} << 8) | p_[off_ + 3];
    off_ += 4;
    return true;
  }
  bool U64(uint64_t* v) {
    uint32_t hi, lo;
    if (!U32(&hi) || !U32(&lo)) return false;
    *v = (uint64_t{hi} << 32) | lo;
    return true;
  }
  bool Str(std::string* s, uint32_t max) {
    uint32_t len;
    if (!U32(&len) || len > max) return false;
    size_t padded = (size_t{len} + 3) & ~size_t{3};
    if (n_ - off_ < padded) return false;
    s->assign(reinterpret_cast<const char*>(p_ + off_), len);
    off_ += padded;
    return true;
  }
  bool Done() const { return off_ == n_; }
  // The bytes not read yet, for decoders that live elsewhere.
  const char* rest() const { return reinterpret_cast<const char*>(p_ + off_); }
  size_t left() const { return n_ - off_; }
  void Skip(size_t k) { off_ += k; }  // REQUIRES: k <= left()

 private:
  const uint8_t* p_;
  size_t n_;
  size_t off_ = 0;
};


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
  AttrBits b;
  for (uint32_t a : kSupported) b.Set(a);
  return b;
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

void EncodeAttrs(const AttrBits& req_in, const AttrSource& src, Arena& arena,
                 fattr4* out) {
  AttrBits req = req_in & SupportedAttrs();
  if (!src.stats) {
    for (uint32_t a : {FATTR4_FILES_AVAIL, FATTR4_FILES_FREE,
                       FATTR4_FILES_TOTAL, FATTR4_SPACE_AVAIL,
                       FATTR4_SPACE_FREE, FATTR4_SPACE_TOTAL}) {
      req.w[a / 32] &= ~(1u << (a % 32));
    }
  }
  const ns::Attr& a = *src.attr;
  rpc::XdrEncoder e(256);
  for (uint32_t n = 0; n < 96; ++n) {
    if (!req.Has(n)) continue;
    switch (n) {
      case FATTR4_SUPPORTED_ATTRS: PutBits(e, SupportedAttrs()); break;
      case FATTR4_TYPE: e.PutUint32(FType(a.type)); break;
      case FATTR4_FH_EXPIRE_TYPE: e.PutUint32(FH4_PERSISTENT); break;
      case FATTR4_CHANGE: e.PutUint64(NfsChange(a.change, src.writes)); break;
      case FATTR4_SIZE: e.PutUint64(a.size); break;
      case FATTR4_LINK_SUPPORT: e.PutUint32(1); break;
      case FATTR4_SYMLINK_SUPPORT: e.PutUint32(1); break;
      case FATTR4_NAMED_ATTR: e.PutUint32(0); break;
      case FATTR4_FSID:
        e.PutUint64(kFsidMajor);
        e.PutUint64(src.fsid_minor.value_or(src.fh.export_id));
        break;
      case FATTR4_UNIQUE_HANDLES: e.PutUint32(1); break;
      case FATTR4_LEASE_TIME: e.PutUint32(src.lease_seconds); break;
      case FATTR4_RDATTR_ERROR: e.PutUint32(src.rdattr_error); break;
      case FATTR4_CANSETTIME: e.PutUint32(1); break;
      case FATTR4_CASE_INSENSITIVE: e.PutUint32(0); break;
      case FATTR4_CASE_PRESERVING: e.PutUint32(1); break;
      case FATTR4_CHOWN_RESTRICTED: e.PutUint32(1); break;
      case FATTR4_FILEHANDLE: e.PutOpaque(src.codec->Encode(src.fh)); break;
      case FATTR4_FILEID: e.PutUint64(a.ino); break;
      case FATTR4_FILES_AVAIL: e.PutUint64(src.stats->files_free); break;
      case FATTR4_FILES_FREE: e.PutUint64(src.stats->files_free); break;
      case FATTR4_FILES_TOTAL:
        e.PutUint64(src.stats->files + src.stats->files_free);
        break;
      case FATTR4_HOMOGENEOUS: e.PutUint32(1); break;
      case FATTR4_MAXFILESIZE: e.PutUint64(NFS4_INT64_MAX); break;
      case FATTR4_MAXLINK: e.PutUint32(ns::kMaxLinks); break;
      case FATTR4_MAXNAME: e.PutUint32(ns::kMaxNameBytes); break;
      case FATTR4_MAXREAD: e.PutUint64(src.max_io); break;
      case FATTR4_MAXWRITE: e.PutUint64(src.max_io); break;
      case FATTR4_MODE: e.PutUint32(a.mode & 07777); break;
      case FATTR4_NO_TRUNC: e.PutUint32(1); break;
      case FATTR4_NUMLINKS: e.PutUint32(a.nlink); break;
      case FATTR4_OWNER:
        e.PutString(src.idmap ? src.idmap->UidToOwner(a.uid)
                              : std::to_string(a.uid));
        break;
      case FATTR4_OWNER_GROUP:
        e.PutString(src.idmap ? src.idmap->GidToGroup(a.gid)
                              : std::to_string(a.gid));
        break;
      case FATTR4_RAWDEV:
        e.PutUint32(a.rdev_major);
        e.PutUint32(a.rdev_minor);
        break;
      case FATTR4_SPACE_AVAIL: e.PutUint64(src.stats->bytes_free); break;
      case FATTR4_SPACE_FREE: e.PutUint64(src.stats->bytes_free); break;
      case FATTR4_SPACE_TOTAL: e.PutUint64(src.stats->bytes_total); break;
      case FATTR4_SPACE_USED:
        e.PutUint64(src.space_used.value_or((a.size + 511) & ~uint64_t{511}));
        break;
      case FATTR4_TIME_ACCESS: PutTime(e, a.atime); break;
      case FATTR4_TIME_CREATE: PutTime(e, a.btime); break;
      case FATTR4_TIME_DELTA: PutTime(e, 1); break;
      case FATTR4_TIME_METADATA: PutTime(e, a.ctime); break;
      case FATTR4_TIME_MODIFY: PutTime(e, a.mtime); break;
      case FATTR4_FS_LAYOUT_TYPES:
        // §5.12.2: the layout types of this file system (none without
        // data servers: the client then never asks for a layout).
        e.PutUint32(src.pnfs_files ? 1 : 0);
        if (src.pnfs_files) e.PutUint32(LAYOUT4_NFSV4_1_FILES);
        break;
      case FATTR4_LAYOUT_BLKSIZE:
        // §5.12.4: the preferred I/O unit; the stripe unit, else max_io.
        e.PutUint32(src.layout_blksize ? src.layout_blksize : src.max_io);
        break;
      case FATTR4_MOUNTED_ON_FILEID:
        e.PutUint64(src.mounted_on_fileid.value_or(a.ino));
        break;
      case FATTR4_SUPPATTR_EXCLCREAT: {
        AttrBits x;
        for (uint32_t s : {FATTR4_SIZE, FATTR4_MODE, FATTR4_OWNER,
                           FATTR4_OWNER_GROUP}) {
          x.Set(s);
        }
        PutBits(e, x);
        break;
      }
      case FATTR4_ACL:
        // Only when the caller read it (Namespace::GetAcl needs the
        // caller's READ_ACL); otherwise left out like an unsupported one.
        if (!src.acl) {
          req.w[n / 32] &= ~(1u << (n % 32));
          break;
        }
        EncodeAcl(e, *src.acl, src.idmap);
        break;
      case FATTR4_ACLSUPPORT: e.PutUint32(kAclSupport); break;
      case FATTR4_TIME_ACCESS_SET:
      case FATTR4_TIME_MODIFY_SET:
      default:
        // Write-only: never returned.
        req.w[n / 32] &= ~(1u << (n % 32));
        break;
    }
  }
  out->attrmask = req.ToBitmap(arena);
  out->attr_vals.attrlist4_len = static_cast<u_int>(e.size());
  out->attr_vals.attrlist4_val = arena.Bytes(e.size());
  std::memcpy(out->attr_vals.attrlist4_val, e.data(), e.size());
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
        if (!r.Str(&s, NFS4_OPAQUE_LIMIT)) return NFS4ERR_BADXDR;
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
        r.Skip(used);
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
