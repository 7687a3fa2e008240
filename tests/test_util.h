#pragma once

// Shared helpers of the cross-component tests: the per-binary PostgreSQL
// cluster and scratch directory, fresh namespaces per dialect, Status
// assertions, full directory listings, tree snapshots, and raw SQL access to
// a namespace database for invariant checks the API cannot express.

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "libnamespace/include/namespace/namespace.h"
#include "libnamespace/include/namespace/status.h"
#include "libnamespace/include/namespace/types.h"
#include "tests/pg_harness.h"

namespace ns::testing {

// ---- environment -----------------------------------------------------------

// The cluster of this test binary, started on first use (so a binary run
// with a sqlite-only filter pays nothing). nullptr with *error set if it
// cannot be started; callers FAIL with that reason (never skip).
PgCluster* SharedPg(std::string* error);

// A directory for SQLite files of this binary, removed when it ends.
const std::string& ScratchDir();

// Registered by test_main.cc: tears the cluster and scratch dir down.
class TestEnvironment : public ::testing::Environment {
 public:
  void TearDown() override;
};

// The dialects every parameterized suite runs over.
inline const std::vector<std::string>& Dialects() {
  static const std::vector<std::string> d = {"sqlite", "postgresql"};
  return d;
}
// For INSTANTIATE_TEST_SUITE_P(..., ::testing::PrintToStringParamName()).

// Dialects() plus "postgresql_partitioned": PostgreSQL with the big tables
// in 4 hash partitions (partitions.h), for the suites whose semantics must
// hold on either layout (conformance, metadata, concurrency, admin).
inline const std::vector<std::string>& DialectsWithPartitions() {
  static const std::vector<std::string> d = {"sqlite", "postgresql",
                                             "postgresql_partitioned"};
  return d;
}

// A URI naming a new, empty database of `dialect`: a not yet existing file
// for sqlite, a freshly created database for postgresql; for
// postgresql_partitioned one already initialised with 4 partitions per big
// table. "" (and a recorded failure) if that cannot be had.
std::string FreshUri(const std::string& dialect);

// create_if_missing = true, durable = false.
NamespaceOptions TestOptions();

// ---- Status assertions -----------------------------------------------------

inline Status StatusOf(const Status& s) { return s; }
template <typename T>
Status StatusOf(const Result<T>& r) {
  return r.status();
}

::testing::AssertionResult IsOk(const Status& s);
::testing::AssertionResult HasCode(const Status& s,
                                   bool (Status::*pred)() const,
                                   const char* name);

#define NS_STATUS_IS_(expr, Code) \
  ::ns::testing::HasCode(::ns::testing::StatusOf(expr), &::ns::Status::Is##Code, #Code)
// EXPECT_STATUS(ns->Lookup(...), NotFound)
#define EXPECT_STATUS(expr, Code) EXPECT_TRUE(NS_STATUS_IS_(expr, Code)) << #expr
#define ASSERT_STATUS(expr, Code) ASSERT_TRUE(NS_STATUS_IS_(expr, Code)) << #expr
#define EXPECT_OK(expr) \
  EXPECT_TRUE(::ns::testing::IsOk(::ns::testing::StatusOf(expr))) << #expr
#define ASSERT_OK(expr) \
  ASSERT_TRUE(::ns::testing::IsOk(::ns::testing::StatusOf(expr))) << #expr

#define NS_TEST_CONCAT_INNER_(a, b) a##b
#define NS_TEST_CONCAT_(a, b) NS_TEST_CONCAT_INNER_(a, b)
// ASSERT_OK_AND_ASSIGN(Attr a, ns->Create(...));
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(NS_TEST_CONCAT_(ns_test_r_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, expr)                      \
  auto tmp = (expr);                                                    \
  ASSERT_TRUE(tmp.ok()) << #expr << ": " << tmp.status().ToString(); \
  lhs = std::move(tmp).value()

// ---- listings and snapshots ------------------------------------------------

// Every entry of `dir`, following cookies and the verifier page by page.
// Also checks what every listing must satisfy (cookies > 2 and ascending,
// one verifier, no empty page before eof) and reports violations as an
// Invalid status naming them.
Result<std::vector<DirEntry>> ListAll(Namespace& ns, InodeId dir,
                                      uint32_t page_size = 1000,
                                      bool with_attrs = false);

// Names of ListAll(), sorted.
Result<std::vector<std::string>> ListNames(Namespace& ns, InodeId dir);

// A text rendering of the whole tree (every path with ino, type, mode,
// nlink, uid, gid, size, rdev, mtime, ctime, btime, change, parent; symlink
// targets) plus the StatFs figures. Two snapshots compare equal iff nothing
// visible changed (atime is left out).
Result<std::string> Snapshot(Namespace& ns);

// ---- fixture ----------------------------------------------------------------

// A test on a fresh namespace of the dialect given as parameter, opened with
// TestOptions(). Helpers record a failure (and return 0 / Attr{}) when the
// operation they wrap fails, so tests read as plain steps.
class DialectTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override;
  void TearDown() override;

  const std::string& dialect() const { return GetParam(); }
  bool is_pg() const { return GetParam() != "sqlite"; }

  Attr GetAttrOrFail(InodeId ino);
  Attr LookupOrFail(InodeId parent, const std::string& name);
  InodeId MkdirOrFail(InodeId parent, const std::string& name,
                      uint32_t mode = 0755);
  InodeId CreateOrFail(InodeId parent, const std::string& name,
                       uint32_t mode = 0644);
  // Checks that nlink of every directory below `dir` (and dir) is 2 plus its
  // subdirectories and that Attr::parent of each subdirectory names it.
  void ExpectDirNlinks(InodeId dir);

  std::string uri_;
  std::unique_ptr<Namespace> ns_;
  const Credentials root_ = Credentials::Root();
};

// Current wall clock, ns since the epoch.
TimeNs WallNs();

// ---- raw SQL ---------------------------------------------------------------

// Direct access to the database behind a namespace URI (sqlite3 or libpqxx),
// for checks of the stored rows themselves.
class RawDb {
 public:
  static std::unique_ptr<RawDb> Open(const std::string& uri,
                                     std::string* error);
  virtual ~RawDb() = default;
  // The first column of every row, as integers.
  virtual std::vector<int64_t> QueryInts(const std::string& sql,
                                         std::string* error) = 0;
  // The rows, every column as text ("NULL" for NULL), joined by '|'.
  virtual std::vector<std::string> QueryRows(const std::string& sql,
                                             std::string* error) = 0;
  virtual bool Exec(const std::string& sql, std::string* error) = 0;
};

// The file path of a sqlite:// URI.
std::string SqlitePath(const std::string& uri);

// Reads a whole file ("" if missing).
std::string ReadFileBytes(const std::string& path);

}  // namespace ns::testing
