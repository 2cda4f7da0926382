// End to end: what a service refuses to start on (real binaries, the harness's MariaDB).
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include <cppconn/connection.h>
#include <cppconn/statement.h>

#include "absl/strings/str_cat.h"
#include "grassroots/common/db.h"
#include "process.h"
#include "suite.h"

namespace grassroots::testing {
namespace {

// Starts `service serve` and waits up to 20 s for it to end; its exit code, or -1 if it was
// still running (then ended). The log goes to *log.
int ServeExitCode(const std::string& service, std::map<std::string, std::string> env, std::string* log) {
  Suite& s = Suite::Get();
  const std::string log_path = absl::StrCat(s.dir(), "/", service, "-startup-", FreePort(), ".log");
  Process p(service, {"serve", "--listen_host=127.0.0.1", absl::StrCat("--grpc_port=", FreePort()), "--metrics_port=0"},
            env, log_path);
  int code = -1;
  for (int i = 0; i < 200 && p.Running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (!p.Running()) code = p.Terminate(1);
  *log = ReadFile(log_path);
  return code;
}

TEST(StartupE2E, AServiceHoldingIdNumbersRefusesToStartWithoutItsKey) {
  Suite& s = Suite::Get();
  for (const std::string service : {"membership", "cadrepay"}) {
    auto env = s.DbEnv(service);
    env.erase("GRASSROOTS_PII_KEY");
    std::string log;
    EXPECT_NE(ServeExitCode(service, env, &log), -1) << service << " started without a key: " << log;
    EXPECT_NE(log.find("GRASSROOTS_PII_KEY"), std::string::npos) << log;
  }
}

TEST(StartupE2E, AServiceRefusesASchemaWithAHalfAppliedMigrationNamingIt) {
  Suite& s = Suite::Get();
  auto env = s.DbEnv("assets");
  env["GRASSROOTS_DB_NAME"] = absl::StrCat(env["GRASSROOTS_DB_NAME"], "_half");
  std::string out;
  ASSERT_EQ(RunCommand({"assets", "migrate"}, &out, env), 0) << out;
  common::DbOptions db;
  db.host = env["GRASSROOTS_DB_HOST"];
  db.port = std::stoi(env["GRASSROOTS_DB_PORT"]);
  db.user = env["GRASSROOTS_DB_USER"];
  db.password = env["GRASSROOTS_DB_PASSWORD"];
  db.database = env["GRASSROOTS_DB_NAME"];
  auto conn = common::OpenConnection(db);
  ASSERT_TRUE(conn.ok()) << conn.status();
  std::unique_ptr<sql::Statement> st((*conn)->createStatement());
  // As the runner leaves a migration that failed after its first statement.
  st->execute("INSERT INTO schema_migrations (version, name, fingerprint, state, statements_done)"
              " VALUES (900, 'V900__split_table.sql', '0000000000000000', 'applying', 1)");
  std::string log;
  EXPECT_EQ(ServeExitCode("assets", env, &log), 1) << log;
  EXPECT_NE(log.find("V900__split_table.sql was applied in part (1 statements"), std::string::npos) << log;
  // `migrate` refuses to go on over it too.
  EXPECT_NE(RunCommand({"assets", "migrate"}, &out, env), 0);
  EXPECT_NE(out.find("V900__split_table.sql"), std::string::npos) << out;
  st->execute(absl::StrCat("DROP DATABASE `", db.database, "`"));
}

// The gateway's readiness says which services it can reach: each backend under its own name.
TEST(StartupE2E, TheGatewaySaysWhichBackendsItCanReach) {
  Suite& s = Suite::Get();
  const int grpc_port = FreePort();
  const std::string log = absl::StrCat(s.dir(), "/gateway-half.log");
  Process gateway("gateway",
                  {"--listen_host=127.0.0.1", absl::StrCat("--grpc_port=", grpc_port),
                   absl::StrCat("--http_port=", FreePort()), "--metrics_port=0",
                   absl::StrCat("--membership_addr=", s.GrpcAddress("membership")),
                   absl::StrCat("--cadrepay_addr=127.0.0.1:", FreePort())},  // nothing listens there
                  {}, log);
  const std::string address = absl::StrCat("127.0.0.1:", grpc_port);
  ASSERT_TRUE(Suite::WaitHealthy(address, 30)) << ReadFile(log);  // one backend reached: in rotation
  bool membership_serving = false;
  for (int i = 0; i < 50 && !membership_serving; ++i) {
    membership_serving = RunCommand({"grassroots", "health", address, "membership"}, nullptr) == 0;
    if (!membership_serving) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(membership_serving) << ReadFile(log);
  std::string out;
  EXPECT_NE(RunCommand({"grassroots", "health", address, "cadrepay"}, &out), 0) << out;
}

}  // namespace
}  // namespace grassroots::testing
