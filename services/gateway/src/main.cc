// The gateway process: assembles the route table, the backends, the gRPC proxy and the HTTP
// server; then waits for SIGTERM/SIGINT and drains both doors.

#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "backends.h"
#include "grassroots/common/config.h"
#include "grassroots/common/log.h"
#include "grassroots/common/server.h"
#include "grpc_proxy.h"
#include "http_gateway.h"
#include "http_server.h"
#include "linked_protos.h"
#include "metrics.h"
#include "route_table.h"

ABSL_FLAG(int, http_port, 8080, "HTTP/JSON port (0 picks a free one)");
ABSL_FLAG(int, http_threads, 2, "HTTP I/O threads");
ABSL_FLAG(int, http_max_connections, 1024, "open HTTP connections beyond which new ones get 503");
ABSL_FLAG(int, http_body_limit_bytes, 16 * 1024 * 1024, "largest HTTP request body (413 above)");
ABSL_FLAG(int64_t, http_body_budget_bytes, int64_t{256} * 1024 * 1024,
          "request body bytes held at once across all HTTP connections, each counted twice (503 + Retry-After above)");
ABSL_FLAG(int, http_idle_timeout_ms, 60000, "idle keep-alive connections are closed after this");
ABSL_FLAG(std::string, membership_addr, "", "membership service host:port");
ABSL_FLAG(std::string, cadrepay_addr, "", "cadrepay service host:port");
ABSL_FLAG(std::string, assets_addr, "", "assets service host:port");
ABSL_FLAG(std::string, mobility_addr, "", "mobility service host:port");
ABSL_FLAG(int, backend_timeout_ms, 30000,
          "deadline of a unary backend call when the caller sets none");
ABSL_FLAG(int, stream_timeout_ms, 600000,
          "deadline of a streaming backend call when the caller sets none (0: none)");
ABSL_FLAG(int, drain_timeout_ms, 10000, "how long in-flight calls may finish on shutdown");

namespace gw = grassroots::gateway;
namespace common = grassroots::common;

