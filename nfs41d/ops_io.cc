// The data path: READ, WRITE, COMMIT (RFC 8881 §18.22, §18.32, §18.3) on
// the DataStore, and what the rest of the server needs from it (attributes
// of open files, truncate, unlink of open files).
//
// Size and mtime after a WRITE: the data goes to the data store at once;
// the new size and mtime of an open file are kept in its FileState
// (state/open_state.h) and shown by GETATTR/READDIR through
// OverlayFileAttrs, and written to the database (one SetAttr) at COMMIT, at
// a FILE_SYNC4/DATA_SYNC4 WRITE, at the file's last CLOSE if writes came
// since the last write-back, before a truncate, and by the server's flusher
// every half second. So a stream of UNSTABLE4 writes costs one database
// transaction per flush interval, not one per WRITE, and a create written
// with one FILE_SYNC4 WRITE costs two (the create, the WRITE's size and
// mtime), the CLOSE none. Each is a group commit shared with the other
// sessions' (libnamespace's SQLite writer; PostgreSQL's WAL flush).
//
// Small files: a regular file of at most `inline_max` bytes (config;
// default 4096, one SQLite page or half a PostgreSQL one) keeps them in the
// namespace database (Namespace::WriteInline, table inode_data). A WRITE
// that keeps the file within the bound writes its bytes, size and mtime in
// one transaction: one group commit, no data file to create and fsync, and
// the reply says FILE_SYNC4 whatever was asked (the bytes are as stable as
// the size; RFC 8881 §18.32.3 lets a server commit more than asked). A file
// starts inline only when empty and without a pNFS layout (the library
// checks both in that transaction). A WRITE or SETATTR that takes it past
// the bound first moves its bytes to the data store: written and fsynced
// there before the commit that drops them from the database, so no crash
// loses bytes a client was told were stable (a data file left by a move
// cut short is rewritten from the start by the next one, and unlinked with
// the file). Whether a file is inline is decided, and its bytes written,
// under its FileMu, for every file whose size is within ns::kMaxInlineBytes
// (a larger one is never inline): two WRITEs never put one file's bytes in
// both places. READ of such a file asks the database first.
//
// Crash consequences: a server crash loses at most the last interval's
// size/mtime of files written UNSTABLE4 and not committed; their data may
// also be lost (page cache). Clients see a new write verifier after the
// restart and resend every write they have not seen committed (§18.32.3),
// which restores both. Committed and FILE_SYNC4 writes have their data
// fsynced and their size in the database before the reply.

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "nfs41d/ops.h"
#include "nfs41d/ops_util.h"
#include "nfs41d/pnfs_mds.h"
#include "nfs41d/status_map.h"
#include "rpc/log.h"

