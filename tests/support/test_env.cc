#include "test_env.h"

#include <cppconn/connection.h>
#include <cppconn/statement.h>

namespace grassroots::testing {

void DropSchema(const common::DbOptions& o) {
  auto conn = common::OpenConnection(o, /*select_database=*/false);
  if (!conn.ok()) return;
  std::unique_ptr<sql::Statement> st((*conn)->createStatement());
  st->execute(absl::StrCat("DROP DATABASE IF EXISTS `", o.database, "`"));
}

}  // namespace grassroots::testing
