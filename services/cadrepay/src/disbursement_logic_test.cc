// DisbursementLogic and its repository against a real MariaDB (tests/run provides it):
// ingest of the six files, refusals on their rows, idempotency, the check over a small
// village, findings export, review, disclosure and the scheduler's choice of due scopes.
#include "disbursement_logic.h"

#include <cppconn/connection.h>
#include <cppconn/resultset.h>
#include <cppconn/resultset_metadata.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/statement.h>
#include <gtest/gtest.h>

#include <thread>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "check_scheduler.h"
#include "prometheus/registry.h"
#include "disbursement_repository.h"
#include "grassroots/common/migrations.h"
#include "grassroots/common/status.h"
#include "test_env.h"

namespace grassroots::generated {
const std::vector<common::Migration>& cadrepay_migrations();
}

namespace grassroots::cadrepay {
namespace {

const absl::Time kNoDeadline = absl::InfiniteFuture();

// A valid resident ID number: 320723 (county), 1960-01-01, sequence n, check character.
std::string Id(int n) {
  std::string s = absl::StrFormat("32072319600101%03d", n);
  static const int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (s[i] - '0') * kWeights[i];
  s += "10X98765432"[sum % 11];
  return s;
}

constexpr char kProgrammes[] =
    "program_code,name,unit,frequency,amount_fen,valid_from,valid_to,excludes_cadre_households,grace_days\n"
    "GDBT,耕地地力保护补贴,person,monthly,12000,2026-01,2026-12,1,5\n"
    "WBBZ,五保供养补助,household,monthly,30000,2026-01,,0,3\n";

std::string Recipients() {
  return absl::StrCat(
      "id_number,name,org_code,household_id,is_household_head,account_no,account_since,is_cadre\n",
      Id(1), ",张三明,V001,H1,1,622200000000000001,2025-01-01,0\n",
      Id(2), ",李四,V001,H1,0,622200000000000002,2025-01-01,0\n",
      Id(3), ",王村官,V001,H2,1,622200000000000003,2025-01-01,1\n",
      Id(4), ",赵换卡,V001,H3,1,622200000000000004,2025-01-01,\n",
      Id(4), ",赵换卡,V001,H3,1,622200000000000044,2026-03-01,\n",
      Id(5), ",钱已故,V001,H4,1,622200000000000005,2025-01-01,0\n",
      Id(6), ",孙六,V002,H5,1,622200000000000006,2025-01-01,0\n");
}

std::string Enrolments() {
  return absl::StrCat("program_code,id_number,amount_fen,from_period,to_period\n",
                      "GDBT,", Id(1), ",,2026-03,\n",
                      "GDBT,", Id(2), ",,2026-03,\n",
                      "GDBT,", Id(3), ",,2026-03,\n",
                      "GDBT,", Id(4), ",,2026-03,\n",
                      "GDBT,", Id(5), ",,2026-03,\n",
                      "GDBT,", Id(6), ",9000,2026-03,2026-12\n",
                      "WBBZ,", Id(1), ",,2026-03,\n");
}

std::string Payments() {
  return absl::StrCat(
      "payment_id,batch_id,program_code,period,id_number,account_no,amount_fen,paid_at,reverses\n",
      "P001,B2603,GDBT,2026-03,", Id(1), ",622200000000000001,12000,2026-03-10T09:00:00+08:00,\n",
      "P002,B2603,GDBT,2026-03,", Id(2), ",622200000000000002,12000,2026-03-10T09:00:00+08:00,\n",
      "P003,B2603,GDBT,2026-03,", Id(3), ",622200000000000003,12000,2026-03-10T09:00:00+08:00,\n",
      "P004,B2603,GDBT,2026-03,", Id(4), ",622200000000000004,12000,2026-03-10T09:00:00+08:00,\n",
      "P005,B2603,GDBT,2026-03,", Id(5), ",622200000000000005,12000,2026-03-10T09:00:00+08:00,\n",
      "P006,B2603,GDBT,2026-03,", Id(6), ",622200000000000006,12000,2026-03-20T02:00:00Z,\n",
      "P007,B2603,GDBT,2026-03,", Id(1), ",622200000000000001,12000,2026-03-11T09:00:00+08:00,\n",
      "P008,B2603,GDBT,2026-03,", Id(1), ",622200000000000001,-12000,2026-03-12T09:00:00+08:00,P999\n",
      "P009,B2603,GDBT,2026-03,", Id(7), ",622200000000000007,12000,2026-03-10T09:00:00+08:00,\n");
}

constexpr char kBatches[] =
    "batch_id,program_code,period,declared_count,declared_total_fen,scheduled_on\n"
    "B2603,GDBT,2026-03,9,96000,2026-03-10\n";

std::string CivilEvents() {
  return absl::StrCat("id_number,event,event_date,source_ref\n", Id(5), ",death,2026-02-10,MZ-2026-001\n");
}

// findings.csv of the village above, as of 2026-04-10: one finding of every planted anomaly.
constexpr char kExpectedFindingsCsv[] = R"csv(rule,program_code,period,id_number,payment_id,expected_fen,actual_fen,detail
AFTER_DEATH,GDBT,2026-03,3207**********0054,P005,0,12000,"nothing was owed: 2026-03 began on 2026-03-01, after the recipient's death on 2026-02-10 (civil affairs); paid payment P005 of 12000 fen in batch B2603 to account 622200000000000005 on 2026-03-10"
BAD_REVERSAL,GDBT,2026-03,3207**********0011,P008,,-12000,"reversal P008 of -12000 fen on 2026-03-12 (batch B2603, account 622200000000000001) names payment P999, which is not in the payments data; it is not netted off anything"
BATCH_MISMATCH,GDBT,2026-03,,,96000,84000,"batch B2603 (scheduled 2026-03-10) declares 9 payments totalling 96000 fen; its rows, reversals included, are 9 payments totalling 84000 fen"
CADRE_KIN,GDBT,2026-03,3207**********0038,P003,0,12000,nothing was owed: programme GDBT excludes cadre households and the recipient is a village cadre; paid payment P003 of 12000 fen in batch B2603 to account 622200000000000003 on 2026-03-10
DUPLICATE,GDBT,2026-03,3207**********0011,P007,0,12000,a further payment for GDBT 2026-03: payment P007 of 12000 fen in batch B2603 to account 622200000000000001 on 2026-03-11; the first was payment P001 of 12000 fen on 2026-03-10
LATE,GDBT,2026-03,3207**********0062,P006,,,"paid on 2026-03-20, 5 days after the last day allowed (2026-03-15): due 2026-03-10 (batch B2603 scheduled_on) plus 5 grace days; payment P006 of 12000 fen in batch B2603 to account 622200000000000006 on 2026-03-20"
NOT_ENTITLED,GDBT,2026-03,3207**********0070,P009,0,12000,nothing was owed: no enrolment of the recipient in programme GDBT covers 2026-03; paid payment P009 of 12000 fen in batch B2603 to account 622200000000000007 on 2026-03-10
OVER_PAID,GDBT,2026-03,3207**********0062,P006,9000,12000,"owed 9000 fen (the enrolment's amount) for GDBT 2026-03, paid payment P006 of 12000 fen in batch B2603 to account 622200000000000006 on 2026-03-20: over by 3000 fen"
UNPAID,WBBZ,2026-03,3207**********0011,,30000,0,"owed 30000 fen (the programme's amount) for WBBZ 2026-03, due 2026-03-31 (last day of the period; no declared batch) plus 3 grace days, and no standing payment as of 2026-04-10"
WRONG_ACCOUNT,GDBT,2026-03,3207**********0046,P004,,,"credited to account 622200000000000004 on 2026-03-10, but the registered account then was 622200000000000044 (since 2026-03-01); payment P004 of 12000 fen in batch B2603 to account 622200000000000004 on 2026-03-10"
)csv";

class DisbursementLogicTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_ = testing::TestDb("cadrepay");
    testing::DropSchema(options_);
    ASSERT_TRUE(common::ApplyMigrations(options_, generated::cadrepay_migrations()).ok());
    pool_ = std::make_unique<common::ConnectionPool>(options_, nullptr);
    logic_ = std::make_unique<DisbursementLogic>(*pool_, pii_, kinship_, nullptr, [this] { return now_; });
  }
  void TearDown() override {
    logic_.reset();
    pool_.reset();
    testing::DropSchema(options_);
  }

  exchange::v1::ImportReport Ingest(FileKind kind, const std::string& csv, size_t chunk = 13) {
    auto ingest = logic_->StartIngest(kind);
    for (size_t i = 0; i < csv.size(); i += chunk) ingest->Feed(std::string_view(csv).substr(i, chunk));
    auto report = ingest->Finish();
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : exchange::v1::ImportReport();
  }

  // Two ingests of the same kind sent at the same time, each from a thread of its own (as two
  // callers would): both reports.
  std::pair<absl::StatusOr<exchange::v1::ImportReport>, absl::StatusOr<exchange::v1::ImportReport>> SideBySide(
      FileKind kind, const std::string& a, const std::string& b) {
    absl::StatusOr<exchange::v1::ImportReport> ra, rb;
    auto run = [&](const std::string& csv, absl::StatusOr<exchange::v1::ImportReport>& out) {
      auto ingest = logic_->StartIngest(kind);
      for (size_t i = 0; i < csv.size(); i += 11) ingest->Feed(std::string_view(csv).substr(i, 11));
      out = ingest->Finish();
    };
    std::thread ta([&] { run(a, ra); });
    std::thread tb([&] { run(b, rb); });
    ta.join();
    tb.join();
    return {std::move(ra), std::move(rb)};
  }

  void LoadAll() {
    ASSERT_EQ(Ingest(FileKind::kProgrammes, kProgrammes).inserted(), 2);
    ASSERT_EQ(Ingest(FileKind::kRecipients, Recipients()).refused(), 0);
    ASSERT_EQ(Ingest(FileKind::kEnrolments, Enrolments()).inserted(), 7);
    ASSERT_EQ(Ingest(FileKind::kPayments, Payments()).inserted(), 9);
    ASSERT_EQ(Ingest(FileKind::kBatches, kBatches).inserted(), 1);
    ASSERT_EQ(Ingest(FileKind::kCivilEvents, CivilEvents()).inserted(), 1);
  }

  // "line column code" of every error.
  static std::vector<std::string> Errors(const exchange::v1::ImportReport& r) {
    std::vector<std::string> out;
    for (const auto& e : r.errors()) out.push_back(absl::StrCat(e.line(), " ", e.column(), " ", e.code()));
    return out;
  }

  std::string Export(const std::string& run_id, bool unmasked) {
    v1::ExportFindingsRequest request;
    request.set_run_id(run_id);
    request.set_unmasked(unmasked);
    std::string out;
    auto s = logic_->ExportFindings(request, [&](std::string_view piece) {
      out.append(piece);
      return true;
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  v1::CheckRun Check(const std::string& program = "", const std::string& period = "",
                     const std::string& as_of = "2026-04-10") {
    v1::RunCheckRequest request;
    request.set_program_code(program);
    request.set_period(period);
    request.set_as_of(as_of);
    auto run = logic_->RunCheck(request);
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? *run : v1::CheckRun();
  }

  common::DbOptions options_;
  common::PiiProtector pii_ = common::PiiProtector::Development();
  NoKinshipRecords kinship_;
  absl::Time now_ = absl::FromCivil(absl::CivilSecond(2026, 4, 10, 12, 0, 0), common::ChinaTimeZone());
  std::unique_ptr<common::ConnectionPool> pool_;
  std::unique_ptr<DisbursementLogic> logic_;
};

TEST_F(DisbursementLogicTest, IngestIsIdempotent) {
  LoadAll();
  for (auto [kind, csv] : std::vector<std::pair<FileKind, std::string>>{
           {FileKind::kProgrammes, kProgrammes}, {FileKind::kRecipients, Recipients()},
           {FileKind::kEnrolments, Enrolments()}, {FileKind::kPayments, Payments()},
           {FileKind::kBatches, kBatches}, {FileKind::kCivilEvents, CivilEvents()}}) {
    auto r = Ingest(kind, csv, 1000);
    EXPECT_EQ(r.inserted(), 0) << FileKindName(kind);
    EXPECT_EQ(r.updated(), 0) << FileKindName(kind);
    EXPECT_EQ(r.refused(), 0) << FileKindName(kind);
    EXPECT_EQ(r.unchanged(), r.rows()) << FileKindName(kind);
  }
  auto programmes = logic_->ListProgrammes(kNoDeadline);
  ASSERT_TRUE(programmes.ok());
  ASSERT_EQ(programmes->programmes_size(), 2);
  EXPECT_EQ(programmes->programmes(0).program_code(), "GDBT");
  EXPECT_EQ(programmes->programmes(1).grace_days(), 3);
}

TEST_F(DisbursementLogicTest, BadPaymentsAreRefusedOnTheirRowWithTheColumn) {
  LoadAll();
  const std::string header = "payment_id,batch_id,program_code,period,id_number,account_no,amount_fen,paid_at,reverses\n";
  const std::string csv = absl::StrCat(
      header,
      "Q1,B9,NOPE,2026-03,", Id(1), ",622200000000000001,12000,2026-03-10T09:00:00+08:00,\n",   // line 2
      "Q2,B9,GDBT,2026-03,", Id(1), ",622200000000000001,120.00,2026-03-10T09:00:00+08:00,\n",  // line 3
      "Q3,B9,GDBT,2026-03,", Id(1), ",622200000000000001,-500,2026-03-10T09:00:00+08:00,\n",    // line 4
      "Q4,B9,GDBT,2026-03,", Id(1), ",622200000000000001,500,2026-03-10T09:00:00,\n",           // line 5
      "Q5,B9,GDBT,2026-03,", Id(1), ",622200000000000001,500,2026-03-10T09:00:00Z,\n",          // line 6: good
      "Q5,B9,GDBT,2026-03,", Id(2), ",622200000000000002,500,2026-03-10T09:00:00Z,\n",          // line 7
      "Q6,B9,GDBT,2026-03,", Id(1), ",123456789012345678901234567890,500,2026-03-10T09:00:00Z,\n",  // line 8
      "P001,B2603,GDBT,2026-03,", Id(1), ",622200000000000001,12001,2026-03-10T09:00:00+08:00,\n",  // line 9
      "\"Q7\",B9,GDBT,2026-03,", Id(2), ",622200000000000002,\"5\n00\",2026-03-10T09:00:00Z,\n",    // line 10-11
      "Q8,B9,GDBT,2026,", Id(2), ",622200000000000002,500,2026-03-10T09:00:00Z,\n");              // line 12
  auto r = Ingest(FileKind::kPayments, csv);
  EXPECT_EQ(r.rows(), 10);
  EXPECT_EQ(r.inserted(), 1);
  EXPECT_EQ(r.refused(), 9);
  EXPECT_EQ(Errors(r), (std::vector<std::string>{
                           "2 program_code UNKNOWN_PROGRAMME", "3 amount_fen INVALID_MONEY",
                           "4 amount_fen NEGATIVE_AMOUNT", "5 paid_at INVALID_TIMESTAMP",
                           "7 payment_id DUPLICATE_IN_FILE", "8 account_no INVALID_ACCOUNT",
                           "9 payment_id CONFLICT", "10 amount_fen INVALID_MONEY", "12 period PERIOD_FORM"}));
  for (const auto& e : r.errors()) {
    EXPECT_EQ(e.message().find(Id(1)), std::string::npos);
    EXPECT_EQ(e.message().find(Id(2)), std::string::npos);
  }
  // Refused again the same way: nothing was half-written.
  auto again = Ingest(FileKind::kPayments, csv);
  EXPECT_EQ(again.unchanged(), 1);
  EXPECT_EQ(again.refused(), 9);
}

TEST_F(DisbursementLogicTest, BadEnrolmentsAndRecipientsAreRefused) {
  ASSERT_EQ(Ingest(FileKind::kProgrammes, kProgrammes).inserted(), 2);
  auto e = Ingest(FileKind::kEnrolments, absl::StrCat("program_code,id_number,amount_fen,from_period,to_period\n",
                                                      "NOPE,", Id(1), ",,2026-03,\n", "GDBT,", Id(1), ",,2026,\n",
                                                      "GDBT,", Id(1), ",,2026-03,\n"));
  EXPECT_EQ(Errors(e), (std::vector<std::string>{"2 program_code UNKNOWN_PROGRAMME", "3 from_period PERIOD_FORM"}));
  EXPECT_EQ(e.inserted(), 1);
  auto r = Ingest(FileKind::kRecipients,
                  absl::StrCat("id_number,name,org_code,household_id,is_household_head,account_no,account_since\n",
                               Id(1), ",甲,V001,H1,1,622200000000000001,2025-01-01\n",
                               Id(2), ",乙,V001,H1,1,622200000000000002,2025-01-01\n",
                               Id(3), ",丙,V001,H2,1,123456789012345678901234567890,2025-01-01\n",
                               Id(3), ",丙,V001,H2,1,622200000000000003,2025-01-01\n"));
  EXPECT_EQ(Errors(r), (std::vector<std::string>{"3 is_household_head SECOND_HEAD", "4 account_no INVALID_ACCOUNT"}));
  EXPECT_EQ(r.inserted(), 2);
  // A later file cannot add a second head either.
  auto later = Ingest(FileKind::kRecipients,
                      absl::StrCat("id_number,name,org_code,household_id,is_household_head,account_no,account_since\n",
                                   Id(4), ",丁,V001,H1,1,622200000000000004,2025-01-01\n"));
  EXPECT_EQ(Errors(later), std::vector<std::string>{"2 is_household_head SECOND_HEAD"});
}

// Only a row that takes effect as a person's current attributes makes or unmakes a household's
// head: a row dated before the person's current one only adds to the account history, and a row
// refused (an account conflict) changes nothing. Exactly one head per household either way.
TEST_F(DisbursementLogicTest, TheHeadOfAHouseholdIsWhatTakesEffect) {
  const std::string header = "id_number,name,org_code,household_id,is_household_head,account_no,account_since\n";
  // One file on an empty table: F's earlier-dated row saying head is history; G becomes H9's head.
  auto first = Ingest(FileKind::kRecipients,
                      absl::StrCat(header, Id(1), ",甲,V001,H1,1,622200000000000001,2025-01-01\n",
                                   Id(6), ",己,V001,H9,0,622200000000000006,2025-01-01\n",
                                   Id(6), ",己,V001,H9,1,622200000000000066,2024-01-01\n",
                                   Id(7), ",庚,V001,H9,1,622200000000000007,2025-01-01\n"));
  EXPECT_EQ(Errors(first), std::vector<std::string>{});
  // A's earlier-dated row saying "not head" does not unmake A: B is a second head.
  auto history = Ingest(FileKind::kRecipients,
                        absl::StrCat(header, Id(1), ",甲,V001,H1,0,622200000000000011,2024-01-01\n",
                                     Id(2), ",乙,V001,H1,1,622200000000000002,2025-01-01\n"));
  EXPECT_EQ(Errors(history), std::vector<std::string>{"3 is_household_head SECOND_HEAD"});
  // A refused row does not unmake A either.
  auto refused = Ingest(FileKind::kRecipients,
                        absl::StrCat(header, Id(1), ",甲,V001,H1,0,622200000000000099,2025-01-01\n",
                                     Id(3), ",丙,V001,H1,1,622200000000000003,2025-01-01\n"));
  EXPECT_EQ(Errors(refused), (std::vector<std::string>{"2 account_no ACCOUNT_CONFLICT",
                                                       "3 is_household_head SECOND_HEAD"}));
  // A new head listed before the old head's later row that hands the household over: both taken.
  auto handover = Ingest(FileKind::kRecipients,
                         absl::StrCat(header, Id(4), ",丁,V001,H1,1,622200000000000004,2025-01-01\n",
                                      Id(1), ",甲,V001,H1,0,622200000000000001,2026-01-01\n"));
  EXPECT_EQ(Errors(handover), std::vector<std::string>{});
  // D is now H1's one head; G is H9's.
  auto after = Ingest(FileKind::kRecipients,
                      absl::StrCat(header, Id(5), ",戊,V001,H1,1,622200000000000005,2025-01-01\n",
                                   Id(8), ",辛,V001,H9,1,622200000000000008,2025-01-01\n"));
  EXPECT_EQ(Errors(after), (std::vector<std::string>{"2 is_household_head SECOND_HEAD",
                                                     "3 is_household_head SECOND_HEAD"}));
}

TEST_F(DisbursementLogicTest, WholeFileRefusalsAndCancelledIngestsWriteNothing) {
  auto bad = Ingest(FileKind::kProgrammes, "program_code,name,unit\nX,y,person\n");
  EXPECT_TRUE(bad.file_refused());
  // Each header problem names its column (line 1).
  auto problems = Errors(bad);
  std::sort(problems.begin(), problems.end());
  EXPECT_EQ(problems, (std::vector<std::string>{"1 amount_fen BAD_HEADER", "1 frequency BAD_HEADER",
                                                "1 valid_from BAD_HEADER"}));
  auto stray = Ingest(FileKind::kEnrolments, "program_code,id_number,from_period,colour\n");
  EXPECT_TRUE(stray.file_refused());
  EXPECT_EQ(Errors(stray), std::vector<std::string>{"1 colour BAD_HEADER"});
  auto unknown = Ingest(FileKind::kProgrammes, absl::StrCat(std::string(kProgrammes).substr(0, 10), "x"));
  EXPECT_TRUE(unknown.file_refused());
  {
    auto ingest = logic_->StartIngest(FileKind::kProgrammes);
    ingest->Feed(kProgrammes);  // never finished: the caller went away
  }
  EXPECT_EQ(logic_->ListProgrammes(kNoDeadline)->programmes_size(), 0);
}

// A recipients.csv cancelled after its first bulk load keeps nothing, its new persons (sealed ID
// numbers) included: they were committed on a connection of their own before.
TEST_F(DisbursementLogicTest, ACancelledRecipientsIngestKeepsNoPersons) {
  auto id = [](int k) {
    const absl::CivilDay day = absl::CivilDay(1950, 1, 1) + k / 900;
    std::string s = absl::StrFormat("320723%04d%02d%02d%03d", day.year(), day.month(), day.day(), 100 + k % 900);
    static const int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    int sum = 0;
    for (int i = 0; i < 17; ++i) sum += (s[i] - '0') * kWeights[i];
    return s + "10X98765432"[sum % 11];
  };
  std::string csv = "id_number,name,org_code,household_id,is_household_head,account_no,account_since,is_cadre\n";
  for (int k = 0; k < 130000; ++k) {
    absl::StrAppend(&csv, id(k), ",张三,V001,H", k, ",1,62220000", absl::StrFormat("%010d", k), ",2025-01-01,0\n");
  }
  {
    auto ingest = logic_->StartIngest(FileKind::kRecipients);
    for (size_t i = 0; i < csv.size(); i += 1 << 16) ingest->Feed(std::string_view(csv).substr(i, 1 << 16));
    // never finished: the caller went away after more than one load's worth of rows
  }
  auto conn = pool_->Acquire(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(conn.ok());
  std::unique_ptr<sql::Statement> st((*conn)->createStatement());
  std::unique_ptr<sql::ResultSet> rs(st->executeQuery(
      "SELECT (SELECT COUNT(*) FROM persons), (SELECT COUNT(*) FROM recipients)"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(rs->getInt64(1), 0) << "persons of a cancelled ingest were kept";
  EXPECT_EQ(rs->getInt64(2), 0);
  // Sent whole, the same file is taken.
  auto whole = Ingest(FileKind::kRecipients, csv, 1 << 16);
  EXPECT_EQ(whole.refused(), 0) << whole.DebugString().substr(0, 400);
  EXPECT_EQ(whole.inserted(), 130000);
}

TEST_F(DisbursementLogicTest, CheckFindsEveryPlantedAnomalyAndExportIsStable) {
  LoadAll();
  v1::CheckRun run = Check();
  ASSERT_FALSE(run.run_id().empty());
  std::map<std::string, int64_t> counts;
  for (const auto& c : run.counts()) {
    if (c.count() > 0) counts[c.rule()] = c.count();
  }
  EXPECT_EQ(counts, (std::map<std::string, int64_t>{{"AFTER_DEATH", 1}, {"BAD_REVERSAL", 1}, {"BATCH_MISMATCH", 1},
                                                   {"CADRE_KIN", 1}, {"DUPLICATE", 1}, {"LATE", 1},
                                                   {"NOT_ENTITLED", 1}, {"OVER_PAID", 1}, {"UNPAID", 1},
                                                   {"WRONG_ACCOUNT", 1}}));
  ASSERT_EQ(run.warnings_size(), 1);
  EXPECT_NE(run.warnings(0).find("CADRE_KIN"), std::string::npos);
  const std::string masked = Export(run.run_id(), false);
  const std::string unmasked = Export("latest", true);
  // The whole file, byte for byte (masked: first 4 and last 4 characters of each ID number).
  EXPECT_EQ(masked, kExpectedFindingsCsv);
  EXPECT_EQ(masked.find(Id(1)), std::string::npos);
  EXPECT_NE(unmasked.find(Id(1)), std::string::npos);
  // A second run on the same data: byte-identical files, same finding ids.
  v1::CheckRun second = Check();
  EXPECT_NE(second.run_id(), run.run_id());
  EXPECT_EQ(Export(second.run_id(), false), masked);
  EXPECT_EQ(Export(second.run_id(), true), unmasked);
  auto first_findings = logic_->ListFindings([&] { v1::ListFindingsRequest r; r.set_run_id(run.run_id()); return r; }(),
                                             false, kNoDeadline);
  auto second_findings = logic_->ListFindings(v1::ListFindingsRequest(), false, kNoDeadline);
  ASSERT_TRUE(first_findings.ok() && second_findings.ok());
  ASSERT_EQ(first_findings->findings_size(), second_findings->findings_size());
  for (int i = 0; i < first_findings->findings_size(); ++i) {
    EXPECT_EQ(first_findings->findings(i).finding_id(), second_findings->findings(i).finding_id());
    EXPECT_EQ(first_findings->findings(i).id_number().find(Id(1)), std::string::npos);
  }
  // With the right to see personal data the list shows them clear, as the export does.
  auto clear = logic_->ListFindings(v1::ListFindingsRequest(), /*pii=*/true, kNoDeadline);
  ASSERT_TRUE(clear.ok()) << clear.status();
  ASSERT_EQ(clear->findings_size(), second_findings->findings_size());
  int shown_clear = 0;
  for (int i = 0; i < clear->findings_size(); ++i) {
    const std::string& masked_id = second_findings->findings(i).id_number();
    const std::string& clear_id = clear->findings(i).id_number();
    EXPECT_EQ(clear_id.empty(), masked_id.empty());
    if (!clear_id.empty()) EXPECT_EQ(common::MaskIdNumber(clear_id), masked_id);
    shown_clear += clear_id == Id(1);
  }
  EXPECT_GT(shown_clear, 0);
}

// formats.md's rules read the bank's rows whole: a reversal nets off the payment it names
// whatever period it is filed under, a payment is due by the batch it names (of any programme),
// an account is shared across programmes. A check scoped to a programme and/or period reports
// exactly the findings of the full check that fall in its scope.
TEST_F(DisbursementLogicTest, AScopedCheckReportsWhatTheFullCheckReportsInItsScope) {
  ASSERT_EQ(Ingest(FileKind::kProgrammes, kProgrammes).inserted(), 2);
  ASSERT_EQ(Ingest(FileKind::kRecipients, Recipients()).refused(), 0);
  ASSERT_EQ(Ingest(FileKind::kEnrolments, Enrolments()).inserted(), 7);
  const std::string shared = "622200000000000009";
  ASSERT_EQ(Ingest(FileKind::kPayments,
                   absl::StrCat(
                       "payment_id,batch_id,program_code,period,id_number,account_no,amount_fen,paid_at,reverses\n",
                       "X1,B2603,GDBT,2026-03,", Id(1), ",622200000000000001,12000,2026-03-10T09:00:00+08:00,\n",
                       // Filed under 2026-04, it reverses X1 (2026-03) in full: Id(1) is unpaid for 2026-03.
                       "X1R,B2604,GDBT,2026-04,", Id(1), ",622200000000000001,-12000,2026-03-12T09:00:00+08:00,X1\n",
                       // In WBBZ's batch, due 2026-04-20: on time (the period's end plus grace is 2026-04-05).
                       "X2,BW03,GDBT,2026-03,", Id(2), ",622200000000000002,12000,2026-04-08T09:00:00+08:00,\n",
                       // One account credited for four recipients in 2026-03, across both programmes.
                       "S1,B2603,GDBT,2026-03,", Id(6), ",", shared, ",9000,2026-03-10T09:00:00+08:00,\n",
                       "S2,BW03,WBBZ,2026-03,", Id(1), ",", shared, ",30000,2026-03-10T09:00:00+08:00,\n",
                       "S3,BW03,WBBZ,2026-03,", Id(2), ",", shared, ",30000,2026-03-10T09:00:00+08:00,\n",
                       "S4,BW03,WBBZ,2026-03,", Id(4), ",", shared, ",30000,2026-03-10T09:00:00+08:00,\n"))
                .inserted(),
            7);
  ASSERT_EQ(Ingest(FileKind::kBatches, "batch_id,program_code,period,declared_count,declared_total_fen,scheduled_on\n"
                                       "B2603,GDBT,2026-03,2,21000,2026-03-10\n"
                                       "B2604,GDBT,2026-04,1,-12000,2026-04-10\n"
                                       "BW03,WBBZ,2026-03,4,102000,2026-04-20\n")
                .inserted(),
            3);
  const std::string full = Export(Check().run_id(), true);
  auto rows_of = [](const std::string& csv, const std::string& program, const std::string& period) {
    std::vector<std::string> out;
    for (const auto line : absl::StrSplit(csv, '\n')) {
      if (line.empty() || absl::StartsWith(line, "rule,")) continue;
      const std::vector<std::string> f = absl::StrSplit(line, absl::MaxSplits(',', 3));
      if ((program.empty() || f[1] == program) && (period.empty() || f[2] == period)) out.emplace_back(line);
    }
    return out;
  };
  const auto all = rows_of(full, "", "");
  auto has = [&](const std::string& prefix, const std::string& payment) {
    return std::any_of(all.begin(), all.end(), [&](const std::string& r) {
      return absl::StartsWith(r, prefix) && (payment.empty() || absl::StrContains(r, payment));
    });
  };
  EXPECT_TRUE(has(absl::StrCat("UNPAID,GDBT,2026-03,", Id(1)), "")) << full;
  EXPECT_FALSE(has("LATE,", ",X2,")) << full;
  EXPECT_FALSE(has("BAD_REVERSAL,", "")) << full;
  EXPECT_TRUE(has("SHARED_ACCOUNT,GDBT,2026-03,", ",S1,")) << full;
  EXPECT_FALSE(has("BATCH_MISMATCH,", "")) << full;
  for (const auto& [program, period] : std::vector<std::pair<std::string, std::string>>{
           {"GDBT", "2026-03"}, {"GDBT", "2026-04"}, {"WBBZ", "2026-03"}, {"GDBT", ""}, {"", "2026-03"}}) {
    const auto scoped = rows_of(Export(Check(program, period).run_id(), true), "", "");
    EXPECT_EQ(scoped, rows_of(full, program, period)) << program << " " << period;
  }
}

// A death recorded for a date after the server's today is kept and counts for the periods after
// it (AFTER_DEATH), as any other.
TEST_F(DisbursementLogicTest, CivilEventsAfterTodayAreKept) {
  LoadAll();
  now_ = absl::FromCivil(absl::CivilSecond(2026, 2, 1, 12, 0, 0), common::ChinaTimeZone());
  auto r = Ingest(FileKind::kCivilEvents,
                  absl::StrCat("id_number,event,event_date,source_ref\n", Id(6), ",death,2026-02-20,MZ-2026-009\n"));
  EXPECT_EQ(r.inserted(), 1);
  EXPECT_EQ(r.refused(), 0);
  now_ = absl::FromCivil(absl::CivilSecond(2026, 4, 10, 12, 0, 0), common::ChinaTimeZone());
  const std::string findings = Export(Check().run_id(), true);
  EXPECT_NE(findings.find(absl::StrCat("\nAFTER_DEATH,GDBT,2026-03,", Id(6), ",P006,")), std::string::npos) << findings;
}

TEST_F(DisbursementLogicTest, ReviewsCarryOverToLaterRuns) {
  LoadAll();
  Check();
  v1::ListFindingsRequest by_rule;
  by_rule.set_rule("DUPLICATE");
  auto dup = logic_->ListFindings(by_rule, false, kNoDeadline);
  ASSERT_TRUE(dup.ok());
  ASSERT_EQ(dup->findings_size(), 1);
  EXPECT_EQ(dup->findings(0).review_state(), "open");
  v1::ReviewFindingRequest review;
  review.set_finding_id(dup->findings(0).finding_id());
  review.set_state("dismissed");
  review.set_reviewer("someone-else");  // ignored: the reviewer is the caller
  auto missing_reason = logic_->ReviewFinding(review, "auditor-1", false, kNoDeadline);
  EXPECT_EQ(common::FieldViolationsOf(missing_reason.status())[0].field, "reason");
  review.set_reason(" \t ");  // blank is no reason
  auto blank_reason = logic_->ReviewFinding(review, "auditor-1", false, kNoDeadline);
  EXPECT_EQ(blank_reason.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(common::FieldViolationsOf(blank_reason.status())[0].field, "reason");
  review.set_reason("second payment approved by the township");
  auto blank_reviewer = logic_->ReviewFinding(review, "   ", false, kNoDeadline);  // a caller who is nobody
  EXPECT_EQ(common::FieldViolationsOf(blank_reviewer.status())[0].field, "reviewer");
  auto reviewed = logic_->ReviewFinding(review, "auditor-1", false, kNoDeadline);
  ASSERT_TRUE(reviewed.ok()) << reviewed.status();
  EXPECT_EQ(reviewed->review_state(), "dismissed");
  EXPECT_EQ(reviewed->reviewed_by(), "auditor-1");
  Check();
  auto again = logic_->ListFindings(by_rule, false, kNoDeadline);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->findings(0).review_state(), "dismissed");
  EXPECT_EQ(again->findings(0).reviewed_by(), "auditor-1");
  v1::ListFindingsRequest dismissed;
  dismissed.set_review_state("dismissed");
  EXPECT_EQ(logic_->ListFindings(dismissed, false, kNoDeadline)->findings_size(), 1);
  // Dismissed -> confirmed is no transition: reopen first (with a reason), then confirm.
  review.set_state("confirmed");
  review.set_reason("");
  auto skipped = logic_->ReviewFinding(review, "auditor-2", false, kNoDeadline);
  EXPECT_EQ(skipped.status().code(), absl::StatusCode::kFailedPrecondition) << skipped.status();
  EXPECT_NE(skipped.status().message().find("REVIEW_TRANSITION"), std::string_view::npos) << skipped.status();
  review.set_state("open");
  review.set_reason("the township's approval was for another month");
  ASSERT_TRUE(logic_->ReviewFinding(review, "auditor-2", false, kNoDeadline).ok());
  // The same id in capitals (hex is hex) is the same finding, answered with its id as issued.
  review.set_finding_id(absl::AsciiStrToUpper(dup->findings(0).finding_id()));
  review.set_state("confirmed");
  review.set_reason("");
  auto upper = logic_->ReviewFinding(review, "auditor-2", /*pii=*/true, kNoDeadline);
  ASSERT_TRUE(upper.ok()) << upper.status();
  EXPECT_EQ(upper->finding_id(), dup->findings(0).finding_id());
  // Shown as ListFindings shows it: clear with the personal-data right.
  EXPECT_EQ(common::MaskIdNumber(upper->id_number()), dup->findings(0).id_number());
  EXPECT_NE(upper->id_number(), dup->findings(0).id_number());
  EXPECT_EQ(logic_->ListFindings(by_rule, false, kNoDeadline)->findings(0).review_state(), "confirmed");
  // Every decision kept, with who and when, oldest first; refused ones left no trace.
  auto got = logic_->GetFinding(dup->findings(0).finding_id(), false, kNoDeadline);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->review_history_size(), 3);
  EXPECT_EQ(got->review_history(0).to_state(), "dismissed");
  EXPECT_EQ(got->review_history(0).reviewer(), "auditor-1");
  EXPECT_EQ(got->review_history(1).from_state(), "dismissed");
  EXPECT_EQ(got->review_history(1).to_state(), "open");
  EXPECT_EQ(got->review_history(2).to_state(), "confirmed");
  EXPECT_EQ(got->review_history(2).reviewer(), "auditor-2");
  EXPECT_EQ(got->review_state(), "confirmed");
  review.set_finding_id(std::string(32, 'a'));
  EXPECT_EQ(logic_->ReviewFinding(review, "auditor-2", false, kNoDeadline).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(logic_->GetFinding(std::string(32, 'a'), false, kNoDeadline).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(logic_->GetFinding("xyz", false, kNoDeadline).status().code(), absl::StatusCode::kInvalidArgument);
}

// A run is an operation: answered at once with it running, followed to its end, joined by a
// second request for its scope; its result is the same as a run waited for.
TEST_F(DisbursementLogicTest, ACheckRunIsFollowedToItsEndAndItsScopeJoined) {
  LoadAll();
  const v1::CheckRun waited = Check();
  EXPECT_EQ(waited.state(), checks::v1::SUCCEEDED);
  EXPECT_EQ(waited.progress().phase(), "done");
  v1::RunCheckRequest request;
  request.set_as_of("2026-04-10");
  auto first = logic_->RunCheck(request, "zhang", kNoDeadline, absl::ZeroDuration());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = logic_->RunCheck(request, "li", kNoDeadline, absl::ZeroDuration());
  ASSERT_TRUE(second.ok()) << second.status();
  if (first->state() == checks::v1::RUNNING && second->state() == checks::v1::RUNNING) {
    EXPECT_EQ(second->run_id(), first->run_id()) << "the second request did not join the run going";
    EXPECT_EQ(second->requested_by(), "zhang");
  }
  auto done = logic_->WaitCheckRun(first->run_id(), absl::Now() + absl::Seconds(60));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), checks::v1::SUCCEEDED);
  EXPECT_EQ(done->requested_by(), "zhang");
  EXPECT_FALSE(done->finished_at().empty());
  ASSERT_EQ(done->counts_size(), waited.counts_size());
  for (int i = 0; i < waited.counts_size(); ++i) EXPECT_EQ(done->counts(i).count(), waited.counts(i).count());
  auto read = logic_->GetCheckRun(first->run_id(), kNoDeadline);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->state(), checks::v1::SUCCEEDED);
  EXPECT_EQ(read->payments_checked(), waited.payments_checked());
  // The same findings, byte for byte, as the run waited for.
  EXPECT_EQ(Export(first->run_id(), true), Export(waited.run_id(), true));
  // A scope the check refuses is refused before anything starts.
  request.set_program_code("NOPE");
  EXPECT_EQ(logic_->RunCheck(request, "zhang", kNoDeadline).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(logic_->GetCheckRun("20260101T000000.000Z-00000000", kNoDeadline).status().code(),
            absl::StatusCode::kNotFound);
}

// Paging through "latest" stays in the run the first page came from, though a run finished
// meanwhile (the scheduler runs checks on its own).
TEST_F(DisbursementLogicTest, FindingPagesStayInTheirRun) {
  LoadAll();
  const v1::CheckRun first = Check();
  v1::ListFindingsRequest all;
  all.set_run_id(first.run_id());
  all.set_page_size(1000);
  auto expected = logic_->ListFindings(all, false, kNoDeadline);
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_GE(expected->findings_size(), 3);
  v1::ListFindingsRequest page;
  page.set_page_size(1);
  auto one = logic_->ListFindings(page, false, kNoDeadline);  // latest = first
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_FALSE(one->next_page_token().empty());
  // Another run (of one programme and period) finishes: "latest" is now that run.
  now_ += absl::Minutes(1);
  v1::RunCheckRequest other;
  other.set_program_code("WBBZ");
  other.set_period("2026-03");
  other.set_as_of("2026-04-10");
  auto second = logic_->RunCheck(other);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_NE(second->run_id(), first.run_id());
  ASSERT_EQ(logic_->GetCheckRun("latest", kNoDeadline)->run_id(), second->run_id());
  page.set_page_token(one->next_page_token());
  auto two = logic_->ListFindings(page, false, kNoDeadline);
  ASSERT_TRUE(two.ok()) << two.status();
  ASSERT_EQ(two->findings_size(), 1);
  EXPECT_EQ(two->findings(0).finding_id(), expected->findings(1).finding_id());
  // A token of one run is refused for another run named explicitly.
  page.set_run_id(second->run_id());
  const absl::Status wrong_run = logic_->ListFindings(page, false, kNoDeadline).status();
  EXPECT_EQ(wrong_run.code(), absl::StatusCode::kInvalidArgument) << wrong_run;
  ASSERT_EQ(common::FieldViolationsOf(wrong_run).size(), 1u);
  EXPECT_EQ(common::FieldViolationsOf(wrong_run)[0].field, "page_token");
}

TEST_F(DisbursementLogicTest, RequestsAreValidated) {
  LoadAll();
  v1::RunCheckRequest bad;
  bad.set_period("2026-13");
  auto r = logic_->RunCheck(bad);
  EXPECT_EQ(common::FieldViolationsOf(r.status())[0].field, "period");
  bad.set_period("");
  bad.set_as_of("2026-04-31");
  EXPECT_EQ(common::FieldViolationsOf(logic_->RunCheck(bad).status())[0].field, "as_of");
  bad.set_as_of("");
  bad.set_program_code("NOPE");
  EXPECT_EQ(logic_->RunCheck(bad).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(logic_->GetCheckRun("nope", kNoDeadline).status().code(), absl::StatusCode::kNotFound);
  v1::ListRecipientsRequest no_org;
  EXPECT_EQ(common::FieldViolationsOf(logic_->ListRecipients(no_org, false, kNoDeadline).status())[0].field, "org_code");
  v1::ListEntitlementsRequest wrong_form;
  wrong_form.set_program_code("GDBT");
  wrong_form.set_period("2026");
  EXPECT_EQ(common::FieldViolationsOf(logic_->ListEntitlements(wrong_form, false, kNoDeadline).status())[0].field, "period");
}

// A row repeating an earlier row's key in the same file is refused on its line, naming that
// line: a person's account from one date (recipients), a person's enrolment in one programme
// from one period (enrolments). The same person with another date or period is kept.
TEST_F(DisbursementLogicTest, RowsRepeatingAKeyInOneFileAreRefusedNamingTheFirst) {
  ASSERT_EQ(Ingest(FileKind::kProgrammes, kProgrammes).inserted(), 2);
  const std::string header = "id_number,name,org_code,household_id,is_household_head,account_no,account_since,is_cadre\n";
  auto recipients = Ingest(FileKind::kRecipients,
                           absl::StrCat(header, Id(1), ",张三,V001,H1,1,622200000000000001,2025-01-01,0\n",  // line 2
                                        Id(1), ",张三,V001,H1,1,622200000000000011,2026-01-01,0\n",          // line 3
                                        Id(2), ",李四,V001,H2,1,622200000000000002,2025-01-01,0\n",          // line 4
                                        Id(1), ",张三,V001,H1,1,622200000000000001,2025-01-01,0\n"));        // line 5
  EXPECT_EQ(recipients.inserted(), 3);
  EXPECT_EQ(Errors(recipients), std::vector<std::string>{"5 account_since DUPLICATE_IN_FILE"});
  ASSERT_EQ(recipients.errors_size(), 1);
  EXPECT_NE(recipients.errors(0).message().find("line 2"), std::string::npos) << recipients.errors(0).message();
  auto enrolments = Ingest(FileKind::kEnrolments,
                           absl::StrCat("program_code,id_number,amount_fen,from_period,to_period\n",
                                        "GDBT,", Id(1), ",,2026-03,\n",   // line 2
                                        "GDBT,", Id(1), ",,2026-04,\n",   // line 3: another period
                                        "WBBZ,", Id(1), ",,2026-03,\n",   // line 4: another programme
                                        "GDBT,", Id(2), ",,2026-03,\n",   // line 5: another person
                                        "GDBT,", Id(1), ",,2026-03,\n")); // line 6
  EXPECT_EQ(enrolments.inserted(), 4);
  EXPECT_EQ(Errors(enrolments), std::vector<std::string>{"6 id_number DUPLICATE_IN_FILE"});
  ASSERT_EQ(enrolments.errors_size(), 1);
  EXPECT_NE(enrolments.errors(0).message().find("line 2"), std::string::npos) << enrolments.errors(0).message();
}

// The member registry's tree, fixed: county C, township T1 with villages V001 and V002, township
// T2 with V003 (no roll), and village V009 under C directly.
class FixedTree final : public OrganisationTree {
 public:
  absl::StatusOr<std::vector<std::string>> Subtree(const std::string& org_code) override {
    ++calls;
    if (org_code == "C" && v001_moved) return std::vector<std::string>{"C", "T1", "T2", "V002", "V003", "V009"};
    if (org_code == "C") return std::vector<std::string>{"C", "T1", "T2", "V001", "V002", "V003", "V009"};
    if (org_code == "T1") return std::vector<std::string>{"T1", "V001", "V002"};
    if (org_code == "T2") return std::vector<std::string>{"T2", "V003"};
    if (org_code == "V001" || org_code == "V002" || org_code == "V003") return std::vector<std::string>{org_code};
    if (org_code == "DOWN") return absl::UnavailableError("membership at x: unavailable");
    return absl::NotFoundError(absl::StrCat("org_code: no organisation ", org_code, " in the member registry"));
  }
  absl::Status Known(const std::string& org_code) override { return Subtree(org_code).status(); }
  int calls = 0;
  bool v001_moved = false;  // V001 moved out of C's subtree
};

TEST_F(DisbursementLogicTest, RollsOfAVillageSubtreePageAcrossVillages) {
  FixedTree tree;
  logic_ = std::make_unique<DisbursementLogic>(*pool_, pii_, kinship_, nullptr, [this] { return now_; },
                                               DisbursementLogic::kDefaultPersonCacheEntries, &tree);
  LoadAll();
  // Every page size walks the same rows: V001's five in household order, then V002's one.
  std::vector<std::string> whole;
  for (int page_size : {1, 2, 5, 6, 100}) {
    v1::ListRecipientsRequest roll;
    roll.set_org_code("C");
    roll.set_page_size(page_size);
    std::vector<std::string> seen;
    int pages = 0;
    while (true) {
      auto page = logic_->ListRecipients(roll, true, kNoDeadline);
      ASSERT_TRUE(page.ok()) << page.status();
      ++pages;
      EXPECT_LE(page->recipients_size(), page_size);
      for (const auto& r : page->recipients()) seen.push_back(absl::StrCat(r.org_code(), ":", r.household_id(), ":", r.name()));
      if (page->next_page_token().empty()) break;
      EXPECT_EQ(page->recipients_size(), page_size);
      roll.set_page_token(page->next_page_token());
    }
    EXPECT_EQ(pages, (6 + page_size - 1) / page_size) << page_size;
    if (whole.empty()) whole = seen;
    EXPECT_EQ(seen, whole) << page_size;
  }
  ASSERT_EQ(whole.size(), 6u);
  EXPECT_EQ(whole.front().substr(0, 8), "V001:H1:");
  EXPECT_EQ(whole.back(), "V002:H5:孙六");
  EXPECT_TRUE(std::is_sorted(whole.begin(), whole.end(), [](const std::string& a, const std::string& b) {
    return a.substr(0, 7) < b.substr(0, 7);  // village, household
  }));

  // A township: its villages only; a village: its roll; a village without a roll: empty.
  auto count = [&](const std::string& org) -> int {
    v1::ListRecipientsRequest r;
    r.set_org_code(org);
    r.set_page_size(100);
    auto page = logic_->ListRecipients(r, false, kNoDeadline);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? page->recipients_size() : -1;
  };
  EXPECT_EQ(count("T1"), 6);
  EXPECT_EQ(count("V002"), 1);
  EXPECT_EQ(count("T2"), 0);
  EXPECT_EQ(count("V003"), 0);

  // An organisation the registry does not know is NOT_FOUND; a registry that cannot be asked is
  // UNAVAILABLE, not an empty or partial roll.
  v1::ListRecipientsRequest unknown;
  unknown.set_org_code("NOPE");
  auto nope = logic_->ListRecipients(unknown, false, kNoDeadline);
  EXPECT_EQ(nope.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(nope.status().message().find("NOPE"), std::string::npos);
  unknown.set_org_code("DOWN");
  EXPECT_EQ(logic_->ListRecipients(unknown, false, kNoDeadline).status().code(), absl::StatusCode::kUnavailable);

  // A token whose village has left the subtree meanwhile goes on with the next village.
  v1::ListRecipientsRequest first;
  first.set_org_code("C");
  first.set_page_size(1);
  auto one = logic_->ListRecipients(first, false, kNoDeadline);
  ASSERT_TRUE(one.ok());
  tree.v001_moved = true;  // between the pages, V001 moves out of C
  first.set_page_token(one->next_page_token());
  auto rest = logic_->ListRecipients(first, false, kNoDeadline);
  ASSERT_TRUE(rest.ok()) << rest.status();
  ASSERT_EQ(rest->recipients_size(), 1);  // V002's one (V003 and V009 have no roll)
  EXPECT_EQ(rest->recipients(0).org_code(), "V002");
  tree.v001_moved = false;
  // A token of another organisation's roll is not this one's.
  first.set_org_code("T2");
  EXPECT_EQ(common::FieldViolationsOf(logic_->ListRecipients(first, false, kNoDeadline).status())[0].field,
            "page_token");
  first.set_org_code("C");
  // A token this service did not issue.
  first.set_page_token("bm90IGEgdG9rZW4");
  EXPECT_EQ(common::FieldViolationsOf(logic_->ListRecipients(first, false, kNoDeadline).status())[0].field,
            "page_token");

  // The enrolments of the subtree's rolls: every page size walks the same seven, in roll order
  // (village, household, person), then programme.
  std::vector<std::string> enrolled;
  for (int page_size : {1, 2, 3, 7, 100}) {
    v1::ListEnrolmentsRequest r;
    r.set_org_code("C");
    r.set_page_size(page_size);
    std::vector<std::string> seen;
    while (true) {
      auto page = logic_->ListEnrolments(r, false, kNoDeadline);
      ASSERT_TRUE(page.ok()) << page.status();
      for (const auto& e : page->enrolments()) {
        seen.push_back(absl::StrCat(e.org_code(), ":", e.household_id(), ":", e.name(), ":", e.program_code(), ":",
                                    e.from_period(), "-", e.to_period(), ":",
                                    e.has_amount_fen() ? absl::StrCat(e.amount_fen()) : "programme"));
        EXPECT_EQ(e.id_number().find("**********"), 4u) << e.id_number();
      }
      if (page->next_page_token().empty()) break;
      EXPECT_EQ(page->enrolments_size(), page_size);
      r.set_page_token(page->next_page_token());
    }
    if (enrolled.empty()) enrolled = seen;
    EXPECT_EQ(seen, enrolled) << page_size;
  }
  ASSERT_EQ(enrolled.size(), 7u);
  EXPECT_EQ(enrolled.front(), "V001:H1:张*明:GDBT:2026-03-:programme");
  EXPECT_EQ(enrolled[1], "V001:H1:张*明:WBBZ:2026-03-:programme");
  EXPECT_EQ(enrolled.back(), "V002:H5:孙*:GDBT:2026-03-2026-12:9000");
  {
    v1::ListEnrolmentsRequest r;
    r.set_org_code("T1");
    r.set_program_code("WBBZ");
    auto page = logic_->ListEnrolments(r, true, kNoDeadline);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_EQ(page->enrolments_size(), 1);
    EXPECT_EQ(page->enrolments(0).id_number(), Id(1));  // with the right: in clear
    EXPECT_EQ(page->enrolments(0).name(), "张三明");
    r.set_program_code("NOPE");
    EXPECT_EQ(logic_->ListEnrolments(r, false, kNoDeadline).status().code(), absl::StatusCode::kNotFound);
    r.set_program_code("");
    r.set_org_code("NOPE");
    EXPECT_EQ(logic_->ListEnrolments(r, false, kNoDeadline).status().code(), absl::StatusCode::kNotFound);
    r.set_org_code("C");
    r.set_page_token(first.page_token());  // a roll's token is not an enrolments token
    EXPECT_EQ(common::FieldViolationsOf(logic_->ListEnrolments(r, false, kNoDeadline).status())[0].field, "page_token");
  }

  // The civil events of the subtree's rolls: the one death, masked; none under T2; NOT_FOUND for
  // an organisation the registry does not know.
  {
    v1::ListCivilEventsRequest r;
    r.set_org_code("C");
    auto page = logic_->ListCivilEvents(r, false, kNoDeadline);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_EQ(page->civil_events_size(), 1);
    const auto& c = page->civil_events(0);
    EXPECT_EQ(absl::StrCat(c.org_code(), ":", c.household_id(), ":", c.name(), ":", c.event(), ":", c.event_date(), ":",
                           c.source_ref()),
              "V001:H4:钱*故:death:2026-02-10:MZ-2026-001");
    EXPECT_EQ(c.id_number(), common::MaskIdNumber(Id(5)));
    EXPECT_TRUE(page->next_page_token().empty());
    r.set_org_code("T2");
    page = logic_->ListCivilEvents(r, false, kNoDeadline);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->civil_events_size(), 0);
    r.set_org_code("NOPE");
    EXPECT_EQ(logic_->ListCivilEvents(r, false, kNoDeadline).status().code(), absl::StatusCode::kNotFound);
  }
  {
    // Two events of one person page one at a time, in (event, date) order.
    ASSERT_EQ(Ingest(FileKind::kCivilEvents,
                     absl::StrCat("id_number,event,event_date,source_ref\n", Id(6), ",emigration,2026-05-01,MZ-2\n", Id(6),
                                  ",death,2026-06-01,MZ-3\n"))
                  .inserted(),
              2);
    v1::ListCivilEventsRequest r;
    r.set_org_code("V002");
    r.set_page_size(1);
    std::vector<std::string> seen;
    while (true) {
      auto page = logic_->ListCivilEvents(r, false, kNoDeadline);
      ASSERT_TRUE(page.ok()) << page.status();
      for (const auto& c : page->civil_events()) seen.push_back(absl::StrCat(c.event(), ":", c.event_date()));
      if (page->next_page_token().empty()) break;
      r.set_page_token(page->next_page_token());
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"death:2026-06-01", "emigration:2026-05-01"}));
  }
  {
    // The disclosure of an organisation or programme nobody registered is NOT_FOUND, not empty.
    v1::ListDisclosureRequest d;
    d.set_org_code("V003");
    d.set_period("2026-03");
    auto none = logic_->ListDisclosure(d, kNoDeadline);
    ASSERT_TRUE(none.ok()) << none.status();
    EXPECT_EQ(none->payments_size(), 0);
    d.set_org_code("NOPE");
    EXPECT_EQ(logic_->ListDisclosure(d, kNoDeadline).status().code(), absl::StatusCode::kNotFound);
    d.set_org_code("V001");
    d.set_program_code("NOPE");
    EXPECT_EQ(logic_->ListDisclosure(d, kNoDeadline).status().code(), absl::StatusCode::kNotFound);
    d.set_program_code("GDBT");
    auto some = logic_->ListDisclosure(d, kNoDeadline);
    ASSERT_TRUE(some.ok()) << some.status();
    EXPECT_GT(some->payments_size(), 0);
  }
  logic_.reset();  // before `tree`
}

TEST_F(DisbursementLogicTest, RollsEntitlementsAndDisclosure) {
  LoadAll();
  v1::ListRecipientsRequest roll;
  roll.set_org_code("V001");
  roll.set_page_size(2);
  std::vector<std::string> seen;
  while (true) {
    auto page = logic_->ListRecipients(roll, false, kNoDeadline);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& r : page->recipients()) {
      EXPECT_EQ(r.id_number(), common::MaskIdNumber(r.id_number().size() == 18 ? r.id_number() : ""));
      seen.push_back(absl::StrCat(r.household_id(), ":", r.name(), ":", r.account_no()));
    }
    if (page->next_page_token().empty()) break;
    roll.set_page_token(page->next_page_token());
  }
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_NE(std::find(seen.begin(), seen.end(), "H3:赵*卡:**************0044"), seen.end());
  // With the right to see personal data: the ID number, name and account in clear.
  roll.clear_page_token();
  roll.set_page_size(10);
  auto clear = logic_->ListRecipients(roll, true, kNoDeadline);
  ASSERT_TRUE(clear.ok()) << clear.status();
  bool found = false;
  for (const auto& r : clear->recipients()) {
    if (r.id_number() != Id(4)) continue;
    found = true;
    EXPECT_EQ(r.name(), "赵换卡");
    EXPECT_EQ(r.account_no(), "622200000000000044");
  }
  EXPECT_TRUE(found);

  v1::ListEntitlementsRequest ent;
  ent.set_program_code("GDBT");
  ent.set_period("2026-03");
  auto entitlements = logic_->ListEntitlements(ent, false, kNoDeadline);
  ASSERT_TRUE(entitlements.ok()) << entitlements.status();
  std::map<std::string, std::string> reasons;
  for (const auto& e : entitlements->entitlements()) {
    reasons[e.id_number()] = e.entitled() ? absl::StrCat("entitled ", e.amount_fen()) : e.reason();
  }
  EXPECT_EQ(reasons[common::MaskIdNumber(Id(1))], "entitled 12000");
  auto clear_entitlements = logic_->ListEntitlements(ent, true, kNoDeadline);
  ASSERT_TRUE(clear_entitlements.ok()) << clear_entitlements.status();
  EXPECT_TRUE(std::any_of(clear_entitlements->entitlements().begin(), clear_entitlements->entitlements().end(),
                          [](const auto& e) { return e.id_number() == Id(1) && e.entitled(); }));
  EXPECT_EQ(reasons[common::MaskIdNumber(Id(3))], "CADRE_HOUSEHOLD");
  EXPECT_EQ(reasons[common::MaskIdNumber(Id(5))], "DECEASED");
  EXPECT_EQ(reasons[common::MaskIdNumber(Id(6))], "entitled 9000");

  v1::ListDisclosureRequest d;
  d.set_org_code("V001");
  d.set_period("2026-03");
  auto disclosed = logic_->ListDisclosure(d, kNoDeadline);
  ASSERT_TRUE(disclosed.ok()) << disclosed.status();
  std::vector<std::string> rows;
  for (const auto& p : disclosed->payments()) {
    rows.push_back(absl::StrCat(p.program_code(), " ", p.name(), " ", p.id_number(), " ", p.amount_fen(), " ",
                                p.paid_on()));
  }
  EXPECT_EQ(rows.size(), 6u);  // P001..P005 and P007 of V001 (P008 is a reversal)
  for (const auto& row : rows) EXPECT_EQ(row.find(Id(1)), std::string::npos) << row;
  EXPECT_NE(std::find(rows.begin(), rows.end(),
                      absl::StrCat("GDBT 张*明 ", common::MaskIdNumber(Id(1)), " 12000 2026-03-10")),
            rows.end());
}

// The disclosure nets a payment of the reversals that name it (read from payment_reversals,
// V004), written by the bulk path (into an empty table) and by a later ingest alike; a reversal
// that would bring the payment below zero is not netted.
// A page token continues the listing that issued it, and no other: a token of another village,
// programme, period or filter is INVALID_ARGUMENT naming page_token (it was taken as a position).
TEST_F(DisbursementLogicTest, PageTokensBelongToTheirRequest) {
  LoadAll();
  auto token_field = [](const absl::Status& s) {
    return s.code() == absl::StatusCode::kInvalidArgument ? common::FieldViolationsOf(s)[0].field : s.ToString();
  };
  v1::ListRecipientsRequest roll;
  roll.set_org_code("V001");
  roll.set_page_size(1);
  auto first = logic_->ListRecipients(roll, false, kNoDeadline);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_FALSE(first->next_page_token().empty());
  roll.set_page_token(first->next_page_token());
  EXPECT_TRUE(logic_->ListRecipients(roll, false, kNoDeadline).ok());
  roll.set_org_code("V002");
  EXPECT_EQ(token_field(logic_->ListRecipients(roll, false, kNoDeadline).status()), "page_token");

  v1::ListEntitlementsRequest ent;
  ent.set_program_code("GDBT");
  ent.set_period("2026-03");
  ent.set_page_size(1);
  auto e1 = logic_->ListEntitlements(ent, false, kNoDeadline);
  ASSERT_TRUE(e1.ok()) << e1.status();
  ASSERT_FALSE(e1->next_page_token().empty());
  ent.set_page_token(e1->next_page_token());
  ent.set_period("2026-04");
  EXPECT_EQ(token_field(logic_->ListEntitlements(ent, false, kNoDeadline).status()), "page_token");

  v1::ListDisclosureRequest d;
  d.set_org_code("V001");
  d.set_period("2026-03");
  d.set_page_size(1);
  auto d1 = logic_->ListDisclosure(d, kNoDeadline);
  ASSERT_TRUE(d1.ok()) << d1.status();
  ASSERT_FALSE(d1->next_page_token().empty());
  d.set_page_token(d1->next_page_token());
  d.set_program_code("GDBT");
  EXPECT_EQ(token_field(logic_->ListDisclosure(d, kNoDeadline).status()), "page_token");

  Check();
  v1::ListFindingsRequest f;
  f.set_page_size(1);
  auto f1 = logic_->ListFindings(f, false, kNoDeadline);
  ASSERT_TRUE(f1.ok()) << f1.status();
  ASSERT_FALSE(f1->next_page_token().empty());
  f.set_page_token(f1->next_page_token());
  EXPECT_TRUE(logic_->ListFindings(f, false, kNoDeadline).ok());
  f.set_rule("LATE");
  EXPECT_EQ(token_field(logic_->ListFindings(f, false, kNoDeadline).status()), "page_token");
  // A token of the right shape naming no run is refused as a token, not as an unknown run.
  f.clear_rule();
  f.set_page_token(absl::WebSafeBase64Escape("findings:/\x1fnosuchrun\x1f0"));
  EXPECT_EQ(token_field(logic_->ListFindings(f, false, kNoDeadline).status()), "page_token");
}

// The roll shows the account registered now: the latest not after today; none for a person
// whose only account starts later.
TEST_F(DisbursementLogicTest, TheRollShowsNoAccountBeforeItsDay) {
  ASSERT_EQ(Ingest(FileKind::kRecipients,
                   absl::StrCat("id_number,name,org_code,household_id,is_household_head,account_no,account_since\n",
                                Id(31), ",未来,V031,H31,1,622200000000000031,2026-12-01\n",
                                Id(32), ",现在,V031,H32,1,622200000000000032,2026-01-01\n",
                                Id(32), ",现在,V031,H32,1,622200000000000320,2026-12-01\n"))
                .refused(),
            0);
  v1::ListRecipientsRequest roll;
  roll.set_org_code("V031");
  auto page = logic_->ListRecipients(roll, true, kNoDeadline);
  ASSERT_TRUE(page.ok()) << page.status();
  std::map<std::string, std::string> account;
  for (const auto& r : page->recipients()) account[r.id_number()] = r.account_no();
  EXPECT_EQ(account[Id(31)], "");
  EXPECT_EQ(account[Id(32)], "622200000000000032");
}

TEST_F(DisbursementLogicTest, DisclosureNetsPaymentsOfTheirReversals) {
  ASSERT_EQ(Ingest(FileKind::kProgrammes, kProgrammes).inserted(), 2);
  ASSERT_EQ(Ingest(FileKind::kRecipients, Recipients()).refused(), 0);
  const std::string header = "payment_id,batch_id,program_code,period,id_number,account_no,amount_fen,paid_at,reverses\n";
  ASSERT_EQ(Ingest(FileKind::kPayments,
                   absl::StrCat(header, "R1,B1,GDBT,2026-03,", Id(1), ",622200000000000001,12000,2026-03-10T09:00:00+08:00,\n",
                                "R2,B1,GDBT,2026-03,", Id(2), ",622200000000000002,12000,2026-03-10T09:00:00+08:00,\n",
                                "R3,B1,GDBT,2026-03,", Id(3), ",622200000000000003,12000,2026-03-10T09:00:00+08:00,\n",
                                "R4,B1,GDBT,2026-03,", Id(1), ",622200000000000001,-12000,2026-03-11T09:00:00+08:00,R1\n"))
                .inserted(),
            4);
  ASSERT_EQ(Ingest(FileKind::kPayments,
                   absl::StrCat(header, "R5,B1,GDBT,2026-03,", Id(2), ",622200000000000002,-5000,2026-03-12T09:00:00+08:00,R2\n",
                                "R6,B1,GDBT,2026-03,", Id(3), ",622200000000000003,-20000,2026-03-12T09:00:00+08:00,R3\n",
                                // Two reversals of R7: the second (by paid_at) would overdraw it and is skipped,
                                // as the check skips it (BAD_REVERSAL); the first still applies.
                                "R7,B1,GDBT,2026-03,", Id(4), ",622200000000000004,12000,2026-03-10T09:00:00+08:00,\n",
                                "R9,B1,GDBT,2026-03,", Id(4), ",622200000000000004,-8000,2026-03-14T09:00:00+08:00,R7\n",
                                "R8,B1,GDBT,2026-03,", Id(4), ",622200000000000004,-5000,2026-03-13T09:00:00+08:00,R7\n"))
                .inserted(),
            5);
  v1::ListDisclosureRequest d;
  d.set_org_code("V001");
  d.set_period("2026-03");
  auto disclosed = logic_->ListDisclosure(d, kNoDeadline);
  ASSERT_TRUE(disclosed.ok()) << disclosed.status();
  std::map<std::string, int64_t> amounts;
  for (const auto& p : disclosed->payments()) amounts[p.id_number()] += p.amount_fen();
  EXPECT_EQ(disclosed->payments_size(), 3);  // R2, R3, R7: a reversal is not listed itself
  EXPECT_EQ(amounts.count(common::MaskIdNumber(Id(1))), 0u);  // R1 reversed in full: nothing was paid
  EXPECT_EQ(amounts[common::MaskIdNumber(Id(2))], 7000);   // R2 less 5000
  EXPECT_EQ(amounts[common::MaskIdNumber(Id(3))], 12000);  // -20000 would bring R3 below zero: not netted
  EXPECT_EQ(amounts[common::MaskIdNumber(Id(4))], 7000);   // R7 less R8's 5000; R9's 8000 would overdraw
  // A period not of the programme's form is refused, naming it (GDBT is monthly).
  v1::ListDisclosureRequest yearly = d;
  yearly.set_program_code("GDBT");
  yearly.set_period("2026");
  auto wrong_form = logic_->ListDisclosure(yearly, kNoDeadline);
  EXPECT_EQ(wrong_form.status().code(), absl::StatusCode::kInvalidArgument) << wrong_form.status();
  EXPECT_EQ(common::FieldViolationsOf(wrong_form.status())[0].field, "period");
  // Pages of one: the first row in order (R1, reversed in full) is passed over, no page is empty.
  d.set_page_size(1);
  std::vector<std::string> paged;
  while (true) {
    auto page = logic_->ListDisclosure(d, kNoDeadline);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_EQ(page->payments_size(), 1);
    paged.push_back(absl::StrCat(page->payments(0).id_number(), " ", page->payments(0).amount_fen()));
    if (page->next_page_token().empty()) break;
    d.set_page_token(page->next_page_token());
  }
  EXPECT_EQ(paged, (std::vector<std::string>{absl::StrCat(common::MaskIdNumber(Id(2)), " 7000"),
                                             absl::StrCat(common::MaskIdNumber(Id(3)), " 12000"),
                                             absl::StrCat(common::MaskIdNumber(Id(4)), " 7000")}));
  auto conn = pool_->Acquire(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(conn.ok()) << conn.status();
  std::unique_ptr<sql::ResultSet> rs(
      std::unique_ptr<sql::Statement>((*conn)->createStatement())
          ->executeQuery("SELECT GROUP_CONCAT(CONCAT(reverses, '<', payment_id, ':', amount_fen) ORDER BY payment_id) "
                         "FROM payment_reversals"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(rs->getString(1), "R1<R4:-12000,R2<R5:-5000,R3<R6:-20000,R7<R8:-5000,R7<R9:-8000");
}

// The check decrypts ID numbers on a second connection beside the other reads, then turns person
// numbers into keys: a person whose stored ID number cannot be read is left out with their rows,
// and said so, exactly as when the key was looked up row by row.
TEST_F(DisbursementLogicTest, CheckLeavesOutThePersonWhoseIdNumberCannotBeRead) {
  LoadAll();
  {
    auto conn = pool_->Acquire(absl::Now() + absl::Seconds(10));
    ASSERT_TRUE(conn.ok()) << conn.status();
    std::unique_ptr<sql::PreparedStatement> st(
        (*conn)->prepareStatement("UPDATE persons SET id_sealed = UNHEX('00') WHERE id_hash = ?"));
    st->setString(1, pii_.Hash(Id(7)));  // only in P009 (NOT_ENTITLED)
    ASSERT_EQ(st->executeUpdate(), 1);
  }
  v1::CheckRun run = Check();
  ASSERT_EQ(run.warnings_size(), 3);
  EXPECT_EQ(run.warnings(0), "1 stored ID numbers could not be decrypted with this key; their rows were left out of the run");
  EXPECT_NE(run.warnings(1).find("CADRE_KIN"), std::string::npos);
  EXPECT_EQ(run.warnings(2), "1 stored rows name a person whose ID number could not be read; they were left out of the run");
  const std::string masked = Export(run.run_id(), false);
  EXPECT_EQ(masked.find("P009"), std::string::npos);
  // Every other finding as before (the batch's own sums leave P009 out too).
  const std::vector<std::string> expected = absl::StrSplit(kExpectedFindingsCsv, '\n');
  for (const std::string& line : expected) {
    if (line.empty() || absl::StartsWith(line, "NOT_ENTITLED,") || absl::StartsWith(line, "BATCH_MISMATCH,")) continue;
    EXPECT_NE(masked.find(line), std::string::npos) << line;
  }
  EXPECT_NE(masked.find("are 8 payments totalling 72000 fen"), std::string::npos) << masked;
}

// Recorded kin, both ways, as the member registry keeps them; `fail` makes every lookup a warning.
class FakeKinship final : public KinshipSource {
 public:
  void Relate(const std::string& a, const std::string& b) {
    kin_[*PersonKeyOf(a)].push_back(*PersonKeyOf(b));
    kin_[*PersonKeyOf(b)].push_back(*PersonKeyOf(a));
  }
  absl::StatusOr<std::vector<PersonKey>> KinOfCadres(const std::vector<PersonKey>& asked,
                                                     std::vector<std::string>& warnings) override {
    ++calls;
    if (fail) {
      warnings.push_back("CADRE_KIN: membership at test could not be reached");
      return std::vector<PersonKey>{};
    }
    std::vector<PersonKey> out;
    for (PersonKey k : asked) {
      if (auto it = kin_.find(k); it != kin_.end()) out.insert(out.end(), it->second.begin(), it->second.end());
    }
    return out;
  }
  bool fail = false;
  int calls = 0;

 private:
  std::map<PersonKey, std::vector<PersonKey>> kin_;
};

// ListEntitlements answers as the check decides: a household programme's one entitlement is the
// head's (the other enrolled member is told who holds it), and a cadre's recorded kin outside the
// household is excluded where the programme excludes cadre households.
TEST_F(DisbursementLogicTest, EntitlementsOfHouseholdsAndOfCadresKinAreTheChecks) {
  FakeKinship kinship;
  kinship.Relate(Id(23), Id(24));
  DisbursementLogic logic(*pool_, pii_, kinship, nullptr, [this] { return now_; });
  auto ingest = [&](FileKind kind, const std::string& csv) {
    auto in = logic.StartIngest(kind);
    in->Feed(csv);
    auto report = in->Finish();
    ASSERT_TRUE(report.ok()) << report.status();
    ASSERT_EQ(report->refused(), 0) << FileKindName(kind);
  };
  ingest(FileKind::kProgrammes,
         "program_code,name,unit,frequency,amount_fen,valid_from,valid_to,excludes_cadre_households,grace_days\n"
         "HHX,户补贴,household,monthly,30000,2026-01,,1,5\n");
  ingest(FileKind::kRecipients,
         absl::StrCat("id_number,name,org_code,household_id,is_household_head,account_no,account_since,is_cadre\n",
                      Id(21), ",户主,V001,HA,1,622200000000000021,2025-01-01,0\n",
                      Id(22), ",成员,V001,HA,0,622200000000000022,2025-01-01,0\n",
                      Id(23), ",亲属,V001,HB,1,622200000000000023,2025-01-01,0\n",
                      Id(24), ",村官,V002,HC,1,622200000000000024,2025-01-01,1\n",
                      Id(25), ",无关,V002,HD,1,622200000000000025,2025-01-01,0\n"));
  ingest(FileKind::kEnrolments, absl::StrCat("program_code,id_number,amount_fen,from_period,to_period\n",
                                             "HHX,", Id(21), ",,2026-01,\n", "HHX,", Id(22), ",,2026-01,\n",
                                             "HHX,", Id(23), ",,2026-01,\n", "HHX,", Id(25), ",25000,2026-01,\n"));
  v1::ListEntitlementsRequest request;
  request.set_program_code("HHX");
  request.set_period("2026-03");
  request.set_page_size(2);  // the household's two members on different pages
  std::map<std::string, std::string> answers;
  while (true) {
    auto page = logic.ListEntitlements(request, true, kNoDeadline);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& e : page->entitlements()) {
      answers[e.id_number()] = e.entitled() ? absl::StrCat("entitled ", e.amount_fen())
                                            : absl::StrCat(e.reason(), e.held_by().empty() ? "" : " by ", e.held_by());
    }
    if (page->next_page_token().empty()) break;
    request.set_page_token(page->next_page_token());
  }
  const std::map<std::string, std::string> expected = {
      {Id(21), "entitled 30000"},
      {Id(22), absl::StrCat("HOUSEHOLD_MEMBER by ", Id(21))},
      {Id(23), "CADRE_KIN"},
      {Id(25), "entitled 25000"}};
  EXPECT_EQ(answers, expected);
  // Without the right to see personal data, the holder is masked too.
  request.clear_page_token();
  request.set_page_size(10);
  auto masked = logic.ListEntitlements(request, false, kNoDeadline);
  ASSERT_TRUE(masked.ok()) << masked.status();
  for (const auto& e : masked->entitlements()) {
    if (e.reason() == "HOUSEHOLD_MEMBER") EXPECT_EQ(e.held_by(), common::MaskIdNumber(Id(21)));
  }
  // Kin that cannot be looked up: no answer rather than a wrong one.
  kinship.fail = true;
  auto failed = logic.ListEntitlements(request, false, kNoDeadline);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable) << failed.status();
}

// With no second connection to be had, the check reads the persons first on its own connection:
// the same findings, byte for byte.
TEST_F(DisbursementLogicTest, CheckWithOneConnectionFindsTheSame) {
  LoadAll();
  common::DbOptions one = options_;
  one.pool_size = 1;
  common::ConnectionPool pool(one, nullptr);
  DisbursementLogic logic(pool, pii_, kinship_, nullptr, [this] { return now_; });
  v1::RunCheckRequest request;
  request.set_as_of("2026-04-10");
  auto run = logic.RunCheck(request);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(Export(run->run_id(), false), kExpectedFindingsCsv);
}

TEST_F(DisbursementLogicTest, SchedulerRunsDueScopesOnceUntilTheDataChanges) {
  LoadAll();
  CheckScheduler scheduler(*logic_, absl::Hours(1));
  EXPECT_EQ(scheduler.RunDue(), 1);  // GDBT 2026-03 (scheduled 2026-03-10 + 5 days)
  EXPECT_EQ(scheduler.RunDue(), 0);
  auto run = logic_->GetCheckRun("latest", kNoDeadline);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->program_code(), "GDBT");
  EXPECT_EQ(run->period(), "2026-03");
  Ingest(FileKind::kCivilEvents, absl::StrCat("id_number,event,event_date,source_ref\n", Id(2), ",emigration,2026-03-01,\n"));
  EXPECT_EQ(scheduler.RunDue(), 1);
  now_ = absl::FromCivil(absl::CivilSecond(2026, 3, 12, 12, 0, 0), common::ChinaTimeZone());
  Ingest(FileKind::kCivilEvents, absl::StrCat("id_number,event,event_date,source_ref\n", Id(2), ",released,2026-03-02,\n"));
  EXPECT_EQ(scheduler.RunDue(), 0);  // not yet due
}

// A run made before a batch's grace ran out (as of an earlier date) does not count for it: the
// scheduler still checks once it is due, when what was left unpaid can be found.
TEST_F(DisbursementLogicTest, AnEarlierRunDoesNotStandForTheCheckDueAfterTheGrace) {
  LoadAll();
  Check("", "", "2026-03-12");  // before GDBT 2026-03's batch (2026-03-10) plus 5 days
  ASSERT_EQ(logic_->DueScopes(absl::CivilDay(2026, 4, 10))->size(), 1u);
  now_ += absl::Minutes(1);  // the scheduler's run is the latest
  CheckScheduler scheduler(*logic_, absl::Hours(1));
  EXPECT_EQ(scheduler.RunDue(), 1);
  auto run = logic_->GetCheckRun("latest", kNoDeadline);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->as_of(), "2026-04-10");
  EXPECT_EQ(scheduler.RunDue(), 0);
  // A run as of a day after the grace counts: nothing more is due.
  Ingest(FileKind::kCivilEvents, absl::StrCat("id_number,event,event_date,source_ref\n", Id(2), ",emigration,2026-03-01,\n"));
  Check("", "", "2026-03-16");
  EXPECT_EQ(scheduler.RunDue(), 0);
}

// Several scopes due at once are covered by one full check (each check reads everything anyway).
TEST_F(DisbursementLogicTest, SchedulerCoversSeveralDueScopesWithOneFullCheck) {
  LoadAll();
  ASSERT_EQ(Ingest(FileKind::kBatches, "batch_id,program_code,period,declared_count,declared_total_fen,scheduled_on\n"
                                       "BW03,WBBZ,2026-03,0,0,2026-03-31\n")
                .inserted(),
            1);
  ASSERT_EQ(logic_->DueScopes(absl::CivilDay(2026, 4, 10))->size(), 2u);
  CheckScheduler scheduler(*logic_, absl::Hours(1));
  EXPECT_EQ(scheduler.RunDue(), 1);
  auto run = logic_->GetCheckRun("latest", kNoDeadline);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->program_code(), "");
  EXPECT_EQ(run->period(), "");
  EXPECT_TRUE(logic_->DueScopes(absl::CivilDay(2026, 4, 10))->empty());
  EXPECT_EQ(scheduler.RunDue(), 0);
}

