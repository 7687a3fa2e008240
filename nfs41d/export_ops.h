#pragma once

// Exports applied to a COMPOUND (exports.h has the table): which export a
// filehandle belongs to, whether this client may use it, the credentials
// the namespace sees, and the pseudo file system's operations (RFC 8881 §7,
// §2.6.3.1).
//
// Hooks, kept few so the COMPOUND loop and handlers stay about their ops:
//   compound.cc  ExportRules() before every op that has a current
//                filehandle; RunPseudoOp() instead of the handler when that
//                filehandle is a pseudo directory.
//   ops_fs.cc    PutRoot() (PUTROOTFH), EnterFh() (PUTFH), CrossInto()
//                (LOOKUP), ExportLookupp() (LOOKUPP), ApplyExportAttrs().

#include <optional>

#include "nfs41d/attrs.h"
#include "nfs41d/compound.h"

namespace nfs41d {

// The table this COMPOUND uses (taken once, on first use).
const ExportTable& Exports(CompoundState& st);

// Before an op with a current filehandle: the filehandle's export must
// exist (else NFS4ERR_STALE), admit the client's address (NFS4ERR_ACCESS)
// and flavor (NFS4ERR_WRONGSEC, except for SECINFO / SECINFO_NO_NAME, which
// say what would be accepted); `modifies_fs` ops on a read-only export or
// the pseudo fs get NFS4ERR_ROFS. Sets st.export_id and st.cred (squashed).
nfsstat4 ExportRules(CompoundState& st, uint32_t opnum, bool modifies_fs);

// The current filehandle is a pseudo directory and `opnum` is handled for
// it here: returns its status. nullopt: run the normal handler.
std::optional<nfsstat4> RunPseudoOp(CompoundState& st, uint32_t opnum,
                                    const nfs_argop4& arg, nfs_resop4& res);

// PUTROOTFH: the pseudo root, or the export at "/".
nfsstat4 PutRoot(CompoundState& st);

// A put-filehandle op (PUTFH) makes `fh` current: NFS4ERR_STALE for an
// export that no longer exists, NFS4ERR_ACCESS for a client outside its
// networks, NFS4ERR_WRONGSEC for a flavor it refuses unless the next op is
// SECINFO/SECINFO_NO_NAME (§2.6.3.1.1).
nfsstat4 EnterFh(CompoundState& st, const FileHandle& fh);

// LOOKUP found `*fh` (in the current export): if it is the root of another
// export, the handle moves into it (its id) and that export's rules apply.
nfsstat4 CrossInto(CompoundState& st, FileHandle* fh);

// LOOKUPP from `dir`: if it is its export's root, moves to the pseudo
// directory or enclosing export above it (or NFS4ERR_NOENT at the top) and
// returns the status; nullopt if `dir` is not an export root.
std::optional<nfsstat4> ExportLookupp(CompoundState& st, const ns::Attr& dir);

// Fills what attributes need from the export: owner mapping, and for an
// export's root its mounted_on_fileid.
void ApplyExportAttrs(CompoundState& st, const FileHandle& fh,
                      AttrSource* src);

// False if the current filehandle is in a read-only export or the pseudo
// fs: ops whose effect depends on their arguments (OPEN with create or
// write access) answer NFS4ERR_ROFS then. The table's kModifiesFs flag does
// this for the others.
bool ExportWritable(CompoundState& st);

// SECINFO / SECINFO_NO_NAME in an export: the flavors it accepts.
void ExportSecinfo(CompoundState& st, SECINFO4resok* ok);

}  // namespace nfs41d
