#pragma once

// Owning handles for libpq objects, shared by the Chimera source and the
// PostgreSQL writer: a connection is PQfinish'ed and a result PQclear'ed on
// every return path.

#include <libpq-fe.h>

#include <memory>

namespace nsmigrate {

struct PgFinish {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgClear {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgConn = std::unique_ptr<PGconn, PgFinish>;
using PgResult = std::unique_ptr<PGresult, PgClear>;

}  // namespace nsmigrate