namespace nfs41d {
namespace {

constexpr uint64_t kMaxFileSize = std::numeric_limits<int64_t>::max();

state::OpenStateTable& Opens(ServerContext& ctx) {
  return ctx.state->opens();
}

std::mutex& FileMu(ServerContext& ctx, ns::InodeId ino) {
  return ctx.file_mu[ino % ctx.file_mu.size()];
}

ns::TimeNs NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Puts what a commit of `a` returned into the attribute cache, `epoch`
// taken before the commit (AttrCache::Put: a change by another path that
// raced with it makes the put give up). True if the cache now holds it:
// the op's COMPOUND need not invalidate the inode (CompoundState::reread),
// and the next GETATTR (a stat after a create) reads no database.
bool CacheCommitted(ServerContext& ctx, const ns::Attr& a, uint64_t epoch) {
  return ctx.attrs && ctx.attrs->Put(a, epoch);
}

uint64_t AttrEpoch(const ServerContext& ctx) {
  return ctx.attrs ? ctx.attrs->Epoch() : 0;
}

// Writes `size` and the writes' `mtime` to the database. mtime 0 (a
// SETATTR set the times since the last write) keeps the database's mtime:
// SetAttr would otherwise set it to "now" with the size. `*cached`: the
// attribute cache holds the committed attributes (else it forgot them).
ns::Result<ns::Attr> WriteBack(ServerContext& ctx, ns::InodeId ino,
                               uint64_t size, ns::TimeNs mtime,
                               bool* cached = nullptr) {
  const uint64_t epoch = AttrEpoch(ctx);
  ns::SetAttrRequest q;
  q.size = size;
  if (mtime != 0) {
    q.mtime = mtime;
  } else {
    ns::Result<ns::Attr> cur = ctx.ns->GetAttr(ns::Credentials::Root(), ino);
    if (!cur.ok()) return cur.status();
    q.mtime = cur->mtime;
  }
  ns::Result<ns::Attr> r = ctx.ns->SetAttr(ns::Credentials::Root(), ino, q);
  // The row changed outside any COMPOUND's invalidation (the flusher runs
  // on its own thread): the cache takes the new row, or forgets the old.
  const bool put = r.ok() && CacheCommitted(ctx, *r, epoch);
  if (!put && ctx.attrs) ctx.attrs->Invalidate(ino);
  if (cached) *cached = put;
  return r;
}

// REQUIRES: FileMu(ino) held.
ns::Status FlushLocked(ServerContext& ctx, ns::InodeId ino) {
  std::optional<state::FileOverlay> ov = Opens(ctx).TakeDirty(ino);
  if (!ov) return ns::Status::Ok();
  ns::Result<ns::Attr> r = WriteBack(ctx, ino, ov->size, ov->mtime);
  if (!r.ok()) {
    if (!r.status().IsStale()) Opens(ctx).RestoreDirty(ino);
    return r.status();
  }
  Opens(ctx).NoteWrittenBack(ino, *ov, r->change);
  return ns::Status::Ok();
}

// What a READ/WRITE/SETATTR stateid allows.
struct IoStateid {
  bool special = false;  // anonymous or READ bypass: mode bits decide
  state::StateInfo info;
};

// RFC 8881 §8.2.3, §9.1.2: resolves the stateid of an I/O on `ino`.
// Special stateids: NFS4ERR_LOCKED when an open denies the access (READ
// bypass skips that for reads). Open and lock stateids: the file must be
// theirs, and a write needs an open with write access (NFS4ERR_OPENMODE).
// Reads are allowed with any open, like the Linux server: a client may
// read a page it is about to partially overwrite.
nfsstat4 CheckIoStateid(CompoundState& st, const stateid4& given,
                        ns::InodeId ino, bool write, IoStateid* out) {
  stateid4 sid;
  if (nfsstat4 e = ResolveStateid(st, given, &sid); e) return e;
  if (state::IsAnonymousStateid(sid) || state::IsReadBypassStateid(sid)) {
    out->special = true;
    const bool bypass = !write && state::IsReadBypassStateid(sid);
    const uint32_t want =
        write ? OPEN4_SHARE_ACCESS_WRITE : OPEN4_SHARE_ACCESS_READ;
    if (!bypass && Opens(st.server).Denied(ino, want)) {
      return NFS4ERR_LOCKED;
    }
    return NFS4_OK;
  }
  nfsstat4 e = Opens(st.server).Find(ClientOf(st), sid, &out->info);
  if (e) return e;
  if (out->info.ino != ino) return NFS4ERR_BAD_STATEID;
  if (write && !(out->info.access & OPEN4_SHARE_ACCESS_WRITE)) {
    return NFS4ERR_OPENMODE;
  }
  return NFS4_OK;
}

// The current filehandle as a regular file, with the open file's size.
nfsstat4 RegularFile(CompoundState& st, ns::Attr* a) {
  if (nfsstat4 e = AttrOf(st, *st.current_fh, a); e) return e;
  if (a->type == ns::FileType::kDirectory) return NFS4ERR_ISDIR;
  if (a->type == ns::FileType::kSymlink) return NFS4ERR_SYMLINK;
  if (a->type != ns::FileType::kRegular) return NFS4ERR_INVAL;
  if (auto ov = Opens(st.server).Overlay(a->ino)) a->size = ov->size;
  return NFS4_OK;
}

// Whether a file of `size` bytes may have its bytes in the database: a
// row exists only while the file is not empty, and never past the bound.
bool MayBeInline(uint64_t size) {
  return size > 0 && size <= ns::kMaxInlineBytes;
}

// Moves the inline bytes of `ino` (if any) to the data store: truncated
// there first (a move cut short by a crash may have left a data file),
// written and fsynced, and only then dropped from the database.
// REQUIRES: FileMu(ino) held.
ns::Status MoveInlineOutLocked(ServerContext& ctx, ns::InodeId ino,
                               uint64_t size) {
  if (!MayBeInline(size)) return ns::Status::Ok();
  NS_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                      ctx.ns->ReadInline(ino));
  if (!bytes) return ns::Status::Ok();
  NS_RETURN_IF_ERROR(ctx.data->Truncate(ino, 0));
  NS_RETURN_IF_ERROR(ctx.data->Write(
      ino, 0,
      std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()),
      data::Stability::kFileSync));
  return ctx.ns->DropInline(ino, *bytes);
}

