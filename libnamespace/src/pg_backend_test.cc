// Unit tests of the PostgreSQL backend that need no server: the exception
// translation (pg_errors) and how OpenPostgresBackend reports bad URIs and
// unreachable servers. Behaviour against a live server is covered by the
// backend-parameterized suites in tests/.

#include <gtest/gtest.h>

#include <pqxx/except>
#include <stdexcept>
#include <string>

#include "libnamespace/src/backend.h"
#include "libnamespace/src/pg_errors.h"

namespace ns {
namespace {

TEST(PgStatusTest, ConflictsAreRetried) {
  EXPECT_TRUE(PgStatus(pqxx::serialization_failure("could not serialize"), "x")
                  .IsRetry());
  EXPECT_TRUE(
      PgStatus(pqxx::deadlock_detected("deadlock detected"), "x").IsRetry());
  EXPECT_TRUE(PgStatus(pqxx::sql_error("e", "q", "40001"), "x").IsRetry());
  EXPECT_TRUE(PgStatus(pqxx::sql_error("e", "q", "40P01"), "x").IsRetry());
}

TEST(PgStatusTest, UniqueViolationIsExists) {
  EXPECT_TRUE(
      PgStatus(pqxx::unique_violation("dup", "q", "23505"), "x").IsExists());
  EXPECT_TRUE(PgStatus(pqxx::sql_error("dup", "q", "23505"), "x").IsExists());
  // Other integrity errors are not "the name is taken".
  EXPECT_TRUE(PgStatus(pqxx::not_null_violation("null", "q", "23502"), "x")
                  .IsIOError());
}

TEST(PgStatusTest, LostOrOverloadedServerIsUnavailable) {
  EXPECT_TRUE(
      PgStatus(pqxx::broken_connection("server closed"), "x").IsUnavailable());
  EXPECT_TRUE(
      PgStatus(pqxx::too_many_connections("too many"), "x").IsUnavailable());
  for (const char* state : {"57P01", "57P02", "57P03", "53000", "53100",
                            "53200", "53300", "08006", "08001"}) {
    EXPECT_TRUE(PgStatus(pqxx::sql_error("e", "q", state), "x").IsUnavailable())
        << state;
  }
}

TEST(PgStatusTest, TextTheEncodingCannotHoldIsInvalid) {
  EXPECT_TRUE(
      PgStatus(pqxx::data_exception("invalid byte sequence", "q", "22021"), "x")
          .IsInvalid());
}

TEST(PgStatusTest, InDoubtCommitIsAnIOErrorThatSaysSo) {
  Status s = PgStatus(pqxx::in_doubt_error("connection lost"), "pg commit");
  EXPECT_TRUE(s.IsIOError());
  EXPECT_NE(s.ToString().find("commit outcome unknown"), std::string::npos)
      << s.ToString();
}

TEST(PgStatusTest, EverythingElseIsIOErrorWithTheMessageOnOneLine) {
  Status s =
      PgStatus(pqxx::syntax_error("ERROR:  syntax error\nLINE 1: SELEC\n",
                                  "SELEC", "42601"),
               "pg get inode");
  EXPECT_TRUE(s.IsIOError());
  EXPECT_EQ(s.Context(), "pg get inode");
  EXPECT_EQ(s.ToString().find('\n'), std::string::npos) << s.ToString();
  EXPECT_NE(s.ToString().find("42601"), std::string::npos) << s.ToString();
  EXPECT_TRUE(PgStatus(std::runtime_error("boom"), "x").IsIOError());
  EXPECT_TRUE(
      PgStatus(pqxx::transaction_rollback("rolled back"), "x").IsIOError());
}

TEST(PgStatusTest, SqlStateIsReadFromSqlErrorsOnly) {
  EXPECT_EQ(PgSqlState(pqxx::sql_error("e", "q", "42P01")), "42P01");
  EXPECT_EQ(PgSqlState(pqxx::broken_connection("gone")), "");
  EXPECT_EQ(PgSqlState(std::runtime_error("x")), "");
}

TEST(PgGuardTest, CatchesEverything) {
  EXPECT_TRUE(PgGuard("x", [] { return Status::Ok(); }).ok());
  EXPECT_TRUE(PgGuard("x", []() -> Status {
                throw pqxx::unique_violation("dup", "q", "23505");
              }).IsExists());
  EXPECT_TRUE(PgGuard("x", []() -> Status { throw 42; }).IsIOError());
}

TEST(OpenPostgresBackendTest, RejectsOtherSchemes) {
  auto r = OpenPostgresBackend("mysql://u@h/db", NamespaceOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalid()) << r.status().ToString();
}

TEST(OpenPostgresBackendTest, UnreachableServerIsUnavailableWithoutPassword) {
  // Port 1 on loopback: nothing listens there, so the connect is refused
  // at once.
  auto r = OpenPostgresBackend(
      "postgresql://alice:s3cr3t-pw@127.0.0.1:1/nsdb?password=s3cr3t-pw",
      NamespaceOptions{});
  ASSERT_FALSE(r.ok());
  const std::string msg = r.status().ToString();
  EXPECT_TRUE(r.status().IsUnavailable()) << msg;
  EXPECT_NE(msg.find("127.0.0.1:1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nsdb"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("s3cr3t-pw"), std::string::npos) << msg;
}

}  // namespace
}  // namespace ns
