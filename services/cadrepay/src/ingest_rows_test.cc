// Row validation of the six disbursement files, no database.
#include "ingest_rows.h"

#include <gtest/gtest.h>

#include "absl/strings/str_split.h"

namespace grassroots::cadrepay {
namespace {

// Binds a header and parses one record line (no quoting needed in these tests).
template <typename Row, typename Parse>
RowProblems ParseLine(const std::vector<common::CsvHeader::Column>& format, const std::string& header_line,
                      const std::string& line, Parse parse, Row& out) {
  common::CsvHeader header;
  std::vector<std::string> names = absl::StrSplit(header_line, ',');
  EXPECT_TRUE(header.Bind(names, format).empty());
  common::CsvRecord record;
  record.line = 2;
  record.fields = absl::StrSplit(line, ',');
  return parse(header, record, out);
}

std::vector<std::string> Columns(const RowProblems& problems) {
  std::vector<std::string> out;
  for (const auto& p : problems) out.push_back(p.column);
  return out;
}

constexpr char kId[] = "11010519491231002X";
constexpr char kPaymentHeader[] = "payment_id,batch_id,program_code,period,id_number,account_no,amount_fen,paid_at,reverses";

RowProblems Payment(const std::string& line, PaymentRow* row = nullptr) {
  PaymentRow r;
  auto p = ParseLine(PaymentColumns(), kPaymentHeader, line, ParsePayment, r);
  if (row != nullptr) *row = r;
  return p;
}

TEST(PaymentRows, GoodRowAndReversal) {
  PaymentRow row;
  EXPECT_TRUE(Payment(absl::StrCat("P1,B1,GDBT,2026-03,11010519491231002x,622200001111222233,12000,"
                                   "2026-03-14T10:05:00+08:00,"), &row).empty());
  EXPECT_EQ(row.id_number, kId);
  EXPECT_EQ(row.amount_fen, 12000);
  EXPECT_EQ(row.period.ToString(), "2026-03");
  EXPECT_TRUE(Payment(absl::StrCat("P2,B1,GDBT,2026-03,", kId, ",622200001111222233,-12000,2026-03-15T00:00:00Z,P1"))
                  .empty());
}

TEST(PaymentRows, EachBadValueNamesItsColumn) {
  const std::string base = absl::StrCat("P1,B1,GDBT,2026-03,", kId, ",622200001111222233,");
  EXPECT_EQ(Columns(Payment(base + "120.00,2026-03-14T10:05:00+08:00,")), std::vector<std::string>{"amount_fen"});
  EXPECT_EQ(Payment(base + "120.00,2026-03-14T10:05:00+08:00,")[0].code, "INVALID_MONEY");
  EXPECT_EQ(Columns(Payment(base + "-100,2026-03-14T10:05:00+08:00,")), std::vector<std::string>{"amount_fen"});
  EXPECT_EQ(Payment(base + "-100,2026-03-14T10:05:00+08:00,")[0].code, "NEGATIVE_AMOUNT");
  EXPECT_EQ(Columns(Payment(base + "100,2026-03-14T10:05:00,")), std::vector<std::string>{"paid_at"});
  EXPECT_EQ(Columns(Payment(base + "100,2026-03-14T10:05:00Z,P0")), std::vector<std::string>{"amount_fen"});
  EXPECT_EQ(Columns(Payment(absl::StrCat("P1,B1,GDBT,2026-03,", kId, ",",
                                         "123456789012345678901234567890,100,2026-03-14T10:05:00Z,"))),
            std::vector<std::string>{"account_no"});
  EXPECT_EQ(Columns(Payment(absl::StrCat("P1,B1,GDBT,2026-3,", kId, ",622200001111222233,100,2026-03-14T10:05:00Z,"))),
            std::vector<std::string>{"period"});
  EXPECT_EQ(Columns(Payment("P1,B1,GDBT,2026-03,110105194912310021,622200001111222233,100,2026-03-14T10:05:00Z,")),
            std::vector<std::string>{"id_number"});
  // The message never repeats the ID number.
  EXPECT_EQ(Payment("P1,B1,GDBT,2026-03,110105194912310021,622200001111222233,100,2026-03-14T10:05:00Z,")[0]
                .message.find("110105194912310021"),
            std::string::npos);
  EXPECT_EQ(Columns(Payment(",B1,GDBT,2026-03,11010519491231002X,622200001111222233,100,2026-03-14T10:05:00Z,")),
            std::vector<std::string>{"payment_id"});
}

TEST(ProgrammeRows, ValidatesFormAndWindow) {
  const std::string header =
      "program_code,name,unit,frequency,amount_fen,valid_from,valid_to,excludes_cadre_households,grace_days";
  ProgrammeRow row;
  EXPECT_TRUE(ParseLine(ProgrammeColumns(), header, "GDBT,耕地地力保护补贴,person,monthly,12000,2026-01,,1,",
                        ParseProgramme, row).empty());
  EXPECT_EQ(row.grace_days, 5);
  EXPECT_TRUE(row.excludes_cadre_households);
  EXPECT_EQ(Columns(ParseLine(ProgrammeColumns(), header, "Y,名,household,yearly,100,2026-01,,,", ParseProgramme, row)),
            std::vector<std::string>{"valid_from"});
  EXPECT_EQ(Columns(ParseLine(ProgrammeColumns(), header, "Y,名,family,yearly,100,2026,2025,,x", ParseProgramme, row)),
            (std::vector<std::string>{"unit", "valid_to", "grace_days"}));
}

TEST(EnrolmentRows, Validates) {
  const std::string header = "program_code,id_number,amount_fen,from_period,to_period";
  EnrolmentRow row;
  EXPECT_TRUE(ParseLine(EnrolmentColumns(), header, absl::StrCat("GDBT,", kId, ",,2026-01,2026-12"), ParseEnrolment, row)
                  .empty());
  EXPECT_FALSE(row.amount_fen.has_value());
  EXPECT_EQ(Columns(ParseLine(EnrolmentColumns(), header, absl::StrCat("GDBT,", kId, ",1.5,2026-05,2026-01"),
                              ParseEnrolment, row)),
            (std::vector<std::string>{"amount_fen", "to_period"}));
}

TEST(RecipientRows, Validates) {
  const std::string header = "id_number,name,org_code,household_id,is_household_head,account_no,account_since,is_cadre";
  RecipientCsvRow row;
  EXPECT_TRUE(ParseLine(RecipientColumns(), header, absl::StrCat(kId, ",张三明,V001,H1,1,622200001111222233,2025-01-01,0"),
                        ParseRecipient, row)
                  .empty());
  EXPECT_TRUE(row.is_household_head);
  EXPECT_EQ(Columns(ParseLine(RecipientColumns(), header,
                              absl::StrCat(kId, ",张三明,V001,H1,2,12345,2025-02-30,"), ParseRecipient, row)),
            (std::vector<std::string>{"is_household_head", "account_no", "account_since"}));
}

TEST(BatchAndEventRows, Validate) {
  BatchRow b;
  EXPECT_TRUE(ParseLine(BatchColumns(), "batch_id,program_code,period,declared_count,declared_total_fen,scheduled_on",
                        "B1,GDBT,2026-03,10,120000,2026-03-10", ParseBatch, b)
                  .empty());
  EXPECT_EQ(Columns(ParseLine(BatchColumns(), "batch_id,program_code,period,declared_count,declared_total_fen,scheduled_on",
                              "B1,GDBT,2026-03,-1,12.5,", ParseBatch, b)),
            (std::vector<std::string>{"declared_count", "declared_total_fen", "scheduled_on"}));
  CivilEventRow e;
  EXPECT_TRUE(ParseLine(CivilEventColumns(), "id_number,event,event_date,source_ref",
                        absl::StrCat(kId, ",death,2026-02-01,MZ-1"), ParseCivilEvent, e)
                  .empty());
  EXPECT_EQ(Columns(ParseLine(CivilEventColumns(), "id_number,event,event_date,source_ref",
                              absl::StrCat(kId, ",married,2026-02-01,"), ParseCivilEvent, e)),
            std::vector<std::string>{"event"});
}

TEST(Values, AccountsAndPeriods) {
  EXPECT_TRUE(IsAccountNumber("123456789012"));
  EXPECT_TRUE(IsAccountNumber("123456789012345678901234"));
  EXPECT_FALSE(IsAccountNumber("12345678901"));
  EXPECT_FALSE(IsAccountNumber("1234567890123456789012345"));
  EXPECT_FALSE(IsAccountNumber("12345678901a"));
  EXPECT_TRUE(PeriodFits(*common::ParsePeriod("2026-03"), "monthly"));
  EXPECT_FALSE(PeriodFits(*common::ParsePeriod("2026"), "monthly"));
  EXPECT_TRUE(PeriodFits(*common::ParsePeriod("2026"), "yearly"));
}

}  // namespace
}  // namespace grassroots::cadrepay
