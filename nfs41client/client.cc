#include "nfs41client/client.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace nfs41client {
namespace {

template <typename T>
T Zero() {
  T v;
  std::memset(&v, 0, sizeof v);
  return v;
}

utf8string Utf8(const std::string& s) {
  utf8string u{};
  u.utf8string_len = static_cast<u_int>(s.size());
  u.utf8string_val = const_cast<char*>(s.data());
  return u;
}

bitmap4 Bitmap(const std::vector<uint32_t>& b) {
  bitmap4 m{};
  m.bitmap4_len = static_cast<u_int>(b.size());
  m.bitmap4_val = const_cast<uint32_t*>(b.data());
  return m;
}

template <typename T>
NfsResult<T> Fail(nfsstat4 s, std::string e = {}) {
  NfsResult<T> r;
  r.status = s;
  r.error = std::move(e);
  return r;
}

// First failing status of a reply (the COMPOUND's status).
template <typename T>
NfsResult<T> FromReply(const rpc::Result<Reply>& r) {
  if (!r.ok()) return Fail<T>(NFS4ERR_IO, r.status().ToString());
  return Fail<T>(r->status());
}

// Attribute value reader.
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
    uint32_t h, l;
    if (!U32(&h) || !U32(&l)) return false;
    *v = (uint64_t{h} << 32) | l;
    return true;
  }
  bool Opaque(std::string* s) {
    uint32_t len;
    if (!U32(&len)) return false;
    size_t pad = (size_t{len} + 3) & ~size_t{3};
    if (n_ - off_ < pad) return false;
    s->assign(reinterpret_cast<const char*>(p_ + off_), len);
    off_ += pad;
    return true;
  }
  bool Skip(size_t n) {
    if (n_ - off_ < n) return false;
    off_ += n;
    return true;
  }
  bool Done() const { return off_ == n_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t off_ = 0;
};

std::atomic<uint64_t> g_owner_counter{0};

}  // namespace

std::vector<uint32_t> Bits(std::initializer_list<uint32_t> attrs) {
  std::vector<uint32_t> b;
  for (uint32_t a : attrs) {
    if (b.size() <= a / 32) b.resize(a / 32 + 1);
    b[a / 32] |= 1u << (a % 32);
  }
  return b;
}

// --------------------------------------------------------------- Compound

Compound& Compound::Op(const nfs_argop4& op) {
  rpc::XdrEncoder enc(64);
  enc.Encode(xdr_nfs_argop4, op);
  ops_.push_back(enc.Take());
  tails_.emplace_back();
  return *this;
}

Compound& Compound::RawOp(uint32_t opnum, std::span<const uint8_t> args) {
  rpc::XdrEncoder enc(8 + args.size());
  enc.PutUint32(opnum);
  enc.PutFixedOpaque(args);
  ops_.push_back(enc.Take());
  tails_.emplace_back();
  return *this;
}

#define SIMPLE(Method, OPNUM)        \
  Compound& Compound::Method() {     \
    auto op = Zero<nfs_argop4>();    \
    op.argop = OPNUM;                \
    return Op(op);                   \
  }
SIMPLE(PutRootFh, OP_PUTROOTFH)
SIMPLE(PutPubFh, OP_PUTPUBFH)
SIMPLE(GetFh, OP_GETFH)
SIMPLE(SaveFh, OP_SAVEFH)
SIMPLE(RestoreFh, OP_RESTOREFH)
SIMPLE(Lookupp, OP_LOOKUPP)
SIMPLE(ReadLink, OP_READLINK)
#undef SIMPLE

Compound& Compound::PutFh(const Fh& fh) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_PUTFH;
  op.nfs_argop4_u.opputfh.object.nfs_fh4_len = static_cast<u_int>(fh.size());
  op.nfs_argop4_u.opputfh.object.nfs_fh4_val =
      reinterpret_cast<char*>(const_cast<uint8_t*>(fh.data()));
  return Op(op);
}

Compound& Compound::Lookup(const std::string& name) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_LOOKUP;
  op.nfs_argop4_u.oplookup.objname = Utf8(name);
  return Op(op);
}

Compound& Compound::GetAttr(const std::vector<uint32_t>& bitmap) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_GETATTR;
  op.nfs_argop4_u.opgetattr.attr_request = Bitmap(bitmap);
  return Op(op);
}

Compound& Compound::Access(uint32_t bits) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_ACCESS;
  op.nfs_argop4_u.opaccess.access = bits;
  return Op(op);
}

Compound& Compound::ReadDir(uint64_t cookie, const verifier4 verf,
                            uint32_t dircount, uint32_t maxcount,
                            const std::vector<uint32_t>& bitmap) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_READDIR;
  READDIR4args& a = op.nfs_argop4_u.opreaddir;
  a.cookie = cookie;
  std::memcpy(a.cookieverf, verf, NFS4_VERIFIER_SIZE);
  a.dircount = dircount;
  a.maxcount = maxcount;
  a.attr_request = Bitmap(bitmap);
  return Op(op);
}

Compound& Compound::Create(nfs_ftype4 type, const std::string& name,
                           uint32_t mode, const std::string& target,
                           uint32_t major, uint32_t minor) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_CREATE;
  CREATE4args& a = op.nfs_argop4_u.opcreate;
  a.objtype.type = type;
  if (type == NF4LNK) a.objtype.createtype4_u.linkdata = Utf8(target);
  if (type == NF4BLK || type == NF4CHR) {
    a.objtype.createtype4_u.devdata.specdata1 = major;
    a.objtype.createtype4_u.devdata.specdata2 = minor;
  }
  a.objname = Utf8(name);
  std::vector<uint32_t> bits = Bits({FATTR4_MODE});
  uint8_t vals[4] = {static_cast<uint8_t>(mode >> 24),
                     static_cast<uint8_t>(mode >> 16),
                     static_cast<uint8_t>(mode >> 8),
                     static_cast<uint8_t>(mode)};
  a.createattrs.attrmask = Bitmap(bits);
  a.createattrs.attr_vals.attrlist4_len = 4;
  a.createattrs.attr_vals.attrlist4_val = reinterpret_cast<char*>(vals);
  return Op(op);
}

