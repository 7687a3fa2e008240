#include "nfs41client/client.h"

#include <cstdlib>
#include <cstring>

#include "nfs41d/proto/attr_reader.h"

namespace nfs41client {

namespace {
using Reader = nfs4::AttrReader;
}  // namespace

// ------------------------------------------------------------------ Reply

namespace {

size_t Padded(size_t n) { return (n + 3) & ~size_t{3}; }

// COMPOUND4res (RFC 8881 §16.2.2) as xdr_COMPOUND4res decodes it, except
// that each READ4resok's data (§18.22.2) points into `bytes`. resarray_len
// counts the results begun, so that xdr_free releases a partial decode.
bool DecodeCompoundRes(std::span<const uint8_t> bytes, COMPOUND4res* res) {
  rpc::XdrDecoder dec(bytes);
  XDR* x = dec.xdr();
  u_int n = 0;
  if (!xdr_nfsstat4(x, &res->status) || !xdr_utf8str_cs(x, &res->tag) ||
      !xdr_u_int(x, &n)) {
    return false;
  }
  // Every result holds at least its op number and status.
  if (n > dec.remaining() / 8) return false;
  if (n == 0) return dec.remaining() == 0;
  res->resarray.resarray_val =
      static_cast<nfs_resop4*>(std::calloc(n, sizeof(nfs_resop4)));
  if (res->resarray.resarray_val == nullptr) return false;
  for (u_int i = 0; i < n; ++i) {
    nfs_resop4& r = res->resarray.resarray_val[i];
    res->resarray.resarray_len = i + 1;
    const u_int start = xdr_getpos(x);
    if (!xdr_nfs_opnum4(x, &r.resop)) return false;
    if (r.resop != OP_READ) {
      xdr_setpos(x, start);
      if (!xdr_nfs_resop4(x, &r)) return false;
      continue;
    }
    READ4res& rr = r.nfs_resop4_u.opread;
    if (!xdr_nfsstat4(x, &rr.status)) return false;
    if (rr.status != NFS4_OK) continue;
    READ4resok& ok = rr.READ4res_u.resok4;
    u_int len = 0;
    if (!xdr_bool(x, &ok.eof) || !xdr_u_int(x, &len)) return false;
    if (len > ~u_int{0} - 3) return false;
    int32_t* p = XDR_INLINE(x, static_cast<u_int>(Padded(len)));
    if (p == nullptr) return false;
    ok.data.data_len = len;
    ok.data.data_val = reinterpret_cast<char*>(p);
  }
  return dec.remaining() == 0;
}

}  // namespace

Reply& Reply::operator=(Reply&& other) noexcept {
  if (this != &other) {
    DetachViews();
    res_ = std::move(other.res_);
    body_ = std::move(other.body_);
  }
  return *this;
}

Reply::~Reply() { DetachViews(); }

void Reply::DetachViews() {
  COMPOUND4res& r = res_.get();
  for (u_int i = 0; i < r.resarray.resarray_len; ++i) {
    nfs_resop4& op = r.resarray.resarray_val[i];
    if (op.resop == OP_READ) op.nfs_resop4_u.opread.READ4res_u.resok4.data = {0, nullptr};
  }
}

bool Reply::Decode(rpc::ReplyBody body) {
  DetachViews();
  res_.Reset();
  // The vector's buffer moves with it: the views stay valid as long as
  // body_ lives (moving a Reply moves it too).
  body_ = std::move(body);
  return DecodeCompoundRes(body_->results(), &res_.get());
}

nfsstat4 Reply::op_status(size_t i) const {
  nfsstat4 s;
  std::memcpy(&s, &op(i).nfs_resop4_u, sizeof s);
  return s;
}

std::optional<Fh> Reply::LastFh() const {
  std::optional<Fh> fh;
  for (size_t i = 0; i < size(); ++i) {
    if (op(i).resop == OP_GETFH && op_status(i) == NFS4_OK) {
      const nfs_fh4& o = op(i).nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
      fh = Fh(o.nfs_fh4_val, o.nfs_fh4_val + o.nfs_fh4_len);
    }
  }
  return fh;
}

bool DecodeAttrs(const fattr4& in, Attrs* out) {
  Reader r(in.attr_vals.attrlist4_val, in.attr_vals.attrlist4_len);
  for (u_int w = 0; w < in.attrmask.bitmap4_len; ++w) {
    for (uint32_t bit = 0; bit < 32; ++bit) {
      if (!((in.attrmask.bitmap4_val[w] >> bit) & 1)) continue;
      uint32_t a = w * 32 + bit;
      uint32_t u32 = 0;
      uint64_t u64 = 0;
      std::string s;
      bool ok = true;
      switch (a) {
        case FATTR4_SUPPORTED_ATTRS:
        case FATTR4_SUPPATTR_EXCLCREAT: {
          uint32_t n;
          ok = r.U32(&n) && n <= 8;
          std::vector<uint32_t> v;
          for (uint32_t i = 0; ok && i < n; ++i) {
            ok = r.U32(&u32);
            v.push_back(u32);
          }
          if (a == FATTR4_SUPPORTED_ATTRS) out->supported = v;
          break;
        }
        case FATTR4_TYPE: ok = r.U32(&out->type); break;
        case FATTR4_CHANGE: ok = r.U64(&out->change); break;
        case FATTR4_SIZE: ok = r.U64(&out->size); break;
        case FATTR4_FSID:
          ok = r.U64(&out->fsid_major) && r.U64(&out->fsid_minor);
          break;
        case FATTR4_LEASE_TIME: ok = r.U32(&out->lease_time); break;
        case FATTR4_FILEHANDLE:
          ok = r.Opaque(&s);
          out->filehandle.assign(s.begin(), s.end());
          break;
        case FATTR4_FILEID: ok = r.U64(&out->fileid); break;
        case FATTR4_MODE: ok = r.U32(&out->mode); break;
        case FATTR4_NUMLINKS: ok = r.U32(&out->numlinks); break;
        case FATTR4_OWNER: ok = r.Opaque(&out->owner); break;
        case FATTR4_OWNER_GROUP: ok = r.Opaque(&out->owner_group); break;
        case FATTR4_RAWDEV:
          ok = r.U32(&out->rdev_major) && r.U32(&out->rdev_minor);
          break;
        case FATTR4_TIME_MODIFY:
          ok = r.U64(&u64) && r.U32(&out->mtime_nsec);
          out->mtime_sec = static_cast<int64_t>(u64);
          break;
        case FATTR4_ACL: {
          uint32_t n;
          ok = r.U32(&n) && n <= 4096;
          out->acl.clear();
          for (uint32_t i = 0; ok && i < n; ++i) {
            Ace ace;
            ok = r.U32(&ace.type) && r.U32(&ace.flags) && r.U32(&ace.mask) &&
                 r.Opaque(&ace.who);
            out->acl.push_back(std::move(ace));
          }
          break;
        }
        case FATTR4_ACLSUPPORT: ok = r.U32(&out->aclsupport); break;
        case FATTR4_TIME_ACCESS:
        case FATTR4_TIME_CREATE:
        case FATTR4_TIME_DELTA:
        case FATTR4_TIME_METADATA:
          ok = r.Skip(12);
          break;
        // 4-byte values
        case FATTR4_FH_EXPIRE_TYPE: case FATTR4_LINK_SUPPORT:
        case FATTR4_SYMLINK_SUPPORT: case FATTR4_NAMED_ATTR:
        case FATTR4_UNIQUE_HANDLES: case FATTR4_RDATTR_ERROR:
        case FATTR4_CANSETTIME: case FATTR4_CASE_INSENSITIVE:
        case FATTR4_CASE_PRESERVING: case FATTR4_CHOWN_RESTRICTED:
        case FATTR4_HOMOGENEOUS: case FATTR4_MAXLINK: case FATTR4_MAXNAME:
        case FATTR4_NO_TRUNC:
          ok = r.U32(&u32);
          break;
        // 8-byte values
        case FATTR4_FILES_AVAIL: case FATTR4_FILES_FREE:
        case FATTR4_FILES_TOTAL: case FATTR4_MAXFILESIZE:
        case FATTR4_MAXREAD: case FATTR4_MAXWRITE: case FATTR4_SPACE_AVAIL:
        case FATTR4_SPACE_FREE: case FATTR4_SPACE_TOTAL:
        case FATTR4_SPACE_USED: ok = r.U64(&out->space_used); break;
        case FATTR4_MOUNTED_ON_FILEID:
          ok = r.U64(&out->mounted_on_fileid);
          break;
        default:
          return false;
      }
      if (!ok) return false;
      out->present.push_back(a);
    }
  }
  return r.Done();
}

}  // namespace nfs41client
