#pragma once

// The migrations compiled in from schema/<dialect>/NNN_name.sql (see
// schema/embed.cmake). Index i holds version i + 1.

#include <string_view>
#include <vector>

namespace ns {

struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

const std::vector<Migration>& Migrations_sqlite();
const std::vector<Migration>& Migrations_postgresql();

}  // namespace ns
