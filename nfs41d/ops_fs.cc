// Filehandle and metadata operations on the Namespace (RFC 8881 §18):
// PUTROOTFH, PUTPUBFH, PUTFH, GETFH, SAVEFH, RESTOREFH, LOOKUP, LOOKUPP,
// GETATTR, ACCESS, READDIR, READLINK, CREATE, REMOVE, RENAME, LINK, SETATTR,
// SECINFO, SECINFO_NO_NAME.

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include "nfs41d/attrs.h"
#include "nfs41d/export_ops.h"
#include "nfs41d/ops.h"
#include "nfs41d/ops_util.h"
#include "nfs41d/pnfs_mds.h"
#include "nfs41d/status_map.h"

namespace nfs41d {
namespace {
ns::Namespace& Ns(CompoundState& st) { return *st.server.ns; }
}  // namespace

FileHandle MakeFh(const CompoundState& st, const ns::Attr& a) {
  return FileHandle{a.ino, a.generation, st.export_id};
}

CacheEpochs CacheEpochsNow(const CompoundState& st) {
  return {st.server.attrs ? st.server.attrs->Epoch() : 0,
          st.server.dirs ? st.server.dirs->Epoch() : 0};
}

void NoteDirAfter(CompoundState& st, std::optional<ns::Attr> after,
                  uint64_t attr_epoch) {
  st.dir_after.reset();
  if (after) {
    st.dir_after = CompoundState::DirAfter{*std::move(after), attr_epoch};
  }
}

void NoteCreated(CompoundState& st, ns::InodeId dir, const std::string& name,
                 const ns::Attr& attr, const CacheEpochs& before) {
  st.created = CompoundState::Created{dir, name, attr, true, before.attrs,
                                      before.dirs};
}

// The attributes of `fh` (through the attribute cache); NFS4ERR_STALE if it
// names an inode that is gone (or was replaced: another generation).
namespace {
// cache_only: the attributes of `ino` as first seen by this COMPOUND
// (CompoundState::pinned_attrs), else from the cache; never the database.
std::optional<ns::Attr> PinnedAttr(CompoundState& st, ns::InodeId ino) {
  for (const ns::Attr& a : st.pinned_attrs) {
    if (a.ino == ino) return a;
  }
  std::optional<ns::Attr> a =
      st.server.attrs ? st.server.attrs->Peek(ino) : std::nullopt;
  if (a) st.pinned_attrs.push_back(*a);
  return a;
}
}  // namespace

nfsstat4 AttrOf(CompoundState& st, const FileHandle& fh, ns::Attr* out) {
  if (st.cache_only) {
    // On the event-loop thread: what is not cached is retried.
    std::optional<ns::Attr> a = PinnedAttr(st, fh.ino);
    if (!a) return NFS4ERR_DELAY;
    if (a->generation != fh.generation) return NFS4ERR_STALE;
    *out = *a;
    return NFS4_OK;
  }
  ns::Result<ns::Attr> r =
      st.server.attrs ? st.server.attrs->Get(Ns(st), st.cred, fh.ino)
                      : Ns(st).GetAttr(st.cred, fh.ino);
  if (!r.ok()) return ToNfsStat(r.status());
  if (r->generation != fh.generation) return NFS4ERR_STALE;
  *out = *r;
  return NFS4_OK;
}

namespace {
bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    size_t n;
    uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; }
    else return false;
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      unsigned char d = s[i + k];
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}
}  // namespace

// A component4 as a name (RFC 8881 §14.5): NFS4ERR_INVAL for an empty or
// non-UTF-8 name, NFS4ERR_NAMETOOLONG, NFS4ERR_BADNAME for ".", ".." and
// names with '/' or NUL.
nfsstat4 CheckName(const component4& c, std::string* out) {
  std::string_view s(c.utf8string_val, c.utf8string_len);
  if (s.empty()) return NFS4ERR_INVAL;
  if (s.size() > ns::kMaxNameBytes) return NFS4ERR_NAMETOOLONG;
  if (!ValidUtf8(s)) return NFS4ERR_INVAL;
  if (s == "." || s == ".." || s.find('/') != std::string_view::npos ||
      s.find('\0') != std::string_view::npos) {
    return NFS4ERR_BADNAME;
  }
  out->assign(s);
  return NFS4_OK;
}

// A directory operation failed with NotDir: RFC 8881 wants NFS4ERR_SYMLINK
// when the current filehandle is a symlink.
nfsstat4 NotDirStatus(CompoundState& st, const FileHandle& fh) {
  ns::Attr a;
  if (AttrOf(st, fh, &a) == NFS4_OK && a.type == ns::FileType::kSymlink) {
    return NFS4ERR_SYMLINK;
  }
  return NFS4ERR_NOTDIR;
}

namespace {
nfsstat4 DirStatus(CompoundState& st, const ns::Status& s,
                   const FileHandle& dir) {
  if (s.IsNotDir()) return NotDirStatus(st, dir);
  return ToNfsStat(s);
}
}  // namespace

// change_info4 from the directory's change attribute before and after.
// Not atomic: other changes may fall in between.
change_info4 ChangeInfo(uint64_t before, CompoundState& st,
                        const FileHandle& dir) {
  change_info4 ci{};
  ci.atomic = FALSE;
  ci.before = NfsChange(before, 0);
  if (st.dir_after && st.dir_after->attr.ino == dir.ino) {
    // The row as the op committed it: no read. The cache takes it unless
    // the directory was invalidated since the commit began (another
    // change may have come in between); then the loop forgets it.
    const CompoundState::DirAfter after = *std::move(st.dir_after);
    st.dir_after.reset();
    ci.after = NfsChange(after.attr.change, 0);
    if (st.server.attrs && st.server.attrs->Replace(after.attr, after.epoch)) {
      st.reread.push_back(dir.ino);
    }
    return ci;
  }
  // The op just changed the directory; the COMPOUND loop would invalidate
  // its cached attributes only after the op, so do it now for the "after".
  // The read that follows caches them as of after the change: the loop
  // then leaves them (CompoundState::reread).
  if (st.server.attrs) st.server.attrs->Invalidate(dir.ino);
  ns::Attr a;
  ci.after = NfsChange(AttrOf(st, dir, &a) == NFS4_OK ? a.change : before + 1,
                       0);
  st.reread.push_back(dir.ino);
  return ci;
}

