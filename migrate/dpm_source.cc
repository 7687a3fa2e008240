// dpm:mysql://user:password@host:port/db — a DPM or LFC name server
// database (the Cns_* tables) as a Source, through SOCI's MySQL backend.
//
// The walk is depth first, one query per directory for its children in
// name order (Cns_file_metadata has an index on (parent_fileid, name)), with
// the symlink target, the user comment and the replicas joined in. SOCI's
// MySQL backend holds a whole result on the client, so one query per
// directory is what keeps memory bounded: the children lists of the
// directories on the current path, whatever the database's size. Bad input
// (no root, dangling parent, cycle, duplicate names, unknown owners) is
// found by queries before the first entry is returned.
//
// Mapping (see migrate/README.md):
//   fileid -> ext_id; filemode -> type and mode; times (seconds) -> ns;
//   csumtype/csumvalue AD -> adler32, MD -> md5, CS -> crc32 (no such type
//     in the namespace: logged by the importer); "checksum.<type>" keys of
//     the xattr JSON (dmlite) -> checksums, its other keys -> xattrs;
//   acl ("A7u0,B5101,..."-style: per entry a type letter, '@' + the
//     CNS_ACL_* type, 0x20 more for default entries, a permission digit and
//     an id) -> a POSIX ACL -> NFSv4 ACEs (posix_acl.h);
//   Cns_file_replica -> locations "dpm://<host><path>" from sfn;
//   Cns_user_metadata.comments -> xattr dpm.comment; fileclass and a status
//     other than '-' -> xattrs dpm.fileclass, dpm.status.
// Owners stay the numeric (virtual) ids DPM stores; an id that neither
// Cns_userinfo nor Cns_groupinfo knows (0 aside) is refused.

#include <fmt/core.h>
#include <simdjson.h>
#include <soci/mysql/soci-mysql.h>
#include <soci/soci.h>

#include <memory>
#include <string>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "migrate/posix_acl.h"
#include "migrate/source.h"

