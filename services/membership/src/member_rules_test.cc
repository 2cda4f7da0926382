#include "member_rules.h"

#include <gtest/gtest.h>

#include "grassroots/common/status.h"
#include "member_test_ids.h"

namespace grassroots::membership {
namespace {

using testing::MakeId;
const absl::CivilDay kToday(2026, 6, 1);

v1::Member Valid() {
  v1::Member m;
  m.set_id_number(MakeId("320723", "19800115", "123"));
  m.set_name("张三");
  m.set_gender("M");
  m.set_birth_date("1980-01-15");
  m.set_org_code("B1");
  m.set_status("full");
  m.set_applied_on("2020-03-01");
  m.set_joined_on("2022-05-01");
  m.set_full_on("2023-05-01");
  return m;
}

std::vector<std::string> Codes(const std::vector<Violation>& v) {
  std::vector<std::string> out;
  for (const auto& x : v) out.push_back(x.code);
  return out;
}

TEST(MemberRules, ValidMemberPassesAndIdIsNormalised) {
  v1::Member m = Valid();
  std::string id = m.id_number();
  if (id.back() == 'X') m.set_id_number(id.substr(0, 17) + "x");
  EXPECT_TRUE(NormaliseMember(m, kToday).empty());
  EXPECT_EQ(m.id_number(), id);
}

TEST(MemberRules, WrongCheckDigit) {
  v1::Member m = Valid();
  std::string id = m.id_number();
  id[17] = id[17] == '0' ? '1' : '0';
  m.set_id_number(id);
  auto v = NormaliseMember(m, kToday);
  ASSERT_EQ(Codes(v), std::vector<std::string>{"INVALID_ID_NUMBER"});
  EXPECT_EQ(v[0].message.find(id.substr(0, 10)), std::string::npos) << "message must not repeat the number";
}

TEST(MemberRules, BirthDateMismatch) {
  v1::Member m = Valid();
  m.set_birth_date("1980-01-16");
  EXPECT_EQ(Codes(NormaliseMember(m, kToday)), std::vector<std::string>{"BIRTH_DATE_MISMATCH"});
}

TEST(MemberRules, ApplicantAged17) {
  v1::Member m;
  m.set_id_number(MakeId("320723", "20080301", "011"));
  m.set_name("李四");
  m.set_gender("F");
  m.set_birth_date("2008-03-01");
  m.set_org_code("B1");
  m.set_status("applicant");
  m.set_applied_on("2026-02-28");  // one day before turning 18
  EXPECT_EQ(Codes(NormaliseMember(m, kToday)), std::vector<std::string>{"UNDER_AGE"});
  m.set_applied_on("2026-03-01");
  EXPECT_TRUE(NormaliseMember(m, kToday).empty());
}

TEST(MemberRules, FullAfterTenMonthsOfProbation) {
  v1::Member m = Valid();
  m.set_joined_on("2024-01-10");
  m.set_full_on("2024-11-10");
  EXPECT_EQ(Codes(NormaliseMember(m, kToday)), std::vector<std::string>{"TOO_EARLY_FOR_FULL"});
  m.set_full_on("2025-01-10");
  EXPECT_TRUE(NormaliseMember(m, kToday).empty());
}

TEST(MemberRules, ThirtiethOfFebruaryAndFutureDates) {
  v1::Member m = Valid();
  m.set_applied_on("2021-02-30");
  EXPECT_EQ(Codes(NormaliseMember(m, kToday)), std::vector<std::string>{"INVALID_DATE"});
  m = Valid();
  m.set_status("applicant");
  m.clear_joined_on();
  m.clear_full_on();
  m.set_applied_on("2026-06-02");
  EXPECT_EQ(Codes(NormaliseMember(m, kToday)), std::vector<std::string>{"DATE_IN_FUTURE"});
}

TEST(MemberRules, StatusNeedsItsDates) {
  v1::Member m = Valid();
  m.clear_full_on();
  EXPECT_EQ(Codes(NormaliseMember(m, kToday)), std::vector<std::string>{"MISSING_VALUE"});
  m = Valid();
  m.set_status("activist");
  auto codes = Codes(NormaliseMember(m, kToday));
  EXPECT_EQ(codes, (std::vector<std::string>{"INCONSISTENT_STATUS", "INCONSISTENT_STATUS"}));
}

TEST(MemberRules, Transitions) {
  v1::Member cur = Valid();
  v1::Member next = Valid();
  next.set_status("probationary");
  next.clear_full_on();
  auto bad = CheckTransition(cur, next, kToday);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->code, "BACKWARDS_STEP");
  cur.set_status("deceased");
  next = Valid();
  EXPECT_EQ(CheckTransition(cur, next, kToday)->code, "BACKWARDS_STEP");
  cur = Valid();
  cur.set_status("activist");
  cur.set_activist_on("2026-01-01");
  next.set_status("development_target");
  EXPECT_EQ(CheckTransition(cur, next, kToday)->code, "TOO_EARLY_FOR_TARGET");
}

// Admission dates are history: once recorded, a file cannot change or drop them, exits included.
TEST(MemberRules, RecordedAdmissionDatesAreKeptThroughExits) {
  v1::Member full = Valid();  // full, with joined_on and full_on
  v1::Member next = full;
  next.set_full_on("2020-02-02");
  auto bad = CheckTransition(full, next, kToday);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->field, "full_on");
  EXPECT_EQ(bad->code, "CONFLICTING_DATE");
  v1::Member expelled = full;
  expelled.set_status("expelled");
  next = expelled;
  EXPECT_FALSE(CheckTransition(expelled, next, kToday).has_value());  // the same row again
  next.clear_full_on();
  EXPECT_EQ(CheckTransition(expelled, next, kToday)->field, "full_on");
  next = expelled;
  next.set_joined_on("2012-01-01");
  bad = CheckTransition(expelled, next, kToday);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->field, "joined_on");
  EXPECT_EQ(bad->code, "CONFLICTING_DATE");
  // An exit from probation has no full_on; a file cannot add one.
  v1::Member left = full;
  left.set_status("left");
  left.clear_full_on();
  next = left;
  next.set_full_on(full.full_on());
  EXPECT_EQ(CheckTransition(left, next, kToday)->code, "CONFLICTING_DATE");
}