// The part of a WRITE that small files need, under FileMu: the write
// itself if it keeps the file inline (*done), else the move of inline
// bytes out of the database before the caller writes to the data store.
// REQUIRES: FileMu(a.ino) held; a.size within ns::kMaxInlineBytes.
nfsstat4 WriteSmallLocked(CompoundState& st, const ns::Attr& a,
                          const WRITE4args& args, ns::TimeNs now,
                          bool* done) {
  ServerContext& ctx = st.server;
  // Unstable writes not written back yet went to the data store (an
  // inline write leaves the overlay clean): the file is not inline, and
  // WriteInline, which decides on the database's size, must not be asked.
  if (auto ov = Opens(ctx).Overlay(a.ino); ov && ov->dirty) return NFS4_OK;
  const uint64_t end = args.offset + args.data.data_len;
  if (end <= ctx.inline_max) {
    const uint64_t epoch = AttrEpoch(ctx);
    ns::Result<ns::Attr> r = ctx.ns->WriteInline(
        st.cred, a.ino, args.offset,
        std::string_view(args.data.data_val, args.data.data_len), now,
        ctx.inline_max);
    if (r.ok()) {
      // The commit returned the file's new row (size, mtime, change): a
      // GETATTR after this WRITE (or after the CLOSE, which writes
      // nothing) needs no database read. If the put gave up (another
      // path changed the inode meanwhile), the COMPOUND loop forgets the
      // inode as after any change.
      if (CacheCommitted(ctx, *r, epoch)) st.reread.push_back(a.ino);
      // The commit was the write-back too: the overlay of an open file
      // takes the size and is clean at once, so its CLOSE writes nothing.
      if (Opens(ctx).NoteWrite(a.ino, end, now)) {
        if (auto ov = Opens(ctx).TakeDirty(a.ino)) {
          Opens(ctx).NoteWrittenBack(a.ino, *ov, r->change);
        }
      }
      *done = true;
      return NFS4_OK;
    }
    // NotFound: its bytes are in the data store already (not empty, or a
    // layout). TooBig: inline, but growing past the bound.
    if (r.status().IsNotFound()) return NFS4_OK;
    if (!r.status().IsTooBig()) return ToNfsStat(r.status());
  }
  return ToNfsStat(MoveInlineOutLocked(ctx, a.ino, a.size));
}

// An unlinked inode's bytes go once its release is on disk (syncer thread
// with ns::NamespaceOptions::defer_sync): were the server to stop before,
// the namespace would come back naming a file without its data.
void RemoveDataWhenDurable(ServerContext& ctx, ns::InodeId ino) {
  data::DataStore* data = ctx.data;
  ctx.ns->WhenDurable(ctx.ns->LatestCommitTicket(), [data, ino](bool durable) {
    if (!durable) return;  // kept: the namespace may still name it
    if (ns::Status s = data->Remove(ino); !s.ok()) {
      rpc::log::Error("{}", s.ToString());
    }
  });
}

void ReleaseNow(ServerContext& ctx, ns::InodeId ino) {
  if (ns::Status s = ctx.ns->ReleaseOrphan(ino); !s.ok()) {
    rpc::log::Error("release of unlinked inode {}: {}", ino, s.ToString());
  }
  RemoveDataWhenDurable(ctx, ino);
}

}  // namespace

clientid4 ClientOf(const CompoundState& st) {
  return st.session ? st.session->client()->id() : 0;
}

nfsstat4 ResolveStateid(const CompoundState& st, const stateid4& in,
                        stateid4* out) {
  if (state::IsCurrentStateid(in)) {
    // §16.2.3.1.2: the stateid set by an earlier op of this COMPOUND.
    if (!st.current_stateid) return NFS4ERR_BAD_STATEID;
    *out = *st.current_stateid;
  } else {
    *out = in;
  }
  if (state::IsInvalidStateid(*out)) return NFS4ERR_BAD_STATEID;
  return NFS4_OK;
}