namespace nsmigrate {
namespace {

// Columns of a child row, all as text (SOCI's row types follow MySQL's
// column types exactly; text is one type for all of them).
constexpr const char* kColumns =
    "CAST(m.fileid AS CHAR), m.name, CAST(m.filemode AS CHAR),"
    " CAST(m.nlink AS CHAR), CAST(m.owner_uid AS CHAR), CAST(m.gid AS CHAR),"
    " CAST(m.filesize AS CHAR), CAST(m.atime AS CHAR), CAST(m.mtime AS CHAR),"
    " CAST(m.ctime AS CHAR), CAST(m.fileclass AS CHAR), m.status,"
    " m.csumtype, m.csumvalue, m.acl, m.xattr, s.linkname, u.comments,"
    " (SELECT JSON_ARRAYAGG(JSON_ARRAY(r.host, r.sfn)) FROM Cns_file_replica r"
    "   WHERE r.fileid = m.fileid)"
    " FROM Cns_file_metadata m"
    " LEFT JOIN Cns_symlinks s ON s.fileid = m.fileid"
    " LEFT JOIN Cns_user_metadata u ON u.u_fileid = m.fileid";

struct Row {
  std::vector<std::string> v;
  std::vector<bool> null;
};

// "mysql://user:password@host:port/db" as SOCI's connection string.
ns::Result<std::string> SociConnect(const std::string& uri) {
  std::string rest = uri.substr(uri.find("://") + 3);
  std::string user, password, host = "127.0.0.1", port, db;
  if (const size_t at = rest.rfind('@'); at != std::string::npos) {
    const std::string cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = cred.find(':');
    user = cred.substr(0, colon);
    if (colon != std::string::npos) password = cred.substr(colon + 1);
  }
  const size_t slash = rest.find('/');
  if (slash == std::string::npos || slash + 1 == rest.size()) {
    return ns::Status::Invalid(RedactUri(uri), "no database name");
  }
  db = rest.substr(slash + 1);
  std::string hostport = rest.substr(0, slash);
  if (const size_t colon = hostport.rfind(':'); colon != std::string::npos) {
    port = hostport.substr(colon + 1);
    hostport.resize(colon);
  }
  if (!hostport.empty()) host = hostport;
  // SOCI's connection string quotes values with single quotes.
  std::string out = fmt::format("db='{}' host='{}'", db, host);
  if (!port.empty()) out += fmt::format(" port={}", port);
  if (!user.empty()) out += fmt::format(" user='{}'", user);
  if (!password.empty()) out += fmt::format(" password='{}'", password);
  return out;
}

// The Cns ACL string as POSIX ACL text, access and default entries apart.
// Errors: Invalid on an entry that is not letter, digit, id.
ns::Status CnsAclToPosix(const std::string& acl, std::string* access,
                         std::string* deflt) {
  size_t pos = 0;
  while (pos < acl.size()) {
    size_t end = acl.find(',', pos);
    if (end == std::string::npos) end = acl.size();
    const std::string e = acl.substr(pos, end - pos);
    pos = end + 1;
    // The id is written for every entry (0 for the mask and other), but an
    // entry without one means the same.
    if (e.size() < 2 || e[1] < '0' || e[1] > '7' ||
        e.find_first_not_of("0123456789", 2) != std::string::npos) {
      return ns::Status::Invalid("acl", "bad entry '" + e + "'");
    }
    const int type = (e[0] - '@') & ~0x20;
    const bool is_default = ((e[0] - '@') & 0x20) != 0;
    const int perm = e[1] - '0';
    const std::string id = e.substr(2);
    const std::string rwx =
        fmt::format("{}{}{}", perm & 4 ? 'r' : '-', perm & 2 ? 'w' : '-',
                    perm & 1 ? 'x' : '-');
    std::string text;
    switch (type) {
      case 1:
        text = "u::" + rwx;
        break;
      case 2:
        text = "u:" + id + ":" + rwx;
        break;
      case 3:
        text = "g::" + rwx;
        break;
      case 4:
        text = "g:" + id + ":" + rwx;
        break;
      case 5:
        text = "m::" + rwx;
        break;
      case 6:
        text = "o::" + rwx;
        break;
      default:
        return ns::Status::Invalid("acl", "unknown entry type in '" + e + "'");
    }
    std::string& out = is_default ? *deflt : *access;
    if (!out.empty()) out.push_back(',');
    out += text;
  }
  return ns::Status::Ok();
}

class DpmSource final : public ReplaySource {
 public:
  DpmSource(std::string uri, std::string connect)
      : uri_(RedactUri(uri)), connect_(std::move(connect)) {}

  ns::Status Open() {
    return Guard(uri_, [&]() -> ns::Status {
      sql_ = std::make_unique<soci::session>(*soci::factory_mysql(), connect_);
      // One snapshot for the checks and the walk.
      *sql_ << "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ";
      *sql_ << "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";
      return Check();
    });
  }

  ns::Result<std::optional<Entry>> Read() override {
    std::optional<Entry> out;
    NS_RETURN_IF_ERROR(Guard(uri_, [&]() -> ns::Status {
      if (!started_) {
        started_ = true;
        NS_ASSIGN_OR_RETURN(std::vector<Row> root,
                            Query(fmt::format("SELECT {} WHERE m.parent_fileid "
                                              "= 0",
                                              kColumns)));
        NS_ASSIGN_OR_RETURN(Entry e, ToEntry(root[0], "/"));
        NS_RETURN_IF_ERROR(Push(root[0].v[0], "/"));
        out = std::move(e);
        return ns::Status::Ok();
      }
      // Bounded by the rows: each iteration returns a child or pops.
      while (!stack_.empty()) {
        Level& top = stack_.back();
        if (top.next == top.rows.size()) {
          stack_.pop_back();
          continue;
        }
        Row r = std::move(top.rows[top.next++]);
        const std::string path =
            top.path == "/" ? "/" + r.v[1] : top.path + "/" + r.v[1];
        NS_ASSIGN_OR_RETURN(Entry e, ToEntry(r, path));
        if (e.type == ns::FileType::kDirectory) {
          NS_RETURN_IF_ERROR(Push(r.v[0], path));
        }
        out = std::move(e);
        return ns::Status::Ok();
      }
      return ns::Status::Ok();
    }));
    return out;
  }

  const std::string& Uri() const override { return uri_; }

