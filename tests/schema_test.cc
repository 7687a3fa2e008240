// The versioned schema: init at every version, upgrade from every earlier
// version, refusal of too old / too new schemas (issue 2, item 3), on both
// dialects.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "libnamespace/include/namespace/client_records.h"
#include "libnamespace/include/namespace/schema.h"
#include "tests/test_util.h"

namespace ns::testing {
namespace {

class SchemaTest : public ::testing::TestWithParam<std::string> {
 protected:
  const std::string& dialect() const { return GetParam(); }

  std::string Fresh() {
    std::string uri = FreshUri(GetParam());
    EXPECT_FALSE(uri.empty());
    return uri;
  }

  // The table layout as the database describes it, for comparing a database
  // upgraded from an old version with one created at the latest.
  std::vector<std::string> Layout(const std::string& uri) {
    std::string error;
    std::unique_ptr<RawDb> db = RawDb::Open(uri, &error);
    if (!db) {
      ADD_FAILURE() << error;
      return {};
    }
    std::vector<std::string> out;
    std::vector<std::string> queries;
    if (dialect() == "sqlite") {
      queries = {
          "SELECT type, name, tbl_name, sql FROM sqlite_master "
          "WHERE name NOT LIKE 'sqlite_autoindex%' ORDER BY type, name"};
    } else {
      queries = {
          "SELECT table_name, column_name, data_type, column_default, "
          "is_nullable, collation_name FROM information_schema.columns "
          "WHERE table_schema = 'public' ORDER BY table_name, column_name",
          "SELECT indexname, indexdef FROM pg_indexes "
          "WHERE schemaname = 'public' ORDER BY indexname",
          "SELECT sequence_name, start_value, increment FROM "
          "information_schema.sequences WHERE sequence_schema = 'public' "
          "ORDER BY sequence_name",
          "SELECT c.relname, coalesce(array_to_string(c.reloptions, ','), '') "
          "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
          "WHERE n.nspname = 'public' ORDER BY c.relname",
          "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
          "WHERE connamespace = 'public'::regnamespace ORDER BY conname"};
    }
    for (const std::string& q : queries) {
      std::vector<std::string> rows = db->QueryRows(q, &error);
      if (!error.empty()) {
        ADD_FAILURE() << q << ": " << error;
        return {};
      }
      out.insert(out.end(), rows.begin(), rows.end());
    }
    return out;
  }

  std::vector<int64_t> RecordedVersions(const std::string& uri) {
    std::string error;
    std::unique_ptr<RawDb> db = RawDb::Open(uri, &error);
    if (!db) {
      ADD_FAILURE() << error;
      return {};
    }
    std::vector<int64_t> v =
        db->QueryInts("SELECT version FROM schema_version ORDER BY version", &error);
    EXPECT_EQ(error, "");
    return v;
  }

