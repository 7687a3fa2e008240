// The MDS side of pNFS (pnfs_mds.h): the NSCTL control program, data-server
// expiry, layout stateids and CB_LAYOUTRECALL.

#include "nfs41d/pnfs_mds.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <set>

#include "nfs41d/callback.h"
#include "pnfs/auth.h"
#include "pnfs/nsctl.h"
#include "rpc/connection.h"
#include "rpc/log.h"
#include "rpc/xdr_codec.h"

namespace nfs41d {
namespace {

ns::TimeNs WallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Hex(const uint8_t* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}

// Encodes an rpcgen result, or SYSTEM_ERR if it does not encode (a bug).
template <typename T>
rpc::Reply Encode(rpc::XdrFn<T> fn, const T& v) {
  rpc::XdrEncoder enc(64);
  if (!enc.Encode(fn, v)) return rpc::Reply::SystemErr();
  return rpc::Reply::Success(enc.Take());
}

nsctl_status FromNs(const ns::Status& s) {
  if (s.IsInvalid()) return NSCTL_ERR_INVAL;
  if (s.IsNotFound()) return NSCTL_ERR_UNKNOWN_DEVICE;
  if (s.IsUnavailable()) return NSCTL_ERR_DELAY;
  return NSCTL_ERR_SERVERFAULT;
}

// "host:port" must have a port: the MDS and clients connect there.
bool ValidHostPort(const char* s) {
  std::string hp = s ? s : "";
  const size_t colon = hp.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == hp.size()) {
    return false;
  }
  const std::string port = hp.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != port.npos) {
    return false;
  }
  const unsigned long p = std::stoul(port);
  return p > 0 && p < 65536;
}

// Whether a control request's proof matches `want`; logs one that does not
// (a peer without the key: someone else's data server, or an attack).
bool ProofOk(const pnfs::Proof& want, const char* proof, const char* what) {
  if (pnfs::ProofMatches(
          want, std::span<const uint8_t>(
                    reinterpret_cast<const uint8_t*>(proof), NSCTL_PROOF_LEN))) {
    return true;
  }
  rpc::log::Warning("nsctl: {} with a bad proof", what);
  return false;
}

// Sends `ops` (after CB_SEQUENCE) to client `id` over the first of its
// sessions with a back connection that delivers it (§20.9.3).
CbResult SendToClient(state::StateManager& state, clientid4 id,
                      std::span<const nfs_cb_argop4> ops) {
  CbResult last;
  last.status = NFS4ERR_CB_PATH_DOWN;
  std::shared_ptr<state::Client> c = state.FindClient(id);
  if (!c) {
    last.status = NFS4ERR_STALE_CLIENTID;
    return last;
  }
  for (const auto& s : state.SessionsOf(*c)) {
    if (!s->BackConnection()) continue;
    last = SendCbCompound(*s, ops, state.options().callback_timeout);
    if (last.status != NFS4ERR_CB_PATH_DOWN) break;
  }
  return last;
}

}  // namespace

uint64_t RoundStripeUnit(uint64_t unit) {
  constexpr uint64_t kPage = 4096;
  constexpr uint64_t kMax = 0x80000000u;  // fits nfl_util4 (32 bits)
  unit = std::max(kPage, (unit + kPage - 1) / kPage * kPage);
  return std::min(unit, kMax);
}

std::array<uint8_t, NFS4_DEVICEID4_SIZE> DeviceIdBytes(uint64_t device) {
  std::array<uint8_t, NFS4_DEVICEID4_SIZE> out{};
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(device >> (56 - 8 * i));
  return out;
}

std::optional<uint64_t> DeviceFromBytes(const uint8_t* bytes) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | bytes[i];
  for (int i = 8; i < NFS4_DEVICEID4_SIZE; ++i) {
    if (bytes[i] != 0) return std::nullopt;
  }
  if (v == 0) return std::nullopt;
  return v;
}

