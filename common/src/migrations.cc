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
#include "grassroots/common/log.h"

namespace grassroots::common {
namespace {

// FNV-1a: a stable fingerprint of a migration's text, to notice edits of applied files.
std::string Fingerprint(const std::string& text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
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
    // One migrator at a time per schema, whoever runs it (deploy, k8s Job, tests).
    {
      std::unique_ptr<sql::PreparedStatement> lock(conn->prepareStatement("SELECT GET_LOCK(?, 120)"));
      lock->setString(1, lock_name);
      std::unique_ptr<sql::ResultSet> rs(lock->executeQuery());
      if (!rs->next() || rs->getInt(1) != 1) {
        return absl::UnavailableError("another migration of this schema is running");
      }
    }
    st->execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INT NOT NULL PRIMARY KEY,"
        " name VARCHAR(200) NOT NULL,"
        " fingerprint CHAR(16) NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"
        ") ENGINE=InnoDB");
    std::map<int, std::string> applied;
    {
      std::unique_ptr<sql::ResultSet> rs(st->executeQuery("SELECT version, fingerprint FROM schema_migrations"));
      while (rs->next()) applied[rs->getInt(1)] = rs->getString(2);
    }
    std::vector<const Migration*> ordered;
    for (const auto& m : migrations) ordered.push_back(&m);
    std::sort(ordered.begin(), ordered.end(), [](auto* a, auto* b) { return a->version < b->version; });
    absl::Status result = absl::OkStatus();
    int count = 0;
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
      // DDL commits implicitly in MySQL; each statement of a migration must be idempotent-safe
      // by being applied once, recorded right after.
      for (const std::string& stmt : SplitSqlStatements(m->sql)) st->execute(stmt);
      std::unique_ptr<sql::PreparedStatement> rec(conn->prepareStatement(
          "INSERT INTO schema_migrations (version, name, fingerprint) VALUES (?, ?, ?)"));
      rec->setInt(1, m->version);
      rec->setString(2, m->name);
      rec->setString(3, fp);
      rec->execute();
      ++count;
    }
    {
      std::unique_ptr<sql::PreparedStatement> unlock(conn->prepareStatement("SELECT RELEASE_LOCK(?)"));
      unlock->setString(1, lock_name);
      std::unique_ptr<sql::ResultSet> rs(unlock->executeQuery());
    }
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

}  // namespace grassroots::common
