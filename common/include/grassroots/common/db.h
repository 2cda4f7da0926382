#pragma once
// A bounded MySQL connection pool over Connector/C++. Every acquire takes a deadline;
// exhaustion is an error, never a hang; broken connections are replaced; gauges exported.
// Connector/C++ throws: catch sql::SQLException in repositories and turn it into a status
// with SqlError().

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sql {
class Connection;
class PreparedStatement;
class SQLException;
class Driver;
}  // namespace sql

namespace prometheus {
class Registry;
class Gauge;
class Counter;
}  // namespace prometheus

namespace grassroots::common {

struct DbOptions {
  std::string host = "127.0.0.1";
  int port = 3306;
  std::string user = "grassroots";
  std::string password;
  std::string database;  // schema name, e.g. grassroots_membership
  int pool_size = 8;
  absl::Duration acquire_timeout = absl::Seconds(2);
  absl::Duration connect_timeout = absl::Seconds(3);
  absl::Duration read_timeout = absl::Seconds(30);
};

// Opens one connection (utf8mb4, autocommit on) outside any pool.
absl::StatusOr<std::unique_ptr<sql::Connection>> OpenConnection(const DbOptions& options,
                                                                bool select_database = true);

// Maps a Connector/C++ exception to a status: duplicate key -> ALREADY_EXISTS, lost or
// refused connection -> UNAVAILABLE, lock wait/deadlock -> ABORTED, otherwise INTERNAL.
// `what` says what was being done; the SQL text and values are never included.
absl::Status SqlError(const sql::SQLException& e, std::string_view what);
// True when the error means the connection is no longer usable.
bool IsConnectionError(const sql::SQLException& e);

class ConnectionPool;

// One open connection of a pool and the statements prepared on it, which live as long as it.
struct ConnectionSlot {
  explicit ConnectionSlot(std::unique_ptr<sql::Connection> c);
  ~ConnectionSlot();  // closes the statements, then the connection
  std::unique_ptr<sql::Connection> conn;
  std::unordered_map<std::string, std::unique_ptr<sql::PreparedStatement>> statements;
};

// A borrowed connection, returned to the pool on destruction.
class PooledConnection final {
 public:
  PooledConnection() = default;
  PooledConnection(ConnectionPool* pool, std::unique_ptr<ConnectionSlot> slot);
  PooledConnection(PooledConnection&& other) noexcept;
  PooledConnection& operator=(PooledConnection&& other) noexcept;
  ~PooledConnection();

  sql::Connection* operator->() const { return slot_->conn.get(); }
  sql::Connection& operator*() const { return *slot_->conn; }
  sql::Connection* get() const { return slot_ ? slot_->conn.get() : nullptr; }
  // The connection is broken (or in an unknown state): close it instead of reusing it.
  void MarkBroken() { broken_ = true; }

  // A server-side prepared statement for `sql`, prepared on the first use on this connection
  // and reused by every later borrower (one round trip a query instead of prepare, execute and
  // close). Only for fixed SQL text: each distinct text stays prepared while the connection
  // lives. Set every parameter before each execution. Throws sql::SQLException like
  // prepareStatement.
  sql::PreparedStatement& Prepared(const std::string& sql);

