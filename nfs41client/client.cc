#include "nfs41client/client.h"
#include "nfs41client/client_internal.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace nfs41client {

using internal::Zero;

namespace {

std::atomic<uint64_t> g_owner_counter{0};

}  // namespace

// ----------------------------------------------------------------- Client

rpc::Result<std::unique_ptr<Client>> Client::Connect(const std::string& host,
                                                     uint16_t port,
                                                     ClientOptions options) {
  if (options.owner.empty()) {
    options.owner = "nfs41client-" + std::to_string(getpid()) + "-" +
                    std::to_string(g_owner_counter.fetch_add(1));
  }
  std::unique_ptr<Client> c(new Client(std::move(options)));
  rpc::ClientOptions ro;
  ro.cred = c->options_.cred;
  ro.call_timeout = c->options_.timeout;
  ro.local_host = c->options_.local_host;
  auto rc = rpc::Client::Connect(host, port, ro);
  if (!rc.ok()) return rc.status();
  c->rpc_ = std::move(rc).value();
  c->ServeCallbacks(c->options_.cb_program);
  return c;
}

rpc::Status Client::Reconnect(const std::string& host, uint16_t port) {
  rpc::ClientOptions ro;
  ro.cred = options_.cred;
  ro.call_timeout = options_.timeout;
  auto rc = rpc::Client::Connect(host, port, ro);
  if (!rc.ok()) return rc.status();
  if (rpc_) rpc_->Close();
  rpc_ = std::move(rc).value();
  ServeCallbacks(options_.cb_program);
  return rpc::Status::Ok();
}

Client::~Client() {
  if (rpc_) rpc_->Close();
}

rpc::Result<Reply> Client::CallRaw(std::vector<uint8_t> args) {
  rpc::Result<rpc::ReplyBody> r =
      rpc_->Call(NFS4_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, std::move(args));
  if (!r.ok()) return r.status();
  Reply reply;
  if (!reply.Decode(std::move(r).value())) {
    return rpc::Status::Malformed("COMPOUND4res does not decode");
  }
  return reply;
}

rpc::Result<Reply> Client::CallNoSession(const Compound& c, uint32_t minor) {
  return CallRaw(c.Encode(minor, nullptr));
}

std::vector<uint8_t> Client::SequenceOp(uint32_t slot, uint32_t seqid,
                                        bool cache_this) const {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_SEQUENCE;
  SEQUENCE4args& a = op.nfs_argop4_u.opsequence;
  std::memcpy(a.sa_sessionid, sessionid_, NFS4_SESSIONID_SIZE);
  a.sa_sequenceid = seqid;
  a.sa_slotid = slot;
  a.sa_highest_slotid = slots_ ? slots_ - 1 : 0;
  a.sa_cachethis = cache_this;
  rpc::XdrEncoder enc(64);
  enc.Encode(xdr_nfs_argop4, op);
  return enc.Take();
}

uint32_t Client::AcquireSlot() {
  std::unique_lock lock(mu_);
  for (;;) {
    for (uint32_t i = 0; i < busy_.size(); ++i) {
      if (!busy_[i]) {
        busy_[i] = true;
        return i;
      }
    }
    cv_.wait(lock);
  }
}

void Client::ReleaseSlot(uint32_t slot) {
  {
    std::lock_guard lock(mu_);
    busy_[slot] = false;
  }
  cv_.notify_one();
}

uint32_t Client::slot_seqid(uint32_t slot) {
  std::lock_guard lock(mu_);
  return slot < seqids_.size() ? seqids_[slot] : 0;
}

