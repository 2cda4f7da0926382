// The pool and the migrator against the real MariaDB started by tests/run.
#include "grassroots/common/db.h"

#include <cppconn/connection.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sys/stat.h>

#include <thread>

#include "absl/time/clock.h"
#include "grassroots/common/load_pipe.h"
#include "grassroots/common/migrations.h"
#include "test_env.h"

namespace grassroots::common {
namespace {

class DbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_ = testing::TestDb("db");
    ASSERT_TRUE(ApplyMigrations(options_, {{1, "V001__t.sql", "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20));"}}).ok());
  }
  void TearDown() override { testing::DropSchema(options_); }
  DbOptions options_;
};

int64_t ScalarInt(sql::Connection& c, const std::string& q) {
  std::unique_ptr<sql::Statement> st(c.createStatement());
  std::unique_ptr<sql::ResultSet> rs(st->executeQuery(q));
  rs->next();
  return rs->getInt64(1);
}

TEST_F(DbTest, ExhaustionIsAnErrorWithinTheDeadlineNotAHang) {
  options_.pool_size = 2;
  prometheus::Registry registry;
  ConnectionPool pool(options_, &registry);
  auto a = pool.Acquire();
  auto b = pool.Acquire();
  ASSERT_TRUE(a.ok() && b.ok());
  const absl::Time start = absl::Now();
  auto c = pool.Acquire(absl::Now() + absl::Milliseconds(200));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  // Released connections are reused.
  *a = PooledConnection();
  auto d = pool.Acquire(absl::Now() + absl::Milliseconds(200));
  EXPECT_TRUE(d.ok());
  auto families = registry.Collect();
  std::string text = prometheus::TextSerializer().Serialize(families);
  EXPECT_NE(text.find("grassroots_db_pool_exhausted_total 1"), std::string::npos) << text;
  // TryAcquire takes a free connection, and on a busy pool answers at once without counting it
  // as exhausted.
  *d = PooledConnection();
  auto e = pool.TryAcquire();
  ASSERT_TRUE(e.ok()) << e.status();
  const absl::Time before_try = absl::Now();
  EXPECT_EQ(pool.TryAcquire().status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_LT(absl::Now() - before_try, absl::Milliseconds(100));
  text = prometheus::TextSerializer().Serialize(registry.Collect());
  EXPECT_NE(text.find("grassroots_db_pool_exhausted_total 1"), std::string::npos) << text;
}

TEST_F(DbTest, BrokenConnectionsAreReplaced) {
  options_.pool_size = 1;
  ConnectionPool pool(options_, nullptr);
  int64_t first_id = 0;
  {
    auto conn = pool.Acquire();
    ASSERT_TRUE(conn.ok());
    first_id = ScalarInt(**conn, "SELECT CONNECTION_ID()");
    // Another session kills it, as a server restart or a network cut would.
    auto killer = OpenConnection(options_);
    ASSERT_TRUE(killer.ok());
    std::unique_ptr<sql::Statement> st((*killer)->createStatement());
    st->execute("KILL CONNECTION " + std::to_string(first_id));
    try {
      ScalarInt(**conn, "SELECT 1");
      ADD_FAILURE() << "query on a killed connection succeeded";
    } catch (const sql::SQLException& e) {
      EXPECT_TRUE(IsConnectionError(e)) << e.getErrorCode();
      EXPECT_EQ(SqlError(e, "q").code(), absl::StatusCode::kUnavailable);
      conn->MarkBroken();
    }
  }
  {
    auto again = pool.Acquire();
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_NE(ScalarInt(**again, "SELECT CONNECTION_ID()"), first_id);
  }
  EXPECT_TRUE(pool.Ping().ok());
}

TEST_F(DbTest, PreparedStatementsArePreparedOncePerConnectionAndGoWithIt) {
  options_.pool_size = 1;
  ConnectionPool pool(options_, nullptr);
  const std::string kQuery = "SELECT s FROM t WHERE id = ?";
  auto read = [&](PooledConnection& conn, int id) {
    sql::PreparedStatement& st = conn.Prepared(kQuery);
    st.setInt(1, id);
    std::unique_ptr<sql::ResultSet> rs(st.executeQuery());
    return rs->next() ? std::string(rs->getString(1)) : std::string("none");
  };
  auto prepares = [](PooledConnection& conn) {
    std::unique_ptr<sql::Statement> st(conn->createStatement());
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery("SHOW SESSION STATUS LIKE 'Com_stmt_prepare'"));
    rs->next();
    return rs->getInt64(2);
  };
  sql::PreparedStatement* first = nullptr;
  int64_t connection_id = 0;
  {
    auto conn = pool.Acquire();
    ASSERT_TRUE(conn.ok());
    std::unique_ptr<sql::Statement> st((*conn)->createStatement());
    st->execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')");
    EXPECT_EQ(read(*conn, 1), "one");
    first = &conn->Prepared(kQuery);
    connection_id = ScalarInt(**conn, "SELECT CONNECTION_ID()");
  }
  {
    auto conn = pool.Acquire();  // the same connection, back from the pool
    ASSERT_TRUE(conn.ok());
    EXPECT_EQ(read(*conn, 2), "two");
    EXPECT_EQ(read(*conn, 3), "none");
    EXPECT_EQ(&conn->Prepared(kQuery), first);
    EXPECT_EQ(prepares(*conn), 1);  // three executions, one prepare
    conn->MarkBroken();
  }
  {
    auto conn = pool.Acquire();  // a new connection prepares anew
    ASSERT_TRUE(conn.ok());
    EXPECT_NE(ScalarInt(**conn, "SELECT CONNECTION_ID()"), connection_id);
    EXPECT_EQ(read(*conn, 1), "one");
    EXPECT_EQ(prepares(*conn), 1);
  }
}

