// Sessions and client state: EXCHANGE_ID, CREATE_SESSION, SEQUENCE,
// DESTROY_SESSION, DESTROY_CLIENTID, BIND_CONN_TO_SESSION,
// RECLAIM_COMPLETE, TEST_STATEID, FREE_STATEID (RFC 8881 §18.33-§18.51).
// The record keeping lives in state/state_manager.cc; these handlers map
// arguments and results.

#include <cstring>

#include "nfs41d/ops.h"

namespace nfs41d {

// RFC 8881 §18.35.
nfsstat4 OpExchangeId(CompoundState& st, const EXCHANGE_ID4args& args,
                      EXCHANGE_ID4res& res) {
  // SP4_MACH_CRED and SP4_SSV are not offered (AUTH_SYS only so far).
  if (args.eia_state_protect.spa_how != SP4_NONE) return NFS4ERR_NOTSUPP;
  state::ExchangeIdResult r;
  nfsstat4 s = st.server.state->ExchangeId(args, st.principal, &r);
  if (s != NFS4_OK) return s;
  EXCHANGE_ID4resok& ok = res.EXCHANGE_ID4res_u.eir_resok4;
  ok.eir_clientid = r.clientid;
  ok.eir_sequenceid = r.sequenceid;
  ok.eir_flags = r.flags;
  ok.eir_state_protect.spr_how = SP4_NONE;
  const std::string& owner = st.server.state->options().server_owner;
  ok.eir_server_owner.so_minor_id = 0;
  ok.eir_server_owner.so_major_id.so_major_id_len =
      static_cast<u_int>(owner.size());
  ok.eir_server_owner.so_major_id.so_major_id_val = st.arena.Copy(owner);
  ok.eir_server_scope.eir_server_scope_len = static_cast<u_int>(owner.size());
  ok.eir_server_scope.eir_server_scope_val = st.arena.Copy(owner);
  nfs_impl_id4* impl = st.arena.New<nfs_impl_id4>();
  static const char kDomain[] = "nsnfs.invalid";
  static const char kName[] = "nfs41d 0.1";
  impl->nii_domain.utf8string_len = sizeof kDomain - 1;
  impl->nii_domain.utf8string_val = st.arena.Copy(kDomain);
  impl->nii_name.utf8string_len = sizeof kName - 1;
  impl->nii_name.utf8string_val = st.arena.Copy(kName);
  ok.eir_server_impl_id.eir_server_impl_id_len = 1;
  ok.eir_server_impl_id.eir_server_impl_id_val = impl;
  return NFS4_OK;
}

// RFC 8881 §18.36.
nfsstat4 OpCreateSession(CompoundState& st, const CREATE_SESSION4args& args,
                         CREATE_SESSION4res& res) {
  return st.server.state->CreateSession(args, st.principal, st.connection_id,
                                        &res.CREATE_SESSION4res_u.csr_resok4);
}

// RFC 8881 §18.37.
nfsstat4 OpDestroySession(CompoundState& st, const DESTROY_SESSION4args& args,
                          DESTROY_SESSION4res&) {
  std::shared_ptr<state::Session> s;
  if (nfsstat4 e = st.server.state->FindSession(args.dsa_sessionid, &s); e) {
    return e;
  }
  if (st.session == s) {
    // Destroying the session this COMPOUND runs in: it must be the last op.
    if (st.op_index + 1 != st.op_count) return NFS4ERR_NOT_ONLY_OP;
  } else if (!st.session && st.connection_id != 0 &&
             !s->IsBound(st.connection_id)) {
    return NFS4ERR_CONN_NOT_BOUND_TO_SESSION;
  }
  return st.server.state->DestroySession(args.dsa_sessionid);
}

// RFC 8881 §18.50.
nfsstat4 OpDestroyClientId(CompoundState& st,
                           const DESTROY_CLIENTID4args& args,
                           DESTROY_CLIENTID4res&) {
  return st.server.state->DestroyClientId(args.dca_clientid);
}

// RFC 8881 §18.34. The backchannel is not offered yet: a connection asked
// for both directions is bound to the fore channel.
nfsstat4 OpBindConnToSession(CompoundState& st,
                             const BIND_CONN_TO_SESSION4args& args,
                             BIND_CONN_TO_SESSION4res& res) {
  if (args.bctsa_use_conn_in_rdma_mode) return NFS4ERR_INVAL;
  channel_dir_from_server4 dir;
  switch (args.bctsa_dir) {
    case CDFC4_FORE:
    case CDFC4_FORE_OR_BOTH:
      dir = CDFS4_FORE;
      break;
    case CDFC4_BACK:
    case CDFC4_BACK_OR_BOTH:
      dir = CDFS4_BACK;
      break;
    default:
      return NFS4ERR_INVAL;
  }
  if (nfsstat4 e = st.server.state->BindConnection(args.bctsa_sessid,
                                                   st.connection_id);
      e) {
    return e;
  }
  BIND_CONN_TO_SESSION4resok& ok = res.BIND_CONN_TO_SESSION4res_u.bctsr_resok4;
  std::memcpy(ok.bctsr_sessid, args.bctsa_sessid, NFS4_SESSIONID_SIZE);
  ok.bctsr_dir = dir;
  ok.bctsr_use_conn_in_rdma_mode = FALSE;
  return NFS4_OK;
}

// RFC 8881 §18.46, §2.10.6.
nfsstat4 OpSequence(CompoundState& st, const SEQUENCE4args& args,
                    SEQUENCE4res& res) {
  std::shared_ptr<state::Session> s;
  if (nfsstat4 e = st.server.state->FindSession(args.sa_sessionid, &s); e) {
    return e;
  }
  if (nfsstat4 e = CheckSessionLimits(st, *s); e) return e;
  std::vector<uint8_t> replay;
  nfsstat4 err = NFS4_OK;
  switch (s->BeginRequest(args.sa_slotid, args.sa_sequenceid, st.request_hash,
                          &replay, &err)) {
    case state::Session::Begin::kError:
      return err;
    case state::Session::Begin::kReplay:
      st.replay = std::move(replay);
      return NFS4_OK;
    case state::Session::Begin::kNew:
      break;
  }
  st.session = s;
  st.slot = args.sa_slotid;
  st.cache_this = args.sa_cachethis;
  // SP4_NONE: a connection used with a session is bound to it (§2.10.3.1).
  if (st.connection_id != 0) s->BindConnection(st.connection_id);
  s->client()->Renew();
  SEQUENCE4resok& ok = res.SEQUENCE4res_u.sr_resok4;
  std::memcpy(ok.sr_sessionid, args.sa_sessionid, NFS4_SESSIONID_SIZE);
  ok.sr_sequenceid = args.sa_sequenceid;
  ok.sr_slotid = args.sa_slotid;
  ok.sr_highest_slotid = s->slot_count() - 1;
  ok.sr_target_highest_slotid = s->slot_count() - 1;
  ok.sr_status_flags = 0;
  return NFS4_OK;
}

// RFC 8881 §18.51. No grace period yet: nothing to reclaim.
nfsstat4 OpReclaimComplete(CompoundState& st,
                           const RECLAIM_COMPLETE4args& args,
                           RECLAIM_COMPLETE4res&) {
  if (args.rca_one_fs) {
    return st.current_fh ? NFS4_OK : NFS4ERR_NOFILEHANDLE;
  }
  return st.session->client()->MarkReclaimComplete()
             ? NFS4_OK
             : NFS4ERR_COMPLETE_ALREADY;
}

// RFC 8881 §18.48: each stateid checked as any op would, against the
// session's client. Special stateids are never valid here.
nfsstat4 OpTestStateid(CompoundState& st, const TEST_STATEID4args& args,
                       TEST_STATEID4res& res) {
  u_int n = args.ts_stateids.ts_stateids_len;
  TEST_STATEID4resok& ok = res.TEST_STATEID4res_u.tsr_resok4;
  ok.tsr_status_codes.tsr_status_codes_len = n;
  ok.tsr_status_codes.tsr_status_codes_val = st.arena.New<nfsstat4>(n);
  const clientid4 client = st.session->client()->id();
  for (u_int i = 0; i < n; ++i) {
    ok.tsr_status_codes.tsr_status_codes_val[i] =
        st.server.state->opens().Test(client,
                                      args.ts_stateids.ts_stateids_val[i]);
  }
  return NFS4_OK;
}

// RFC 8881 §18.38: frees a lock stateid without locks; open stateids go
// with CLOSE (NFS4ERR_LOCKS_HELD).
nfsstat4 OpFreeStateid(CompoundState& st, const FREE_STATEID4args& args,
                       FREE_STATEID4res&) {
  stateid4 sid = args.fsa_stateid;
  if (state::IsCurrentStateid(sid)) {
    if (!st.current_stateid) return NFS4ERR_BAD_STATEID;
    sid = *st.current_stateid;
  }
  return st.server.state->opens().Free(st.session->client()->id(), sid);
}

}  // namespace nfs41d
