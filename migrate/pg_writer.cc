// The PostgreSQL writer: each batch is COPY FROM STDIN (binary format for
// inodes, dirents and symlinks: the server parses no numbers; text for the
// rarer metadata tables) on two connections at once, so the server works
// on two cores: dirents and symlinks on a side connection, everything else
// and the checkpoint on the main one (WriteSide says how that stays exact
// for --resume). libpq directly: COPY wants a stream of bytes, and libpq's
// PQputCopyData takes our buffer as it is.
//
// The keys stay in place during the load: ids, cookies and (per
// directory) names arrive in ascending order, so each insert lands on the
// right edge of its B-tree. Dropping them and sorting in the last
// transaction measured worse on the 7.9 M-entry benchmark
// (docs/performance.md: 62 s of server CPU against 49.5 s).

#include <fmt/core.h>
#include <libpq-fe.h>

#include <future>
#include <optional>
#include <string_view>
#include <type_traits>

#include "libnamespace/include/namespace/schema.h"
#include "migrate/libpq_handles.h"
#include "migrate/writer.h"

namespace nsmigrate {
namespace {

constexpr size_t kCopyChunk = 1 << 20;

// COPY's text format: backslash, tab, newline and CR escaped.
void AppendCopyText(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out.push_back(c);
    }
  }
}

// A bytea value in COPY's text format: PostgreSQL's hex input ("\\x..."),
// whose backslash COPY itself wants doubled.
void AppendCopyBytea(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\\\x";
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
}

// COPY's binary format (PostgreSQL's "COPY" reference page, "Binary
// Format"): a signature, flags and extension length, then per row a field
// count and each field as a length and the value in network byte order,
// its width the column type's (smallint 2, integer 4, bigint 8); -1 as the
// field count ends the data. The widths below are those of
// schema/postgresql/001_core.sql.
constexpr std::string_view kBinaryHeader("PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0",
                                         19);

template <typename T>
void AppendBe(std::string& out, T v) {
  using U = std::make_unsigned_t<T>;
  const U u = static_cast<U>(v);
  char b[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i) {
    b[i] = static_cast<char>(u >> (8 * (sizeof(T) - 1 - i)));
  }
  out.append(b, sizeof(T));
}

// One field of a binary COPY row: its length, then its value.
template <typename T>
void Field(std::string& out, T v) {
  AppendBe<int32_t>(out, sizeof(T));
  AppendBe<T>(out, v);
}

void TextField(std::string& out, std::string_view s) {
  AppendBe<int32_t>(out, static_cast<int32_t>(s.size()));
  out.append(s);
}

void NullField(std::string& out) { AppendBe<int32_t>(out, -1); }

void EndBinary(std::string& out) { AppendBe<int16_t>(out, -1); }

class PgWriter final : public Writer {
 public:
  PgWriter(std::string uri, bool dry_run)
      : uri_(std::move(uri)), dry_run_(dry_run) {}

  ns::Status Connect() {
    NS_RETURN_IF_ERROR(Open(conn_));
    if (!dry_run_) NS_RETURN_IF_ERROR(Open(side_));
    return ns::Status::Ok();
  }