uint32_t ModeRights(const ns::Credentials& cred, const ns::Attr& a) {
  if (cred.IsRoot()) {
    return 06 | ((a.type == ns::FileType::kDirectory || (a.mode & 0111)) ? 1
                                                                         : 0);
  }
  if (cred.uid == a.uid) return (a.mode >> 6) & 7;
  if (cred.gid == a.gid || cred.InGroup(a.gid)) return (a.mode >> 3) & 7;
  return a.mode & 7;
}

uint32_t FileRights(CompoundState& st, const ns::Attr& a) {
  if (!a.has_acl) return ModeRights(st.cred, a);
  ns::Result<uint32_t> r = st.server.ns->Access(
      st.cred, a.ino, ns::kAceReadData | ns::kAceWriteData | ns::kAceExecute);
  if (!r.ok()) return 0;
  return ((*r & ns::kAceReadData) ? 4 : 0) |
         ((*r & ns::kAceWriteData) ? 2 : 0) |
         ((*r & ns::kAceExecute) ? 1 : 0);
}

void OverlayFileAttrs(CompoundState& st, const AttrBits& req, ns::Attr* a,
                      AttrSource* src) {
  if (a->type != ns::FileType::kRegular) return;
  std::optional<state::FileOverlay> ov;
  if (Opens(st.server).Overlay(a->ino)) {
    // Open: read the overlay under the file's mutex, so that a write-back
    // in flight (FlushLocked holds it from TakeDirty to NoteWrittenBack)
    // is seen whole. A row read before its commit shows base_change, one
    // read after it the writes it took out of the count: either way the
    // change attribute never repeats a value shown for other contents.
    std::lock_guard lock(FileMu(st.server, a->ino));
    ov = Opens(st.server).Overlay(a->ino);
  }
  if (ov) {
    a->change = std::max(a->change, ov->base_change);
    a->size = ov->size;
    a->mtime = std::max(a->mtime, ov->mtime);
    a->ctime = std::max(a->ctime, ov->mtime);
    src->writes = ov->writes;
  }
  if (req.Has(FATTR4_SPACE_USED) && st.server.data) {
    ns::Result<uint64_t> used = st.server.data->SpaceUsed(a->ino);
    if (used.ok()) src->space_used = *used;
    // No block in the data store and small enough to be inline: its bytes
    // are in the database (or it is sparse). Counted in 512-byte units, as
    // st_blocks, without a database read for every `ls -l`.
    if (used.ok() && *used == 0 && MayBeInline(a->size)) {
      src->space_used = (a->size + 511) / 512 * 512;
    }
  }
}

ns::UnlinkOptions UnlinkOptionsFor(CompoundState& st, ns::InodeId dir,
                                   std::string_view name) {
  ns::UnlinkOptions o;
  if (!Opens(st.server).AnyOpen()) return o;
  // A file opened between this lookup and the unlink loses its data with
  // its name, as if the unlink had come first; AfterUnlink copes with one
  // closed in between.
  ns::Result<ns::Attr> v = st.server.ns->Lookup(st.cred, dir, name);
  if (v.ok()) o.retain_if_last = Opens(st.server).IsOpen(v->ino);
  return o;
}

void AfterUnlink(CompoundState& st, const ns::UnlinkResult& r) {
  if (r.nlink_left > 0) return;
  // The last name went: layouts on the file must not be used to write
  // bytes the data servers are about to remove (RFC 8881 §12.5.5; the
  // removal itself is queued by the database with the inode's release).
  if (st.server.pnfs) st.server.pnfs->RecallFile(r.ino);
  if (r.retained) {
    // Open: the last CLOSE (or the client's expiry) releases it. Closed
    // since we looked: release now.
    if (!Opens(st.server).MarkOrphan(r.ino)) ReleaseNow(st.server, r.ino);
    return;
  }
  RemoveDataWhenDurable(st.server, r.ino);
}

