// chimera:postgresql://... — dCache's Chimera namespace (its current
// schema, inodes keyed by inumber) as a Source.
//
// One read-only REPEATABLE READ transaction: the checks for bad input and
// the walk see one snapshot. The walk is one query, a recursive CTE from the
// root ordered by the path's names as bytes, so the server hands the rows
// over in the depth-first order the importer needs (docs/dump-format.md);
// it is read through a server-side cursor FETCHed in pages, so client
// memory is a page plus the tag sets of the open directories, whatever the
// namespace's size. The metadata tables, aggregated per inode into JSON,
// are joined to the walk.
//
// Mapping (see migrate/README.md):
//   ipnfsid -> ext_id (36-char ids and 24-hex legacy PNFS ids alike);
//   t_inodes_checksum itype 1..6 -> adler32, md5, md4, sha1, sha256, sha512;
//   t_acl -> NFSv4 ACEs (who 0 uid, 1 gid, 2 OWNER@, 3 GROUP@, 4 EVERYONE@,
//     5 ANONYMOUS@, 6 AUTHENTICATED@ — the last two have no equivalent here
//     and the importer logs them);
//   t_tags/t_tags_inodes -> a directory's tags: one that only inherits
//     (isorign = 0 everywhere) and sees its parent's set carries none, so the
//     import inherits it by reference; one with an own tag (isorign = 1), or
//     whose set differs from its parent's, carries its whole visible set;
//   t_locationinfo itype 0 (tape) -> its HSM URI, 1 (disk) ->
//     "dcache-pool:<pool>";
//   t_xattr -> xattrs as they are; t_storageinfo, iaccess_latency,
//     iretention_policy and the PNFS levels t_level_1..7 -> xattrs named
//     chimera.* (the namespace has no columns for them).
// Position: the number of rows returned; Seek moves the cursor (MOVE).

#include <fmt/core.h>
#include <libpq-fe.h>
#include <simdjson.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "libnamespace/include/namespace/acl.h"
#include "libnamespace/include/namespace/namespace.h"
#include "migrate/libpq_handles.h"
#include "migrate/source.h"

namespace nsmigrate {
namespace {

constexpr const char* kRootId = "000000000000000000000000000000000000";
constexpr int kPage = 5000;

// t_inodes.itype holds S_IFMT bits alone: any other bit is not an itype.
ns::Result<ns::FileType> TypeOf(int64_t itype) {
  if (itype < 0 || (itype & ~int64_t{0170000}) != 0) {
    return ns::Status::Invalid("itype", std::to_string(itype));
  }
  return FileTypeOfMode(static_cast<uint32_t>(itype), "itype");
}

const char* ChecksumName(int64_t type) {
  static constexpr const char* kNames[] = {"adler32", "md5",    "md4",
                                           "sha1",    "sha256", "sha512"};
  return type >= 1 && type <= 6 ? kNames[type - 1] : nullptr;
}

std::string Who(int64_t who, int64_t id) {
  switch (who) {
    case 0:
    case 1:
      return std::to_string(id);
    case 2:
      return "OWNER@";
    case 3:
      return "GROUP@";
    case 4:
      return "EVERYONE@";
    case 5:
      return "ANONYMOUS@";
    case 6:
      return "AUTHENTICATED@";
  }
  return fmt::format("who{}", who);
}

ns::Result<std::string> Unhex(std::string_view hex, const std::string& where) {
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2) return ns::Status::Corruption(where, "odd hex length");
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = val(hex[2 * i]), lo = val(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return ns::Status::Corruption(where, "not hex");
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return out;
}

// Nanoseconds since the epoch of a timestamp column, exactly (numeric).
#define NS_OF(col) \
  "(extract(epoch FROM " col ") * 1000000000)::numeric(30,0)::bigint"

// The reachable tree, depth first: root first, a directory's entries right
// after it. '.'/'..' rows and the root's own entry (older schemas) are not
// names. depth bounds the recursion should the checks have missed a loop.
constexpr const char* kTree =
    "WITH RECURSIVE tree (inumber, iparent, iname, path, names, depth) AS ("
    " SELECT inumber, inumber, ''::text, '/'::text, ARRAY[]::bytea[], 0"
    "   FROM t_inodes WHERE ipnfsid = $1"
    " UNION ALL"
    " SELECT d.ichild, d.iparent, d.iname::text,"
    "   CASE WHEN t.depth = 0 THEN '/' || d.iname"
    "        ELSE t.path || '/' || d.iname END,"
    "   t.names || convert_to(d.iname, 'UTF8'), t.depth + 1"
    "   FROM tree t JOIN t_dirs d ON d.iparent = t.inumber"
    "  WHERE d.iname NOT IN ('.', '..') AND d.ichild <> d.iparent"
    "    AND t.depth < 2048)";

class ChimeraSource final : public ReplaySource {
 public:
  ChimeraSource(std::string uri, std::string conninfo)
      : uri_(std::move(uri)),
        name_(RedactUri(uri_)),
        conninfo_(std::move(conninfo)) {}

