#pragma once

// PnfsMds: nfs41d as a pNFS metadata server (RFC 8881 §12, §13; docs/pnfs.md).
//
//  - The control program NSCTL_PROG (pnfs/nsctl.x) on nfs41d's NFS port:
//    data servers register (their proof checked with the pNFS key; a stable
//    id per uuid, ns::PnfsRegistry) and heartbeat (liveness, queued work
//    out, finished work deleted). A background thread marks data servers
//    that stopped heartbeating as down and recalls the layouts that use
//    them (CB_LAYOUTRECALL, §20.3).
//  - Layout state: one layout stateid per (client, file) (§12.5.3), kept in
//    memory like open state (a restarted MDS has none; clients get new
//    layouts after reclaim, §12.7.4).
//  - Files get a layout (a device and a stripe unit, in the database) at
//    their first LAYOUTGET while they have no bytes in the MDS's own store.
//  - NSCTL_INVENTORY pages (a data server's answer to an inventory request
//    queued by `nsadmin pnfs-check`) go into the registry.
//  - Device notifications (CB_NOTIFY_DEVICEID, §20.12): clients that asked
//    in GETDEVICEINFO are told NOTIFY_DEVICEID4_CHANGE for every device of
//    a data server that re-registers with another advertised address
//    (ndc_immediate: the old address is gone) or comes back after being
//    down (so a client that marked the device unavailable fetches it again
//    instead of waiting out its own retry timer). Subscriptions are in
//    memory, per client, and go with it.
//
// The layout operations themselves are in ops_pnfs.cc.
//
// Thread safety: every method may be called from any thread, except
// Start/Stop (the owning thread).

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/include/namespace/pnfs.h"
#include "nfs41d/fh.h"
#include "nfs41d/proto/nfs4_prot.h"
#include "nfs41d/state/state_manager.h"
#include "rpc/program.h"

namespace nfs41d {

struct PnfsOptions {
  // The key shared with the data servers; empty: <data_dir>/pnfs.key,
  // created if missing (docs/pnfs.md).
  std::string key_file;
  // Told to data servers at registration (nsctl_register_ok).
  uint32_t heartbeat_seconds = 5;
  // A data server silent for this long is down.
  uint32_t expire_seconds = 20;
  // Stripe unit and count of new layouts when the directory has no tags
  // pnfs.stripe_unit / pnfs.stripe_count. stripe_count 0: every data
  // server that is up. The unit is rounded (RoundStripeUnit).
  uint64_t stripe_unit = 1 << 20;
  uint32_t stripe_count = 0;
};

// A stripe unit as layouts carry it: a multiple of 4096 (RFC 8881 §13.3
// needs 64, since nfl_util4's low bits are flags; the Linux client refuses
// units that are not whole pages), at most 2 GiB (nfl_util4 is 32 bits).
uint64_t RoundStripeUnit(uint64_t unit);

// The NFS deviceid4 of a registry device: its id, big-endian, in the first
// 8 bytes (the rest zero), so it is stable across MDS restarts as the
// device is.
std::array<uint8_t, NFS4_DEVICEID4_SIZE> DeviceIdBytes(uint64_t device);
std::optional<uint64_t> DeviceFromBytes(const uint8_t* bytes);

// "host:port" -> the universal address of RFC 5665 §5.2.3.3
// ("h1.h2.h3.h4.p1.p2") and its netid ("tcp"/"tcp6"). False if the host is
// neither an IP literal nor resolvable.
bool UniversalAddress(const std::string& host_port, std::string* netid,
                      std::string* uaddr);

class PnfsMds {
 public:
  // `ns`, `state` must outlive this object.
  PnfsMds(PnfsOptions options, std::array<uint8_t, kFhSecretBytes> key,
          ns::Namespace* ns, state::StateManager* state);
  ~PnfsMds();  // Stop()

  const PnfsOptions& options() const { return options_; }
  // Data-server filehandles (docs/pnfs.md): FhCodec keyed with the pNFS key.
  const FhCodec& ds_fh() const { return ds_fh_; }
  ns::PnfsRegistry& registry() { return registry_; }

