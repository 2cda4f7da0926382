#include "grassroots/common/config.h"

#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

ABSL_FLAG(std::string, listen_host, "0.0.0.0", "address the gRPC and metrics servers bind to");
ABSL_FLAG(int, grpc_port, 0, "gRPC port (0 picks a free one)");
ABSL_FLAG(int, metrics_port, 0, "Prometheus /metrics port (0 picks a free one)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(std::string, db_host, "127.0.0.1", "MySQL-compatible database host");
ABSL_FLAG(int, db_port, 3306, "database port");
ABSL_FLAG(std::string, db_user, "grassroots", "database user");
ABSL_FLAG(std::string, db_password, "", "database password (prefer GRASSROOTS_DB_PASSWORD)");
ABSL_FLAG(std::string, db_name, "", "schema name (default grassroots_<service>)");
ABSL_FLAG(int, db_pool_size, 16, "connections in the pool");
ABSL_FLAG(int, db_acquire_timeout_ms, 2000, "longest wait for a pooled connection");

namespace grassroots::common {

std::vector<std::string> ParseFlags(int argc, char** argv, const char* usage) {
  absl::SetProgramUsageMessage(usage);
  // Environment first, so that the command line wins.
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    std::string env = absl::StrCat("GRASSROOTS_", absl::AsciiStrToUpper(name));
    if (const char* value = std::getenv(env.c_str()); value != nullptr) {
      std::string error;
      if (!flag->ParseFrom(value, &error)) {
        std::fprintf(stderr, "invalid %s: %s\n", env.c_str(), error.c_str());
        std::exit(2);
      }
    }
  }
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  return {positional.begin(), positional.end()};
}

DbOptions DbOptionsFromFlags(const std::string& default_schema) {
  DbOptions o;
  o.host = absl::GetFlag(FLAGS_db_host);
  o.port = absl::GetFlag(FLAGS_db_port);
  o.user = absl::GetFlag(FLAGS_db_user);
  o.password = absl::GetFlag(FLAGS_db_password);
  o.database = absl::GetFlag(FLAGS_db_name);
  if (o.database.empty()) o.database = default_schema;
  o.pool_size = absl::GetFlag(FLAGS_db_pool_size);
  o.acquire_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_db_acquire_timeout_ms));
  return o;
}

}  // namespace grassroots::common
