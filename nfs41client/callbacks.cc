#include "nfs41client/client.h"
#include "nfs41client/client_internal.h"

#include <cstring>

namespace nfs41client {

using internal::Zero;

// ------------------------------------------------------ callback service

void Client::ServeCallbacks(uint32_t program) {
  if (!options_.answer_callbacks) return;
  rpc::Program p(program, 1, 1);  // NFS_CB version 1 (RFC 5662)
  p.On(0, [this](const rpc::CallContext& ctx, std::span<const uint8_t>) {
     {
       std::lock_guard lock(cb_mu_);
       ++cb_stats_.cb_null;
       cb_stats_.last_cb_program = ctx.prog;
     }
     cb_cv_.notify_all();
     return rpc::Reply::Void();
   }).On(1, [this](const rpc::CallContext& ctx,
                   std::span<const uint8_t> args) {
    {
      std::lock_guard lock(cb_mu_);
      cb_stats_.last_cb_program = ctx.prog;
    }
    rpc::Reply r = HandleCbCompound(args);
    cb_cv_.notify_all();
    return r;
  });
  rpc_->backchannel().Add(std::move(p));
}

// RFC 8881 §20.9.3: CB_SEQUENCE first, on our current session, on a slot
// of the back channel with the slot's next sequence id; then the ops, until
// the first error.
rpc::Reply Client::HandleCbCompound(std::span<const uint8_t> bytes) {
  rpc::XdrOwned<CB_COMPOUND4args> args(xdr_CB_COMPOUND4args);
  if (!args.DecodeAll(bytes)) return rpc::Reply::GarbageArgs();
  std::lock_guard lock(cb_mu_);
  ++cb_stats_.cb_compound;
  const u_int n = args->argarray.argarray_len;
  std::vector<nfs_cb_resop4> res;
  res.reserve(n);
  nfsstat4 status = NFS4_OK;
  if (args->minorversion != 1) status = NFS4ERR_MINOR_VERS_MISMATCH;
  for (u_int i = 0; i < n && status == NFS4_OK; ++i) {
    const nfs_cb_argop4& op = args->argarray.argarray_val[i];
    nfs_cb_resop4 r = Zero<nfs_cb_resop4>();
    r.resop = op.argop;
    if (op.argop == OP_CB_SEQUENCE) {
      const CB_SEQUENCE4args& a = op.nfs_cb_argop4_u.opcbsequence;
      if (i != 0) {
        status = NFS4ERR_SEQUENCE_POS;
      } else if (std::memcmp(a.csa_sessionid, sessionid_,
                             NFS4_SESSIONID_SIZE) != 0) {
        status = NFS4ERR_BADSESSION;
      } else if (a.csa_slotid >= back_seqids_.size()) {
        status = NFS4ERR_BADSLOT;
      } else if (a.csa_sequenceid != back_seqids_[a.csa_slotid] + 1) {
        status = NFS4ERR_SEQ_MISORDERED;  // no reply cache: no retries
      } else {
        back_seqids_[a.csa_slotid] = a.csa_sequenceid;
        CB_SEQUENCE4resok& ok =
            r.nfs_cb_resop4_u.opcbsequence.CB_SEQUENCE4res_u.csr_resok4;
        std::memcpy(ok.csr_sessionid, a.csa_sessionid, NFS4_SESSIONID_SIZE);
        ok.csr_sequenceid = a.csa_sequenceid;
        ok.csr_slotid = a.csa_slotid;
        ok.csr_highest_slotid = static_cast<uint32_t>(back_seqids_.size() - 1);
        ok.csr_target_highest_slotid = ok.csr_highest_slotid;
      }
      cb_stats_.last_sequence_status = status;
      (status == NFS4_OK ? cb_stats_.cb_sequence_ok
                         : cb_stats_.cb_sequence_bad)++;
    } else if (i == 0) {
      status = NFS4ERR_OP_NOT_IN_SESSION;
    } else if (op.argop == OP_CB_RECALL_ANY) {
      const CB_RECALL_ANY4args& a = op.nfs_cb_argop4_u.opcbrecall_any;
      ++cb_stats_.cb_recall_any;
      cb_stats_.last_objects_to_keep = a.craa_objects_to_keep;
      cb_stats_.last_type_mask = a.craa_type_mask.bitmap4_len > 0
                                     ? a.craa_type_mask.bitmap4_val[0]
                                     : 0;
    } else if (op.argop == OP_CB_LAYOUTRECALL) {
      // Recorded and accepted: a test returns the layout itself
      // (LAYOUTRETURN), as a real client would after the callback.
      const CB_LAYOUTRECALL4args& a = op.nfs_cb_argop4_u.opcblayoutrecall;
      ++cb_stats_.cb_layoutrecall;
      cb_stats_.last_layoutrecall_type = a.clora_recall.lor_recalltype;
      if (a.clora_recall.lor_recalltype == LAYOUTRECALL4_FILE) {
        const layoutrecall_file4& f = a.clora_recall.layoutrecall4_u.lor_layout;
        cb_stats_.last_layoutrecall_fh.assign(
            f.lor_fh.nfs_fh4_val, f.lor_fh.nfs_fh4_val + f.lor_fh.nfs_fh4_len);
        cb_stats_.last_layoutrecall_stateid = f.lor_stateid;
      }
    } else if (op.argop == OP_CB_NOTIFY_DEVICEID) {
      status = RecordDeviceNotify(op.nfs_cb_argop4_u.opcbnotify_deviceid);
    } else {
      status = NFS4ERR_NOTSUPP;
    }
    // Every arm of nfs_cb_resop4 starts with its status (the decoder only
    // accepts known operations, so every resop has an arm).
    std::memcpy(&r.nfs_cb_resop4_u, &status, sizeof status);
    res.push_back(r);
  }
  CB_COMPOUND4res out = Zero<CB_COMPOUND4res>();
  out.status = status;
  out.tag = args->tag;
  out.resarray.resarray_len = static_cast<u_int>(res.size());
  out.resarray.resarray_val = res.data();
  rpc::XdrEncoder enc(128);
  if (!enc.Encode(xdr_CB_COMPOUND4res, out)) return rpc::Reply::SystemErr();
  return rpc::Reply::Success(enc.Take());
}

// §20.12: each notify4 has one type bit in notify_mask and that type's
// XDR value in notify_vals. A value that does not decode is
// NFS4ERR_BADXDR; an unknown type, NFS4ERR_INVAL.
nfsstat4 Client::RecordDeviceNotify(const CB_NOTIFY_DEVICEID4args& a) {
  ++cb_stats_.cb_notify_deviceid;
  for (u_int i = 0; i < a.cnda_changes.cnda_changes_len; ++i) {
    const notify4& n = a.cnda_changes.cnda_changes_val[i];
    const uint32_t mask =
        n.notify_mask.bitmap4_len > 0 ? n.notify_mask.bitmap4_val[0] : 0;
    const std::span<const uint8_t> vals(
        reinterpret_cast<const uint8_t*>(n.notify_vals.notifylist4_val),
        n.notify_vals.notifylist4_len);
    CallbackStats::DeviceChange c;
    if (mask == (1u << NOTIFY_DEVICEID4_CHANGE)) {
      rpc::XdrOwned<notify_deviceid_change4> v(xdr_notify_deviceid_change4);
      if (!v.DecodeAll(vals)) return NFS4ERR_BADXDR;
      c.type = NOTIFY_DEVICEID4_CHANGE;
      std::memcpy(c.device.data(), v->ndc_deviceid, c.device.size());
      c.immediate = v->ndc_immediate;
    } else if (mask == (1u << NOTIFY_DEVICEID4_DELETE)) {
      rpc::XdrOwned<notify_deviceid_delete4> v(xdr_notify_deviceid_delete4);
      if (!v.DecodeAll(vals)) return NFS4ERR_BADXDR;
      c.type = NOTIFY_DEVICEID4_DELETE;
      std::memcpy(c.device.data(), v->ndd_deviceid, c.device.size());
    } else {
      return NFS4ERR_INVAL;
    }
    // Bounded: a test reads them long before this many arrive.
    if (cb_stats_.device_changes.size() < 4096) {
      cb_stats_.device_changes.push_back(c);
    }
  }
  return NFS4_OK;
}

CallbackStats Client::callback_stats() {
  std::lock_guard lock(cb_mu_);
  return cb_stats_;
}

bool Client::WaitForCallbacks(
    const std::function<bool(const CallbackStats&)>& pred,
    std::chrono::milliseconds timeout) {
  std::unique_lock lock(cb_mu_);
  return cb_cv_.wait_for(lock, timeout, [&] { return pred(cb_stats_); });
}

}  // namespace nfs41client