namespace {

void SetSecinfo(CompoundState& st, SECINFO4res& res) {
  ExportSecinfo(st, &res.SECINFO4res_u.resok4);
}

// Where attribute encoding starts for `a` named by `fh`.
AttrSource SourceOf(CompoundState& st, const ns::Attr& a, const FileHandle& fh,
                    const ns::FsStats* stats) {
  AttrSource src;
  src.attr = &a;
  src.fh = fh;
  src.codec = st.server.fh;
  src.stats = stats;
  src.lease_seconds = st.server.state->options().lease_seconds;
  src.max_io = st.server.max_io;
  if (st.server.pnfs && st.server.pnfs->AnyRegistered()) {
    src.pnfs_files = true;
    src.layout_blksize =
        static_cast<uint32_t>(st.server.pnfs->options().stripe_unit);
  }
  ApplyExportAttrs(st, fh, &src);
  return src;
}

// The attribute cache's epoch before a read that fills it.
uint64_t CacheEpoch(CompoundState& st) {
  return st.server.attrs ? st.server.attrs->Epoch() : 0;
}
void CachePut(CompoundState& st, const ns::Attr& a, uint64_t epoch) {
  if (st.server.attrs) st.server.attrs->Put(a, epoch);
}

// The acl attribute when `req` asks for it (RFC 8881 §6.2.1): read with
// the caller's credentials (READ_ACL, else NFS4ERR_ACCESS), and for an
// inode without an ACL the one the library derives from its mode
// (§6.4.2). The only attribute that costs a database read on a cached
// inode, so GETATTRs without it stay cache-only.
nfsstat4 LoadAcl(CompoundState& st, const AttrBits& req, ns::InodeId ino,
                 ns::Acl* acl, AttrSource* src) {
  if (!req.Has(FATTR4_ACL)) return NFS4_OK;
  if (st.cache_only) return NFS4ERR_DELAY;  // InlineOp excludes it
  ns::Result<ns::Acl> r = Ns(st).GetAcl(st.cred, ino);
  if (!r.ok()) return ToNfsStat(r.status());
  *acl = std::move(r).value();
  src->acl = acl;
  return NFS4_OK;
}

}  // namespace

// ------------------------------------------------------------ filehandles

// The root of the exports (§7.4: the pseudo fs root, or the one export).
nfsstat4 OpPutRootFh(CompoundState& st, const NoArgs&, PUTROOTFH4res&) {
  return PutRoot(st);
}

// The public filehandle is the root (§18.20).
nfsstat4 OpPutPubFh(CompoundState& st, const NoArgs& a, PUTPUBFH4res& res) {
  PUTROOTFH4res r{};
  nfsstat4 s = OpPutRootFh(st, a, r);
  res.status = s;
  return s;
}

namespace {

std::span<const uint8_t> FhBytes(const nfs_fh4& fh) {
  return {reinterpret_cast<const uint8_t*>(fh.nfs_fh4_val), fh.nfs_fh4_len};
}

}  // namespace

nfsstat4 OpPutFh(CompoundState& st, const PUTFH4args& args, PUTFH4res&) {
  // InlineCandidate verified these bytes already on the inline path: the
  // codec's per-thread memo answers without a second HMAC (fh.h).
  std::optional<FileHandle> fh = st.server.fh->Decode(FhBytes(args.object));
  if (!fh) return NFS4ERR_BADHANDLE;
  if (nfsstat4 e = EnterFh(st, *fh); e) return e;
  st.current_fh = *fh;
  st.current_stateid.reset();
  st.export_id = fh->export_id;
  return NFS4_OK;
}

