#include "dataserver/control.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

#include "nfs41d/data/data_store.h"
#include "pnfs/nsctl.h"
#include "rpc/client.h"
#include "rpc/connection.h"
#include "rpc/log.h"
#include "rpc/xdr_codec.h"

namespace dataserver {

struct ControlClient::Rpc {
  std::unique_ptr<rpc::Client> client;
};

namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

void Space(const std::string& dir, uint64_t* total, uint64_t* free) {
  struct statvfs sv;
  if (::statvfs(dir.c_str(), &sv) == 0) {
    *total = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
    *free = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
  }
}

const char* StatusName(nsctl_status s) {
  switch (s) {
    case NSCTL_OK: return "NSCTL_OK";
    case NSCTL_ERR_AUTH: return "NSCTL_ERR_AUTH (the key differs from the MDS's)";
    case NSCTL_ERR_UNKNOWN_DEVICE: return "NSCTL_ERR_UNKNOWN_DEVICE";
    case NSCTL_ERR_INVAL: return "NSCTL_ERR_INVAL";
    case NSCTL_ERR_DELAY: return "NSCTL_ERR_DELAY";
    case NSCTL_ERR_SERVERFAULT: return "NSCTL_ERR_SERVERFAULT";
  }
  return "unknown nsctl status";
}

// The errno a failed DataStore call stands for, for `done.error`: the MDS
// only needs "failed, retry later" and a hint for its log.
int32_t Errno(const ns::Status& s) {
  if (s.ok()) return 0;
  if (s.IsNoSpace()) return ENOSPC;
  if (s.IsInvalid()) return EINVAL;
  return EIO;
}

}  // namespace

ControlClient::ControlClient(ControlOptions options)
    : options_(std::move(options)) {}

ControlClient::~ControlClient() { Stop(); }

void ControlClient::Start() {
  {
    std::lock_guard lock(mu_);
    stop_ = false;
  }
  thread_ = std::thread([this] { Run(); });
}

void ControlClient::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    // A call waiting for its reply fails at once (Closed).
    if (conn_) conn_->Close();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  Disconnect();
}

bool ControlClient::Sleep(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [this] { return stop_ || wake_; });
  wake_ = false;
  return !stop_;
}

void ControlClient::Complain(const std::string& why) {
  if (why == last_complaint_) {
    rpc::log::Debug("dataserver: control: {}", why);
    return;
  }
  last_complaint_ = why;
  rpc::log::Warning("dataserver: control: {}", why);
}

bool ControlClient::Connect() {
  if (rpc_ && rpc_->client && rpc_->client->IsOpen()) return true;
  Disconnect();
  rpc::ClientOptions co;
  // Short: Stop() cannot cut a connect short.
  co.connect_timeout = std::min<std::chrono::milliseconds>(
      options_.call_timeout, std::chrono::seconds(5));
  co.call_timeout = options_.call_timeout;
  co.backchannel_threads = 1;
  co.endpoint.name = "nsctl";
  auto c = rpc::Client::Connect(options_.mds_host, options_.mds_port, co);
  if (!c.ok()) {
    Complain("MDS " + options_.mds_host + ":" +
             std::to_string(options_.mds_port) + " unreachable (" +
             c.status().ToString() + "); retrying");
    return false;
  }
  rpc_ = std::make_unique<Rpc>();
  rpc_->client = std::move(c).value();
  // The MDS calls NSCTL_CB_WAKE on this connection when it queues work we
  // should do now (nsctl.x): a truncate an O_TRUNC open is waiting for
  // should not wait for the next heartbeat. Answered at once; the heartbeat
  // runs on the control thread.
  rpc_->client->backchannel().Add(
      rpc::Program(NSCTL_CB_PROG, NSCTL_CB_V1, NSCTL_CB_V1)
          .WithNull()
          .On(NSCTL_CB_WAKE, [this](const rpc::CallContext&,
                                    std::span<const uint8_t>) {
            wakes_.fetch_add(1);
            {
              std::lock_guard lock(mu_);
              wake_ = true;
            }
            cv_.notify_all();
            return rpc::Reply::Void();
          }));
  std::lock_guard lock(mu_);
  conn_ = rpc_->client->connection();
  if (stop_) conn_->Close();  // Stop() came while connecting
  return true;
}

