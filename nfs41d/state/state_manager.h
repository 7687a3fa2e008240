#pragma once

// NFSv4.1 client and session state (RFC 8881 §2.4, §2.10): the small object
// graph StateManager -> Client -> Session -> Slot.
//
// - StateManager: every client record (keyed by client id and by the
//   client's co_ownerid), every session, the lease reaper thread.
// - Client: one client record of EXCHANGE_ID (§18.35): owner, verifier,
//   principal, confirmed or not, the CREATE_SESSION sequence id and its
//   one-entry replay cache (§18.36.4), the lease.
// - Session: channel attributes, the slot table (§2.10.6), bound
//   connections.
// - Slot: sequence id and the cached reply of the last request (§2.10.6.1).
//
// - OpenStateTable (open_state.h): the stateids of OPEN and LOCK, indexed
//   per client; a client's stateids go when its record is removed.
//
// Thread safety: StateManager methods may be called from any thread; one
// mutex guards the client and session maps and the client records; each
// session has its own mutex for its slots, so SEQUENCE on different sessions
// never contends on more than a map lookup.

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "nfs41d/proto/nfs4_prot.h"
#include "nfs41d/state/open_state.h"

namespace nfs41d::state {

using SessionId = std::array<uint8_t, NFS4_SESSIONID_SIZE>;
using Clock = std::chrono::steady_clock;

struct StateOptions {
  // Lease period (fattr4 lease_time), seconds.
  uint32_t lease_seconds = 90;
  // Slots offered per session (at least 64 when the client asks for that many).
  uint32_t max_slots = 128;
  // Our limits for the fore channel (RFC 8881 §18.36.3); the session gets the
  // smaller of these and the client's request.
  uint32_t max_request_size = 1u << 20;
  uint32_t max_response_size = 1u << 20;
  uint32_t max_response_size_cached = 64u << 10;
  // Generous: the Linux client refuses a session that grants fewer
  // operations than it asked for.
  uint32_t max_operations = 128;
  // How often the reaper looks for expired clients.
  std::chrono::milliseconds reap_interval{1000};
  // Server owner / scope (RFC 8881 §2.5): the same for every door that
  // shares state.
  std::string server_owner = "nfs41d";
};

struct Slot {
  uint32_t seqid = 0;
  bool in_use = false;      // a request on this slot is being served
  bool has_reply = false;   // `reply` holds the last request's reply
  uint64_t request_hash = 0;  // for false-retry detection
  std::vector<uint8_t> reply;  // encoded COMPOUND4res
};

class Client;

class Session {
 public:
  Session(SessionId id, std::shared_ptr<Client> client, channel_attrs4 fore,
          channel_attrs4 back, uint32_t cb_program, uint32_t flags);

  const SessionId& id() const { return id_; }
  const std::shared_ptr<Client>& client() const { return client_; }
  const channel_attrs4& fore() const { return fore_; }
  const channel_attrs4& back() const { return back_; }
  uint32_t slot_count() const { return fore_.ca_maxrequests; }

  // The outcome of starting a request on a slot (RFC 8881 §2.10.6.1).
  enum class Begin {
    kNew,     // execute it; call End() with the reply afterwards
    kReplay,  // a retry: send *replay
    kError,   // *status says why (BADSLOT, SEQ_MISORDERED, DELAY, ...)
  };
  Begin BeginRequest(uint32_t slot, uint32_t seqid, uint64_t request_hash,
                     std::vector<uint8_t>* replay, nfsstat4* status);
  // Records the reply of the request started on `slot` and frees the slot.
  void EndRequest(uint32_t slot, std::vector<uint8_t> reply);
  // Frees `slot` without a reply (the request failed before it counted).
  bool AnySlotInUse() const;

  void BindConnection(uint64_t conn_id);
  void UnbindConnection(uint64_t conn_id);
  bool IsBound(uint64_t conn_id) const;

 private:
  const SessionId id_;
  const std::shared_ptr<Client> client_;
  const channel_attrs4 fore_;
  const channel_attrs4 back_;
  const uint32_t cb_program_;
  const uint32_t flags_;
  mutable std::mutex mu_;
  std::vector<Slot> slots_;         // guarded by mu_
  std::set<uint64_t> connections_;  // guarded by mu_
};

class Client {
 public:
  clientid4 id() const { return id_; }
  const std::string& owner() const { return owner_; }
  bool confirmed() const { return confirmed_; }
  // Renews the lease (any SEQUENCE does, RFC 8881 §8.3).
  void Renew() {
    renewed_ns_.store(Clock::now().time_since_epoch().count(),
                      std::memory_order_relaxed);
  }
  Clock::time_point renewed() const {
    return Clock::time_point(
        Clock::duration(renewed_ns_.load(std::memory_order_relaxed)));
  }
  // RECLAIM_COMPLETE (§18.51): false when it was already done.
  bool MarkReclaimComplete() { return !reclaim_complete_.exchange(true); }