nfsstat4 PrepareTruncate(CompoundState& st, const stateid4& stateid,
                         const ns::Attr& a, uint64_t size) {
  if (size > kMaxFileSize) return NFS4ERR_FBIG;
  IoStateid io;
  if (nfsstat4 e = CheckIoStateid(st, stateid, a.ino, true, &io); e) return e;
  // A shrink conflicts with every layout on the file, the caller's too
  // (§12.5.5): the data servers cut the file at their next heartbeat, and
  // bytes written through a layout before then would be cut with it. So
  // the layouts are recalled first, and until the data servers are done
  // LAYOUTGET says LAYOUTTRYLATER and writes through the MDS NFS4ERR_DELAY.
  if (st.server.pnfs && size < a.size) {
    if (nfsstat4 e = st.server.pnfs->ShrinkAllowed(a.ino); e) return e;
    st.server.pnfs->RecallFile(a.ino);
  }
  std::lock_guard lock(FileMu(st.server, a.ino));
  if (nfsstat4 e = ToNfsStat(FlushLocked(st.server, a.ino)); e) return e;
  // Past the bound, inline bytes go to the data store first (the library
  // refuses such a size for them past ns::kMaxInlineBytes). Within it the
  // SetAttr that follows cuts them in its own transaction.
  if (size > st.server.inline_max) {
    return ToNfsStat(MoveInlineOutLocked(st.server, a.ino, a.size));
  }
  return NFS4_OK;
}

void FinishTruncate(CompoundState& st, ns::InodeId ino, uint64_t size) {
  {
    std::lock_guard lock(FileMu(st.server, ino));
    // Inline bytes were cut by the SetAttr: no data file to make for them.
    ns::Result<std::optional<std::string>> inl =
        MayBeInline(size) ? st.server.ns->ReadInline(ino)
                          : std::optional<std::string>();
    const bool in_db = inl.ok() && inl->has_value();
    if (ns::Status s = in_db ? ns::Status::Ok()
                             : st.server.data->Truncate(ino, size);
        !s.ok()) {
      // The namespace has the new size; reads past the stored data see
      // zeros, so only a failed shrink leaves old bytes behind.
      rpc::log::Error("{}", s.ToString());
    }
  }
  Opens(st.server).NoteTruncate(ino, size, NowNs());
}

nfsstat4 PrepareSetAttr(CompoundState& st, const stateid4& stateid,
                        const ns::Attr& a, const ns::SetAttrRequest& req) {
  if (a.type != ns::FileType::kRegular) return NFS4_OK;
  if (req.size) return PrepareTruncate(st, stateid, a, *req.size);
  if (req.mtime || req.mtime_now) {
    // Pending sizes first, so the write-back cannot undo the new mtime.
    return ToNfsStat(FlushFile(st.server, a.ino));
  }
  return NFS4_OK;
}

void FinishSetAttr(CompoundState& st, const ns::Attr& a,
                   const ns::SetAttrRequest& req) {
  if (a.type != ns::FileType::kRegular) return;
  if (req.size) FinishTruncate(st, a.ino, *req.size);
  if (req.mtime || req.mtime_now) Opens(st.server).NoteTimesSet(a.ino);
}

ns::Status FlushFile(ServerContext& ctx, ns::InodeId ino) {
  std::lock_guard lock(FileMu(ctx, ino));
  return FlushLocked(ctx, ino);
}

bool ReleaseFile(ServerContext& ctx, const state::FileRelease& r) {
  if (r.orphan) {
    ReleaseNow(ctx, r.ino);
    return false;
  }
  // Nothing left to write back (an inline WRITE or a flush wrote it): the
  // database row, and so the attribute cache's entry, did not change.
  if (!r.written) return true;
  // The last close of a written file: its size and mtime go to the
  // database, which also bumps the change counter past every value the
  // overlay showed (NfsChange).
  std::lock_guard lock(FileMu(ctx, r.ino));
  bool cached = false;
  ns::Result<ns::Attr> res = WriteBack(ctx, r.ino, r.size, r.mtime, &cached);
  if (!res.ok() && !res.status().IsStale()) {
    rpc::log::Error("write-back of inode {}: {}", r.ino,
                    res.status().ToString());
  }
  return cached;
}

void FlushDirtyFiles(ServerContext& ctx) {
  for (ns::InodeId ino : Opens(ctx).DirtyFiles()) {
    if (ns::Status s = FlushFile(ctx, ino); !s.ok() && !s.IsStale()) {
      rpc::log::Warning("write-back of inode {}: {}", ino, s.ToString());
    }
  }
  for (const state::FileRelease& r : ctx.state->TakeReleasedFiles()) {
    (void)ReleaseFile(ctx, r);
  }
}

