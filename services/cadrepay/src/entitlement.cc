#include "entitlement.h"

namespace grassroots::cadrepay {

EntitlementVerdict DecideEntitlement(const ProgrammeRow& programme, const common::Period& period,
                                     const EntitlementFacts& facts) {
  EntitlementVerdict v;
  const EnrolmentSpan* covering = nullptr;
  for (const EnrolmentSpan& e : facts.enrolments) {
    if (e.from.monthly() != period.monthly()) continue;
    if (e.from <= period && (!e.to.has_value() || period <= *e.to)) {
      // The latest enrolment that covers the period decides the amount.
      if (covering == nullptr || covering->from < e.from) covering = &e;
    }
  }
  if (covering == nullptr) {
    v.reason = "NOT_ENROLLED";
    return v;
  }
  if (!PeriodFits(period, programme.frequency) || period < programme.valid_from ||
      (programme.valid_to.has_value() && *programme.valid_to < period)) {
    v.reason = "OUTSIDE_WINDOW";
    return v;
  }
  if (facts.death.has_value() && *facts.death < period.first_day()) {
    v.reason = "DECEASED";
    return v;
  }
  if (programme.excludes_cadre_households && facts.cadre_household) {
    v.reason = "CADRE_HOUSEHOLD";
    return v;
  }
  v.entitled = true;
  v.amount_fen = covering->amount_fen.value_or(programme.amount_fen);
  return v;
}

}  // namespace grassroots::cadrepay
