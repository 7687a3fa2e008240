#include "nfs41client/pnfs_io.h"

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <limits>
#include <thread>

#include "rpc/xdr_codec.h"

namespace nfs41client {
namespace {

constexpr uint64_t kWholeFile = ~uint64_t{0};  // length4 "to the end"

template <typename T>
NfsResult<T> Failed(nfsstat4 s, std::string error = "") {
  NfsResult<T> r;
  r.status = s;
  r.error = std::move(error);
  return r;
}

// The status of a call: transport failures are NFS4ERR_IO.
nfsstat4 StatusOf(const rpc::Result<Reply>& r) {
  return r.ok() ? r->status() : NFS4ERR_IO;
}

std::span<const uint8_t> Bytes(const char* p, u_int n) {
  return {reinterpret_cast<const uint8_t*>(p), n};
}

}  // namespace

// ------------------------------------------------------------- arithmetic

std::optional<StripeTarget> MapStripe(const FileLayout& layout,
                                      const FileDevice& device,
                                      uint64_t offset, uint64_t want) {
  const uint64_t unit = layout.unit();
  const uint64_t n = device.stripe_indices.size();
  if (unit == 0 || n == 0 || offset < layout.pattern_offset) return {};
  // §13.3: one filehandle for every index, or exactly one per index.
  if (layout.fhs.size() != 1 && layout.fhs.size() != n) return {};
  // Dense packing needs a handle per index (§13.4.3: each data server's
  // file is its own, packed) -- one shared handle would overlap them.
  if (layout.dense() && layout.fhs.size() != n && n > 1) return {};
  if (layout.first_stripe_index >= n) return {};
  // §13.4.1: relative offset, stripe unit number, stripe index.
  const uint64_t rel = offset - layout.pattern_offset;
  const uint64_t su = rel / unit;
  const uint64_t index = (su + layout.first_stripe_index) % n;
  StripeTarget t;
  t.stripe_index = static_cast<uint32_t>(index);
  t.data_server = device.stripe_indices[index];
  if (t.data_server >= device.data_servers.size()) return {};
  t.fh_index = layout.fhs.size() == 1 ? 0 : static_cast<uint32_t>(index);
  // §13.4.2 sparse: the data server sees file offsets. §13.4.3 dense: its
  // file holds only its own units, one after another.
  t.ds_offset = layout.dense() ? (su / n) * unit + rel % unit : offset;
  t.length = std::min(want, unit - rel % unit);
  return t;
}

bool ParseUniversalAddress(const std::string& uaddr, std::string* host,
                           uint16_t* port) {
  // RFC 5665 §5.2.3.3/5.2.3.4: the address, then ".p1.p2" with the port's
  // high and low byte in decimal.
  const size_t p2 = uaddr.rfind('.');
  if (p2 == std::string::npos || p2 == 0) return false;
  const size_t p1 = uaddr.rfind('.', p2 - 1);
  if (p1 == std::string::npos || p1 == 0) return false;
  auto byte = [](const std::string& s, unsigned* v) {
    if (s.empty() || s.size() > 3) return false;
    *v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      *v = *v * 10 + static_cast<unsigned>(c - '0');
    }
    return *v <= 255;
  };
  unsigned hi = 0, lo = 0;
  if (!byte(uaddr.substr(p1 + 1, p2 - p1 - 1), &hi) ||
      !byte(uaddr.substr(p2 + 1), &lo)) {
    return false;
  }
  // The address part is numeric (a universal address never holds a name).
  const std::string h = uaddr.substr(0, p1);
  in6_addr buf;
  if (inet_pton(AF_INET, h.c_str(), &buf) != 1 &&
      inet_pton(AF_INET6, h.c_str(), &buf) != 1) {
    return false;
  }
  *host = h;
  *port = static_cast<uint16_t>(hi * 256 + lo);
  return true;
}

// --------------------------------------------------------------- decoders

bool DecodeFileLayout(std::span<const uint8_t> body, FileLayout* out) {
  rpc::XdrOwned<nfsv4_1_file_layout4> fl(xdr_nfsv4_1_file_layout4);
  if (!fl.DecodeAll(body)) return false;
  const nfsv4_1_file_layout4& v = fl.get();
  std::memcpy(out->device_id.data(), v.nfl_deviceid, NFS4_DEVICEID4_SIZE);
  out->util = v.nfl_util;
  out->first_stripe_index = v.nfl_first_stripe_index;
  out->pattern_offset = v.nfl_pattern_offset;
  out->fhs.clear();
  for (u_int i = 0; i < v.nfl_fh_list.nfl_fh_list_len; ++i) {
    const nfs_fh4& f = v.nfl_fh_list.nfl_fh_list_val[i];
    out->fhs.emplace_back(f.nfs_fh4_val, f.nfs_fh4_val + f.nfs_fh4_len);
  }
  return true;
}

