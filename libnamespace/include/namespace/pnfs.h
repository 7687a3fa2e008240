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

enum class PnfsWorkOp { kRemove = 1, kTruncate = 2 };

struct PnfsWork {
  uint64_t id = 0;
  uint64_t data_server = 0;
  PnfsWorkOp op = PnfsWorkOp::kRemove;
  InodeId fileid = 0;
  // kTruncate: the logical size to truncate to.
  uint64_t size = 0;
  TimeNs queued_ns = 0;
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

 private:
  Namespace* ns_;
};

}  // namespace ns