  ns::Status Open() {
    conn_.reset(PQconnectdb(conninfo_.c_str()));
    if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) {
      return ns::Status::Unavailable(
          name_, conn_ ? PQerrorMessage(conn_.get()) : "out of memory");
    }
    NS_RETURN_IF_ERROR(Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    NS_RETURN_IF_ERROR(Check());
    // The metadata tables are aggregated per inode and joined (hash or
    // merge joins over whole tables) rather than probed once per row by
    // correlated subqueries: a dozen index probes per entry cost ~20x.
    const std::string sql = fmt::format(
        "DECLARE walk NO SCROLL CURSOR FOR {}, "
        "sums AS (SELECT inumber, json_agg(json_build_array(itype, isum)"
        "  ORDER BY itype) j FROM t_inodes_checksum GROUP BY inumber), "
        "acls AS (SELECT inumber, json_agg(json_build_array(type, flags,"
        "  access_msk, who, who_id) ORDER BY ace_order) j FROM t_acl"
        "  GROUP BY inumber), "
        "xs AS (SELECT inumber, json_agg(json_build_array(ikey,"
        "  encode(ivalue, 'hex')) ORDER BY ikey) j FROM t_xattr"
        "  GROUP BY inumber), "
        "locs AS (SELECT inumber, json_agg(json_build_array(itype, ilocation)"
        "  ORDER BY itype, ipriority DESC, ilocation) j FROM t_locationinfo"
        "  GROUP BY inumber), "
        "tags AS (SELECT g.inumber, json_agg(json_build_array(g.itagname,"
        "  g.isorign, encode(v.ivalue, 'hex')) ORDER BY g.itagname) j"
        "  FROM t_tags g JOIN t_tags_inodes v ON v.itagid = g.itagid"
        "  GROUP BY g.inumber), "
        "lv AS (SELECT inumber, json_agg(json_build_array(n, encode(d, 'hex'))"
        "  ORDER BY n) j FROM ("
        "   SELECT inumber, 1, ifiledata FROM t_level_1"
        "   UNION ALL SELECT inumber, 2, ifiledata FROM t_level_2"
        "   UNION ALL SELECT inumber, 3, ifiledata FROM t_level_3"
        "   UNION ALL SELECT inumber, 4, ifiledata FROM t_level_4"
        "   UNION ALL SELECT inumber, 5, ifiledata FROM t_level_5"
        "   UNION ALL SELECT inumber, 6, ifiledata FROM t_level_6"
        "   UNION ALL SELECT inumber, 7, ifiledata FROM t_level_7"
        "  ) l (inumber, n, d) WHERE d IS NOT NULL GROUP BY inumber) "
        "SELECT t.path, t.depth, trim(i.ipnfsid), i.itype, i.imode, i.inlink,"
        " i.iuid, i.igid, i.isize, " NS_OF("i.iatime") ", " NS_OF(
            "i.imtime") ", " NS_OF("i.ictime") ", " NS_OF("coalesce(i.icrtime, "
                                                          "i.ictime)") ","
        " encode(sl.ifiledata, 'hex'),"
        " json_build_object('sum', sums.j, 'acl', acls.j, 'x', xs.j,"
        "  'loc', locs.j, 'tag', CASE WHEN i.itype = 16384 THEN tags.j END,"
        "  'si', CASE WHEN si.inumber IS NOT NULL THEN json_build_array("
        "    si.ihsmname, si.istoragegroup, si.istoragesubgroup) END,"
        "  'lv', lv.j),"
        " i.iaccess_latency, i.iretention_policy, i.inumber, t.iparent, t.iname"
        " FROM tree t JOIN t_inodes i ON i.inumber = t.inumber"
        " LEFT JOIN t_inodes_data sl ON sl.inumber = i.inumber"
        "  AND i.itype = 40960"
        " LEFT JOIN sums ON sums.inumber = i.inumber"
        " LEFT JOIN acls ON acls.inumber = i.inumber"
        " LEFT JOIN xs ON xs.inumber = i.inumber"
        " LEFT JOIN locs ON locs.inumber = i.inumber"
        " LEFT JOIN tags ON tags.inumber = i.inumber"
        " LEFT JOIN t_storageinfo si ON si.inumber = i.inumber"
        " LEFT JOIN lv ON lv.inumber = i.inumber"
        " ORDER BY t.names",
        kTree);
    return Query(sql, {kRootId}).status();
  }