nfsstat4 OpGetFh(CompoundState& st, const NoArgs&, GETFH4res& res) {
  std::vector<uint8_t> b = st.server.fh->Encode(*st.current_fh);
  nfs_fh4& o = res.GETFH4res_u.resok4.object;
  o.nfs_fh4_len = static_cast<u_int>(b.size());
  o.nfs_fh4_val = st.arena.Copy(
      std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  return NFS4_OK;
}

nfsstat4 OpSaveFh(CompoundState& st, const NoArgs&, SAVEFH4res&) {
  st.saved_fh = st.current_fh;
  st.saved_stateid = st.current_stateid;
  return NFS4_OK;
}

nfsstat4 OpRestoreFh(CompoundState& st, const NoArgs&, RESTOREFH4res&) {
  if (!st.saved_fh) return NFS4ERR_NOFILEHANDLE;
  st.current_fh = st.saved_fh;
  st.current_stateid = st.saved_stateid;
  return NFS4_OK;
}

// ---------------------------------------------------------------- lookups

std::optional<DirCache::Child> CachedLookup(CompoundState& st,
                                            const FileHandle& dir,
                                            const std::string& name) {
  if (!st.server.dirs || !st.server.attrs) return std::nullopt;
  std::optional<DirCache::Child> c;
  if (st.cache_only) {
    for (const CompoundState::PinnedName& p : st.pinned_names) {
      if (p.dir == dir.ino && p.name == name) c = p.child;
    }
    if (!c) {
      c = st.server.dirs->Get(dir.ino, name);
      if (c) st.pinned_names.push_back({dir.ino, name, *c});
    }
  } else {
    c = st.server.dirs->Get(dir.ino, name);
  }
  if (!c) return std::nullopt;
  // What Namespace::Lookup checks: a directory, search permission. A
  // worker reads the directory's attributes if they are not cached (a
  // stat workload never asks for them: PUTFH dir, LOOKUP, GETATTR), once
  // per TTL; the event-loop thread only takes them from the cache.
  ns::Attr d;
  if (st.cache_only) {
    std::optional<ns::Attr> a = PinnedAttr(st, dir.ino);
    if (!a) return std::nullopt;
    d = *a;
  } else {
    ns::Result<ns::Attr> a = st.server.attrs->Get(Ns(st), st.cred, dir.ino);
    if (!a.ok()) return std::nullopt;
    d = *a;
  }
  if (d.generation != dir.generation || d.type != ns::FileType::kDirectory ||
      d.has_acl || !(ModeRights(st.cred, d) & 1)) {
    return std::nullopt;
  }
  return c;
}

// A hit in the directory cache costs no database round trip; a miss reads
// the namespace and fills both caches (negative answers are not cached:
// dir_cache.h).
nfsstat4 OpLookup(CompoundState& st, const LOOKUP4args& args, LOOKUP4res&) {
  std::string name;
  if (nfsstat4 e = CheckName(args.objname, &name); e) return e;
  const FileHandle& dir = *st.current_fh;
  FileHandle fh;
  if (std::optional<DirCache::Child> c = CachedLookup(st, dir, name)) {
    fh = FileHandle{c->ino, c->generation, st.export_id};
  } else {
    if (st.cache_only) return NFS4ERR_DELAY;
    const uint64_t epoch = CacheEpoch(st);
    const uint64_t dir_epoch = st.server.dirs ? st.server.dirs->Epoch() : 0;
    ns::Result<ns::Attr> r = Ns(st).Lookup(st.cred, dir.ino, name);
    if (!r.ok()) return DirStatus(st, r.status(), dir);
    CachePut(st, *r, epoch);
    if (st.server.dirs) {
      st.server.dirs->Put(dir.ino, name, {r->ino, r->generation}, dir_epoch);
    }
    fh = MakeFh(st, *r);
  }
  if (nfsstat4 e = CrossInto(st, &fh); e) return e;  // into a nested export
  st.current_fh = fh;
  st.current_stateid.reset();
  return NFS4_OK;
}

nfsstat4 OpLookupp(CompoundState& st, const NoArgs&, LOOKUPP4res&) {
  ns::Attr a;
  if (nfsstat4 e = AttrOf(st, *st.current_fh, &a); e) return e;
  if (a.type == ns::FileType::kSymlink) return NFS4ERR_SYMLINK;
  if (a.type != ns::FileType::kDirectory) return NFS4ERR_NOTDIR;
  // Out of an export's root: into the pseudo fs or the enclosing export.
  if (std::optional<nfsstat4> up = ExportLookupp(st, a)) return *up;
  if (a.ino == Ns(st).Root()) return NFS4ERR_NOENT;
  ns::Result<ns::Attr> p = Ns(st).GetAttr(st.cred, a.parent);
  if (!p.ok()) return ToNfsStat(p.status());
  st.current_fh = MakeFh(st, *p);
  st.current_stateid.reset();
  return NFS4_OK;
}

// ------------------------------------------------------------- attributes

namespace {

// The attributes of the current object encoded as `given` names them,
// compared byte for byte with `given` (VERIFY §18.31, NVERIFY §18.15).
nfsstat4 SameAttrs(CompoundState& st, const fattr4& given, bool* same) {
  for (u_int i = 3; i < given.attrmask.bitmap4_len; ++i) {
    if (given.attrmask.bitmap4_val[i]) return NFS4ERR_ATTRNOTSUPP;
  }
  AttrBits req = AttrBits::From(given.attrmask);
  AttrBits sup = SupportedAttrs();
  for (uint32_t n = 0; n < 96; ++n) {
    if (!req.Has(n)) continue;
    if (!sup.Has(n)) return NFS4ERR_ATTRNOTSUPP;
    if (n == FATTR4_RDATTR_ERROR || n == FATTR4_TIME_ACCESS_SET ||
        n == FATTR4_TIME_MODIFY_SET) {
      return NFS4ERR_INVAL;
    }
  }
  ns::Attr a;
  if (nfsstat4 e = AttrOf(st, *st.current_fh, &a); e) return e;
  std::optional<ns::FsStats> stats;
  if (NeedsStatFs(req)) {
    if (st.cache_only) return NFS4ERR_DELAY;  // InlineOp excludes it
    ns::Result<ns::FsStats> r = Ns(st).StatFs(st.cred);
    if (!r.ok()) return ToNfsStat(r.status());
    stats = *r;
  }
  AttrSource src = SourceOf(st, a, *st.current_fh, stats ? &*stats : nullptr);
  OverlayFileAttrs(st, req, &a, &src);
  ns::Acl acl;
  if (nfsstat4 e = LoadAcl(st, req, a.ino, &acl, &src); e) return e;
  fattr4 mine{};
  EncodeAttrs(req, src, st.arena, &mine);
  *same = mine.attr_vals.attrlist4_len == given.attr_vals.attrlist4_len &&
          std::memcmp(mine.attr_vals.attrlist4_val,
                      given.attr_vals.attrlist4_val,
                      mine.attr_vals.attrlist4_len) == 0;
  return NFS4_OK;
}

}  // namespace

nfsstat4 OpVerify(CompoundState& st, const VERIFY4args& args, VERIFY4res&) {
  bool same = false;
  if (nfsstat4 e = SameAttrs(st, args.obj_attributes, &same); e) return e;
  return same ? NFS4_OK : NFS4ERR_NOT_SAME;
}

nfsstat4 OpNverify(CompoundState& st, const NVERIFY4args& args,
                   NVERIFY4res&) {
  bool same = false;
  if (nfsstat4 e = SameAttrs(st, args.obj_attributes, &same); e) return e;
  return same ? NFS4ERR_SAME : NFS4_OK;
}

nfsstat4 OpGetAttr(CompoundState& st, const GETATTR4args& args,
                   GETATTR4res& res) {
  ns::Attr a;
  if (nfsstat4 e = AttrOf(st, *st.current_fh, &a); e) return e;
  AttrBits req = AttrBits::From(args.attr_request);
  std::optional<ns::FsStats> stats;
  if (NeedsStatFs(req)) {
    ns::Result<ns::FsStats> r = Ns(st).StatFs(st.cred);
    if (!r.ok()) return ToNfsStat(r.status());
    stats = *r;
  }
  AttrSource src = SourceOf(st, a, *st.current_fh, stats ? &*stats : nullptr);
  OverlayFileAttrs(st, req, &a, &src);
  ns::Acl acl;
  if (nfsstat4 e = LoadAcl(st, req, a.ino, &acl, &src); e) return e;
  EncodeAttrs(req, src, st.arena, &res.GETATTR4res_u.resok4.obj_attributes);
  return NFS4_OK;
}

nfsstat4 OpSetAttr(CompoundState& st, const SETATTR4args& args,
                   SETATTR4res& res) {
  DecodedSetAttrs d;
  if (nfsstat4 e = DecodeSetAttrs(args.obj_attributes, &d, st.server.idmap);
      e) {
    return e;
  }
  ns::Attr a;
  if (nfsstat4 e = AttrOf(st, *st.current_fh, &a); e) return e;
  if (d.req.size && a.type == ns::FileType::kDirectory) return NFS4ERR_ISDIR;
  if (d.req.size && a.type != ns::FileType::kRegular) return NFS4ERR_INVAL;
  if (nfsstat4 e = PrepareSetAttr(st, args.stateid, a, d.req); e) return e;
  const ns::SetAttrRequest& q = d.req;
  const bool plain = q.mode || q.uid || q.gid || q.size || q.atime ||
                     q.mtime || q.atime_now || q.mtime_now;
  if (plain || !d.acl) {
    ns::Result<ns::Attr> r = Ns(st).SetAttr(st.cred, a.ino, d.req);
    if (!r.ok()) return ToNfsStat(r.status());
    FinishSetAttr(st, a, d.req);
  }
  if (d.acl) {
    // Mode (with the rest) first, then the ACL, whose ALLOW/DENY bits for
    // OWNER@/GROUP@/EVERYONE@ then decide the mode's rwx bits (RFC 8881
    // §6.4.1.2, §6.4.1.3). An ACL the library refuses is NFS4ERR_INVAL;
    // no WRITE_ACL is NFS4ERR_PERM, as for chmod by a non-owner.
    ns::Result<ns::Attr> r = Ns(st).SetAcl(st.cred, a.ino, *d.acl);
    if (!r.ok()) return ToNfsStat(r.status());
  }
  res.attrsset = d.set.ToBitmap(st.arena);
  return NFS4_OK;
}

namespace {

// ACCESS4 bits (§18.1.3) as ACE mask bits (§6.2.1.3) on a directory or
// another object; a bit is granted when all of its mask bits are.
uint32_t AceMaskOf(uint32_t access_bit, bool dir) {
  switch (access_bit) {
    case ACCESS4_READ: return ns::kAceReadData;
    case ACCESS4_LOOKUP: return dir ? ns::kAceExecute : 0;
    case ACCESS4_MODIFY: return dir ? ns::kAceAddFile : ns::kAceWriteData;
    case ACCESS4_EXTEND:
      return dir ? ns::kAceAddFile | ns::kAceAddSubdirectory
                 : ns::kAceAppendData;
    case ACCESS4_DELETE: return dir ? ns::kAceDeleteChild : 0;
    case ACCESS4_EXECUTE: return dir ? 0 : ns::kAceExecute;
  }
  return 0;
}

// ACCESS on an inode with an NFSv4 ACL (§6.2.1): the library evaluates the
// ACEs (one database read).
nfsstat4 AclAccess(CompoundState& st, const ns::Attr& a, uint32_t asked,
                   uint32_t* allowed) {
  const bool dir = a.type == ns::FileType::kDirectory;
  uint32_t mask = 0;
  for (uint32_t bit = 1; bit <= ACCESS4_EXECUTE; bit <<= 1) {
    if (asked & bit) mask |= AceMaskOf(bit, dir);
  }
  if (st.cache_only) return NFS4ERR_DELAY;  // the ACL is read below
  ns::Result<uint32_t> r = Ns(st).Access(st.cred, a.ino, mask);
  if (!r.ok()) return ToNfsStat(r.status());
  *allowed = 0;
  for (uint32_t bit = 1; bit <= ACCESS4_EXECUTE; bit <<= 1) {
    const uint32_t m = AceMaskOf(bit, dir);
    if (m != 0 && (*r & m) == m) *allowed |= bit;
  }
  return NFS4_OK;
}

}  // namespace

// RFC 8881 §18.1: what the caller may do, from the ACL when the inode has
// one, else from the mode bits (cached attributes, no database read).
nfsstat4 OpAccess(CompoundState& st, const ACCESS4args& args,
                  ACCESS4res& res) {
  ns::Attr a;
  if (nfsstat4 e = AttrOf(st, *st.current_fh, &a); e) return e;
  const uint32_t all = ACCESS4_READ | ACCESS4_LOOKUP | ACCESS4_MODIFY |
                       ACCESS4_EXTEND | ACCESS4_DELETE | ACCESS4_EXECUTE;
  if (a.has_acl) {
    uint32_t allowed = 0;
    if (nfsstat4 e = AclAccess(st, a, args.access & all, &allowed); e) {
      return e;
    }
    ACCESS4resok& ok = res.ACCESS4res_u.resok4;
    ok.supported = args.access & all;
    ok.access = args.access & allowed;
    return NFS4_OK;
  }
  const bool dir = a.type == ns::FileType::kDirectory;
  uint32_t bits;  // rwx
  if (st.cred.IsRoot()) {
    bits = 06 | ((dir || (a.mode & 0111)) ? 1 : 0);
  } else if (st.cred.uid == a.uid) {
    bits = (a.mode >> 6) & 7;
  } else if (st.cred.gid == a.gid ||
             std::find(st.cred.groups.begin(), st.cred.groups.end(), a.gid) !=
                 st.cred.groups.end()) {
    bits = (a.mode >> 3) & 7;
  } else {
    bits = a.mode & 7;
  }
  uint32_t allowed = 0;
  if (bits & 4) allowed |= ACCESS4_READ;
  if (bits & 2) allowed |= ACCESS4_MODIFY | ACCESS4_EXTEND;
  if (dir) {
    if (bits & 1) allowed |= ACCESS4_LOOKUP;
    if ((bits & 3) == 3) allowed |= ACCESS4_DELETE;
  } else if (bits & 1) {
    allowed |= ACCESS4_EXECUTE;
  }
  ACCESS4resok& ok = res.ACCESS4res_u.resok4;
  ok.supported = args.access & all;
  ok.access = args.access & allowed;
  return NFS4_OK;
}

// ------------------------------------------------------ inline COMPOUNDs

namespace {

// The cached attributes of `fh` (pinned), or nullopt.
std::optional<ns::Attr> CachedAttr(CompoundState& st, const FileHandle& fh) {
  std::optional<ns::Attr> a = PinnedAttr(st, fh.ino);
  if (!a || a->generation != fh.generation) return std::nullopt;
  return a;
}

}  // namespace

// Mirrors what each handler reads: anything that would touch the database,
// the disk or a user database sends the COMPOUND to a worker.
bool InlineOp(CompoundState& st, const nfs_argop4& op,
              std::optional<FileHandle>* current) {
  const auto& a = op.nfs_argop4_u;
  switch (op.argop) {
    case OP_PUTFH: {
      std::optional<FileHandle> fh =
          st.server.fh->Decode(FhBytes(a.opputfh.object));
      // A bad handle's error and the pseudo fs are left to a worker.
      if (!fh || fh->export_id == kPseudoExportId) return false;
      *current = fh;
      return true;
    }
    case OP_GETFH:
      return current->has_value();
    case OP_GETATTR: {
      if (!*current) return false;
      std::optional<ns::Attr> attr = CachedAttr(st, **current);
      if (!attr) return false;
      AttrBits req = AttrBits::From(a.opgetattr.attr_request);
      if (req.Has(FATTR4_ACL) || NeedsStatFs(req)) return false;
      if ((req.Has(FATTR4_OWNER) || req.Has(FATTR4_OWNER_GROUP)) &&
          st.server.idmap && !st.server.idmap->OwnersFromMemory()) {
        return false;
      }
      // space_used of a regular file asks the data store (a stat(2), or
      // the database for a pNFS file).
      return !(req.Has(FATTR4_SPACE_USED) &&
               attr->type == ns::FileType::kRegular);
    }
    case OP_ACCESS: {
      if (!*current) return false;
      std::optional<ns::Attr> attr = CachedAttr(st, **current);
      return attr && !attr->has_acl;
    }
    case OP_LOOKUP: {
      std::string name;
      if (!*current || CheckName(a.oplookup.objname, &name) != NFS4_OK) {
        return false;
      }
      std::optional<DirCache::Child> c = CachedLookup(st, **current, name);
      if (!c) return false;
      *current = FileHandle{c->ino, c->generation, (*current)->export_id};
      return true;
    }
    default:
      return false;
  }
}

// --------------------------------------------------------------- READDIR

namespace {

// READDIR's whole nfs_resop4 (opnum, NFS4_OK, `resok`) as the op's raw
// result (CompoundState::raw_result): no entry4 list to build and encode.
void SetReadDirResult(CompoundState& st, const std::vector<uint8_t>& resok) {
  st.raw_result.clear();
  st.raw_result.reserve(8 + resok.size());
  XdrOut o(&st.raw_result);
  o.U32(OP_READDIR);
  o.U32(NFS4_OK);
  st.raw_result.insert(st.raw_result.end(), resok.begin(), resok.end());
}

// What Namespace::ReadDir checks before it lists `fh`, from the attribute
// cache: a directory the caller may read (LIST_DIRECTORY by its mode). False
// when unsure (an ACL, an error): the namespace then decides.
bool MayListFromCache(CompoundState& st, const FileHandle& fh) {
  ns::Attr d;
  if (AttrOf(st, fh, &d) != NFS4_OK) return false;
  return d.type == ns::FileType::kDirectory && !d.has_acl &&
         (ModeRights(st.cred, d) & 4) != 0;
}

// Directory entries to ask the namespace for: as many as the bytes left
// can hold at the size seen so far (or a guess at the start), so that a
// page is one range scan without rows read only to be dropped.
uint32_t EntriesToRead(size_t left, size_t used_by_entries, size_t count) {
  const size_t per_entry = count > 0 ? used_by_entries / count + 1 : 96;
  return static_cast<uint32_t>(std::clamp<size_t>(left / per_entry + 1, 8, 1024));
}

}  // namespace

// RFC 8881 §18.23. Cookies and the verifier come from Namespace::ReadDir;
// maxcount bounds the encoded READDIR4resok, dircount the cookies and
// names. The reply is encoded straight into bytes (attrs.h, XdrOut) and
// kept in the READDIR cache (readdir_cache.h), which answers the same
// request again while nothing it shows changed.
nfsstat4 OpReadDir(CompoundState& st, const READDIR4args& args,
                   READDIR4res&) {
  if (args.cookie == 1 || args.cookie == 2) return NFS4ERR_BAD_COOKIE;
  uint64_t verf = 0;
  for (int i = 0; i < NFS4_VERIFIER_SIZE; ++i) {
    verf = (verf << 8) | static_cast<uint8_t>(args.cookieverf[i]);
  }
  const FileHandle dir = *st.current_fh;
  AttrBits req = AttrBits::From(args.attr_request);
  const bool full = NeedsFullAttr(req);
  // The acl is read with the caller's credentials and the file system
  // counts change without an invalidation: such replies are not cached.
  ReaddirCache* cache = req.Has(FATTR4_ACL) || NeedsStatFs(req)
                            ? nullptr
                            : st.server.readdirs;
  const ReaddirCache::Key key{dir.ino,       args.cookie,   req.w,
                              args.maxcount, args.dircount, st.export_id};
  if (cache) {
    std::shared_ptr<const ReaddirCache::Page> hit = cache->Get(key);
    // A verifier that does not match is the namespace's to refuse.
    if (hit && (args.cookie == 0 || verf == 0 || verf == hit->verifier) &&
        MayListFromCache(st, dir)) {
      SetReadDirResult(st, hit->resok);
      return NFS4_OK;
    }
  }
  std::optional<ns::FsStats> stats;
  if (NeedsStatFs(req)) {
    ns::Result<ns::FsStats> r = Ns(st).StatFs(st.cred);
    if (!r.ok()) return ToNfsStat(r.status());
    stats = *r;
  }
  auto page = std::make_shared<ReaddirCache::Page>();
  // Before the first read: what changes after it makes the page stale.
  page->epoch = CacheEpochsNow(st).attrs;
  page->read_at = ReaddirCache::Clock::now();
  page->inodes.push_back(dir.ino);
  std::vector<uint8_t>& out = page->resok;
  out.reserve(std::min<size_t>(args.maxcount, size_t{1} << 20) + 64);
  XdrOut o(&out);
  o.U64(0);  // cookieverf, known after the first read
  // status, verifier, "entries follow" = false, eof.
  constexpr size_t kFixed = 4 + 8 + 4 + 4;
  size_t used = kFixed;
  size_t dir_used = 0;
  size_t count = 0;
  bool eof = false;
  uint64_t out_verf = verf;
  ns::ReadDirRequest q;
  q.cookie = args.cookie;
  q.verifier = args.cookie == 0 ? 0 : verf;
  q.with_attrs = full;
  bool stopped = false;
  OwnerMemo owners;
  std::vector<DirCache::Named> names;
  while (!stopped) {
    const CacheEpochs epochs = CacheEpochsNow(st);
    const uint64_t epoch = epochs.attrs;
    q.max_entries = EntriesToRead(
        args.maxcount > used ? args.maxcount - used : 0, used - kFixed, count);
    ns::Result<ns::DirPage> dp = Ns(st).ReadDir(st.cred, dir.ino, q);
    if (!dp.ok()) {
      if (dp.status().IsInvalid() && args.cookie != 0) {
        return NFS4ERR_NOT_SAME;
      }
      return DirStatus(st, dp.status(), dir);
    }
    out_verf = dp->verifier;
    if (st.server.dirs && full) {
      // The page's names for LOOKUP (`ls -l` stats what it listed): with
      // attributes, so the generation a filehandle needs is known.
      names.clear();
      for (const ns::DirEntry& de : dp->entries) {
        if (de.attr) names.push_back({de.name, {de.ino, de.attr->generation}});
      }
      st.server.dirs->PutMany(dir.ino, names, epochs.dirs);
    }
    for (const ns::DirEntry& de : dp->entries) {
      ns::Attr light;
      light.ino = de.ino;
      light.type = de.type;
      ns::Attr a = de.attr ? *de.attr : light;
      if (de.attr) CachePut(st, *de.attr, epoch);
      AttrSource src = SourceOf(st, a, FileHandle{de.ino, a.generation,
                                                  st.export_id},
                                stats ? &*stats : nullptr);
      src.owners = &owners;
      if (de.attr) OverlayFileAttrs(st, req, &a, &src);
      // An entry whose ACL the caller may not read just lacks it.
      ns::Acl acl;
      if (de.attr) (void)LoadAcl(st, req, de.ino, &acl, &src);
      // entry4: value_follows, cookie, name, attrs.
      const size_t start = out.size();
      o.U32(1);
      o.U64(de.cookie);
      o.Str(de.name);
      EncodeFattr(req, src, o);
      const size_t sz = out.size() - start;
      const size_t dsz = 8 + 4 + ((de.name.size() + 3) & ~size_t{3});
      if (used + sz > args.maxcount ||
          (args.dircount > 0 && count > 0 &&
           dir_used + dsz > args.dircount)) {
        out.resize(start);
        stopped = true;
        break;
      }
      used += sz;
      dir_used += dsz;
      ++count;
      page->inodes.push_back(de.ino);
      q.cookie = de.cookie;
      q.verifier = dp->verifier;
    }
    if (!stopped && dp->eof) {
      eof = true;
      break;
    }
    if (dp->entries.empty()) break;  // defensive: no progress
  }
  if (count == 0 && !eof) return NFS4ERR_TOOSMALL;
  o.U32(0);  // no more entries
  o.U32(eof ? 1 : 0);
  o.PatchU32(0, static_cast<uint32_t>(out_verf >> 32));
  o.PatchU32(4, static_cast<uint32_t>(out_verf));
  page->verifier = out_verf;
  SetReadDirResult(st, out);
  if (cache) cache->Put(key, std::move(page));
  return NFS4_OK;
}

nfsstat4 OpReadLink(CompoundState& st, const NoArgs&, READLINK4res& res) {
  ns::Result<std::string> r = Ns(st).ReadLink(st.cred, st.current_fh->ino);
  if (!r.ok()) return ToNfsStat(r.status());
  linktext4& l = res.READLINK4res_u.resok4.link;
  l.utf8string_len = static_cast<u_int>(r->size());
  l.utf8string_val = st.arena.Copy(*r);
  return NFS4_OK;
}

// ------------------------------------------------------- namespace changes

// RFC 8881 §18.4: non-regular objects (regular files come through OPEN).
nfsstat4 OpCreate(CompoundState& st, const CREATE4args& args,
                  CREATE4res& res) {
  std::string name;
  if (nfsstat4 e = CheckName(args.objname, &name); e) return e;
  DecodedSetAttrs d;
  if (nfsstat4 e = DecodeSetAttrs(args.createattrs, &d, st.server.idmap); e) {
    return e;
  }
  const FileHandle dir = *st.current_fh;
  ns::Attr before;
  if (nfsstat4 e = AttrOf(st, dir, &before); e) return e;
  if (before.type != ns::FileType::kDirectory) return NotDirStatus(st, dir);
  const uint32_t mode = d.req.mode.value_or(
      args.objtype.type == NF4DIR ? 0755 : 0644);
  const CacheEpochs epochs = CacheEpochsNow(st);
  ns::Result<ns::Attr> r = ns::Status::Invalid("create");
  std::optional<ns::Attr> dir_after;
  switch (args.objtype.type) {
    case NF4DIR:
      r = Ns(st).Mkdir(st.cred, dir.ino, name, mode, &dir_after);
      break;
    case NF4LNK: {
      const linktext4& t = args.objtype.createtype4_u.linkdata;
      std::string_view target(t.utf8string_val, t.utf8string_len);
      if (target.empty()) return NFS4ERR_INVAL;
      if (target.size() > ns::kMaxPathBytes) return NFS4ERR_NAMETOOLONG;
      if (!ValidUtf8(target)) return NFS4ERR_INVAL;
      r = Ns(st).Symlink(st.cred, dir.ino, name, target);
      break;
    }
    case NF4BLK:
    case NF4CHR: {
      const specdata4& sd = args.objtype.createtype4_u.devdata;
      r = Ns(st).Mknod(st.cred, dir.ino, name,
                       args.objtype.type == NF4BLK ? ns::FileType::kBlockDevice
                                                   : ns::FileType::kCharDevice,
                       mode, sd.specdata1, sd.specdata2);
      break;
    }
    case NF4SOCK:
      r = Ns(st).Mknod(st.cred, dir.ino, name, ns::FileType::kSocket, mode);
      break;
    case NF4FIFO:
      r = Ns(st).Mknod(st.cred, dir.ino, name, ns::FileType::kFifo, mode);
      break;
    default:
      return NFS4ERR_BADTYPE;
  }
  if (!r.ok()) return DirStatus(st, r.status(), dir);
  NoteCreated(st, dir.ino, name, *r, epochs);
  NoteDirAfter(st, std::move(dir_after), epochs.attrs);
  AttrBits applied;
  if (d.req.mode) applied.Set(FATTR4_MODE);
  // Owner, size and times given at creation are applied afterwards; the
  // object exists either way (§18.4.3 lets attrset say what was set).
  ns::SetAttrRequest rest = d.req;
  rest.mode.reset();
  rest.size.reset();
  if (rest.uid || rest.gid || rest.atime || rest.mtime || rest.atime_now ||
      rest.mtime_now) {
    st.created->attr_final = false;
    if (Ns(st).SetAttr(st.cred, r->ino, rest).ok()) {
      for (uint32_t a : {FATTR4_OWNER, FATTR4_OWNER_GROUP,
                         FATTR4_TIME_ACCESS_SET, FATTR4_TIME_MODIFY_SET}) {
        if (d.set.Has(a)) applied.Set(a);
      }
    }
  }
  if (d.acl) {
    st.created->attr_final = false;
    if (Ns(st).SetAcl(st.cred, r->ino, *d.acl).ok()) applied.Set(FATTR4_ACL);
  }
  CREATE4resok& ok = res.CREATE4res_u.resok4;
  ok.cinfo = ChangeInfo(before.change, st, dir);
  ok.attrset = applied.ToBitmap(st.arena);
  st.current_fh = MakeFh(st, *r);
  st.current_stateid.reset();
  return NFS4_OK;
}

nfsstat4 OpRemove(CompoundState& st, const REMOVE4args& args,
                  REMOVE4res& res) {
  std::string name;
  if (nfsstat4 e = CheckName(args.target, &name); e) return e;
  const FileHandle dir = *st.current_fh;
  ns::Attr before;
  if (nfsstat4 e = AttrOf(st, dir, &before); e) return e;
  if (before.type != ns::FileType::kDirectory) return NotDirStatus(st, dir);
  // A file open over NFS keeps its data until its last CLOSE (§9.7 and
  // POSIX unlink semantics): the namespace retains the inode as an orphan.
  // §18.25: REMOVE takes a name of any type, an empty directory too; one
  // namespace call (one commit) removes either.
  ns::UnlinkOptions uo = UnlinkOptionsFor(st, dir.ino, name);
  uo.directories = true;
  const CacheEpochs epochs = CacheEpochsNow(st);
  ns::Result<ns::UnlinkResult> u = Ns(st).Unlink(st.cred, dir.ino, name, uo);
  if (!u.ok()) return DirStatus(st, u.status(), dir);
  NoteDirAfter(st, std::move(u->parent_after), epochs.attrs);
  // Its nlink and ctime changed, or (a directory) it is gone: forget it.
  st.touched.push_back(u->ino);
  if (u->type != ns::FileType::kDirectory) AfterUnlink(st, *u);
  res.REMOVE4res_u.resok4.cinfo = ChangeInfo(before.change, st, dir);
  return NFS4_OK;
}

// RFC 8881 §18.26: saved fh = source directory, current fh = target.
nfsstat4 OpRename(CompoundState& st, const RENAME4args& args,
                  RENAME4res& res) {
  if (!st.saved_fh) return NFS4ERR_NOFILEHANDLE;
  std::string from, to;
  if (nfsstat4 e = CheckName(args.oldname, &from); e) return e;
  if (nfsstat4 e = CheckName(args.newname, &to); e) return e;
  const FileHandle src = *st.saved_fh, dst = *st.current_fh;
  if (src.export_id != dst.export_id) return NFS4ERR_XDEV;
  ns::Attr sa, da;
  if (nfsstat4 e = AttrOf(st, src, &sa); e) return e;
  if (nfsstat4 e = AttrOf(st, dst, &da); e) return e;
  if (sa.type != ns::FileType::kDirectory) return NotDirStatus(st, src);
  if (da.type != ns::FileType::kDirectory) return NotDirStatus(st, dst);
  if (st.server.attrs) {
    // The moved object's ctime (and a directory's parent) change.
    ns::Result<ns::Attr> moved = Ns(st).Lookup(st.cred, src.ino, from);
    if (moved.ok()) st.touched.push_back(moved->ino);
  }
  ns::UnlinkOptions uo = UnlinkOptionsFor(st, dst.ino, to);
  ns::Result<ns::RenameResult> r =
      Ns(st).Rename(st.cred, src.ino, from, dst.ino, to, uo);
  if (r.ok() && r->replaced) st.touched.push_back(r->replaced->ino);
  if (!r.ok()) {
    // rename(2)'s EISDIR/ENOTDIR between source and target objects are
    // NFS4ERR_EXIST in NFSv4 (§18.26.4).
    if (r.status().IsIsDir() || r.status().IsNotDir()) return NFS4ERR_EXIST;
    return ToNfsStat(r.status());
  }
  if (r->replaced) AfterUnlink(st, *r->replaced);
  RENAME4resok& ok = res.RENAME4res_u.resok4;
  ok.source_cinfo = ChangeInfo(sa.change, st, src);
  ok.target_cinfo = ChangeInfo(da.change, st, dst);
  return NFS4_OK;
}

// RFC 8881 §18.9: saved fh = the object, current fh = target directory.
nfsstat4 OpLink(CompoundState& st, const LINK4args& args, LINK4res& res) {
  if (!st.saved_fh) return NFS4ERR_NOFILEHANDLE;
  std::string name;
  if (nfsstat4 e = CheckName(args.newname, &name); e) return e;
  const FileHandle obj = *st.saved_fh, dir = *st.current_fh;
  if (obj.export_id != dir.export_id) return NFS4ERR_XDEV;
  ns::Attr oa, da;
  if (nfsstat4 e = AttrOf(st, obj, &oa); e) return e;
  if (nfsstat4 e = AttrOf(st, dir, &da); e) return e;
  if (da.type != ns::FileType::kDirectory) return NotDirStatus(st, dir);
  if (oa.type == ns::FileType::kDirectory) return NFS4ERR_ISDIR;
  ns::Result<ns::Attr> r = Ns(st).Link(st.cred, obj.ino, dir.ino, name);
  if (!r.ok()) return ToNfsStat(r.status());
  res.LINK4res_u.resok4.cinfo = ChangeInfo(da.change, st, dir);
  return NFS4_OK;
}

// ---------------------------------------------------------------- SECINFO

// RFC 8881 §18.29: AUTH_SYS only; consumes the current filehandle.
nfsstat4 OpSecInfo(CompoundState& st, const SECINFO4args& args,
                   SECINFO4res& res) {
  std::string name;
  if (nfsstat4 e = CheckName(args.name, &name); e) return e;
  ns::Result<ns::Attr> r = Ns(st).Lookup(st.cred, st.current_fh->ino, name);
  if (!r.ok()) return DirStatus(st, r.status(), *st.current_fh);
  SetSecinfo(st, res);
  st.current_fh.reset();
  return NFS4_OK;
}

// RFC 8881 §18.45.
nfsstat4 OpSecInfoNoName(CompoundState& st, const SECINFO_NO_NAME4args& style,
                         SECINFO_NO_NAME4res& res) {
  if (style != SECINFO_STYLE4_CURRENT_FH && style != SECINFO_STYLE4_PARENT) {
    return NFS4ERR_INVAL;
  }
  if (style == SECINFO_STYLE4_PARENT) {
    ns::Attr a;
    if (nfsstat4 e = AttrOf(st, *st.current_fh, &a); e) return e;
    if (a.type != ns::FileType::kDirectory) return NFS4ERR_NOTDIR;
    if (a.ino == Ns(st).Root()) return NFS4ERR_NOENT;
  }
  SetSecinfo(st, res);
  st.current_fh.reset();
  return NFS4_OK;
}

}  // namespace nfs41d
