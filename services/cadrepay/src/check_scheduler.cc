#include "check_scheduler.h"

#include <vector>

#include "grassroots/common/log.h"
#include "grassroots/common/validate.h"

namespace grassroots::cadrepay {

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
    auto run = logic_.RunCheck(request, "scheduler");
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

void CheckScheduler::Start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      lock.unlock();
      RunDue();
      lock.lock();
      cv_.wait_for(lock, absl::ToChronoSeconds(interval_), [this] { return stopping_; });
    }
  });
}

void CheckScheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace grassroots::cadrepay
