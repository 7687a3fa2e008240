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
      flags_(flags),
      slots_(fore.ca_maxrequests),
      cb_program_(cb_program),
      back_slots_(std::max(1u, back.ca_maxrequests)) {}

// RFC 8881 §2.10.6.1 and §18.46.3: a new request carries the slot's sequence
// id plus one; the same sequence id is a retry, answered from the cache; any
// other is misordered.
Session::Begin Session::BeginRequest(uint32_t slot_id, uint32_t seqid,
                                     uint64_t request_hash,
                                     std::vector<uint8_t>* replay,
                                     nfsstat4* status, uint64_t bind_conn) {
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
    if (bind_conn != 0) connections_.insert(bind_conn);
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

void Session::EndRequest(uint32_t slot_id, std::span<const uint8_t> reply) {
  std::lock_guard lock(mu_);
  if (slot_id >= slots_.size()) return;
  Slot& slot = slots_[slot_id];
  slot.in_use = false;
  slot.has_reply = true;
  slot.reply.assign(reply.begin(), reply.end());
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

Session::CbPath Session::cb_path() const {
  std::lock_guard lock(mu_);
  return cb_path_;
}

void Session::SetCbPath(CbPath p) {
  std::lock_guard lock(mu_);
  cb_path_ = p;
}

void Session::BindBackChannel(const std::shared_ptr<rpc::Connection>& conn) {
  std::lock_guard lock(mu_);
  for (auto it = back_conns_.begin(); it != back_conns_.end();) {
    auto c = it->lock();
    if (!c || c == conn || !c->IsOpen()) {
      it = back_conns_.erase(it);
    } else {
      ++it;
    }
  }
  back_conns_.push_back(conn);
  cb_path_ = CbPath::kUnknown;
}

std::shared_ptr<rpc::Connection> Session::BackConnection() const {
  std::lock_guard lock(mu_);
  // Newest first: a client that bound a new connection wants it used.
  for (auto it = back_conns_.rbegin(); it != back_conns_.rend(); ++it) {
    auto c = it->lock();
    if (c && c->IsOpen()) return c;
  }
  return nullptr;
}

bool Session::CallbackPathWorks() const {
  std::lock_guard lock(mu_);
  if (cb_path_ == CbPath::kDown) return false;
  // Lock order session -> connection, as in BackConnection.
  for (auto it = back_conns_.rbegin(); it != back_conns_.rend(); ++it) {
    std::shared_ptr<rpc::Connection> c = it->lock();
    if (c && c->IsOpen()) return true;
  }
  return false;
}

void Session::SetCallbackProgram(uint32_t program, rpc::Credential cred) {
  std::lock_guard lock(mu_);
  cb_program_ = program;
  cb_cred_ = std::move(cred);
}

uint32_t Session::cb_program() const {
  std::lock_guard lock(mu_);
  return cb_program_;
}

rpc::Credential Session::cb_credential() const {
  std::lock_guard lock(mu_);
  return cb_cred_;
}

bool Session::BeginCallback(uint32_t* slot, uint32_t* seqid,
                            std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  auto free_slot = [&] {
    for (uint32_t i = 0; i < back_slots_.size(); ++i) {
      if (!back_slots_[i].in_use) {
        *slot = i;
        return true;
      }
    }
    return false;
  };
  if (!back_slot_freed_.wait_for(lock, wait, free_slot)) return false;
  back_slots_[*slot].in_use = true;
  *seqid = back_slots_[*slot].seqid + 1;
  return true;
}

void Session::EndCallback(uint32_t slot, bool sent) {
  {
    std::lock_guard lock(mu_);
    if (slot >= back_slots_.size()) return;
    back_slots_[slot].in_use = false;
    if (sent) {
      ++back_slots_[slot].seqid;
      ++callbacks_answered_;
    }
  }
  back_slot_freed_.notify_one();
}

uint64_t Session::callbacks_answered() const {
  std::lock_guard lock(mu_);
  return callbacks_answered_;
}

uint64_t Client::verifier() const {
  uint64_t v = 0;
  for (uint8_t b : verifier_) v = (v << 8) | b;
  return v;
}

// ----------------------------------------------------------- StateManager

StateManager::StateManager(StateOptions options, ns::ClientRecords* records)
    : options_(std::move(options)),
      records_(records),
      boot_(static_cast<uint64_t>(std::time(nullptr)) & 0xffffffffu) {}

// ------------------------------------------------- restart, grace, reclaim

ns::Status StateManager::StartEpoch() {
  if (records_ == nullptr) return ns::Status::Ok();
  ns::Result<ns::EpochStart> e = records_->StartEpoch();
  if (!e.ok()) return e.status();
  std::lock_guard lock(mu_);
  epoch_ = e->epoch;
  // Client ids of earlier starts must never match ours: the epoch is
  // unique per start even when two starts fall in one second.
  boot_ = static_cast<uint64_t>(epoch_) & 0xffffffffu;
  reclaimable_.clear();
  for (const ns::ClientRecord& r : e->reclaimable) {
    reclaimable_[r.owner] = Reclaimable{r.verifier, r.principal};
  }
  if (!reclaimable_.empty()) {
    const uint32_t secs = options_.grace_seconds != 0 ? options_.grace_seconds
                                                      : options_.lease_seconds;
    grace_end_ = Clock::now() + std::chrono::seconds(secs);
    grace_.store(true);
    rpc::log::Info(
        "epoch {}: grace period of {} s for {} client(s) that may reclaim",
        epoch_, secs, reclaimable_.size());
  } else {
    rpc::log::Info("epoch {}: no client to reclaim, no grace period", epoch_);
  }
  return ns::Status::Ok();
}

bool StateManager::InGrace() {
  if (!grace_.load(std::memory_order_acquire)) return false;
  bool expired;
  {
    std::lock_guard lock(mu_);
    // Over when it timed out, or when nobody is left to wait for.
    expired = Clock::now() >= grace_end_ || reclaimable_.empty();
  }
  if (expired) EndGrace();
  return grace_.load(std::memory_order_acquire);
}

void StateManager::EndGrace() {
  size_t missing;
  {
    std::lock_guard lock(mu_);
    if (!grace_.exchange(false)) return;
    missing = reclaimable_.size();
    reclaimable_.clear();
  }
  if (missing > 0) {
    rpc::log::Info("grace period over: {} client(s) did not reclaim",
                   missing);
  } else {
    rpc::log::Info("grace period over: every client reclaimed");
  }
  if (records_ != nullptr) {
    ns::Status s = records_->EndGrace(epoch_);
    // Not fatal: the next start then still treats this start's grace as
    // interrupted, which only keeps more clients eligible.
    if (!s.ok()) rpc::log::Error("recording the end of grace: {}", s.ToString());
  }
}

bool StateManager::MayReclaim(const Client& client) {
  if (!InGrace() || client.reclaim_complete()) return false;
  std::lock_guard lock(mu_);
  auto it = reclaimable_.find(client.owner_);
  return it != reclaimable_.end() &&
         it->second.verifier == client.verifier() &&
         it->second.principal == client.principal_;
}

nfsstat4 StateManager::CheckClaim(const Client& client, bool reclaim) {
  if (!reclaim) {
    // §8.4.2.1: no new state while others may still reclaim theirs.
    return InGrace() ? NFS4ERR_GRACE : NFS4_OK;
  }
  // §8.4.2.1 / §15.1.9.3: no reclaim outside grace; §8.4.3: nor for a
  // client the database does not know as having held state (it may have
  // lost it to a conflicting grant); §18.51.3: nor after RECLAIM_COMPLETE.
  return MayReclaim(client) ? NFS4_OK : NFS4ERR_NO_GRACE;
}

nfsstat4 StateManager::ReclaimComplete(Client& client) {
  if (client.reclaim_complete()) return NFS4ERR_COMPLETE_ALREADY;
  if (records_ != nullptr) {
    ns::Status s = records_->ReclaimComplete(client.owner_, epoch_);
    if (!s.ok()) {
      // The client must not get state the database does not know about.
      rpc::log::Error("recording RECLAIM_COMPLETE of {:#x}: {}", client.id_,
                      s.ToString());
      return NFS4ERR_DELAY;
    }
  }
  if (client.reclaim_complete_.exchange(true)) return NFS4ERR_COMPLETE_ALREADY;
  bool all_done = false;
  {
    std::lock_guard lock(mu_);
    reclaimable_.erase(client.owner_);
    all_done = grace_.load() && reclaimable_.empty();
  }
  if (all_done) EndGrace();
  return NFS4_OK;
}

size_t StateManager::reclaim_pending() const {
  std::lock_guard lock(mu_);
  return reclaimable_.size();
}

bool StateManager::RecordConfirm(clientid4 id, sequenceid4 seq,
                                 const std::string& principal) {
  if (records_ == nullptr) return true;
  ns::ClientRecord r;
  {
    std::lock_guard lock(mu_);
    auto it = clients_.find(id);
    // Only a CREATE_SESSION that will confirm: CreateSession re-checks
    // everything under the lock afterwards.
    if (it == clients_.end() || it->second->confirmed_ ||
        it->second->principal_ != principal || seq != it->second->cs_seq_) {
      return true;
    }
    const Client& c = *it->second;
    r.owner = c.owner_;
    r.principal = c.principal_;
    r.verifier = c.verifier();
    r.clientid = c.id_;
  }
  r.confirmed_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  ns::Status s = records_->Confirm(r, epoch_ > 0 ? epoch_ : 1);
  if (!s.ok()) {
    rpc::log::Error("recording client {:#x}: {}", id, s.ToString());
    return false;
  }
  return true;
}

void StateManager::RecordRemove(const std::string& owner, clientid4 id) {
  if (records_ == nullptr) return;
  ns::Status s = records_->Remove(owner, id);
  if (!s.ok()) rpc::log::Error("removing a client record: {}", s.ToString());
}

// --------------------------------------------------------- backchannel

std::shared_ptr<Client> StateManager::FindClient(clientid4 id) {
  std::lock_guard lock(mu_);
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Session>> StateManager::SessionsOf(
    const Client& client) {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Session>> out;
  for (const SessionId& sid : client.sessions_) {
    auto s = sessions_.find(sid);
    if (s != sessions_.end()) out.push_back(s->second);
  }
  return out;
}

uint32_t StateManager::CbStatusFlags(const Session& session) {
  if (session.CallbackPathWorks()) return 0;
  uint32_t flags = SEQ4_STATUS_CB_PATH_DOWN_SESSION;
  bool any = false;
  {
    // Walked under mu_ rather than copied out with SessionsOf: this runs on
    // every SEQUENCE of a client without a backchannel (an allocation per
    // request otherwise). Lock order state -> session -> connection, as in
    // ConnectionClosed and Session::BackConnection.
    std::lock_guard lock(mu_);
    for (const SessionId& sid : session.client()->sessions_) {
      if (sid == session.id()) continue;  // known not to work: no lookup
      auto s = sessions_.find(sid);
      if (s != sessions_.end() && s->second.get() != &session &&
          s->second->CallbackPathWorks()) {
        any = true;
        break;
      }
    }
  }
  if (!any) flags |= SEQ4_STATUS_CB_PATH_DOWN;
  return flags;
}

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
  if (!confirmed && grace_.load() && Clock::now() < grace_end_) {
    // Case 3 (client collision) against state that waits for reclaim:
    // another principal may not take over the owner during grace.
    auto r = reclaimable_.find(owner);
    if (r != reclaimable_.end() && r->second.principal != principal) {
      return NFS4ERR_CLID_INUSE;
    }
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
  // §8.4.2.1: the database knows every confirmed client before it can get
  // state. If it cannot be written, nothing changes and the client retries
  // the same CREATE_SESSION.
  if (!RecordConfirm(args.csa_clientid, args.csa_sequence, principal)) {
    return NFS4ERR_DELAY;
  }
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
    // (RecordConfirm above wrote it to the database.) A rebooted client
    // (new verifier) lost the state it held before our restart: there is
    // nothing to wait for (§8.4.2.1).
    if (auto r = reclaimable_.find(c->owner_);
        r != reclaimable_.end() && r->second.verifier != c->verifier()) {
      reclaimable_.erase(r);
    }
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
  // No persistent reply cache, no RDMA. The back channel is granted on this
  // connection when asked for (§18.36.3); OpCreateSession binds it.
  uint32_t flags = args.csa_flags & CREATE_SESSION4_FLAG_CONN_BACK_CHAN;
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
  bool confirmed;
  std::string owner;
  {
    std::lock_guard lock(mu_);
    auto it = clients_.find(id);
    if (it == clients_.end()) return NFS4ERR_STALE_CLIENTID;
    // §18.50.3: a client id with sessions (or state) is busy.
    if (!it->second->sessions_.empty()) return NFS4ERR_CLIENTID_BUSY;
    confirmed = it->second->confirmed_;
    owner = it->second->owner_;
    // A client that gives up its id during grace will not reclaim.
    if (confirmed) reclaimable_.erase(owner);
    RemoveClientLocked(it->second);
  }
  // The client gave up its state: it may not reclaim after a restart.
  if (confirmed) RecordRemove(owner, id);
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
  std::vector<std::pair<std::string, clientid4>> forget;
  size_t n = ReapExpiredInMemory(now, &forget);
  // Their state is gone, so they have nothing to reclaim after a restart.
  for (const auto& [owner, id] : forget) RecordRemove(owner, id);
  return n;
}

size_t StateManager::ReapExpiredInMemory(
    Clock::time_point now,
    std::vector<std::pair<std::string, clientid4>>* forget) {
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
    if (c->confirmed_) {
      forget->emplace_back(c->owner_, c->id_);
      reclaimable_.erase(c->owner_);  // nothing left to wait for
    }
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
      InGrace();  // ends an expired grace period even when nobody asks
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
