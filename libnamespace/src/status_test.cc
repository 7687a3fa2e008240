#include "libnamespace/include/namespace/status.h"

#include <gtest/gtest.h>

#include "schema/migrations.h"

namespace ns {
namespace {

TEST(StatusTest, OkIsCheapAndPrintsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.Errno(), 0);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, FactoriesMapToPredicatesAndErrno) {
  EXPECT_TRUE(Status::NotFound("x").IsNotFound());
  EXPECT_EQ(Status::NotFound("x").Errno(), ENOENT);
  EXPECT_EQ(Status::Exists("x").Errno(), EEXIST);
  EXPECT_EQ(Status::NotEmpty("x").Errno(), ENOTEMPTY);
  EXPECT_EQ(Status::Stale("x").Errno(), ESTALE);
  EXPECT_TRUE(Status::Retry("x").IsRetry());
  EXPECT_FALSE(Status::Retry("x").IsUnavailable());
}

TEST(StatusTest, ToStringHasContextReasonAndDetail) {
  Status s = Status::Exists("mkdir '/a/b'", "taken");
  EXPECT_EQ(s.ToString(), "mkdir '/a/b': File exists (taken)");
  EXPECT_EQ(s.Context(), "mkdir '/a/b'");
  EXPECT_EQ(s.Reason(), "File exists");
}

TEST(ResultTest, HoldsValueOrStatus) {
  Result<int> good(7);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);
  Result<int> bad(Status::Invalid("x"));
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsInvalid());
}

TEST(SchemaSqlTest, DialectsHaveTheSameVersions) {
  ASSERT_EQ(Migrations_sqlite().size(), Migrations_postgresql().size());
  for (size_t i = 0; i < Migrations_sqlite().size(); ++i) {
    EXPECT_EQ(Migrations_sqlite()[i].version, static_cast<int>(i + 1));
    EXPECT_EQ(Migrations_sqlite()[i].name, Migrations_postgresql()[i].name);
  }
}

}  // namespace
}  // namespace ns
