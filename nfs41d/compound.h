#pragma once

// The COMPOUND procedure (RFC 8881 §16.2, §15.2): one loop that decodes the
// operations one at a time, applies every generic rule, and calls one
// handler per operation through a table indexed by operation number
// (op_table.h; ServerContext::ops picks another table, the data server's).
//
// Generic rules, applied here and nowhere else:
//   minorversion != 1                  -> NFS4ERR_MINOR_VERS_MISMATCH, no results
//   opnum not an NFSv4.1 operation     -> OP_ILLEGAL / NFS4ERR_OP_ILLEGAL
//   first op not SEQUENCE and not one of EXCHANGE_ID, CREATE_SESSION,
//     DESTROY_SESSION, DESTROY_CLIENTID, BIND_CONN_TO_SESSION
//                                      -> NFS4ERR_OP_NOT_IN_SESSION
//   one of those first but not alone   -> NFS4ERR_NOT_ONLY_OP
//   SEQUENCE not first                 -> NFS4ERR_SEQUENCE_POS
//   op needs a current filehandle      -> NFS4ERR_NOFILEHANDLE
//   arguments do not decode            -> NFS4ERR_BADXDR
//   request over ca_maxrequestsize     -> NFS4ERR_REQ_TOO_BIG (on SEQUENCE)
//   more ops than ca_maxoperations     -> NFS4ERR_TOO_MANY_OPS (on SEQUENCE)
//   reply over ca_maxresponsesize      -> NFS4ERR_REP_TOO_BIG
//   cached reply over ..._cached       -> NFS4ERR_REP_TOO_BIG_TO_CACHE
//   REMOVE/RENAME during grace          -> NFS4ERR_GRACE (§8.4.2.1)
//   processing stops at the first error.
// A SEQUENCE retry answers with the slot's cached reply (§2.10.6.1).
//
// Inline COMPOUNDs: the RPC event-loop thread serves a COMPOUND itself,
// without the hand-off to a worker, when it is certain to need nothing but
// memory: SEQUENCE (outside any grace period, whose end writes to the
// database), then only PUTFH, GETFH, GETATTR and ACCESS of inodes fresh in
// the attribute cache (no ACL, no file system statistics, owners from
// memory, no space_used of a regular file) and LOOKUPs the directory cache
// answers. Anything else sends the whole COMPOUND to a worker before any op
// ran; a COMPOUND is never split between threads. The same loop and the
// same slot table serve both paths (RFC 8881 §2.10.6: a retry of a request
// still in progress on a worker gets NFS4ERR_DELAY either way). Should an
// entry vanish between the check and the op (TTL, a concurrent change), the
// op uses what the check saw (CompoundState::pinned_attrs); an op that
// still misses answers NFS4ERR_DELAY (§15.1.1.3: retry later) instead of
// blocking the loop (CompoundState::cache_only).
//
// Handlers have one shape:
//   nfsstat4 OpLookup(CompoundState&, const LOOKUP4args&, LOOKUP4res&);
// (ops without arguments take `NoArgs`). They fill the result's resok part
// and return the status; the loop stores the status in the result.

#include <array>
#include <cstdint>
#include <mutex>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "nfs41d/data/data_store.h"
#include "nfs41d/attr_cache.h"
#include "nfs41d/dir_cache.h"
#include "nfs41d/exports.h"
#include "nfs41d/fh.h"
#include "nfs41d/idmap.h"
#include "nfs41d/metrics.h"
#include "nfs41d/op_table.h"
#include "nfs41d/readdir_cache.h"
#include "nfs41d/proto/nfs4_prot.h"
#include "nfs41d/state/state_manager.h"
#include "rpc/program.h"

