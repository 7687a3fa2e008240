#include "nfs41d/export_ops.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "nfs41d/status_map.h"

namespace nfs41d {
namespace {

const ExportTable& Fallback() {
  // An empty table (no export, no pseudo fs) for a server still starting.
  static const ExportTable t;
  return t;
}

bool IsSecinfo(uint32_t op) {
  return op == OP_SECINFO || op == OP_SECINFO_NO_NAME;
}

// The export of a handle; null for pseudo handles and unknown ids. Without
// an export table at all every handle is in the one default export.
const Export* ExportOf(CompoundState& st, uint32_t id) {
  if (!st.server.exports) return nullptr;
  return Exports(st).Find(id);
}

bool NoExports(const CompoundState& st) { return st.server.exports == nullptr; }

// May this client (address, flavor) use export `e`? `secinfo_next`: the
// flavor check is left to the SECINFO that follows (§2.6.3.1.1.2).
nfsstat4 Admit(const CompoundState& st, const Export& e, bool flavor_check) {
  if (!e.AllowsPeer(st.peer)) return NFS4ERR_ACCESS;
  if (flavor_check && !e.AllowsFlavor(st.flavor)) return NFS4ERR_WRONGSEC;
  return NFS4_OK;
}

void SetCred(CompoundState& st, const Export* e, uint32_t id) {
  if (st.cred_export == id) return;
  st.cred = e ? e->Squashed(st.rpc_cred) : st.rpc_cred;
  st.cred_export = id;
}

FileHandle PseudoFh(const ExportTable& t, int index) {
  const PseudoNode& n = t.pseudo()[index];
  // The handle's inode number has the top bit set: never a namespace inode.
  return FileHandle{kPseudoInoBit | n.fileid, n.generation, kPseudoExportId};
}

int PseudoOf(CompoundState& st, const FileHandle& fh) {
  if (fh.export_id != kPseudoExportId || NoExports(st)) return -1;
  return Exports(st).PseudoIndex(fh.ino, fh.generation);
}

ns::Attr PseudoAttr(const ExportTable& t, int index) {
  const PseudoNode& n = t.pseudo()[index];
  ns::Attr a;
  a.ino = n.fileid;
  a.generation = n.generation;
  a.type = ns::FileType::kDirectory;
  a.mode = 0555;  // read-only synthetic directories (§7.3)
  a.nlink = static_cast<uint32_t>(2 + n.children.size());
  a.size = 4096;
  a.atime = a.mtime = a.ctime = a.btime = t.built_ns();
  a.change = static_cast<uint64_t>(t.built_ns());
  a.parent = n.parent >= 0 ? t.pseudo()[n.parent].fileid : n.fileid;
  return a;
}

// The root directory of export `e` as a handle, with its attributes.
nfsstat4 ExportRoot(CompoundState& st, const Export& e, ns::Attr* a,
                    FileHandle* fh) {
  ns::Result<ns::Attr> r =
      st.server.attrs ? st.server.attrs->Get(*st.server.ns, st.cred, e.root)
                      : st.server.ns->GetAttr(st.cred, e.root);
  if (!r.ok()) return ToNfsStat(r.status());
  // The export's root was replaced behind our back: its handles are stale.
  if (r->generation != e.root_generation) return NFS4ERR_STALE;
  *a = *r;
  *fh = FileHandle{e.root, e.root_generation, e.id};
  return NFS4_OK;
}

void SetCurrent(CompoundState& st, const FileHandle& fh) {
  st.current_fh = fh;
  st.current_stateid.reset();
  st.export_id = fh.export_id;
}

// --------------------------------------------------- pseudo fs operations

AttrSource PseudoSource(CompoundState& st, const ns::Attr& a,
                        const FileHandle& fh, const ns::FsStats* stats) {
  AttrSource src;
  src.attr = &a;
  src.fh = fh;
  src.codec = st.server.fh;
  src.stats = stats;
  src.lease_seconds = st.server.state->options().lease_seconds;
  src.max_io = st.server.max_io;
  src.idmap = st.server.idmap;
  return src;
}

nfsstat4 Stats(CompoundState& st, const AttrBits& req,
               std::optional<ns::FsStats>* out) {
  if (!NeedsStatFs(req)) return NFS4_OK;
  ns::Result<ns::FsStats> r = st.server.ns->StatFs(st.cred);
  if (!r.ok()) return ToNfsStat(r.status());
  *out = *r;
  return NFS4_OK;
}

nfsstat4 PseudoGetAttr(CompoundState& st, int index, const bitmap4& bits,
                       fattr4* out) {
  const ExportTable& t = Exports(st);
  AttrBits req = AttrBits::From(bits);
  std::optional<ns::FsStats> stats;
  if (nfsstat4 e = Stats(st, req, &stats); e) return e;
  ns::Attr a = PseudoAttr(t, index);
  AttrSource src = PseudoSource(st, a, PseudoFh(t, index),
                                stats ? &*stats : nullptr);
  EncodeAttrs(req, src, st.arena, out);
  return NFS4_OK;
}

// The entries of pseudo directory `index` the client may see: pseudo
// subdirectories leading to exports it may use, and those exports' roots.
struct PseudoEntry {
  std::string name;
  int pseudo = -1;                // a pseudo subdirectory
  const Export* junction = nullptr;  // or an export's root
};
std::vector<PseudoEntry> VisibleEntries(CompoundState& st, int index) {
  const ExportTable& t = Exports(st);
  const PseudoNode& n = t.pseudo()[index];
  std::vector<PseudoEntry> out;
  for (int c : n.children) {
    if (t.PseudoVisible(c, st.peer)) out.push_back({t.pseudo()[c].name, c, nullptr});
  }
  for (const auto& [name, id] : n.junctions) {
    const Export* e = t.Find(id);
    if (e && e->AllowsPeer(st.peer)) out.push_back({name, -1, e});
  }
  std::sort(out.begin(), out.end(),
            [](const PseudoEntry& a, const PseudoEntry& b) { return a.name < b.name; });
  return out;
}

nfsstat4 PseudoLookup(CompoundState& st, int index, const component4& c) {
  std::string_view name(c.utf8string_val, c.utf8string_len);
  if (name.empty()) return NFS4ERR_INVAL;
  if (name.size() > ns::kMaxNameBytes) return NFS4ERR_NAMETOOLONG;
  if (name == "." || name == ".." || name.find('/') != std::string_view::npos) {
    return NFS4ERR_BADNAME;
  }
  const ExportTable& t = Exports(st);
  const PseudoNode& n = t.pseudo()[index];
  for (int ch : n.children) {
    // A pseudo directory that leads nowhere this client may go does not
    // exist for it: do not reveal other clients' exports.
    if (t.pseudo()[ch].name == name && t.PseudoVisible(ch, st.peer)) {
      SetCurrent(st, PseudoFh(t, ch));
      return NFS4_OK;
    }
  }
  auto it = n.junctions.find(std::string(name));
  if (it == n.junctions.end()) return NFS4ERR_NOENT;
  const Export* e = t.Find(it->second);
  if (!e) return NFS4ERR_NOENT;
  // §2.6.3.1.1.3: LOOKUP into an export whose flavors exclude ours is
  // WRONGSEC, unless SECINFO follows to ask which ones it takes.
  if (nfsstat4 s = Admit(st, *e, !IsSecinfo(st.next_op)); s) return s;
  SetCred(st, e, e->id);
  ns::Attr a;
  FileHandle fh;
  if (nfsstat4 s = ExportRoot(st, *e, &a, &fh); s) return s;
  SetCurrent(st, fh);
  return NFS4_OK;
}

nfsstat4 PseudoReadDir(CompoundState& st, int index, const READDIR4args& args,
                       READDIR4res& res) {
  const ExportTable& t = Exports(st);
  // Cookies: 0 starts; entry i has cookie i + 3 (1 and 2 are reserved for
  // "." and "..", §18.23.3). The verifier is the table's build time: a
  // reload changes it.
  const uint64_t verf = static_cast<uint64_t>(t.built_ns());
  uint64_t given = 0;
  for (int i = 0; i < NFS4_VERIFIER_SIZE; ++i) {
    given = (given << 8) | static_cast<uint8_t>(args.cookieverf[i]);
  }
  if (args.cookie == 1 || args.cookie == 2) return NFS4ERR_BAD_COOKIE;
  if (args.cookie != 0 && given != verf) return NFS4ERR_NOT_SAME;
  AttrBits req = AttrBits::From(args.attr_request);
  std::optional<ns::FsStats> stats;
  if (nfsstat4 e = Stats(st, req, &stats); e) return e;
  std::vector<PseudoEntry> entries = VisibleEntries(st, index);
  size_t first = args.cookie == 0 ? 0 : args.cookie - 2;
  if (first > entries.size()) return NFS4ERR_BAD_COOKIE;
  size_t used = 4 + 8 + 4 + 4;
  entry4* head = nullptr;
  entry4** tail = &head;
  bool eof = true;
  for (size_t i = first; i < entries.size(); ++i) {
    const PseudoEntry& pe = entries[i];
    ns::Attr a;
    FileHandle fh;
    std::optional<uint64_t> mounted_on;
    nfsstat4 rd = NFS4_OK;
    if (pe.pseudo >= 0) {
      a = PseudoAttr(t, pe.pseudo);
      fh = PseudoFh(t, pe.pseudo);
    } else {
      rd = ExportRoot(st, *pe.junction, &a, &fh);
      mounted_on = pe.junction->mounted_on_fileid;
      if (rd != NFS4_OK) {
        a = ns::Attr{};
        a.ino = pe.junction->mounted_on_fileid;
        a.type = ns::FileType::kDirectory;
      }
    }
    AttrSource src = PseudoSource(st, a, fh, stats ? &*stats : nullptr);
    src.mounted_on_fileid = mounted_on;
    src.rdattr_error = rd;
    entry4* e = st.arena.New<entry4>();
    e->cookie = i + 3;
    e->name.utf8string_len = static_cast<u_int>(pe.name.size());
    e->name.utf8string_val = st.arena.Copy(pe.name);
    AttrBits want = req;
    if (rd != NFS4_OK) {  // only what does not need the object
      AttrBits light;
      for (uint32_t b : {FATTR4_RDATTR_ERROR, FATTR4_MOUNTED_ON_FILEID}) {
        if (req.Has(b)) light.Set(b);
      }
      want = light;
    }
    EncodeAttrs(want, src, st.arena, &e->attrs);
    size_t sz = 4 + 8 + 4 + ((pe.name.size() + 3) & ~size_t{3}) + 4 +
                4 * e->attrs.attrmask.bitmap4_len + 4 +
                e->attrs.attr_vals.attrlist4_len;
    if (used + sz > args.maxcount) {
      eof = false;
      break;
    }
    used += sz;
    *tail = e;
    tail = &e->nextentry;
  }
  if (!head && !eof) return NFS4ERR_TOOSMALL;
  READDIR4resok& ok = res.READDIR4res_u.resok4;
  uint64_t v = verf;
  for (int i = NFS4_VERIFIER_SIZE - 1; i >= 0; --i) {
    ok.cookieverf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  ok.reply.entries = head;
  ok.reply.eof = eof;
  return NFS4_OK;
}

void FillSecinfo(CompoundState& st, const Export* e, SECINFO4resok* ok) {
  // The pseudo fs takes any flavor (§2.6.3.1.1: a client must be able to
  // reach every export from the root).
  bool sys = !e || e->allow_sys, none = !e || e->allow_none;
  u_int n = (sys ? 1 : 0) + (none ? 1 : 0);
  secinfo4* s = st.arena.New<secinfo4>(n);
  u_int i = 0;
  if (sys) s[i++].flavor = AUTH_SYS;
  if (none) s[i++].flavor = AUTH_NONE;
  ok->SECINFO4resok_len = n;
  ok->SECINFO4resok_val = s;
}

}  // namespace

const ExportTable& Exports(CompoundState& st) {
  if (!st.exports) {
    if (!st.server.exports) return Fallback();
    st.exports = st.server.exports->Get();
    if (!st.exports) return Fallback();
  }
  return *st.exports;
}

nfsstat4 ExportRules(CompoundState& st, uint32_t opnum, bool modifies_fs) {
  const FileHandle& fh = *st.current_fh;
  st.export_id = fh.export_id;
  if (NoExports(st)) return NFS4_OK;
  if (fh.export_id == kPseudoExportId) {
    if (PseudoOf(st, fh) < 0) return NFS4ERR_STALE;
    SetCred(st, nullptr, kPseudoExportId);
    return modifies_fs ? NFS4ERR_ROFS : NFS4_OK;
  }
  const Export* e = ExportOf(st, fh.export_id);
  if (!e) return NFS4ERR_STALE;  // the export went away (reload)
  if (nfsstat4 s = Admit(st, *e, !IsSecinfo(opnum)); s) return s;
  SetCred(st, e, e->id);
  if (modifies_fs && e->read_only) return NFS4ERR_ROFS;
  return NFS4_OK;
}

std::optional<nfsstat4> RunPseudoOp(CompoundState& st, uint32_t opnum,
                                    const nfs_argop4& arg, nfs_resop4& res) {
  if (!st.current_fh || NoExports(st)) return std::nullopt;
  int index = PseudoOf(st, *st.current_fh);
  if (index < 0) return std::nullopt;
  const ExportTable& t = Exports(st);
  const auto& a = arg.nfs_argop4_u;
  auto& r = res.nfs_resop4_u;
  switch (opnum) {
    case OP_GETATTR:
      return PseudoGetAttr(st, index, a.opgetattr.attr_request,
                           &r.opgetattr.GETATTR4res_u.resok4.obj_attributes);
    case OP_LOOKUP:
      return PseudoLookup(st, index, a.oplookup.objname);
    case OP_LOOKUPP: {
      int parent = t.pseudo()[index].parent;
      if (parent < 0) return NFS4ERR_NOENT;
      SetCurrent(st, PseudoFh(t, parent));
      return NFS4_OK;
    }
    case OP_READDIR:
      return PseudoReadDir(st, index, a.opreaddir, r.opreaddir);
    case OP_ACCESS: {
      // Read and search, nothing else (§7.3: read-only).
      uint32_t ok = ACCESS4_READ | ACCESS4_LOOKUP;
      uint32_t all = ok | ACCESS4_MODIFY | ACCESS4_EXTEND | ACCESS4_DELETE |
                     ACCESS4_EXECUTE;
      r.opaccess.ACCESS4res_u.resok4.supported = a.opaccess.access & all;
      r.opaccess.ACCESS4res_u.resok4.access = a.opaccess.access & ok;
      return NFS4_OK;
    }
    case OP_VERIFY:
    case OP_NVERIFY: {
      const fattr4& given = opnum == OP_VERIFY
                                ? a.opverify.obj_attributes
                                : a.opnverify.obj_attributes;
      fattr4 mine{};
      if (nfsstat4 e = PseudoGetAttr(st, index, given.attrmask, &mine); e) {
        return e;
      }
      bool same = mine.attr_vals.attrlist4_len == given.attr_vals.attrlist4_len &&
                  std::memcmp(mine.attr_vals.attrlist4_val,
                              given.attr_vals.attrlist4_val,
                              mine.attr_vals.attrlist4_len) == 0;
      if (opnum == OP_VERIFY) return same ? NFS4_OK : NFS4ERR_NOT_SAME;
      return same ? NFS4ERR_SAME : NFS4_OK;
    }
    case OP_SECINFO: {
      std::string_view name(a.opsecinfo.name.utf8string_val,
                            a.opsecinfo.name.utf8string_len);
      const PseudoNode& n = t.pseudo()[index];
      const Export* e = nullptr;
      bool found = false;
      for (int ch : n.children) {
        if (t.pseudo()[ch].name == name && t.PseudoVisible(ch, st.peer)) found = true;
      }
      if (auto it = n.junctions.find(std::string(name)); it != n.junctions.end()) {
        e = t.Find(it->second);
        if (e && e->AllowsPeer(st.peer)) found = true;
      }
      if (!found) return NFS4ERR_NOENT;
      FillSecinfo(st, e, &r.opsecinfo.SECINFO4res_u.resok4);
      st.current_fh.reset();  // §18.29.3: SECINFO consumes it
      return NFS4_OK;
    }
    case OP_SECINFO_NO_NAME:
      if (a.opsecinfo_no_name == SECINFO_STYLE4_PARENT &&
          t.pseudo()[index].parent < 0) {
        return NFS4ERR_NOENT;
      }
      FillSecinfo(st, nullptr, &r.opsecinfo_no_name.SECINFO4res_u.resok4);
      st.current_fh.reset();
      return NFS4_OK;
    case OP_READLINK:
      return NFS4ERR_INVAL;
    case OP_OPEN:
    case OP_READ:
    case OP_WRITE:
    case OP_COMMIT:
    case OP_LOCK:
    case OP_LOCKT:
    case OP_LOCKU:
    case OP_LAYOUTGET:
      return NFS4ERR_ISDIR;
    case OP_GETFH:
    case OP_SAVEFH:
    case OP_RESTOREFH:
    case OP_PUTFH:
    case OP_PUTROOTFH:
    case OP_PUTPUBFH:
    case OP_SEQUENCE:
      return std::nullopt;  // no namespace access: the normal handler
    default:
      // Never let a pseudo handle reach the namespace.
      return NFS4ERR_NOTSUPP;
  }
}

nfsstat4 PutRoot(CompoundState& st) {
  if (NoExports(st)) {
    ns::Result<ns::Attr> r = st.server.ns->GetAttr(st.cred, st.server.ns->Root());
    if (!r.ok()) return ToNfsStat(r.status());
    SetCurrent(st, FileHandle{r->ino, r->generation, 0});
    return NFS4_OK;
  }
  const ExportTable& t = Exports(st);
  if (t.has_pseudo()) {
    SetCurrent(st, PseudoFh(t, 0));
    SetCred(st, nullptr, kPseudoExportId);
    return NFS4_OK;
  }
  const Export* e = t.root_export();
  if (!e) return NFS4ERR_SERVERFAULT;
  if (nfsstat4 s = Admit(st, *e, !IsSecinfo(st.next_op)); s) return s;
  SetCred(st, e, e->id);
  ns::Attr a;
  FileHandle fh;
  if (nfsstat4 s = ExportRoot(st, *e, &a, &fh); s) return s;
  SetCurrent(st, fh);
  return NFS4_OK;
}

nfsstat4 EnterFh(CompoundState& st, const FileHandle& fh) {
  if (NoExports(st)) return NFS4_OK;
  if (fh.export_id == kPseudoExportId) {
    if (PseudoOf(st, fh) < 0) return NFS4ERR_STALE;
    return NFS4_OK;
  }
  const Export* e = ExportOf(st, fh.export_id);
  if (!e) return NFS4ERR_STALE;
  return Admit(st, *e, !IsSecinfo(st.next_op));
}

nfsstat4 CrossInto(CompoundState& st, FileHandle* fh) {
  if (NoExports(st)) return NFS4_OK;
  const Export* e = Exports(st).FindByRoot(fh->ino);
  if (!e || e->id == fh->export_id) return NFS4_OK;
  if (nfsstat4 s = Admit(st, *e, !IsSecinfo(st.next_op)); s) return s;
  fh->export_id = e->id;
  SetCred(st, e, e->id);
  return NFS4_OK;
}

std::optional<nfsstat4> ExportLookupp(CompoundState& st, const ns::Attr& dir) {
  if (NoExports(st)) return std::nullopt;
  const ExportTable& t = Exports(st);
  const Export* e = t.Find(st.current_fh->export_id);
  if (!e || dir.ino != e->root) return std::nullopt;
  if (e->parent_pseudo >= 0) {
    SetCurrent(st, PseudoFh(t, e->parent_pseudo));
    SetCred(st, nullptr, kPseudoExportId);
    return NFS4_OK;
  }
  const Export* up = t.Find(e->parent_export);
  if (!up) return NFS4ERR_NOENT;  // the top of the tree
  if (nfsstat4 s = Admit(st, *up, true); s) return s;
  SetCred(st, up, up->id);
  ns::Result<ns::Attr> p = st.server.ns->GetAttr(st.cred, dir.parent);
  if (!p.ok()) return ToNfsStat(p.status());
  SetCurrent(st, FileHandle{p->ino, p->generation, up->id});
  return NFS4_OK;
}

void ApplyExportAttrs(CompoundState& st, const FileHandle& fh,
                      AttrSource* src) {
  src->idmap = st.server.idmap;
  if (NoExports(st)) return;
  const Export* e = Exports(st).Find(fh.export_id);
  if (e && fh.ino == e->root && e->parent_pseudo >= 0) {
    src->mounted_on_fileid = e->mounted_on_fileid;
  }
}

bool ExportWritable(CompoundState& st) {
  if (NoExports(st) || !st.current_fh) return true;
  if (st.current_fh->export_id == kPseudoExportId) return false;
  const Export* e = Exports(st).Find(st.current_fh->export_id);
  return e && !e->read_only;
}

// SECINFO / SECINFO_NO_NAME in an export: its flavors.
void ExportSecinfo(CompoundState& st, SECINFO4resok* ok) {
  FillSecinfo(st, NoExports(st) ? nullptr : Exports(st).Find(st.export_id), ok);
}

}  // namespace nfs41d