Compound& Compound::Remove(const std::string& name) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_REMOVE;
  op.nfs_argop4_u.opremove.target = Utf8(name);
  return Op(op);
}

Compound& Compound::Rename(const std::string& from, const std::string& to) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_RENAME;
  op.nfs_argop4_u.oprename.oldname = Utf8(from);
  op.nfs_argop4_u.oprename.newname = Utf8(to);
  return Op(op);
}

Compound& Compound::Link(const std::string& name) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_LINK;
  op.nfs_argop4_u.oplink.newname = Utf8(name);
  return Op(op);
}

Compound& Compound::SetMode(uint32_t mode) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_SETATTR;
  std::vector<uint32_t> bits = Bits({FATTR4_MODE});
  uint8_t vals[4] = {static_cast<uint8_t>(mode >> 24),
                     static_cast<uint8_t>(mode >> 16),
                     static_cast<uint8_t>(mode >> 8),
                     static_cast<uint8_t>(mode)};
  SETATTR4args& a = op.nfs_argop4_u.opsetattr;
  a.obj_attributes.attrmask = Bitmap(bits);
  a.obj_attributes.attr_vals.attrlist4_len = 4;
  a.obj_attributes.attr_vals.attrlist4_val = reinterpret_cast<char*>(vals);
  return Op(op);
}

Compound& Compound::SetMtime(int64_t seconds) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_SETATTR;
  std::vector<uint32_t> bits = Bits({FATTR4_TIME_MODIFY_SET});
  uint8_t vals[16] = {};
  vals[3] = SET_TO_CLIENT_TIME4;
  for (int i = 0; i < 8; ++i) {
    vals[4 + i] = static_cast<uint8_t>(static_cast<uint64_t>(seconds) >>
                                       (56 - 8 * i));
  }
  SETATTR4args& a = op.nfs_argop4_u.opsetattr;
  a.obj_attributes.attrmask = Bitmap(bits);
  a.obj_attributes.attr_vals.attrlist4_len = 16;
  a.obj_attributes.attr_vals.attrlist4_val = reinterpret_cast<char*>(vals);
  return Op(op);
}

Compound& Compound::SetOwner(const std::string& owner,
                             const std::string& group) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_SETATTR;
  std::vector<uint32_t> attrs;
  rpc::XdrEncoder e;
  if (!owner.empty()) {
    attrs.push_back(FATTR4_OWNER);
    e.PutString(owner);
  }
  if (!group.empty()) {
    attrs.push_back(FATTR4_OWNER_GROUP);
    e.PutString(group);
  }
  std::vector<uint32_t> bits(2, 0);
  for (uint32_t a : attrs) bits[a / 32] |= 1u << (a % 32);
  std::vector<uint8_t> vals = e.Take();
  SETATTR4args& a = op.nfs_argop4_u.opsetattr;
  a.obj_attributes.attrmask = Bitmap(bits);
  a.obj_attributes.attr_vals.attrlist4_len = static_cast<u_int>(vals.size());
  a.obj_attributes.attr_vals.attrlist4_val = reinterpret_cast<char*>(vals.data());
  return Op(op);
}

Compound& Compound::SetAcl(const std::vector<Ace>& acl,
                           std::optional<uint32_t> mode) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_SETATTR;
  rpc::XdrEncoder e;
  std::vector<uint32_t> bits =
      mode ? Bits({FATTR4_ACL, FATTR4_MODE}) : Bits({FATTR4_ACL});
  // Attribute values go in bit order: acl (12) before mode (33).
  e.PutUint32(static_cast<uint32_t>(acl.size()));
  for (const Ace& a : acl) {
    e.PutUint32(a.type);
    e.PutUint32(a.flags);
    e.PutUint32(a.mask);
    e.PutString(a.who);
  }
  if (mode) e.PutUint32(*mode);
  std::vector<uint8_t> vals = e.Take();
  SETATTR4args& a = op.nfs_argop4_u.opsetattr;
  a.obj_attributes.attrmask = Bitmap(bits);
  a.obj_attributes.attr_vals.attrlist4_len = static_cast<u_int>(vals.size());
  a.obj_attributes.attr_vals.attrlist4_val = reinterpret_cast<char*>(vals.data());
  return Op(op);
}

Compound& Compound::SecInfoNoName() {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_SECINFO_NO_NAME;
  op.nfs_argop4_u.opsecinfo_no_name = SECINFO_STYLE4_CURRENT_FH;
  return Op(op);
}

namespace {
decltype(state_owner4::owner) Owner(const std::string& o) {
  decltype(state_owner4::owner) w{};
  w.owner_len = static_cast<u_int>(o.size());
  w.owner_val = const_cast<char*>(o.data());
  return w;
}
void PutVerifier(uint64_t v, verifier4 out) {
  for (int i = NFS4_VERIFIER_SIZE - 1; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}
// fattr4 values: mode, then size if given (bit order).
std::string AttrVals(uint32_t mode, std::optional<uint64_t> size) {
  std::string v;
  auto put32 = [&](uint32_t x) {
    for (int i = 3; i >= 0; --i) v.push_back(static_cast<char>(x >> (8 * i)));
  };
  if (size) {
    put32(static_cast<uint32_t>(*size >> 32));
    put32(static_cast<uint32_t>(*size));
  }
  put32(mode);
  return v;
}
}  // namespace

Compound& Compound::Open(const std::string& name, uint32_t access,
                         uint32_t deny, const std::string& owner, bool create,
                         createmode4 how, uint32_t mode, uint64_t verf,
                         std::optional<uint64_t> size) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_OPEN;
  OPEN4args& a = op.nfs_argop4_u.opopen;
  a.share_access = access;
  a.share_deny = deny;
  a.owner.owner = Owner(owner);
  a.claim.claim = CLAIM_NULL;
  a.claim.open_claim4_u.file = Utf8(name);
  std::vector<uint32_t> bits = size ? Bits({FATTR4_SIZE, FATTR4_MODE})
                                    : Bits({FATTR4_MODE});
  std::string vals = AttrVals(mode, size);
  if (create) {
    a.openhow.opentype = OPEN4_CREATE;
    createhow4& h = a.openhow.openflag4_u.how;
    h.mode = how;
    fattr4* attrs = nullptr;
    if (how == UNCHECKED4 || how == GUARDED4) attrs = &h.createhow4_u.createattrs;
    if (how == EXCLUSIVE4) PutVerifier(verf, h.createhow4_u.createverf);
    if (how == EXCLUSIVE4_1) {
      PutVerifier(verf, h.createhow4_u.ch_createboth.cva_verf);
      attrs = &h.createhow4_u.ch_createboth.cva_attrs;
    }
    if (attrs) {
      attrs->attrmask = Bitmap(bits);
      attrs->attr_vals.attrlist4_len = static_cast<u_int>(vals.size());
      attrs->attr_vals.attrlist4_val = vals.data();
    }
  } else {
    a.openhow.opentype = OPEN4_NOCREATE;
  }
  return Op(op);
}