bool UniversalAddress(const std::string& host_port, std::string* netid,
                      std::string* uaddr) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = host_port.substr(0, colon);
  const std::string port_s = host_port.substr(colon + 1);
  if (port_s.empty() || port_s.size() > 5 ||
      port_s.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  const unsigned port = static_cast<unsigned>(std::stoul(port_s));
  if (port == 0 || port > 65535) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string suffix =
      "." + std::to_string(port >> 8) + "." + std::to_string(port & 255);
  in_addr a4{};
  in6_addr a6{};
  char buf[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    inet_ntop(AF_INET, &a4, buf, sizeof buf);
    *netid = "tcp";
    *uaddr = buf + suffix;
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
    inet_ntop(AF_INET6, &a6, buf, sizeof buf);
    *netid = "tcp6";
    *uaddr = buf + suffix;
    return true;
  }
  // A name: clients need an address (netaddr4 carries no names).
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res) {
    return false;
  }
  const auto* sin = reinterpret_cast<const sockaddr_in*>(res->ai_addr);
  inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
  freeaddrinfo(res);
  *netid = "tcp";
  *uaddr = buf + suffix;
  return true;
}

PnfsMds::PnfsMds(PnfsOptions options, std::array<uint8_t, kFhSecretBytes> key,
                 ns::Namespace* ns, state::StateManager* state)
    : options_(std::move(options)),
      key_(key),
      ds_fh_(key),
      ns_(ns),
      state_(state),
      registry_(ns) {
  options_.stripe_unit = RoundStripeUnit(options_.stripe_unit);
  std::random_device rd;
  instance_ = rd();
  auto all = registry_.ListDataServers();
  any_registered_ = all.ok() && !all->empty();
  if (all.ok()) {
    for (const ns::DataServer& d : *all) {
      if (d.state == ns::DataServerState::kDown) down_.insert(d.id);
    }
  }
}

PnfsMds::~PnfsMds() { Stop(); }

