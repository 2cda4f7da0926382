#pragma once
// The automated disbursement check: a background thread that, every `interval`, runs the check
// for each batch's programme and period once its scheduled_on + grace_days has passed and no
// run has seen the current data (every ingest that changes something bumps the data
// generation). On-demand runs go through RunCheck as usual.

#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/time/time.h"
#include "disbursement_logic.h"

namespace grassroots::cadrepay {

class CheckScheduler final {
 public:
  CheckScheduler(DisbursementLogic& logic, absl::Duration interval) : logic_(logic), interval_(interval) {}
  ~CheckScheduler() { Stop(); }
  void Start();
  void Stop();
  // One pass (also what the thread does each interval); returns the number of runs made.
  int RunDue();

 private:
  DisbursementLogic& logic_;
  absl::Duration interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace grassroots::cadrepay
