// Sessions and client state: EXCHANGE_ID, CREATE_SESSION, SEQUENCE,
// DESTROY_SESSION, DESTROY_CLIENTID, BIND_CONN_TO_SESSION,
// RECLAIM_COMPLETE, TEST_STATEID, FREE_STATEID (RFC 8881 §18.33-§18.51).
// The record keeping lives in state/state_manager.cc; these handlers map
// arguments and results.

#include <cstring>

#include "nfs41d/callback.h"
#include "nfs41d/ops.h"
#include "rpc/connection.h"

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
  if (st.server.pnfs) {
    // RFC 8881 §13.1: a metadata server says USE_PNFS_MDS; not together
    // with USE_NON_PNFS (the Linux client refuses both at once). It still
    // serves READ/WRITE itself for files without a layout.
    ok.eir_flags = (ok.eir_flags & ~EXCHGID4_FLAG_MASK_PNFS) |
                   EXCHGID4_FLAG_USE_PNFS_MDS;
  }
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
  // §18.36.3: the back channel needs a callback flavor we can send; without
  // one the session is made without it (the client learns from csr_flags).
  CREATE_SESSION4args a = args;
  rpc::Credential cb_cred;
  if ((a.csa_flags & CREATE_SESSION4_FLAG_CONN_BACK_CHAN) &&
      (!ChooseCallbackCredential(a.csa_sec_parms.csa_sec_parms_val,
                                 a.csa_sec_parms.csa_sec_parms_len,
                                 &cb_cred) ||
       st.call == nullptr || !st.call->connection)) {
    a.csa_flags &= ~CREATE_SESSION4_FLAG_CONN_BACK_CHAN;
  }
  CREATE_SESSION4resok& ok = res.CREATE_SESSION4res_u.csr_resok4;
  nfsstat4 s = st.server.state->CreateSession(a, st.principal,
                                              st.connection_id, &ok);
  if (s != NFS4_OK) return s;
  std::shared_ptr<state::Session> session;
  if (st.server.state->FindSession(ok.csr_sessionid, &session) != NFS4_OK) {
    return NFS4_OK;  // a replayed reply of a session destroyed since
  }
  if ((ok.csr_flags & CREATE_SESSION4_FLAG_CONN_BACK_CHAN) &&
      session->cb_path() == state::Session::CbPath::kDown &&
      !session->BackConnection()) {
    session->SetCallbackProgram(a.csa_cb_program, cb_cred);
    session->BindBackChannel(st.call->connection);
    // §18.36.3 lets the server check the path; a CB_NULL probe tells
    // SEQUENCE whether to report SEQ4_STATUS_CB_PATH_DOWN.
    ProbeBackchannel(session, st.server.state->options().callback_timeout);
  }
  return NFS4_OK;
}

// RFC 8881 §18.33: a new callback program and security for the session's
// back channel.
nfsstat4 OpBackchannelCtl(CompoundState& st, const BACKCHANNEL_CTL4args& args,
                          BACKCHANNEL_CTL4res&) {
  rpc::Credential cred;
  if (!ChooseCallbackCredential(args.bca_sec_parms.bca_sec_parms_val,
                                args.bca_sec_parms.bca_sec_parms_len, &cred)) {
    return NFS4ERR_INVAL;  // no flavor the server can use (§18.33.3)
  }
  st.session->SetCallbackProgram(args.bca_cb_program, cred);
  if (st.session->BackConnection()) {
    ProbeBackchannel(st.session, st.server.state->options().callback_timeout);
  }
  return NFS4_OK;
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

// RFC 8881 §18.34. FORE_OR_BOTH binds the fore channel only and
// BACK_OR_BOTH both (the server may pick either of the "or both" answers):
// a client asking for the back channel gets it, so callbacks have a path.
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
      dir = CDFS4_BACK;
      break;
    case CDFC4_BACK_OR_BOTH:
      dir = CDFS4_BOTH;
      break;
    default:
      return NFS4ERR_INVAL;
  }
  std::shared_ptr<state::Session> session;
  if (nfsstat4 e = st.server.state->FindSession(args.bctsa_sessid, &session);
      e) {
    return e;
  }
  const bool back = dir == CDFS4_BACK || dir == CDFS4_BOTH;
  if (back && (st.call == nullptr || !st.call->connection)) {
    return NFS4ERR_INVAL;  // no transport connection to call back on
  }
  if (dir != CDFS4_BACK) {
    if (nfsstat4 e = st.server.state->BindConnection(args.bctsa_sessid,
                                                     st.connection_id);
        e) {
      return e;
    }
  } else {
    session->client()->Renew();
  }
  if (back) {
    session->BindBackChannel(st.call->connection);
    ProbeBackchannel(session, st.server.state->options().callback_timeout);
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
  // SP4_NONE: a connection used with a session is bound to it
  // (§2.10.3.1); BeginRequest binds it when the request is new.
  switch (s->BeginRequest(args.sa_slotid, args.sa_sequenceid, st.request_hash,
                          &replay, &err, st.connection_id)) {
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
  s->client()->Renew();
  SEQUENCE4resok& ok = res.SEQUENCE4res_u.sr_resok4;
  std::memcpy(ok.sr_sessionid, args.sa_sessionid, NFS4_SESSIONID_SIZE);
  ok.sr_sequenceid = args.sa_sequenceid;
  ok.sr_slotid = args.sa_slotid;
  ok.sr_highest_slotid = s->slot_count() - 1;
  ok.sr_target_highest_slotid = s->slot_count() - 1;
  // §18.46.3: tell the client when callbacks cannot reach it.
  ok.sr_status_flags = st.server.state->CbStatusFlags(*s);
  return NFS4_OK;
}

// RFC 8881 §18.51. rca_one_fs: one file system has nothing of its own to
// reclaim here (no file system migration), so it is accepted as is.
nfsstat4 OpReclaimComplete(CompoundState& st,
                           const RECLAIM_COMPLETE4args& args,
                           RECLAIM_COMPLETE4res&) {
  if (args.rca_one_fs) {
    return st.current_fh ? NFS4_OK : NFS4ERR_NOFILEHANDLE;
  }
  return st.server.state->ReclaimComplete(*st.session->client());
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
