#pragma once

// The one place where a libnamespace Status becomes an nfsstat4.

#include "libnamespace/include/namespace/status.h"
#include "nfs41d/proto/nfs4_prot.h"

namespace nfs41d {

// NFS4_OK for an ok status; NFS4ERR_* by the status's kind otherwise.
nfsstat4 ToNfsStat(const ns::Status& status);

// "NFS4ERR_NOENT" etc., for logs and test messages.
const char* NfsStatName(nfsstat4 status);

}  // namespace nfs41d
