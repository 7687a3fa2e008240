#pragma once

// The one place where what libpqxx throws becomes a Status (see status.h:
// no exception crosses into the core). Everything in pg_*.cc that
// talks to PostgreSQL runs under PgGuard or catches and calls PgStatus.
//
// Mapping (SQLSTATE classes from the PostgreSQL manual, "PostgreSQL Error
// Codes" appendix):
//   40001 serialization_failure, 40P01 deadlock_detected   -> Retry
//   23505 unique_violation                                  -> Exists
//   lost connection, 08xxx connection exception,
//   57P01/57P02/57P03 (admin shutdown, crash shutdown,
//   cannot connect now), 53xxx insufficient resources       -> Unavailable
//   22021/22P05 text the database encoding cannot hold      -> Invalid
//   commit sent but connection lost before the answer       -> IOError
//                                               ("commit outcome unknown")
//   anything else                                           -> IOError
//
// Retry and Unavailable are what the backend's retry loops act on; the rest
// go to the caller as they are.

#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "libnamespace/include/namespace/status.h"

namespace ns {

// Translates an exception caught while talking to PostgreSQL. `ctx` names
// the operation ("pg insert entry"); the detail is the server's message.
Status PgStatus(const std::exception& e, std::string_view ctx);

// e.what() on one line (libpq messages span several), for a Status detail.
std::string PgMessage(const std::exception& e);

// The SQLSTATE carried by `e`, or "" when it carries none (libpqxx 6 keeps
// it only on pqxx::sql_error and its subclasses).
std::string_view PgSqlState(const std::exception& e);

// Runs `fn` (returning Status) and turns any exception into a Status, so a
// caller can write the happy path only.
template <typename Fn>
Status PgGuard(std::string_view ctx, Fn&& fn) noexcept {
  try {
    return std::forward<Fn>(fn)();
  } catch (const std::exception& e) {
    return PgStatus(e, ctx);
  } catch (...) {
    return Status::IOError(ctx, "unknown exception from the PostgreSQL driver");
  }
}

}  // namespace ns
