// nsadmin: the operator's tool for the namespace database itself.
//   nsadmin init    --db URI   create the schema in an empty database
//   nsadmin upgrade --db URI   apply the migrations this build has and the
//                              database lacks
//   nsadmin version --db URI   print the database's and this build's version

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "libnamespace/include/namespace/schema.h"
#include "tools/cli_common.h"

namespace {

int Fail(const ns::Status& s) {
  fmt::print(stderr, "nsadmin: {}\n", s.ToString());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nsadmin: create, upgrade and inspect a namespace database"};
  app.require_subcommand(1);
  std::string db_flag;
  app.add_option("--db", db_flag,
                 "database URI: sqlite:///path/ns.db or "
                 "postgresql://user@host/db (default $NS_DB)");
  int target = 0;
  auto* init = app.add_subcommand("init", "create the schema in an empty database");
  init->add_option("--to", target, "schema version to create (default: latest)");
  auto* upgrade = app.add_subcommand("upgrade", "apply missing schema migrations");
  upgrade->add_option("--to", target, "version to upgrade to (default: latest)");
  app.add_subcommand("version", "print the schema version");
  CLI11_PARSE(app, argc, argv);

  auto uri = ns::tools::DatabaseUri(db_flag);
  if (!uri.ok()) return Fail(uri.status());
  const std::string shown = ns::tools::RedactUri(*uri);

  if (init->parsed()) {
    ns::Status s = ns::InitSchema(*uri, target);
    if (!s.ok()) return Fail(s);
    auto st = ns::ReadSchemaState(*uri);
    if (!st.ok()) return Fail(st.status());
    fmt::print("initialised {} at schema version {}\n", shown, st->version);
    return 0;
  }
  if (upgrade->parsed()) {
    auto from = ns::UpgradeSchema(*uri, target);
    if (!from.ok()) return Fail(from.status());
    auto st = ns::ReadSchemaState(*uri);
    if (!st.ok()) return Fail(st.status());
    if (*from == st->version) {
      fmt::print("{} is already at schema version {}\n", shown, st->version);
    } else {
      fmt::print("upgraded {} from schema version {} to {}\n", shown, *from,
                 st->version);
    }
    return 0;
  }
  auto st = ns::ReadSchemaState(*uri);
  if (!st.ok()) return Fail(st.status());
  fmt::print("database schema version: {}\nthis build's version:    {}\n",
             st->version, st->latest);
  if (st->version == 0) {
    fmt::print("the database is empty: run `nsadmin init`\n");
  } else if (st->version < st->latest) {
    fmt::print("the database is older than this build: run `nsadmin upgrade`\n");
  } else if (st->version > st->latest) {
    fmt::print("the database is newer than this build: use newer tools\n");
    return 1;
  }
  return 0;
}
