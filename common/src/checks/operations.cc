#include "grassroots/common/checks/operations.h"

#include <cppconn/connection.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "grassroots/common/log.h"
#include "grassroots/common/validate.h"

namespace grassroots::common::checks {

std::string_view RunStateName(RunState state) {
  switch (state) {
    case RunState::kRunning: return "running";
    case RunState::kSucceeded: return "succeeded";
    case RunState::kFailed: return "failed";
  }
  return "running";
}

namespace {

std::optional<RunState> ParseRunState(std::string_view s) {
  for (RunState r : {RunState::kRunning, RunState::kSucceeded, RunState::kFailed}) {
    if (s == RunStateName(r)) return r;
  }
  return std::nullopt;
}

absl::Time Micros(absl::Time t) { return absl::FromUnixMicros(absl::ToUnixMicros(t)); }

constexpr char kColumns[] =
    "run_id, check_name, scope_key, state, phase, done, total, error_code, error, requested_by, "
    "DATE_FORMAT(started_at, '%Y-%m-%d %H:%i:%s.%f'), DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f'), "
    "COALESCE(DATE_FORMAT(finished_at, '%Y-%m-%d %H:%i:%s.%f'), '')";

Operation FromRow(sql::ResultSet& rs) {
  Operation op;
  op.run_id = rs.getString(1);
  op.check = rs.getString(2);
  op.scope_key = rs.getString(3);
  op.state = ParseRunState(std::string(rs.getString(4))).value_or(RunState::kFailed);
  op.progress = {rs.getString(5), rs.getInt64(6), rs.getInt64(7)};
  op.error_code = static_cast<absl::StatusCode>(rs.getInt(8));
  op.error = rs.getString(9);
  op.requested_by = rs.getString(10);
  op.started_at = ParseSqlDateTimeUtc(rs.getString(11));
  op.updated_at = ParseSqlDateTimeUtc(rs.getString(12));
  op.finished_at = ParseSqlDateTimeUtc(rs.getString(13));
  return op;
}

}  // namespace

// A run of this process: its row as it stands, the scope's lock, and who waits for it.
struct OperationRunner::Running {
  Operation op;            // guarded by the runner's mu_
  std::optional<NamedLock> lock;
  absl::Time written;      // when op was last written
};

class OperationRunner::Reporter final : public ProgressReporter {
 public:
  Reporter(OperationRunner& runner, std::shared_ptr<Running> run) : runner_(runner), run_(std::move(run)) {}
  void Report(std::string_view phase, int64_t done, int64_t total) override {
    std::lock_guard lock(runner_.mu_);
    run_->op.progress = {std::string(phase), done, total};
    runner_.cv_.notify_all();
  }

 private:
  OperationRunner& runner_;
  std::shared_ptr<Running> run_;
};

OperationRunner::OperationRunner(ConnectionPool& pool, std::string check,
                                 std::function<std::string(absl::Time)> new_run_id, prometheus::Registry* registry,
                                 Options options)
    : pool_(pool), check_(std::move(check)), new_run_id_(std::move(new_run_id)), options_(options) {
  if (registry != nullptr) {
    runs_ = &prometheus::BuildCounter()
                 .Name("grassroots_check_runs_total")
                 .Help("Check runs ended, by check and state (succeeded, failed)")
                 .Register(*registry);
    running_gauge_ = &prometheus::BuildGauge()
                          .Name("grassroots_check_runs_running")
                          .Help("Check runs going in this process, by check")
                          .Register(*registry)
                          .Add({{"check", check_}});
    seconds_ = &prometheus::BuildHistogram()
                    .Name("grassroots_check_run_seconds")
                    .Help("Duration of the check runs of this process, by check")
                    .Register(*registry)
                    .Add({{"check", check_}}, prometheus::Histogram::BucketBoundaries{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600});
  }
  heartbeat_ = std::thread([this] { Heartbeats(); });
}

OperationRunner::~OperationRunner() {
  {
    std::unique_lock lock(mu_);
    stopping_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return active_ == 0; });  // this process's runs end first
  }
  if (heartbeat_.joinable()) heartbeat_.join();
}

std::string OperationRunner::LockName(const std::string& scope_key) const {
  // Named locks are at most 64 characters, scopes longer: the scope by its fingerprint.
  return absl::StrFormat("grassroots_check_%s_%016x", check_.substr(0, 24), Fnv1a64(scope_key));
}

