#pragma once
// Whether one enrolled person is entitled to a programme for a period (formats.md,
// enrolments.csv): enrolled for it, the period in the programme's window, alive when the
// period began, and not excluded as a cadre household. Pure; the engine applies the same
// definition to payments, this answers ListEntitlements.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "grassroots/common/validate.h"
#include "ingest_rows.h"

namespace grassroots::cadrepay {

struct EnrolmentSpan {
  common::Period from;
  std::optional<common::Period> to;  // nullopt: open-ended
  std::optional<int64_t> amount_fen;
};

struct EntitlementFacts {
  std::vector<EnrolmentSpan> enrolments;  // of this person in this programme
  std::optional<absl::CivilDay> death;    // earliest recorded death
  bool cadre_household = false;           // a cadre, or in a cadre's household
};

struct EntitlementVerdict {
  bool entitled = false;
  int64_t amount_fen = 0;  // when entitled
  std::string reason;      // NOT_ENROLLED, OUTSIDE_WINDOW, DECEASED, CADRE_HOUSEHOLD; "" when entitled
};

EntitlementVerdict DecideEntitlement(const ProgrammeRow& programme, const common::Period& period,
                                     const EntitlementFacts& facts);

}  // namespace grassroots::cadrepay
