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
// Restart and reclaim (RFC 8881 §8.4.2, §8.4.3): with a ns::ClientRecords
// store, confirmed clients are recorded in the database and StartEpoch()
// (once per server start) learns which clients may reclaim; if any may, a
// grace period of `grace_seconds` begins. During it only reclaims are
// allowed: OPEN (CLAIM_PREVIOUS) and LOCK (reclaim = true) MUST call
//
//   nfsstat4 CheckClaim(const Client&, bool reclaim)
//
// before granting anything and fail with its status if it is not NFS4_OK:
//   reclaim, not in grace                          -> NFS4ERR_NO_GRACE
//   reclaim, client not recorded / rebooted /
//     already did RECLAIM_COMPLETE (§18.51.3)      -> NFS4ERR_NO_GRACE
//   non-reclaim, in grace                          -> NFS4ERR_GRACE
// The COMPOUND loop itself answers NFS4ERR_GRACE to REMOVE and RENAME in
// grace (they could remove a file a client is about to reclaim an open
// of). The grace period ends when it times out or as soon as every client
// that may reclaim sent RECLAIM_COMPLETE (§18.51.3).
//
// Backchannel (§2.10.3.1, §18.33, §18.36): a session created with
// CREATE_SESSION4_FLAG_CONN_BACK_CHAN, or a connection bound with
// CDFC4_BACK / CDFC4_BACK_OR_BOTH, gives the server a connection to send
// CB_COMPOUNDs on (see nfs41d/callback.h). Session keeps the callback
// program, the security flavor, the back-channel slot table and whether
// the path works (CB_NULL probe); SEQUENCE reports
// SEQ4_STATUS_CB_PATH_DOWN(_SESSION) from it.
//
// Thread safety: StateManager methods may be called from any thread; one
// mutex guards the client and session maps, the in-memory client records
// and the grace state (database writes happen without it); each session
// has its own mutex for its slots and back channel, so SEQUENCE on
// different sessions never contends on more than a map lookup.

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
#include <utility>
#include <vector>

