#pragma once
// What tests/run provides to the tests: a throwaway MariaDB and the built binaries.

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "grassroots/common/db.h"

namespace grassroots::testing {

inline std::string Env(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

// Options for a fresh schema on the harness's database. Integration tests fail (not skip)
// without it: they are meant to run through tests/run.
inline common::DbOptions TestDb(const std::string& schema_hint) {
  common::DbOptions o;
  o.host = Env("GRASSROOTS_TEST_DB_HOST", "127.0.0.1");
  const std::string port = Env("GRASSROOTS_TEST_DB_PORT");
  EXPECT_FALSE(port.empty()) << "GRASSROOTS_TEST_DB_PORT is not set: run the tests through tests/run";
  o.port = port.empty() ? 3306 : std::atoi(port.c_str());
  o.user = Env("GRASSROOTS_TEST_DB_USER", "grassroots");
  o.password = Env("GRASSROOTS_TEST_DB_PASSWORD", "grassroots");
  o.database = absl::StrCat("t_", schema_hint, "_", ::getpid());
  o.pool_size = 4;
  return o;
}

// Drops a test schema (tests only ever drop what they created).
void DropSchema(const common::DbOptions& o);

}  // namespace grassroots::testing
