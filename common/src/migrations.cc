#include "grassroots/common/migrations.h"

#include <algorithm>
#include <map>

#include <cppconn/connection.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grassroots/common/log.h"
#include "grassroots/common/validate.h"

namespace grassroots::common {
namespace {

// A stable fingerprint of a migration's text, to notice edits of applied files.
std::string Fingerprint(const std::string& text) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(Fnv1a64(text)));
  return buf;
}

bool IsSchemaName(const std::string& s) {
  return !s.empty() && s.size() <= 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isalnum(c) || c == '_'; });
}

}  // namespace

std::vector<std::string> SplitSqlStatements(const std::string& sql) {
  std::vector<std::string> out;
  std::string current;
  for (absl::string_view line : absl::StrSplit(sql, '\n')) {
    absl::string_view trimmed = absl::StripAsciiWhitespace(line);
    if (trimmed.empty() || absl::StartsWith(trimmed, "--")) continue;
    absl::StrAppend(&current, line, "\n");
    if (absl::EndsWith(trimmed, ";")) {
      std::string stmt(absl::StripAsciiWhitespace(current));
      stmt.pop_back();  // the ';'
      if (!absl::StripAsciiWhitespace(stmt).empty()) out.push_back(std::move(stmt));
      current.clear();
    }
  }
  if (!absl::StripAsciiWhitespace(current).empty()) out.emplace_back(absl::StripAsciiWhitespace(current));
  return out;
}

namespace {

// schema_migrations as this runner keeps it. `state` is 'applying' from before a migration's
// first statement until after its last, and `statements_done` counts the statements that took
// effect: MySQL commits each DDL statement on its own, so a migration that fails part-way leaves
// what it did, and the row says exactly how far it got. Tables made by an older runner get the
// two columns (their rows are whole: 'applied').
void EnsureMigrationsTable(sql::Connection& conn) {
  std::unique_ptr<sql::Statement> st(conn.createStatement());
  st->execute(
      "CREATE TABLE IF NOT EXISTS schema_migrations ("
      " version INT NOT NULL PRIMARY KEY,"
      " name VARCHAR(200) NOT NULL,"
      " fingerprint CHAR(16) NOT NULL,"
      " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
      " state VARCHAR(16) NOT NULL DEFAULT 'applied',"
      " statements_done INT NOT NULL DEFAULT 0"
      ") ENGINE=InnoDB");
  std::unique_ptr<sql::ResultSet> rs(st->executeQuery(
      "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
      " AND TABLE_NAME = 'schema_migrations' AND COLUMN_NAME IN ('state', 'statements_done')"));
  if (rs->next() && rs->getInt(1) < 2) {
    st->execute(
        "ALTER TABLE schema_migrations ADD COLUMN state VARCHAR(16) NOT NULL DEFAULT 'applied',"
        " ADD COLUMN statements_done INT NOT NULL DEFAULT 0");
  }
}

absl::Status HalfAppliedError(const std::string& name, int done, int64_t total) {
  std::string of = total > 0 ? absl::StrCat(" of ", total) : "";
  return absl::FailedPreconditionError(absl::StrCat(
      "migration ", name, " was applied in part (", done, of,
      " statements took effect before it failed or was stopped); repair the schema by hand and "
      "mark the row in schema_migrations, as docs/operations.md says under \"A migration that failed part-way\""));
}

// The half-applied migration recorded on conn's schema, if any (OK when none or no table).
absl::Status FindHalfApplied(sql::Connection& conn, const std::vector<Migration>* known) {
  std::unique_ptr<sql::Statement> st(conn.createStatement());
  {
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery(
        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
        " AND TABLE_NAME = 'schema_migrations' AND COLUMN_NAME = 'state'"));
    if (!rs->next() || rs->getInt(1) == 0) return absl::OkStatus();  // none run by this runner yet
  }
  std::unique_ptr<sql::ResultSet> rs(st->executeQuery(
      "SELECT version, name, statements_done FROM schema_migrations WHERE state <> 'applied' ORDER BY version LIMIT 1"));
  if (!rs->next()) return absl::OkStatus();
  const int version = rs->getInt(1);
  int64_t total = 0;
  if (known != nullptr) {
    for (const Migration& m : *known) {
      if (m.version == version) total = static_cast<int64_t>(SplitSqlStatements(m.sql).size());
    }
  }
  return HalfAppliedError(rs->getString(2), rs->getInt(3), total);
}

}  // namespace

