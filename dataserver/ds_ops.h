#pragma once

// The data server's COMPOUND operations (RFC 8881 §13.6) and its op table
// for nfs41d's COMPOUND loop (nfs41d/op_table.h). The loop applies the
// generic rules (SEQUENCE first, sessionless ops alone, a current
// filehandle where needed, slot cache, limits); operations not in the table
// answer NFS4ERR_NOTSUPP, as a data server serves only the data path.
//
// Session operations are nfs41d's handlers (ops_session.cc) with a data
// server's twists:
//   EXCHANGE_ID       eir_flags say EXCHGID4_FLAG_USE_PNFS_DS and nothing
//                     else of the pNFS roles (§13.1, §18.35.3).
//   CREATE_SESSION    no back channel: a data server never calls back
//                     (callbacks come from the MDS, §13.6), so
//                     CONN_BACK_CHAN is not granted.
//   SEQUENCE          never reports SEQ4_STATUS_CB_PATH_DOWN*: there is no
//                     back channel to be down.
//   BIND_CONN_TO_SESSION  binds the fore channel only.
// Data path (here):
//   PUTFH   the handle must decode with FhCodec(pNFS key), else
//           NFS4ERR_BADHANDLE.
//   READ / WRITE / COMMIT  on the stripe file at logical offsets; any
//           stateid is accepted (§13.9.1: the data server cannot check the
//           MDS's open, lock or layout stateids; the MDS fences by
//           recalling layouts).
//   GETATTR the stripe file's attributes (size is the stripe file's, not
//           the file's: the MDS holds that, §13.10).
// REQUIRES: every handler runs with a DsContext as st.server.

#include "nfs41d/op_table.h"

namespace dataserver {

// The table, built once.
const nfs41d::OpTable& DsOpTable();

}  // namespace dataserver