  ns::Result<Checkpoint> Begin(const std::string& source,
                               bool resume) override {
    Checkpoint fresh;
    fresh.source = source;
    fresh.next_ino = 2;
    fresh.next_cookie = 3;
    NS_ASSIGN_OR_RETURN(bool has_state, HasTable("ns_migrate_state"));
    if (has_state) {
      if (!resume) {
        return ns::Status::Exists(
            "target",
            "holds an interrupted import: run again with --resume, "
            "or import into a fresh database");
      }
      NS_ASSIGN_OR_RETURN(PgResult r,
                          Query("SELECT source, pos, line, entries, next_ino, "
                                "next_cookie, stack FROM ns_migrate_state",
                                {}));
      if (PQntuples(r.get()) != 1) {
        return ns::Status::Corruption("target", "ns_migrate_state has no row");
      }
      Checkpoint cp;
      cp.source = PQgetvalue(r.get(), 0, 0);
      cp.offset = std::stoull(PQgetvalue(r.get(), 0, 1));
      cp.line = std::stoull(PQgetvalue(r.get(), 0, 2));
      cp.entries = std::stoull(PQgetvalue(r.get(), 0, 3));
      cp.next_ino = std::stoull(PQgetvalue(r.get(), 0, 4));
      cp.next_cookie = std::stoull(PQgetvalue(r.get(), 0, 5));
      cp.stack = PQgetvalue(r.get(), 0, 6);
      if (cp.source != source) {
        return ns::Status::Invalid(
            "resume", fmt::format("the interrupted import read {}, not {}",
                                  cp.source, source));
      }
      // Rows a side transaction committed past this checkpoint go, so the
      // resumed import writes them again exactly as an uninterrupted one.
      if (!dry_run_) NS_RETURN_IF_ERROR(DropPastCheckpoint());
      return cp;
    }
    NS_ASSIGN_OR_RETURN(
        PgResult r,
        Query("SELECT (SELECT count(*) FROM inodes), "
              "(SELECT count(*) FROM (SELECT 1 FROM dirents LIMIT 1) x)",
              {}));
    const std::string inodes = PQgetvalue(r.get(), 0, 0);
    if (inodes != "1" || std::string(PQgetvalue(r.get(), 0, 1)) != "0") {
      return ns::Status::Exists(
          "target",
          fmt::format("is not empty ({} inodes): import into a "
                      "fresh namespace{}",
                      inodes, resume ? " (nothing to resume here)" : ""));
    }
    if (!dry_run_) {
      NS_RETURN_IF_ERROR(Exec(
          "BEGIN;"
          "CREATE TABLE ns_migrate_state (id smallint PRIMARY KEY CHECK (id = "
          "1), source text NOT NULL, pos bigint NOT NULL, line bigint NOT "
          "NULL, entries bigint NOT NULL, next_ino bigint NOT NULL, "
          "next_cookie bigint NOT NULL, stack text NOT NULL);"
          "CREATE TABLE ns_migrate_links (key text PRIMARY KEY, ino bigint NOT "
          "NULL, seen integer NOT NULL, nlink integer NOT NULL);"));
      ns::Status s = StoreState(fresh, true);
      if (s.ok()) s = Exec("COMMIT");
      if (!s.ok()) {
        (void)Exec("ROLLBACK");
        return s;
      }
    }
    return fresh;
  }