Compound& Compound::OpenFh(uint32_t access, uint32_t deny,
                           const std::string& owner, open_claim_type4 claim) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_OPEN;
  OPEN4args& a = op.nfs_argop4_u.opopen;
  a.share_access = access;
  a.share_deny = deny;
  a.owner.owner = Owner(owner);
  a.openhow.opentype = OPEN4_NOCREATE;
  a.claim.claim = claim;
  if (claim == CLAIM_PREVIOUS) {
    a.claim.open_claim4_u.delegate_type = OPEN_DELEGATE_NONE;
  }
  return Op(op);
}

Compound& Compound::OpenDowngrade(const stateid4& sid, uint32_t access,
                                  uint32_t deny) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_OPEN_DOWNGRADE;
  op.nfs_argop4_u.opopen_downgrade.open_stateid = sid;
  op.nfs_argop4_u.opopen_downgrade.share_access = access;
  op.nfs_argop4_u.opopen_downgrade.share_deny = deny;
  return Op(op);
}

Compound& Compound::Close(const stateid4& sid) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_CLOSE;
  op.nfs_argop4_u.opclose.open_stateid = sid;
  return Op(op);
}

Compound& Compound::Read(const stateid4& sid, uint64_t offset,
                         uint32_t count) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_READ;
  op.nfs_argop4_u.opread.stateid = sid;
  op.nfs_argop4_u.opread.offset = offset;
  op.nfs_argop4_u.opread.count = count;
  return Op(op);
}

namespace {
// A WRITE (RFC 8881 §18.32.1) with no data yet.
nfs_argop4 WriteOp(const stateid4& sid, uint64_t offset, stable_how4 stable) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_WRITE;
  WRITE4args& a = op.nfs_argop4_u.opwrite;
  a.stateid = sid;
  a.offset = offset;
  a.stable = stable;
  return op;
}
}  // namespace

Compound& Compound::Write(const stateid4& sid, uint64_t offset,
                          const std::string& data, stable_how4 stable) {
  nfs_argop4 op = WriteOp(sid, offset, stable);
  WRITE4args& a = op.nfs_argop4_u.opwrite;
  a.data.data_len = static_cast<u_int>(data.size());
  a.data.data_val = const_cast<char*>(data.data());
  return Op(op);
}

Compound& Compound::WriteView(const stateid4& sid, uint64_t offset,
                              std::span<const uint8_t> data,
                              stable_how4 stable) {
  // WRITE4args (RFC 8881 §18.32.1) up to the data's length; the data and
  // its padding follow in Encode.
  const nfs_argop4 op = WriteOp(sid, offset, stable);
  rpc::XdrEncoder enc(64);
  enc.Encode(xdr_nfs_argop4, op);  // ends with data<> of length 0
  std::vector<uint8_t> head = enc.Take();
  const uint32_t len = htonl(static_cast<uint32_t>(data.size()));
  std::memcpy(head.data() + head.size() - 4, &len, 4);
  ops_.push_back(std::move(head));
  tails_.push_back(data);
  return *this;
}

Compound& Compound::Commit(uint64_t offset, uint32_t count) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_COMMIT;
  op.nfs_argop4_u.opcommit.offset = offset;
  op.nfs_argop4_u.opcommit.count = count;
  return Op(op);
}

Compound& Compound::SetSize(const stateid4& sid, uint64_t size) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_SETATTR;
  std::vector<uint32_t> bits = Bits({FATTR4_SIZE});
  uint8_t vals[8];
  for (int i = 0; i < 8; ++i) vals[i] = static_cast<uint8_t>(size >> (56 - 8 * i));
  SETATTR4args& a = op.nfs_argop4_u.opsetattr;
  a.stateid = sid;
  a.obj_attributes.attrmask = Bitmap(bits);
  a.obj_attributes.attr_vals.attrlist4_len = 8;
  a.obj_attributes.attr_vals.attrlist4_val = reinterpret_cast<char*>(vals);
  return Op(op);
}

Compound& Compound::LockNew(nfs_lock_type4 type, uint64_t offset,
                            uint64_t length, const stateid4& open_sid,
                            const std::string& lock_owner, bool reclaim) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_LOCK;
  LOCK4args& a = op.nfs_argop4_u.oplock;
  a.locktype = type;
  a.reclaim = reclaim ? TRUE : FALSE;
  a.offset = offset;
  a.length = length;
  a.locker.new_lock_owner = TRUE;
  open_to_lock_owner4& o = a.locker.locker4_u.open_owner;
  o.open_stateid = open_sid;
  o.lock_owner.owner = Owner(lock_owner);
  return Op(op);
}

Compound& Compound::LockExisting(nfs_lock_type4 type, uint64_t offset,
                                 uint64_t length, const stateid4& lock_sid) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_LOCK;
  LOCK4args& a = op.nfs_argop4_u.oplock;
  a.locktype = type;
  a.offset = offset;
  a.length = length;
  a.locker.new_lock_owner = FALSE;
  a.locker.locker4_u.lock_owner.lock_stateid = lock_sid;
  return Op(op);
}

