#pragma once
// Where CADRE_KIN learns who is kin of a village cadre beyond the household. The member
// registry's kinship records arrive with a later issue: its gRPC lookup will implement this
// interface (one call per run with the cadres in scope). Until then the run uses recipients'
// cadre flags and households only, and says so in its warnings.

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
};

// The registry without kinship records (today): no kin, and a warning saying so.
class NoKinshipRecords final : public KinshipSource {
 public:
  absl::StatusOr<std::vector<PersonKey>> KinOfCadres(const std::vector<PersonKey>& cadres,
                                                     std::vector<std::string>& warnings) override {
    warnings.push_back(
        "CADRE_KIN: the member registry keeps no kinship records yet; cadres' recorded kin outside their "
        "household were not checked (rule applied to cadres and their households only)");
    return std::vector<PersonKey>{};
  }
};

}  // namespace grassroots::cadrepay
