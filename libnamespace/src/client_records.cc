// NFSv4 client records (client_records.h): the epoch logic, written once
// over the Transaction methods each backend implements.

#include "libnamespace/include/namespace/client_records.h"

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/src/backend.h"

namespace ns {
namespace {

Status CheckOwner(std::string_view owner) {
  if (owner.empty() || owner.size() > kMaxClientOwnerBytes) {
    return Status::Invalid("client owner",
                           "must be 1.." +
                               std::to_string(kMaxClientOwnerBytes) + " bytes");
  }
  return Status::Ok();
}

Status CheckEpoch(int64_t epoch) {
  if (epoch < 1) return Status::Invalid("epoch", "must be >= 1");
  return Status::Ok();
}

}  // namespace

Result<EpochStart> ClientRecords::StartEpoch() {
  EpochStart out;
  Status s = ns_->backend().Write([&](Transaction& t) -> Status {
    out = EpochStart{};
    NS_ASSIGN_OR_RETURN(GraceRow row, t.GetGrace());
    // A start whose grace period ended (recovery NULL) hands recovery to
    // its own epoch; a start that stopped during grace leaves recovery where
    // it was, so the clients it was waiting for may still reclaim (§8.4.3).
    const int64_t recovery =
        row.recovery_epoch ? *row.recovery_epoch : row.current_epoch;
    out.epoch = row.current_epoch + 1;
    NS_ASSIGN_OR_RETURN(std::vector<ClientRecord> all, t.ListClientRecords());
    for (ClientRecord& r : all) {
      if (r.reclaim_epoch && *r.reclaim_epoch >= recovery && recovery > 0) {
        out.reclaimable.push_back(std::move(r));
      } else {
        // It can never reclaim again: it held no state, or let a whole
        // grace period pass without reclaiming.
        NS_RETURN_IF_ERROR(t.DeleteClientRecord(r.owner));
      }
    }
    GraceRow next;
    next.current_epoch = out.epoch;
    next.started_ns = NowNs();
    if (!out.reclaimable.empty()) {
      out.recovery_epoch = recovery;
      next.recovery_epoch = recovery;
    }
    return t.PutGrace(next);
  });
  if (!s.ok()) return s;
  return out;
}

Status ClientRecords::Confirm(const ClientRecord& rec, int64_t epoch) {
  NS_RETURN_IF_ERROR(CheckOwner(rec.owner));
  NS_RETURN_IF_ERROR(CheckEpoch(epoch));
  if (rec.principal.empty() || rec.principal.size() > 1024) {
    return Status::Invalid("client principal", "must be 1..1024 bytes");
  }
  return ns_->backend().Write([&](Transaction& t) -> Status {
    ClientRecord next = rec;
    next.confirmed_epoch = epoch;
    next.reclaim_epoch.reset();
    Result<ClientRecord> old = t.GetClientRecord(rec.owner);
    if (old.ok()) {
      // The same client instance (not rebooted, same principal) keeps its
      // right to reclaim; a rebooted one lost its state (§18.35.5 case 5).
      if (old->verifier == rec.verifier && old->principal == rec.principal) {
        next.reclaim_epoch = old->reclaim_epoch;
      }
    } else if (!old.status().IsNotFound()) {
      return old.status();
    }
    return t.PutClientRecord(next);
  });
}

Status ClientRecords::ReclaimComplete(std::string_view owner, int64_t epoch) {
  NS_RETURN_IF_ERROR(CheckOwner(owner));
  NS_RETURN_IF_ERROR(CheckEpoch(epoch));
  return ns_->backend().Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(ClientRecord r, t.GetClientRecord(owner));
    r.reclaim_epoch = epoch;
    return t.PutClientRecord(r);
  });
}

Status ClientRecords::Remove(std::string_view owner,
                             std::optional<uint64_t> only_clientid) {
  NS_RETURN_IF_ERROR(CheckOwner(owner));
  return ns_->backend().Write([&](Transaction& t) -> Status {
    if (only_clientid) {
      Result<ClientRecord> r = t.GetClientRecord(owner);
      if (r.status().IsNotFound()) return Status::Ok();
      if (!r.ok()) return r.status();
      if (r->clientid != *only_clientid) return Status::Ok();
    }
    return t.DeleteClientRecord(owner);
  });
}

Status ClientRecords::EndGrace(int64_t epoch) {
  NS_RETURN_IF_ERROR(CheckEpoch(epoch));
  return ns_->backend().Write([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(GraceRow row, t.GetGrace());
    if (row.current_epoch != epoch) return Status::Ok();
    NS_ASSIGN_OR_RETURN(std::vector<ClientRecord> all, t.ListClientRecords());
    for (const ClientRecord& r : all) {
      const bool reclaimed = r.reclaim_epoch && *r.reclaim_epoch == epoch;
      if (!reclaimed && r.confirmed_epoch != epoch) {
        NS_RETURN_IF_ERROR(t.DeleteClientRecord(r.owner));
      }
    }
    if (!row.recovery_epoch) return Status::Ok();
    row.recovery_epoch.reset();
    return t.PutGrace(row);
  });
}

Result<std::vector<ClientRecord>> ClientRecords::List() {
  std::vector<ClientRecord> out;
  Status s = ns_->backend().Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(out, t.ListClientRecords());
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Result<ClientRecord> ClientRecords::Get(std::string_view owner) {
  NS_RETURN_IF_ERROR(CheckOwner(owner));
  ClientRecord out;
  Status s = ns_->backend().Read([&](Transaction& t) -> Status {
    NS_ASSIGN_OR_RETURN(out, t.GetClientRecord(owner));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace ns
