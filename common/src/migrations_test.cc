#include "grassroots/common/migrations.h"

#include <gtest/gtest.h>

namespace grassroots::common {
namespace {

TEST(MigrationsTest, SplitsOnSemicolonsAtLineEndsAndDropsComments) {
  auto stmts = SplitSqlStatements(
      "-- a comment\nCREATE TABLE a (\n  x INT -- trailing\n);\n\nINSERT INTO a VALUES (1);\n-- end\n");
  ASSERT_EQ(stmts.size(), 2u);
  EXPECT_EQ(stmts[0].rfind("CREATE TABLE a (", 0), 0u);
  EXPECT_EQ(stmts[1], "INSERT INTO a VALUES (1)");
}

TEST(MigrationsTest, KeepsAFinalStatementWithoutSemicolon) {
  auto stmts = SplitSqlStatements("SELECT 1;\nSELECT 2\n");
  ASSERT_EQ(stmts.size(), 2u);
  EXPECT_EQ(stmts[1], "SELECT 2");
}

}  // namespace
}  // namespace grassroots::common