  ns::Result<std::optional<Entry>> Read() override {
    if (row_ >= rows_) {
      if (done_) return std::optional<Entry>();
      NS_RETURN_IF_ERROR(Fetch());
      if (rows_ == 0) {
        done_ = true;
        return std::optional<Entry>();
      }
    }
    NS_ASSIGN_OR_RETURN(Entry e, Row(row_++));
    return std::optional<Entry>(std::move(e));
  }

  // Without the password: it is recorded in checkpoints and dump headers.
  const std::string& Uri() const override { return name_; }

 private:
  // Bad input, found before anything is imported: every error names the
  // t_dirs row (iparent, iname, ichild) at fault.
  ns::Status Check() {
    NS_ASSIGN_OR_RETURN(
        PgResult root,
        Query("SELECT inumber, itype FROM t_inodes WHERE ipnfsid = $1",
              {kRootId}));
    if (PQntuples(root.get()) != 1) {
      return ns::Status::Invalid(
          name_, fmt::format("no root inode (ipnfsid {})", kRootId));
    }
    auto row_error = [&](PGresult* r, std::string_view why) {
      return ns::Status::Invalid(
          fmt::format("{} t_dirs row (iparent {}, iname '{}', ichild {})",
                      name_, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
                      PQgetvalue(r, 0, 2)),
          why);
    };
    NS_ASSIGN_OR_RETURN(
        PgResult dangling,
        Query("SELECT d.iparent, d.iname, d.ichild,"
              " NOT EXISTS (SELECT 1 FROM t_inodes WHERE inumber = d.iparent)"
              " FROM t_dirs d WHERE d.iname NOT IN ('.', '..') AND ("
              " NOT EXISTS (SELECT 1 FROM t_inodes WHERE inumber = d.iparent)"
              " OR NOT EXISTS (SELECT 1 FROM t_inodes WHERE inumber = d.ichild)"
              " OR NOT EXISTS (SELECT 1 FROM t_inodes WHERE inumber = d.iparent"
              "   AND itype = 16384))"
              " ORDER BY 1, 2 LIMIT 1",
              {}));
    if (PQntuples(dangling.get()) > 0) {
      return row_error(dangling.get(),
                       PQgetvalue(dangling.get(), 0, 3)[0] == 't'
                           ? "dangling parent: no such inode"
                           : "no such child inode, or the parent is not a "
                             "directory");
    }
    NS_ASSIGN_OR_RETURN(PgResult dup,
                        Query("SELECT iparent, iname, min(ichild) FROM t_dirs"
                              " GROUP BY iparent, iname HAVING count(*) > 1"
                              " ORDER BY 1, 2 LIMIT 1",
                              {}));
    if (PQntuples(dup.get()) > 0) {
      return row_error(dup.get(), "duplicate name in its directory");
    }
    NS_ASSIGN_OR_RETURN(
        PgResult two,
        Query("SELECT d.ichild, string_agg(format('(iparent %s, iname %L)',"
              "   d.iparent, d.iname), ', ' ORDER BY d.iparent, d.iname)"
              " FROM t_dirs d"
              " JOIN t_inodes i ON i.inumber = d.ichild AND i.itype = 16384"
              " WHERE d.iname NOT IN ('.', '..') AND d.ichild <> d.iparent"
              " GROUP BY d.ichild HAVING count(*) > 1 ORDER BY 1 LIMIT 1",
              {}));
    if (PQntuples(two.get()) > 0) {
      return ns::Status::Invalid(
          fmt::format("{} t_dirs rows {}", name_, PQgetvalue(two.get(), 0, 1)),
          fmt::format("directory inode {} has more than one name (a cycle, "
                      "or a directory hard link)",
                      PQgetvalue(two.get(), 0, 0)));
    }
    // Every name must hang below the root; what does not is a cycle (each
    // directory having one name, a loop of them is cut off from the root)
    // or below one.
    // One walk of the tree answers both (the CTE is materialized once):
    // the first row it misses, and its size for the progress ETA.
    NS_ASSIGN_OR_RETURN(
        PgResult lost,
        Query(fmt::format("{} SELECT (SELECT count(*) FROM tree), l.* FROM"
                          " (SELECT 1) one LEFT JOIN (SELECT d.iparent,"
                          " d.iname, d.ichild FROM t_dirs d"
                          " WHERE d.iname NOT IN ('.', '..')"
                          " AND d.ichild <> d.iparent"
                          " AND d.iparent NOT IN (SELECT inumber FROM tree)"
                          " ORDER BY 1, 2 LIMIT 1) l ON true",
                          kTree),
              {kRootId}));
    total_ = std::stoull(PQgetvalue(lost.get(), 0, 0));
    if (!PQgetisnull(lost.get(), 0, 1)) {
      return ns::Status::Invalid(
          fmt::format("{} t_dirs row (iparent {}, iname '{}', ichild {})",
                      name_, PQgetvalue(lost.get(), 0, 1),
                      PQgetvalue(lost.get(), 0, 2),
                      PQgetvalue(lost.get(), 0, 3)),
          "not reachable from the root (a cycle of directories, or below "
          "one)");
    }
    return ns::Status::Ok();
  }

