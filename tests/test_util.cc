#include "tests/test_util.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "libnamespace/include/namespace/partitions.h"

namespace ns::testing {
namespace {

std::mutex g_mu;
std::unique_ptr<PgCluster> g_pg;
bool g_pg_tried = false;
std::string g_pg_error;
std::string g_scratch;
std::atomic<int> g_next_file{0};

}  // namespace

PgCluster* SharedPg(std::string* error) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_pg_tried) {
    g_pg_tried = true;
    g_pg = PgCluster::Create(&g_pg_error);
    if (!g_pg) {
      g_pg_error = "cannot start the throwaway PostgreSQL cluster: " + g_pg_error;
    }
  }
  if (!g_pg && error) *error = g_pg_error;
  return g_pg.get();
}

const std::string& ScratchDir() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_scratch.empty()) {
    char tmpl[] = "/tmp/nstest-XXXXXX";
    if (::mkdtemp(tmpl) != nullptr) g_scratch = tmpl;
  }
  return g_scratch;
}

void TestEnvironment::TearDown() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_pg.reset();
  if (!g_scratch.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(g_scratch, ec);
    g_scratch.clear();
  }
}

std::string FreshUri(const std::string& dialect) {
  if (dialect == "sqlite") {
    const std::string& dir = ScratchDir();
    if (dir.empty()) {
      ADD_FAILURE() << "cannot create a scratch directory under /tmp";
      return {};
    }
    return "sqlite://" + dir + "/ns" + std::to_string(g_next_file++) + ".db";
  }
  if (dialect == "postgresql" || dialect == "postgresql_partitioned") {
    std::string error;
    PgCluster* pg = SharedPg(&error);
    if (pg == nullptr) {
      ADD_FAILURE() << error;
      return {};
    }
    std::string uri = pg->NewDatabaseUri();
    if (dialect == "postgresql" || uri.empty()) return uri;
    const Status s = InitPartitionedSchema(uri, 4);
    if (!s.ok()) {
      ADD_FAILURE() << "init --partitions 4: " << s.ToString();
      return {};
    }
    return uri;
  }
  ADD_FAILURE() << "unknown dialect " << dialect;
  return {};
}

NamespaceOptions TestOptions() {
  NamespaceOptions o;
  o.create_if_missing = true;
  o.durable = false;
  return o;
}

::testing::AssertionResult IsOk(const Status& s) {
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected OK, got " << s.ToString();
}