rpc::Program PnfsMds::MakeNsctlProgram() {
  rpc::Program p(NSCTL_PROG, NSCTL_V1, NSCTL_V1);
  p.WithNull();
  p.On(NSCTL_REGISTER, [this](const rpc::CallContext&,
                              std::span<const uint8_t> args) -> rpc::Reply {
    rpc::XdrOwned<nsctl_register_args> a(xdr_nsctl_register_args);
    if (!a.DecodeAll(args)) return rpc::Reply::GarbageArgs();
    const nsctl_register_args& r = a.get();
    nsctl_register_res res{};
    const auto* uuid = reinterpret_cast<const uint8_t*>(r.ds_uuid.ds_uuid_val);
    const pnfs::Proof want = pnfs::RegisterProof(
        key_, std::span<const uint8_t>(uuid, r.ds_uuid.ds_uuid_len),
        r.advertise ? r.advertise : "", r.listen ? r.listen : "");
    if (!ProofOk(want, r.proof, "register")) {
      res.status = NSCTL_ERR_AUTH;
      return Encode(xdr_nsctl_register_res, res);
    }
    if (r.ds_uuid.ds_uuid_len == 0 || !ValidHostPort(r.advertise) ||
        !ValidHostPort(r.listen)) {
      res.status = NSCTL_ERR_INVAL;
      return Encode(xdr_nsctl_register_res, res);
    }
    const std::string hex = Hex(uuid, r.ds_uuid.ds_uuid_len);
    // The row before this registration, to tell clients when the address
    // they were given changed (a small table; registrations are rare).
    std::optional<std::string> old_advertise;
    if (auto all = registry_.ListDataServers(); all.ok()) {
      for (const ns::DataServer& x : *all) {
        if (x.uuid == hex) old_advertise = x.advertise;
      }
    }
    ns::Result<ns::DataServer> d = registry_.Register(
        hex, r.advertise, r.listen, r.bytes_total, r.bytes_free, WallNs());
    if (!d.ok()) {
      res.status = FromNs(d.status());
      if (res.status == NSCTL_ERR_UNKNOWN_DEVICE) {
        res.status = NSCTL_ERR_SERVERFAULT;
      }
      return Encode(xdr_nsctl_register_res, res);
    }
    any_registered_ = true;
    rpc::log::Info("nsctl: data server {} registered (advertise {}, listen {})",
                   d->id, d->advertise, d->listen);
    if (old_advertise && *old_advertise != d->advertise) {
      // §20.12: the device's address list changed; the old address may
      // not answer any more, so the change is immediate.
      rpc::log::Info("nsctl: data server {} moved from {} to {}", d->id,
                     *old_advertise, d->advertise);
      {
        std::lock_guard lock(mu_);
        down_.erase(d->id);
      }
      DataServerChanged(d->id, /*immediate=*/true);
    } else {
      NoteAlive(d->id);
    }
    res.status = NSCTL_OK;
    res.nsctl_register_res_u.ok.device_id = d->id;
    res.nsctl_register_res_u.ok.heartbeat_seconds = options_.heartbeat_seconds;
    res.nsctl_register_res_u.ok.expire_seconds = options_.expire_seconds;
    return Encode(xdr_nsctl_register_res, res);
  });
  p.On(NSCTL_HEARTBEAT, [this](const rpc::CallContext& ctx,
                               std::span<const uint8_t> args) -> rpc::Reply {
    rpc::XdrOwned<nsctl_heartbeat_args> a(xdr_nsctl_heartbeat_args);
    if (!a.DecodeAll(args)) return rpc::Reply::GarbageArgs();
    const nsctl_heartbeat_args& h = a.get();
    nsctl_heartbeat_res res{};
    const auto* uuid = reinterpret_cast<const uint8_t*>(h.ds_uuid.ds_uuid_val);
    const pnfs::Proof want = pnfs::HeartbeatProof(
        key_, h.device_id,
        std::span<const uint8_t>(uuid, h.ds_uuid.ds_uuid_len));
    if (!ProofOk(want, h.proof, "heartbeat")) {
      res.status = NSCTL_ERR_AUTH;
      return Encode(xdr_nsctl_heartbeat_res, res);
    }
    if (h.ds_uuid.ds_uuid_len == 0) {
      res.status = NSCTL_ERR_INVAL;
      return Encode(xdr_nsctl_heartbeat_res, res);
    }
    std::vector<uint64_t> done;
    for (u_int i = 0; i < h.done.done_len; ++i) {
      const nsctl_done& d = h.done.done_val[i];
      // A failed item stays queued and is handed out again, except one the
      // data server does not know (an older data server and
      // NSCTL_INVENTORY): it would fail forever.
      if (d.error == 0) {
        done.push_back(d.work_id);
      } else if (d.error == EOPNOTSUPP) {
        rpc::log::Warning("nsctl: data server {} cannot do work {}: dropped",
                          h.device_id, d.work_id);
        done.push_back(d.work_id);
      } else {
        rpc::log::Warning("nsctl: data server {} failed work {}: errno {}",
                          h.device_id, d.work_id, d.error);
      }
    }
    ns::Result<std::vector<ns::PnfsWork>> w = registry_.Heartbeat(
        h.device_id, Hex(uuid, h.ds_uuid.ds_uuid_len), h.bytes_total,
        h.bytes_free, done, NSCTL_WORK_MAX, WallNs());
    if (!w.ok()) {
      res.status = FromNs(w.status());
      return Encode(xdr_nsctl_heartbeat_res, res);
    }
    NoteAlive(h.device_id);
    NoteControlConnection(h.device_id, ctx.connection);
    std::vector<nsctl_work> items(w->size());
    for (size_t i = 0; i < w->size(); ++i) {
      const ns::PnfsWork& x = (*w)[i];
      items[i].work_id = x.id;
      // PnfsWorkOp and nsctl_work_op have the same numbers.
      items[i].op = static_cast<nsctl_work_op>(x.op);
      items[i].fileid = x.fileid;
      items[i].size = x.size;
    }
    res.status = NSCTL_OK;
    res.nsctl_heartbeat_res_u.work.work_len = static_cast<u_int>(items.size());
    res.nsctl_heartbeat_res_u.work.work_val = items.data();
    return Encode(xdr_nsctl_heartbeat_res, res);
  });
  p.On(NSCTL_INVENTORY, [this](const rpc::CallContext&,
                               std::span<const uint8_t> args) -> rpc::Reply {
    rpc::XdrOwned<nsctl_inventory_args> a(xdr_nsctl_inventory_args);
    if (!a.DecodeAll(args)) return rpc::Reply::GarbageArgs();
    const nsctl_inventory_args& v = a.get();
    nsctl_inventory_res res{};
    const auto* uuid = reinterpret_cast<const uint8_t*>(v.ds_uuid.ds_uuid_val);
    std::vector<uint64_t> words;
    std::vector<ns::PnfsStripe> stripes;
    words.reserve(3 * v.stripes.stripes_len);
    stripes.reserve(v.stripes.stripes_len);
    for (u_int i = 0; i < v.stripes.stripes_len; ++i) {
      const nsctl_stripe& e = v.stripes.stripes_val[i];
      words.insert(words.end(), {e.fileid, e.size, e.mtime_ns});
      stripes.push_back({e.fileid, e.size,
                         static_cast<ns::TimeNs>(e.mtime_ns)});
    }
    const pnfs::Proof want = pnfs::InventoryProof(
        key_, v.device_id,
        std::span<const uint8_t>(uuid, v.ds_uuid.ds_uuid_len), v.work_id,
        v.page, v.started_ns, v.eof, words);
    if (!ProofOk(want, v.proof, "inventory page")) {
      res.status = NSCTL_ERR_AUTH;
      return Encode(xdr_nsctl_inventory_res, res);
    }
    if (v.ds_uuid.ds_uuid_len == 0) {
      res.status = NSCTL_ERR_INVAL;
      return Encode(xdr_nsctl_inventory_res, res);
    }
    ns::Status s = registry_.InventoryPage(
        v.device_id, Hex(uuid, v.ds_uuid.ds_uuid_len), v.work_id, v.page,
        static_cast<ns::TimeNs>(v.started_ns), v.eof, stripes, WallNs());
    if (s.ok()) NoteAlive(v.device_id);
    if (!s.ok()) {
      rpc::log::Warning("nsctl: inventory page {} of data server {}: {}",
                        v.page, v.device_id, s.ToString());
    } else if (v.eof) {
      rpc::log::Info("nsctl: data server {} finished its inventory (work {})",
                     v.device_id, v.work_id);
    }
    res.status = s.ok() ? NSCTL_OK : FromNs(s);
    return Encode(xdr_nsctl_inventory_res, res);
  });
  return p;
}