nfsstat4 CommitLayoutWrites(ServerContext& ctx, ns::InodeId ino,
                            std::optional<uint64_t> end,
                            std::optional<ns::TimeNs> mtime,
                            uint64_t* new_size, bool* changed) {
  const ns::TimeNs when = mtime ? *mtime : NowNs();
  *changed = false;
  std::lock_guard lock(FileMu(ctx, ino));
  // An open file's size lives in its overlay (GETATTR shows it): grow it
  // there and write it back, so a later write-back cannot shrink the file.
  if (auto ov = Opens(ctx).Overlay(ino)) {
    const uint64_t before = ov->size;
    if (end || mtime) Opens(ctx).NoteWrite(ino, end.value_or(0), when);
    if (ns::Status s = FlushLocked(ctx, ino); !s.ok()) return ToNfsStat(s);
    auto after = Opens(ctx).Overlay(ino);
    *new_size = after ? after->size : std::max(before, end.value_or(0));
    *changed = *new_size != before;
    return NFS4_OK;
  }
  ns::Result<ns::Attr> cur = ctx.ns->GetAttr(ns::Credentials::Root(), ino);
  if (!cur.ok()) return ToNfsStat(cur.status());
  ns::SetAttrRequest q;
  if (end && *end > cur->size) q.size = *end;
  if (end || mtime) q.mtime = when;
  *new_size = q.size.value_or(cur->size);
  if (!q.size && !q.mtime) return NFS4_OK;
  ns::Result<ns::Attr> r = ctx.ns->SetAttr(ns::Credentials::Root(), ino, q);
  if (ctx.attrs) ctx.attrs->Invalidate(ino);
  if (!r.ok()) return ToNfsStat(r.status());
  *changed = q.size.has_value();
  return NFS4_OK;
}

bool ReleaseCrashOrphans(ServerContext& ctx) {
  // RFC 8881 §8.4.2.1: until the grace period is over a client may still
  // reclaim an open of an unlinked file (CLAIM_PREVIOUS by filehandle), so
  // nothing is released while it lasts.
  if (ctx.state->InGrace()) return false;
  // Orphans a client has open in this run (an open reclaimed during grace,
  // or a file unlinked since the start) go with their last CLOSE: marking
  // them makes sure of that for reclaimed ones, which no REMOVE marked.
  // Not open any more (MarkOrphan false): released here.
  ns::InodeId after = 0;
  size_t released = 0;
  for (;;) {
    ns::Result<std::vector<ns::InodeId>> page = ctx.ns->ListOrphans(after);
    if (!page.ok()) {
      rpc::log::Error("listing unlinked inodes left by a crash: {}",
                      page.status().ToString());
      return false;  // try again at the next tick
    }
    for (ns::InodeId ino : *page) {
      if (Opens(ctx).MarkOrphan(ino)) continue;
      ReleaseNow(ctx, ino);
      ++released;
    }
    if (page->size() < 1024) break;
    after = page->back();
  }
  if (released > 0) {
    rpc::log::Info("released {} unlinked inodes nobody has open (left by a "
                   "previous run)",
                   released);
  }
  return true;
}

// ------------------------------------------------------------------ READ

nfsstat4 OpRead(CompoundState& st, const READ4args& args, READ4res& res) {
  ns::Attr a;
  if (nfsstat4 e = RegularFile(st, &a); e) return e;
  IoStateid io;
  if (nfsstat4 e = CheckIoStateid(st, args.stateid, a.ino, false, &io); e) {
    return e;
  }
  if (io.special && !(FileRights(st, a) & 4)) return NFS4ERR_ACCESS;
  READ4resok& ok = res.READ4res_u.resok4;
  const uint64_t count = std::min<uint64_t>(args.count, st.server.max_io);
  if (args.offset >= a.size || count == 0) {
    ok.eof = args.offset >= a.size;
    ok.data.data_len = 0;
    ok.data.data_val = st.arena.Bytes(0);
    return NFS4_OK;
  }
  const uint64_t n = std::min<uint64_t>(count, a.size - args.offset);
  // Zeroed: bytes past the stored data (holes at the end, a size set by
  // SETATTR) read as zeros.
  char* buf = st.arena.Bytes(n);
  ns::Result<std::optional<std::string>> inl =
      MayBeInline(a.size) ? st.server.ns->ReadInline(a.ino)
                          : std::optional<std::string>();
  if (!inl.ok()) return ToNfsStat(inl.status());
  if (*inl) {
    // Bytes past the stored ones read as zeros (the buffer is zeroed).
    const std::string& bytes = **inl;
    if (args.offset < bytes.size()) {
      std::memcpy(buf, bytes.data() + args.offset,
                  std::min<uint64_t>(n, bytes.size() - args.offset));
    }
  } else {
    ns::Result<size_t> r = st.server.data->Read(
        a.ino, args.offset,
        std::span<uint8_t>(reinterpret_cast<uint8_t*>(buf), n));
    if (!r.ok()) return ToNfsStat(r.status());
  }
  ok.eof = args.offset + n >= a.size;
  ok.data.data_len = static_cast<u_int>(n);
  ok.data.data_val = buf;
  return NFS4_OK;
}

