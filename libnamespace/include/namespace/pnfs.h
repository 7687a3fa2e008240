#pragma once

// PnfsRegistry: what a pNFS metadata server (nfs41d) keeps about its data
// servers in the namespace database (schema version 5, docs/schema.md):
//
//   - data servers, keyed by the uuid of their data directory, with the
//     address they advertise to clients, the address they listen on, their
//     last heartbeat, up/down state and space;
//   - devices (RFC 8881 §12.2.10 deviceid4): ordered lists of data servers;
//     stripe index i of a file layout goes to member i (§13.3);
//   - per-file layouts: the device and stripe unit of a file;
//   - the work queue: REMOVE / TRUNCATE of a file's stripe file on one data
//     server, handed out on heartbeats (pnfs/nsctl.x) and deleted when the
//     data server reports it done. The database queues it itself (triggers
//     of schema 005) in the transaction that deletes an inode that has a
//     layout, or shrinks its size, so it can never be lost.
//   - inventories (schema version 7): the stripe files each data server
//     reported when asked (NSCTL_INVENTORY work), which the pNFS check
//     (PnfsCheck below, `nsadmin pnfs-check`) compares with the layouts.
//
// No NFS types. Ids are the database's: a data server's id is the
// `device_id` of the control protocol, a device's id the low bits of the
// NFS deviceid4.
//
// Errors (Status, never exceptions): Invalid for malformed arguments
// (nothing changed), NotFound as documented per method, Unavailable /
// IOError from the database.
//
// Thread safety: every method may be called from any thread; each runs in
// one database transaction.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"

namespace ns {

class Namespace;

// The largest uuid (as hex: twice pnfs/nsctl.x's NSCTL_UUID_MAX bytes) and
// address (NSCTL_ADDR_MAX) the registry stores.
inline constexpr size_t kMaxDataServerUuidBytes = 128;
inline constexpr size_t kMaxDataServerAddrBytes = 255;

enum class DataServerState { kUp = 1, kDown = 2 };

struct DataServer {
  uint64_t id = 0;
  // The data directory's uuid, as lowercase hex (the registry's key).
  std::string uuid;
  // "host:port" clients are told (GETDEVICEINFO) and "host:port" the MDS
  // connects to.
  std::string advertise;
  std::string listen;
  TimeNs heartbeat_ns = 0;
  DataServerState state = DataServerState::kUp;
  uint64_t bytes_total = 0;
  uint64_t bytes_free = 0;
  TimeNs registered_ns = 0;
};

// A device: data servers in stripe order.
struct PnfsDevice {
  uint64_t id = 0;
  std::vector<uint64_t> data_servers;
};

struct PnfsLayout {
  InodeId ino = 0;
  uint64_t device = 0;
  uint64_t stripe_unit = 0;
};

// kInventory: list every stripe file (answered with InventoryPage calls).
enum class PnfsWorkOp { kRemove = 1, kTruncate = 2, kInventory = 3 };

struct PnfsWork {
  uint64_t id = 0;
  uint64_t data_server = 0;
  PnfsWorkOp op = PnfsWorkOp::kRemove;
  InodeId fileid = 0;
  // kTruncate: the logical size to truncate to.
  uint64_t size = 0;
  TimeNs queued_ns = 0;
};

// One stripe file a data server holds: the inode it belongs to, its length
// and its mtime (the data server's clock).
struct PnfsStripe {
  InodeId fileid = 0;
  uint64_t size = 0;
  TimeNs mtime_ns = 0;
};

// The state of a data server's inventory: asked for at `requested_ns`
// (work item `work_id`), first page at `started_ns` (the MDS's clock; the
// data server began its scan at `ds_started_ns`, its clock), complete at
// `finished_ns` (0: not yet) with `files` stripe files.
struct PnfsInventoryRun {
  uint64_t data_server = 0;
  uint64_t work_id = 0;
  TimeNs requested_ns = 0;
  TimeNs started_ns = 0;
  TimeNs ds_started_ns = 0;
  TimeNs finished_ns = 0;
  uint64_t files = 0;
  bool complete() const { return finished_ns != 0; }
};

// Dark data: a stripe file in a complete inventory that no layout names
// (no layout of `fileid` whose device has the data server) and whose
// removal is not queued. `before_inventory`: its mtime is before the data
// server began the scan, so it cannot belong to a file being created.
struct PnfsDarkStripe {
  uint64_t data_server = 0;
  InodeId fileid = 0;
  uint64_t size = 0;
  TimeNs mtime_ns = 0;
  bool before_inventory = false;
};

// A missing stripe: the layout of `ino` puts stripe `index` on
// `data_server`, the file's size says that stripe holds bytes (size >
// index * stripe_unit: the sparse layout puts stripe unit k on index
// k mod n), the file was last modified before the inventory started, and
// the complete inventory lists no stripe file of `ino`. (A file grown by
// SETATTR without writing is indistinguishable: its holes need no file.)
struct PnfsMissingStripe {
  InodeId ino = 0;
  uint64_t data_server = 0;
  uint32_t index = 0;
  uint64_t file_size = 0;
};

class PnfsRegistry {
 public:
  // `ns` must outlive this object.
  explicit PnfsRegistry(Namespace* ns) : ns_(ns) {}

  // Registers the data server `uuid` (1..kMaxDataServerUuidBytes of hex) or
  // updates its row: the same uuid always gets the same id. It is up, with
  // a heartbeat at `now`. Errors: Invalid (empty or oversized uuid or
  // address).
  Result<DataServer> Register(std::string_view uuid, std::string_view advertise,
                              std::string_view listen, uint64_t bytes_total,
                              uint64_t bytes_free, TimeNs now);

