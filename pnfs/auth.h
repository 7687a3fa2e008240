#pragma once

// The proofs a data server sends with NSCTL_REGISTER and NSCTL_HEARTBEAT
// (pnfs/nsctl.x): HMAC-SHA256 keyed by the key the MDS and the data servers
// share, over the request's identifying fields. The same key signs the
// filehandles the MDS puts in layouts (nfs41d::FhCodec), so a data server
// that may register is one that can check those filehandles, and nobody
// without the key can pose as a data server.
//
// Bytes MAC'd (no separators; strings as their bytes, preceded by their
// length as 4 bytes big-endian so fields cannot be shifted into each other):
//   register:  "nsctl-register"  | len+ds_uuid | len+advertise | len+listen
//   heartbeat: "nsctl-heartbeat" | device_id (8 bytes BE) | len+ds_uuid
//   inventory: "nsctl-inventory" | device_id | len+ds_uuid | work_id (8 BE)
//              | page (4 BE) | started_ns (8 BE) | eof (1 byte) | count (4
//              BE) | each stripe's fileid, size, mtime_ns (8 BE each)
//              (the whole page is MAC'd: an inventory decides what
//              `nsadmin pnfs-check --repair` removes)

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace pnfs {

inline constexpr size_t kKeyBytes = 32;
inline constexpr size_t kProofBytes = 32;
using Key = std::array<uint8_t, kKeyBytes>;
using Proof = std::array<uint8_t, kProofBytes>;

Proof RegisterProof(const Key& key, std::span<const uint8_t> ds_uuid,
                    std::string_view advertise, std::string_view listen);
Proof HeartbeatProof(const Key& key, uint64_t device_id,
                     std::span<const uint8_t> ds_uuid);

// `stripes`: fileid, size, mtime_ns of each stripe file of the page, in
// order (3 words per stripe file).
Proof InventoryProof(const Key& key, uint64_t device_id,
                     std::span<const uint8_t> ds_uuid, uint64_t work_id,
                     uint32_t page, uint64_t started_ns, bool eof,
                     std::span<const uint64_t> stripes);

// Constant-time comparison of a received proof with the expected one.
bool ProofMatches(const Proof& expected, std::span<const uint8_t> received);

}  // namespace pnfs