 private:
  void Release();
  ConnectionPool* pool_ = nullptr;
  std::unique_ptr<ConnectionSlot> slot_;
  bool broken_ = false;
};

// Passes `result` through, marking `conn` broken when it says the database was unreachable
// (UNAVAILABLE): the pool then closes the connection instead of lending it again.
template <typename T>
T Track(PooledConnection& conn, T result) {
  if constexpr (std::is_same_v<T, absl::Status>) {
    if (result.code() == absl::StatusCode::kUnavailable) conn.MarkBroken();
  } else {
    if (result.status().code() == absl::StatusCode::kUnavailable) conn.MarkBroken();
  }
  return result;
}

// DATETIME(6) text in UTC ("2026-12-08 01:02:03.123456"), and back: InfinitePast for "" or text
// not of that form (SELECT it with DATE_FORMAT(col, '%Y-%m-%d %H:%i:%s.%f')).
std::string SqlDateTimeUtc(absl::Time t);
absl::Time ParseSqlDateTimeUtc(const std::string& text);

// A named database lock (GET_LOCK), held by one connection: one holder at a time across every
// process and replica using the same database server (per node on Galera: docs/operations.md).
// Serialises work that must not overlap (two imports of the same kind of file, two runs of a
// check over one scope). Released on destruction or Release(), and by the server when the
// connection ends. The wait goes in slices shorter than the connection's read timeout.
class NamedLock final {
 public:
  // On a connection of its own, opened here and closed with the lock: a caller waiting for the
  // lock holds no pooled connection (waiters could otherwise starve the holder's pool).
  // DEADLINE_EXCEEDED when another holder kept it until `deadline`; UNAVAILABLE when the
  // database cannot be reached. `name`: 1 to 64 characters.
  static absl::StatusOr<NamedLock> Acquire(const DbOptions& options, std::string name, absl::Time deadline);
  // The same on `conn`, which must outlive the lock (declare the lock after it).
  static absl::StatusOr<NamedLock> AcquireOn(sql::Connection& conn, std::string name, absl::Time deadline);
  NamedLock(NamedLock&& other) noexcept;
  NamedLock& operator=(NamedLock&& other) noexcept;
  ~NamedLock();
  void Release();
  const std::string& name() const { return name_; }

 private:
  NamedLock(sql::Connection* conn, std::string name);
  std::unique_ptr<sql::Connection> own_;  // when the lock has a connection of its own
  sql::Connection* conn_ = nullptr;
  std::string name_;
};

class ConnectionPool final {
 public:
  // Connections are opened lazily, so a pool over a database that is down is created fine;
  // Acquire then fails with UNAVAILABLE until the database returns.
  ConnectionPool(DbOptions options, prometheus::Registry* registry);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Borrows a connection, waiting at most until `deadline` (and at most acquire_timeout).
  // RESOURCE_EXHAUSTED when every connection stays busy; UNAVAILABLE when none can be opened.
  absl::StatusOr<PooledConnection> Acquire(absl::Time deadline = absl::InfiniteFuture());
  // Borrows a connection only if one is idle or may be opened now; never waits, and a busy pool
  // (RESOURCE_EXHAUSTED) is not counted as exhausted: for optional extra work beside a request.
  absl::StatusOr<PooledConnection> TryAcquire();

  // Runs SELECT 1 on a pooled connection: OK when the database answers.
  absl::Status Ping();

  const DbOptions& options() const { return options_; }

 private:
  friend class PooledConnection;
  absl::StatusOr<PooledConnection> Borrow(absl::Time limit, bool count_exhausted);
  void Return(std::unique_ptr<ConnectionSlot> slot, bool broken);
  void UpdateGauges();  // requires mu_

  DbOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  struct Idle {
    std::unique_ptr<ConnectionSlot> slot;
    absl::Time since;
  };
  std::vector<Idle> idle_;
  int open_ = 0;      // idle + borrowed + being opened
  int borrowed_ = 0;
  prometheus::Gauge* gauge_open_ = nullptr;
  prometheus::Gauge* gauge_in_use_ = nullptr;
  prometheus::Gauge* gauge_size_ = nullptr;
  prometheus::Counter* exhausted_ = nullptr;
  prometheus::Counter* broken_counter_ = nullptr;
  prometheus::Counter* connect_failures_ = nullptr;
};

// A transaction on a borrowed connection: rolled back unless committed.
// Usage: Transaction tx(*conn); if (auto s = tx.Begin(); !s.ok()) return s; ...; return tx.Commit();
class Transaction final {
 public:
  explicit Transaction(sql::Connection& conn) : conn_(conn) {}
  ~Transaction();  // rolls back unless committed
  // The server's isolation (REPEATABLE READ: one snapshot, taken at the first read), or READ
  // COMMITTED for this transaction only: each statement sees what others committed before it.
  enum class Isolation { kServerDefault, kReadCommitted };
  absl::Status Begin(Isolation isolation = Isolation::kServerDefault);
  absl::Status Commit();
 private:
  sql::Connection& conn_;
  bool begun_ = false;
  bool done_ = false;
};

}  // namespace grassroots::common