  // A heartbeat of data server `id` with `uuid`: records it (up, space,
  // heartbeat at `now`), deletes the queue rows in `done` that belong to
  // it, and returns up to `max_work` of its queued work in queue order.
  // Errors: NotFound (no data server `id` with that uuid: it must register
  // again).
  Result<std::vector<PnfsWork>> Heartbeat(uint64_t id, std::string_view uuid,
                                          uint64_t bytes_total,
                                          uint64_t bytes_free,
                                          std::span<const uint64_t> done,
                                          size_t max_work, TimeNs now);

  // Marks every up data server whose last heartbeat is before `cutoff` as
  // down and returns them (those that were already down are not returned).
  Result<std::vector<DataServer>> ExpireSilent(TimeNs cutoff);

  // Every data server, by id. `only_up`: those that are up.
  Result<std::vector<DataServer>> ListDataServers(bool only_up = false);
  // Errors: NotFound.
  Result<DataServer> GetDataServer(uint64_t id);

  // The device for this ordered list of data servers, created on first use
  // (the same list always gives the same device). Errors: Invalid (empty
  // list, or a data server twice).
  Result<PnfsDevice> DeviceFor(std::span<const uint64_t> data_servers);
  // Errors: NotFound.
  Result<PnfsDevice> GetDevice(uint64_t id);
  // Every device, by id.
  Result<std::vector<PnfsDevice>> ListDevices();

  // The layout of `ino`, or nullopt (its bytes are in the MDS).
  Result<std::optional<PnfsLayout>> GetLayout(InodeId ino);
  // Gives `layout.ino` this layout unless it has one; returns the layout it
  // has afterwards. The inode is locked for the transaction, so a
  // concurrent removal either sees the layout (and queues its removal) or
  // wins (Stale). Errors: Stale (no such inode), Invalid (stripe unit 0).
  Result<PnfsLayout> SetLayoutIfAbsent(const PnfsLayout& layout);

  // Queued work: all of it, or of one data server, or for one file, in
  // queue order.
  Result<std::vector<PnfsWork>> ListWork();
  Result<std::vector<PnfsWork>> WorkForFile(InodeId fileid);
  // Queues work by hand (tools, tests; the database queues removal and
  // truncation itself).
  Result<uint64_t> QueueWork(uint64_t data_server, PnfsWorkOp op,
                             InodeId fileid, uint64_t size, TimeNs now);

  // --- inventories (schema version 7)

  // Asks data server `data_server` for a new inventory: queues an
  // kInventory work item (replacing one still queued), forgets its previous
  // inventory and returns the work id. Errors: NotFound (no such data
  // server).
  Result<uint64_t> RequestInventory(uint64_t data_server, TimeNs now);
  // One page of data server `id`'s answer to work item `work_id` (see
  // pnfs/nsctl.x NSCTL_INVENTORY): page 0 (re)starts the inventory, the
  // others must follow in order; `eof` completes it. A page counts as a
  // heartbeat (a long scan sends no other). Errors: NotFound (no
  // data server `id` with that uuid), Invalid (work_id is not the request
  // in force, or the page is out of order; nothing changed).
  Status InventoryPage(uint64_t id, std::string_view uuid, uint64_t work_id,
                       uint32_t page, TimeNs ds_started_ns, bool eof,
                       std::span<const PnfsStripe> stripes, TimeNs now);
  // Every data server's inventory state, by data server.
  Result<std::vector<PnfsInventoryRun>> ListInventoryRuns();
  // Up to `limit` dark stripe files after (after_ds, after_fileid), in
  // (data server, fileid) order, from complete inventories only.
  Result<std::vector<PnfsDarkStripe>> DarkStripes(uint64_t after_ds,
                                                  InodeId after_fileid,
                                                  size_t limit);
  // Up to `limit` missing stripes after (after_ino, after_index), in that
  // order, against complete inventories only.
  Result<std::vector<PnfsMissingStripe>> MissingStripes(InodeId after_ino,
                                                        uint32_t after_index,
                                                        size_t limit);
  // Queues the removal of the stripe file of `fileid` on `data_server`
  // unless, in the same transaction, a layout names it after all or its
  // removal is already queued. Returns whether it queued.
  Result<bool> QueueDarkRemoval(uint64_t data_server, InodeId fileid,
                                TimeNs now);

 private:
  Namespace* ns_;
};

struct PnfsCheckOptions {
  // Queue the removal of dark stripe files older than their inventory.
  bool repair = false;
  // At most this many findings of each kind are kept (memory is bounded:
  // the database is read page by page).
  size_t max_findings = 1000;
};

struct PnfsCheckReport {
  // Data servers with a complete inventory, and those without one (never
  // asked, down, still scanning, or an older data server that cannot).
  std::vector<PnfsInventoryRun> inventoried;
  std::vector<DataServer> not_inventoried;
  std::vector<PnfsDarkStripe> dark;
  std::vector<PnfsMissingStripe> missing;
  // More findings than max_findings of that kind.
  bool dark_truncated = false;
  bool missing_truncated = false;
  // Removals queued by the repair.
  size_t removals_queued = 0;
};

// Compares the complete inventories with the layouts (docs/pnfs.md, "Dark
// data and missing stripes"). Read-only unless options.repair.
Result<PnfsCheckReport> PnfsCheck(PnfsRegistry& registry,
                                  const PnfsCheckOptions& options, TimeNs now);

}  // namespace ns
