#include "grassroots/common/db.h"

#include <algorithm>
#include <utility>

#include <mysql_driver.h>
#include <cppconn/connection.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grassroots/common/log.h"

namespace grassroots::common {
namespace {

sql::mysql::MySQL_Driver* Driver() {
  // Connector/C++ keeps one driver per process; it is not thread-safe to create concurrently.
  static sql::mysql::MySQL_Driver* driver = sql::mysql::get_mysql_driver_instance();
  return driver;
}

// Connector/C++ needs per-thread client library initialisation.
void EnsureThreadInit() {
  struct ThreadGuard {
    ThreadGuard() { Driver()->threadInit(); }
    ~ThreadGuard() { Driver()->threadEnd(); }
  };
  thread_local ThreadGuard guard;
}

int ToSeconds(absl::Duration d) {
  int64_t s = absl::ToInt64Seconds(d);
  return s < 1 ? 1 : static_cast<int>(s);
}

}  // namespace

bool IsConnectionError(const sql::SQLException& e) {
  switch (e.getErrorCode()) {
    case 2002: case 2003: case 2005: case 2006: case 2013: case 2055:
    case 1927:  // connection killed
    case 1053:  // server shutdown in progress
      return true;
    default:
      return e.getErrorCode() == 0 && std::string(e.getSQLState()).rfind("08", 0) == 0;
  }
}

absl::Status SqlError(const sql::SQLException& e, std::string_view what_view) {
  const int code = e.getErrorCode();
  const std::string what(what_view);
  std::string message = absl::StrCat(what, ": database error ", code);
  if (code == 1062) return absl::AlreadyExistsError(absl::StrCat(what, ": already exists"));
  if (code == 1213 || code == 1205) return absl::AbortedError(absl::StrCat(message, " (lock conflict, retry)"));
  if (IsConnectionError(e)) return absl::UnavailableError(absl::StrCat(message, " (database unreachable)"));
  if (code == 1452 || code == 1451) return absl::FailedPreconditionError(absl::StrCat(what, ": referenced record missing or in use"));
  return absl::InternalError(message);
}

absl::StatusOr<std::unique_ptr<sql::Connection>> OpenConnection(const DbOptions& o, bool select_database) {
  EnsureThreadInit();
  sql::ConnectOptionsMap props;
  props["hostName"] = sql::SQLString(o.host);
  props["port"] = o.port;
  props["userName"] = sql::SQLString(o.user);
  props["password"] = sql::SQLString(o.password);
  props["OPT_CONNECT_TIMEOUT"] = ToSeconds(o.connect_timeout);
  props["OPT_READ_TIMEOUT"] = ToSeconds(o.read_timeout);
  props["OPT_WRITE_TIMEOUT"] = ToSeconds(o.read_timeout);
  props["OPT_CHARSET_NAME"] = sql::SQLString("utf8mb4");
  props["OPT_LOCAL_INFILE"] = 1;
  props["CLIENT_MULTI_STATEMENTS"] = false;
  try {
    std::unique_ptr<sql::Connection> conn(Driver()->connect(props));
    std::unique_ptr<sql::Statement> st(conn->createStatement());
    st->execute("SET NAMES utf8mb4 COLLATE utf8mb4_bin");
    st->execute("SET SESSION time_zone = '+08:00'");
    st->execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO'");
    if (select_database && !o.database.empty()) conn->setSchema(sql::SQLString(o.database));
    conn->setAutoCommit(true);
    return conn;
  } catch (const sql::SQLException& e) {
    return SqlError(e, "connect");
  }
}

ConnectionSlot::ConnectionSlot(std::unique_ptr<sql::Connection> c) : conn(std::move(c)) {}
ConnectionSlot::~ConnectionSlot() {
  try {
    statements.clear();
  } catch (const sql::SQLException&) {
    // Closing a statement on a dead connection; the connection goes too.
  }
}

PooledConnection::PooledConnection(ConnectionPool* pool, std::unique_ptr<ConnectionSlot> slot)
    : pool_(pool), slot_(std::move(slot)) {}
PooledConnection::PooledConnection(PooledConnection&& other) noexcept
    : pool_(other.pool_), slot_(std::move(other.slot_)), broken_(other.broken_) {
  other.pool_ = nullptr;
}
PooledConnection& PooledConnection::operator=(PooledConnection&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = other.pool_;
    slot_ = std::move(other.slot_);
    broken_ = other.broken_;
    other.pool_ = nullptr;
  }
  return *this;
}
PooledConnection::~PooledConnection() { Release(); }
void PooledConnection::Release() {
  if (pool_ != nullptr && slot_ != nullptr) pool_->Return(std::move(slot_), broken_);
  pool_ = nullptr;
}

sql::PreparedStatement& PooledConnection::Prepared(const std::string& text) {
  auto it = slot_->statements.find(text);
  if (it == slot_->statements.end()) {
    std::unique_ptr<sql::PreparedStatement> st(slot_->conn->prepareStatement(text));
    it = slot_->statements.emplace(text, std::move(st)).first;
  }
  return *it->second;
}

