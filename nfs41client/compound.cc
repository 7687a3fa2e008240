#include "nfs41client/client.h"
#include "nfs41client/client_internal.h"

#include <arpa/inet.h>

namespace nfs41client {

using internal::Zero;

namespace {

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

}  // namespace nfs41client