void ControlClient::Disconnect() {
  {
    std::lock_guard lock(mu_);
    conn_.reset();
  }
  if (rpc_ && rpc_->client) rpc_->client->Close();
  rpc_.reset();
}

void ControlClient::Run() {
  std::chrono::milliseconds backoff = options_.initial_backoff;
  auto next_backoff = [&] {
    backoff = std::min(backoff * 2, options_.max_backoff);
  };
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    if (!registered_.load()) {
      if (Register()) {
        backoff = options_.initial_backoff;
        continue;  // heartbeat right away: there may be work waiting
      }
      if (!Sleep(backoff)) return;
      next_backoff();
      continue;
    }
    // The interval runs from the start of a heartbeat, so the MDS hears
    // from us every heartbeat_seconds however long the call and the work
    // took ("at least this often", nsctl.x).
    const auto started = std::chrono::steady_clock::now();
    bool more = false;
    if (!Heartbeat(&more)) {
      // UNKNOWN_DEVICE: register again now, unless the MDS forgot us right
      // after registering (its bug; do not spin).
      if (!registered_.load() &&
          started - registered_at_ >= std::chrono::seconds(1)) {
        continue;
      }
      if (!Sleep(backoff)) return;
      next_backoff();
      continue;
    }
    backoff = options_.initial_backoff;
    if (more) continue;
    const auto next =
        started + std::chrono::seconds(std::max<uint32_t>(1, heartbeat_seconds_));
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        next - std::chrono::steady_clock::now());
    if (left.count() > 0 && !Sleep(left)) return;
  }
}

template <typename Encode, typename Args, typename Res>
bool ControlClient::CallMds(uint32_t proc, const char* name, Encode encode,
                            const Args& args, Res& res) {
  auto bytes = rpc::XdrEncode(encode, args);
  if (!bytes.ok()) {
    Complain(std::string("cannot encode ") + name + ": " +
             bytes.status().ToString());
    return false;
  }
  auto reply =
      rpc_->client->Call(NSCTL_PROG, NSCTL_V1, proc, std::move(bytes).value());
  if (!reply.ok()) {
    Complain(std::string(name) + " to " + options_.mds_host + ":" +
             std::to_string(options_.mds_port) + ": " +
             reply.status().ToString() + "; retrying");
    Disconnect();
    return false;
  }
  if (!res.DecodeAll(reply->results())) {
    Complain(std::string(name) + ": reply does not decode; retrying");
    return false;
  }
  return true;
}

bool ControlClient::Register() {
  if (!Connect()) return false;
  nsctl_register_args a{};
  a.ds_uuid.ds_uuid_len = static_cast<u_int>(options_.uuid.size());
  a.ds_uuid.ds_uuid_val = const_cast<char*>(options_.uuid.data());
  a.advertise = const_cast<char*>(options_.advertise.c_str());
  a.listen = const_cast<char*>(options_.listen.c_str());
  Space(options_.data_dir, &a.bytes_total, &a.bytes_free);
  const pnfs::Proof proof = pnfs::RegisterProof(
      options_.key, Bytes(options_.uuid), options_.advertise, options_.listen);
  std::memcpy(a.proof, proof.data(), proof.size());
  rpc::XdrOwned<nsctl_register_res> res(xdr_nsctl_register_res);
  if (!CallMds(NSCTL_REGISTER, "NSCTL_REGISTER", xdr_nsctl_register_args, a,
               res)) {
    return false;
  }
  if (res->status != NSCTL_OK) {
    Complain(std::string("NSCTL_REGISTER refused: ") + StatusName(res->status) +
             "; retrying");
    return false;
  }
  const nsctl_register_ok& ok = res->nsctl_register_res_u.ok;
  heartbeat_seconds_ = ok.heartbeat_seconds;
  device_id_.store(ok.device_id);
  registered_.store(true);
  registered_at_ = std::chrono::steady_clock::now();
  registrations_.fetch_add(1);
  last_complaint_.clear();
  rpc::log::Info(
      "dataserver: registered with MDS {}:{} as device {} (uuid {}, "
      "advertising {}); heartbeat every {} s, expiry {} s",
      options_.mds_host, options_.mds_port, ok.device_id, options_.uuid,
      options_.advertise, ok.heartbeat_seconds, ok.expire_seconds);
  return true;
}