ConnectionPool::ConnectionPool(DbOptions options, prometheus::Registry* registry)
    : options_(std::move(options)) {
  if (options_.pool_size < 1) options_.pool_size = 1;
  if (registry != nullptr) {
    auto& conns = prometheus::BuildGauge()
                      .Name("grassroots_db_pool_connections")
                      .Help("Database pool connections by state")
                      .Register(*registry);
    gauge_open_ = &conns.Add({{"state", "open"}});
    gauge_in_use_ = &conns.Add({{"state", "in_use"}});
    gauge_size_ = &prometheus::BuildGauge()
                       .Name("grassroots_db_pool_max_connections")
                       .Help("Upper bound of the database pool")
                       .Register(*registry)
                       .Add({});
    exhausted_ = &prometheus::BuildCounter()
                      .Name("grassroots_db_pool_exhausted_total")
                      .Help("Acquires that timed out with every connection busy")
                      .Register(*registry)
                      .Add({});
    broken_counter_ = &prometheus::BuildCounter()
                           .Name("grassroots_db_pool_broken_connections_total")
                           .Help("Connections discarded as broken")
                           .Register(*registry)
                           .Add({});
    connect_failures_ = &prometheus::BuildCounter()
                             .Name("grassroots_db_pool_connect_failures_total")
                             .Help("Failed attempts to open a database connection")
                             .Register(*registry)
                             .Add({});
    gauge_size_->Set(options_.pool_size);
  }
}

ConnectionPool::~ConnectionPool() = default;

void ConnectionPool::UpdateGauges() {
  if (gauge_open_ != nullptr) gauge_open_->Set(open_);
  if (gauge_in_use_ != nullptr) gauge_in_use_->Set(borrowed_);
}

absl::StatusOr<PooledConnection> ConnectionPool::Acquire(absl::Time deadline) {
  return Borrow(std::min(deadline, absl::Now() + options_.acquire_timeout), /*count_exhausted=*/true);
}

absl::StatusOr<PooledConnection> ConnectionPool::TryAcquire() {
  return Borrow(absl::InfinitePast(), /*count_exhausted=*/false);
}

absl::StatusOr<PooledConnection> ConnectionPool::Borrow(absl::Time limit, bool count_exhausted) {
  EnsureThreadInit();
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (!idle_.empty()) {
      std::unique_ptr<ConnectionSlot> slot = std::move(idle_.back().slot);
      const bool check = absl::Now() - idle_.back().since > absl::Seconds(5);
      idle_.pop_back();
      ++borrowed_;
      UpdateGauges();
      lock.unlock();
      // A connection the server closed while idle is replaced here, not handed out.
      bool usable = !check;
      try {
        if (check) usable = !slot->conn->isClosed() && slot->conn->isValid();
      } catch (const sql::SQLException&) {
        usable = false;
      }
      if (usable) return PooledConnection(this, std::move(slot));
      if (broken_counter_ != nullptr) broken_counter_->Increment();
      slot.reset();
      lock.lock();
      --borrowed_;
      --open_;
      UpdateGauges();
      continue;
    }
    if (open_ < options_.pool_size) {
      ++open_;
      ++borrowed_;
      UpdateGauges();
      lock.unlock();
      auto conn = OpenConnection(options_);
      if (conn.ok()) return PooledConnection(this, std::make_unique<ConnectionSlot>(*std::move(conn)));
      if (connect_failures_ != nullptr) connect_failures_->Increment();
      lock.lock();
      --open_;
      --borrowed_;
      UpdateGauges();
      cv_.notify_one();
      return conn.status();
    }
    if (absl::Now() >= limit) {
      if (count_exhausted && exhausted_ != nullptr) exhausted_->Increment();
      return absl::ResourceExhaustedError(
          absl::StrCat("database pool exhausted: all ", options_.pool_size, " connections busy"));
    }
    cv_.wait_until(lock, absl::ToChronoTime(limit));
  }
}

void ConnectionPool::Return(std::unique_ptr<ConnectionSlot> slot, bool broken) {
  if (!broken) {
    try {
      // Leave no transaction open for the next borrower.
      if (!slot->conn->getAutoCommit()) {
        slot->conn->rollback();
        slot->conn->setAutoCommit(true);
      }
    } catch (const sql::SQLException&) {
      broken = true;
    }
  }
  if (broken) {
    if (broken_counter_ != nullptr) broken_counter_->Increment();
    slot.reset();
  }
  std::lock_guard<std::mutex> lock(mu_);
  --borrowed_;
  if (broken) {
    --open_;
  } else {
    idle_.push_back(Idle{std::move(slot), absl::Now()});
  }
  UpdateGauges();
  cv_.notify_one();
}