  ns::Result<std::vector<LinkRow>> LoadLinks() override {
    NS_ASSIGN_OR_RETURN(
        PgResult r,
        Query("SELECT key, ino, seen, nlink FROM ns_migrate_links", {}));
    std::vector<LinkRow> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      out.push_back(LinkRow{
          PQgetvalue(r.get(), i, 0), std::stoull(PQgetvalue(r.get(), i, 1)),
          static_cast<uint32_t>(std::stoul(PQgetvalue(r.get(), i, 2))),
          static_cast<uint32_t>(std::stoul(PQgetvalue(r.get(), i, 3)))});
    }
    return out;
  }

  ns::Result<std::vector<std::string>> NamesIn(ns::InodeId dir) override {
    NS_ASSIGN_OR_RETURN(PgResult r,
                        Query("SELECT name FROM dirents WHERE parent = $1",
                              {std::to_string(dir)}));
    std::vector<std::string> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      out.emplace_back(PQgetvalue(r.get(), i, 0));
    }
    return out;
  }

  ns::Status Commit(const Batch& batch, const Checkpoint& cp) override {
    if (dry_run_) return ns::Status::Ok();
    NS_RETURN_IF_ERROR(Exec("BEGIN"));
    ns::Status s = WriteBoth(batch, cp, [] { return ns::Status::Ok(); });
    if (s.ok()) s = Exec("COMMIT");
    if (!s.ok()) (void)Exec("ROLLBACK");
    return s;
  }

  ns::Status Finish(const Batch& batch, const Checkpoint& cp,
                    const std::vector<std::pair<ns::InodeId, uint32_t>>& nlinks,
                    const InodeRow& root) override {
    if (dry_run_) return ns::Status::Ok();
    NS_RETURN_IF_ERROR(Exec("BEGIN"));
    auto run = [&]() -> ns::Status {
      for (const auto& [ino, n] : nlinks) {
        NS_RETURN_IF_ERROR(Query("UPDATE inodes SET nlink = $2 WHERE ino = $1",
                                 {std::to_string(ino), std::to_string(n)})
                               .status());
      }
      if (root.ino == 0) {  // no "/" line: only the link count changes
        NS_RETURN_IF_ERROR(Query("UPDATE inodes SET nlink = $1 WHERE ino = 1",
                                 {std::to_string(root.nlink)})
                               .status());
      } else {
        NS_RETURN_IF_ERROR(
            Query(
                "UPDATE inodes SET mode = $2, nlink = $3, uid = $4, gid = $5, "
                "atime_ns = $6, mtime_ns = $7, ctime_ns = $8, btime_ns = $9, "
                "ext_id = NULLIF($10, ''), size = $11 WHERE ino = $1",
                {"1", std::to_string(root.mode), std::to_string(root.nlink),
                 std::to_string(root.uid), std::to_string(root.gid),
                 std::to_string(root.atime), std::to_string(root.mtime),
                 std::to_string(root.ctime), std::to_string(root.btime),
                 root.ext_id, std::to_string(root.size)})
                .status());
      }
      // The library takes ids with nextval(): move both sequences past the
      // highest values given here (is_called = true: nextval returns +1).
      NS_RETURN_IF_ERROR(
          Query("SELECT setval('inode_ino_seq', greatest($1::bigint, 1)), "
                "setval('dirent_cookie_seq', greatest($2::bigint, 2))",
                {std::to_string(cp.next_ino - 1),
                 std::to_string(cp.next_cookie - 1)})
              .status());
      // The import is done when this commit is on disk: the batches'
      // asynchronous commits, the side connection's included (they came
      // first), are flushed with it (WAL is sequential).
      return Exec(
          "DROP TABLE ns_migrate_state; DROP TABLE ns_migrate_links; "
          "SET LOCAL synchronous_commit = on");
    };
    ns::Status s = WriteBoth(batch, cp, run);
    if (s.ok()) s = Exec("COMMIT");
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    // What autovacuum would do next: planner statistics and the
    // visibility map, so the first readdirs do not pay for it.
    return Exec("VACUUM (ANALYZE) inodes, dirents, symlinks");
  }

  ns::Status Discard() override {
    if (dry_run_) return ns::Status::Ok();
    NS_ASSIGN_OR_RETURN(bool ours, HasTable("ns_migrate_state"));
    NS_RETURN_IF_ERROR(Exec("BEGIN"));
    ns::Status s = ours ? DropPastCheckpoint() : ns::Status::Ok();
    if (s.ok()) {
      s = Exec(
          "DROP TABLE IF EXISTS ns_migrate_state; "
          "DROP TABLE IF EXISTS ns_migrate_links; COMMIT");
    }
    if (!s.ok()) (void)Exec("ROLLBACK");
    return s;
  }

  ns::Result<bool> HasTable(const std::string& name) override {
    NS_ASSIGN_OR_RETURN(PgResult r,
                        Query("SELECT to_regclass($1) IS NOT NULL", {name}));
    return std::string(PQgetvalue(r.get(), 0, 0)) == "t";
  }

  ns::Result<std::vector<std::pair<std::string, std::string>>> ExtIdsIn(
      ns::InodeId dir) override {
    NS_ASSIGN_OR_RETURN(
        PgResult r,
        Query("SELECT d.name, i.ext_id FROM dirents d JOIN inodes i ON i.ino "
              "= d.child WHERE d.parent = $1 AND i.ext_id IS NOT NULL",
              {std::to_string(dir)}));
    std::vector<std::pair<std::string, std::string>> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      out.emplace_back(PQgetvalue(r.get(), i, 0), PQgetvalue(r.get(), i, 1));
    }
    return out;
  }

  ns::Result<Batch> MetadataIn(ns::InodeId dir) override {
    Batch b;
    // Readers (export, --verify) ask for every directory; five round trips
    // each were most of a verify's time when, as after most imports, no
    // metadata table has a row. Asked once: a reader's namespace is not
    // written while it is read (writer.h).
    if (!any_metadata_) {
      NS_ASSIGN_OR_RETURN(
          PgResult r,
          Query("SELECT EXISTS (SELECT 1 FROM aces) OR EXISTS (SELECT 1 FROM "
                "xattrs) OR EXISTS (SELECT 1 FROM dir_tags) OR EXISTS (SELECT "
                "1 FROM checksums) OR EXISTS (SELECT 1 FROM locations)",
                {}));
      any_metadata_ = std::string(PQgetvalue(r.get(), 0, 0)) == "t";
    }
    if (!*any_metadata_) return b;
    const std::vector<std::string> arg = {std::to_string(dir)};
    // Text results; bytea as hex (encode), decoded here.
    auto unhex = [](const char* h) {
      std::string out;
      auto val = [](char c) {
        return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
      };
      for (size_t i = 0; h[i] && h[i + 1]; i += 2) {
        out.push_back(static_cast<char>(val(h[i]) * 16 + val(h[i + 1])));
      }
      return out;
    };
    auto each = [&](const char* sql, auto row) -> ns::Status {
      NS_ASSIGN_OR_RETURN(PgResult r, Query(sql, arg));
      for (int i = 0; i < PQntuples(r.get()); ++i) {
        auto v = [&](int c) { return PQgetvalue(r.get(), i, c); };
        row(v);
      }
      return ns::Status::Ok();
    };
    auto u64 = [](const char* x) { return std::stoull(x); };
    auto u32 = [](const char* x) {
      return static_cast<uint32_t>(std::stoll(x));
    };
    NS_RETURN_IF_ERROR(each(
        "SELECT ino, pos, type, flags, mask, who_kind, who_id FROM aces "
        "WHERE ino IN (SELECT child FROM dirents WHERE parent = $1) "
        "ORDER BY ino, pos",
        [&](auto v) {
          b.aces.push_back(AceRow{u64(v(0)), u32(v(1)), u32(v(2)), u32(v(3)),
                                  u32(v(4)), u32(v(5)), u32(v(6))});
        }));
    NS_RETURN_IF_ERROR(
        each("SELECT ino, name, encode(value, 'hex') FROM xattrs WHERE ino IN "
             "(SELECT child FROM dirents WHERE parent = $1) ORDER BY ino, name",
             [&](auto v) {
               b.xattrs.push_back(XattrRow{u64(v(0)), v(1), unhex(v(2))});
             }));
    NS_RETURN_IF_ERROR(
        each("SELECT t.origin, t.name, encode(t.value, 'hex') FROM tags t JOIN "
             "dir_tags g ON g.ino = t.origin AND g.origin = t.origin WHERE "
             "t.origin IN (SELECT child FROM dirents WHERE parent = $1) "
             "ORDER BY t.origin, t.name",
             [&](auto v) {
               b.tags.push_back(TagRow{u64(v(0)), v(1), unhex(v(2))});
             }));
    NS_RETURN_IF_ERROR(each(
        "SELECT ino, type, value FROM checksums WHERE ino IN (SELECT child "
        "FROM dirents WHERE parent = $1) ORDER BY ino, type",
        [&](auto v) {
          b.checksums.push_back(ChecksumRow{u64(v(0)), u32(v(1)), v(2)});
        }));
    NS_RETURN_IF_ERROR(
        each("SELECT ino, type, location, added_ns FROM locations WHERE ino IN "
             "(SELECT child FROM dirents WHERE parent = $1) "
             "ORDER BY ino, type, location",
             [&](auto v) {
               b.locations.push_back(
                   LocationRow{u64(v(0)), u32(v(1)), v(2), std::stoll(v(3))});
             }));
    return b;
  }

  ns::Result<std::string> ExtIdOf(ns::InodeId ino) override {
    NS_ASSIGN_OR_RETURN(
        PgResult r,
        Query("SELECT coalesce(ext_id, '') FROM inodes WHERE ino = $1",
              {std::to_string(ino)}));
    if (PQntuples(r.get()) == 0) return std::string();
    return std::string(PQgetvalue(r.get(), 0, 0));
  }

  ns::Result<bool> AnyExtId() override {
    NS_ASSIGN_OR_RETURN(
        PgResult r,
        Query("SELECT EXISTS (SELECT 1 FROM inodes WHERE ext_id IS NOT NULL)",
              {}));
    return std::string(PQgetvalue(r.get(), 0, 0)) == "t";
  }

 private:
  ns::Status Open(PgConn& c) {
    c.reset(PQconnectdb(uri_.c_str()));
    if (!c || PQstatus(c.get()) != CONNECTION_OK) {
      return ns::Status::Unavailable(
          "connect", c ? PQerrorMessage(c.get()) : "out of memory");
    }
    // A batch and its checkpoint commit together, so losing the last
    // commits in a server crash only means resuming a little earlier.
    return Exec("SET synchronous_commit = off", c.get());
  }

  // `c` is the main connection unless a caller names the side one.
  PGconn* Conn(PGconn* c) const { return c ? c : conn_.get(); }

  ns::Status Error(std::string_view what, PGconn* c = nullptr) {
    return ns::Status::IOError(what, PQerrorMessage(Conn(c)));
  }

  ns::Status Exec(const std::string& sql, PGconn* c = nullptr) {
    c = Conn(c);
    PgResult r(PQexec(c, sql.c_str()));
    const ExecStatusType st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      if (PQstatus(c) != CONNECTION_OK) {
        return ns::Status::Unavailable(sql, PQerrorMessage(c));
      }
      return ns::Status::IOError(sql, PQresultErrorMessage(r.get()));
    }
    return ns::Status::Ok();
  }

  ns::Result<PgResult> Query(const char* sql,
                             const std::vector<std::string>& params) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    PgResult r(PQexecParams(conn_.get(), sql, static_cast<int>(values.size()),
                            nullptr, values.data(), nullptr, nullptr, 0));
    const ExecStatusType st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      if (PQstatus(conn_.get()) != CONNECTION_OK) {
        return ns::Status::Unavailable(sql, PQerrorMessage(conn_.get()));
      }
      return ns::Status::IOError(sql, PQresultErrorMessage(r.get()));
    }
    return r;
  }

  // Runs one COPY, handing `fill` a buffer to append rows to; the buffer
  // is sent whenever it passes kCopyChunk.
  template <typename Fill>
  ns::Status Copy(const char* sql, Fill fill, PGconn* c = nullptr) {
    c = Conn(c);
    PgResult r(PQexec(c, sql));
    if (PQresultStatus(r.get()) != PGRES_COPY_IN) {
      return ns::Status::IOError(sql, PQresultErrorMessage(r.get()));
    }
    std::string buf;
    buf.reserve(kCopyChunk + 8192);
    auto send = [&]() -> bool {
      if (buf.empty()) return true;
      const bool ok = PQputCopyData(c, buf.data(),
                                    static_cast<int>(buf.size())) == 1;
      buf.clear();
      return ok;
    };
    bool ok = fill(buf, [&]() { return buf.size() < kCopyChunk || send(); });
    ok = ok && send();
    if (PQputCopyEnd(c, ok ? nullptr : "client error") != 1) {
      return Error(sql, c);
    }
    PgResult end(PQgetResult(c));
    // Drain: a COPY has exactly one result, then nullptr.
    while (PgResult extra{PQgetResult(c)}) {
    }
    if (PQresultStatus(end.get()) != PGRES_COMMAND_OK) {
      return ns::Status::IOError(sql, PQresultErrorMessage(end.get()));
    }
    return ok ? ns::Status::Ok() : Error(sql, c);
  }

  ns::Status StoreState(const Checkpoint& cp, bool insert) {
    return Query(insert
                     ? "INSERT INTO ns_migrate_state (id, source, pos, line, "
                       "entries, next_ino, next_cookie, stack) VALUES (1, $1, "
                       "$2, $3, $4, $5, $6, $7)"
                     : "UPDATE ns_migrate_state SET source = $1, pos = $2, "
                       "line = $3, entries = $4, next_ino = $5, "
                       "next_cookie = $6, stack = $7 WHERE id = 1",
                 {cp.source, std::to_string(cp.offset), std::to_string(cp.line),
                  std::to_string(cp.entries), std::to_string(cp.next_ino),
                  std::to_string(cp.next_cookie), cp.stack})
        .status();
  }

  // The side connection's half of a batch, in its own transaction:
  // dirents and symlinks. It commits before the main half, which carries
  // the checkpoint, and the main half commits only if it did; rows it
  // left past the checkpoint (the main half failed, or the process died
  // between the two commits) are deleted by DropPastCheckpoint() before
  // anything else is written: every later batch's cookies and inode
  // numbers are at or past the checkpoint's next_cookie and next_ino.
  ns::Status WriteSide(const Batch& b) {
    PGconn* c = side_.get();
    if (b.dirents.empty() && b.symlinks.empty()) return ns::Status::Ok();
    NS_RETURN_IF_ERROR(Exec("BEGIN", c));
    ns::Status s = CopyBinary(
        "COPY dirents (parent, name, child, type, cookie) FROM STDIN "
        "(FORMAT binary)",
        b.dirents,
        [](std::string& buf, const DirentRow& d) {
          AppendBe<int16_t>(buf, 5);
          Field<int64_t>(buf, static_cast<int64_t>(d.parent));
          TextField(buf, d.name);
          Field<int64_t>(buf, static_cast<int64_t>(d.child));
          Field<int16_t>(buf, static_cast<int16_t>(d.type));
          Field<int64_t>(buf, static_cast<int64_t>(d.cookie));
        },
        c);
    if (s.ok()) {
      s = CopyBinary(
          "COPY symlinks (ino, target) FROM STDIN (FORMAT binary)", b.symlinks,
          [](std::string& buf, const SymlinkRow& l) {
            AppendBe<int16_t>(buf, 2);
            Field<int64_t>(buf, static_cast<int64_t>(l.ino));
            TextField(buf, l.target);
          },
          c);
    }
    if (s.ok()) s = Exec("COMMIT", c);
    if (!s.ok()) (void)Exec("ROLLBACK", c);
    return s;
  }

  // Removes what a side transaction committed past the stored checkpoint
  // (see WriteSide); the caller's transaction.
  ns::Status DropPastCheckpoint() {
    return Exec(
        "DELETE FROM dirents WHERE cookie >= (SELECT next_cookie FROM "
        "ns_migrate_state); DELETE FROM symlinks WHERE ino >= (SELECT "
        "next_ino FROM ns_migrate_state)");
  }

  // One batch: the side half on a second thread while this one writes the
  // main half (inodes, metadata, links, checkpoint) into the open
  // transaction; then `more` (Finish's last steps). Leaves the main
  // transaction open, for the caller to COMMIT or ROLLBACK.
  template <typename More>
  ns::Status WriteBoth(const Batch& b, const Checkpoint& cp, More more) {
    std::future<ns::Status> side =
        std::async(std::launch::async, [&] { return WriteSide(b); });
    ns::Status s = WriteBatch(b, cp);
    ns::Status side_status = side.get();
    if (s.ok()) s = side_status;
    if (s.ok()) s = more();
    return s;
  }

  ns::Status WriteBatch(const Batch& b, const Checkpoint& cp) {
    if (!b.inodes.empty()) {
      NS_RETURN_IF_ERROR(CopyBinary(
          "COPY inodes (ino, ext_id, type, mode, nlink, uid, gid, size, "
          "rdev_major, rdev_minor, atime_ns, mtime_ns, ctime_ns, btime_ns, "
          "change, generation, parent) FROM STDIN (FORMAT binary)",
          b.inodes, [](std::string& buf, const InodeRow& r) {
            AppendBe<int16_t>(buf, 17);
            Field<int64_t>(buf, static_cast<int64_t>(r.ino));
            if (r.ext_id.empty()) {
              NullField(buf);
            } else {
              TextField(buf, r.ext_id);
            }
            Field<int16_t>(buf, static_cast<int16_t>(r.type));
            Field<int32_t>(buf, static_cast<int32_t>(r.mode));
            Field<int32_t>(buf, static_cast<int32_t>(r.nlink));
            Field<int64_t>(buf, r.uid);
            Field<int64_t>(buf, r.gid);
            Field<int64_t>(buf, static_cast<int64_t>(r.size));
            Field<int32_t>(buf, static_cast<int32_t>(r.rdev_major));
            Field<int32_t>(buf, static_cast<int32_t>(r.rdev_minor));
            Field<int64_t>(buf, r.atime);
            Field<int64_t>(buf, r.mtime);
            Field<int64_t>(buf, r.ctime);
            Field<int64_t>(buf, r.btime);
            Field<int64_t>(buf, 1);  // change
            Field<int32_t>(buf, 0);  // generation
            Field<int64_t>(buf, static_cast<int64_t>(r.parent));
          }));
    }
    NS_RETURN_IF_ERROR(WriteMetadata(b));
    for (const LinkRow& l : b.links) {
      NS_RETURN_IF_ERROR(
          Query("INSERT INTO ns_migrate_links (key, ino, seen, nlink) VALUES "
                "($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE SET seen = "
                "excluded.seen",
                {l.key, std::to_string(l.ino), std::to_string(l.seen),
                 std::to_string(l.nlink)})
              .status());
    }
    return StoreState(cp, false);
  }

  // A binary COPY of `rows`, if any: `format` appends one row.
  template <typename Row, typename Format>
  ns::Status CopyBinary(const char* sql, const std::vector<Row>& rows,
                        Format format, PGconn* c = nullptr) {
    if (rows.empty()) return ns::Status::Ok();
    return Copy(
        sql,
        [&](std::string& buf, auto flush) {
          buf.append(kBinaryHeader);
          for (const Row& r : rows) {
            format(buf, r);
            if (!flush()) return false;
          }
          EndBinary(buf);
          return true;
        },
        c);
  }

  // One COPY per metadata table that has rows in the batch.
  template <typename Row, typename Format>
  ns::Status CopyRows(const char* sql, const std::vector<Row>& rows,
                      Format format) {
    if (rows.empty()) return ns::Status::Ok();
    return Copy(sql, [&](std::string& buf, auto flush) {
      for (const Row& r : rows) {
        format(buf, r);
        buf.push_back('\n');
        if (!flush()) return false;
      }
      return true;
    });
  }

  ns::Status WriteMetadata(const Batch& b) {
    auto out = [](std::string& buf) { return std::back_inserter(buf); };
    NS_RETURN_IF_ERROR(CopyRows(
        "COPY aces (ino, pos, type, flags, mask, who_kind, who_id) FROM STDIN",
        b.aces, [&](std::string& buf, const AceRow& a) {
          fmt::format_to(out(buf), "{}\t{}\t{}\t{}\t{}\t{}\t{}", a.ino, a.pos,
                         a.type, static_cast<int32_t>(a.flags),
                         static_cast<int32_t>(a.mask), a.who_kind, a.who_id);
        }));
    NS_RETURN_IF_ERROR(CopyRows("COPY xattrs (ino, name, value) FROM STDIN",
                                b.xattrs,
                                [&](std::string& buf, const XattrRow& x) {
                                  fmt::format_to(out(buf), "{}\t", x.ino);
                                  AppendCopyText(buf, x.name);
                                  buf.push_back('\t');
                                  AppendCopyBytea(buf, x.value);
                                }));
    NS_RETURN_IF_ERROR(
        CopyRows("COPY dir_tags (ino, origin) FROM STDIN", b.dir_tags,
                 [&](std::string& buf, const DirTagRow& d) {
                   fmt::format_to(out(buf), "{}\t{}", d.ino, d.origin);
                 }));
    NS_RETURN_IF_ERROR(CopyRows("COPY tags (origin, name, value) FROM STDIN",
                                b.tags, [&](std::string& buf, const TagRow& t) {
                                  fmt::format_to(out(buf), "{}\t", t.origin);
                                  AppendCopyText(buf, t.name);
                                  buf.push_back('\t');
                                  AppendCopyBytea(buf, t.value);
                                }));
    NS_RETURN_IF_ERROR(
        CopyRows("COPY checksums (ino, type, value) FROM STDIN", b.checksums,
                 [&](std::string& buf, const ChecksumRow& c) {
                   fmt::format_to(out(buf), "{}\t{}\t", c.ino, c.type);
                   AppendCopyText(buf, c.value);
                 }));
    return CopyRows("COPY locations (ino, type, location, added_ns) FROM STDIN",
                    b.locations, [&](std::string& buf, const LocationRow& l) {
                      fmt::format_to(out(buf), "{}\t{}\t", l.ino, l.type);
                      AppendCopyText(buf, l.location);
                      fmt::format_to(out(buf), "\t{}", l.added_ns);
                    });
  }

  std::string uri_;
  bool dry_run_;
  PgConn conn_;
  // Writers only: dirents and symlinks, COPYed while conn_ takes the
  // inodes (see WriteSide).
  PgConn side_;
  std::optional<bool> any_metadata_;  // MetadataIn: whether to look at all
};

}  // namespace

