// Import reports' errors beyond what a report carries, against the real MariaDB.
#include "grassroots/common/import_errors.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grassroots/common/migrations.h"
#include "test_env.h"

namespace grassroots::common {
namespace {

TEST(ImportErrorsTest, EveryErrorReachesTheCallerInLineOrderWhateverTheirNumber) {
  DbOptions options = testing::TestDb("imperr");
  ASSERT_TRUE(ApplyMigrations(options, {{1, "V001__e.sql",
                                         "CREATE TABLE import_errors (report_id CHAR(32) NOT NULL, seq BIGINT NOT NULL,"
                                         " line BIGINT NOT NULL, column_name VARCHAR(200) NOT NULL, code VARCHAR(64) NOT NULL,"
                                         " message VARCHAR(2000) NOT NULL, created_at DATETIME NOT NULL,"
                                         " PRIMARY KEY (report_id, seq), KEY (created_at));"}})
                  .ok());
  ConnectionPool pool(options, nullptr);
  exchange::v1::ImportReport small;
  for (int line : {5, 3}) {
    auto* e = small.add_errors();
    e->set_line(line);
    e->set_code("X");
  }
  ASSERT_TRUE(BoundImportReport(pool, small, 10).ok());
  EXPECT_EQ(small.errors_total(), 2);
  EXPECT_TRUE(small.report_id().empty());  // all in the report
  EXPECT_EQ(small.errors(0).line(), 3);

  exchange::v1::ImportReport big;
  constexpr int kErrors = 2503;
  for (int i = kErrors; i >= 1; --i) {  // out of order, as parallel writers report them
    auto* e = big.add_errors();
    e->set_line(i + 1);
    e->set_column("org_type");
    e->set_code("UNKNOWN_TYPE");
    e->set_message(absl::StrCat("row ", i));
  }
  ASSERT_TRUE(BoundImportReport(pool, big, 100).ok());
  EXPECT_EQ(big.errors_total(), kErrors);
  ASSERT_EQ(big.errors_size(), 100);
  EXPECT_EQ(big.errors(0).line(), 2);
  EXPECT_EQ(big.errors(99).line(), 101);
  ASSERT_EQ(big.report_id().size(), 32u);
  // The rest, after those held, page by page.
  exchange::v1::ListImportErrorsRequest req;
  req.set_report_id(big.report_id());
  req.set_offset(big.errors_size());
  req.set_page_size(1000);
  std::vector<int64_t> lines;
  for (int page = 0; page < 10; ++page) {
    auto got = ListImportErrors(pool, req, absl::Now() + absl::Seconds(10));
    ASSERT_TRUE(got.ok()) << got.status();
    for (const auto& e : got->errors()) lines.push_back(e.line());
    if (got->next_page_token().empty()) break;
    req.set_page_token(got->next_page_token());
  }
  ASSERT_EQ(lines.size(), static_cast<size_t>(kErrors - 100));
  EXPECT_EQ(lines.front(), 102);
  EXPECT_EQ(lines.back(), kErrors + 1);
  EXPECT_TRUE(std::is_sorted(lines.begin(), lines.end()));
  // Refusals name their field.
  exchange::v1::ListImportErrorsRequest bad;
  bad.set_report_id("nope");
  EXPECT_EQ(ListImportErrors(pool, bad, absl::Now() + absl::Seconds(5)).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad.set_report_id(std::string(32, 'a'));
  EXPECT_EQ(ListImportErrors(pool, bad, absl::Now() + absl::Seconds(5)).status().code(), absl::StatusCode::kNotFound);
  bad.set_report_id(big.report_id());
  bad.set_page_token("garbage");
  EXPECT_EQ(ListImportErrors(pool, bad, absl::Now() + absl::Seconds(5)).status().code(),
            absl::StatusCode::kInvalidArgument);
  testing::DropSchema(options);
}

}  // namespace
}  // namespace grassroots::common
