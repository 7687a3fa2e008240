// The SQLite writer: prepared multi-row inserts (RowInsert), one big
// transaction per batch. Keys are given in import order (cookies as
// dirents come, inode numbers as entries open; inodes are stored sorted),
// so every insert appends to the B-trees; dirents' two secondary indexes,
// which would not be appended to, are built once at the end
// (DropIndexes/DropState), and the load runs with a rollback journal
// (LoadJournal). A small page cache is enough for appends. New files get
// 16 KiB pages (kNewFilePageSize).

#include <fmt/core.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "libnamespace/include/namespace/schema.h"
#include "migrate/writer.h"

namespace nsmigrate {
namespace {

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

constexpr const char* kCreateState =
    "CREATE TABLE ns_migrate_state (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "source TEXT NOT NULL, pos INTEGER NOT NULL, line INTEGER NOT NULL, "
    "entries INTEGER NOT NULL, next_ino INTEGER NOT NULL, "
    "next_cookie INTEGER NOT NULL, stack TEXT NOT NULL);"
    "CREATE TABLE ns_migrate_links (key TEXT PRIMARY KEY, ino INTEGER NOT "
    "NULL, "
    "seen INTEGER NOT NULL, nlink INTEGER NOT NULL);"
    // dirents' secondary indexes, kept aside while the import runs.
    "CREATE TABLE ns_migrate_indexes (name TEXT PRIMARY KEY, sql TEXT NOT "
    "NULL);"
    "INSERT INTO ns_migrate_indexes SELECT name, sql FROM sqlite_master "
    "WHERE type = 'index' AND tbl_name = 'dirents' AND sql IS NOT NULL;";

class SqliteWriter final : public Writer {
 public:
  SqliteWriter(std::string path, bool dry_run, bool exists)
      : path_(std::move(path)), dry_run_(dry_run), exists_(exists) {}

  ns::Status Open() {
    if (!exists_) return ns::Status::Ok();  // dry run on a file to be made
    sqlite3* raw = nullptr;
    // NOMUTEX: the writer is used by one thread at a time (writer.h), so
    // SQLite's own locking of every call is pure cost.
    const int flags =
        (dry_run_ ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
        SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(path_.c_str(), &raw, flags, nullptr);
    db_.reset(raw);
    if (rc != SQLITE_OK) {
      return ns::Status::Unavailable("open " + path_,
                                     raw ? sqlite3_errmsg(raw) : "no memory");
    }
    sqlite3_busy_timeout(db_.get(), 10000);
    // NORMAL in WAL mode: a process crash loses nothing committed; a power
    // loss may lose the last batches, but each batch and its checkpoint
    // together, so a resume is still exact. The page cache holds the
    // right edges of the B-trees; more only costs memory.
    return Exec(
        "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768; "
        "PRAGMA temp_store = MEMORY;");
  }

  ns::Result<Checkpoint> Begin(const std::string& source,
                               bool resume) override {
    Checkpoint fresh;
    fresh.source = source;
    fresh.next_ino = 2;
    fresh.next_cookie = 3;
    if (!db_) return fresh;
    NS_ASSIGN_OR_RETURN(bool has_state, HasTable("ns_migrate_state"));
    if (has_state) {
      if (!resume) {
        return ns::Status::Exists(
            path_,
            "holds an interrupted import: run again with --resume, "
            "or import into a fresh database");
      }
      NS_ASSIGN_OR_RETURN(
          Stmt s, Prepare("SELECT source, pos, line, entries, next_ino, "
                          "next_cookie, stack FROM ns_migrate_state"));
      if (sqlite3_step(s.get()) != SQLITE_ROW) {
        return ns::Status::Corruption(path_, "ns_migrate_state has no row");
      }
      Checkpoint cp;
      cp.source = Text(s.get(), 0);
      cp.offset = sqlite3_column_int64(s.get(), 1);
      cp.line = sqlite3_column_int64(s.get(), 2);
      cp.entries = sqlite3_column_int64(s.get(), 3);
      cp.next_ino = sqlite3_column_int64(s.get(), 4);
      cp.next_cookie = sqlite3_column_int64(s.get(), 5);
      cp.stack = Text(s.get(), 6);
      if (cp.source != source) {
        return ns::Status::Invalid(
            "resume", fmt::format("the interrupted import read {}, not {}",
                                  cp.source, source));
      }
      s.reset();  // ends the read: the journal cannot change inside one
      if (!dry_run_) NS_RETURN_IF_ERROR(LoadJournal());
      return cp;
    }
    NS_ASSIGN_OR_RETURN(int64_t inodes, Count("SELECT count(*) FROM inodes"));
    NS_ASSIGN_OR_RETURN(int64_t dirents, Count("SELECT count(*) FROM dirents"));
    if (inodes != 1 || dirents != 0) {
      return ns::Status::Exists(
          path_,
          fmt::format("is not empty ({} inodes): import into a fresh "
                      "namespace{}",
                      inodes, resume ? " (nothing to resume here)" : ""));
    }
    if (!dry_run_) {
      NS_RETURN_IF_ERROR(Exec(std::string("BEGIN IMMEDIATE;") + kCreateState));
      NS_RETURN_IF_ERROR(DropIndexes());
      NS_RETURN_IF_ERROR(StoreState(fresh));
      NS_RETURN_IF_ERROR(Exec("COMMIT"));
      NS_RETURN_IF_ERROR(LoadJournal());
    }
    return fresh;
  }

  ns::Result<std::vector<LinkRow>> LoadLinks() override {
    std::vector<LinkRow> out;
    if (!db_) return out;
    NS_ASSIGN_OR_RETURN(
        Stmt s, Prepare("SELECT key, ino, seen, nlink FROM ns_migrate_links"));
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      out.push_back(
          LinkRow{Text(s.get(), 0),
                  static_cast<ns::InodeId>(sqlite3_column_int64(s.get(), 1)),
                  static_cast<uint32_t>(sqlite3_column_int(s.get(), 2)),
                  static_cast<uint32_t>(sqlite3_column_int(s.get(), 3))});
    }
    if (rc != SQLITE_DONE) return Error("read ns_migrate_links");
    return out;
  }