bool ControlClient::Heartbeat(bool* more) {
  if (!Connect()) return false;
  const uint64_t device = device_id_.load();
  nsctl_heartbeat_args a{};
  a.device_id = device;
  a.ds_uuid.ds_uuid_len = static_cast<u_int>(options_.uuid.size());
  a.ds_uuid.ds_uuid_val = const_cast<char*>(options_.uuid.data());
  Space(options_.data_dir, &a.bytes_total, &a.bytes_free);
  // At most NSCTL_WORK_MAX results per heartbeat; the rest go next time.
  const size_t n = std::min<size_t>(done_.size(), NSCTL_WORK_MAX);
  std::vector<nsctl_done> done(n);
  for (size_t i = 0; i < n; ++i) {
    done[i].work_id = done_[i].work_id;
    done[i].error = done_[i].error;
  }
  a.done.done_len = static_cast<u_int>(n);
  a.done.done_val = done.data();
  const pnfs::Proof proof =
      pnfs::HeartbeatProof(options_.key, device, Bytes(options_.uuid));
  std::memcpy(a.proof, proof.data(), proof.size());
  rpc::XdrOwned<nsctl_heartbeat_res> res(xdr_nsctl_heartbeat_res);
  if (!CallMds(NSCTL_HEARTBEAT, "NSCTL_HEARTBEAT", xdr_nsctl_heartbeat_args, a,
               res)) {
    return false;
  }
  if (res->status == NSCTL_ERR_UNKNOWN_DEVICE) {
    rpc::log::Info("dataserver: the MDS does not know device {}: registering "
                   "again",
                   device);
    registered_.store(false);
    done_.clear();
    return false;
  }
  if (res->status != NSCTL_OK) {
    Complain(std::string("NSCTL_HEARTBEAT refused: ") +
             StatusName(res->status) + "; retrying");
    return false;
  }
  heartbeats_.fetch_add(1);
  last_complaint_.clear();
  // The MDS has the results it was sent.
  done_.erase(done_.begin(), done_.begin() + static_cast<ptrdiff_t>(n));
  const auto& work = res->nsctl_heartbeat_res_u.work;
  bool any_ok = false;
  for (u_int i = 0; i < work.work_len; ++i) {
    const nsctl_work& w = work.work_val[i];
    ns::Status s;
    const char* what = "?";
    switch (w.op) {
      case NSCTL_REMOVE:
        what = "remove";
        s = options_.store->RemoveStripe(w.fileid);
        break;
      case NSCTL_TRUNCATE:
        what = "truncate";
        s = options_.store->TruncateStripe(w.fileid, w.size);
        break;
      case NSCTL_INVENTORY: {
        const int32_t e = Inventory(w.work_id);
        done_.push_back({w.work_id, e});
        work_done_.fetch_add(1);
        continue;
      }
      default:
        // A newer MDS's work this server does not know: report it failed
        // so that the MDS keeps it (and logs it) instead of losing it.
        rpc::log::Warning("dataserver: control: unknown work op {} (id {})",
                          static_cast<int>(w.op), w.work_id);
        done_.push_back({w.work_id, EOPNOTSUPP});
        continue;
    }
    if (!s.ok()) {
      rpc::log::Error("dataserver: {} of file {} (work {}): {}", what,
                      w.fileid, w.work_id, s.ToString());
    } else {
      rpc::log::Debug("dataserver: {} of file {} (work {}) done", what,
                      w.fileid, w.work_id);
    }
    done_.push_back({w.work_id, Errno(s)});
    work_done_.fetch_add(1);
    any_ok = any_ok || s.ok();
  }
  // Work done is reported at once, not a heartbeat later: the MDS holds
  // back LAYOUTGET and MDS writes of a file until its truncate is reported
  // (ops_pnfs.cc). Only after a success: an item that keeps failing is
  // handed out again at every heartbeat and must not make us spin.
  *more = work.work_len >= NSCTL_WORK_MAX || done_.size() > NSCTL_WORK_MAX ||
          any_ok;
  return true;
}

