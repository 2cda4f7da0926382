#include "entitlement.h"

#include <gtest/gtest.h>

namespace grassroots::cadrepay {
namespace {

common::Period P(const char* s) { return *common::ParsePeriod(s); }

ProgrammeRow Programme() {
  ProgrammeRow p;
  p.program_code = "GDBT";
  p.unit = "person";
  p.frequency = "monthly";
  p.amount_fen = 12000;
  p.valid_from = P("2026-01");
  p.valid_to = P("2026-12");
  p.excludes_cadre_households = true;
  return p;
}

TEST(Entitlement, EntitledWithProgrammeOrEnrolmentAmount) {
  EntitlementFacts f;
  f.enrolments.push_back({P("2026-01"), std::nullopt, std::nullopt});
  auto v = DecideEntitlement(Programme(), P("2026-03"), f);
  EXPECT_TRUE(v.entitled);
  EXPECT_EQ(v.amount_fen, 12000);
  EXPECT_EQ(v.reason, "");
  f.enrolments.push_back({P("2026-03"), P("2026-03"), 9000});
  EXPECT_EQ(DecideEntitlement(Programme(), P("2026-03"), f).amount_fen, 9000);
}

TEST(Entitlement, ReasonsInOrder) {
  EntitlementFacts f;
  EXPECT_EQ(DecideEntitlement(Programme(), P("2026-03"), f).reason, "NOT_ENROLLED");
  f.enrolments.push_back({P("2025-01"), std::nullopt, std::nullopt});
  EXPECT_EQ(DecideEntitlement(Programme(), P("2025-06"), f).reason, "OUTSIDE_WINDOW");
  f.death = absl::CivilDay(2026, 2, 10);
  EXPECT_EQ(DecideEntitlement(Programme(), P("2026-03"), f).reason, "DECEASED");
  // Alive when February began: still entitled for February.
  EXPECT_TRUE(DecideEntitlement(Programme(), P("2026-02"), f).entitled);
  f.death.reset();
  f.cadre_household = true;
  EXPECT_EQ(DecideEntitlement(Programme(), P("2026-03"), f).reason, "CADRE_HOUSEHOLD");
  ProgrammeRow open = Programme();
  open.excludes_cadre_households = false;
  EXPECT_TRUE(DecideEntitlement(open, P("2026-03"), f).entitled);
}

TEST(Entitlement, EnrolmentEnds) {
  EntitlementFacts f;
  f.enrolments.push_back({P("2026-01"), P("2026-02"), std::nullopt});
  EXPECT_TRUE(DecideEntitlement(Programme(), P("2026-02"), f).entitled);
  EXPECT_EQ(DecideEntitlement(Programme(), P("2026-03"), f).reason, "NOT_ENROLLED");
}

}  // namespace
}  // namespace grassroots::cadrepay