rpc::Result<Reply> Client::Call(const Compound& c, bool cache_this) {
  if (slots_ == 0) return rpc::Status::InvalidArgument("no session");
  uint32_t slot = AcquireSlot();
  uint32_t seqid;
  {
    std::lock_guard lock(mu_);
    seqid = ++seqids_[slot];
  }
  std::vector<uint8_t> seq = SequenceOp(slot, seqid, cache_this);
  rpc::Result<Reply> r = CallRaw(c.Encode(1, &seq));
  // A SEQUENCE that failed did not consume the sequence id.
  if (r.ok() && r->size() > 0 && r->op(0).resop == OP_SEQUENCE &&
      r->op_status(0) != NFS4_OK) {
    std::lock_guard lock(mu_);
    --seqids_[slot];
  } else if (r.ok() && r->size() > 0 && r->op(0).resop == OP_SEQUENCE) {
    last_status_flags_.store(r->op(0)
                                 .nfs_resop4_u.opsequence.SEQUENCE4res_u
                                 .sr_resok4.sr_status_flags);
  }
  ReleaseSlot(slot);
  return r;
}

rpc::Result<Reply> Client::CallOnSlot(const Compound& c, uint32_t slot,
                                      uint32_t seqid, bool cache_this) {
  std::vector<uint8_t> seq = SequenceOp(slot, seqid, cache_this);
  return CallRaw(c.Encode(1, &seq));
}

nfsstat4 Client::ExchangeId(uint32_t flags) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_EXCHANGE_ID;
  EXCHANGE_ID4args& a = op.nfs_argop4_u.opexchange_id;
  for (int i = 0; i < NFS4_VERIFIER_SIZE; ++i) {
    a.eia_clientowner.co_verifier[i] =
        static_cast<char>(options_.verifier >> (8 * (7 - i)));
  }
  a.eia_clientowner.co_ownerid.co_ownerid_len =
      static_cast<u_int>(options_.owner.size());
  a.eia_clientowner.co_ownerid.co_ownerid_val = options_.owner.data();
  a.eia_flags = flags;
  a.eia_state_protect.spa_how = SP4_NONE;
  Compound c;
  c.Op(op);
  rpc::Result<Reply> r = CallNoSession(c);
  if (!r.ok()) return NFS4ERR_IO;
  if (r->status() != NFS4_OK) return r->status();
  const EXCHANGE_ID4resok& ok =
      r->op(0).nfs_resop4_u.opexchange_id.EXCHANGE_ID4res_u.eir_resok4;
  clientid_ = ok.eir_clientid;
  cs_seq_ = ok.eir_sequenceid;
  exchange_flags_ = ok.eir_flags;
  return NFS4_OK;
}

nfsstat4 Client::CreateSession() {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_CREATE_SESSION;
  CREATE_SESSION4args& a = op.nfs_argop4_u.opcreate_session;
  a.csa_clientid = clientid_;
  a.csa_sequence = cs_seq_;
  a.csa_flags = options_.back_channel ? CREATE_SESSION4_FLAG_CONN_BACK_CHAN : 0;
  // Callbacks come with AUTH_NONE (§18.36.3: csa_sec_parms).
  callback_sec_parms4 sec = Zero<callback_sec_parms4>();
  sec.cb_secflavor = AUTH_NONE;
  a.csa_sec_parms.csa_sec_parms_len = 1;
  a.csa_sec_parms.csa_sec_parms_val = &sec;
  channel_attrs4& f = a.csa_fore_chan_attrs;
  f.ca_maxrequestsize = options_.max_request_size;
  f.ca_maxresponsesize = options_.max_response_size;
  f.ca_maxresponsesize_cached = options_.max_response_size_cached;
  f.ca_maxoperations = options_.max_operations;
  f.ca_maxrequests = options_.slots;
  channel_attrs4& b = a.csa_back_chan_attrs;
  b.ca_maxrequestsize = 4096;
  b.ca_maxresponsesize = 4096;
  b.ca_maxresponsesize_cached = 0;
  b.ca_maxoperations = 4;
  b.ca_maxrequests = options_.back_slots;
  a.csa_cb_program = options_.cb_program;
  Compound c;
  c.Op(op);
  rpc::Result<Reply> r = CallNoSession(c);
  if (!r.ok()) return NFS4ERR_IO;
  if (r->status() != NFS4_OK) return r->status();
  const CREATE_SESSION4resok& ok =
      r->op(0).nfs_resop4_u.opcreate_session.CREATE_SESSION4res_u.csr_resok4;
  {
    // The callback service must know the session before the server's
    // first CB_SEQUENCE on it.
    std::lock_guard cb(cb_mu_);
    std::memcpy(sessionid_, ok.csr_sessionid, NFS4_SESSIONID_SIZE);
    back_seqids_.assign(std::max(1u, ok.csr_back_chan_attrs.ca_maxrequests),
                        0);
  }
  ++cs_seq_;
  std::lock_guard lock(mu_);
  slots_ = ok.csr_fore_chan_attrs.ca_maxrequests;
  seqids_.assign(slots_, 0);
  busy_.assign(slots_, false);
  return NFS4_OK;
}

