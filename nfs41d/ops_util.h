#pragma once

// Helpers that several handler files share (defined in ops_fs.cc and
// ops_io.cc). Internal to the operation handlers.

#include <optional>
#include <string>
#include <string_view>

#include "nfs41d/compound.h"
#include "nfs41d/attrs.h"

namespace nfs41d {

// --- ops_fs.cc
FileHandle MakeFh(const CompoundState& st, const ns::Attr& a);
// The caches' epochs, taken before a create's commit (NoteCreated).
struct CacheEpochs {
  uint64_t attrs = 0, dirs = 0;
};
CacheEpochs CacheEpochsNow(const CompoundState& st);
// Records in st.created that `attr` was just created as `name` in `dir`
// (the COMPOUND loop caches both after the op; compound.cc).
void NoteCreated(CompoundState& st, ns::InodeId dir, const std::string& name,
                 const ns::Attr& attr, const CacheEpochs& before);
// The attributes of `fh` as the database has them; NFS4ERR_STALE if it is
// gone or another generation.
nfsstat4 AttrOf(CompoundState& st, const FileHandle& fh, ns::Attr* out);
// A component4 as a name (§14.5): INVAL, NAMETOOLONG, BADNAME.
nfsstat4 CheckName(const component4& c, std::string* out);
// NOTDIR, or SYMLINK when `fh` is a symlink.
nfsstat4 NotDirStatus(CompoundState& st, const FileHandle& fh);
// LOOKUP from the caches: the child if the directory cache has the name and
// the directory's attributes grant the caller search permission by mode
// bits (an ACL needs the database); nullopt: ask the namespace. Reads the
// directory's attributes (AttrCache::Get) unless st.cache_only.
std::optional<DirCache::Child> CachedLookup(CompoundState& st,
                                            const FileHandle& dir,
                                            const std::string& name);
// Whether `op` (not SEQUENCE) can run from memory on the event-loop thread
// (compound.h, "Inline COMPOUNDs") with `*current` as current filehandle,
// which it then advances. REQUIRES: st.cache_only. Changes nothing but
// st's pinned entries.
bool InlineOp(CompoundState& st, const nfs_argop4& op,
              std::optional<FileHandle>* current);
// change_info4 of a directory from its change counter before and now (as
// st.dir_after has it when it names `dir`, else read again).
change_info4 ChangeInfo(uint64_t before, CompoundState& st,
                        const FileHandle& dir);
// Records in st.dir_after the directory as the op's commit left it, if the
// namespace returned it; `attr_epoch` is CacheEpochs::attrs from before
// the commit.
void NoteDirAfter(CompoundState& st, std::optional<ns::Attr> after,
                  uint64_t attr_epoch);

// --- ops_io.cc: the data path's view of attributes and unlinks.

// Overlays what an open file's writes changed (size, mtime, ctime) on `a`
// and fills src.writes, and src.space_used from the data store when `req`
// asks for it.
void OverlayFileAttrs(CompoundState& st, const AttrBits& req, ns::Attr* a,
                      AttrSource* src);
// The options REMOVE/RENAME pass to the namespace for the victim `name` in
// `dir` (retain_if_last while it is open, so its data outlives the name).
// Costs a lookup only while some file is open.
ns::UnlinkOptions UnlinkOptionsFor(CompoundState& st, ns::InodeId dir,
                                   std::string_view name);
// After an unlink or a rename over a file: deletes the data of an inode
// that is gone, or leaves a retained one to its last CLOSE.
void AfterUnlink(CompoundState& st, const ns::UnlinkResult& r);
// SETATTR of size (§18.30.3): checks `stateid` for writing, writes pending
// attributes back, truncates the data. The caller then sets the size in
// the namespace.
nfsstat4 PrepareTruncate(CompoundState& st, const stateid4& stateid,
                         const ns::Attr& a, uint64_t size);
// After the namespace took the new size.
void FinishTruncate(CompoundState& st, ns::InodeId ino, uint64_t size);
// SETATTR on a regular file: PrepareTruncate for a size; for an explicit
// mtime, writes pending attributes back first so they cannot override it.
// FinishSetAttr after the namespace applied `req`.
nfsstat4 PrepareSetAttr(CompoundState& st, const stateid4& stateid,
                        const ns::Attr& a, const ns::SetAttrRequest& req);
void FinishSetAttr(CompoundState& st, const ns::Attr& a,
                   const ns::SetAttrRequest& req);

// rwx (4/2/1) that `cred` has on `a` by its mode bits; root has rw, and x
// on a directory or a file with any x bit.
uint32_t ModeRights(const ns::Credentials& cred, const ns::Attr& a);
// The same for the caller of `st`, by the inode's NFSv4 ACL when it has
// one (RFC 8881 §6.2.1: READ_DATA, WRITE_DATA, EXECUTE; one database read)
// and by its mode bits otherwise (no database read). 0 if the ACL cannot
// be read.
uint32_t FileRights(CompoundState& st, const ns::Attr& a);

// The stateid an op names: the current stateid for the special "current"
// one (§16.2.3.1.2); NFS4ERR_BAD_STATEID if there is none.
nfsstat4 ResolveStateid(const CompoundState& st, const stateid4& in,
                        stateid4* out);
clientid4 ClientOf(const CompoundState& st);

}  // namespace nfs41d