namespace grassroots::cadrepay {
namespace {

// The bulk path: LOAD DATA LOCAL INFILE through the driver, with its escaping.
TEST_F(DisbursementLogicTest, LoadRowsRoundTripsTextNullsAndBinaryAndSkipsExistingKeys) {
  auto conn = pool_->Acquire(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(conn.ok()) << conn.status();
  std::unique_ptr<sql::Statement>((*conn)->createStatement())
      ->execute("CREATE TABLE load_probe (k BIGINT PRIMARY KEY, t VARCHAR(100) NULL, b VARBINARY(40) NULL) "
                "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin");
  DisbursementRepository repo;
  const std::string nasty = std::string("a\tb\nc\\d\re") + std::string(1, '\0') + "f 张\U00020000 \\N 'q\"";
  const std::string binary = std::string("\0\t\n\\\xff\x01", 6);
  std::vector<SqlRow> rows = {
      {SqlValue::Int(1), SqlValue::Text(nasty), SqlValue::Text(absl::BytesToHexString(binary))},
      {SqlValue::Int(2), SqlValue::Null(), SqlValue::Null()},
      {SqlValue::Int(-3), SqlValue::Text(""), SqlValue::Text("")},
  };
  auto loaded = repo.LoadRows(**conn, "load_probe", "k, t, @b", "b = UNHEX(@b)", rows);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(*loaded, 3);
  std::unique_ptr<sql::ResultSet> rs(
      std::unique_ptr<sql::Statement>((*conn)->createStatement())
          ->executeQuery("SELECT k, t, t IS NULL, HEX(b), b IS NULL FROM load_probe ORDER BY k"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(rs->getInt64(1), -3);
  EXPECT_EQ(std::string(rs->getString(2).asStdString()), "");
  EXPECT_FALSE(rs->getBoolean(3));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(rs->getInt64(1), 1);
  EXPECT_EQ(std::string(rs->getString(2).asStdString()), nasty);
  EXPECT_EQ(std::string(rs->getString(4).asStdString()), absl::AsciiStrToUpper(absl::BytesToHexString(binary)));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(rs->getInt64(1), 2);
  EXPECT_TRUE(rs->getBoolean(3));
  EXPECT_TRUE(rs->getBoolean(5));
  // A key already stored is skipped (LOCAL), and the count says so.
  loaded = repo.LoadRows(**conn, "load_probe", "k, t, @b", "b = UNHEX(@b)",
                         {{SqlValue::Int(1), SqlValue::Text("other"), SqlValue::Null()},
                          {SqlValue::Int(4), SqlValue::Text("new"), SqlValue::Null()}});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(*loaded, 1);
  // The same values through InsertRows (literal SQL text), in several statements, upserted.
  std::vector<SqlRow> many;
  for (int k = 0; k < 30000; ++k) {
    many.push_back({SqlValue::Int(100 + k), SqlValue::Text(k % 2 ? nasty : "it's"), SqlValue::Text(binary)});
  }
  many.push_back({SqlValue::Int(1), SqlValue::Text("o'ther \\' x"), SqlValue::Null()});
  auto written = repo.InsertRows(**conn, "load_probe", {"k", "t", "b"}, many,
                                 " ON DUPLICATE KEY UPDATE t = VALUES(t), b = VALUES(b)");
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, 30000 + 2);  // an update counts 2
  rs.reset(std::unique_ptr<sql::Statement>((*conn)->createStatement())
               ->executeQuery("SELECT k, t, b FROM load_probe WHERE k IN (1, 100, 101) ORDER BY k"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(std::string(rs->getString(2).asStdString()), "o'ther \\' x");
  EXPECT_TRUE(rs->isNull(3));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(std::string(rs->getString(2).asStdString()), "it's");
  EXPECT_EQ(std::string(rs->getString(3).asStdString()), binary);
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(std::string(rs->getString(2).asStdString()), nasty);
}

// Payments written by the bulk path keep every field, and one file is one transaction: an
// ingest that loses a race for a payment_id keeps nothing of its file.
TEST_F(DisbursementLogicTest, TwoPaymentsIngestsAtOnceEndAsOneAfterTheOther) {
  ASSERT_EQ(Ingest(FileKind::kProgrammes, kProgrammes).inserted(), 2);
  const std::string header = "payment_id,batch_id,program_code,period,id_number,account_no,amount_fen,paid_at,reverses\n";
  const std::string a = absl::StrCat(
      header, "S1,B1,GDBT,2026-03,", Id(1), ",622200000000000001,12000,2026-03-10T09:00:00.123456+08:00,\n",
      "S2,B1,GDBT,2026-03,", Id(1), ",622200000000000001,-2000,2026-03-11T09:00:00Z,S1\n");
  const std::string b = absl::StrCat(
      header, "S3,B1,GDBT,2026-03,", Id(2), ",622200000000000002,12000,2026-03-10T09:00:00+08:00,\n",
      "S1,B1,GDBT,2026-03,", Id(1), ",622200000000000001,12000,2026-03-10T09:00:00.123456+08:00,\n");
  // Sent at the same time (S1 in both): the second waits for the first and finds S1 stored, so
  // both complete and the end state is that of one after the other (it was ABORTED before).
  auto [r1, r2] = SideBySide(FileKind::kPayments, a, b);
  ASSERT_TRUE(r1.ok()) << r1.status();
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r1->inserted() + r2->inserted(), 3);
  EXPECT_EQ(r1->unchanged() + r2->unchanged(), 1);
  EXPECT_EQ(Ingest(FileKind::kPayments, a).unchanged(), 2);
  EXPECT_EQ(Ingest(FileKind::kPayments, b).unchanged(), 2);
  // Every field as sent (microseconds, the reversal's reference, the NULL of a non-reversal).
  auto conn = pool_->Acquire(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(conn.ok()) << conn.status();
  DisbursementRepository repo;
  auto stored = repo.FindPayments(**conn, {"S1", "S2", "S3"});
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ(stored->size(), 3u);
  std::sort(stored->begin(), stored->end(),
            [](const StoredPayment& x, const StoredPayment& y) { return x.payment_id < y.payment_id; });
  EXPECT_EQ((*stored)[0].id_hash, pii_.Hash(Id(1)));
  EXPECT_EQ((*stored)[0].reverses, "");
  EXPECT_EQ(absl::ToUnixMicros((*stored)[0].paid_at) % 1000000, 123456);
  EXPECT_EQ((*stored)[0].amount_fen, 12000);
  EXPECT_EQ((*stored)[1].reverses, "S1");
  EXPECT_EQ((*stored)[1].amount_fen, -2000);
  EXPECT_EQ((*stored)[2].source_line, 2);
  std::unique_ptr<sql::ResultSet> rs(std::unique_ptr<sql::Statement>((*conn)->createStatement())
                                         ->executeQuery("SELECT COUNT(*), SUM(reverses IS NULL) FROM payments"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(rs->getInt64(1), 3);
  EXPECT_EQ(rs->getInt64(2), 2);
  // Each person once, sealed so the check can read it.
  auto persons = repo.FindPersons(**conn, {pii_.Hash(Id(1)), pii_.Hash(Id(2))});
  ASSERT_TRUE(persons.ok()) << persons.status();
  ASSERT_EQ(persons->size(), 2u);
  for (const auto& p : *persons) EXPECT_TRUE(pii_.Open(p.id_sealed).ok());
}

// Enrolments into an empty table take the bulk path: the same all-or-nothing.
TEST_F(DisbursementLogicTest, TwoEnrolmentsIngestsAtOnceEndAsOneAfterTheOther) {
  ASSERT_EQ(Ingest(FileKind::kProgrammes, kProgrammes).inserted(), 2);
  const std::string header = "program_code,id_number,amount_fen,from_period,to_period\n";
  const std::string a = absl::StrCat(header, "GDBT,", Id(1), ",9000,2026-03,2026-12\n", "WBBZ,", Id(1), ",,2026-03,\n");
  const std::string b = absl::StrCat(header, "GDBT,", Id(2), ",,2026-03,\n", "WBBZ,", Id(1), ",,2026-03,\n");
  auto [r1, r2] = SideBySide(FileKind::kEnrolments, a, b);
  ASSERT_TRUE(r1.ok()) << r1.status();
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r1->inserted() + r2->inserted(), 3);
  EXPECT_EQ(r1->unchanged() + r2->unchanged(), 1);
  EXPECT_EQ(Ingest(FileKind::kEnrolments, b).unchanged(), 2);
  auto r = Ingest(FileKind::kEnrolments, a);
  EXPECT_EQ(r.unchanged(), 2);
  EXPECT_EQ(r.inserted() + r.updated(), 0);
}

// A file larger than one load: several loads, overlapping the parse, in one transaction.
TEST_F(DisbursementLogicTest, ALargePaymentsFileIsLoadedWholeAndReingestedAsUnchanged) {
  ASSERT_EQ(Ingest(FileKind::kProgrammes, kProgrammes).inserted(), 2);
  std::string csv = "payment_id,batch_id,program_code,period,id_number,account_no,amount_fen,paid_at,reverses\n";
  constexpr int kRows = 250000;
  for (int k = 0; k < kRows; ++k) {
    absl::StrAppend(&csv, "L", k, ",B1,GDBT,2026-03,", Id(k % 500), ",622200000000000001,", 100 + k,
                    ",2026-03-10T09:00:00+08:00,\n");
  }
  absl::StrAppend(&csv, "L7,B1,GDBT,2026-03,", Id(1), ",622200000000000001,1,2026-03-10T09:00:00+08:00,\n");
  auto r = Ingest(FileKind::kPayments, csv, 1 << 16);
  EXPECT_EQ(r.inserted(), kRows);
  EXPECT_EQ(Errors(r), std::vector<std::string>{absl::StrCat(kRows + 2, " payment_id DUPLICATE_IN_FILE")});
  auto conn = pool_->Acquire(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(conn.ok()) << conn.status();
  std::unique_ptr<sql::ResultSet> rs(
      std::unique_ptr<sql::Statement>((*conn)->createStatement())
          ->executeQuery("SELECT COUNT(*), SUM(amount_fen), COUNT(DISTINCT person_no), MAX(source_line) FROM payments"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(rs->getInt64(1), kRows);
  EXPECT_EQ(rs->getInt64(2), int64_t{kRows} * 100 + int64_t{kRows} * (kRows - 1) / 2);
  EXPECT_EQ(rs->getInt64(3), 500);
  EXPECT_EQ(rs->getInt64(4), kRows + 1);
  rs.reset(std::unique_ptr<sql::Statement>((*conn)->createStatement())->executeQuery("SELECT COUNT(*) FROM persons"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(rs->getInt64(1), 500);
  // The check's scan streams them back whole, in payment_id order, across its pages (exactly
  // five of 50,000: the last read finds none), and leaves the connection usable.
  DisbursementRepository repo;
  int64_t scanned = 0, sum = 0;
  std::string last;
  bool ordered = true;
  ASSERT_TRUE(repo.ScanPayments(**conn, [&](const StoredPayment& p) {
                    ++scanned;
                    sum += p.amount_fen;
                    ordered = ordered && last < p.payment_id;
                    last = p.payment_id;
                  }).ok());
  EXPECT_EQ(scanned, kRows);
  EXPECT_EQ(sum, int64_t{kRows} * 100 + int64_t{kRows} * (kRows - 1) / 2);
  EXPECT_TRUE(ordered);
  // A scan its reader leaves early (the consumer throws) reads off the rest: the next statement works.
  EXPECT_THROW((void)repo.ScanPayments(**conn, [](const StoredPayment&) { throw std::runtime_error("enough"); }),
               std::runtime_error);
  rs.reset(std::unique_ptr<sql::Statement>((*conn)->createStatement())->executeQuery("SELECT COUNT(*) FROM persons"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(rs->getInt64(1), 500);
  auto again = Ingest(FileKind::kPayments, csv, 1 << 16);
  EXPECT_EQ(again.unchanged(), kRows);
  EXPECT_EQ(again.inserted(), 0);
}

// Person numbers come from the counter in blocks, each in a transaction of its own: two
// connections never get overlapping numbers, and a long transaction elsewhere does not hold
// the counter.
TEST_F(DisbursementLogicTest, PersonNumberBlocksNeverOverlap) {
  auto a = pool_->Acquire(absl::Now() + absl::Seconds(5));
  auto b = pool_->Acquire(absl::Now() + absl::Seconds(5));
  auto c = pool_->Acquire(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  DisbursementRepository repo;
  common::Transaction open_elsewhere(**c);  // an ingest's long transaction
  ASSERT_TRUE(open_elsewhere.Begin().ok());
  auto first = repo.AllocatePersonNumbers(**a, 10);
  auto second = repo.AllocatePersonNumbers(**b, 5);
  auto third = repo.AllocatePersonNumbers(**a, 1);
  ASSERT_TRUE(first.ok() && second.ok() && third.ok()) << first.status() << second.status() << third.status();
  EXPECT_EQ(*first, 1);
  EXPECT_EQ(*second, 11);
  EXPECT_EQ(*third, 16);
  EXPECT_FALSE(repo.AllocatePersonNumbers(**a, 0).ok());
}

// Two ingests at once, each numbering its new persons from blocks of its own: both are kept,
// every person has one number, and the files sent again change nothing (numbers included).
TEST_F(DisbursementLogicTest, ConcurrentIngestsNumberTheirPersonsApartAndReingestIsANoOp) {
  const std::string header = "id_number,name,org_code,household_id,is_household_head,account_no,account_since,is_cadre\n";
  const std::string a = absl::StrCat(header, Id(1), ",张三,V001,H1,1,622200000000000001,2025-01-01,0\n", Id(2),
                                     ",李四,V001,H1,0,622200000000000002,2025-01-01,0\n", Id(2),
                                     ",李四,V001,H1,0,622200000000000022,2026-01-01,0\n");
  const std::string b = absl::StrCat(header, Id(3), ",王五,V002,H2,1,622200000000000003,2025-01-01,1\n", Id(4),
                                     ",赵六,V002,H2,0,622200000000000004,2025-01-01,0\n");
  auto [r1, r2] = SideBySide(FileKind::kRecipients, a, b);
  ASSERT_TRUE(r1.ok()) << r1.status();
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r1->inserted(), 3);
  EXPECT_EQ(r2->inserted(), 2);
  auto numbers = [&] {
    std::map<std::string, int64_t> out;
    auto conn = pool_->Acquire(absl::Now() + absl::Seconds(5));
    EXPECT_TRUE(conn.ok());
    std::unique_ptr<sql::ResultSet> rs(std::unique_ptr<sql::Statement>((*conn)->createStatement())
                                           ->executeQuery("SELECT HEX(id_hash), person_no FROM persons"));
    while (rs->next()) out.emplace(rs->getString(1).asStdString(), rs->getInt64(2));
    return out;
  };
  const auto before = numbers();
  ASSERT_EQ(before.size(), 4u);
  std::set<int64_t> distinct;
  for (const auto& [h, no] : before) distinct.insert(no);
  EXPECT_EQ(distinct.size(), 4u);
  EXPECT_GT(*distinct.begin(), 0);
  // Each file's persons in its own block, in the order of the file.
  auto no = [&](int k) { return before.at(absl::AsciiStrToUpper(absl::BytesToHexString(pii_.Hash(Id(k))))); };
  EXPECT_EQ(no(2), no(1) + 1);
  EXPECT_EQ(no(4), no(3) + 1);
  EXPECT_GE(std::abs(no(1) - no(3)), 65536) << "each ingest numbers from a block of its own";
  for (const std::string& file : {a, b}) {
    auto again = Ingest(FileKind::kRecipients, file);
    EXPECT_EQ(again.inserted() + again.updated(), 0);
    EXPECT_EQ(again.unchanged(), file == a ? 3 : 2);
  }
  EXPECT_EQ(numbers(), before);
  // A later file names a stored person by their number and numbers only the new one.
  const std::string enrolments = absl::StrCat("program_code,id_number,amount_fen,from_period,to_period\n", "GDBT,",
                                              Id(1), ",,2026-03,\n", "GDBT,", Id(9), ",,2026-03,\n");
  ASSERT_EQ(Ingest(FileKind::kProgrammes, kProgrammes).inserted(), 2);
  EXPECT_EQ(Ingest(FileKind::kEnrolments, enrolments).inserted(), 2);
  const auto after = numbers();
  EXPECT_EQ(after.size(), 5u);
  for (const auto& [h, n] : before) EXPECT_EQ(after.at(h), n);
  // The roll reads the persons back through their numbers.
  v1::ListRecipientsRequest roll;
  roll.set_org_code("V001");
  roll.set_page_size(1);
  auto page = logic_->ListRecipients(roll, false, kNoDeadline);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->recipients_size(), 1);
  EXPECT_EQ(page->recipients(0).household_id(), "H1");
  roll.set_page_token(page->next_page_token());
  page = logic_->ListRecipients(roll, false, kNoDeadline);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->recipients_size(), 1);
  EXPECT_EQ(page->recipients(0).account_no().substr(page->recipients(0).account_no().size() - 2), "22");
}

// A valid ID number for any k below 10,000,000: birth date 1950-01-01 plus k / 1000 days.
std::string ManyId(int k) {
  const absl::CivilDay born = absl::CivilDay(1950, 1, 1) + k / 1000;
  std::string s = absl::StrFormat("320723%04d%02d%02d%03d", born.year(), born.month(), born.day(), k % 1000);
  static const int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (s[i] - '0') * kWeights[i];
  s += "10X98765432"[sum % 11];
  return s;
}

// Recipients into an empty table take the bulk path (lookups only for a batch that names a
// person or household written earlier in the file, loads in the background). Over a file of
// several batches it must decide every row as the row-by-row path does: a later account of a
// person of an earlier batch, a second head of an earlier batch's household, a head change.
TEST_F(DisbursementLogicTest, RecipientsBulkPathDecidesAsTheRowByRowPath) {
  constexpr int kPeople = 4100;  // three batches of 2000 rows
  std::string csv = "id_number,name,org_code,household_id,is_household_head,account_no,account_since,is_cadre\n";
  for (int k = 0; k < kPeople; ++k) {
    absl::StrAppend(&csv, ManyId(k), ",村民", k, ",V", k / 1000, ",H", k / 2, ",", k % 2 == 0 ? 1 : 0, ",6222",
                    absl::StrFormat("%014d", k), ",2020-01-01,", k == 10 ? 1 : 0, "\n");
  }
  // Batch 3 (from line 4002 on) names people and households of batch 1.
  absl::StrAppend(&csv, ManyId(1), ",村民1,V0,H0,0,622299999999999991,2026-01-01,0\n");  // a new account
  absl::StrAppend(&csv, ManyId(3), ",村民3,V0,H1,1,622200000000000003,2021-01-01,0\n");  // a second head
  absl::StrAppend(&csv, ManyId(4), ",村民4,V0,H2,0,622200000000000004,2021-01-01,0\n");  // no longer head
  absl::StrAppend(&csv, ManyId(5), ",村民5,V0,H2,1,622200000000000005,2021-01-01,0\n");  // so this one may be
  absl::StrAppend(&csv, ManyId(6), ",村民6,V1,H3,1,622200000000000006,2021-01-01,1\n");  // moved, now a cadre
  auto dump = [&](const std::string& skip_hash) {
    std::vector<std::string> rows;
    auto conn = pool_->Acquire(absl::Now() + absl::Seconds(5));
    EXPECT_TRUE(conn.ok());
    std::unique_ptr<sql::ResultSet> rs(
        std::unique_ptr<sql::Statement>((*conn)->createStatement())
            ->executeQuery("SELECT HEX(pe.id_hash), r.name, r.org_code, r.household_id, r.is_household_head, "
                           "r.is_cadre, r.latest_since, a.account_since, a.account_no FROM persons pe "
                           "JOIN recipients r ON r.person_no = pe.person_no "
                           "JOIN recipient_accounts a ON a.person_no = pe.person_no ORDER BY 1, 8"));
    while (rs->next()) {
      if (rs->getString(1).asStdString() == skip_hash) continue;
      std::string row;
      for (int c = 1; c <= 9; ++c) absl::StrAppend(&row, rs->getString(c).asStdString(), "|");
      rows.push_back(row);
    }
    return rows;
  };
  auto bulk = Ingest(FileKind::kRecipients, csv, 1 << 12);
  const auto bulk_rows = dump("");
  EXPECT_EQ(bulk.inserted(), kPeople + 4);
  EXPECT_EQ(Errors(bulk), std::vector<std::string>{absl::StrCat(kPeople + 3, " is_household_head SECOND_HEAD")});
  ASSERT_EQ(bulk_rows.size(), static_cast<size_t>(kPeople + 4));
  // The same file into a table holding one other person: the row-by-row path.
  {
    auto conn = pool_->Acquire(absl::Now() + absl::Seconds(5));
    ASSERT_TRUE(conn.ok());
    std::unique_ptr<sql::Statement> st((*conn)->createStatement());
    st->execute("DELETE FROM recipient_accounts");
    st->execute("DELETE FROM recipients");
    // Persons are never removed from a database in use; emptied as a new database is, the
    // counter starts again (and the person number cache sees the database went back).
    st->execute("DELETE FROM persons");
    st->execute("UPDATE counters SET next_value = 1 WHERE name = 'person_no'");
  }
  const std::string other = ManyId(999999);
  ASSERT_EQ(Ingest(FileKind::kRecipients,
                   absl::StrCat("id_number,name,org_code,household_id,is_household_head,account_no,account_since,"
                                "is_cadre\n",
                                other, ",别人,V9,H999999,1,622200000000009999,2020-01-01,0\n"))
                .inserted(),
            1);
  auto row_by_row = Ingest(FileKind::kRecipients, csv, 1 << 12);
  EXPECT_EQ(row_by_row.inserted(), bulk.inserted());
  EXPECT_EQ(row_by_row.updated(), bulk.updated());
  EXPECT_EQ(row_by_row.unchanged(), bulk.unchanged());
  EXPECT_EQ(Errors(row_by_row), Errors(bulk));
  for (int k = 0; k < row_by_row.errors_size(); ++k) EXPECT_EQ(row_by_row.errors(k).message(), bulk.errors(k).message());
  EXPECT_EQ(dump(absl::AsciiStrToUpper(absl::BytesToHexString(pii_.Hash(other)))), bulk_rows);
  // And sent again, nothing changes.
  auto again = Ingest(FileKind::kRecipients, csv, 1 << 12);
  EXPECT_EQ(again.inserted() + again.updated(), 0);
}

// The same person in two ingests at once: the one committing second fails whole (ABORTED), and
// the person keeps one number.
TEST_F(DisbursementLogicTest, ThePersonOfTwoConcurrentIngestsGetsOneNumber) {
  const std::string header = "id_number,name,org_code,household_id,is_household_head,account_no,account_since,is_cadre\n";
  const std::string a = absl::StrCat(header, Id(1), ",张三,V001,H1,1,622200000000000001,2025-01-01,0\n");
  const std::string b = absl::StrCat(header, Id(1), ",张三,V001,H1,1,622200000000000001,2025-01-01,0\n", Id(2),
                                     ",李四,V001,H1,0,622200000000000002,2025-01-01,0\n");
  // Both complete (the second waits for the first; it was ABORTED, "send it again", before).
  auto [r1, r2] = SideBySide(FileKind::kRecipients, a, b);
  ASSERT_TRUE(r1.ok()) << r1.status();
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r1->inserted() + r2->inserted(), 2);
  EXPECT_EQ(r1->unchanged() + r2->unchanged(), 1);
  EXPECT_EQ(Ingest(FileKind::kRecipients, b).unchanged(), 2);
  auto conn = pool_->Acquire(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(conn.ok());
  std::unique_ptr<sql::ResultSet> rs(std::unique_ptr<sql::Statement>((*conn)->createStatement())
                                         ->executeQuery("SELECT COUNT(*), COUNT(DISTINCT person_no) FROM persons"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(rs->getInt64(1), 2);
  EXPECT_EQ(rs->getInt64(2), 2);
}

// grassroots_cadrepay_person_number_lookups_total{source=...} in `registry` (-1 when absent).
double PersonLookups(prometheus::Registry& registry, const std::string& source) {
  for (const auto& family : registry.Collect()) {
    if (family.name != "grassroots_cadrepay_person_number_lookups_total") continue;
    for (const auto& m : family.metric) {
      if (m.label.size() == 1 && m.label[0].value == source) return m.counter.value;
    }
  }
  return -1.0;
}

// The person number cache (PersonNumberCache): later ingests take the numbers of persons stored
// by earlier ones from it, the same numbers a database lookup gives, and a database that went
// back (emptied, numbering from 1 again) is not read through numbers of its former persons.
TEST_F(DisbursementLogicTest, PersonNumberCacheServesLaterIngestsAndForgetsADatabaseThatWentBack) {
  prometheus::Registry registry;
  logic_ = std::make_unique<DisbursementLogic>(*pool_, pii_, kinship_, &registry, [this] { return now_; });
  LoadAll();
  auto from = [&](const std::string& source) { return PersonLookups(registry, source); };
  // Enrolments and payments named the six persons of the roll: found in the cache, not looked up;
  // only the payee who is on no roll (Id 7) was looked for in the database.
  EXPECT_GE(from("cache"), 12);
  EXPECT_EQ(from("database"), 1);
  auto query = [&](const std::string& sql) {
    std::vector<std::string> out;
    auto conn = pool_->Acquire(absl::Now() + absl::Seconds(5));
    EXPECT_TRUE(conn.ok());
    std::unique_ptr<sql::ResultSet> rs(std::unique_ptr<sql::Statement>((*conn)->createStatement())->executeQuery(sql));
    while (rs->next()) out.push_back(rs->getString(1).asStdString());
    return out;
  };
  const std::string enrolled_persons =
      "SELECT CONCAT(e.program_code, ' ', HEX(p.id_hash)) FROM enrolments e JOIN persons p ON p.person_no = "
      "e.person_no ORDER BY 1";
  auto hex = [&](int k) { return absl::AsciiStrToUpper(absl::BytesToHexString(pii_.Hash(Id(k)))); };
  std::vector<std::string> expected;
  for (int k : {1, 2, 3, 4, 5, 6}) expected.push_back("GDBT " + hex(k));
  expected.push_back("WBBZ " + hex(1));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(query(enrolled_persons), expected);

  // The database goes back: emptied, its counter at 1 again. The roll comes back in another order
  // (other numbers for the same persons); the enrolments must name the persons of the new numbers.
  {
    auto conn = pool_->Acquire(absl::Now() + absl::Seconds(5));
    ASSERT_TRUE(conn.ok());
    std::unique_ptr<sql::Statement> st((*conn)->createStatement());
    for (const char* table : {"persons", "recipients", "recipient_accounts", "enrolments", "payments",
                              "payment_reversals", "civil_events"}) {
      st->execute(absl::StrCat("DELETE FROM ", table));
    }
    st->execute("UPDATE counters SET next_value = 1 WHERE name = 'person_no'");
  }
  const std::string header = "id_number,name,org_code,household_id,is_household_head,account_no,account_since,is_cadre\n";
  ASSERT_EQ(Ingest(FileKind::kRecipients, absl::StrCat(header, Id(6), ",孙六,V002,H5,1,622200000000000006,2025-01-01,0\n",
                                                       Id(5), ",钱已故,V001,H4,1,622200000000000005,2025-01-01,0\n"))
                .inserted(),
            2);
  ASSERT_EQ(Ingest(FileKind::kEnrolments, Enrolments()).inserted(), 7);
  EXPECT_EQ(query(enrolled_persons), expected);
  EXPECT_EQ(query("SELECT COUNT(DISTINCT person_no) FROM persons"), std::vector<std::string>{"6"});
}

// With the cache disabled, every stored person is looked up in the database, with the same result.
TEST_F(DisbursementLogicTest, WithoutThePersonNumberCacheIngestsLookPersonsUp) {
  prometheus::Registry registry;
  logic_ = std::make_unique<DisbursementLogic>(*pool_, pii_, kinship_, &registry, [this] { return now_; }, 0);
  LoadAll();
  EXPECT_GE(PersonLookups(registry, "database"), 12);
  EXPECT_EQ(Check().payments_checked(), 9);
  EXPECT_EQ(Export(Check().run_id(), false), kExpectedFindingsCsv);
}

// A run reads one snapshot: an ingest that commits while the run is reading (here: when the run
// asks for cadres' kin, after its scans and before it reads the batches) is not in it.
TEST_F(DisbursementLogicTest, ARunReadsOneSnapshotWhileAnIngestCommits) {
  LoadAll();
  const v1::CheckRun before = Check();
  class IngestMeanwhile final : public KinshipSource {
   public:
    std::function<void()> during;
    absl::StatusOr<std::vector<PersonKey>> KinOfCadres(const std::vector<PersonKey>&,
                                                       std::vector<std::string>&) override {
      if (during) std::exchange(during, nullptr)();
      return std::vector<PersonKey>{};
    }
  } kinship;
  DisbursementLogic logic(*pool_, pii_, kinship, nullptr, [this] { return now_; });
  // The batch's declared figures made to match its rows: a run that saw this would not find
  // BATCH_MISMATCH.
  kinship.during = [&] {
    auto ingest = logic.StartIngest(FileKind::kBatches);
    ingest->Feed("batch_id,program_code,period,declared_count,declared_total_fen,scheduled_on\n"
                 "B2603,GDBT,2026-03,9,84000,2026-03-10\n");
    auto report = ingest->Finish();
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->updated(), 1);
  };
  v1::RunCheckRequest request;
  request.set_as_of("2026-04-10");
  auto during = logic.RunCheck(request);
  ASSERT_TRUE(during.ok()) << during.status();
  EXPECT_EQ(kinship.during, nullptr) << "the ingest ran during the run";
  auto count = [](const v1::CheckRun& run, const std::string& rule) {
    for (const auto& c : run.counts()) {
      if (c.rule() == rule) return c.count();
    }
    return int64_t{-1};
  };
  EXPECT_EQ(count(before, "BATCH_MISMATCH"), 1);
  EXPECT_EQ(count(during.value(), "BATCH_MISMATCH"), 1);
  // The next run sees the ingest.
  auto after = logic.RunCheck(request);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(count(after.value(), "BATCH_MISMATCH"), 0);
}

// The enrolments are read on the run's second connection only when its snapshot holds the same
// data as the run's own: an ingest committed in between (here: the enrolment that makes P009
// entitled) sends the read back to the run's connection, and the run judges its own snapshot.
TEST_F(DisbursementLogicTest, EnrolmentsReadBesideOnlyFromTheRunsOwnData) {
  LoadAll();
  auto count = [](const v1::CheckRun& run, const std::string& rule) {
    for (const auto& c : run.counts()) {
      if (c.rule() == rule) return c.count();
    }
    return int64_t{-1};
  };
  // Beside, nothing in between: the same counts as a run on one connection.
  const v1::CheckRun plain = Check();
  EXPECT_EQ(count(plain, "NOT_ENTITLED"), 1);
  bool ran = false;
  logic_->SetBeforeSecondSnapshotForTest([&] {
    ran = true;
    auto ingest = logic_->StartIngest(FileKind::kEnrolments);
    ingest->Feed(absl::StrCat("program_code,id_number,amount_fen,from_period,to_period\n", "GDBT,", Id(7), ",,2026-03,\n"));
    auto report = ingest->Finish();
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->inserted(), 1);
  });
  const v1::CheckRun during = Check();
  logic_->SetBeforeSecondSnapshotForTest(nullptr);
  EXPECT_TRUE(ran) << "the run read its persons on a second connection";
  EXPECT_EQ(count(during, "NOT_ENTITLED"), 1) << "the run saw an enrolment committed after it began";
  const v1::CheckRun after = Check();
  EXPECT_EQ(count(after, "NOT_ENTITLED"), 0);
}

// Keyset pages: the spelled-out condition selects exactly what the row comparison selects, and
// the server range-scans it (reads about the page, not every row before it).
TEST_F(DisbursementLogicTest, KeysetAfterSelectsTheRowComparisonAndRangeScans) {
  auto conn = pool_->Acquire(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(conn.ok()) << conn.status();
  sql::Connection& c = **conn;
  std::unique_ptr<sql::Statement> st(c.createStatement());
  st->execute("CREATE TABLE keyset_probe (a VARCHAR(8) NOT NULL, b BINARY(2) NOT NULL, c INT NOT NULL, "
              "PRIMARY KEY (a, b, c))");
  std::vector<std::string> rows;
  for (int a = 0; a < 4; ++a) {
    for (int b = 0; b < 25; ++b) {
      for (int k = 0; k < 20; ++k) rows.push_back(absl::StrFormat("('a%d', UNHEX('%04X'), %d)", a, b * 7, k));
    }
  }
  st->execute(absl::StrCat("INSERT INTO keyset_probe VALUES ", absl::StrJoin(rows, ",")));
  auto Bind = [](sql::PreparedStatement& ps, const SqlRow& params) {
    for (size_t i = 0; i < params.size(); ++i) {
      if (params[i].kind == SqlValue::Kind::kInt) ps.setInt64(i + 1, params[i].i);
      else ps.setString(i + 1, params[i].s);
    }
  };
  auto count_after = [&](const std::string& where, const SqlRow& params) {
    std::unique_ptr<sql::PreparedStatement> ps(
        c.prepareStatement(absl::StrCat("SELECT COUNT(*) FROM keyset_probe WHERE ", where)));
    Bind(*ps, params);
    std::unique_ptr<sql::ResultSet> rs(ps->executeQuery());
    rs->next();
    return rs->getInt64(1);
  };
  const std::vector<std::string> columns = {"a", "b", "c"};
  for (const auto& [a, b, k] : std::vector<std::tuple<std::string, int, int>>{
           {"a0", 0, 0}, {"a1", 14, 19}, {"a1", 15, 3}, {"a2", 168, 19}, {"a3", 168, 19}, {"a", 0, 0}, {"b", 0, 0}}) {
    const SqlRow key = {SqlValue::Text(a), SqlValue::Text(std::string{char(b >> 8), char(b & 0xff)}),
                        SqlValue::Int(k)};
    SqlRow params;
    const std::string expanded = KeysetAfter(columns, key, params);
    EXPECT_EQ(params.size(), 6u);
    EXPECT_EQ(count_after(expanded, params), count_after("(a, b, c) > (?, ?, ?)", key)) << a << " " << b << " " << k;
  }
  // A page of 10 after the 1,500th row reads about 10 rows; the row comparison reads them all.
  const SqlRow key = {SqlValue::Text("a3"), SqlValue::Text(std::string{0, 70}), SqlValue::Int(0)};
  auto handler_reads = [&] {
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery(
        "SELECT SUM(VARIABLE_VALUE) FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME IN "
        "('HANDLER_READ_NEXT', 'HANDLER_READ_FIRST', 'HANDLER_READ_KEY')"));
    rs->next();
    return rs->getInt64(1);
  };
  auto rows_read = [&](const std::string& where, const SqlRow& params) {
    std::unique_ptr<sql::PreparedStatement> ps(c.prepareStatement(
        absl::StrCat("SELECT a, b, c FROM keyset_probe WHERE ", where, " ORDER BY a, b, c LIMIT 10")));
    Bind(*ps, params);
    const int64_t t0 = handler_reads();
    const int64_t overhead = handler_reads() - t0;
    const int64_t before = handler_reads();
    std::unique_ptr<sql::ResultSet> rs(ps->executeQuery());
    int n = 0;
    while (rs->next()) ++n;
    EXPECT_EQ(n, 10);
    return handler_reads() - before - overhead;
  };
  SqlRow params;
  const std::string where = KeysetAfter(columns, key, params);
  EXPECT_LT(rows_read(where, params), 100) << "the page was not range-scanned";
  EXPECT_GT(rows_read("(a, b, c) > (?, ?, ?)", key), 1000) << "the row comparison is range-scanned now";
}

}  // namespace
}  // namespace grassroots::cadrepay

// V006 re-clusters enrolments by person: the enrolments stored before it are there after it, row
// for row, the table has no index but its primary key (person_no first), and the check finds
// what it found; a check of one programme still reads only that programme's enrolments.
TEST_F(DisbursementLogicTest, EnrolmentsStoredBeforeTheirReclusteringAreKept) {
  testing::DropSchema(options_);
  std::vector<common::Migration> before;
  for (const auto& m : generated::cadrepay_migrations()) {
    if (m.version < 6) before.push_back(m);
  }
  ASSERT_EQ(before.size(), 5u);  // V001..V005; V006 and every later one are applied below
  ASSERT_TRUE(common::ApplyMigrations(options_, before).ok());
  LoadAll();
  auto rows = [&](const std::string& sql) {
    auto conn = pool_->Acquire(absl::InfiniteFuture());
    EXPECT_TRUE(conn.ok());
    std::unique_ptr<sql::ResultSet> rs(std::unique_ptr<sql::Statement>((*conn)->createStatement())->executeQuery(sql));
    std::vector<std::string> out;
    const int n = static_cast<int>(rs->getMetaData()->getColumnCount());
    while (rs->next()) {
      std::vector<std::string> cells;
      for (int i = 1; i <= n; ++i) cells.push_back(rs->isNull(i) ? "NULL" : std::string(rs->getString(i)));
      out.push_back(absl::StrJoin(cells, "|"));
    }
    return out;
  };
  const std::string all = "SELECT program_code, person_no, from_period, to_period, amount_fen FROM enrolments "
                          "ORDER BY program_code, person_no, from_period";
  const std::vector<std::string> stored = rows(all);
  ASSERT_EQ(stored.size(), 7u);
  ASSERT_TRUE(common::ApplyMigrations(options_, generated::cadrepay_migrations()).ok());
  EXPECT_EQ(rows(all), stored);
  EXPECT_EQ(rows("SELECT index_name, column_name FROM information_schema.statistics WHERE table_schema = DATABASE() "
                 "AND table_name = 'enrolments' ORDER BY index_name, seq_in_index"),
            (std::vector<std::string>{"PRIMARY|person_no", "PRIMARY|program_code", "PRIMARY|from_period"}));
  EXPECT_EQ(Export(Check().run_id(), false), kExpectedFindingsCsv);
  v1::CheckRun wbbz = Check("WBBZ", "2026-03");
  std::map<std::string, int64_t> counts;
  for (const auto& c : wbbz.counts()) {
    if (c.count() > 0) counts[c.rule()] = c.count();
  }
  EXPECT_EQ(counts, (std::map<std::string, int64_t>{{"UNPAID", 1}}));
}

}  // namespace
}  // namespace grassroots::cadrepay
