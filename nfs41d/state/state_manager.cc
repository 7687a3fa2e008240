#include "nfs41d/state/state_manager.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <utility>

#include "rpc/log.h"

namespace nfs41d::state {
namespace {

SessionId ToSessionId(const sessionid4 id) {
  SessionId s;
  std::memcpy(s.data(), id, s.size());
  return s;
}

// Flags only a server sets (RFC 8881 §18.35.3): a client sending one is
// refused with NFS4ERR_INVAL. Other unknown bits are ignored.
constexpr uint32_t kServerOnlyFlags = EXCHGID4_FLAG_CONFIRMED_R;

}  // namespace

// ---------------------------------------------------------------- Session

Session::Session(SessionId id, std::shared_ptr<Client> client,
                 channel_attrs4 fore, channel_attrs4 back, uint32_t cb_program,
                 uint32_t flags)
    : id_(id),
      client_(std::move(client)),
      fore_(fore),
      back_(back),
      cb_program_(cb_program),
      flags_(flags),
      slots_(fore.ca_maxrequests) {
  (void)cb_program_;
  (void)flags_;
}

// RFC 8881 §2.10.6.1 and §18.46.3: a new request carries the slot's sequence
// id plus one; the same sequence id is a retry, answered from the cache; any
// other is misordered.
Session::Begin Session::BeginRequest(uint32_t slot_id, uint32_t seqid,
                                     uint64_t request_hash,
                                     std::vector<uint8_t>* replay,
                                     nfsstat4* status) {
  std::lock_guard lock(mu_);
  if (slot_id >= slots_.size()) {
    *status = NFS4ERR_BADSLOT;
    return Begin::kError;
  }
  Slot& slot = slots_[slot_id];
  if (seqid == slot.seqid + 1) {
    if (slot.in_use) {  // cannot happen with a well-behaved client
      *status = NFS4ERR_DELAY;
      return Begin::kError;
    }
    slot.seqid = seqid;
    slot.in_use = true;
    slot.has_reply = false;
    slot.reply.clear();
    slot.request_hash = request_hash;
    return Begin::kNew;
  }
  if (seqid == slot.seqid && slot.seqid != 0) {
    if (slot.in_use) {  // the original is still being served
      *status = NFS4ERR_DELAY;
      return Begin::kError;
    }
    if (!slot.has_reply) {
      *status = NFS4ERR_SEQ_MISORDERED;
      return Begin::kError;
    }
    // §2.10.6.1.3: a retry that is not the same request.
    if (slot.request_hash != request_hash) {
      *status = NFS4ERR_SEQ_FALSE_RETRY;
      return Begin::kError;
    }
    *replay = slot.reply;
    return Begin::kReplay;
  }
  *status = NFS4ERR_SEQ_MISORDERED;
  return Begin::kError;
}

void Session::EndRequest(uint32_t slot_id, std::vector<uint8_t> reply) {
  std::lock_guard lock(mu_);
  if (slot_id >= slots_.size()) return;
  Slot& slot = slots_[slot_id];
  slot.in_use = false;
  slot.has_reply = true;
  slot.reply = std::move(reply);
}

bool Session::AnySlotInUse() const {
  std::lock_guard lock(mu_);
  return std::any_of(slots_.begin(), slots_.end(),
                     [](const Slot& s) { return s.in_use; });
}

void Session::BindConnection(uint64_t conn_id) {
  std::lock_guard lock(mu_);
  connections_.insert(conn_id);
}
void Session::UnbindConnection(uint64_t conn_id) {
  std::lock_guard lock(mu_);
  connections_.erase(conn_id);
}
bool Session::IsBound(uint64_t conn_id) const {
  std::lock_guard lock(mu_);
  return connections_.count(conn_id) != 0;
}

// ----------------------------------------------------------- StateManager

StateManager::StateManager(StateOptions options)
    : options_(std::move(options)),
      boot_(static_cast<uint64_t>(std::time(nullptr)) & 0xffffffffu) {}

StateManager::~StateManager() { StopReaper(); }

std::shared_ptr<Client> StateManager::NewClientLocked(
    const EXCHANGE_ID4args& args, const std::string& principal) {
  auto c = std::make_shared<Client>();
  c->id_ = (boot_ << 32) | next_client_++;
  c->owner_.assign(args.eia_clientowner.co_ownerid.co_ownerid_val,
                   args.eia_clientowner.co_ownerid.co_ownerid_len);
  std::memcpy(c->verifier_.data(), args.eia_clientowner.co_verifier,
              NFS4_VERIFIER_SIZE);
  c->principal_ = principal;
  c->flags_ = args.eia_flags;
  c->Renew();
  clients_[c->id_] = c;
  by_owner_.emplace(c->owner_, c);
  return c;
}

void StateManager::RemoveClientLocked(std::shared_ptr<Client> c) {
  for (FileRelease& r : opens_.ReleaseClient(c->id_)) {
    released_files_.push_back(r);
  }
  for (const SessionId& sid : c->sessions_) sessions_.erase(sid);
  c->sessions_.clear();
  clients_.erase(c->id_);
  auto [b, e] = by_owner_.equal_range(c->owner_);
  for (auto it = b; it != e; ++it) {
    if (it->second == c) {
      by_owner_.erase(it);
      break;
    }
  }
}

// RFC 8881 §18.35.5: the cases of an EXCHANGE_ID against existing records.
nfsstat4 StateManager::ExchangeId(const EXCHANGE_ID4args& args,
                                  const std::string& principal,
                                  ExchangeIdResult* out) {
  if (args.eia_flags & kServerOnlyFlags) return NFS4ERR_INVAL;
  if (args.eia_clientowner.co_ownerid.co_ownerid_len == 0) {
    return NFS4ERR_INVAL;
  }
  const bool update = args.eia_flags & EXCHGID4_FLAG_UPD_CONFIRMED_REC_A;
  std::string owner(args.eia_clientowner.co_ownerid.co_ownerid_val,
                    args.eia_clientowner.co_ownerid.co_ownerid_len);
  std::lock_guard lock(mu_);
  std::shared_ptr<Client> confirmed, unconfirmed;
  auto [b, e] = by_owner_.equal_range(owner);
  for (auto it = b; it != e; ++it) {
    (it->second->confirmed_ ? confirmed : unconfirmed) = it->second;
  }
  auto same_verifier = [&](const Client& c) {
    return std::memcmp(c.verifier_.data(), args.eia_clientowner.co_verifier,
                       NFS4_VERIFIER_SIZE) == 0;
  };
  std::shared_ptr<Client> result;
  if (update) {
    if (!confirmed) return NFS4ERR_NOENT;                         // case 7
    if (confirmed->principal_ != principal) return NFS4ERR_PERM;  // case 9
    if (!same_verifier(*confirmed)) return NFS4ERR_NOT_SAME;      // case 8
    confirmed->flags_ = args.eia_flags;                           // case 6
    result = confirmed;
  } else if (confirmed) {
    if (confirmed->principal_ != principal) {
      // Case 3, client collision: the owner is in use by another
      // principal. Refuse while that client holds a live lease; once it
      // lapsed the old record is as good as gone (treated as case 1).
      bool live = Clock::now() - confirmed->renewed() <
                  std::chrono::seconds(options_.lease_seconds);
      if (live) return NFS4ERR_CLID_INUSE;
      RemoveClientLocked(confirmed);
      if (unconfirmed) RemoveClientLocked(unconfirmed);
      result = NewClientLocked(args, principal);
    } else if (same_verifier(*confirmed)) {
      result = confirmed;  // case 2: non-update on an existing client id
    } else {
      // Case 5, client restart: a new unconfirmed record; the old one goes
      // when CREATE_SESSION confirms the new.
      if (unconfirmed) RemoveClientLocked(unconfirmed);
      result = NewClientLocked(args, principal);
      rpc::log::Info("client {:#x} restarted (new client id {:#x})",
                     confirmed->id_, result->id_);
    }
  } else {
    // Case 1 (new owner) or case 4 (only an unconfirmed record: replace it).
    if (unconfirmed) RemoveClientLocked(unconfirmed);
    result = NewClientLocked(args, principal);
  }
  out->clientid = result->id_;
  out->sequenceid = result->cs_seq_;
  out->flags = (result->confirmed_ ? EXCHGID4_FLAG_CONFIRMED_R : 0) |
               EXCHGID4_FLAG_USE_NON_PNFS;
  return NFS4_OK;
}

namespace {
channel_attrs4 Negotiate(const channel_attrs4& asked, uint32_t max_req,
                         uint32_t max_resp, uint32_t max_cached,
                         uint32_t max_ops, uint32_t max_slots) {
  channel_attrs4 a{};
  a.ca_headerpadsize = 0;
  a.ca_maxrequestsize = std::min(asked.ca_maxrequestsize, max_req);
  a.ca_maxresponsesize = std::min(asked.ca_maxresponsesize, max_resp);
  a.ca_maxresponsesize_cached =
      std::min(asked.ca_maxresponsesize_cached, max_cached);
  a.ca_maxoperations = std::min(asked.ca_maxoperations, max_ops);
  a.ca_maxrequests = std::max(1u, std::min(asked.ca_maxrequests, max_slots));
  a.ca_rdma_ird.ca_rdma_ird_len = 0;
  a.ca_rdma_ird.ca_rdma_ird_val = nullptr;
  return a;
}
}  // namespace

// RFC 8881 §18.36.4.
nfsstat4 StateManager::CreateSession(const CREATE_SESSION4args& args,
                                     const std::string& principal,
                                     uint64_t conn_id,
                                     CREATE_SESSION4resok* out) {
  std::lock_guard lock(mu_);
  auto it = clients_.find(args.csa_clientid);
  if (it == clients_.end()) return NFS4ERR_STALE_CLIENTID;
  std::shared_ptr<Client> c = it->second;
  if (c->principal_ != principal) return NFS4ERR_CLID_INUSE;
  // The create-session replay cache: one entry per client record.
  if (c->cs_has_reply_ && args.csa_sequence + 1 == c->cs_seq_) {
    if (c->cs_status_ != NFS4_OK) return c->cs_status_;
    *out = c->cs_reply_;
    return NFS4_OK;
  }
  if (args.csa_sequence != c->cs_seq_) return NFS4ERR_SEQ_MISORDERED;

  auto finish = [&](nfsstat4 st) {
    c->cs_seq_++;
    c->cs_has_reply_ = true;
    c->cs_status_ = st;
    if (st == NFS4_OK) c->cs_reply_ = *out;
    return st;
  };
  const channel_attrs4& fa = args.csa_fore_chan_attrs;
  if (fa.ca_rdma_ird.ca_rdma_ird_len > 0 ||
      (args.csa_flags & CREATE_SESSION4_FLAG_CONN_RDMA)) {
    return finish(NFS4ERR_INVAL);
  }
  // Too small to carry a SEQUENCE and a reply header: refuse.
  if (fa.ca_maxrequestsize < 128 || fa.ca_maxresponsesize < 128 ||
      fa.ca_maxoperations < 1) {
    return finish(NFS4ERR_TOOSMALL);
  }
  if (!c->confirmed_) {
    // Confirming a record replaces any older confirmed one of the same
    // owner (a client restart, §18.35.5 case 5): its state is gone.
    auto [b, e] = by_owner_.equal_range(c->owner_);
    std::vector<std::shared_ptr<Client>> old;
    for (auto o = b; o != e; ++o) {
      if (o->second != c && o->second->confirmed_) old.push_back(o->second);
    }
    for (auto& o : old) RemoveClientLocked(o);
    c->confirmed_ = true;
  }
  channel_attrs4 fore =
      Negotiate(fa, options_.max_request_size, options_.max_response_size,
                options_.max_response_size_cached, options_.max_operations,
                options_.max_slots);
  channel_attrs4 back =
      Negotiate(args.csa_back_chan_attrs, 64u << 10, 64u << 10, 0, 8, 16);
  SessionId sid{};
  uint64_t n = next_session_++;
  std::memcpy(sid.data(), &c->id_, 8);
  std::memcpy(sid.data() + 8, &n, 8);
  // No persistent reply cache, no RDMA; the backchannel is not offered yet.
  uint32_t flags = 0;
  auto session = std::make_shared<Session>(sid, c, fore, back,
                                           args.csa_cb_program, flags);
  session->BindConnection(conn_id);
  sessions_[sid] = session;
  c->sessions_.insert(sid);
  c->Renew();
  std::memcpy(out->csr_sessionid, sid.data(), sid.size());
  out->csr_sequence = args.csa_sequence;
  out->csr_flags = flags;
  out->csr_fore_chan_attrs = fore;
  out->csr_back_chan_attrs = back;
  return finish(NFS4_OK);
}

nfsstat4 StateManager::FindSession(const sessionid4 id,
                                   std::shared_ptr<Session>* out) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(ToSessionId(id));
  if (it == sessions_.end()) return NFS4ERR_BADSESSION;
  *out = it->second;
  return NFS4_OK;
}