  ns::Status Fetch() {
    NS_ASSIGN_OR_RETURN(page_,
                        Query(fmt::format("FETCH {} FROM walk", kPage), {}));
    rows_ = PQntuples(page_.get());
    row_ = 0;
    return ns::Status::Ok();
  }

  ns::Result<Entry> Row(int r) {
    PGresult* p = page_.get();
    auto txt = [&](int c) { return std::string(PQgetvalue(p, r, c)); };
    auto num = [&](int c) { return std::stoll(PQgetvalue(p, r, c)); };
    const std::string where =
        fmt::format("{} inode {} ({})", name_, txt(17), txt(0));
    Entry e;
    e.path = txt(0);
    const size_t depth = static_cast<size_t>(num(1));
    if (depth > 0) {
      const std::string name = txt(19);
      if (ns::Status s = ns::ValidateName(name); !s.ok()) {
        return ns::Status::Invalid(where, "name: " + s.ToString());
      }
      if (e.path.size() > ns::kMaxPathBytes) {
        return ns::Status::Invalid(where, "path longer than 4096 bytes");
      }
    }
    e.ext_id = txt(2);
    NS_ASSIGN_OR_RETURN(e.type, TypeOf(num(3)));
    e.mode = static_cast<uint32_t>(num(4)) & 07777;
    e.uid = static_cast<uint32_t>(num(6));
    e.gid = static_cast<uint32_t>(num(7));
    e.size = static_cast<uint64_t>(num(8));
    e.atime = num(9);
    e.mtime = num(10);
    e.ctime = num(11);
    e.btime = num(12);
    const int64_t nlink = num(5);
    if (e.type != ns::FileType::kDirectory && nlink > 1) {
      e.link_key = e.ext_id;  // every name of the inode shares its pnfsid
      e.nlink = static_cast<uint32_t>(nlink);
    }
    if (e.type == ns::FileType::kSymlink) {
      if (PQgetisnull(p, r, 13)) {
        return ns::Status::Invalid(where, "symlink without t_inodes_data");
      }
      NS_ASSIGN_OR_RETURN(e.target, Unhex(PQgetvalue(p, r, 13), where));
      e.size = e.target.size();
    }
    std::map<std::string, std::string> visible;  // this directory's tags
    bool own = false;
    NS_RETURN_IF_ERROR(
        Extras(std::string_view(PQgetvalue(p, r, 14), PQgetlength(p, r, 14)),
               where, e, visible, own));
    if (!PQgetisnull(p, r, 15)) {
      const int64_t al = num(15);
      e.xattrs.emplace_back("chimera.access_latency", al == 1 ? "ONLINE"
                                                      : al == 0
                                                          ? "NEARLINE"
                                                          : std::to_string(al));
    }
    if (!PQgetisnull(p, r, 16)) {
      e.xattrs.emplace_back("chimera.retention_policy", txt(16));
    }
    if (e.type == ns::FileType::kDirectory) {
      // The stack holds the visible tag sets of the directories above.
      tags_.resize(depth);
      const bool same =
          !own && (depth == 0 ? visible.empty() : visible == tags_.back());
      if (!same) {
        for (const auto& [k, v] : visible) e.tags.emplace_back(k, v);
      }
      tags_.push_back(std::move(visible));
    }
    return e;
  }