nfsstat4 Client::EstablishSession() {
  if (nfsstat4 s = ExchangeId(); s != NFS4_OK) return s;
  return CreateSession();
}

nfsstat4 Client::DestroySession() {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_DESTROY_SESSION;
  std::memcpy(op.nfs_argop4_u.opdestroy_session.dsa_sessionid, sessionid_,
              NFS4_SESSIONID_SIZE);
  Compound c;
  c.Op(op);
  rpc::Result<Reply> r = CallNoSession(c);
  if (!r.ok()) return NFS4ERR_IO;
  if (r->status() == NFS4_OK) slots_ = 0;
  return r->status();
}

nfsstat4 Client::BindConnToSession(channel_dir_from_client4 want,
                                   channel_dir_from_server4* dir) {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_BIND_CONN_TO_SESSION;
  BIND_CONN_TO_SESSION4args& a = op.nfs_argop4_u.opbind_conn_to_session;
  std::memcpy(a.bctsa_sessid, sessionid_, NFS4_SESSIONID_SIZE);
  a.bctsa_dir = want;
  a.bctsa_use_conn_in_rdma_mode = FALSE;
  Compound c;
  c.Op(op);
  rpc::Result<Reply> r = CallNoSession(c);
  if (!r.ok()) return NFS4ERR_IO;
  if (r->status() == NFS4_OK && dir != nullptr) {
    *dir = r->op(0)
               .nfs_resop4_u.opbind_conn_to_session
               .BIND_CONN_TO_SESSION4res_u.bctsr_resok4.bctsr_dir;
  }
  return r->status();
}

nfsstat4 Client::BackchannelCtl(uint32_t program, bool sys) {
  if (program != options_.cb_program) {
    ServeCallbacks(program);
    options_.cb_program = program;
  }
  auto op = Zero<nfs_argop4>();
  op.argop = OP_BACKCHANNEL_CTL;
  BACKCHANNEL_CTL4args& a = op.nfs_argop4_u.opbackchannel_ctl;
  a.bca_cb_program = program;
  callback_sec_parms4 sec = Zero<callback_sec_parms4>();
  char machine[] = "nfs41client";
  if (sys) {
    sec.cb_secflavor = AUTH_SYS;
    authsys_parms& p = sec.callback_sec_parms4_u.cbsp_sys_cred;
    p.aup_machname = machine;
    p.aup_uid = 0;
    p.aup_gid = 0;
    p.aup_len = 0;
    p.aup_gids = nullptr;
  } else {
    sec.cb_secflavor = AUTH_NONE;
  }
  a.bca_sec_parms.bca_sec_parms_len = 1;
  a.bca_sec_parms.bca_sec_parms_val = &sec;
  Compound c;
  c.Op(op);
  rpc::Result<Reply> r = Call(c);
  if (!r.ok()) return NFS4ERR_IO;
  return r->status();
}

nfsstat4 Client::DestroyClientId() {
  auto op = Zero<nfs_argop4>();
  op.argop = OP_DESTROY_CLIENTID;
  op.nfs_argop4_u.opdestroy_clientid.dca_clientid = clientid_;
  Compound c;
  c.Op(op);
  rpc::Result<Reply> r = CallNoSession(c);
  if (!r.ok()) return NFS4ERR_IO;
  return r->status();
}

}  // namespace nfs41client