bool DecodeFileDevice(std::span<const uint8_t> body, FileDevice* out) {
  rpc::XdrOwned<nfsv4_1_file_layout_ds_addr4> d(
      xdr_nfsv4_1_file_layout_ds_addr4);
  if (!d.DecodeAll(body)) return false;
  const nfsv4_1_file_layout_ds_addr4& v = d.get();
  out->stripe_indices.assign(
      v.nflda_stripe_indices.nflda_stripe_indices_val,
      v.nflda_stripe_indices.nflda_stripe_indices_val +
          v.nflda_stripe_indices.nflda_stripe_indices_len);
  out->data_servers.clear();
  for (u_int i = 0; i < v.nflda_multipath_ds_list.nflda_multipath_ds_list_len;
       ++i) {
    const multipath_list4& m = v.nflda_multipath_ds_list.nflda_multipath_ds_list_val[i];
    std::vector<FileDevice::Addr> addrs;
    for (u_int j = 0; j < m.multipath_list4_len; ++j) {
      addrs.push_back({m.multipath_list4_val[j].na_r_netid,
                       m.multipath_list4_val[j].na_r_addr});
    }
    out->data_servers.push_back(std::move(addrs));
  }
  return true;
}

// ------------------------------------------------------ layout operations

NfsResult<FileLayout> LayoutGet(Client& mds, const Fh& fh, const stateid4& sid,
                                layoutiomode4 iomode) {
  nfs_argop4 op{};
  op.argop = OP_LAYOUTGET;
  LAYOUTGET4args& a = op.nfs_argop4_u.oplayoutget;
  a.loga_layout_type = LAYOUT4_NFSV4_1_FILES;
  a.loga_iomode = iomode;
  a.loga_offset = 0;
  a.loga_length = kWholeFile;
  a.loga_minlength = 0;
  a.loga_stateid = sid;
  a.loga_maxcount = 64 * 1024;
  Compound cp;
  cp.PutFh(fh).Op(op);
  auto r = mds.Call(cp);
  if (StatusOf(r) != NFS4_OK) {
    return Failed<FileLayout>(StatusOf(r), r.ok() ? "" : r.status().ToString());
  }
  const LAYOUTGET4resok& ok =
      r->op(2).nfs_resop4_u.oplayoutget.LAYOUTGET4res_u.logr_resok4;
  NfsResult<FileLayout> out;
  out.value.stateid = ok.logr_stateid;
  out.value.iomode = iomode;
  for (u_int i = 0; i < ok.logr_layout.logr_layout_len; ++i) {
    const layout4& lo = ok.logr_layout.logr_layout_val[i];
    if (lo.lo_content.loc_type != LAYOUT4_NFSV4_1_FILES) continue;
    // Only whole-file layouts are used here; a server handing out ranges
    // would need a layout per range.
    if (lo.lo_offset != 0 || lo.lo_length != kWholeFile) continue;
    if (!DecodeFileLayout(Bytes(lo.lo_content.loc_body.loc_body_val,
                                lo.lo_content.loc_body.loc_body_len),
                          &out.value)) {
      return Failed<FileLayout>(NFS4ERR_BADXDR, "undecodable file layout");
    }
    out.value.iomode = lo.lo_iomode;
    return out;
  }
  return Failed<FileLayout>(NFS4ERR_LAYOUTUNAVAILABLE,
                            "no whole-file file layout in the reply");
}

