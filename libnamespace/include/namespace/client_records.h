#pragma once

// ClientRecords: the NFSv4 client records an NFSv4.1 server keeps in the
// namespace database so that, after it restarts, it knows which clients may
// reclaim their state (RFC 8881 §8.4.2.1) and which must not because they
// let a grace period pass without reclaiming (the edge cases of §8.4.3).
//
// The model is a sequence of server starts ("epochs") recorded in the
// database:
//
//   - StartEpoch() is called once per server start. It begins epoch E+1
//     and returns which clients may reclaim during this start's grace
//     period: those that completed reclaim (RECLAIM_COMPLETE) in the
//     recovery epoch R or later. R is the last start whose grace period
//     ended; a start that stopped during its grace period does not move R,
//     so a client that had not yet reclaimed then may still reclaim now
//     (§8.4.3's restart-during-grace case), while a client that let a whole
//     grace period pass may never reclaim again (§8.4.3's partition case:
//     others may have taken conflicting locks since).
//   - Confirm() is called when CREATE_SESSION confirms a client
//     (§18.36.4), ReclaimComplete() on RECLAIM_COMPLETE (§18.51) -- from
//     then on the client may hold state that it will reclaim after a
//     restart --, Remove() on DESTROY_CLIENTID and lease expiry.
//   - EndGrace() when the grace period ends: from then on a restart
//     recovers the clients established in this epoch, and records of
//     clients that did not reclaim are deleted.
//
// No NFS types: owners are the co_ownerid bytes, verifiers the co_verifier
// bytes as a big-endian integer, principals whatever string the server uses
// to compare credentials ("sys:1000").
//
// Errors (Status, never exceptions): Invalid for malformed arguments
// (nothing is changed), NotFound as documented per method, Unavailable /
// IOError from the database.
//
// Thread safety: every method may be called from any thread; each runs in
// one database transaction. Several servers on one database serialize
// StartEpoch / EndGrace on the one nfs_grace row, but share one epoch
// sequence: grace is per database, not per server.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"

namespace ns {

class Namespace;

// The largest co_ownerid NFSv4 allows (RFC 8881 §2.4, NFS4_OPAQUE_LIMIT).
inline constexpr size_t kMaxClientOwnerBytes = 1024;

struct ClientRecord {
  // co_ownerid bytes, 1..kMaxClientOwnerBytes: the key.
  std::string owner;
  // The principal that created the client ID (not empty, at most 1024
  // bytes). A client may reclaim only under the same principal.
  std::string principal;
  // co_verifier: changes when the client reboots, which drops its state.
  uint64_t verifier = 0;
  // The clientid4 last given to it (for operators; ids change per start).
  uint64_t clientid = 0;
  // When CREATE_SESSION confirmed it, ns since the epoch.
  TimeNs confirmed_ns = 0;
  // The server epoch of that confirmation.
  int64_t confirmed_epoch = 0;
  // The epoch of its last RECLAIM_COMPLETE, if any: it may reclaim after a
  // restart iff this is >= the recovery epoch (see StartEpoch).
  std::optional<int64_t> reclaim_epoch;
};

// What a server start learns from StartEpoch.
struct EpochStart {
  // This start's epoch (1 for the first start on a database).
  int64_t epoch = 0;
  // The recovery epoch: clients whose reclaim_epoch >= this may reclaim.
  // nullopt when nobody may: no grace period is needed.
  std::optional<int64_t> recovery_epoch;
  // The clients that may reclaim now (empty iff recovery_epoch is nullopt).
  std::vector<ClientRecord> reclaimable;
};

class ClientRecords {
 public:
  // `ns` must outlive this object.
  explicit ClientRecords(Namespace* ns) : ns_(ns) {}

  // Begins a new server epoch (see the header comment). If no client may
  // reclaim, the grace period is recorded as over at once.
  Result<EpochStart> StartEpoch();

  // Records that CREATE_SESSION confirmed `rec` in epoch `epoch` (rec's
  // confirmed_epoch and reclaim_epoch are ignored). Replaces a record of
  // the same owner: with the same verifier and principal its reclaim_epoch
  // is kept (a client reconnecting after a restart keeps its right to
  // reclaim until it completes, even across a further restart); otherwise
  // it is cleared (a rebooted client has no state). Errors: Invalid (empty
  // or oversized owner or principal, epoch < 1).
  Status Confirm(const ClientRecord& rec, int64_t epoch);

  // Records RECLAIM_COMPLETE of `owner` in `epoch`. Errors: NotFound (no
  // record: the client was never confirmed or has been removed), Invalid.
  Status ReclaimComplete(std::string_view owner, int64_t epoch);

  // Deletes the record of `owner`; removing a missing record is Ok. With
  // `only_clientid`, only a record that still carries that clientid goes (a
  // late removal of an old client id must not delete the record a newer
  // confirmation of the same owner wrote). Errors: Invalid.
  Status Remove(std::string_view owner,
                std::optional<uint64_t> only_clientid = std::nullopt);

  // Ends the grace period of `epoch`: recovery_epoch becomes NULL, and the
  // records of clients that neither completed reclaim in `epoch` nor were
  // confirmed in it are deleted (they lost their state). A no-op if
  // `epoch` is not the current epoch (a newer start owns the row).
  // Errors: Invalid (epoch < 1).
  Status EndGrace(int64_t epoch);

  // Every record, ordered by owner. For tools and tests.
  Result<std::vector<ClientRecord>> List();
  // The record of `owner`. Errors: NotFound, Invalid.
  Result<ClientRecord> Get(std::string_view owner);

 private:
  Namespace* ns_;
};

}  // namespace ns