absl::Status ConnectionPool::Ping() {
  auto conn = Acquire(absl::Now() + options_.acquire_timeout);
  if (!conn.ok()) return conn.status();
  try {
    std::unique_ptr<sql::Statement> st((*conn)->createStatement());
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery("SELECT 1"));
    return absl::OkStatus();
  } catch (const sql::SQLException& e) {
    conn->MarkBroken();
    return SqlError(e, "ping");
  }
}

absl::Status Transaction::Begin(Isolation isolation) {
  try {
    if (isolation == Isolation::kReadCommitted) {
      // Without SESSION: the next transaction only (MySQL 8, MariaDB and TiDB alike).
      std::unique_ptr<sql::Statement> st(conn_.createStatement());
      st->execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED");
    }
    conn_.setAutoCommit(false);
    begun_ = true;
    return absl::OkStatus();
  } catch (const sql::SQLException& e) {
    return SqlError(e, "begin transaction");
  }
}
Transaction::~Transaction() {
  if (begun_ && !done_) {
    try {
      conn_.rollback();
      conn_.setAutoCommit(true);
    } catch (const sql::SQLException&) {
      // The pool notices a broken connection when it is returned.
    }
  }
}
absl::Status Transaction::Commit() {
  try {
    conn_.commit();
    conn_.setAutoCommit(true);
    done_ = true;
    return absl::OkStatus();
  } catch (const sql::SQLException& e) {
    return SqlError(e, "commit");
  }
}

std::string SqlDateTimeUtc(absl::Time t) { return absl::FormatTime("%Y-%m-%d %H:%M:%E6S", t, absl::UTCTimeZone()); }

absl::Time ParseSqlDateTimeUtc(const std::string& text) {
  absl::Time t;
  std::string error;
  if (text.empty() || !absl::ParseTime("%Y-%m-%d %H:%M:%E*S", text, absl::UTCTimeZone(), &t, &error)) {
    return absl::InfinitePast();
  }
  return t;
}

absl::StatusOr<NamedLock> NamedLock::AcquireOn(sql::Connection& conn, std::string name, absl::Time deadline) {
  if (name.empty() || name.size() > 64) return absl::InvalidArgumentError("lock name: 1 to 64 characters");
  try {
    std::unique_ptr<sql::PreparedStatement> st(conn.prepareStatement("SELECT GET_LOCK(?, ?)"));
    for (;;) {
      // Slices well under the read timeout (which would end a longer wait as a lost connection).
      const int64_t slice = std::clamp<int64_t>(absl::ToInt64Seconds(absl::Ceil(deadline - absl::Now(), absl::Seconds(1))), 0, 5);
      st->setString(1, name);
      st->setInt64(2, slice);
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
      // 1: taken; 0: the slice passed; NULL: an error (killed).
      if (rs->next() && !rs->isNull(1) && rs->getInt(1) == 1) break;
      if (rs->isNull(1)) return absl::AbortedError(absl::StrCat("the wait for the lock ", name, " was ended"));
      if (slice == 0 || absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat("another holder kept the lock ", name));
      }
    }
  } catch (const sql::SQLException& e) {
    return SqlError(e, "take a named lock");
  }
  return NamedLock(&conn, std::move(name));
}

absl::StatusOr<NamedLock> NamedLock::Acquire(const DbOptions& options, std::string name, absl::Time deadline) {
  auto conn = OpenConnection(options);
  if (!conn.ok()) return conn.status();
  auto lock = AcquireOn(**conn, std::move(name), deadline);
  if (!lock.ok()) return lock.status();
  lock->own_ = *std::move(conn);
  return lock;
}

NamedLock::NamedLock(sql::Connection* conn, std::string name) : conn_(conn), name_(std::move(name)) {}

NamedLock::NamedLock(NamedLock&& other) noexcept
    : own_(std::move(other.own_)), conn_(std::exchange(other.conn_, nullptr)), name_(std::move(other.name_)) {}

NamedLock& NamedLock::operator=(NamedLock&& other) noexcept {
  if (this != &other) {
    Release();
    own_ = std::move(other.own_);
    conn_ = std::exchange(other.conn_, nullptr);
    name_ = std::move(other.name_);
  }
  return *this;
}

NamedLock::~NamedLock() { Release(); }

void NamedLock::Release() {
  if (conn_ == nullptr) return;
  sql::Connection* conn = std::exchange(conn_, nullptr);
  try {
    if (own_ != nullptr) {
      own_.reset();  // closing the connection releases its locks
      return;
    }
    std::unique_ptr<sql::PreparedStatement> st(conn->prepareStatement("SELECT RELEASE_LOCK(?)"));
    st->setString(1, name_);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
  } catch (const sql::SQLException& e) {
    // The connection is gone or broken: the server released the lock with it.
    LogWarning("cannot release a named lock", {{"lock", std::string_view(name_)}, {"db_error", int64_t{e.getErrorCode()}}});
  }
}

}  // namespace grassroots::common