namespace {

uint64_t WallNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// The inode a stripe file under the store's directory belongs to, if
// `rel` is exactly the path the store gives it (not a temporary or foreign
// file).
std::optional<uint64_t> StripeOf(const std::filesystem::path& rel) {
  const std::string name = rel.filename().string();
  if (name.size() != 16 ||
      name.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return std::nullopt;
  }
  const uint64_t ino = std::stoull(name, nullptr, 16);
  if (nfs41d::data::LocalDataPath(ino) != rel.string()) return std::nullopt;
  return ino;
}

}  // namespace

int32_t ControlClient::Inventory(uint64_t work_id) {
  namespace fs = std::filesystem;
  // Stripe files with an mtime before this were there before the scan
  // began: the MDS's check only removes such ones (docs/pnfs.md).
  const uint64_t started_ns = WallNs();
  const fs::path root = fs::path(options_.data_dir) / "data";
  std::vector<uint64_t> page;  // fileid, size, mtime_ns per stripe file
  page.reserve(3 * NSCTL_INVENTORY_MAX);
  uint32_t page_no = 0;
  std::error_code ec;
  if (fs::exists(root, ec)) {
    fs::recursive_directory_iterator it(root, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      {
        std::lock_guard lock(mu_);
        if (stop_) return EIO;
      }
      std::error_code fec;
      if (!it->is_regular_file(fec)) continue;
      const std::optional<uint64_t> ino =
          StripeOf(fs::relative(it->path(), root, fec));
      if (!ino) continue;
      struct stat st;
      // Removed since the directory was read: not there any more.
      if (::stat(it->path().c_str(), &st) != 0) continue;
      page.insert(page.end(),
                  {*ino, static_cast<uint64_t>(st.st_size),
                   static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000u +
                       static_cast<uint64_t>(st.st_mtim.tv_nsec)});
      if (page.size() == 3 * NSCTL_INVENTORY_MAX) {
        if (!SendInventoryPage(work_id, page_no++, started_ns, false, page)) {
          return EIO;
        }
        page.clear();
      }
    }
  }
  if (ec) {
    rpc::log::Error("dataserver: inventory of {}: {}", root.string(),
                    ec.message());
    return EIO;
  }
  if (!SendInventoryPage(work_id, page_no, started_ns, true, page)) return EIO;
  rpc::log::Info("dataserver: inventory (work {}) sent in {} page(s)", work_id,
                 page_no + 1);
  return 0;
}

bool ControlClient::SendInventoryPage(uint64_t work_id, uint32_t page,
                                      uint64_t started_ns, bool eof,
                                      const std::vector<uint64_t>& stripes) {
  if (!Connect()) return false;
  const uint64_t device = device_id_.load();
  std::vector<nsctl_stripe> entries(stripes.size() / 3);
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i] = {stripes[3 * i], stripes[3 * i + 1], stripes[3 * i + 2]};
  }
  nsctl_inventory_args a{};
  a.device_id = device;
  a.ds_uuid.ds_uuid_len = static_cast<u_int>(options_.uuid.size());
  a.ds_uuid.ds_uuid_val = const_cast<char*>(options_.uuid.data());
  a.work_id = work_id;
  a.page = page;
  a.started_ns = started_ns;
  a.eof = eof ? TRUE : FALSE;
  a.stripes.stripes_len = static_cast<u_int>(entries.size());
  a.stripes.stripes_val = entries.data();
  const pnfs::Proof proof =
      pnfs::InventoryProof(options_.key, device, Bytes(options_.uuid),
                           work_id, page, started_ns, eof, stripes);
  std::memcpy(a.proof, proof.data(), proof.size());
  rpc::XdrOwned<nsctl_inventory_res> res(xdr_nsctl_inventory_res);
  if (!CallMds(NSCTL_INVENTORY, "NSCTL_INVENTORY", xdr_nsctl_inventory_args, a,
               res)) {
    return false;
  }
  if (res->status != NSCTL_OK) {
    Complain(std::string("NSCTL_INVENTORY page ") + std::to_string(page) +
             " refused: " + StatusName(res->status));
    return false;
  }
  return true;
}

}  // namespace dataserver
