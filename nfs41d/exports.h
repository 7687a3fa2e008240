#pragma once

// Exports: which parts of the namespace nfs41d serves, to whom and how
// (RFC 8881 §7 pseudo file system, §2.6 security negotiation).
//
// An ExportTable is built once from the [[export]] entries of the config
// (every path resolved in the namespace) and is immutable afterwards; a
// SIGHUP reload builds a new one and swaps the shared_ptr (ExportsHandle), so
// a COMPOUND sees one table from start to end.
//
// The root a client sees (PUTROOTFH):
//   - one export at "/": that export;
//   - otherwise a pseudo file system (§7.3): read-only synthetic directories
//     for "/" and every ancestor of a top-level export, with each export's
//     root as a junction in them. An export inside another export is reached
//     by LOOKUP crossing into its root (its own fsid, rules and filehandles).
//
// Filehandles carry the export id (fh.h): PUTFH finds the export's rules by
// it. Ids are given in the config (`id`) or derived from the path, so they
// survive restarts and reordering; pseudo directories use kPseudoExportId.
//
// Thread safety: an ExportTable is immutable; ExportsHandle is safe to use
// from any thread.

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "rpc/message.h"

namespace nfs41d {

// The export id of pseudo file system directories.
inline constexpr uint32_t kPseudoExportId = 0xffffffffu;
// Pseudo directory filehandles use inode numbers with this bit set, which no
// namespace inode has: a pseudo handle reaching the namespace is STALE.
inline constexpr uint64_t kPseudoInoBit = uint64_t{1} << 63;

// An IPv4 or IPv6 network ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7").
struct Cidr {
  int family = AF_INET;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> addr{};
  int prefix = 32;
  // Nullopt with a message in *error when `s` is not a network.
  static std::optional<Cidr> Parse(std::string_view s, std::string* error);
  // IPv4-mapped IPv6 peers (::ffff:a.b.c.d) match IPv4 networks.
  bool Contains(const sockaddr_storage& peer) const;
};

enum class Squash { kNone, kRoot, kAll };

// One [[export]] entry as configured.
struct ExportConfig {
  std::string path;  // absolute path in the namespace
  // Client networks; the default is loopback only (see nfs41d.example.toml).
  std::vector<std::string> clients = {"127.0.0.0/8", "::1/128"};
  bool read_only = false;
  // root_squash by default, as on Linux: uid 0 is the anonymous user.
  Squash squash = Squash::kRoot;
  uint32_t anonuid = 65534;
  uint32_t anongid = 65534;
  // RPC security flavors accepted: "sys" (AUTH_SYS), "none" (AUTH_NONE).
  std::vector<std::string> sec = {"sys"};
  // Filehandle export id; unset: derived from the path.
  std::optional<uint32_t> id;
};

// The no-config default: "/" read-write to loopback, no squashing, AUTH_SYS
// and AUTH_NONE, export id 0 (the id filehandles had before exports existed).
ExportConfig DefaultExport();

struct Export {
  uint32_t id = 0;
  std::string path;
  ns::InodeId root = 0;       // the export's root directory
  uint32_t root_generation = 0;
  std::vector<Cidr> clients;
  bool read_only = false;
  Squash squash = Squash::kRoot;
  uint32_t anonuid = 65534, anongid = 65534;
  bool allow_sys = true, allow_none = false;
  // Junction: the fileid of the pseudo directory it is mounted on, or of the
  // directory in the enclosing export (mounted_on_fileid, §5.8.2.23).
  uint64_t mounted_on_fileid = 0;
  // LOOKUPP from the root: the pseudo node index, or the enclosing export.
  int parent_pseudo = -1;
  uint32_t parent_export = kPseudoExportId;

  // An address that may use the export. A null peer (no socket: unit
  // tests) may.
  bool AllowsPeer(const sockaddr_storage* peer) const;
  bool AllowsFlavor(uint32_t flavor) const {
    return flavor == rpc::kAuthSys ? allow_sys
                                   : flavor == rpc::kAuthNone && allow_none;
  }
  // The credentials the namespace sees for a caller (§ root/all squash).
  ns::Credentials Squashed(const ns::Credentials& in) const;
};

// A directory of the pseudo file system (§7.3).
struct PseudoNode {
  std::string path;  // "/", "/a", "/a/b"
  std::string name;  // last component ("" for the root)
  int parent = -1;   // index; -1 for the root
  std::vector<int> children;  // pseudo directories under it
  // Exports mounted in it, by name.
  std::map<std::string, uint32_t> junctions;
  uint64_t fileid = 0;  // index + 1; its handle's ino adds kPseudoInoBit
  uint32_t generation = 0;  // from the path: a handle of a reordered node is STALE
};

class ExportTable {
 public:
  // Resolves every path in `ns`. Errors (returned as a message naming the
  // export): a path that does not exist or is not a directory, duplicate
  // paths or ids, a bad network or flavor.
  static std::shared_ptr<const ExportTable> Build(
      const std::vector<ExportConfig>& configs, ns::Namespace& ns,
      std::string* error);

  const Export* Find(uint32_t id) const;
  // The export whose root is `ino` (a LOOKUP crossing into it), or null.
  const Export* FindByRoot(ns::InodeId ino) const;
  bool has_pseudo() const { return !pseudo_.empty(); }
  const std::vector<PseudoNode>& pseudo() const { return pseudo_; }
  // Index of the pseudo node a handle names, or -1 (not pseudo, unknown or
  // stale).
  int PseudoIndex(uint64_t ino, uint32_t generation) const;
  // Without a pseudo fs: the export at "/".
  const Export* root_export() const { return root_export_; }
  const std::vector<Export>& exports() const { return exports_; }
  // Change attribute and times of pseudo directories: the build time.
  int64_t built_ns() const { return built_ns_; }
  // True if `peer` may use some export under pseudo node `index` (READDIR
  // of the pseudo fs lists only those: it must not reveal the others).
  bool PseudoVisible(int index, const sockaddr_storage* peer) const;

 private:
  std::vector<Export> exports_;
  std::map<uint32_t, size_t> by_id_;
  std::map<ns::InodeId, size_t> by_root_;
  std::vector<PseudoNode> pseudo_;
  const Export* root_export_ = nullptr;
  int64_t built_ns_ = 0;
};

// The current table, swapped atomically by a reload.
class ExportsHandle {
 public:
  std::shared_ptr<const ExportTable> Get() const {
    std::lock_guard<std::mutex> l(mu_);
    return table_;
  }
  void Set(std::shared_ptr<const ExportTable> t) {
    std::lock_guard<std::mutex> l(mu_);
    table_ = std::move(t);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const ExportTable> table_;
};

}  // namespace nfs41d