  ns::Status Extras(std::string_view json, const std::string& where, Entry& e,
                    std::map<std::string, std::string>& visible, bool& own) {
    simdjson::dom::element doc;
    if (parser_.parse(json.data(), json.size()).get(doc)) {
      return ns::Status::Corruption(where, "metadata JSON");
    }
    // A missing key or a JSON null (no rows) is an empty list.
    auto rows = [&](const char* key) {
      std::vector<simdjson::dom::element> out;
      simdjson::dom::array a;
      if (!doc[key].get_array().get(a)) {
        for (simdjson::dom::element x : a) out.push_back(x);
      }
      return out;
    };
    auto i64 = [](simdjson::dom::element x) {
      int64_t v = 0;
      if (x.get_int64().get(v)) {
        double d = 0;
        if (!x.get_double().get(d)) v = static_cast<int64_t>(d);
      }
      return v;
    };
    auto str = [](simdjson::dom::element x) {
      std::string_view v;
      if (x.get_string().get(v)) return std::string();
      return std::string(v);
    };
    for (simdjson::dom::element s : rows("sum")) {
      const int64_t type = i64(s.at(0));
      const char* name = ChecksumName(type);
      std::string value = str(s.at(1));
      for (char& c : value) c = static_cast<char>(std::tolower(c));
      e.checksums.emplace_back(
          name ? name : fmt::format("chimera-type-{}", type), std::move(value));
    }
    for (simdjson::dom::element a : rows("acl")) {
      Ace ace;
      ace.type = static_cast<uint32_t>(i64(a.at(0)));
      ace.flags = static_cast<uint32_t>(i64(a.at(1)));
      ace.mask = static_cast<uint32_t>(i64(a.at(2)));
      const int64_t who = i64(a.at(3));
      // A named group is a group by its kind in Chimera, by the flag in
      // NFSv4; GROUP@ carries the flag too (RFC 8881 §6.2.1.5).
      if (who == 1 || who == 3) ace.flags |= ns::kAceIdentifierGroup;
      ace.who = Who(who, i64(a.at(4)));
      e.acl.push_back(std::move(ace));
    }
    for (simdjson::dom::element x : rows("x")) {
      NS_ASSIGN_OR_RETURN(std::string v, Unhex(str(x.at(1)), where));
      e.xattrs.emplace_back(str(x.at(0)), std::move(v));
    }
    for (simdjson::dom::element l : rows("loc")) {
      const int64_t type = i64(l.at(0));
      std::string loc = str(l.at(1));
      if (type == 1) {
        e.locations.push_back(Location{"disk", "dcache-pool:" + loc});
      } else {
        e.locations.push_back(
            Location{type == 0 ? "tape" : "external", std::move(loc)});
      }
    }
    for (simdjson::dom::element t : rows("tag")) {
      NS_ASSIGN_OR_RETURN(std::string v, Unhex(str(t.at(2)), where));
      if (i64(t.at(1)) != 0) own = true;
      visible[str(t.at(0))] = std::move(v);
    }
    simdjson::dom::array si;
    if (!doc["si"].get_array().get(si)) {
      e.xattrs.emplace_back(
          "chimera.storage_info",
          fmt::format("{}:{}:{}", str(si.at(0)), str(si.at(1)), str(si.at(2))));
    }
    for (simdjson::dom::element l : rows("lv")) {
      NS_ASSIGN_OR_RETURN(std::string v, Unhex(str(l.at(1)), where));
      e.xattrs.emplace_back(fmt::format("chimera.level.{}", i64(l.at(0))),
                            std::move(v));
    }
    return ns::Status::Ok();
  }

  ns::Status Exec(const char* sql) { return Query(sql, {}).status(); }

  ns::Result<PgResult> Query(const std::string& sql,
                             const std::vector<std::string>& params) {
    std::vector<const char*> values;
    for (const std::string& p : params) values.push_back(p.c_str());
    PgResult r(PQexecParams(conn_.get(), sql.c_str(),
                            static_cast<int>(values.size()), nullptr,
                            values.data(), nullptr, nullptr, 0));
    const ExecStatusType st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      if (PQstatus(conn_.get()) != CONNECTION_OK) {
        return ns::Status::Unavailable(name_, PQerrorMessage(conn_.get()));
      }
      return ns::Status::IOError(name_, PQresultErrorMessage(r.get()));
    }
    return r;
  }

  std::string uri_;
  std::string name_;  // uri_ without its password, for messages
  std::string conninfo_;
  PgConn conn_;
  PgResult page_;
  int rows_ = 0, row_ = 0;
  bool done_ = false;
  std::vector<std::map<std::string, std::string>> tags_;
  simdjson::dom::parser parser_;
};

}  // namespace

ns::Result<std::unique_ptr<Source>> OpenChimeraSource(const std::string& uri) {
  const std::string conninfo = uri.substr(uri.find(':') + 1);
  auto s = std::make_unique<ChimeraSource>(uri, conninfo);
  NS_RETURN_IF_ERROR(s->Open());
  return std::unique_ptr<Source>(std::move(s));
}

}  // namespace nsmigrate
