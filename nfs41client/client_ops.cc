#include "nfs41client/client.h"

#include <cstring>

namespace nfs41client {

namespace {

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

}  // namespace

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
