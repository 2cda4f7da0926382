#include "member_rules.h"

#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"
#include "grassroots/common/status.h"
#include "grassroots/common/validate.h"

namespace grassroots::membership {
namespace {

constexpr std::array<std::string_view, 10> kStatuses = {
    "applicant", "activist", "development_target", "probationary", "full",
    "transferred_out", "deceased", "lapsed", "expelled", "left"};
constexpr std::array<std::string_view, 7> kEducation = {"primary_or_below", "junior_high", "senior_high", "vocational",
                                                        "college", "bachelor", "postgraduate"};
constexpr std::array<std::string_view, 5> kRelations = {"spouse", "parent", "child", "sibling", "in_law"};
constexpr int kMaxName = 50;
constexpr int kMaxOccupation = 100;
constexpr int kMaxEthnicity = 32;
constexpr int kMinAge = 18;

template <size_t N>
bool In(const std::array<std::string_view, N>& a, std::string_view s) {
  return std::find(a.begin(), a.end(), s) != a.end();
}

// Parses an optional date field; records INVALID_DATE / DATE_IN_FUTURE.
std::optional<absl::CivilDay> DateField(const std::string& value, const char* field, absl::CivilDay today,
                                        std::vector<Violation>& out) {
  if (value.empty()) return std::nullopt;
  auto d = common::ParseDate(value);
  if (!d.ok()) {
    out.push_back({field, "INVALID_DATE", std::string(d.status().message())});
    return std::nullopt;
  }
  if (*d > today) {
    out.push_back({field, "DATE_IN_FUTURE", absl::StrCat(value, " is in the future")});
    return std::nullopt;
  }
  return *d;
}

absl::Status Rule(std::string_view code, std::string_view why) {
  return absl::FailedPreconditionError(absl::StrCat(std::string(code), ": ", std::string(why)));
}

}  // namespace

int StatusRank(std::string_view s) {
  for (size_t i = 0; i < kStatuses.size(); ++i) {
    if (kStatuses[i] == s) return i < 5 ? static_cast<int>(i) : 5;
  }
  return -1;
}
bool IsExitStatus(std::string_view s) { return StatusRank(s) == 5; }
bool IsMemberStatus(std::string_view s) { return StatusRank(s) >= 0; }
bool IsEducation(std::string_view s) { return In(kEducation, s); }
bool IsKinRelation(std::string_view s) { return In(kRelations, s); }
bool IsStep(std::string_view step) {
  static constexpr std::array<std::string_view, 10> kSteps = {
      "activist", "development_target", "probationary", "extend_probation", "full",
      "transferred_out", "deceased", "lapsed", "expelled", "left"};
  return In(kSteps, step);
}
std::string InverseRelation(std::string_view r) {
  if (r == "parent") return "child";
  if (r == "child") return "parent";
  return std::string(r);
}

// A period of months ends on the same day of the month, or on the month's last day when the
// month has no such day (2024-02-29 + 12 months = 2025-02-28; 2023-08-31 + 6 = 2024-02-29), as
// the Civil Code counts periods and as SQL's DATE_ADD does in the date-rule run.
absl::CivilDay AddMonths(absl::CivilDay d, int months) {
  const absl::CivilMonth month = absl::CivilMonth(d) + months;
  const int last = (absl::CivilDay(month + 1) - 1).day();
  return absl::CivilDay(month.year(), month.month(), std::min(d.day(), last));
}

// Completed years, counted as AddMonths counts them: born on 29 February, one is 18 on
// 28 February of a common year.
int AgeOn(absl::CivilDay birth, absl::CivilDay on) {
  int age = static_cast<int>(on.year() - birth.year());
  if (AddMonths(birth, 12 * age) > on) --age;
  return age;
}

absl::CivilDay ProbationEnd(absl::CivilDay joined_on, int extension_months) {
  return AddMonths(joined_on, 12 + extension_months);
}

std::vector<Violation> NormaliseMember(v1::Member& m, absl::CivilDay today, int extension_months) {
  std::vector<Violation> out;
  std::optional<absl::CivilDay> id_birth;
  if (m.id_number().empty()) {
    out.push_back({"id_number", "MISSING_VALUE", "is required"});
  } else if (auto id = common::NormaliseIdNumber(m.id_number()); !id.ok()) {
    out.push_back({"id_number", "INVALID_ID_NUMBER", std::string(id.status().message())});
  } else {
    m.set_id_number(*id);
    id_birth = common::BirthDateOfIdNumber(*id);
  }
  const int64_t name_len = common::Utf8Length(m.name());
  if (m.name().empty()) out.push_back({"name", "MISSING_VALUE", "is required"});
  else if (name_len < 0) out.push_back({"name", "INVALID_TEXT", "is not valid UTF-8"});
  else if (name_len > kMaxName) out.push_back({"name", "TOO_LONG", absl::StrCat("at most ", kMaxName, " characters")});
  if (m.gender().empty()) out.push_back({"gender", "MISSING_VALUE", "is required: M or F"});
  else if (m.gender() != "M" && m.gender() != "F") out.push_back({"gender", "INVALID_GENDER", "must be M or F"});
  if (const int64_t n = common::Utf8Length(m.ethnicity()); n < 0 || n > kMaxEthnicity) {
    out.push_back({"ethnicity", "INVALID_TEXT", absl::StrCat("must be valid UTF-8, at most ", kMaxEthnicity, " characters")});
  }
  if (const int64_t n = common::Utf8Length(m.occupation()); n < 0 || n > kMaxOccupation) {
    out.push_back({"occupation", "INVALID_TEXT", absl::StrCat("must be valid UTF-8, at most ", kMaxOccupation, " characters")});
  }
  if (!m.education().empty() && !IsEducation(m.education())) {
    out.push_back({"education", "UNKNOWN_EDUCATION",
                   "must be primary_or_below, junior_high, senior_high, vocational, college, bachelor or postgraduate"});
  }
  if (!m.phone().empty()) {
    const bool ok = m.phone().size() == 11 && m.phone()[0] == '1' &&
                    std::all_of(m.phone().begin(), m.phone().end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!ok) out.push_back({"phone", "INVALID_PHONE", "must be an 11-digit mobile number"});
  }
  if (m.org_code().empty()) out.push_back({"org_code", "MISSING_VALUE", "is required"});
  else if (!common::IsCode(m.org_code())) out.push_back({"org_code", "INVALID_CODE", "must be 1 to 32 letters, digits or '-'"});
  if (m.status().empty()) m.set_status("applicant");
  if (!IsMemberStatus(m.status())) {
    out.push_back({"status", "UNKNOWN_STATUS", std::string(kMemberStatusChoice)});
  }
  if (m.has_monthly_income_fen() && m.monthly_income_fen() < 0) {
    out.push_back({"monthly_income_fen", std::string(common::kInvalidMoneyCode), "must not be negative"});
  }
  std::optional<absl::CivilDay> birth;
  if (m.birth_date().empty()) {
    out.push_back({"birth_date", "MISSING_VALUE", "is required"});
  } else {
    birth = DateField(m.birth_date(), "birth_date", today, out);
    if (birth && id_birth && *birth != *id_birth) {
      out.push_back({"birth_date", "BIRTH_DATE_MISMATCH", "does not agree with the birth date inside id_number"});
    }
  }
  const auto applied = DateField(m.applied_on(), "applied_on", today, out);
  const auto joined = DateField(m.joined_on(), "joined_on", today, out);
  const auto full = DateField(m.full_on(), "full_on", today, out);
  const int rank = StatusRank(m.status());
  if (rank >= 3 && m.joined_on().empty()) {
    out.push_back({"joined_on", "MISSING_VALUE", absl::StrCat("is required for status ", m.status())});
  }
  if (rank == 4 && m.full_on().empty()) {
    out.push_back({"full_on", "MISSING_VALUE", "is required for status full"});
  }
  if (rank >= 0 && rank < 3 && !m.joined_on().empty()) {
    out.push_back({"joined_on", "INCONSISTENT_STATUS", absl::StrCat("must be empty for status ", m.status())});
  }
  if (rank >= 0 && rank < 4 && !m.full_on().empty()) {
    out.push_back({"full_on", "INCONSISTENT_STATUS", absl::StrCat("must be empty for status ", m.status())});
  }
  if (birth) {
    // Age is judged on the application; without its date, on admission.
    if (applied && AgeOn(*birth, *applied) < kMinAge) {
      out.push_back({"applied_on", "UNDER_AGE", absl::StrCat("the applicant was ", AgeOn(*birth, *applied),
                                                             " on applied_on; an applicant must be 18 or over")});
    } else if (!applied && joined && AgeOn(*birth, *joined) < kMinAge) {
      out.push_back({"joined_on", "UNDER_AGE", "the member was under 18 on joined_on"});
    } else if (!applied && !joined && rank >= 0 && rank < 3 && AgeOn(*birth, today) < kMinAge) {
      // No date of application: it was today at the latest, and the applicant is under 18 today.
      out.push_back({"birth_date", "UNDER_AGE",
                     absl::StrCat("the person is ", AgeOn(*birth, today), " today and there is no applied_on: a ",
                                  m.status(), " applied at 18 or over, so is at least 18 today")});
    }
  }
  if (applied && joined && *joined < *applied) {
    out.push_back({"joined_on", "BEFORE_APPLICATION", "is before applied_on"});
  } else if (applied && joined && *joined < AddMonths(*applied, 12)) {
    // applicant -> activist -> development target (after a year as activist) -> probationary.
    out.push_back({"joined_on", "TOO_EARLY_FOR_TARGET",
                   absl::StrCat("is less than a year after applied_on: a member is admitted only after a year as an "
                                "activist (earliest ", common::FormatDate(AddMonths(*applied, 12)), ")")});
  }
  if (applied && rank == 2 && today < AddMonths(*applied, 12)) {
    out.push_back({"status", "TOO_EARLY_FOR_TARGET",
                   absl::StrCat("a development target must have been an activist for a year, and applied_on is ",
                                m.applied_on())});
  }
  if (joined && full) {
    const absl::CivilDay earliest = ProbationEnd(*joined, extension_months);
    if (*full < earliest) {
      out.push_back({"full_on", "TOO_EARLY_FOR_FULL",
                     absl::StrCat("full membership no earlier than one year of probation",
                                  extension_months > 0 ? " plus its extension" : "", " after joined_on (earliest ",
                                  common::FormatDate(earliest), ")")});
    }
  }
  return out;
}

std::optional<Violation> CheckTransition(const v1::Member& current, const v1::Member& next, absl::CivilDay today) {
  const int from = StatusRank(current.status());
  const int to = StatusRank(next.status());
  if (from == 5 && current.status() != next.status()) {
    return Violation{"status", "BACKWARDS_STEP",
                     absl::StrCat("the member left by ", current.status(), "; an exit is final")};
  }
  if (to < from) {
    return Violation{"status", "BACKWARDS_STEP",
                     absl::StrCat("would move the member back from ", current.status(), " to ", next.status())};
  }
  // Dates the registry recorded through steps (activist_on, target_on) bind the file's dates as
  // they bind a step: a year as an activist before becoming a target and before admission, and
  // no admission before the recorded development-target date.
  const auto activist_since = common::ParseDate(current.activist_on());
  if (from <= 1 && to == 2 && activist_since.ok() && today < AddMonths(*activist_since, 12)) {
    return Violation{"status", "TOO_EARLY_FOR_TARGET",
                     absl::StrCat("a development target must have been an activist for a year (since ",
                                  current.activist_on(), ")")};
  }
  if (from < 3 && to >= 3) {
    if (auto v = CheckAdmissionAgainstSteps(next.joined_on(), current.activist_on(), current.target_on())) return v;
  }
  if (to == 5 && from != 5 && next.full_on().empty() && (from == 4 || !current.full_on().empty())) {
    // formats.md: full_on is required for every exit but from probation.
    return Violation{"full_on", "MISSING_VALUE",
                     absl::StrCat("is required for status ", next.status(), ": the member is a full member (since ",
                                  current.full_on(), "); only an exit from probation leaves it empty")};
  }
  // joined_on and full_on are fixed once recorded, exits included (history is kept, never
  // overwritten): a different one, or none, is a correction (CorrectMember), not an import.
  if (from >= 3 && !current.joined_on().empty() && next.joined_on() != current.joined_on()) {
    return Violation{"joined_on", "CONFLICTING_DATE", "differs from the recorded joined_on; correct it with CorrectMember"};
  }
  if (from >= 4 && !current.full_on().empty() && next.full_on() != current.full_on()) {
    return Violation{"full_on", "CONFLICTING_DATE", "differs from the recorded full_on; correct it with CorrectMember"};
  }
  if (from == 5 && current.full_on().empty() && !next.full_on().empty()) {
    return Violation{"full_on", "CONFLICTING_DATE",
                     absl::StrCat("the member left by ", current.status(),
                                  " from probation, with no full_on recorded; correct it with CorrectMember")};
  }
  return std::nullopt;
}

std::optional<Violation> CheckAdmissionAgainstSteps(const std::string& joined_on, const std::string& activist_on,
                                                    const std::string& target_on) {
  const auto joined = common::ParseDate(joined_on);
  if (!joined.ok()) return std::nullopt;
  if (const auto activist = common::ParseDate(activist_on); activist.ok() && *joined < AddMonths(*activist, 12)) {
    return Violation{"joined_on", "TOO_EARLY_FOR_TARGET",
                     absl::StrCat("is less than a year after the recorded activist_on ", activist_on,
                                  ": a member is admitted only after a year as an activist (earliest ",
                                  common::FormatDate(AddMonths(*activist, 12)), ")")};
  }
  if (const auto target = common::ParseDate(target_on); target.ok() && *joined < *target) {
    return Violation{"joined_on", "BEFORE_PREVIOUS_EVENT",
                     absl::StrCat("is before the recorded development-target date ", target_on)};
  }
  return std::nullopt;
}

bool SameFileFacts(const v1::Member& a, const v1::Member& b) {
  return a.name() == b.name() && a.gender() == b.gender() && a.ethnicity() == b.ethnicity() &&
         a.birth_date() == b.birth_date() && a.education() == b.education() && a.occupation() == b.occupation() &&
         a.phone() == b.phone() && a.org_code() == b.org_code() && a.status() == b.status() &&
         a.applied_on() == b.applied_on() && a.joined_on() == b.joined_on() && a.full_on() == b.full_on() &&
         a.has_monthly_income_fen() == b.has_monthly_income_fen() &&
         a.monthly_income_fen() == b.monthly_income_fen() && a.is_mobile() == b.is_mobile();
}

absl::Status CheckNotBeforeLastEvent(absl::CivilDay effective, absl::CivilDay last_effective) {
  if (effective < last_effective) {
    return Rule("BEFORE_PREVIOUS_EVENT", absl::StrCat("effective_on is before the member's last recorded event (",
                                                      common::FormatDate(last_effective), ")"));
  }
  return absl::OkStatus();
}

absl::Status ApplyStep(v1::Member& m, std::string_view step, absl::CivilDay effective, int extension_months,
                       absl::CivilDay last_effective, absl::CivilDay today) {
  const std::string eff = common::FormatDate(effective);
  if (effective > today) return Rule("DATE_IN_FUTURE", "effective_on must not be in the future");
  if (auto s = CheckNotBeforeLastEvent(effective, last_effective); !s.ok()) return s;
  const std::string& status = m.status();
  if (IsExitStatus(status)) return Rule("EXIT_IS_FINAL", absl::StrCat("the member already left by ", status));
  auto need = [&](std::string_view from) -> absl::Status {
    if (status != from) {
      return Rule("WRONG_STATUS_FOR_STEP", absl::StrCat("step ", std::string(step), " needs status ", std::string(from), ", not ", status));
    }
    return absl::OkStatus();
  };
  auto date_of = [](const std::string& s) { return common::ParseDate(s).value_or(absl::CivilDay(1900, 1, 1)); };
  if (step == "development_target" || step == "probationary") {
    if (auto s = need(step == "probationary" ? "development_target" : "activist"); !s.ok()) return s;
    // A year as an activist first. A member registered as an activist or a development target
    // (an import) may have no activist date: the year is then counted from the application,
    // the earliest an activist can have started.
    const std::string& since = !m.activist_on().empty() ? m.activist_on() : m.applied_on();
    if (!since.empty() && effective < AddMonths(date_of(since), 12)) {
      return Rule("TOO_EARLY_FOR_TARGET",
                  absl::StrCat("a year as an activist comes before becoming a development target and admission (since ",
                               m.activist_on().empty() ? "applied_on " : "activist_on ", since, "; earliest ",
                               common::FormatDate(AddMonths(date_of(since), 12)), ")"));
    }
  }
  if (step == "activist") {
    if (auto s = need("applicant"); !s.ok()) return s;
    if (!m.applied_on().empty() && effective < date_of(m.applied_on())) {
      return Rule("BEFORE_APPLICATION", "an applicant becomes an activist after applying");
    }
    m.set_activist_on(eff);
    m.set_status("activist");
  } else if (step == "development_target") {
    m.set_target_on(eff);
    m.set_status("development_target");
  } else if (step == "probationary") {
    if (AgeOn(date_of(m.birth_date()), effective) < kMinAge) {
      return Rule("UNDER_AGE", "a probationary member must be 18 or over");
    }
    m.set_joined_on(eff);
    m.set_status("probationary");
  } else if (step == "extend_probation") {
    if (auto s = need("probationary"); !s.ok()) return s;
    if (m.extension_months() > 0) {
      return Rule("SECOND_EXTENSION", "the probation may be extended only once");
    }
    if (extension_months < 6 || extension_months > 12) {
      return Rule("EXTENSION_LENGTH", "an extension of the probation is 6 to 12 months");
    }
    m.set_extension_months(extension_months);
  } else if (step == "full") {
    if (auto s = need("probationary"); !s.ok()) return s;
    const absl::CivilDay earliest = ProbationEnd(date_of(m.joined_on()), m.extension_months());
    if (effective < earliest) {
      return Rule("TOO_EARLY_FOR_FULL",
                  absl::StrCat("full membership no earlier than one year of probation",
                               m.extension_months() > 0 ? " plus its extension" : "", " after joined_on (earliest ",
                               common::FormatDate(earliest), ")"));
    }
    m.set_full_on(eff);
    m.set_status("full");
  } else if (IsExitStatus(step)) {
    // Exits are of members (formats.md: joined_on is required for every exit).
    if (StatusRank(status) < 3) {
      return Rule("WRONG_STATUS_FOR_STEP", absl::StrCat("step ", std::string(step),
                                                        " is an exit of a probationary or full member, not of an ",
                                                        status));
    }
    m.set_exited_on(eff);
    m.set_status(std::string(step));
  } else {
    return common::InvalidField("step", std::string(kStepChoice));
  }
  return absl::OkStatus();
}

std::string MaskPhone(std::string_view phone) {
  if (phone.size() < 8) return std::string(phone.empty() ? "" : "****");
  return absl::StrCat(std::string(phone.substr(0, 3)), std::string(phone.size() - 7, '*'),
                      std::string(phone.substr(phone.size() - 4)));
}

const std::vector<std::string>& MemberCsvColumns() {
  static const auto* c = new std::vector<std::string>{
      "id_number", "name",   "gender",    "ethnicity", "birth_date", "education",          "occupation", "phone",
      "org_code",  "status", "applied_on", "joined_on", "full_on",    "monthly_income_fen", "is_mobile"};
  return *c;
}

}  // namespace grassroots::membership
