#include "libnamespace/src/pg_errors.h"

#include <pqxx/except>
#include <string>

namespace ns {
namespace {

// libpq messages come as "ERROR:  text\nDETAIL:  more\n"; a Status detail
// is one line in a log, so fold the lines and drop the trailing newline.
std::string OneLine(std::string_view msg) {
  std::string out;
  out.reserve(msg.size());
  for (char c : msg) {
    if (c == '\n') {
      if (!out.empty() && out.back() != ' ') out += "; ";
    } else if (c == '\t' || c == ' ') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) {
    out.pop_back();
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// SQLSTATEs that mean "the server cannot serve us right now": the whole
// connection exception class (08), insufficient resources (53, e.g. too
// many connections, disk full), and the operator-intervention codes a
// restarting or recovering server sends.
bool IsUnavailableState(std::string_view state) {
  return StartsWith(state, "08") || StartsWith(state, "53") ||
         state == "57P01" || state == "57P02" || state == "57P03";
}

}  // namespace

std::string PgMessage(const std::exception& e) { return OneLine(e.what()); }

std::string_view PgSqlState(const std::exception& e) {
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    return sql->sqlstate();
  }
  return {};
}

Status PgStatus(const std::exception& e, std::string_view ctx) {
  const std::string detail = PgMessage(e);
  // libpqxx 6 raises transaction_rollback and its subclasses without a
  // SQLSTATE (they are not sql_errors), so the class decides for them.
  if (dynamic_cast<const pqxx::serialization_failure*>(&e) != nullptr ||
      dynamic_cast<const pqxx::deadlock_detected*>(&e) != nullptr) {
    return Status::Retry(ctx, detail);
  }
  // Before broken_connection: libpqxx raises in_doubt_error exactly when
  // the connection broke during COMMIT, and then nobody can tell whether
  // the transaction committed; retrying could apply it twice.
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return Status::IOError(ctx, "commit outcome unknown: " + detail);
  }
  // Includes too_many_connections (53300), a broken_connection subclass.
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return Status::Unavailable(ctx, detail);
  }
  const std::string_view state = PgSqlState(e);
  if (state == "40001" || state == "40P01") return Status::Retry(ctx, detail);
  if (state == "23505" ||
      dynamic_cast<const pqxx::unique_violation*>(&e) != nullptr) {
    return Status::Exists(ctx, detail);
  }
  // Text the database encoding cannot hold (e.g. a symlink target that is
  // not UTF-8 in a UTF8 database): the argument is at fault, not the
  // database.
  if (state == "22021" || state == "22P05") {
    return Status::Invalid(ctx, detail);
  }
  // A standby (hot_standby) or default_transaction_read_only: the door
  // serves reads only, and a write is the caller's EROFS.
  if (state == "25006") return Status::ReadOnly(ctx, detail);
  if (IsUnavailableState(state) ||
      dynamic_cast<const pqxx::insufficient_resources*>(&e) != nullptr) {
    return Status::Unavailable(ctx, detail);
  }
  if (state.empty()) return Status::IOError(ctx, detail);
  return Status::IOError(ctx, std::string(state) + " " + detail);
}

}  // namespace ns