::testing::AssertionResult HasCode(const Status& s,
                                   bool (Status::*pred)() const,
                                   const char* name) {
  if ((s.*pred)()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "expected " << name << ", got "
         << (s.ok() ? std::string("OK") : s.ToString());
}

Result<std::vector<DirEntry>> ListAll(Namespace& ns, InodeId dir,
                                      uint32_t page_size, bool with_attrs) {
  std::vector<DirEntry> all;
  ReadDirRequest req;
  req.max_entries = page_size;
  req.with_attrs = with_attrs;
  bool have_verifier = false;
  uint64_t verifier = 0;
  for (int pages = 0;; ++pages) {
    if (pages > 10'000'000) return Status::Invalid("ListAll", "endless listing");
    Result<DirPage> page = ns.ReadDir(Credentials::Root(), dir, req);
    if (!page.ok()) return page.status();
    if (have_verifier && page->verifier != verifier) {
      return Status::Invalid("ListAll", "verifier changed between pages");
    }
    have_verifier = true;
    verifier = page->verifier;
    if (page->entries.size() > page_size) {
      return Status::Invalid("ListAll", "page larger than max_entries");
    }
    if (page->entries.empty() && !page->eof) {
      return Status::Invalid("ListAll", "empty page without eof");
    }
    for (DirEntry& e : page->entries) {
      if (e.cookie <= 2) return Status::Invalid("ListAll", "cookie <= 2");
      if (e.cookie <= req.cookie) {
        return Status::Invalid("ListAll", "cookies not ascending");
      }
      if (with_attrs && !e.attr.has_value()) {
        return Status::Invalid("ListAll", "with_attrs but no attr");
      }
      req.cookie = e.cookie;
      all.push_back(std::move(e));
    }
    req.verifier = verifier;
    if (page->eof) break;
  }
  return all;
}

Result<std::vector<std::string>> ListNames(Namespace& ns, InodeId dir) {
  Result<std::vector<DirEntry>> all = ListAll(ns, dir);
  if (!all.ok()) return all.status();
  std::vector<std::string> names;
  for (const DirEntry& e : *all) names.push_back(e.name);
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

void AppendAttr(std::ostringstream& out, const Attr& a) {
  out << " ino=" << a.ino << " type=" << static_cast<int>(a.type)
      << " mode=" << std::oct << a.mode << std::dec << " nlink=" << a.nlink
      << " uid=" << a.uid << " gid=" << a.gid << " size=" << a.size
      << " rdev=" << a.rdev_major << "," << a.rdev_minor
      << " mtime=" << a.mtime << " ctime=" << a.ctime << " btime=" << a.btime
      << " change=" << a.change << " gen=" << a.generation
      << " parent=" << a.parent;
}

Status SnapshotDir(Namespace& ns, InodeId dir, const std::string& path,
                   int depth, std::ostringstream& out) {
  if (depth > 64) return Status::Invalid("Snapshot", "tree deeper than 64");
  Result<std::vector<DirEntry>> entries = ListAll(ns, dir);
  if (!entries.ok()) return entries.status();
  std::vector<DirEntry> sorted = std::move(entries).value();
  std::sort(sorted.begin(), sorted.end(),
            [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  for (const DirEntry& e : sorted) {
    const std::string child = path + "/" + e.name;
    Result<Attr> a = ns.GetAttr(Credentials::Root(), e.ino);
    if (!a.ok()) return a.status();
    out << child << " cookie=" << e.cookie;
    AppendAttr(out, *a);
    if (a->type == FileType::kSymlink) {
      Result<std::string> t = ns.ReadLink(Credentials::Root(), e.ino);
      if (!t.ok()) return t.status();
      out << " -> " << *t;
    }
    out << "\n";
    if (a->type == FileType::kDirectory) {
      NS_RETURN_IF_ERROR(SnapshotDir(ns, e.ino, child, depth + 1, out));
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> Snapshot(Namespace& ns) {
  std::ostringstream out;
  Result<Attr> root = ns.GetAttr(Credentials::Root(), ns.Root());
  if (!root.ok()) return root.status();
  out << "/";
  AppendAttr(out, *root);
  out << "\n";
  NS_RETURN_IF_ERROR(SnapshotDir(ns, ns.Root(), "", 0, out));
  Result<FsStats> st = ns.StatFs(Credentials::Root());
  if (!st.ok()) return st.status();
  out << "statfs files=" << st->files << " bytes=" << st->bytes << "\n";
  return out.str();
}

// ---- fixture ----------------------------------------------------------------

TimeNs WallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void DialectTest::SetUp() {
  uri_ = FreshUri(GetParam());
  ASSERT_FALSE(uri_.empty());
  Result<std::unique_ptr<Namespace>> ns = Namespace::Open(uri_, TestOptions());
  ASSERT_TRUE(ns.ok()) << "Namespace::Open(" << uri_
                       << "): " << ns.status().ToString();
  ns_ = std::move(ns).value();
}

void DialectTest::TearDown() { ns_.reset(); }

Attr DialectTest::GetAttrOrFail(InodeId ino) {
  Result<Attr> a = ns_->GetAttr(root_, ino);
  if (!a.ok()) {
    ADD_FAILURE() << "GetAttr(" << ino << "): " << a.status().ToString();
    return Attr{};
  }
  return *a;
}

Attr DialectTest::LookupOrFail(InodeId parent, const std::string& name) {
  Result<Attr> a = ns_->Lookup(root_, parent, name);
  if (!a.ok()) {
    ADD_FAILURE() << "Lookup(" << parent << ", " << name
                  << "): " << a.status().ToString();
    return Attr{};
  }
  return *a;
}

InodeId DialectTest::MkdirOrFail(InodeId parent, const std::string& name,
                                 uint32_t mode) {
  Result<Attr> a = ns_->Mkdir(root_, parent, name, mode);
  if (!a.ok()) {
    ADD_FAILURE() << "Mkdir(" << parent << ", " << name
                  << "): " << a.status().ToString();
    return 0;
  }
  return a->ino;
}

InodeId DialectTest::CreateOrFail(InodeId parent, const std::string& name,
                                  uint32_t mode) {
  Result<Attr> a = ns_->Create(root_, parent, name, mode);
  if (!a.ok()) {
    ADD_FAILURE() << "Create(" << parent << ", " << name
                  << "): " << a.status().ToString();
    return 0;
  }
  return a->ino;
}

void DialectTest::ExpectDirNlinks(InodeId dir) {
  Result<std::vector<DirEntry>> entries = ListAll(*ns_, dir);
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  uint32_t subdirs = 0;
  for (const DirEntry& e : *entries) {
    if (e.type != FileType::kDirectory) continue;
    ++subdirs;
    Attr child = GetAttrOrFail(e.ino);
    EXPECT_EQ(child.parent, dir) << "'..' of " << e.name;
    ExpectDirNlinks(e.ino);
  }
  EXPECT_EQ(GetAttrOrFail(dir).nlink, 2 + subdirs) << "directory " << dir;
}

// ---- raw SQL ---------------------------------------------------------------

std::string SqlitePath(const std::string& uri) {
  std::string_view u = uri;
  if (u.starts_with("sqlite://")) return std::string(u.substr(9));
  if (u.starts_with("sqlite:")) return std::string(u.substr(7));
  return uri;
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

class SqliteRawDb : public RawDb {
 public:
  explicit SqliteRawDb(sqlite3* db) : db_(db) {}
  ~SqliteRawDb() override { sqlite3_close(db_); }

  std::vector<std::string> QueryRows(const std::string& sql,
                                     std::string* error) override {
    std::vector<std::string> rows;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      *error = sqlite3_errmsg(db_);
      return rows;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        if (i) row += "|";
        const unsigned char* t = sqlite3_column_text(st, i);
        row += t ? reinterpret_cast<const char*>(t) : "NULL";
      }
      rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) *error = sqlite3_errmsg(db_);
    sqlite3_finalize(st);
    return rows;
  }

  std::vector<int64_t> QueryInts(const std::string& sql,
                                 std::string* error) override {
    std::vector<int64_t> out;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      *error = sqlite3_errmsg(db_);
      return out;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      out.push_back(sqlite3_column_int64(st, 0));
    }
    if (rc != SQLITE_DONE) *error = sqlite3_errmsg(db_);
    sqlite3_finalize(st);
    return out;
  }

  bool Exec(const std::string& sql, std::string* error) override {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
      *error = msg ? msg : "sqlite3_exec failed";
      sqlite3_free(msg);
      return false;
    }
    return true;
  }

 private:
  sqlite3* db_;
};

class PgRawDb : public RawDb {
 public:
  explicit PgRawDb(const std::string& uri) : conn_(uri) {}

  std::vector<std::string> QueryRows(const std::string& sql,
                                     std::string* error) override {
    std::vector<std::string> rows;
    try {
      pqxx::nontransaction tx(conn_);
      pqxx::result r = tx.exec(sql);
      for (const auto& row : r) {
        std::string line;
        for (pqxx::row::size_type i = 0; i < row.size(); ++i) {
          if (i) line += "|";
          line += row[i].is_null() ? "NULL" : row[i].c_str();
        }
        rows.push_back(std::move(line));
      }
    } catch (const std::exception& e) {
      *error = e.what();
    }
    return rows;
  }

  std::vector<int64_t> QueryInts(const std::string& sql,
                                 std::string* error) override {
    std::vector<int64_t> out;
    try {
      pqxx::nontransaction tx(conn_);
      pqxx::result r = tx.exec(sql);
      for (const auto& row : r) out.push_back(row[0].as<int64_t>());
    } catch (const std::exception& e) {
      *error = e.what();
    }
    return out;
  }

  bool Exec(const std::string& sql, std::string* error) override {
    try {
      pqxx::work tx(conn_);
      tx.exec(sql);
      tx.commit();
      return true;
    } catch (const std::exception& e) {
      *error = e.what();
      return false;
    }
  }

 private:
  pqxx::connection conn_;
};

}  // namespace

std::unique_ptr<RawDb> RawDb::Open(const std::string& uri,
                                   std::string* error) {
  if (uri.starts_with("sqlite:")) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(SqlitePath(uri).c_str(), &db,
                             SQLITE_OPEN_READWRITE, nullptr);
    if (rc != SQLITE_OK) {
      *error = db ? sqlite3_errmsg(db) : "sqlite3_open_v2 failed";
      sqlite3_close(db);
      return nullptr;
    }
    sqlite3_busy_timeout(db, 10000);
    return std::make_unique<SqliteRawDb>(db);
  }
  try {
    return std::make_unique<PgRawDb>(uri);
  } catch (const std::exception& e) {
    *error = e.what();
    return nullptr;
  }
}

}  // namespace ns::testing