Compound& Compound::LockT(nfs_lock_type4 type, uint64_t offset,
                          uint64_t length, const std::string& lock_owner) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_LOCKT;
  LOCKT4args& a = op.nfs_argop4_u.oplockt;
  a.locktype = type;
  a.offset = offset;
  a.length = length;
  a.owner.owner = Owner(lock_owner);
  return Op(op);
}

Compound& Compound::LockU(nfs_lock_type4 type, uint64_t offset,
                          uint64_t length, const stateid4& lock_sid) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_LOCKU;
  LOCKU4args& a = op.nfs_argop4_u.oplocku;
  a.locktype = type;
  a.lock_stateid = lock_sid;
  a.offset = offset;
  a.length = length;
  return Op(op);
}

Compound& Compound::TestStateids(const std::vector<stateid4>& sids) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_TEST_STATEID;
  op.nfs_argop4_u.optest_stateid.ts_stateids.ts_stateids_len =
      static_cast<u_int>(sids.size());
  op.nfs_argop4_u.optest_stateid.ts_stateids.ts_stateids_val =
      const_cast<stateid4*>(sids.data());
  return Op(op);
}

Compound& Compound::FreeStateid(const stateid4& sid) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_FREE_STATEID;
  op.nfs_argop4_u.opfree_stateid.fsa_stateid = sid;
  return Op(op);
}

Compound& Compound::ReclaimComplete(bool one_fs) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_RECLAIM_COMPLETE;
  op.nfs_argop4_u.opreclaim_complete.rca_one_fs = one_fs ? TRUE : FALSE;
  return Op(op);
}

std::vector<uint8_t> Compound::Encode(
    uint32_t minorversion, const std::vector<uint8_t>* prefix) const {
  // Sized once: a WRITE's data is copied exactly once, into its place.
  size_t total = 16 + tag_.size() + (prefix ? prefix->size() : 0);
  for (size_t i = 0; i < ops_.size(); ++i) {
    total += ops_[i].size() + tails_[i].size() + 3;
  }
  rpc::XdrEncoder enc(total);
  enc.PutString(tag_);
  enc.PutUint32(minorversion);
  enc.PutUint32(static_cast<uint32_t>(ops_.size() + (prefix ? 1 : 0)));
  if (prefix) enc.PutFixedOpaque(*prefix);
  for (size_t i = 0; i < ops_.size(); ++i) {
    enc.PutFixedOpaque(ops_[i]);
    if (!tails_[i].empty()) enc.PutFixedOpaque(tails_[i]);
  }
  return enc.Take();
}

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

// ----------------------------------------------------------------- Client

rpc::Result<std::unique_ptr<Client>> Client::Connect(const std::string& host,
                                                     uint16_t port,
                                                     ClientOptions options) {
  if (options.owner.empty()) {
    options.owner = "nfs41client-" + std::to_string(getpid()) + "-" +
                    std::to_string(g_owner_counter.fetch_add(1));
  }
  std::unique_ptr<Client> c(new Client(std::move(options)));
  rpc::ClientOptions ro;
  ro.cred = c->options_.cred;
  ro.call_timeout = c->options_.timeout;
  ro.local_host = c->options_.local_host;
  auto rc = rpc::Client::Connect(host, port, ro);
  if (!rc.ok()) return rc.status();
  c->rpc_ = std::move(rc).value();
  c->ServeCallbacks(c->options_.cb_program);
  return c;
}

rpc::Status Client::Reconnect(const std::string& host, uint16_t port) {
  rpc::ClientOptions ro;
  ro.cred = options_.cred;
  ro.call_timeout = options_.timeout;
  auto rc = rpc::Client::Connect(host, port, ro);
  if (!rc.ok()) return rc.status();
  if (rpc_) rpc_->Close();
  rpc_ = std::move(rc).value();
  ServeCallbacks(options_.cb_program);
  return rpc::Status::Ok();
}

// ------------------------------------------------------ callback service

void Client::ServeCallbacks(uint32_t program) {
  if (!options_.answer_callbacks) return;
  rpc::Program p(program, 1, 1);  // NFS_CB version 1 (RFC 5662)
  p.On(0, [this](const rpc::CallContext& ctx, std::span<const uint8_t>) {
     {
       std::lock_guard lock(cb_mu_);
       ++cb_stats_.cb_null;
       cb_stats_.last_cb_program = ctx.prog;
     }
     cb_cv_.notify_all();
     return rpc::Reply::Void();
   }).On(1, [this](const rpc::CallContext& ctx,
                   std::span<const uint8_t> args) {
    {
      std::lock_guard lock(cb_mu_);
      cb_stats_.last_cb_program = ctx.prog;
    }
    rpc::Reply r = HandleCbCompound(args);
    cb_cv_.notify_all();
    return r;
  });
  rpc_->backchannel().Add(std::move(p));
}

