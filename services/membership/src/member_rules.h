#pragma once
// The rules a member record and its lifecycle must satisfy (domain.md, formats.md members.csv),
// shared by the RPCs and the file import. Pure functions: no database, no server.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/civil_time.h"
#include "grassroots/membership/v1/members.pb.h"
#include "organisation_rules.h"

namespace grassroots::membership {

// Lifecycle position: applicant 0, activist 1, development_target 2, probationary 3, full 4,
// every exit 5; -1 for an unknown status.
int StatusRank(std::string_view status);
bool IsExitStatus(std::string_view status);
bool IsMemberStatus(std::string_view status);
// What a refused status is told. Refused values are never repeated in messages: a value from the
// wrong column (or a caller's slip) may be an ID number.
inline constexpr std::string_view kMemberStatusChoice =
    "must be applicant, activist, development_target, probationary, full, transferred_out, deceased, lapsed, "
    "expelled or left";
// The lifecycle steps StepMember takes, and what a refused one is told.
bool IsStep(std::string_view step);
inline constexpr std::string_view kStepChoice =
    "must be activist, development_target, probationary, extend_probation, full, transferred_out, deceased, lapsed, "
    "expelled or left";
bool IsEducation(std::string_view s);
bool IsKinRelation(std::string_view s);
// What `relation` of A to B makes B to A (parent <-> child; the others are symmetric).
std::string InverseRelation(std::string_view relation);

// The day `months` months after `d`, on the month's last day when it has no such day (29 February
// + 12 months is 28 February).
absl::CivilDay AddMonths(absl::CivilDay d, int months);
// Completed years of age on `on`.
int AgeOn(absl::CivilDay birth, absl::CivilDay on);
// Last day of the probation: joined_on + 12 months + extension.
absl::CivilDay ProbationEnd(absl::CivilDay joined_on, int extension_months);

// Checks and normalises every fact of `m` (id_number normalised to upper-case X) and the
// statutory timing its dates show: UNDER_AGE, TOO_EARLY_FOR_FULL, TOO_EARLY_FOR_TARGET (joined_on
// less than a year after applied_on, or a development target who applied less than a year
// ago: a year as an activist comes between), MISSING_VALUE for a date
// its status needs, DATE_IN_FUTURE, INVALID_DATE, BIRTH_DATE_MISMATCH, INVALID_ID_NUMBER,
// INVALID_MONEY, ... Empty status means applicant. Messages never repeat an ID number.
// `extension_months` is the probation extension already recorded (0 for a new member).
std::vector<Violation> NormaliseMember(v1::Member& m, absl::CivilDay today, int extension_months = 0);

// A row of a file (or a create) that meets an existing member: BACKWARDS_STEP when it would
// move the member back in the lifecycle (or out of an exit), TOO_EARLY_FOR_TARGET when it makes
// an activist of less than a year a development target, MISSING_VALUE (full_on) for the exit of a
// full member without full_on (formats.md: required for every exit but from probation).
// nullopt when acceptable.
std::optional<Violation> CheckTransition(const v1::Member& current, const v1::Member& next, absl::CivilDay today);
// A record's joined_on against the dates its steps recorded (a correction of it): admitted a year
// after activist_on at the earliest (TOO_EARLY_FOR_TARGET) and not before target_on
// (BEFORE_PREVIOUS_EVENT); nullopt when acceptable or when those dates are not recorded.
std::optional<Violation> CheckAdmissionAgainstSteps(const std::string& joined_on, const std::string& activist_on,
                                                    const std::string& target_on);

// True when the facts a file carries are the same in both (output-only fields ignored).
bool SameFileFacts(const v1::Member& a, const v1::Member& b);

// A step's or a correction's effective date: FAILED_PRECONDITION BEFORE_PREVIOUS_EVENT when it
// is before the member's latest event (`last_effective`).
absl::Status CheckNotBeforeLastEvent(absl::CivilDay effective, absl::CivilDay last_effective);
// One lifecycle step on `m` (StepMember). On success `m` holds the state after the step.
// FAILED_PRECONDITION "RULE: why" for a broken rule; INVALID_ARGUMENT for an unknown step.
// `last_effective` is the effective date of the member's latest event.
absl::Status ApplyStep(v1::Member& m, std::string_view step, absl::CivilDay effective, int extension_months,
                       absl::CivilDay last_effective, absl::CivilDay today);

// "138****5678" (first 3 and last 4 digits kept); "" stays "".
std::string MaskPhone(std::string_view phone);

// Column layout of members.csv, in the order this service writes it.
const std::vector<std::string>& MemberCsvColumns();

}  // namespace grassroots::membership
