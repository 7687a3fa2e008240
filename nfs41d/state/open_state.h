#pragma once

// OpenStateTable: the stateids of OPEN and LOCK (RFC 8881 §8.2, §9) and the
// per-file state they share, for all clients of one server instance.
//
// - A stateid's `other` is 12 bytes: 4 bytes naming this server instance
//   (a stateid from an earlier instance is NFS4ERR_STALE_STATEID) and a
//   64-bit counter that is never reused within the instance. Its seqid
//   starts at 1 and goes up on every change of the state (§8.2.2).
// - Open stateids: one per (client, open owner, file); a repeated OPEN by
//   the same owner upgrades it (access and deny are or-ed), OPEN_DOWNGRADE
//   narrows it, CLOSE ends it. NFSv4.1 has no open-owner seqids.
// - Lock stateids: one per (lock owner, file), tied to the open stateid it
//   was made from (open_to_lock_owner4); its ranges live in the file's
//   LockRanges.
// - FileState (per open inode): the opens (for share reservations, §9.7),
//   the locks, and the attributes writes changed but the database does not
//   have yet (size, mtime, the count of writes: see Overlay()).
// - Stateids are indexed per client, so a client's state goes with it
//   (ReleaseClient, called when the client record is removed: lease expiry,
//   restart, DESTROY_CLIENTID).
//
// Thread safety: every method may be called from any thread; one mutex
// guards the whole table (each call is a few map operations).

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "libnamespace/include/namespace/types.h"
#include "nfs41d/proto/nfs4_prot.h"
#include "nfs41d/state/lock_ranges.h"

namespace nfs41d::state {

using Other = std::array<uint8_t, 12>;

// Special stateids (RFC 8881 §8.2.3).
bool IsAnonymousStateid(const stateid4& s);   // seqid 0, other 0
bool IsReadBypassStateid(const stateid4& s);  // seqid ~0, other all ones
bool IsCurrentStateid(const stateid4& s);     // seqid 1, other 0
bool IsInvalidStateid(const stateid4& s);     // seqid ~0, other 0
bool IsSpecialStateid(const stateid4& s);     // any of the above

// What a stateid names.
struct StateInfo {
  enum class Kind { kOpen, kLock } kind = Kind::kOpen;
  Other other{};
  uint32_t seqid = 0;
  clientid4 client = 0;
  ns::InodeId ino = 0;
  // The open's share access and deny (for a lock stateid: its open's).
  uint32_t access = 0;
  uint32_t deny = 0;
  // Lock stateids: the lock owner and the open stateid it came from.
  uint64_t lock_owner = 0;
  Other open_other{};
};

// What to do with a file whose last open went away.
struct FileRelease {
  ns::InodeId ino = 0;
  // Unlinked while open: release the orphan inode and delete its data.
  bool orphan = false;
  // Writes (or a truncate) the database does not have yet: write size/mtime
  // back. False after a FILE_SYNC4 WRITE already wrote them: the CLOSE that
  // follows costs no transaction.
  bool written = false;
  uint64_t size = 0;
  ns::TimeNs mtime = 0;
};

// The in-memory attributes of an open file that writes changed.
struct FileOverlay {
  uint64_t size = 0;
  ns::TimeNs mtime = 0;  // 0: no write since open or since SETATTR of mtime
  // Writes since the file was opened or since the last write-back that took
  // them (NoteWrittenBack); shown in the change attribute (NfsChange).
  uint64_t writes = 0;
  // The database's change counter right after the last write-back: a
  // GETATTR that read an older row shows this one (see OverlayFileAttrs).
  uint64_t base_change = 0;
  bool dirty = false;  // size/mtime not yet written back
};

// The details NFS4ERR_DENIED carries (LOCK4denied).
struct LockDenied {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool write = false;
  clientid4 client = 0;
  std::string owner;
};

class OpenStateTable {
 public:
  OpenStateTable();
  ~OpenStateTable();
  OpenStateTable(const OpenStateTable&) = delete;
  OpenStateTable& operator=(const OpenStateTable&) = delete;

  // The 4 bytes of `other` that name this instance.
  uint32_t instance() const { return instance_; }

  // Resolves a non-special stateid of `client`: NFS4ERR_STALE_STATEID (an
  // earlier instance), NFS4ERR_BAD_STATEID (unknown, another client's),
  // NFS4ERR_OLD_STATEID (seqid below the current one; a seqid above it is
  // BAD_STATEID; seqid 0 means "the current one", §8.2.2).
  nfsstat4 Find(clientid4 client, const stateid4& sid, StateInfo* out) const;

  // OPEN (§18.16.3, §9.7): the open stateid of (client, owner, ino), new or
  // upgraded. NFS4ERR_SHARE_DENIED if another owner's open denies `access`
  // or holds what `deny` denies. `size` seeds the file's in-memory size
  // when the file was not open.
  nfsstat4 Open(clientid4 client, const std::string& owner, ns::InodeId ino,
                uint32_t access, uint32_t deny, uint64_t size, stateid4* out);
  // OPEN_DOWNGRADE (§18.18.3): NFS4ERR_INVAL unless access/deny are subsets
  // of the current ones (and access is not empty).
  nfsstat4 Downgrade(clientid4 client, const stateid4& sid, uint32_t access,
                     uint32_t deny, stateid4* out);
  // CLOSE (§18.2.3): NFS4ERR_LOCKS_HELD while a lock stateid of this open
  // holds locks. Sets *release when this was the file's last open.
  nfsstat4 Close(clientid4 client, const stateid4& sid,
                 std::optional<FileRelease>* release);

