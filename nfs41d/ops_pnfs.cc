// The pNFS operations of the metadata server (RFC 8881 §18.40-§18.44) for
// the file layout type (§13): GETDEVICEINFO, GETDEVICELIST, LAYOUTGET,
// LAYOUTCOMMIT, LAYOUTRETURN. Registry and layout state: pnfs_mds.h.
//
// Layouts are whole-file (offset 0, length all ones), sparse (no
// NFL4_UFLG_DENSE: a data server keeps a file's bytes at their logical
// offsets), with one filehandle for every data server (§13.3: a single
// nfl_fh_list entry applies to all stripe indices), commits to the data
// servers (no NFL4_UFLG_COMMIT_THRU_MDS). Without a data server that is up,
// or for a file whose bytes already live in the MDS's own store, LAYOUTGET
// answers NFS4ERR_LAYOUTUNAVAILABLE and I/O goes through the MDS.

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

#include "nfs41d/ops.h"
#include "nfs41d/ops_util.h"
#include "nfs41d/pnfs_mds.h"
#include "nfs41d/status_map.h"
#include "rpc/log.h"
#include "rpc/xdr_codec.h"

namespace nfs41d {
namespace {

constexpr uint64_t kAllOnes = std::numeric_limits<uint64_t>::max();

// The current filehandle as a regular file: layouts exist only for regular
// files (§12.2.7); a directory is NFS4ERR_ISDIR, other types
// NFS4ERR_WRONG_TYPE (§15.1.2.9: "not the type the operation needs").
nfsstat4 LayoutFile(CompoundState& st, ns::Attr* a) {
  if (nfsstat4 e = AttrOf(st, *st.current_fh, a); e) return e;
  if (a->type == ns::FileType::kDirectory) return NFS4ERR_ISDIR;
  if (a->type != ns::FileType::kRegular) return NFS4ERR_WRONG_TYPE;
  return NFS4_OK;
}

uint64_t ParseTag(const std::vector<ns::Tag>& tags, std::string_view name,
                  uint64_t fallback) {
  for (const ns::Tag& t : tags) {
    if (t.name != name) continue;
    uint64_t v = 0;
    auto [p, ec] =
        std::from_chars(t.value.data(), t.value.data() + t.value.size(), v);
    if (ec == std::errc() && v > 0) return v;
    rpc::log::Warning("pnfs: ignoring tag {}={}", t.name, t.value);
  }
  return fallback;
}

// Picks the device and stripe unit for a new layout of `a`: the stripe
// settings of the tags of the directory it was opened in, else the config; the data servers that
// are up in id order, rotated by the inode number so files spread over
// them.
nfsstat4 NewLayout(CompoundState& st, PnfsMds& mds, const ns::Attr& a,
                   ns::PnfsLayout* out) {
  ns::Result<std::vector<ns::DataServer>> up =
      mds.registry().ListDataServers(/*only_up=*/true);
  if (!up.ok()) return ToNfsStat(up.status());
  if (up->empty()) return NFS4ERR_LAYOUTUNAVAILABLE;
  uint64_t unit = mds.options().stripe_unit;
  uint64_t count = mds.options().stripe_count;
  if (const ns::InodeId dir = mds.DirectoryOf(a.ino); dir != 0) {
    ns::Result<std::vector<ns::Tag>> tags =
        st.server.ns->ListTags(ns::Credentials::Root(), dir);
    if (tags.ok()) {
      unit = ParseTag(*tags, "pnfs.stripe_unit", unit);
      count = ParseTag(*tags, "pnfs.stripe_count", count);
    }
  }
  unit = RoundStripeUnit(unit);
  const size_t n = up->size();
  if (count == 0 || count > n) count = n;
  std::vector<uint64_t> members;
  for (size_t i = 0; i < count; ++i) {
    members.push_back((*up)[(a.ino + i) % n].id);
  }
  ns::Result<ns::PnfsDevice> dev = mds.registry().DeviceFor(members);
  if (!dev.ok()) return ToNfsStat(dev.status());
  ns::Result<ns::PnfsLayout> l =
      mds.registry().SetLayoutIfAbsent({a.ino, dev->id, unit});
  if (!l.ok()) return ToNfsStat(l.status());
  *out = *l;
  return NFS4_OK;
}

// Whether every data server of `device` is up.
nfsstat4 DeviceUsable(PnfsMds& mds, uint64_t device, bool* usable) {
  ns::Result<ns::PnfsDevice> dev = mds.registry().GetDevice(device);
  if (!dev.ok()) return ToNfsStat(dev.status());
  *usable = true;
  for (uint64_t id : dev->data_servers) {
    ns::Result<ns::DataServer> d = mds.registry().GetDataServer(id);
    if (!d.ok() || d->state != ns::DataServerState::kUp) *usable = false;
  }
  return NFS4_OK;
}

}  // namespace

// RFC 8881 §18.43.
nfsstat4 OpLayoutGet(CompoundState& st, const LAYOUTGET4args& args,
                     LAYOUTGET4res& res) {
  PnfsMds* mds = st.server.pnfs;
  if (!mds) return NFS4ERR_LAYOUTUNAVAILABLE;
  if (args.loga_layout_type != LAYOUT4_NFSV4_1_FILES) {
    return NFS4ERR_UNKNOWN_LAYOUTTYPE;
  }
  if (args.loga_iomode != LAYOUTIOMODE4_READ &&
      args.loga_iomode != LAYOUTIOMODE4_RW) {
    return NFS4ERR_BADIOMODE;
  }
  // §18.43.3: minlength beyond length, or a range past the end of the
  // offset space, is NFS4ERR_INVAL.
  if (args.loga_length != kAllOnes &&
      (args.loga_minlength > args.loga_length ||
       args.loga_offset > kAllOnes - args.loga_length)) {
    return NFS4ERR_INVAL;
  }
  if (args.loga_minlength != kAllOnes &&
      args.loga_offset > kAllOnes - args.loga_minlength) {
    return NFS4ERR_INVAL;
  }
  ns::Attr a;
  if (nfsstat4 e = LayoutFile(st, &a); e) return e;
  const clientid4 client = ClientOf(st);
  // §12.5.3: the first LAYOUTGET of a file names an open, lock or
  // delegation stateid; later ones the layout stateid.
  stateid4 sid;
  if (nfsstat4 e = ResolveStateid(st, args.loga_stateid, &sid); e) return e;
  if (mds->IsLayoutStateid(sid)) {
    PnfsMds::Layout held;
    if (nfsstat4 e = mds->FindLayout(client, sid, &held); e) return e;
    if (held.ino != a.ino) return NFS4ERR_BAD_STATEID;
  }
  for (const PnfsMds::Layout& l : mds->LayoutsOf(a.ino)) {
    // §12.5.5.2.1: no new layout while this client's recall is pending.
    if (l.client == client && l.recalled_ns != 0) return NFS4ERR_RECALLCONFLICT;
  }
  if (!mds->IsLayoutStateid(sid)) {
    state::StateInfo info;
    if (nfsstat4 e = st.server.state->opens().Find(client, sid, &info); e) {
      return e;
    }
    if (info.ino != a.ino) return NFS4ERR_BAD_STATEID;
    if (args.loga_iomode == LAYOUTIOMODE4_RW &&
        !(info.access & OPEN4_SHARE_ACCESS_WRITE)) {
      return NFS4ERR_OPENMODE;
    }
  }

  ns::Result<std::optional<ns::PnfsLayout>> have =
      mds->registry().GetLayout(a.ino);
  if (!have.ok()) return ToNfsStat(have.status());
  ns::PnfsLayout layout;
  if (*have) {
    layout = **have;
  } else {
    // Bytes already in the MDS's store stay there (docs/pnfs.md).
    ns::Result<uint64_t> used = st.server.data->SpaceUsed(a.ino);
    if (a.size > 0 || (used.ok() && *used > 0)) {
      return NFS4ERR_LAYOUTUNAVAILABLE;
    }
    if (nfsstat4 e = NewLayout(st, *mds, a, &layout); e) return e;
  }
  // A truncate the data servers have not done yet would cut bytes written
  // through a new layout: wait for it (§18.43.3: LAYOUTTRYLATER is for
  // "temporarily unable to grant").
  ns::Result<std::vector<ns::PnfsWork>> work =
      mds->registry().WorkForFile(a.ino);
  if (!work.ok()) return ToNfsStat(work.status());
  for (const ns::PnfsWork& w : *work) {
    if (w.op == ns::PnfsWorkOp::kTruncate) {
      res.LAYOUTGET4res_u.logr_will_signal_layout_avail = FALSE;
      return NFS4ERR_LAYOUTTRYLATER;
    }
  }
  bool usable = false;
  if (nfsstat4 e = DeviceUsable(*mds, layout.device, &usable); e) return e;
  // A layout naming a data server that is down would only send the client
  // to an address that does not answer: I/O goes through the MDS instead.
  if (!usable) return NFS4ERR_LAYOUTUNAVAILABLE;

  // nfsv4_1_file_layout4 (§13.3) in loc_body.
  nfsv4_1_file_layout4 fl{};
  const auto devid = DeviceIdBytes(layout.device);
  std::memcpy(fl.nfl_deviceid, devid.data(), devid.size());
  fl.nfl_util = static_cast<nfl_util4>(layout.stripe_unit);
  fl.nfl_first_stripe_index = 0;
  fl.nfl_pattern_offset = 0;
  std::vector<uint8_t> dsfh =
      mds->ds_fh().Encode(FileHandle{a.ino, a.generation, 0});
  nfs_fh4 fh{};
  fh.nfs_fh4_len = static_cast<u_int>(dsfh.size());
  fh.nfs_fh4_val = reinterpret_cast<char*>(dsfh.data());
  fl.nfl_fh_list.nfl_fh_list_len = 1;
  fl.nfl_fh_list.nfl_fh_list_val = &fh;
  rpc::XdrEncoder body(64);
  if (!body.Encode(xdr_nfsv4_1_file_layout4, fl)) return NFS4ERR_SERVERFAULT;
  const size_t body_len = body.size();
  // The reply's layout4 array: stateid, return_on_close, count, and the
  // layout with its body (§18.43.3: over loga_maxcount is TOOSMALL).
  if (args.loga_maxcount < 16 + 4 + 4 + 8 + 8 + 4 + 4 + 4 + body_len) {
    return NFS4ERR_TOOSMALL;
  }
  layout4* lo = st.arena.New<layout4>();
  lo->lo_offset = 0;
  lo->lo_length = kAllOnes;
  lo->lo_iomode = args.loga_iomode;
  lo->lo_content.loc_type = LAYOUT4_NFSV4_1_FILES;
  lo->lo_content.loc_body.loc_body_len = static_cast<u_int>(body_len);
  lo->lo_content.loc_body.loc_body_val = st.arena.Bytes(body_len);
  std::memcpy(lo->lo_content.loc_body.loc_body_val, body.data(), body_len);

  LAYOUTGET4resok& ok = res.LAYOUTGET4res_u.logr_resok4;
  // Layouts stay valid after CLOSE; the MDS recalls them when it must.
  ok.logr_return_on_close = FALSE;
  ok.logr_stateid =
      mds->Grant(client, a.ino, a.generation, layout.device, args.loga_iomode,
                 st.server.fh->Encode(*st.current_fh));
  ok.logr_layout.logr_layout_len = 1;
  ok.logr_layout.logr_layout_val = lo;
  st.current_stateid = ok.logr_stateid;
  return NFS4_OK;
}

// RFC 8881 §18.40.
nfsstat4 OpGetDeviceInfo(CompoundState& st, const GETDEVICEINFO4args& args,
                         GETDEVICEINFO4res& res) {
  PnfsMds* mds = st.server.pnfs;
  if (args.gdia_layout_type != LAYOUT4_NFSV4_1_FILES) {
    return NFS4ERR_UNKNOWN_LAYOUTTYPE;
  }
  if (!mds) return NFS4ERR_NOENT;
  std::optional<uint64_t> id =
      DeviceFromBytes(reinterpret_cast<const uint8_t*>(args.gdia_device_id));
  if (!id) return NFS4ERR_NOENT;
  ns::Result<ns::PnfsDevice> dev = mds->registry().GetDevice(*id);
  if (dev.status().IsNotFound()) return NFS4ERR_NOENT;
  if (!dev.ok()) return ToNfsStat(dev.status());

  const size_t n = dev->data_servers.size();
  std::vector<uint32_t> indices(n);
  std::vector<std::string> netids(n), uaddrs(n);
  std::vector<netaddr4> addrs(n);
  std::vector<multipath_list4> paths(n);
  for (size_t i = 0; i < n; ++i) {
    indices[i] = static_cast<uint32_t>(i);
    ns::Result<ns::DataServer> d =
        mds->registry().GetDataServer(dev->data_servers[i]);
    if (!d.ok()) return ToNfsStat(d.status());
    if (!UniversalAddress(d->advertise, &netids[i], &uaddrs[i])) {
      rpc::log::Error("pnfs: data server {} advertises {}: not an address",
                      d->id, d->advertise);
      return NFS4ERR_SERVERFAULT;
    }
    addrs[i].na_r_netid = netids[i].data();
    addrs[i].na_r_addr = uaddrs[i].data();
    paths[i].multipath_list4_len = 1;
    paths[i].multipath_list4_val = &addrs[i];
  }
  nfsv4_1_file_layout_ds_addr4 da{};
  da.nflda_stripe_indices.nflda_stripe_indices_len = static_cast<u_int>(n);
  da.nflda_stripe_indices.nflda_stripe_indices_val = indices.data();
  da.nflda_multipath_ds_list.nflda_multipath_ds_list_len =
      static_cast<u_int>(n);
  da.nflda_multipath_ds_list.nflda_multipath_ds_list_val = paths.data();
  rpc::XdrEncoder body(128);
  if (!body.Encode(xdr_nfsv4_1_file_layout_ds_addr4, da)) {
    return NFS4ERR_SERVERFAULT;
  }
  // §18.40.3: gdia_maxcount bounds the device_addr4 (type, body); too
  // small is NFS4ERR_TOOSMALL with the size needed.
  const uint32_t needed = static_cast<uint32_t>(4 + 4 + body.size());
  if (args.gdia_maxcount < needed) {
    res.GETDEVICEINFO4res_u.gdir_mincount = needed;
    return NFS4ERR_TOOSMALL;
  }
  GETDEVICEINFO4resok& ok = res.GETDEVICEINFO4res_u.gdir_resok4;
  ok.gdir_device_addr.da_layout_type = LAYOUT4_NFSV4_1_FILES;
  ok.gdir_device_addr.da_addr_body.da_addr_body_len =
      static_cast<u_int>(body.size());
  ok.gdir_device_addr.da_addr_body.da_addr_body_val =
      st.arena.Bytes(body.size());
  std::memcpy(ok.gdir_device_addr.da_addr_body.da_addr_body_val, body.data(),
              body.size());
  // §18.40.3: gdir_notification is what of gdia_notify_types the server
  // will send (CB_NOTIFY_DEVICEID, §20.12; pnfs_mds.h).
  const uint32_t asked = args.gdia_notify_types.bitmap4_len > 0
                             ? args.gdia_notify_types.bitmap4_val[0]
                             : 0;
  const uint32_t granted = mds->Subscribe(ClientOf(st), *id, asked);
  ok.gdir_notification.bitmap4_val = st.arena.New<uint32_t>(1);
  ok.gdir_notification.bitmap4_len = granted ? 1 : 0;
  ok.gdir_notification.bitmap4_val[0] = granted;
  return NFS4_OK;
}

// RFC 8881 §18.41. The cookie is the index of the next device in id order;
// the verifier stays zero (device ids are never reused).
nfsstat4 OpGetDeviceList(CompoundState& st, const GETDEVICELIST4args& args,
                         GETDEVICELIST4res& res) {
  if (args.gdla_layout_type != LAYOUT4_NFSV4_1_FILES) {
    return NFS4ERR_UNKNOWN_LAYOUTTYPE;
  }
  if (args.gdla_maxdevices == 0) return NFS4ERR_INVAL;
  static const uint8_t kZero[NFS4_VERIFIER_SIZE] = {};
  if (args.gdla_cookie != 0 &&
      std::memcmp(args.gdla_cookieverf, kZero, NFS4_VERIFIER_SIZE) != 0) {
    return NFS4ERR_NOT_SAME;
  }
  std::vector<ns::PnfsDevice> devs;
  if (st.server.pnfs) {
    ns::Result<std::vector<ns::PnfsDevice>> all =
        st.server.pnfs->registry().ListDevices();
    if (!all.ok()) return ToNfsStat(all.status());
    devs = std::move(*all);
  }
  if (args.gdla_cookie > devs.size()) return NFS4ERR_BAD_COOKIE;
  const size_t from = static_cast<size_t>(args.gdla_cookie);
  const size_t n = std::min<size_t>(devs.size() - from, args.gdla_maxdevices);
  GETDEVICELIST4resok& ok = res.GETDEVICELIST4res_u.gdlr_resok4;
  auto* ids = reinterpret_cast<deviceid4*>(
      st.arena.Bytes(std::max<size_t>(1, n) * sizeof(deviceid4)));
  for (size_t i = 0; i < n; ++i) {
    const auto b = DeviceIdBytes(devs[from + i].id);
    std::memcpy(ids[i], b.data(), b.size());
  }
  ok.gdlr_cookie = from + n;
  std::memset(ok.gdlr_cookieverf, 0, NFS4_VERIFIER_SIZE);
  ok.gdlr_deviceid_list.gdlr_deviceid_list_len = static_cast<u_int>(n);
  ok.gdlr_deviceid_list.gdlr_deviceid_list_val = ids;
  ok.gdlr_eof = from + n == devs.size();
  return NFS4_OK;
}

// RFC 8881 §18.42: the client tells what it wrote through the layout; the
// namespace's size and mtime follow.
nfsstat4 OpLayoutCommit(CompoundState& st, const LAYOUTCOMMIT4args& args,
                        LAYOUTCOMMIT4res& res) {
  PnfsMds* mds = st.server.pnfs;
  ns::Attr a;
  if (nfsstat4 e = LayoutFile(st, &a); e) return e;
  if (args.loca_reclaim && !st.server.state->InGrace()) return NFS4ERR_NO_GRACE;
  if (args.loca_layoutupdate.lou_type != LAYOUT4_NFSV4_1_FILES) {
    return NFS4ERR_UNKNOWN_LAYOUTTYPE;
  }
  // §13.10: the file layout's layoutupdate4 body is empty.
  if (args.loca_layoutupdate.lou_body.lou_body_len != 0) return NFS4ERR_BADXDR;
  if (args.loca_length != kAllOnes &&
      args.loca_offset > kAllOnes - args.loca_length) {
    return NFS4ERR_INVAL;
  }
  if (!mds) return NFS4ERR_BADLAYOUT;
  stateid4 sid;
  if (nfsstat4 e = ResolveStateid(st, args.loca_stateid, &sid); e) return e;
  PnfsMds::Layout held;
  if (!args.loca_reclaim) {
    if (!mds->IsLayoutStateid(sid)) return NFS4ERR_BAD_STATEID;
    if (nfsstat4 e = mds->FindLayout(ClientOf(st), sid, &held); e) return e;
    if (held.ino != a.ino) return NFS4ERR_BADLAYOUT;
    // A write through a READ layout cannot have happened.
    if (held.iomode != LAYOUTIOMODE4_RW &&
        args.loca_last_write_offset.no_newoffset) {
      return NFS4ERR_BADIOMODE;
    }
  }
  std::optional<uint64_t> end;
  if (args.loca_last_write_offset.no_newoffset) {
    const uint64_t last =
        args.loca_last_write_offset.newoffset4_u.no_offset;
    if (last >= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return NFS4ERR_INVAL;
    }
    end = last + 1;
  }
  std::optional<ns::TimeNs> mtime;
  if (args.loca_time_modify.nt_timechanged) {
    const nfstime4& t = args.loca_time_modify.newtime4_u.nt_time;
    if (t.nseconds >= 1000000000u) return NFS4ERR_INVAL;
    mtime = t.seconds * 1000000000 + t.nseconds;
  }
  uint64_t new_size = 0;
  bool changed = false;
  if (nfsstat4 e = CommitLayoutWrites(st.server, a.ino, end, mtime, &new_size,
                                      &changed);
      e) {
    return e;
  }
  st.touched.push_back(a.ino);
  LAYOUTCOMMIT4resok& ok = res.LAYOUTCOMMIT4res_u.locr_resok4;
  ok.locr_newsize.ns_sizechanged = changed ? TRUE : FALSE;
  if (changed) ok.locr_newsize.newsize4_u.ns_size = new_size;
  return NFS4_OK;
}

// RFC 8881 §18.44.
nfsstat4 OpLayoutReturn(CompoundState& st, const LAYOUTRETURN4args& args,
                        LAYOUTRETURN4res& res) {
  PnfsMds* mds = st.server.pnfs;
  if (args.lora_layout_type != LAYOUT4_NFSV4_1_FILES) {
    return NFS4ERR_UNKNOWN_LAYOUTTYPE;
  }
  if (args.lora_iomode != LAYOUTIOMODE4_READ &&
      args.lora_iomode != LAYOUTIOMODE4_RW &&
      args.lora_iomode != LAYOUTIOMODE4_ANY) {
    return NFS4ERR_INVAL;
  }
  if (args.lora_reclaim && !st.server.state->InGrace()) {
    return NFS4ERR_NO_GRACE;
  }
  const clientid4 client = ClientOf(st);
  layoutreturn_stateid& out = res.LAYOUTRETURN4res_u.lorr_stateid;
  out.lrs_present = FALSE;
  switch (args.lora_layoutreturn.lr_returntype) {
    case LAYOUTRETURN4_FILE: {
      if (!st.current_fh) return NFS4ERR_NOFILEHANDLE;
      ns::Attr a;
      if (nfsstat4 e = LayoutFile(st, &a); e) return e;
      const layoutreturn_file4& f =
          args.lora_layoutreturn.layoutreturn4_u.lr_layout;
      if (f.lrf_length != kAllOnes && f.lrf_offset > kAllOnes - f.lrf_length) {
        return NFS4ERR_INVAL;
      }
      if (!mds) return NFS4_OK;
      stateid4 sid;
      if (nfsstat4 e = ResolveStateid(st, f.lrf_stateid, &sid); e) return e;
      PnfsMds::Layout held;
      if (!mds->IsLayoutStateid(sid)) return NFS4ERR_BAD_STATEID;
      nfsstat4 e = mds->FindLayout(client, sid, &held);
      // The stateid of a layout already returned or revoked: nothing is
      // held any more, which is what the client wants.
      if (e == NFS4ERR_BAD_STATEID) return NFS4_OK;
      if (e && e != NFS4ERR_OLD_STATEID) return e;
      if (held.ino != a.ino) return NFS4ERR_BAD_STATEID;
      // We hand out whole-file layouts, so any return ends the layout; the
      // stateid stays absent in the reply when nothing is left (§18.44.3).
      mds->ReturnFile(client, a.ino);
      return NFS4_OK;
    }
    case LAYOUTRETURN4_FSID:
    case LAYOUTRETURN4_ALL:
      // One file system per server: FSID and ALL return the same set.
      if (mds) mds->ReturnAll(client);
      return NFS4_OK;
    default:
      return NFS4ERR_INVAL;
  }
}

}  // namespace nfs41d