// RFC 8881 §20.9.3: CB_SEQUENCE first, on our current session, on a slot
// of the back channel with the slot's next sequence id; then the ops, until
// the first error.
rpc::Reply Client::HandleCbCompound(std::span<const uint8_t> bytes) {
  rpc::XdrOwned<CB_COMPOUND4args> args(xdr_CB_COMPOUND4args);
  if (!args.DecodeAll(bytes)) return rpc::Reply::GarbageArgs();
  std::lock_guard lock(cb_mu_);
  ++cb_stats_.cb_compound;
  const u_int n = args->argarray.argarray_len;
  std::vector<nfs_cb_resop4> res;
  res.reserve(n);
  nfsstat4 status = NFS4_OK;
  if (args->minorversion != 1) status = NFS4ERR_MINOR_VERS_MISMATCH;
  for (u_int i = 0; i < n && status == NFS4_OK; ++i) {
    const nfs_cb_argop4& op = args->argarray.argarray_val[i];
    nfs_cb_resop4 r = Zero<nfs_cb_resop4>();
    r.resop = op.argop;
    if (op.argop == OP_CB_SEQUENCE) {
      const CB_SEQUENCE4args& a = op.nfs_cb_argop4_u.opcbsequence;
      if (i != 0) {
        status = NFS4ERR_SEQUENCE_POS;
      } else if (std::memcmp(a.csa_sessionid, sessionid_,
                             NFS4_SESSIONID_SIZE) != 0) {
        status = NFS4ERR_BADSESSION;
      } else if (a.csa_slotid >= back_seqids_.size()) {
        status = NFS4ERR_BADSLOT;
      } else if (a.csa_sequenceid != back_seqids_[a.csa_slotid] + 1) {
        status = NFS4ERR_SEQ_MISORDERED;  // no reply cache: no retries
      } else {
        back_seqids_[a.csa_slotid] = a.csa_sequenceid;
        CB_SEQUENCE4resok& ok =
            r.nfs_cb_resop4_u.opcbsequence.CB_SEQUENCE4res_u.csr_resok4;
        std::memcpy(ok.csr_sessionid, a.csa_sessionid, NFS4_SESSIONID_SIZE);
        ok.csr_sequenceid = a.csa_sequenceid;
        ok.csr_slotid = a.csa_slotid;
        ok.csr_highest_slotid = static_cast<uint32_t>(back_seqids_.size() - 1);
        ok.csr_target_highest_slotid = ok.csr_highest_slotid;
      }
      cb_stats_.last_sequence_status = status;
      (status == NFS4_OK ? cb_stats_.cb_sequence_ok
                         : cb_stats_.cb_sequence_bad)++;
    } else if (i == 0) {
      status = NFS4ERR_OP_NOT_IN_SESSION;
    } else if (op.argop == OP_CB_RECALL_ANY) {
      const CB_RECALL_ANY4args& a = op.nfs_cb_argop4_u.opcbrecall_any;
      ++cb_stats_.cb_recall_any;
      cb_stats_.last_objects_to_keep = a.craa_objects_to_keep;
      cb_stats_.last_type_mask = a.craa_type_mask.bitmap4_len > 0
                                     ? a.craa_type_mask.bitmap4_val[0]
                                     : 0;
    } else if (op.argop == OP_CB_LAYOUTRECALL) {
      // Recorded and accepted: a test returns the layout itself
      // (LAYOUTRETURN), as a real client would after the callback.
      const CB_LAYOUTRECALL4args& a = op.nfs_cb_argop4_u.opcblayoutrecall;
      ++cb_stats_.cb_layoutrecall;
      cb_stats_.last_layoutrecall_type = a.clora_recall.lor_recalltype;
      if (a.clora_recall.lor_recalltype == LAYOUTRECALL4_FILE) {
        const layoutrecall_file4& f = a.clora_recall.layoutrecall4_u.lor_layout;
        cb_stats_.last_layoutrecall_fh.assign(
            f.lor_fh.nfs_fh4_val, f.lor_fh.nfs_fh4_val + f.lor_fh.nfs_fh4_len);
        cb_stats_.last_layoutrecall_stateid = f.lor_stateid;
      }
    } else if (op.argop == OP_CB_NOTIFY_DEVICEID) {
      status = RecordDeviceNotify(op.nfs_cb_argop4_u.opcbnotify_deviceid);
    } else {
      status = NFS4ERR_NOTSUPP;
    }
    // Every arm of nfs_cb_resop4 starts with its status (the decoder only
    // accepts known operations, so every resop has an arm).
    std::memcpy(&r.nfs_cb_resop4_u, &status, sizeof status);
    res.push_back(r);
  }
  CB_COMPOUND4res out = Zero<CB_COMPOUND4res>();
  out.status = status;
  out.tag = args->tag;
  out.resarray.resarray_len = static_cast<u_int>(res.size());
  out.resarray.resarray_val = res.data();
  rpc::XdrEncoder enc(128);
  if (!enc.Encode(xdr_CB_COMPOUND4res, out)) return rpc::Reply::SystemErr();
  return rpc::Reply::Success(enc.Take());
}

// §20.12: each notify4 has one type bit in notify_mask and that type's
// XDR value in notify_vals. A value that does not decode is
// NFS4ERR_BADXDR; an unknown type, NFS4ERR_INVAL.
nfsstat4 Client::RecordDeviceNotify(const CB_NOTIFY_DEVICEID4args& a) {
  ++cb_stats_.cb_notify_deviceid;
  for (u_int i = 0; i < a.cnda_changes.cnda_changes_len; ++i) {
    const notify4& n = a.cnda_changes.cnda_changes_val[i];
    const uint32_t mask =
        n.notify_mask.bitmap4_len > 0 ? n.notify_mask.bitmap4_val[0] : 0;
    const std::span<const uint8_t> vals(
        reinterpret_cast<const uint8_t*>(n.notify_vals.notifylist4_val),
        n.notify_vals.notifylist4_len);
    CallbackStats::DeviceChange c;
    if (mask == (1u << NOTIFY_DEVICEID4_CHANGE)) {
      rpc::XdrOwned<notify_deviceid_change4> v(xdr_notify_deviceid_change4);
      if (!v.DecodeAll(vals)) return NFS4ERR_BADXDR;
      c.type = NOTIFY_DEVICEID4_CHANGE;
      std::memcpy(c.device.data(), v->ndc_deviceid, c.device.size());
      c.immediate = v->ndc_immediate;
    } else if (mask == (1u << NOTIFY_DEVICEID4_DELETE)) {
      rpc::XdrOwned<notify_deviceid_delete4> v(xdr_notify_deviceid_delete4);
      if (!v.DecodeAll(vals)) return NFS4ERR_BADXDR;
      c.type = NOTIFY_DEVICEID4_DELETE;
      std::memcpy(c.device.data(), v->ndd_deviceid, c.device.size());
    } else {
      return NFS4ERR_INVAL;
    }
    // Bounded: a test reads them long before this many arrive.
    if (cb_stats_.device_changes.size() < 4096) {
      cb_stats_.device_changes.push_back(c);
    }
  }
  return NFS4_OK;
}

