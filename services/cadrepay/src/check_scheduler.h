#pragma once
// The automated disbursement check: every `interval`, runs the check for each batch's programme
// and period once its scheduled_on + grace_days has passed and no run has seen the current data
// (every ingest that changes something bumps the data generation). A pass runs in one replica
// at a time (common::checks::PeriodicTask's lock, with a pool), and each run is an operation
// like any other: one per scope at a time across replicas, joined by a RunCheck of the scope.

#include <memory>

#include "absl/time/time.h"
#include "disbursement_logic.h"
#include "grassroots/common/checks/scheduler.h"

namespace grassroots::cadrepay {

class CheckScheduler final {
 public:
  // `pool`: for the pass's cross-replica lock (null: no lock, tests of one process).
  CheckScheduler(DisbursementLogic& logic, absl::Duration interval, common::ConnectionPool* pool = nullptr);
  void Start() { task_.Start(); }
  void Stop() { task_.Stop(); }
  // One pass (also what the thread does each interval); returns the number of runs made.
  int RunDue();

 private:
  DisbursementLogic& logic_;
  common::checks::PeriodicTask task_;
};

}  // namespace grassroots::cadrepay