// Rows produced in several chunks on the pipe's writer thread all arrive; the private directory
// and its pipe are gone afterwards; a refused statement neither hangs nor leaves a writer behind.
TEST_F(DbTest, LoadThroughPipeStreamsEveryChunkAndLeavesNothing) {
  auto conn = OpenConnection(options_);
  ASSERT_TRUE(conn.ok());
  std::string dir;
  {
    auto pipe = LoadPipe::Create();
    ASSERT_TRUE(pipe.ok()) << pipe.status();
    dir = (*pipe)->path().substr(0, (*pipe)->path().rfind('/'));
    struct stat st {};
    ASSERT_EQ(stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ASSERT_EQ(stat((*pipe)->path().c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    int next = 0, chunks = 0;
    const LoadResult r = LoadThroughPipe(
        **conn, **pipe, "LOAD DATA LOCAL INFILE " + (*pipe)->SqlPath() + " INTO TABLE t (id, s)",
        [&](std::string& chunk) {
          ++chunks;
          for (int i = 0; i < 1000; ++i, ++next) chunk += std::to_string(next) + "\tv" + std::to_string(next) + "\n";
          return next < 5000;
        });
    EXPECT_EQ(r.stored, 5000);
    EXPECT_EQ(r.warnings, 0);
    EXPECT_EQ(chunks, 5);
    EXPECT_EQ(ScalarInt(**conn, "SELECT COUNT(*) FROM t"), 5000);
    EXPECT_EQ(ScalarInt(**conn, "SELECT COUNT(*) FROM t WHERE s = CONCAT('v', id)"), 5000);
    // Refused before the file is read: the writer waiting for a reader is released.
    EXPECT_THROW(LoadThroughPipe(**conn, **pipe, "LOAD DATA LOCAL INFILE " + (*pipe)->SqlPath() + " INTO TABLE nope",
                                 std::string("1\tx\n")),
                 sql::SQLException);
  }
  struct stat st {};
  EXPECT_NE(stat(dir.c_str(), &st), 0) << dir << " left behind";
}

// AppendLoadField's escaping: every byte value, the escaped ones among runs of plain ones, and a
// value that reads like LOAD DATA's NULL, all stored as sent (CHARACTER SET binary).
TEST_F(DbTest, AppendLoadFieldRoundTripsEveryByte) {
  auto conn = OpenConnection(options_);
  ASSERT_TRUE(conn.ok());
  std::unique_ptr<sql::Statement>((*conn)->createStatement())
      ->execute("CREATE TABLE b (id INT PRIMARY KEY, v VARBINARY(600) NULL)");
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  const std::vector<std::string> values = {all, std::string("a\tb\\c\nd\re\0f", 11), "\\N", "", "plain run"};
  std::string text;
  for (size_t i = 0; i < values.size(); ++i) {
    text += std::to_string(i) + "\t";
    AppendLoadField(text, values[i]);
    text += "\n";
  }
  EXPECT_EQ(text.find(std::string(1, '\0')), std::string::npos);
  auto pipe = LoadPipe::Create();
  ASSERT_TRUE(pipe.ok()) << pipe.status();
  const LoadResult r = LoadThroughPipe(**conn, **pipe,
                                       "LOAD DATA LOCAL INFILE " + (*pipe)->SqlPath() +
                                           " INTO TABLE b CHARACTER SET binary FIELDS TERMINATED BY '\\t' "
                                           "ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (id, v)",
                                       text);
  EXPECT_EQ(r.stored, static_cast<int64_t>(values.size()));
  EXPECT_EQ(r.warnings, 0);
  std::unique_ptr<sql::ResultSet> rs(
      std::unique_ptr<sql::Statement>((*conn)->createStatement())->executeQuery("SELECT id, v, v IS NULL FROM b ORDER BY id"));
  for (size_t i = 0; i < values.size(); ++i) {
    ASSERT_TRUE(rs->next());
    EXPECT_FALSE(rs->getBoolean(3)) << i;
    EXPECT_EQ(rs->getString(2).asStdString(), values[i]) << i;
  }
}

// READ COMMITTED for one transaction: its later reads see rows others committed meanwhile; a
// default transaction (REPEATABLE READ) does not, and the one after the READ COMMITTED one is
// back to the default.
TEST_F(DbTest, AReadCommittedTransactionSeesWhatOthersCommitAndTheNextOneDoesNot) {
  auto reader = OpenConnection(options_);
  auto writer = OpenConnection(options_);
  ASSERT_TRUE(reader.ok() && writer.ok());
  auto insert = [&](int id) {
    std::unique_ptr<sql::Statement>((*writer)->createStatement())
        ->execute("INSERT INTO t (id, s) VALUES (" + std::to_string(id) + ", 'x')");
  };
  auto sees_more_after_commit = [&](Transaction::Isolation isolation, int id) {
    Transaction tx(**reader);
    EXPECT_TRUE(tx.Begin(isolation).ok());
    const int64_t before = ScalarInt(**reader, "SELECT COUNT(*) FROM t");
    insert(id);  // autocommit: committed at once
    const int64_t after = ScalarInt(**reader, "SELECT COUNT(*) FROM t");
    EXPECT_TRUE(tx.Commit().ok());
    return after > before;
  };
  EXPECT_FALSE(sees_more_after_commit(Transaction::Isolation::kServerDefault, 1));
  EXPECT_TRUE(sees_more_after_commit(Transaction::Isolation::kReadCommitted, 2));
  EXPECT_FALSE(sees_more_after_commit(Transaction::Isolation::kServerDefault, 3));
}

TEST_F(DbTest, UnreachableDatabaseIsUnavailableNotACrash) {
  DbOptions down = options_;
  down.port = 1;  // nothing listens there
  ConnectionPool pool(down, nullptr);
  EXPECT_EQ(pool.Ping().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(pool.Acquire().status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(DbTest, MigrationsRunOnceAndRefuseEditedHistory) {
  std::vector<Migration> m = {{1, "V001__t.sql", "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20));"},
                              {2, "V002__u.sql", "CREATE TABLE u (id INT PRIMARY KEY);\nINSERT INTO u VALUES (1);"}};
  ASSERT_TRUE(ApplyMigrations(options_, m).ok());
  ASSERT_TRUE(ApplyMigrations(options_, m).ok());  // a no-op: would fail on the duplicate insert
  auto conn = OpenConnection(options_);
  ASSERT_TRUE(conn.ok());
  EXPECT_EQ(ScalarInt(**conn, "SELECT COUNT(*) FROM u"), 1);
  EXPECT_EQ(ScalarInt(**conn, "SELECT COUNT(*) FROM schema_migrations"), 2);
  m[1].sql += "\n-- edited";
  EXPECT_EQ(ApplyMigrations(options_, m).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace grassroots::common

namespace grassroots::generated {
const std::vector<common::Migration>& grassroots_test_migrations();
}  // namespace grassroots::generated

namespace grassroots::common {
namespace {

TEST_F(DbTest, MigrationsPastSevenKeepTheirDecimalVersions) {
  const std::vector<Migration>& m = generated::grassroots_test_migrations();
  std::vector<int> versions;
  for (const Migration& x : m) versions.push_back(x.version);
  EXPECT_EQ(versions, (std::vector<int>{1, 8, 9, 10}));
  DbOptions fresh = options_;  // SetUp's V001 is another file
  fresh.database += "_v10";
  ASSERT_TRUE(ApplyMigrations(fresh, m).ok());
  {
    auto conn = OpenConnection(fresh);
    ASSERT_TRUE(conn.ok());
    EXPECT_EQ(ScalarInt(**conn, "SELECT MAX(version) FROM schema_migrations WHERE name = 'V010__tenth.sql'"), 10);
    EXPECT_EQ(ScalarInt(**conn, "SELECT id FROM m10"), 10);
  }
  EXPECT_TRUE(ApplyMigrations(fresh, m).ok());  // a no-op
  EXPECT_TRUE(CheckNoHalfAppliedMigration(fresh).ok());
  testing::DropSchema(fresh);
}

TEST_F(DbTest, AMigrationThatFailsPartWayIsNamedAndNeverRunAgainOverWhatItLeft) {
  std::vector<Migration> m = {
      {1, "V001__t.sql", "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20));"},
      {2, "V002__half.sql", "CREATE TABLE h1 (id INT PRIMARY KEY);\nCREATE TABLE h2 (id INT PRIMARY KEY);\n"
                            "ALTER TABLE no_such_table ADD COLUMN x INT;\nCREATE TABLE h3 (id INT PRIMARY KEY);"},
      {3, "V003__after.sql", "CREATE TABLE after3 (id INT PRIMARY KEY);"}};
  absl::Status first = ApplyMigrations(options_, m);
  EXPECT_EQ(first.code(), absl::StatusCode::kFailedPrecondition) << first;
  EXPECT_NE(first.message().find("V002__half.sql failed at statement 3 of 4"), std::string_view::npos) << first;
  auto conn = OpenConnection(options_);
  ASSERT_TRUE(conn.ok());
  EXPECT_EQ(ScalarInt(**conn, "SELECT statements_done FROM schema_migrations WHERE version = 2"), 2);
  EXPECT_EQ(ScalarInt(**conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
                              " AND TABLE_NAME IN ('h3', 'after3')"), 0);

  // A service refuses to start on it, and the runner refuses to go on, naming it both times.
  absl::Status serve = CheckNoHalfAppliedMigration(options_);
  EXPECT_EQ(serve.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(serve.message().find("V002__half.sql was applied in part (2 statements"), std::string_view::npos) << serve;
  absl::Status again = ApplyMigrations(options_, m);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(again.message().find("V002__half.sql was applied in part (2 of 4 statements"), std::string_view::npos) << again;

  // What docs/operations.md tells an operator: finish the statements by hand (here the fixed
  // third and the fourth) and mark the row applied; the runner then goes on with V003.
  std::unique_ptr<sql::Statement> st((*conn)->createStatement());
  st->execute("CREATE TABLE no_such_table (id INT PRIMARY KEY)");
  st->execute("ALTER TABLE no_such_table ADD COLUMN x INT");
  st->execute("CREATE TABLE h3 (id INT PRIMARY KEY)");
  st->execute("UPDATE schema_migrations SET state = 'applied', statements_done = 4 WHERE version = 2");
  EXPECT_TRUE(CheckNoHalfAppliedMigration(options_).ok());
  ASSERT_TRUE(ApplyMigrations(options_, m).ok());
  EXPECT_EQ(ScalarInt(**conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
                              " AND TABLE_NAME = 'after3'"), 1);
}

TEST_F(DbTest, ARunnerUpgradesTheTableOfAnOlderOne) {
  // schema_migrations as the runner before the 'applying' state wrote it, with a row of its own.
  auto conn = OpenConnection(options_);
  ASSERT_TRUE(conn.ok());
  std::unique_ptr<sql::Statement> st((*conn)->createStatement());
  st->execute("DROP TABLE IF EXISTS schema_migrations");
  st->execute("CREATE TABLE schema_migrations (version INT NOT NULL PRIMARY KEY, name VARCHAR(200) NOT NULL,"
              " fingerprint CHAR(16) NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)");
  EXPECT_TRUE(CheckNoHalfAppliedMigration(options_).ok());
  std::vector<Migration> m = {{5, "V005__x.sql", "CREATE TABLE x5 (id INT PRIMARY KEY);"}};
  ASSERT_TRUE(ApplyMigrations(options_, m).ok());
  EXPECT_EQ(ScalarInt(**conn, "SELECT COUNT(*) FROM schema_migrations WHERE state = 'applied' AND statements_done = 1"), 1);
}

TEST_F(DbTest, ANamedLockHasOneHolderAndItsWaitEndsAtTheDeadline) {
  auto first = NamedLock::Acquire(options_, "grassroots_test_lock", absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(first.ok()) << first.status();
  const absl::Time t0 = absl::Now();
  auto second = NamedLock::Acquire(options_, "grassroots_test_lock", absl::Now() + absl::Seconds(1));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kDeadlineExceeded) << second.status();
  EXPECT_GE(absl::Now() - t0, absl::Milliseconds(900));
  // A waiter is let in when the holder releases, wherever it waits.
  std::thread release([&] {
    absl::SleepFor(absl::Milliseconds(300));
    first->Release();
  });
  auto third = NamedLock::Acquire(options_, "grassroots_test_lock", absl::Now() + absl::Seconds(20));
  release.join();
  EXPECT_TRUE(third.ok()) << third.status();
  // Moved, it is still held once; destroyed, it is free again.
  NamedLock moved = *std::move(third);
  EXPECT_EQ(NamedLock::Acquire(options_, "grassroots_test_lock", absl::Now()).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  moved.Release();
  EXPECT_TRUE(NamedLock::Acquire(options_, "grassroots_test_lock", absl::Now()).ok());
  EXPECT_EQ(NamedLock::Acquire(options_, std::string(65, 'x'), absl::Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(DbTest, ConcurrentMigratorsDoNotRace) {
  std::vector<Migration> m = {{1, "V001__t.sql", "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20));"},
                              {2, "V002__v.sql", "CREATE TABLE v (id INT PRIMARY KEY);"}};
  std::vector<absl::Status> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { results[i] = ApplyMigrations(options_, m); });
  for (auto& t : threads) t.join();
  for (const auto& s : results) EXPECT_TRUE(s.ok()) << s;
}

TEST_F(DbTest, TextOutsideTheBasicPlaneRoundTrips) {
  auto conn = OpenConnection(options_);
  ASSERT_TRUE(conn.ok());
  std::unique_ptr<sql::Statement> st((*conn)->createStatement());
  st->execute("INSERT INTO t VALUES (1, '𠮷野家')");
  std::unique_ptr<sql::ResultSet> rs(st->executeQuery("SELECT s FROM t WHERE id = 1"));
  ASSERT_TRUE(rs->next());
  EXPECT_EQ(std::string(rs->getString(1)), "𠮷野家");
}

}  // namespace
}  // namespace grassroots::common
