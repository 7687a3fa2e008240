#pragma once

// Operation handlers (one per NFSv4.1 operation), called only by the
// COMPOUND loop (compound.cc) after it applied the generic rules. Each fills
// its result's resok part and returns the status.
//
// ops_session.cc: sessions and client state (RFC 8881 §18.33-§18.51).
// ops_fs.cc: filehandles and metadata on the Namespace.
//
// Handlers that create or reclaim locking state (OPEN, LOCK) must first
// call, and fail with its status unless NFS4_OK:
//   st.server.state->CheckClaim(*st.session->client(), reclaim)
// with reclaim = (OPEN claim type CLAIM_PREVIOUS) or (LOCK's reclaim flag);
// it applies the grace rules of RFC 8881 §8.4.2.1, §8.4.3 and §18.51.3
// (see state/state_manager.h).
// ops_open.cc: OPEN, OPEN_DOWNGRADE, CLOSE (§18.16, §18.18, §18.2).
// ops_io.cc: READ, WRITE, COMMIT and the data path's background work.
// ops_lock.cc: LOCK, LOCKT, LOCKU (§18.10-§18.12).

#include "nfs41d/compound.h"

namespace nfs41d {

// --- sessions (ops_session.cc)
nfsstat4 OpExchangeId(CompoundState&, const EXCHANGE_ID4args&, EXCHANGE_ID4res&);
nfsstat4 OpCreateSession(CompoundState&, const CREATE_SESSION4args&,
                         CREATE_SESSION4res&);
nfsstat4 OpDestroySession(CompoundState&, const DESTROY_SESSION4args&,
                          DESTROY_SESSION4res&);
nfsstat4 OpDestroyClientId(CompoundState&, const DESTROY_CLIENTID4args&,
                           DESTROY_CLIENTID4res&);
nfsstat4 OpBackchannelCtl(CompoundState&, const BACKCHANNEL_CTL4args&,
                          BACKCHANNEL_CTL4res&);
nfsstat4 OpBindConnToSession(CompoundState&, const BIND_CONN_TO_SESSION4args&,
                             BIND_CONN_TO_SESSION4res&);
nfsstat4 OpSequence(CompoundState&, const SEQUENCE4args&, SEQUENCE4res&);
nfsstat4 OpReclaimComplete(CompoundState&, const RECLAIM_COMPLETE4args&,
                           RECLAIM_COMPLETE4res&);
nfsstat4 OpTestStateid(CompoundState&, const TEST_STATEID4args&,
                       TEST_STATEID4res&);
nfsstat4 OpFreeStateid(CompoundState&, const FREE_STATEID4args&,
                       FREE_STATEID4res&);

// --- filehandles and metadata (ops_fs.cc)
nfsstat4 OpPutRootFh(CompoundState&, const NoArgs&, PUTROOTFH4res&);
nfsstat4 OpPutPubFh(CompoundState&, const NoArgs&, PUTPUBFH4res&);
nfsstat4 OpPutFh(CompoundState&, const PUTFH4args&, PUTFH4res&);
nfsstat4 OpGetFh(CompoundState&, const NoArgs&, GETFH4res&);
nfsstat4 OpSaveFh(CompoundState&, const NoArgs&, SAVEFH4res&);
nfsstat4 OpRestoreFh(CompoundState&, const NoArgs&, RESTOREFH4res&);
nfsstat4 OpLookup(CompoundState&, const LOOKUP4args&, LOOKUP4res&);
nfsstat4 OpLookupp(CompoundState&, const NoArgs&, LOOKUPP4res&);
nfsstat4 OpGetAttr(CompoundState&, const GETATTR4args&, GETATTR4res&);
nfsstat4 OpAccess(CompoundState&, const ACCESS4args&, ACCESS4res&);
nfsstat4 OpReadDir(CompoundState&, const READDIR4args&, READDIR4res&);
nfsstat4 OpReadLink(CompoundState&, const NoArgs&, READLINK4res&);
nfsstat4 OpCreate(CompoundState&, const CREATE4args&, CREATE4res&);
nfsstat4 OpRemove(CompoundState&, const REMOVE4args&, REMOVE4res&);
nfsstat4 OpRename(CompoundState&, const RENAME4args&, RENAME4res&);
nfsstat4 OpLink(CompoundState&, const LINK4args&, LINK4res&);
nfsstat4 OpSetAttr(CompoundState&, const SETATTR4args&, SETATTR4res&);
nfsstat4 OpVerify(CompoundState&, const VERIFY4args&, VERIFY4res&);
nfsstat4 OpNverify(CompoundState&, const NVERIFY4args&, NVERIFY4res&);
nfsstat4 OpSecInfo(CompoundState&, const SECINFO4args&, SECINFO4res&);
nfsstat4 OpSecInfoNoName(CompoundState&, const SECINFO_NO_NAME4args&,
                         SECINFO_NO_NAME4res&);

// --- open state (ops_open.cc)
nfsstat4 OpOpen(CompoundState&, const OPEN4args&, OPEN4res&);
nfsstat4 OpOpenDowngrade(CompoundState&, const OPEN_DOWNGRADE4args&,
                         OPEN_DOWNGRADE4res&);
nfsstat4 OpClose(CompoundState&, const CLOSE4args&, CLOSE4res&);

// --- data (ops_io.cc)
nfsstat4 OpRead(CompoundState&, const READ4args&, READ4res&);
nfsstat4 OpWrite(CompoundState&, const WRITE4args&, WRITE4res&);
nfsstat4 OpCommit(CompoundState&, const COMMIT4args&, COMMIT4res&);

// --- pNFS (ops_pnfs.cc, RFC 8881 §18.40-§18.44)
nfsstat4 OpGetDeviceInfo(CompoundState&, const GETDEVICEINFO4args&,
                         GETDEVICEINFO4res&);
nfsstat4 OpGetDeviceList(CompoundState&, const GETDEVICELIST4args&,
                         GETDEVICELIST4res&);
nfsstat4 OpLayoutGet(CompoundState&, const LAYOUTGET4args&, LAYOUTGET4res&);
nfsstat4 OpLayoutCommit(CompoundState&, const LAYOUTCOMMIT4args&,
                        LAYOUTCOMMIT4res&);
nfsstat4 OpLayoutReturn(CompoundState&, const LAYOUTRETURN4args&,
                        LAYOUTRETURN4res&);
// LAYOUTCOMMIT's effect (ops_io.cc, beside the open-file overlay it must
// agree with): grows the size to `end` (if larger) and sets mtime (now if
// nullopt and `end` is set). *new_size / *changed: the size afterwards and
// whether it changed.
nfsstat4 CommitLayoutWrites(ServerContext& ctx, ns::InodeId ino,
                            std::optional<uint64_t> end,
                            std::optional<ns::TimeNs> mtime,
                            uint64_t* new_size, bool* changed);

// --- byte-range locks (ops_lock.cc)
nfsstat4 OpLock(CompoundState&, const LOCK4args&, LOCK4res&);
nfsstat4 OpLockT(CompoundState&, const LOCKT4args&, LOCKT4res&);
nfsstat4 OpLockU(CompoundState&, const LOCKU4args&, LOCKU4res&);

// --- the data path's background work (ops_io.cc)
// Writes the in-memory size/mtime of an open file to the database.
ns::Status FlushFile(ServerContext& ctx, ns::InodeId ino);
// A file's last open went away: write back, or release an unlinked one.
// True if the attribute cache's entry for the file is still true (nothing
// written back, or what was written stored there): no need to forget it.
bool ReleaseFile(ServerContext& ctx, const state::FileRelease& r);
// Flushes every dirty open file and handles the files released with
// removed clients. The server calls it periodically and at shutdown.
void FlushDirtyFiles(ServerContext& ctx);
// Once per server start, when no client can reclaim any more (grace over,
// or none at all): releases the inodes and data of files unlinked while
// open that nobody has open now -- left behind when the server stopped or
// crashed before their last CLOSE (Namespace::ListOrphans). False while in
// grace or on a database error (call again later), true when done.
bool ReleaseCrashOrphans(ServerContext& ctx);

}  // namespace nfs41d