ns::Result<std::unique_ptr<Writer>> OpenPgWriter(const std::string& uri,
                                                 bool dry_run) {
  NS_ASSIGN_OR_RETURN(ns::SchemaState st, ns::ReadSchemaState(uri));
  if (st.version == 0) {
    if (dry_run) {
      return ns::Status::NotFound("target",
                                  "no namespace schema: run nsadmin init");
    }
    NS_RETURN_IF_ERROR(ns::InitSchema(uri));
  } else if (st.version < st.latest) {
    return ns::Status::SchemaTooOld("target", "run nsadmin upgrade first");
  } else if (st.version > st.latest) {
    return ns::Status::SchemaTooNew("target", "this ns-migrate is older");
  }
  auto w = std::make_unique<PgWriter>(uri, dry_run);
  NS_RETURN_IF_ERROR(w->Connect());
  return std::unique_ptr<Writer>(std::move(w));
}

ns::Result<std::unique_ptr<Writer>> Writer::Open(const std::string& uri,
                                                 bool dry_run) {
  if (uri.starts_with("postgresql://") || uri.starts_with("postgres://")) {
    return OpenPgWriter(uri, dry_run);
  }
  if (uri.starts_with("sqlite:")) {
    std::string rest = uri.substr(7);
    if (rest.starts_with("//")) rest = rest.substr(2);
    if (const size_t q = rest.find('?'); q != std::string::npos) rest.resize(q);
    if (rest.empty()) return ns::Status::Invalid(uri, "no file path");
    return OpenSqliteWriter(rest, dry_run);
  }
  return ns::Status::Invalid(uri, "not a sqlite: or postgresql:// URI");
}

}  // namespace nsmigrate