 private:
  struct Level {
    std::string path;
    std::vector<Row> rows;
    size_t next = 0;
  };

  // SOCI reports errors by exception; none leaves this source.
  template <typename Fn>
  static ns::Status Guard(const std::string& where, Fn fn) {
    try {
      return fn();
    } catch (const soci::mysql_soci_error& e) {
      // Client errors 2000..2999 (CR_*): the server was not reached.
      if (e.err_num_ >= 2000 && e.err_num_ < 3000) {
        return ns::Status::Unavailable(where, e.what());
      }
      return ns::Status::IOError(where, e.what());
    } catch (const std::exception& e) {
      return ns::Status::IOError(where, e.what());
    }
  }

  ns::Result<std::vector<Row>> Query(const std::string& q) {
    std::vector<Row> out;
    soci::rowset<soci::row> rs = (sql_->prepare << q);
    for (const soci::row& r : rs) {
      Row row;
      for (size_t i = 0; i < r.size(); ++i) {
        const bool null = r.get_indicator(i) == soci::i_null;
        row.null.push_back(null);
        row.v.push_back(null ? std::string() : r.get<std::string>(i));
      }
      out.push_back(std::move(row));
    }
    return out;
  }

  ns::Status Push(const std::string& fileid, const std::string& path) {
    Level l;
    l.path = path;
    NS_ASSIGN_OR_RETURN(
        l.rows, Query(fmt::format("SELECT {} WHERE m.parent_fileid = {} ORDER "
                                  "BY m.name",
                                  kColumns, fileid)));
    stack_.push_back(std::move(l));
    return ns::Status::Ok();
  }

  ns::Status RowError(const Row& r, std::string_view why) {
    return ns::Status::Invalid(
        fmt::format("{} Cns_file_metadata row (fileid {}, parent_fileid {}, "
                    "name '{}')",
                    uri_, r.v[0], r.v[1], r.v[2]),
        why);
  }

  ns::Status Check() {
    NS_ASSIGN_OR_RETURN(
        std::vector<Row> roots,
        Query("SELECT CAST(fileid AS CHAR), CAST(parent_fileid AS CHAR), name,"
              " CAST(filemode AS CHAR) FROM Cns_file_metadata"
              " WHERE parent_fileid = 0"));
    if (roots.size() != 1 || (std::stoul(roots[0].v[3]) & 0170000) != 0040000) {
      return ns::Status::Invalid(uri_,
                                 "no single root directory (parent_fileid 0)");
    }
    struct Probe {
      const char* sql;
      const char* why;
    };
    const Probe probes[] = {
        {"SELECT CAST(m.fileid AS CHAR), CAST(m.parent_fileid AS CHAR), m.name"
         " FROM Cns_file_metadata m WHERE m.parent_fileid <> 0 AND NOT EXISTS"
         " (SELECT 1 FROM Cns_file_metadata p WHERE p.fileid ="
         " m.parent_fileid) ORDER BY m.fileid LIMIT 1",
         "dangling parent: no such fileid"},
        {"SELECT CAST(m.fileid AS CHAR), CAST(m.parent_fileid AS CHAR), m.name"
         " FROM Cns_file_metadata m JOIN Cns_file_metadata p"
         " ON p.fileid = m.parent_fileid WHERE (p.filemode & 61440) <> 16384"
         " ORDER BY m.fileid LIMIT 1",
         "the parent is not a directory"},
        {"SELECT CAST(MAX(fileid) AS CHAR), CAST(parent_fileid AS CHAR), name"
         " FROM Cns_file_metadata GROUP BY parent_fileid, name"
         " HAVING COUNT(*) > 1 ORDER BY 2, 3 LIMIT 1",
         "duplicate name in its directory"},
        {"SELECT CAST(MAX(fileid) AS CHAR), '', '' FROM Cns_file_metadata"
         " GROUP BY fileid HAVING COUNT(*) > 1 ORDER BY 1 LIMIT 1",
         "one fileid with several rows (DPM has no hard links)"},
        // UNION (not UNION ALL) ends on a loop; what it does not reach is a
        // cycle, or below one.
        {"WITH RECURSIVE reach (fileid) AS (SELECT fileid FROM"
         " Cns_file_metadata WHERE parent_fileid = 0 UNION SELECT m.fileid"
         " FROM Cns_file_metadata m JOIN reach r ON m.parent_fileid ="
         " r.fileid) SELECT CAST(m.fileid AS CHAR), CAST(m.parent_fileid AS"
         " CHAR), m.name FROM Cns_file_metadata m WHERE m.fileid NOT IN"
         " (SELECT fileid FROM reach) ORDER BY m.fileid LIMIT 1",
         "not reachable from the root (a cycle of directories, or below one)"},
        {"SELECT CAST(m.fileid AS CHAR), CAST(m.parent_fileid AS CHAR), m.name"
         " FROM Cns_file_metadata m WHERE m.owner_uid <> 0 AND NOT EXISTS"
         " (SELECT 1 FROM Cns_userinfo u WHERE u.userid = m.owner_uid)"
         " ORDER BY m.fileid LIMIT 1",
         "unknown uid: not in Cns_userinfo"},
        {"SELECT CAST(m.fileid AS CHAR), CAST(m.parent_fileid AS CHAR), m.name"
         " FROM Cns_file_metadata m WHERE m.gid <> 0 AND NOT EXISTS"
         " (SELECT 1 FROM Cns_groupinfo g WHERE g.gid = m.gid)"
         " ORDER BY m.fileid LIMIT 1",
         "unknown gid: not in Cns_groupinfo"},
    };
    for (const Probe& p : probes) {
      NS_ASSIGN_OR_RETURN(std::vector<Row> bad, Query(p.sql));
      if (!bad.empty()) return RowError(bad[0], p.why);
    }
    NS_ASSIGN_OR_RETURN(
        std::vector<Row> n,
        Query("SELECT CAST(COUNT(*) AS CHAR) FROM Cns_file_metadata"));
    total_ = std::stoull(n[0].v[0]);
    return ns::Status::Ok();
  }