TEST(MemberRules, FullOnIsRequiredForEveryExitButFromProbation) {
  v1::Member full = Valid();
  v1::Member exit = Valid();
  exit.set_status("deceased");
  exit.clear_full_on();
  auto bad = CheckTransition(full, exit, kToday);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->field, "full_on");
  EXPECT_EQ(bad->code, "MISSING_VALUE");
  exit.set_full_on(full.full_on());
  EXPECT_FALSE(CheckTransition(full, exit, kToday).has_value());
  // From probation the exit has no full_on.
  v1::Member probationary = Valid();
  probationary.set_status("probationary");
  probationary.clear_full_on();
  exit.clear_full_on();
  EXPECT_FALSE(CheckTransition(probationary, exit, kToday).has_value());
  // Exits are of members: an applicant cannot be stepped out (joined_on would be missing).
  v1::Member applicant = Valid();
  applicant.set_status("applicant");
  applicant.clear_joined_on();
  applicant.clear_full_on();
  auto s = ApplyStep(applicant, "left", absl::CivilDay(2026, 2, 10), 0, absl::CivilDay(2020, 3, 1), kToday);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("WRONG_STATUS_FOR_STEP"), std::string::npos);
  EXPECT_EQ(applicant.status(), "applicant");
}

TEST(MemberRules, AYearAsActivistLiesBetweenApplicationAndAdmission) {
  v1::Member m = Valid();
  m.set_applied_on("2021-06-01");
  m.set_joined_on("2022-05-31");  // 11 months and 30 days after applying
  m.set_full_on("2023-06-01");
  EXPECT_EQ(Codes(NormaliseMember(m, kToday)), std::vector<std::string>{"TOO_EARLY_FOR_TARGET"});
  m.set_joined_on("2022-06-01");
  EXPECT_TRUE(NormaliseMember(m, kToday).empty());
  v1::Member target = Valid();
  target.set_status("development_target");
  target.clear_joined_on();
  target.clear_full_on();
  target.set_applied_on("2025-09-01");
  EXPECT_EQ(Codes(NormaliseMember(target, kToday)), std::vector<std::string>{"TOO_EARLY_FOR_TARGET"});
  target.set_applied_on("2025-06-01");
  EXPECT_TRUE(NormaliseMember(target, kToday).empty());
}