absl::Status ApplyMigrations(const DbOptions& options, const std::vector<Migration>& migrations) {
  if (!IsSchemaName(options.database)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid schema name '", options.database, "'"));
  }
  auto conn_or = OpenConnection(options, /*select_database=*/false);
  if (!conn_or.ok()) return conn_or.status();
  std::unique_ptr<sql::Connection> conn = *std::move(conn_or);
  const std::string lock_name = absl::StrCat("grassroots_migrate_", options.database);
  try {
    std::unique_ptr<sql::Statement> st(conn->createStatement());
    st->execute(absl::StrCat("CREATE DATABASE IF NOT EXISTS `", options.database,
                             "` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"));
    conn->setSchema(options.database);
    // One migrator at a time per schema, whoever runs it (deploy, k8s Job, tests). Released
    // whatever way this function returns (before the connection closes).
    auto lock = NamedLock::AcquireOn(*conn, lock_name, absl::Now() + absl::Seconds(120));
    if (absl::IsDeadlineExceeded(lock.status())) return absl::UnavailableError("another migration of this schema is running");
    if (!lock.ok()) return lock.status();
    EnsureMigrationsTable(*conn);
    // A migration that stopped part-way is never run again over what it left: an operator
    // decides (docs/operations.md).
    if (absl::Status half = FindHalfApplied(*conn, &migrations); !half.ok()) {
      LogError("half-applied migration", {{"schema", options.database}, {"error", std::string(half.message())}});
      return half;
    }
    std::map<int, std::string> applied;
    {
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery("SELECT version, fingerprint FROM schema_migrations"));
      while (rs->next()) applied[rs->getInt(1)] = rs->getString(2);
    }
    std::vector<const Migration*> ordered;
    for (const auto& m : migrations) ordered.push_back(&m);
    std::sort(ordered.begin(), ordered.end(), [](auto* a, auto* b) { return a->version < b->version; });
    for (size_t i = 1; i < ordered.size(); ++i) {
      if (ordered[i]->version == ordered[i - 1]->version) {
        return absl::FailedPreconditionError(absl::StrCat("migrations ", ordered[i - 1]->name, " and ",
                                                          ordered[i]->name, " have the same version"));
      }
    }
    absl::Status result = absl::OkStatus();
    int count = 0;
    std::unique_ptr<sql::PreparedStatement> start(conn->prepareStatement(
        "INSERT INTO schema_migrations (version, name, fingerprint, state, statements_done)"
        " VALUES (?, ?, ?, 'applying', 0)"));
    std::unique_ptr<sql::PreparedStatement> progress(
        conn->prepareStatement("UPDATE schema_migrations SET statements_done = ? WHERE version = ?"));
    std::unique_ptr<sql::PreparedStatement> done(conn->prepareStatement(
        "UPDATE schema_migrations SET state = 'applied', applied_at = CURRENT_TIMESTAMP WHERE version = ?"));
    for (const Migration* m : ordered) {
      const std::string fp = Fingerprint(m->sql);
      if (auto it = applied.find(m->version); it != applied.end()) {
        if (it->second != fp) {
          result = absl::FailedPreconditionError(
              absl::StrCat("migration ", m->name, " was applied with different text; add a new migration instead of editing it"));
          break;
        }
        continue;
      }
      LogInfo("applying migration", {{"schema", options.database}, {"migration", m->name}});
      start->setInt(1, m->version);
      start->setString(2, m->name);
      start->setString(3, fp);
      start->execute();
      const std::vector<std::string> statements = SplitSqlStatements(m->sql);
      for (size_t i = 0; i < statements.size(); ++i) {
        try {
          st->execute(statements[i]);
        } catch (const sql::SQLException& e) {
          LogError("migration failed part-way",
                   {{"schema", options.database}, {"migration", m->name},
                    {"statement", static_cast<int64_t>(i + 1)}, {"db_error", int64_t{e.getErrorCode()}},
                    {"detail", e.what()}});
          return absl::FailedPreconditionError(absl::StrCat(
              "migration ", m->name, " failed at statement ", i + 1, " of ", statements.size(), " (", e.what(),
              "); ", HalfAppliedError(m->name, static_cast<int>(i), static_cast<int64_t>(statements.size())).message()));
        }
        progress->setInt(1, static_cast<int>(i + 1));
        progress->setInt(2, m->version);
        progress->execute();
      }
      done->setInt(1, m->version);
      done->execute();
      ++count;
    }
    lock->Release();
    if (result.ok()) {
      LogInfo("schema up to date", {{"schema", options.database}, {"applied_now", int64_t{count}}});
    }
    return result;
  } catch (const sql::SQLException& e) {
    LogError("migration failed", {{"schema", options.database}, {"db_error", int64_t{e.getErrorCode()}},
                                  {"detail", e.what()}});
    return SqlError(e, "migrate");
  }
}

absl::Status CheckNoHalfAppliedMigration(const DbOptions& options) {
  auto conn_or = OpenConnection(options);
  if (!conn_or.ok()) return conn_or.status();
  try {
    return FindHalfApplied(**conn_or, nullptr);
  } catch (const sql::SQLException& e) {
    return SqlError(e, "read schema_migrations");
  }
}

}  // namespace grassroots::common
