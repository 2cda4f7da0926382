#pragma once
// Work a service does on its own every so often (the automated disbursement check, the daily
// date-rule run of membership): one thread, a first pass after `first_delay`, then one every
// `interval`, until Stop. With a pool, a pass runs under the named lock "grassroots_task_<name>"
// taken without waiting: across every replica one pass at a time, the others skip theirs.

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "grassroots/common/db.h"

namespace grassroots::common::checks {

class PeriodicTask final {
 public:
  PeriodicTask(std::string name, absl::Duration first_delay, absl::Duration interval, std::function<void()> task,
               ConnectionPool* pool = nullptr);
  ~PeriodicTask() { Stop(); }
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;
  void Start();
  void Stop();
  // One pass now, on the calling thread: false when another replica's pass holds the lock (or the
  // lock could not be asked for), true when the task ran.
  bool RunOnce();

 private:
  const std::string name_;
  const absl::Duration first_delay_, interval_;
  std::function<void()> task_;
  ConnectionPool* pool_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace grassroots::common::checks
