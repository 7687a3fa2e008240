#pragma once

// pNFS file-layout I/O (RFC 8881 §12-13) on top of nfs41client::Client:
// LAYOUTGET, GETDEVICEINFO, one session per data server, striped parallel
// READ/WRITE, COMMIT to the data servers, LAYOUTCOMMIT and LAYOUTRETURN,
// and I/O through the MDS when there is no layout or a data server fails.
//
//   auto f = nfs41client::PnfsFile::Open(*mds, fh, open_stateid,
//                                        LAYOUTIOMODE4_RW);
//   f.value->Write(0, bytes);        // striped, several READ/WRITE in flight
//   f.value->Commit();               // COMMIT each DS, then LAYOUTCOMMIT
//   f.value->Return();               // LAYOUTRETURN
//
// Thread safety: a PnfsFile is used by one thread at a time; it runs its
// own worker threads inside Write and Read. The MDS Client must outlive it.

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "nfs41client/client.h"

namespace nfs41client {

// A decoded nfsv4_1_file_layout4 (RFC 8881 §13.3) and its layout stateid.
struct FileLayout {
  stateid4 stateid{};
  std::array<uint8_t, NFS4_DEVICEID4_SIZE> device_id{};
  uint32_t util = 0;  // nfl_util: stripe unit | NFL4_UFLG_* flags
  uint32_t first_stripe_index = 0;
  uint64_t pattern_offset = 0;
  std::vector<Fh> fhs;  // one for all stripe indices, or one per index
  layoutiomode4 iomode = LAYOUTIOMODE4_READ;

  uint64_t unit() const { return util & ~uint32_t{NFL4_UFLG_MASK}; }
  bool dense() const { return (util & NFL4_UFLG_DENSE) != 0; }
  bool commit_through_mds() const {
    return (util & NFL4_UFLG_COMMIT_THRU_MDS) != 0;
  }
};

// A decoded nfsv4_1_file_layout_ds_addr4 (RFC 8881 §13.2.1): stripe index i
// goes to multipath list stripe_indices[i]; each list holds the universal
// addresses (RFC 5665 §5.2.3) of one data server.
struct FileDevice {
  std::vector<uint32_t> stripe_indices;
  struct Addr {
    std::string netid;  // "tcp" or "tcp6"
    std::string uaddr;  // "h1.h2.h3.h4.p1.p2" or "ipv6.p1.p2"
  };
  std::vector<std::vector<Addr>> data_servers;
};

// Where one piece of a file's byte range lives (RFC 8881 §13.4).
struct StripeTarget {
  uint32_t stripe_index = 0;  // into FileDevice::stripe_indices
  uint32_t data_server = 0;   // into FileDevice::data_servers
  uint32_t fh_index = 0;      // into FileLayout::fhs
  uint64_t ds_offset = 0;     // offset to send to the data server
  uint64_t length = 0;        // bytes until the stripe unit ends (<= want)
};

// Maps file offset `offset` for up to `want` bytes: stripe unit number
// (offset - pattern_offset) / unit, stripe index (that + first index) mod
// the index count (§13.4.1), the data server offset: the file offset when
// sparse, the unit's place in that server's packed file when dense
// (§13.4.2-13.4.4). nullopt when the layout and device do not fit together
// (no units, an index out of range, a wrong filehandle count, an offset
// below pattern_offset).
std::optional<StripeTarget> MapStripe(const FileLayout& layout,
                                      const FileDevice& device,
                                      uint64_t offset, uint64_t want);

// "h1.h2.h3.h4.p1.p2" (tcp) or "x:y::z.p1.p2" (tcp6) -> host and port
// (RFC 5665 §5.2.3.3-5.2.3.4). False on anything else.
bool ParseUniversalAddress(const std::string& uaddr, std::string* host,
                           uint16_t* port);

// Decoders for the opaque bodies of LAYOUTGET and GETDEVICEINFO results.
// False when the bytes are not a whole file layout / ds address.
bool DecodeFileLayout(std::span<const uint8_t> body, FileLayout* out);
bool DecodeFileDevice(std::span<const uint8_t> body, FileDevice* out);

// LAYOUTGET (§18.43) of the whole file with `iomode`, the first file layout
// of the reply decoded. `sid`: an open, lock or delegation stateid for the
// first layout of the file, the layout stateid after that.
NfsResult<FileLayout> LayoutGet(Client& mds, const Fh& fh,
                                const stateid4& sid, layoutiomode4 iomode);
// GETDEVICEINFO (§18.40) of a file-layout device; asks again with the size
// the server says when the first answer is NFS4ERR_TOOSMALL.
NfsResult<FileDevice> GetDeviceInfo(
    Client& mds, const std::array<uint8_t, NFS4_DEVICEID4_SIZE>& id);
// LAYOUTCOMMIT (§18.42) of the whole file: the last byte written, new
// mtime left to the server.
nfsstat4 LayoutCommit(Client& mds, const Fh& fh, const stateid4& layout_sid,
                      uint64_t last_write_offset);
// LAYOUTRETURN (§18.44) LAYOUTRETURN4_FILE of the whole file.
nfsstat4 LayoutReturn(Client& mds, const Fh& fh, const stateid4& layout_sid);

// ClientOptions for a data server's session: no back channel, 1 MiB +
// 64 KiB requests and replies.
ClientOptions DataServerClientOptions();

struct PnfsOptions {
  // Largest READ/WRITE sent (also cut at stripe unit boundaries).
  uint32_t io_size = 1u << 20;
  // READ/WRITE requests in flight on each data server's session (each on
  // its own slot), and on the MDS when I/O goes there.
  uint32_t inflight_per_server = 4;
  // UNSTABLE4 then Commit(), or FILE_SYNC4 at once.
  stable_how4 stable = UNSTABLE4;
  // Sessions with the data servers: no back channel (a data server sends
  // no callbacks, §13.6) and room for an io_size WRITE plus headers.
  ClientOptions ds_client = DataServerClientOptions();
  // Ask for a layout at all (false: every byte through the MDS, the same
  // code path as a server without pNFS).
  bool use_layout = true;
};

// What a PnfsFile did, for tests and benchmarks.
struct PnfsStats {
  uint64_t ds_bytes = 0;   // through data servers
  uint64_t mds_bytes = 0;  // through the MDS
  uint64_t fallbacks = 0;  // data server failures that sent I/O to the MDS
};

// One open file's data path. Without a layout (the MDS gave none, or
// use_layout is false) every READ/WRITE goes to the MDS with the open
// stateid. The stripe units of a data server that cannot be reached or
// fails an operation go to the MDS too, for the rest of this object's
// life (RFC 8881 §13.8: the MDS can serve every byte); the others still go
// to their data servers. Data servers and the MDS get the open stateid
// (§13.9.1).
class PnfsFile {
 public:
  static NfsResult<std::unique_ptr<PnfsFile>> Open(Client& mds, const Fh& fh,
                                                   const stateid4& open_sid,
                                                   layoutiomode4 iomode,
                                                   PnfsOptions options = {});
  ~PnfsFile();