  // True if an open of any client denies `access` (anonymous I/O, §9.1.2).
  bool Denied(ns::InodeId ino, uint32_t access) const;
  bool IsOpen(ns::InodeId ino) const;
  bool AnyOpen() const;
  // The file was unlinked while open: keep it until its last close. False
  // if it is not open (any more): the caller releases it now.
  bool MarkOrphan(ns::InodeId ino);

  // A write of [offset, end) at time `now`: grows the in-memory size. False
  // if the file is not open (the caller writes the attributes itself).
  bool NoteWrite(ns::InodeId ino, uint64_t end, ns::TimeNs now);
  // A truncate to `size`: sets the in-memory size if open.
  void NoteTruncate(ns::InodeId ino, uint64_t size, ns::TimeNs now);
  // SETATTR set the mtime explicitly: forget the writes' mtime (the
  // database's is right until the next write).
  void NoteTimesSet(ns::InodeId ino);
  std::optional<FileOverlay> Overlay(ns::InodeId ino) const;
  // Marks the file clean and returns what to write back, if dirty.
  std::optional<FileOverlay> TakeDirty(ns::InodeId ino);
  // Puts back what TakeDirty returned after a failed write-back.
  void RestoreDirty(ns::InodeId ino);
  // The write-back of what TakeDirty returned (`taken`) committed and left
  // the database's change counter at `change`: those writes are in the
  // counter now, so they leave the overlay's count. A CLOSE with no write
  // since then has nothing to write back (FileRelease::written false).
  void NoteWrittenBack(ns::InodeId ino, const FileOverlay& taken,
                       uint64_t change);
  std::vector<ns::InodeId> DirtyFiles() const;

  // LOCK (§18.10.3) with a new lock owner from an open stateid
  // (open_to_lock_owner4) or an existing lock stateid (exist_lock_owner4).
  // [offset, end] inclusive. NFS4ERR_OPENMODE (a write lock on an open
  // without write access), NFS4ERR_DENIED (*denied filled).
  nfsstat4 LockNew(clientid4 client, const stateid4& open_sid,
                   const std::string& owner, bool write, uint64_t offset,
                   uint64_t end, stateid4* out, LockDenied* denied);
  nfsstat4 LockExisting(clientid4 client, const stateid4& lock_sid,
                        bool write, uint64_t offset, uint64_t end,
                        stateid4* out, LockDenied* denied);
  // LOCKT (§18.11): NFS4_OK or NFS4ERR_DENIED.
  nfsstat4 TestLock(clientid4 client, const std::string& owner,
                    ns::InodeId ino, bool write, uint64_t offset,
                    uint64_t end, LockDenied* denied) const;
  // LOCKU (§18.12).
  nfsstat4 Unlock(clientid4 client, const stateid4& lock_sid, uint64_t offset,
                  uint64_t end, stateid4* out);
  // TEST_STATEID (§18.48) for one stateid.
  nfsstat4 Test(clientid4 client, const stateid4& sid) const;
  // FREE_STATEID (§18.38): frees a lock stateid without locks;
  // NFS4ERR_LOCKS_HELD for an open stateid or one with locks.
  nfsstat4 Free(clientid4 client, const stateid4& sid);

  // Forgets every stateid of `client`; returns the files whose last open
  // went with it.
  std::vector<FileRelease> ReleaseClient(clientid4 client);

  size_t stateid_count() const;

 private:
  struct State;
  struct FileState;
  struct LockOwner {
    clientid4 client = 0;
    std::string owner;
  };

  // REQUIRES: mu_ held.
  Other NewOtherLocked();
  State* FindLocked(clientid4 client, const stateid4& sid, nfsstat4* err);
  // By value: callers pass members of the state being erased.
  void EraseStateLocked(Other other);
  std::optional<FileRelease> DropOpenLocked(Other other);
  nfsstat4 LockLocked(State& lock, bool write, uint64_t offset, uint64_t end,
                      stateid4* out, LockDenied* denied);
  void FillDenied(const LockRange& r, LockDenied* denied) const;
  uint64_t LockOwnerIdLocked(clientid4 client, const std::string& owner,
                             bool create);
  // Forgets a lock owner no lock stateid refers to any more (NFSv4.1 has
  // no RELEASE_LOCKOWNER: owners go with their last stateid).
  void ForgetLockOwnerIfUnusedLocked(uint64_t lock_owner);

  const uint32_t instance_;
  mutable std::mutex mu_;
  uint64_t next_other_ = 1;                                 // mu_
  uint64_t next_lock_owner_ = 1;                            // mu_
  std::map<Other, std::unique_ptr<State>> states_;          // mu_
  std::unordered_map<ns::InodeId, std::unique_ptr<FileState>> files_;  // mu_
  std::map<clientid4, std::set<Other>> by_client_;          // mu_
  std::map<uint64_t, LockOwner> lock_owners_;               // mu_
  std::map<std::pair<clientid4, std::string>, uint64_t> lock_owner_ids_;  // mu_
};

}  // namespace nfs41d::state
