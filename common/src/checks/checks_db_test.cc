// The check machinery against the real MariaDB started by tests/run.
#include <cppconn/connection.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grassroots/common/checks/operations.h"
#include "grassroots/common/checks/review_store.h"
#include "grassroots/common/checks/scheduler.h"
#include "grassroots/common/migrations.h"
#include "test_env.h"

namespace grassroots::common::checks {
namespace {

// The tables as a service's migration makes them (cadrepay V007__check_operations.sql).
constexpr char kTables[] =
    "CREATE TABLE check_operations (run_id VARCHAR(40) NOT NULL PRIMARY KEY, check_name VARCHAR(32) NOT NULL,"
    " scope_key VARCHAR(200) NOT NULL, state VARCHAR(16) NOT NULL, phase VARCHAR(32) NOT NULL, done BIGINT NOT NULL,"
    " total BIGINT NOT NULL, error_code INT NOT NULL, error VARCHAR(1000) NOT NULL, requested_by VARCHAR(100) NOT NULL,"
    " started_at DATETIME(6) NOT NULL, updated_at DATETIME(6) NOT NULL, finished_at DATETIME(6) NULL,"
    " KEY k (check_name, scope_key, state));\n"
    "CREATE TABLE finding_reviews (finding_id CHAR(32) NOT NULL PRIMARY KEY, state VARCHAR(16) NOT NULL,"
    " reason VARCHAR(1000) NOT NULL, reviewed_by VARCHAR(100) NOT NULL, reviewed_at DATETIME(6) NOT NULL);\n"
    "CREATE TABLE finding_review_history (finding_id CHAR(32) NOT NULL, decided_at DATETIME(6) NOT NULL,"
    " from_state VARCHAR(16) NOT NULL, to_state VARCHAR(16) NOT NULL, reason VARCHAR(1000) NOT NULL,"
    " reviewer VARCHAR(100) NOT NULL, PRIMARY KEY (finding_id, decided_at));";

class ChecksDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_ = testing::TestDb("checks");
    ASSERT_TRUE(ApplyMigrations(options_, {{1, "V001__checks.sql", kTables}}).ok());
    pool_ = std::make_unique<ConnectionPool>(options_, nullptr);
  }
  void TearDown() override {
    pool_.reset();
    testing::DropSchema(options_);
  }
  static std::string RunId(absl::Time t) {
    static std::atomic<int> n{0};
    return absl::StrCat("run-", absl::ToUnixMicros(t), "-", n.fetch_add(1));
  }
  DbOptions options_;
  std::unique_ptr<ConnectionPool> pool_;
};

TEST_F(ChecksDbTest, ARunIsFollowedToItsEndAndAScopeBeingRunIsJoined) {
  OperationRunner runner(*pool_, "test", RunId);
  absl::Notification release;
  std::atomic<int> works{0};
  auto work = [&](const std::string&, ProgressReporter& p) {
    ++works;
    p.Report("reading", 1, 3);
    release.WaitForNotification();
    p.Report("storing", 3, 3);
    return absl::OkStatus();
  };
  auto first = runner.Start("program=A", "zhang", work);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->joined);
  EXPECT_EQ(first->operation.state, RunState::kRunning);
  // The same scope while it runs: joined, in this process and through a second runner (another
  // replica: the scope's named lock is held, so it reads the run from the table).
  auto again = runner.Start("program=A", "li", work);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->joined);
  EXPECT_EQ(again->operation.run_id, first->operation.run_id);
  {
    OperationRunner replica(*pool_, "test", RunId);
    auto elsewhere = replica.Start("program=A", "wang", work);
    ASSERT_TRUE(elsewhere.ok()) << elsewhere.status();
    EXPECT_TRUE(elsewhere->joined);
    EXPECT_EQ(elsewhere->operation.run_id, first->operation.run_id);
    EXPECT_EQ(elsewhere->operation.requested_by, "zhang");
  }
  // Another scope runs beside it.
  auto other = runner.Start("program=B", "zhang", [](const std::string&, ProgressReporter&) { return absl::OkStatus(); });
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->joined);
  // A wait that ends first says where it is.
  auto waiting = runner.Wait(first->operation.run_id, absl::Now() + absl::Milliseconds(300));
  ASSERT_TRUE(waiting.ok());
  EXPECT_EQ(waiting->state, RunState::kRunning);
  EXPECT_EQ(waiting->progress.phase, "reading");
  release.Notify();
  auto done = runner.Wait(first->operation.run_id, absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, RunState::kSucceeded);
  EXPECT_EQ(done->progress.phase, "done");
  EXPECT_EQ(works.load(), 1);
  // Read back from the table by a runner that did not run it.
  OperationRunner reader(*pool_, "test", RunId);
  auto read = reader.Find(first->operation.run_id);
  ASSERT_TRUE(read.ok());
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ((*read)->state, RunState::kSucceeded);
  EXPECT_GE((*read)->finished_at, (*read)->started_at);
  EXPECT_FALSE(reader.Find("no-such-run")->has_value());
  EXPECT_EQ(reader.Wait("no-such-run", absl::Now()).status().code(), absl::StatusCode::kNotFound);
  // The scope is free again: a new run, not the old one.
  auto next = runner.Start("program=A", "zhang", [](const std::string&, ProgressReporter&) { return absl::OkStatus(); });
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->joined);
  EXPECT_NE(next->operation.run_id, first->operation.run_id);
}