NfsResult<FileDevice> GetDeviceInfo(
    Client& mds, const std::array<uint8_t, NFS4_DEVICEID4_SIZE>& id) {
  count4 maxcount = 4096;
  for (int attempt = 0; attempt < 2; ++attempt) {
    nfs_argop4 op{};
    op.argop = OP_GETDEVICEINFO;
    GETDEVICEINFO4args& a = op.nfs_argop4_u.opgetdeviceinfo;
    std::memcpy(a.gdia_device_id, id.data(), id.size());
    a.gdia_layout_type = LAYOUT4_NFSV4_1_FILES;
    a.gdia_maxcount = maxcount;
    Compound cp;
    cp.Op(op);
    auto r = mds.Call(cp);
    if (!r.ok()) return Failed<FileDevice>(NFS4ERR_IO, r.status().ToString());
    const GETDEVICEINFO4res& res = r->op(1).nfs_resop4_u.opgetdeviceinfo;
    if (r->status() == NFS4ERR_TOOSMALL && r->size() >= 2) {
      // §18.40.3: gdir_mincount is the size that would do.
      maxcount = res.GETDEVICEINFO4res_u.gdir_mincount;
      continue;
    }
    if (r->status() != NFS4_OK) return Failed<FileDevice>(r->status());
    const device_addr4& da = res.GETDEVICEINFO4res_u.gdir_resok4.gdir_device_addr;
    if (da.da_layout_type != LAYOUT4_NFSV4_1_FILES) {
      return Failed<FileDevice>(NFS4ERR_UNKNOWN_LAYOUTTYPE);
    }
    NfsResult<FileDevice> out;
    if (!DecodeFileDevice(Bytes(da.da_addr_body.da_addr_body_val,
                                da.da_addr_body.da_addr_body_len),
                          &out.value)) {
      return Failed<FileDevice>(NFS4ERR_BADXDR, "undecodable device address");
    }
    return out;
  }
  return Failed<FileDevice>(NFS4ERR_TOOSMALL);
}

nfsstat4 LayoutCommit(Client& mds, const Fh& fh, const stateid4& layout_sid,
                      uint64_t last_write_offset) {
  nfs_argop4 op{};
  op.argop = OP_LAYOUTCOMMIT;
  LAYOUTCOMMIT4args& a = op.nfs_argop4_u.oplayoutcommit;
  a.loca_offset = 0;
  a.loca_length = kWholeFile;
  a.loca_reclaim = FALSE;
  a.loca_stateid = layout_sid;
  a.loca_last_write_offset.no_newoffset = TRUE;
  a.loca_last_write_offset.newoffset4_u.no_offset = last_write_offset;
  a.loca_time_modify.nt_timechanged = FALSE;
  a.loca_layoutupdate.lou_type = LAYOUT4_NFSV4_1_FILES;
  Compound cp;
  cp.PutFh(fh).Op(op);
  return StatusOf(mds.Call(cp));
}

nfsstat4 LayoutReturn(Client& mds, const Fh& fh, const stateid4& layout_sid) {
  nfs_argop4 op{};
  op.argop = OP_LAYOUTRETURN;
  LAYOUTRETURN4args& a = op.nfs_argop4_u.oplayoutreturn;
  a.lora_reclaim = FALSE;
  a.lora_layout_type = LAYOUT4_NFSV4_1_FILES;
  a.lora_iomode = LAYOUTIOMODE4_ANY;
  a.lora_layoutreturn.lr_returntype = LAYOUTRETURN4_FILE;
  layoutreturn_file4& f = a.lora_layoutreturn.layoutreturn4_u.lr_layout;
  f.lrf_offset = 0;
  f.lrf_length = kWholeFile;
  f.lrf_stateid = layout_sid;
  Compound cp;
  cp.PutFh(fh).Op(op);
  return StatusOf(mds.Call(cp));
}

// ---------------------------------------------------------------- PnfsFile

ClientOptions DataServerClientOptions() {
  ClientOptions o;
  o.max_request_size = (1u << 20) + (64u << 10);
  o.max_response_size = (1u << 20) + (64u << 10);
  o.back_channel = false;
  return o;
}

// A server the file's bytes go to: a data server's own session, or the MDS.
struct PnfsFile::Server {
  std::unique_ptr<Client> owned;  // null for the MDS
  // Null once this data server failed; other threads may still be
  // sending to it (the Client lives as long as `owned`).
  std::atomic<Client*> client{nullptr};
  // The write verifier of the first UNSTABLE4 WRITE since the last COMMIT;
  // a different one later means the server restarted in between and may
  // have lost what it had not committed (RFC 8881 §18.32.3).
  std::optional<std::array<uint8_t, NFS4_VERIFIER_SIZE>> verf;
  bool verf_changed = false;
};

PnfsFile::PnfsFile(Client& mds, Fh fh, stateid4 open_sid, PnfsOptions options)
    : mds_(mds),
      fh_(std::move(fh)),
      open_sid_(open_sid),
      options_(std::move(options)),
      mds_server_(std::make_unique<Server>()) {
  mds_server_->client = &mds_;
}

