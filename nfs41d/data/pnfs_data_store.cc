// The MDS's data path to the data servers (pnfs_data_store.h).

#include "nfs41d/data/pnfs_data_store.h"

#include <algorithm>
#include <cstring>

#include "nfs41client/client.h"
#include "rpc/log.h"

namespace nfs41d::data {
namespace {

// The largest READ or WRITE the MDS sends a data server: nfs41d's max_io
// (a client's whole READ/WRITE to the MDS can then go out as one call when
// it sits in one stripe unit).
constexpr uint32_t kChunk = 1u << 20;
// The COMPOUND around a chunk (SEQUENCE, PUTFH with a data-server handle,
// the READ/WRITE header and the RPC header; well under 1 KiB) fits in this.
// A data server grants requests of its max_io plus 64 KiB (ds_server.cc).
constexpr uint32_t kHeadroom = 64u << 10;

// Splits "host:port" (IPv6 in brackets).
bool SplitHostPort(const std::string& hp, std::string* host, uint16_t* port) {
  const size_t colon = hp.rfind(':');
  if (colon == std::string::npos || colon + 1 >= hp.size()) return false;
  *host = hp.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  unsigned long p = 0;
  try {
    p = std::stoul(hp.substr(colon + 1));
  } catch (...) {
    return false;
  }
  if (p == 0 || p > 65535) return false;
  *port = static_cast<uint16_t>(p);
  return true;
}

ns::Status DsError(uint64_t id, nfsstat4 st, const std::string& what) {
  // The client retries NFS4ERR_DELAY; a data server that is down or
  // restarting is the usual cause.
  return ns::Status::Unavailable(
      "data server " + std::to_string(id),
      what + ": " + std::to_string(static_cast<int>(st)));
}

}  // namespace

PnfsDataStore::PnfsDataStore(DataStore* local, ns::Namespace* ns,
                             const FhCodec* ds_fh,
                             std::function<bool()> any_layouts,
                             std::function<void()> truncate_queued)
    : local_(local),
      ns_(ns),
      ds_fh_(ds_fh),
      any_layouts_(std::move(any_layouts)),
      truncate_queued_(std::move(truncate_queued)),
      registry_(ns) {}

PnfsDataStore::~PnfsDataStore() = default;

ns::Result<std::optional<PnfsDataStore::Striping>> PnfsDataStore::StripingOf(
    ns::InodeId ino) {
  {
    std::lock_guard lock(mu_);
    auto it = stripings_.find(ino);
    if (it != stripings_.end()) return std::optional<Striping>(it->second);
  }
  ns::Result<std::optional<ns::PnfsLayout>> l = registry_.GetLayout(ino);
  if (!l.ok()) return l.status();
  if (!*l) return std::optional<Striping>();
  ns::Result<ns::PnfsDevice> dev = registry_.GetDevice((*l)->device);
  if (!dev.ok()) return dev.status();
  ns::Result<ns::Attr> a = ns_->GetAttr(ns::Credentials::Root(), ino);
  if (!a.ok()) return a.status();
  Striping s;
  s.unit = (*l)->stripe_unit;
  s.data_servers = dev->data_servers;
  s.fh = ds_fh_->Encode(FileHandle{ino, a->generation, 0});
  std::lock_guard lock(mu_);
  if (stripings_.size() > 65536) stripings_.clear();  // bounded
  stripings_[ino] = s;
  return std::optional<Striping>(s);
}

ns::Result<std::shared_ptr<nfs41client::Client>> PnfsDataStore::Connection(
    uint64_t id) {
  {
    std::lock_guard lock(mu_);
    auto it = conns_.find(id);
    if (it != conns_.end()) return it->second;
  }
  ns::Result<ns::DataServer> d = registry_.GetDataServer(id);
  if (!d.ok()) return d.status();
  if (d->state != ns::DataServerState::kUp) {
    return ns::Status::Unavailable("data server " + std::to_string(id),
                                   "down");
  }
  std::string host;
  uint16_t port = 0;
  if (!SplitHostPort(d->listen, &host, &port)) {
    return ns::Status::Corruption("data server " + std::to_string(id),
                                  "listen address " + d->listen);
  }
  nfs41client::ClientOptions o;
  o.back_channel = false;
  o.timeout = std::chrono::milliseconds(10000);
  o.owner = "nfs41d-mds-fallback";
  // A WRITE of a whole chunk must fit the session's ca_maxrequestsize, or
  // the data server answers NFS4ERR_REQ_TOO_BIG (RFC 8881 §18.36.3,
  // §2.10.6.4); a READ reply likewise, or the data server cuts it short.
  o.max_request_size = kChunk + kHeadroom;
  o.max_response_size = kChunk + kHeadroom;
  auto c = nfs41client::Client::Connect(host, port, o);
  if (!c.ok()) {
    return ns::Status::Unavailable("data server " + std::to_string(id),
                                   "connect " + d->listen + ": " +
                                       c.status().ToString());
  }
  std::shared_ptr<nfs41client::Client> client = std::move(c).value();
  if (nfsstat4 st = client->EstablishSession(); st != NFS4_OK) {
    return DsError(id, st, "session");
  }
  std::lock_guard lock(mu_);
  auto [it, inserted] = conns_.emplace(id, client);
  return it->second;
}

void PnfsDataStore::Drop(uint64_t id) {
  std::lock_guard lock(mu_);
  conns_.erase(id);
}

ns::Result<size_t> PnfsDataStore::Read(ns::InodeId ino, uint64_t offset,
                                       std::span<uint8_t> out) {
  NS_ASSIGN_OR_RETURN(std::optional<Striping> s, StripingOf(ino));
  if (!s) return local_->Read(ino, offset, out);
  const size_t n = s->data_servers.size();
  size_t done = 0;
  while (done < out.size()) {
    const uint64_t off = offset + done;
    const uint64_t k = off / s->unit;
    const uint64_t unit_end = (k + 1) * s->unit;
    const size_t len = static_cast<size_t>(
        std::min<uint64_t>(out.size() - done, unit_end - off));
    const uint64_t id = s->data_servers[k % n];
    NS_ASSIGN_OR_RETURN(std::shared_ptr<nfs41client::Client> c, Connection(id));
    size_t got = 0;
    while (got < len) {
      auto r = c->ReadFile(s->fh, stateid4{}, off + got,
                           static_cast<uint32_t>(std::min<size_t>(
                               len - got, kChunk)));
      if (r.status != NFS4_OK) {
        // A fresh session next time: the data server may have restarted.
        Drop(id);
        return DsError(id, r.status, "READ");
      }
      std::memcpy(out.data() + done + got, r.value.data.data(),
                  r.value.data.size());
      got += r.value.data.size();
      // A short read is a hole or the end of this stripe file: zeros (the
      // caller's buffer is zeroed).
      if (r.value.data.empty() || r.value.eof) break;
    }
    done += len;
  }
  // The caller zero-fills up to the namespace size, so the whole range
  // counts as read: holes on one data server are not the file's end.
  return out.size();
}

ns::Status PnfsDataStore::Write(ns::InodeId ino, uint64_t offset,
                                std::span<const uint8_t> data,
                                Stability stability) {
  NS_ASSIGN_OR_RETURN(std::optional<Striping> s, StripingOf(ino));
  if (!s) return local_->Write(ino, offset, data, stability);
  // A truncate still queued for the data servers would cut these bytes
  // when it runs: the client retries after it did (NFS4ERR_DELAY).
  NS_ASSIGN_OR_RETURN(std::vector<ns::PnfsWork> work,
                      registry_.WorkForFile(ino));
  for (const ns::PnfsWork& w : work) {
    if (w.op == ns::PnfsWorkOp::kTruncate) {
      return ns::Status::Unavailable("inode " + std::to_string(ino),
                                     "truncate pending on data servers");
    }
  }
  const size_t n = s->data_servers.size();
  size_t done = 0;
  while (done < data.size()) {
    const uint64_t off = offset + done;
    const uint64_t k = off / s->unit;
    const uint64_t unit_end = (k + 1) * s->unit;
    const size_t len = static_cast<size_t>(std::min<uint64_t>(
        {data.size() - done, unit_end - off, uint64_t{kChunk}}));
    const uint64_t id = s->data_servers[k % n];
    NS_ASSIGN_OR_RETURN(std::shared_ptr<nfs41client::Client> c, Connection(id));
    auto r = c->WriteFile(
        s->fh, stateid4{}, off,
        std::string(reinterpret_cast<const char*>(data.data() + done), len),
        FILE_SYNC4);
    if (r.status != NFS4_OK) {
      Drop(id);
      return DsError(id, r.status, "WRITE");
    }
    if (r.value.count == 0) return DsError(id, NFS4ERR_IO, "WRITE wrote 0");
    done += r.value.count;
  }
  return ns::Status::Ok();
}

ns::Status PnfsDataStore::Truncate(ns::InodeId ino, uint64_t size) {
  NS_ASSIGN_OR_RETURN(std::optional<Striping> s, StripingOf(ino));
  if (!s) return local_->Truncate(ino, size);
  // Queued for the data servers by the database; until they report it done
  // the file gets no new layout and MDS writes get NFS4ERR_DELAY, so tell
  // them now rather than at their next heartbeat.
  if (truncate_queued_) truncate_queued_();
  return ns::Status::Ok();
}

ns::Status PnfsDataStore::Remove(ns::InodeId ino) {
  {
    std::lock_guard lock(mu_);
    stripings_.erase(ino);
  }
  // A file with a layout has no local bytes; its stripes are queued for
  // removal by the database when the inode goes.
  return local_->Remove(ino);
}

ns::Result<uint64_t> PnfsDataStore::SpaceUsed(ns::InodeId ino) {
  NS_ASSIGN_OR_RETURN(std::optional<Striping> s, StripingOf(ino));
  if (!s) return local_->SpaceUsed(ino);
  // Unknown here (the data servers hold it): the caller shows the size.
  return ns::Status::NotSupported("space_used", "on data servers");
}

ns::Status PnfsDataStore::Sync(ns::InodeId ino, Stability stability) {
  NS_ASSIGN_OR_RETURN(std::optional<Striping> s, StripingOf(ino));
  if (!s) return local_->Sync(ino, stability);
  return ns::Status::Ok();  // fallback writes are FILE_SYNC4
}

}  // namespace nfs41d::data