TEST_F(ChecksDbTest, AFailedRunKeepsItsStatusAndAnAbandonedOneReadsAsFailed) {
  OperationRunner runner(*pool_, "test", RunId, nullptr, {absl::Milliseconds(100), absl::Seconds(1)});
  auto failed = runner.Start("s", "zhang", [](const std::string&, ProgressReporter&) {
    return absl::FailedPreconditionError("two programmes with one code");
  });
  ASSERT_TRUE(failed.ok());
  auto ended = runner.Wait(failed->operation.run_id, absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(ended->state, RunState::kFailed);
  EXPECT_EQ(ended->status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ended->error, "two programmes with one code");
  // A row a stopped process left running, never written again.
  auto conn = OpenConnection(options_);
  ASSERT_TRUE(conn.ok());
  std::unique_ptr<sql::Statement> st((*conn)->createStatement());
  st->execute("INSERT INTO check_operations VALUES ('gone', 'test', 'g', 'running', 'reading', 1, 2, 0, '', 'x',"
              " UTC_TIMESTAMP(6) - INTERVAL 5 SECOND, UTC_TIMESTAMP(6) - INTERVAL 5 SECOND, NULL)");
  auto gone = runner.Find("gone");
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ((*gone)->state, RunState::kFailed);
  EXPECT_NE((*gone)->error.find("abandoned"), std::string::npos);
  // Its scope is free (nobody holds the lock): a run starts, it does not join the dead one.
  auto fresh = runner.Start("g", "zhang", [](const std::string&, ProgressReporter&) { return absl::OkStatus(); });
  ASSERT_TRUE(fresh.ok());
  EXPECT_FALSE(fresh->joined);
}

TEST_F(ChecksDbTest, ReviewsFollowTheTransitionsAndKeepTheirHistory) {
  ReviewStore store;
  auto conn = OpenConnection(options_);
  ASSERT_TRUE(conn.ok());
  const std::string id(32, 'a');
  const absl::Time t0 = absl::FromUnixSeconds(1800000000);
  EXPECT_EQ(store.Record(**conn, id, ReviewState::kResolved, "fixed", "zhang", t0).status().code(),
            absl::StatusCode::kFailedPrecondition);  // open -> resolved: confirm first
  auto confirmed = store.Record(**conn, id, ReviewState::kConfirmed, "", "zhang", t0);
  ASSERT_TRUE(confirmed.ok()) << confirmed.status();
  EXPECT_EQ(confirmed->from, ReviewState::kOpen);
  EXPECT_EQ(store.Record(**conn, id, ReviewState::kConfirmed, "", "li", t0).status().code(),
            absl::StatusCode::kFailedPrecondition);  // so already
  // Same microsecond as the last decision: dated just after it, kept in order.
  auto resolved = store.Record(**conn, id, ReviewState::kResolved, "repaid", "li", t0);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->decided_at, t0 + absl::Microseconds(1));
  EXPECT_EQ(store.Record(**conn, id, ReviewState::kOpen, "", "wang", t0 + absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);  // reopening needs a reason
  ASSERT_TRUE(store.Record(**conn, id, ReviewState::kOpen, "came back", "wang", t0 + absl::Seconds(2)).ok());
  auto history = store.History(**conn, id);
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ((*history)[0].reviewer, "zhang");
  EXPECT_EQ((*history)[1].from, ReviewState::kConfirmed);
  EXPECT_EQ((*history)[1].to, ReviewState::kResolved);
  EXPECT_EQ((*history)[1].reason, "repaid");
  EXPECT_EQ((*history)[2].to, ReviewState::kOpen);
  EXPECT_EQ((*history)[2].decided_at, t0 + absl::Seconds(2));
  // Nothing was written by the refused decisions.
  std::unique_ptr<sql::Statement> st((*conn)->createStatement());
  std::unique_ptr<sql::ResultSet> rs(st->executeQuery("SELECT state, reviewed_by FROM finding_reviews"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(std::string(rs->getString(1)), "open");
  EXPECT_EQ(std::string(rs->getString(2)), "wang");
}

TEST_F(ChecksDbTest, APeriodicPassRunsInOneReplicaAtATime) {
  std::atomic<int> passes{0};
  absl::Notification inside, leave;
  PeriodicTask a("test_pass", absl::Hours(1), absl::Hours(1), [&] {
    ++passes;
    inside.Notify();
    leave.WaitForNotification();
  }, pool_.get());
  PeriodicTask b("test_pass", absl::Hours(1), absl::Hours(1), [&] { ++passes; }, pool_.get());
  std::thread first([&] { EXPECT_TRUE(a.RunOnce()); });
  inside.WaitForNotification();
  EXPECT_FALSE(b.RunOnce());  // the other replica's pass holds it
  leave.Notify();
  first.join();
  EXPECT_TRUE(b.RunOnce());
  EXPECT_EQ(passes.load(), 2);
}

}  // namespace
}  // namespace grassroots::common::checks
