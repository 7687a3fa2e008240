// nsadmin: the operator's tool for the namespace database itself.
//   nsadmin init    --db URI   create the schema in an empty database
//   nsadmin upgrade --db URI   apply the migrations this build has and the
//                              database lacks
//   nsadmin version --db URI   print the database's and this build's version
//   nsadmin fsck    --db URI [--repair]   check (and fix) every invariant
//   nsadmin stats   --db URI [--top N]    usage by type, owner, group, tree
//   nsadmin init    --db URI --partitions N   schema with N hash partitions
//   nsadmin partition --count N --db URI [--force]   repartition (a stop)
//   nsadmin partitions --db URI [--exact]  rows, sizes, dead rows, bloat
//   nsadmin pnfs-check --db URI [--refresh [--wait S]] [--repair]
//                              dark data and missing stripes on the pNFS
//                              data servers (docs/pnfs.md)

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <thread>

#include "libnamespace/include/namespace/admin.h"
#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/include/namespace/partitions.h"
#include "libnamespace/include/namespace/pnfs.h"
#include "libnamespace/include/namespace/schema.h"
#include "tools/cli_common.h"

namespace {

int Fail(const ns::Status& s) {
  fmt::print(stderr, "nsadmin: {}\n", s.ToString());
  return 1;
}

// Exit codes as e2fsck's: 0 clean, 1 everything found was repaired,
// 4 problems left, 8 the check itself failed.
int RunFsck(ns::Namespace& ns, const ns::FsckOptions& options) {
  auto report = ns::Fsck(ns, options);
  if (!report.ok()) {
    fmt::print(stderr, "nsadmin: fsck: {}\n", report.status().ToString());
    return 8;
  }
  for (const ns::FsckFinding& f : report->findings) {
    fmt::print("{}: {}{}\n", f.check, f.detail,
               f.repaired ? " [repaired]"
               : (f.repairable && !options.repair) ? " [repairable]"
                                                   : "");
  }
  for (const std::string& check : report->truncated) {
    fmt::print("{}: more than {} findings; run again to see the rest\n",
               check, options.max_findings_per_check);
  }
  const size_t left = report->Unrepaired();
  fmt::print("{} inodes, {} entries: {} problem(s), {} repaired, {} left\n",
             report->inodes, report->entries, report->findings.size(),
             report->findings.size() - left, left);
  if (report->findings.empty()) return 0;
  if (left == 0) return 1;
  return 4;
}

void PrintLines(const char* title, const std::vector<ns::UsageLine>& lines,
                bool with_bytes) {
  fmt::print("\n{}\n", title);
  for (const ns::UsageLine& l : lines) {
    if (with_bytes) {
      fmt::print("  {:<32} {:>12} inodes {:>18} bytes\n", l.key, l.files,
                 l.bytes);
    } else {
      fmt::print("  {:<48} {:>12} entries\n", l.key, l.files);
    }
  }
}

int RunStats(ns::Namespace& ns, const ns::UsageOptions& options) {
  auto u = ns::Usage(ns, options);
  if (!u.ok()) return Fail(u.status());
  fmt::print("files {}  directories {}  symlinks {}  other {}  bytes {}\n",
             u->files, u->directories, u->symlinks, u->others, u->bytes);
  PrintLines("by owner:", u->by_owner, true);
  PrintLines("by group:", u->by_group, true);
  PrintLines("by top-level directory:", u->by_top_directory, true);
  PrintLines("largest directories:", u->largest_directories, false);
  return 0;
}

std::string Bytes(int64_t b) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.1f} {}", v, units[u]);
}