  ns::Result<Entry> ToEntry(const Row& r, const std::string& path) {
    const std::string where =
        fmt::format("{} fileid {} ({})", uri_, r.v[0], path);
    auto num = [&](int c) -> int64_t {
      return r.null[c] ? 0 : std::stoll(r.v[c]);
    };
    Entry e;
    e.path = path;
    if (path != "/") {
      if (ns::Status s = ns::ValidateName(r.v[1]); !s.ok()) {
        return ns::Status::Invalid(where, "name: " + s.ToString());
      }
      if (path.size() > ns::kMaxPathBytes) {
        return ns::Status::Invalid(where, "path longer than 4096 bytes");
      }
    }
    e.ext_id = r.v[0];
    const auto filemode = static_cast<uint32_t>(num(2));
    NS_ASSIGN_OR_RETURN(e.type, FileTypeOfMode(filemode, "filemode"));
    e.mode = filemode & 07777;
    e.uid = static_cast<uint32_t>(num(4));
    e.gid = static_cast<uint32_t>(num(5));
    e.size = static_cast<uint64_t>(num(6));
    e.atime = num(7) * 1000000000;
    e.mtime = num(8) * 1000000000;
    e.ctime = num(9) * 1000000000;
    e.btime = e.ctime;  // DPM keeps no birth time
    if (num(10) != 0) e.xattrs.emplace_back("dpm.fileclass", r.v[10]);
    if (!r.null[11] && !r.v[11].empty() && r.v[11] != "-") {
      e.xattrs.emplace_back("dpm.status", r.v[11]);
    }
    if (!r.null[12] && !r.v[12].empty() && !r.null[13] && !r.v[13].empty()) {
      const std::string& t = r.v[12];
      std::string value = r.v[13];
      for (char& c : value) c = static_cast<char>(std::tolower(c));
      e.checksums.emplace_back(t == "AD"   ? "adler32"
                               : t == "MD" ? "md5"
                               : t == "CS" ? "crc32"
                                           : "dpm-" + t,
                               value);
    }
    if (!r.null[14] && !r.v[14].empty()) {
      std::string access, deflt;
      if (ns::Status s = CnsAclToPosix(r.v[14], &access, &deflt); !s.ok()) {
        return ns::Status::Invalid(where, s.ToString());
      }
      const bool dir = e.type == ns::FileType::kDirectory;
      if (!access.empty()) {
        NS_ASSIGN_OR_RETURN(e.acl, PosixAclTextToNfs4(access, dir, false));
      }
      if (!deflt.empty() && dir) {
        NS_ASSIGN_OR_RETURN(std::vector<Ace> d,
                            PosixAclTextToNfs4(deflt, dir, true));
        e.acl.insert(e.acl.end(), d.begin(), d.end());
      }
    }
    if (!r.null[15] && !r.v[15].empty()) {
      NS_RETURN_IF_ERROR(Xattrs(r.v[15], where, e));
    }
    if (e.type == ns::FileType::kSymlink) {
      if (r.null[16]) {
        return ns::Status::Invalid(where, "symlink without Cns_symlinks row");
      }
      e.target = r.v[16];
      e.size = e.target.size();
    }
    if (!r.null[17] && !r.v[17].empty()) {
      e.xattrs.emplace_back("dpm.comment", r.v[17]);
    }
    if (!r.null[18] && !r.v[18].empty()) {
      NS_RETURN_IF_ERROR(Replicas(r.v[18], where, e));
    }
    return e;
  }