  // NSCTL_PROG v1 (NULL, REGISTER, HEARTBEAT).
  rpc::Program MakeNsctlProgram();

  // The expiry thread: every second, ExpireNow(now).
  void Start();
  void Stop();
  // Marks data servers silent for expire_seconds as down and recalls the
  // layouts of devices that use them. Returns how many went down.
  size_t ExpireNow(ns::TimeNs now);

  // Whether any data server ever registered (fs_layout_types lists
  // LAYOUT4_NFSV4_1_FILES from then on; see attrs in ops_pnfs.cc).
  bool AnyRegistered() const { return any_registered_.load(); }
  // Asks every data server that heartbeated on a connection still open to
  // heartbeat now (NSCTL_CB_WAKE over its control connection, pnfs/nsctl.x):
  // called once work was queued that a client waits for (a truncate of a
  // striped file: LAYOUTGET says LAYOUTTRYLATER until it is reported done).
  // Does not wait for the answers. Returns how many were asked.
  size_t WakeDataServers();

  // --- layout state (§12.5.3)
  struct Layout {
    clientid4 client = 0;
    ns::InodeId ino = 0;
    uint32_t generation = 0;
    std::array<uint8_t, 12> other{};
    uint32_t seqid = 0;
    uint64_t device = 0;
    layoutiomode4 iomode = LAYOUTIOMODE4_READ;
    // The client's (MDS) filehandle of the file, for CB_LAYOUTRECALL.
    std::vector<uint8_t> mds_fh;
    // When a CB_LAYOUTRECALL the client accepted was sent (0: none): until
    // it returns the layout, LAYOUTGET of the file is
    // NFS4ERR_RECALLCONFLICT (§12.5.5.2.1); after a lease period without
    // the return the layout is revoked (§12.5.5.2).
    int64_t recalled_ns = 0;
  };
  // Is `sid` a layout stateid of this server? Then *out is its state.
  // NFS4ERR_BAD_STATEID (unknown or another client's), NFS4ERR_OLD_STATEID.
  nfsstat4 FindLayout(clientid4 client, const stateid4& sid, Layout* out);
  bool IsLayoutStateid(const stateid4& sid) const;
  // Grants (client, ino) a layout on `device`: a new stateid, or the
  // existing one with seqid + 1. Returns the stateid to send.
  stateid4 Grant(clientid4 client, ns::InodeId ino, uint32_t generation,
                 uint64_t device, layoutiomode4 iomode,
                 std::vector<uint8_t> mds_fh);
  // LAYOUTRETURN of a FILE (whole file: we hand out whole-file layouts):
  // seqid + 1 and the state forgotten; returns the final stateid, or
  // nullopt if the client held none on `ino`.
  std::optional<stateid4> ReturnFile(clientid4 client, ns::InodeId ino);
  // LAYOUTRETURN FSID / ALL: forgets every layout of the client.
  size_t ReturnAll(clientid4 client);
  // Layouts held, for tests.
  std::vector<Layout> LayoutsOf(ns::InodeId ino);

  // CB_LAYOUTRECALL (§20.3) of every layout on `ino` (except `except`'s)
  // before a conflicting change (truncate, removal of the last name of an
  // open file); waits for each client's answer to the callback (not for
  // its LAYOUTRETURN). Clients that answer NFS4ERR_NOMATCHING_LAYOUT or
  // cannot be reached lose the layout at once. Returns how many recalls
  // were delivered. REQUIRES: not on the RPC event-loop thread.
  size_t RecallFile(ns::InodeId ino, clientid4 except = 0);
  // The same for every layout on `device`.
  size_t RecallDevice(uint64_t device);
  // Whether a shrink of `ino` may go ahead: NFS4ERR_GRACE while the server
  // is in its grace period and the file has a layout. Layouts are not
  // reclaimed (§12.7.4), so after a restart the MDS does not know who held
  // one and cannot recall it, while a client that has not yet noticed the
  // restart may still write to the data servers through it; the truncate
  // queued for them could then be overtaken by such a write, and its bytes
  // would come back when the file grows again. Clients notice the restart
  // within a lease period, which the grace period outlasts.
  nfsstat4 ShrinkAllowed(ns::InodeId ino);

