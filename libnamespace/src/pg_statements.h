#pragma once

// The SQL the PostgreSQL backend runs, for tests that look at its plans
// (tests/partition_explain_test.cc EXPLAINs the real statements rather than
// copies that could drift). Private to libnamespace.

#include <optional>
#include <string>
#include <string_view>

namespace ns {

// The text of the prepared statement registered as `name` ("get",
// "lookup_wp", "list_attrs", ... as named in pg_connection.h), or nullopt.
std::optional<std::string> PgStatementSql(std::string_view name);

// The SET statements (each ';'-ended) every backend connection runs first;
// plans depend on them.
std::string_view PgSessionSettings();

}  // namespace ns