nfsstat4 StateManager::DestroySession(const sessionid4 id) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(ToSessionId(id));
  if (it == sessions_.end()) return NFS4ERR_BADSESSION;
  it->second->client()->sessions_.erase(it->first);
  sessions_.erase(it);
  return NFS4_OK;
}

nfsstat4 StateManager::DestroyClientId(clientid4 id) {
  std::lock_guard lock(mu_);
  auto it = clients_.find(id);
  if (it == clients_.end()) return NFS4ERR_STALE_CLIENTID;
  // §18.50.3: a client id with sessions (or state) is busy.
  if (!it->second->sessions_.empty()) return NFS4ERR_CLIENTID_BUSY;
  RemoveClientLocked(it->second);
  return NFS4_OK;
}

nfsstat4 StateManager::BindConnection(const sessionid4 id, uint64_t conn_id) {
  std::shared_ptr<Session> s;
  if (nfsstat4 st = FindSession(id, &s); st != NFS4_OK) return st;
  s->BindConnection(conn_id);
  s->client()->Renew();
  return NFS4_OK;
}

void StateManager::ConnectionClosed(uint64_t conn_id) {
  std::lock_guard lock(mu_);
  for (auto& [id, s] : sessions_) s->UnbindConnection(conn_id);
}

size_t StateManager::ReapExpired(Clock::time_point now) {
  std::lock_guard lock(mu_);
  const auto lease = std::chrono::seconds(options_.lease_seconds);
  std::vector<std::shared_ptr<Client>> dead;
  for (auto& [id, c] : clients_) {
    if (now - c->renewed() <= lease) continue;
    bool busy = false;
    for (const SessionId& sid : c->sessions_) {
      auto s = sessions_.find(sid);
      if (s != sessions_.end() && s->second->AnySlotInUse()) busy = true;
    }
    if (!busy) dead.push_back(c);
  }
  for (auto& c : dead) {
    rpc::log::Info("client {:#x} lease expired: state removed", c->id_);
    RemoveClientLocked(c);
  }
  return dead.size();
}

void StateManager::StartReaper() {
  std::lock_guard lock(reaper_mu_);
  if (reaper_.joinable()) return;
  reaper_stop_ = false;
  reaper_ = std::thread([this] {
    std::unique_lock lock(reaper_mu_);
    while (!reaper_stop_) {
      reaper_cv_.wait_for(lock, options_.reap_interval);
      if (reaper_stop_) break;
      lock.unlock();
      ReapExpired(Clock::now());
      lock.lock();
    }
  });
}

void StateManager::StopReaper() {
  {
    std::lock_guard lock(reaper_mu_);
    reaper_stop_ = true;
  }
  reaper_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
}

std::vector<FileRelease> StateManager::TakeReleasedFiles() {
  std::lock_guard lock(mu_);
  return std::exchange(released_files_, {});
}

size_t StateManager::client_count() const {
  std::lock_guard lock(mu_);
  return clients_.size();
}
size_t StateManager::session_count() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

}  // namespace nfs41d::state
