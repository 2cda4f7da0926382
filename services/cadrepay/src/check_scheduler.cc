#include "check_scheduler.h"

#include <vector>

#include "grassroots/common/log.h"
#include "grassroots/common/validate.h"

namespace grassroots::cadrepay {

CheckScheduler::CheckScheduler(DisbursementLogic& logic, absl::Duration interval, common::ConnectionPool* pool)
    : logic_(logic), task_("cadrepay_disbursement_check", absl::ZeroDuration(), interval, [this] { RunDue(); }, pool) {}

int CheckScheduler::RunDue() {
  auto due = logic_.DueScopes(common::TodayInChina(logic_.Now()));
  if (!due.ok()) {
    common::LogWarning("scheduled disbursement check: cannot list due batches", {{"error", due.status().ToString()}});
    return 0;
  }
  // Every check reads every payment and batch, whatever its scope: several due scopes are
  // covered by one full check (a full run at this data generation counts for each of them).
  std::vector<DueScope> scopes = *due;
  if (scopes.size() > 1) scopes = {DueScope{}};
  int runs = 0;
  for (const DueScope& scope : scopes) {
    v1::RunCheckRequest request;
    request.set_program_code(scope.program_code);
    request.set_period(scope.period);
    // Waits for the run, however long: the next scope after this one.
    auto run = logic_.RunCheck(request, DisbursementLogic::kScheduler, absl::InfiniteFuture(), absl::InfiniteDuration());
    if (!run.ok()) {
      common::LogWarning("scheduled disbursement check failed",
                         {{"program_code", std::string_view(scope.program_code)},
                          {"period", std::string_view(scope.period)},
                          {"error", run.status().ToString()}});
      continue;
    }
    ++runs;
  }
  return runs;
}

}  // namespace grassroots::cadrepay