absl::Status OperationRunner::Write(const Operation& op, bool insert) {
  auto conn = pool_.Acquire(absl::Now() + absl::Seconds(10));
  if (!conn.ok()) return conn.status();
  try {
    std::unique_ptr<sql::PreparedStatement> st((*conn)->prepareStatement(
        insert ? "INSERT INTO check_operations (state, phase, done, total, error_code, error, updated_at, finished_at, "
                 "run_id, check_name, scope_key, requested_by, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
               : "UPDATE check_operations SET state = ?, phase = ?, done = ?, total = ?, error_code = ?, error = ?, "
                 "updated_at = ?, finished_at = ? WHERE run_id = ?"));
    st->setString(1, std::string(RunStateName(op.state)));
    st->setString(2, op.progress.phase.substr(0, 32));
    st->setInt64(3, op.progress.done);
    st->setInt64(4, op.progress.total);
    st->setInt(5, static_cast<int>(op.error_code));
    st->setString(6, op.error.substr(0, 1000));
    st->setString(7, SqlDateTimeUtc(op.updated_at));
    if (op.ended()) {
      st->setString(8, SqlDateTimeUtc(op.finished_at));
    } else {
      st->setNull(8, 0);
    }
    st->setString(9, op.run_id);
    if (insert) {
      st->setString(10, op.check);
      st->setString(11, op.scope_key);
      st->setString(12, op.requested_by.substr(0, 100));
      st->setString(13, SqlDateTimeUtc(op.started_at));
    }
    st->executeUpdate();
    return absl::OkStatus();
  } catch (const sql::SQLException& e) {
    return Track(*conn, SqlError(e, "write a check run"));
  }
}

absl::StatusOr<std::optional<Operation>> OperationRunner::Read(const std::string& run_id, const std::string& scope_key) {
  auto conn = pool_.Acquire(absl::Now() + absl::Seconds(10));
  if (!conn.ok()) return conn.status();
  try {
    std::unique_ptr<sql::PreparedStatement> st((*conn)->prepareStatement(
        run_id.empty() ? absl::StrCat("SELECT ", kColumns, " FROM check_operations WHERE check_name = ? AND scope_key = ? "
                                      "AND state = 'running' ORDER BY started_at DESC LIMIT 1")
                       : absl::StrCat("SELECT ", kColumns, " FROM check_operations WHERE run_id = ?")));
    if (run_id.empty()) {
      st->setString(1, check_);
      st->setString(2, scope_key);
    } else {
      st->setString(1, run_id);
    }
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    if (!rs->next()) return std::optional<Operation>();
    Operation op = FromRow(*rs);
    // A running row nobody has written for a while: its replica stopped (a crash, a kill).
    if (!op.ended() && absl::Now() - op.updated_at > options_.stale_after) {
      op.state = RunState::kFailed;
      op.error_code = absl::StatusCode::kAborted;
      op.error = "the run was abandoned: the process running it stopped; ask for the check again";
      op.finished_at = op.updated_at;
    }
    return std::optional<Operation>(std::move(op));
  } catch (const sql::SQLException& e) {
    return Track(*conn, SqlError(e, "read a check run"));
  }
}

absl::StatusOr<OperationRunner::Started> OperationRunner::Start(const std::string& scope_key,
                                                                const std::string& requested_by, Work work) {
  if (scope_key.size() > 200) return absl::InvalidArgumentError("scope: at most 200 characters");
  std::unique_lock lock(mu_);
  if (stopping_) return absl::UnavailableError("the service is stopping");
  if (auto it = by_scope_.find(scope_key); it != by_scope_.end()) return Started{it->second->op, true};
  // Only one process runs a scope at a time: the one holding its lock.
  auto scope_lock = NamedLock::Acquire(pool_.options(), LockName(scope_key), absl::Now());
  if (absl::IsDeadlineExceeded(scope_lock.status())) {
    lock.unlock();
    // Another replica runs it: join its run (its row is written right after it took the lock).
    for (int attempt = 0; attempt < 20; ++attempt) {
      auto other = Read("", scope_key);
      if (!other.ok()) return other.status();
      if (other->has_value() && !(*other)->ended()) return Started{**other, true};
      absl::SleepFor(absl::Milliseconds(100));
    }
    return absl::UnavailableError("a run of this scope is starting in another process; ask again");
  }
  if (!scope_lock.ok()) return scope_lock.status();
  const absl::Time now = Micros(absl::Now());
  auto run = std::make_shared<Running>();
  run->lock = std::move(*scope_lock);
  Operation& op = run->op;
  op.run_id = new_run_id_(now);
  op.check = check_;
  op.scope_key = scope_key;
  op.state = RunState::kRunning;
  op.progress = {"starting", 0, 0};
  op.requested_by = requested_by;
  op.started_at = now;
  op.updated_at = now;
  // A row left running by a process that stopped is not this run: whoever holds the lock now is
  // the only one running the scope. It reads as failed (Read), whatever it says.
  if (auto s = Write(op, /*insert=*/true); !s.ok()) return s;
  run->written = now;
  by_scope_.emplace(scope_key, run);
  if (running_gauge_ != nullptr) running_gauge_->Increment();
  Started started{op, false};
  ++active_;
  std::thread([this, run, work = std::move(work)] {
    Reporter reporter(*this, run);
    absl::Status outcome;
    try {
      outcome = work(run->op.run_id, reporter);
    } catch (const std::exception& e) {  // e.g. bad_alloc: a failed run, never a terminate
      outcome = absl::InternalError(absl::StrCat("the run failed: ", e.what()));
    }
    Finish(run, std::move(outcome));
    std::lock_guard done(mu_);
    --active_;
    cv_.notify_all();  // the last thing this thread does with the runner
  }).detach();
  return started;
}

