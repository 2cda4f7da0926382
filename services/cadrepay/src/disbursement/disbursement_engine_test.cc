#include "disbursement/disbursement_engine.h"

#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "grassroots/common/validate.h"
#include "gtest/gtest.h"

namespace grassroots::cadrepay {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;

// A valid 18-character ID number for a small integer.
std::string IdFor(int n) {
  static constexpr int kW[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  const std::string first17 = absl::StrFormat("32070219%02d0101%03d", 50 + n / 1000, n % 1000);
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (first17[i] - '0') * kW[i];
  return first17 + "10X98765432"[sum % 11];
}

common::Period P(std::string_view s) { return *common::ParsePeriod(s); }
absl::CivilDay D(std::string_view s) { return *common::ParseDate(s); }
absl::Time T(std::string_view s) { return *common::ParseTimestamp(s); }

struct ProgSpec {
  explicit ProgSpec(std::string c = "SUB", int64_t a = 12000) : code(std::move(c)), amount(a) {}
  ProgSpec& From(std::string f) {
    from = std::move(f);
    return *this;
  }
  ProgSpec& To(std::string t) {
    to = std::move(t);
    return *this;
  }
  ProgSpec& Yearly() {
    frequency = Frequency::kYearly;
    return *this;
  }
  ProgSpec& Household() {
    unit = ProgrammeUnit::kHousehold;
    return *this;
  }
  ProgSpec& ExcludesCadres() {
    excludes = true;
    return *this;
  }
  std::string code;
  int64_t amount;
  std::string from = "2026-01";
  std::string to;  // empty: open
  Frequency frequency = Frequency::kMonthly;
  ProgrammeUnit unit = ProgrammeUnit::kPerson;
  bool excludes = false;
  int grace = 5;
};

// Builds a DisbursementInput from readable values; people are named by short aliases.
class World {
 public:
  PersonKey Key(const std::string& who) {
    auto it = ids_.find(who);
    if (it == ids_.end()) {
      it = ids_.emplace(who, *PersonKeyOf(IdFor(static_cast<int>(ids_.size()) + 1))).first;
      aliases_[it->second] = who;
    }
    return it->second;
  }
  std::string Id(const std::string& who) { return IdNumberOf(Key(who)); }

  void Prog(const ProgSpec& s) {
    Programme p;
    p.code = s.code;
    p.amount_fen = s.amount;
    p.valid_from = P(s.from);
    if (!s.to.empty()) p.valid_to = P(s.to);
    p.frequency = s.frequency;
    p.unit = s.unit;
    p.excludes_cadre_households = s.excludes;
    p.grace_days = s.grace;
    in.symbols.Intern(s.code);
    in.programmes.push_back(p);
  }
  void Enrol(const std::string& who, const std::string& code, const std::string& from,
             const std::string& to = "", std::optional<int64_t> amount = std::nullopt) {
    Enrolment e;
    e.person = Key(who);
    e.program = in.symbols.Intern(code);
    e.from_period = PeriodCodeOf(P(from));
    e.to_period = to.empty() ? kOpenPeriod : PeriodCodeOf(P(to));
    e.amount_fen = amount.value_or(kProgrammeAmount);
    in.enrolments.push_back(e);
  }
  void Recipient(const std::string& who, const std::string& household, const std::string& account,
                 const std::string& since = "2025-01-01", bool head = true, bool cadre = false) {
    RecipientRow r;
    r.person = Key(who);
    r.household = in.symbols.Intern(household);
    r.account = in.symbols.Intern(account);
    r.account_since = DayNumberOf(D(since));
    r.is_household_head = head;
    r.is_cadre = cadre;
    in.recipients.push_back(r);
  }
  void Death(const std::string& who, const std::string& date) {
    in.civil_events.push_back(CivilEvent{Key(who), CivilEventKind::kDeath, D(date)});
  }
  void Pay(const std::string& id, const std::string& batch, const std::string& code,
           const std::string& period, const std::string& who, const std::string& account,
           int64_t amount, const std::string& paid_at = "2026-03-15T10:00:00+08:00",
           const std::string& reverses = "") {
    Payment p;
    p.payment_id = in.text.Add(id);
    p.reverses = in.text.Add(reverses);
    p.paid_at_us = PaidAtMicros(T(paid_at));
    p.person = Key(who);
    p.amount_fen = amount;
    p.batch = in.symbols.Intern(batch);
    p.program = in.symbols.Intern(code);
    p.account = in.symbols.Intern(account);
    p.period = PeriodCodeOf(P(period));
    in.payments.push_back(p);
  }
  void DeclareBatch(const std::string& batch, const std::string& code, const std::string& period,
                    int64_t count, int64_t total, const std::string& scheduled) {
    in.batches.push_back(Batch{in.symbols.Intern(batch), in.symbols.Intern(code),
                               PeriodCodeOf(P(period)), count, total, D(scheduled)});
  }

  absl::StatusOr<CheckResult> Check(const std::string& as_of, const std::string& period = "",
                                    const std::string& program = "", int limit = 3) {
    CheckOptions o;
    o.as_of = D(as_of);
    if (!period.empty()) o.period = P(period);
    if (!program.empty()) o.program_code = program;
    o.shared_account_limit = limit;
    return CheckDisbursements(in, o);
  }
  // "RULE,program,period,who,payment,expected,actual" per finding, in the engine's order.
  std::vector<std::string> Summary(const std::string& as_of, const std::string& period = "2026-03",
                                   const std::string& program = "", int limit = 3) {
    absl::StatusOr<CheckResult> r = Check(as_of, period, program, limit);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    last_ = *r;
    std::vector<std::string> out;
    for (const Finding& f : r->findings) out.push_back(Line(f));
    return out;
  }
  std::string Line(const Finding& f) {
    auto opt = [](const std::optional<int64_t>& v) {
      return v.has_value() ? absl::StrCat(*v) : std::string("-");
    };
    return absl::StrCat(std::string(RuleCode(f.rule)), ",", f.program_code, ",", f.period, ",",
                        f.person ? aliases_.at(*f.person) : std::string("-"), ",",
                        f.payment_id.empty() ? "-" : f.payment_id, ",", opt(f.expected_fen), ",",
                        opt(f.actual_fen));
  }
  const CheckResult& last() const { return last_; }
  // DecideEntitlements for these people: "who:entitled AMOUNT" or "who:REASON[ by WHO]", in the
  // order of the answers (ascending key: the aliases' order of first use).
  std::vector<std::string> Entitlements(const std::string& code, const std::string& period,
                                        const std::vector<std::string>& who) {
    std::vector<PersonKey> keys;
    for (const auto& w : who) keys.push_back(Key(w));
    auto got = DecideEntitlements(in, code, P(period), keys);
    EXPECT_TRUE(got.ok()) << got.status();
    std::vector<std::string> out;
    if (!got.ok()) return out;
    for (const EntitlementAnswer& a : *got) {
      std::string line = absl::StrCat(aliases_.at(a.person), ":");
      if (a.entitled) {
        EXPECT_TRUE(a.reason.empty());
        absl::StrAppend(&line, "entitled ", a.amount_fen);
      } else {
        absl::StrAppend(&line, std::string(a.reason));
      }
      if (a.held_by) absl::StrAppend(&line, " by ", aliases_.at(*a.held_by));
      out.push_back(line);
    }
    return out;
  }

  DisbursementInput in;

 private:
  std::map<std::string, PersonKey> ids_;
  std::map<PersonKey, std::string> aliases_;
  CheckResult last_;
};

// One person A enrolled in SUB (12000 fen a month), paid on time to the registered account.
class RulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    w.Prog(ProgSpec());
    w.Enrol("A", "SUB", "2026-01");
    w.Recipient("A", "H1", "6228000000000001");
    w.DeclareBatch("B1", "SUB", "2026-03", 1, 12000, "2026-03-15");
  }
  void PayA(int64_t amount = 12000, const std::string& at = "2026-03-15T10:00:00+08:00",
            const std::string& account = "6228000000000001", const std::string& id = "p1") {
    w.Pay(id, "B1", "SUB", "2026-03", "A", account, amount, at);
  }
  std::vector<std::string> Run(const std::string& as_of = "2026-04-30") {
    return w.Summary(as_of);
  }
  World w;
};

TEST_F(RulesTest, CleanPaymentHasNoFindings) {
  PayA();
  EXPECT_THAT(Run(), IsEmpty());
  EXPECT_EQ(w.last().payments_judged, 1);
  EXPECT_EQ(w.last().entitlements_checked, 1);
  EXPECT_EQ(w.last().batches_checked, 1);
}

// --- LATE -----------------------------------------------------------------------------------

TEST_F(RulesTest, PaidOnTheLastGraceDayIsOnTime) {
  PayA(12000, "2026-03-20T23:59:59+08:00");  // scheduled 03-15 + 5 grace days
  EXPECT_THAT(Run(), IsEmpty());
}

