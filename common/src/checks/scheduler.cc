#include "grassroots/common/checks/scheduler.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grassroots/common/log.h"

namespace grassroots::common::checks {

PeriodicTask::PeriodicTask(std::string name, absl::Duration first_delay, absl::Duration interval,
                           std::function<void()> task, ConnectionPool* pool)
    : name_(std::move(name)), first_delay_(first_delay), interval_(interval), task_(std::move(task)), pool_(pool) {}

bool PeriodicTask::RunOnce() {
  std::optional<NamedLock> lock;
  if (pool_ != nullptr) {
    auto taken = NamedLock::Acquire(pool_->options(), absl::StrCat("grassroots_task_", name_).substr(0, 64), absl::Now());
    if (!taken.ok()) {
      if (!absl::IsDeadlineExceeded(taken.status())) {
        LogWarning("periodic task: cannot take its lock", {{"task", std::string_view(name_)},
                                                           {"error", taken.status().ToString()}});
      }
      return false;
    }
    lock = std::move(*taken);
  }
  task_();
  return true;
}

void PeriodicTask::Start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    absl::Duration wait = first_delay_;
    while (!stopping_) {
      if (cv_.wait_for(lock, absl::ToChronoMilliseconds(wait), [this] { return stopping_; })) break;
      lock.unlock();
      RunOnce();
      lock.lock();
      wait = interval_;
    }
  });
}

void PeriodicTask::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace grassroots::common::checks
