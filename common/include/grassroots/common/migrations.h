#pragma once
// Numbered schema migrations (V001__create.sql, ...), embedded in each service binary by
// grassroots_embed_migrations() and applied by its `migrate` subcommand. A table
// schema_migrations records what ran; re-running is a no-op; a named lock keeps two
// migrators from racing.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "grassroots/common/db.h"

namespace grassroots::common {

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

// Splits a migration file into statements (on ';' at the end of a line; '--' comments dropped).
std::vector<std::string> SplitSqlStatements(const std::string& sql);

// Creates the database named in options if missing, then applies every migration not yet
// recorded, in version order. A recorded migration whose text changed is an error. Each
// migration is recorded as 'applying' before its first statement and 'applied' after its last;
// one that failed or was stopped part-way stays 'applying' with the count of its statements that
// took effect, and every later run refuses (FAILED_PRECONDITION naming it) until an operator has
// repaired the schema (docs/operations.md).
absl::Status ApplyMigrations(const DbOptions& options, const std::vector<Migration>& migrations);

// FAILED_PRECONDITION naming the migration when the schema holds one applied in part (a service
// refuses to start on it); UNAVAILABLE when the database cannot be reached; OK otherwise.
absl::Status CheckNoHalfAppliedMigration(const DbOptions& options);

}  // namespace grassroots::common