  // Writes all of `data` at `offset` with up to inflight_per_server
  // requests per server outstanding. NFS4_OK or the first failure (I/O
  // that failed on a data server and again on the MDS).
  nfsstat4 Write(uint64_t offset, std::span<const uint8_t> data);
  // Reads into `out` from `offset`; the byte count read (short at end of
  // file; holes read as zeros).
  NfsResult<uint64_t> Read(uint64_t offset, std::span<uint8_t> out);
  // COMMIT of every data server written with UNSTABLE4 (or of the MDS),
  // then LAYOUTCOMMIT with the highest byte written, so the MDS learns the
  // size (§13.7, §18.42). A write verifier that changed between WRITE and
  // COMMIT means the data server lost bytes: NFS4ERR_IO (the caller
  // writes again).
  nfsstat4 Commit();
  // LAYOUTRETURN; later I/O goes through the MDS. Idempotent.
  nfsstat4 Return();

  bool has_layout() const { return layout_.has_value() && !returned_; }
  const std::optional<FileLayout>& layout() const { return layout_; }
  // The layout's device (empty without a layout).
  const FileDevice& device() const { return device_; }
  PnfsStats stats() const;

 private:
  struct Server;
  // One READ or WRITE of at most io_size inside one stripe unit.
  struct Piece {
    uint64_t offset;
    uint8_t* data;  // only read from when `write`
    uint64_t length;
    bool write;
  };
  PnfsFile(Client& mds, Fh fh, stateid4 open_sid, PnfsOptions options);
  std::vector<Piece> Split(uint64_t offset, uint8_t* data, uint64_t length,
                           bool write) const;
  // Runs `pieces` on inflight_per_server threads per server; got[i] is
  // what piece i moved. NFS4_OK or the first failure.
  nfsstat4 RunPieces(std::vector<Piece>& pieces, std::vector<uint64_t>& got);
  // One piece on its data server, else (no layout, or that server
  // failed) on the MDS.
  nfsstat4 DoPiece(const Piece& p, uint64_t* got);
  nfsstat4 SendPiece(Server& s, const Fh& fh, uint64_t offset, uint8_t* data,
                     uint64_t length, bool write, uint64_t* got);
  // The session of data server `ds`, made at first use; null once it
  // cannot be reached or has failed.
  Server* Connect(uint32_t ds);
  void DropServer(Server* s);
  // COMMIT of `fhs` on `s` if it took UNSTABLE4 writes since the last one.
  nfsstat4 CommitServer(Server& s, const std::vector<const Fh*>& fhs);

  Client& mds_;
  const Fh fh_;
  const stateid4 open_sid_;
  const PnfsOptions options_;
  const std::unique_ptr<Server> mds_server_;
  std::optional<FileLayout> layout_;
  FileDevice device_;
  bool returned_ = false;

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Server>> servers_;  // guarded by mu_
  std::optional<uint64_t> last_written_;          // guarded by mu_
  PnfsStats stats_;                               // guarded by mu_
};

}  // namespace nfs41client