PnfsFile::~PnfsFile() = default;

NfsResult<std::unique_ptr<PnfsFile>> PnfsFile::Open(Client& mds, const Fh& fh,
                                                    const stateid4& open_sid,
                                                    layoutiomode4 iomode,
                                                    PnfsOptions options) {
  using R = std::unique_ptr<PnfsFile>;
  if (options.io_size == 0 || options.inflight_per_server == 0) {
    return Failed<R>(NFS4ERR_INVAL, "io_size and inflight_per_server >= 1");
  }
  const bool want_layout = options.use_layout;
  std::unique_ptr<PnfsFile> f(new PnfsFile(mds, fh, open_sid, std::move(options)));
  NfsResult<R> out;
  if (!want_layout) {
    out.value = std::move(f);
    return out;
  }
  NfsResult<FileLayout> l = LayoutGet(mds, fh, open_sid, iomode);
  if (!l.ok()) {
    // §13.8: no layout (none offered, none available now) means the MDS
    // does the I/O; only a transport failure is the caller's problem.
    if (l.status == NFS4ERR_IO) return Failed<R>(l.status, l.error);
    out.value = std::move(f);
    return out;
  }
  NfsResult<FileDevice> d = GetDeviceInfo(mds, l.value.device_id);
  if (!d.ok()) {
    LayoutReturn(mds, fh, l.value.stateid);
    if (d.status == NFS4ERR_IO) return Failed<R>(d.status, d.error);
    out.value = std::move(f);
    return out;
  }
  // A layout and device that do not fit together are unusable (the first
  // offset is enough to check the lists; every other one maps the same way).
  if (!MapStripe(l.value, d.value, l.value.pattern_offset, 1)) {
    LayoutReturn(mds, fh, l.value.stateid);
    out.value = std::move(f);
    return out;
  }
  f->layout_ = std::move(l.value);
  f->device_ = std::move(d.value);
  f->servers_.resize(f->device_.data_servers.size());
  out.value = std::move(f);
  return out;
}

PnfsFile::Server* PnfsFile::Connect(uint32_t ds) {
  std::lock_guard lock(mu_);
  std::unique_ptr<Server>& s = servers_[ds];
  if (s) return s->client.load() ? s.get() : nullptr;
  s = std::make_unique<Server>();
  // Each multipath address in turn (§13.5: they all reach the same data
  // server); the first that gives a session wins.
  for (const FileDevice::Addr& a : device_.data_servers[ds]) {
    std::string host;
    uint16_t port = 0;
    if (!ParseUniversalAddress(a.uaddr, &host, &port)) continue;
    auto c = Client::Connect(host, port, options_.ds_client);
    if (!c.ok()) continue;
    if ((*c)->EstablishSession() != NFS4_OK) continue;
    s->owned = std::move(c).value();
    s->client = s->owned.get();
    return s.get();
  }
  ++stats_.fallbacks;
  return nullptr;
}

void PnfsFile::DropServer(Server* s) {
  std::lock_guard lock(mu_);
  if (s->client.exchange(nullptr)) ++stats_.fallbacks;
}

nfsstat4 PnfsFile::SendPiece(Server& s, const Fh& fh, uint64_t offset,
                             uint8_t* data, uint64_t length, bool write,
                             uint64_t* got) {
  Compound cp;
  cp.PutFh(fh);
  if (write) {
    // The data goes straight into the request (one copy).
    cp.WriteView(open_sid_, offset, {data, length}, options_.stable);
  } else {
    cp.Read(open_sid_, offset, static_cast<uint32_t>(length));
  }
  Client* c = s.client.load();
  if (c == nullptr) return NFS4ERR_IO;  // dropped meanwhile: to the MDS
  auto r = c->Call(cp);
  if (StatusOf(r) != NFS4_OK) return StatusOf(r);
  if (r->size() < 3) return NFS4ERR_SERVERFAULT;
  if (write) {
    const WRITE4resok& ok = r->op(2).nfs_resop4_u.opwrite.WRITE4res_u.resok4;
    // A short WRITE is legal (§18.32.3) but never happens with the servers
    // here; treat it as a failure rather than loop.
    if (ok.count != length) return NFS4ERR_IO;
    if (ok.committed == UNSTABLE4) {
      std::array<uint8_t, NFS4_VERIFIER_SIZE> v;
      std::memcpy(v.data(), ok.writeverf, v.size());
      std::lock_guard lock(mu_);
      if (!s.verf) {
        s.verf = v;
      } else if (*s.verf != v) {
        s.verf_changed = true;
      }
    }
    *got = length;
    return NFS4_OK;
  }
  // The data is a view into the reply record: this is its only copy.
  const READ4resok& ok = r->op(2).nfs_resop4_u.opread.READ4res_u.resok4;
  const uint64_t n = std::min<uint64_t>(ok.data.data_len, length);
  std::memcpy(data, ok.data.data_val, n);
  *got = n;
  return NFS4_OK;
}