void OperationRunner::Finish(const std::shared_ptr<Running>& run, absl::Status outcome) {
  Operation op;
  {
    std::lock_guard lock(mu_);
    Operation& o = run->op;
    o.state = outcome.ok() ? RunState::kSucceeded : RunState::kFailed;
    o.error_code = outcome.code();
    o.error = std::string(outcome.message());
    if (outcome.ok()) o.progress = {"done", o.progress.total, o.progress.total};
    o.updated_at = Micros(absl::Now());
    o.finished_at = o.updated_at;
    op = o;
  }
  // Written before the lock goes: a replica taking the scope next finds this run ended.
  absl::Status written = Write(op, /*insert=*/false);
  for (int attempt = 0; !written.ok() && attempt < 5; ++attempt) {
    absl::SleepFor(absl::Milliseconds(200) * (attempt + 1));
    written = Write(op, /*insert=*/false);
  }
  if (!written.ok()) {
    LogWarning("cannot record the end of a check run", {{"run_id", std::string_view(op.run_id)},
                                                        {"error", written.ToString()}});
  }
  if (runs_ != nullptr) {
    runs_->Add({{"check", check_}, {"state", std::string(RunStateName(op.state))}}).Increment();
    running_gauge_->Decrement();
    seconds_->Observe(absl::ToDoubleSeconds(op.finished_at - op.started_at));
  }
  {
    std::lock_guard lock(mu_);
    run->lock.reset();
    by_scope_.erase(op.scope_key);
    // Kept readable in memory until the next Find reads the table (written above).
    cv_.notify_all();
  }
  if (!outcome.ok()) {
    LogWarning("check run failed", {{"check", std::string_view(check_)}, {"run_id", std::string_view(op.run_id)},
                                    {"error", std::string_view(op.error)}});
  }
}

void OperationRunner::Heartbeats() {
  std::unique_lock lock(mu_);
  while (!stopping_ || !by_scope_.empty()) {
    cv_.wait_for(lock, absl::ToChronoMilliseconds(std::min(options_.heartbeat, absl::Milliseconds(500))));
    const absl::Time now = absl::Now();
    std::vector<Operation> due;
    for (auto& [scope, run] : by_scope_) {
      if (now - run->written < options_.heartbeat) continue;
      run->op.updated_at = Micros(now);
      run->written = now;
      due.push_back(run->op);
    }
    if (due.empty()) continue;
    lock.unlock();
    for (const Operation& op : due) {
      if (auto s = Write(op, /*insert=*/false); !s.ok()) {
        LogWarning("cannot record a check run's progress", {{"run_id", std::string_view(op.run_id)},
                                                            {"error", s.ToString()}});
      }
    }
    lock.lock();
  }
}

absl::StatusOr<std::optional<Operation>> OperationRunner::Find(const std::string& run_id) {
  {
    std::lock_guard lock(mu_);
    for (const auto& [scope, run] : by_scope_) {
      if (run->op.run_id == run_id) return std::optional<Operation>(run->op);
    }
  }
  return Read(run_id, "");
}

absl::StatusOr<Operation> OperationRunner::Wait(const std::string& run_id, absl::Time until) {
  for (;;) {
    auto op = Find(run_id);
    if (!op.ok()) return op.status();
    if (!op->has_value()) return absl::NotFoundError(absl::StrCat("run_id: check run ", run_id, " does not exist"));
    const absl::Time now = absl::Now();
    if ((*op)->ended() || now >= until) return **op;
    const Progress seen = (*op)->progress;
    std::unique_lock lock(mu_);
    bool here = false;
    for (const auto& [scope, run] : by_scope_) here |= run->op.run_id == run_id;
    // A run of this process wakes the waiter when it reports or ends; another's is read again.
    const absl::Time next = std::min(until, now + (here ? absl::Seconds(5) : absl::Milliseconds(250)));
    cv_.wait_for(lock, absl::ToChronoMilliseconds(std::max(absl::ZeroDuration(), next - now)), [&] {
      for (const auto& [scope, run] : by_scope_) {
        if (run->op.run_id == run_id) return !(run->op.progress == seen);
      }
      return here;  // it ended (left by_scope_)
    });
  }
}

}  // namespace grassroots::common::checks