CallbackStats Client::callback_stats() {
  std::lock_guard lock(cb_mu_);
  return cb_stats_;
}

bool Client::WaitForCallbacks(
    const std::function<bool(const CallbackStats&)>& pred,
    std::chrono::milliseconds timeout) {
  std::unique_lock lock(cb_mu_);
  return cb_cv_.wait_for(lock, timeout, [&] { return pred(cb_stats_); });
}

Client::~Client() {
  if (rpc_) rpc_->Close();
}

rpc::Result<Reply> Client::CallRaw(std::vector<uint8_t> args) {
  rpc::Result<rpc::ReplyBody> r =
      rpc_->Call(NFS4_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, std::move(args));
  if (!r.ok()) return r.status();
  Reply reply;
  if (!reply.Decode(std::move(r).value())) {
    return rpc::Status::Malformed("COMPOUND4res does not decode");
  }
  return reply;
}

rpc::Result<Reply> Client::CallNoSession(const Compound& c, uint32_t minor) {
  return CallRaw(c.Encode(minor, nullptr));
}

std::vector<uint8_t> Client::SequenceOp(uint32_t slot, uint32_t seqid,
                                        bool cache_this) const {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_SEQUENCE;
  SEQUENCE4args& a = op.nfs_argop4_u.opsequence;
  std::memcpy(a.sa_sessionid, sessionid_, NFS4_SESSIONID_SIZE);
  a.sa_sequenceid = seqid;
  a.sa_slotid = slot;
  a.sa_highest_slotid = slots_ ? slots_ - 1 : 0;
  a.sa_cachethis = cache_this;
  rpc::XdrEncoder enc(64);
  enc.Encode(xdr_nfs_argop4, op);
  return enc.Take();
}

uint32_t Client::AcquireSlot() {
  std::unique_lock lock(mu_);
  for (;;) {
    for (uint32_t i = 0; i < busy_.size(); ++i) {
      if (!busy_[i]) {
        busy_[i] = true;
        return i;
      }
    }
    cv_.wait(lock);
  }
}

void Client::ReleaseSlot(uint32_t slot) {
  {
    std::lock_guard lock(mu_);
    busy_[slot] = false;
  }
  cv_.notify_one();
}

uint32_t Client::slot_seqid(uint32_t slot) {
  std::lock_guard lock(mu_);
  return slot < seqids_.size() ? seqids_[slot] : 0;
}

rpc::Result<Reply> Client::Call(const Compound& c, bool cache_this) {
  if (slots_ == 0) return rpc::Status::InvalidArgument("no session");
  uint32_t slot = AcquireSlot();
  uint32_t seqid;
  {
    std::lock_guard lock(mu_);
    seqid = ++seqids_[slot];
  }
  std::vector<uint8_t> seq = SequenceOp(slot, seqid, cache_this);
  rpc::Result<Reply> r = CallRaw(c.Encode(1, &seq));
  // A SEQUENCE that failed did not consume the sequence id.
  if (r.ok() && r->size() > 0 && r->op(0).resop == OP_SEQUENCE &&
      r->op_status(0) != NFS4_OK) {
    std::lock_guard lock(mu_);
    --seqids_[slot];
  } else if (r.ok() && r->size() > 0 && r->op(0).resop == OP_SEQUENCE) {
    last_status_flags_.store(r->op(0)
                                 .nfs_resop4_u.opsequence.SEQUENCE4res_u
                                 .sr_resok4.sr_status_flags);
  }
  ReleaseSlot(slot);
  return r;
}

rpc::Result<Reply> Client::CallOnSlot(const Compound& c, uint32_t slot,
                                      uint32_t seqid, bool cache_this) {
  std::vector<uint8_t> seq = SequenceOp(slot, seqid, cache_this);
  return CallRaw(c.Encode(1, &seq));
}

nfsstat4 Client::ExchangeId(uint32_t flags) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_EXCHANGE_ID;
  EXCHANGE_ID4args& a = op.nfs_argop4_u.opexchange_id;
  for (int i = 0; i < NFS4_VERIFIER_SIZE; ++i) {
    a.eia_clientowner.co_verifier[i] =
        static_cast<char>(options_.verifier >> (8 * (7 - i)));
  }
  a.eia_clientowner.co_ownerid.co_ownerid_len =
      static_cast<u_int>(options_.owner.size());
  a.eia_clientowner.co_ownerid.co_ownerid_val = options_.owner.data();
  a.eia_flags = flags;
  a.eia_state_protect.spa_how = SP4_NONE;
  Compound c;
  c.Op(op);
  rpc::Result<Reply> r = CallNoSession(c);
  if (!r.ok()) return NFS4ERR_IO;
  if (r->status() != NFS4_OK) return r->status();
  const EXCHANGE_ID4resok& ok =
      r->op(0).nfs_resop4_u.opexchange_id.EXCHANGE_ID4res_u.eir_resok4;
  clientid_ = ok.eir_clientid;
  cs_seq_ = ok.eir_sequenceid;
  exchange_flags_ = ok.eir_flags;
  return NFS4_OK;
}

