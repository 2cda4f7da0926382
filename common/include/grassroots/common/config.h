#pragma once
// Configuration from flags and environment, one place per process. Every flag FOO may also
// be given as the environment variable GRASSROOTS_FOO (upper case); the command line wins.

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "grassroots/common/db.h"

ABSL_DECLARE_FLAG(std::string, listen_host);
ABSL_DECLARE_FLAG(int, grpc_port);
ABSL_DECLARE_FLAG(int, metrics_port);
ABSL_DECLARE_FLAG(std::string, log_level);
ABSL_DECLARE_FLAG(std::string, db_host);
ABSL_DECLARE_FLAG(int, db_port);
ABSL_DECLARE_FLAG(std::string, db_user);
ABSL_DECLARE_FLAG(std::string, db_password);
ABSL_DECLARE_FLAG(std::string, db_name);
ABSL_DECLARE_FLAG(int, db_pool_size);
ABSL_DECLARE_FLAG(int, db_acquire_timeout_ms);

namespace grassroots::common {

// Applies GRASSROOTS_* environment variables to flags, then parses the command line.
// Returns the positional arguments (argv[0] first).
std::vector<std::string> ParseFlags(int argc, char** argv, const char* usage);

// Database options from the db_* flags; `default_schema` is used when --db_name is empty.
DbOptions DbOptionsFromFlags(const std::string& default_schema);

}  // namespace grassroots::common