int main(int argc, char** argv) {
  common::BlockTerminationSignals();
  common::ParseFlags(argc, argv, "grassroots gateway: the HTTP/JSON and gRPC front door");
  common::InitLogging("gateway", absl::GetFlag(FLAGS_log_level));

  auto routes = gw::RouteTable::Build(gw::LinkedServiceFiles());
  if (!routes.ok()) {
    common::LogError("bad google.api.http annotations",
                     {{"error", std::string_view(routes.status().message().data(),
                                                 routes.status().message().size())}});
    return 1;
  }
  for (const auto& r : (*routes)->routes()) {
    common::Log(common::LogLevel::kDebug, "route",
                {{"method", std::string_view(r.http_method)},
                 {"path", std::string_view(r.path.text())},
                 {"rpc", std::string_view(r.rpc_path)}});
  }

  const std::string host = absl::GetFlag(FLAGS_listen_host);
  auto metrics_endpoint = common::MetricsEndpoint::Start(host, absl::GetFlag(FLAGS_metrics_port));
  if (!metrics_endpoint.ok()) {
    common::LogError("cannot serve metrics", {{"error", std::string_view(std::string(
                                                            metrics_endpoint.status().message()))}});
    return 1;
  }
  gw::GatewayMetrics metrics((*metrics_endpoint)->registry());

  gw::Backends backends(gw::DefaultBackendConfigs(
      absl::GetFlag(FLAGS_membership_addr), absl::GetFlag(FLAGS_cadrepay_addr),
      absl::GetFlag(FLAGS_assets_addr), absl::GetFlag(FLAGS_mobility_addr)));
  gw::CallPolicy policy;
  policy.unary_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_backend_timeout_ms));
  policy.stream_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_stream_timeout_ms));
  const absl::Duration drain = absl::Milliseconds(absl::GetFlag(FLAGS_drain_timeout_ms));

  gw::GrpcProxy proxy(&backends, &metrics, policy);
  common::ServerOptions grpc_options;
  grpc_options.service_name = "gateway";
  grpc_options.host = host;
  grpc_options.port = absl::GetFlag(FLAGS_grpc_port);
  // Ready while it can reach a backend; each backend's own status under its name ("membership",
  // "cadrepay", ...): SERVING while its channel connects. One backend down leaves the others
  // served (the front door stays in rotation), and `grassroots health GATEWAY cadrepay` says
  // which one is out.
  auto reachable = std::make_shared<std::map<std::string, bool>>();
  grpc_options.readiness_probe = [&backends, reachable] {
    std::map<std::string, bool> now = gw::ReachableBackends(backends, absl::Milliseconds(300));
    std::string down;
    bool any = now.empty();
    for (const auto& [name, ok] : now) {
      any |= ok;
      if (!ok) absl::StrAppend(&down, down.empty() ? "" : ", ", name);
    }
    *reachable = std::move(now);
    if (!any) return absl::UnavailableError(absl::StrCat("no backend can be reached (", down, ")"));
    return absl::OkStatus();
  };
  grpc_options.service_probe = [reachable] { return *reachable; };
  grpc_options.drain_timeout = drain;
  common::GrpcServer grpc_server(grpc_options, &(*metrics_endpoint)->registry());
  grpc_server.AddCallbackGenericService(&proxy);
  auto grpc_port = grpc_server.Start();
  if (!grpc_port.ok()) {
    common::LogError("cannot start the gRPC server",
                     {{"error", std::string_view(std::string(grpc_port.status().message()))}});
    return 1;
  }

  gw::HttpGateway gateway(routes->get(), &backends, &metrics, policy);
  gw::HttpServerOptions http_options;
  http_options.host = host;
  http_options.port = absl::GetFlag(FLAGS_http_port);
  http_options.threads = absl::GetFlag(FLAGS_http_threads);
  http_options.max_connections = absl::GetFlag(FLAGS_http_max_connections);
  http_options.body_limit = static_cast<size_t>(absl::GetFlag(FLAGS_http_body_limit_bytes));
  http_options.body_budget = static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_http_body_budget_bytes)));
  http_options.on_body_budget_refused = [&metrics] { metrics.HttpBodyBudgetRefused(); };
  http_options.idle_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_http_idle_timeout_ms));
  http_options.error_response = [&gateway](int status, const absl::Status& error,
                                           const gw::HttpRequest& request) {
    return gateway.ServerError(status, error, request);
  };
  http_options.on_connections_changed = [&metrics](int delta) { metrics.HttpConnectionsChanged(delta); };
  http_options.on_connection_refused = [&metrics] { metrics.HttpConnectionRefused(); };
  gw::HttpServer http_server(http_options, [&gateway](std::shared_ptr<gw::HttpExchange> exchange) {
    gateway.Handle(std::move(exchange));
  });
  auto http_port = http_server.Start();
  if (!http_port.ok()) {
    common::LogError("cannot start the HTTP server",
                     {{"error", std::string_view(std::string(http_port.status().message()))}});
    grpc_server.Shutdown();
    return 1;
  }
  common::LogInfo("gateway ready", {{"grpc_port", int64_t{*grpc_port}},
                                    {"http_port", int64_t{*http_port}},
                                    {"metrics_port", int64_t{(*metrics_endpoint)->port()}},
                                    {"routes", static_cast<int64_t>((*routes)->routes().size())}});

  int signal = common::WaitForTerminationSignal();
  common::LogInfo("draining", {{"signal", int64_t{signal}}});
  // Both doors drain together: HTTP stops accepting and finishes in-flight exchanges while
  // the gRPC server turns NOT_SERVING and finishes its calls.
  std::thread http_drain([&http_server, drain] { http_server.Shutdown(drain); });
  grpc_server.Shutdown();
  http_drain.join();
  common::LogInfo("stopped");
  return 0;
}