nfsstat4 PnfsFile::DoPiece(const Piece& p, uint64_t* got) {
  if (layout_ && !returned_) {
    const std::optional<StripeTarget> t =
        MapStripe(*layout_, device_, p.offset, p.length);
    if (t) {
      Server* s = Connect(t->data_server);
      if (s) {
        const nfsstat4 st = SendPiece(*s, layout_->fhs[t->fh_index],
                                      t->ds_offset, p.data, p.length, p.write,
                                      got);
        if (st == NFS4_OK) {
          // A data server's stripe file ends where its last unit ends:
          // the rest of a short read is a hole of the file (§13.4.2)
          // inside the size the caller clamped to.
          if (!p.write && *got < p.length) {
            std::memset(p.data + *got, 0, p.length - *got);
            *got = p.length;
          }
          std::lock_guard lock(mu_);
          stats_.ds_bytes += *got;
          return NFS4_OK;
        }
        // §13.8: a data server that fails is bypassed; the MDS can
        // serve every byte (it reaches the data servers itself).
        DropServer(s);
      }
    }
  }
  // The MDS answers NFS4ERR_DELAY while it reconnects to a data server it
  // serves these bytes from; retry as a client must (RFC 8881 §15.1.1.3),
  // backing off, for up to ~20 s.
  nfsstat4 st = NFS4ERR_DELAY;
  for (int attempt = 0; attempt < 40 && st == NFS4ERR_DELAY; ++attempt) {
    if (attempt > 0) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::min(50 << std::min(attempt, 4), 500)));
    }
    st = SendPiece(*mds_server_, fh_, p.offset, p.data, p.length, p.write, got);
  }
  if (st == NFS4_OK) {
    std::lock_guard lock(mu_);
    stats_.mds_bytes += *got;
  }
  return st;
}

nfsstat4 PnfsFile::RunPieces(std::vector<Piece>& pieces,
                             std::vector<uint64_t>& got) {
  got.assign(pieces.size(), 0);
  size_t servers = 1;
  if (layout_ && !returned_) servers = std::max<size_t>(1, servers_.size());
  const size_t threads = std::min<size_t>(
      pieces.size(), servers * options_.inflight_per_server);
  std::atomic<size_t> next{0};
  std::atomic<int> first_error{NFS4_OK};
  auto work = [&] {
    for (;;) {
      const size_t i = next.fetch_add(1);
      if (i >= pieces.size() || first_error.load() != NFS4_OK) return;
      const nfsstat4 st = DoPiece(pieces[i], &got[i]);
      if (st != NFS4_OK) {
        int expected = NFS4_OK;
        first_error.compare_exchange_strong(expected, st);
      }
    }
  };
  if (threads <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (size_t i = 0; i < threads; ++i) pool.emplace_back(work);
    for (std::thread& t : pool) t.join();
  }
  return static_cast<nfsstat4>(first_error.load());
}

std::vector<PnfsFile::Piece> PnfsFile::Split(uint64_t offset, uint8_t* data,
                                             uint64_t length,
                                             bool write) const {
  std::vector<Piece> pieces;
  uint64_t done = 0;
  while (done < length) {
    uint64_t n = std::min<uint64_t>(options_.io_size, length - done);
    // Never across a stripe unit: each piece goes to one data server.
    if (layout_ && layout_->unit() > 0 &&
        offset + done >= layout_->pattern_offset) {
      const uint64_t unit = layout_->unit();
      const uint64_t rel = offset + done - layout_->pattern_offset;
      n = std::min(n, unit - rel % unit);
    }
    pieces.push_back({offset + done, data + done, n, write});
    done += n;
  }
  return pieces;
}