 private:
  friend class StateManager;
  clientid4 id_ = 0;
  std::string owner_;  // co_ownerid bytes
  std::array<uint8_t, NFS4_VERIFIER_SIZE> verifier_{};
  std::string principal_;
  bool confirmed_ = false;
  uint32_t flags_ = 0;
  // CREATE_SESSION sequence id expected next, and the cached reply of the
  // last one (RFC 8881 §18.36.4).
  uint32_t cs_seq_ = 1;
  bool cs_has_reply_ = false;
  nfsstat4 cs_status_ = NFS4_OK;
  CREATE_SESSION4resok cs_reply_{};
  std::set<SessionId> sessions_;
  std::atomic<int64_t> renewed_ns_{0};
  std::atomic<bool> reclaim_complete_{false};
};

struct ExchangeIdResult {
  clientid4 clientid = 0;
  sequenceid4 sequenceid = 0;
  uint32_t flags = 0;
};

class StateManager {
 public:
  explicit StateManager(StateOptions options);
  ~StateManager();  // StopReaper()
  StateManager(const StateManager&) = delete;
  StateManager& operator=(const StateManager&) = delete;

  const StateOptions& options() const { return options_; }

  // EXCHANGE_ID (RFC 8881 §18.35.4/.5). `principal` names the caller's
  // credential ("sys:1000", "none").
  nfsstat4 ExchangeId(const EXCHANGE_ID4args& args,
                      const std::string& principal, ExchangeIdResult* out);
  // CREATE_SESSION (§18.36.4), binding `conn_id` to the new session.
  nfsstat4 CreateSession(const CREATE_SESSION4args& args,
                         const std::string& principal, uint64_t conn_id,
                         CREATE_SESSION4resok* out);
  // NFS4ERR_BADSESSION if unknown.
  nfsstat4 FindSession(const sessionid4 id, std::shared_ptr<Session>* out);
  nfsstat4 DestroySession(const sessionid4 id);
  nfsstat4 DestroyClientId(clientid4 id);
  nfsstat4 BindConnection(const sessionid4 id, uint64_t conn_id);
  // A transport connection closed: unbind it from every session.
  void ConnectionClosed(uint64_t conn_id);

  // Removes clients whose lease expired before `now` (and their sessions)
  // unless a request is in progress on one of their sessions. Returns how
  // many were removed.
  size_t ReapExpired(Clock::time_point now);
  void StartReaper();
  void StopReaper();

  size_t client_count() const;
  size_t session_count() const;

  // Open and lock state (RFC 8881 §8.2, §9).
  OpenStateTable& opens() { return opens_; }
  // Files whose last open went with a removed client (lease expiry,
  // restart, DESTROY_CLIENTID): the caller writes them back and releases
  // orphans. Filled under mu_, taken by the server's background flusher.
  std::vector<FileRelease> TakeReleasedFiles();

  // The reclaim hook (RFC 8881 §8.4.2): true while the server is in its
  // grace period, when only reclaims (CLAIM_PREVIOUS, reclaim LOCK) are
  // allowed. No client records survive a restart yet, so there is no grace
  // period: always false. The grace/reclaim work replaces this.
  bool InGrace() const { return false; }

 private:
  // REQUIRES: mu_ held.
  void RemoveClientLocked(std::shared_ptr<Client> c);  // by value: it may be the map's own pointer
  std::shared_ptr<Client> NewClientLocked(const EXCHANGE_ID4args& args,
                                          const std::string& principal);

  const StateOptions options_;
  const uint64_t boot_;  // high bits of client ids: unique per server start
  mutable std::mutex mu_;
  uint32_t next_client_ = 1;  // guarded by mu_
  uint64_t next_session_ = 1;  // guarded by mu_
  std::unordered_map<clientid4, std::shared_ptr<Client>> clients_;  // mu_
  std::multimap<std::string, std::shared_ptr<Client>> by_owner_;     // mu_
  std::map<SessionId, std::shared_ptr<Session>> sessions_;           // mu_
  OpenStateTable opens_;                     // its own mutex, after mu_
  std::vector<FileRelease> released_files_;  // mu_

  std::mutex reaper_mu_;
  std::condition_variable reaper_cv_;
  bool reaper_stop_ = false;
  std::thread reaper_;
};

}  // namespace nfs41d::state