namespace nfs41d {

class PnfsMds;

// What handlers share for the server's lifetime.
struct ServerContext {
  ns::Namespace* ns = nullptr;
  const FhCodec* fh = nullptr;
  state::StateManager* state = nullptr;
  // The operations served (op_table.h); null: the metadata server's. The
  // pNFS data server sets its own.
  const OpTable* ops = nullptr;
  // Largest READ/WRITE offered (fattr4 maxread/maxwrite).
  uint32_t max_io = 1u << 20;
  // File contents (the embedded data store).
  data::DataStore* data = nullptr;
  // Files up to this many bytes keep them in the database (ops_io.cc,
  // "Small files"); 0: never.
  uint64_t inline_max = 0;
  // WRITE/COMMIT verifier (RFC 8881 §18.32.3): new at every server start,
  // so clients resend writes that were not committed before a restart.
  std::array<uint8_t, NFS4_VERIFIER_SIZE> write_verifier{};
  // Serializes the write-back of an open file's attributes with truncates
  // of the same file (striped by inode number).
  std::array<std::mutex, 64> file_mu;
  // Exports (exports.h); null: everything, as DefaultExport() says.
  ExportsHandle* exports = nullptr;
  // owner strings (idmap.h); null: numeric.
  const IdMapper* idmap = nullptr;
  // Attribute cache in front of `ns` (attr_cache.h); null: none.
  AttrCache* attrs = nullptr;
  // Directory entries for LOOKUP (dir_cache.h); null: none.
  DirCache* dirs = nullptr;
  // Encoded READDIR replies (readdir_cache.h); null: none.
  ReaddirCache* readdirs = nullptr;
  // Serve COMPOUNDs that need nothing but memory on the RPC event-loop
  // thread (see "Inline COMPOUNDs" above).
  bool inline_compounds = false;
  // Per-op counters and latencies; null: none.
  Metrics* metrics = nullptr;
  // pNFS metadata server (pnfs_mds.h); null: no layouts.
  PnfsMds* pnfs = nullptr;
};

// Memory for one operation's results (strings, lists, attribute buffers):
// the rpcgen result structs point into it until the result is encoded.
class Arena {
 public:
  // `n` zeroed bytes.
  char* Bytes(size_t n);
  // `n` bytes left as they are, for a buffer filled at once (a READ's
  // data: zeroing 1 MiB per READ costs as much as a copy).
  char* Uninitialized(size_t n);
  // `n` value-initialized T (rpcgen structs are trivial C types).
  template <typename T>
  T* New(size_t n = 1) {
    return reinterpret_cast<T*>(Bytes(sizeof(T) * n));
  }
  char* Copy(std::string_view s);
  void Clear() { blocks_.clear(); }

 private:
  std::vector<std::unique_ptr<char[]>> blocks_;
};

// Everything one COMPOUND carries from op to op (RFC 8881 §16.2.3): never in
// thread-locals.
struct CompoundState {
  explicit CompoundState(ServerContext& s) : server(s) {}
  ServerContext& server;
  // The RPC call (credentials, connection); null in unit tests.
  const rpc::CallContext* call = nullptr;
  uint64_t connection_id = 0;
  // The caller as the namespace sees it (after the current export's
  // squashing), and as EXCHANGE_ID compares principals ("sys:<uid>",
  // "none").
  ns::Credentials cred;
  std::string principal;
  uint32_t export_id = 0;
  // The caller as authenticated (before squashing), its RPC flavor and
  // address (null: no socket, unit tests).
  ns::Credentials rpc_cred;
  uint32_t flavor = 1;  // AUTH_SYS
  const sockaddr_storage* peer = nullptr;
  // The export table this COMPOUND runs under (one for its whole life),
  // and the export `cred` was computed for.
  std::shared_ptr<const ExportTable> exports;
  std::optional<uint32_t> cred_export;
  // Inodes a modifying op changed besides the current and saved
  // filehandles' (the object REMOVE unlinked ...): the loop invalidates
  // them in the attribute cache.
  std::vector<ns::InodeId> touched;
  // Directories whose attributes ChangeInfo read again after the op's
  // change: what the attribute cache holds for them is as fresh as a
  // GETATTR after the op, so the loop does not invalidate them again (the
  // next op in the directory would read them once more for nothing).
  std::vector<ns::InodeId> reread;
  // A directory as the op's commit left it, where the namespace returned
  // it (ns::UnlinkResult::parent_after), with the attribute cache's epoch
  // taken before the commit: ChangeInfo answers from it and stores it in
  // the cache instead of reading the directory again (NoteDirAfter).
  struct DirAfter {
    ns::Attr attr;
    uint64_t epoch = 0;
  };
  std::optional<DirAfter> dir_after;
  // What CREATE or OPEN(create) made: the loop keeps the directory's cached
  // names (a name was only added) and, after its invalidations, stores the
  // new name and the new inode's attributes in the caches with the epochs
  // taken before the commit (dir_cache.h, attr_cache.h: a REMOVE or RENAME
  // racing with it makes the store give up).
  struct Created {
    ns::InodeId dir = 0;
    std::string name;
    ns::Attr attr;       // as the commit returned it
    bool attr_final = true;  // false: a later step changed it (owner, ACL)
    uint64_t attr_epoch = 0, dir_epoch = 0;
  };
  std::optional<Created> created;
  // The number of the op after this one (OP_ILLEGAL if none): the
  // security negotiation rules of RFC 8881 §2.6.3.1 depend on it.
  uint32_t next_op = 0;