nfsstat4 PnfsFile::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.empty()) return NFS4_OK;
  if (offset > std::numeric_limits<uint64_t>::max() - data.size()) {
    return NFS4ERR_FBIG;
  }
  // The pieces only read from `data` when writing.
  std::vector<Piece> pieces = Split(
      offset, const_cast<uint8_t*>(data.data()), data.size(), true);
  std::vector<uint64_t> got;
  const nfsstat4 st = RunPieces(pieces, got);
  if (st != NFS4_OK) return st;
  std::lock_guard lock(mu_);
  const uint64_t last = offset + data.size() - 1;
  if (!last_written_ || *last_written_ < last) last_written_ = last;
  return NFS4_OK;
}

NfsResult<uint64_t> PnfsFile::Read(uint64_t offset, std::span<uint8_t> out) {
  NfsResult<uint64_t> r;
  if (out.empty()) return r;
  // Data servers cannot tell a hole from the end of the file (each holds
  // only its units), so the MDS's size bounds the read (§13.10).
  NfsResult<Attrs> a = mds_.GetAttr(fh_, Bits({FATTR4_SIZE}));
  if (!a.ok()) return Failed<uint64_t>(a.status, a.error);
  if (offset >= a.value.size) return r;
  const uint64_t length = std::min<uint64_t>(out.size(), a.value.size - offset);
  std::vector<Piece> pieces = Split(offset, out.data(), length, false);
  std::vector<uint64_t> got;
  if (nfsstat4 st = RunPieces(pieces, got); st != NFS4_OK) {
    return Failed<uint64_t>(st);
  }
  // Stop at the first short piece: the file shrank under us.
  for (size_t i = 0; i < pieces.size(); ++i) {
    r.value += got[i];
    if (got[i] < pieces[i].length) break;
  }
  return r;
}

nfsstat4 PnfsFile::CommitServer(Server& s, const std::vector<const Fh*>& fhs) {
  {
    std::lock_guard lock(mu_);
    if (!s.verf) return NFS4_OK;
    // It failed after taking unstable bytes: they may be lost and the
    // caller must write them again (through the MDS now).
    if (!s.client.load()) return NFS4ERR_IO;
  }
  bool lost = false;
  for (const Fh* fh : fhs) {
    Client* client = s.client.load();
    if (client == nullptr) return NFS4ERR_IO;
    auto c = client->CommitFile(*fh);
    if (!c.ok()) return c.status;
    std::lock_guard lock(mu_);
    // §18.3.3: a verifier that differs from the WRITEs' means the server
    // restarted and the unstable bytes may be gone.
    lost = lost || s.verf_changed || *s.verf != c.value;
  }
  std::lock_guard lock(mu_);
  s.verf.reset();
  s.verf_changed = false;
  return lost ? NFS4ERR_IO : NFS4_OK;
}

nfsstat4 PnfsFile::Commit() {
  nfsstat4 first = NFS4_OK;
  if (layout_ && !returned_) {
    for (uint32_t ds = 0; ds < servers_.size(); ++ds) {
      Server* s = nullptr;
      {
        std::lock_guard lock(mu_);
        s = servers_[ds].get();
      }
      if (!s) continue;
      // The handles this data server was written through: the layout's
      // one, or one per stripe index it serves (§13.3).
      std::vector<const Fh*> fhs;
      for (uint32_t i = 0; i < device_.stripe_indices.size(); ++i) {
        if (device_.stripe_indices[i] != ds) continue;
        fhs.push_back(&layout_->fhs[layout_->fhs.size() == 1 ? 0 : i]);
        if (layout_->fhs.size() == 1) break;
      }
      const nfsstat4 st = CommitServer(*s, fhs);
      if (st != NFS4_OK && first == NFS4_OK) first = st;
    }
  }
  if (nfsstat4 st = CommitServer(*mds_server_, {&fh_});
      st != NFS4_OK && first == NFS4_OK) {
    first = st;
  }
  if (first != NFS4_OK) return first;
  std::optional<uint64_t> last;
  {
    std::lock_guard lock(mu_);
    last = last_written_;
  }
  // §13.7/§18.42: bytes written through the data servers reach the MDS's
  // size only with LAYOUTCOMMIT.
  if (layout_ && !returned_ && last && layout_->iomode == LAYOUTIOMODE4_RW) {
    return LayoutCommit(mds_, fh_, layout_->stateid, *last);
  }
  return NFS4_OK;
}

nfsstat4 PnfsFile::Return() {
  if (!layout_ || returned_) return NFS4_OK;
  returned_ = true;
  return LayoutReturn(mds_, fh_, layout_->stateid);
}

PnfsStats PnfsFile::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace nfs41client