  // dmlite's xattr column: a JSON object of strings.
  ns::Status Xattrs(const std::string& json, const std::string& where,
                    Entry& e) {
    simdjson::dom::object obj;
    if (parser_.parse(json).get_object().get(obj)) {
      e.xattrs.emplace_back("dpm.xattr", json);  // not JSON: kept as it is
      return ns::Status::Ok();
    }
    for (auto [key, value] : obj) {
      std::string v;
      std::string_view sv;
      if (!value.get_string().get(sv)) {
        v = std::string(sv);
      } else {
        v = simdjson::to_string(value);
      }
      if (key.starts_with("checksum.")) {
        for (char& c : v) c = static_cast<char>(std::tolower(c));
        const std::string type(key.substr(9));
        bool dup = false;
        for (const auto& [t, x] : e.checksums) dup = dup || t == type;
        if (!dup) e.checksums.emplace_back(type, v);
      } else {
        e.xattrs.emplace_back(std::string(key), v);
      }
    }
    (void)where;
    return ns::Status::Ok();
  }

  ns::Status Replicas(const std::string& json, const std::string& where,
                      Entry& e) {
    simdjson::dom::array reps;
    if (parser_.parse(json).get_array().get(reps)) {
      return ns::Status::Corruption(where, "replica list");
    }
    for (simdjson::dom::element rep : reps) {
      std::string_view host, sfn;
      if (rep.at(0).get_string().get(host) || rep.at(1).get_string().get(sfn)) {
        return ns::Status::Corruption(where, "replica without host or sfn");
      }
      std::string uri;
      if (sfn.find("://") != std::string_view::npos) {
        uri = std::string(sfn);
      } else {
        // "host:/fs/path" (DPM's usual sfn) or just a path.
        std::string_view p = sfn;
        if (const size_t colon = p.find(":/");
            colon != std::string_view::npos) {
          p = p.substr(colon + 1);
        }
        uri = fmt::format("dpm://{}{}", host, p);
      }
      e.locations.push_back(Location{"disk", std::move(uri)});
    }
    return ns::Status::Ok();
  }

  std::string uri_;  // without the password
  std::string connect_;
  std::unique_ptr<soci::session> sql_;
  std::vector<Level> stack_;
  bool started_ = false;
  simdjson::dom::parser parser_;
};

}  // namespace

ns::Result<std::unique_ptr<Source>> OpenDpmSource(const std::string& uri) {
  const std::string rest = uri.substr(uri.find(':') + 1);
  if (!rest.starts_with("mysql://")) {
    return ns::Status::Invalid(RedactUri(uri), "expected dpm:mysql://...");
  }
  NS_ASSIGN_OR_RETURN(std::string connect, SociConnect(rest));
  auto s = std::make_unique<DpmSource>(uri, std::move(connect));
  NS_RETURN_IF_ERROR(s->Open());
  return std::unique_ptr<Source>(std::move(s));
}

}  // namespace nsmigrate
