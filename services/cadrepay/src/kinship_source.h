#pragma once
// Where CADRE_KIN learns who is kin of a village cadre beyond the household: the member
// registry's kinship records (MembershipKinship in membership_kinship.h asks membership over
// gRPC; one call per run with the cadres in scope). Without a membership address the run uses
// recipients' cadre flags and households only, and says so in its warnings.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "disbursement/disbursement_engine.h"

namespace grassroots::cadrepay {

class KinshipSource {
 public:
  virtual ~KinshipSource() = default;
  // The recorded kin of these cadres. What could not be looked up is appended to `warnings`
  // (the run reports it in CheckRun.warnings; a rule is never skipped silently). An error
  // fails the run.
  virtual absl::StatusOr<std::vector<PersonKey>> KinOfCadres(const std::vector<PersonKey>& cadres,
                                                             std::vector<std::string>& warnings) = 0;
  // False when no member registry is configured: no kin are recorded anywhere, and the warnings
  // only say so (a listing then decides without kin; a lookup that failed is another matter).
  virtual bool configured() const { return true; }
};

// No member registry configured (cadrepay without --membership_addr): no kin, and a warning
// saying so whenever there were cadres to ask about.
class NoKinshipRecords final : public KinshipSource {
 public:
  absl::StatusOr<std::vector<PersonKey>> KinOfCadres(const std::vector<PersonKey>& cadres,
                                                     std::vector<std::string>& warnings) override {
    if (cadres.empty()) return std::vector<PersonKey>{};  // nothing left unchecked
    warnings.push_back(
        "CADRE_KIN: no member registry is configured (--membership_addr); cadres' recorded kin outside their "
        "household were not checked (rule applied to cadres and their households only)");
    return std::vector<PersonKey>{};
  }
  bool configured() const override { return false; }
};

}  // namespace grassroots::cadrepay
