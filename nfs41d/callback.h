#pragma once

// Callbacks from server to client over the session's back channel (RFC 8881
// §2.10.3.1, §20): CB_NULL probes and CB_COMPOUNDs, sent on a connection the
// client opened (rpc::Connection::Call in the server-to-client direction).
//
// Every CB_COMPOUND starts with CB_SEQUENCE on a back-channel slot (§20.9,
// §2.10.6): the slot's sequence id advances only when the client answered,
// so a call lost with its connection is retried with the same id.
//
// Thread safety: any thread except the RPC event-loop thread (the calls
// block until the reply or the timeout).

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "nfs41d/proto/nfs4_prot.h"
#include "nfs41d/state/state_manager.h"
#include "rpc/program.h"

namespace nfs41d {

// The callback credential from csa_sec_parms / bca_sec_parms (§18.33.3,
// §18.36.3): the first entry of a flavor we can send (AUTH_NONE, AUTH_SYS).
// False if there is none (only RPCSEC_GSS, or an empty list).
bool ChooseCallbackCredential(const callback_sec_parms4* parms, u_int count,
                              rpc::Credential* out);

// Sends CB_NULL on the session's newest back connection without blocking
// and records the outcome as the session's callback path (kUp / kDown).
// Marks the path kDown at once when there is no back connection.
void ProbeBackchannel(const std::shared_ptr<state::Session>& session,
                      std::chrono::milliseconds timeout);

// The outcome of a CB_COMPOUND.
struct CbResult {
  // NFS4_OK, the CB_COMPOUND's status, NFS4ERR_CB_PATH_DOWN when it could
  // not be delivered (no back connection, transport failure, timeout,
  // undecodable reply), NFS4ERR_DELAY when every back-channel slot stayed
  // busy for the whole timeout.
  nfsstat4 status = NFS4_OK;
  // Status of each operation answered, CB_SEQUENCE first.
  std::vector<nfsstat4> op_status;
  std::string error;  // for logs when delivery failed
};

// Sends CB_COMPOUND {CB_SEQUENCE, ops...} on the session's back channel and
// waits for the reply. `ops` must not contain CB_SEQUENCE. Updates the
// session's callback path (kUp on a reply, kDown on a delivery failure).
CbResult SendCbCompound(state::Session& session,
                        std::span<const nfs_cb_argop4> ops,
                        std::chrono::milliseconds timeout);

// Asks client `clientid` to return state down to `objects_to_keep` objects
// of the types in `type_mask` (CB_RECALL_ANY, §20.6; bits
// RCA4_TYPE_MASK_*) over one of its sessions that has a back connection,
// trying the next when delivery fails. NFS4ERR_STALE_CLIENTID if the
// client is unknown, else as CbResult::status. The client's answer only
// says it received the request; returning state is up to it.
CbResult RecallAny(state::StateManager& state, clientid4 clientid,
                   uint32_t objects_to_keep, uint32_t type_mask);

}  // namespace nfs41d
