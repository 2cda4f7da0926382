#include "grassroots/common/service_main.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "grassroots/common/config.h"
#include "grassroots/common/log.h"
#include "grassroots/common/server.h"

namespace grassroots::common {

int RunServiceMain(int argc, char** argv, const ServiceSpec& spec) {
  BlockTerminationSignals();
  const std::string usage = absl::StrCat(spec.name, " [serve|migrate] [--flags]\n",
                                         "  serve    run the ", spec.name, " gRPC service (default)\n",
                                         "  migrate  apply the schema migrations of grassroots_", spec.name, " and exit");
  std::vector<std::string> args = ParseFlags(argc, argv, usage.c_str());
  InitLogging(spec.name, absl::GetFlag(FLAGS_log_level));
  const std::string command = args.size() > 1 ? args[1] : "serve";
  const DbOptions db = DbOptionsFromFlags(absl::StrCat("grassroots_", spec.name));

  if (command == "migrate") {
    absl::Status s = ApplyMigrations(db, *spec.migrations);
    if (!s.ok()) {
      LogError("migration failed", {{"error", s.ToString()}});
      return 1;
    }
    return 0;
  }
  if (command != "serve") {
    std::fprintf(stderr, "unknown command '%s'\n%s\n", command.c_str(), usage.c_str());
    return 2;
  }

  // A schema left half-migrated is not served: what the service would read and write there is
  // neither the old shape nor the new. A database that cannot be reached yet is no reason to
  // stop (readiness says so until it answers).
  if (absl::Status schema = CheckNoHalfAppliedMigration(db); absl::IsFailedPrecondition(schema)) {
    LogError("cannot start", {{"schema", db.database}, {"error", std::string(schema.message())}});
    std::fprintf(stderr, "%s: %s\n", spec.name.c_str(), std::string(schema.message()).c_str());
    return 1;
  }

  const std::string host = absl::GetFlag(FLAGS_listen_host);
  auto metrics_or = MetricsEndpoint::Start(host, absl::GetFlag(FLAGS_metrics_port));
  if (!metrics_or.ok()) {
    LogError("cannot start", {{"error", metrics_or.status().ToString()}});
    return 1;
  }
  MetricsEndpoint& metrics = **metrics_or;
  ConnectionPool pool(db, &metrics.registry());
  ServiceParts parts = spec.build(pool, metrics.registry());

  ServerOptions options;
  options.service_name = spec.name;
  options.host = host;
  options.port = absl::GetFlag(FLAGS_grpc_port);
  // Ready only while the database answers: a database that is down at start-up (or later)
  // fails readiness and is retried, instead of crashing the process.
  options.readiness_probe = [&pool] { return pool.Ping(); };
  GrpcServer server(options, &metrics.registry());
  for (grpc::Service* s : parts.services) server.AddService(s);
  auto port = server.Start();
  if (!port.ok()) {
    LogError("cannot start", {{"error", port.status().ToString()}});
    return 1;
  }
  LogInfo("serving", {{"grpc_port", int64_t{*port}}, {"metrics_port", int64_t{metrics.port()}},
                      {"schema", db.database}});
  if (parts.start) parts.start();
  server.RunUntilSignal();
  if (parts.stop) parts.stop();
  return 0;
}

}  // namespace grassroots::common