nfsstat4 Client::CreateSession() {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_CREATE_SESSION;
  CREATE_SESSION4args& a = op.nfs_argop4_u.opcreate_session;
  a.csa_clientid = clientid_;
  a.csa_sequence = cs_seq_;
  a.csa_flags = options_.back_channel ? CREATE_SESSION4_FLAG_CONN_BACK_CHAN : 0;
  // Callbacks come with AUTH_NONE (§18.36.3: csa_sec_parms).
  callback_sec_parms4 sec = Zero<callback_sec_parms4>();
  sec.cb_secflavor = AUTH_NONE;
  a.csa_sec_parms.csa_sec_parms_len = 1;
  a.csa_sec_parms.csa_sec_parms_val = &sec;
  channel_attrs4& f = a.csa_fore_chan_attrs;
  f.ca_maxrequestsize = options_.max_request_size;
  f.ca_maxresponsesize = options_.max_response_size;
  f.ca_maxresponsesize_cached = options_.max_response_size_cached;
  f.ca_maxoperations = options_.max_operations;
  f.ca_maxrequests = options_.slots;
  channel_attrs4& b = a.csa_back_chan_attrs;
  b.ca_maxrequestsize = 4096;
  b.ca_maxresponsesize = 4096;
  b.ca_maxresponsesize_cached = 0;
  b.ca_maxoperations = 4;
  b.ca_maxrequests = options_.back_slots;
  a.csa_cb_program = options_.cb_program;
  Compound c;
  c.Op(op);
  rpc::Result<Reply> r = CallNoSession(c);
  if (!r.ok()) return NFS4ERR_IO;
  if (r->status() != NFS4_OK) return r->status();
  const CREATE_SESSION4resok& ok =
      r->op(0).nfs_resop4_u.opcreate_session.CREATE_SESSION4res_u.csr_resok4;
  {
    // The callback service must know the session before the server's
    // first CB_SEQUENCE on it.
    std::lock_guard cb(cb_mu_);
    std::memcpy(sessionid_, ok.csr_sessionid, NFS4_SESSIONID_SIZE);
    back_seqids_.assign(std::max(1u, ok.csr_back_chan_attrs.ca_maxrequests),
                        0);
  }
  ++cs_seq_;
  std::lock_guard lock(mu_);
  slots_ = ok.csr_fore_chan_attrs.ca_maxrequests;
  seqids_.assign(slots_, 0);
  busy_.assign(slots_, false);
  return NFS4_OK;
}

nfsstat4 Client::EstablishSession() {
  if (nfsstat4 s = ExchangeId(); s != NFS4_OK) return s;
  return CreateSession();
}

nfsstat4 Client::DestroySession() {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_DESTROY_SESSION;
  std::memcpy(op.nfs_argop4_u.opdestroy_session.dsa_sessionid, sessionid_,
              NFS4_SESSIONID_SIZE);
  Compound c;
  c.Op(op);
  rpc::Result<Reply> r = CallNoSession(c);
  if (!r.ok()) return NFS4ERR_IO;
  if (r->status() == NFS4_OK) slots_ = 0;
  return r->status();
}

nfsstat4 Client::BindConnToSession(channel_dir_from_client4 want,
                                   channel_dir_from_server4* dir) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_BIND_CONN_TO_SESSION;
  BIND_CONN_TO_SESSION4args& a = op.nfs_argop4_u.opbind_conn_to_session;
  std::memcpy(a.bctsa_sessid, sessionid_, NFS4_SESSIONID_SIZE);
  a.bctsa_dir = want;
  a.bctsa_use_conn_in_rdma_mode = FALSE;
  Compound c;
  c.Op(op);
  rpc::Result<Reply> r = CallNoSession(c);
  if (!r.ok()) return NFS4ERR_IO;
  if (r->status() == NFS4_OK && dir != nullptr) {
    *dir = r->op(0)
               .nfs_resop4_u.opbind_conn_to_session
               .BIND_CONN_TO_SESSION4res_u.bctsr_resok4.bctsr_dir;
  }
  return r->status();
}

nfsstat4 Client::BackchannelCtl(uint32_t program, bool sys) {
  if (program != options_.cb_program) {
    ServeCallbacks(program);
    options_.cb_program = program;
  }
  auto op = Zero<nfs_argop4>();
  op.argop = OP_BACKCHANNEL_CTL;
  BACKCHANNEL_CTL4args& a = op.nfs_argop4_u.opbackchannel_ctl;
  a.bca_cb_program = program;
  callback_sec_parms4 sec = Zero<callback_sec_parms4>();
  char machine[] = "nfs41client";
  if (sys) {
    sec.cb_secflavor = AUTH_SYS;
    authsys_parms& p = sec.callback_sec_parms4_u.cbsp_sys_cred;
    p.aup_machname = machine;
    p.aup_uid = 0;
    p.aup_gid = 0;
    p.aup_len = 0;
    p.aup_gids = nullptr;
  } else {
    sec.cb_secflavor = AUTH_NONE;
  }
  a.bca_sec_parms.bca_sec_parms_len = 1;
  a.bca_sec_parms.bca_sec_parms_val = &sec;
  Compound c;
  c.Op(op);
  rpc::Result<Reply> r = Call(c);
  if (!r.ok()) return NFS4ERR_IO;
  return r->status();
}

nfsstat4 Client::DestroyClientId() {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_DESTROY_CLIENTID;
  op.nfs_argop4_u.opdestroy_clientid.dca_clientid = clientid_;
  Compound c;
  c.Op(op);
  rpc::Result<Reply> r = CallNoSession(c);
  if (!r.ok()) return NFS4ERR_IO;
  return r->status();
}

// ---------------------------------------------------------------- helpers

NfsResult<Fh> Client::RootFh() { return LookupPath("/"); }

NfsResult<Fh> Client::LookupPath(const std::string& path) {
  Compound c;
  c.PutRootFh();
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) c.Lookup(path.substr(i, j - i));
    i = j + 1;
  }
  c.GetFh();
  rpc::Result<Reply> r = Call(c);
  if (!r.ok() || r->status() != NFS4_OK) return FromReply<Fh>(r);
  NfsResult<Fh> out;
  out.value = *r->LastFh();
  return out;
}

NfsResult<Attrs> Client::GetAttr(const Fh& fh,
                                 const std::vector<uint32_t>& bitmap) {
  Compound c;
  c.PutFh(fh).GetAttr(bitmap);
  rpc::Result<Reply> r = Call(c);
  if (!r.ok() || r->status() != NFS4_OK) return FromReply<Attrs>(r);
  NfsResult<Attrs> out;
  const fattr4& f =
      r->op(2).nfs_resop4_u.opgetattr.GETATTR4res_u.resok4.obj_attributes;
  if (!DecodeAttrs(f, &out.value)) {
    return Fail<Attrs>(NFS4ERR_BADXDR, "attributes do not decode");
  }
  return out;
}