void PnfsMds::Start() {
  {
    std::lock_guard lock(thread_mu_);
    stop_ = false;
  }
  thread_ = std::thread([this] {
    std::unique_lock lock(thread_mu_);
    while (!stop_) {
      thread_cv_.wait_for(lock, std::chrono::seconds(1));
      if (stop_) break;
      lock.unlock();
      ExpireNow(WallNs());
      ForgetGoneClients(std::chrono::seconds(
          state_->options().lease_seconds));
      SendDeviceNotifications();
      lock.lock();
    }
  });
}

void PnfsMds::Stop() {
  {
    std::lock_guard lock(thread_mu_);
    stop_ = true;
  }
  thread_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

size_t PnfsMds::ExpireNow(ns::TimeNs now) {
  const ns::TimeNs cutoff =
      now - static_cast<ns::TimeNs>(options_.expire_seconds) * 1000000000;
  ns::Result<std::vector<ns::DataServer>> down = registry_.ExpireSilent(cutoff);
  if (!down.ok()) {
    rpc::log::Error("pnfs: expiry of data servers: {}",
                    down.status().ToString());
    return 0;
  }
  if (down->empty()) return 0;
  std::set<uint64_t> gone;
  {
    std::lock_guard lock(mu_);
    for (const ns::DataServer& d : *down) down_.insert(d.id);
  }
  for (const ns::DataServer& d : *down) {
    rpc::log::Warning("pnfs: data server {} ({}) is down: no heartbeat for "
                      "{} s",
                      d.id, d.advertise, options_.expire_seconds);
    gone.insert(d.id);
  }
  // §12.5.5.1 lets the server recall layouts it can no longer honour; the
  // clients then go through the MDS, which fails I/O needing the down data
  // server with NFS4ERR_DELAY until it returns.
  ns::Result<std::vector<ns::PnfsDevice>> devices = registry_.ListDevices();
  if (devices.ok()) {
    for (const ns::PnfsDevice& dev : *devices) {
      for (uint64_t ds : dev.data_servers) {
        if (gone.count(ds)) {
          RecallDevice(dev.id);
          break;
        }
      }
    }
  }
  return down->size();
}

bool PnfsMds::IsLayoutStateid(const stateid4& sid) const {
  uint32_t inst;
  std::memcpy(&inst, sid.other, 4);
  uint64_t n;
  std::memcpy(&n, sid.other + 4, 8);
  return inst == instance_ && (n >> 63) != 0;
}

nfsstat4 PnfsMds::FindLayout(clientid4 client, const stateid4& sid,
                             Layout* out) {
  std::lock_guard lock(mu_);
  std::array<uint8_t, 12> other;
  std::memcpy(other.data(), sid.other, 12);
  auto o = by_other_.find(other);
  if (o != by_other_.end()) {
    auto it = layouts_.find(o->second);
    if (it == layouts_.end()) return NFS4ERR_BAD_STATEID;
    const Layout& l = it->second;
    if (l.client != client) return NFS4ERR_BAD_STATEID;
    // §12.5.3: a seqid older than the current one is OLD_STATEID, a newer
    // one was never handed out.
    if (sid.seqid != 0 && sid.seqid < l.seqid) return NFS4ERR_OLD_STATEID;
    if (sid.seqid > l.seqid) return NFS4ERR_BAD_STATEID;
    *out = l;
    return NFS4_OK;
  }
  return NFS4ERR_BAD_STATEID;
}

stateid4 PnfsMds::Grant(clientid4 client, ns::InodeId ino, uint32_t generation,
                        uint64_t device, layoutiomode4 iomode,
                        std::vector<uint8_t> mds_fh) {
  std::lock_guard lock(mu_);
  Layout& l = layouts_[Key{ino, client}];
  if (l.seqid == 0) {
    l.client = client;
    l.ino = ino;
    l.generation = generation;
    std::memcpy(l.other.data(), &instance_, 4);
    // The top bit tells layout stateids from open and lock ones, whose
    // counter starts at 1 in the same instance bytes' space.
    const uint64_t n = (next_other_++) | (uint64_t{1} << 63);
    std::memcpy(l.other.data() + 4, &n, 8);
    by_other_[l.other] = Key{ino, client};
  }
  // §12.5.3: every LAYOUTGET that grants a layout bumps the seqid.
  ++l.seqid;
  l.device = device;
  l.mds_fh = std::move(mds_fh);
  if (iomode == LAYOUTIOMODE4_RW) l.iomode = LAYOUTIOMODE4_RW;
  stateid4 out{};
  out.seqid = l.seqid;
  std::memcpy(out.other, l.other.data(), 12);
  return out;
}

std::optional<stateid4> PnfsMds::ReturnFile(clientid4 client, ns::InodeId ino) {
  std::lock_guard lock(mu_);
  auto it = layouts_.find(Key{ino, client});
  if (it == layouts_.end()) return std::nullopt;
  stateid4 out{};
  out.seqid = it->second.seqid + 1;
  std::memcpy(out.other, it->second.other.data(), 12);
  EraseLocked(it);
  return out;
}

size_t PnfsMds::ReturnAll(clientid4 client) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (auto it = layouts_.begin(); it != layouts_.end();) {
    if (it->first.client == client) {
      it = EraseLocked(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

std::map<PnfsMds::Key, PnfsMds::Layout>::iterator PnfsMds::EraseLocked(
    std::map<Key, Layout>::iterator it) {
  by_other_.erase(it->second.other);
  return layouts_.erase(it);
}

std::vector<PnfsMds::Layout> PnfsMds::LayoutsOf(ns::InodeId ino) {
  std::lock_guard lock(mu_);
  std::vector<Layout> out;
  for (auto it = layouts_.lower_bound(Key{ino, 0});
       it != layouts_.end() && it->first.ino == ino; ++it) {
    out.push_back(it->second);
  }
  return out;
}

nfsstat4 PnfsMds::SendRecall(const Layout& l) {
  std::shared_ptr<state::Client> c = state_->FindClient(l.client);
  if (!c) return NFS4ERR_STALE_CLIENTID;
  std::vector<uint8_t> fh = l.mds_fh;
  stateid4 sid{};
  {
    std::lock_guard lock(mu_);
    auto it = layouts_.find(Key{l.ino, l.client});
    if (it == layouts_.end()) return NFS4ERR_NOMATCHING_LAYOUT;
    // §12.5.3: CB_LAYOUTRECALL carries the stateid with seqid + 1.
    sid.seqid = ++it->second.seqid;
    std::memcpy(sid.other, it->second.other.data(), 12);
  }
  nfs_cb_argop4 op{};
  op.argop = OP_CB_LAYOUTRECALL;
  CB_LAYOUTRECALL4args& a = op.nfs_cb_argop4_u.opcblayoutrecall;
  a.clora_type = LAYOUT4_NFSV4_1_FILES;
  a.clora_iomode = LAYOUTIOMODE4_ANY;
  a.clora_changed = TRUE;
  a.clora_recall.lor_recalltype = LAYOUTRECALL4_FILE;
  layoutrecall_file4& f = a.clora_recall.layoutrecall4_u.lor_layout;
  f.lor_fh.nfs_fh4_len = static_cast<u_int>(fh.size());
  f.lor_fh.nfs_fh4_val = reinterpret_cast<char*>(fh.data());
  f.lor_offset = 0;
  f.lor_length = NFS4_UINT64_MAX;
  f.lor_stateid = sid;
  const CbResult last =
      SendToClient(*state_, l.client, std::span<const nfs_cb_argop4>(&op, 1));
  nfsstat4 result = last.status;
  if (last.status == NFS4_OK || last.op_status.size() >= 2) {
    result = last.op_status.size() >= 2 ? last.op_status[1] : last.status;
  }
  std::lock_guard lock(mu_);
  auto it = layouts_.find(Key{l.ino, l.client});
  if (it == layouts_.end()) return result;  // returned meanwhile
  if (result == NFS4_OK) {
    if (it->second.recalled_ns == 0) it->second.recalled_ns = WallNs();
  } else {
    // NOMATCHING_LAYOUT: the client holds nothing (§20.3.3); otherwise it
    // cannot be told: either way the layout is revoked (§12.5.5.2).
    EraseLocked(it);
  }
  return result;
}

size_t PnfsMds::RecallFile(ns::InodeId ino, clientid4 except) {
  size_t n = 0;
  for (const Layout& l : LayoutsOf(ino)) {
    if (l.client == except) continue;
    nfsstat4 s = SendRecall(l);
    if (s == NFS4_OK) ++n;
  }
  return n;
}

nfsstat4 PnfsMds::ShrinkAllowed(ns::InodeId ino) {
  if (!state_->InGrace()) return NFS4_OK;
  ns::Result<std::optional<ns::PnfsLayout>> l = registry_.GetLayout(ino);
  if (!l.ok()) return NFS4ERR_DELAY;
  // §15.1.9.2: NFS4ERR_GRACE, retry once the grace period is over.
  return *l ? NFS4ERR_GRACE : NFS4_OK;
}

size_t PnfsMds::RecallDevice(uint64_t device) {
  std::vector<Layout> hit;
  {
    std::lock_guard lock(mu_);
    for (const auto& [k, l] : layouts_) {
      if (l.device == device) hit.push_back(l);
    }
  }
  size_t n = 0;
  for (const Layout& l : hit) {
    if (SendRecall(l) == NFS4_OK) ++n;
  }
  return n;
}

void PnfsMds::NoteDirectory(ns::InodeId ino, ns::InodeId dir) {
  std::lock_guard lock(mu_);
  // Only files that may still get their first layout matter; dropping
  // everything now and then keeps this small.
  if (dirs_.size() >= 65536) dirs_.clear();
  dirs_[ino] = dir;
}

ns::InodeId PnfsMds::DirectoryOf(ns::InodeId ino) {
  std::lock_guard lock(mu_);
  auto it = dirs_.find(ino);
  return it == dirs_.end() ? 0 : it->second;
}

size_t PnfsMds::ForgetGoneClients(std::chrono::nanoseconds recall_timeout) {
  std::set<clientid4> clients;
  size_t n = 0;
  {
    std::lock_guard lock(mu_);
    const int64_t cutoff = WallNs() - recall_timeout.count();
    for (auto it = layouts_.begin(); it != layouts_.end();) {
      if (it->second.recalled_ns != 0 && it->second.recalled_ns < cutoff) {
        rpc::log::Warning("pnfs: client {:#x} did not return the recalled "
                          "layout of inode {}: revoked",
                          it->second.client, it->second.ino);
        it = EraseLocked(it);
        ++n;
        continue;
      }
      clients.insert(it->first.client);
      ++it;
    }
  }
  for (clientid4 c : clients) {
    if (!state_->FindClient(c)) n += ReturnAll(c);
  }
  std::vector<clientid4> subscribed;
  {
    std::lock_guard lock(mu_);
    for (const auto& [c, devices] : notify_) subscribed.push_back(c);
  }
  for (clientid4 c : subscribed) {
    if (state_->FindClient(c)) continue;
    std::lock_guard lock(mu_);
    notify_.erase(c);
  }
  return n;
}

uint32_t PnfsMds::Subscribe(clientid4 client, uint64_t device,
                            uint32_t types) {
  constexpr uint32_t kChange = 1u << NOTIFY_DEVICEID4_CHANGE;
  if (!(types & kChange)) return 0;
  std::lock_guard lock(mu_);
  notify_[client].insert(device);
  return kChange;
}

void PnfsMds::NoteAlive(uint64_t id) {
  bool was_down = false;
  {
    std::lock_guard lock(mu_);
    was_down = down_.erase(id) > 0;
  }
  if (was_down) DataServerChanged(id, /*immediate=*/false);
}

void PnfsMds::NoteControlConnection(
    uint64_t id, const std::shared_ptr<rpc::Connection>& conn) {
  if (!conn) return;
  std::lock_guard lock(mu_);
  std::weak_ptr<rpc::Connection>& slot = control_conns_[id];
  if (slot.lock() != conn) slot = conn;
}

size_t PnfsMds::WakeDataServers() {
  std::vector<std::shared_ptr<rpc::Connection>> conns;
  {
    std::lock_guard lock(mu_);
    for (auto it = control_conns_.begin(); it != control_conns_.end();) {
      std::shared_ptr<rpc::Connection> c = it->second.lock();
      if (c && c->IsOpen()) {
        conns.push_back(std::move(c));
        ++it;
      } else {
        it = control_conns_.erase(it);  // reconnects heartbeat on a new one
      }
    }
  }
  rpc::CallOptions o;
  o.prog = NSCTL_CB_PROG;
  o.vers = NSCTL_CB_V1;
  o.proc = NSCTL_CB_WAKE;
  o.timeout = std::chrono::seconds(5);
  for (const auto& c : conns) {
    // A lost wake, or a data server that does not serve NSCTL_CB_PROG
    // (PROG_UNAVAIL), only costs the wait for its next heartbeat.
    c->CallAsync(o, {}, [](rpc::Result<rpc::ReplyBody> r) {
      if (!r.ok()) {
        rpc::log::Debug("nsctl: NSCTL_CB_WAKE: {}", r.status().ToString());
      }
    });
  }
  return conns.size();
}

void PnfsMds::DataServerChanged(uint64_t ds, bool immediate) {
  ns::Result<std::vector<ns::PnfsDevice>> devices = registry_.ListDevices();
  if (!devices.ok()) {
    rpc::log::Error("pnfs: device notifications for data server {}: {}", ds,
                    devices.status().ToString());
    return;
  }
  {
    std::lock_guard lock(mu_);
    for (const ns::PnfsDevice& dev : *devices) {
      if (std::find(dev.data_servers.begin(), dev.data_servers.end(), ds) ==
          dev.data_servers.end()) {
        continue;
      }
      notify_pending_[dev.id] = notify_pending_[dev.id] || immediate;
    }
  }
  // The NSCTL handler must not wait for clients' callbacks: the
  // background thread sends them.
  thread_cv_.notify_all();
}

size_t PnfsMds::SendDeviceNotifications() {
  // Per client: the changed devices it subscribed to.
  std::map<clientid4, std::vector<std::pair<uint64_t, bool>>> work;
  {
    std::lock_guard lock(mu_);
    if (notify_pending_.empty()) return 0;
    for (const auto& [client, devices] : notify_) {
      for (const auto& [dev, immediate] : notify_pending_) {
        if (devices.count(dev)) work[client].emplace_back(dev, immediate);
      }
    }
    notify_pending_.clear();
  }
  size_t delivered = 0;
  for (const auto& [client, changes] : work) {
    // notify4 per device (§20.12.1): the mask bit NOTIFY_DEVICEID4_CHANGE
    // and the XDR of notify_deviceid_change4 as its value.
    const size_t n = changes.size();
    std::vector<uint32_t> masks(n, 1u << NOTIFY_DEVICEID4_CHANGE);
    std::vector<std::vector<uint8_t>> vals(n);
    std::vector<notify4> items(n);
    for (size_t i = 0; i < n; ++i) {
      notify_deviceid_change4 c{};
      c.ndc_layouttype = LAYOUT4_NFSV4_1_FILES;
      const auto id = DeviceIdBytes(changes[i].first);
      std::memcpy(c.ndc_deviceid, id.data(), id.size());
      c.ndc_immediate = changes[i].second ? TRUE : FALSE;
      rpc::XdrEncoder enc(32);
      if (!enc.Encode(xdr_notify_deviceid_change4, c)) return delivered;
      vals[i] = enc.Take();
      items[i].notify_mask.bitmap4_len = 1;
      items[i].notify_mask.bitmap4_val = &masks[i];
      items[i].notify_vals.notifylist4_len = static_cast<u_int>(vals[i].size());
      items[i].notify_vals.notifylist4_val =
          reinterpret_cast<char*>(vals[i].data());
    }
    nfs_cb_argop4 op{};
    op.argop = OP_CB_NOTIFY_DEVICEID;
    op.nfs_cb_argop4_u.opcbnotify_deviceid.cnda_changes.cnda_changes_len =
        static_cast<u_int>(n);
    op.nfs_cb_argop4_u.opcbnotify_deviceid.cnda_changes.cnda_changes_val =
        items.data();
    const CbResult r =
        SendToClient(*state_, client, std::span<const nfs_cb_argop4>(&op, 1));
    if (r.status == NFS4_OK) {
      ++delivered;
    } else {
      // Lost state, not a server fault: the client learns the new address
      // at its next GETDEVICEINFO anyway.
      rpc::log::Info("pnfs: CB_NOTIFY_DEVICEID to client {:#x}: {}", client,
                     r.error.empty() ? std::to_string(r.status) : r.error);
    }
  }
  return delivered;
}

}  // namespace nfs41d
