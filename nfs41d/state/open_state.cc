#include "nfs41d/state/open_state.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <random>

namespace nfs41d::state {
namespace {

constexpr uint32_t kAllOnes = 0xffffffffu;

bool OtherIs(const stateid4& s, uint8_t byte) {
  for (int i = 0; i < 12; ++i) {
    if (static_cast<uint8_t>(s.other[i]) != byte) return false;
  }
  return true;
}

Other ToOther(const stateid4& s) {
  Other o;
  std::memcpy(o.data(), s.other, o.size());
  return o;
}

stateid4 ToStateid(const Other& o, uint32_t seqid) {
  stateid4 s{};
  s.seqid = seqid;
  std::memcpy(s.other, o.data(), o.size());
  return s;
}

uint32_t InstanceOf(const Other& o) {
  uint32_t v;
  std::memcpy(&v, o.data(), 4);
  return v;
}

// Unique per server instance, also for two instances started in the same
// second (tests restart the server object).
uint32_t NewInstance() {
  std::random_device rd;
  uint32_t v = rd() ^ static_cast<uint32_t>(
                          std::chrono::steady_clock::now()
                              .time_since_epoch()
                              .count());
  return v == 0 ? 1 : v;  // never all zeros: no clash with special stateids
}

// RFC 8881 §8.2.2: seqids wrap from 0xffffffff to 1, skipping 0.
uint32_t NextSeqid(uint32_t s) { return s == kAllOnes ? 1 : s + 1; }

}  // namespace

bool IsAnonymousStateid(const stateid4& s) {
  return s.seqid == 0 && OtherIs(s, 0);
}
bool IsReadBypassStateid(const stateid4& s) {
  return s.seqid == kAllOnes && OtherIs(s, 0xff);
}
bool IsCurrentStateid(const stateid4& s) {
  return s.seqid == 1 && OtherIs(s, 0);
}
bool IsInvalidStateid(const stateid4& s) {
  return s.seqid == kAllOnes && OtherIs(s, 0);
}
bool IsSpecialStateid(const stateid4& s) {
  return OtherIs(s, 0) || OtherIs(s, 0xff);
}

struct OpenStateTable::State {
  StateInfo info;
  std::string owner;              // open owner (opens)
  std::set<Other> lock_states;    // lock stateids made from this open
};

struct OpenStateTable::FileState {
  std::set<Other> opens;
  std::set<Other> lock_states;
  LockRanges locks;
  FileOverlay ov;
  bool orphan = false;
};

OpenStateTable::OpenStateTable() : instance_(NewInstance()) {}
OpenStateTable::~OpenStateTable() = default;

Other OpenStateTable::NewOtherLocked() {
  Other o{};
  std::memcpy(o.data(), &instance_, 4);
  uint64_t n = next_other_++;
  std::memcpy(o.data() + 4, &n, 8);
  return o;
}

OpenStateTable::State* OpenStateTable::FindLocked(clientid4 client,
                                                  const stateid4& sid,
                                                  nfsstat4* err) {
  if (IsSpecialStateid(sid)) {
    *err = NFS4ERR_BAD_STATEID;
    return nullptr;
  }
  const Other o = ToOther(sid);
  auto it = states_.find(o);
  if (it == states_.end()) {
    *err = InstanceOf(o) != instance_ ? NFS4ERR_STALE_STATEID
                                      : NFS4ERR_BAD_STATEID;
    return nullptr;
  }
  State* s = it->second.get();
  // §8.2.1/§2.10.2.2: a stateid is used only by the client that owns it.
  if (s->info.client != client) {
    *err = NFS4ERR_BAD_STATEID;
    return nullptr;
  }
  if (sid.seqid != 0 && sid.seqid != s->info.seqid) {
    // §8.2.2: older is OLD_STATEID; one never handed out is BAD_STATEID.
    // Seqids only grow (wrap after 2^32-1 changes is not a practical case).
    *err = sid.seqid < s->info.seqid ? NFS4ERR_OLD_STATEID
                                     : NFS4ERR_BAD_STATEID;
    return nullptr;
  }
  *err = NFS4_OK;
  return s;
}

nfsstat4 OpenStateTable::Find(clientid4 client, const stateid4& sid,
                              StateInfo* out) const {
  std::lock_guard lock(mu_);
  nfsstat4 err;
  State* s = const_cast<OpenStateTable*>(this)->FindLocked(client, sid, &err);
  if (!s) return err;
  *out = s->info;
  if (s->info.kind == StateInfo::Kind::kLock) {
    auto o = states_.find(s->info.open_other);
    if (o != states_.end()) {
      out->access = o->second->info.access;
      out->deny = o->second->info.deny;
    }
  }
  return NFS4_OK;
}

nfsstat4 OpenStateTable::Open(clientid4 client, const std::string& owner,
                              ns::InodeId ino, uint32_t access, uint32_t deny,
                              uint64_t size, stateid4* out) {
  std::lock_guard lock(mu_);
  std::unique_ptr<FileState>& fslot = files_[ino];
  const bool new_file = !fslot;
  if (new_file) {
    fslot = std::make_unique<FileState>();
    fslot->ov.size = size;
  }
  FileState& f = *fslot;
  State* mine = nullptr;
  // §9.7: share reservations of every other open owner, any client.
  for (const Other& o : f.opens) {
    State& s = *states_.at(o);
    if (s.info.client == client && s.owner == owner) {
      mine = &s;
      continue;
    }
    if ((access & s.info.deny) || (deny & s.info.access)) {
      if (new_file) files_.erase(ino);
      return NFS4ERR_SHARE_DENIED;
    }
  }
  if (mine) {
    // §18.16.3: a repeated OPEN by the same owner upgrades its stateid.
    mine->info.access |= access;
    mine->info.deny |= deny;
    mine->info.seqid = NextSeqid(mine->info.seqid);
    *out = ToStateid(mine->info.other, mine->info.seqid);
    return NFS4_OK;
  }
  auto s = std::make_unique<State>();
  s->info.kind = StateInfo::Kind::kOpen;
  s->info.other = NewOtherLocked();
  s->info.seqid = 1;
  s->info.client = client;
  s->info.ino = ino;
  s->info.access = access;
  s->info.deny = deny;
  s->owner = owner;
  f.opens.insert(s->info.other);
  by_client_[client].insert(s->info.other);
  *out = ToStateid(s->info.other, s->info.seqid);
  states_[s->info.other] = std::move(s);
  return NFS4_OK;
}

nfsstat4 OpenStateTable::Downgrade(clientid4 client, const stateid4& sid,
                                   uint32_t access, uint32_t deny,
                                   stateid4* out) {
  std::lock_guard lock(mu_);
  nfsstat4 err;
  State* s = FindLocked(client, sid, &err);
  if (!s) return err;
  if (s->info.kind != StateInfo::Kind::kOpen) return NFS4ERR_BAD_STATEID;
  if (access == 0 || (access & ~s->info.access) || (deny & ~s->info.deny)) {
    return NFS4ERR_INVAL;
  }
  s->info.access = access;
  s->info.deny = deny;
  s->info.seqid = NextSeqid(s->info.seqid);
  *out = ToStateid(s->info.other, s->info.seqid);
  return NFS4_OK;
}

void OpenStateTable::EraseStateLocked(Other other) {
  auto it = states_.find(other);
  if (it == states_.end()) return;
  auto c = by_client_.find(it->second->info.client);
  if (c != by_client_.end()) {
    c->second.erase(other);
    if (c->second.empty()) by_client_.erase(c);
  }
  states_.erase(it);
}

// Removes an open stateid and the lock stateids made from it.
std::optional<FileRelease> OpenStateTable::DropOpenLocked(Other other) {
  auto it = states_.find(other);
  if (it == states_.end()) return std::nullopt;
  State& s = *it->second;
  const ns::InodeId ino = s.info.ino;
  auto fit = files_.find(ino);
  std::set<Other> locks = s.lock_states;
  std::vector<uint64_t> owners;
  for (const Other& l : locks) {
    auto ls = states_.find(l);
    if (ls == states_.end()) continue;
    owners.push_back(ls->second->info.lock_owner);
    if (fit != files_.end()) {
      fit->second->locks.RemoveOwner(ls->second->info.lock_owner);
      fit->second->lock_states.erase(l);
    }
    EraseStateLocked(l);
  }
  for (uint64_t lo : owners) ForgetLockOwnerIfUnusedLocked(lo);
  EraseStateLocked(other);
  if (fit == files_.end()) return std::nullopt;
  FileState& f = *fit->second;
  f.opens.erase(other);
  if (!f.opens.empty()) return std::nullopt;
  FileRelease r;
  r.ino = ino;
  r.orphan = f.orphan;
  r.written = f.ov.writes > 0;
  r.size = f.ov.size;
  r.mtime = f.ov.mtime;
  files_.erase(fit);
  return r;
}

nfsstat4 OpenStateTable::Close(clientid4 client, const stateid4& sid,
                               std::optional<FileRelease>* release) {
  std::lock_guard lock(mu_);
  nfsstat4 err;
  State* s = FindLocked(client, sid, &err);
  if (!s) return err;
  if (s->info.kind != StateInfo::Kind::kOpen) return NFS4ERR_BAD_STATEID;
  auto fit = files_.find(s->info.ino);
  if (fit != files_.end()) {
    for (const Other& l : s->lock_states) {
      auto ls = states_.find(l);
      if (ls != states_.end() &&
          fit->second->locks.HasOwner(ls->second->info.lock_owner)) {
        return NFS4ERR_LOCKS_HELD;
      }
    }
  }
  *release = DropOpenLocked(s->info.other);
  return NFS4_OK;
}

bool OpenStateTable::Denied(ns::InodeId ino, uint32_t access) const {
  std::lock_guard lock(mu_);
  auto it = files_.find(ino);
  if (it == files_.end()) return false;
  for (const Other& o : it->second->opens) {
    if (states_.at(o)->info.deny & access) return true;
  }
  return false;
}

bool OpenStateTable::IsOpen(ns::InodeId ino) const {
  std::lock_guard lock(mu_);
  return files_.count(ino) != 0;
}

bool OpenStateTable::AnyOpen() const {
  std::lock_guard lock(mu_);
  return !files_.empty();
}

bool OpenStateTable::MarkOrphan(ns::InodeId ino) {
  std::lock_guard lock(mu_);
  auto it = files_.find(ino);
  if (it == files_.end()) return false;
  it->second->orphan = true;
  return true;
}

bool OpenStateTable::NoteWrite(ns::InodeId ino, uint64_t end,
                               ns::TimeNs now) {
  std::lock_guard lock(mu_);
  auto it = files_.find(ino);
  if (it == files_.end()) return false;
  FileOverlay& ov = it->second->ov;
  ov.size = std::max(ov.size, end);
  ov.mtime = std::max(ov.mtime, now);
  ++ov.writes;
  ov.dirty = true;
  return true;
}

void OpenStateTable::NoteTruncate(ns::InodeId ino, uint64_t size,
                                  ns::TimeNs now) {
  std::lock_guard lock(mu_);
  auto it = files_.find(ino);
  if (it == files_.end()) return;
  FileOverlay& ov = it->second->ov;
  ov.size = size;
  ov.mtime = std::max(ov.mtime, now);
  ++ov.writes;
}

void OpenStateTable::NoteTimesSet(ns::InodeId ino) {
  std::lock_guard lock(mu_);
  auto it = files_.find(ino);
  if (it != files_.end()) it->second->ov.mtime = 0;
}

std::optional<FileOverlay> OpenStateTable::Overlay(ns::InodeId ino) const {
  std::lock_guard lock(mu_);
  auto it = files_.find(ino);
  if (it == files_.end()) return std::nullopt;
  return it->second->ov;
}

std::optional<FileOverlay> OpenStateTable::TakeDirty(ns::InodeId ino) {
  std::lock_guard lock(mu_);
  auto it = files_.find(ino);
  if (it == files_.end() || !it->second->ov.dirty) return std::nullopt;
  it->second->ov.dirty = false;
  return it->second->ov;
}

void OpenStateTable::RestoreDirty(ns::InodeId ino) {
  std::lock_guard lock(mu_);
  auto it = files_.find(ino);
  if (it != files_.end()) it->second->ov.dirty = true;
}

void OpenStateTable::NoteWrittenBack(ns::InodeId ino,
                                     const FileOverlay& taken,
                                     uint64_t change) {
  std::lock_guard lock(mu_);
  auto it = files_.find(ino);
  if (it == files_.end()) return;
  FileOverlay& ov = it->second->ov;
  // Writes that came after TakeDirty stay counted (and made it dirty).
  ov.writes -= std::min(ov.writes, taken.writes);
  ov.base_change = std::max(ov.base_change, change);
}

std::vector<ns::InodeId> OpenStateTable::DirtyFiles() const {
  std::lock_guard lock(mu_);
  std::vector<ns::InodeId> out;
  for (const auto& [ino, f] : files_) {
    if (f->ov.dirty) out.push_back(ino);
  }
  return out;
}

// ------------------------------------------------------------------ locks

uint64_t OpenStateTable::LockOwnerIdLocked(clientid4 client,
                                           const std::string& owner,
                                           bool create) {
  auto key = std::make_pair(client, owner);
  auto it = lock_owner_ids_.find(key);
  if (it != lock_owner_ids_.end()) return it->second;
  if (!create) return 0;
  uint64_t id = next_lock_owner_++;
  lock_owner_ids_[key] = id;
  lock_owners_[id] = LockOwner{client, owner};
  return id;
}

void OpenStateTable::FillDenied(const LockRange& r,
                                LockDenied* denied) const {
  denied->offset = r.start;
  denied->length = r.end == std::numeric_limits<uint64_t>::max()
                       ? std::numeric_limits<uint64_t>::max()
                       : r.end - r.start + 1;
  denied->write = r.write;
  auto it = lock_owners_.find(r.owner);
  if (it != lock_owners_.end()) {
    denied->client = it->second.client;
    denied->owner = it->second.owner;
  }
}

nfsstat4 OpenStateTable::LockLocked(State& ls, bool write, uint64_t offset,
                                    uint64_t end, stateid4* out,
                                    LockDenied* denied) {
  auto fit = files_.find(ls.info.ino);
  if (fit == files_.end()) return NFS4ERR_BAD_STATEID;
  FileState& f = *fit->second;
  if (auto c = f.locks.Conflict(ls.info.lock_owner, write, offset, end)) {
    FillDenied(*c, denied);
    return NFS4ERR_DENIED;
  }
  f.locks.Lock(ls.info.lock_owner, write, offset, end);
  ls.info.seqid = NextSeqid(ls.info.seqid);
  *out = ToStateid(ls.info.other, ls.info.seqid);
  return NFS4_OK;
}

nfsstat4 OpenStateTable::LockNew(clientid4 client, const stateid4& open_sid,
                                 const std::string& owner, bool write,
                                 uint64_t offset, uint64_t end, stateid4* out,
                                 LockDenied* denied) {
  std::lock_guard lock(mu_);
  nfsstat4 err;
  State* open = FindLocked(client, open_sid, &err);
  if (!open) return err;
  if (open->info.kind != StateInfo::Kind::kOpen) return NFS4ERR_BAD_STATEID;
  // §18.10.4 / §9.1.2: a write lock needs an open for writing.
  if (write && !(open->info.access & OPEN4_SHARE_ACCESS_WRITE)) {
    return NFS4ERR_OPENMODE;
  }
  auto fit = files_.find(open->info.ino);
  if (fit == files_.end()) return NFS4ERR_BAD_STATEID;
  FileState& f = *fit->second;
  // Check before creating anything, so a denied LOCK leaves no state.
  const uint64_t existing = LockOwnerIdLocked(client, owner, false);
  if (auto c = f.locks.Conflict(existing ? existing : ~uint64_t{0}, write,
                                offset, end)) {
    FillDenied(*c, denied);
    return NFS4ERR_DENIED;
  }
  const uint64_t lo = LockOwnerIdLocked(client, owner, true);
  // The lock owner may already have a lock stateid for this file (another
  // open_to_lock_owner4 for the same owner): use it.
  State* ls = nullptr;
  for (const Other& o : f.lock_states) {
    State& s = *states_.at(o);
    if (s.info.lock_owner == lo) ls = &s;
  }
  if (!ls) {
    auto s = std::make_unique<State>();
    s->info.kind = StateInfo::Kind::kLock;
    s->info.other = NewOtherLocked();
    s->info.seqid = 0;  // LockLocked makes it 1
    s->info.client = client;
    s->info.ino = open->info.ino;
    s->info.lock_owner = lo;
    s->info.open_other = open->info.other;
    ls = s.get();
    open->lock_states.insert(s->info.other);
    f.lock_states.insert(s->info.other);
    by_client_[client].insert(s->info.other);
    states_[s->info.other] = std::move(s);
  }
  return LockLocked(*ls, write, offset, end, out, denied);
}

nfsstat4 OpenStateTable::LockExisting(clientid4 client,
                                      const stateid4& lock_sid, bool write,
                                      uint64_t offset, uint64_t end,
                                      stateid4* out, LockDenied* denied) {
  std::lock_guard lock(mu_);
  nfsstat4 err;
  State* ls = FindLocked(client, lock_sid, &err);
  if (!ls) return err;
  if (ls->info.kind != StateInfo::Kind::kLock) return NFS4ERR_BAD_STATEID;
  auto open = states_.find(ls->info.open_other);
  if (write && open != states_.end() &&
      !(open->second->info.access & OPEN4_SHARE_ACCESS_WRITE)) {
    return NFS4ERR_OPENMODE;
  }
  return LockLocked(*ls, write, offset, end, out, denied);
}

nfsstat4 OpenStateTable::TestLock(clientid4 client, const std::string& owner,
                                  ns::InodeId ino, bool write,
                                  uint64_t offset, uint64_t end,
                                  LockDenied* denied) const {
  std::lock_guard lock(mu_);
  auto fit = files_.find(ino);
  if (fit == files_.end()) return NFS4_OK;
  auto id = lock_owner_ids_.find(std::make_pair(client, owner));
  const uint64_t lo = id == lock_owner_ids_.end() ? ~uint64_t{0} : id->second;
  if (auto c = fit->second->locks.Conflict(lo, write, offset, end)) {
    FillDenied(*c, denied);
    return NFS4ERR_DENIED;
  }
  return NFS4_OK;
}

nfsstat4 OpenStateTable::Unlock(clientid4 client, const stateid4& lock_sid,
                                uint64_t offset, uint64_t end,
                                stateid4* out) {
  std::lock_guard lock(mu_);
  nfsstat4 err;
  State* ls = FindLocked(client, lock_sid, &err);
  if (!ls) return err;
  if (ls->info.kind != StateInfo::Kind::kLock) return NFS4ERR_BAD_STATEID;
  auto fit = files_.find(ls->info.ino);
  if (fit != files_.end()) {
    fit->second->locks.Unlock(ls->info.lock_owner, offset, end);
  }
  ls->info.seqid = NextSeqid(ls->info.seqid);
  *out = ToStateid(ls->info.other, ls->info.seqid);
  return NFS4_OK;
}

void OpenStateTable::ForgetLockOwnerIfUnusedLocked(uint64_t lock_owner) {
  for (const auto& [o, s] : states_) {
    if (s->info.kind == StateInfo::Kind::kLock &&
        s->info.lock_owner == lock_owner) {
      return;
    }
  }
  auto it = lock_owners_.find(lock_owner);
  if (it == lock_owners_.end()) return;
  lock_owner_ids_.erase(std::make_pair(it->second.client, it->second.owner));
  lock_owners_.erase(it);
}

// ---------------------------------------------------------- TEST / FREE

nfsstat4 OpenStateTable::Test(clientid4 client, const stateid4& sid) const {
  std::lock_guard lock(mu_);
  nfsstat4 err;
  const_cast<OpenStateTable*>(this)->FindLocked(client, sid, &err);
  return err;
}

nfsstat4 OpenStateTable::Free(clientid4 client, const stateid4& sid) {
  std::lock_guard lock(mu_);
  nfsstat4 err;
  State* s = FindLocked(client, sid, &err);
  if (!s) return err;
  // §18.38.3: open stateids are ended by CLOSE; a lock stateid with locks
  // by LOCKU first.
  if (s->info.kind == StateInfo::Kind::kOpen) return NFS4ERR_LOCKS_HELD;
  auto f = files_.find(s->info.ino);
  if (f != files_.end() && f->second->locks.HasOwner(s->info.lock_owner)) {
    return NFS4ERR_LOCKS_HELD;
  }
  const Other o = s->info.other;
  const uint64_t lo = s->info.lock_owner;
  auto open = states_.find(s->info.open_other);
  if (open != states_.end()) open->second->lock_states.erase(o);
  if (f != files_.end()) f->second->lock_states.erase(o);
  EraseStateLocked(o);
  ForgetLockOwnerIfUnusedLocked(lo);
  return NFS4_OK;
}

std::vector<FileRelease> OpenStateTable::ReleaseClient(clientid4 client) {
  std::lock_guard lock(mu_);
  std::vector<FileRelease> out;
  auto c = by_client_.find(client);
  if (c != by_client_.end()) {
    std::vector<Other> opens;
    for (const Other& o : c->second) {
      auto s = states_.find(o);
      if (s != states_.end() && s->second->info.kind == StateInfo::Kind::kOpen) {
        opens.push_back(o);
      }
    }
    for (const Other& o : opens) {
      if (auto r = DropOpenLocked(o)) out.push_back(*r);
    }
    // Lock stateids whose open is gone already went with it; anything left
    // (none expected) goes now.
    c = by_client_.find(client);
    if (c != by_client_.end()) {
      std::set<Other> rest = c->second;
      for (const Other& o : rest) EraseStateLocked(o);
    }
  }
  for (auto it = lock_owner_ids_.begin(); it != lock_owner_ids_.end();) {
    if (it->first.first == client) {
      lock_owners_.erase(it->second);
      it = lock_owner_ids_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

size_t OpenStateTable::stateid_count() const {
  std::lock_guard lock(mu_);
  return states_.size();
}

}  // namespace nfs41d::state