int RunPartitions(const std::string& uri, bool exact) {
  auto layout = ns::ReadPartitionLayout(uri);
  if (!layout.ok()) return Fail(layout.status());
  auto stats = ns::PartitionStats(uri, exact);
  if (!stats.ok()) return Fail(stats.status());
  for (const ns::TableLayout& l : *layout) {
    if (l.count > 1) {
      fmt::print("{}: {} hash partitions on {}\n", l.table, l.count, l.key);
    } else {
      fmt::print("{}: not partitioned\n", l.table);
    }
  }
  fmt::print("\n{:<16} {:>12} {:>10} {:>10} {:>10} {:>11}  {}\n", "partition",
             exact ? "rows" : "rows(est)", "dead", "total", "indexes",
             "idx bloat~", "last vacuum");
  for (const ns::PartitionStat& p : *stats) {
    fmt::print("{:<16} {:>12} {:>10} {:>10} {:>10} {:>11}  {}\n", p.partition,
               p.rows, p.dead_rows, Bytes(p.total_bytes), Bytes(p.index_bytes),
               Bytes(p.index_bloat_bytes),
               p.last_vacuum.empty() ? "never" : p.last_vacuum.substr(0, 19));
  }
  return 0;
}

ns::TimeNs WallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string When(ns::TimeNs t) {
  const std::time_t s = static_cast<std::time_t>(t / 1000000000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

struct PnfsCheckFlags {
  bool refresh = false;
  uint32_t wait_seconds = 60;
  ns::PnfsCheckOptions check;
};

// Asks every data server for a new inventory, then waits (up to
// wait_seconds) until every data server that is up has answered. The MDS
// hands the requests out on heartbeats; nsadmin only needs the database.
ns::Status RefreshInventories(ns::PnfsRegistry& reg, uint32_t wait_seconds) {
  NS_ASSIGN_OR_RETURN(std::vector<ns::DataServer> servers,
                      reg.ListDataServers());
  // A down data server is asked too: its old inventory is dropped (so it
  // is reported as not inventoried) and it answers when it comes back.
  for (const ns::DataServer& d : servers) {
    NS_RETURN_IF_ERROR(reg.RequestInventory(d.id, WallNs()).status());
  }
  const auto end = std::chrono::steady_clock::now() +
                   std::chrono::seconds(wait_seconds);
  for (;;) {
    NS_ASSIGN_OR_RETURN(std::vector<ns::PnfsInventoryRun> runs,
                        reg.ListInventoryRuns());
    NS_ASSIGN_OR_RETURN(std::vector<ns::DataServer> now_up,
                        reg.ListDataServers(/*only_up=*/true));
    size_t waiting = 0;
    for (const ns::DataServer& d : now_up) {
      auto it = std::find_if(runs.begin(), runs.end(), [&](const auto& r) {
        return r.data_server == d.id;
      });
      if (it == runs.end() || !it->complete()) ++waiting;
    }
    if (waiting == 0 || std::chrono::steady_clock::now() >= end) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return ns::Status::Ok();
}

// Exit codes as fsck's: 0 clean, 1 everything found was repaired (queued),
// 2 clean as far as it could see but some data server is not inventoried,
// 4 problems left, 8 the check itself failed.
int RunPnfsCheck(ns::Namespace& ns, const PnfsCheckFlags& flags) {
  ns::PnfsRegistry reg(&ns);
  if (flags.refresh) {
    if (ns::Status s = RefreshInventories(reg, flags.wait_seconds); !s.ok()) {
      fmt::print(stderr, "nsadmin: pnfs-check: {}\n", s.ToString());
      return 8;
    }
  }
  auto report = ns::PnfsCheck(reg, flags.check, WallNs());
  if (!report.ok()) {
    fmt::print(stderr, "nsadmin: pnfs-check: {}\n",
               report.status().ToString());
    return 8;
  }
  auto servers = reg.ListDataServers();
  if (!servers.ok()) return Fail(servers.status());
  std::map<uint64_t, std::string> addr;
  for (const ns::DataServer& d : *servers) addr[d.id] = d.advertise;
  for (const ns::PnfsInventoryRun& r : report->inventoried) {
    fmt::print("data server {} ({}): inventory of {}: {} stripe file(s)\n",
               r.data_server, addr[r.data_server], When(r.started_ns),
               r.files);
  }
  for (const ns::DataServer& d : report->not_inventoried) {
    fmt::print("data server {} ({}): not inventoried ({}); its stripe files "
               "are not checked\n",
               d.id, d.advertise,
               d.state == ns::DataServerState::kDown
                   ? "down"
                   : "no complete inventory: run with --refresh");
  }
  uint64_t dark_bytes = 0;
  for (const ns::PnfsDarkStripe& d : report->dark) {
    dark_bytes += d.size;
    const char* tail = !d.before_inventory ? " [newer than the inventory: kept]"
                       : flags.check.repair ? " [removal queued]"
                                            : " [repairable]";
    fmt::print("dark: data server {} ({}) stripe file of inode {}: {} bytes, "
               "mtime {}{}\n",
               d.data_server, addr[d.data_server], d.fileid, d.size,
               When(d.mtime_ns), tail);
  }
  if (report->dark_truncated) {
    fmt::print("dark: more than {} shown\n", flags.check.max_findings);
  }
  for (const ns::PnfsMissingStripe& m : report->missing) {
    fmt::print("missing: inode {} stripe {} on data server {} ({}): the "
               "file's size {} says it holds bytes, the data server has no "
               "stripe file\n",
               m.ino, m.index, m.data_server, addr[m.data_server],
               m.file_size);
  }
  if (report->missing_truncated) {
    fmt::print("missing: more than {} shown\n", flags.check.max_findings);
  }
  fmt::print("{} dark stripe file(s) ({} bytes), {} missing stripe(s), {} "
             "data server(s) not inventoried, {} removal(s) queued\n",
             report->dark.size(), dark_bytes, report->missing.size(),
             report->not_inventoried.size(), report->removals_queued);
  const bool dark_left = report->dark.size() > report->removals_queued;
  if (dark_left || !report->missing.empty()) return 4;
  if (!report->not_inventoried.empty()) return 2;
  return report->dark.empty() ? 0 : 1;
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
  uint32_t init_partitions = 0;
  init->add_option("--partitions", init_partitions,
                   "PostgreSQL: lay the big tables out as N hash partitions "
                   "(1 to 1024; docs/dba.md, Partitions)");
  ns::RepartitionOptions repartition;
  auto* partition = app.add_subcommand(
      "partition",
      "PostgreSQL: rebuild the big tables with N hash partitions (1: plain) "
      "in one transaction; stops the namespace while it copies");
  partition->add_option("--count", repartition.count, "partitions per table")
      ->required();
  partition->add_flag("--force", repartition.force,
                      "run even though other sessions are connected (they "
                      "wait for the copy, and may fail after it)");
  partition->add_option("--lock-timeout-ms", repartition.lock_timeout_ms,
                        "wait at most this long for the table locks "
                        "(default 10000; 0 = forever)");
  bool partitions_exact = false;
  auto* partitions = app.add_subcommand(
      "partitions",
      "PostgreSQL: per partition rows, dead rows, size, index bloat estimate");
  partitions->add_flag("--exact", partitions_exact,
                       "count rows with count(*) instead of the statistics");
  auto* upgrade = app.add_subcommand("upgrade", "apply missing schema migrations");
  upgrade->add_option("--to", target, "version to upgrade to (default: latest)");
  app.add_subcommand("version", "print the schema version");
  ns::FsckOptions fsck_options;
  auto* fsck = app.add_subcommand(
      "fsck", "check every invariant of the namespace (safe on a live one)");
  fsck->add_flag("--repair", fsck_options.repair,
                 "fix what can be fixed safely; unreferenced inodes go to "
                 "/lost+found");
  fsck->add_option("--max", fsck_options.max_findings_per_check,
                   "findings shown per check (default 1000)")
      ->check(CLI::Range(1u, 100000000u));
  PnfsCheckFlags pnfs_flags;
  auto* pnfs_check = app.add_subcommand(
      "pnfs-check",
      "compare the pNFS data servers' stripe files with the layouts: dark "
      "data (stripe files no layout names) and missing stripes");
  pnfs_check->add_flag("--refresh", pnfs_flags.refresh,
                       "ask every data server for a new inventory first (the "
                       "MDS hands the request out on heartbeats)");
  pnfs_check->add_option("--wait", pnfs_flags.wait_seconds,
                         "with --refresh: wait at most this many seconds for "
                         "the data servers that are up (default 60)")
      ->check(CLI::Range(0u, 86400u));
  pnfs_check->add_flag("--repair", pnfs_flags.check.repair,
                       "queue the removal of dark stripe files older than "
                       "their inventory");
  pnfs_check->add_option("--max", pnfs_flags.check.max_findings,
                         "findings shown per kind (default 1000)")
      ->check(CLI::Range(1u, 100000000u));
  ns::UsageOptions usage_options;
  auto* stats = app.add_subcommand(
      "stats", "files, directories and bytes by owner, group and tree");
  stats->add_option("--top", usage_options.top, "lines per list (default 10)")
      ->check(CLI::Range(1u, 100000u));
  CLI11_PARSE(app, argc, argv);

  auto uri = ns::tools::DatabaseUri(db_flag);
  if (!uri.ok()) return Fail(uri.status());
  const std::string shown = ns::tools::RedactUri(*uri);

  if (init->parsed() && init->count("--partitions") > 0) {
    if (target != 0) {
      fmt::print(stderr, "nsadmin: --partitions and --to do not mix: "
                         "partitioning needs the latest schema\n");
      return 1;
    }
    ns::Status s = ns::InitPartitionedSchema(*uri, init_partitions);
    if (!s.ok()) return Fail(s);
    fmt::print("initialised {} at schema version {} with {} partition(s) "
               "per big table\n",
               shown, ns::LatestSchemaVersion(), init_partitions);
    return 0;
  }
  if (partition->parsed()) {
    ns::Status s = ns::Repartition(*uri, repartition);
    if (!s.ok()) return Fail(s);
    fmt::print("repartitioned {}: {} partition(s) per big table\n", shown,
               repartition.count);
    return 0;
  }
  if (partitions->parsed()) return RunPartitions(*uri, partitions_exact);
  if (init->parsed()) {
    ns::Status s = ns::InitSchema(*uri, target);
    if (!s.ok()) return Fail(s);
    auto st = ns::ReadSchemaState(*uri);
    if (!st.ok()) return Fail(st.status());
    fmt::print("initialised {} at schema version {}\n", shown, st->version);
    return 0;
  }
  if (pnfs_check->parsed()) {
    auto opened = ns::Namespace::Open(*uri);
    if (!opened.ok()) {
      fmt::print(stderr, "nsadmin: {}: {}\n", shown,
                 opened.status().ToString());
      return 8;
    }
    return RunPnfsCheck(**opened, pnfs_flags);
  }
  if (fsck->parsed() || stats->parsed()) {
    auto opened = ns::Namespace::Open(*uri);
    if (!opened.ok()) {
      fmt::print(stderr, "nsadmin: {}: {}\n", shown,
                 opened.status().ToString());
      return fsck->parsed() ? 8 : 1;
    }
    return fsck->parsed() ? RunFsck(**opened, fsck_options)
                          : RunStats(**opened, usage_options);
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
  // PostgreSQL only (SQLite answers NotSupported): the partition layout,
  // which the catalog records beside the schema version.
  if (st->version > 0) {
    if (auto layout = ns::ReadPartitionLayout(*uri); layout.ok()) {
      uint32_t most = 1;
      for (const ns::TableLayout& l : *layout) most = std::max(most, l.count);
      fmt::print("layout:                  {}\n",
                 most == 1 ? std::string("plain tables")
                           : fmt::format("{} hash partitions per big table "
                                         "(`nsadmin partitions`)",
                                         most));
    }
  }
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