  ns::Result<std::vector<std::string>> NamesIn(ns::InodeId dir) override {
    std::vector<std::string> out;
    if (!db_) return out;
    NS_ASSIGN_OR_RETURN(Stmt s,
                        Prepare("SELECT name FROM dirents WHERE parent = ?1"));
    sqlite3_bind_int64(s.get(), 1, static_cast<sqlite3_int64>(dir));
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      out.push_back(Text(s.get(), 0));
    }
    if (rc != SQLITE_DONE) return Error("read dirents");
    return out;
  }

  ns::Status Commit(const Batch& batch, const Checkpoint& cp) override {
    if (dry_run_ || !db_) return ns::Status::Ok();
    NS_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    ns::Status s = WriteBatch(batch, cp);
    if (s.ok()) s = Exec("COMMIT");
    if (!s.ok()) (void)Exec("ROLLBACK");
    return s;
  }

  ns::Status Finish(const Batch& batch, const Checkpoint& cp,
                    const std::vector<std::pair<ns::InodeId, uint32_t>>& nlinks,
                    const InodeRow& root) override {
    if (dry_run_ || !db_) return ns::Status::Ok();
    NS_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    auto run = [&]() -> ns::Status {
      NS_RETURN_IF_ERROR(WriteBatch(batch, cp));
      NS_ASSIGN_OR_RETURN(
          Stmt fix, Prepare("UPDATE inodes SET nlink = ?2 WHERE ino = ?1"));
      for (const auto& [ino, n] : nlinks) {
        sqlite3_bind_int64(fix.get(), 1, static_cast<sqlite3_int64>(ino));
        sqlite3_bind_int(fix.get(), 2, static_cast<int>(n));
        NS_RETURN_IF_ERROR(Step(fix.get(), "fix nlink"));
      }
      if (root.ino == 0) {  // no "/" line: only the link count changes
        NS_ASSIGN_OR_RETURN(
            Stmt r, Prepare("UPDATE inodes SET nlink = ?1 WHERE ino = 1"));
        sqlite3_bind_int(r.get(), 1, static_cast<int>(root.nlink));
        NS_RETURN_IF_ERROR(Step(r.get(), "update root"));
        return DropState();
      }
      NS_ASSIGN_OR_RETURN(
          Stmt r, Prepare("UPDATE inodes SET mode = ?2, nlink = ?3, uid = ?4, "
                          "gid = ?5, atime_ns = ?6, mtime_ns = ?7, "
                          "ctime_ns = ?8, btime_ns = ?9, ext_id = ?10, "
                          "size = ?11 "
                          "WHERE ino = ?1"));
      sqlite3_bind_int64(r.get(), 1, 1);
      sqlite3_bind_int(r.get(), 2, static_cast<int>(root.mode));
      sqlite3_bind_int(r.get(), 3, static_cast<int>(root.nlink));
      sqlite3_bind_int64(r.get(), 4, root.uid);
      sqlite3_bind_int64(r.get(), 5, root.gid);
      sqlite3_bind_int64(r.get(), 6, root.atime);
      sqlite3_bind_int64(r.get(), 7, root.mtime);
      sqlite3_bind_int64(r.get(), 8, root.ctime);
      sqlite3_bind_int64(r.get(), 9, root.btime);
      BindOptText(r.get(), 10, root.ext_id);
      sqlite3_bind_int64(r.get(), 11, static_cast<sqlite3_int64>(root.size));
      NS_RETURN_IF_ERROR(Step(r.get(), "update root"));
      // AUTOINCREMENT's counters already moved past the explicit keys we
      // inserted; nothing else holds a sequence on SQLite.
      return DropState();
    };
    ns::Status s = run();
    if (s.ok()) s = Exec("COMMIT");
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    // Statistics for the planner, sampled so that this stays quick; then
    // the namespace's own journal again.
    return Exec("PRAGMA analysis_limit = 1000; ANALYZE; " + kWalJournal);
  }