  // Uses a namespace a little: every operation kind touches its tables.
  void Exercise(Namespace& ns) {
    const Credentials root = Credentials::Root();
    ASSERT_OK_AND_ASSIGN(Attr d, ns.Mkdir(root, ns.Root(), "dir", 0755));
    ASSERT_OK_AND_ASSIGN(Attr f, ns.Create(root, d.ino, "file", 0644));
    ASSERT_OK(ns.Symlink(root, d.ino, "link", "file"));
    ASSERT_OK(ns.Link(root, f.ino, ns.Root(), "hard"));
    ASSERT_OK(ns.Rename(root, d.ino, "file", d.ino, "moved"));
    UnlinkOptions retain;
    retain.retain_if_last = true;
    ASSERT_OK(ns.Unlink(root, ns.Root(), "hard", retain));
    ASSERT_OK_AND_ASSIGN(UnlinkResult u, ns.Unlink(root, d.ino, "moved", retain));
    EXPECT_TRUE(u.retained);
    ASSERT_OK(ns.ReleaseOrphan(f.ino));
    // A small file's bytes in the database (version 8), gone with it.
    ASSERT_OK_AND_ASSIGN(Attr small, ns.Create(root, ns.Root(), "small", 0644));
    ASSERT_OK(ns.WriteInline(root, small.ino, 0, "bytes", 1).status());
    ASSERT_OK_AND_ASSIGN(std::optional<std::string> bytes,
                         ns.ReadInline(small.ino));
    EXPECT_EQ(bytes, std::optional<std::string>("bytes"));
    ASSERT_OK(ns.Unlink(root, ns.Root(), "small"));
    EXPECT_STATUS(ns.ReadInline(small.ino), Stale);
    ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(ns, d.ino));
    EXPECT_EQ(names, std::vector<std::string>{"link"});
    ASSERT_OK_AND_ASSIGN(Attr link, ns.Resolve(root, "/dir/link", false));
    EXPECT_EQ(link.type, FileType::kSymlink);
    // NFSv4 client records (version 4).
    ClientRecords records(&ns);
    ASSERT_OK_AND_ASSIGN(EpochStart e, records.StartEpoch());
    ClientRecord rec;
    rec.owner = "schema-test";
    rec.principal = "sys:0";
    ASSERT_OK(records.Confirm(rec, e.epoch));
    ASSERT_OK(records.ReclaimComplete(rec.owner, e.epoch));
    ASSERT_OK_AND_ASSIGN(std::vector<ClientRecord> all, records.List());
    ASSERT_EQ(all.size(), 1u);
    ASSERT_TRUE(all[0].reclaim_epoch);
    EXPECT_EQ(*all[0].reclaim_epoch, e.epoch);
  }
};

std::vector<int64_t> OneTo(int n) {
  std::vector<int64_t> v;
  for (int i = 1; i <= n; ++i) v.push_back(i);
  return v;
}

TEST_P(SchemaTest, LatestVersionIsKnownAndInitRecordsEveryMigration) {
  const int latest = LatestSchemaVersion();
  ASSERT_GE(latest, 2) << "the upgrade tests below need at least two versions";
  const std::string uri = Fresh();
  ASSERT_OK(InitSchema(uri));
  ASSERT_OK_AND_ASSIGN(SchemaState st, ReadSchemaState(uri));
  EXPECT_EQ(st.version, latest);
  EXPECT_EQ(st.latest, latest);
  EXPECT_EQ(RecordedVersions(uri), OneTo(latest));
  ASSERT_OK_AND_ASSIGN(auto ns, Namespace::Open(uri));
  Exercise(*ns);
}

TEST_P(SchemaTest, UpgradeFromEveryEarlierVersion) {
  const int latest = LatestSchemaVersion();
  const std::string reference = Fresh();
  ASSERT_OK(InitSchema(reference));
  const std::vector<std::string> want = Layout(reference);
  ASSERT_FALSE(want.empty());

  for (int v = 1; v < latest; ++v) {
    SCOPED_TRACE("from version " + std::to_string(v));
    const std::string uri = Fresh();
    ASSERT_OK(InitSchema(uri, v));
    ASSERT_OK_AND_ASSIGN(SchemaState st, ReadSchemaState(uri));
    EXPECT_EQ(st.version, v);
    EXPECT_EQ(st.latest, latest);
    EXPECT_EQ(RecordedVersions(uri), OneTo(v));

    // Daemons and tools refuse it and say what to do.
    Result<std::unique_ptr<Namespace>> old = Namespace::Open(uri);
    ASSERT_STATUS(old, SchemaTooOld);
    EXPECT_NE(old.status().ToString().find("nsadmin upgrade"), std::string::npos)
        << old.status().ToString();
    // create_if_missing never touches an older schema.
    ASSERT_STATUS(Namespace::Open(uri, TestOptions()), SchemaTooOld);
    ASSERT_OK_AND_ASSIGN(SchemaState still, ReadSchemaState(uri));
    EXPECT_EQ(still.version, v);
    // Init refuses an initialised database whatever its version.
    EXPECT_STATUS(InitSchema(uri), Exists);

    ASSERT_OK_AND_ASSIGN(int was, UpgradeSchema(uri));
    EXPECT_EQ(was, v);
    ASSERT_OK_AND_ASSIGN(SchemaState now, ReadSchemaState(uri));
    EXPECT_EQ(now.version, latest);
    EXPECT_EQ(RecordedVersions(uri), OneTo(latest));
    EXPECT_EQ(Layout(uri), want) << "upgraded layout differs from a fresh one";

    ASSERT_OK_AND_ASSIGN(auto ns, Namespace::Open(uri));
    Exercise(*ns);
    ns.reset();
    // Upgrading a current database is a no-op that reports where it was.
    ASSERT_OK_AND_ASSIGN(int again, UpgradeSchema(uri));
    EXPECT_EQ(again, latest);
  }
}

TEST_P(SchemaTest, UpgradeOneStepAtATime) {
  const int latest = LatestSchemaVersion();
  const std::string uri = Fresh();
  ASSERT_OK(InitSchema(uri, 1));
  for (int to = 2; to <= latest; ++to) {
    ASSERT_OK_AND_ASSIGN(int was, UpgradeSchema(uri, to));
    EXPECT_EQ(was, to - 1);
    ASSERT_OK_AND_ASSIGN(SchemaState st, ReadSchemaState(uri));
    EXPECT_EQ(st.version, to);
  }
  // Forward only.
  EXPECT_STATUS(UpgradeSchema(uri, 1), Invalid);
  ASSERT_OK_AND_ASSIGN(auto ns, Namespace::Open(uri));
  Exercise(*ns);
}

TEST_P(SchemaTest, NewerSchemaIsRefused) {
  const std::string uri = Fresh();
  {
    ASSERT_OK_AND_ASSIGN(auto ns, Namespace::Open(uri, TestOptions()));
  }
  std::string error;
  std::unique_ptr<RawDb> db = RawDb::Open(uri, &error);
  ASSERT_TRUE(db) << error;
  const int future = LatestSchemaVersion() + 1;
  ASSERT_TRUE(db->Exec("INSERT INTO schema_version (version, name, applied_ns) VALUES (" +
                           std::to_string(future) + ", 'from_the_future', 0)",
                       &error))
      << error;
  db.reset();
  ASSERT_STATUS(Namespace::Open(uri), SchemaTooNew);
  ASSERT_STATUS(Namespace::Open(uri, TestOptions()), SchemaTooNew);
  EXPECT_STATUS(UpgradeSchema(uri), SchemaTooNew);
  EXPECT_STATUS(InitSchema(uri), Exists);
  ASSERT_OK_AND_ASSIGN(SchemaState st, ReadSchemaState(uri));
  EXPECT_EQ(st.version, future);
}

TEST_P(SchemaTest, InitTwiceIsExists) {
  const std::string uri = Fresh();
  ASSERT_OK(InitSchema(uri));
  EXPECT_STATUS(InitSchema(uri), Exists);
  EXPECT_STATUS(InitSchema(uri, 1), Exists);
  ASSERT_OK_AND_ASSIGN(SchemaState st, ReadSchemaState(uri));
  EXPECT_EQ(st.version, LatestSchemaVersion());
  ASSERT_OK_AND_ASSIGN(auto ns, Namespace::Open(uri));
  Exercise(*ns);
}

TEST_P(SchemaTest, BadTargetsAreInvalid) {
  const std::string uri = Fresh();
  EXPECT_STATUS(InitSchema(uri, LatestSchemaVersion() + 1), Invalid);
  EXPECT_STATUS(InitSchema(uri, -1), Invalid);
  // Nothing was created by the refused init.
  EXPECT_STATUS(UpgradeSchema(uri), NotFound);
  ASSERT_OK(InitSchema(uri, 1));
  EXPECT_STATUS(UpgradeSchema(uri, LatestSchemaVersion() + 1), Invalid);
  ASSERT_OK_AND_ASSIGN(SchemaState st, ReadSchemaState(uri));
  EXPECT_EQ(st.version, 1);
}

TEST_P(SchemaTest, OpenOfAnEmptyDatabaseWithoutCreateIsNotFound) {
  const std::string uri = Fresh();
  Result<std::unique_ptr<Namespace>> r = Namespace::Open(uri);
  ASSERT_STATUS(r, NotFound);
  EXPECT_NE(r.status().ToString().find("nsadmin init"), std::string::npos)
      << r.status().ToString();
  EXPECT_STATUS(UpgradeSchema(uri), NotFound);
  if (dialect() == "sqlite") {
    EXPECT_FALSE(std::filesystem::exists(SqlitePath(uri)))
        << "Open without create_if_missing created " << SqlitePath(uri);
    EXPECT_FALSE(std::filesystem::exists(SqlitePath(uri) + "-wal"));
  } else {
    ASSERT_OK_AND_ASSIGN(SchemaState st, ReadSchemaState(uri));
    EXPECT_EQ(st.version, 0);
    std::string error;
    std::unique_ptr<RawDb> db = RawDb::Open(uri, &error);
    ASSERT_TRUE(db) << error;
    std::vector<int64_t> n = db->QueryInts(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public'",
        &error);
    ASSERT_EQ(error, "");
    EXPECT_EQ(n, std::vector<int64_t>{0}) << "a refused open created relations";
  }
  // With create_if_missing it becomes a namespace.
  ASSERT_OK_AND_ASSIGN(auto ns, Namespace::Open(uri, TestOptions()));
  Exercise(*ns);
  ns.reset();
  ASSERT_OK_AND_ASSIGN(auto again, Namespace::Open(uri));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, ListNames(*again, again->Root()));
  EXPECT_EQ(names, std::vector<std::string>{"dir"});
}

TEST(SqliteSchemaTest, EmptyFileIsAnEmptyDatabase) {
  const std::string uri = FreshUri("sqlite");
  ASSERT_FALSE(uri.empty());
  { std::ofstream(SqlitePath(uri)); }  // 0 bytes: a valid, empty SQLite file
  ASSERT_STATUS(Namespace::Open(uri), NotFound);
  EXPECT_EQ(ReadFileBytes(SqlitePath(uri)).size(), 0u)
      << "a refused open wrote to the file";
  ASSERT_OK_AND_ASSIGN(SchemaState st, ReadSchemaState(uri));
  EXPECT_EQ(st.version, 0);
  ASSERT_OK(InitSchema(uri));
  ASSERT_OK(Namespace::Open(uri));
}

INSTANTIATE_TEST_SUITE_P(Backends, SchemaTest, ::testing::ValuesIn(Dialects()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace ns::testing
