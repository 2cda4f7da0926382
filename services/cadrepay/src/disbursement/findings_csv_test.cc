#include "disbursement/findings_csv.h"

#include <string>
#include <vector>

#include "disbursement/disbursement_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grassroots::cadrepay {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Finding Make(Rule rule, std::string program, std::string period, std::string id,
             std::string payment, std::optional<int64_t> expected, std::optional<int64_t> actual,
             std::string detail) {
  Finding f;
  f.rule = rule;
  f.program_code = std::move(program);
  f.period = std::move(period);
  if (!id.empty()) f.person = *PersonKeyOf(id);
  f.payment_id = std::move(payment);
  f.expected_fen = expected;
  f.actual_fen = actual;
  f.detail = std::move(detail);
  return f;
}

std::vector<Finding> Sample() {
  return {
      Make(Rule::kBatchMismatch, "SUB", "2026-03", "", "", 12000, 11000,
           "batch B1 declares 1 payments totalling 12000 fen; its rows are 1 payments"),
      Make(Rule::kOverPaid, "SUB", "2026-03", "11010519491231002X", "p1", 12000, 12500,
           "owed 12000 fen, paid \"12500\", to account 6228, over by 500"),
      Make(Rule::kUnpaid, "SUB", "2026-03", "320702198001011230", "", 12000, 0,
           "owed 12000 fen\nno standing payment"),
      Make(Rule::kLate, "SUB", "2026-03", "11010519491231002X", "p1", std::nullopt,
           std::nullopt, "paid late"),
  };
}

TEST(FindingsCsvTest, MaskedByDefault) {
  const std::string csv = FindingsCsv(Sample(), {});
  EXPECT_EQ(csv,
            "rule,program_code,period,id_number,payment_id,expected_fen,actual_fen,detail\n"
            "BATCH_MISMATCH,SUB,2026-03,,,12000,11000,batch B1 declares 1 payments totalling "
            "12000 fen; its rows are 1 payments\n"
            "LATE,SUB,2026-03,1101**********002X,p1,,,paid late\n"
            "OVER_PAID,SUB,2026-03,1101**********002X,p1,12000,12500,\"owed 12000 fen, paid "
            "\"\"12500\"\", to account 6228, over by 500\"\n"
            "UNPAID,SUB,2026-03,3207**********1230,,12000,0,owed 12000 fen no standing "
            "payment\n");
  EXPECT_THAT(csv, Not(HasSubstr("11010519491231002X")));
  EXPECT_THAT(csv, Not(HasSubstr("\r")));
}

TEST(FindingsCsvTest, UnmaskedOnRequest) {
  const std::string csv = FindingsCsv(Sample(), {.unmasked = true});
  EXPECT_THAT(csv, HasSubstr("LATE,SUB,2026-03,11010519491231002X,p1,,,paid late\n"));
  EXPECT_THAT(csv, HasSubstr("UNPAID,SUB,2026-03,320702198001011230,,12000,0,"));
}

TEST(FindingsCsvTest, SortedByTheIdAsWrittenAndByteIdentical) {
  // In the engine's order (real ID numbers): a < b < c. Masked, b (…0001) comes before a (…0009);
  // c masks like a and keeps its place after it.
  const std::vector<Finding> f = {
      Make(Rule::kUnpaid, "SUB", "2026-03", "320710199001010009", "", 1, 0, "a"),
      Make(Rule::kUnpaid, "SUB", "2026-03", "320720199001010001", "", 1, 0, "b"),
      Make(Rule::kUnpaid, "SUB", "2026-03", "320730199001010009", "", 1, 0, "c"),
  };
  const std::string masked = FindingsCsv(f, {});
  EXPECT_LT(masked.find(",b\n"), masked.find(",a\n"));
  EXPECT_LT(masked.find(",a\n"), masked.find(",c\n"));
  EXPECT_EQ(FindingsCsv(f, {}), masked);
  const std::string unmasked = FindingsCsv(f, {.unmasked = true});
  EXPECT_LT(unmasked.find(",a\n"), unmasked.find(",b\n"));
  EXPECT_LT(unmasked.find(",b\n"), unmasked.find(",c\n"));
}

TEST(FindingsCsvTest, EmptyFileHasTheHeader) {
  EXPECT_EQ(FindingsCsv({}, {}), std::string(kFindingsCsvHeader) + "\n");
}

TEST(FindingsCsvTest, LargeOutputComesInPieces) {
  std::vector<Finding> many;
  for (int i = 0; i < 5000; ++i) {
    many.push_back(Make(Rule::kLate, "SUB", "2026-03", "11010519491231002X",
                        "payment-" + std::to_string(100000 + i), std::nullopt, std::nullopt,
                        std::string(40, 'x')));
  }
  std::string joined;
  int pieces = 0;
  WriteFindingsCsv(many, {}, [&](std::string_view piece) {
    ++pieces;
    joined.append(piece);
  });
  EXPECT_GT(pieces, 1);
  EXPECT_EQ(joined, FindingsCsv(many, {}));
}

}  // namespace
}  // namespace grassroots::cadrepay