NfsResult<Fh> Client::Create(const Fh& dir, nfs_ftype4 type,
                             const std::string& name, uint32_t mode,
                             const std::string& target) {
  Compound c;
  c.PutFh(dir).Create(type, name, mode, target).GetFh();
  rpc::Result<Reply> r = Call(c);
  if (!r.ok() || r->status() != NFS4_OK) return FromReply<Fh>(r);
  NfsResult<Fh> out;
  out.value = *r->LastFh();
  return out;
}

NfsResult<std::vector<std::string>> Client::ReadDirNames(const Fh& dir,
                                                         uint32_t maxcount) {
  NfsResult<std::vector<std::string>> out;
  uint64_t cookie = 0;
  verifier4 verf{};
  for (;;) {
    Compound c;
    c.PutFh(dir).ReadDir(cookie, verf, maxcount, maxcount,
                         Bits({FATTR4_TYPE, FATTR4_FILEID}));
    rpc::Result<Reply> r = Call(c);
    if (!r.ok() || r->status() != NFS4_OK) {
      return FromReply<std::vector<std::string>>(r);
    }
    const READDIR4resok& ok =
        r->op(2).nfs_resop4_u.opreaddir.READDIR4res_u.resok4;
    std::memcpy(verf, ok.cookieverf, NFS4_VERIFIER_SIZE);
    for (const entry4* e = ok.reply.entries; e; e = e->nextentry) {
      out.value.emplace_back(e->name.utf8string_val, e->name.utf8string_len);
      cookie = e->cookie;
    }
    if (ok.reply.eof) break;
    if (!ok.reply.entries) {
      return Fail<std::vector<std::string>>(NFS4ERR_SERVERFAULT,
                                            "no entries and no eof");
    }
  }
  return out;
}

NfsResult<bool> Client::Remove(const Fh& dir, const std::string& name) {
  Compound c;
  c.PutFh(dir).Remove(name);
  rpc::Result<Reply> r = Call(c);
  if (!r.ok() || r->status() != NFS4_OK) return FromReply<bool>(r);
  NfsResult<bool> out;
  out.value = true;
  return out;
}

NfsResult<bool> Client::Rename(const Fh& from_dir, const std::string& from,
                               const Fh& to_dir, const std::string& to) {
  Compound c;
  c.PutFh(from_dir).SaveFh().PutFh(to_dir).Rename(from, to);
  rpc::Result<Reply> r = Call(c);
  if (!r.ok() || r->status() != NFS4_OK) return FromReply<bool>(r);
  NfsResult<bool> out;
  out.value = true;
  return out;
}

NfsResult<Client::Opened> Client::OpenFile(const Fh& dir,
                                           const std::string& name,
                                           uint32_t access, uint32_t deny,
                                           bool create,
                                           const std::string& owner) {
  Compound c;
  c.PutFh(dir).Open(name, access, deny, owner, create).GetFh();
  rpc::Result<Reply> r = Call(c, true);
  if (!r.ok() || r->status() != NFS4_OK) return FromReply<Opened>(r);
  NfsResult<Opened> out;
  const OPEN4resok& ok = r->op(2).nfs_resop4_u.opopen.OPEN4res_u.resok4;
  out.value.stateid = ok.stateid;
  out.value.rflags = ok.rflags;
  out.value.fh = *r->LastFh();
  return out;
}

NfsResult<stateid4> Client::CloseFile(const Fh& fh, const stateid4& sid) {
  Compound c;
  c.PutFh(fh).Close(sid);
  rpc::Result<Reply> r = Call(c, true);
  if (!r.ok() || r->status() != NFS4_OK) return FromReply<stateid4>(r);
  NfsResult<stateid4> out;
  out.value = r->op(2).nfs_resop4_u.opclose.CLOSE4res_u.open_stateid;
  return out;
}

NfsResult<Client::Written> Client::WriteFile(const Fh& fh, const stateid4& sid,
                                             uint64_t offset,
                                             const std::string& data,
                                             stable_how4 stable) {
  Compound c;
  c.PutFh(fh).Write(sid, offset, data, stable);
  rpc::Result<Reply> r = Call(c, true);
  if (!r.ok() || r->status() != NFS4_OK) return FromReply<Written>(r);
  NfsResult<Written> out;
  const WRITE4resok& ok = r->op(2).nfs_resop4_u.opwrite.WRITE4res_u.resok4;
  out.value.count = ok.count;
  out.value.committed = ok.committed;
  std::memcpy(out.value.verf.data(), ok.writeverf, NFS4_VERIFIER_SIZE);
  return out;
}

NfsResult<Client::ReadData> Client::ReadFile(const Fh& fh, const stateid4& sid,
                                             uint64_t offset, uint32_t count) {
  Compound c;
  c.PutFh(fh).Read(sid, offset, count);
  rpc::Result<Reply> r = Call(c);
  if (!r.ok() || r->status() != NFS4_OK) return FromReply<ReadData>(r);
  NfsResult<ReadData> out;
  const READ4resok& ok = r->op(2).nfs_resop4_u.opread.READ4res_u.resok4;
  out.value.data.assign(ok.data.data_val, ok.data.data_len);
  out.value.eof = ok.eof;
  return out;
}

NfsResult<std::array<uint8_t, NFS4_VERIFIER_SIZE>> Client::CommitFile(
    const Fh& fh) {
  Compound c;
  c.PutFh(fh).Commit();
  rpc::Result<Reply> r = Call(c);
  using V = std::array<uint8_t, NFS4_VERIFIER_SIZE>;
  if (!r.ok() || r->status() != NFS4_OK) return FromReply<V>(r);
  NfsResult<V> out;
  std::memcpy(out.value.data(),
              r->op(2).nfs_resop4_u.opcommit.COMMIT4res_u.resok4.writeverf,
              NFS4_VERIFIER_SIZE);
  return out;
}

}  // namespace nfs41client