  ns::Status Discard() override {
    if (dry_run_ || !db_) return ns::Status::Ok();
    NS_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    ns::Status s = DropState();
    if (s.ok()) s = Exec("COMMIT");
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    return Exec(kWalJournal);
  }

  ns::Result<bool> HasTable(const std::string& name) override {
    if (!db_) return false;
    NS_ASSIGN_OR_RETURN(
        Stmt s, Prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                        "AND name = ?1"));
    sqlite3_bind_text(s.get(), 1, name.data(), static_cast<int>(name.size()),
                      SQLITE_STATIC);
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return Error("sqlite_master");
  }

  ns::Result<std::vector<std::pair<std::string, std::string>>> ExtIdsIn(
      ns::InodeId dir) override {
    std::vector<std::pair<std::string, std::string>> out;
    if (!db_) return out;
    NS_ASSIGN_OR_RETURN(
        Stmt s, Prepare("SELECT d.name, i.ext_id FROM dirents d JOIN inodes i "
                        "ON i.ino = d.child WHERE d.parent = ?1 AND "
                        "i.ext_id IS NOT NULL"));
    sqlite3_bind_int64(s.get(), 1, static_cast<sqlite3_int64>(dir));
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      out.emplace_back(Text(s.get(), 0), Text(s.get(), 1));
    }
    if (rc != SQLITE_DONE) return Error("read ext ids");
    return out;
  }

  ns::Result<Batch> MetadataIn(ns::InodeId dir) override {
    Batch b;
    if (!db_) return b;
    // Runs `sql` with ?1 = dir, handing each row to `row`.
    auto each = [&](const char* sql, auto row) -> ns::Status {
      NS_ASSIGN_OR_RETURN(Stmt s, Prepare(sql));
      sqlite3_bind_int64(s.get(), 1, static_cast<sqlite3_int64>(dir));
      int rc;
      while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) row(s.get());
      if (rc != SQLITE_DONE) return Error(sql);
      return ns::Status::Ok();
    };
    auto u64 = [](sqlite3_stmt* s, int c) {
      return static_cast<uint64_t>(sqlite3_column_int64(s, c));
    };
    auto u32 = [](sqlite3_stmt* s, int c) {
      return static_cast<uint32_t>(sqlite3_column_int64(s, c));
    };
    auto blob = [](sqlite3_stmt* s, int c) {
      const void* p = sqlite3_column_blob(s, c);
      return p ? std::string(static_cast<const char*>(p),
                             sqlite3_column_bytes(s, c))
               : std::string();
    };
    NS_RETURN_IF_ERROR(each(
        "SELECT ino, pos, type, flags, mask, who_kind, who_id FROM aces "
        "WHERE ino IN (SELECT child FROM dirents WHERE parent = ?1) "
        "ORDER BY ino, pos",
        [&](sqlite3_stmt* s) {
          b.aces.push_back(AceRow{u64(s, 0), u32(s, 1), u32(s, 2), u32(s, 3),
                                  u32(s, 4), u32(s, 5), u32(s, 6)});
        }));
    NS_RETURN_IF_ERROR(each(
        "SELECT ino, name, value FROM xattrs WHERE ino IN (SELECT child FROM "
        "dirents WHERE parent = ?1) ORDER BY ino, name",
        [&](sqlite3_stmt* s) {
          b.xattrs.push_back(XattrRow{u64(s, 0), Text(s, 1), blob(s, 2)});
        }));
    NS_RETURN_IF_ERROR(each(
        "SELECT t.origin, t.name, t.value FROM tags t JOIN dir_tags g ON "
        "g.ino = t.origin AND g.origin = t.origin WHERE t.origin IN (SELECT "
        "child FROM dirents WHERE parent = ?1) ORDER BY t.origin, t.name",
        [&](sqlite3_stmt* s) {
          b.tags.push_back(TagRow{u64(s, 0), Text(s, 1), blob(s, 2)});
        }));
    NS_RETURN_IF_ERROR(each(
        "SELECT ino, type, value FROM checksums WHERE ino IN (SELECT child "
        "FROM dirents WHERE parent = ?1) ORDER BY ino, type",
        [&](sqlite3_stmt* s) {
          b.checksums.push_back(ChecksumRow{u64(s, 0), u32(s, 1), Text(s, 2)});
        }));
    NS_RETURN_IF_ERROR(each(
        "SELECT ino, type, location, added_ns FROM locations WHERE ino IN "
        "(SELECT child FROM dirents WHERE parent = ?1) "
        "ORDER BY ino, type, location",
        [&](sqlite3_stmt* s) {
          b.locations.push_back(LocationRow{u64(s, 0), u32(s, 1), Text(s, 2),
                                            sqlite3_column_int64(s, 3)});
        }));
    return b;
  }

  ns::Result<std::string> ExtIdOf(ns::InodeId ino) override {
    if (!db_) return std::string();
    NS_ASSIGN_OR_RETURN(Stmt s,
                        Prepare("SELECT ext_id FROM inodes WHERE ino = ?1"));
    sqlite3_bind_int64(s.get(), 1, static_cast<sqlite3_int64>(ino));
    if (sqlite3_step(s.get()) != SQLITE_ROW) return std::string();
    return Text(s.get(), 0);
  }

  ns::Result<bool> AnyExtId() override {
    if (!db_) return false;
    NS_ASSIGN_OR_RETURN(
        int64_t n,
        Count("SELECT count(*) FROM (SELECT 1 FROM inodes WHERE ext_id IS NOT "
              "NULL LIMIT 1)"));
    return n > 0;
  }

 private:
  ns::Status Error(std::string_view what) {
    return ns::Status::IOError(fmt::format("{}: {}", path_, what),
                               sqlite3_errmsg(db_.get()));
  }

  // dirents' secondary indexes ((parent, name) and (parent, cookie)) are
  // dropped for the import and built again by Finish() from their own
  // CREATE statements (saved in ns_migrate_indexes, so the result is the
  // schema's, whatever its version): one sort per index instead of a
  // B-tree descent per row. Names stay unique meanwhile because the
  // importer refuses duplicates itself (importer.h), and the unique index
  // checks again when it is built. Cost: NamesIn on --resume scans dirents.
  ns::Status DropIndexes() {
    NS_ASSIGN_OR_RETURN(std::vector<std::string> names,
                        Strings("SELECT name FROM ns_migrate_indexes"));
    for (const std::string& n : names) {
      NS_RETURN_IF_ERROR(Exec(fmt::format("DROP INDEX \"{}\"", n)));
    }
    return ns::Status::Ok();
  }

  // The indexes back (if this import dropped them), then the import's
  // tables gone: in the caller's transaction. The index sort spills to
  // temporary files rather than memory, so memory stays bounded, and may
  // use a second thread.
  ns::Status DropState() {
    NS_ASSIGN_OR_RETURN(bool saved, HasTable("ns_migrate_indexes"));
    if (saved) {
      NS_ASSIGN_OR_RETURN(std::vector<std::string> sqls,
                          Strings("SELECT sql FROM ns_migrate_indexes"));
      NS_RETURN_IF_ERROR(Exec("PRAGMA temp_store = FILE; PRAGMA threads = 2"));
      for (const std::string& sql : sqls) {
        NS_RETURN_IF_ERROR(Exec(sql));
      }
      NS_RETURN_IF_ERROR(Exec("DROP TABLE ns_migrate_indexes"));
    }
    return Exec(
        "DROP TABLE IF EXISTS ns_migrate_state; "
        "DROP TABLE IF EXISTS ns_migrate_links;");
  }

  // The journal while the import runs: a rollback journal instead of the
  // namespace's WAL. A batch mostly appends new pages, which a rollback
  // journal never copies (only pages that existed when the transaction
  // began are saved), while WAL writes every page twice (log, then
  // checkpoint). synchronous = NORMAL still syncs the journal and the
  // database at every commit, so a batch and its checkpoint survive a
  // crash together or not at all, as before. Finish() and Discard() put
  // WAL back (libnamespace also sets it on every open).
  ns::Status LoadJournal() {
    return Exec("PRAGMA journal_mode = TRUNCATE");
  }
  inline static const std::string kWalJournal = "PRAGMA journal_mode = WAL;";

  ns::Status Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err) !=
        SQLITE_OK) {
      ns::Status s = ns::Status::IOError(path_ + ": " + sql, err ? err : "?");
      sqlite3_free(err);
      return s;
    }
    return ns::Status::Ok();
  }

  ns::Result<Stmt> Prepare(const char* sql) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &raw,
                           nullptr) != SQLITE_OK) {
      return Error(sql);
    }
    return Stmt(raw);
  }

  ns::Status Step(sqlite3_stmt* s, std::string_view what) {
    const int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return Error(what);
    return ns::Status::Ok();
  }

  // The first column of every row of `sql`; the statement is finished
  // before it returns (no read left open).
  ns::Result<std::vector<std::string>> Strings(const char* sql) {
    NS_ASSIGN_OR_RETURN(Stmt s, Prepare(sql));
    std::vector<std::string> out;
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      out.push_back(Text(s.get(), 0));
    }
    if (rc != SQLITE_DONE) return Error(sql);
    return out;
  }

  ns::Result<int64_t> Count(const char* sql) {
    NS_ASSIGN_OR_RETURN(Stmt s, Prepare(sql));
    if (sqlite3_step(s.get()) != SQLITE_ROW) return Error(sql);
    return static_cast<int64_t>(sqlite3_column_int64(s.get(), 0));
  }

  static std::string Text(sqlite3_stmt* s, int col) {
    const unsigned char* t = sqlite3_column_text(s, col);
    return t ? std::string(reinterpret_cast<const char*>(t),
                           sqlite3_column_bytes(s, col))
             : std::string();
  }

  static void BindOptText(sqlite3_stmt* s, int idx, const std::string& v) {
    if (v.empty()) {
      sqlite3_bind_null(s, idx);
    } else {
      sqlite3_bind_text(s, idx, v.data(), static_cast<int>(v.size()),
                        SQLITE_TRANSIENT);
    }
  }

  // A multi-row INSERT: `many` stores kRowsPerInsert rows per execution,
  // `one` the rest of a batch. One execution per row would pay each
  // statement's fixed costs per row: opening and closing the table's
  // cursors (a descent from the root instead of continuing at the right
  // edge) and, the tables being AUTOINCREMENT, reading and rewriting
  // sqlite_sequence.
  struct RowInsert {
    Stmt many, one;
    int cols = 0;
  };
  static constexpr int kRowsPerInsert = 64;

  // `head` then `row` ("(?, ...)" with `cols` parameters) once for `one`
  // and kRowsPerInsert times, comma-separated, for `many`.
  ns::Status PrepareRows(RowInsert& ins, std::string_view head,
                         std::string_view row, int cols) {
    std::string sql(head);
    sql += row;
    NS_ASSIGN_OR_RETURN(ins.one, Prepare(sql.c_str()));
    for (int i = 1; i < kRowsPerInsert; ++i) {
      sql += ", ";
      sql += row;
    }
    NS_ASSIGN_OR_RETURN(ins.many, Prepare(sql.c_str()));
    ins.cols = cols;
    return ns::Status::Ok();
  }

  // Stores rows at(0) .. at(n - 1); bind(stmt, first parameter - 1, row)
  // binds one row. Text is bound SQLITE_STATIC: the rows outlive the
  // statement's step.
  template <typename At, typename Bind>
  ns::Status InsertRows(RowInsert& ins, size_t n, At at, Bind bind,
                        std::string_view what) {
    size_t i = 0;
    for (; i + kRowsPerInsert <= n; i += kRowsPerInsert) {
      for (int k = 0; k < kRowsPerInsert; ++k) {
        bind(ins.many.get(), k * ins.cols, at(i + k));
      }
      NS_RETURN_IF_ERROR(Step(ins.many.get(), what));
    }
    for (; i < n; ++i) {
      bind(ins.one.get(), 0, at(i));
      NS_RETURN_IF_ERROR(Step(ins.one.get(), what));
    }
    return ns::Status::Ok();
  }

  ns::Status PrepareAll() {
    if (ins_inode_.one) return ns::Status::Ok();
    NS_RETURN_IF_ERROR(PrepareRows(
        ins_inode_,
        "INSERT INTO inodes (ino, ext_id, type, mode, nlink, uid, gid, size, "
        "rdev_major, rdev_minor, atime_ns, mtime_ns, ctime_ns, btime_ns, "
        "change, generation, parent) VALUES ",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0, ?)", 15));
    NS_RETURN_IF_ERROR(PrepareRows(
        ins_dirent_,
        "INSERT INTO dirents (cookie, parent, name, child, type) VALUES ",
        "(?, ?, ?, ?, ?)", 5));
    NS_ASSIGN_OR_RETURN(
        ins_symlink_,
        Prepare("INSERT INTO symlinks (ino, target) VALUES (?1, ?2)"));
    NS_ASSIGN_OR_RETURN(
        put_link_,
        Prepare("INSERT OR REPLACE INTO ns_migrate_links (key, ino, seen, "
                "nlink) VALUES (?1, ?2, ?3, ?4)"));
    NS_ASSIGN_OR_RETURN(
        ins_ace_, Prepare("INSERT INTO aces (ino, pos, type, flags, mask, "
                          "who_kind, who_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                          "?7)"));
    NS_ASSIGN_OR_RETURN(
        ins_xattr_,
        Prepare("INSERT INTO xattrs (ino, name, value) VALUES (?1, ?2, ?3)"));
    NS_ASSIGN_OR_RETURN(
        ins_dir_tag_,
        Prepare("INSERT INTO dir_tags (ino, origin) VALUES (?1, ?2)"));
    NS_ASSIGN_OR_RETURN(
        ins_tag_,
        Prepare("INSERT INTO tags (origin, name, value) VALUES (?1, ?2, ?3)"));
    NS_ASSIGN_OR_RETURN(
        ins_checksum_,
        Prepare(
            "INSERT INTO checksums (ino, type, value) VALUES (?1, ?2, ?3)"));
    NS_ASSIGN_OR_RETURN(
        ins_location_,
        Prepare("INSERT INTO locations (ino, type, location, added_ns) VALUES "
                "(?1, ?2, ?3, ?4)"));
    return ns::Status::Ok();
  }

  ns::Status StoreState(const Checkpoint& cp) {
    NS_ASSIGN_OR_RETURN(
        Stmt s,
        Prepare("INSERT OR REPLACE INTO ns_migrate_state (id, source, pos, "
                "line, entries, next_ino, next_cookie, stack) VALUES (1, ?1, "
                "?2, ?3, ?4, ?5, ?6, ?7)"));
    sqlite3_bind_text(s.get(), 1, cp.source.data(),
                      static_cast<int>(cp.source.size()), SQLITE_STATIC);
    sqlite3_bind_int64(s.get(), 2, static_cast<sqlite3_int64>(cp.offset));
    sqlite3_bind_int64(s.get(), 3, static_cast<sqlite3_int64>(cp.line));
    sqlite3_bind_int64(s.get(), 4, static_cast<sqlite3_int64>(cp.entries));
    sqlite3_bind_int64(s.get(), 5, static_cast<sqlite3_int64>(cp.next_ino));
    sqlite3_bind_int64(s.get(), 6, static_cast<sqlite3_int64>(cp.next_cookie));
    sqlite3_bind_text(s.get(), 7, cp.stack.data(),
                      static_cast<int>(cp.stack.size()), SQLITE_STATIC);
    return Step(s.get(), "store checkpoint");
  }

  ns::Status WriteBatch(const Batch& b, const Checkpoint& cp) {
    NS_RETURN_IF_ERROR(PrepareAll());
    // Inodes in ascending order, so that every insert appends to the
    // B-tree: the importer gives a directory its number when it opens and
    // hands its row over when it closes, after the rows of its contents.
    // Appends leave full pages; an insert below the right edge splits a
    // page in the middle and descends from the root.
    inode_order_.clear();
    for (const InodeRow& r : b.inodes) inode_order_.push_back(&r);
    auto by_ino = [](const InodeRow* x, const InodeRow* y) {
      return x->ino < y->ino;
    };
    if (!std::is_sorted(inode_order_.begin(), inode_order_.end(), by_ino)) {
      std::sort(inode_order_.begin(), inode_order_.end(), by_ino);
    }
    NS_RETURN_IF_ERROR(InsertRows(
        ins_inode_, inode_order_.size(),
        [&](size_t i) -> const InodeRow& { return *inode_order_[i]; },
        [](sqlite3_stmt* s, int i, const InodeRow& r) {
          sqlite3_bind_int64(s, i + 1, static_cast<sqlite3_int64>(r.ino));
          BindOptText(s, i + 2, r.ext_id);
          sqlite3_bind_int(s, i + 3, static_cast<int>(r.type));
          sqlite3_bind_int(s, i + 4, static_cast<int>(r.mode));
          sqlite3_bind_int(s, i + 5, static_cast<int>(r.nlink));
          sqlite3_bind_int64(s, i + 6, r.uid);
          sqlite3_bind_int64(s, i + 7, r.gid);
          sqlite3_bind_int64(s, i + 8, static_cast<sqlite3_int64>(r.size));
          sqlite3_bind_int(s, i + 9, static_cast<int>(r.rdev_major));
          sqlite3_bind_int(s, i + 10, static_cast<int>(r.rdev_minor));
          sqlite3_bind_int64(s, i + 11, r.atime);
          sqlite3_bind_int64(s, i + 12, r.mtime);
          sqlite3_bind_int64(s, i + 13, r.ctime);
          sqlite3_bind_int64(s, i + 14, r.btime);
          sqlite3_bind_int64(s, i + 15, static_cast<sqlite3_int64>(r.parent));
        },
        "insert inode"));
    NS_RETURN_IF_ERROR(InsertRows(
        ins_dirent_, b.dirents.size(),
        [&](size_t i) -> const DirentRow& { return b.dirents[i]; },
        [](sqlite3_stmt* s, int i, const DirentRow& d) {
          sqlite3_bind_int64(s, i + 1, static_cast<sqlite3_int64>(d.cookie));
          sqlite3_bind_int64(s, i + 2, static_cast<sqlite3_int64>(d.parent));
          sqlite3_bind_text(s, i + 3, d.name.data(),
                            static_cast<int>(d.name.size()), SQLITE_STATIC);
          sqlite3_bind_int64(s, i + 4, static_cast<sqlite3_int64>(d.child));
          sqlite3_bind_int(s, i + 5, static_cast<int>(d.type));
        },
        "insert dirent"));
    sqlite3_stmt* s = ins_symlink_.get();
    for (const SymlinkRow& l : b.symlinks) {
      sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(l.ino));
      sqlite3_bind_text(s, 2, l.target.data(),
                        static_cast<int>(l.target.size()), SQLITE_STATIC);
      NS_RETURN_IF_ERROR(Step(s, "insert symlink"));
    }
    s = put_link_.get();
    for (const LinkRow& l : b.links) {
      sqlite3_bind_text(s, 1, l.key.data(), static_cast<int>(l.key.size()),
                        SQLITE_STATIC);
      sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(l.ino));
      sqlite3_bind_int(s, 3, static_cast<int>(l.seen));
      sqlite3_bind_int(s, 4, static_cast<int>(l.nlink));
      NS_RETURN_IF_ERROR(Step(s, "store link group"));
    }
    NS_RETURN_IF_ERROR(WriteMetadata(b));
    return StoreState(cp);
  }

  ns::Status WriteMetadata(const Batch& b) {
    auto i64 = [](uint64_t v) { return static_cast<sqlite3_int64>(v); };
    auto text = [](sqlite3_stmt* st, int idx, const std::string& v) {
      sqlite3_bind_text(st, idx, v.data(), static_cast<int>(v.size()),
                        SQLITE_STATIC);
    };
    auto blob = [](sqlite3_stmt* st, int idx, const std::string& v) {
      sqlite3_bind_blob(st, idx, v.data(), static_cast<int>(v.size()),
                        SQLITE_STATIC);
    };
    sqlite3_stmt* s = ins_ace_.get();
    for (const AceRow& a : b.aces) {
      sqlite3_bind_int64(s, 1, i64(a.ino));
      sqlite3_bind_int(s, 2, static_cast<int>(a.pos));
      sqlite3_bind_int(s, 3, static_cast<int>(a.type));
      sqlite3_bind_int64(s, 4, a.flags);
      sqlite3_bind_int64(s, 5, a.mask);
      sqlite3_bind_int(s, 6, static_cast<int>(a.who_kind));
      sqlite3_bind_int64(s, 7, a.who_id);
      NS_RETURN_IF_ERROR(Step(s, "insert ace"));
    }
    s = ins_xattr_.get();
    for (const XattrRow& x : b.xattrs) {
      sqlite3_bind_int64(s, 1, i64(x.ino));
      text(s, 2, x.name);
      blob(s, 3, x.value);
      NS_RETURN_IF_ERROR(Step(s, "insert xattr"));
    }
    s = ins_dir_tag_.get();
    for (const DirTagRow& d : b.dir_tags) {
      sqlite3_bind_int64(s, 1, i64(d.ino));
      sqlite3_bind_int64(s, 2, i64(d.origin));
      NS_RETURN_IF_ERROR(Step(s, "insert dir_tags"));
    }
    s = ins_tag_.get();
    for (const TagRow& t : b.tags) {
      sqlite3_bind_int64(s, 1, i64(t.origin));
      text(s, 2, t.name);
      blob(s, 3, t.value);
      NS_RETURN_IF_ERROR(Step(s, "insert tag"));
    }
    s = ins_checksum_.get();
    for (const ChecksumRow& c : b.checksums) {
      sqlite3_bind_int64(s, 1, i64(c.ino));
      sqlite3_bind_int(s, 2, static_cast<int>(c.type));
      text(s, 3, c.value);
      NS_RETURN_IF_ERROR(Step(s, "insert checksum"));
    }
    s = ins_location_.get();
    for (const LocationRow& l : b.locations) {
      sqlite3_bind_int64(s, 1, i64(l.ino));
      sqlite3_bind_int(s, 2, static_cast<int>(l.type));
      text(s, 3, l.location);
      sqlite3_bind_int64(s, 4, l.added_ns);
      NS_RETURN_IF_ERROR(Step(s, "insert location"));
    }
    return ns::Status::Ok();
  }

  std::string path_;
  bool dry_run_;
  bool exists_;
  std::unique_ptr<sqlite3, SqliteCloser> db_;
  RowInsert ins_inode_, ins_dirent_;
  std::vector<const InodeRow*> inode_order_;  // WriteBatch's, kept for reuse
  Stmt ins_symlink_, put_link_;
  Stmt ins_ace_, ins_xattr_, ins_dir_tag_, ins_tag_, ins_checksum_,
      ins_location_;
};