// ----------------------------------------------------------------- WRITE

nfsstat4 OpWrite(CompoundState& st, const WRITE4args& args, WRITE4res& res) {
  ns::Attr a;
  if (nfsstat4 e = RegularFile(st, &a); e) return e;
  IoStateid io;
  if (nfsstat4 e = CheckIoStateid(st, args.stateid, a.ino, true, &io); e) {
    return e;
  }
  if (io.special && !(FileRights(st, a) & 2)) return NFS4ERR_ACCESS;
  const uint64_t len = args.data.data_len;
  if (args.offset > kMaxFileSize || len > kMaxFileSize - args.offset) {
    return NFS4ERR_FBIG;
  }
  if (args.stable != UNSTABLE4 && args.stable != DATA_SYNC4 &&
      args.stable != FILE_SYNC4) {
    return NFS4ERR_INVAL;
  }
  WRITE4resok& ok = res.WRITE4res_u.resok4;
  std::memcpy(ok.writeverf, st.server.write_verifier.data(),
              NFS4_VERIFIER_SIZE);
  ok.count = static_cast<count4>(len);
  ok.committed = args.stable;
  if (len == 0) return NFS4_OK;
  const ns::TimeNs now = NowNs();
  // A file that may be small is decided and written under its mutex (see
  // "Small files" above), from the choice of store to its new size.
  std::unique_lock lock(FileMu(st.server, a.ino), std::defer_lock);
  if (a.size <= ns::kMaxInlineBytes) {
    lock.lock();
    bool done = false;
    if (nfsstat4 e = WriteSmallLocked(st, a, args, now, &done); e) return e;
    if (done) {
      ok.committed = FILE_SYNC4;
      return NFS4_OK;
    }
  }
  const data::Stability stab =
      args.stable == FILE_SYNC4   ? data::Stability::kFileSync
      : args.stable == DATA_SYNC4 ? data::Stability::kDataSync
                                  : data::Stability::kUnstable;
  ns::Status s = st.server.data->Write(
      a.ino, args.offset,
      std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(args.data.data_val), len),
      stab);
  if (!s.ok()) return ToNfsStat(s);
  if (Opens(st.server).NoteWrite(a.ino, args.offset + len, now)) {
    if (lock.owns_lock()) lock.unlock();  // FlushFile takes it
    // Stable writes need the size on stable storage too (§18.32.3).
    if (args.stable != UNSTABLE4) {
      if (ns::Status f = FlushFile(st.server, a.ino); !f.ok()) {
        return ToNfsStat(f);
      }
    }
    return NFS4_OK;
  }
  // Not open (anonymous stateid): the attributes go to the database now.
  ns::SetAttrRequest q;
  if (args.offset + len > a.size) q.size = args.offset + len;
  q.mtime = now;
  if (!lock.owns_lock()) lock.lock();
  ns::Result<ns::Attr> r = st.server.ns->SetAttr(ns::Credentials::Root(),
                                                 a.ino, q);
  return ToNfsStat(r.status());
}

// ---------------------------------------------------------------- COMMIT

nfsstat4 OpCommit(CompoundState& st, const COMMIT4args& args,
                  COMMIT4res& res) {
  if (args.count != 0 && args.offset > std::numeric_limits<uint64_t>::max() -
                                           args.count) {
    return NFS4ERR_INVAL;
  }
  ns::Attr a;
  if (nfsstat4 e = RegularFile(st, &a); e) return e;
  // The whole file is synced whatever the range: a range sync would not be
  // cheaper on a local file system.
  if (ns::Status s = st.server.data->Sync(a.ino, data::Stability::kFileSync);
      !s.ok()) {
    return ToNfsStat(s);
  }
  if (ns::Status s = FlushFile(st.server, a.ino); !s.ok()) {
    return ToNfsStat(s);
  }
  std::memcpy(res.COMMIT4res_u.resok4.writeverf,
              st.server.write_verifier.data(), NFS4_VERIFIER_SIZE);
  return NFS4_OK;
}

}  // namespace nfs41d