TEST(MemberRules, StepsAndExtension) {
  v1::Member m = Valid();
  m.set_status("probationary");
  m.set_joined_on("2025-01-10");
  m.clear_full_on();
  const absl::CivilDay last(2025, 1, 10);
  auto s = ApplyStep(m, "full", absl::CivilDay(2025, 11, 10), 0, last, kToday);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("TOO_EARLY_FOR_FULL"), std::string::npos);
  ASSERT_TRUE(ApplyStep(m, "extend_probation", absl::CivilDay(2026, 1, 10), 6, last, kToday).ok());
  s = ApplyStep(m, "extend_probation", absl::CivilDay(2026, 1, 11), 6, last, kToday);
  EXPECT_NE(s.message().find("SECOND_EXTENSION"), std::string::npos);
  s = ApplyStep(m, "full", absl::CivilDay(2026, 2, 10), 0, last, kToday);
  EXPECT_NE(s.message().find("TOO_EARLY_FOR_FULL"), std::string::npos);  // extension runs to 2026-07-10
  const absl::Status bogus = ApplyStep(m, "bogus", absl::CivilDay(2026, 2, 10), 0, last, kToday);
  EXPECT_EQ(bogus.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(common::FieldViolationsOf(bogus).size(), 1u);
  EXPECT_EQ(common::FieldViolationsOf(bogus)[0].field, "step");
  ASSERT_TRUE(ApplyStep(m, "left", absl::CivilDay(2026, 2, 10), 0, last, kToday).ok());
  EXPECT_EQ(m.status(), "left");
  EXPECT_NE(ApplyStep(m, "full", absl::CivilDay(2026, 3, 10), 0, last, kToday).message().find("EXIT_IS_FINAL"),
            std::string::npos);
}

TEST(MemberRules, ActivistMustWaitAYear) {
  v1::Member m = Valid();
  m.set_status("activist");
  m.set_activist_on("2025-09-01");
  auto s = ApplyStep(m, "development_target", absl::CivilDay(2026, 5, 1), 0, absl::CivilDay(2025, 9, 1), kToday);
  EXPECT_NE(s.message().find("TOO_EARLY_FOR_TARGET"), std::string::npos);
}