TEST_F(RulesTest, PaidTheDayAfterGraceIsLate) {
  PayA(12000, "2026-03-21T00:00:00+08:00");
  EXPECT_THAT(Run(), ElementsAre("LATE,SUB,2026-03,A,p1,-,-"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("due 2026-03-15"));
}

TEST_F(RulesTest, TheDateOfPaidAtIsTakenInChinaTime) {
  PayA(12000, "2026-03-20T15:59:59Z");  // 2026-03-20 23:59:59 in China
  EXPECT_THAT(Run(), IsEmpty());
  w.in.payments.clear();
  PayA(12000, "2026-03-20T16:00:00Z");  // 2026-03-21 00:00:00 in China
  EXPECT_THAT(Run(), ElementsAre("LATE,SUB,2026-03,A,p1,-,-"));
}

TEST_F(RulesTest, ProgrammeGraceDaysCount) {
  w.in.programmes[0].grace_days = 0;
  PayA(12000, "2026-03-16T09:00:00+08:00");
  EXPECT_THAT(Run(), ElementsAre("LATE,SUB,2026-03,A,p1,-,-"));
}

TEST_F(RulesTest, UndeclaredBatchIsDueOnThePeriodsLastDay) {
  w.Pay("p1", "B-UNDECLARED", "SUB", "2026-03", "A", "6228000000000001", 12000,
        "2026-04-05T12:00:00+08:00");  // 03-31 + 5
  w.in.batches.clear();
  EXPECT_THAT(Run(), IsEmpty());
  w.in.payments.clear();
  w.Pay("p1", "B-UNDECLARED", "SUB", "2026-03", "A", "6228000000000001", 12000,
        "2026-04-06T00:00:00+08:00");
  EXPECT_THAT(Run(), ElementsAre("LATE,SUB,2026-03,A,p1,-,-"));
}

// formats.md: "a programme and period with no batch is due on the period's last day". A payment
// in an undeclared batch of a programme and period that has declared batches is due by them
// (the latest scheduled_on, as for UNPAID), not at the period's end.
TEST_F(RulesTest, UndeclaredBatchOfADeclaredProgrammeAndPeriodIsDueByItsBatches) {
  w.Pay("p1", "B-UNDECLARED", "SUB", "2026-03", "A", "6228000000000001", 12000,
        "2026-03-20T12:00:00+08:00");  // 03-15 + 5
  w.in.batches[0].declared_count = 0;
  w.in.batches[0].declared_total_fen = 0;
  EXPECT_THAT(Run(), IsEmpty());
  w.in.payments.clear();
  w.Pay("p1", "B-UNDECLARED", "SUB", "2026-03", "A", "6228000000000001", 12000,
        "2026-03-21T00:00:00+08:00");
  EXPECT_THAT(Run(), ElementsAre("LATE,SUB,2026-03,A,p1,-,-"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("due 2026-03-15"));
  EXPECT_THAT(w.last().findings[0].evidence, HasSubstr("due_from=programme_period_batches"));
  w.DeclareBatch("B2", "SUB", "2026-03", 0, 0, "2026-03-18");  // the latest counts
  EXPECT_THAT(Run(), IsEmpty());
}

// --- OVER_PAID / SHORT_PAID --------------------------------------------------------------------

TEST_F(RulesTest, OverAndShortPaid) {
  w.in.batches[0].declared_total_fen = 12500;
  PayA(12500);
  EXPECT_THAT(Run(), ElementsAre("OVER_PAID,SUB,2026-03,A,p1,12000,12500"));
  w.in.payments.clear();
  w.in.batches[0].declared_total_fen = 11999;
  PayA(11999);
  EXPECT_THAT(Run(), ElementsAre("SHORT_PAID,SUB,2026-03,A,p1,12000,11999"));
}

TEST_F(RulesTest, EnrolmentAmountOverridesTheProgrammes) {
  w.in.enrolments[0].amount_fen = 8650;  // e.g. area x rate
  w.in.batches[0].declared_total_fen = 8650;
  PayA(8650);
  EXPECT_THAT(Run(), IsEmpty());
  w.in.payments.clear();
  PayA(12000);
  w.in.batches[0].declared_total_fen = 12000;
  EXPECT_THAT(Run(), ElementsAre("OVER_PAID,SUB,2026-03,A,p1,8650,12000"));
}

// --- UNPAID ------------------------------------------------------------------------------------

TEST_F(RulesTest, UnpaidOnlyAfterDuePlusGrace) {
  w.in.batches[0].declared_count = 0;
  w.in.batches[0].declared_total_fen = 0;
  EXPECT_THAT(Run("2026-03-20"), IsEmpty());  // as_of == due + grace: not yet
  EXPECT_THAT(Run("2026-03-21"), ElementsAre("UNPAID,SUB,2026-03,A,-,12000,0"));
}

TEST_F(RulesTest, UnpaidDueIsTheLatestDeclaredBatch) {
  w.in.batches[0].declared_count = 0;
  w.in.batches[0].declared_total_fen = 0;
  w.DeclareBatch("B2", "SUB", "2026-03", 0, 0, "2026-03-25");
  EXPECT_THAT(Run("2026-03-30"), IsEmpty());
  EXPECT_THAT(Run("2026-03-31"), ElementsAre("UNPAID,SUB,2026-03,A,-,12000,0"));
}

TEST_F(RulesTest, UnpaidWithoutBatchIsDueOnThePeriodsLastDay) {
  w.in.batches.clear();
  EXPECT_THAT(Run("2026-04-05"), IsEmpty());
  EXPECT_THAT(Run("2026-04-06"), ElementsAre("UNPAID,SUB,2026-03,A,-,12000,0"));
}

TEST_F(RulesTest, WithoutAPeriodScopeEveryBegunPeriodIsChecked) {
  w.in.batches.clear();
  PayA();
  // 2026-01 .. 2026-04 have begun by 2026-04-20; 2026-03 is paid; 2026-04 is not yet due.
  EXPECT_THAT(w.Summary("2026-04-20", ""), ElementsAre("UNPAID,SUB,2026-01,A,-,12000,0",
                                                       "UNPAID,SUB,2026-02,A,-,12000,0"));
}

// A batch may be scheduled before its period begins (April's money due in March): once its
// due date plus grace has passed, the entitlement is unpaid, in a full run as in a scoped one.
TEST_F(RulesTest, UnpaidByAnEarlyBatchBeforeItsPeriodBegins) {
  w.in.enrolments[0].from_period = PeriodCodeOf(P("2026-03"));
  PayA();
  w.DeclareBatch("B4", "SUB", "2026-04", 0, 0, "2026-03-20");
  EXPECT_THAT(w.Summary("2026-03-25", "2026-04"), IsEmpty());  // 03-20 + 5: not yet
  EXPECT_THAT(w.Summary("2026-03-25", ""), IsEmpty());
  EXPECT_THAT(w.Summary("2026-03-26", "2026-04"), ElementsAre("UNPAID,SUB,2026-04,A,-,12000,0"));
  EXPECT_THAT(w.Summary("2026-03-26", ""), ElementsAre("UNPAID,SUB,2026-04,A,-,12000,0"));
}

// --- Death ---------------------------------------------------------------------------------------

TEST_F(RulesTest, DeathOnTheFirstDayOfThePeriodStillEntitles) {
  w.Death("A", "2026-03-01");
  PayA();
  EXPECT_THAT(Run(), IsEmpty());
}

TEST_F(RulesTest, DeathBeforeThePeriodMakesThePaymentAfterDeath) {
  w.Death("A", "2026-02-28");
  PayA();
  EXPECT_THAT(Run(), ElementsAre("AFTER_DEATH,SUB,2026-03,A,p1,0,12000"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("2026-02-28"));
}

TEST_F(RulesTest, NoUnpaidAfterDeathAndEarliestDeathCounts) {
  w.in.batches.clear();
  w.Death("A", "2026-05-01");
  w.Death("A", "2026-02-10");
  EXPECT_THAT(Run(), IsEmpty());
}

// --- Window, enrolment, unknown programme --------------------------------------------------------

TEST_F(RulesTest, WindowEdges) {
  w.in.programmes[0].valid_to = P("2026-03");
  PayA();
  EXPECT_THAT(Run(), IsEmpty());
  w.in.programmes[0].valid_to = P("2026-02");
  w.in.batches.clear();
  EXPECT_THAT(Run(), ElementsAre("OUTSIDE_WINDOW,SUB,2026-03,A,p1,0,12000"));
  w.in.programmes[0].valid_to.reset();
  w.in.programmes[0].valid_from = P("2026-04");
  EXPECT_THAT(Run(), ElementsAre("OUTSIDE_WINDOW,SUB,2026-03,A,p1,0,12000"));
}

TEST_F(RulesTest, EnrolmentEdges) {
  w.in.enrolments[0].to_period = PeriodCodeOf(P("2026-03"));
  PayA();
  EXPECT_THAT(Run(), IsEmpty());
  w.in.enrolments[0].to_period = PeriodCodeOf(P("2026-02"));
  EXPECT_THAT(Run(), ElementsAre("NOT_ENTITLED,SUB,2026-03,A,p1,0,12000"));
  w.in.enrolments[0].to_period = kOpenPeriod;
  w.in.enrolments[0].from_period = PeriodCodeOf(P("2026-04"));
  EXPECT_THAT(Run(), ElementsAre("NOT_ENTITLED,SUB,2026-03,A,p1,0,12000"));
}

TEST_F(RulesTest, PaymentUnderAnUnknownProgramme) {
  w.Pay("p9", "B9", "NOPE", "2026-03", "A", "6228000000000001", 500);
  PayA();
  EXPECT_THAT(Run(), ElementsAre("NOT_ENTITLED,NOPE,2026-03,A,p9,0,500"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("not in the programmes data"));
}

TEST_F(RulesTest, YearlyProgramme) {
  w.Prog(ProgSpec("YR", 50000).From("2025").Yearly());
  w.Enrol("A", "YR", "2025");
  PayA();
  w.Pay("y1", "BY", "YR", "2026", "A", "6228000000000001", 50000, "2026-12-31T10:00:00+08:00");
  w.Pay("y2", "BY", "YR", "2026-03", "A", "6228000000000001", 50000);
  // The yearly period "2026" is its own scope; a monthly period is no period of YR.
  EXPECT_THAT(w.Summary("2027-03-01", "2026"), IsEmpty());
  EXPECT_THAT(w.Summary("2027-03-01", "2026-03"),
              ElementsAre("OUTSIDE_WINDOW,YR,2026-03,A,y2,0,50000"));
  w.in.payments.erase(w.in.payments.begin() + 1);  // y1
  EXPECT_THAT(w.Summary("2027-01-05", "2026"), IsEmpty());  // 12-31 + 5
  EXPECT_THAT(w.Summary("2027-01-06", "2026"), ElementsAre("UNPAID,YR,2026,A,-,50000,0"));
}

// --- CADRE_KIN ---------------------------------------------------------------------------------

class CadreTest : public RulesTest {
 protected:
  void SetUp() override {
    RulesTest::SetUp();
    w.in.programmes[0].excludes_cadre_households = true;
  }
};

TEST_F(CadreTest, CadreIsNotEntitledAndNotUnpaid) {
  w.in.recipients[0].is_cadre = true;
  PayA();
  EXPECT_THAT(Run(), ElementsAre("CADRE_KIN,SUB,2026-03,A,p1,0,12000"));
  w.in.payments.clear();
  w.in.batches.clear();
  EXPECT_THAT(Run(), IsEmpty());
}

TEST_F(CadreTest, ProgrammeThatDoesNotExcludeCadresPays) {
  w.in.programmes[0].excludes_cadre_households = false;
  w.in.recipients[0].is_cadre = true;
  PayA();
  EXPECT_THAT(Run(), IsEmpty());
}

TEST_F(CadreTest, MemberOfACadreHousehold) {
  w.Recipient("C", "H1", "6228000000000009", "2020-01-01", false, true);  // cadre in A's home
  PayA();
  EXPECT_THAT(Run(), ElementsAre("CADRE_KIN,SUB,2026-03,A,p1,0,12000"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("household H1"));
}

TEST_F(CadreTest, CadreByPostRecordsAndKin) {
  w.in.cadres.push_back(w.Key("A"));
  PayA();
  EXPECT_THAT(Run(), ElementsAre("CADRE_KIN,SUB,2026-03,A,p1,0,12000"));
  w.in.cadres.clear();
  w.in.kin_of_cadres.push_back(w.Key("A"));
  EXPECT_THAT(Run(), ElementsAre("CADRE_KIN,SUB,2026-03,A,p1,0,12000"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("kin"));
}

TEST_F(CadreTest, HouseholdOfAPostHolderWhoIsNotFlaggedInRecipients) {
  w.Recipient("C", "H1", "6228000000000009", "2020-01-01", false, false);
  w.in.cadres.push_back(w.Key("C"));
  PayA();
  EXPECT_THAT(Run(), ElementsAre("CADRE_KIN,SUB,2026-03,A,p1,0,12000"));
}

TEST_F(CadreTest, LatestRecipientRowGivesTheCadreFlag) {
  w.in.recipients[0].is_cadre = true;
  w.Recipient("A", "H1", "6228000000000001", "2026-01-01", true, false);  // left the post
  PayA();
  EXPECT_THAT(Run(), IsEmpty());
}

// --- The first exception: exactly one code for a payment without entitlement -------------------

TEST_F(RulesTest, NonEntitledPaymentGetsOneCodeOnly) {
  // Outside the window, after death, a cadre, not enrolled, late, over, to a wrong account:
  // only the first exclusive code.
  w.in.programmes[0].excludes_cadre_households = true;
  w.in.programmes[0].valid_to = P("2026-02");
  w.in.recipients[0].is_cadre = true;
  w.Death("A", "2026-01-15");
  w.in.enrolments.clear();
  w.in.batches.clear();
  PayA(99999, "2026-06-01T10:00:00+08:00", "6228000000000555");
  EXPECT_THAT(Run(), ElementsAre("OUTSIDE_WINDOW,SUB,2026-03,A,p1,0,99999"));
}

TEST_F(RulesTest, OrderOfTheExclusiveCodes) {
  w.in.programmes[0].excludes_cadre_households = true;
  w.in.recipients[0].is_cadre = true;
  w.Death("A", "2026-01-15");
  w.in.enrolments.clear();
  w.in.batches.clear();
  PayA(99999, "2026-06-01T10:00:00+08:00", "6228000000000555");
  EXPECT_THAT(Run(), ElementsAre("AFTER_DEATH,SUB,2026-03,A,p1,0,99999"));
  w.in.civil_events.clear();
  EXPECT_THAT(Run(), ElementsAre("CADRE_KIN,SUB,2026-03,A,p1,0,99999"));
  w.in.recipients[0].is_cadre = false;
  EXPECT_THAT(Run(), ElementsAre("NOT_ENTITLED,SUB,2026-03,A,p1,0,99999"));
}

// --- Reversals -----------------------------------------------------------------------------------

TEST_F(RulesTest, PartialReversalCountsWithItsNet) {
  PayA(15000);
  w.Pay("r1", "B1", "SUB", "2026-03", "A", "6228000000000001", -3000,
        "2026-03-16T10:00:00+08:00", "p1");
  w.in.batches[0].declared_count = 2;
  EXPECT_THAT(Run(), IsEmpty());  // net 12000
  w.in.batches[0].declared_total_fen = 12000;
  w.in.payments[1].amount_fen = -4000;
  w.in.batches[0].declared_total_fen = 11000;
  EXPECT_THAT(Run(), ElementsAre("SHORT_PAID,SUB,2026-03,A,p1,12000,11000"));
}

TEST_F(RulesTest, FullReversalCountsForNoRuleSoTheEntitlementIsUnpaid) {
  PayA(12000, "2026-03-15T10:00:00+08:00", "6228999999999999");  // wrong account, reversed
  w.Pay("r1", "B1", "SUB", "2026-03", "A", "6228999999999999", -12000,
        "2026-03-16T10:00:00+08:00", "p1");
  w.in.batches[0].declared_count = 2;
  w.in.batches[0].declared_total_fen = 0;
  EXPECT_THAT(Run(), ElementsAre("UNPAID,SUB,2026-03,A,-,12000,0"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("reversed in full: p1"));
}

// Only a payment reversed in full counts for no rule: a 0-fen row stands, and is short.
TEST_F(RulesTest, ZeroFenPaymentStandsAndIsShortNotUnpaid) {
  w.in.batches[0].declared_total_fen = 0;
  PayA(0);
  EXPECT_THAT(Run(), ElementsAre("SHORT_PAID,SUB,2026-03,A,p1,12000,0"));
  PayA(12000, "2026-03-16T10:00:00+08:00", "6228000000000001", "p2");
  w.in.batches[0].declared_count = 2;
  w.in.batches[0].declared_total_fen = 12000;
  EXPECT_THAT(Run(), ElementsAre("DUPLICATE,SUB,2026-03,A,p2,0,12000",
                                 "SHORT_PAID,SUB,2026-03,A,p1,12000,0"));
}

TEST_F(RulesTest, ReversalBeyondTheNetIsBadAndNotNetted) {
  PayA(12000);
  w.Pay("r1", "B1", "SUB", "2026-03", "A", "6228000000000001", -7000,
        "2026-03-16T10:00:00+08:00", "p1");
  w.Pay("r2", "B1", "SUB", "2026-03", "A", "6228000000000001", -6000,
        "2026-03-17T10:00:00+08:00", "p1");
  w.in.batches[0].declared_count = 3;
  w.in.batches[0].declared_total_fen = -1000;
  // r1 applies (net 5000); r2 would bring it to -1000: bad, not netted.
  EXPECT_THAT(Run(), ElementsAre("BAD_REVERSAL,SUB,2026-03,A,r2,-,-6000",
                                 "SHORT_PAID,SUB,2026-03,A,p1,12000,5000"));
}

TEST_F(RulesTest, ReversalsApplyInPaidAtThenIdOrder) {
  PayA(12000);
  // Same instant: rB before rC by payment_id; rC is the one that overdraws.
  w.Pay("rC", "B1", "SUB", "2026-03", "A", "6228000000000001", -7000,
        "2026-03-16T10:00:00+08:00", "p1");
  w.Pay("rB", "B1", "SUB", "2026-03", "A", "6228000000000001", -6000,
        "2026-03-16T10:00:00+08:00", "p1");
  w.in.batches[0].declared_count = 3;
  w.in.batches[0].declared_total_fen = -1000;
  EXPECT_THAT(Run(), ElementsAre("BAD_REVERSAL,SUB,2026-03,A,rC,-,-7000",
                                 "SHORT_PAID,SUB,2026-03,A,p1,12000,6000"));
}

TEST_F(RulesTest, ExactFullReversalIsNotBad) {
  PayA(12000);
  w.Pay("r1", "B1", "SUB", "2026-03", "A", "6228000000000001", -12000,
        "2026-03-16T10:00:00+08:00", "p1");
  w.in.batches[0].declared_count = 2;
  w.in.batches[0].declared_total_fen = 0;
  EXPECT_THAT(Run("2026-03-18"), IsEmpty());
}

TEST_F(RulesTest, BadReversals) {
  PayA();
  w.Pay("r1", "B1", "SUB", "2026-03", "A", "6228000000000001", -100, "2026-03-16T10:00:00+08:00",
        "nonexistent");
  w.Pay("r2", "B1", "SUB", "2026-03", "A", "6228000000000001", -100, "2026-03-16T10:00:00+08:00",
        "r1");  // names a reversal
  w.Pay("r3", "B1", "SUB", "2026-03", "A", "6228000000000001", 100, "2026-03-16T10:00:00+08:00",
        "p1");  // positive
  w.Pay("r4", "B1", "SUB", "2026-03", "A", "6228000000000001", -100,
        "2026-03-16T10:00:00+08:00");  // negative, names nothing
  w.Pay("r5", "B1", "SUB", "2026-03", "A", "6228000000000001", -100, "2026-03-16T10:00:00+08:00",
        "r5");  // names itself
  w.in.batches[0].declared_count = 6;
  w.in.batches[0].declared_total_fen = 11700;
  EXPECT_THAT(Run(), ElementsAre("BAD_REVERSAL,SUB,2026-03,A,r1,-,-100",
                                 "BAD_REVERSAL,SUB,2026-03,A,r2,-,-100",
                                 "BAD_REVERSAL,SUB,2026-03,A,r3,-,100",
                                 "BAD_REVERSAL,SUB,2026-03,A,r4,-,-100",
                                 "BAD_REVERSAL,SUB,2026-03,A,r5,-,-100"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("not in the payments data"));
  EXPECT_THAT(w.last().findings[1].detail, HasSubstr("itself a reversal"));
  EXPECT_THAT(w.last().findings[2].detail, HasSubstr("negative amount"));
  EXPECT_THAT(w.last().findings[3].detail, HasSubstr("names no payment"));
}

// --- DUPLICATE -----------------------------------------------------------------------------------

TEST_F(RulesTest, LaterPaymentIsDuplicateAndNotJudgedForAmountOrTime) {
  PayA(12000, "2026-03-15T10:00:00+08:00", "6228000000000001", "p2");
  PayA(13000, "2026-03-30T10:00:00+08:00", "6228000000000002", "p1");  // later, late, over
  w.in.batches[0].declared_count = 2;
  w.in.batches[0].declared_total_fen = 25000;
  EXPECT_THAT(Run(), ElementsAre("DUPLICATE,SUB,2026-03,A,p1,0,13000",
                                 "WRONG_ACCOUNT,SUB,2026-03,A,p1,-,-"));
}

TEST_F(RulesTest, DuplicateTieBrokenByPaymentId) {
  PayA(12000, "2026-03-15T10:00:00+08:00", "6228000000000001", "p2");
  PayA(11000, "2026-03-15T10:00:00+08:00", "6228000000000001", "p1");
  w.in.batches[0].declared_count = 2;
  w.in.batches[0].declared_total_fen = 23000;
  // p1 is first (same instant, smaller id): judged on its own (short); p2 is the duplicate.
  EXPECT_THAT(Run(), ElementsAre("DUPLICATE,SUB,2026-03,A,p2,0,12000",
                                 "SHORT_PAID,SUB,2026-03,A,p1,12000,11000"));
}

TEST_F(RulesTest, FullyReversedPaymentTakesNoPartInDuplicate) {
  PayA(12000, "2026-03-14T10:00:00+08:00", "6228000000000001", "p0");
  w.Pay("r0", "B1", "SUB", "2026-03", "A", "6228000000000001", -12000,
        "2026-03-14T11:00:00+08:00", "p0");
  PayA(12000, "2026-03-15T10:00:00+08:00", "6228000000000001", "p1");
  w.in.batches[0].declared_count = 3;
  EXPECT_THAT(Run(), IsEmpty());
}

// --- WRONG_ACCOUNT -------------------------------------------------------------------------------

TEST_F(RulesTest, WrongAccount) {
  PayA(12000, "2026-03-15T10:00:00+08:00", "6228000000000002");
  EXPECT_THAT(Run(), ElementsAre("WRONG_ACCOUNT,SUB,2026-03,A,p1,-,-"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("6228000000000001"));
}

TEST_F(RulesTest, AccountChangedOnThePaymentDate) {
  w.Recipient("A", "H1", "6228000000000002", "2026-03-15");
  PayA(12000, "2026-03-15T00:00:01+08:00", "6228000000000002");
  EXPECT_THAT(Run(), IsEmpty());
  w.in.payments.clear();
  PayA(12000, "2026-03-15T10:00:00+08:00", "6228000000000001");  // the old one: wrong now
  EXPECT_THAT(Run(), ElementsAre("WRONG_ACCOUNT,SUB,2026-03,A,p1,-,-"));
  w.in.payments.clear();
  PayA(12000, "2026-03-14T23:59:59+08:00", "6228000000000001");  // the day before: right
  EXPECT_THAT(Run(), IsEmpty());
}

TEST_F(RulesTest, NoAccountRegisteredYet) {
  w.in.recipients[0].account_since = DayNumberOf(D("2026-04-01"));
  PayA();
  EXPECT_THAT(Run(), ElementsAre("WRONG_ACCOUNT,SUB,2026-03,A,p1,-,-"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("no registered account"));
}

TEST_F(RulesTest, NotOnTheRecipientsRollsAtAll) {
  w.in.recipients.clear();
  PayA();
  EXPECT_THAT(Run(), ElementsAre("WRONG_ACCOUNT,SUB,2026-03,A,p1,-,-"));
}

TEST_F(RulesTest, RowsOfTheSameDateAllCount) {
  w.Recipient("A", "H1", "6228000000000003", "2025-01-01");
  PayA(12000, "2026-03-15T10:00:00+08:00", "6228000000000003");
  EXPECT_THAT(Run(), IsEmpty());
}

// --- SHARED_ACCOUNT ------------------------------------------------------------------------------

class SharedTest : public RulesTest {
 protected:
  // n people in their own households, all registered to and paid into one account.
  void People(int n) {
    PayA();
    for (int i = 0; i < n; ++i) {
      const std::string who = absl::StrCat("S", i);
      w.Recipient(who, who, "6228000000000777");
      w.Enrol(who, "SUB", "2026-01");
      w.Pay(absl::StrCat("s", i), "B2", "SUB", "2026-03", who, "6228000000000777", 12000);
    }
  }
};

TEST_F(SharedTest, ExactlyTheLimitIsFine) {
  People(3);
  EXPECT_THAT(Run(), IsEmpty());
}

TEST_F(SharedTest, OneOverTheLimitFlagsEveryEntitledPayment) {
  People(4);
  EXPECT_THAT(Run(), ElementsAre("SHARED_ACCOUNT,SUB,2026-03,S0,s0,-,-",
                                 "SHARED_ACCOUNT,SUB,2026-03,S1,s1,-,-",
                                 "SHARED_ACCOUNT,SUB,2026-03,S2,s2,-,-",
                                 "SHARED_ACCOUNT,SUB,2026-03,S3,s3,-,-"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("for 4 different recipients"));
  EXPECT_THAT(w.Summary("2026-04-30", "2026-03", "", 4), IsEmpty());
}

TEST_F(SharedTest, NonEntitledPaymentCountsButIsNotFlagged) {
  People(3);
  w.Pay("x", "B2", "SUB", "2026-03", "NOBODY", "6228000000000777", 12000);
  EXPECT_THAT(Run(), ElementsAre("NOT_ENTITLED,SUB,2026-03,NOBODY,x,0,12000",
                                 "SHARED_ACCOUNT,SUB,2026-03,S0,s0,-,-",
                                 "SHARED_ACCOUNT,SUB,2026-03,S1,s1,-,-",
                                 "SHARED_ACCOUNT,SUB,2026-03,S2,s2,-,-"));
}

TEST_F(SharedTest, OnePersonPaidTwiceCountsOnce) {
  People(3);
  w.Pay("s0b", "B2", "SUB", "2026-03", "S0", "6228000000000777", 12000,
        "2026-03-16T10:00:00+08:00");
  EXPECT_THAT(Run(), ElementsAre("DUPLICATE,SUB,2026-03,S0,s0b,0,12000"));
}

TEST_F(SharedTest, AnyProgrammeOfThePeriodCountsButNotOtherPeriods) {
  People(3);
  w.Prog(ProgSpec("OTHER", 100));
  w.Enrol("A", "OTHER", "2026-01");
  w.Pay("o1", "B3", "OTHER", "2026-02", "A", "6228000000000777", 100);
  // February is another period: no sharing, and March of OTHER is unpaid.
  EXPECT_THAT(Run(), ElementsAre("UNPAID,OTHER,2026-03,A,-,100,0"));
  w.in.payments.back().period = PeriodCodeOf(P("2026-03"));
  const auto got = Run();
  EXPECT_EQ(got.size(), 5u);  // s0..s2 + o1 shared, o1 also to the wrong account
  EXPECT_THAT(got, testing::Contains("SHARED_ACCOUNT,OTHER,2026-03,A,o1,-,-"));
}

TEST_F(SharedTest, ReversedInFullDoesNotCount) {
  People(4);
  w.Pay("rs", "B2", "SUB", "2026-03", "S3", "6228000000000777", -12000,
        "2026-03-16T10:00:00+08:00", "s3");
  EXPECT_THAT(Run(), ElementsAre("UNPAID,SUB,2026-03,S3,-,12000,0"));
}

// --- Household programmes ------------------------------------------------------------------------

class HouseholdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    w.Prog(ProgSpec("HH", 30000).Household());
    w.Recipient("HEAD", "H7", "6228000000000071", "2025-01-01", true);
    w.Recipient("MEMBER", "H7", "6228000000000072", "2025-01-01", false);
    w.Enrol("HEAD", "HH", "2026-01");
  }
  World w;
};

TEST_F(HouseholdTest, PaidToTheHead) {
  w.Pay("h1", "BH", "HH", "2026-03", "HEAD", "6228000000000071", 30000);
  EXPECT_THAT(w.Summary("2026-04-30"), IsEmpty());
}

TEST_F(HouseholdTest, PaidToAnotherMember) {
  w.Pay("h1", "BH", "HH", "2026-03", "MEMBER", "6228000000000072", 30000);
  EXPECT_THAT(w.Summary("2026-04-30"), ElementsAre("NOT_ENTITLED,HH,2026-03,MEMBER,h1,0,30000",
                                                   "UNPAID,HH,2026-03,HEAD,-,30000,0"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("to whom it should be paid"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr(MaskedIdNumberOf(w.Key("HEAD"))));
}

TEST_F(HouseholdTest, TwoMembersEnrolledTheHeadHoldsTheEntitlement) {
  w.Enrol("MEMBER", "HH", "2026-01");
  w.Pay("h1", "BH", "HH", "2026-03", "HEAD", "6228000000000071", 30000);
  w.Pay("h2", "BH", "HH", "2026-03", "MEMBER", "6228000000000072", 30000);
  EXPECT_THAT(w.Summary("2026-04-30"), ElementsAre("NOT_ENTITLED,HH,2026-03,MEMBER,h2,0,30000"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("entitled once"));
}

TEST_F(HouseholdTest, TwoMembersEnrolledTheOtherHoldsItWhenTheHeadIsDead) {
  w.Enrol("MEMBER", "HH", "2026-01");
  w.Death("HEAD", "2026-02-01");
  w.Pay("h2", "BH", "HH", "2026-03", "MEMBER", "6228000000000072", 30000);
  EXPECT_THAT(w.Summary("2026-04-30"), IsEmpty());
}

TEST_F(HouseholdTest, PersonProgrammeIsNotMergedByHousehold) {
  w.Prog(ProgSpec("PP", 100));
  w.Enrol("HEAD", "PP", "2026-01");
  w.Enrol("MEMBER", "PP", "2026-01");
  w.Pay("h1", "BH", "HH", "2026-03", "HEAD", "6228000000000071", 30000);
  w.Pay("p1", "BP", "PP", "2026-03", "HEAD", "6228000000000071", 100);
  w.Pay("p2", "BP", "PP", "2026-03", "MEMBER", "6228000000000072", 100);
  EXPECT_THAT(w.Summary("2026-04-30"), IsEmpty());
}

TEST_F(HouseholdTest, EntitlementsGoToTheHeadOnceAndToTheNextMemberWhenTheHeadIsDead) {
  // Only the head enrolled: the head's; the member is not enrolled.
  EXPECT_THAT(w.Entitlements("HH", "2026-03", {"HEAD", "MEMBER"}),
              ElementsAre("HEAD:entitled 30000", "MEMBER:NOT_ENROLLED"));
  w.Enrol("MEMBER", "HH", "2026-01");
  EXPECT_THAT(w.Entitlements("HH", "2026-03", {"MEMBER", "HEAD"}),
              ElementsAre("HEAD:entitled 30000", "MEMBER:HOUSEHOLD_MEMBER by HEAD"));
  w.Death("HEAD", "2026-02-01");
  EXPECT_THAT(w.Entitlements("HH", "2026-03", {"HEAD", "MEMBER"}),
              ElementsAre("HEAD:DECEASED", "MEMBER:entitled 30000"));
  // Before the head died: the head's.
  EXPECT_THAT(w.Entitlements("HH", "2026-01", {"HEAD", "MEMBER"}),
              ElementsAre("HEAD:entitled 30000", "MEMBER:HOUSEHOLD_MEMBER by HEAD"));
}

TEST(EntitlementTest, CadresTheirHouseholdsAndTheirKinAreExcludedWhereTheProgrammeSaysSo) {
  World w;
  w.Prog(ProgSpec("EX", 10000).ExcludesCadres());
  w.Prog(ProgSpec("OPEN", 5000));
  for (const std::string who : {"CADRE", "SPOUSE", "COUSIN", "POSTHOLDER", "OTHER"}) {
    w.Enrol(who, "EX", "2026-01");
    w.Enrol(who, "OPEN", "2026-01");
  }
  w.Recipient("CADRE", "H1", "6228000000000001", "2025-01-01", true, true);
  w.Recipient("SPOUSE", "H1", "6228000000000002", "2025-01-01", false);
  w.Recipient("COUSIN", "H2", "6228000000000003");
  w.Recipient("POSTHOLDER", "H3", "6228000000000004");
  w.Recipient("OTHER", "H4", "6228000000000005");
  w.in.kin_of_cadres.push_back(w.Key("COUSIN"));
  w.in.cadres.push_back(w.Key("POSTHOLDER"));
  const std::vector<std::string> all = {"CADRE", "SPOUSE", "COUSIN", "POSTHOLDER", "OTHER"};
  EXPECT_THAT(w.Entitlements("EX", "2026-03", all),
              ElementsAre("CADRE:CADRE_HOUSEHOLD", "SPOUSE:CADRE_HOUSEHOLD", "COUSIN:CADRE_KIN",
                          "POSTHOLDER:CADRE_HOUSEHOLD", "OTHER:entitled 10000"));
  EXPECT_THAT(w.Entitlements("OPEN", "2026-03", all),
              ElementsAre("CADRE:entitled 5000", "SPOUSE:entitled 5000", "COUSIN:entitled 5000",
                          "POSTHOLDER:entitled 5000", "OTHER:entitled 5000"));
}

TEST(EntitlementTest, ReasonsComeInTheCheckOrderAndTheLatestEnrolmentSetsTheAmount) {
  World w;
  w.Prog(ProgSpec("EX", 10000).ExcludesCadres().From("2026-01").To("2026-06"));
  w.Recipient("A", "H1", "6228000000000001", "2025-01-01", true, true);  // a cadre
  w.Death("A", "2026-02-10");
  w.Enrol("A", "EX", "2026-04");
  w.Enrol("B", "EX", "2026-01");
  w.Enrol("B", "EX", "2026-03", "2026-03", 7000);
  // Outside the window before dead, dead before a cadre, a cadre before not enrolled.
  EXPECT_THAT(w.Entitlements("EX", "2026-07", {"A", "B"}), ElementsAre("A:OUTSIDE_WINDOW", "B:OUTSIDE_WINDOW"));
  EXPECT_THAT(w.Entitlements("EX", "2026-03", {"A", "B"}), ElementsAre("A:DECEASED", "B:entitled 7000"));
  // Alive when February began.
  EXPECT_THAT(w.Entitlements("EX", "2026-02", {"A", "B"}), ElementsAre("A:CADRE_HOUSEHOLD", "B:entitled 10000"));
  EXPECT_THAT(w.Entitlements("EX", "2026-04", {"B", "B"}), ElementsAre("B:entitled 10000"));
  EXPECT_THAT(w.Entitlements("EX", "2026-02", {"C"}), ElementsAre("C:NOT_ENROLLED"));
  EXPECT_EQ(DecideEntitlements(w.in, "NOPE", P("2026-02"), {w.Key("A")}).status().code(),
            absl::StatusCode::kNotFound);
}

// The listing's answer for a person, programme and period is the check's: a payment gets
// OUTSIDE_WINDOW, AFTER_DEATH, CADRE_KIN or NOT_ENTITLED exactly when DecideEntitlements says
// the person is not entitled, for the matching reason.
TEST(EntitlementTest, AgreesWithTheCheckOnRandomWorlds) {
  std::set<std::string> reasons_met;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    std::mt19937 rng(seed);
    auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    World w;
    w.Prog(ProgSpec("PA", 10000).ExcludesCadres().From("2025-11").To("2026-05"));
    w.Prog(ProgSpec("PH", 30000).Household().ExcludesCadres());
    w.Prog(ProgSpec("PY", 50000).From("2025").Yearly());
    const std::vector<std::string> codes = {"PA", "PH", "PY"};
    auto period_of = [&](const std::string& code) {
      if (code == "PY") return absl::StrCat(uniform(2024, 2027));
      return absl::StrFormat("2026-%02d", uniform(1, 7));
    };
    auto day = [&]() { return absl::StrFormat("2026-%02d-%02d", uniform(1, 6), uniform(1, 28)); };
    const int people = 18;
    std::vector<std::string> everyone;
    for (int i = 0; i < people; ++i) {
      const std::string who = absl::StrCat("P", i);
      everyone.push_back(who);
      w.Recipient(who, absl::StrCat("H", i / 3), absl::StrCat("62280000000000", 10 + i),
                  "2025-01-01", i % 3 == uniform(0, 3), uniform(0, 7) == 0);
      for (const std::string& code : codes) {
        if (uniform(0, 2) == 0) continue;
        const std::string from = code == "PY" ? absl::StrCat(uniform(2024, 2026))
                                              : absl::StrFormat("2026-%02d", uniform(1, 4));
        w.Enrol(who, code, from, uniform(0, 3) == 0 ? (code == "PY" ? "2026" : "2026-05") : "",
                uniform(0, 2) == 0 ? std::optional<int64_t>(uniform(1, 9) * 1000) : std::nullopt);
      }
      if (uniform(0, 6) == 0) w.Death(who, day());
      if (uniform(0, 8) == 0) w.in.kin_of_cadres.push_back(w.Key(who));
      if (uniform(0, 12) == 0) w.in.cadres.push_back(w.Key(who));
    }
    w.Enrol("NOBODY", "PA", "2026-01");  // enrolled, on no roll
    everyone.push_back("NOBODY");
    for (int k = 0; k < 80; ++k) {
      const std::string code = codes[uniform(0, 2)];
      const std::string who = everyone[uniform(0, static_cast<int>(everyone.size()) - 1)];
      w.Pay(absl::StrCat("x", k), "B0", code, period_of(code), who, "6228000000000099", uniform(0, 9) * 1000,
            absl::StrCat(day(), "T10:00:00+08:00"));
    }
    const std::vector<std::string> findings = w.Summary("2026-12-31", "", "", 100);
    std::map<std::string, std::string> not_entitled;  // payment id -> rule
    for (const std::string& line : findings) {
      const std::vector<std::string> f = absl::StrSplit(line, ',');
      if (f[0] == "OUTSIDE_WINDOW" || f[0] == "AFTER_DEATH" || f[0] == "CADRE_KIN" || f[0] == "NOT_ENTITLED") {
        ASSERT_FALSE(not_entitled.contains(f[4])) << "seed " << seed << ": two of the four for " << f[4];
        not_entitled[f[4]] = f[0];
      }
    }
    for (const Payment& p : w.in.payments) {
      const std::string id(w.in.text.Get(p.payment_id));
      const std::string code(w.in.symbols.Name(p.program));
      auto answers = DecideEntitlements(w.in, code, PeriodOf(p.period), {p.person});
      ASSERT_TRUE(answers.ok()) << answers.status();
      ASSERT_EQ(answers->size(), 1u);
      const std::string_view reason = (*answers)[0].reason;
      reasons_met.insert(std::string(reason));
      std::string expected;
      if (reason == "OUTSIDE_WINDOW") expected = "OUTSIDE_WINDOW";
      if (reason == "DECEASED") expected = "AFTER_DEATH";
      if (reason == "CADRE_HOUSEHOLD" || reason == "CADRE_KIN") expected = "CADRE_KIN";
      if (reason == "NOT_ENROLLED" || reason == "HOUSEHOLD_MEMBER") expected = "NOT_ENTITLED";
      const std::string found = not_entitled.contains(id) ? not_entitled[id] : "";
      EXPECT_EQ(found, expected) << "seed " << seed << " payment " << id << " " << code << " "
                                 << PeriodOf(p.period).ToString() << " reason " << reason;
    }
  }
  // The worlds reach every answer.
  EXPECT_THAT(reasons_met, ElementsAre("", "CADRE_HOUSEHOLD", "CADRE_KIN", "DECEASED", "HOUSEHOLD_MEMBER",
                                       "NOT_ENROLLED", "OUTSIDE_WINDOW"));
}

// --- BATCH_MISMATCH ------------------------------------------------------------------------------

TEST_F(RulesTest, BatchMismatchByCountAndByTotal) {
  PayA();
  w.in.batches[0].declared_count = 2;
  EXPECT_THAT(Run(), ElementsAre("BATCH_MISMATCH,SUB,2026-03,-,-,12000,12000"));
  EXPECT_THAT(w.last().findings[0].detail, HasSubstr("declares 2 payments"));
  EXPECT_EQ(w.last().findings[0].batch_id, "B1");
  w.in.batches[0].declared_count = 1;
  w.in.batches[0].declared_total_fen = 12001;
  EXPECT_THAT(Run(), ElementsAre("BATCH_MISMATCH,SUB,2026-03,-,-,12001,12000"));
}

// A batch whose rows add up beyond int64 fen matches no declared total (its sum must not wrap
// around to a small number that a declaration could equal).
TEST_F(RulesTest, BatchRowsThatOverflowMatchNoDeclaredTotal) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  w.Pay("p1", "B1", "SUB", "2026-03", "A", "6228000000000001", max);
  w.Pay("p2", "B1", "SUB", "2026-03", "A", "6228000000000001", max);
  w.in.batches[0].declared_count = 2;
  w.in.batches[0].declared_total_fen = -2;  // what the sum wraps to
  const auto rules = Run();
  ASSERT_FALSE(rules.empty());
  EXPECT_EQ(std::count_if(rules.begin(), rules.end(),
                          [](const std::string& r) { return r.rfind("BATCH_MISMATCH,", 0) == 0; }),
            1);
  for (const auto& f : w.last().findings) {
    if (f.rule == Rule::kBatchMismatch) EXPECT_THAT(f.detail, HasSubstr("totalling more than"));
  }
  // A sum that leaves int64 and comes back (a reversal) is the batch's total whatever the order.
  w.in.payments.clear();
  w.Pay("p1", "B1", "SUB", "2026-03", "A", "6228000000000001", max - 1000);
  w.Pay("p2", "B1", "SUB", "2026-03", "A", "6228000000000001", 2000);
  w.Pay("p3", "B1", "SUB", "2026-03", "A", "6228000000000001", -(max - 1000), "2026-03-16T10:00:00+08:00", "p1");
  w.in.batches[0].declared_count = 3;
  w.in.batches[0].declared_total_fen = 2000;
  for (const auto& r : Run()) EXPECT_NE(r.rfind("BATCH_MISMATCH,", 0), 0u) << r;
}

TEST_F(RulesTest, BatchRowsIncludeReversalsAndRowsOutOfScope) {
  PayA();
  w.Pay("r1", "B1", "SUB", "2026-03", "A", "6228000000000001", -12000,
        "2026-03-16T10:00:00+08:00", "p1");
  w.Pay("q", "B1", "SUB", "2026-02", "A", "6228000000000001", 12000);  // misfiled row
  w.in.batches[0].declared_count = 3;
  w.in.batches[0].declared_total_fen = 12000;
  EXPECT_THAT(Run("2026-03-18"), IsEmpty());
}

TEST_F(RulesTest, BatchOutOfScopeIsNotChecked) {
  PayA();
  w.DeclareBatch("B0", "SUB", "2026-02", 5, 5, "2026-02-15");
  EXPECT_THAT(Run(), IsEmpty());
  EXPECT_THAT(w.Summary("2026-04-30", "2026-02"),
              ElementsAre("BATCH_MISMATCH,SUB,2026-02,-,-,5,0",
                          "UNPAID,SUB,2026-02,A,-,12000,0"));
}

// --- Scope, options, odd input ---------------------------------------------------------------

TEST_F(RulesTest, PaymentsOutsideTheScopeAreNotJudged) {
  PayA();
  w.Pay("feb", "B0", "SUB", "2026-02", "A", "6228000000000002", 1);
  EXPECT_THAT(Run(), IsEmpty());
  w.Prog(ProgSpec("OTHER", 100));
  w.Pay("o1", "B3", "OTHER", "2026-03", "A", "6228000000000001", 100);
  EXPECT_THAT(w.Summary("2026-04-30", "2026-03", "SUB"), IsEmpty());
  EXPECT_THAT(w.Summary("2026-04-30", "2026-03", "OTHER"),
              ElementsAre("NOT_ENTITLED,OTHER,2026-03,A,o1,0,100"));
}

TEST_F(RulesTest, BadOptionsAndInput) {
  EXPECT_EQ(w.Check("2026-04-30", "", "NOPE").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(w.Check("2026-04-30", "", "", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  w.Prog(ProgSpec());
  EXPECT_EQ(w.Check("2026-04-30").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RulesTest, OverlappingEnrolmentsTheLatestFromCounts) {
  w.Enrol("A", "SUB", "2026-03", "", 9000);
  w.Enrol("A", "SUB", "2026-02", "2026-06", 7000);
  w.in.batches.clear();
  EXPECT_THAT(Run(), ElementsAre("UNPAID,SUB,2026-03,A,-,9000,0"));
  EXPECT_THAT(w.Summary("2026-04-30", ""), ElementsAre("UNPAID,SUB,2026-01,A,-,12000,0",
                                                       "UNPAID,SUB,2026-02,A,-,7000,0",
                                                       "UNPAID,SUB,2026-03,A,-,9000,0"));
  w.Enrol("A", "SUB", "2026-03", "", 9500);  // same from: the larger amount
  EXPECT_THAT(Run(), ElementsAre("UNPAID,SUB,2026-03,A,-,9500,0"));
}

TEST_F(RulesTest, DetailsNeverCarryAFullIdNumber) {
  PayA(1, "2026-04-30T10:00:00+08:00", "6228000000000002");
  w.Pay("x", "B1", "SUB", "2026-03", "B", "6228000000000002", 5);
  w.Pay("r", "B1", "SUB", "2026-03", "B", "6228000000000002", -5, "2026-03-16T10:00:00+08:00",
        "zzz");
  const auto got = Run();
  ASSERT_FALSE(got.empty());
  for (const Finding& f : w.last().findings) {
    for (const std::string& who : {w.Id("A"), w.Id("B")}) {
      EXPECT_THAT(f.detail, testing::Not(HasSubstr(who)));
      EXPECT_THAT(f.evidence, testing::Not(HasSubstr(who)));
      EXPECT_THAT(f.detail, testing::Not(HasSubstr("\n")));
    }
  }
}

// --- Compact values -----------------------------------------------------------------------------

TEST(CompactValuesTest, PersonKeys) {
  for (const char* id : {"11010519491231002X", "320702198001011230", "000000000000000000"}) {
    EXPECT_EQ(IdNumberOf(*PersonKeyOf(id)), id);
  }
  EXPECT_EQ(IdNumberOf(*PersonKeyOf("11010519491231002x")), "11010519491231002X");
  EXPECT_EQ(MaskedIdNumberOf(*PersonKeyOf("11010519491231002X")), "1101**********002X");
  EXPECT_FALSE(PersonKeyOf("11010519491231002").has_value());
  EXPECT_FALSE(PersonKeyOf("1101051949123100AX").has_value());
  EXPECT_FALSE(PersonKeyOf("11010519491231002Y").has_value());
  // Keys order as the strings do.
  EXPECT_LT(*PersonKeyOf("110105194912310029"), *PersonKeyOf("11010519491231002X"));
  EXPECT_LT(*PersonKeyOf("11010519491231002X"), *PersonKeyOf("110105194912310030"));
  EXPECT_EQ(*PersonKeyOf("999999999999999999"), 99999999999999999ULL * 11 + 9);
}

TEST(CompactValuesTest, PeriodsAndDays) {
  EXPECT_EQ(PeriodString(PeriodCodeOf(P("2026-03"))), "2026-03");
  EXPECT_EQ(PeriodString(PeriodCodeOf(P("2026"))), "2026");
  EXPECT_LT(PeriodCodeOf(P("2026")), PeriodCodeOf(P("2026-01")));
  EXPECT_LT(PeriodCodeOf(P("2025-12")), PeriodCodeOf(P("2026")));
  EXPECT_EQ(CivilDayOf(DayNumberOf(D("2024-02-29"))), D("2024-02-29"));
  EXPECT_EQ(DayNumberOf(D("1970-01-02")), 1);
}

TEST(CompactValuesTest, TextStoreAndSymbols) {
  TextStore text;
  std::vector<TextRef> refs;
  for (int i = 0; i < 300000; ++i) refs.push_back(text.Add(absl::StrCat("payment-", i)));
  for (int i = 0; i < 300000; i += 997) EXPECT_EQ(text.Get(refs[i]), absl::StrCat("payment-", i));
  EXPECT_TRUE(text.Add("").empty());
  EXPECT_EQ(text.Get(TextRef()), "");
  const std::string big(TextStore::kMaxSize, 'x');
  EXPECT_EQ(text.Get(text.Add(big)), big);

  SymbolTable symbols;
  const Symbol a = symbols.Intern("6228000000000001");
  const Symbol b = symbols.Intern("B1");
  EXPECT_NE(a, b);
  EXPECT_EQ(symbols.Intern("6228000000000001"), a);
  EXPECT_EQ(symbols.Find("B1"), b);
  EXPECT_EQ(symbols.Find("B2"), kNoSymbol);
  EXPECT_EQ(symbols.Name(a), "6228000000000001");
  EXPECT_EQ(symbols.Name(kNoSymbol), "");
  SymbolTable moved = std::move(symbols);
  EXPECT_EQ(moved.Find("B1"), b);
  for (int i = 0; i < 100000; ++i) moved.Intern(absl::StrCat("acct", i));
  EXPECT_EQ(moved.size(), 100002u);
  EXPECT_EQ(moved.Name(moved.Find("acct777")), "acct777");
}

TEST(CompactValuesTest, RuleCodes) {
  for (int i = 0; i < kRuleCount; ++i) {
    const auto rule = static_cast<Rule>(i);
    EXPECT_EQ(RuleFromCode(RuleCode(rule)), rule);
    if (i > 0) {
      EXPECT_LT(RuleCode(static_cast<Rule>(i - 1)), RuleCode(rule));
    }
  }
  EXPECT_FALSE(RuleFromCode("NOPE").has_value());
}

// --- A random province with planted anomalies -------------------------------------------------

struct Planted {
  std::set<std::string> expected;  // "RULE,PROGRAM,who,payment"
};

class Province {
 public:
  explicit Province(uint32_t seed) : rng_(seed) {}

  // Builds the province; returns what must be found.
  std::set<std::string> Build(int households) {
    w.Prog(ProgSpec("PA", 10000).ExcludesCadres());  // person, monthly
    w.Prog(ProgSpec("PH", 30000).Household());
    w.Prog(ProgSpec("PW", 500).From("2025-01").To("2026-02"));  // ended
    int next = 0;
    for (int h = 0; h < households; ++h) {
      const std::string hh = absl::StrCat("H", h);
      const int size = Uniform(1, 4);
      for (int m = 0; m < size; ++m) {
        const std::string who = absl::StrCat("P", next++);
        people_.push_back(who);
        household_of_[who] = hh;
        if (m == 0) heads_.push_back(who);
        w.Recipient(who, hh, Account(who), "2024-01-01", m == 0);
        // Every person is enrolled in PA (some with their own amount); every head in PH.
        const std::optional<int64_t> own =
            Uniform(0, 3) == 0 ? std::optional<int64_t>(Uniform(1, 200) * 100) : std::nullopt;
        owed_[who] = own.value_or(10000);
        w.Enrol(who, "PA", "2025-06", "", own);
        if (m == 0) w.Enrol(who, "PH", "2026-01");
      }
    }
    std::shuffle(people_.begin(), people_.end(), rng_);
    std::shuffle(heads_.begin(), heads_.end(), rng_);

    std::set<std::string> skip_pa;  // people paid by an anomaly itself
    std::set<std::string> skip_ph;
    auto take = [&](std::vector<std::string>& pool) {
      std::string who = pool.back();
      pool.pop_back();
      return who;
    };
    std::map<std::string, std::vector<std::string>> members;  // household -> people
    for (const auto& [p, hh] : household_of_) members[hh].push_back(p);
    // Whole households are reserved for the household-level anomalies, so that no person
    // carries two planted anomalies.
    const int k = 3;
    std::vector<std::string> heads = heads_;
    std::set<std::string> reserved;
    std::vector<std::string> ph_heads;  // paid to a member instead of the head
    for (size_t i = 0; i < heads.size() && ph_heads.size() < k; ++i) {
      if (members[household_of_[heads[i]]].size() >= 2) ph_heads.push_back(heads[i]);
    }
    std::string cadre_head;
    for (const std::string& h : heads) {
      if (std::find(ph_heads.begin(), ph_heads.end(), h) == ph_heads.end()) cadre_head = h;
    }
    for (const std::string& h : ph_heads) {
      for (const std::string& p : members[household_of_[h]]) reserved.insert(p);
    }
    for (const std::string& p : members[household_of_[cadre_head]]) reserved.insert(p);
    std::vector<std::string> pool;
    for (const std::string& p : people_) {
      const bool head = std::find(heads_.begin(), heads_.end(), p) != heads_.end();
      if (!head && !reserved.count(p)) pool.push_back(p);
    }

    for (int i = 0; i < k; ++i) {
      const std::string a = take(pool);  // UNPAID
      skip_pa.insert(a);
      expect(absl::StrCat("UNPAID,PA,", a, ",-"));

      const std::string b = take(pool);  // OVER_PAID
      skip_pa.insert(b);
      PayPA(b, owed_[b] + 1);
      expect(absl::StrCat("OVER_PAID,PA,", b, ",", last_id_));

      const std::string c = take(pool);  // SHORT_PAID
      skip_pa.insert(c);
      PayPA(c, owed_[c] - 1);
      expect(absl::StrCat("SHORT_PAID,PA,", c, ",", last_id_));

      const std::string d = take(pool);  // LATE
      skip_pa.insert(d);
      PayPA(d, owed_[d], "2026-03-21T08:00:00+08:00");
      expect(absl::StrCat("LATE,PA,", d, ",", last_id_));

      const std::string e = take(pool);  // WRONG_ACCOUNT
      skip_pa.insert(e);
      PayPA(e, owed_[e], "2026-03-15T10:00:00+08:00", absl::StrCat("9999", e));
      expect(absl::StrCat("WRONG_ACCOUNT,PA,", e, ",", last_id_));

      const std::string f = take(pool);  // DUPLICATE
      skip_pa.insert(f);
      PayPA(f, owed_[f], "2026-03-15T10:00:00+08:00");
      PayPA(f, owed_[f], "2026-03-16T10:00:00+08:00");
      expect(absl::StrCat("DUPLICATE,PA,", f, ",", last_id_));

      const std::string g = take(pool);  // AFTER_DEATH (no UNPAID either)
      skip_pa.insert(g);
      w.Death(g, "2026-02-20");
      PayPA(g, owed_[g]);
      expect(absl::StrCat("AFTER_DEATH,PA,", g, ",", last_id_));

      const std::string h = take(pool);  // a cadre's kin: CADRE_KIN
      skip_pa.insert(h);
      w.in.kin_of_cadres.push_back(w.Key(h));
      PayPA(h, owed_[h]);
      expect(absl::StrCat("CADRE_KIN,PA,", h, ",", last_id_));

      const std::string n = absl::StrCat("OUTSIDER", i);  // NOT_ENTITLED: on no roll
      w.Recipient(n, absl::StrCat("HX", i), Account(n));
      PayPA(n, 10000);
      expect(absl::StrCat("NOT_ENTITLED,PA,", n, ",", last_id_));

      const std::string o = take(pool);  // OUTSIDE_WINDOW: PW ended in February
      PayAny("PW", "2026-03", o, 500, Account(o));
      expect(absl::StrCat("OUTSIDE_WINDOW,PW,", o, ",", last_id_));

      const std::string r = take(pool);  // reversed in full: UNPAID
      skip_pa.insert(r);
      PayPA(r, owed_[r]);
      const std::string reversed = last_id_;
      PayAny("PA", "2026-03", r, -owed_[r], Account(r), reversed);
      expect(absl::StrCat("UNPAID,PA,", r, ",-"));

      const std::string u = take(pool);  // reversal of a payment that does not exist
      PayAny("PA", "2026-03", u, -100, Account(u), absl::StrCat("GHOST", i));
      expect(absl::StrCat("BAD_REVERSAL,PA,", u, ",", last_id_));

      // A household paid to a member instead of its head.
      const std::string head = ph_heads[i];
      skip_ph.insert(head);
      std::string member;
      for (const std::string& p : members[household_of_[head]]) {
        if (p != head) member = p;
      }
      PayAny("PH", "2026-03", member, 30000, Account(member));
      expect(absl::StrCat("NOT_ENTITLED,PH,", member, ",", last_id_));
      expect(absl::StrCat("UNPAID,PH,", head, ",-"));
    }
    // Four people on one account (registered to it, so only SHARED_ACCOUNT fires).
    for (int i = 0; i < 4; ++i) {
      const std::string s = take(pool);
      skip_pa.insert(s);
      w.Recipient(s, household_of_[s], "6228777700000000", "2026-01-01", false);
      PayPA(s, owed_[s], "2026-03-15T10:00:00+08:00", "6228777700000000");
      expect(absl::StrCat("SHARED_ACCOUNT,PA,", s, ",", last_id_));
    }
    // Boundaries that must not fire: exactly the limit on one account, a death on the first
    // day of the period.
    for (int i = 0; i < 3; ++i) {
      const std::string s = take(pool);
      skip_pa.insert(s);
      w.Recipient(s, household_of_[s], "6228333300000000", "2026-01-01", false);
      PayPA(s, owed_[s], "2026-03-15T10:00:00+08:00", "6228333300000000");
    }
    w.Death(take(pool), "2026-03-01");
    // A reversal of more than was paid: reported, not netted, so the payment stands whole.
    {
      const std::string x = take(pool);
      skip_pa.insert(x);
      PayPA(x, owed_[x]);
      const std::string paid = last_id_;
      PayAny("PA", "2026-03", x, -owed_[x] - 1, Account(x), paid);
      expect(absl::StrCat("BAD_REVERSAL,PA,", x, ",", last_id_));
    }
    // A cadre in a household: every member's PA payment is CADRE_KIN.
    {
      const std::string head = cadre_head;
      for (const std::string& p : members[household_of_[head]]) {
        skip_pa.insert(p);
        PayPA(p, owed_[p]);
        expect(absl::StrCat("CADRE_KIN,PA,", p, ",", last_id_));
      }
      w.in.cadres.push_back(w.Key(head));
    }
    // Everyone else is paid correctly.
    for (const std::string& p : people_) {
      if (!skip_pa.count(p)) PayPA(p, owed_[p]);
    }
    for (const std::string& head : heads_) {
      if (!skip_ph.count(head)) PayAny("PH", "2026-03", head, 30000, Account(head));
    }
    // Batches declare what their rows hold, except one planted mismatch.
    std::map<std::string, std::pair<int64_t, int64_t>> tally;
    for (const Payment& p : w.in.payments) {
      auto& t = tally[std::string(w.in.symbols.Name(p.batch))];
      ++t.first;
      t.second += p.amount_fen;
    }
    for (const auto& [batch, t] : tally) {
      const std::string code = batch.substr(0, 2);
      const bool planted = batch == "PH-B";
      w.DeclareBatch(batch, code, "2026-03", t.first + (planted ? 1 : 0), t.second,
                     "2026-03-15");
    }
    expect("BATCH_MISMATCH,PH,-,-");
    std::shuffle(w.in.payments.begin(), w.in.payments.end(), rng_);
    std::shuffle(w.in.recipients.begin(), w.in.recipients.end(), rng_);
    std::shuffle(w.in.enrolments.begin(), w.in.enrolments.end(), rng_);
    return expected_;
  }

  std::vector<std::string> Found() {
    const auto r = w.Check("2026-04-30", "2026-03");
    EXPECT_TRUE(r.ok());
    std::vector<std::string> out;
    for (const Finding& f : r->findings) {
      const std::string line = w.Line(f);  // RULE,prog,period,who,payment,exp,act
      const std::vector<std::string> parts = absl::StrSplit(line, ',');
      out.push_back(absl::StrCat(parts[0], ",", parts[1], ",", parts[3], ",", parts[4]));
    }
    return out;
  }

  World w;

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::string Account(const std::string& who) { return absl::StrCat("62280", who); }
  void expect(std::string s) { expected_.insert(std::move(s)); }
  void PayPA(const std::string& who, int64_t amount,
             const std::string& at = "", const std::string& account = "") {
    PayAny("PA", "2026-03", who, amount, account.empty() ? Account(who) : account, "", at);
  }
  void PayAny(const std::string& code, const std::string& period, const std::string& who,
              int64_t amount, const std::string& account, const std::string& reverses = "",
              std::string at = "") {
    if (at.empty()) {
      at = absl::StrFormat("2026-03-%02dT%02d:%02d:00+08:00", Uniform(10, 20), Uniform(0, 23),
                           Uniform(0, 59));
    }
    last_id_ = absl::StrCat("T", ++serial_);
    w.Pay(last_id_, absl::StrCat(code, "-B"), code, period, who, account, amount, at, reverses);
  }

  std::mt19937 rng_;
  std::vector<std::string> people_;
  std::vector<std::string> heads_;
  std::map<std::string, std::string> household_of_;
  std::map<std::string, int64_t> owed_;
  std::set<std::string> expected_;
  std::string last_id_;
  int serial_ = 0;
};

TEST(ProvinceTest, EveryPlantedAnomalyIsFoundAndNothingElse) {
  for (uint32_t seed : {1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u}) {
    Province province(seed);
    const std::set<std::string> expected = province.Build(120);
    ASSERT_GE(expected.size(), 46u);  // 3 x 14 planted, 4 shared, a cadre household, ...
    const std::vector<std::string> found = province.Found();
    EXPECT_THAT(found, UnorderedElementsAreArray(expected)) << "seed " << seed;
    // Same data in another order: the same findings in the same order.
    Province again(seed);
    again.Build(120);
    std::mt19937 rng(seed * 7919);
    std::shuffle(again.w.in.payments.begin(), again.w.in.payments.end(), rng);
    std::shuffle(again.w.in.recipients.begin(), again.w.in.recipients.end(), rng);
    std::shuffle(again.w.in.batches.begin(), again.w.in.batches.end(), rng);
    EXPECT_EQ(again.Found(), found) << "seed " << seed;
  }
}

}  // namespace
}  // namespace grassroots::cadrepay

namespace grassroots::cadrepay {
namespace {

// A chaotic random world (every kind of row, odd dates, reversals naming anything): a check
// scoped to one programme, one period or both reports exactly the full check's findings in its
// scope.
TEST(ScopeTest, ScopedChecksReportTheFullChecksFindingsInTheirScope) {
  for (uint32_t seed = 1; seed <= 30; ++seed) {
    std::mt19937 rng(seed);
    auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    World w;
    w.Prog(ProgSpec("PA", 10000).ExcludesCadres().From("2025-11").To("2026-05"));
    w.Prog(ProgSpec("PH", 30000).Household());
    w.Prog(ProgSpec("PY", 50000).From("2025").Yearly());
    const std::vector<std::string> codes = {"PA", "PH", "PY"};
    auto period_of = [&](const std::string& code) {
      if (code == "PY") return absl::StrCat(uniform(2025, 2027));
      return absl::StrFormat("2026-%02d", uniform(1, 6));
    };
    auto day = [&]() { return absl::StrFormat("2026-%02d-%02d", uniform(1, 6), uniform(1, 28)); };
    const int people = 16;
    for (int i = 0; i < people; ++i) {
      const std::string who = absl::StrCat("P", i);
      w.Recipient(who, absl::StrCat("H", i / 3), absl::StrCat("62280000000000", 10 + uniform(0, 6)),
                  uniform(0, 1) ? "2025-01-01" : day(), i % 3 == 0, uniform(0, 9) == 0);
      if (uniform(0, 3) == 0) w.Recipient(who, absl::StrCat("H", i / 3), "6228000000000099", day(), i % 3 == 0);
      for (const std::string& code : codes) {
        if (uniform(0, 2) == 0) continue;
        const std::string from = code == "PY" ? "2025" : absl::StrFormat("2026-%02d", uniform(1, 3));
        w.Enrol(who, code, from, "",
                uniform(0, 2) == 0 ? std::optional<int64_t>(uniform(1, 9) * 1000) : std::nullopt);
      }
      if (uniform(0, 7) == 0) w.Death(who, day());
    }
    std::vector<std::string> ids;
    for (int k = 0; k < 60; ++k) {
      const std::string code = codes[uniform(0, 2)];
      const std::string id = absl::StrCat("x", k);
      const std::string batch = absl::StrCat("B", uniform(0, 7));
      const std::string at = absl::StrCat(day(), "T", uniform(10, 23), ":00:00+08:00");
      const std::string who = absl::StrCat("P", uniform(0, people - 1));
      const std::string account = absl::StrCat("62280000000000", 10 + uniform(0, 6));
      if (!ids.empty() && uniform(0, 4) == 0) {
        const std::string target = uniform(0, 5) == 0 ? "nowhere" : ids[uniform(0, ids.size() - 1)];
        w.Pay(id, batch, code, period_of(code), who, account, -uniform(1, 12) * 1000, at, target);
      } else {
        w.Pay(id, batch, code, period_of(code), who, account, uniform(0, 12) * 1000, at);
      }
      ids.push_back(id);
    }
    for (int b = 0; b < 6; ++b) {
      const std::string code = codes[uniform(0, 2)];
      w.DeclareBatch(absl::StrCat("B", b), code, period_of(code), uniform(0, 9), uniform(0, 9) * 1000,
                     day());
    }
    const std::string as_of = day();
    const std::vector<std::string> full = w.Summary(as_of, "", "", 2);
    std::set<std::pair<std::string, std::string>> scopes;
    for (const std::string& code : codes) {
      for (const std::string& period : {"2025", "2026", "2027", "2026-01", "2026-02", "2026-03",
                                        "2026-04", "2026-05", "2026-06"}) {
        const bool yearly = code == "PY";
        if (yearly != (std::string_view(period).size() == 4)) continue;
        scopes.emplace(code, period);
        scopes.emplace("", period);
      }
      scopes.emplace(code, "");
    }
    for (const auto& [code, period] : scopes) {
      std::vector<std::string> expected;
      for (const std::string& line : full) {
        const std::vector<std::string> f = absl::StrSplit(line, ',');
        if ((code.empty() || f[1] == code) && (period.empty() || f[2] == period)) {
          expected.push_back(line);
        }
      }
      EXPECT_EQ(w.Summary(as_of, period, code, 2), expected)
          << "seed " << seed << " scope " << code << " " << period << " as of " << as_of;
    }
  }
}

}  // namespace
}  // namespace grassroots::cadrepay

namespace grassroots::cadrepay {
namespace {

// formats.md's rules written out plainly, slowly, row by row, as a reader would apply them
// (with docs/disbursement-rules.md's readings where formats.md leaves a choice), to compare
// with the engine on chaotic worlds.
std::vector<std::string> ReferenceFindings(World& w, absl::CivilDay as_of, int limit) {
  const DisbursementInput& in = w.in;
  auto sym = [&](Symbol s) { return std::string(in.symbols.Name(s)); };
  auto id_of = [&](const Payment& p) { return std::string(in.text.Get(p.payment_id)); };
  auto china_day = [](int64_t us) { return common::ChinaDateOf(PaidAtTime(us)); };
  std::vector<std::string> out;
  auto add = [&](Rule rule, const std::string& code, PeriodCode period, std::optional<PersonKey> who,
                 const std::string& payment, std::optional<int64_t> expected, std::optional<int64_t> actual) {
    Finding f;
    f.rule = rule;
    f.program_code = code;
    f.period = PeriodString(period);
    f.person = who;
    f.payment_id = payment;
    f.expected_fen = expected;
    f.actual_fen = actual;
    out.push_back(w.Line(f));
  };
  const auto& pays = in.payments;
  // Reversals, in (paid_at, payment_id) order.
  std::vector<size_t> reversals;
  for (size_t i = 0; i < pays.size(); ++i) {
    if (!in.text.Get(pays[i].reverses).empty()) reversals.push_back(i);
  }
  std::sort(reversals.begin(), reversals.end(), [&](size_t a, size_t b) {
    return std::make_pair(pays[a].paid_at_us, id_of(pays[a])) < std::make_pair(pays[b].paid_at_us, id_of(pays[b]));
  });
  std::map<size_t, int64_t> net;
  for (size_t r : reversals) {
    std::optional<size_t> target;
    for (size_t i = 0; i < pays.size(); ++i) {
      if (in.text.Get(pays[i].reverses).empty() && id_of(pays[i]) == in.text.Get(pays[r].reverses)) target = i;
    }
    const int64_t before = target ? (net.count(*target) ? net[*target] : pays[*target].amount_fen) : 0;
    if (!target || before + pays[r].amount_fen < 0) {
      add(Rule::kBadReversal, sym(pays[r].program), pays[r].period, pays[r].person, id_of(pays[r]), std::nullopt,
          pays[r].amount_fen);
      continue;
    }
    net[*target] = before + pays[r].amount_fen;
  }
  auto is_payment = [&](size_t i) { return in.text.Get(pays[i].reverses).empty(); };
  auto net_of = [&](size_t i) { return net.count(i) ? net[i] : pays[i].amount_fen; };
  auto standing = [&](size_t i) { return is_payment(i) && !(net.count(i) && net[i] == 0); };
  // People.
  struct Latest {
    Symbol household = kNoSymbol;
    bool head = false, cadre = false;
    DayNumber since = std::numeric_limits<DayNumber>::min();
  };
  std::map<PersonKey, Latest> latest;
  for (const RecipientRow& r : in.recipients) {
    Latest& l = latest[r.person];
    if (r.account_since >= l.since) l = {r.household, r.is_household_head, r.is_cadre, r.account_since};
  }
  std::set<Symbol> cadre_households;
  for (const auto& [who, l] : latest) {
    if (l.cadre) cadre_households.insert(l.household);
  }
  std::map<PersonKey, absl::CivilDay> death;
  for (const CivilEvent& e : in.civil_events) {
    if (!death.count(e.person) || e.date < death[e.person]) death[e.person] = e.date;
  }
  auto first_day = [](PeriodCode p) { return PeriodOf(p).first_day(); };
  auto last_day = [](PeriodCode p) { return PeriodOf(p).last_day(); };
  auto dead_before = [&](PersonKey who, PeriodCode p) { return death.count(who) && death[who] < first_day(p); };
  auto covering = [&](PersonKey who, const Programme& prog, PeriodCode p) -> std::optional<int64_t> {
    std::optional<size_t> best;
    int64_t owed = 0;
    for (size_t k = 0; k < in.enrolments.size(); ++k) {
      const Enrolment& e = in.enrolments[k];
      if (e.person != who || sym(e.program) != prog.code) continue;
      if (first_day(p) < first_day(e.from_period)) continue;
      if (e.to_period != kOpenPeriod && last_day(e.to_period) < last_day(p)) continue;
      const int64_t amount = e.amount_fen == kProgrammeAmount ? prog.amount_fen : e.amount_fen;
      if (best) {
        const auto a = first_day(e.from_period), b = first_day(in.enrolments[*best].from_period);
        if (a < b || (a == b && amount <= owed)) continue;
      }
      best = k;
      owed = amount;
    }
    if (!best) return std::nullopt;
    return owed;
  };
  // The verdict: nullopt when entitled (with *owed set), else the rule.
  std::function<std::optional<Rule>(PersonKey, const std::string&, PeriodCode, int64_t*)> verdict =
      [&](PersonKey who, const std::string& code, PeriodCode p, int64_t* owed) -> std::optional<Rule> {
    const Programme* prog = nullptr;
    for (const Programme& g : in.programmes) {
      if (g.code == code) prog = &g;
    }
    if (prog == nullptr) return dead_before(who, p) ? Rule::kAfterDeath : Rule::kNotEntitled;
    const bool monthly = prog->frequency == Frequency::kMonthly;
    if (PeriodOf(p).monthly() != monthly || first_day(p) < prog->valid_from.first_day() ||
        (prog->valid_to && last_day(p) > prog->valid_to->last_day())) {
      return Rule::kOutsideWindow;
    }
    if (dead_before(who, p)) return Rule::kAfterDeath;
    const bool kin = std::find(in.kin_of_cadres.begin(), in.kin_of_cadres.end(), who) != in.kin_of_cadres.end();
    const Latest l = latest.count(who) ? latest[who] : Latest{};
    if (prog->excludes_cadre_households && (l.cadre || kin || (l.household != kNoSymbol && cadre_households.count(l.household)))) {
      return Rule::kCadreKin;
    }
    const std::optional<int64_t> amount = covering(who, *prog, p);
    if (!amount) return Rule::kNotEntitled;
    *owed = *amount;
    if (prog->unit == ProgrammeUnit::kHousehold && l.household != kNoSymbol) {
      // Several members enrolled: the entitled one of the lowest (head first, ID number) holds it.
      std::optional<std::pair<int, PersonKey>> holder;
      for (const auto& [other, ol] : latest) {
        if (ol.household != l.household || !covering(other, *prog, p) || dead_before(other, p)) continue;
        const bool other_kin = std::find(in.kin_of_cadres.begin(), in.kin_of_cadres.end(), other) != in.kin_of_cadres.end();
        if (prog->excludes_cadre_households && (ol.cadre || other_kin)) continue;
        const std::pair<int, PersonKey> rank{ol.head ? 0 : 1, other};
        if (!holder || rank < *holder) holder = rank;
      }
      if (holder && holder->second != who) return Rule::kNotEntitled;
    }
    return std::nullopt;
  };
  std::map<std::string, size_t> declared;  // batch id -> first declaration
  std::map<std::pair<std::string, PeriodCode>, absl::CivilDay> period_due;
  for (size_t b = 0; b < in.batches.size(); ++b) {
    if (!declared.emplace(sym(in.batches[b].batch), b).second) continue;
    auto [it, fresh] = period_due.emplace(std::make_pair(sym(in.batches[b].program), in.batches[b].period),
                                          in.batches[b].scheduled_on);
    if (!fresh) it->second = std::max(it->second, in.batches[b].scheduled_on);
  }
  auto grace_of = [&](const std::string& code) {
    for (const Programme& g : in.programmes) {
      if (g.code == code) return g.grace_days;
    }
    return 0;
  };
  // Shared accounts.
  std::map<std::pair<Symbol, PeriodCode>, std::set<PersonKey>> on_account;
  for (size_t i = 0; i < pays.size(); ++i) {
    if (standing(i)) on_account[{pays[i].account, pays[i].period}].insert(pays[i].person);
  }
  // Payments.
  std::map<std::tuple<PersonKey, std::string, PeriodCode>, std::vector<size_t>> entitled;
  for (size_t i = 0; i < pays.size(); ++i) {
    if (!standing(i)) continue;
    const Payment& p = pays[i];
    int64_t owed = 0;
    if (auto rule = verdict(p.person, sym(p.program), p.period, &owed)) {
      add(*rule, sym(p.program), p.period, p.person, id_of(p), 0, net_of(i));
      continue;
    }
    entitled[{p.person, sym(p.program), p.period}].push_back(i);
  }
  for (auto& [key, list] : entitled) {
    const auto& [who, code, period] = key;
    std::sort(list.begin(), list.end(), [&](size_t a, size_t b) {
      return std::make_pair(pays[a].paid_at_us, id_of(pays[a])) < std::make_pair(pays[b].paid_at_us, id_of(pays[b]));
    });
    int64_t owed = 0;
    verdict(who, code, period, &owed);
    for (size_t k = 0; k < list.size(); ++k) {
      const Payment& p = pays[list[k]];
      const absl::CivilDay paid = china_day(p.paid_at_us);
      if (k > 0) {
        add(Rule::kDuplicate, code, period, who, id_of(p), 0, net_of(list[k]));
      } else {
        if (net_of(list[k]) > owed) add(Rule::kOverPaid, code, period, who, id_of(p), owed, net_of(list[k]));
        if (net_of(list[k]) < owed) add(Rule::kShortPaid, code, period, who, id_of(p), owed, net_of(list[k]));
        absl::CivilDay due = last_day(period);
        if (declared.count(sym(p.batch))) {
          due = in.batches[declared[sym(p.batch)]].scheduled_on;
        } else if (period_due.count({code, period})) {
          due = period_due[{code, period}];
        }
        if (paid > due + grace_of(code)) add(Rule::kLate, code, period, who, id_of(p), std::nullopt, std::nullopt);
      }
      DayNumber since = std::numeric_limits<DayNumber>::min();
      for (const RecipientRow& r : in.recipients) {
        if (r.person == who && r.account_since <= DayNumberOf(paid)) since = std::max(since, r.account_since);
      }
      bool right = false;
      for (const RecipientRow& r : in.recipients) {
        right = right || (r.person == who && r.account_since == since && r.account == p.account);
      }
      if (!right) add(Rule::kWrongAccount, code, period, who, id_of(p), std::nullopt, std::nullopt);
      if (on_account[{p.account, p.period}].size() > static_cast<size_t>(limit)) {
        add(Rule::kSharedAccount, code, period, who, id_of(p), std::nullopt, std::nullopt);
      }
    }
  }
  // Entitlements with no standing payment: every period of 2024 to 2028.
  std::set<std::pair<PersonKey, std::string>> enrolled;
  for (const Enrolment& e : in.enrolments) enrolled.emplace(e.person, sym(e.program));
  for (const auto& [who, code] : enrolled) {
    for (int y = 2024; y <= 2028; ++y) {
      for (int m = 0; m <= 12; ++m) {
        const PeriodCode period = static_cast<PeriodCode>(y * 16 + m);
        int64_t owed = 0;
        if (verdict(who, code, period, &owed) || entitled.count({who, code, period})) continue;
        const absl::CivilDay due = period_due.count({code, period}) ? period_due[{code, period}] : last_day(period);
        if (as_of > due + grace_of(code)) add(Rule::kUnpaid, code, period, who, "", owed, 0);
      }
    }
  }
  // Batches.
  for (const auto& [batch, b] : declared) {
    int64_t count = 0, total = 0;
    for (const Payment& p : pays) {
      if (sym(p.batch) == batch) {
        ++count;
        total += p.amount_fen;
      }
    }
    if (count != in.batches[b].declared_count || total != in.batches[b].declared_total_fen) {
      add(Rule::kBatchMismatch, sym(in.batches[b].program), in.batches[b].period, std::nullopt, "",
          in.batches[b].declared_total_fen, total);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ReferenceTest, TheEngineAgreesWithThePlainReadingOnChaoticWorlds) {
  std::map<std::string, int> by_rule;  // the worlds must exercise every rule
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    std::mt19937 rng(seed * 104729);
    auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    World w;
    w.Prog(ProgSpec("PA", 10000).ExcludesCadres().From("2025-11").To("2026-05"));
    w.Prog(ProgSpec("PH", 30000).Household().ExcludesCadres());
    w.Prog(ProgSpec("PY", 50000).From("2025").Yearly());
    w.in.programmes[1].grace_days = uniform(0, 10);
    const std::vector<std::string> codes = {"PA", "PH", "PY"};
    auto period_of = [&](const std::string& code) {
      if (code == "PY") return absl::StrCat(uniform(2025, 2027));
      return absl::StrFormat("2026-%02d", uniform(1, 6));
    };
    auto day = [&]() { return absl::StrFormat("2026-%02d-%02d", uniform(1, 6), uniform(1, 28)); };
    const int people = 14;
    for (int i = 0; i < people; ++i) {
      const std::string who = absl::StrCat("P", i);
      const std::string household = absl::StrCat("H", i / 3);
      w.Recipient(who, household, absl::StrCat("62280000000000", 10 + uniform(0, 5)), "2025-01-01", i % 3 == 0,
                  uniform(0, 11) == 0);
      if (uniform(0, 3) == 0) {
        w.Recipient(who, household, absl::StrCat("62280000000000", 10 + uniform(0, 5)), day(), i % 3 == 0,
                    uniform(0, 11) == 0);
      }
      for (const std::string& code : codes) {
        if (uniform(0, 2) == 0) continue;
        const std::string from = code == "PY" ? absl::StrCat(uniform(2024, 2026))
                                              : absl::StrFormat("2026-%02d", uniform(1, 4));
        w.Enrol(who, code, from, "", uniform(0, 2) == 0 ? std::optional<int64_t>(uniform(0, 9) * 1000) : std::nullopt);
      }
      if (uniform(0, 6) == 0) w.Death(who, day());
    }
    if (uniform(0, 1)) w.in.kin_of_cadres.push_back(w.Key(absl::StrCat("P", uniform(0, people - 1))));
    std::vector<std::string> ids;
    for (int k = 0; k < 50; ++k) {
      const std::string code = codes[uniform(0, 2)];
      const std::string id = absl::StrCat("x", uniform(0, 9), k);
      const std::string batch = absl::StrCat("B", uniform(0, 7));
      const std::string at = absl::StrFormat("%sT%02d:%02d:00%s", day(), uniform(0, 23), uniform(0, 1) * 30,
                                             uniform(0, 1) ? "+08:00" : "Z");
      const std::string who = absl::StrCat("P", uniform(0, people - 1));
      const std::string account = absl::StrCat("62280000000000", 10 + uniform(0, 5));
      if (!ids.empty() && uniform(0, 3) == 0) {
        const std::string target = uniform(0, 6) == 0 ? "nowhere" : ids[uniform(0, ids.size() - 1)];
        w.Pay(id, batch, codes[uniform(0, 2)], period_of(code), who, account, -uniform(1, 12) * 1000, at, target);
      } else {
        w.Pay(id, batch, code, period_of(code), who, account, uniform(0, 12) * 1000, at);
      }
      ids.push_back(id);
    }
    for (int b = 0; b < 6; ++b) {
      const std::string code = codes[uniform(0, 2)];
      w.DeclareBatch(absl::StrCat("B", b), code, period_of(code), uniform(0, 9), uniform(0, 9) * 1000, day());
    }
    const std::string as_of = uniform(0, 3) == 0 ? "2027-03-01" : day();
    std::vector<std::string> engine = w.Summary(as_of, "", "", 2);
    std::sort(engine.begin(), engine.end());
    EXPECT_EQ(engine, ReferenceFindings(w, D(as_of), 2)) << "seed " << seed << " as of " << as_of;
    for (const std::string& line : engine) ++by_rule[line.substr(0, line.find(','))];
  }
  for (int r = 0; r < kRuleCount; ++r) {
    EXPECT_GT(by_rule[std::string(RuleCode(static_cast<Rule>(r)))], 0) << RuleCode(static_cast<Rule>(r));
  }
}

}  // namespace
}  // namespace grassroots::cadrepay
