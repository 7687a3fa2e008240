// nsadmin stats: who and what uses the namespace, from full scans of the
// inode and entry tables (one statement per figure, no locks).

#include <charconv>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "libnamespace/include/namespace/admin.h"
#include "libnamespace/src/backend.h"

namespace ns {
namespace {

uint64_t Num(const std::optional<std::string>& v) {
  uint64_t out = 0;
  if (v) std::from_chars(v->data(), v->data() + v->size(), out);
  return out;
}

// The path of directory `ino`, walking parent pointers up to the root (at
// most 256 steps: a deeper or broken chain shows as "…/<ino>").
Result<std::string> PathOf(Transaction& t, InodeId ino) {
  std::string path;
  InodeId cur = ino;
  for (int depth = 0; cur != kRootInode; ++depth) {
    if (depth == 256) return "…" + path;
    const int64_t ids[] = {static_cast<int64_t>(cur)};
    NS_ASSIGN_OR_RETURN(
        auto rows,
        t.Query("SELECT e.name, e.parent FROM inodes i JOIN dirents e ON "
                "e.parent = i.parent AND e.child = i.ino WHERE i.ino = $1 "
                "LIMIT 1",
                ids));
    if (rows.empty() || !rows[0][0]) {
      return fmt::format("<inode {}>{}", cur, path);
    }
    path = "/" + *rows[0][0] + path;
    cur = Num(rows[0][1]);
  }
  return path.empty() ? "/" : path;
}

}  // namespace

Result<UsageReport> Usage(Namespace& ns, const UsageOptions& options) {
  UsageReport report;
  const int64_t top[] = {static_cast<int64_t>(options.top)};
  const auto lines = [](const std::vector<SqlRow>& rows,
                        const std::string& prefix) {
    std::vector<UsageLine> out;
    for (const SqlRow& r : rows) {
      out.push_back({prefix + r[0].value_or("?"), Num(r[1]), Num(r[2])});
    }
    return out;
  };
  NS_RETURN_IF_ERROR(ns.backend().Read([&](Transaction& t) -> Status {
    report = UsageReport();
    NS_ASSIGN_OR_RETURN(
        auto types,
        t.Query("SELECT type, count(*), coalesce(sum(CASE WHEN type = 1 THEN "
                "size ELSE 0 END), 0) FROM inodes GROUP BY type",
                {}));
    for (const SqlRow& r : types) {
      const auto type = static_cast<FileType>(Num(r[0]));
      const uint64_t n = Num(r[1]);
      if (type == FileType::kRegular) {
        report.files = n;
        report.bytes = Num(r[2]);
      } else if (type == FileType::kDirectory) {
        report.directories = n;
      } else if (type == FileType::kSymlink) {
        report.symlinks = n;
      } else {
        report.others += n;
      }
    }
    const std::string per =
        "SELECT {0}, count(*), coalesce(sum(CASE WHEN type = 1 THEN size "
        "ELSE 0 END), 0) AS b FROM inodes GROUP BY {0} "
        "ORDER BY b DESC, count(*) DESC LIMIT $1";
    NS_ASSIGN_OR_RETURN(auto owners, t.Query(fmt::format(fmt::runtime(per), "uid"), top));
    report.by_owner = lines(owners, "uid ");
    NS_ASSIGN_OR_RETURN(auto groups, t.Query(fmt::format(fmt::runtime(per), "gid"), top));
    report.by_group = lines(groups, "gid ");
    // Everything below each entry of the root, labelled with that entry.
    // UNION ALL with a depth bound rather than UNION: the rows differ only
    // by inode, and deduplicating millions of them costs more than the
    // bound; a cycle (fsck's business) stops at the bound.
    NS_ASSIGN_OR_RETURN(
        auto tops,
        t.Query("WITH RECURSIVE t(ino, top, depth) AS ("
                "SELECT child, name, 1 FROM dirents WHERE parent = 1 UNION ALL "
                "SELECT e.child, t.top, t.depth + 1 FROM dirents e JOIN t ON "
                "e.parent = t.ino WHERE t.depth < 2048) "
                "SELECT '/' || t.top, count(*), coalesce(sum(CASE WHEN "
                "i.type = 1 THEN i.size ELSE 0 END), 0) AS b FROM t JOIN "
                "inodes i ON i.ino = t.ino GROUP BY t.top "
                "ORDER BY b DESC, count(*) DESC LIMIT $1",
                top));
    report.by_top_directory = lines(tops, "");
    NS_ASSIGN_OR_RETURN(
        auto big, t.Query("SELECT parent, count(*) AS n FROM dirents GROUP BY "
                          "parent ORDER BY n DESC LIMIT $1",
                          top));
    for (const SqlRow& r : big) {
      NS_ASSIGN_OR_RETURN(std::string path, PathOf(t, Num(r[0])));
      report.largest_directories.push_back({path, Num(r[1]), 0});
    }
    return Status::Ok();
  }));
  return report;
}

}  // namespace ns