// A value in the wrong column (a spreadsheet's shifted paste) is refused without being repeated:
// RowError messages and statuses never carry an ID number (exchange.proto, README).
TEST(MemberRules, RefusedValuesAreNotRepeated) {
  const std::string id = MakeId("320723", "19800115", "123");
  v1::Member m = Valid();
  m.set_status(id);
  auto v = NormaliseMember(m, kToday);
  ASSERT_EQ(Codes(v), std::vector<std::string>{"UNKNOWN_STATUS"});
  EXPECT_EQ(v[0].message.find(id.substr(0, 10)), std::string::npos) << v[0].message;
  EXPECT_NE(v[0].message.find("applicant"), std::string::npos) << "names what is allowed: " << v[0].message;
  m = Valid();
  m.set_status("probationary");
  m.clear_full_on();
  const absl::Status step = ApplyStep(m, id, absl::CivilDay(2026, 2, 10), 0, absl::CivilDay(2022, 5, 1), kToday);
  EXPECT_EQ(step.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(step.message().find(id.substr(0, 10)), std::string::npos) << step.message();
  ASSERT_EQ(common::FieldViolationsOf(step).size(), 1u);
  EXPECT_EQ(common::FieldViolationsOf(step)[0].description.find(id.substr(0, 10)), std::string::npos);
}

TEST(MemberRules, Masks) {
  EXPECT_EQ(MaskPhone("13812345678"), "138****5678");
  EXPECT_EQ(AgeOn(absl::CivilDay(2000, 5, 2), absl::CivilDay(2018, 5, 1)), 17);
}

// A period of months ends on the same day of the month, or on the last day of a month without
// it (as the Civil Code counts and as the date-rule run's SQL DATE_ADD does): the step's check
// and the overdue list must agree on a probation that began on the 29th to 31st.
TEST(MemberRules, MonthsEndOnTheMonthsLastDayWhenItHasNoSuchDay) {
  EXPECT_EQ(AddMonths(absl::CivilDay(2024, 2, 29), 12), absl::CivilDay(2025, 2, 28));
  EXPECT_EQ(AddMonths(absl::CivilDay(2024, 2, 29), 48), absl::CivilDay(2028, 2, 29));
  EXPECT_EQ(AddMonths(absl::CivilDay(2023, 8, 31), 18), absl::CivilDay(2025, 2, 28));
  EXPECT_EQ(AddMonths(absl::CivilDay(2023, 8, 31), 6), absl::CivilDay(2024, 2, 29));
  EXPECT_EQ(AddMonths(absl::CivilDay(2025, 1, 31), 3), absl::CivilDay(2025, 4, 30));
  EXPECT_EQ(AddMonths(absl::CivilDay(2025, 1, 15), 12), absl::CivilDay(2026, 1, 15));
  EXPECT_EQ(ProbationEnd(absl::CivilDay(2023, 8, 31), 6), absl::CivilDay(2025, 2, 28));
  EXPECT_EQ(AgeOn(absl::CivilDay(2008, 2, 29), absl::CivilDay(2026, 2, 27)), 17);
  EXPECT_EQ(AgeOn(absl::CivilDay(2008, 2, 29), absl::CivilDay(2026, 2, 28)), 18);
  EXPECT_EQ(AgeOn(absl::CivilDay(2008, 3, 1), absl::CivilDay(2026, 2, 28)), 17);
  v1::Member m = Valid();
  m.set_status("probationary");
  m.set_joined_on("2023-08-31");
  m.clear_full_on();
  m.set_extension_months(6);
  const absl::CivilDay last(2023, 8, 31);
  EXPECT_NE(ApplyStep(m, "full", absl::CivilDay(2025, 2, 27), 0, last, kToday).message().find("TOO_EARLY_FOR_FULL"),
            std::string::npos);
  EXPECT_TRUE(ApplyStep(m, "full", absl::CivilDay(2025, 2, 28), 0, last, kToday).ok());
}

// An applicant without a date of application applied today at the latest: under 18 today is
// under age.
TEST(MemberRules, ApplicantWithoutApplicationDateIsJudgedOnToday) {
  v1::Member m;
  m.set_id_number(MakeId("320723", "20080602", "011"));
  m.set_name("李四");
  m.set_gender("F");
  m.set_birth_date("2008-06-02");  // 18 on 2026-06-02, the day after kToday
  m.set_org_code("B1");
  for (const char* status : {"applicant", "activist", "development_target"}) {
    m.set_status(status);
    auto v = NormaliseMember(m, kToday);
    ASSERT_EQ(Codes(v), std::vector<std::string>{"UNDER_AGE"}) << status;
    EXPECT_EQ(v[0].field, "birth_date");
  }
  m.set_id_number(MakeId("320723", "20080601", "011"));
  m.set_birth_date("2008-06-01");  // 18 today
  m.set_status("applicant");
  EXPECT_TRUE(NormaliseMember(m, kToday).empty());
}

// A member registered as an activist or development target by an import has no activist date;
// the year as an activist is then counted from the application.
TEST(MemberRules, WithoutAnActivistDateTheYearCountsFromTheApplication) {
  v1::Member m = Valid();
  m.set_status("activist");
  m.clear_joined_on();
  m.clear_full_on();
  m.set_applied_on("2026-05-01");
  const absl::CivilDay last(2026, 5, 1);
  auto s = ApplyStep(m, "development_target", kToday, 0, last, kToday);
  EXPECT_NE(s.message().find("TOO_EARLY_FOR_TARGET"), std::string::npos) << s;
  EXPECT_EQ(m.status(), "activist");
  m.set_applied_on("2025-06-01");
  ASSERT_TRUE(ApplyStep(m, "development_target", kToday, 0, absl::CivilDay(2025, 6, 1), kToday).ok());
  // Registered as a development target, applied 6 months ago: not admitted yet.
  v1::Member t = Valid();
  t.set_status("development_target");
  t.clear_joined_on();
  t.clear_full_on();
  t.set_applied_on("2025-12-01");
  s = ApplyStep(t, "probationary", kToday, 0, absl::CivilDay(2025, 12, 1), kToday);
  EXPECT_NE(s.message().find("TOO_EARLY_FOR_TARGET"), std::string::npos) << s;
  EXPECT_EQ(t.status(), "development_target");
  t.set_applied_on("2025-05-31");
  EXPECT_TRUE(ApplyStep(t, "probationary", kToday, 0, absl::CivilDay(2025, 5, 31), kToday).ok());
}

// A file row binds to the dates the registry recorded through steps as a step would.
TEST(MemberRules, FileRowsRespectRecordedActivistAndTargetDates) {
  v1::Member cur = Valid();
  cur.set_status("development_target");
  cur.set_applied_on("2020-01-10");
  cur.set_activist_on("2020-02-29");
  cur.set_target_on("2021-03-01");
  cur.clear_joined_on();
  cur.clear_full_on();
  v1::Member next = cur;
  next.clear_activist_on();
  next.clear_target_on();
  next.set_status("probationary");
  next.set_joined_on("2021-01-15");  // less than a year after activist_on
  auto bad = CheckTransition(cur, next, kToday);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->field, "joined_on");
  EXPECT_EQ(bad->code, "TOO_EARLY_FOR_TARGET");
  next.set_joined_on("2021-02-28");  // a year after 2020-02-29, but before the target date
  bad = CheckTransition(cur, next, kToday);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->code, "BEFORE_PREVIOUS_EVENT");
  next.set_joined_on("2021-03-01");
  EXPECT_FALSE(CheckTransition(cur, next, kToday).has_value());
}

}  // namespace
}  // namespace grassroots::membership
