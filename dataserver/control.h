#pragma once

// ControlClient: the data server's side of the control protocol with the
// MDS (pnfs/nsctl.x, docs/pnfs.md). One thread:
//
//   1. NSCTL_REGISTER with the uuid, the advertised and listen addresses and
//      the RegisterProof (pnfs/auth.h); while the MDS cannot be reached or
//      answers NSCTL_ERR_DELAY (or anything but OK), it retries with
//      exponential backoff (initial_backoff doubling to max_backoff),
//      logging the first failure and every change of reason.
//   2. Every heartbeat_seconds the MDS gave: NSCTL_HEARTBEAT carrying the
//      results (`done`) of the work the previous reply delivered. The reply
//      brings new work: NSCTL_REMOVE -> StripeStore::RemoveStripe,
//      NSCTL_TRUNCATE -> StripeStore::TruncateStripe, each result (0 or an
//      errno) kept for the next heartbeat; NSCTL_INVENTORY -> Inventory():
//      NSCTL_INVENTORY calls with the stripe files under <data_dir>/data,
//      NSCTL_INVENTORY_MAX a page. A full batch (NSCTL_WORK_MAX
//      items) means more is queued: the next heartbeat goes at once. Results stay queued until a heartbeat carrying them is
//      answered NSCTL_OK, so a lost reply loses none (the work is
//      idempotent if the MDS sends it again).
//   3. NSCTL_ERR_UNKNOWN_DEVICE: back to 1 (the MDS forgot this device; the
//      results still queued belong to the old registration and are dropped:
//      the MDS sends that work again).
//
// Thread safety: Start/Stop from the owner; the accessors from any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "libnamespace/include/namespace/status.h"
#include "pnfs/auth.h"

namespace rpc {
class Connection;
}

namespace dataserver {

// What the MDS's work acts on; DataServer implements it.
class StripeStore {
 public:
  virtual ~StripeStore() = default;
  // NSCTL_REMOVE: deletes the stripe file of `fileid`; Ok if absent.
  virtual ns::Status RemoveStripe(uint64_t fileid) = 0;
  // NSCTL_TRUNCATE: cuts the stripe file of `fileid` to logical size
  // `size`; Ok if it is absent or not longer.
  virtual ns::Status TruncateStripe(uint64_t fileid, uint64_t size) = 0;
};

struct ControlOptions {
  // The MDS (nfs41d's NFS port: it serves NSCTL_PROG there too).
  std::string mds_host;
  uint16_t mds_port = 0;
  // This data server's identity (<data-dir>/ds.uuid, its text).
  std::string uuid;
  // "host:port" told to clients, and where the MDS reaches this server.
  std::string advertise;
  std::string listen;
  pnfs::Key key{};
  // Stripe files to remove / truncate; must outlive the client.
  StripeStore* store = nullptr;
  // statvfs of this path gives bytes_total / bytes_free.
  std::string data_dir;
  // Retry delays while the MDS is unreachable or refuses.
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  // Per-call deadline.
  std::chrono::milliseconds call_timeout{10000};
};

class ControlClient {
 public:
  explicit ControlClient(ControlOptions options);
  ~ControlClient();  // Stop()
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  // Starts the thread; returns at once (registration happens in the
  // background, the MDS may be down).
  void Start();
  // Stops the thread; an RPC in progress is cut short (its connection
  // closed). Idempotent.
  void Stop();

  bool registered() const { return registered_.load(); }
  uint64_t device_id() const { return device_id_.load(); }
  // Counters, for tests and logs.
  uint64_t registrations() const { return registrations_.load(); }
  uint64_t heartbeats() const { return heartbeats_.load(); }
  uint64_t work_done() const { return work_done_.load(); }
  // NSCTL_CB_WAKE calls received from the MDS.
  uint64_t wakes() const { return wakes_.load(); }

 private:
  struct Done {
    uint64_t work_id = 0;
    int32_t error = 0;
  };
  void Run();
  // One attempt; false: wait (backoff) before the next.
  bool Register();
  // `*more`: the MDS has more work queued (a full batch).
  bool Heartbeat(bool* more);
  // Sleeps up to `d` or until woken (NSCTL_CB_WAKE); false if Stop() was
  // called.
  bool Sleep(std::chrono::milliseconds d);
  // Answers inventory request `work_id`: the stripe files under
  // <data_dir>/data (names as nfs41d::data::LocalDataPath makes them;
  // anything else is skipped), page by page. Returns the work's result: 0
  // once the MDS took the last page, else EIO.
  int32_t Inventory(uint64_t work_id);
  // Sends one inventory page; false (logged) unless the MDS answered OK.
  bool SendInventoryPage(uint64_t work_id, uint32_t page, uint64_t started_ns,
                         bool eof, const std::vector<uint64_t>& stripes);
  // Encodes `args`, calls NSCTL procedure `proc` (`name` in logs) and
  // decodes the reply into `res` (an rpc::XdrOwned); false (logged) if a
  // step fails. A transport failure also drops the connection.
  template <typename Encode, typename Args, typename Res>
  bool CallMds(uint32_t proc, const char* name, Encode encode,
               const Args& args, Res& res);
  // Connects if not connected; false (logged) on failure.
  bool Connect();
  void Disconnect();
  // Logs `why` as a warning unless it is the same reason as last time.
  void Complain(const std::string& why);

  const ControlOptions options_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  // The MDS asked for a heartbeat now (NSCTL_CB_WAKE); guarded by mu_.
  bool wake_ = false;
  // The connection in use, for Stop() to close; guarded by mu_.
  std::shared_ptr<rpc::Connection> conn_;

  // The rest belongs to the thread.
  struct Rpc;
  std::unique_ptr<Rpc> rpc_;
  std::string last_complaint_;
  uint32_t heartbeat_seconds_ = 30;
  std::chrono::steady_clock::time_point registered_at_;
  std::vector<Done> done_;

  std::atomic<bool> registered_{false};
  std::atomic<uint64_t> device_id_{0};
  std::atomic<uint64_t> registrations_{0};
  std::atomic<uint64_t> heartbeats_{0};
  std::atomic<uint64_t> work_done_{0};
  std::atomic<uint64_t> wakes_{0};
};

}  // namespace dataserver