  // --- device notifications (§20.12)
  // The client asked for `types` (bits 1 << notify_deviceid_type4) on
  // `device` in GETDEVICEINFO: records what is supported of it and returns
  // that (gdir_notification): NOTIFY_DEVICEID4_CHANGE only. DELETE is never
  // sent: device ids are permanent (the registry never deletes a device,
  // and §20.12.3 forbids deleting one that layouts still name).
  uint32_t Subscribe(clientid4 client, uint64_t device, uint32_t types);
  // Queues NOTIFY_DEVICEID4_CHANGE for every device that has data server
  // `ds` and wakes the background thread, which sends them
  // (SendDeviceNotifications).
  void DataServerChanged(uint64_t ds, bool immediate);
  // Sends what DataServerChanged queued: one CB_NOTIFY_DEVICEID per client
  // with every device it subscribed to among them. Returns how many
  // clients accepted. REQUIRES: not on the RPC event-loop thread.
  size_t SendDeviceNotifications();

  // The directory `ino` was last opened by name in (OPEN CLAIM_NULL), for
  // the stripe tags of its first layout; 0 if unknown. Bounded memory.
  void NoteDirectory(ns::InodeId ino, ns::InodeId dir);
  ns::InodeId DirectoryOf(ns::InodeId ino);

  // Drops the layouts of clients the server no longer knows (lease expiry,
  // DESTROY_CLIENTID) and revokes recalled layouts not returned within
  // `recall_timeout`: called by the expiry thread. Returns how many went.
  size_t ForgetGoneClients(std::chrono::nanoseconds recall_timeout);

 private:
  // By inode first: the layouts of one file are one range (RecallFile,
  // LAYOUTGET's recall check run on every REMOVE / LAYOUTGET).
  struct Key {
    ns::InodeId ino;
    clientid4 client;
    auto operator<=>(const Key&) const = default;
  };
  nfsstat4 SendRecall(const Layout& l);
  // Data server `id` answered (REGISTER or HEARTBEAT): if it was down,
  // its devices changed back (DataServerChanged, not immediate).
  void NoteAlive(uint64_t id);
  // Data server `id` heartbeats on `conn`: where WakeDataServers reaches it.
  void NoteControlConnection(uint64_t id,
                             const std::shared_ptr<rpc::Connection>& conn);
  // REQUIRES: mu_ held.
  std::map<Key, Layout>::iterator EraseLocked(
      std::map<Key, Layout>::iterator it);

  PnfsOptions options_;
  std::array<uint8_t, kFhSecretBytes> key_;
  FhCodec ds_fh_;
  ns::Namespace* ns_;
  state::StateManager* state_;
  ns::PnfsRegistry registry_;
  std::atomic<bool> any_registered_{false};
  uint32_t instance_;

  mutable std::mutex mu_;
  std::map<Key, Layout> layouts_;  // guarded by mu_
  // Stateid `other` -> its layout's key; guarded by mu_.
  std::map<std::array<uint8_t, 12>, Key> by_other_;
  uint64_t next_other_ = 1;        // guarded by mu_
  std::map<ns::InodeId, ns::InodeId> dirs_;  // guarded by mu_
  // Device notifications: client -> devices it subscribed to; devices to
  // notify (-> immediate); data servers known to be down. guarded by mu_.
  std::map<clientid4, std::set<uint64_t>> notify_;
  std::map<uint64_t, bool> notify_pending_;
  std::set<uint64_t> down_;
  // Data server -> its control connection (last heartbeat's); guarded by mu_.
  std::map<uint64_t, std::weak_ptr<rpc::Connection>> control_conns_;

  std::mutex thread_mu_;
  std::condition_variable thread_cv_;
  bool stop_ = false;  // guarded by thread_mu_
  std::thread thread_;
};

}  // namespace nfs41d