  std::optional<FileHandle> current_fh;
  std::optional<FileHandle> saved_fh;
  // Current and saved stateid (§16.2.3.1.2), for OPEN/LOCK/READ/WRITE.
  std::optional<stateid4> current_stateid;
  std::optional<stateid4> saved_stateid;

  // Set by SEQUENCE.
  std::shared_ptr<state::Session> session;
  uint32_t slot = 0;
  bool cache_this = false;
  // Set by SEQUENCE on a retry: the whole reply to send.
  std::optional<std::vector<uint8_t>> replay;
  // Set by an op that encoded its own result (READDIR: the nfs_resop4,
  // from its opnum on): sent as is when the op succeeds, instead of
  // encoding its result struct; cleared by the loop.
  std::vector<uint8_t> raw_result;

  // Served on the RPC event-loop thread: handlers must not touch the
  // database (or block); what is not cached answers NFS4ERR_DELAY.
  bool cache_only = false;
  // cache_only: the cache entries InlineCandidate saw, which the ops then
  // use, so that one expiring or invalidated in between (a worker's change
  // to the same directory) cannot turn into a miss. The COMPOUND then
  // answers as of the moment it was checked, which a concurrent request
  // may.
  std::vector<ns::Attr> pinned_attrs;
  struct PinnedName {
    ns::InodeId dir = 0;
    std::string name;
    DirCache::Child child;
  };
  std::vector<PinnedName> pinned_names;

  // The request: size of the RPC record, hash of the COMPOUND arguments,
  // the number of ops and which one runs.
  size_t request_size = 0;
  uint64_t request_hash = 0;
  uint32_t op_count = 0;
  uint32_t op_index = 0;

  Arena arena;
};

// Runs one COMPOUND: `args` are the XDR-encoded COMPOUND4args. Returns the
// XDR-encoded COMPOUND4res, or nullopt if the header (tag, minorversion,
// op count) does not decode (the caller answers GARBAGE_ARGS).
std::optional<std::vector<uint8_t>> RunCompound(CompoundState& state,
                                                std::span<const uint8_t> args);

// Whether the COMPOUND `args` may be served inline (see "Inline COMPOUNDs"
// above) by `state` set up for its call, with cache_only set. Changes
// nothing but `state`'s pinned entries.
bool InlineCandidate(CompoundState& state, std::span<const uint8_t> args);

// Holds `reply` back until the namespace's commit `ticket` is on disk
// (ns::NamespaceOptions::defer_sync), so that no client is told of a change
// that a crash could still undo (RFC 8881 §18.16.4, §18.25.4: the
// server's reply to a modifying operation means it is on stable storage).
// Ticket 0: nothing to wait for. A reply whose commit can never be made
// durable is dropped (logged).
void HoldUntilDurable(ns::Namespace& ns, uint64_t ticket, rpc::Reply& reply);

// The NFSv4 program (100003 v4: NULL and COMPOUND) over `ctx`; COMPOUND
// inline too if ctx->inline_compounds.
rpc::Program MakeNfs4Program(ServerContext* ctx);

// The name of an operation ("SEQUENCE"), for logs.
const char* OpName(uint32_t opnum);

// Session limits applied to a COMPOUND by SEQUENCE (§2.10.6.4, §18.46.3):
// NFS4ERR_REQ_TOO_BIG, NFS4ERR_TOO_MANY_OPS, or NFS4_OK.
nfsstat4 CheckSessionLimits(const CompoundState& state,
                            const state::Session& session);

}  // namespace nfs41d
