#pragma once

// PnfsDataStore: the MDS's DataStore when data servers exist. Files with a
// pNFS layout (ns::PnfsRegistry) have their bytes on the data servers of
// their device, striped (RFC 8881 §13.4: stripe unit k lives on member
// k mod n, sparse: at its logical offset); READ/WRITE/COMMIT sent to the MDS
// for such a file (a client that cannot reach a data server falls back to
// the MDS, §13.8 / §12.5.4) go to the data servers through the in-tree
// NFSv4.1 client, at each data server's `listen` address, with
// data-server filehandles (FhCodec keyed with the pNFS key). Files without
// a layout use the wrapped local store.
//
// While a truncate of the file is still queued for its data servers,
// writes fail with Unavailable (NFS4ERR_DELAY): the late truncate would cut
// them. Fallback writes are FILE_SYNC4 on the data servers: the MDS hands its
// own write verifier to the client and could not tell it that a data
// server restarted and lost unstable bytes. Truncate and Remove of a file
// with a layout do nothing here: the database queues them for the data
// servers (schema 005's triggers). A data server that is down or does not
// answer makes the I/O fail with Unavailable (NFS4ERR_DELAY): the client
// retries.
//
// Thread safety: every method may be called from any thread; one
// connection per data server, shared (the client library takes a free slot
// per call), reconnected after a failure.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/include/namespace/pnfs.h"
#include "nfs41d/data/data_store.h"
#include "nfs41d/fh.h"

namespace nfs41client {
class Client;
}

namespace nfs41d::data {

class PnfsDataStore : public DataStore {
 public:
  // `local`, `ns`, `ds_fh` must outlive this object. `any_layouts`: false
  // while no file can have a layout (no data server ever registered).
  // `truncate_queued`: runs after a truncate of a striped file, which the
  // database queued for the data servers (PnfsMds::WakeDataServers).
  PnfsDataStore(DataStore* local, ns::Namespace* ns, const FhCodec* ds_fh,
                std::function<bool()> any_layouts = {},
                std::function<void()> truncate_queued = {});
  ~PnfsDataStore() override;

  ns::Result<size_t> Read(ns::InodeId ino, uint64_t offset,
                          std::span<uint8_t> out) override;
  ns::Status Write(ns::InodeId ino, uint64_t offset,
                   std::span<const uint8_t> data,
                   Stability stability) override;
  ns::Status Truncate(ns::InodeId ino, uint64_t size) override;
  ns::Status Remove(ns::InodeId ino) override;
  ns::Result<uint64_t> SpaceUsed(ns::InodeId ino) override;
  ns::Status Sync(ns::InodeId ino, Stability stability) override;

 private:
  struct Striping {
    uint64_t unit = 0;
    std::vector<uint64_t> data_servers;  // stripe order
    std::vector<uint8_t> fh;             // the data-server filehandle
  };
  // The file's striping, or nullopt (no layout: the local store).
  ns::Result<std::optional<Striping>> StripingOf(ns::InodeId ino);
  // A connected session to data server `id`, or Unavailable.
  ns::Result<std::shared_ptr<nfs41client::Client>> Connection(uint64_t id);
  void Drop(uint64_t id);

  DataStore* local_;
  ns::Namespace* ns_;
  const FhCodec* ds_fh_;
  std::function<bool()> any_layouts_;
  std::function<void()> truncate_queued_;
  ns::PnfsRegistry registry_;
  std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<nfs41client::Client>> conns_;  // mu_
  // Layouts never change once made: a positive cache needs no invalidation.
  std::map<ns::InodeId, Striping> stripings_;  // mu_
};

}  // namespace nfs41d::data
