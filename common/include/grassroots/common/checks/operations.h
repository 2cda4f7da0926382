#pragma once
// Check runs as operations, the same for every check of the suite. A run is started and the
// caller answered at once (or after a short wait) with it; the caller follows it (Find, Wait)
// until it ends. One run per (check, scope) at a time across every replica, through a named
// database lock; asking for a scope that is being run joins that run, wherever it runs. Kept in
// the table check_operations of the service's schema (created by the service's migration):
//   run_id PK, check_name, scope_key, state (running|succeeded|failed), phase, done, total,
//   error_code, error, requested_by, started_at, updated_at, finished_at.
// A running row is written again every `heartbeat`; one not written for `stale_after` belongs
// to a replica that stopped, and reads as failed.

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grassroots/common/db.h"

namespace prometheus {
class Registry;
class Gauge;
template <typename T>
class Family;
class Counter;
class Histogram;
}  // namespace prometheus

namespace grassroots::common::checks {

enum class RunState { kRunning, kSucceeded, kFailed };
std::string_view RunStateName(RunState state);

struct Progress {
  std::string phase;
  int64_t done = 0;
  int64_t total = 0;
  bool operator==(const Progress&) const = default;
};

struct Operation {
  std::string run_id;
  std::string check;
  std::string scope_key;
  RunState state = RunState::kRunning;
  Progress progress;
  absl::StatusCode error_code = absl::StatusCode::kOk;  // a failed run's
  std::string error;                                   // never personal data
  std::string requested_by;
  absl::Time started_at;
  absl::Time updated_at;
  absl::Time finished_at = absl::InfinitePast();  // InfinitePast while running
  bool ended() const { return state != RunState::kRunning; }
  // The failed run's status (OK otherwise).
  absl::Status status() const { return ended() && state == RunState::kFailed ? absl::Status(error_code, error) : absl::OkStatus(); }
};

// What a running check reports as it goes; thread-safe and cheap (kept in memory, written to
// the table with the next heartbeat).
class ProgressReporter {
 public:
  virtual ~ProgressReporter() = default;
  virtual void Report(std::string_view phase, int64_t done = 0, int64_t total = 0) = 0;
};

class OperationRunner final {
 public:
  // Runs the check for `run_id`, storing its result under that id. Its status is the run's
  // outcome: OK succeeded, anything else failed (the message is kept: no personal data in it).
  using Work = std::function<absl::Status(const std::string& run_id, ProgressReporter& progress)>;
  struct Options {
    absl::Duration heartbeat = absl::Seconds(2);
    absl::Duration stale_after = absl::Seconds(60);
  };
  // `check`: the check's name ("disbursement"), at most 32 characters. `new_run_id`: an id for a
  // run starting at the given time (at most 40 ASCII characters). `registry` may be null.
  OperationRunner(ConnectionPool& pool, std::string check, std::function<std::string(absl::Time)> new_run_id,
                  prometheus::Registry* registry, Options options);
  OperationRunner(ConnectionPool& pool, std::string check, std::function<std::string(absl::Time)> new_run_id,
                  prometheus::Registry* registry = nullptr)
      : OperationRunner(pool, std::move(check), std::move(new_run_id), registry, Options{}) {}
  ~OperationRunner();  // waits for this process's runs to end
  OperationRunner(const OperationRunner&) = delete;
  OperationRunner& operator=(const OperationRunner&) = delete;

  struct Started {
    Operation operation;
    bool joined = false;  // a run of the scope was going already
  };
  // Starts a run of `scope_key` (at most 200 characters) on a thread of its own, or joins the
  // run of that scope going here or on another replica. UNAVAILABLE when another replica holds
  // the scope but its run cannot be read yet (ask again).
  absl::StatusOr<Started> Start(const std::string& scope_key, const std::string& requested_by, Work work);
  // The run as it stands; nullopt when no run has that id.
  absl::StatusOr<std::optional<Operation>> Find(const std::string& run_id);
  // Waits until the run has ended or `until`, then returns it as it stands (NOT_FOUND when no
  // run has that id).
  absl::StatusOr<Operation> Wait(const std::string& run_id, absl::Time until);

 private:
  struct Running;
  class Reporter;
  void Heartbeats();
  void Finish(const std::shared_ptr<Running>& run, absl::Status outcome);
  absl::Status Write(const Operation& op, bool insert);
  absl::StatusOr<std::optional<Operation>> Read(const std::string& run_id, const std::string& scope_key);
  std::string LockName(const std::string& scope_key) const;

  ConnectionPool& pool_;
  const std::string check_;
  std::function<std::string(absl::Time)> new_run_id_;
  Options options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::string, std::shared_ptr<Running>> by_scope_;  // this process's runs going
  int active_ = 0;  // run threads not yet ended (detached; the destructor waits for them)
  std::thread heartbeat_;
  prometheus::Family<prometheus::Counter>* runs_ = nullptr;
  prometheus::Gauge* running_gauge_ = nullptr;
  prometheus::Histogram* seconds_ = nullptr;
};

}  // namespace grassroots::common::checks