#include "libnamespace/include/namespace/client_records.h"
#include "nfs41d/proto/nfs4_prot.h"
#include "rpc/connection.h"
#include "rpc/message.h"
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
  // Grace period after a restart with clients that may reclaim (RFC 8881
  // §8.4.2.1), seconds; 0 means the lease time.
  uint32_t grace_seconds = 0;
  // How long a callback (CB_NULL probe, CB_COMPOUND) waits for its reply.
  std::chrono::milliseconds callback_timeout{10000};
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
  // A new request also binds connection `bind_conn` (0: none) to the
  // session under the same lock, as SP4_NONE wants of any connection a
  // SEQUENCE arrives on (§2.10.3.1): one acquisition per SEQUENCE, not two.
  Begin BeginRequest(uint32_t slot, uint32_t seqid, uint64_t request_hash,
                     std::vector<uint8_t>* replay, nfsstat4* status,
                     uint64_t bind_conn = 0);
  // Records (copies) the reply of the request started on `slot` and frees
  // the slot. The copy goes into the slot's own buffer, whose capacity is
  // kept from request to request: no allocation in the steady state.
  void EndRequest(uint32_t slot, std::span<const uint8_t> reply);
  // Frees `slot` without a reply (the request failed before it counted).
  bool AnySlotInUse() const;

  void BindConnection(uint64_t conn_id);
  void UnbindConnection(uint64_t conn_id);
  bool IsBound(uint64_t conn_id) const;

  // --- backchannel (RFC 8881 §2.10.3.1)
  // The session's flags as granted (CREATE_SESSION4_FLAG_CONN_BACK_CHAN).
  uint32_t flags() const { return flags_; }
  // Whether the path works: kUnknown until a CB_NULL probe or a callback
  // answered or failed; no back connection at all is kDown.
  enum class CbPath { kUnknown, kUp, kDown };
  CbPath cb_path() const;
  void SetCbPath(CbPath p);
  // Makes `conn` usable for callbacks (CREATE_SESSION with
  // CONN_BACK_CHAN, BIND_CONN_TO_SESSION with CDFC4_BACK*). The path is
  // kUnknown again until probed.
  void BindBackChannel(const std::shared_ptr<rpc::Connection>& conn);
  // A bound back connection that is still open, or null.
  std::shared_ptr<rpc::Connection> BackConnection() const;
  // Whether callbacks can reach the client through this session: the path
  // is not kDown and a bound back connection is open. One lock instead of
  // cb_path() and BackConnection()'s two, no shared_ptr copied out: it
  // runs on every SEQUENCE (sr_status_flags, §18.46.3).
  bool CallbackPathWorks() const;
  // Callback program and credential (CREATE_SESSION csa_cb_program and
  // csa_sec_parms; BACKCHANNEL_CTL, §18.33).
  void SetCallbackProgram(uint32_t program, rpc::Credential cred);
  uint32_t cb_program() const;
  rpc::Credential cb_credential() const;
  // Takes a free back-channel slot and its next sequence id (CB_SEQUENCE,
  // §20.9, §2.10.6.1), waiting up to `wait` for one to free up: false if
  // every slot stayed busy.
  bool BeginCallback(uint32_t* slot, uint32_t* seqid,
                     std::chrono::milliseconds wait);
  // Frees `slot`; `sent` says whether the client processed the request (a
  // reply arrived), which consumes the sequence id.
  void EndCallback(uint32_t slot, bool sent);
  // Counts callbacks sent and answered, for tests and metrics.
  uint64_t callbacks_answered() const;

 private:
  const SessionId id_;
  const std::shared_ptr<Client> client_;
  const channel_attrs4 fore_;
  const channel_attrs4 back_;
  const uint32_t flags_;
  mutable std::mutex mu_;
  std::vector<Slot> slots_;         // guarded by mu_
  std::set<uint64_t> connections_;  // guarded by mu_
  uint32_t cb_program_;             // guarded by mu_
  rpc::Credential cb_cred_;         // guarded by mu_
  CbPath cb_path_ = CbPath::kDown;  // guarded by mu_
  // Connections bound for callbacks, newest last; guarded by mu_.
  std::vector<std::weak_ptr<rpc::Connection>> back_conns_;
  struct BackSlot {
    uint32_t seqid = 0;  // last sequence id the client processed
    bool in_use = false;
  };
  std::vector<BackSlot> back_slots_;  // guarded by mu_
  std::condition_variable back_slot_freed_;
  uint64_t callbacks_answered_ = 0;   // guarded by mu_
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
  // Whether this client sent RECLAIM_COMPLETE (rca_one_fs false).
  bool reclaim_complete() const { return reclaim_complete_.load(); }
  // co_verifier as a big-endian integer (how the database stores it).
  uint64_t verifier() const;
  const std::string& principal() const { return principal_; }

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
  // `records` (may be null: no persistence, no grace) must outlive this.
  explicit StateManager(StateOptions options,
                        ns::ClientRecords* records = nullptr);
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

  // --- restart, grace and reclaim (RFC 8881 §8.4.2, §8.4.3, §18.51)

  // Once per server start, before serving: begins a new epoch in the
  // database and, if clients may reclaim, the grace period. Without a
  // record store (nullptr at construction) there is never a grace period.
  // Errors: the database's.
  ns::Status StartEpoch();
  // Whether the grace period is on (it ends by itself when it times out).
  bool InGrace();
  // Whether the grace period may still be on, without ending it (which
  // writes to the database): false means InGrace() is false for good.
  bool GraceMayBeOn() const {
    return grace_.load(std::memory_order_acquire);
  }
  // Whether `client` may still reclaim: it is recorded as having held state
  // before the restart (same owner, verifier and principal), the grace
  // period is on and it has not sent RECLAIM_COMPLETE.
  bool MayReclaim(const Client& client);
  // THE hook for OPEN and LOCK (see the header comment): NFS4_OK, or the
  // status to fail the operation with.
  nfsstat4 CheckClaim(const Client& client, bool reclaim);
  // RECLAIM_COMPLETE with rca_one_fs false (§18.51.3): records it in the
  // database; ends grace early once every reclaimable client is done.
  // NFS4ERR_COMPLETE_ALREADY on a second one; NFS4ERR_DELAY if the database
  // cannot be written (nothing changed; the client retries).
  nfsstat4 ReclaimComplete(Client& client);
  // Ends the grace period now (timer, or every client done).
  void EndGrace();
  // The epoch of this start (0 without a record store).
  int64_t epoch() const { return epoch_; }
  // Clients that may reclaim and have not completed yet.
  size_t reclaim_pending() const;

  // --- backchannel (RFC 8881 §2.10.3.1, §20)

  // The client with this id, or null (e.g. an id of an earlier start).
  std::shared_ptr<Client> FindClient(clientid4 id);
  // Sessions of `client`, in no particular order.
  std::vector<std::shared_ptr<Session>> SessionsOf(const Client& client);
  // SEQUENCE's sr_status_flags bits for the callback path (§18.46.3):
  // SEQ4_STATUS_CB_PATH_DOWN when no session of the client has a working
  // back channel, SEQ4_STATUS_CB_PATH_DOWN_SESSION when this one has none.
  uint32_t CbStatusFlags(const Session& session);

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

 private:
  // Takes mu_; lists in *forget the confirmed clients it removed.
  size_t ReapExpiredInMemory(
      Clock::time_point now,
      std::vector<std::pair<std::string, clientid4>>* forget);
  // REQUIRES: mu_ held.
  void RemoveClientLocked(std::shared_ptr<Client> c);  // by value: it may be the map's own pointer
  std::shared_ptr<Client> NewClientLocked(const EXCHANGE_ID4args& args,
                                          const std::string& principal);

  // Database writes happen without mu_ held, so a slow database never
  // stalls SEQUENCE on other clients.
  // Writes the confirmation of client `id` to the record store if it is
  // about to be confirmed by a CREATE_SESSION with `seq`. False if the
  // database failed.
  bool RecordConfirm(clientid4 id, sequenceid4 seq,
                     const std::string& principal);
  // Forgets a client in the record store (destroyed, expired).
  void RecordRemove(const std::string& owner, clientid4 id);

  struct Reclaimable {
    uint64_t verifier = 0;
    std::string principal;
  };

  const StateOptions options_;
  ns::ClientRecords* const records_;
  // High bits of client ids: unique per server start (the epoch when there
  // is a record store, else the start time), so ids of an earlier start are
  // NFS4ERR_STALE_CLIENTID (§8.4.2).
  uint64_t boot_;
  int64_t epoch_ = 0;
  std::atomic<bool> grace_{false};
  mutable std::mutex mu_;
  Clock::time_point grace_end_;                      // guarded by mu_
  std::map<std::string, Reclaimable> reclaimable_;   // by owner; mu_
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