// A database file the import creates gets 16 KiB pages, not SQLite's
// default 4 KiB: a quarter as many pages to allocate, fill and link per
// row appended, and a quarter as many B-tree pages for the final index
// sorts to write (measured on the Contents index: the two dirents index
// builds take about 20% less CPU, the inserts a few per cent). A file's
// page size is fixed once its first page is written, here by switching it
// to WAL (the namespace's journal, which libnamespace sets again), so it
// is set before libnamespace creates the schema; an existing namespace
// keeps its own.
constexpr int kNewFilePageSize = 16384;

ns::Status CreateWithPageSize(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  std::unique_ptr<sqlite3, SqliteCloser> db(raw);
  if (rc != SQLITE_OK) {
    return ns::Status::Unavailable("create " + path,
                                   raw ? sqlite3_errmsg(raw) : "no memory");
  }
  const std::string sql = fmt::format(
      "PRAGMA page_size = {}; PRAGMA journal_mode = WAL;", kNewFilePageSize);
  if (sqlite3_exec(db.get(), sql.c_str(), nullptr, nullptr, nullptr) !=
      SQLITE_OK) {
    return ns::Status::IOError("create " + path, sqlite3_errmsg(db.get()));
  }
  return ns::Status::Ok();
}

}  // namespace

ns::Result<std::unique_ptr<Writer>> OpenSqliteWriter(const std::string& path,
                                                     bool dry_run) {
  struct stat st {};
  bool exists = ::stat(path.c_str(), &st) == 0;
  const std::string uri = "sqlite://" + path;
  // No allocation statistics: they take a global mutex on every malloc of
  // SQLite's. Only takes effect before SQLite's first use in the process
  // (ns-migrate's case); later it is refused and changes nothing.
  (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  if (!exists && !dry_run) {
    ns::Status made = CreateWithPageSize(path);
    if (made.ok()) made = ns::InitSchema(uri);
    if (!made.ok()) {
      // Nothing half-made left behind: the file did not exist before.
      for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
        ::unlink((path + suffix).c_str());
      }
      return made;
    }
    exists = true;
  }
  if (exists) {
    NS_ASSIGN_OR_RETURN(ns::SchemaState st2, ns::ReadSchemaState(uri));
    if (st2.version == 0) {
      if (dry_run)
        return ns::Status::NotFound(uri,
                                    "no namespace schema: run nsadmin init");
      NS_RETURN_IF_ERROR(ns::InitSchema(uri));
    } else if (st2.version < st2.latest) {
      return ns::Status::SchemaTooOld(uri, "run nsadmin upgrade first");
    } else if (st2.version > st2.latest) {
      return ns::Status::SchemaTooNew(uri, "this ns-migrate is older");
    }
  }
  auto w = std::make_unique<SqliteWriter>(path, dry_run, exists);
  NS_RETURN_IF_ERROR(w->Open());
  return std::unique_ptr<Writer>(std::move(w));
}

}  // namespace nsmigrate
